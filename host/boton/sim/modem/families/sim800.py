"""The SIM800 family: a simulated SIMCom SIM800 GSM module, byte for byte on its UART.

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
  its time (NITZ) sets the clock to the network's and reports its name and time, before any
  answer a command still owes (capture L4): ``*PSNWID: "334","020", "TELCEL",0, "TELCEL",0``
  (as esp_modem's SIM800 driver and TinyGSM list it), ``*PSUTTZ: 2020,12,9,12,57,4,"+12",0``
  then ``DST: 0``. Assumption: *PSUTTZ carries UTC
  and the zone apart; +CTZV (AT+CTZR=1) is not simulated. Many networks send no time
  (PhoneNetwork.gives_time = False): the clock then runs from the module's default
  "04/01/01,00:00:00+00" at power-on (TinyGSM#289: "+CCLK: \"04/01/01,00:00:40+12\"").

Modelling choices where the manual is silent are marked "Assumption:" in the comments.

How it is built: the framer (modem/framer.py) and the command groups (power, identity,
network, calls, sms, faults) are shared by every family; this module says what is the
SIM800's own: its handler table (all the groups' commands), its timings, its URC
spellings, its factory profile and its state.
"""
import re
from collections import deque
from datetime import datetime

from ..at import BAUD_RATES, CSCS_SETS, luhn_complete
from ..calls import HANDLERS as CALL_COMMANDS, CallsGroup
from ..faults import FaultsGroup
from ..framer import Framer
from ..identity import HANDLERS as IDENTITY_COMMANDS, IdentityGroup
from ..network import HANDLERS as NETWORK_COMMANDS, NetworkGroup
from ..power import HANDLERS as POWER_COMMANDS, PowerGroup
from ..sms import HANDLERS as SMS_COMMANDS, SmsGroup

# Settings a profile holds: factory values (AT&F), saved by AT&W, restored by ATZ and at
# boot.
FACTORY = {"echo": True, "cmee": 0, "verbose": True, "s0": 0, "clip": 0, "colp": 0,
           "cmic": (0, 0, 0, 0), "chfa": 0, "clts": 0, "netlight": 1}
# Settings kept as they are set, through restarts, with no AT&W ("AUTO_SAVE", AT manual
# V1.09 3.2.47-48): the ringer and speaker levels, at their factory values in a new module
# (so firmware still sets them: a replaced module rings at 100).
AUTO_SAVED = {"clvl": 80, "crsl": 100}
CLOCK_DEFAULT = datetime(2004, 1, 1)  # AT+CCLK? of a module that never heard the network time


