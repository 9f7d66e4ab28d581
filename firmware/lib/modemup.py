# Bringing the modem up, and back: power-on and configuration at boot, registration and
# where voice comes from (the A7670's 2G fallback), and the recovery ladder when the
# module goes silent. Functions of the modem service (radio.Radio), which loads this
# module only while one of them runs and drops it after (Radio._up): they run at boot
# and when something went wrong, and an .mpy firmware would otherwise hold their code
# in the heap through every alert.
import asyncio
import time

import hw
from atparse import reply_line
from modem import ModemError

VOICE_FALLBACK_S = 40            # for a voice registration on 2G after AT+CNMP=13
VOICE_SETTLE_S = 20              # LTE attaches before the voice (IMS) registration comes
REGISTER_S = 60                  # for any registration
# The 2G fallback found no 2G: not tried again for this long, doubled at each vain try up
# to the most. Each try takes the module off the network for VOICE_FALLBACK_S (no SMS, no
# 911) and writes AT+CNMP to its flash: every 5 minutes it was 15% of her day offline.
NO_2G_WAIT_S = 1800
NO_2G_WAIT_MAX_S = 28800
# A lost SIM read again (sim_again): a minute after the first try, doubling up to an hour
SIM_AGAIN_S = 60
SIM_AGAIN_MAX_S = 3600
CALL_READY_S = 20                # a module just (re)started says it takes calls within this
# the dialect's voice_of() voice_via -> the log's short name
VOICE_LOG = {"VoLTE": "volte", "2G": "2g"}
# ESP32 strapping pins pulled down at reset (datasheet; boton.boards.STRAPPING_PULL on the
# host): a supply enable there (the T-A7670X's GPIO12) is off from every chip reset until
# init raises it, so at boot the module has just had its supply cut.
OFF_AT_RESET = (2, 12)
# There, only a soft reboot (the pins keep their levels) finds the module running, and a
# running module answers at once, asleep or not: no need to wait out its boot time.
RUNNING_PROBE_MS = 3000


def pin_level(modem_profile, name, asserted):
    """The ESP32 level that asserts (or releases) the modem's PWRKEY, RESET or supply
    switch: PWRKEY and RESET are pressed by <name>_active (0, active-low, as on the
    T-Call; 1 through the T-A7670X's transistors); power_on is on when high."""
    active = 1 if name == "power_on" or modem_profile.get(name + "_active") == 1 else 0
    return active if asserted else 1 - active


def pin(r, name, asserted):
    """PWRKEY, RESET or the supply switch driven asserted (pressed, on) or released."""
    m = r.board["modem"]
    if m.get(name) is None:
        return None
    return hw.Pin(m[name], hw.Pin.OUT, value=pin_level(m, name, asserted))


def drive(r, pin, name, asserted):
    pin.value(pin_level(r.board["modem"], name, asserted))


async def power_up(r, probe_ms=None):
    """Supply on, RESET and PWRKEY released, then the module answering: True if it does.
    probe_ms: how long a silent module is asked before the ladder (default: boot's)."""
    # Supply on (T-Call: POWER_ON pin), RESET and PWRKEY released before anything else.
    pin(r, "power_on", True)
    pin(r, "reset", False)
    pin(r, "pwrkey", False)
    unpowered = r.board["modem"].get("power_on") in OFF_AT_RESET
    if await r.modem.probe(probe_ms or (RUNNING_PROBE_MS if unpowered else r.dialect.BOOT_MS)):
        r._modem_off = False
        return True
    # Silent at boot: off, asleep past the wake byte, or hung. The same safe ladder as a
    # recovery; PWRKEY only once the module is known to be off. Where the reset cut its
    # supply it is off: AT+CFUN and RESET cannot reach it, and going straight to the
    # supply cycle calls C4 again about 30 s sooner after a reset in the middle of her call.
    how = await revive(r, unpowered)
    if how is None:
        return False
    r.log.add("modem_recovered", how)
    return True


RADIO_QUERY = ("AT+CFUN?", "+CFUN")


