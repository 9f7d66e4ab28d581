"""A simulated SIMCom SIM800 GSM module, byte for byte on its UART.

The ESP32 firmware writes bytes with `feed()`; everything the module says comes back
through `emit(bytes)`, always from a scheduler callback (never from inside `feed`), after
the delays a real module takes. Delays are in seconds of simulated time and go through the
shared Scheduler, so its `time_scale` scales them and tests run them on a ManualClock.

What it reproduces (see data/at/sim800_transcripts.md for the captures):

* V.25ter framing as the SIM800/SIM808 R14.18 does it: echo on by default, echoing the
  command and its CR but not the host's LF, so a reply to "AT\\r\\n" is "AT\\r\\r\\nOK\\r\\n";
  information and result codes as "\\r\\n<text>\\r\\n"; ATV0 numeric codes.
* Command lines: "AT"/"at" prefix (case-insensitive); bytes before it are discarded (line
  noise); a line without it is ignored silently; concatenation ("ATE0V1", "AT+CMGF=1;+CNMI=...");
  spaces outside quotes ignored; backspace edits; lines sent while a command runs are queued.
* Errors per AT+CMEE: ERROR, "+CME ERROR: <n>" or "+CME ERROR: <text>", same for +CMS.
* Boot: RDY (fixed baud only), +CFUN: 1, +CPIN: READY/SIM PIN/NOT INSERTED, Call Ready,
  SMS Ready, then registration; commands before the SIM is up get "SIM busy"/"operation not
  allowed" as the captures show.
* SMS (text mode), voice calls (MO and MT), audio levels, cell info, sleep, PWRKEY, power
  URCs, and fault injection for tests and rehearsals.
* The module's clock: AT+CLTS (network time stamp on/off, saved by AT&W, as TinyGSM#289
  shows: CLTS=1, AT&W, restart) and AT+CCLK ("yy/MM/dd,hh:mm:ss±zz", local time, zone in
  quarter hours, 3GPP TS 27.007 §8.15). With CLTS=1, registering on a network that sends
  its time (NITZ) sets the clock to the network's and reports it (capture L4):
  ``*PSUTTZ: 2020,12,9,12,57,4,"+12",0`` then ``DST: 0``. Assumption: *PSUTTZ carries UTC
  and the zone apart; +CTZV (AT+CTZR=1) is not simulated. Many networks send no time
  (PhoneNetwork.gives_time = False): the clock then runs from the module's default
  "04/01/01,00:00:00+00" at power-on (TinyGSM#289: "+CCLK: \"04/01/01,00:00:40+12\"").

Modelling choices where the manual is silent are marked "Assumption:" in the comments.
"""
import re
from collections import deque, namedtuple
from datetime import datetime, timedelta

from .network import CAUSE_TEXT

CR, LF, BS, CTRL_Z, ESC = 0x0D, 0x0A, 0x08, 0x1A, 0x1B
ASYNC = object()  # a handler's return value: "I will send the final result code later"
LINE_MAX = 556    # command line buffer, manual §1.4.4

# Numeric forms (ATV0) of the V.25ter result codes.
NUMERIC = {"OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4,
           "NO DIALTONE": 6, "BUSY": 7, "NO ANSWER": 8}

CME_TEXT = {
    0: "phone failure", 1: "no connection to phone", 2: "phone-adaptor link reserved",
    3: "operation not allowed", 4: "operation not supported", 5: "PH-SIM PIN required",
    10: "SIM not inserted", 11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure",
    14: "SIM busy", 15: "SIM wrong", 16: "incorrect password", 17: "SIM PIN2 required",
    18: "SIM PUK2 required", 20: "memory full", 21: "invalid index", 22: "not found",
    23: "memory failure", 24: "text string too long", 25: "invalid characters in text string",
    26: "dial string too long", 27: "invalid characters in dial string", 30: "no network service",
    31: "network timeout", 32: "network not allowed - emergency calls only", 100: "unknown",
    765: "invalid input value",
}
CMS_TEXT = {
    21: "Short message transfer rejected", 27: "Destination out of service",
    38: "Network out of order", 41: "Temporary failure", 42: "Congestion",
    300: "ME failure", 301: "SMS service of ME reserved", 302: "operation not allowed",
    303: "operation not supported", 304: "invalid PDU mode parameter",
    305: "invalid text mode parameter", 310: "SIM not inserted", 311: "SIM PIN required",
    313: "SIM failure", 314: "SIM busy", 316: "SIM PUK required", 320: "memory failure",
    321: "invalid memory index", 322: "memory full", 330: "SMSC address unknown",
    331: "no network service", 332: "network timeout", 500: "unknown error",
    765: "invalid input value",
}

# Settings a profile holds: factory values (AT&F), saved by AT&W, restored by ATZ and at
# boot. Assumption: the audio levels are AT&W-saved, not auto-saved, so firmware that wants
# a silent ringer must set it after every boot (the safe way in any case).
FACTORY = {"echo": True, "cmee": 0, "verbose": True, "s0": 0, "clip": 0, "colp": 0,
           "cmic": (0, 0, 0, 0), "clvl": 80, "crsl": 100, "chfa": 0, "clts": 0}
CLOCK_DEFAULT = datetime(2004, 1, 1)  # AT+CCLK? of a module that never heard the network time

# GSM 03.38 default alphabet, codes 0x00-0x7F (0x1B is the escape to the extension
# table; in text entry it is ESC, which cancels the message, as the manual says).
GSM7 = ("@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
        "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
        " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
        "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
        "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0")
TEXT_CODECS = {"PCCP": "cp437", "PCDN": "cp850", "8859-1": "latin-1"}

BAUD_RATES = (0, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800)
CSCS_SETS = ("IRA", "GSM", "UCS2", "HEX", "PCCP", "PCDN", "8859-1")
CLCC_STATS = {0: "active", 2: "dialing", 3: "alerting", 4: "incoming"}

Cmd = namedtuple("Cmd", "name kind args")  # kind: exec | read | test | set


