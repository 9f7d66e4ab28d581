# Boot-only steps of app._main: her configuration (config.json) read and checked, or the
# safe fallback; the power chip told to keep the supply on; an alert a reset interrupted
# picked up again. app._main imports this, uses it once and drops it from sys.modules,
# so that its code's heap goes back to the firmware (issue 13).
import time

import hw
import shred
import store
from alert import MAX_GAP_S
from eventlog import SYNCED_AFTER

REQUIRED = ("c4_numbers", "contacts", "alias", "device_id")


def validate(cfg):
    """Reason the config is unusable, or None."""
    if not isinstance(cfg, dict):
        return "not an object"
    for k in REQUIRED:
        if k not in cfg:
            return "missing " + k
    if not cfg["c4_numbers"] or not all(isinstance(n, str) and n for n in cfg["c4_numbers"]):
        return "no C4 number"
    if not 1 <= len(cfg["contacts"]) <= 5:
        return "contacts must be 1-5"
    return None


def load_config(board, log):
    """(config, safe_mode). A missing, corrupt or oversized config still lets the button
    call C4: safe mode, with what still holds of her configuration (salvage)."""
    try:
        cfg = store.read_json("config.json", None, store.JSON_MAX)
        problem = "missing" if cfg is None else validate(cfg)
    except ValueError as e:  # "corrupt config.json", "too_big config.json"
        cfg, problem = None, str(e).split()[0]
    if problem is None:
        return cfg, False
    log.add("safe_mode", "config_" + problem.replace(" ", "_"))
    return salvage(cfg, board), True


def salvage(cfg, board):
    """What still holds of a configuration that does not validate (one flipped bit in a
    key's name threw all of it away, her C4 numbers and contacts intact): her C4 numbers as
    safe mode reads them (bootcheck.c4_numbers: else the board's safe_c4, else 911), each
    contact that is still a phone number, her alias and the device's name; safe defaults
    for the rest."""
    import bootcheck  # loaded already: main.py asked it before starting the firmware
    c = cfg if isinstance(cfg, dict) else {}
    contacts = c.get("contacts")
    contacts = [n for n in contacts if _is_number(n)][:5] if isinstance(contacts, list) else []
    alias, device = c.get("alias"), c.get("device_id")
    return {"c4_numbers": bootcheck.c4_numbers(c, board), "contacts": contacts,
            "alias": alias if isinstance(alias, str) else "",
            "device_id": device if isinstance(device, str) and device else "SAFE",
            "sms_c4": False}


def _is_number(n):
    """A phone number as the host writes them (+ and 6 to 20 digits)."""
    return (isinstance(n, str) and 6 <= len(n.lstrip("+")) <= 20
            and n.lstrip("+").isdigit() and n.count("+") <= n.startswith("+"))


def keep_power_on(app):
    """Keep the board's power chip from cutting the supply in standby: the IP5306's
    boost stops at light load (~45 mA for ~32 s) unless told to keep on; the AXP192
    keeps DC-DC3 (the ESP32's supply) on (pmu.py). The chip that answers on I2C is
    the one driven, and a profile that disagrees is logged, never refused: a button
    that calls C4 on the wrong profile is better than a dead one."""
    app.power_chip = None
    import pmu
    want, spec = pmu.expected(app.board)
    if spec is None:
        return  # no power chip on this board (DevKitC build)
    app.power_spec = spec
    found = app.power_chip = pmu.detect(spec["sda"], spec["scl"])
    app.log.add("power_chip", found or "none")
    if found != want:
        app.log.add("power_chip_mismatch", "%s_answers_profile_says_%s" % (found or "none", want))
    if found is None or (found == "ip5306" and spec.get("keep_boost_on") is False):
        return
    try:
        pmu.keep_on(found, spec)
        app.log.add("power", found + "_keep_on")
    except OSError as e:
        app.log.add("power", "%s_error_%s" % (found, e))