async def init(r, poll_status):
    """Bring the module up and configure it; poll_status: the app's status poll (it
    reads the battery from the board's own gauge first). True if registered."""
    m = r.modem
    d = r.dialect
    r._poll_status = poll_status  # a recovery's init polls again
    r.settled = False
    m.echo_expected()  # until its ATE0: then an echo means it restarted in the middle
    if not await power_up(r):
        return False
    # an ESP32-only reset left it as it was: its sleep mode may be on. Logged as when the
    # standby sets it (a bench's "in standby" waits for that line after every reset)
    if await m.read_sleep():
        r.log.add("power", "modem_sleep")
    for c in await m.batch(d.INIT_FIRST):
        r.log.add("init_error", c)
    # A reset in the middle of sim_again (its AT+CFUN=0 sent, not yet its 1) leaves a module
    # that kept its supply with its radio and SIM off: "+CME ERROR: 3" to the SIM wait,
    # which no later step cures
    fun = (reply_line(await r._query(RADIO_QUERY), RADIO_QUERY[1]) or ":1").split(":")[-1].strip()
    if fun != "1":
        r.log.add("radio_on", fun)
        await r.at("AT+CFUN=1")
    # The network's time switch (AT+CLTS=1, AT+CTZU=1) lasts until the module's power-off
    # unless saved: read first, 0 means it was not, and after her flat battery the module
    # would register before the set-up, with no network time to tell how long she was off
    # (resume, safe mode). Then on, at once: a registration after it brings the time.
    q = d.NETWORK_TIME_QUERY
    lines = await r._query(q[:2])
    line = reply_line(lines, q[1])
    unsaved = bool(line) and (line.split(":")[-1].strip() == "0" or q[2:] and q[2] not in lines)
    await r.at(d.NETWORK_TIME_ON)
    # The SIM takes seconds after power-on; SMS settings are refused until it is ready.
    sim = "?"
    for _ in range(30):
        try:
            _, _, lines = await m.cmd("AT+CPIN?", 5000, expect="+CPIN")
            sim = reply_line(lines, "+CPIN") or "?"
        except ModemError as e:
            sim = e.reply()
        if d.sim_state(sim) != "wait":
            break
        await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
    # No SIM (or a locked one): every SMS setting is refused and no registration comes, so
    # neither is waited for. A set-up of its own then takes seconds, not a minute and
    # more: her dials wait behind each re-read of a lost SIM (sim_again), and the emergency
    # number, which needs no SIM where the network takes it, would wait with them.
    sim_ready = d.sim_state(sim) == "ready"
    if not sim_ready:
        r.log.add("sim_problem", sim.replace(" ", "_"))
        if r.sim_out is None and sim_unread(sim):
            # no SIM at boot: maybe one that lost contact, on a module that kept its
            # supply through the chip's reset. The health check reads it again.
            r.sim_out = (time.ticks_ms(), SIM_AGAIN_S)
    else:
        r.sim_back()
    for _ in range(10 if sim_ready else 1):
        failed = await m.batch(d.INIT)
        if not failed:
            break
        await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
    else:
        r.log.add("init_error", ",".join(failed))
    # A module slow to be "SMS Ready" (an A7670 takes ~10 s after the SIM) refuses text
    # mode and +CMTI past these tries: Radio.finish_settings sends them again.
    r.settings_due = tuple(failed)
    state = await wait_registered(r, REGISTER_S) if sim_ready else None
    gsm_gone = state is None and d.RAT_AUTO and await rat_mode_fixed(r)
    if gsm_gone:
        # An earlier fallback's GSM-only mode (saved by the module) where 2G is gone:
        # back to automatic, or not even SMS would get through.
        r.log.add("rat_auto", "")
        await r.at(d.RAT_AUTO)
        state = await wait_registered(r, REGISTER_S) if sim_ready else None
    registered = state is not None
    r.log.add("registered" if registered else "not_registered", "")
    if registered:
        await call_ready(r)
    if registered and d.RAT_QUERY:
        await find_voice(r, state, not gsm_gone and _2g_worth_a_try(r))
    else:
        r.post(("voice", d.voice_of(state, d.rat_of(()))[0]))
    await poll_status()
    await r.refresh_cell()
    # no time yet: the time switch may apply only from the module's next start on some firmware
    if registered and (await r.network_clock() is False or unsaved):
        await r.save_settings()
    # Its "SMS Ready" came while this set-up ran (an A7670 sends it late, after PB DONE
    # too), when the URC leaves the settings to the set-up: text mode and +CMTI now, not
    # at the next health check a minute on, with C4's command unread meanwhile
    await r.finish_settings()
    r.settled = True
    return registered


