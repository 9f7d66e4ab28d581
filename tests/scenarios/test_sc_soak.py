"""Soak: random faults of the parts and the network around an alert, several at once, each
one the alert must survive (the network or the module comes back, a reset, a second press,
an SMS command, the battery sagging, a reply or URC garbled on the UART), pressed on a
button just booted or, as she carries it, in standby. Whatever the mix, her trusted contacts get the alert SMS and C4 is on the
line with the button, and the firmware never crashes.

The chip's time.ticks_ms() wraps (every 12.4 days on the ESP32) a drawn 5 to 60 s after it
starts, so the wrap falls in the boot, the standby or her alert (with the 32-bit build, where
the rig can set the chip's uptime: boton.sim.chipclock).

Each seed is one plan, printed with the failure, so a failing seed replays exactly
(`-k "sim800-23"`). `make test` runs a few seeds per modem family; `make soak SEEDS=200`
runs more (BOTON_SOAK_SEEDS: "N" for seeds 0..N-1, or "A:B").
"""
import os
import random
import time

import pytest

from boton.frozen import device_interpreter
from boton.hil.refmodem import same_number
from boton.pytest_plugin import REF_PIN
from boton.rules import firmware_module
from boton.sim import chipclock

# Conditions switched on for a while, then off again.
TOGGLES = ("no_network", "signal_lost", "registration_denied", "gps_silent", "gps_never_fix",
           "modem_dead", "gps_corrupt")
# The A7670's own conditions on LTE (the SIM800 has none of them): VoLTE gone (it falls back
# to 2G), registered for SMS only, emergency calls only.
FAMILY_TOGGLES = {"a7670": ("volte_unavailable", "sms_only", "emergency_only")}
# Drawn from their own stream (family_windows), so every seed keeps the faults it had: VoLTE
# failing silently, every call on LTE ending before it rings (the firmware falls back to 2G).
FAMILY_WINDOWS = {"a7670": ("lte_calls_drop",)}
# Things that happen once.
SHOTS = ("modem_silent", "modem_brown_out", "uart_garbage", "drop_call", "cms_error",
         "esp32_reset", "power_cycle", "next_call_result", "press_again", "sms_command",
         "low_battery", "under_voltage", "c4_calls_back", "cancel_and_press_again")
# Lines garbled on the UART (a bit flipped: their last character), replies and URCs the
# firmware reads; drawn from their own stream, so every seed keeps its other faults.
GARBLED = ("+CMGS", "+CLCC", "+CMTI", "+CMGR", "+CMGL", "+CREG", "+CSQ", "+CBC", "+CPSI", "+CEER",
           "+CLIP", "RING", "NO CARRIER", "OK")

def _retryable_cms():
    """Every +CMS code (27.005 3.2.5: 0-511) the firmware retries, as the firmware decides it
    (aterrors.sms_retry_class), never a copy that falls behind it: a code it gives up on
    would fail the seed that draws it, one it newly retries would never be drawn."""
    aterrors = firmware_module("aterrors")
    return tuple(c for c in range(512) if aterrors.sms_retry_class("CMS", c) == aterrors.RETRY)


RETRYABLE_CMS = _retryable_cms()
COMMANDS = ("UBICACION {pin}", "ESTADO {pin}", "UBICACION 0000", "hola")


def _seeds():
    spec = os.environ.get("BOTON_SOAK_SEEDS", "3")
    first, _, last = spec.rpartition(":")
    try:
        return range(int(first or 0), int(last))
    except ValueError:
        raise pytest.UsageError(f"BOTON_SOAK_SEEDS={spec!r}: give N (seeds 0..N-1) or A:B") from None


def _toggles(family):
    return TOGGLES + FAMILY_TOGGLES.get(family, ()) + FAMILY_WINDOWS.get(family, ())


