"""The firmware on LilyGO's T-A7670X (boards/ta7670x_a7670sa.json) against the simulated
A7670SA: the same alert as on the SIM800 (covert call to C4, her location to every
contact) through the A7670's dialect (dialect_a7670.py), and voice where the network gives
it: VoLTE, else 2G after AT+CNMP=13, else SMS only. Facts: data/at/a76xx.md."""
import json

from click.testing import CliRunner

from boton.cli import main
from boton.rules import mask
from boton.sim.flashdir import install
from boton.sim.modem.families.a7670 import A7670
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice
from rigkit import (FAST, SAFE_WATCHING, break_firmware, demo_config, press_in_safe_mode, provisioned_device,
                    wait_until)
from test_sim_phones import SimProcess

BOARD = "ta7670x_a7670sa"
SISTER = "+524491112244"
MAPS = "https://maps.google.com/?q=21.88234,-102.29143"


def sent_to_modem(vd):
    """Every byte the ESP32 wrote to the module's UART, in order."""
    return vd.call(lambda: b"".join(data for _, d, data in vd.modem.at_log if d == "rx"))


def status_of(vd):
    """`boton status --json` on the device (the firmware stops for the service call)."""
    r = CliRunner().invoke(main, ["status", "--port", vd.repl_url, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def log_of(vd):
    return "".join(p.read_text() for p in sorted(vd.flash_dir.glob("log.*")))


def assert_covert(audio):
    # the A7670's own scales: gains 0..7; the ring tone plays at the output gain
    assert audio["speaker_level"] == 0 and audio["ringer_level"] == 0 and audio["mic_gain"] == 7


def a7670_device(tmp_path, **kw):
    return provisioned_device(tmp_path, demo_config(contacts=[DEFAULT_CONTACT, SISTER]), board=BOARD,
                              contacts=(DEFAULT_CONTACT, SISTER), **kw)


def test_alert_calls_c4_covertly_texts_both_contacts_and_redials_after_a_drop(tmp_path):
    with a7670_device(tmp_path) as vd:
        assert "EV voice volte" in vd.console_text()   # LTE with VoLTE: no fallback
        vd.press(hold_s=1.2)
        for contact in (DEFAULT_CONTACT, SISTER):
            sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == contact, timeout=60)
            assert sms["delivered"] and MAPS in sms["text"]
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=60)
        # the speaker mute is accepted only once the call is up: sent then, and taken
        wait_until(vd, lambda: vd.modem.vmute == 1)
        mark = len(vd.events)
        vd.call(vd.network.drop, DEFAULT_C4)           # the radio link fails: she is redialled
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, timeout=30)
        assert call["result"] == "dropped"
        assert_covert(call["audio"])
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4,
                      after=mark, timeout=60)
        wait_until(vd, lambda: vd.modem.vmute == 1)    # reset when the call ended: sent again
        mark = len(vd.events)
        vd.call(vd.network.hangup, DEFAULT_C4)         # C4 ends it: no redial
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, after=mark, timeout=30)
        assert call["answered"] and call["ended_by"] == DEFAULT_C4
        assert_covert(call["audio"])
        vd.wait_console("EV call_ended remote", timeout=30)
        sent = sent_to_modem(vd)
    assert b"AT+CMICGAIN=7;+COUTGAIN=0\r" in sent and b"AT+VMUTE=1\r" in sent
    assert b"ATH" not in sent and b"AT+CENG" not in sent and b"AT+CLVL" not in sent
    assert "audio_error" not in log_of(vd), log_of(vd)


def test_a_refused_covert_setting_is_retried_before_atd_goes_out(tmp_path):
    """The covert settings and the dial are separate tasks: a refused first try must be
    retried before ATD (the ring tone and speaker would give her away), not after it."""
    with a7670_device(tmp_path) as vd:
        vd.call(vd.modem.refuse_next, "+CMICGAIN")
        start = len(sent_to_modem(vd))  # after the set-up (which sends them once too)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=60)
        vd.call(vd.network.hangup, DEFAULT_C4)
        assert_covert(vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, timeout=30)["audio"])
        sent = sent_to_modem(vd)
    covert = b"AT+CMICGAIN=7;+COUTGAIN=0\r"
    first_atd = sent.index(b"ATD", start)
    assert sent.count(covert, start, first_atd) == 2, sent[start:first_atd][-300:]
    assert "audio_error" not in log_of(vd)