async def call_ready(r):
    """A module just (re)started refuses calls (+CME ERROR: 3) until it says so (the
    dialect's CALL_READY_URC, which Radio._urc follows), often after it has registered:
    wait for that, for CALL_READY_S at most, or the first dial after a reset in the middle
    of her alert fails and C4 is called again only after the redial's pause."""
    for _ in range(CALL_READY_S * 10):
        if r.call_ready:
            return
        await asyncio.sleep_ms(int(100 * hw.TIME_SCALE))
    r.log.add("call_ready_late", "")


async def reg_state(r):
    """"voice", "sms_only" or None, by the family's registration queries."""
    lines = []
    for cmd, prefix in r.dialect.REG_QUERIES:
        try:
            lines.extend((await r.modem.cmd(cmd, 2000, expect=prefix))[2])
        except ModemError:
            pass
    return r.dialect.reg_state(lines)


async def wait_registered(r, seconds, want=None):
    """The registration state once registered (for want: once it is want), polled
    every second for seconds at most; else None."""
    state = None
    for _ in range(seconds):
        state = await reg_state(r)
        if state is not None and (want is None or state == want):
            return state
        await asyncio.sleep_ms(int(1000 * hw.TIME_SCALE))
    return None if want is None else state


async def rat_mode_fixed(r):
    """The module's technology mode is not automatic (AT+CNMP? on the A7670)."""
    query = r.dialect.RAT_MODE_QUERY
    line = reply_line(await r._query(query), query[1])
    return bool(line) and line.split(":")[-1].strip() != r.dialect.RAT_AUTO_REPLY


async def find_voice(r, state, try_2g, settle_s=VOICE_SETTLE_S, lte_fails=False):
    """Voice where the network gives it. Registered for SMS only on LTE (no VoLTE for
    this SIM): GSM only (AT+CNMP=13, the module saves it) if there is 2G here, else
    back to automatic so that LTE still carries the SMS. Logs voice volte/2g/none and
    returns (voice, voice_via) as dialect.voice_of. settle_s: how long a fresh LTE
    registration may take to bring voice before the fallback. lte_fails: our calls on
    LTE end before they ring (lte_calls_fail): the same fallback, and LTE is no voice."""
    d = r.dialect
    rat = d.rat_of(await r._query(d.RAT_QUERY))
    if state == "sms_only" and rat == "LTE" and try_2g and settle_s:
        # the LTE attach comes before the voice registration: pinning 2G (saved by
        # the module) on a SIM whose VoLTE was only a moment away would be for good
        state = await wait_registered(r, settle_s, "voice")
        rat = d.rat_of(await r._query(d.RAT_QUERY))
    if (state == "sms_only" or lte_fails) and rat == "LTE" and try_2g:
        r.log.add("voice_fallback", "lte_calls_end" if lte_fails else "2g")
        await r.at(d.GSM_ONLY)
        state = await wait_registered(r, VOICE_FALLBACK_S, "voice")
        if state != "voice":  # no 2G here
            await r.at(d.RAT_AUTO)
            state = await wait_registered(r, REGISTER_S)
            r.no_2g = (time.ticks_ms(), min(2 * r.no_2g[1], NO_2G_WAIT_MAX_S) if r.no_2g else NO_2G_WAIT_S)
        else:
            r.no_2g = None
        rat = d.rat_of(await r._query(d.RAT_QUERY))
    voice, via = d.voice_of(state, rat)
    if lte_fails and rat == "LTE":
        voice = False  # no 2G here: her contacts are told to call 911 (alert.py "voice")
    r.log.add("voice", VOICE_LOG.get(via, "none") if voice else "none")
    r.post(("voice", voice))
    return voice, via