class Sim800(Framer, PowerGroup, IdentityGroup, NetworkGroup, CallsGroup, SmsGroup, FaultsGroup):
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
    # AT+CFUN=1,1 -> its OK. Capture L2 has it at once; the AT manual's max response time
    # for AT+CFUN is 10 s: a test sets a slow one (the firmware waits modem.SLOW's 10 s).
    T_RESTART_OK = 0.1
    T_POWER_DOWN = 1.0     # NORMAL POWER DOWN -> actually off
    T_NO_NET_DIAL = 0.5    # ATD with no registration -> NO CARRIER
    T_SMS_FAIL = 2.0       # AT+CMGS with no network -> +CMS ERROR
    # Each SMS a multiple delete (AT+CMGD=1,<flag>, AT+CMGDA) removes. AT manual V1.09:
    # AT+CMGD takes up to 5 s for one SMS, 25 s for 50; assumption: the 25 s spread evenly
    T_SMS_DELETE = 0.5
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

    PWRKEY_OFF_MIN_S = PWRKEY_MIN_S  # the same press turns it on or off
    IMEI_TAC = "86995103"       # type allocation code (first 8 IMEI digits) of a SIM800L
    FACTORY = FACTORY
    BAUD_RATES = BAUD_RATES
    CSCS_SETS = CSCS_SETS
    REGISTERED_STATS = (1, 5)   # +CREG stats that mean registered (home, roaming)
    CME_SIM_STARTING = 14       # +CME code while the SIM initialises: "SIM busy" (capture L12)
    URC_CALL_READY = "Call Ready"
    URC_SMS_READY = "SMS Ready"
    CLOCK_DEFAULT = CLOCK_DEFAULT
    # Which commands this family has: every group's table, as the SIM800 R14.18 answers them.
    HANDLERS = {**IDENTITY_COMMANDS, **POWER_COMMANDS, **NETWORK_COMMANDS, **CALL_COMMANDS,
                **SMS_COMMANDS}

    def __init__(self, scheduler, network, number, emit, imei=None, iccid=None,
                 model="SIM800", gmm="SIMCOM_SIM800L", revision="R14.18",
                 gmr="Revision:1418B04SIM800L24", baud=0, pin=None):
        self.sched = scheduler
        self.network = network
        self.number = number
        self.emit = emit
        tail = re.sub(r"\D", "", number)[-6:].rjust(6, "0")
        self.imei = imei or luhn_complete(self.IMEI_TAC + tail)
        self.iccid = iccid or luhn_complete("8952020" + "0" * 6 + tail)
        self.imsi = f"{network.mcc}{network.mnc}" + ("0" * 9 + tail)[-(15 - 3 - len(network.mnc)):]
        self.model, self.gmm, self.revision, self.gmr = model, gmm, revision, gmr
        # AT+IPR; 0 = autobaud, the factory setting (AT manual V1.09 §2.2.41): no RDY,
        # silent until the host's "AT"
        self.baud = baud
        self.smsc = "+5294100001"

        # SIM card and its storage: both survive power cycles.
        self.sim_present = True
        self.sim_pin = pin
        self.sim_puk = "12345678"
        self.inbox = {}            # index -> {"stat", "from", "text", "scts"}
        self.sim_refused_sms = False  # storage was full when an SMS came (3GPP EF_SMSS)
        self._profile = dict(FACTORY)
        self._auto_saved = dict(AUTO_SAVED)
        # AT+CSMP "writes the parameters in NON-VOLATILE memory" (AT manual V1.05 p.131):
        # what a bench test set is still there after a restart
        self.csmp = [17, 167, 0, 0]

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
        self._clock = (self.CLOCK_DEFAULT, 0, scheduler.now())  # (local time, zone in quarters, at)
        self._dtr_level = 0
        self._mr = 0
        self._gen = 0
        self._tx_last = 0.0
        self._handlers = self._collect_handlers()
        self._reset_runtime()

    # Hardware Design V1.10 §4.2.2.3 (data/at/sim800_transcripts.md D1): the module watches
    # VBAT. At or below 3.49 V it warns, below 3.39 V it switches itself off, the latter only
    # with AT+CBATCHK=1 (off by default); at or above 4.3 V it warns, above 4.4 V it switches
    # off. The document gives no repeat period: a warning at each crossing (inferred).
    VBAT_WARN_MV = (3490, 4300)
    VBAT_OFF_MV = (3390, 4400)

    def _battery_changed(self, was):
        mv = self.battery_mv
        if not self.powered:
            return
        low, high = self.VBAT_WARN_MV
        if mv <= low < was:
            self._urc("UNDER-VOLTAGE WARNNING", force=True)  # SIMCom's own spelling
        elif mv >= high > was:
            self._urc("OVER-VOLTAGE WARNNING", force=True)
        self._vbat_off_check()

    def _vbat_off_check(self):
        mv = self.battery_mv
        if mv < self.VBAT_OFF_MV[0] and self.cbatchk:
            self._voltage_power_down("UNDER", mv)
        elif mv > self.VBAT_OFF_MV[1]:
            self._voltage_power_down("OVER", mv)

    def _x_cbatchk(self, cmd):
        # the check starts with the setting: a module revived on a cell below 3.39 V runs
        # until the set-up's AT+CBATCHK=1, then switches itself off again (after the OK)
        reply = super()._x_cbatchk(cmd)
        if self.cbatchk:
            self._later(0.05, lambda: self.powered and self._vbat_off_check())
        return reply

    def _reset_runtime(self):
        """Volatile state as at power-on: the saved profile plus defaults."""
        p = self._profile
        self.echo, self.cmee, self.verbose, self.s0 = p["echo"], p["cmee"], p["verbose"], p["s0"]
        self.clip, self.colp = p["clip"], p["colp"]
        self.cmic, self.chfa = list(p["cmic"]), p["chfa"]
        self.clvl, self.crsl = self._auto_saved["clvl"], self._auto_saved["crsl"]
        self.moring, self.clcc_urc, self.creg_n, self.ciurc = 0, 0, 0, 1
        self.cmgf, self.cscs, self.csdh = 0, "IRA", 0
        self.cnmi = [2, 1, 0, 0, 0]
        self.csclk, self.ceng, self.cfun, self.cbatchk = 0, (0, 1), 1, 0
        self.crc, self.cvhu = 0, 0
        self.clts = p["clts"]
        self.netlight = p["netlight"]  # the NETLIGHT pin's LED flashing (AT+CNETLIGHT)
        self.ceer_mode, self.last_cause = 0, 0
        if self.sleeping:  # a restart or power-off ends the sleep
            self._notify({"kind": "modem_sleep", "t": self.sched.now(), "sleeping": False})
        self.sleeping = False
        self.silent = self.broken
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
        self._held_urcs = {}       # command -> URCs held for its reply (urc_into_reply)
        self._reply_head = b""     # what goes out before the running command's answer
        self._mode = "cmd"
        self._draft = bytearray()
        self._draft_to = None
        self._call = None
        self._clcc_stat = None
        self._dial_pending = False
        self._rings = 0
        self._sleep_timer = None