def test_cancelled_alert_hangs_up_with_chup(tmp_path):
    """ATH is ignored by the A7670 (AT+CVHU=1 by default): the hang-up is AT+CHUP."""
    cfg = demo_config(pin="482913")
    cfg["gesture"]["cancel_ms"] = 1500
    with provisioned_device(tmp_path, cfg, board=BOARD, c4_hangup_after_s=120) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=60)
        mark = len(vd.events)
        vd.press(hold_s=2.0)   # the cancel gesture
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, after=mark, timeout=60)
        assert call["ended_by"] == vd.device_number   # the device hung up, C4 did not
        sent = sent_to_modem(vd)
    assert b"AT+CHUP\r" in sent and b"ATH" not in sent


def test_sms_only_on_lte_falls_back_to_2g_and_the_call_goes_through(tmp_path):
    with a7670_device(tmp_path, modem_options=dict(volte=False, gsm=True)) as vd:
        text = vd.console_text()
        assert "EV voice_fallback 2g" in text and "EV voice 2g" in text
        assert vd.call(lambda: (vd.modem.cnmp, vd.modem.rat)) == (13, "gsm")
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=60)
        vd.call(vd.network.hangup, DEFAULT_C4)
        assert_covert(vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, timeout=30)["audio"])
        for contact in (DEFAULT_CONTACT, SISTER):
            assert vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == contact, timeout=60)["delivered"]


def test_sms_only_without_2g_still_sends_every_sms_and_logs_no_voice(tmp_path):
    with a7670_device(tmp_path, modem_options=dict(volte=False, gsm=False)) as vd:
        assert "EV voice none" in vd.console_text()
        # back to automatic: LTE still carries the SMS
        assert vd.call(lambda: (vd.modem.cnmp, vd.modem.rat)) == (2, "lte")
        # what the host reads to refuse marking this button ready (the firmware stops for
        # the service call and restarts after it)
        mark = vd.console_mark()
        info = status_of(vd)
        assert (info["family"], info["rat"], info["voice"], info["voice_via"]) == ("a7670", "LTE", False, None)
        assert info["registered"] and info["battery"] is not None
        vd.wait_console("EV ready", since=mark, timeout=60)
        vd.press(hold_s=1.2)
        for contact in (DEFAULT_CONTACT, SISTER):
            sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == contact, timeout=60)
            assert sms["delivered"] and MAPS in sms["text"]
        vd.wait_console("EV dial_error", since=mark, timeout=30)   # the dial fails, logged as on the SIM800
        assert not [e for e in vd.events if e["kind"] == "call_connected"]


def identity_of(vd):
    """service.identity() as `boton provision` runs it (the firmware stops for it)."""
    from boton import provision as prov
    from boton.device import Device
    with Device(vd.repl_url, timeout=30) as dev:
        return prov.identity(dev)


def test_provision_identity_finds_voice_over_2g_on_an_sms_only_sim(tmp_path):
    """No VoLTE for this SIM: identity() tries the GSM fallback the firmware would, instead
    of reporting "SMS only" for a button that would call C4 over 2G."""
    with a7670_device(tmp_path, modem_options=dict(volte=False, gsm=False)) as vd:
        assert "EV voice none" in vd.console_text()      # booted where there was no 2G ...
        vd.call(setattr, vd.modem, "gsm", True)           # ... now there is (back on LTE, auto)
        assert vd.call(lambda: (vd.modem.cnmp, vd.modem.rat)) == (2, "lte")
        info = identity_of(vd)
        assert (info["rat"], info["voice"], info["voice_via"]) == ("GSM", True, "2G"), info
        assert vd.call(lambda: vd.modem.cnmp) == 13