def plan_for(seed, family):
    """([(start s after the press, negative: before it; fault; argument; how long)],
    whether she presses a button in standby, as she carries it, or one just booted)."""
    rnd = random.Random(seed)
    plan = []
    for _ in range(rnd.randint(2, 5)):
        name = rnd.choice(TOGGLES + FAMILY_TOGGLES.get(family, ()) + SHOTS)
        arg = {"cms_error": lambda: rnd.choice(RETRYABLE_CMS),
               "next_call_result": lambda: rnd.choice(("busy", "no_answer")),
               "sms_command": lambda: rnd.choice(COMMANDS),
               "under_voltage": lambda: round(rnd.uniform(0.5, 5), 1),
               "gps_corrupt": lambda: rnd.choice((0.3, 1.0))}.get(name, lambda: None)()
        plan.append((round(rnd.uniform(-2, 8), 2), name, arg, round(rnd.uniform(1, 40), 2)))
    # Drawn after the faults, so adding it left every seed's faults as they were.
    return sorted(plan + garbles_for(seed) + family_windows(seed, family)), rnd.random() < 0.5


def family_windows(seed, family):
    """At most one window of a family's condition added since (FAMILY_WINDOWS), as plan entries."""
    rnd = random.Random(f"family {seed}")
    names = FAMILY_WINDOWS.get(family, ())
    if not names or rnd.random() >= 0.5:
        return []
    return [(round(rnd.uniform(-2, 8), 2), rnd.choice(names), None, round(rnd.uniform(1, 40), 2))]


def garbles_for(seed):
    """Up to two lines garbled on the UART (modem.garble_lines), as plan entries."""
    rnd = random.Random(f"garble {seed}")
    return [(round(rnd.uniform(-2, 8), 2), "garble_lines", (rnd.choice(GARBLED), rnd.randint(1, 3)), 0)
            for _ in range(rnd.choice((0, 0, 1, 2)))]


def wrap_after_s(seed):
    """When the chip's ticks wrap, in seconds after it starts: its own stream, so every
    seed keeps its faults and standby."""
    return round(random.Random(f"ticks wrap {seed}").uniform(5, 60), 1)


def _wraps():
    """Whether the seeds run across a ticks wrap: the 32-bit build wraps at 2**30 as the
    chip does (the 64-bit port at 2**62), and the rig needs a time namespace to set it."""
    return not chipclock.unavailable() and device_interpreter().chip


def _params():
    if not _wraps():
        return list(_seeds())
    wrap_s = chipclock.TICKS_PERIOD / 1000
    return [pytest.param(seed, marks=pytest.mark.rig(uptime_s=wrap_s - wrap_after_s(seed))) for seed in _seeds()]


def _switch(faults, name, arg, on):
    """A condition on or off (the GPS's corruption rate is its argument; 0: clean)."""
    if name == "gps_corrupt":
        faults.gps_corrupt(arg if on else 0.0)
    else:
        getattr(faults, name)(on)


def _apply(faults, button, network, name, arg, toggles):
    if name in toggles:
        _switch(faults, name, arg, True)
    elif name == "cms_error":
        faults.cms_error(arg)
    elif name == "next_call_result":
        faults.next_call_result(arg)
    elif name == "garble_lines":
        faults.garble_lines(*arg)
    elif name == "press_again":
        button.alert()
    elif name == "c4_calls_back":  # the operator calls her button, maybe while it dials C4
        network.call_device("c4")
    elif name == "sms_command":
        network.sms_to_device(arg.format(pin=REF_PIN))
    elif name == "low_battery":
        faults.set_battery(3450)
    elif name == "under_voltage":
        faults.under_voltage(arg)
    else:
        getattr(faults, name)()


