# SIM800 AT response parser, sans-IO (h11 style).
#
#     p = ATParser()
#     p.command("AT+CSQ")          # optional: drop its echo, expect "+CSQ" replies
#     p.feed(uart_bytes)           # any chunking, bytes/bytearray/str
#     while True:
#         ev = p.next_event()
#         if ev is None:
#             break
#         ...
#
# Events (tuples):
#     ("line", text)               information line (reply to the pending command,
#                                  or any line not known to be a URC)
#     ("final", kind, text)        kind: "OK" "ERROR" "CME" "CMS" "NO CARRIER" "BUSY"
#                                  "NO ANSWER" "NO DIALTONE" "CONNECT" ("SHUT OK" of
#                                  AT+CIPSHUT too); text is the
#                                  CME/CMS code or verbose message ("500", "SIM busy"),
#                                  the CONNECT suffix, else ""
#     ("prompt",)                  the SMS "> " prompt (arrives as "\r\n> ", no line end)
#     ("urc", name, args_text)     unsolicited result code; name is the prefix without
#                                  ":" ("+CMTI", "RING", "Call Ready", ...), args_text
#                                  the text after ": " (or "")
#
# Call-progress codes (NO CARRIER, BUSY, NO ANSWER, NO DIALTONE) are finals only
# while a dial/answer command (ATD..., ATA) is pending; otherwise - e.g. the far end
# hanging up, which SIM800 reports after ATD's "OK" - they come out as URCs with the
# same name.  The power URCs are reported with SIMCom's own spelling ("WARNNING")
# whichever spelling the modem used.
#
# No I/O, no allocation beyond a bounded line buffer and a bounded event queue, never
# raises on noise.  Runs unchanged on MicroPython and CPython.

from atargs import (split_args, parse_csq, csq_dbm, parse_cbc,  # noqa: F401
                    parse_creg, registered, parse_clcc, parse_clip, parse_cmti,
                    parse_cmgs, parse_cmgr, parse_ceng, sms_stored)

# The longest line: a 160-character SMS read in UCS2 (radio reads them so) is 640 hex
# digits.  The buffer grows to it only when such a line comes.
MAX_LINE = 672
MAX_EVENTS = 32

# Call-progress codes: finals while ATD/ATA waits, URCs otherwise, and the cause the
# alert machine is told when our call ends that way.  The one definition (modem.py and
# the dialect read it from here).
CALL_END = {"NO CARRIER": "no_carrier", "BUSY": "busy", "NO ANSWER": "no_answer",
            "NO DIALTONE": "error"}
# Power URCs in SIMCom's own spelling ("WARNNING"); the corrected spelling maps onto these.
UV_WARN = "UNDER-VOLTAGE WARNNING"
UV_DOWN = "UNDER-VOLTAGE POWER DOWN"
OV_WARN = "OVER-VOLTAGE WARNNING"
OV_DOWN = "OVER-VOLTAGE POWER DOWN"
NORMAL_DOWN = "NORMAL POWER DOWN"       # AT+CPOWD or PWRKEY: ours, not the supply
# The A76XX's call URCs (a76xx.md §3): "VOICE CALL: END: <HHMMSS>" comes out as
# (VOICE_END, "HHMMSS").
VOICE_BEGIN = "VOICE CALL: BEGIN"
VOICE_END = "VOICE CALL: END"

# Whole-line URCs -> canonical name.
_URC_WORDS = {
    "RING": "RING",
    "MO RING": "MO RING",
    "MO CONNECTED": "MO CONNECTED",
    "Call Ready": "Call Ready",
    "SMS Ready": "SMS Ready",
    "RDY": "RDY",
    UV_WARN: UV_WARN,
    "UNDER-VOLTAGE WARNING": UV_WARN,
    UV_DOWN: UV_DOWN,
    OV_WARN: OV_WARN,
    "OVER-VOLTAGE WARNING": OV_WARN,
    OV_DOWN: OV_DOWN,
    NORMAL_DOWN: NORMAL_DOWN,
    # A76XX: boot (no RDY/Call Ready), calls, AT+CPMVT's power-down (a76xx.md §2, §3, §6)
    "SMS DONE": "SMS DONE",
    "PB DONE": "PB DONE",
    VOICE_BEGIN: VOICE_BEGIN,
    "UNDER-VOLTAGE WARNNING POWER DOWN": UV_DOWN,
    "OVER-VOLTAGE WARNNING POWER DOWN": OV_DOWN,
}

# "+X: ..." prefixes that are URCs unless the pending command expects them.
# *PSNWID (the network's name, with its time after AT+CLTS=1): esp_modem's and TinyGSM's
# SIM800 URC lists.
URC_PREFIXES = ("+CLIP", "+CMTI", "+CLCC", "+CREG", "+CGREG", "+CFUN", "+CPIN",
                "+CUSD", "+CMT", "+CDS", "+CRING", "+DTMF", "+CIEV", "*PSNWID", "*PSUTTZ",
                "DST", "+CTZV", "+CSQN",
                "*ATREADY", "*ISIMAID", "*COPN", "+CGEV", "+CEREG")  # A76XX (a76xx.md §2, §5)