def test_provision_identity_reports_no_voice_without_volte_or_2g(tmp_path):
    with a7670_device(tmp_path, modem_options=dict(volte=False, gsm=False)) as vd:
        info = identity_of(vd)
        assert (info["rat"], info["voice"], info["voice_via"]) == ("LTE", False, None), info
        assert vd.call(lambda: (vd.modem.cnmp, vd.modem.rat)) == (2, "lte")   # SMS still on LTE


def test_an_esp32_reset_cuts_the_modem_supply_her_call_drops_and_c4_is_called_again(tmp_path):
    """GPIO12, the T-A7670X's modem power enable, falls to its pull-down at every ESP32 reset
    (the watchdog, a brown-out): the modem loses its supply and her call to C4 drops. The
    firmware finds it silent, brings it back without pressing PWRKEY on a running module,
    resumes the alert and calls C4 again, covertly."""
    with a7670_device(tmp_path) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=60)
        mark, console, t0 = len(vd.events), vd.console_mark(), vd.call(vd.sched.now)
        # a SIM whose phonebook loads slowly: PB DONE comes well after the registration
        vd.call(setattr, vd.modem, "T_CALL_READY", 15.0)
        vd.hard_reset()
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, after=mark, timeout=30)
        # dropped by the network: the module lost its supply (a call kept through the reset
        # would still be up, and a hangup would say who ended it)
        assert call["answered"] and (call["result"], call["ended_by"]) == ("dropped", "network"), call
        vd.wait_console("EV modem_recovered pwrkey", since=console, timeout=90)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, after=mark, timeout=90)
        wait_until(vd, lambda: vd.modem.vmute == 1)
        vd.call(vd.network.hangup, DEFAULT_C4)
        again = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4 and e is not call,
                              after=mark, timeout=30)
        assert_covert(again["audio"])
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert [(p["powered"], p["result"]) for p in presses if p["t"] >= t0] == [(False, "on")]
        assert not [p for p in presses if p["powered"]]
        assert vd.pins_out[12] == 1                    # raised again by the firmware
        # a module the reset left without supply: no AT+CFUN=1,1 and no RESET pulse first
        sent = vd.call(lambda: b"".join(data for at, d, data in vd.modem.at_log if d == "rx" and at >= t0))
        assert b"AT+CFUN=1,1" not in sent
        assert not [h for h in vd.pin_history if h[1] == 5 and h[2] == 1 and h[0] >= t0]
        # and the first dial waited for PB DONE: an earlier one is refused (+CME ERROR: 3)
        text = vd.console_text()[-(vd.console_mark() - console):]
        assert "EV dial_error" not in text and "EV call_failed" not in text, text


def test_a_soft_reboot_finds_the_module_running_and_leaves_its_supply_alone(tmp_path):
    """A soft reboot (a technician's `boton status`) keeps the pins' levels: the module kept
    its supply and is running, so the short boot probe finds it and nothing is cycled."""
    with a7670_device(tmp_path) as vd:
        vd.wait_console("EV ready", timeout=60)
        t0, mark = vd.call(vd.sched.now), vd.console_mark()
        assert status_of(vd)["modem"] is True
        vd.wait_console("EV ready", since=mark, timeout=60)       # the firmware runs again
        text = vd.console_text()[-(vd.console_mark() - mark):]
        assert "soft reboot" in text and "EV modem_recovered" not in text, text
        assert not [h for h in vd.pin_history if h[1] == 12 and h[2] == 0 and h[0] >= t0]
        assert [p for p in vd.call(lambda: list(vd.modem.pwrkey_presses)) if p["t"] >= t0] == []


def test_status_brings_up_a_module_the_stopped_firmware_never_powered(tmp_path):
    """A technician's service call can come before the firmware (or safe mode) powered the
    module, and on the T-A7670X it then has no supply at all: the service brings it up as
    boot does (enable high, probe, supply cycle, PWRKEY on the module known to be off)
    instead of reporting a dead modem."""
    flash = install(tmp_path / "flash", BOARD, demo_config())
    (flash / "main.py").write_text("print('firmware not started')\n")   # stopped before modem init
    vd = VirtualDevice(flash, board=BOARD, time_scale=FAST, network_log=tmp_path / "net.jsonl")
    vd.start()
    try:
        vd.wait_console("firmware not started", timeout=30)
        assert not vd.call(lambda: vd.modem.powered)
        info = status_of(vd)
        assert info["modem"] is True and info["family"] == "a7670"
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert [(p["powered"], p["result"]) for p in presses] == [(False, "on")]
    finally:
        vd.stop()


