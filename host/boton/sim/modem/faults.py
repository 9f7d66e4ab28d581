"""Fault injection and test environment: what a test or a rehearsal does to the module
from outside (SIM pulled, network lost, call dropped, +CMS errors, a hung module, line
noise, battery voltage)."""


class FaultsGroup:
    """What tests and rehearsals do to the module from outside.

    A mixin: the family class holds the state (__init__, _reset_runtime) and the
    timings these methods read."""

    def sim_missing(self):
        """The SIM falls out now (and stays out): +CPIN: NOT READY, registration lost."""
        self.sim_present = False
        if self.powered and self._sim != "off":
            self._sim = "absent"
            self._call_ready = self._sms_ready = False
            self._urc("+CPIN: NOT READY")
            self._reg_update()

    def sim_reseated(self):
        """The SIM makes contact again (after sim_missing: a knock, a worn holder). The
        module reads it only at its next AT+CFUN=1 or start: it does not look for a SIM by
        itself (the SIM800's SIM detection, AT+CSDT, is off unless set)."""
        self.sim_present = True

    def pin_locked(self, pin):
        """The SIM asks for `pin` from its next initialisation (boot or AT+CFUN=1)."""
        self.sim_present = True
        self.sim_pin = pin
        self._pin_tries = 3

    def no_network(self, lost=True):
        """This module loses (or, with False, regains) the cell: +CREG 2, calls dropped."""
        self._no_network = bool(lost)
        self.net_conditions_changed()

    def registration_denied(self, denied=True):
        self._denied = bool(denied)
        self.net_conditions_changed()

    def signal(self, level, ber=0):
        """CSQ rssi (0-31, 99 unknown) this module reports, over the network's level."""
        self.rssi_override = level
        self.ber = ber

    def drop_call(self):
        """The radio link of the current call fails: NO CARRIER, result "dropped"."""
        self.network.drop(self.number)

    def next_call_result(self, result):
        """How the next outgoing call ends: answer, busy, no_answer, reject, unreachable."""
        if result not in ("answer", "busy", "no_answer", "reject", "rejected", "unreachable"):
            raise ValueError(f"unknown call result {result!r}")
        self._next_result = result

    def cms_error(self, code, count=1):
        """The next `count` SMS sends fail with +CMS ERROR: code (after the network delay)."""
        self._cms_faults.extend([int(code)] * count)

    def refuse_next(self, name, count=1):
        """The next `count` commands `name` ("+CMICGAIN") are answered ERROR, as a module
        that is still busy refuses a setting now and takes it a moment later. A name with
        its setting ('+CSCS="GSM"') refuses only that setting."""
        if self._refusals is None:
            self._refusals = {}
        self._refusals[name.upper()] = self._refusals.get(name.upper(), 0) + int(count)

    _refusals = None  # refuse_next(): command name -> refusals left

    def caller_gives_up_on_answer(self):
        """The caller of the next call this module answers hangs up just as its ATA
        arrives (C4's operator gave up at that moment): ATA gets NO CARRIER."""
        self._give_up_on_answer = True

    _give_up_on_answer = False

    def lose_urcs(self, prefix, count=1):
        """The next `count` unsolicited lines starting with `prefix` ("+CLCC", "NO CARRIER")
        never reach the ESP32: a byte garbled on the line, a UART that was deaf."""
        if self._lost_urcs is None:
            self._lost_urcs = {}
        self._lost_urcs[prefix] = self._lost_urcs.get(prefix, 0) + int(count)

    _lost_urcs = None  # lose_urcs(): prefix -> lines still to lose

    def urc_into_reply(self, prefix, command, count=1):
        """The next `count` unsolicited lines starting with `prefix` ("+CLCC: 1,0,0") come
        out in the middle of the module's next answer to `command` ("+CLCC"), after its
        echo and before its own lines: a URC raised while a command runs, as capture L4
        shows. A driver that counts it as part of the answer misses what it announced."""
        if self._into_reply is None:
            self._into_reply = {}
        self._into_reply[prefix] = [command.upper(), int(count)]

    _into_reply = None  # urc_into_reply(): prefix -> [command, lines still to hold]

    def garble_lines(self, prefix, count=1):
        """The next `count` lines starting with `prefix` ("+CMGS", "+CLCC") reach the ESP32
        with their last character garbled (a bit flipped on the line): "+CMGS: 1?" for
        "+CMGS: 12". Replies and unsolicited lines alike."""
        if self._garbled is None:
            self._garbled = {}
        self._garbled[prefix] = self._garbled.get(prefix, 0) + int(count)

    _garbled = None  # garble_lines(): prefix -> lines still to garble

    def go_silent(self, latched=False):
        """The module hangs: no echo, no replies, no URCs until it is restarted. A latched
        hang ignores the RESET pin too: only a power-off (supply cut, or a PWRKEY press,
        which the module still obeys) clears it."""
        self.silent = True
        self._latched = bool(latched)

    def break_down(self, broken=True):
        """The module is dead for good (burnt by a supply spike, a cracked solder joint):
        no echo, no replies, no URCs, whatever the pins do, until break_down(False) (the
        joint makes contact again): then it behaves as a module that was off."""
        self.broken = bool(broken)
        if self.broken:
            self.silent = True
        else:
            self.power_off()

    broken = False

    def brown_out(self):
        """The supply dips below the module's reset threshold (a weak cell or thin wires
        under a 2 A transmit burst: the SIM800L's best-known failure): it restarts at once,
        with no URC first. Its call drops, every setting is back to its default (echo on),
        and at autobaud it says nothing until the host's next AT (a fixed rate: RDY)."""
        self._restart(1)

    def brown_out_on(self, name):
        """brown_out() the moment the module receives the next command `name` ("+CLIP"),
        before it answers: a restart at a chosen step of the host's set-up."""
        if self._dips is None:
            self._dips = set()
        self._dips.add(name.upper())

    _dips = None  # brown_out_on(): command names that restart the module

    def garbage(self, data: bytes):
        """Line noise on the module's TXD: the ESP32 receives these bytes as they are."""
        def run():
            self._log("tx", bytes(data))
            self.emit(bytes(data))
        self.sched.at(max(self.sched.now(), self._tx_last), run)

    def under_voltage(self, power_down_after_s=5.0):
        """VBAT sags: the warning now, then (HD: < 3.39 V) the module switches itself off."""
        self.battery_mv = 3450
        self._urc("UNDER-VOLTAGE WARNNING", force=True)  # SIMCom's own spelling
        self._later(power_down_after_s, self._voltage_power_down, "UNDER", 3350)

    def over_voltage(self, power_down_after_s=5.0):
        self.battery_mv = 4350
        self._urc("OVER-VOLTAGE WARNNING", force=True)
        self._later(power_down_after_s, self._voltage_power_down, "OVER", 4450)

    def _voltage_power_down(self, which, mv):
        self.battery_mv = mv
        self._urc(f"{which}-VOLTAGE POWER DOWN", force=True)
        self._uart_ready = False
        self._later(0.05, self.power_off)

    def set_battery(self, mv, charging=0):
        """What AT+CBC reports (percent follows the voltage, 3.5 V..4.2 V); the module
        reacts to its supply as its family does (_battery_changed)."""
        was, self.battery_mv = self.battery_mv, int(mv)
        self.charging = charging
        self._battery_changed(was)

    def set_cell(self, lac=None, cellid=None, bcch=None, bsic=None, neighbours=None):
        """Move the module to another serving cell (AT+CENG?, +CREG n=2)."""
        for key, value in (("lac", lac), ("cellid", cellid), ("bcch", bcch), ("bsic", bsic),
                           ("neighbours", neighbours)):
            if value is not None:
                self.cell[key] = value
        if self.powered and self.ceng[0] == 2 and self.registered:
            self._urc(self._ceng_lines()[0])  # mode 2 reports the change unsolicited
        if self.powered and self.creg_n == 2 and self.registered:
            self._urc(f"+CREG: {self._reg_stat}" + self._creg_location())
