# Safe mode: the firmware cannot start (a module missing, corrupt or too big for the heap,
# no usable board profile), and the button must still call C4. main.py runs it when
# bootcheck.check() says why (and only then loads it). It imports almost nothing (hw,
# MicroPython's own asyncio) and talks bare AT to the modem, so what broke the firmware
# cannot break this. It lives in the flash's root, outside lib/, as bootcheck does; the
# release image freezes both too, for a filesystem that will not mount (frozen/nofs.py).

import bootcheck

# Mic up so C4 hears the surroundings; speaker and ringer silent so nobody near her does
# (what the firmware's dialect_<family>.py sends), and how long PWRKEY is pressed to switch
# the module on (an A7670 pressed >= 2.5 s switches OFF), by the board's modem family.
COVERT = {"sim800": "AT+CMIC=0,15;+CLVL=0;+CRSL=0", "a7670": "AT+CMICGAIN=7;+COUTGAIN=0"}
PWRKEY_ON_MS = {"sim800": 1200, "a7670": 100}
# Where the supply cannot be cut: an A7670 held this long switches off, hung or not, and
# its on-press is far shorter (dialect PWRKEY_OFF_MS); the SIM800's presses overlap.
PWRKEY_OFF_MS = {"a7670": 3000}
POWER_DOWN_MS = 3000  # after the off-press, until it is off (Toff(uart) typ 2 s)
OFF_MS = {"sim800": 1000, "a7670": 2000}  # the supply cut before the press (dialect OFF_MS)
# Probes of ~300 ms: at boot (a module just powered needs ~3 s to listen, an A7670 ~11 s),
# and after the press.
FIRST_TRIES = {"sim800": 17, "a7670": 50}
BOOT_TRIES = {"sim800": 34, "a7670": 50}
# A supply enable on an ESP32 strapping pin pulled down at reset (modemup.OFF_AT_RESET; the
# T-A7670X's GPIO12) is off from every chip reset: only a soft reboot finds that module
# running, and a running module answers at once. About 3 s of asking, then the cycle.
OFF_AT_RESET = (2, 12)
RUNNING_TRIES = 10
# A module that (re)started says it booted, then that it takes calls; a dial before the
# second is refused (+CME ERROR: 3), and a refused dial costs one of the ROUNDS.
BOOT_URC = {"sim800": "RDY", "a7670": "*ATREADY"}
CALL_READY_URC = {"sim800": "Call Ready", "a7670": "PB DONE"}
CALL_READY_MS = 20000
# An A7670 whose dial is refused on LTE (a SIM without VoLTE) may still have voice on 2G:
# GSM only (saved by the module), as modemup.find_voice does; back to automatic if 2G does
# not answer within VOICE_FALLBACK_S, or the module is left with no network at all.
GSM_ONLY, RAT_AUTO = "AT+CNMP=13", "AT+CNMP=2"
VOICE_FALLBACK_S = 40
# A dial before the module is on a network ends NO CARRIER at once and costs one of the
# ROUNDS: each dial waits for it (+CREG, or on LTE +CEREG, 1 home or 5 roaming), as long as
# modemup.REGISTER_S at most (weak coverage), then dials all the same.
REGISTER_S = 60
REG_QUERIES = {"sim800": ("AT+CREG?",), "a7670": ("AT+CREG?", "AT+CEREG?")}
# The network's time (NITZ) comes with a registration only after the dialect's
# NETWORK_TIME_ON: sent as soon as the module listens, before it registers (the SIM800's
# network LED dark with it: a light can give her away).
NETWORK_TIME_ON = {"sim800": "AT+CLTS=1;+CNETLIGHT=0", "a7670": "AT+CTZU=1"}
# Or its dial is taken and the call ends at once, never ringing (module firmware whose
# VoLTE fails): SILENT_FAILS such calls in a row (within QUICK_END_MS of the dial, ended
# by the network, never alerting) count as a refused dial, as radio.call_ended counts them.
QUICK_END_MS = 5000
SILENT_FAILS = 2
ENDED = ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "ERROR")
# The module switching itself off (a sagging battery under its transmit bursts): whatever
# call it carried is over, and no NO CARRIER will say so.
POWER_DOWN = ("NORMAL POWER DOWN", "UNDER-VOLTAGE POWER DOWN", "OVER-VOLTAGE POWER DOWN")
PRESSES, WINDOW_MS = 3, 2000
ROUNDS = 3           # times through the C4 numbers before waiting for the next press
RETRY_MS = 5000      # pause between rounds, and before bringing back a module lost in a call
ALERT_PATH = "alert.json"  # app.STATE_PATH: safe mode imports nothing of lib/