def test_2g_switched_off_after_a_fallback_a_hung_module_is_revived_and_back_on_lte(tmp_path):
    """The ladder on the T-A7670X: active-high RESET held 2.5 s, then PWRKEY held 3 s (an
    A7670 switches off at >= 2.5 s, hung or not) and, 2 s later, the short on-press: never
    a cut of GPIO12, which holds the board's power on battery. GSM only (AT+CNMP=13, kept
    by the module) where 2G is gone finds nothing: back to automatic, SMS over LTE."""
    cfg = demo_config(contacts=[DEFAULT_CONTACT, SISTER])
    cfg["health_every_s"] = 2   # the health check notices the silence soon (real seconds)
    with provisioned_device(tmp_path, cfg, board=BOARD, contacts=(DEFAULT_CONTACT, SISTER),
                            modem_options=dict(volte=False, gsm=True)) as vd:
        assert "EV voice 2g" in vd.console_text()
        vd.call(setattr, vd.modem, "gsm", False)        # the operator switches 2G off
        t0, mark = vd.call(vd.sched.now), vd.console_mark()
        vd.call(vd.modem.go_silent, True)               # and the module hangs (RESET will not help)
        vd.wait_console("EV modem_silent", since=mark, timeout=60)
        vd.wait_console("EV modem_recovered pwrkey_cycle", since=mark, timeout=60)
        t_reset = vd.wait_pin(5, 1, since=t0)           # RESET asserted: GPIO5 high
        t_released = vd.wait_pin(5, 0, since=t_reset)
        assert t_released - t_reset >= 2.0 * FAST
        assert t_released < vd.wait_pin(4, 1, since=t_released)
        assert not [h for h in vd.pin_history if h[1] == 12 and h[2] == 0]
        presses = [p for p in vd.call(lambda: list(vd.modem.pwrkey_presses)) if p["t"] >= t0]
        assert [(p["powered"], p["result"]) for p in presses] == [(True, "off"), (False, "on")]
        assert presses[0]["held_s"] >= 2.5 and presses[1]["held_s"] < 1.0  # LilyGO's 3 s and 100 ms
        vd.wait_console("EV voice none", since=mark, timeout=90)   # init again, after the recovery
        text = vd.console_text()[-(vd.console_mark() - mark):]
        assert "EV rat_auto" in text and "EV voice none" in text and "voice_fallback" not in text
        assert vd.call(lambda: (vd.modem.cnmp, vd.modem.rat)) == (2, "lte")
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        assert vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT,
                             after=mark, timeout=60)["delivered"]


def test_under_voltage_warnings_are_enabled_and_a_repeated_one_is_logged_once(tmp_path):
    """AT+CVALARM (off by default on the A76XX) warns every 10 s while VBAT is below 3.5 V:
    the first is passed on to the alert machine, its repeats are not news. (Light sleep off:
    the chip asleep in standby hears no URC, as on a board; the battery poll finds the sag.)"""
    cfg = demo_config(contacts=[DEFAULT_CONTACT, SISTER])
    cfg["light_sleep"] = False
    with provisioned_device(tmp_path, cfg, board=BOARD, contacts=(DEFAULT_CONTACT, SISTER)) as vd:
        assert b"AT+CVALARM=1,3500,4300\r" in sent_to_modem(vd)
        mark = vd.console_mark()
        vd.set_battery_mv(3450)
        vd.wait_console("EV power_warning under_voltage", since=mark, timeout=30)
        wait_until(vd, lambda: vd.modem.output().count(b"UNDER-VOLTAGE WARNNING") >= 3)
        text = vd.console_text()[-(vd.console_mark() - mark):]
    assert text.count("EV power_warning under_voltage") == 1
    assert text.count("EV modem_power UNDER-VOLTAGE_WARNNING") == 1