_FINAL_WORDS = ("OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE",
                "SHUT OK")


def _prefix(line):
    i = line.find(":")
    if i <= 0:
        return None
    p = line[:i]
    if p[0] not in "+*" and p != "DST":
        return None
    return p


def _creg_is_urc(args):
    # Reply to AT+CREG?: n,stat[,lac,ci]  (2 or 4 fields)
    # URC:               stat[,lac,ci]    (1 or 3 fields)
    return len(split_args(args)) % 2 == 1


def _expected_prefix(cmd):
    # AT+CSQ -> +CSQ, AT+CREG? -> +CREG, AT+CMGS="..." -> +CMGS, ATI -> None.
    if not cmd:
        return None
    c = cmd.strip().upper()
    if not c.startswith("AT") or len(c) < 4 or c[2] not in "+*":
        return None
    end = 3
    while end < len(c) and (c[end].isalpha() or c[end].isdigit()):
        end += 1
    return c[2:end]


def reply_line(lines, prefix):
    # A command's answer among its lines: the first that starts with prefix ("+CCLK"), or
    # None. A line no one listed as a URC may come before it.
    for ln in lines:
        if ln.startswith(prefix):
            return ln
    return None


def is_urc(line, pending_cmd=None, expect=None):
    # Classify a complete line (no CR/LF): return (name, args_text) if it is an
    # unsolicited result code given the pending command (or explicit expected prefix),
    # else None.
    w = _URC_WORDS.get(line)
    if w is not None:
        return (w, "")
    if line.startswith(VOICE_END):
        return (VOICE_END, line[len(VOICE_END):].lstrip(":").strip())
    p = _prefix(line)
    if p is None or p not in URC_PREFIXES:
        return None
    args = line[len(p) + 1:].strip()
    if p == "+CREG" or p == "+CGREG":
        return (p, args) if _creg_is_urc(args) else None
    if expect is None:
        expect = _expected_prefix(pending_cmd)
    if expect is not None and expect == p:
        return None
    return (p, args)


class ATParser:
    def __init__(self, max_line=MAX_LINE, max_events=MAX_EVENTS):
        self.max_line = max_line
        self.max_events = max_events
        # the line being received: one buffer for the parser's life (a 640-byte SMS line
        # grown byte run by byte run needs ever larger blocks of a fragmented heap)
        self._buf = bytearray(max_line)
        self._n = 0
        self._skip = False          # inside an overlong line: discard until EOL
        # SMS read in UCS2 (radio): a line of hex digits only is a text, and only its
        # first hex_cut digits become a string (0: none, a listing's); None: off. Until
        # the next final result.
        self.hex_cut = None
        self._eat_space = False     # just saw the prompt '>': swallow one ' '
        self._q = []
        self._echo = None
        self._expect = None
        self._dialing = False
        self.pending = False
        # counters
        self.overflows = 0
        self.noise = 0
        self.echoes = 0
        self.dropped = 0

    # -- driver hints -------------------------------------------------------
    def set_echo_filter(self, cmd):
        # Tell the parser the driver just sent cmd: the next line equal to cmd (the
        # modem's echo) is dropped; unless expect() already named one, the reply
        # prefix is derived from cmd ("AT+CLCC" -> "+CLCC" lines are replies, not
        # URCs); after ATD/ATA, BUSY / NO CARRIER / NO ANSWER / NO DIALTONE are
        # finals.  All of it is cleared by the next final result.
        self._echo = cmd.strip() if cmd else None
        if not cmd:
            return
        if self._expect is None:
            self._expect = _expected_prefix(cmd)
        c = cmd.strip().upper()
        self._dialing = c.startswith("ATD") or c == "ATA"
        self.pending = True

    def expect(self, prefix):
        # Lines starting with prefix ("+CLCC") are replies, not URCs, until the
        # next final result.  None clears the expectation.
        self._expect = prefix
        if prefix is not None:
            self.pending = True

    def command(self, cmd, expect=None):
        # set_echo_filter(cmd) with an explicit expected prefix (else derived).
        self._expect = expect
        self.set_echo_filter(cmd)

    def reset(self):
        # Forget any partial line and pending-command state (e.g. modem reboot).
        self._n = 0
        self._skip = self._eat_space = False
        self.hex_cut = None
        self._echo = self._expect = None
        self._dialing = self.pending = False

    def reset_line(self):
        # Drop the line being received (what the caller could not take whole).
        self._n = 0
        self._skip = True

    # -- data path ----------------------------------------------------------
    def feed(self, data):
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        n = len(data)
        i = 0
        while i < n:
            if self._eat_space:
                self._eat_space = False
                if data[i] == 0x20:
                    i += 1
                    continue
            if not self._n and not self._skip and data[i] == 0x3E:  # '>'
                self._push(("prompt",))
                self._eat_space = True
                i += 1
                continue
            r = data.find(b"\r", i)
            l = data.find(b"\n", i)
            j = r if (l < 0 or (0 <= r < l)) else l
            if j < 0:
                self._append(data, i, n)
                break
            self._append(data, i, j)
            try:
                self._end_line()
            except MemoryError:
                # no heap for this line's text: it alone is lost (counted), not the
                # rest of the chunk (the OK after an SMS's body, a URC)
                self._n = 0
                self.dropped += 1
            i = j + 1

    def _append(self, data, a, b):
        if self._skip or a >= b:
            return
        n = self._n
        if n + (b - a) > self.max_line:
            self._n = 0
            self._skip = True
            self.overflows += 1
            return
        self._buf[n:n + b - a] = data[a:b]
        self._n = n + b - a

    def _end_line(self):
        if self._skip:
            self._skip = False
            return
        n = self._n
        if not n:
            return
        self._n = 0
        if self.hex_cut is not None and _all_hex(self._buf, n):
            if not self.hex_cut:
                return
            n = min(n, self.hex_cut)
        text = _clean(self._buf, n)
        if text is None:
            self.noise += 1
            return
        if text:
            self._line(text)

    def _push(self, ev):
        if len(self._q) >= self.max_events:
            self._q.pop(0)
            self.dropped += 1
        self._q.append(ev)

    def next_event(self):
        if self._q:
            return self._q.pop(0)
        return None

    def _final(self, kind, text):
        self._push(("final", kind, text))
        self._echo = self._expect = self.hex_cut = None
        self._dialing = self.pending = False

    def _line(self, text):
        if self._echo is not None and text == self._echo:
            self._echo = None
            self.echoes += 1
            return
        if text in _FINAL_WORDS:
            if text in CALL_END and not self._dialing:
                self._push(("urc", text, ""))
            else:
                self._final(text, "")
            return
        if text.startswith("+CME ERROR"):
            self._final("CME", text[10:].lstrip(":").strip())
            return
        if text.startswith("+CMS ERROR"):
            self._final("CMS", text[10:].lstrip(":").strip())
            return
        if text.startswith("CONNECT"):
            self._final("CONNECT", text[7:].strip())
            return
        u = is_urc(text, None, self._expect)
        if u is not None:
            self._push(("urc", u[0], u[1]))
        else:
            self._push(("line", text))


