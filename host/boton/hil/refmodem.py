"""The reference modem of the HIL set-up: a second SIM800 (any 2G module with the usual AT
commands) on a USB-serial adapter, driven over pyserial. It plays the C4 operator and the
trusted contact on the real network:

* receives the device's SMS (``+CMTI`` -> ``AT+CMGR`` -> ``AT+CMGD``),
* answers, rejects or ignores the device's calls (``RING``/``+CLIP``/``+CLCC`` -> ``ATA``/``ATH``),
* calls the device back (``ATD<number>;``, or ``ATD#31#<number>;`` to withhold its caller id),
* sends the device SMS commands (``AT+CMGS``, text mode),
* drives one of its GPIOs (``AT+SGPIO``) for a button jig.

Everything it sees becomes an event dict of the same shape as the simulated network's
(``boton.sim.network``), so scenarios observe the rig and the real network alike:

    {"kind": "sms", "from", "to", "text", "delivered", "t"}
    {"kind": "call_start" | "ringing" | "call_connected" | "call_end", "call_id", "from", "to", "t"}
    {"kind": "call", "call_id", "from", "to", "answered", "result", "duration_s", "ended_by", "t"}

``at_log`` holds every byte, modem's point of view like ``Sim800.at_log``: (t, "rx", bytes
to the modem) and (t, "tx", bytes from it); t is ``time.monotonic()``.

Tested against the simulated SIM800 through ``boton.hil.simbench`` (tests/test_refmodem.py).
"""
import queue
import re
import threading
import time

import serial

from ..rules import firmware_module
from ..waiting import wait_for_item

