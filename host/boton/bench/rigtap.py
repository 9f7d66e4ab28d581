"""A VirtualDevice that also timestamps what the firmware prints and counts what the host
sends, so the bench can put console lines and AT bytes on one clock.

The rig's Scheduler runs on time.monotonic(), and so do these stamps: `sim800.at_log`
times, network event "t" and console stamps compare directly. Nothing in the firmware
changes; the stamps are taken where the rig reads the child's stdout.
"""
from __future__ import annotations

import time

from ..sim.rig import VirtualDevice

# AT final result codes (V.25ter and SIM800): after one of these it is the firmware's turn.
FINALS = (b"OK", b"ERROR", b"+CME ERROR", b"+CMS ERROR", b"NO CARRIER", b"BUSY",
          b"NO ANSWER", b"NO DIALTONE", b"CONNECT")


class TappedDevice(VirtualDevice):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.console_stamps = []   # (monotonic t, end offset in self.console_all)
        self.console_all = bytearray()
        self.host_bytes = 0        # bytes the host wrote to the REPL (the "USB cable")
        self.button_stamps = []    # (monotonic t, level) of every button level the rig drives

    def _console_out(self, data: bytes):
        t = time.monotonic()
        with self._cond:
            self.console_all += data
            self.console_stamps.append((t, len(self.console_all)))
        super()._console_out(data)

    def _to_child(self, data: bytes):
        self.host_bytes += len(data)
        super()._to_child(data)

    def _gpio_write(self, level):
        self.button_stamps.append((time.monotonic(), level))
        super()._gpio_write(level)

    # ------------------------------------------------------------------ queries
    def console_offset(self) -> int:
        with self._cond:
            return len(self.console_all)

    def console_time(self, needle: str, since: int = 0):
        """Monotonic time at which the console chunk completing `needle` arrived (or None)."""
        with self._cond:
            pos = self.console_all.find(needle.encode(), since)
            if pos < 0:
                return None
            end = pos + len(needle)
            for t, off in self.console_stamps:
                if off >= end:
                    return t
        return None

    def wait_console_time(self, needle: str, since: int = 0, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            t = self.console_time(needle, since)
            if t is not None:
                return t
            if time.monotonic() > deadline:
                tail = bytes(self.console_all[-1500:]).decode(errors="replace")
                raise TimeoutError(f"device never printed {needle!r}; console tail:\n{tail}")
            with self._cond:
                self._cond.wait(0.2)

    def at_snapshot(self):
        """A copy of the modem's AT log (taken on the rig's loop: no torn list)."""
        return self.call(lambda: list(self.modem.at_log))

    def wait_at_quiet(self, quiet_s=1.0, timeout=30.0):
        """Block until no AT byte moved for quiet_s (boot-time chatter is over)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.at_snapshot()
            last = log[-1][0] if log else 0.0
            if time.monotonic() - last >= quiet_s:
                return True
            time.sleep(min(quiet_s / 4, 0.25))
        return False


def is_final(data: bytes) -> bool:
    """Does this modem output contain a final result code or the SMS '> ' prompt?"""
    if b"> " in data:
        return True
    for line in data.replace(b"\r", b"\n").split(b"\n"):
        line = line.strip()
        if any(line.startswith(f) for f in FINALS):
            return True
    return False


def _is_command(data: bytes) -> bool:
    return b"\r" in data or b"\x1a" in data or b"\x1b" in data


def turns(at_log, t0, t1):
    """Split [t0, t1] into the modem's turn (a command was sent and its final result or
    prompt has not come back) and the firmware's turn (everything else: reacting to a
    reply, its own work, scheduling, waiting on its own timers).

    A command that never got an answer (the next command went out while it was still
    owed: e.g. the throwaway "AT" that wakes a SIM800 in AT+CSCLK=2 sleep, whose first
    byte is lost) is counted apart as "unanswered": the firmware waiting out its own
    timeout. Returns {"firmware", "modem", "unanswered"} in seconds and "commands", the
    commands sent in (t0, t1], one at t1 included."""
    out = {"firmware": 0.0, "modem": 0.0, "unanswered": 0.0, "commands": 0}
    owing = False
    owed_since = None
    t = t0
    for when, direction, data in at_log:
        if when < t0:
            # state at t0: replay to know whether a command was outstanding
            if direction == "rx" and _is_command(data):
                owing, owed_since = True, t0
            elif direction == "tx" and owing and is_final(data):
                owing = False
            continue
        if when > t1:
            break
        out["modem" if owing else "firmware"] += when - t
        t = when
        if direction == "rx" and _is_command(data):
            if owing:  # the previous command was never answered
                lost = when - owed_since
                out["modem"] -= lost
                out["unanswered"] += lost
            owing, owed_since = True, when
            out["commands"] += 1
        elif direction == "tx" and owing and is_final(data):
            owing = False
    out["modem" if owing else "firmware"] += max(0.0, t1 - t)
    return out


def split_turns(at_log, t0, t1):
    """(firmware_s, modem_s, commands) of turns(); unanswered time counts as the modem's."""
    r = turns(at_log, t0, t1)
    return r["firmware"], r["modem"] + r["unanswered"], r["commands"]