def load_state(log):
    """alert.json with her position unsealed; ValueError if the file is corrupt, too
    long, or takes more heap to parse than a fresh boot has (a damaged file: thousands of
    nested brackets), which crashed every boot and ended in safe mode."""
    from app import STATE_PATH  # loaded already: app imports this module
    try:
        saved = store.read_json(STATE_PATH, None, store.STATE_MAX)
    except MemoryError:
        import gc
        gc.collect()  # once more on a collected heap: a legitimate state is a few KB
        try:
            saved = store.read_json(STATE_PATH, None, store.STATE_MAX)
        except MemoryError:
            raise ValueError("corrupt " + STATE_PATH)
    if saved is not None and not isinstance(saved, dict):
        raise ValueError("corrupt " + STATE_PATH)  # JSON, but no state: as a damaged file
    if saved and saved.get("loc"):
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
            log.add("location_lost", "")
    return saved


def saved_gap_ms(saved):
    """ms from the state's save to now by the RTC, or None (unknown). Real time at both
    ends (GPS or the network's, set again after a power-on) gives any gap: a flat battery
    for days included, which ends her alert instead of resuming it. An unset clock at one
    end (set in between, or a power-on: it counts from 2000 again) leaves it unknown."""
    at = saved.get("at")
    if not isinstance(at, int):
        return None
    now = hw.unix_time()
    if (at >= SYNCED_AFTER) != (now >= SYNCED_AFTER) or now < at:
        return None
    return min(now - at, MAX_GAP_S) * 1000


def saved_state(app):
    """alert.json as load_state reads it, or None (none, or damaged: logged)."""
    try:
        return load_state(app.log)
    except ValueError:
        app.log.add("state_corrupt", "")
        return None


def start_now(app, saved):
    """No alert was running: the machine starts before the module is set up, so that a
    press then is acted on at once (her vibration, her alert on the flash before a second
    reset could lose it); its modem work waits for the set-up (Radio.set_up)."""
    if saved:
        _restore(app, saved, False)
    app.start_machine()


async def resume(app, saved):
    """After a reset mid-alert, once the module is set up: pick the alert up where it
    was. The modem kept its power through the ESP32's reset, so a call to C4 may still
    be up: the machine is told, and keeps it instead of dialing."""
    kept = await app.radio.call_survived()  # "active", "dialing", "alerting" or None
    _restore(app, saved, kept)
    if kept:
        _watch_kept(app, kept)
    app.start_machine()


def _restore(app, saved, kept):
    gap = saved_gap_ms(saved)
    for act in app.machine.from_state(saved, time.ticks_ms(), kept, gap):
        app.act(act)
    at = saved.get("at")
    if gap is None and isinstance(at, int) and at >= SYNCED_AFTER:
        # a power-on, the RTC not set yet (the network's time comes with the set-up, a
        # GPS fix later): the first real time tells the machine how long it was off
        app.off_since = (at, time.ticks_ms())  # (App.brain)


async def kept_call(app, saved):
    """After start_now, once the module is set up: a call the modem kept through the
    reset (a call-back from C4 answered after her alert). The machine takes it as its
    own; if she pressed meanwhile, her alert's dial (waiting at the gate) takes it instead
    of dialling over it; the delivery-day test's, which the machine dropped, is hung up."""
    r = app.radio
    kept = await r.call_survived()
    if not kept:
        return
    if saved and saved.get("test") and not app.machine.active:
        app.log.add("kept_call_ended", kept)
        await r.hangup(False)  # the delivery test's, dropped with it
        return
    if app.machine.active and kept == "callback":
        # she pressed during the set-up, and the call is one to her (a caller ID said C4):
        # hung up, her alert's dial waiting at the gate goes out after it (drop_callback)
        app.log.add("callback_dropped", "press")
        r._answered_id = None  # its end is not her call's
        await r.hangup(False)
        return
    if app.machine.active:
        # she pressed during the set-up: her dial waits at the gate, and takes this call
        # (with C4) as its own instead of dialling over it (Radio.dial)
        app.log.add("call_kept", "alert")
        r._adopt = (r._dials, kept)
        _watch_kept(app, kept, False)  # the dial reports its state
        return
    app.post(("call_kept", kept))
    _watch_kept(app, kept)


def _watch_kept(app, kept, tell=True):
    # as the modem has it: a call still ringing at C4 is not C4 answering
    r = app.radio
    r.call_active = kept in ("active", "callback")
    r.call_out = True  # placed before the reset: watched as any call of ours
    r.watch_call()
    if tell:  # a call-back is up: "active", the machine knows whose (call_kept)
        app.post(("call_state", "active" if kept == "callback" else kept, None))
