"""Calls command group: ATD/ATA/ATH, AT+CHUP, +CLCC, +CLIP, +COLP, MO RING, AT+CEER, RI
while ringing, and the SIM800 audio levels (AT+CMIC, AT+CLVL, AT+CRSL, AT+CHFA)."""
import re

from ..network import CAUSE_TEXT
from .at import ASYNC, CLCC_STATS, AtError, _int, _toa


class CallsGroup:
    """Voice calls, their URCs and RI, and the audio levels.

    A mixin: the family class holds the state (__init__, _reset_runtime) and the
    timings these methods read."""

    @property
    def audio(self):
        return {"mic_gain": self.cmic[self.chfa if self.chfa < 4 else 0],
                "speaker_level": self.clvl, "ringer_level": self.crsl}

    @property
    def call_state(self):
        """None, or "dialing" / "alerting" / "active" / "incoming" (the +CLCC stat)."""
        return CLCC_STATS.get(self._clcc_stat) if self._call is not None else None

    @property
    def in_call(self):
        return self._call is not None

    def net_incoming_call(self, call):
        self._call = call
        self._set_clcc(4)
        self._rings = 0
        self._ring()

    def net_alerting(self, call):
        if call is self._call:
            self._set_clcc(3)
            if self.moring:
                self._urc("MO RING")

    def net_connected(self, call):
        if call is not self._call:
            return
        self._set_clcc(0)
        if self._call_dir() == 0:
            if self.moring:
                self._urc("MO CONNECTED")
            if self._dial_pending:  # AT+COLP=1: ATD ends only now
                self._dial_pending = False
                self._finish([f'+COLP: "{call.callee}",{_toa(call.callee)},"",0,""'], "OK", delay=0)

    def net_released(self, call, code):
        """The network cleared the call; `code` is NO CARRIER / BUSY / NO ANSWER."""
        if call is not self._call:
            return
        self.last_cause = call.cause
        self._clear_call()
        if self._dial_pending:  # ATD (COLP=1) still open: this is its final result
            self._dial_pending = False
            self._finish([], code, delay=0)
        else:
            self._urc(code, result=True)

    def _call_dir(self):
        return 1 if self._call is not None and self._call.callee == self.number else 0

    def _call_peer(self):
        return self._call.caller if self._call_dir() else self._call.callee

    def _set_ri(self, level):
        if level != self.ri:
            self.ri = level
            if self.ri_observer:
                self.ri_observer(level)

    def _ri_pulse(self, seconds=None):
        """RI falls as the URC just queued goes out on the UART, for `seconds` (default
        T_RI_SMS: an SMS URC)."""
        seconds = self.T_RI_SMS if seconds is None else seconds
        gen = self._gen

        def fall():
            if gen == self._gen:
                self._set_ri(0)
                self._later(seconds, lambda: self._set_ri(0 if self._clcc_stat == 4 else 1))
        self.sched.at(self._tx_last, fall)

    def _set_clcc(self, stat):
        if (stat == 4) != (self._clcc_stat == 4):
            self._set_ri(0 if stat == 4 else 1)  # RI stays low while an incoming call rings
        self._clcc_stat = stat
        if self.clcc_urc and self._call is not None:
            self._urc(self._clcc_line())

    def _clcc_line(self):
        peer = self._call_peer()
        # Capture L10: SIM800 appends the alpha field, "" when not in the phonebook.
        return f'+CLCC: 1,{self._call_dir()},{self._clcc_stat},0,0,"{peer}",{_toa(peer)},""'

    def _clear_call(self):
        self._set_clcc(6)
        self._call = None
        self._clcc_stat = None

    ring_levels = ()  # the ringer level at each RING of an incoming call, in order

    def _ring(self):
        if self._call is None or self._clcc_stat != 4:
            return
        self._rings += 1
        # what anyone near the button heard (a speaker on the module's audio pads)
        self.ring_levels = (*self.ring_levels, self.audio["ringer_level"])
        if self.crc:
            self._urc("+CRING: VOICE")  # AT+CRC=1: the extended incoming-call indication
        else:
            self._urc("RING", result=True)
        if self.clip:
            caller = self._call.caller
            self._urc(self._clip_line(caller))
        if self.s0 and self._rings >= self.s0:
            return self._answer()  # ATS0=n: auto-answer after n rings
        self._later(self.T_RING_PERIOD, self._ring)

    def _clip_line(self, caller):
        return f'+CLIP: "{caller}",{_toa(caller)},"",0,"",0'

    def _answer(self):
        self.network.answer(self._call, self.number)

    def _abort_dial(self):
        """Any character during an open ATD (COLP=1) aborts the attempt (V.25ter)."""
        call = self._call
        self._dial_pending = False
        self._clear_call()
        self.network.release(call, self.number)
        self.last_cause = call.cause
        self._finish([], "NO CARRIER", delay=0)

    def _b_a(self, cmd):
        if self._give_up_on_answer and self._call is not None:
            self._give_up_on_answer = False
            self.network.hangup(self._call.caller)  # gone as ATA arrives
        if self._call is None or self._clcc_stat != 4:
            raise AtError("NO CARRIER")
        self._answer()

    def _b_d(self, cmd):
        dial = cmd.args[0]
        voice = dial.endswith(";")
        number = dial.rstrip(";")
        if not number or not re.fullmatch(r"\+?[0-9*#]+", number):
            raise AtError("ERROR")
        if not voice:
            self._took(self.T_NO_NET_DIAL)
            raise AtError("NO CARRIER")  # data calls are not offered: no connection
        if self._call is not None:
            raise self._cme(3)
        emergency = self.emergency_call(number)
        if not emergency:
            self._callable(number, self.registered, AtError("NO CARRIER"))
        return self._place_call(number, emergency)

    def _callable(self, number, served, refusal):
        """What an ordinary call needs (an emergency call needs none of it): the SIM, the
        module ready for calls, and a network that serves it (else `refusal`)."""
        self._need_sim()
        if not self._call_ready:
            raise self._cme(3)
        if not served:
            self.last_cause = self.network.failed_call(self.number, number).cause
            self._took(self.T_NO_NET_DIAL)
            raise refusal

    # 3GPP TS 22.101 10.1.1: a module takes 112 and 911 as emergency numbers always, and
    # these too when no SIM is ready. (Numbers a SIM's EF_ECC adds are not modelled.)
    EMERGENCY_ALWAYS = ("112", "911")
    EMERGENCY_NO_SIM = ("000", "08", "110", "118", "119", "999")

    def emergency_call(self, number):
        """ATD `number` is an emergency call the module places in limited service: it
        needs a cell to camp on, not a registration (a barred or expired SIM: in Mexico
        911 is free and unrestricted, "incluyendo a telefonos sin saldo, con servicio
        restringido", IFT, DOF 2015-12-02), and no SIM where the network takes such calls
        without one (the operator's option, 3GPP TS 22.003 A.1.2 note 2). A SIM800 dials it
        without a SIM as long as it has a signal (SIMCom's SIM900-series notes)."""
        ready = self._sim == "ready"
        if number not in self.EMERGENCY_ALWAYS + (() if ready else self.EMERGENCY_NO_SIM):
            return False
        if not (self.powered and self.cfun == 1 and self.camped):
            return False
        return ready or (self._sim != "off" and self.network.emergency_without_sim)

    @property
    def camped(self):
        """A cell this module could camp on (registered or not)."""
        return self.network.coverage and not self._no_network

    def _place_call(self, number, emergency=False):
        self._call = self.network.place_call(self.number, number, self._next_result, emergency)
        self._next_result = None
        if self.colp:
            # COLP=1: ATD's final result waits for the far end; URCs go out meanwhile.
            self._dial_pending = True
            self._in_handler = False
            self._set_clcc(2)
            return ASYNC
        self._set_clcc(2)  # deferred: after the OK, which comes at once

    def _b_h(self, cmd):
        self._hangup()

    def _hangup(self):
        if self._call is not None:
            call = self._call
            self._clear_call()
            self.network.release(call, self.number)
            self.last_cause = call.cause

    def _x_ddet(self, cmd):
        return None if cmd.kind != "read" else ["+DDET: 0"]

    def _x_vts(self, cmd):
        if cmd.kind == "test":
            return ["+VTS: (0-9,*,#,A,B,C,D),(1-255)"]
        if self._call is None or self._clcc_stat != 0:
            raise self._cme(3)

    def _x_chup(self, cmd):
        self._hangup()

    def _x_clcc(self, cmd):
        if cmd.kind == "set":
            self.clcc_urc = _int(cmd.args[0], (0, 1))
            return None
        if cmd.kind == "read":
            return [f"+CLCC: {self.clcc_urc}"]
        if cmd.kind == "test":
            return []
        return [self._clcc_line()] if self._call is not None else []

    def _x_crc(self, cmd):
        return self._setting(cmd, "crc", (0, 1), "+CRC")

    def _x_cvhu(self, cmd):
        # Stored only: ATH ends a voice call either way here (CVHU=0, the R14.18 default)
        return self._setting(cmd, "cvhu", (0, 1), "+CVHU")

    def _x_clip(self, cmd):
        if cmd.kind == "read":
            return [f"+CLIP: {self.clip},1"]
        return self._setting(cmd, "clip", (0, 1), "+CLIP")

    def _x_colp(self, cmd):
        if cmd.kind == "read":
            return [f"+COLP: {self.colp},1"]
        return self._setting(cmd, "colp", (0, 1), "+COLP")

    def _x_moring(self, cmd):
        return self._setting(cmd, "moring", (0, 1), "+MORING")

    def _x_ceer(self, cmd):
        """Why the last call ended: the firmware tells a hang-up from a drop with it."""
        if cmd.kind == "test":
            return ["+CEER: (0,1)"]
        if cmd.kind == "read":
            return [f"+CEER: {self.ceer_mode}"]
        if cmd.kind == "set":
            self.ceer_mode = _int(cmd.args[0], (0, 1))
            return None
        if self.ceer_mode:
            return [f"+CEER: Cause:{self.last_cause}"]
        return [f"+CEER: {CAUSE_TEXT.get(self.last_cause, 'Normal, unspecified')}"]

    def _x_cmic(self, cmd):
        if cmd.kind == "read":
            return ["+CMIC: " + ",".join(f"({ch},{g})" for ch, g in enumerate(self.cmic))]
        if cmd.kind == "test":
            return ["+CMIC: (0-3),(0-15)"]
        if len(cmd.args) != 2:
            raise AtError("ERROR")
        self.cmic[_int(cmd.args[0], range(4))] = _int(cmd.args[1], range(16))

    def _x_clvl(self, cmd):
        return self._auto_save(self._setting(cmd, "clvl", range(101), "+CLVL"), "clvl")

    def _x_crsl(self, cmd):
        return self._auto_save(self._setting(cmd, "crsl", range(101), "+CRSL"), "crsl")

    def _auto_save(self, reply, attr):
        """An AUTO_SAVE setting: what is set stays through restarts (families' AUTO_SAVED)."""
        self._auto_saved[attr] = getattr(self, attr)
        return reply

    def _x_chfa(self, cmd):
        return self._setting(cmd, "chfa", range(5), "+CHFA")


HANDLERS = {
    "A": "_b_a",
    "D": "_b_d",
    "H": "_b_h",
    "+DDET": "_x_ddet",
    "+VTS": "_x_vts",
    "+CHUP": "_x_chup",
    "+CLCC": "_x_clcc",
    "+CRC": "_x_crc",
    "+CVHU": "_x_cvhu",
    "+CLIP": "_x_clip",
    "+COLP": "_x_colp",
    "+MORING": "_x_moring",
    "+CEER": "_x_ceer",
    "+CMIC": "_x_cmic",
    "+CLVL": "_x_clvl",
    "+CRSL": "_x_crsl",
    "+CHFA": "_x_chfa",
}