def _all_hex(raw, n):
    for k in range(n):
        c = raw[k] | 0x20  # A-F -> a-f
        if not (0x30 <= c <= 0x39 or 0x61 <= c <= 0x66):
            return False
    return True


def _clean(raw, n):
    # the first n bytes of raw (one line) -> stripped str, or None if it is noise
    # (non-ASCII).
    a = 0
    while a < n and (raw[a] == 0 or raw[a] == 0xFF):
        a += 1
    k = a
    while k < n and 0x20 <= raw[k] < 0x7F:
        k += 1
    if k == n:  # printable ASCII (nearly every line): no byte-by-byte copy
        return str(memoryview(raw)[a:n], "ascii").strip()
    out = bytearray()
    for k in range(a, n):
        c = raw[k]
        if c >= 0x80:
            return None
        if c == 0 or c == 0x1A or c == 0x1B:
            continue
        if c < 0x20 and c != 0x09 or c == 0x7F:
            c = 0x3F  # '?'
        out.append(c)
    return out.decode().strip()


def parse_cclk(line):
    # '+CCLK: "24/05/06,22:10:00-24"' (or just the quoted time) -> UTC Unix seconds, or
    # None. The module gives local time and the zone in quarter hours (3GPP TS 27.007
    # 8.15: "yy/MM/dd,hh:mm:ss+zz"); yy is 20yy, or 19yy from 70 (an A76XX that never heard
    # the network time counts from "70/01/01", 1970, not 2070; a SIM800 from its default
    # "04/01/01,00:00:00": the caller judges plausibility).
    from eventlog import unix_from_utc
    i = line.find('"')
    j = line.find('"', i + 1)
    t = line[i + 1:j] if 0 <= i < j else line.strip()
    # the zone unpadded too: a real A7682E prints "25/03/19,16:13:35+8"
    if len(t) not in (19, 20) or t[2] != "/" or t[5] != "/" or t[8] != "," or t[17] not in "+-":
        return None
    f = []
    for k in (0, 3, 6, 9, 12, 15, 18):
        if not t[k:k + 2].isdigit():  # int() would take " 1" or "-1"
            return None
        f.append(int(t[k:k + 2]))
    y, mo, d, hh, mm, ss, q = f
    if not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mm < 60 and ss < 60 and q <= 96):
        return None
    tz_s = q * 900 if t[17] == "+" else -q * 900
    return unix_from_utc((1900 + y if y >= 70 else 2000 + y, mo, d, hh, mm, ss)) - tz_s