class AtError(Exception):
    """A command failed; `text` is the final result code to print."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text


def luhn_complete(digits: str) -> str:
    """digits + the Luhn check digit (IMEIs and ICCIDs carry one)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return digits + str((10 - total % 10) % 10)


class Sim800:
    """One simulated SIM800 on the ESP32's UART, attached to a PhoneNetwork.

    Wiring: feed(bytes) from the ESP32; emit(bytes) back (scheduler callbacks only);
    pwrkey(level), reset_pin(level), dtr(level), supply(on) for the pins; power_on() and
    power_off() for the rig.

    Observers: audio, call_state, powered, registered, reachable, sleeping, sim_state,
    creg_stat, sent_sms, sms_attempts, inbox, last_cause, at_log, output(),
    pwrkey_presses; on_event(event) (the rig's event stream) hears each PWRKEY press
    ({"kind": "modem_pwrkey", "powered", "held_s", "result"}) and each change of sleep
    ({"kind": "modem_sleep", "sleeping"}).

    Faults (any time): sim_missing(), pin_locked(pin), no_network(lost=True),
    registration_denied(denied=True), signal(level, ber=0), drop_call(),
    next_call_result(result), cms_error(code, count=1), go_silent(latched=False), garbage(bytes),
    under_voltage(), over_voltage(); and set_battery(), set_cell(), store_sms().
    """

    # --- typical timings, seconds of simulated time (scaled by the scheduler) -----------
    T_RESPONSE = 0.02      # most commands: a few to tens of ms
    T_UART_READY = 2.0     # power on -> RDY; with the 1 s PWRKEY pulse, >= 3 s (HD: Ton(uart))
    T_SIM_READY = 3.0      # power on -> +CPIN: READY (SIM initialised)
    T_CALL_READY = 3.0     # SIM ready -> Call Ready (phonebook loaded)
    T_SMS_READY = 3.5      # SIM ready -> SMS Ready
    T_PIN_CHECK = 0.3      # AT+CPIN=<pin>
    T_CFUN = 1.0           # AT+CFUN=0/1 (radio and SIM switched)
    T_RESTART = 1.0        # AT+CFUN=1,1: OK, a moment of life, then the reset
    T_POWER_DOWN = 1.0     # NORMAL POWER DOWN -> actually off
    T_NO_NET_DIAL = 0.5    # ATD with no registration -> NO CARRIER
    T_SMS_FAIL = 2.0       # AT+CMGS with no network -> +CMS ERROR
    # RING/+CLIP repeat while an incoming call rings. Assumption: 3 s. The note under
    # capture L9 says "about once a second" but the capture itself shows a single RING;
    # handsets alert on a 1 s on / 4 s off cadence. A class attribute: a rig may change it.
    T_RING_PERIOD = 3.0
    T_SLEEP_IDLE = 5.0     # AT+CSCLK=2: sleep after this long without UART traffic
    T_RI_SMS = 0.12        # HD: RI low 120 ms when an SMS URC (+CMTI/+CMT) is sent
    T_DTR_WAKE = 0.05      # AT+CSCLK=1: serial port usable this long after DTR goes low
    T_PIN_GIVEUP = 30.0    # SIM waiting for PIN: +CREG stat 2, then 0 (capture L2)
    PWRKEY_MIN_S = 1.0     # HD: PWRKEY low >= 1 s turns the module on...
    PWRKEY_OFF_MAX_S = 33.0  # ...and a 1-33 s press, once released, turns it off
    RESET_MIN_S = 0.105    # HD: RESET low >= 105 ms restarts the module
    SMS_CAPACITY = 30      # "SM" storage slots
    AT_LOG_MAX = 200_000   # at_log entries kept (a soak test runs for hours)

    def __init__(self, scheduler, network, number, emit, imei=None, iccid=None,
                 model="SIM800", gmm="SIMCOM_SIM800L", revision="R14.18",
                 gmr="Revision:1418B04SIM800L24", baud=115200, pin=None):
        self.sched = scheduler
        self.network = network
        self.number = number
        self.emit = emit
        tail = re.sub(r"\D", "", number)[-6:].rjust(6, "0")
        self.imei = imei or luhn_complete("86995103" + tail)
        self.iccid = iccid or luhn_complete("8952020" + "0" * 6 + tail)
        self.imsi = f"{network.mcc}{network.mnc}" + ("0" * 9 + tail)[-(15 - 3 - len(network.mnc)):]
        self.model, self.gmm, self.revision, self.gmr = model, gmm, revision, gmr
        self.baud = baud           # AT+IPR; 0 = autobaud (no RDY, silent until the host's "AT")
        self.smsc = "+5294100001"

        # SIM card and its storage: both survive power cycles.
        self.sim_present = True
        self.sim_pin = pin
        self.sim_puk = "12345678"
        self.inbox = {}            # index -> {"stat", "from", "text", "scts"}
        self._profile = dict(FACTORY)

        # Observable counters and logs.
        self.at_log = []           # (t, "rx"|"tx", bytes), the newest AT_LOG_MAX kept
        self.sent_sms = 0          # SMS accepted by the network (+CMGS)
        self.sms_attempts = 0      # Ctrl-Z pressed
        # The RI output (HD 4.x): high at rest, low while a call rings, a 120 ms low pulse
        # on an SMS. ri_observer(level), if set, hears every change (the rig wires a GPIO).
        self.ri = 1
        self.ri_observer = None
        self.powered = False
        self.silent = False
        self._latched = False      # go_silent(latched=True): only a power-off clears it
        self.sleeping = False
        # Every PWRKEY press, once released: {"t", "powered" (the module was on when the
        # key went down), "held_s", "result": "on" | "off" | "none"}. A press on a running
        # module is the mistake the firmware must never make.
        self.pwrkey_presses = []
        self.on_event = None       # callable(event dict): the rig's event stream

        # Environment the tests can change.
        self.battery_mv = 4100
        self.charging = 0
        self.rssi_override = None
        self.ber = 0
        self.roaming = False
        self.cell = {"bcch": 21, "bsic": 19, "lac": 0x1A2B, "cellid": 0x2E43,
                     "neighbours": [(27, 0x2E44, 42), (36, 0x2E51, 11)]}  # (bcch, cellid, bsic)
        self._no_network = False
        self._denied = False
        self._next_result = None
        self._cms_faults = deque()
        self._pwrkey_level = 1
        self._pwrkey_timer = None
        self._pwrkey_down_at = None
        self._pwrkey_was_on = False
        self._pwrkey_turned_on = False
        self._reset_down_at = None
        self.supplied = True
        self._clock = (CLOCK_DEFAULT, 0, scheduler.now())  # (local time, zone in quarters, at)
        self._dtr_level = 0
        self._mr = 0
        self._gen = 0
        self._tx_last = 0.0
        self._handlers = self._collect_handlers()
        self._reset_runtime()

    # ================================================================== observers
    @property
    def audio(self):
        return {"mic_gain": self.cmic[self.chfa if self.chfa < 4 else 0],
                "speaker_level": self.clvl, "ringer_level": self.crsl}

    @property
    def call_state(self):
        """None, or "dialing" / "alerting" / "active" / "incoming" (the +CLCC stat)."""
        return CLCC_STATS.get(self._clcc_stat) if self._call is not None else None

    @property
    def registered(self):
        return self._reg_stat in (1, 5)

    @property
    def reachable(self):
        """The network can page this module (calls and SMS reach it)."""
        return self.powered and self.registered

    @property
    def in_call(self):
        return self._call is not None

    @property
    def sim_state(self):
        return self._sim

    @property
    def creg_stat(self):
        return self._reg_stat

    def output(self):
        """All bytes sent to the host so far (from at_log)."""
        return b"".join(data for _, d, data in self.at_log if d == "tx")

    # ================================================================== power
    def power_on(self):
        """Start booting (the rig at start, or a PWRKEY pulse). No-op if already on."""
        if self.powered or not self.supplied:
            return
        self.powered = True
        self._gen += 1
        self._reset_runtime()
        # Assumption: the RTC is not backed up (the T-Call's VRTC has no cell): every boot
        # starts it from the default.
        self._clock = (CLOCK_DEFAULT, 0, self.sched.now())
        self._tx_last = self.sched.now()
        self._later(self.T_UART_READY, self._boot_uart_ready)

    def power_off(self):
        """Power gone at once (battery pulled, supply cut): no URC, everything lost."""
        if not self.powered:
            return
        self.powered = False
        self._latched = False
        self._gen += 1  # cancels every pending reply, URC and timer of this power cycle
        had_network = self._call is not None or self._reg_stat != 0
        self._call = None
        self._reset_runtime()
        self._tx_last = self.sched.now()
        if had_network:
            self.network.modem_unreachable(self.number)

    def pwrkey(self, level):
        """PWRKEY pin level from the ESP32 (HD V1.10 §4.2).

        An off module turns on once the key has been low for 1 s, while it is still held;
        holding it low for ever keeps it on (PWRKEY tied to GND = power on at supply). An
        on module turns off when a 1-33 s press is released: NORMAL POWER DOWN. Pulses
        shorter than 1 s do nothing. Durations are scaled like every other delay, because
        the firmware's own sleeps run at the same time_scale."""
        level = 1 if level else 0
        if level == self._pwrkey_level:
            return
        self._pwrkey_level = level
        self.sched.cancel(self._pwrkey_timer)
        self._pwrkey_timer = None
        if level == 0:
            self._pwrkey_down_at = self.sched.now()
            self._pwrkey_was_on = self.powered
            self._pwrkey_turned_on = False
            # Hardware timing: not bound to a power cycle, so not via _later().
            self._pwrkey_timer = self.sched.after(self.PWRKEY_MIN_S, self._pwrkey_held)
        elif self._pwrkey_down_at is not None:
            held = (self.sched.now() - self._pwrkey_down_at) / self.sched.time_scale
            self._pwrkey_down_at = None
            result = "on" if self._pwrkey_turned_on else "none"
            if self._pwrkey_was_on and self.powered and \
                    self.PWRKEY_MIN_S <= held <= self.PWRKEY_OFF_MAX_S:
                self._normal_power_down()
                result = "off"
            self._record_press(self._pwrkey_was_on, held, result)

    def _record_press(self, was_on, held, result):
        press = {"kind": "modem_pwrkey", "t": self.sched.now(), "powered": was_on,
                 "held_s": round(held, 3), "result": result}
        self.pwrkey_presses.append(press)
        self._notify(press)

    def _notify(self, event):
        if self.on_event is not None:
            self.on_event(dict(event))

    def reset_pin(self, level):
        """RESET pin: a low pulse of >= 105 ms restarts a running module (on release)."""
        if not level:
            self._reset_down_at = self.sched.now()
        elif self._reset_down_at is not None:
            held = (self.sched.now() - self._reset_down_at) / self.sched.time_scale
            self._reset_down_at = None
            if held >= self.RESET_MIN_S and self.powered and not self._latched:
                self._restart(1)

    def supply(self, on):
        """VBAT switched (the T-Call's POWER_ON pin). Off: everything stops at once. On: the
        module stays off until PWRKEY, unless PWRKEY is already held low."""
        self.supplied = bool(on)
        if not on:
            self.power_off()
        elif self._pwrkey_level == 0:
            self.sched.cancel(self._pwrkey_timer)
            self._pwrkey_was_on = False  # a key held through the supply cut: a press on an off module
            self._pwrkey_turned_on = False
            self._pwrkey_down_at = self.sched.now()
            self._pwrkey_timer = self.sched.after(self.PWRKEY_MIN_S, self._pwrkey_held)

    def dtr(self, level):
        """DTR pin from the ESP32; only matters with AT+CSCLK=1."""
        self._dtr_level = 1 if level else 0
        if self.csclk != 1 or not self.powered:
            return
        if self._dtr_level:
            self._try_sleep()
        else:
            self._later(self.T_DTR_WAKE, self._wake)

    def _pwrkey_held(self):
        self._pwrkey_timer = None
        if self._pwrkey_level == 0 and not self._pwrkey_was_on:
            self._pwrkey_turned_on = self.supplied and not self.powered
            self.power_on()

    def _normal_power_down(self):
        self._urc("NORMAL POWER DOWN", force=True)
        self._uart_ready = False  # stops taking commands while it shuts down
        self._later(self.T_POWER_DOWN, self.power_off)

    def _reset_runtime(self):
        """Volatile state as at power-on: the saved profile plus defaults."""
        p = self._profile
        self.echo, self.cmee, self.verbose, self.s0 = p["echo"], p["cmee"], p["verbose"], p["s0"]
        self.clip, self.colp = p["clip"], p["colp"]
        self.cmic, self.clvl, self.crsl, self.chfa = list(p["cmic"]), p["clvl"], p["crsl"], p["chfa"]
        self.moring, self.clcc_urc, self.creg_n, self.ciurc = 0, 0, 0, 1
        self.cmgf, self.cscs, self.csdh = 0, "IRA", 0
        self.cnmi = [2, 1, 0, 0, 0]
        self.csmp = [17, 167, 0, 0]
        self.csclk, self.ceng, self.cfun, self.cbatchk = 0, (0, 1), 1, 0
        self.crc, self.cvhu = 0, 0
        self.clts = p["clts"]
        self.ceer_mode, self.last_cause = 0, 0
        if self.sleeping:  # a restart or power-off ends the sleep
            self._notify({"kind": "modem_sleep", "t": self.sched.now(), "sleeping": False})
        self.sleeping = False
        self.silent = False
        self._uart_ready = False
        self._synced = self.baud != 0
        self._sim = "off"
        self._sim_locked_at = None
        self._pin_tries = 3
        self._call_ready = self._sms_ready = False
        self._reg_stat = 0
        self._reg_timer = None
        self._line = bytearray()
        self._delay = self.T_RESPONSE
        self._echo_buf = bytearray()
        self._pending = deque()
        self._busy = False
        self._in_handler = False
        self._deferred = []
        self._mode = "cmd"
        self._draft = bytearray()
        self._draft_to = None
        self._call = None
        self._clcc_stat = None
        self._dial_pending = False
        self._rings = 0
        self._sleep_timer = None

    # ================================================================== boot
    def _boot_uart_ready(self):
        self._uart_ready = True
        if self.baud:
            self._urc("RDY")  # only at a fixed baud rate (manual URC table)
        self._urc(f"+CFUN: {self.cfun}")
        if self.cfun == 1:
            self._later(self.T_SIM_READY - self.T_UART_READY, self._sim_init)
        else:
            self._reg_update()

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
                self._urc("Call Ready")

    def _set_sms_ready(self):
        if self._sim == "ready":
            self._sms_ready = True
            self._urc("SMS Ready")

    # ================================================================== registration
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
        if target in (1, 5):
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
        if self._reg_target() in (1, 5):
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

    def _creg_location(self):
        return f',"{self.cell["lac"]:04X}","{self.cell["cellid"]:04X}"' if self.registered else ""

    def net_conditions_changed(self):
        """The network's coverage or signal changed."""
        if self.powered:
            self._reg_update()

    # ================================================================== UART input
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
        handler = self._handlers.get(cmd.name)
        if handler is None:
            # An unknown extended command is an "unknown" ME error (capture L13: AT+CLAC).
            raise self._cme(100) if cmd.name[0] in "+*" else AtError("ERROR")
        try:
            return handler(cmd)
        except IndexError:
            raise AtError("ERROR") from None  # an argument the command needs is missing

    def _collect_handlers(self):
        table = {}
        for attr in dir(self):
            if attr.startswith("_x_"):
                table["+" + attr[3:].upper()] = getattr(self, attr)
            elif attr.startswith("_b_"):
                name = attr[3:].upper().replace("AMP_", "&")
                table[name] = getattr(self, attr)
        return table

    # ================================================================== UART output
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

    def _tx(self, data: bytes, delay=0.0, then=None):
        """Send bytes after `delay`, never before anything queued earlier (a UART is FIFO)."""
        self._flush_echo()  # the echo of what was just typed goes out before any reply
        when = max(self.sched.now() + delay * self.sched.time_scale, self._tx_last)
        self._tx_last = when
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
        return (f"\r\n{text}\r\n" if self.verbose else f"{text}\r\n").encode("latin-1")

    def _result_bytes(self, text):
        if not self.verbose and text in NUMERIC:
            return f"{NUMERIC[text]}\r".encode()
        return self._info_bytes(text)

    def _urc(self, text, force=False, result=False):
        """An unsolicited line. URCs raised while a command runs come after its result."""
        data = self._result_bytes(text) if result else self._info_bytes(text)
        if self._in_handler and not force:
            self._deferred.append(data)
        else:
            self._tx(data)

    def _flush_infos(self, infos):
        data = b"".join(self._info_bytes(i) for i in infos) + b"".join(self._deferred)
        self._deferred = []
        if data:
            self._tx(data, self._delay)

    def _finish(self, infos, final, delay=None):
        """Send the information lines and the final result code, then take the next line."""
        data = b"".join(self._info_bytes(i) for i in infos) + self._result_bytes(final)
        data += b"".join(self._deferred)
        self._deferred = []
        self._tx(data, self._delay if delay is None else delay, then=self._command_done)

    def _command_done(self):
        self._busy = False
        self._next_line()

    def _took(self, seconds):
        self._delay = max(self._delay, seconds)

    # ================================================================== errors
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

    def _need_sim(self):
        """Commands that need the SIM: the error says why it is not there."""
        codes = {"absent": 10, "pin": 11, "puk": 12, "init": 14, "off": 14 if self.cfun == 1 else 3}
        if self._sim != "ready":
            raise self._cme(codes[self._sim])

    def _need_sms(self):
        if not self._sms_ready:
            # Capture L12: "operation not allowed" before "SMS Ready", even while AT+CPIN?
            # still says "SIM busy".
            raise self._cme(3)

    # ================================================================== sleep
    def _activity(self):
        if self.csclk == 2:
            self.sched.cancel(self._sleep_timer)
            self._sleep_timer = self._later(self.T_SLEEP_IDLE, self._try_sleep)

    def _try_sleep(self):
        self._sleep_timer = None
        wanted = self.csclk == 2 or (self.csclk == 1 and self._dtr_level == 1)
        if not wanted or self.sleeping:
            return
        if self._call is not None or self._busy or self._mode != "cmd":
            # Never asleep during a call, a command or SMS entry: try again later.
            self._sleep_timer = self._later(self.T_SLEEP_IDLE, self._try_sleep)
            return
        self.sleeping = True
        self._notify({"kind": "modem_sleep", "t": self.sched.now(), "sleeping": True})

    def _wake(self):
        if self.sleeping:
            self._notify({"kind": "modem_sleep", "t": self.sched.now(), "sleeping": False})
        self.sleeping = False
        self._activity()

    # ================================================================== faults
    def sim_missing(self):
        """The SIM falls out now (and stays out): +CPIN: NOT READY, registration lost."""
        self.sim_present = False
        if self.powered and self._sim != "off":
            self._sim = "absent"
            self._call_ready = self._sms_ready = False
            self._urc("+CPIN: NOT READY")
            self._reg_update()

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

    def go_silent(self, latched=False):
        """The module hangs: no echo, no replies, no URCs until it is restarted. A latched
        hang ignores the RESET pin too: only a power-off (supply cut, or a PWRKEY press,
        which the module still obeys) clears it."""
        self.silent = True
        self._latched = bool(latched)

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
        """What AT+CBC reports (percent follows the voltage, 3.5 V..4.2 V)."""
        self.battery_mv = int(mv)
        self.charging = charging

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

    def store_sms(self, sender, text, read=False):
        """Put a message in SIM storage as if received earlier (no URC). Returns its index."""
        index = self._free_index()
        if index is None:
            raise RuntimeError("SIM SMS storage is full")
        self.inbox[index] = {"stat": "REC READ" if read else "REC UNREAD", "from": sender,
                             "text": text, "scts": self._scts()}
        return index

    # ================================================================== network events
    def net_incoming_sms(self, sender, text):
        """The SMSC delivers a message. Returns whether the module took it."""
        if not self.powered or self.cfun != 1 or not self._sms_ready:
            return False
        scts = self._scts()
        if self.cnmi[1] == 2:  # routed straight to the host, not stored
            self._urc(f'+CMT: "{sender}","","{scts}"\r\n{self._encode_text(text)}')
            self._ri_pulse()
            return True
        index = self._free_index()
        if index is None:
            return False  # memory full: the SMSC keeps it
        self.inbox[index] = {"stat": "REC UNREAD", "from": sender, "text": text, "scts": scts}
        if self.cnmi[1] == 1:
            self._urc(f'+CMTI: "SM",{index}')
            self._ri_pulse()
        return True

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

    # ================================================================== calls
    def _call_dir(self):
        return 1 if self._call is not None and self._call.callee == self.number else 0

    def _call_peer(self):
        return self._call.caller if self._call_dir() else self._call.callee

    def _set_ri(self, level):
        if level != self.ri:
            self.ri = level
            if self.ri_observer:
                self.ri_observer(level)

    def _ri_pulse(self):
        """RI falls as the SMS URC just queued goes out on the UART, for T_RI_SMS."""
        gen = self._gen

        def fall():
            if gen == self._gen:
                self._set_ri(0)
                self._later(self.T_RI_SMS, lambda: self._set_ri(0 if self._clcc_stat == 4 else 1))
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

    def _ring(self):
        if self._call is None or self._clcc_stat != 4:
            return
        self._rings += 1
        if self.crc:
            self._urc("+CRING: VOICE")  # AT+CRC=1: the extended incoming-call indication
        else:
            self._urc("RING", result=True)
        if self.clip:
            caller = self._call.caller
            self._urc(f'+CLIP: "{caller}",{_toa(caller)},"",0,"",0')
        if self.s0 and self._rings >= self.s0:
            return self._answer()  # ATS0=n: auto-answer after n rings
        self._later(self.T_RING_PERIOD, self._ring)

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

    # ================================================================== SMS text entry
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

    def _sms_send(self):
        text = self._decode_text(bytes(self._draft))
        to = self._draft_to
        self.sms_attempts += 1
        if self._cms_faults:
            code = self._cms_faults.popleft()
            self._later(self.network.sms_submit_s, self._sms_failed, to, text, code)
        elif not self.registered:
            self._later(self.T_SMS_FAIL, self._sms_failed, to, text, 331)
        else:
            self._later(self.network.sms_submit_s, self._sms_submitted, to, text)

    def _sms_submitted(self, to, text):
        if not self.registered:  # lost the network while sending
            return self._sms_failed(to, text, 332)
        self.network.submit_sms(self.number, to, text)
        self.sent_sms += 1
        self._mr = self._mr % 255 + 1
        self._finish([f"+CMGS: {self._mr}"], "OK", delay=0)

    def _sms_failed(self, to, text, code):
        self.network.submit_sms(self.number, to, text, error=code)
        self._finish([], self._cms(code).text, delay=0)

    def _decode_text(self, raw):
        """Typed SMS text in the AT+CSCS character set -> what the recipient reads."""
        if self.cscs in ("UCS2", "HEX"):
            try:
                data = bytes.fromhex(raw.decode("ascii"))
                return data.decode("utf-16-be" if self.cscs == "UCS2" else "latin-1")
            except (ValueError, UnicodeDecodeError):
                pass  # not hex: the network gets the characters as typed
        if self.cscs == "GSM":
            return "".join(GSM7[b] if b < 0x80 else "?" for b in raw)
        if self.cscs == "IRA":
            return "".join(chr(b) if b < 0x80 else "?" for b in raw)
        return raw.decode(TEXT_CODECS[self.cscs])

    def _encode_text(self, text):
        """A received message as the module shows it (latin-1 str of the bytes)."""
        if self.cscs == "UCS2":
            return text.encode("utf-16-be").hex().upper()
        if self.cscs == "HEX":
            return text.encode("latin-1", "replace").hex().upper()
        if self.cscs == "GSM":
            return "".join(chr(GSM7.index(c)) if c in GSM7 and c != "\x1b" else "?" for c in text)
        if self.cscs == "IRA":
            return "".join(c if ord(c) < 0x80 else "?" for c in text)
        return text.encode(TEXT_CODECS[self.cscs], "replace").decode("latin-1")

    def _free_index(self):
        for i in range(1, self.SMS_CAPACITY + 1):
            if i not in self.inbox:
                return i
        return None

    def _scts(self):
        dt = self.network.now_datetime()
        quarters = int(dt.utcoffset().total_seconds() // 900)
        return dt.strftime("%y/%m/%d,%H:%M:%S") + f"{quarters:+03d}"

    def _sms_index(self, arg):
        index = _int(arg)
        if not 1 <= index <= self.SMS_CAPACITY:
            raise self._cms(321)
        return index

    def _sms_entry(self, index, prefix):
        msg = self.inbox[index]
        head = f'"{msg["stat"]}","{msg["from"]}","","{msg["scts"]}"'
        if self.csdh:
            head += f',{_toa(msg["from"])},4,0,{8 if self.cscs == "UCS2" else 0},' \
                    f'"{self.smsc}",145,{len(msg["text"])}'
        return f"{prefix}{head}\r\n{self._encode_text(msg['text'])}"

    # ================================================================== CENG
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

    # ================================================================== V.25ter commands
    def _b_a(self, cmd):
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
        self._need_sim()
        if not self._call_ready:
            raise self._cme(3)
        if not self.registered:
            self.last_cause = self.network.failed_call(self.number, number).cause
            self._took(self.T_NO_NET_DIAL)
            raise AtError("NO CARRIER")
        self._call = self.network.place_call(self.number, number, self._next_result)
        self._next_result = None
        if self.colp:
            # COLP=1: ATD's final result waits for the far end; URCs go out meanwhile.
            self._dial_pending = True
            self._in_handler = False
            self._set_clcc(2)
            return ASYNC
        self._set_clcc(2)  # deferred: after the OK, which comes at once

    def _b_e(self, cmd):
        self.echo = bool(_basic_int(cmd, 0, (0, 1)))

    def _b_h(self, cmd):
        self._hangup()

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
        self._load_profile(FACTORY)

    def _b_amp_w(self, cmd):
        self._profile = {"echo": self.echo, "cmee": self.cmee, "verbose": self.verbose,
                         "s0": self.s0, "clip": self.clip, "colp": self.colp,
                         "cmic": tuple(self.cmic), "clvl": self.clvl, "crsl": self.crsl,
                         "chfa": self.chfa, "clts": self.clts}
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
        self.cmic, self.clvl, self.crsl = list(profile["cmic"]), profile["clvl"], profile["crsl"]
        self.chfa = profile["chfa"]
        self.clts = profile["clts"]

    def _hangup(self):
        if self._call is not None:
            call = self._call
            self._clear_call()
            self.network.release(call, self.number)
            self.last_cause = call.cause

    # ================================================================== identity & status
    def _x_cgmi(self, cmd):
        return ["SIMCOM_Ltd"]

    _x_gmi = _x_cgmi

    def _x_cgmm(self, cmd):
        return [self.gmm]

    _x_gmm = _x_cgmm

    def _x_cgmr(self, cmd):
        return [self.gmr]

    _x_gmr = _x_cgmr

    def _x_cgsn(self, cmd):
        return [self.imei]

    _x_gsn = _x_cgsn

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

    def _x_cfun(self, cmd):
        if cmd.kind == "read":
            return [f"+CFUN: {self.cfun}"]
        if cmd.kind == "test":
            return ["+CFUN: (0,1,4),(0,1)"]
        fun = _int(cmd.args[0], (0, 1, 4))
        rst = _int(cmd.args[1], (0, 1)) if len(cmd.args) > 1 else 0
        if rst:
            # Capture L2: OK at once, and the module still answers a few commands before
            # it resets.
            self._took(0.1)
            self._later(self.T_RESTART, self._restart, fun)
            return None
        self._took(self.T_CFUN)
        return self._set_fun(fun)

    def _set_fun(self, fun):
        infos = []
        if fun == self.cfun:
            return infos
        old, self.cfun = self.cfun, fun
        if fun == 0 and self._sim != "off":
            infos.append("+CPIN: NOT READY")  # capture L2: before the OK
            self._sim = "off"
            self._call_ready = self._sms_ready = False
        if fun == 1 and self._sim == "off":
            self._later(self.T_CFUN, self._sim_init)
        self._reg_update()
        return infos

    def _restart(self, fun):
        self.power_off()
        self.power_on()
        self.cfun = fun

    def _x_cpowd(self, cmd):
        mode = _int(cmd.args[0], (0, 1)) if cmd.args else 1
        self._uart_ready = False
        if mode == 1:
            self._in_handler = False
            self._urc("NORMAL POWER DOWN")  # its only reply: no OK
            self._later(self.T_POWER_DOWN, self.power_off)
        else:
            self._later(0.05, self.power_off)  # urgent: no URC at all
        return ASYNC

    def _x_csq(self, cmd):
        if cmd.kind == "test":
            return ["+CSQ: (0-31,99),(0-7,99)"]
        rssi = self._rssi()
        return [f"+CSQ: {rssi},{99 if rssi == 99 else self.ber}"]

    def _x_cbc(self, cmd):
        pct = max(0, min(100, round((self.battery_mv - 3500) / 7)))
        return [f"+CBC: {self.charging},{pct},{self.battery_mv}"]

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

    def _x_csclk(self, cmd):
        if cmd.kind == "read":
            return [f"+CSCLK: {self.csclk}"]
        if cmd.kind == "test":
            return ["+CSCLK: (0,1,2)"]
        self.csclk = _int(cmd.args[0], (0, 1, 2))
        self.sched.cancel(self._sleep_timer)
        self._sleep_timer = None
        if self.csclk == 2:
            self._activity()
        elif self.csclk == 1 and self._dtr_level:
            self._sleep_timer = self._later(self.T_RESPONSE * 2, self._try_sleep)

    def _x_ipr(self, cmd):
        if cmd.kind == "read":
            return [f"+IPR: {self.baud}"]
        self.baud = _int(cmd.args[0], BAUD_RATES)

    def _x_ciurc(self, cmd):
        return self._setting(cmd, "ciurc", (0, 1), "+CIURC")

    def _x_cbatchk(self, cmd):
        return self._setting(cmd, "cbatchk", (0, 1), "+CBATCHK")

    # ================================================================== clock
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
        """Registered: a network that sends its time (NITZ) sets the clock when CLTS=1."""
        if not (self.clts and getattr(self.network, "gives_time", True)):
            return
        now = self.network.now_datetime()
        quarters = int(now.utcoffset().total_seconds() // 900)
        self._clock = (now.replace(tzinfo=None), quarters, self.sched.now())
        utc = now - now.utcoffset()
        self._urc(f'*PSUTTZ: {utc.year},{utc.month},{utc.day},{utc.hour},{utc.minute},'
                  f'{utc.second},"{quarters:+03d}",0')
        self._urc("DST: 0")

    def _x_ddet(self, cmd):
        return None if cmd.kind != "read" else ["+DDET: 0"]

    def _x_vts(self, cmd):
        if cmd.kind == "test":
            return ["+VTS: (0-9,*,#,A,B,C,D),(1-255)"]
        if self._call is None or self._clcc_stat != 0:
            raise self._cme(3)

    def _x_csca(self, cmd):
        if cmd.kind == "read":
            self._need_sim()
            return [f'+CSCA: "{self.smsc}",{_toa(self.smsc)}']
        self.smsc = _str(cmd.args[0])

    # ================================================================== call control
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

    # ================================================================== audio
    def _x_cmic(self, cmd):
        if cmd.kind == "read":
            return ["+CMIC: " + ",".join(f"({ch},{g})" for ch, g in enumerate(self.cmic))]
        if cmd.kind == "test":
            return ["+CMIC: (0-3),(0-15)"]
        if len(cmd.args) != 2:
            raise AtError("ERROR")
        self.cmic[_int(cmd.args[0], range(4))] = _int(cmd.args[1], range(16))

    def _x_clvl(self, cmd):
        return self._setting(cmd, "clvl", range(101), "+CLVL")

    def _x_crsl(self, cmd):
        return self._setting(cmd, "crsl", range(101), "+CRSL")

    def _x_chfa(self, cmd):
        return self._setting(cmd, "chfa", range(5), "+CHFA")

    # ================================================================== SMS
    def _x_cmgf(self, cmd):
        if cmd.kind == "set":
            self._need_sms()
        return self._setting(cmd, "cmgf", (0, 1), "+CMGF")

    def _x_cscs(self, cmd):
        if cmd.kind == "read":
            return [f'+CSCS: "{self.cscs}"']
        if cmd.kind == "test":
            return ["+CSCS: (" + ",".join(f'"{s}"' for s in CSCS_SETS) + ")"]
        value = _str(cmd.args[0]).upper()
        if value not in CSCS_SETS:
            raise AtError("ERROR")
        self.cscs = value

    def _x_cnmi(self, cmd):
        if cmd.kind == "read":
            return ["+CNMI: " + ",".join(map(str, self.cnmi))]
        if cmd.kind == "test":
            return ["+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)"]
        self._need_sms()
        for i, arg in enumerate(cmd.args[:5]):
            self.cnmi[i] = _int(arg, range(4))

    def _x_csdh(self, cmd):
        return self._setting(cmd, "csdh", (0, 1), "+CSDH")

    def _x_csmp(self, cmd):
        if cmd.kind == "read":
            return ["+CSMP: " + ",".join(map(str, self.csmp))]
        self.csmp = [_int(a) for a in cmd.args[:4]] + self.csmp[len(cmd.args):]

    def _x_cpms(self, cmd):
        self._need_sms()
        used, cap = len(self.inbox), self.SMS_CAPACITY
        if cmd.kind == "read":
            return [f'+CPMS: "SM",{used},{cap},"SM",{used},{cap},"SM",{used},{cap}']
        if cmd.kind == "test":
            return ['+CPMS: ("SM","ME","SM_P","ME_P","MT"),("SM","ME","SM_P","ME_P","MT"),'
                    '("SM","ME","SM_P","ME_P","MT")']
        return [f"+CPMS: {used},{cap},{used},{cap},{used},{cap}"]

    def _x_cmgs(self, cmd):
        if cmd.kind == "test":
            return []
        if cmd.kind != "set":
            raise AtError("ERROR")
        if self.cmgf == 0:
            if not cmd.args[0].isdigit():
                raise self._cms(765)  # capture L12: a number given in PDU mode
            raise self._cms(304)      # PDU mode is not simulated
        if not cmd.args[0].startswith('"'):
            raise self._cms(765)
        self._need_sms_cms()
        self._draft = bytearray()
        self._draft_to = _str(cmd.args[0])
        self._mode = "sms"
        self._flush_prompt()
        return ASYNC

    def _flush_prompt(self):
        self._tx(b"\r\n> ", self.T_RESPONSE)  # manual / capture D3: no line end after it

    def _need_sms_cms(self):
        codes = {"absent": 310, "pin": 311, "puk": 316, "off": 314 if self.cfun == 1 else 302}
        if self._sim != "ready":
            raise self._cms(codes.get(self._sim, 314))
        if not self._sms_ready:
            raise self._cms(302)

    def _x_cmgr(self, cmd):
        self._need_sms_cms()
        if self.cmgf == 0:
            raise self._cms(303)
        index = self._sms_index(cmd.args[0])
        self._took(0.05)
        if index not in self.inbox:
            return []  # an empty slot: just OK
        out = [self._sms_entry(index, "+CMGR: ")]
        keep = len(cmd.args) > 1 and _int(cmd.args[1], (0, 1)) == 1
        if not keep and self.inbox[index]["stat"] == "REC UNREAD":
            self.inbox[index]["stat"] = "REC READ"
        return out

    def _x_cmgl(self, cmd):
        self._need_sms_cms()
        if cmd.kind == "test":
            return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
        if self.cmgf == 0:
            raise self._cms(303)
        which = _str(cmd.args[0]).upper() if cmd.args else "REC UNREAD"
        if which not in ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL"):
            raise AtError("ERROR")
        keep = len(cmd.args) > 1 and _int(cmd.args[1], (0, 1)) == 1
        self._took(0.1)
        entries = []
        for index in sorted(self.inbox):
            msg = self.inbox[index]
            if which in ("ALL", msg["stat"]):
                entries.append(self._sms_entry(index, f"+CMGL: {index},"))
                if not keep and msg["stat"] == "REC UNREAD":
                    msg["stat"] = "REC READ"
        return ["\r\n".join(entries)] if entries else []

    def _x_cmgd(self, cmd):
        self._need_sms_cms()
        index = self._sms_index(cmd.args[0])
        flag = _int(cmd.args[1], range(5)) if len(cmd.args) > 1 else 0
        self._took(0.15)
        doomed = {0: lambda s: False, 1: lambda s: s == "REC READ",
                  2: lambda s: s in ("REC READ", "STO SENT"),
                  3: lambda s: s != "REC UNREAD", 4: lambda s: True}[flag]
        if flag == 0:
            self.inbox.pop(index, None)
        for i in [i for i, m in self.inbox.items() if doomed(m["stat"])]:
            del self.inbox[i]

    def _x_cmgda(self, cmd):
        self._need_sms_cms()
        what = _str(cmd.args[0]).upper()
        kinds = {"DEL READ": ("REC READ",), "DEL UNREAD": ("REC UNREAD",),
                 "DEL SENT": ("STO SENT",), "DEL UNSENT": ("STO UNSENT",),
                 "DEL INBOX": ("REC READ", "REC UNREAD"), "DEL ALL": None}
        if what not in kinds:
            raise AtError("ERROR")
        self._took(0.3)
        for i in [i for i, m in self.inbox.items() if kinds[what] is None or m["stat"] in kinds[what]]:
            del self.inbox[i]

    # ================================================================== helpers
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


# ====================================================================== parsing helpers
def parse_line(body: str):
    """Split what follows "AT" into commands. Raises ValueError on a syntax error."""
    s = _strip_spaces(body)
    cmds, i = [], 0
    while i < len(s):
        c = s[i]
        if c == ";":
            i += 1
        elif c in "+*":
            j = i + 1
            while j < len(s) and (s[j].isalnum() or s[j] == "_"):
                j += 1
            if j == i + 1:
                raise ValueError(body)
            name = s[i:j].upper()
            if s.startswith("=?", j):
                cmds.append(Cmd(name, "test", []))
                i = j + 2
            elif s.startswith("=", j):
                end = _arg_end(s, j + 1)
                cmds.append(Cmd(name, "set", split_args(s[j + 1:end])))
                i = end
            elif s.startswith("?", j):
                cmds.append(Cmd(name, "read", []))
                i = j + 1
            else:
                cmds.append(Cmd(name, "exec", []))
                i = j
        elif c.upper() == "D":
            end = s.find(";", i) + 1 or len(s)  # a voice dial string ends with its ';'
            cmds.append(Cmd("D", "exec", [s[i + 1:end]]))
            i = end
        elif c.upper() == "S":
            m = re.match(r"[sS](\d+)(\?|=(\d*))", s[i:])
            if not m:
                raise ValueError(body)
            kind = "read" if m.group(2) == "?" else "set"
            cmds.append(Cmd("S", kind, [m.group(1), m.group(3) or "0"]))
            i += m.end()
        elif c == "&" or c.isalpha():
            m = re.match(r"(&?[a-zA-Z])(\d*)", s[i:])
            if not m:
                raise ValueError(body)
            cmds.append(Cmd(m.group(1).upper(), "exec", [m.group(2)] if m.group(2) else []))
            i += m.end()
        else:
            raise ValueError(body)
    return cmds


def split_args(text):
    """Comma-separated arguments; quoted ones keep their quotes (use _str to unquote)."""
    args, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            args.append(cur)
            cur = ""
        else:
            cur += ch
    if quoted:
        raise ValueError(text)
    args.append(cur)
    return args


def _strip_spaces(s):
    out, quoted = [], False
    for ch in s:
        if ch == '"':
            quoted = not quoted
        if ch != " " or quoted:
            out.append(ch)
    return "".join(out)


def _arg_end(s, start):
    quoted = False
    for k in range(start, len(s)):
        if s[k] == '"':
            quoted = not quoted
        elif s[k] == ";" and not quoted:
            return k
    return len(s)


def _int(arg, allowed=None):
    try:
        value = int(arg)
    except (TypeError, ValueError):
        raise AtError("ERROR") from None
    if allowed is not None and value not in allowed:
        raise AtError("ERROR")
    return value


def _str(arg):
    if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
        return arg[1:-1]
    return arg


def _basic_int(cmd, default, allowed):
    return _int(cmd.args[0], allowed) if cmd.args else default


def _range_text(allowed):
    values = list(allowed)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def _toa(number):
    """Type of address: 145 international ("+..."), 129 otherwise."""
    return 145 if number.startswith("+") else 129
