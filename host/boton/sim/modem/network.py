"""Network command group: registration (AT+CREG and its URCs), signal (AT+CSQ), operator
(AT+COPS), serving cell (AT+CENG) and the module's clock (AT+CLTS, AT+CCLK, NITZ)."""
import re
from datetime import datetime, timedelta

from .at import _int, _str


class NetworkGroup:
    """Registration, signal, operator, serving cell and clock.

    A mixin: the family class holds the state (__init__, _reset_runtime) and the
    timings these methods read."""

    @property
    def registered(self):
        return self._reg_stat in self.REGISTERED_STATS

    @property
    def reachable(self):
        """The network can page this module (calls and SMS reach it)."""
        return self.powered and self.registered

    @property
    def creg_stat(self):
        return self._reg_stat

    def _reg_target(self):
        if not self.powered or self.cfun != 1:
            return 0
        if self._sim in ("pin", "puk"):
            locked_for = self.sched.now() - (self._sim_locked_at or 0)
            return 2 if locked_for < self.T_PIN_GIVEUP * self.sched.time_scale else 0
        if self._sim != "ready":
            return 0
        if self._denied:
            return 3
        if self._no_network or not self.network.coverage:
            return 2
        return 5 if self.roaming else 1

    def _reg_update(self):
        """Move towards the registration the conditions allow; registering takes a while."""
        target = self._reg_target()
        if target in self.REGISTERED_STATS:
            if self.registered:
                self._set_reg(target)
            elif self._reg_timer is None:
                self._set_reg(2)
                self._reg_timer = self._later(self.network.register_s, self._reg_commit)
            return
        self.sched.cancel(self._reg_timer)
        self._reg_timer = None
        self._set_reg(target)

    def _reg_commit(self):
        self._reg_timer = None
        if self._reg_target() in self.REGISTERED_STATS:
            self._set_reg(self._reg_target())
        else:
            self._reg_update()

    def _set_reg(self, stat):
        if stat == self._reg_stat:
            return
        was_registered = self.registered
        self._reg_stat = stat
        if self.creg_n == 1:
            self._urc(f"+CREG: {stat}")
        elif self.creg_n == 2:
            self._urc(f"+CREG: {stat}" + self._creg_location())
        if was_registered and not self.registered:
            self.network.modem_unreachable(self.number)  # drops our calls: NO CARRIER
        if not was_registered and self.registered:
            self._network_time()
            self.network.sms_ready(self.number)  # "MS present": held SMS come now

    def _creg_location(self):
        return f',"{self.cell["lac"]:04X}","{self.cell["cellid"]:04X}"' if self.registered else ""

    def net_conditions_changed(self):
        """The network's coverage or signal changed."""
        if self.powered:
            self._reg_update()
            if self._call is not None and not self.camped:
                # a call with no registration (an emergency call in limited service) has
                # no registration to lose: it goes with the cell
                self.network.modem_unreachable(self.number)

    def _rxl(self):
        rssi = self._rssi()
        return 0 if rssi == 99 else max(0, min(63, 2 * rssi - 3))

    def _ceng_lines(self):
        c, mcc, mnc = self.cell, self.network.mcc, self.network.mnc
        mode, ncell = self.ceng
        if mode == 3:
            lines = [f'+CENG: 0,{mcc},{mnc},{c["lac"]:04x},{c["cellid"]:04x},{c["bsic"]},{self._rxl()}']
            for i, (_, cid, bsic) in enumerate(c["neighbours"], 1):
                rxl = max(0, self._rxl() - 8 * i)  # neighbours: weaker than the serving cell
                lines.append(f'+CENG: {i},{mcc},{mnc},{c["lac"]:04x},{cid:04x},{bsic},{rxl}')
            return lines
        lines = [f'+CENG: 0,"{c["bcch"]:04d},{self._rxl():02d},00,{mcc},{mnc},{c["bsic"]:02d},'
                 f'{c["cellid"]:04x},00,05,{c["lac"]:04x},255"']
        for i, (bcch, cid, bsic) in enumerate(c["neighbours"], 1):
            cellid = f"{cid:04x}," if ncell else ""
            lines.append(f'+CENG: {i},"{bcch:04d},{max(0, self._rxl() - 8 * i):02d},{bsic:02d},'
                         f'{cellid}{mcc},{mnc},{c["lac"]:04x}"')
        return lines

    def _rssi(self):
        if not self.powered or self.cfun != 1 or self._no_network or not self.network.coverage:
            return 99
        return self.network.signal_level if self.rssi_override is None else self.rssi_override

    def _x_csq(self, cmd):
        if cmd.kind == "test":
            return ["+CSQ: (0-31,99),(0-7,99)"]
        rssi = self._rssi()
        return [f"+CSQ: {rssi},{99 if rssi == 99 else self.ber}"]

    def _x_creg(self, cmd):
        if cmd.kind == "read":
            loc = self._creg_location() if self.creg_n == 2 else ""
            return [f"+CREG: {self.creg_n},{self._reg_stat}{loc}"]
        return self._setting(cmd, "creg_n", range(3), "+CREG")

    def _x_cops(self, cmd):
        if cmd.kind == "read":
            self._took(0.05)
            if self.registered:
                return [f'+COPS: 0,0,"{self.network.operator}"']
            return ["+COPS: 0"]
        if cmd.kind == "test":
            self._took(3.0)
            return [f'+COPS: (2,"{self.network.operator}","{self.network.operator}",'
                    f'"{self.network.mcc}{self.network.mnc}"),,(0-4),(0-2)']
        return None

    def _x_ceng(self, cmd):
        if cmd.kind == "test":
            return ["+CENG: (0-4),(0-1)"]
        if cmd.kind == "read":
            mode, ncell = self.ceng
            out = [f"+CENG: {mode},{ncell}"]
            if mode and self.registered:
                out.append("\r\n".join(self._ceng_lines()))
            return out
        mode = _int(cmd.args[0], range(5))
        ncell = _int(cmd.args[1], (0, 1)) if len(cmd.args) > 1 else self.ceng[1]
        self.ceng = (mode, ncell)

    def _x_clts(self, cmd):
        # Assumption: as on R14.18, CLTS=1 applies at once (to the next registration);
        # firmware that needs a restart for it is why the setting is saved with AT&W.
        return self._setting(cmd, "clts", (0, 1), "+CLTS")

    def _x_cclk(self, cmd):
        if cmd.kind == "test":
            return None
        if cmd.kind == "read":
            local, quarters = self.clock_now()
            return [f'+CCLK: "{local:%y/%m/%d,%H:%M:%S}{quarters:+03d}"']
        m = re.fullmatch(r"(\d\d)/(\d\d)/(\d\d),(\d\d):(\d\d):(\d\d)([+-]\d\d)?",
                         _str(cmd.args[0]) if cmd.args else "")
        if not m:
            raise self._cme(765)
        try:
            local = datetime(2000 + int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]))
        except ValueError:
            raise self._cme(765) from None
        self._clock = (local, int(m[7] or 0), self.sched.now())

    def clock_now(self):
        """(local datetime, zone in quarter hours): what AT+CCLK? answers now."""
        local, quarters, at = self._clock
        return local + timedelta(seconds=int(self.sched.now() - at)), quarters

    def _network_time(self):
        """Registered: a network that sends its time (NITZ) sets the clock when CLTS=1, and
        the module reports the network's name and time (*PSNWID as esp_modem's SIM800 driver
        and TinyGSM know it, then capture L4's lines). They come when the network sends
        them, before the answer a command still owes (L4)."""
        if not (self.clts and getattr(self.network, "gives_time", True)):
            return
        now = self.network.now_datetime()
        quarters = int(now.utcoffset().total_seconds() // 900)
        self._clock = (now.replace(tzinfo=None), quarters, self.sched.now())
        utc = now - now.utcoffset()
        name, net = self.network.operator, self.network
        self._urc(f'*PSNWID: "{net.mcc}","{net.mnc}", "{name}",0, "{name}",0', ahead=True)
        self._urc(f'*PSUTTZ: {utc.year},{utc.month},{utc.day},{utc.hour},{utc.minute},'
                  f'{utc.second},"{quarters:+03d}",0', ahead=True)
        self._urc("DST: 0", ahead=True)


HANDLERS = {
    "+CSQ": "_x_csq",
    "+CREG": "_x_creg",
    "+COPS": "_x_cops",
    "+CENG": "_x_ceng",
    "+CLTS": "_x_clts",
    "+CCLK": "_x_cclk",
}
