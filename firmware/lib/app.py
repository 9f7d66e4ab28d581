# The firmware's wiring: drivers feed events to the alert state machine (alert.py) and
# this module carries out the actions it returns, through one table of handlers.  Every
# decision lives in the pure parts (alert.py and its parts, powerpolicy.py, aterrors.py,
# the modem family's dialect); the modem's lifecycle is the modem service (radio.py).
# What happened goes back to the machine as events: facts, never conclusions.
import asyncio
import gc
import sys
import time

import hw
import shred  # at boot: an .mpy firmware must not load it mid-alert
import store
from alert import MAX_GAP_S, AlertMachine
import eventlog
from eventlog import EventLog
from gesture import Button, ticks_diff
from nmea import NMEAParser
import powerpolicy
from radio import Radio

from version import VERSION, build
STATE_PATH = "alert.json"
CRASHES_PATH = "crashes.json"  # bootcheck.CRASHES_PATH: crashes in a row
STABLE_MS = 600_000   # up this long without a crash: the count starts over
RESAVE_MS = 10_000    # a state the flash refused is saved again this often (the brain's tick)
# What she feels (pulses, ms each), as docs/guia-beneficiaria.md tells her: one short, her
# alert is on its way; two short, cancelled; three long, it got nothing out (alert.py's
# unsent_warn_s): ask for help another way.
VIBRATIONS = {"alert": (1, 150), "cancel": (2, 150), "unsent": (3, 600)}


