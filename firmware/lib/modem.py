# SIM800 driver: one reader task routes the modem's bytes through the sans-IO parser;
# final results go to the one command waiting, URCs go to the app as events.
import asyncio
import time

import aterrors
from atparse import ATParser, CALL_END, parse_cmgs

CTRL_Z = b"\x1a"
WAKE_MS = 50  # assumption: the SIM800 takes commands this soon after the wake byte
REPLY_MIN_MS = 25  # the UART and the host are not time-scaled: a reply never comes sooner
ESC = b"\x1b"
PROMPT_MS = 5000   # AT+CMGS's "> " comes this soon, or the send is given up
SEND_MS = 60000    # AT+CMGS's max response time (SIM800 manual; the A76XX's is 40 s)
# Max response times past what callers give most commands (SIM800 AT manual V1.09; the
# A76XX's taken as the same): AT+CMGD=1,3 up to 5 s for one SMS, 25 s for 50; AT+CLIP
# 15 s; AT+CFUN 10 s. Waited for less, the late OK answered whichever command came next.
SLOW = (("AT+CMGD=1,", 25000), ("AT+CLIP", 15000), ("AT+CFUN=", 10000))
# What the driver reports (as a URC name no module sends) when the module echoes commands
# again after ATE0: it restarted by itself, its settings back to their defaults.
RESTARTED = "(restarted)"
UCS2 = 'AT+CSCS="UCS2"'
GSM = 'AT+CSCS="GSM"'    # what AT+CMGS's bytes are in (sms.encode)


class ModemError(Exception):
    """A command the module refused or did not answer, as data: command ("AT+CMGS"),
    kind ("ERROR" "CME" "CMS" "NO CARRIER" "BUSY"... as atparse names finals, or
    "timeout", "aborted", "stale": an earlier command's late answer came instead), code
    (the CME/CMS number, or None) and text (the final's text: the code, a verbose
    message, or why it was aborted)."""

    def __init__(self, command, kind, text=""):
        self.command = command
        self.kind = kind
        self.text = text
        self.code = aterrors.code_of(text)
        super().__init__(("%s -> %s %s" % (command, kind, text)).rstrip())

    def reply(self):
        """What the module said: 'CME 10', 'ERROR', 'timeout'."""
        return ("%s %s" % (self.kind, self.text)).rstrip()

    def log_name(self):
        """For the log (never the command: it may hold her contacts' numbers)."""
        return aterrors.log_name(self.kind, self.code, self.text)


class ModemTimeout(ModemError):
    def __init__(self, command):
        ModemError.__init__(self, command, "timeout")