@pytest.mark.parametrize("seed", _params())
def test_her_alert_survives_a_random_mix_of_faults(dut, button, network, faults, seed, modem_family):
    (plan, from_standby), toggles = plan_for(seed, modem_family), _toggles(modem_family)
    why = (f"seed {seed}, {'from standby' if from_standby else 'just booted'}, "
           f"{f'ticks wrap {wrap_after_s(seed)} s after start, ' if _wraps() else ''}plan {plan}")
    scale = dut.within(10, 1)  # a board's parts take longer than the rig's (time-scaled)
    mark, log_mark = network.mark(), dut.mark()
    ends = []  # (monotonic time, toggle, its argument) to switch off

    reset_mark = [log_mark]  # the console before the last reset of the plan
    alert_mark = [mark]  # the network before her last request for help
    press_log, press_at = [log_mark], [0.0]  # the console before her last press, its plan time

    def start(at, name, arg, dur):
        if name in ("esp32_reset", "power_cycle"):
            reset_mark[0] = dut.mark()
        if name == "cancel_and_press_again":
            # She cancels by mistake, feels the cancel's vibration and asks for help again:
            # what counts is what follows her second request. A cancel that did not take
            # (no alert yet, or a reset ate the press) leaves her first request standing.
            since = dut.mark()
            button.cancel()
            try:
                dut.wait_log("cancel", since=since, timeout=dut.within(10, 5))
            except TimeoutError:
                return
            time.sleep(1.0)  # she lets go and realises; a press at once would be one long press
            alert_mark[0], press_log[0], press_at[0] = network.mark(), dut.mark(), at
            button.alert()
            return
        _apply(faults, button, network, name, arg, toggles)
        if name in toggles:
            ends.append((time.monotonic() + dur * scale, name, arg))

    if from_standby:  # modem asleep, GPS resting, the ESP32 light-sleeping between events
        try:
            dut.wait_standby(since=log_mark)
        except TimeoutError as e:
            raise AssertionError(f"{why}: never reached standby: {e}") from None
    for at, name, arg, dur in plan:
        if at < 0:
            start(at, name, arg, dur)
    button.alert()
    pressed = time.monotonic()
    for at, name, arg, dur in plan:
        if at >= 0:
            time.sleep(max(0.0, pressed + at * scale - time.monotonic()))
            start(at, name, arg, dur)
    for when, name, arg in sorted(ends, key=lambda e: e[0]):
        time.sleep(max(0.0, when - time.monotonic()))
        _switch(faults, name, arg, False)

    # A reset around the press can cut her gesture off before the firmware sees it: she
    # feels no vibration (the guide has her hold on until she does) and presses again.
    if not dut.logged("alert", since=press_log[0]) and any(
            name in ("esp32_reset", "power_cycle") and abs(at - press_at[0]) <= 3
            for at, name, _, _ in plan):
        dut.wait_ready(since=reset_mark[0])
        button.alert()
    try:
        for contact in network.contacts:  # the alert itself, not only a later update
            network.wait_sms(to=contact, after=alert_mark[0], timeout=dut.within(600, 240),
                             where=lambda e: e["text"].startswith("ALERTA"))
        # C4 on the line with her button: its call, or C4's call back that the button answered
        network.wait_call("call_connected", after=alert_mark[0], timeout=dut.within(600, 240),
                          where=lambda e: any(same_number(e["to"], n) or (
                              same_number(e["to"], dut.number) and same_number(e["from"], n))
                              for n in network.c4))
    except TimeoutError as e:
        raise AssertionError(f"{why}: {e}") from None
    text = dut.console.text(log_mark)
    assert "Traceback" not in text and "MemoryError" not in text, f"{why}\n{text[-3000:]}"


def test_the_soak_draws_every_temporary_cms_cause_the_firmware_retries():
    # the soak kept its own (41, 42, 331, 332, 500) when the firmware adopted the standard's
    # classes: network failure, congestion, out of service, SC busy or failure, SIM toolkit
    # busy, unspecified, not allowed yet were retried by the button and never by a seed
    temporary = (17, 22, 27, 41, 42, 111, 127, 192, 194, 212, 255, 302, 331, 332, 500)
    assert set(temporary) <= set(RETRYABLE_CMS)
    aterrors = firmware_module("aterrors")
    assert all(aterrors.sms_retry_class("CMS", c) == aterrors.RETRY for c in RETRYABLE_CMS)
    assert not {1, 8, 21, 128, 176, 193, 304} & set(RETRYABLE_CMS)   # refused for good: never drawn