class App:
    def __init__(self, board, cfg, log, test=False):
        # Every attribute is made here (alert.AlertMachine.__init__ says why: a dict that
        # grows mid-alert takes a new table at the heap's peak; here a flash refusing her
        # alert's save grew it past 29 entries, in _persist's handler of that failure).
        self.power = None       # powerpolicy.PowerPolicy, from standby_task on
        self.ri_pin = None
        self.button = None
        self.button_flag = None
        self.fix_ms = None      # ticks of the last GPS fix
        self.sms_ok = 0         # the delivery-day test's counts (the machine's "test_done")
        self.sms_failed = 0
        self._cell_after = False
        self.gauge_bad = False  # the board's battery gauge read no cell (logged once)
        self.unsaved = 0        # saves of the state the flash refused in a row (_persist)
        self.unsaved_t = 0
        self.saved_active = None  # what alert.json says (None: not known yet)
        self.off_since = None   # (saved at, resumed at ticks): a resume that waits for real time
        # False until start_machine(): the machine gets no event before appboot.resume has
        # given it her saved alert (an event handled first, a low battery at boot, persisted
        # an idle machine over alert.json and the alert was lost). They wait in the inbox.
        self.started = False
        self.board = board
        self.log = log
        self.test = test
        self.gesture_cfg = cfg.get("gesture") or {}
        self.machine = AlertMachine(cfg)
        # one configuration for the whole firmware: hers over the machine's defaults (a
        # copy per part held the same keys two and three times on a 56 KB heap)
        cfg = self.cfg = self.machine.cfg
        cfg["fw"] = VERSION
        if test:
            cfg["test_mode"] = True
        self.inbox = []
        self.wake = asyncio.Event()
        # every timer the machine sets, made at its size: a dict that gains keys takes a
        # new table each time it is full, at her press (the alert sets four at once)
        self.timers = {"max_alert": None, "update": None, "unsent": None, "dial_timeout": None,
                       "redial": None, "sms_retry": None, "sms_timeout": None, "daily": None}
        self.brain_seen = time.ticks_ms()
        self.test_done = asyncio.Event()  # C4 answered and every alert SMS is accepted or refused
        self.radio = Radio(board, log, self.post)
        g = board["gps"]
        self.gps_uart = hw.UART(g["uart"], g["baud"], g["tx"], g["rx"])
        self.vib = self._out(board.get("vibration"))
        en = g.get("enable")
        self.gps_en = hw.Pin(en, hw.Pin.OUT, value=1) if en is not None else None
        self.gps_logged = None  # the GPS switch the log last recorded (_gps_power)
        self.nmea = NMEAParser()  # its stats.checksum_ok: whether the GPS talks (standby_task)
        self.got_fix = asyncio.Event()
        self.led = self._out(board.get("led"))

    @staticmethod
    def _out(spec):
        if not spec:
            return None
        return hw.Pin(spec["pin"], hw.Pin.OUT, value=1 - spec.get("active", 1))

    # ------------------------------------------------------------ event plumbing
    def post(self, ev):
        inbox = self.inbox
        if not self.started:  # held until resume: bounded (no ticks; only the newest fix)
            if ev[0] == "tick":
                ev = None
            elif ev[0] == "fix":
                for i in range(len(inbox)):
                    if inbox[i][0] == "fix":
                        inbox[i], ev = ev, None
                        break
        if ev is not None:
            inbox.append(ev)
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
            while self.started and self.inbox:
                ev = self.inbox.pop(0)
                if ev[0] == "tick":
                    now = time.ticks_ms()
                    if self.unsaved and ticks_diff(now, self.unsaved_t) >= RESAVE_MS:
                        self._resave(now)
                    if self.off_since and hw.unix_time() >= eventlog.SYNCED_AFTER:
                        at, resumed = self.off_since
                        self.off_since = None
                        off = hw.unix_time() - ticks_diff(now, resumed) // 1000 - at
                        self.post(("off_gap", min(max(off, 0), MAX_GAP_S) * 1000))
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
                asyncio.create_task(self.radio.refresh_cell())

    def act(self, a):
        h = App.ACTIONS.get(a[0])  # kind -> handler (the table is after the class)
        if h is None:
            self.log.add("unknown_action", str(a[0]))
        else:
            h(self, a)

    # ------------------------------------------------------------ action handlers
    def _resave(self, now=None):
        try:
            st = self.machine.to_state(now)
        except MemoryError:
            st = None  # counted unsaved again: the next tick tries once more
        self._persist(("persist", st))

    def _log(self, a):
        self.log.add(a[1], a[2])

    def _persist(self, a):
        # A flash that refuses the write (full, worn, corrupt: OSError), or a heap with no
        # block for it (MemoryError: at the press, the edge of a 56 KB heap), must not stop
        # the actions after it: the dial and the SMS go out. Saved again at the next
        # persist, or after RESAVE_MS (the brain's tick), so a reset then resumes her alert.
        # a[1] None: the machine found no heap for the state itself (AlertMachine._finish)
        why = "MemoryError"
        if a[1] is not None:
            try:
                self._save_state(a[1])
                why = None
            except MemoryError:
                pass
            except OSError as e:
                why = e.args[0] if e.args else ""
        if why is not None:
            self.unsaved_t = time.ticks_ms()
            self.unsaved += 1
            if self.unsaved == 1:
                self.log.add("state_unsaved", why)
            if not self.machine.active and self.saved_active is not False:
                # the alert she ended must not come back at the next reset (a watchdog, a
                # flat battery): the file that still says active goes, and with it only
                # its PIN count and unsent cancel notices
                if store.remove(STATE_PATH):
                    self.saved_active = False
                    self.log.add("state_dropped", "")
            return
        if self.unsaved:
            self.log.add("state_saved", "after_%d" % self.unsaved)
            self.unsaved = 0

    def _set_timer(self, a):
        self._cancel_timer(a[1])
        self.timers[a[1]] = asyncio.create_task(self._timer(a[1], a[2]))

    def _cancel(self, a):
        self._cancel_timer(a[1])

    def _start_vibrate(self, a):
        asyncio.create_task(self._vibrate(a[1]))

    def _gesture_active(self, a):
        if self.button:
            self.button.set_active(a[1])

    def _refresh_cell(self, a):
        self._cell_after = True  # after this batch of actions: ATD goes first

    def _test_done(self, a):
        self.sms_ok, self.sms_failed = a[1], a[2]
        self.test_done.set()

    # the modem's actions run as tasks: the brain never waits on the UART
    def _covert_audio(self, a):
        asyncio.create_task(self.radio.covert_audio())

    def _dial(self, a):
        asyncio.create_task(self.radio.dial(a[1]))

    def _hangup(self, a):  # also how an unwanted call is rejected
        asyncio.create_task(self.radio.hangup(a[0] == "hangup"))

    def _answer(self, a):
        asyncio.create_task(self.radio.answer())

    def _send_sms(self, a):
        asyncio.create_task(self.radio.send_sms(a[1], a[2], a[3]))

    def _cancel_timer(self, name):
        t = self.timers.get(name)
        if t:
            self.timers[name] = None
            t.cancel()

    async def _timer(self, name, ms):
        await asyncio.sleep_ms(ms)
        self.timers[name] = None
        self.post(("timer", name))

    # ------------------------------------------------------------ power
    async def standby_task(self):
        """Standby power as powerpolicy decides it: the modem sleeps and the GPS runs only
        until it has a fresh fix, then rests; during an alert both stay fully awake."""
        p = self.power = powerpolicy.PowerPolicy(self.cfg, self.gps_en is not None,
                                                 time.ticks_ms())
        r = self.radio
        while True:
            await asyncio.sleep_ms(500)
            on = p.heard(time.ticks_ms(), self.nmea.stats.checksum_ok)
            if on is not None:
                self.post(("gps_silent", on))
            for what, on in p.feed(time.ticks_ms(), self.machine.active, r.call_active,
                                   self.fix_ms, r.modem.sleepy):
                if what == "modem_sleep":
                    if not (r.unreachable() or r.bringing_up):
                        await r.set_sleep(on)  # refused or put off: asked again next time
                else:
                    self._gps_power(on)

    def _gps_power(self, on):
        self.gps_en.value(1 if on else 0)
        # The log keeps the GPS's regime, not its standby duty cycle: 96 wakes a day would
        # rotate the 256-entry ring within a day (the alerts, resets and the registry's
        # anchor with it). Logged: the first rest, the GPS held on for an alert, the rest after.
        if (on and not self.machine.active) or on == self.gps_logged:
            return
        self.gps_logged = on
        self.log.add("power", "gps_on" if on else "gps_off")

    async def sleep_task(self):
        """ESP32 light sleep between events, when powerpolicy.may_light_sleep allows."""
        if not self.cfg.get("light_sleep", True):
            return
        spec = self.board["button"]
        m = self.board["modem"]
        ri = m.get("ri")
        if ri is not None:
            # an open-drain RI (the T-A7670X's) floats when released: "ri_pull" "up"
            self.ri_pin = hw.input_pin(ri, hw.Pin.PULL_UP if m.get("ri_pull") == "up" else None)
        active = spec.get("active", 0)
        armed = active
        hw.setup_wake(spec["pin"], armed, ri)
        chunk, sweep_ms = powerpolicy.sleep_timing(self.cfg, ri is not None, hw.TIME_SCALE)
        r = self.radio
        swept = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(20)  # let every ready task run first
            if not powerpolicy.may_light_sleep(
                    self.machine.active, r.call_active, self.power is None or self.power.gps_on,
                    bool(self.inbox), r.modem.sleepy or r.unreachable(), r.modem.busy() or r.bringing_up,
                    bool(self.ri_pin and self.ri_pin.value() == 0),
                    bool(self.button and self.button.next_deadline() is not None)):
                await asyncio.sleep_ms(200)
                continue
            left = sweep_ms - ticks_diff(time.ticks_ms(), swept)
            if left <= 0:
                swept = time.ticks_ms()
                await r.sweep()
                continue
            # ext0 wakes on a level: a button held down (stuck, or pressed in a bag) woke
            # every sleep at once, ~50 times a second, and flattened the battery in a day.
            # While it is down the wake waits for its release; then for a press again.
            want = 1 - active if self.button and self.button.debouncer.pressed else active
            if want != armed:
                armed = want
                hw.setup_wake(spec["pin"], armed, ri)
            why = hw.lightsleep(min(chunk, left))
            hw.after_wake()  # the wake pins back to GPIO, or the button reads pressed
            if self.button_flag:
                self.button_flag.set()  # the wake edge raised no IRQ: sample the pin now
            if why == "ri":
                swept = time.ticks_ms()
                await r.sweep()  # its URC came while the UART was deaf

    def _sync_clock(self, utc):
        """Set the RTC from a GPS fix's UTC (y, m, d, hh, mm, ss, ms) when it is unset or
        has drifted a minute: the event log stamps real time only after this."""
        to, news = eventlog.clock_correction(hw.unix_time(), utc)
        if to is not None:
            hw.set_rtc(to)
            if news:
                self.log.add("clock", "gps")

    async def health_task(self):
        """Watch the modem (the recovery ladder if it went silent) and poll its status.
        (During a call of ours, Radio.watch_call asks the module more often.)"""
        every = int(self.cfg.get("health_every_s", 60) * 1000)
        status_every = int(self.cfg.get("status_every_s", 600) * 1000)
        last_status = time.ticks_ms()
        r = self.radio
        while True:
            await asyncio.sleep_ms(every)
            await r.check(every)
            if r.sms_missed or (self.machine.active and not r.unreachable()):
                # in an alert no standby sweep runs: C4's CANCELAR whose +CMTI was lost on
                # the line waited unread for the rest of it (the listing is asked for only
                # when AT+CPMS? says the SIM holds a message)
                await r.sweep()
            if time.ticks_diff(time.ticks_ms(), last_status) >= status_every:
                last_status = time.ticks_ms()
                await self.poll_status()
                await r.refresh_cell()
                await r.network_clock()  # no time at boot: a later registration may bring it

    async def poll_status(self):
        """The battery from the board's own gauge (ADC or PMU) if it has one, else the
        modem's; and the signal."""
        import pmu
        mv = pmu.gauge_mv(self.board, getattr(self, "power_chip", None), getattr(self, "power_spec", None))
        if mv is not None and mv < pmu.GAUGE_MIN_MV:
            # no cell could run the board at this: "0%" in every SMS and a low-battery SMS
            # to her contacts, while the modem's own reading knew better
            if not self.gauge_bad:
                self.gauge_bad = True
                self.log.add("battery_gauge", "implausible_%dmV" % mv)
            mv = None
        if mv is not None:
            self.post(("battery", powerpolicy.battery_pct(mv)))
        await self.radio.poll(mv is not None)

    # ------------------------------------------------------------ GPS and button
    async def gps_task(self):
        parser = self.nmea
        reader = asyncio.StreamReader(self.gps_uart)
        buf = bytearray(64)
        mv = memoryview(buf)
        epoch = None        # the newest fix, not yet taken: its GGA may follow
        epoch_ms = 0
        while True:
            n = await reader.readinto(buf)
            if not n:
                await asyncio.sleep_ms(100)
                continue
            if parser.feed(mv[:n]):
                # its GGA never came (an RMC-only receiver); kept from before the GPS
                # rested, it is not where she is now
                if epoch is not None and time.ticks_diff(time.ticks_ms(), epoch_ms) < 2000:
                    self._take_fix(epoch)
                epoch = parser.pop_latest()
                epoch_ms = time.ticks_ms()
            # Most receivers send RMC first and GGA (satellites, HDOP: her SMS's "+-Xm")
            # a few ms later; the machine copies a fix when it takes it, so it waits for
            # the epoch's GGA (merged into it), or the next epoch's RMC.
            if epoch is not None and epoch.gga:
                self._take_fix(epoch)
                epoch = None

    def _take_fix(self, fix):
        if not fix.valid:
            return  # its GGA said no fix or dead reckoning: the last real fix stays hers
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
        # a press already there (held through a reset, a brown-out) raises no edge on the
        # chip: its level is taken now, or the press was never seen
        flag.set()
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
        """VIBRATIONS[pattern]: the alert is on its way, cancelled, or got nothing out.
        The LED joins in only if the config asks (a light can give her away; a vibration
        cannot be seen)."""
        led = self.led if self.cfg.get("led_confirm") else None
        on = self.board["vibration"].get("active", 1) if self.vib else 1
        led_on = self.board["led"].get("active", 1) if led else 1
        pulses, ms = VIBRATIONS[pattern]
        for _ in range(pulses):
            if self.vib:
                self.vib.value(on)
            if led:
                led.value(led_on)
            await asyncio.sleep_ms(ms)
            if self.vib:
                self.vib.value(1 - on)
            if led:
                led.value(1 - led_on)
            await asyncio.sleep_ms(150)

    # ------------------------------------------------------------ run
    def start_tasks(self):
        tasks = [asyncio.create_task(t) for t in (hw.run(), self.radio.modem.reader(),
                                                  self.brain(), self.gps_task(),
                                                  self.button_task(), self.watchdog_task())]
        return tasks

    def _save_state(self, st):
        """alert.json, her position (fix, cell) sealed under this alert's key, which lives
        in RTC memory only (shred.py): LittleFS keeps old copies of the file in freed
        blocks, and they become unreadable once the key is dropped as the alert ends."""
        unsealed = False
        mem = hw.rtc_memory()
        step = shred.position_step(st, bool(mem))
        if step == "seal":
            import json
            key = shred.rtc_key(mem)
            if key is None:  # the alert's first position: a new key, in RTC memory first
                key = shred.new_key()
                hw.rtc_memory(shred.rtc_record(key))
            try:
                st["loc"] = shred.seal(key, json.dumps([st["fix"], st["cell"]]).encode())
            except MemoryError:
                # the alert itself must reach the flash, or a reset would lose it:
                # saved without her position, which the next fix brings back
                unsealed = True
            st["fix"] = st["cell"] = None
        elif step == "forget":
            hw.rtc_memory(b"")  # the alert ended: its positions on the flash go with the key
        st["at"] = hw.unix_time()  # the RTC outlives the resets that keep the key: the
        store.write_json(STATE_PATH, st)  # resume learns how old the saved ages are
        self.saved_active = st["active"]
        if unsealed:
            self.log.add("location_unsaved", "MemoryError")  # after the save: it allocates too

    def start_machine(self):
        """Timers the machine keeps across boots (the daily status report), which carries
        the event log's head: its last entry's number and first 6 hex of its hash."""
        log = self.log
        self.machine.log_head = lambda: (log.seq, log.last[:6])
        for act in self.machine.start(time.ticks_ms()):
            self.act(act)
        self.started = True
        self.wake.set()  # what came in meanwhile



