# The modem service: the modem's lifecycle (init, the recovery ladder, cell refresh,
# status poll, network time) and the alert machine's modem actions (covert audio,
# dial, hang up, answer, SMS), carried out through the family's dialect
# (dialect_<family>.py).  What the modem says goes back to the app as events through
# post(); what a refusal means is decided by aterrors and the dialect, not here.
import asyncio
import time

import atparse
import aterrors
import eventlog
import hw
import sms
from modem import Modem, ModemError, ModemTimeout

NETWORK_TIME_AFTER = 1704067200  # 2024-01-01: an AT+CCLK? before it is the module's default
FAMILIES = ("sim800", "a7670")  # dialect_<family>.py modules in this firmware
VOICE_FALLBACK_S = 40            # for a voice registration on 2G after AT+CNMP=13
VOICE_SETTLE_S = 20              # LTE attaches before the voice (IMS) registration comes
REGISTER_S = 60                  # for any registration
VOICE_RECHECK_S = 300            # a refused dial looks at the voice service at most this often
# the dialect's voice_of() voice_via -> the log's short name
VOICE_LOG = {"VoLTE": "volte", "2G": "2g"}


def dialect_for(family, log=None):
    """The board profile's modem.family -> its dialect module; an unknown family is
    logged and the SIM800's is used (the button must still try)."""
    family = family or "sim800"
    if family not in FAMILIES:
        if log:
            log.add("modem_family_unknown", str(family)[:16])
        family = "sim800"
    return __import__("dialect_" + family)


def pin_level(modem_profile, name, asserted):
    """The ESP32 level that asserts (or releases) the modem's PWRKEY, RESET or supply
    switch: PWRKEY and RESET are pressed by <name>_active (0, active-low, as on the
    T-Call; 1 through the T-A7670X's transistors); power_on is on when high."""
    active = 1 if name == "power_on" or modem_profile.get(name + "_active") == 1 else 0
    return active if asserted else 1 - active


