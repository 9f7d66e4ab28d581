"""The A7670 family: a simulated SIMCom A7670SA (LTE Cat-1 with GSM fallback, ASR platform)
on the SIM800's framer and command groups, with what differs on the A76XX.

Source: data/at/a76xx.md (research notes on SIMCom's A76XX AT manual V1.09 "M109", hardware
manual V1.06 "HW", the sleep/UART application notes "SLP"/"UART" and LilyGO's repositories).
Each behaviour below carries its grade from there: [V] vendor document, [L] LilyGO, [C]
community only, [?] not confirmed anywhere: an assumption of this simulator.

Vendor-confirmed [V]:
* Power (§2): PWRKEY is active low at the module pin; a ~50 ms low pulse switches it on,
  a >= 2.5 s press (released) switches it off; UART ready ~11.1 s after the pulse; RESET
  low 2-2.5 s restarts it. AT+CPOF -> OK, then off, no URC (M109 p.71). Fixed 115200 baud
  (AT+IPR=0 for auto-baud).
* Sleep (§2): AT+CSCLK=0|1|2 (1 DTR sleep, 2 RX sleep woken by data), not saved.
* RI (§2, SLP §3.2): idle high; SMS -> 120 ms low; an incoming call -> ~5900 ms low,
  ~100 ms high, repeating until answered or gone; other URCs -> 60 ms low only with
  AT+CFGRI=1 (AT+CFGRI? -> +CFGRI: 0,60,120). RING repeats every 6 s (M109 p.49).
* Calls (§3): ATD<n>; -> OK, "VOICE CALL: BEGIN" on connect, "VOICE CALL: END: HHMMSS"
  when a connected call ends; ATH is ignored (plain OK, the call goes on) unless
  AT+CVHU=0 (default 1); AT+CHUP always hangs up (no call: OK); ATA -> OK, VOICE CALL: BEGIN;
  AT+CLCC=1 URCs on every change (not saved); AT+CLIP AUTO_SAVE, AT+CLIP? -> +CLIP: <n>,1.
* Audio (§3): AT+CMICGAIN=0..7 and AT+COUTGAIN=0..7, default 4, AUTO_SAVE; AT+CSDVC=1|3;
  AT+VMUTE (speaker) and AT+CMUT (mic) only during a connected call, back to 0 when the
  calls end. No AT+CLVL/CRSL/CALM/CMIC/CENG/CPOWD/CBATCHK in M109.
* Network (§5): +CREG stat 6/7 (SMS only) and 11 (emergency only); AT+CEREG (tac 2-byte,
  ci 4-byte hex strings); AT+CPSI? (GSM, LTE and NO SERVICE lines); AT+CNMP=2|13|14|38
  AUTO_SAVE, immediate; AT+CNSMOD? (8 LTE, 1 GSM); AT+COPS? with AcT 7/0; AT+CSQ as SIM800.
* SMS (§4): text mode as the SIM800 (CMGF, CSCS, CMGS prompt, +CMGS: <mr>, ESC cancels);
  AT+CMGF (default 0) and AT+CSCS (default "IRA"; IRA, UCS2, GSM) AUTO_SAVE; +CMTI: "SM",<i>;
  the +CMS ERROR codes of §4.
* Battery (§6): AT+CBC -> "+CBC: 3.749V"; AT+CVALARM=<en>,<low 3300-4000>,<high 4001-4300>
  -> UNDER-/OVER-VOLTAGE WARNNING every 10 s while out of range (off by default);
  AT+CPMVT=<en>,<low>,<high> -> "UNDER-VOLTAGE WARNNING POWER DOWN" then off (off by default).

LilyGO / community [L]/[C]:
* Boot URCs (§2): "*ATREADY: 1", "+CPIN: READY", "SMS DONE", "PB DONE" (no RDY, no Call
  Ready/SMS Ready); AT+CPIN? before the SIM is up -> +CME ERROR: 13 [L]. Echo on until ATE0
  [L-inferred]. Calls wait for PB DONE and SMS for SMS DONE, as LilyGO's examples do.
* VoLTE (§3, §7): without a VoLTE SIM/network the module registers "+CREG: 0,6" on LTE
  (SMS only) and cannot call; AT+CNMP=13 (GSM only) restores calls where there is 2G [C].
  The rig's flags: volte= (the SIM and network do VoLTE) and gsm= (the network has 2G).
* VoLTE calls that fail silently (#240 [C]: on a VoLTE SIM registered on LTE, "+CLCC:
  1,0,2,..." then "immediately after" "+CLCC: 1,0,6,..."; calls work on 2G): module firmware
  rules.LTE_CALLS_DROP does it, and the fault lte_calls_drop= does it on any firmware (an
  operator without VoLTE interworking for this SIM, IMS registration lost).
* +CLCC lines without spaces, ending ',""' [C] #240.

Assumptions [?] (chosen here, nowhere confirmed):
* A voice ATD that cannot get voice service (not registered, or registered for SMS only)
  fails with +CME ERROR: 30 ("no network service", per AT+CMEE) after a moment, the form
  seen on an A76XX when unregistered (§7 item 7, [C]), not NO CARRIER.
* A connected call the far end (or the network) ends prints "VOICE CALL: END: HHMMSS" and
  then NO CARRIER; a call that never connected prints only its result code (NO CARRIER,
  BUSY, NO ANSWER); a local AT+CHUP prints OK then "VOICE CALL: END: ...". With AT+CLCC=1
  the stat-6 +CLCC line comes first.
* +CLIP: "<number>",<type>,,,,0 (line spacing unseen, §3). 2G +CLCC lines have the same
  form as LTE ones.
* The ringer: M109 has no ringer level for the A7670 (AT+CRTSWITCH is A7678-only), so the
  ring tone is taken to play through SPK at AT+COUTGAIN: "ringer_level" in `audio` is the
  output gain. Covert means COUTGAIN=0 before the call (VMUTE is refused until it connects).
  `audio` levels are the A7670's own scales (gains 0..7), not the SIM800's 0..100.
* Unknown commands (and the SIM800-only ones above) answer plain ERROR whatever AT+CMEE.
* AT+CPSI? NO SERVICE reads "+CPSI: NO SERVICE,Online" with the radio on and
  "+CPSI: NO SERVICE,Low Power Mode" with CFUN 0/4; LTE values are raw reports (RSRP
  report = dBm + 140, RSSI report = dBm + 110, from the CSQ level; RSRQ 20, RSSNR 10).
* +CEREG stat: 1/5 while on LTE (EPS attach works without VoLTE), 0 on GSM or unregistered.
* AT+CMEE, AT+CVHU, AT+CFGRI, AT+CVALARM, AT+CPMVT are volatile (back to default at boot).
* The clock (AT+CCLK, AT+CLTS, *PSUTTZ) is the SIM800's, but before the network's time
  AT+CCLK? reads "70/01/01,..." (1970, as A76XX/LTE modules answer in public drivers' logs
  and tests) where a SIM800 reads "04/01/01". AT&W saves the SIM800 profile fields that
  exist here (echo, CMEE, CLTS, ...).
* AT+CTZU=<0|1>, "automatic time and time zone update via NITZ", is in M109 §4 as the
  gasagna/A76XX library lists it [C]; here it is the SIM800's AT+CLTS switch under the
  A76XX's name (same flag): off by default, applied from the next registration and kept
  only by AT&W [?].
* AT+CSCLK sleep starts 10 s after its conditions are met (SLP: 10-20 s).
"""
import re
from datetime import datetime