def run(why, log=True):
    """Safe mode, forever: log why, then call C4 covertly whenever the button asks.
    log=False: the console only (no filesystem to write the event log to)."""
    bootcheck.purge()  # what the failed start left behind: its heap comes back (safe keeps its names)
    print("safe mode:", why)
    _note("safe_mode", why, log)
    board, numbers, hold_ms = bootcheck.PLAN or bootcheck.plan()[0]
    # Her alert, if one runs, whatever stopped the firmware (a crash loop in the alert, a
    # module a reset left corrupt, a board profile a flipped bit broke): its call goes on
    # from here. True, or the Unix time it ends at by real time the RTC does not have yet.
    call_now = bootcheck.alert_running()
    bootcheck.purge()  # what alert_running loaded to tell (appboot, alert)
    import asyncio
    asyncio.new_event_loop()  # run again after a failed run (main.py): none of its tasks
    asyncio.run(_main(board, numbers, hold_ms, call_now, log))


def _note(event, detail, log):
    """An event in the log a technician reads (echoed as "EV ..."), or on the console only:
    no filesystem, or the log's module is what is broken."""
    if log:
        try:
            from eventlog import EventLog
            EventLog(echo=True).add(event, detail)
            return
        except Exception:
            pass
    print("EV", event, detail)


def _save_alert(now):
    """Her press, saved as the firmware saves an alert just begun (alert.json, version 1;
    written whole, then renamed over): a reset (a brown-out under the modem's transmit
    burst, the watchdog) carries it on, in safe mode, or in the firmware once it starts
    again, which then sends her contacts their SMS too. What the file held (counters, the
    last alert's messages) gives way to her alert."""
    import os
    tmp = ALERT_PATH + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write('{"v": 1, "active": true, "elapsed_ms": 0, "at": %d}' % now)
        os.rename(tmp, ALERT_PATH)
        return True
    except OSError:  # a full or failing flash: the call goes on all the same
        return False


class _At:
    """Bare AT: one command at a time, lines read until its final result."""

    def __init__(self, uart, scale):
        import asyncio
        self.r = asyncio.StreamReader(uart)
        self.w = asyncio.StreamWriter(uart, {})
        self.scale = scale
        self.lines = []  # what arrived outside a command: call progress

    async def line(self, ms):
        import asyncio
        try:
            raw = await asyncio.wait_for_ms(self.r.readline(), max(1, int(ms * self.scale)))
        except asyncio.TimeoutError:
            return None
        try:
            return raw.decode().strip()
        except UnicodeError:  # line noise
            return ""

    async def cmd(self, text, ms=5000):
        """The final result ("OK", "ERROR", ...) or None when the modem is silent."""
        self.w.write(text.encode() + b"\r")
        await self.w.drain()
        while True:
            ln = await self.line(ms)
            if ln is None:
                return None
            if ln == "OK" or ln in ENDED or ln.startswith("+CME ERROR"):
                return ln
            if ln:
                self.lines.append(ln)