# The machine's actions -> what carries each out.  One table for the class (functions,
# called with the App): no bound-method objects on the heap.
App.ACTIONS = {
    "log": App._log, "persist": App._persist, "set_timer": App._set_timer,
    "cancel_timer": App._cancel, "vibrate": App._start_vibrate,
    "gesture_active": App._gesture_active, "refresh_cell": App._refresh_cell,
    "test_done": App._test_done, "covert_audio": App._covert_audio, "dial": App._dial,
    "hangup": App._hangup, "reject": App._hangup, "answer": App._answer,
    "send_sms": App._send_sms,
}


_running = None  # the App, for the crash handler's last save of her alert
_log = None      # the boot's EventLog, for the crash handler: a new one reads every
                 # segment back, which fails on the heap a MemoryError left


async def _main(test=None):
    """Start the firmware and run forever; test: the delivery-day test (testcall.py), a
    coroutine function (app, log) run once the firmware is ready, whose result is returned."""
    asyncio.get_event_loop().set_exception_handler(_task_died)
    board = store.read_json("board.json")
    global _log
    log = _log = EventLog()
    log.add("boot", build())  # never raises: a flash that refuses writes still boots
    import appboot  # boot only: dropped once used, its code's heap goes back
    cfg, safe = appboot.load_config(board, log)
    global _running
    app = _running = App(board, cfg, log, test=test is not None)
    del cfg  # the App holds her configuration (merged with the defaults): this copy goes
    appboot.keep_power_on(app)
    app.start_tasks()
    r = app.radio
    r.set_up.clear()  # the machine's modem work waits: the set-up, then a call kept
    saved = appboot.saved_state(app)
    running = saved is not None and app.machine.resumes(saved)
    if not running:
        appboot.start_now(app, saved)  # a press from now on is acted on (but for the modem)
    await r.init(app.poll_status)
    asyncio.create_task(app.health_task())
    asyncio.create_task(app.standby_task())
    asyncio.create_task(app.sleep_task())
    if running:
        await appboot.resume(app, saved)  # its call to C4 may have outlived the reset
    else:
        await appboot.kept_call(app, saved)
    r.set_up.set()
    del sys.modules["appboot"], appboot, saved
    if not app.radio.unreachable():
        # An SMS (or a ring) the module took while this chip rebooted announced itself to
        # no one; during her resumed alert no standby sweep would look for it.
        await app.radio.sweep()
    gc.collect()
    log.add("ready", "safe" if safe else "ok")
    asyncio.create_task(_forget_crashes())
    if test is None:
        await asyncio.Event().wait()  # run forever
    return await test(app, log)