def safe_mode_device(tmp_path, **modem_options):
    """The T-A7670X with a corrupt firmware module: it boots into safe mode."""
    flash = install(tmp_path / "flash", BOARD, demo_config())
    break_firmware(flash)
    vd = VirtualDevice(flash, board=BOARD, time_scale=FAST, network_log=tmp_path / "net.jsonl",
                       modem_options=modem_options)
    vd.start()
    vd.wait_console("EV safe_mode import_", timeout=30)
    return vd


def test_safe_mode_on_the_a7670_board_calls_c4_covertly(tmp_path):
    vd = safe_mode_device(tmp_path)
    try:
        mark = press_in_safe_mode(vd, DEFAULT_C4)
        # C4's voice muted too once the call is up, as the firmware does
        wait_until(vd, lambda: vd.modem.vmute == 1, timeout=30)
        vd.call(vd.network.hangup, DEFAULT_C4)
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, after=mark, timeout=30)
        assert call["answered"]
        assert_covert(call["audio"])
        # the board's power enable high, PWRKEY and RESET released (active-high: low)
        assert vd.pins_out[12] == 1 and vd.pins_out[4] == 0 and vd.pins_out[5] == 0
        # the module had no supply until the board's enable went high: one press, while off
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert [(p["powered"], p["result"]) for p in presses] == [(False, "on")]
    finally:
        vd.stop()


def test_safe_mode_brings_back_a_module_that_hung_since_and_calls_c4(tmp_path):
    """Safe mode is up on the T-A7670X, and the module then hangs (powered, silent). Safe
    mode skipped the off-press wherever the supply enable is GPIO12 (cut by a chip reset,
    not since): one short press on the running module did nothing, and C4 was never
    called. Mid-alert the module is held off (3 s), then switched on."""
    vd = safe_mode_device(tmp_path)
    try:
        vd.wait_console("safe mode: modem ready", timeout=90)
        vd.call(vd.modem.go_silent)
        mark = press_in_safe_mode(vd, DEFAULT_C4)
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert [(p["powered"], p["result"]) for p in presses][-2:] == [(True, "off"), (False, "on")]
        assert [e for e in vd.events[mark:] if e["kind"] == "call_connected"]
    finally:
        vd.stop()


def test_safe_mode_after_a_reset_brings_the_unpowered_module_up_at_once_and_dials_when_it_takes_calls(
        tmp_path, monkeypatch):
    """Safe mode starts after a chip reset, which on the T-A7670X pulled GPIO12 (the modem's
    supply enable) low: the module is off. A long probe of a module with no supply only
    delays her call, so safe mode asks briefly (a running module answers at once), cycles
    the supply and presses PWRKEY. Then it waits for PB DONE before the first ATD: a dial
    before it is refused (+CME ERROR: 3), and a refused round is one of three lost."""
    monkeypatch.setattr(A7670, "T_CALL_READY", 15.0)   # a SIM whose phonebook loads slowly
    vd = safe_mode_device(tmp_path)
    try:
        press_in_safe_mode(vd, DEFAULT_C4, hold_s=1.2)
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert [(p["powered"], p["result"]) for p in presses] == [(False, "on")]
        log = vd.call(lambda: list(vd.modem.at_log))
        before = b"".join(data for t, d, data in log if d == "rx" and t < presses[0]["t"])
        # ~300 ms each: about 3 s of asking, not the 15 s an A7670 needs to boot
        assert 1 <= before.count(b"AT\r") <= 12, before
        sent = b"".join(data for _, d, data in log if d == "rx")
        assert sent.count(b"ATD") == 1, sent
        assert b"+CME ERROR" not in vd.call(vd.modem.output)
    finally:
        vd.stop()