async def _main(board, numbers, hold_ms, call_now=False, log=True):
    import asyncio
    import time

    import hw
    asyncio.create_task(hw.run())
    wdt = hw.WDT(timeout=30000)
    ip = board.get("ip5306")
    # as appboot does: the boost stays on unless the profile says false, else the T-Call's
    # power chip cuts a quiet board
    if ip and ip.get("keep_boost_on") is not False:
        try:
            hw.i2c_write(ip["sda"], ip["scl"], ip.get("addr", 0x75), 0x00, 0x37)
        except OSError:
            pass
    m = board["modem"]
    at = _At(hw.UART(m["uart"], m["baud"], m["tx"], m["rx"]), hw.TIME_SCALE)
    at.family = _family(m)
    at.covert = COVERT[at.family]
    ready = asyncio.Event()
    calling = []  # the call task while one runs: one alert at a time

    async def modem_up():
        await _power_modem(hw, m, at, wdt, chip_reset=True)
        ready.set()

    async def revive():
        if not await _probe(at, 3, wdt):  # off or hung since: up again, the safe way
            await _power_modem(hw, m, at, wdt)

    async def alert(ends_at=None):
        await ready.wait()
        try:
            await revive()
            if ends_at and await _over_by_network_time(hw, at, wdt, ends_at):
                print("EV expired safe_mode")
                return
            # the firmware's own call may still be up or ringing (a crash loop mid-alert
            # hands over within seconds): a dial meanwhile is refused (+CME ERROR: 3), and
            # every round went that way. Followed to its end instead; C4 answered it: done
            at.lines = []
            if await _call_listed(at) and any((_clcc(ln) or [""])[0] == "0" for ln in at.lines):
                print("EV safe_call_kept")
                if await _call_end(at, wdt) == "answered":
                    return
            await _call_c4(at, numbers, wdt, revive)
        finally:
            calling.clear()

    def trigger(ends_at=None, pressed=False):
        if calling:
            return
        if pressed:
            _note("safe_alert", "saved" if log and _save_alert(hw.unix_time()) else "not_saved", log)
        calling.append(asyncio.create_task(alert(ends_at)))

    asyncio.create_task(modem_up())  # the button is watched meanwhile: a press is never lost
    b = board["button"]
    pin = hw.Pin(b["pin"], hw.Pin.IN, hw.Pin.PULL_UP if b.get("pull") == "up" else None)
    active = b.get("active", 0)
    print("safe mode: button watched")  # from here a press calls C4 (the rig's tests wait on it)
    if call_now:  # her alert was running: its call goes on from here
        trigger(None if call_now is True else call_now)
    down_at, fired, presses = None, False, []
    fed = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(20)
        now = time.ticks_ms()
        if time.ticks_diff(now, fed) >= 1000:
            wdt.feed()
            fed = now
        if presses and time.ticks_diff(now, presses[0]) >= WINDOW_MS:
            # gone once out of the window: a press kept for days would read as recent
            # once the ticks wrap, and one bump would complete two stray presses
            presses = [t for t in presses if 0 <= time.ticks_diff(now, t) < WINDOW_MS]
        if pin.value() == active:
            if down_at is None:
                down_at, fired = now, False
            elif not fired and time.ticks_diff(now, down_at) >= hold_ms:
                fired = True
                trigger(pressed=True)
        elif down_at is not None:
            presses = [t for t in presses if 0 <= time.ticks_diff(now, t) < WINDOW_MS] + [now]
            down_at = None
            if not fired and len(presses) >= PRESSES:
                presses = []
                trigger(pressed=True)


async def _power_modem(hw, m, at, wdt, chip_reset=False):
    """Supply on and RESET released. A silent module may be off or hung, and a PWRKEY press
    switches a running one OFF: as app's ladder does, the key is pressed only once the
    module is known to be off, after a supply cut, on boards that can cut it. chip_reset:
    safe mode's start, where a supply enable on a strapping pin pulled down at reset
    (OFF_AT_RESET) was off; later (revive, mid-alert) such a module may be running and
    hung, and only the off-press brings it back."""
    import asyncio
    family = at.family
    bootcheck.modem_pins({"modem": m})
    at.lines = []
    cut_by_reset = chip_reset and m.get("power_on") in OFF_AT_RESET
    tries = RUNNING_TRIES if cut_by_reset else FIRST_TRIES[family]
    started = False
    if not await _probe(at, tries, wdt):
        # a supply enable that also holds the board's power (T-A7670X V1.2 on battery) is
        # never cut: the ESP32 would reset with it
        cut = m.get("power_on") is not None and not m.get("power_on_holds_board")
        off_ms = PWRKEY_OFF_MS.get(family)
        if not cut and not (off_ms and m.get("pwrkey") is not None):
            print("EV safe_modem_hung no_supply_switch")
            return
        released = bootcheck.release(m, "pwrkey")
        key = None if m.get("pwrkey") is None else hw.Pin(m["pwrkey"], hw.Pin.OUT, value=released)
        if cut:
            supply = hw.Pin(m["power_on"], hw.Pin.OUT, value=0)
            await asyncio.sleep_ms(int(OFF_MS[family] * hw.TIME_SCALE))
            supply.value(1)  # back on with PWRKEY released: the module stays off until pressed
        elif not cut_by_reset:
            key.value(1 - released)  # running and hung: switched off by its key
            await asyncio.sleep_ms(int(off_ms * hw.TIME_SCALE))
            key.value(released)
            await asyncio.sleep_ms(int((POWER_DOWN_MS + OFF_MS[family]) * hw.TIME_SCALE))
        if key is not None:  # none wired: it switches on with its supply
            key.value(1 - released)
            await asyncio.sleep_ms(int(PWRKEY_ON_MS[family] * hw.TIME_SCALE))
            key.value(released)
        started = True
        await _probe(at, BOOT_TRIES[family], wdt)
    await at.cmd(NETWORK_TIME_ON[family])
    boot = BOOT_URC[family]  # the A7670's comes as "*ATREADY: 1"
    if started or any(ln.startswith(boot) for ln in at.lines):
        await _call_ready(at, CALL_READY_URC[family], wdt)
    await at.cmd("ATE0")
    await at.cmd("AT+CLCC=1")  # call states as +CLCC lines: answered or not
    # the radio on: a reset in the middle of the firmware's re-read of the SIM (AT+CFUN=0,
    # then 1) leaves a module that kept its supply with radio and SIM off
    await at.cmd("AT+CFUN=1", 10000)
    # Silent from the set-up on, as the firmware's: C4 calling back before her press would
    # ring at the module's default level (SIM800 100) on a speaker at her side.
    await at.cmd(at.covert)
    print("safe mode: modem ready")