class Radio:
    def __init__(self, board, log, post):
        self.board = board
        self.log = log
        self.post = post  # an event for the alert machine
        m = board["modem"]
        self.dialect = dialect_for(m.get("family"), log)
        self.uart = hw.UART(m["uart"], m["baud"], m["tx"], m["rx"])
        self.modem = Modem(self.uart, self._urc, hw.TIME_SCALE)
        self.call_active = False    # the modem reports our call as up
        self.ok = asyncio.Event()   # no recovery running: new modem work may start
        self.ok.set()
        self._end_cause = None
        self._answered_id = None    # +CLCC id of the incoming call answer() picked up
        self._recovering = False
        self._modem_off = False     # known to be off (power-down URC, or supply cut)
        self._sms_reading = []      # SMS indexes being read: a sweep and a +CMTI may name one
        self._warned = None         # (supply warning URC, ticks) last passed on

    # ------------------------------------------------------------ the machine's actions
    async def covert_audio(self):
        """Mic up, speaker and ringer silent before ATD/ATA; retried, because a call with
        the speaker on could give her away."""
        await self._gate()
        # one lock hold for every try: the dial (or answer) queued behind it waits for them
        if await self.modem.batch((self.dialect.COVERT_AUDIO,), attempts=3):
            self.log.add("audio_error", "covert_settings_refused")

    async def dial(self, number):
        self._end_cause = None
        self._answered_id = None
        await self._gate()
        try:
            await self.modem.cmd("ATD%s;" % number, 20000)
        except ModemError as e:
            self.log.add("dial_error", e.log_name())
            self.post(("call_state", "ended", "error"))
            if isinstance(e, ModemTimeout):
                self.kick_recovery()
            elif self.dialect.RAT_QUERY:
                asyncio.create_task(self._recheck_voice())

    _voice_checked_ms = None
    _voice_checking = False

    async def _recheck_voice(self):
        """A dial refused: the network may have stopped carrying voice for this SIM since
        boot (a cell without VoLTE). Look again, at most every VOICE_RECHECK_S, and fall
        back to 2G as at init; or, not registered at all while pinned to GSM (2G gone
        since a fallback), back to automatic. The machine's next redial then goes through."""
        now = time.ticks_ms()
        last = self._voice_checked_ms
        if self._voice_checking or (last is not None and time.ticks_diff(now, last)
                                    < int(VOICE_RECHECK_S * 1000 * hw.TIME_SCALE)):
            return
        self._voice_checking = True
        self._voice_checked_ms = now
        try:
            state = await self._reg_state()
            if state == "sms_only":
                # registered long ago, and C4 waits: no settling time
                await self.find_voice(state, True, 0)
            elif state is None and self.dialect.RAT_AUTO and await self._rat_mode_fixed():
                # 2G gone since a fallback pinned the module to it: no calls and no SMS
                # until a reboot, unless it goes back to automatic now
                self.log.add("rat_auto", "")
                await self.at(self.dialect.RAT_AUTO)
        finally:
            self._voice_checking = False

    async def hangup(self):
        await self.at(self.dialect.HANGUP)

    async def answer(self):
        """ATA's OK: the call is connected. The modem reports an incoming call's progress
        with +CLCC lines of dir 1, which _urc takes only for the call answered here (by
        its id): a stranger's call ending must not end ours."""
        await self._gate()
        try:
            await self.modem.cmd(self.dialect.ANSWER, 20000)
        except ModemError as e:
            self.log.add("at_error", str(e))
            return
        self.call_active = True
        self._answered_id = self.dialect.answered_id(await self._query(("AT+CLCC", "+CLCC")))
        if self._answered_id is None:
            await self.call_ended()  # gone between ATA's OK and the call list
            return
        self.post(("call_state", "active", None))
        await self._in_call_audio(True)

    async def _in_call_audio(self, answered=False):
        """What the family accepts only during a connected call (the A7670's speaker
        mute), each time a call becomes active: it resets when the call ends. Refused
        because the call already ended is no error."""
        d = self.dialect
        if d.IN_CALL_AUDIO and await self.modem.batch(d.IN_CALL_AUDIO, attempts=3) and \
                (answered or self.call_active):
            self.log.add("audio_error", "in_call_refused")

    async def at(self, command):
        try:
            await self.modem.cmd(command, 20000)
        except ModemError as e:
            self.log.add("at_error", str(e))

    async def send_sms(self, number, text, n):
        """Report ("sms_sent", n, ok, refused_for_good) back to the machine."""
        refused = False
        await self._gate()
        try:
            await self.modem.send_sms(number, sms.encode(text, "GSM"))
            ok = True
        except ModemError as e:
            self.log.add("sms_error", e.log_name())
            ok = False
            refused = aterrors.sms_retry_class(e.kind, e.code) == aterrors.REFUSED
            if isinstance(e, ModemTimeout):
                self.kick_recovery()
        self.post(("sms_sent", n, ok, refused))

    async def _gate(self):
        try:
            await asyncio.wait_for_ms(self.ok.wait(), int(30000 * hw.TIME_SCALE))
        except asyncio.TimeoutError:
            pass  # try anyway: the alert must not stall on a slow recovery

    # ------------------------------------------------------------ what the modem says
    def _urc(self, name, args):
        d = self.dialect
        if name == "+CLCC":
            c = atparse.parse_clcc(args)
            if not c:
                return
            state = d.CLCC_STATE.get(c[2])
            if c[1] != 0:
                # incoming calls ring through RING/+CLIP; only the end of the one we
                # answered is ours (answer() reported it active)
                if state == "ended" and c[0] == self._answered_id:
                    asyncio.create_task(self.call_ended())
                return
            if state == "ended":
                asyncio.create_task(self.call_ended())
            elif state:
                if state == "active" and not self.call_active:
                    asyncio.create_task(self._in_call_audio())
                self.call_active = state == "active"
                self.post(("call_state", state, None))
        elif name in d.CALL_END:
            self._end_cause = d.CALL_END[name]
        elif name == "+CLIP":
            self.post(("incoming_call", atparse.parse_clip(args) or ""))
        elif name == "+CMTI":
            asyncio.create_task(self.read_sms(atparse.parse_cmti(args)))
        elif name in d.POWER_WARNING or name in d.POWER_DOWN:
            if name not in d.POWER_DOWN and self._repeated(name):
                return
            self.log.add("modem_power", name.replace(" ", "_"))
            if name in d.POWER_WARNING:  # not our own power-off: the supply is failing
                self.post(("power_warning", d.POWER_WARNING[name]))
            if name in d.POWER_DOWN:
                self.modem.abort("power down")
                asyncio.create_task(self._power_back())

    def _repeated(self, warning):
        """The same supply warning again within the dialect's WARNING_REPEAT_MS (the A7670
        repeats AT+CVALARM's every 10 s while the supply is out of range): not news."""
        now = time.ticks_ms()
        last = self._warned
        if last and last[0] == warning and \
                time.ticks_diff(now, last[1]) < int(self.dialect.WARNING_REPEAT_MS * hw.TIME_SCALE):
            return True
        self._warned = (warning, now)
        return False

    async def call_ended(self):
        """Tell a normal hang-up by the far end from a drop: only AT+CEER knows."""
        was_active, self.call_active = self.call_active, False
        self._answered_id = None
        lines = ()
        if was_active:
            cmd, prefix = self.dialect.CALL_END_CAUSE_QUERY
            try:
                _, _, lines = await self.modem.cmd(cmd, 2000, expect=prefix, check=False)
            except ModemError:
                pass
        self.post(("call_state", "ended", self.dialect.end_cause(was_active, self._end_cause, lines)))

    async def read_sms(self, index):
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

    async def sweep(self):
        """What the modem said while the ESP32 slept: a call ringing or gone (AT+CLCC) and
        unread SMS (AT+CMGL, left unread until each is read and deleted)."""
        try:
            _, _, lines = await self.modem.cmd("AT+CLCC", 3000, expect="+CLCC", check=False)
            for number in self.dialect.ringing(lines):
                self.post(("incoming_call", number))
            if self.call_active and self.dialect.our_call(lines, self._answered_id) is None:
                asyncio.create_task(self.call_ended())  # its NO CARRIER was lost
            _, _, lines = await self.modem.cmd('AT+CMGL="REC UNREAD",1', 5000, expect="+CMGL",
                                               check=False)
        except ModemError as e:
            self.log.add("sweep_error", str(e))
            return
        for ln in lines:
            if ln[:6] == "+CMGL:":
                await self.read_sms(int(ln[6:].split(",")[0]))

    async def call_survived(self):
        """After an ESP32 reset: the modem kept its power, so our call may still be up:
        its state ("active", "dialing", "alerting"), or None."""
        try:
            _, _, lines = await self.modem.cmd("AT+CLCC", 3000, expect="+CLCC", check=False)
        except ModemError:
            return None
        return self.dialect.our_call(lines)

    # ------------------------------------------------------------ lifecycle
    def _pin(self, name, asserted):
        """PWRKEY, RESET or the supply switch driven asserted (pressed, on) or released."""
        m = self.board["modem"]
        if m.get(name) is None:
            return None
        return hw.Pin(m[name], hw.Pin.OUT, value=pin_level(m, name, asserted))

    def _drive(self, pin, name, asserted):
        pin.value(pin_level(self.board["modem"], name, asserted))

    async def init(self, poll_status):
        """Bring the module up and configure it; poll_status: the app's status poll (it
        reads the battery from the board's own gauge first). True if registered."""
        m = self.modem
        d = self.dialect
        self._poll_status = poll_status  # a recovery's init polls again
        # Supply on (T-Call: POWER_ON pin), RESET and PWRKEY released before anything else.
        self._pin("power_on", True)
        self._pin("reset", False)
        self._pin("pwrkey", False)
        if await m.probe(d.BOOT_MS):
            self._modem_off = False
        else:
            # Silent at boot: off, asleep past the wake byte, or hung. The same safe
            # ladder as a recovery; PWRKEY only once the module is known to be off.
            how = await self._revive()
            if how is None:
                return False
            self.log.add("modem_recovered", how)
        await m.read_sleep()  # an ESP32-only reset left it as it was: its sleep mode may be on
        for c in await m.batch(d.INIT_FIRST):
            self.log.add("init_error", c)
        # The SIM takes seconds after power-on; SMS settings are refused until it is ready.
        sim = "?"
        for _ in range(30):
            try:
                _, _, lines = await m.cmd("AT+CPIN?", 5000, expect="+CPIN")
                sim = lines[0] if lines else "?"
            except ModemError as e:
                sim = e.reply()
            if d.sim_state(sim) != "wait":
                break
            await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
        if d.sim_state(sim) != "ready":
            self.log.add("sim_problem", sim.replace(" ", "_"))
        for _ in range(10):
            failed = await m.batch(d.INIT)
            if not failed:
                break
            await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
        else:
            self.log.add("init_error", ",".join(failed))
        state = await self._wait_registered(REGISTER_S)
        gsm_gone = state is None and d.RAT_AUTO and await self._rat_mode_fixed()
        if gsm_gone:
            # An earlier fallback's GSM-only mode (saved by the module) where 2G is gone:
            # back to automatic, or not even SMS would get through.
            self.log.add("rat_auto", "")
            await self.at(d.RAT_AUTO)
            state = await self._wait_registered(REGISTER_S)
        registered = state is not None
        self.log.add("registered" if registered else "not_registered", "")
        if registered and d.RAT_QUERY:
            await self.find_voice(state, not gsm_gone)
        await poll_status()
        await self.refresh_cell()
        if registered:
            await self.network_clock(save=True)
        return registered

    async def _reg_state(self):
        """"voice", "sms_only" or None, by the family's registration queries."""
        lines = []
        for cmd, prefix in self.dialect.REG_QUERIES:
            try:
                lines.extend((await self.modem.cmd(cmd, 2000, expect=prefix))[2])
            except ModemError:
                pass
        return self.dialect.reg_state(lines)

    async def _wait_registered(self, seconds, want=None):
        """The registration state once registered (for want: once it is want), polled
        every second for seconds at most; else None."""
        state = None
        for _ in range(seconds):
            state = await self._reg_state()
            if state is not None and (want is None or state == want):
                return state
            await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
        return None if want is None else state

    async def _query(self, query):
        cmd, prefix = query
        try:
            return (await self.modem.cmd(cmd, 3000, expect=prefix, check=False))[2]
        except ModemError:
            return ()

    async def _rat_mode_fixed(self):
        """The module's technology mode is not automatic (AT+CNMP? on the A7670)."""
        lines = await self._query(self.dialect.RAT_MODE_QUERY)
        return bool(lines) and lines[0].split(":")[-1].strip() != self.dialect.RAT_AUTO_REPLY

    async def find_voice(self, state, try_2g, settle_s=VOICE_SETTLE_S):
        """Voice where the network gives it. Registered for SMS only on LTE (no VoLTE for
        this SIM): GSM only (AT+CNMP=13, the module saves it) if there is 2G here, else
        back to automatic so that LTE still carries the SMS. Logs voice volte/2g/none and
        returns (voice, voice_via) as dialect.voice_of. settle_s: how long a fresh LTE
        registration may take to bring voice before the fallback."""
        d = self.dialect
        rat = d.rat_of(await self._query(d.RAT_QUERY))
        if state == "sms_only" and rat == "LTE" and try_2g and settle_s:
            # the LTE attach comes before the voice registration: pinning 2G (saved by
            # the module) on a SIM whose VoLTE was only a moment away would be for good
            state = await self._wait_registered(settle_s, "voice")
            rat = d.rat_of(await self._query(d.RAT_QUERY))
        if state == "sms_only" and rat == "LTE" and try_2g:
            self.log.add("voice_fallback", "2g")
            await self.at(d.GSM_ONLY)
            state = await self._wait_registered(VOICE_FALLBACK_S, "voice")
            if state != "voice":  # no 2G here
                await self.at(d.RAT_AUTO)
                state = await self._wait_registered(REGISTER_S)
            rat = d.rat_of(await self._query(d.RAT_QUERY))
        voice, via = d.voice_of(state, rat)
        self.log.add("voice", VOICE_LOG.get(via, "none") if voice else "none")
        return voice, via

    async def refresh_cell(self):
        """Serving cell id + LAC: the location of last resort when there is no fix
        (AT+CIPGSMLOC no longer works; C4 can resolve a cell id with the carrier)."""
        cmd, prefix = self.dialect.CELL_QUERY
        try:
            _, _, lines = await self.modem.cmd(cmd, 3000, expect=prefix, check=False)
        except ModemError:
            return
        cell = self.dialect.serving_cell(lines)
        if cell:
            self.post(("cell", cell))

    async def poll(self, battery_known):
        """The module's battery reading (unless the board's gauge gave one) and signal."""
        d = self.dialect
        for (cmd, prefix), read, kind in ((d.BATTERY_QUERY, d.battery_pct, "battery"),
                                          (d.SIGNAL_QUERY, _rssi, "signal")):
            if kind == "battery" and battery_known:
                continue
            try:
                _, _, lines = await self.modem.cmd(cmd, 2000, expect=prefix)
            except ModemError:
                continue
            v = read(lines[0]) if lines else None
            if v is not None:
                self.post((kind, v))

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

    async def set_sleep(self, on):
        """The module's own sleep mode; True if it took it."""
        d = self.dialect
        try:
            await self.modem.cmd(d.SLEEP_SET % (d.SLEEP_ON if on else d.SLEEP_OFF), 2000)
        except ModemError:
            return False
        self.modem.sleepy = on
        self.log.add("power", "modem_sleep" if on else "modem_awake")
        return True

    async def check(self, every_ms):
        """Health check: silent for every_ms and no answer to AT: run the recovery ladder."""
        if time.ticks_diff(time.ticks_ms(), self.modem.last_rx_ms) > every_ms:
            try:
                ok = (await self.modem.cmd("AT", 1000, check=False))[0] == "OK"
            except ModemTimeout:
                ok = False
            if not ok and not self._recovering:
                self._recovering = True
                await self._recover_once()

    # ------------------------------------------------------------ recovery ladder
    def kick_recovery(self):
        """A command timed out: start the recovery ladder now, not at the next health check."""
        if not self._recovering:
            self._recovering = True
            asyncio.create_task(self._recover_once())

    async def _recover_once(self):
        self.ok.clear()  # new modem work waits for the ladder instead of queueing before it
        try:
            await self.recover()
        finally:
            self._recovering = False
            self.ok.set()

    async def _power_back(self):
        """The module switched itself off (supply sag, or someone's PWRKEY): try to bring
        it back once the supply may have recovered; the ladder ends in a power-on."""
        self._modem_off = True  # it said so: PWRKEY may switch it on without a supply cut
        await asyncio.sleep_ms(int(5000 * hw.TIME_SCALE))
        self.kick_recovery()

    async def recover(self):
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
        self.log.add("modem_recovered", how)
        await self.init(self._poll_status)  # it restarted: settings and sleep mode anew
        return True

    async def _revive(self):
        """The rungs after a failed probe. Returns how the module came back, or None."""
        m = self.modem
        d = self.dialect
        try:
            # A live but confused module answers OK and restarts (its sleep mode back to 0).
            if (await m.cmd("AT+CFUN=1,1", 2000, check=False))[0] == "OK" and \
                    await m.probe(d.RESTART_MS):
                return "cfun"
        except ModemError:
            pass  # no answer at all: it did not hear it either
        rst = self._pin("reset", False)
        if rst:
            self._drive(rst, "reset", True)
            await asyncio.sleep_ms(max(150, int(d.RESET_MS * hw.TIME_SCALE)))
            self._drive(rst, "reset", False)
            if await m.probe(d.RESTART_MS):
                return "reset_pin"
        how = "pwrkey"
        pwr = self._pin("power_on", True)
        if pwr:
            # With PWRKEY released the module stays off when VBAT returns (SIM800 HD 4.2):
            # off for sure, so the press below switches it on.
            self._drive(pwr, "power_on", False)
            await asyncio.sleep_ms(int(d.OFF_MS * hw.TIME_SCALE))
            self._drive(pwr, "power_on", True)
            self._modem_off = True
            how = "power_cycle"
        if not self._modem_off:
            # Silent after CFUN and RESET, no supply switch, no power-down seen: maybe hung
            # but on, and a press would switch it off. Leave it; try again later.
            self.log.add("modem_hung", "no_supply_switch")
            return None
        key = self._pin("pwrkey", False)
        if key:  # none wired: the module switches itself on with its supply
            self._drive(key, "pwrkey", True)
            await asyncio.sleep_ms(int(d.PWRKEY_ON_MS * hw.TIME_SCALE))
            self._drive(key, "pwrkey", False)
        self._modem_off = False  # from here on it may be on: never press again unproven
        if await m.probe(d.POWER_ON_MS):
            return how
        self.log.add("modem_dead", how)
        return None


def _rssi(line):
    v = atparse.parse_csq(line)
    return v[0] if v else None