def test_safe_mode_on_an_sms_only_sim_falls_back_to_2g_and_calls_c4(tmp_path):
    """No VoLTE for this SIM: safe mode's dial on LTE is refused, so it pins GSM
    (AT+CNMP=13), as the firmware's own fallback does, and calls C4 over 2G, covertly."""
    vd = safe_mode_device(tmp_path, volte=False, gsm=True)
    try:
        mark = press_in_safe_mode(vd, DEFAULT_C4)
        assert vd.call(lambda: (vd.modem.cnmp, vd.modem.rat)) == (13, "gsm")
        vd.call(vd.network.hangup, DEFAULT_C4)
        calls = vd.wait_event(lambda e: e["kind"] == "call" and e["answered"], after=mark, timeout=30)
        assert_covert(calls["audio"])
        # the refused dial on LTE, then the one over 2G
        assert [e["answered"] for e in vd.events[mark:] if e["kind"] == "call"] == [False, True]
        assert "EV safe_voice_fallback 2g" in vd.console_text()
    finally:
        vd.stop()


def test_safe_mode_whose_calls_on_lte_end_before_ringing_falls_back_to_2g(tmp_path):
    """The dial is taken, then every call on LTE ends at once, never ringing (module
    firmware whose VoLTE fails): two such calls count as a refused dial, and safe mode
    calls C4 over 2G, as the firmware does (radio.call_ended)."""
    vd = safe_mode_device(tmp_path, lte_calls_drop=True, gsm=True)
    try:
        mark = press_in_safe_mode(vd, DEFAULT_C4)
        assert vd.call(lambda: (vd.modem.cnmp, vd.modem.rat)) == (13, "gsm")
        vd.call(vd.network.hangup, DEFAULT_C4)
        vd.wait_event(lambda e: e["kind"] == "call" and e["answered"], after=mark, timeout=30)
        assert [e["answered"] for e in vd.events[mark:] if e["kind"] == "call"] == [False, False, True]
        assert "EV safe_voice_fallback 2g" in vd.console_text()
    finally:
        vd.stop()


def test_safe_mode_without_2g_goes_back_to_automatic_so_the_module_keeps_its_network(tmp_path):
    """No VoLTE and no 2G: nothing can carry the call. GSM only would leave the module with
    no network at all (and the mode is saved), so safe mode puts it back to automatic."""
    vd = safe_mode_device(tmp_path, volte=False, gsm=False)
    try:
        vd.wait_console(SAFE_WATCHING, timeout=60)
        mark = vd.console_mark()
        vd.press(hold_s=1.2)
        vd.wait_console("EV safe_voice_fallback none", since=mark, timeout=60)
        wait_until(vd, lambda: (vd.modem.cnmp, vd.modem.rat) == (2, "lte"))
        assert not [e for e in vd.events if e["kind"] == "call_connected"]
    finally:
        vd.stop()


def test_boot_drives_the_t_a7670x_pins_active_high_and_never_presses_a_running_module(tmp_path):
    with a7670_device(tmp_path) as vd:
        assert vd.pins_out[12] == 1 and vd.pins_out[4] == 0 and vd.pins_out[5] == 0
        # GPIO12 is pulled down from power-on: the module starts without supply, so boot
        # raises the enable first, then (only once the module is off for sure) PWRKEY
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert [(p["powered"], p["result"]) for p in presses] == [(False, "on")]
        assert vd.call(lambda: vd.modem.powered)
        first = [pin for _, pin, _ in vd.pin_history if pin in (4, 5, 12)]
        assert first[0] == 12    # the power enable before anything else


def test_technician_path_on_the_t_a7670x_sim_deploy_provision_test_call(tmp_path):
    """boton sim --board ta7670x_a7670sa, then deploy, provision and test-call as a
    technician types them; status reports the family, the technology and voice."""
    def run(*args):
        r = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    sim = SimProcess("--flash", str(tmp_path / "flash"), "--board", BOARD, "--time-scale", str(FAST),
                     "--c4-stay", "60")
    try:
        url = sim.wait_line(lambda s: "REPL at" in s).split("REPL at ")[1].strip()
        assert "deployed" in run("deploy", "--port", url, "--board", BOARD)
        run("provision", "--port", url, "--alias", "Luna", "--contact", DEFAULT_CONTACT,
            "--contact", SISTER, "--c4", DEFAULT_C4)
        out = run("test-call", "--port", url, "--timeout", "90")
        for contact in (DEFAULT_CONTACT, SISTER):
            assert f"{mask(contact)}: accepted" in out
        assert "C4 call answered: yes -> ok" in out
        info = json.loads(run("status", "--port", url, "--json"))
        assert (info["family"], info["rat"], info["voice"], info["voice_via"]) == ("a7670", "LTE", True, "VoLTE")
        assert info["registered"] and 0 <= info["battery"] <= 100
    finally:
        sim.quit()