def _2g_worth_a_try(r):
    """No vain 2G fallback lately (NO_2G_WAIT_S, growing): where she is now may have 2G.
    One older than half the ticks period (6.2 days) reads negative: long past too."""
    if r.no_2g is None:
        return True
    d = time.ticks_diff(time.ticks_ms(), r.no_2g[0])
    return d < 0 or d >= int(r.no_2g[1] * 1000 * hw.TIME_SCALE)


def sim_unread(reply):
    """An AT+CPIN? reply that reading the SIM again may cure: none seen, or failing (not a
    PIN or PUK: only the technician can give those)."""
    return "INSERTED" in reply or reply in ("CME 10", "CME 13", "+CPIN: NOT READY")


async def sim_again(r):
    """The SIM was lost (Radio.sim_lost): AT+CFUN=0 then 1 has the module read it again
    (a SIM800 does not look for one by itself), then the set-up as after a restart. The
    next try waits SIM_AGAIN_S, doubling up to SIM_AGAIN_MAX_S, until the SIM answers."""
    wait = r.sim_out[1] if r.sim_out else 0
    r.sim_out = (time.ticks_ms(), min(max(2 * wait, SIM_AGAIN_S), SIM_AGAIN_MAX_S))
    r.log.add("sim_again", "")
    await r.at("AT+CFUN=0")
    await r.at("AT+CFUN=1")
    r._reinit_due = True  # Radio._recover_once sets it up: it waits for the SIM, registers


async def recover(r):
    """The module stopped answering: AT probe (wake byte first) -> AT+CFUN=1,1 ->
    RESET pin -> supply cut -> PWRKEY, each step only if the one before did not bring
    it back. A PWRKEY press of 1-33 s switches a running module OFF, and a hung module
    looks just like an off one, so the key is pressed only when the module is known
    to be off: its supply was just cut, or it announced its own power-down."""
    m = r.modem
    r.log.add("modem_silent", "")
    if await m.probe(3000):  # an echo here: it restarted by itself (Radio._restarted)
        r._modem_off = False
        r.log.add("modem_recovered", "probe")
        await m.read_sleep()
        # never set up (it answered only after the set-up gave up on it): set up now
        r._reinit_due = r._reinit_due or not r.settled
        return True
    r.settled = False  # the rungs restart it: its boot URC is ours
    how = await revive(r)
    if how is None:
        return False  # modem_hung or modem_dead logged; the health check tries again
    r.log.add("modem_recovered", how)
    if r.call_active or r.call_out:
        # restarted: her call, up or still ringing, went with it. (A dial still waiting
        # for the ladder has not gone out: its machine must stay in "dialing".)
        r.call_lost()
    await init(r, r._poll_status)  # it restarted: settings and sleep mode anew
    return True


