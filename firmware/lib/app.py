# The firmware's wiring: drivers feed events to the alert state machine (alert.py) and
# this module carries out the actions it returns. Every decision lives in alert.py;
# everything here is I/O.
import asyncio
import gc
import sys
import time

import atparse
import hw
import shred  # at boot: an .mpy firmware must not load it mid-alert
import sms
import store
from alert import AlertMachine
import eventlog
from eventlog import EventLog
from gesture import Button, ticks_diff
from modem import Modem, ModemError, ModemTimeout
from nmea import NMEAParser

VERSION = "0.1.0"
STATE_PATH = "alert.json"
NETWORK_TIME_AFTER = 1704067200  # 2024-01-01: an AT+CCLK? before it is the module's default

# +CLCC <stat> -> alert.py call state
_CLCC_STATE = {0: "active", 2: "dialing", 3: "alerting", 6: "ended"}
_POWER_URC = {"UNDER-VOLTAGE WARNNING": "under_voltage", "UNDER-VOLTAGE POWER DOWN": "power_down",
              "OVER-VOLTAGE WARNNING": "over_voltage", "OVER-VOLTAGE POWER DOWN": "over_voltage"}
# Numeric +CME/+CMS codes the device log names, so a technician reads why.
_WHY = {"10": "sim_missing", "11": "sim_pin", "12": "sim_puk", "13": "sim_failure", "14": "sim_busy",
        "30": "no_network", "310": "sim_missing", "311": "sim_pin", "313": "sim_failure",
        "314": "sim_busy", "316": "sim_puk", "330": "smsc_unknown", "331": "no_network",
        "332": "network_timeout", "21": "rejected", "41": "temporary_failure", "42": "congestion",
        "500": "unknown_error"}


def _why(err):
    """'CMS 310' -> 'CMS_310_sim_missing' for the log."""
    code = err.split()[-1]
    return err.replace(" ", "_") + ("_" + _WHY[code] if code in _WHY else "")


def _sms_refused_for_good(err):
    """The network or the recipient refused this message (3GPP causes < 300 other than
    the temporary 38/41/42/47), or the modem says the message itself is invalid (302-305).
    SIM, network-service, memory and unknown errors are worth retrying."""
    code = err.split()[-1]
    if not (err.startswith("CMS") and code.isdigit()):
        return False
    c = int(code)
    return (c < 300 and c not in (38, 41, 42, 47)) or 302 <= c <= 305
_CALL_END = {"NO CARRIER": "no_carrier", "BUSY": "busy", "NO ANSWER": "no_answer",
             "NO DIALTONE": "error"}