async def _call_ready(at, urc, wdt):
    """Until the module just started says it takes calls, CALL_READY_MS at most."""
    import time
    start, limit = time.ticks_ms(), int(CALL_READY_MS * at.scale)
    while urc not in at.lines and time.ticks_diff(time.ticks_ms(), start) < limit:
        wdt.feed()
        ln = await at.line(1000)
        if ln:
            at.lines.append(ln)
    if urc not in at.lines:
        print("EV safe_call_ready_late")


def _family(m):
    """The board's modem family as safe mode knows it (an unknown one: the SIM800's)."""
    family = m.get("family")
    return family if isinstance(family, str) and family in COVERT else "sim800"


async def _probe(at, tries, wdt):
    for _ in range(tries):
        wdt.feed()
        if await at.cmd("AT", 300) == "OK":
            return True
    return False


async def _call_c4(at, numbers, wdt, revive):
    """Dial C4's numbers in turn until one answers (covertly) and the call ends, ROUNDS
    times at most. A call the module lost (it switched itself off or went silent) did not
    end: after RETRY_MS (a sagging battery recovers once the load is gone) the module is
    brought back (revive) and C4 called again, without waiting for her next press."""
    import asyncio
    import time
    fallback = at.family == "a7670"  # once per alert: a refused dial, or calls that never ring
    unrung = 0
    for i in range(ROUNDS):
        if i:
            await asyncio.sleep_ms(int(RETRY_MS * at.scale))  # no hammering a busy line
        for number in numbers:
            revived = False
            while True:
                wdt.feed()
                for _ in range(3):  # a call with the speaker on could give her away
                    if await at.cmd(at.covert) == "OK":
                        break
                reg = await _registered(at, wdt, REG_QUERIES[at.family], REGISTER_S)
                if not reg:
                    print("EV safe_not_registered")
                dialed = time.ticks_ms()
                result = None if reg is None else await _dial(at, number)
                if result is None and not revived:
                    # silent (it switched itself off, or hung, while it waited for the
                    # network): up again the safe way and this number again, once; counted
                    # as refused, each number cost 6 minutes of unanswered queries
                    print("EV safe_modem_silent")
                    revived = True
                    await revive()
                    continue
                ended = "refused" if result != "OK" else await _call_end(at, wdt)
                if ended == "answered":
                    return
                if ended == "lost":
                    print("EV safe_call_lost")
                    await asyncio.sleep_ms(int(RETRY_MS * at.scale))
                    await revive()
                    break
                quick = time.ticks_diff(time.ticks_ms(), dialed) < int(QUICK_END_MS * at.scale)
                unrung = unrung + 1 if ended == "unrung" and quick else 0
                if fallback and (ended == "refused" or unrung >= SILENT_FAILS):
                    fallback = False
                    if await _voice_via_2g(at, wdt):
                        continue  # the same number again, over 2G
                break


async def _dial(at, number):
    """ATD's final result; the call's progress lines land in at.lines from here."""
    print("EV safe_dial", "..." + number[-4:])
    at.lines = []
    return await at.cmd("ATD%s;" % number, 20000)