def test_a_module_that_boots_past_the_set_ups_wait_is_still_set_up(tmp_path, monkeypatch):
    # Its UART ready after 16.5 s (HW: typically 11.1 s; a sagging battery or a slow boot):
    # the set-up gave up at 15 s, and its *ATREADY and its answers later were taken for
    # nothing. Never set up (PDU mode, no call reports), every alert SMS failed and C4's
    # answer went unseen until the dial timeout hung up on C4, again and again.
    monkeypatch.setattr(A7670, "T_UART_READY", 16.5)
    monkeypatch.setattr(A7670, "T_SIM_READY", 17.4)
    with provisioned_device(tmp_path, board=BOARD) as vd:
        vd.wait_console("EV registered", timeout=60)
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, after=mark, timeout=60)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT, after=mark, timeout=60)
        assert b"AT+CMGF=1" in sent_to_modem(vd)


def test_2g_switched_off_in_standby_after_a_fallback_goes_back_to_lte_before_she_presses(tmp_path):
    # The module answers (no recovery): only a refused dial looked at the voice service,
    # so the button pinned to GSM stayed with no network until her press: C4's SMS
    # commands and the daily report lost, her first SMS late by a re-registration.
    cfg = demo_config(contacts=[DEFAULT_CONTACT])
    cfg["health_every_s"] = 5
    with provisioned_device(tmp_path, cfg, board=BOARD, modem_options=dict(volte=False, gsm=True)) as vd:
        assert "EV voice 2g" in vd.console_text()
        mark = vd.console_mark()
        vd.call(setattr, vd.modem, "gsm", False)        # the operator switches 2G off
        vd.call(vd.modem._reregister)
        vd.wait_console("EV rat_auto", since=mark, timeout=120)
        wait_until(vd, lambda: (vd.modem.cnmp, vd.modem.rat) == (2, "lte"), timeout=60)
        assert "EV dial" not in vd.console_text()[-(vd.console_mark() - mark):]


def test_module_firmware_that_drops_lte_calls_is_reported_and_the_alert_falls_back_to_2g(tmp_path):
    """LilyGO-Modem-Series #240: on A110B01A7670M7_F every LTE call goes dialing ->
    disconnected at once. identity() reports the revision and the host's verdict is no
    voice (provision refuses it); an alert on one that slipped through gets two calls that
    never ring, then the firmware pins GSM where there is 2G and the next call reaches C4."""
    from boton.rules import radio_verdict
    with a7670_device(tmp_path, modem_options=dict(gmr="A110B01A7670M7_F")) as vd:
        info = identity_of(vd)
        assert (info["modem_rev"], info["rat"], info["voice_via"]) == ("A110B01A7670M7_F", "LTE", "VoLTE")
        assert radio_verdict(info).voice is False
        vd.wait_console("EV ready", timeout=60)
        text, calls = _her_alert_reaches_c4_over_2g(vd)
    assert [e["answered"] for e in calls[:2]] == [False, False]
    assert text.count("EV call_failed no_carrier") == 2, text


def test_dials_refused_on_lte_while_registered_for_voice_fall_back_to_2g(tmp_path):
    """VoLTE gone (no IMS registration) while +CREG still says voice: every ATD on LTE
    refused at once (NO CARRIER; M109 p.47-48 lists the failure results). Only calls that
    rang out and ended were counted, and recheck_voice saw "voice": the firmware redialled
    on LTE for the whole alert and C4 was never called, with 2G right there."""
    with a7670_device(tmp_path, modem_options=dict(lte_dials_refused=True)) as vd:
        text, _ = _her_alert_reaches_c4_over_2g(vd)
    assert text.count("EV dial_error NO_CARRIER") == 2, text