class Modem:
    def __init__(self, uart, on_urc, scale=1.0):
        self._r = asyncio.StreamReader(uart)
        self._w = asyncio.StreamWriter(uart, {})
        self._p = ATParser()
        self._buf = bytearray(128)
        self._lock = asyncio.Lock()
        self._done = asyncio.Event()
        self._prompt = asyncio.Event()
        self._lines = []
        self._keep = None       # the running command's line filter (cmd's keep)
        self._final = None
        self._prompted = False  # AT+CMGS's "> " came
        self._busy = False
        self.on_urc = on_urc
        self.scale = scale
        self.last_rx_ms = time.ticks_ms()
        self.last_tx_ms = time.ticks_ms()
        self._echo_mark = None  # the parser's echo count when ATE0 last took effect
        # AT+CSCLK=2 is on: the module sleeps after 5 s of UART silence. None: not known
        # (after an ESP32-only reset the module keeps its mode); read_sleep() asks it.
        self.sleepy = None
        self._asleep = False
        self.trace = None  # set to a callable(direction, bytes) for a timeline
        self._gsm_unsure = False  # AT+CSCS may still be UCS2 (read_texts)
        self.mem_errors = 0

    def _ms(self, ms):
        return max(1, int(ms * self.scale))

    def _reply_ms(self, ms):
        return max(REPLY_MIN_MS, self._ms(ms))

    async def reader(self):
        buf = self._buf
        mv = memoryview(buf)
        while True:
            n = await self._r.readinto(buf)
            if not n:
                await asyncio.sleep_ms(10)
                continue
            self.last_rx_ms = time.ticks_ms()
            if self.trace:
                self.trace("<", bytes(mv[:n]))
            try:
                self._p.feed(mv[:n])
            except MemoryError:
                # a long line found no block: lose that line, not the driver (the
                # reader's death would leave every command unanswered)
                self._p.reset_line()
                self.mem_errors += 1
            while True:
                ev = self._p.next_event()
                if ev is None:
                    break
                self._route(ev)

    def _route(self, ev):
        kind = ev[0]
        if kind == "final":
            if self._busy:
                self._final = ev
                self._done.set()
                self._prompt.set()  # send_sms: a refusal comes instead of the prompt
            elif ev[1] in CALL_END:
                self.on_urc(ev[1], "")  # call ended while no command was waiting
        elif kind == "prompt":
            self._prompted = True
            self._prompt.set()
        elif kind == "line":
            if self._busy and (self._keep is None or self._keep(ev[1])):
                self._lines.append(ev[1])
        elif kind == "urc":
            self.on_urc(ev[1], ev[2])

    def abort(self, reason):
        """The module is gone (it announced POWER DOWN): fail the waiting command now
        instead of letting it run into its timeout."""
        if self._busy:
            self._final = ("final", "aborted", reason)
            self._done.set()
            self._prompt.set()

    def busy(self):
        """A command is waiting for its answer (light sleep would lose it)."""
        return self._busy or self._lock.locked()

    async def _write(self, data):
        if self.trace:
            self.trace(">", bytes(data))  # an SMS's text comes as a memoryview of its buffer
        self.last_tx_ms = time.ticks_ms()
        self._w.write(data)
        await self._w.drain()

    async def _wake(self):
        """With AT+CSCLK=2 an idle module sleeps and loses the byte that wakes it: send a
        lone CR (an empty line, ignored if it was awake after all) and give it a moment."""
        # The module's sleep timer counts the host's silence: its own URCs and replies need
        # not keep it awake, so only what we sent says it is still up. 3 s of the module's
        # 5: the two clocks see the same silence a little apart.
        idle = time.ticks_diff(time.ticks_ms(), self.last_tx_ms)
        if self._asleep or (self.sleepy is not False and idle > self._ms(3000)):
            self._asleep = False
            await self._write(b"\r")
            await asyncio.sleep_ms(self._ms(WAKE_MS))  # scaled, or it falls asleep again

    async def cmd(self, command, timeout_ms=2000, expect=None, check=True, keep=None):
        """Send one AT command; return (final_kind, final_text, info_lines). keep(line):
        only the info lines it is true for are kept (a listing of every stored SMS is
        kilobytes of text on a 56 KB heap when only its headers are wanted)."""
        async with self._lock:
            return await self._cmd(command, timeout_ms, expect, check, keep)

    async def _until(self, event, ms):
        # event, or ms (scaled) gone by: the caller looks at what came
        try:
            await asyncio.wait_for_ms(event.wait(), self._reply_ms(ms))
        except asyncio.TimeoutError:
            pass

    async def _cmd(self, command, timeout_ms, expect, check, keep=None):
        for prefix, ms in SLOW:
            if ms > timeout_ms and command.startswith(prefix):
                timeout_ms = ms
        await self._wake()
        self._lines = []
        self._keep = keep
        self._final = None
        self._done.clear()
        self._busy = True
        self._p.expect(expect)
        self._p.set_echo_filter(command)
        try:
            await self._write(command.encode() + b"\r")
            try:
                await asyncio.wait_for_ms(self._done.wait(), self._reply_ms(timeout_ms))
            except asyncio.TimeoutError:
                raise ModemTimeout(command)
        finally:
            self._busy = False
            self._keep = None
            self._p.expect(None)
        _, kind, text = self._final
        if command == "ATE0" and kind == "OK":
            self._echo_mark = self._p.echoes
        elif self._echo_mark is not None and self._p.echoes != self._echo_mark:
            self._echo_mark = None
            self.on_urc(RESTARTED, "")
        lines, self._lines = self._lines, None   # the caller's: not held until the next command
        if check and kind != "OK":
            raise ModemError(command, kind, text)
        return kind, text, lines

    async def read_texts(self, command, timeout_ms, expect, check=True, keep=None,
                         hex_cut=0):
        """AT+CMGR / AT+CMGL with the texts shown in UCS2 hex: in the GSM set a stored
        SMS's body is printed as it is, and a line of it reading "RDY", "OK" or "+CLCC:
        1,0,6,..." from anyone who knows her number would be taken for the module's.
        hex_cut: how many hex digits of each text to keep (0: none; a 160-character SMS
        is 640, and a few of them on a 56 KB heap in her alert found no block).
        One lock hold, so no AT+CMGS goes out in UCS2; the next one puts the GSM set back
        first if this could not (send_sms)."""
        async with self._lock:
            self._gsm_unsure = True
            await self._cmd(UCS2, 2000, None, True)
            p = self._p
            lost = p.dropped + self.mem_errors
            try:
                p.hex_cut = hex_cut
                r = await self._cmd(command, timeout_ms, expect, check, keep)
                if check and p.dropped + self.mem_errors != lost:
                    # a line of it found no heap: what came is not the whole text
                    raise ModemError(command, "lost")
                return r
            finally:
                self._p.hex_cut = None
                await self._gsm_back(False)

    async def _gsm_back(self, check):
        try:
            if (await self._cmd(GSM, 2000, None, check))[0] == "OK":
                self._gsm_unsure = False
        except ModemTimeout:
            if check:
                raise

    async def batch(self, commands, timeout_ms=2000, attempts=1):
        """Several commands back to back, nothing else in between (e.g. audio before ATD);
        the refused ones are tried again up to attempts times in all, within the same
        lock hold (an ATD waiting for the lock goes out only after the last try), the wake
        byte first. Returns the commands that failed."""
        failed = commands
        async with self._lock:
            for _ in range(attempts):
                todo, failed = failed, []
                for c in todo:
                    try:
                        await self._cmd(c, timeout_ms, None, True)
                    except ModemError:
                        failed.append(c)
                if not failed:
                    break
                self._asleep = True  # a refusal may be a module half asleep
        return failed

    def echo_expected(self):
        """The host is about to set the module up (it is fresh from a restart, or may be):
        its echo says nothing until ATE0 has taken effect again."""
        self._echo_mark = None

    async def probe(self, wait_ms=5000):
        """True if the module answers AT within wait_ms. A module that was just powered
        needs ~3 s before its UART listens, so ask repeatedly before deciding it is off
        (pulsing PWRKEY on a running module would switch it off). Every try starts with
        the wake byte: the module may sleep (AT+CSCLK=2 outlives an ESP32 reset)."""
        deadline = time.ticks_add(time.ticks_ms(), self._ms(wait_ms))
        while True:
            self._asleep = True
            try:
                kind, _, _ = await self.cmd("AT", 300, check=False)
                if kind == "OK":
                    return True
            except ModemTimeout:
                pass
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                return False

    async def read_sleep(self):
        """Ask the module its sleep mode (AT+CSCLK?): it keeps it through an ESP32 reset
        and drops it to 0 when it restarts. Sets and returns sleepy (None: no answer)."""
        self.sleepy = None
        try:
            _, _, lines = await self.cmd("AT+CSCLK?", 2000, expect="+CSCLK", check=False)
        except ModemError:
            return None
        for ln in lines:
            if ln.startswith("+CSCLK:"):
                self.sleepy = ln[7:].strip() == "2"
        return self.sleepy

    async def _no_text(self):
        """AT+CMGS got a final result, or nothing, instead of its prompt: leave the module
        out of text entry and raise. An OK is an earlier command's late answer (AT+CMGS says
        OK only after the text), and the prompt follows it: ESC once it is here, its own OK
        waited for. Otherwise a prompt may still come: ESC (ignored in command mode). Left
        in text entry, the module typed every command that followed into an SMS."""
        final = self._final
        if final is not None and final[1] == "aborted":
            raise ModemError("AT+CMGS", "aborted", final[2])
        stale = final is not None and final[1] == "OK"
        if stale and not self._prompted:
            self._prompt.clear()
            await self._until(self._prompt, PROMPT_MS)
        self._final = None
        self._done.clear()
        await self._write(ESC)
        if final is None:
            raise ModemTimeout("AT+CMGS (no > prompt)")
        if stale:
            if self._prompted:
                await self._until(self._done, 2000)
            raise ModemError("AT+CMGS", "stale", "OK")
        raise ModemError("AT+CMGS", final[1], final[2])

    async def send_sms(self, number, text, timeout_ms=SEND_MS):
        """AT+CMGS: wait for the '> ' prompt, send text (bytes in the modem's character
        set, see sms.encode) + Ctrl-Z, wait for +CMGS: <mr>.
        Returns the message reference; raises ModemError (kind "CMS", code) on refusal."""
        async with self._lock:
            if self._gsm_unsure:
                await self._gsm_back(True)  # a read's UCS2 still on: the number would be hex
            await self._wake()
            self._prompt.clear()
            self._prompted = False
            self._lines = []
            self._final = None
            self._done.clear()
            self._busy = True
            self._p.expect("+CMGS")
            cmd = 'AT+CMGS="%s"' % number
            self._p.set_echo_filter(cmd)
            try:
                await self._write(cmd.encode() + b"\r")
                await self._until(self._prompt, PROMPT_MS)  # or a final result
                if self._final is not None or not self._prompted:
                    await self._no_text()
                await self._write(text)  # no text + Ctrl-Z: a copy of it on the heap
                await self._write(CTRL_Z)
                try:
                    await asyncio.wait_for_ms(self._done.wait(), self._ms(timeout_ms))
                except asyncio.TimeoutError:
                    raise ModemTimeout("AT+CMGS")
            finally:
                self._busy = False
                self._p.expect(None)
            _, kind, ftext = self._final
            if kind != "OK":
                raise ModemError("AT+CMGS", kind, ftext)
            for line in self._lines:
                if line.startswith("+CMGS:"):
                    mr = parse_cmgs(line)  # garbled on the line: None, never a raise (the
                    return -1 if mr is None else mr  # SMS went: a dead task resets the board)
            return -1