FINALS = ("OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "CONNECT")
CALL_CODES = ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
URC_PREFIXES = ("+CMTI:", "+CMT:", "RING", "+CLIP:", "+CLCC:", "+CREG:", "Call Ready",
                "SMS Ready", "+CPIN:", "+CFUN:", "RDY", "UNDER-VOLTAGE", "OVER-VOLTAGE",
                "NORMAL POWER DOWN", "+CUSD:", "MO RING", "MO CONNECTED")
_CLCC = re.compile(r'\+CLCC:\s*(\d+),(\d),(\d),(\d),(\d)(?:,"([^"]*)",(\d+))?')
_CLIP = re.compile(r'\+CLIP:\s*"([^"]*)"')
_CMGR = re.compile(r'\+CMGR:\s*"([^"]*)","([^"]*)"')
_CMTI = re.compile(r'\+CMTI:\s*"[^"]*",(\d+)')


class RefModemError(RuntimeError):
    pass


def same_number(a, b):
    """Phone numbers compared as the firmware compares them: in full, after its canon()
    (a national or old-prefixed Mexican form is the +52 number; another country is not)."""
    return firmware_module("alertsms").same_number(a or "", b or "")


class RefModem:
    def __init__(self, port, number=None, *, baudrate=115200, answer_after_s=1.0,
                 hangup_after_s=None, reject_after_s=0.5):
        self.port = port
        self.number = number or "ref"
        self.baudrate = baudrate
        self.incoming = "answer"        # answer | reject | ignore: calls the device makes to us
        self.answer_after_s = answer_after_s
        self.hangup_after_s = hangup_after_s
        self.reject_after_s = reject_after_s
        self._once = []                 # policies for the next incoming calls, then `incoming`
        self.events = []
        self.at_log = []
        self.ser = None
        self.call = None
        self._ids = 0
        self._cond = threading.Condition()
        self._cmd_lock = threading.Lock()
        self._pending = None
        self._prompt = threading.Event()
        self._jobs = queue.SimpleQueue()
        self._timers = []
        self._closing = False
        self._buf = bytearray()
        self._last_rx = 0.0

    # ------------------------------------------------------------------ lifecycle
    def open(self, timeout=60.0, wait_registered=True):
        """Open the port, wait for the module, set it up; wait for the network (optional)."""
        self.ser = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.05)
        self._reader = threading.Thread(target=self._read_loop, name="refmodem-rx", daemon=True)
        self._worker = threading.Thread(target=self._work_loop, name="refmodem-urc", daemon=True)
        self._reader.start()
        self._worker.start()
        deadline = time.monotonic() + timeout
        while True:  # a module just powered needs seconds before its UART listens
            try:
                if self.cmd("AT", timeout=0.5, check=False)[0] == "OK":
                    break
            except RefModemError:
                pass
            if time.monotonic() > deadline:
                raise RefModemError(f"reference modem on {self.port} does not answer AT")
        # A probe that timed out may still be answered: let late replies drain before the
        # set-up, or each reply would be taken for the next command's.
        self._quiet(0.3)
        self.cmd("ATE0")
        self.cmd("AT+CMEE=2")
        self._until(lambda: "READY" in " ".join(self.cmd("AT+CPIN?", check=False)[1]),
                    deadline, "SIM of the reference modem not ready")
        self._until(lambda: self.cmd("AT+CMGF=1", check=False)[0] == "OK", deadline,
                    "reference modem refuses SMS text mode")
        for c in ('AT+CSCS="GSM"', "AT+CNMI=2,1,0,0,0", "AT+CLIP=1", "AT+CLCC=1"):
            self.cmd(c)
        # A call the last scenario left up (a bench resets the board, not the modems: the
        # board's module keeps its call through an EN reset) would fail this one's dials
        self.end_calls()
        if wait_registered:
            self._until(self.registered, deadline, "reference modem not registered")
        return self

    def end_calls(self, timeout=20.0):
        """Hang up whatever call the module holds and wait until it lists none."""
        self.hangup()
        deadline = time.monotonic() + timeout
        self._until(lambda: not any(ln.startswith("+CLCC:") for ln in self.cmd("AT+CLCC", check=False)[1]),
                    deadline, "reference modem still holds a call after ATH")

    def _quiet(self, seconds):
        with self._cond:
            while time.monotonic() - self._last_rx < seconds:
                self._cond.wait(seconds)

    def _until(self, check, deadline, what):
        while not check():
            if time.monotonic() > deadline:
                raise RefModemError(what)
            with self._cond:
                self._cond.wait(0.2)  # poll the module at 5 Hz, no faster

    def close(self):
        if self.ser is not None and self._reader.is_alive():
            try:
                self.end_calls(timeout=5)  # the next session's scenarios start with no call up
            except (RefModemError, OSError, serial.SerialException):
                pass
        self._closing = True
        for t in self._timers:
            t.cancel()
        self._jobs.put(None)
        if self.ser is not None:
            self._reader.join(2)
            self._worker.join(2)
            self.ser.close()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ commands
    def cmd(self, command, timeout=5.0, expect=None, check=True):
        """Send one command; return (final, info_lines). check: raise unless OK."""
        with self._cmd_lock:
            p = {"expect": expect, "lines": [], "final": None, "done": threading.Event(),
                 "command": command}
            self._pending = p
            try:
                self._write(command.encode() + b"\r")
                if not p["done"].wait(timeout):
                    raise RefModemError(f"{command}: no answer in {timeout}s")
            finally:
                self._pending = None
        if check and p["final"] != "OK":
            raise RefModemError(f"{command} -> {p['final']}")
        return p["final"], p["lines"]

    def registered(self):
        _, lines = self.cmd("AT+CREG?", check=False, expect="+CREG")
        m = re.search(r"\+CREG:\s*\d,(\d)", " ".join(lines))
        return bool(m and m.group(1) in ("1", "5"))

    def signal(self):
        _, lines = self.cmd("AT+CSQ", expect="+CSQ")
        m = re.search(r"\+CSQ:\s*(\d+)", " ".join(lines))
        return int(m.group(1)) if m else None

    def send_sms(self, number, text, timeout=60.0):
        """AT+CMGS in text mode; returns the message reference. The event is recorded."""
        with self._cmd_lock:
            p = {"expect": "+CMGS", "lines": [], "final": None, "done": threading.Event(),
                 "command": "AT+CMGS"}
            self._pending = p
            self._prompt.clear()
            try:
                self._write(b'AT+CMGS="%s"\r' % number.encode())
                if not self._prompt.wait(10):
                    self._write(b"\x1b")
                    raise RefModemError("AT+CMGS: no '> ' prompt" +
                                        (f" ({p['final']})" if p["final"] else ""))
                self._write(text.encode("latin-1", "replace") + b"\x1a")
                if not p["done"].wait(timeout):
                    raise RefModemError("AT+CMGS: no answer")
            finally:
                self._pending = None
        ok = p["final"] == "OK"
        self._record("sms", delivered=ok, text=text, error=None if ok else p["final"],
                     **{"from": self.number, "to": number})
        if not ok:
            raise RefModemError(f"AT+CMGS -> {p['final']}")
        m = re.search(r"\+CMGS:\s*(\d+)", " ".join(p["lines"]))
        return int(m.group(1)) if m else -1

    def dial(self, number, withhold=False):
        """Voice call to `number` (the device). withhold: #31# hides our caller id."""
        self.call = self._new_call("out", number)
        self._record("call_start", call_id=self.call["id"], **{"from": self.number, "to": number})
        final, _ = self.cmd("ATD%s%s;" % ("#31#" if withhold else "", number), timeout=20, check=False)
        if final != "OK":
            self._finish_call(final)
        return final

    def answer(self):
        return self.cmd("ATA", timeout=20, check=False)[0]

    def hangup(self):
        if self.call is not None:
            self.call["we_hung_up"] = True
        return self.cmd("ATH", timeout=20, check=False)[0]

    def set_incoming(self, policy, answer_after_s=None, hangup_after_s=None, once=False):
        """How calls from the device are treated: answer | reject | ignore."""
        if policy not in ("answer", "reject", "ignore"):
            raise ValueError(policy)
        if once:
            self._once.append(policy)
        else:
            self.incoming = policy
        if answer_after_s is not None:
            self.answer_after_s = answer_after_s
        if hangup_after_s is not None:
            self.hangup_after_s = hangup_after_s

    def gpio(self, pin, level):
        """Set GPIO `pin` of the reference module (SIM800: AT+SGPIO=0,<pin>,1,<level>)."""
        self.cmd("AT+SGPIO=0,%d,1,%d" % (pin, 1 if level else 0))

    # ------------------------------------------------------------------ observing
    def mark(self):
        with self._cond:
            return len(self.events)

    def wait_event(self, predicate, timeout=60.0, after=0):
        return wait_for_item(self._cond, self.events, predicate, timeout, after,
                             "event at the reference modem")

    # ------------------------------------------------------------------ plumbing
    def _write(self, data):
        self.at_log.append((time.monotonic(), "rx", bytes(data)))
        self.ser.write(data)

    def _record(self, kind, **fields):
        ev = {"kind": kind, "t": time.monotonic()}
        ev.update(fields)
        with self._cond:
            self.events.append(ev)
            self._cond.notify_all()
        return ev

    def _read_loop(self):
        while not self._closing:
            try:
                data = self.ser.read(self.ser.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError):
                if self._closing:
                    return
                time.sleep(0.05)  # a USB adapter re-enumerating; try again
                continue
            if not data:
                continue
            self._last_rx = time.monotonic()
            self.at_log.append((self._last_rx, "tx", bytes(data)))
            self._buf += data
            while True:
                i = self._buf.find(b"\n")
                if i < 0:
                    break
                line = bytes(self._buf[:i]).strip(b"\r").decode("latin-1")
                del self._buf[: i + 1]
                if line:
                    self._on_line(line)
            if self._buf.strip(b"\r") == b"> ":
                self._buf.clear()
                self._prompt.set()

    def _on_line(self, line):
        p = self._pending
        if p is not None:
            if p["expect"] and line.startswith(p["expect"]):
                p["lines"].append(line)
                p["text"] = p["expect"] == "+CMGR"
                return
            if p.get("text") and not _final(line):
                p["lines"].append(line)  # the SMS text after the +CMGR header
                return
        if line.startswith(URC_PREFIXES) and not (p and p["command"].startswith(("AT+CPIN", "AT+CREG"))
                                                   and line.startswith(("+CPIN", "+CREG"))):
            self._jobs.put(("urc", line))
            return
        if _final(line):
            if p is not None:
                p["final"] = line
                p["done"].set()
                if p["command"] == "AT+CMGS":
                    self._prompt.set()  # refused before the prompt: stop waiting for it
            elif line in CALL_CODES:
                self._jobs.put(("urc", line))
            return
        if p is not None:
            p["lines"].append(line)
        else:
            self._jobs.put(("urc", line))

    def _later(self, seconds, fn, *args):
        t = threading.Timer(seconds, lambda: self._jobs.put(("job", fn, args)))
        t.daemon = True
        self._timers.append(t)
        t.start()

    def _work_loop(self):
        while True:
            job = self._jobs.get()
            if job is None or self._closing:
                return
            try:
                if job[0] == "urc":
                    self._urc(job[1])
                else:
                    job[1](*job[2])
            except RefModemError as e:
                self._record("error", text=str(e))

    def _urc(self, line):
        if line.startswith("+CMTI:"):
            m = _CMTI.match(line)
            if m:
                self._read_sms(int(m.group(1)))
        elif line.startswith("+CLCC:"):
            m = _CLCC.match(line)
            if m:
                self._clcc(int(m.group(2)), int(m.group(3)), m.group(6) or "")
        elif line.startswith("+CLIP:"):
            m = _CLIP.match(line)
            if self.call is None:
                self._incoming(m.group(1) if m else "")
            elif m and self.call["dir"] == "in" and not self.call["peer"]:
                self.call["peer"] = m.group(1)
        elif line in CALL_CODES:
            if self.call is not None:
                self.call["code"] = line
                if self.call.get("ending"):
                    self._finish_call(line)
        elif line != "RING":
            self._record("urc", text=line)

    def _read_sms(self, index):
        final, lines = self.cmd("AT+CMGR=%d" % index, timeout=10, expect="+CMGR", check=False)
        if final == "OK" and lines:
            m = _CMGR.match(lines[0])
            sender = m.group(2) if m else ""
            self._record("sms", delivered=True, text="\n".join(lines[1:]), index=index,
                         **{"from": sender, "to": self.number})
        self.cmd("AT+CMGD=%d" % index, timeout=10, check=False)

    def _new_call(self, direction, peer):
        self._ids += 1
        return {"id": self._ids, "dir": direction, "peer": peer, "t_start": time.monotonic(),
                "t_connect": None, "code": None, "we_hung_up": False, "policy": None}

    def _ends(self, call):
        if call["dir"] == "in":
            return {"from": call["peer"], "to": self.number}
        return {"from": self.number, "to": call["peer"]}

    def _incoming(self, number):
        self.call = call = self._new_call("in", number)
        policy = self._once.pop(0) if self._once else self.incoming
        call["policy"] = policy
        self._record("call_start", call_id=call["id"], **self._ends(call))
        self._record("ringing", call_id=call["id"], **self._ends(call))
        if policy == "answer":
            self._later(self.answer_after_s, self._answer_if, call)
        elif policy == "reject":
            self._later(self.reject_after_s, self._reject_if, call)

    def _answer_if(self, call):
        if self.call is call and call["t_connect"] is None:
            self.answer()

    def _reject_if(self, call):
        if self.call is call and call["t_connect"] is None:
            call["we_hung_up"] = True
            self.cmd("ATH", timeout=20, check=False)

    def _hangup_if(self, call):
        if self.call is call:
            self.hangup()

    def _clcc(self, direction, stat, number):
        call = self.call
        if stat == 4:
            if call is None:
                self._incoming(number)
            elif not call["peer"]:
                call["peer"] = number
        elif call is None:
            return
        elif stat == 3 and call["dir"] == "out":
            self._record("ringing", call_id=call["id"], **self._ends(call))
        elif stat == 0 and call["t_connect"] is None:
            call["t_connect"] = time.monotonic()
            self._record("call_connected", call_id=call["id"], **self._ends(call))
            if self.hangup_after_s is not None and call["dir"] == "in":
                self._later(self.hangup_after_s, self._hangup_if, call)
        elif stat == 6:
            call["ending"] = True
            if call["code"] or call["we_hung_up"]:
                self._finish_call(call["code"])
            else:
                self._later(1.0, self._finish_call_if, call)  # the result code follows

    def _finish_call_if(self, call):
        if self.call is call:
            self._finish_call(call["code"])

    def _finish_call(self, code):
        call, self.call = self.call, None
        if call is None:
            return
        now = time.monotonic()
        answered = call["t_connect"] is not None
        if answered:
            result = "answered"
        elif call["we_hung_up"]:
            result = "rejected" if call["dir"] == "in" else "no_answer"
        else:
            result = {"BUSY": "busy", "NO ANSWER": "no_answer", "NO CARRIER":
                      "unreachable" if call["dir"] == "out" else "no_answer"}.get(code, "ended")
        ended_by = self.number if call["we_hung_up"] else "remote"
        ends = self._ends(call)
        self._record("call_end", call_id=call["id"], result=result, ended_by=ended_by, **ends)
        self._record("call", call_id=call["id"], answered=answered, result=result,
                     duration_s=round(now - call["t_connect"], 3) if answered else 0.0,
                     ended_by=ended_by, code=code, t_start=call["t_start"], **ends)


def _final(line):
    return line in FINALS or line.startswith(("+CME ERROR", "+CMS ERROR"))