def _her_alert_reaches_c4_over_2g(vd):
    """Her press, until C4 answers over 2G after the fallback (logged once): (what the
    device printed meanwhile, the calls to C4)."""
    mark, events = vd.console_mark(), len(vd.events)
    vd.press(hold_s=1.2)
    vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4,
                  after=events, timeout=120)
    text = vd.console_text()[-(vd.console_mark() - mark):]
    assert vd.call(lambda: (vd.modem.cnmp, vd.modem.rat)) == (13, "gsm")
    assert text.count("EV voice_fallback lte_calls_end") == 1 and "EV voice 2g" in text, text
    return text, [e for e in vd.events[events:] if e["kind"] == "call" and e["to"] == DEFAULT_C4]


def test_the_t_a7670x_light_sleeps_although_its_gps_cannot_be_switched_off(tmp_path):
    """The L76K shield has no enable pin: it stays powered (its fix hot), and once it has
    given a fix the chip stops listening and light-sleeps, as on the boards that switch
    their GPS. A press from that sleep still sends her current position."""
    with a7670_device(tmp_path) as vd:
        vd.wait_asleep(4.5, timeout=60)  # three 2 s sleeps
        assert not vd.call(lambda: [t for t, p, lv in vd.pin_history if p == vd.board["gps"].get("enable")])
        vd.press_when_asleep(hold_s=1.2)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT, timeout=60)
        assert sms["delivered"] and MAPS in sms["text"]
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=60)


def test_where_there_is_no_2g_the_standby_recheck_does_not_take_the_module_off_the_network(tmp_path):
    """No VoLTE for her SIM and no 2G here: the boot's fallback found none. The voice
    recheck in standby (every 5 minutes) does not pin GSM only again, which left the module
    with no network (no SMS, no 911) for 40 s each time (modemup.NO_2G_WAIT_S)."""
    cfg = demo_config()
    cfg["health_every_s"] = 2       # a health check at every chance: the recheck is what limits
    cfg["light_sleep"] = False
    with provisioned_device(tmp_path, cfg, board=BOARD, modem_options=dict(volte=False, gsm=False)) as vd:
        vd.wait_console("EV voice none", timeout=120)
        t0 = vd.call(vd.sched.now)
        s = vd.time_scale   # the rig's clock is the host's: module seconds are scaled
        wait_until(vd, lambda: vd.sched.now() - t0 > 330 * s, timeout=120)   # one recheck due, and run
        pinned = vd.call(lambda: [t for t, d, data in vd.modem.at_log if d == "rx" and b"AT+CNMP=13" in data])
        rechecks = vd.call(lambda: [t for t, d, data in vd.modem.at_log if d == "rx" and b"AT+CEREG?" in data])
    assert len(pinned) == 1 and pinned[0] < t0, pinned   # the boot's, and no other
    assert any(t > t0 + 290 * s for t in rechecks), "the recheck never looked"
    assert vd.console_text().count("EV voice_fallback") == 1


def test_an_sms_ready_that_comes_late_in_a_long_set_up_still_sets_text_mode_at_once(tmp_path, monkeypatch):
    """An A76XX says SMS DONE when it likes (after PB DONE too; LilyGO waits up to 100 s).
    Coming while the set-up still ran (the settling wait and the 2G fallback of a SIM with
    no VoLTE), it was left to the next health check: C4's command sat unread a minute (PDU
    mode: AT+CMGR refused)."""
    from boton.sim.modem.families.a7670 import A7670

    monkeypatch.setattr(A7670, "T_SMS_READY", 16.0)
    cfg = demo_config(pin="482913")
    cfg["light_sleep"] = False
    with provisioned_device(tmp_path, cfg, board=BOARD, modem_options=dict(volte=False, gsm=True)) as vd:
        t = vd.call(vd.sched.now)
        mark = len(vd.events)
        vd.call(vd.network.sms_to_device, DEFAULT_C4, vd.device_number, "UBICACION 482913")
        reply = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_C4, after=mark, timeout=150)
        assert (reply["t"] - t) / vd.time_scale < 30, "C4's command waited for the health check"
        assert "sms_read_error" not in vd.console_text()