async def _forget_crashes():
    """Crashes count towards a crash loop (bootcheck.CRASH_LOOP) until the firmware has
    stayed up STABLE_MS."""
    await asyncio.sleep_ms(STABLE_MS)
    try:
        import os
        os.remove(CRASHES_PATH)
    except OSError:
        pass


def main():
    """Run forever; a crash is logged and the board restarts by itself."""
    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        raise  # a technician's Ctrl-C: stop at the REPL
    except Exception as e:
        crash(e)


def _task_died(loop, context):
    # A task that dies leaves the firmware half alive (a dead brain task: events pile up
    # until the heap is full and the watchdog bites, nothing logged, her alert unsaved):
    # it is a crash like any other.
    crash(context.get("exception") or RuntimeError(context.get("message", "task died")))


def crash(e):
    """Log the crash, save her running alert, count it (bootcheck's crash-loop rule) and
    restart the board."""
    try:
        (_log or EventLog(echo=True)).add("crash", "%s:%s" % (type(e).__name__, e))
    except Exception:
        pass
    try:  # her alert reaches the flash before the restart, whatever failed: the board
        # resumes it (a crash before its first save, in that save, would otherwise lose it)
        # (or the end of one the flash refused: still "active" on it)
        if _running is not None and (_running.machine.active or _running.unsaved):
            _running._resave()
    except Exception:
        pass
    try:  # bootcheck sends a crash loop to safe mode
        try:
            n = store.read_json(CRASHES_PATH, 0)
        except ValueError:  # a damaged count counts as none and is written anew (skipped,
            n = 0           # no crash was ever counted: the crash loop went on for ever)
        store.write_json(CRASHES_PATH, (n if isinstance(n, int) else 0) + 1)
    except Exception:
        pass
    sys.print_exception(e)
    time.sleep_ms(1000)
    hw.reset()