from ....rules import LTE_CALLS_DROP
from ..at import AtError, _int, _toa
from .sim800 import Sim800

# Settings kept in the module's flash as soon as they are set (M109's AUTO_SAVE):
# command -> (attribute, factory value).
AUTO_SAVE = {"+CLIP": ("clip", 0), "+CMGF": ("cmgf", 0), "+CSCS": ("cscs", "IRA"),
             "+CMICGAIN": ("cmicgain", 4), "+COUTGAIN": ("coutgain", 4), "+CNMP": ("cnmp", 2)}
# AT+CNMP: the radio access technologies each mode allows, in order of preference.
CNMP_RATS = {2: ("lte", "gsm"), 13: ("gsm",), 14: (), 38: ("lte",)}  # 14: WCDMA, absent here
A76_BAUD_RATES = (0, 300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400,
                  460800, 921600, 3000000, 3200000, 3686400)

# The SIM800 commands the A76XX does not have (M109 has none of them): they answer ERROR.
SIM800_ONLY = ("+CLVL", "+CRSL", "+CMIC", "+CHFA", "+CENG", "+CPOWD", "+CBATCHK", "+CIURC",
               "+MORING", "+CALM", "+CNETLIGHT")


class A7670(Sim800):
    """One simulated A7670SA on the ESP32's UART, attached to a PhoneNetwork.

    Same wiring, observers and fault API as Sim800 (see there), plus the flags volte=
    (the SIM and the network do VoLTE), gsm= (the network has 2G), lte_calls_drop=
    (every call on LTE ends before it rings, whatever the module firmware) and
    lte_dials_refused= (every dial on LTE refused at once, registered for voice all the same),
    and the faults volte_unavailable(), sms_only(), emergency_only(), lte_calls_drop(),
    lte_dials_refused()."""

    CLOCK_DEFAULT = datetime(1970, 1, 1)  # AT+CCLK? before the network's time (module doc)

    T_UART_READY = 11.1    # HW table 11: PWRKEY -> UART ready (Ton(uart))
    T_SIM_READY = 12.0     # [?] +CPIN: READY a moment after *ATREADY: 1
    T_SMS_READY = 9.0      # [L] SMS DONE / PB DONE about 10 s after *ATREADY
    T_CALL_READY = 9.5
    T_POWER_DOWN = 2.0     # HW table 12: Toff(uart)
    T_NO_NET_DIAL = 0.5
    T_LTE_CALL_DROP = 0.3  # [?] dialing, then disconnected "immediately after" (#240)
    T_RING_PERIOD = 6.0    # M109 p.49
    T_SLEEP_IDLE = 10.0    # SLP: sleeps 10-20 s after its conditions are met
    T_DTR_WAKE = 0.02      # UART §4.4: DTR low >= 20 ms before sending
    T_RI_SMS = 0.12        # SLP §3.2
    T_RI_URC = 0.06
    T_RI_RING_LOW = 5.9    # an incoming call: low ~5900 ms, high ~100 ms, repeating
    T_RI_RING_HIGH = 0.1
    T_VOLTAGE_CHECK = 10.0  # CVALARM warnings repeat every 10 s
    PWRKEY_MIN_S = 0.05    # HW table 11: Ton low pulse typ 50 ms
    PWRKEY_OFF_MIN_S = 2.5  # HW table 12: Toff >= 2.5 s
    PWRKEY_OFF_MAX_S = float("inf")
    RESET_MIN_S = 2.0      # HW §3.2.3: 2-2.5 s

    IMEI_TAC = "86263005"  # [?] any A76XX-looking TAC
    BAUD_RATES = A76_BAUD_RATES
    CSCS_SETS = ("IRA", "UCS2", "GSM")
    REGISTERED_STATS = (1, 5, 6, 7)  # SMS-only still registered (SMS works, voice does not)
    CME_SIM_STARTING = 13
    URC_CALL_READY = "PB DONE"
    URC_SMS_READY = "SMS DONE"
    UNKNOWN_EXTENDED_CME = None
    HANDLERS = {name: method for name, method in Sim800.HANDLERS.items()
                if name not in SIM800_ONLY}

    def __init__(self, scheduler, network, number, emit, imei=None, iccid=None,
                 model="A7670SA", gmm="A7670SA-FASE", revision="A7670M7_V1.11.1",
                 gmr="A011B07A7670M7", baud=115200, pin=None, volte=True, gsm=True,
                 lte_calls_drop=False, lte_dials_refused=False):
        self._nvram = {attr: value for attr, value in AUTO_SAVE.values()}
        self._call_began = None
        self.volte = bool(volte)
        self.gsm = bool(gsm)
        self.lte_calls_drop_on = bool(lte_calls_drop)
        self.lte_dials_refused_on = bool(lte_dials_refused)
        self._sms_only = False
        self._emergency_only = False
        super().__init__(scheduler, network, number, emit, imei=imei, iccid=iccid, model=model,
                         gmm=gmm, revision=revision, gmr=gmr, baud=baud, pin=pin)
        self.cell.update(tac=0x7764, eci=0x06FB_8115, pci=127, band=4, earfcn=2300)

    def _reset_runtime(self):
        super()._reset_runtime()
        for attr, _ in AUTO_SAVE.values():
            setattr(self, attr, self._nvram[attr])
        self.cvhu, self.cereg_n, self.csdvc = 1, 0, 1
        self.vmute = self.cmut = 0
        self.cfgri, self.ri_urc_ms, self.ri_sms_ms = 0, 60, 120
        self.cvalarm = (0, 3300, 4300)
        self.cpmvt = (0, 3300, 4300)
        self._voltage_timer = None
        self._call_began = None
        self._cereg_reported = 0

    def _dispatch(self, cmd):
        out = super()._dispatch(cmd)
        if cmd.name in AUTO_SAVE and cmd.kind == "set":
            attr = AUTO_SAVE[cmd.name][0]
            self._nvram[attr] = getattr(self, attr)
        return out

    # ------------------------------------------------------------------ observers
    @property
    def audio(self):
        speaker = 0 if self.vmute else self.coutgain
        return {"mic_gain": 0 if self.cmut else self.cmicgain, "speaker_level": speaker,
                "ringer_level": self.coutgain}

    @property
    def rat(self):
        """The radio access technology it camps on: "lte", "gsm" or None (no service)."""
        for rat in CNMP_RATS[self.cnmp]:
            if rat == "lte" or self.gsm:
                return rat
        return None

    @property
    def camped(self):
        """A cell of a technology it may use (pinned to GSM where 2G is gone: none); with
        the emergency_only fault, one that takes emergency calls only (+CREG stat 11)."""
        return self.rat is not None and (super().camped or self._emergency_only)

    @property
    def voice_available(self):
        return self._reg_stat in (1, 5)

    # ------------------------------------------------------------------ boot and power
    def _boot_uart_ready(self):
        self._uart_ready = True
        self._urc("*ATREADY: 1")
        if self.cfun == 1:
            self._later(self.T_SIM_READY - self.T_UART_READY, self._sim_init)
        else:
            self._reg_update()

    def _normal_power_down(self):
        self._uart_ready = False  # PWRKEY off: no URC documented, off after Toff(uart)
        self._later(self.T_POWER_DOWN, self.power_off)

    def _x_cpof(self, cmd):
        self._uart_ready = False  # OK, then no more commands: off after Toff(uart)
        self._later(self.T_POWER_DOWN, self.power_off)

    def _x_cbc(self, cmd):
        return [f"+CBC: {self.battery_mv / 1000:.3f}V"]

    def _x_cvalarm(self, cmd):
        return self._voltage_setting(cmd, "cvalarm", "+CVALARM")

    def _x_cpmvt(self, cmd):
        return self._voltage_setting(cmd, "cpmvt", "+CPMVT")

    def _voltage_setting(self, cmd, attr, name):
        if cmd.kind == "read":
            return [f"{name}: " + ",".join(map(str, getattr(self, attr)))]
        if cmd.kind == "test":
            return [f"{name}: (0,1),(3300-4000),(4001-4300)"]
        if cmd.kind != "set":
            raise AtError("ERROR")
        old = getattr(self, attr)
        enable = _int(cmd.args[0], (0, 1))
        low = _int(cmd.args[1], range(3300, 4001)) if len(cmd.args) > 1 else old[1]
        high = _int(cmd.args[2], range(4001, 4301)) if len(cmd.args) > 2 else old[2]
        setattr(self, attr, (enable, low, high))
        self.sched.cancel(self._voltage_timer)
        self._voltage_timer = None
        if self.cvalarm[0] or self.cpmvt[0]:
            self._voltage_timer = self._later(self.T_VOLTAGE_CHECK, self._voltage_check)

    def _voltage_check(self):
        """Every 10 s while CVALARM or CPMVT is on: warn, or switch off, out of range."""
        self._voltage_timer = None
        mv = self.battery_mv
        if self.cpmvt[0] and not self.cpmvt[1] <= mv <= self.cpmvt[2]:
            which = "UNDER" if mv < self.cpmvt[1] else "OVER"
            self._urc(f"{which}-VOLTAGE WARNNING POWER DOWN", force=True)  # SIMCom's spelling
            self._uart_ready = False
            self._later(0.05, self.power_off)
            return
        if self.cvalarm[0] and not self.cvalarm[1] <= mv <= self.cvalarm[2]:
            which = "UNDER" if mv < self.cvalarm[1] else "OVER"
            self._urc(f"{which}-VOLTAGE WARNNING", force=True)
        if self.cvalarm[0] or self.cpmvt[0]:
            self._voltage_timer = self._later(self.T_VOLTAGE_CHECK, self._voltage_check)

    def _battery_changed(self, was):
        pass  # AT+CVALARM / AT+CPMVT look at it every 10 s (_voltage_check)

    def under_voltage(self, power_down_after_s=None):
        """VBAT sags below 3.3 V: the module warns (AT+CVALARM=1) or switches off
        (AT+CPMVT=1) at its next 10 s check; with both off it carries on."""
        self.battery_mv = 3250

    def over_voltage(self, power_down_after_s=None):
        self.battery_mv = 4350

    # ------------------------------------------------------------------ registration
    def _reg_target(self):
        target = super()._reg_target()
        if target in (1, 5, 2) and self._sim == "ready" and self.rat is None:
            return 2  # nothing the CNMP mode allows: searching
        if target not in (1, 5):
            return 11 if self._emergency_only and target in (2, 3) else target
        if self._sms_only or (self.rat == "lte" and not self.volte):
            return 6 if target == 1 else 7
        return target

    def _set_reg(self, stat):
        super()._set_reg(stat)
        now = self._cereg_stat()
        if now != self._cereg_reported:
            self._cereg_reported = now
            if self.cereg_n:
                self._urc(f"+CEREG: {now}" + (self._cereg_location(act=True)
                                               if self.cereg_n == 2 else ""))

    def _cereg_stat(self):
        if self.registered and self.rat == "lte":
            return 5 if self._reg_stat in (5, 7) else 1
        return 0

    def _cereg_location(self, act=False):
        """tac (2-byte) and ci (4-byte) hex strings; the URC adds the AcT (7, E-UTRAN)."""
        if not self._cereg_stat():
            return ""
        return f',"{self.cell["tac"]:04X}","{self.cell["eci"]:08X}"' + (",7" if act else "")

    def _reregister(self):
        """The radio changed technology (AT+CNMP) or its options: register afresh."""
        if not self.powered:
            return
        self.sched.cancel(self._reg_timer)
        self._reg_timer = None
        if self._reg_stat != 0:
            self._set_reg(2)
        self._reg_update()

    def _x_cnmp(self, cmd):
        if cmd.kind == "read":
            return [f"+CNMP: {self.cnmp}"]
        if cmd.kind == "test":
            return ["+CNMP: (2,13,14,38)"]
        if cmd.kind != "set":
            raise AtError("ERROR")
        mode = _int(cmd.args[0], tuple(CNMP_RATS))
        if mode != self.cnmp:
            self.cnmp = mode
            self._reregister()

    def _x_cnsmod(self, cmd):
        if cmd.kind == "read":
            mode = {"lte": 8, "gsm": 1}.get(self.rat, 0) if self.registered else 0
            return [f"+CNSMOD: 0,{mode}"]
        if cmd.kind == "test":
            return ["+CNSMOD: (0,1)"]
        _int(cmd.args[0], (0, 1))  # the URC mode: accepted, not simulated

    def _x_cereg(self, cmd):
        if cmd.kind == "read":
            loc = self._cereg_location() if self.cereg_n == 2 else ""
            return [f"+CEREG: {self.cereg_n},{self._cereg_stat()}{loc}"]
        return self._setting(cmd, "cereg_n", range(3), "+CEREG")

    def _x_cops(self, cmd):
        if cmd.kind == "read" and self.registered:
            self._took(0.05)
            act = 7 if self.rat == "lte" else 0
            return [f'+COPS: 0,0,"{self.network.operator}",{act}']
        return super()._x_cops(cmd)

    def _x_cpsi(self, cmd):
        if cmd.kind == "test":
            return ["+CPSI: (0-255)"]
        if cmd.kind == "set":
            _int(cmd.args[0], range(256))  # periodic report: accepted, not simulated
            return None
        if not self.powered or self.cfun != 1:
            return ["+CPSI: NO SERVICE,Low Power Mode"]
        if not self.registered:
            return ["+CPSI: NO SERVICE,Online"]
        c, net = self.cell, self.network
        plmn = f"{net.mcc}-{net.mnc}"
        rssi_dbm = -113 + 2 * self._rssi()
        if self.rat == "gsm":
            return [f'+CPSI: GSM,Online,{plmn},0x{c["lac"]:04x},{c["cellid"]},{c["bcch"]},'
                    f'{rssi_dbm},0,{self._rxl()}-{self._rxl()}']
        return [f'+CPSI: LTE,Online,{plmn},0x{c["tac"]:04X},{c["eci"]},{c["pci"]},'
                f'EUTRAN-BAND{c["band"]},{c["earfcn"]},5,5,20,{rssi_dbm - 20 + 140},'
                f'{rssi_dbm + 110},10']

    # ------------------------------------------------------------------ faults
    def volte_unavailable(self, unavailable=True):
        """The SIM or the network stops (or starts) doing VoLTE: on LTE, SMS only."""
        self.volte = not unavailable
        self._reregister()

    def sms_only(self, on=True):
        """The network registers the module for SMS only, on any technology."""
        self._sms_only = bool(on)
        self._reregister()

    def lte_calls_drop(self, on=True):
        """Every call on LTE ends before it rings (dialing, then disconnected), whatever the
        module firmware: VoLTE failing silently. Registration is untouched: voice on LTE."""
        self.lte_calls_drop_on = bool(on)

    def lte_dials_refused(self, on=True):
        """Every dial on LTE is refused at once with NO CARRIER, though registered for
        voice: VoLTE gone (no IMS registration, an operator without VoLTE for this SIM).
        ATD's failure results are NO CARRIER, ERROR or +CME (M109 p.47-48); which one a
        real module gives here is not known [?]: NO CARRIER, the commonest."""
        self.lte_dials_refused_on = bool(on)

    def emergency_only(self, on=True):
        """No service but emergency calls (+CREG stat 11) where it would search."""
        self._emergency_only = bool(on)
        self.net_conditions_changed()

    # ------------------------------------------------------------------ calls
    def _b_d(self, cmd):
        dial = cmd.args[0]
        number = dial.rstrip(";")
        if dial.endswith(";") and re.fullmatch(r"\+?[0-9*#]+", number) and self._call is None:
            # an emergency call in limited service (the base class): SIM, registration and
            # VoLTE do not matter. Over LTE it is an IMS emergency call or falls back to 2G
            # [?]: with no 2G to fall back to, LTE's call faults are taken to hit it too
            emergency = self.emergency_call(number)
            if not emergency:
                self._callable(number, self.voice_available, self._cme(30))
            if emergency and self.gsm:
                return super()._b_d(cmd)
            # module firmware that drops every call on LTE, or the fault: +CLCC stat 2
            # (dialing) and "immediately after" stat 6 [C] (rules.LTE_CALLS_DROP, its sources)
            if self.rat == "lte" and (self.lte_calls_drop_on or self.gmr.startswith(LTE_CALLS_DROP)):
                return self._dial_dropped(number)
            if self.rat == "lte" and self.lte_dials_refused_on:
                self.last_cause = self.network.failed_call(self.number, number).cause
                self._took(self.T_NO_NET_DIAL)
                raise AtError("NO CARRIER")
        return super()._b_d(cmd)

    def _dial_dropped(self, number):
        """ATD where LTE calls drop: OK, dialing, then disconnected; the far end
        never rings. [?] the result code after stat 6: NO CARRIER, as a call that never
        connected (module doc)."""
        call = self._call = self.network.failed_call(self.number, number)
        self.last_cause = call.cause
        self._set_clcc(2)

        def drop():
            if self._call is call:
                self._clear_call()
                self._urc("NO CARRIER", result=True)
        self._later(self.T_LTE_CALL_DROP, drop)

    def _b_h(self, cmd):
        if self.cvhu == 0:  # default 1: ATH leaves a voice call alone (M109 p.49)
            self._hangup()

    def _hangup(self):
        connected = self._call_began
        had_call = self._call is not None
        super()._hangup()
        if had_call and connected is not None:
            self._urc(f"VOICE CALL: END: {self._duration(connected)}")

    def _duration(self, since):
        s = int((self.sched.now() - since) / self.sched.time_scale)
        return f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}"

    def net_incoming_call(self, call):
        if not self.voice_available:
            # SMS only: the network cannot page it for voice; the caller hears it refused.
            self._later(0, self.network.release, call, self.number)
            return
        super().net_incoming_call(call)
        self._later(self.T_RI_RING_LOW, self._ri_ring_high, call)

    def _ri_ring_high(self, call):
        if call is self._call and self._clcc_stat == 4:
            self._set_ri(1)
            self._later(self.T_RI_RING_HIGH, self._ri_ring_low, call)

    def _ri_ring_low(self, call):
        if call is self._call and self._clcc_stat == 4:
            self._set_ri(0)
            self._later(self.T_RI_RING_LOW, self._ri_ring_high, call)

    def net_connected(self, call):
        if call is self._call:
            self._call_began = self.sched.now()
            self._urc("VOICE CALL: BEGIN")
        super().net_connected(call)

    def net_released(self, call, code):
        if call is not self._call:
            return
        connected = self._call_began
        self.last_cause = call.cause
        self._clear_call()
        if connected is not None:
            self._urc(f"VOICE CALL: END: {self._duration(connected)}")
        if self._dial_pending:
            self._dial_pending = False
            self._finish([], code, delay=0)
        else:
            self._urc(code, result=True)

    def _clear_call(self):
        super()._clear_call()
        self._call_began = None
        self.vmute = self.cmut = 0  # M109 p.203: both back to 0 when the calls end

    def _clip_line(self, caller):
        return f'+CLIP: "{caller}",{_toa(caller)},,,,0'

    def _urc(self, text, force=False, result=False, ahead=False):
        super()._urc(text, force=force, result=result, ahead=ahead)
        if self.cfgri and not text.startswith(("RING", "+CLIP", "+CMTI", "+CMT:")):
            self._ri_pulse(self.ri_urc_ms / 1000)  # AT+CFGRI=1: every URC pulses RI

    def _ri_pulse(self, seconds=None):
        super()._ri_pulse(self.ri_sms_ms / 1000 if seconds is None else seconds)

    def _x_cfgri(self, cmd):
        if cmd.kind == "read":
            return [f"+CFGRI: {self.cfgri},{self.ri_urc_ms},{self.ri_sms_ms}"]
        if cmd.kind == "test":
            return ["+CFGRI: (0,1),(10-6000),(20-6000)"]
        if cmd.kind != "set":
            raise AtError("ERROR")
        self.cfgri = _int(cmd.args[0], (0, 1))
        if len(cmd.args) > 1:
            self.ri_urc_ms = _int(cmd.args[1], range(10, 6001))
        if len(cmd.args) > 2:
            self.ri_sms_ms = _int(cmd.args[2], range(20, 6001))

    # ------------------------------------------------------------------ audio
    def _x_cmicgain(self, cmd):
        return self._setting(cmd, "cmicgain", range(8), "+CMICGAIN")

    def _x_coutgain(self, cmd):
        return self._setting(cmd, "coutgain", range(8), "+COUTGAIN")

    def _x_csdvc(self, cmd):
        return self._setting(cmd, "csdvc", (1, 3), "+CSDVC")

    def _x_vmute(self, cmd):
        return self._in_call_mute(cmd, "vmute", "+VMUTE")

    def _x_cmut(self, cmd):
        return self._in_call_mute(cmd, "cmut", "+CMUT")

    def _in_call_mute(self, cmd, attr, name):
        if cmd.kind == "set" and (self._call is None or self._clcc_stat != 0):
            raise AtError("ERROR")  # only during a connected call (M109 p.203-204)
        return self._setting(cmd, attr, (0, 1), name)

    # ------------------------------------------------------------------ identity
    def _b_i(self, cmd):
        return [f"Manufacturer: SIMCOM INCORPORATED\r\nModel: {self.gmm}\r\n"
                f"Revision: {self.revision}\r\nIMEI: {self.imei}"]

    def _x_simcomati(self, cmd):
        return [f"Manufacturer: SIMCOM INCORPORATED\r\nModel: {self.gmm}\r\n"
                f"Revision: {self.revision}\r\nQCN: \r\nIMEI: {self.imei}"]

    def _x_cgmi(self, cmd):
        return ["SIMCOM INCORPORATED"]

    def _x_cgmr(self, cmd):
        return [f"+CGMR: {self.gmr}"]

    def _x_ctzu(self, cmd):
        return self._setting(cmd, "clts", (0, 1), "+CTZU")


A7670.HANDLERS.update({
    "+CPOF": "_x_cpof", "+CVALARM": "_x_cvalarm", "+CPMVT": "_x_cpmvt", "+CNMP": "_x_cnmp",
    "+CNSMOD": "_x_cnsmod", "+CEREG": "_x_cereg", "+CPSI": "_x_cpsi", "+CFGRI": "_x_cfgri",
    "+CMICGAIN": "_x_cmicgain", "+COUTGAIN": "_x_coutgain", "+CSDVC": "_x_csdvc",
    "+VMUTE": "_x_vmute", "+CMUT": "_x_cmut", "+SIMCOMATI": "_x_simcomati",
    "+CGMI": "_x_cgmi", "+GMI": "_x_cgmi", "+CGMR": "_x_cgmr", "+GMR": "_x_cgmr",
    "+CTZU": "_x_ctzu",
})