class App:
    def __init__(self, board, cfg, log, test=False):
        self.board = board
        self.call_active = False
        self._cell_after = False
        self._recovering = False
        self._end_cause = None
        self.sms_ok = 0
        self.sms_failed = 0
        self.answered = False
        self.button = None
        self.button_flag = None
        self.gps_on = True
        self.fix_ms = None
        self.log = log
        self.test = test
        cfg = dict(cfg)
        cfg["fw"] = VERSION
        if test:
            cfg["test_mode"] = True
        self.cfg = cfg
        self.machine = AlertMachine(cfg)
        self.gesture_cfg = cfg.get("gesture") or {}
        self.inbox = []
        self.wake = asyncio.Event()
        self.timers = {}
        self.ready = asyncio.Event()
        self.brain_seen = time.ticks_ms()
        self.modem_ok = asyncio.Event()
        self.modem_ok.set()
        self.test_done = asyncio.Event()  # C4 answered and every alert SMS is accepted or refused
        scale = hw.TIME_SCALE
        m = board["modem"]
        self.modem_uart = hw.UART(m["uart"], m["baud"], m["tx"], m["rx"])
        self.modem = Modem(self.modem_uart, self._urc, scale)
        g = board["gps"]
        self.gps_uart = hw.UART(g["uart"], g["baud"], g["tx"], g["rx"])
        self.vib = self._out(board.get("vibration"))
        en = g.get("enable")
        self.gps_en = hw.Pin(en, hw.Pin.OUT, value=1) if en is not None else None
        self.got_fix = asyncio.Event()
        self.led = self._out(board.get("led"))

    @staticmethod
    def _out(spec):
        if not spec:
            return None
        return hw.Pin(spec["pin"], hw.Pin.OUT, value=1 - spec.get("active", 1))

    # ------------------------------------------------------------ event plumbing
    def post(self, ev):
        self.inbox.append(ev)
        self.wake.set()

    async def watchdog_task(self):
        """Feed the hardware watchdog only while the brain keeps turning: a hung loop
        or a dead task lets it bite and the board restarts (and resumes any alert)."""
        wdt = hw.WDT(timeout=int(self.cfg.get("watchdog_s", 30) * 1000))
        while True:
            self.post(("tick",))  # the brain answers by moving brain_seen forward
            await asyncio.sleep_ms(1000)
            if time.ticks_diff(time.ticks_ms(), self.brain_seen) < 5000:
                wdt.feed()

    async def brain(self):
        """The one place events meet the state machine; actions run in order."""
        while True:
            await self.wake.wait()
            self.brain_seen = time.ticks_ms()
            self.wake.clear()
            while self.inbox:
                ev = self.inbox.pop(0)
                if ev[0] == "tick":
                    continue
                acts = self.machine.handle(ev, time.ticks_ms())
                # the state first: what the log then says happened (a PIN lock, an SMS
                # accepted) is already on the flash if the board resets right after
                for act in acts:
                    if act[0] == "persist":
                        self.act(act)
                for act in acts:
                    if act[0] != "persist":
                        self.act(act)
            if self._cell_after:
                self._cell_after = False
                asyncio.create_task(self.refresh_cell())

    def act(self, a):
        kind = a[0]
        if kind == "log":
            self.log.add(a[1], a[2])
            if a[1] == "alert":
                self._cell_after = True  # after this batch: ATD goes first
            if a[1] == "sms_ok":
                self.sms_ok += 1
            elif a[1] == "sms_failed" and a[2][:6] == "alert ":
                self.sms_failed += 1
            elif a[1] == "call_active":
                self.answered = True
            # the alert SMS stay in the outbox until accepted or refused for good
            if self.answered and not any(e[2] == "alert" for e in self.machine.outbox):
                self.test_done.set()
        elif kind == "persist":
            self._save_state(a[1])
        elif kind == "set_timer":
            self._cancel_timer(a[1])
            self.timers[a[1]] = asyncio.create_task(self._timer(a[1], a[2]))
        elif kind == "cancel_timer":
            self._cancel_timer(a[1])
        elif kind == "vibrate":
            asyncio.create_task(self._vibrate(a[1]))
        elif kind == "gesture_active":
            if self.button:
                self.button.set_active(a[1])
        elif kind == "covert_audio":
            asyncio.create_task(self._covert_audio())
        elif kind == "dial":
            asyncio.create_task(self._dial(a[1]))
        elif kind == "hangup" or kind == "reject":
            asyncio.create_task(self._at("ATH"))
        elif kind == "answer":
            asyncio.create_task(self._at("ATA"))
        elif kind == "send_sms":
            asyncio.create_task(self._send_sms(a[1], a[2], a[3]))
        else:
            self.log.add("unknown_action", kind)

    def _cancel_timer(self, name):
        t = self.timers.pop(name, None)
        if t:
            t.cancel()

    async def _timer(self, name, ms):
        await asyncio.sleep_ms(ms)
        self.timers.pop(name, None)
        self.post(("timer", name))

    # ------------------------------------------------------------ modem actions
    async def _covert_audio(self):
        """Mic up so C4 hears the surroundings; speaker and ringer silent so nobody near her
        does. One command line saves round trips before ATD; it is retried, because a call
        with the speaker on could give her away."""
        await self._modem_gate()
        for attempt in range(3):
            if not await self.modem.batch(("AT+CMIC=0,15;+CLVL=0;+CRSL=0",)):
                return
            self.modem.force_wake()
        self.log.add("audio_error", "covert_settings_refused")

    async def _dial(self, number):
        self._end_cause = None
        await self._modem_gate()
        try:
            await self.modem.cmd("ATD%s;" % number, 20000)
        except ModemError as e:
            self.log.add("dial_error", _why(str(e).split(" -> ")[-1]))
            self.post(("call_state", "ended", "error"))
            if isinstance(e, ModemTimeout):
                self.kick_recovery()

    async def _power_back(self):
        """The module switched itself off (supply sag, or someone's PWRKEY): try to bring
        it back once the supply may have recovered; the ladder ends in a power-on."""
        self._modem_off = True  # it said so: PWRKEY may switch it on without a supply cut
        await asyncio.sleep_ms(int(5000 * hw.TIME_SCALE))
        self.kick_recovery()

    def kick_recovery(self):
        """A command timed out: start the recovery ladder now, not at the next health check."""
        if not self._recovering:
            self._recovering = True
            asyncio.create_task(self._recover_once())

    async def _recover_once(self):
        self.modem_ok.clear()  # new modem work waits for the ladder instead of queueing before it
        try:
            await self.recover_modem()
        finally:
            self._recovering = False
            self.modem_ok.set()

    async def _modem_gate(self):
        try:
            await asyncio.wait_for_ms(self.modem_ok.wait(), int(30000 * hw.TIME_SCALE))
        except asyncio.TimeoutError:
            pass  # try anyway: the alert must not stall on a slow recovery

    async def _at(self, command):
        try:
            await self.modem.cmd(command, 20000)
        except ModemError as e:
            self.log.add("at_error", str(e))

    async def _send_sms(self, number, text, n):
        permanent = False
        await self._modem_gate()
        try:
            await self.modem.send_sms(number, sms.encode(text, "GSM"))
            ok = True
        except ModemError as e:
            why = str(e).split(" -> ")[-1]
            self.log.add("sms_error", _why(why))
            ok = False
            permanent = _sms_refused_for_good(why)
            if isinstance(e, ModemTimeout):
                self.kick_recovery()
        self.post(("sms_sent", n, ok, permanent))

    def _urc(self, name, args):
        if name == "+CLCC":
            c = atparse.parse_clcc(args)
            if not c or c[1] != 0:
                return  # incoming calls are handled from RING/+CLIP
            state = _CLCC_STATE.get(c[2])
            if state == "ended":
                asyncio.create_task(self._call_ended())
            elif state:
                self.call_active = state == "active"
                self.post(("call_state", state, None))
        elif name in _CALL_END:
            self._end_cause = _CALL_END[name]
        elif name == "+CLIP":
            self.post(("incoming_call", atparse.parse_clip(args) or ""))
        elif name == "+CMTI":
            asyncio.create_task(self._read_sms(atparse.parse_cmti(args)))
        elif name in _POWER_URC or name == "NORMAL POWER DOWN":
            self.log.add("modem_power", name.replace(" ", "_"))
            if name in _POWER_URC:  # not our own power-off: the supply is failing
                self.post(("power_warning", _POWER_URC[name]))
            if name.endswith("POWER DOWN"):
                self.modem.abort("power down")
                asyncio.create_task(self._power_back())

    async def _call_ended(self):
        """Tell a normal hang-up by the far end from a drop: only AT+CEER knows."""
        was_active, self.call_active = self.call_active, False
        cause = self._end_cause or "no_carrier"
        if was_active:
            cause = "dropped"
            try:
                _, _, lines = await self.modem.cmd("AT+CEER", 2000, expect="+CEER", check=False)
                if any("Normal call clearing" in ln for ln in lines):
                    cause = "remote"
            except ModemError:
                pass
        self.post(("call_state", "ended", cause))

    async def _read_sms(self, index):
        if index is None or index in self._sms_reading:
            return
        self._sms_reading.append(index)
        try:
            _, _, lines = await self.modem.cmd("AT+CMGR=%d" % index, 5000, expect="+CMGR")
            if not lines:
                return  # an empty slot: read and deleted already (a +CMTI and a sweep)
            await self.modem.cmd("AT+CMGD=%d" % index, 5000)
        except ModemError as e:
            self.log.add("sms_read_error", str(e))
            return
        finally:
            self._sms_reading.remove(index)
        hdr = atparse.parse_cmgr(lines[0])
        sender = hdr[1] if hdr else ""
        self.post(("sms_command", sender, "\n".join(lines[1:])))

    # ------------------------------------------------------------ modem lifecycle
    def _pin(self, name, value):
        num = self.board["modem"].get(name)
        if num is None:
            return None
        return hw.Pin(num, hw.Pin.OUT, value=value)

    async def modem_init(self):
        m = self.modem
        # Supply on (T-Call: POWER_ON pin), RESET and PWRKEY released before anything else.
        self._pin("power_on", 1)
        self._pin("reset", 1)
        self._pin("pwrkey", 1)
        if await m.probe():
            self._modem_off = False
        else:
            # Silent at boot: off, asleep past the wake byte, or hung. The same safe
            # ladder as a recovery; PWRKEY only once the module is known to be off.
            how = await self._revive()
            if how is None:
                return False
            self.log.add("modem_recovered", how)
        await m.read_sleep()  # an ESP32-only reset left it as it was: AT+CSCLK may be 2
        # Numeric +CME/+CMS codes: the driver decides on them (which SMS errors to retry)
        for c in await m.batch(("ATE0", "AT+CMEE=1")):
            self.log.add("init_error", c)
        # The SIM takes seconds after power-on; SMS settings are refused until it is ready.
        sim = "?"
        for _ in range(30):
            try:
                _, _, lines = await m.cmd("AT+CPIN?", 5000, expect="+CPIN")
                sim = lines[0] if lines else "?"
            except ModemError as e:
                sim = str(e).split(" -> ")[-1]
            if "READY" in sim:
                break
            if "SIM PIN" in sim or "not inserted" in sim or "PUK" in sim:
                break  # waiting will not help: the technician must fix the SIM
            await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
        if "READY" not in sim:
            self.log.add("sim_problem", sim.replace(" ", "_"))
        for _ in range(10):
            # AT+CLTS=1 first, before registration brings the network's time (NITZ)
            failed = await m.batch(("AT+CLTS=1", "AT+CMGF=1", 'AT+CSCS="GSM"',
                                    "AT+CNMI=2,1,0,0,0", "AT+CLIP=1", "AT+CLCC=1", "AT+COLP=0",
                                    "AT+CENG=1,0", "AT+CBATCHK=1"))
            if not failed:
                break
            await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
        else:
            self.log.add("init_error", ",".join(failed))
        registered = False
        for _ in range(60):
            try:
                _, _, lines = await m.cmd("AT+CREG?", 2000, expect="+CREG")
                reg = atparse.parse_creg(lines[0]) if lines else None
                if reg and atparse.registered(reg[0]):
                    registered = True
                    break
            except ModemError:
                pass
            await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
        self.log.add("registered" if registered else "not_registered", "")
        await self.poll_status()
        await self.refresh_cell()
        if registered:
            await self.network_clock(save=True)
        return registered

    async def refresh_cell(self):
        """Serving cell id + LAC: the location of last resort when there is no fix
        (AT+CIPGSMLOC no longer works; C4 can resolve a cell id with the carrier)."""
        try:
            _, _, lines = await self.modem.cmd("AT+CENG?", 3000, expect="+CENG", check=False)
        except ModemError:
            return
        for ln in lines:
            cell = atparse.parse_ceng(ln)
            if cell and cell.get("cell") == 0:
                self.post(("cell", cell))
                return

    async def recover_modem(self):
        """The module stopped answering: AT probe (wake byte first) -> AT+CFUN=1,1 ->
        RESET pin -> supply cut -> PWRKEY, each step only if the one before did not bring
        it back. A PWRKEY press of 1-33 s switches a running module OFF, and a hung module
        looks just like an off one, so the key is pressed only when the module is known
        to be off: its supply was just cut, or it announced its own power-down."""
        m = self.modem
        self.log.add("modem_silent", "")
        if await m.probe(3000):
            self._modem_off = False
            self.log.add("modem_recovered", "probe")
            await m.read_sleep()
            return True
        how = await self._revive()
        if how is None:
            return False  # modem_hung or modem_dead logged; the health check tries again
        return await self._recovered(how)

    _modem_off = False  # the module is known to be off (power-down URC, or supply cut)

    async def _revive(self):
        """The rungs after a failed probe. Returns how the module came back, or None."""
        m = self.modem
        try:
            # A live but confused module answers OK and restarts (its CSCLK back to 0).
            if (await m.cmd("AT+CFUN=1,1", 2000, check=False))[0] == "OK" and await m.probe(8000):
                return "cfun"
        except ModemError:
            pass  # no answer at all: it did not hear it either
        rst = self._pin("reset", 1)
        if rst:
            rst.value(0)
            await asyncio.sleep_ms(max(150, int(200 * hw.TIME_SCALE)))
            rst.value(1)
            if await m.probe(8000):
                return "reset_pin"
        how = "pwrkey"
        pwr = self._pin("power_on", 1)
        if pwr:
            # With PWRKEY released the SIM800 stays off when VBAT returns (HD 4.2): off
            # for sure, so the press below switches it on.
            pwr.value(0)
            await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
            pwr.value(1)
            self._modem_off = True
            how = "power_cycle"
        if not self._modem_off:
            # Silent after CFUN and RESET, no supply switch, no power-down seen: maybe hung
            # but on, and a press would switch it off. Leave it; try again later.
            self.log.add("modem_hung", "no_supply_switch")
            return None
        key = self._pin("pwrkey", 1)
        key.value(0)
        await asyncio.sleep_ms(int(1200 * hw.TIME_SCALE))
        key.value(1)
        self._modem_off = False  # from here on it may be on: never press again unproven
        if await m.probe(10000):
            return how
        self.log.add("modem_dead", how)
        return None

    async def _recovered(self, how):
        self.log.add("modem_recovered", how)
        await self.modem_init()  # it restarted: settings, and its sleep mode, read anew
        return True

    async def standby_task(self):
        """Standby power: the modem sleeps (AT+CSCLK=2) and the GPS runs only until it
        has a fresh fix, then rests; during an alert both stay fully awake."""
        c = self.cfg
        every = int(c.get("gps_every_s", 900) * 1000)
        max_on = int(c.get("gps_max_on_s", 120) * 1000)
        gps_on_at = time.ticks_ms()
        gps_off_at = None
        while True:
            await asyncio.sleep_ms(500)
            active = self.machine.active
            want_sleep = c.get("modem_sleep", True) and not active and not self.call_active
            if want_sleep != self.modem.sleepy:
                try:
                    await self.modem.cmd("AT+CSCLK=%d" % (2 if want_sleep else 0), 2000)
                    self.modem.sleepy = want_sleep
                    self.log.add("power", "modem_sleep" if want_sleep else "modem_awake")
                except ModemError:
                    pass
            if not self.gps_en:
                continue
            now = time.ticks_ms()
            if self.gps_on:
                fresh = self.fix_ms is not None and time.ticks_diff(now, self.fix_ms) < 5000
                if not active and (fresh or time.ticks_diff(now, gps_on_at) > max_on):
                    self._gps_power(False)
                    gps_off_at = now
            elif active or gps_off_at is None or time.ticks_diff(now, gps_off_at) > every:
                self._gps_power(True)
                gps_on_at = now

    # Light-sleep policy (ms). The chip hears nothing on its UARTs while asleep: it wakes on
    # the button (ext0), the SIM800's RI (ext1, where wired) and a timer, and sweeps what
    # the modem may have said meanwhile. With RI: after every RI wake, plus a slow safety
    # sweep. Without RI: a sweep every poll, so a ring is heard within it (C4's callback
    # rings ~30 s) at the cost of waking the modem (it then stays up T_SLEEP_IDLE, 5 s).
    SLEEP_CHUNK_MS = 2000
    SWEEP_RI_MS = 600000
    SWEEP_NO_RI_MS = 20000

    @staticmethod
    def sleep_policy(cfg, has_ri):
        """(chunk_ms, sweep_ms): one light sleep's length, and how often the modem is swept
        when nothing woke the chip (config light_sleep_ms, sweep_s; scaled on the rig)."""
        chunk = int(cfg.get("light_sleep_ms", App.SLEEP_CHUNK_MS))
        sweep = cfg.get("sweep_s")
        sweep = int(sweep * 1000) if sweep else (App.SWEEP_RI_MS if has_ri else App.SWEEP_NO_RI_MS)
        return chunk, max(1, int(sweep * hw.TIME_SCALE))

    async def sleep_task(self):
        """ESP32 light sleep between events; never during an alert, a call, a GPS
        acquisition, a pending gesture or while RI is low (a call rings)."""
        if not self.cfg.get("light_sleep", True):
            return
        spec = self.board["button"]
        ri = self.board["modem"].get("ri")
        if ri is not None:
            self.ri_pin = hw.input_pin(ri)
        hw.setup_wake(spec["pin"], spec.get("active", 0), ri)
        chunk, sweep_ms = self.sleep_policy(self.cfg, ri is not None)
        swept = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(20)  # let every ready task run first
            if (self.machine.active or self.call_active or self.gps_on or self.inbox
                    or not self.modem.sleepy or self.modem.busy()
                    or (self.ri_pin and self.ri_pin.value() == 0)
                    or (self.button and self.button.next_deadline() is not None)):
                await asyncio.sleep_ms(200)
                continue
            left = sweep_ms - ticks_diff(time.ticks_ms(), swept)
            if left <= 0:
                swept = time.ticks_ms()
                await self.sweep_modem()
                continue
            why = hw.lightsleep(min(chunk, left))
            hw.after_wake()  # the wake pins back to GPIO, or the button reads pressed
            if self.button_flag:
                self.button_flag.set()  # the wake edge raised no IRQ: sample the pin now
            if why == "ri":
                swept = time.ticks_ms()
                await self.sweep_modem()  # its URC came while the UART was deaf

    async def sweep_modem(self):
        """What the modem said while the ESP32 slept: a call ringing or gone (AT+CLCC) and
        unread SMS (AT+CMGL, left unread until each is read and deleted)."""
        try:
            _, _, lines = await self.modem.cmd("AT+CLCC", 3000, expect="+CLCC", check=False)
            ours = False
            for ln in lines:
                c = atparse.parse_clcc(ln)
                if c and c[1] == 1 and c[2] == 4:
                    self.post(("incoming_call", c[5]))
                ours = ours or bool(c and c[1] == 0 and c[2] in (0, 2, 3))
            if self.call_active and not ours:
                asyncio.create_task(self._call_ended())  # its NO CARRIER was lost
            _, _, lines = await self.modem.cmd('AT+CMGL="REC UNREAD",1', 5000, expect="+CMGL",
                                               check=False)
        except ModemError as e:
            self.log.add("sweep_error", str(e))
            return
        for ln in lines:
            if ln[:6] == "+CMGL:":
                await self._read_sms(int(ln[6:].split(",")[0]))

    def _sync_clock(self, utc):
        """Set the RTC from a GPS fix's UTC (y, m, d, hh, mm, ss, ms) when it is unset or
        has drifted a minute: the event log stamps real time only after this."""
        if not utc:
            return
        now = eventlog.unix_from_utc(utc)
        was = hw.unix_time()
        if abs(was - now) > 60:
            hw.set_rtc(now)
            if was < eventlog.SYNCED_AFTER:
                self.log.add("clock", "gps")  # once: a drift fix is no news worth a log slot

    async def network_clock(self, save=False):
        """Set an unset RTC from the network's time (AT+CCLK? after NITZ): a button kept
        indoors may never see a GPS fix. GPS UTC wins: this never overrides a set clock.
        Many networks send no time, and the module's clock then counts from its 2004
        default: never trusted. save: AT&W keeps CLTS=1 for firmware that applies it only
        at the module's next start."""
        if hw.unix_time() >= eventlog.SYNCED_AFTER:
            return
        try:
            _, _, lines = await self.modem.cmd("AT+CCLK?", 2000, expect="+CCLK")
        except ModemError:
            return
        now = atparse.parse_cclk(lines[0]) if lines else None
        if now is None or now < NETWORK_TIME_AFTER:
            if save:
                try:
                    await self.modem.cmd("AT&W", 2000)
                except ModemError:
                    pass
            return
        if hw.unix_time() < eventlog.SYNCED_AFTER:  # a GPS fix may have set it meanwhile
            hw.set_rtc(now)
            self.log.add("clock", "network")

    def _gps_power(self, on):
        self.gps_on = on
        self.gps_en.value(1 if on else 0)
        self.log.add("power", "gps_on" if on else "gps_off")

    async def health_task(self):
        """Watch the modem (and feed the watchdog while the brain is alive)."""
        every = int(self.cfg.get("health_every_s", 60) * 1000)
        status_every = int(self.cfg.get("status_every_s", 600) * 1000)
        last_status = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(every)
            if time.ticks_diff(time.ticks_ms(), self.modem.last_rx_ms) > every:
                try:
                    ok = (await self.modem.cmd("AT", 1000, check=False))[0] == "OK"
                except ModemTimeout:
                    ok = False
                if not ok and not self._recovering:
                    self._recovering = True
                    await self._recover_once()
            if time.ticks_diff(time.ticks_ms(), last_status) >= status_every:
                last_status = time.ticks_ms()
                await self.poll_status()
                await self.refresh_cell()
                await self.network_clock()  # no time at boot: a later registration may bring it

    async def poll_status(self):
        bat = self.board.get("battery") or {}
        mv = None
        if bat.get("source") == "adc":
            # LiPo through a divider: 3.3 V (empty) .. 4.2 V (full), close enough to linear
            mv = hw.battery_adc(bat["pin"]) * bat.get("divider", 2.0) / 1000
        elif bat.get("source") == "pmu" and getattr(self, "power_chip", None) == "axp192":
            import pmu
            try:
                mv = pmu.battery_mv(self.power_spec)
            except OSError:
                pass  # the PMU stopped answering: the modem's AT+CBC below still knows
        if mv is not None:
            self.post(("battery", max(0, min(100, int((mv - 3300) * 100 / 900)))))
        for cmd, prefix in (("AT+CBC", "+CBC"), ("AT+CSQ", "+CSQ")):
            if prefix == "+CBC" and mv is not None:
                continue
            try:
                _, _, lines = await self.modem.cmd(cmd, 2000, expect=prefix)
            except ModemError:
                continue
            if not lines:
                continue
            if prefix == "+CBC":
                v = atparse.parse_cbc(lines[0])
                if v:
                    self.post(("battery", v[1]))
            else:
                v = atparse.parse_csq(lines[0])
                if v:
                    self.post(("signal", v[0]))

    # ------------------------------------------------------------ GPS and button
    async def gps_task(self):
        parser = NMEAParser()
        reader = asyncio.StreamReader(self.gps_uart)
        buf = bytearray(64)
        mv = memoryview(buf)
        while True:
            n = await reader.readinto(buf)
            if not n:
                await asyncio.sleep_ms(100)
                continue
            if parser.feed(mv[:n]):
                fix = parser.pop_latest()
                self.fix_ms = time.ticks_ms()
                self.got_fix.set()
                self._sync_clock(fix.utc)
                self.post(("fix", fix))

    async def button_task(self):
        spec = self.board["button"]
        pull = hw.Pin.PULL_UP if spec.get("pull") == "up" else None
        kw = dict(self.gesture_cfg)
        kw["pressed_level"] = spec.get("active", 0)
        self.button = Button(**kw)
        flag = self.button_flag = hw.IrqFlag()
        # through hw.input_pin: after a light sleep, hw.after_wake() gives it back its
        # GPIO mode and IRQ (ESP-IDF leaves a wake pin in RTC mode, reading 0)
        pin = hw.input_pin(spec["pin"], pull, lambda p: flag.set())
        while True:
            dl = self.button.next_deadline()
            if dl is None:
                await flag.wait()
            else:
                wait = ticks_diff(dl, time.ticks_ms())
                if wait > 0:
                    try:
                        await asyncio.wait_for_ms(flag.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
            r = self.button.feed(time.ticks_ms(), pin.value())
            if r:
                self.post(("gesture", r))

    async def _vibrate(self, pattern):
        """One pulse: the alert is out; two: cancelled. The LED joins in only if the
        config asks (a light can give her away; a vibration cannot be seen)."""
        led = self.led if self.cfg.get("led_confirm") else None
        on = self.board["vibration"].get("active", 1) if self.vib else 1
        led_on = self.board["led"].get("active", 1) if led else 1
        for _ in range(1 if pattern == "alert" else 2):
            if self.vib:
                self.vib.value(on)
            if led:
                led.value(led_on)
            await asyncio.sleep_ms(150)
            if self.vib:
                self.vib.value(1 - on)
            if led:
                led.value(1 - led_on)
            await asyncio.sleep_ms(150)

    # ------------------------------------------------------------ run
    def start_tasks(self):
        self._sms_reading = []  # SMS indexes being read: a sweep and a +CMTI may name one
        self.ri_pin = None
        tasks = [asyncio.create_task(t) for t in (hw.run(), self.modem.reader(), self.brain(),
                                                  self.gps_task(), self.button_task(),
                                                  self.watchdog_task())]
        return tasks

    def _save_state(self, st):
        """alert.json, her position (fix, cell) sealed under this alert's key, which lives
        in RTC memory only (shred.py): LittleFS keeps old copies of the file in freed
        blocks, and they become unreadable once the key is dropped as the alert ends."""
        if st.get("active"):
            if st.get("fix") or st.get("cell"):
                import json
                key = shred.rtc_key(hw.rtc_memory())
                if key is None:  # the alert's first position: a new key, in RTC memory first
                    key = shred.new_key()
                    hw.rtc_memory(shred.rtc_record(key))
                st["loc"] = shred.seal(key, json.dumps([st["fix"], st["cell"]]).encode())
                st["fix"] = st["cell"] = None
        elif hw.rtc_memory():
            hw.rtc_memory(b"")  # the alert ended: its positions on the flash go with the key
        store.write_json(STATE_PATH, st)

    def _load_state(self):
        """alert.json with her position unsealed; ValueError if the file is corrupt."""
        saved = store.read_json(STATE_PATH)
        if isinstance(saved, dict) and saved.get("loc"):
            plain = shred.unseal(shred.rtc_key(hw.rtc_memory()), saved.pop("loc"))
            loc = None
            if plain is not None:
                import json
                try:
                    loc = json.loads(plain.decode())
                except ValueError:
                    pass
            if isinstance(loc, list) and len(loc) == 2:
                saved["fix"], saved["cell"] = loc
            else:  # a power-on since (RTC memory lost): resumed without her last position
                self.log.add("location_lost", "")
        return saved

    async def resume(self):
        """After a reset mid-alert: pick the alert up where it was. The modem kept its
        power through the ESP32's reset, so a call to C4 may still be up: keep it."""
        try:
            saved = self._load_state()
        except ValueError:
            saved = None
            self.log.add("state_corrupt", "")
        if not saved:
            self._start_machine()
            return
        live = False
        try:
            _, _, lines = await self.modem.cmd("AT+CLCC", 3000, expect="+CLCC", check=False)
            for ln in lines:
                c = atparse.parse_clcc(ln)
                live = live or bool(c and c[1] == 0 and c[2] in (0, 2, 3))
        except ModemError:
            pass
        for act in self.machine.from_state(saved, time.ticks_ms()):
            if live and (act[0] in ("dial", "covert_audio") or act[:2] == ("log", "dial")):
                continue
            self.act(act)
        if live:
            self.log.add("call_kept", "")
            self.call_active = True
            self.post(("call_state", "active", None))
        self._start_machine()

    def _start_machine(self):
        """Timers the machine keeps across boots (the daily status report), which carries
        the event log's head: its last entry's number and first 6 hex of its hash."""
        log = self.log
        self.machine.log_head = lambda: (log.seq, log.last[:6])
        for act in self.machine.start(time.ticks_ms()):
            self.act(act)


async def _main(test=None):
    """Start the firmware and run forever; test: the delivery-day test (testcall.py), a
    coroutine function (app, log) run once the firmware is ready, whose result is returned."""
    board = store.read_json("board.json")
    log = EventLog()
    log.add("boot", VERSION)
    import appboot  # boot only: dropped once used, its code's heap goes back
    cfg, safe = appboot.load_config(board, log)
    app = App(board, cfg, log, test=test is not None)
    appboot.keep_power_on(app)
    del sys.modules["appboot"], appboot
    app.start_tasks()
    await app.modem_init()
    asyncio.create_task(app.health_task())
    asyncio.create_task(app.standby_task())
    asyncio.create_task(app.sleep_task())
    await app.resume()
    gc.collect()
    log.add("ready", "safe" if safe else "ok")
    if test is None:
        await asyncio.Event().wait()  # run forever
    return await test(app, log)


def main():
    """Run forever; a crash is logged and the board restarts by itself."""
    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        raise  # a technician's Ctrl-C: stop at the REPL
    except Exception as e:
        try:
            EventLog(echo=True).add("crash", "%s:%s" % (type(e).__name__, e))
        except Exception:
            pass
        sys.print_exception(e)
        time.sleep_ms(1000)
        hw.reset()