async def _voice_via_2g(at, wdt):
    """GSM only, until registered for voice (+CREG 1 or 5): True. Else back to automatic."""
    await at.cmd(GSM_ONLY)
    if await _registered(at, wdt, ("AT+CREG?",), VOICE_FALLBACK_S):
        print("EV safe_voice_fallback 2g")
        return True
    await at.cmd(RAT_AUTO)
    print("EV safe_voice_fallback none")
    return False


async def _over_by_network_time(hw, at, wdt, ends_at):
    """Whether the network's clock (AT+CCLK?, set at registration where the network sends
    its time and the module's time switch is on, which the firmware saves) is past ends_at. The
    RTC is set from it, as the firmware's Radio.network_clock does. Unknown (no network,
    no time, a module's default clock, or lib/ broken): False, her alert goes on."""
    await _registered(at, wdt, REG_QUERIES[at.family], REGISTER_S)
    at.lines = []
    if await at.cmd("AT+CCLK?", 2000) != "OK":
        return False
    try:
        from atparse import parse_cclk
        from eventlog import NETWORK_TIME_AFTER, SYNCED_AFTER
        now = [parse_cclk(ln) for ln in at.lines if ln.startswith("+CCLK")][0]
    except Exception:
        return False
    if now is None or now < NETWORK_TIME_AFTER:
        return False
    if hw.unix_time() < SYNCED_AFTER:
        hw.set_rtc(now)
    return now >= ends_at


async def _registered(at, wdt, queries, seconds):
    """Asked every second, seconds at most: True once a query's answer says registered
    (+CREG: <n>,<stat>[,...] or +CEREG: ...; stat 1 home, 5 roaming); None as soon as the
    module does not answer (off or hung: no registration will come)."""
    import asyncio
    for _ in range(seconds):
        wdt.feed()
        at.lines = []
        for q in queries:
            if await at.cmd(q) is None:
                return None
        for ln in at.lines:
            i = ln.find(":")
            if ln[:i] in ("+CREG", "+CEREG") and ln[i + 1:].split(",")[1:2] in (["1"], ["5"]):
                return True
        await asyncio.sleep_ms(int(1000 * at.scale))
    return False


async def _call_end(at, wdt):
    """Wait for the call to end: "answered" (C4 picked up, then it ended), "lost" (the
    module switched itself off or went silent: nobody ended it), "unrung" (the network
    ended it before it rang), or "" (not answered)."""
    answered = "unrung"
    while True:
        wdt.feed()
        while at.lines:
            ln = at.lines.pop(0)
            # +CLCC: <id>,<dir 0=ours>,<stat 0=active 3=alerting 6=ended>,...
            stat = _clcc(ln)
            if stat == ["0", "0"]:
                answered = "answered"
                # the A7670's speaker muted too, as the firmware does (COUTGAIN=0 may not be
                # silence); its NO CARRIER taken as this command's result ends the call
                if at.family == "a7670" and await at.cmd("AT+VMUTE=1", 2000) in ENDED[:4]:
                    return answered
            elif stat == ["0", "3"] and answered == "unrung":
                answered = ""  # it rang at C4
            elif ln in POWER_DOWN:
                return "lost"
            elif stat == ["0", "6"] or ln == "NO CARRIER":
                return answered
            elif ln in ENDED:  # busy, no answer, no dial tone: C4's line, not the call
                return "" if answered == "unrung" else answered
        ln = await at.line(10000)
        if ln:
            at.lines.append(ln)
        elif ln is None:  # 10 s of quiet: ask; a module that does not answer has lost the call
            listed = await _call_listed(at)
            if listed is None:
                return "lost"
            if not listed:
                return answered


def _clcc(ln):
    """[<dir>, <stat>] of a +CLCC line (dir 0: a call this button placed; stat 0 active,
    3 alerting, 6 ended), or None for any other line."""
    return ln[6:].strip().split(",")[1:3] if ln.startswith("+CLCC:") else None


async def _call_listed(at):
    """AT+CLCC lists a call (its lines land in at.lines); False if none, None if the
    module does not answer."""
    n = len(at.lines)
    result = await at.cmd("AT+CLCC", 2000)
    if result is None:
        return None
    return result == "OK" and any(ln.startswith("+CLCC:") for ln in at.lines[n:])
