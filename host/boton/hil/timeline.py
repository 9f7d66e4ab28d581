"""A per-test timeline for testers: the button, the device's log, the AT traffic and the
network, merged by time, relative to the test's start.

    +  0.000s  TEST     start (virtual rig, time_scale 0.1)
    +  0.812s  BUTTON   hold 0.80 s
    +  0.905s  DEVICE   EV alert gesture
    +  0.910s  ESP>MDM  AT+CMIC=0,15
    +  0.931s  MDM>ESP  OK
    +  1.302s  NETWORK  call_start +524490000042 -> +524499100000
"""
import re
import time
from pathlib import Path

MAX_LINES = 6000
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Timeline:
    def __init__(self, name, header=""):
        self.name = name
        self.header = header
        self.outcome = None        # "PASSED", "FAILED (call)", "SKIPPED: why": set by the plugin
        self.t0 = time.monotonic()
        self.entries = []          # (t, source, text) added as things happen
        self.sources = []          # callables returning [(t, source, text)] at render time

    def add(self, source, text, t=None):
        self.entries.append((time.monotonic() if t is None else t, source, text))

    def note(self, text):
        self.add("TEST", text)

    def render(self):
        rows = list(self.entries)
        for src in self.sources:
            try:
                rows.extend(src())
            except Exception as e:  # a broken source must not hide the others
                rows.append((time.monotonic(), "TIMELINE", f"source failed: {e!r}"))
        rows = [r for r in rows if r[0] >= self.t0 - 0.001]
        rows.sort(key=lambda r: r[0])
        if len(rows) > MAX_LINES:
            cut = len(rows) - MAX_LINES
            half = MAX_LINES // 2
            rows = rows[:half] + [(rows[half][0], "TIMELINE", f"... {cut} lines left out ...")] + rows[-half:]
        out = [f"Botón Seguro timeline: {self.name}"]
        if self.outcome:
            out.append(f"Outcome: {self.outcome}")
        out += [self.header, ""]
        for t, src, text in rows:
            for i, line in enumerate(str(text).splitlines() or [""]):
                out.append(f"+{t - self.t0:9.3f}s  {src:<8} {line}" if i == 0 else f"{'':20} {line}")
        return "\n".join(out) + "\n"

    def write(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name).strip("_")[:180] + ".txt")
        path.write_text(self.render(), encoding="utf-8")
        return path


def at_rows(log, to_modem, from_modem):
    """(t, dir, bytes) AT log -> timeline rows, one per line of text; bytes that are not
    text (garbage, a '> ' prompt) are shown escaped."""
    rows = []
    pending = {}
    for t, direction, data in list(log):
        label = to_modem if direction == "rx" else from_modem
        prev_t, prev_rest = pending.get(direction, (t, b""))
        buf = prev_rest + bytes(data).replace(b"\x1a", b"\x1a\r\n")
        first_t = prev_t if prev_rest else t  # a line is stamped with its first byte
        parts = re.split(rb"\r\n|\r|\n", buf)
        rest = parts.pop()
        for p in parts:
            if p.strip():
                rows.append((first_t, label, _show(p)))
            first_t = t
        if rest in (b"> ", b">"):
            rows.append((t, label, "> (SMS text prompt)"))
            rest = b""
        pending[direction] = (t, rest)
    for direction, (t, rest) in pending.items():
        if rest.strip():
            rows.append((t, to_modem if direction == "rx" else from_modem, _show(rest)))
    return rows


def _show(b):
    text = b.decode("latin-1")
    if "\x1a" in text:
        text = text.replace("\x1a", "<Ctrl-Z>")
    return _CTRL.sub(lambda m: "\\x%02x" % ord(m.group()), text)


def network_row(ev):
    k = ev.get("kind")
    ends = f"{ev.get('from', '')} -> {ev.get('to', '')}"
    if k == "sms":
        status = "delivered" if ev.get("delivered") else "NOT delivered"
        if ev.get("error"):
            status = f"refused (+CMS ERROR: {ev['error']})"
        return f"SMS {ends} {status}: {ev.get('text', '')!r}"
    if k == "call":
        return (f"CALL {ends} result={ev.get('result')} answered={ev.get('answered')} "
                f"{ev.get('duration_s', 0)}s ended_by={ev.get('ended_by')} audio={ev.get('audio')}")
    if k in ("call_start", "ringing", "call_connected", "call_end"):
        extra = f" result={ev.get('result')}" if k == "call_end" else ""
        return f"{k} #{ev.get('call_id')} {ends}{extra}"
    rest = {a: b for a, b in ev.items() if a not in ("kind", "t")}
    return f"{k} {rest}"
