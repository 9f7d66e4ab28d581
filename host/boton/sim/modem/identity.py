"""Identity and settings command group: V.25ter basics (E, I, Q, V, X, Z, &F, &W, S0),
identity (CGMI, CGMM, CGMR, CGSN, CCID, CIMI, CNUM), the SIM (CPIN and its start-up) and
AT+CMEE, AT+IPR, AT+CIURC."""
from .at import AtError, _basic_int, _int, _str


class IdentityGroup:
    """V.25ter settings, identity and the SIM.

    A mixin: the family class holds the state (__init__, _reset_runtime) and the
    timings these methods read."""

    @property
    def sim_state(self):
        return self._sim

    def _sim_init(self):
        """The SIM answers (boot, AT+CFUN=1): ready, locked or absent."""
        if not self.sim_present:
            self._sim = "absent"
            self._urc("+CPIN: NOT INSERTED")
        elif self.sim_pin is not None:
            self._sim = "pin" if self._pin_tries else "puk"
            self._sim_locked_at = self.sched.now()
            self._urc("+CPIN: SIM PIN" if self._sim == "pin" else "+CPIN: SIM PUK")
            # Capture L2: searching for a while, then "not searching" without a SIM.
            self._later(self.T_PIN_GIVEUP, self._reg_update)
        else:
            return self._sim_ready()
        self._reg_update()

    def _sim_ready(self):
        self._sim = "ready"
        self._urc("+CPIN: READY")
        self._later(self.T_CALL_READY, self._set_call_ready)
        self._later(self.T_SMS_READY, self._set_sms_ready)
        self._reg_update()

    def _set_call_ready(self):
        if self._sim == "ready":
            self._call_ready = True
            if self.ciurc:
                self._urc(self.URC_CALL_READY)

    def _set_sms_ready(self):
        if self._sim == "ready":
            self._sms_ready = True
            self._urc(self.URC_SMS_READY)
            self.network.sms_ready(self.number)  # the SMSC may hold some for it

    def _need_sim(self):
        """Commands that need the SIM: the error says why it is not there."""
        codes = {"absent": 10, "pin": 11, "puk": 12, "init": self.CME_SIM_STARTING,
                 "off": self.CME_SIM_STARTING if self.cfun == 1 else 3}
        if self._sim != "ready":
            raise self._cme(codes[self._sim])

    def _b_e(self, cmd):
        self.echo = bool(_basic_int(cmd, 0, (0, 1)))

    def _b_i(self, cmd):
        return [f"{self.model} {self.revision}"]

    def _b_q(self, cmd):
        _basic_int(cmd, 0, (0,))  # Q1 (quiet) is not simulated

    def _b_v(self, cmd):
        self.verbose = bool(_basic_int(cmd, 1, (0, 1)))

    def _b_x(self, cmd):
        _basic_int(cmd, 4, range(5))

    def _b_z(self, cmd):
        self._load_profile(self._profile)

    def _b_amp_f(self, cmd):
        self._load_profile(self.FACTORY)

    def _b_amp_w(self, cmd):
        self._profile = {"echo": self.echo, "cmee": self.cmee, "verbose": self.verbose,
                         "s0": self.s0, "clip": self.clip, "colp": self.colp,
                         "cmic": tuple(self.cmic), "chfa": self.chfa, "clts": self.clts, "netlight": self.netlight}
        self._took(0.1)

    def _b_s(self, cmd):
        reg, value = cmd.args
        if reg != "0":
            if cmd.kind == "read":
                return ["0"]
            return None  # other S-registers: accepted, not simulated
        if cmd.kind == "read":
            return [f"{self.s0:03d}"]
        self.s0 = _int(value, range(256))

    def _load_profile(self, profile):
        self.echo, self.cmee, self.verbose = profile["echo"], profile["cmee"], profile["verbose"]
        self.s0, self.clip, self.colp = profile["s0"], profile["clip"], profile["colp"]
        self.cmic = list(profile["cmic"])
        self.chfa = profile["chfa"]
        self.clts = profile["clts"]
        self.netlight = profile["netlight"]

    def _x_cgmi(self, cmd):
        return ["SIMCOM_Ltd"]


    def _x_cgmm(self, cmd):
        return [self.gmm]


    def _x_cgmr(self, cmd):
        return [self.gmr]


    def _x_cgsn(self, cmd):
        return [self.imei]


    def _x_ccid(self, cmd):
        if self._sim in ("absent", "off"):
            raise AtError("ERROR")
        self._took(0.05)
        return [self.iccid]

    def _x_cimi(self, cmd):
        self._need_sim()
        return [self.imsi]

    def _x_cnum(self, cmd):
        self._need_sim()
        return []  # most prepaid SIMs do not store their own number

    def _x_cmee(self, cmd):
        return self._setting(cmd, "cmee", range(3), "+CMEE")

    def _x_cpin(self, cmd):
        if cmd.kind == "test":
            return []
        if cmd.kind == "read":
            if self._sim == "ready":
                return ["+CPIN: READY"]
            if self._sim in ("pin", "puk"):
                return [f"+CPIN: SIM {self._sim.upper()}"]
            self._need_sim()
        return self._enter_pin(cmd.args)

    def _enter_pin(self, args):
        if self._sim == "ready":
            raise self._cme(3)  # no password is pending
        if self._sim not in ("pin", "puk"):
            self._need_sim()    # absent, initialising or switched off: say which
        self._took(self.T_PIN_CHECK)
        if self._sim == "pin" and len(args) == 1:
            if _str(args[0]) != self.sim_pin:
                self._pin_tries -= 1
                if self._pin_tries == 0:
                    self._sim = "puk"
                raise self._cme(16)
        elif self._sim == "puk" and len(args) == 2:
            if _str(args[0]) != self.sim_puk:
                raise self._cme(16)
            self.sim_pin = _str(args[1])
        else:
            raise AtError("ERROR")  # wrong number of arguments for what the SIM wants
        self._pin_tries = 3
        self._sim = "init"
        self._later(self.T_PIN_CHECK + 0.2, self._sim_ready)  # L1: +CPIN: READY after the OK

    def _x_ipr(self, cmd):
        if cmd.kind == "read":
            return [f"+IPR: {self.baud}"]
        self.baud = _int(cmd.args[0], self.BAUD_RATES)

    def _x_ciurc(self, cmd):
        return self._setting(cmd, "ciurc", (0, 1), "+CIURC")


HANDLERS = {
    "E": "_b_e",
    "I": "_b_i",
    "Q": "_b_q",
    "V": "_b_v",
    "X": "_b_x",
    "Z": "_b_z",
    "&F": "_b_amp_f",
    "&W": "_b_amp_w",
    "S": "_b_s",
    "+CGMI": "_x_cgmi",
    "+GMI": "_x_cgmi",
    "+CGMM": "_x_cgmm",
    "+GMM": "_x_cgmm",
    "+CGMR": "_x_cgmr",
    "+GMR": "_x_cgmr",
    "+CGSN": "_x_cgsn",
    "+GSN": "_x_cgsn",
    "+CCID": "_x_ccid",
    "+CIMI": "_x_cimi",
    "+CNUM": "_x_cnum",
    "+CMEE": "_x_cmee",
    "+CPIN": "_x_cpin",
    "+IPR": "_x_ipr",
    "+CIURC": "_x_ciurc",
}
