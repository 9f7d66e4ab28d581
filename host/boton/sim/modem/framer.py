"""V.25ter framing shared by every modem family: bytes in, command lines parsed and
dispatched through the family's handler table, replies and URCs out in UART order.

What it does (the SIM800 captures in data/at/sim800_transcripts.md are its reference):
echo (the command and its CR, not the host's LF), "\\r\\n<text>\\r\\n" information and
result codes (ATV0: numeric), the "AT" prefix found anywhere in a line (noise before it is
dropped, a line without it ignored), ";"-concatenated commands, backspace editing, lines
queued while a command runs, the "> " SMS text prompt ended by Ctrl-Z (send) or ESC
(cancel), the byte that wakes a sleeping module, +CME/+CMS errors per AT+CMEE, and the
scheduler-driven timing (every byte leaves from a scheduler callback, never from feed()).
"""
import re

from .at import (ASYNC, BS, CR, CTRL_Z, ESC, LF, LINE_MAX, NUMERIC, CME_TEXT, CMS_TEXT,
                 AtError, parse_line, _int, _range_text)


class Framer:
    """The UART side of a modem. A family class supplies HANDLERS (command name -> method
    name), UNKNOWN_EXTENDED_CME (the +CME code an unknown "+X" command gets, None for plain
    ERROR) and the command groups' methods."""

    UNKNOWN_EXTENDED_CME = 100

    def output(self):
        """All bytes sent to the host so far (from at_log)."""
        return b"".join(data for _, d, data in self.at_log if d == "tx")

    def feed(self, data: bytes):
        """Bytes the ESP32 wrote to the module's RXD, in any chunking."""
        data = bytes(data)
        self._log("rx", data)
        if not self.powered or self.silent or not self._uart_ready:
            return  # nobody is listening: the bytes are lost
        for b in data:
            self._rx_byte(b)
        self._flush_echo()

    def _rx_byte(self, b):
        if self.sleeping:
            if self.csclk == 2:
                self._wake()  # Assumption (CSCLK=2): the first byte only wakes it; it is lost
            return            # CSCLK=1 with DTR high: the serial port is off
        if not self._synced:
            if b not in b"Aa":
                return        # autobaud: noise until the host's "AT" sets the rate
            self._synced = True
        self._activity()
        if self._dial_pending:
            return self._abort_dial()
        if self._mode == "sms":
            return self._sms_byte(b)
        if self.echo and b != LF:
            self._echo_buf.append(b)  # SIM800 echoes the CR but not the host's LF (capture E1)
        if b == CR:
            line, self._line = bytes(self._line), bytearray()
            self._pending.append(line)
            self._next_line()
        elif b == BS:
            del self._line[-1:]
        elif b != LF:
            self._line.append(b)
            if len(self._line) > 2 * LINE_MAX:  # endless noise: keep the tail, where "AT" may be
                del self._line[:LINE_MAX]

    def _next_line(self):
        while self._pending and not self._busy and self._mode == "cmd":
            self._run_line(self._pending.popleft())

    def _run_line(self, raw):
        text = raw.decode("latin-1")
        m = re.search(r"[aA][tT]", text)
        if not m:
            return  # no "AT" prefix: V.25ter ignores the line, no reply
        self._busy = True
        self._delay = self.T_RESPONSE
        if len(raw) - m.end() > LINE_MAX:
            return self._finish([], "ERROR")
        try:
            cmds = parse_line(text[m.end():])
        except ValueError:
            return self._finish([], "ERROR")
        self._execute(cmds)

    def _execute(self, cmds):
        infos = []
        self._in_handler = True
        try:
            for cmd in cmds:
                out = self._dispatch(cmd)
                if out is ASYNC:
                    self._flush_infos(infos)
                    return
                infos.extend(out or ())
        except AtError as e:
            return self._finish(infos, e.text)
        finally:
            self._in_handler = False
        self._finish(infos, "OK")

    def _dispatch(self, cmd):
        dips = getattr(self, "_dips", None)   # FaultsGroup.brown_out_on()
        if dips and cmd.name.upper() in dips:
            dips.discard(cmd.name.upper())
            self.brown_out()
            return ASYNC    # restarted: no answer
        refusals = getattr(self, "_refusals", None)   # FaultsGroup.refuse_next()
        if refusals:
            setting = cmd.name.upper() + "=" + ",".join(cmd.args) if cmd.kind == "set" else None
            for key in (cmd.name.upper(), setting):
                if refusals.get(key):
                    refusals[key] -= 1
                    raise AtError("ERROR")
        held = self._held_urcs.pop(cmd.name.upper(), None)   # FaultsGroup.urc_into_reply()
        if held:
            self._reply_head += b"".join(held)
        handler = self._handlers.get(cmd.name)
        if handler is None:
            # An unknown extended command: the family says how it answers (SIM800: an
            # "unknown" ME error, capture L13: AT+CLAC).
            if cmd.name[0] in "+*" and self.UNKNOWN_EXTENDED_CME is not None:
                raise self._cme(self.UNKNOWN_EXTENDED_CME)
            raise AtError("ERROR")
        try:
            return handler(cmd)
        except IndexError:
            raise AtError("ERROR") from None  # an argument the command needs is missing

    def _collect_handlers(self):
        """The family's HANDLERS table (command -> method name), bound to this module."""
        return {name: getattr(self, method) for name, method in self.HANDLERS.items()}

    def _later(self, delay, fn, *args):
        """fn(*args) after `delay` (scaled), unless the module is power-cycled meanwhile."""
        gen = self._gen

        def run():
            if gen == self._gen:
                fn(*args)
        return self.sched.after(delay, run)

    def _flush_echo(self):
        if self._echo_buf:
            data, self._echo_buf = bytes(self._echo_buf), bytearray()
            self._tx(data)

    def _tx(self, data: bytes, delay=0.0, then=None, ahead=False):
        """Send bytes after `delay`, never before anything queued earlier (a UART is FIFO).
        ahead: now, before the answer a running command still owes (it is not on the line
        yet)."""
        self._flush_echo()  # the echo of what was just typed goes out before any reply
        when = max(self.sched.now() + delay * self.sched.time_scale, self._tx_last)
        if ahead:
            when = self.sched.now()
        self._tx_last = max(when, self._tx_last)
        gen = self._gen

        def run():
            if gen != self._gen:
                return
            self._emit_now(data)
            if then:
                then()
        self.sched.at(when, run)

    def _emit_now(self, data):
        if not self.powered or self.silent or not self._synced:
            return
        if self.sleeping and self.csclk == 2:
            self._wake()  # a URC (RING, +CMTI) wakes the module up
        self._log("tx", data)
        self._activity()
        self.emit(data)

    def _log(self, direction, data):
        self.at_log.append((self.sched.now(), direction, data))
        if len(self.at_log) > self.AT_LOG_MAX:
            del self.at_log[: self.AT_LOG_MAX // 2]

    def _info_bytes(self, text):
        garbled = getattr(self, "_garbled", None)   # FaultsGroup.garble_lines()
        if garbled:
            for prefix, left in garbled.items():
                if left and text.startswith(prefix):
                    garbled[prefix] = left - 1
                    text = text[:-1] + "?"
                    break
        return (f"\r\n{text}\r\n" if self.verbose else f"{text}\r\n").encode("latin-1")

    def _result_bytes(self, text):
        if not self.verbose and text in NUMERIC:
            return f"{NUMERIC[text]}\r".encode()
        return self._info_bytes(text)

    def _urc(self, text, force=False, result=False, ahead=False):
        """An unsolicited line. URCs raised while a command runs come after its result;
        `ahead` ones (the network's, sent when it pleases) before an answer still owed."""
        lost = getattr(self, "_lost_urcs", None)   # FaultsGroup.lose_urcs()
        if lost:
            for prefix, left in lost.items():
                if left and text.startswith(prefix):
                    lost[prefix] = left - 1
                    return  # garbled on the line, or sent while the ESP32's UART was deaf
        data = self._result_bytes(text) if result else self._info_bytes(text)
        into = getattr(self, "_into_reply", None)   # FaultsGroup.urc_into_reply()
        if into:
            for prefix, spec in into.items():
                if spec[1] and text.startswith(prefix):
                    spec[1] -= 1
                    self._held_urcs.setdefault(spec[0], []).append(data)
                    return
        if self._in_handler and not force:
            self._deferred.append(data)
        else:
            self._tx(data, ahead=ahead and self._busy)

    def _flush_infos(self, infos):
        data = self._reply_head + b"".join(self._info_bytes(i) for i in infos)
        data += b"".join(self._deferred)
        self._deferred, self._reply_head = [], b""
        if data:
            self._tx(data, self._delay)

    def _finish(self, infos, final, delay=None):
        """Send the information lines and the final result code, then take the next line."""
        data = self._reply_head + b"".join(self._info_bytes(i) for i in infos)
        data += self._result_bytes(final) + b"".join(self._deferred)
        self._deferred, self._reply_head = [], b""
        self._tx(data, self._delay if delay is None else delay, then=self._command_done)

    def _command_done(self):
        self._busy = False
        self._next_line()

    def _took(self, seconds):
        self._delay = max(self._delay, seconds)

    def _cme(self, code):
        return AtError(self._err_text("+CME ERROR", code, CME_TEXT))

    def _cms(self, code):
        return AtError(self._err_text("+CMS ERROR", code, CMS_TEXT))

    def _err_text(self, prefix, code, table):
        if self.cmee == 0:
            return "ERROR"
        if self.cmee == 2 and code in table:
            return f"{prefix}: {table[code]}"
        return f"{prefix}: {code}"

    def _sms_byte(self, b):
        if b == CTRL_Z:
            self._mode = "cmd"
            return self._sms_send()
        if b == ESC:
            self._mode = "cmd"
            return self._finish([], "OK", delay=self.T_RESPONSE)  # ESC: quit without sending
        if b == CR:
            self._draft.append(LF)
            self._tx(b"\r\n> ")  # each new text line gets a new prompt
            return
        if b == LF and self._draft[-1:] in (b"", bytes([LF])):
            return  # the LF of the command's CR LF, or of a CR LF pair in the text
        if b == BS and self.cscs != "GSM":  # in the GSM set, 0x08 is a letter
            del self._draft[-1:]
        else:
            self._draft.append(b)
        if self.echo:
            self._echo_buf.append(b)

    def _flush_prompt(self):
        self._tx(b"\r\n> ", self.T_RESPONSE)  # manual / capture D3: no line end after it

    def _setting(self, cmd, attr, allowed, name):
        """The common shape: AT+X=<n>, AT+X? -> +X: <n>, AT+X=? -> +X: (range)."""
        if cmd.kind == "read":
            return [f"{name}: {getattr(self, attr)}"]
        if cmd.kind == "test":
            return [f"{name}: ({_range_text(allowed)})"]
        if cmd.kind == "exec" or not cmd.args:
            raise AtError("ERROR")
        setattr(self, attr, _int(cmd.args[0], allowed))
        return None