async def revive(r, unpowered=False):
    """The rungs after a failed probe (unpowered: the module has had no supply, so only
    the supply cycle and PWRKEY can help). Returns how the module came back, or None."""
    m = r.modem
    d = r.dialect
    r.call_ready = False  # every rung restarts it; its boot URC may not come (autobaud)
    m.echo_expected()     # and its echo is ours, not a restart of its own
    # A module that announced its own power-down is off too: CFUN and RESET cannot reach
    # it, and waiting them out delayed C4's next call by ~10 s after a brown-out
    unpowered = unpowered or r._modem_off
    try:
        # A live but confused module answers OK and restarts (its sleep mode back to 0).
        if not unpowered and (await m.cmd("AT+CFUN=1,1", check=False))[0] == "OK" and \
                await m.probe(d.RESTART_MS):
            return "cfun"
    except ModemError:
        pass  # no answer at all: it did not hear it either
    rst = None if unpowered else pin(r, "reset", False)
    if rst:
        drive(r, rst, "reset", True)
        await asyncio.sleep_ms(max(150, int(d.RESET_MS * hw.TIME_SCALE)))
        drive(r, rst, "reset", False)
        if await m.probe(d.RESTART_MS):
            return "reset_pin"
    how = "pwrkey"
    # A supply enable that also holds the board's own power (the T-A7670X V1.2 on
    # battery resets when its GPIO12 goes low) is never cut: the ESP32 would go with it,
    # at every boot, for ever
    pwr = None if r.board["modem"].get("power_on_holds_board") else pin(r, "power_on", True)
    key = pin(r, "pwrkey", False)
    if pwr:
        # With PWRKEY released the module stays off when VBAT returns (SIM800 HD 4.2):
        # off for sure, so the press below switches it on.
        drive(r, pwr, "power_on", False)
        await asyncio.sleep_ms(int(d.OFF_MS * hw.TIME_SCALE))
        drive(r, pwr, "power_on", True)
        r._modem_off = True
        how = "power_cycle"
    elif d.PWRKEY_OFF_MS and key:
        if not unpowered:
            # running and hung (RESET did not help): switched off by its key
            drive(r, key, "pwrkey", True)
            await asyncio.sleep_ms(int(d.PWRKEY_OFF_MS * hw.TIME_SCALE))
            drive(r, key, "pwrkey", False)
            await asyncio.sleep_ms(int((d.POWER_DOWN_MS + d.OFF_MS) * hw.TIME_SCALE))
            how = "pwrkey_cycle"
        r._modem_off = True  # that, or the chip reset cut its supply (unpowered)
    if not r._modem_off:
        # Silent after CFUN and RESET, no supply switch, no power-down seen: maybe hung
        # but on, and a press would switch it off. Leave it; try again later.
        r.log.add("modem_hung", "no_supply_switch")
        r.gave_up_rx = m.last_rx_ms
        return None
    if key:  # none wired: the module switches itself on with its supply
        drive(r, key, "pwrkey", True)
        await asyncio.sleep_ms(int(d.PWRKEY_ON_MS * hw.TIME_SCALE))
        drive(r, key, "pwrkey", False)
    r._modem_off = False  # from here on it may be on: never press again unproven
    if await m.probe(d.POWER_ON_MS):
        return how
    r.log.add("modem_dead", how)
    r.gave_up_rx = m.last_rx_ms
    return None


async def recheck_voice(r):
    """A dial refused (Radio.dial, at most every VOICE_RECHECK_S): the network may have
    stopped carrying voice for this SIM since boot (a cell without VoLTE). Look again and
    fall back to 2G as at init; or, not registered at all while pinned to GSM (2G gone
    since a fallback), back to automatic. The machine's next redial then goes through."""
    try:
        state = await reg_state(r)
        if state == "sms_only" and _2g_worth_a_try(r):
            # registered long ago, and C4 waits: no settling time
            await find_voice(r, state, True, 0)
        elif state is None and r.dialect.RAT_AUTO and await rat_mode_fixed(r):
            # 2G gone since a fallback pinned the module to it: no calls and no SMS
            # until a reboot, unless it goes back to automatic now
            r.log.add("rat_auto", "")
            await r.at(r.dialect.RAT_AUTO)
    finally:
        r._voice_checking = False


async def lte_calls_fail(r):
    """Our calls ended at once, never ringing, SILENT_FAILS in a row (Radio.call_ended),
    though registered for voice: VoLTE failing silently (module firmware, an operator
    without VoLTE interworking for this SIM, IMS registration lost). On LTE, GSM only
    where there is 2G, as for a SIM registered for SMS only; the machine's next redial
    goes over it. Not on LTE: nothing to fall back from."""
    # a dial refused meanwhile must not take GSM not registered yet for 2G gone
    # (recheck_voice would put automatic back)
    r._voice_checking = True
    try:
        await find_voice(r, await reg_state(r), _2g_worth_a_try(r), 0, True)
    finally:
        r._voice_checking = False
