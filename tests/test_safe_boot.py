"""Safe mode at boot: when the firmware cannot start (a module that will not import, no
usable board profile), main.py falls back to safe.py and the button still calls C4,
covertly. Issue 13 item 7, issue 10 item 3. A flash filesystem that will not mount runs
the release image's frozen safe mode from _boot.py instead."""
import json
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest

from boton import frozen
from boton.sim.flashdir import install
from boton.sim.network import PhoneNetwork
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice
from rigkit import (FAST, break_firmware, demo_config, her_alert_on_the_flash, log_entries, press_in_safe_mode,
                    provisioned_device)

OTHER_C4 = "+524499100077"   # her configured C4 number, not the board's safe_c4


def _boot(tmp_path, flash, **kw):
    vd = VirtualDevice(flash, time_scale=FAST, network_log=tmp_path / "net.jsonl",
                       c4_numbers=(DEFAULT_C4, OTHER_C4), **kw)
    return vd.start()


@pytest.fixture
def flash(tmp_path):
    return install(tmp_path / "flash", config=demo_config(c4=[OTHER_C4]))


def test_safe_mode_keeps_the_ip5306_boost_on_as_the_firmware_does(tmp_path):
    # the firmware keeps the boost on unless the profile says "keep_boost_on": false; safe
    # mode only if it said true: left unsaid, a quiet board in safe mode was cut off
    flash = install(tmp_path / "flash", board="tcall_sim800l_ip5306", config=demo_config(c4=[OTHER_C4]))
    profile = json.loads((flash / "board.json").read_text())
    del profile["ip5306"]["keep_boost_on"]
    (flash / "board.json").write_text(json.dumps(profile))
    break_firmware(flash)
    vd = _boot(tmp_path, flash, board="tcall_sim800l_ip5306")
    try:
        vd.wait_console("EV safe_mode import_", timeout=30)
        press_in_safe_mode(vd, OTHER_C4)
        assert vd.call(lambda: vd.i2c.get((0x75, 0x00))) == 0x37
    finally:
        vd.stop()


def test_safe_mode_turns_on_a_radio_a_reset_left_off(tmp_path, flash):
    # The firmware reads a lost SIM again with AT+CFUN=0 then 1; a reset between the two
    # leaves a module that keeps its supply (T-Call) with radio and SIM off: safe mode's
    # call to C4 went nowhere
    break_firmware(flash)
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("safe mode: modem ready", timeout=60)
        mark = vd.console_mark()
        vd.hard_reset(while_down=lambda: vd.modem._set_fun(0))
        vd.wait_console("safe mode: modem ready", since=mark, timeout=60)
        press_in_safe_mode(vd, OTHER_C4)
    finally:
        vd.stop()


def test_a_module_that_will_not_import_boots_into_safe_mode_and_calls_c4_covertly(tmp_path, flash):
    break_firmware(flash)
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode import_", timeout=30)
        assert "EV ready" not in vd.console_text()
        mark = press_in_safe_mode(vd, OTHER_C4)   # her config's C4, not the board's
        assert vd.modem.netlight == 0   # the SIM800's network LED dark
        vd.call(vd.network.hangup, OTHER_C4)   # C4 ends the call: its record carries the audio
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == OTHER_C4, after=mark, timeout=60)
        assert call["answered"]
        assert call["audio"]["speaker_level"] == 0 and call["audio"]["ringer_level"] == 0
        assert call["audio"]["mic_gain"] > 0
        log = "".join(p.read_text() for p in sorted(flash.glob("log.*")))
        assert " safe_mode import_" in log   # why, in the event log a technician reads
    finally:
        vd.stop()


@pytest.mark.parametrize("board", [None, "ta7670x_a7670sa"])
def test_c4_calling_a_button_in_safe_mode_before_her_press_rings_silently(tmp_path, flash, board):
    # safe mode set the covert audio only before its own ATD: a callback from C4 (or any
    # call) before her first press rang at the module's default level (SIM800 100)
    if board:
        flash = install(tmp_path / f"flash-{board}", board, demo_config(c4=[OTHER_C4]))
    break_firmware(flash)
    vd = _boot(tmp_path, flash, **({"board": board} if board else {}))
    try:
        vd.wait_console("safe mode: modem ready", timeout=60)
        deadline = time.monotonic() + 60
        while not vd.call(lambda: vd.modem.registered):  # a call reaches it once it is on the network
            assert time.monotonic() < deadline, "the module never registered"
            time.sleep(0.05)
        vd.call(vd.network.call_device, OTHER_C4, vd.device_number)
        while len(rings := vd.call(lambda: vd.modem.ring_levels)) < 2:  # it rang, and again
            assert time.monotonic() < deadline, rings
            time.sleep(0.05)
    finally:
        vd.stop()
    assert rings and set(rings) == {0}, rings


def test_a_modem_that_switches_itself_off_during_the_call_is_brought_back_and_c4_called_again(
        tmp_path, flash):
    """A sagging battery under the SIM800's transmit bursts: the module announces
    UNDER-VOLTAGE POWER DOWN and switches off in the middle of the call to C4. Nobody ended
    that call, so safe mode must not take it as done, nor wait on it for ever: it brings
    the module back once the battery recovers and calls C4 again, without another press.
    And the button still works afterwards."""
    break_firmware(flash)
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode import_", timeout=30)
        mark = press_in_safe_mode(vd, OTHER_C4)
        vd.call(vd.modem.under_voltage, 0.5)
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == OTHER_C4, after=mark, timeout=30)
        assert call["answered"] and call["ended_by"] == "network"
        vd.call(vd.modem.set_battery, 3900)     # the battery recovers once the load is gone
        mark = len(vd.events)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4, after=mark, timeout=60)
        assert "EV safe_call_lost" in vd.console_text()
        vd.call(vd.network.hangup, OTHER_C4)    # C4 ends this one: the alert is over
        vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == OTHER_C4, after=mark, timeout=30)
        mark = len(vd.events)
        vd.press(hold_s=2.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4, after=mark, timeout=60)
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert presses and not [p for p in presses if p["powered"]]  # never a press on a running module
    finally:
        vd.stop()


def test_a_modem_that_hangs_during_the_call_is_power_cycled_and_c4_called_again(tmp_path, flash):
    """The module hangs in the middle of safe mode's call: no line comes, and AT+CLCC gets
    no answer. The call is lost, not ended: safe mode cycles the module's supply (never a
    PWRKEY press on a running module) and calls C4 again."""
    break_firmware(flash)
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode import_", timeout=30)
        press_in_safe_mode(vd, OTHER_C4)
        mark = len(vd.events)
        vd.call(vd.modem.go_silent)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4, after=mark, timeout=90)
        assert "EV safe_call_lost" in vd.console_text()
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert not [p for p in presses if p["powered"]]
    finally:
        vd.stop()


def test_a_missing_board_profile_still_calls_c4_on_three_presses(tmp_path, flash):
    (flash / "board.json").unlink()
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode board_missing", timeout=30)
        press_in_safe_mode(vd, OTHER_C4, presses=3)   # the other gesture: three short presses
    finally:
        vd.stop()


def test_corrupt_board_profile_and_config_call_the_safe_c4(tmp_path, flash):
    (flash / "board.json").write_text('{"modem": ')
    (flash / "config.json").write_text("not json")
    vd = _boot(tmp_path, flash, phones={"911": dict(behaviour="answer")})
    try:
        vd.wait_console("EV safe_mode board_corrupt", timeout=30)
        press_in_safe_mode(vd, "911", hold_s=2.5)   # no board profile, no config: 911 (appboot.load_config's rule)
    finally:
        vd.stop()


@pytest.mark.parametrize("name, why, calls", [("config.json", "config_too_big", DEFAULT_C4),
                                               ("board.json", "board_too_big", OTHER_C4)])
def test_an_oversized_config_or_board_profile_is_refused_and_the_button_still_calls(
        tmp_path, flash, name, why, calls):
    """A bad provision or a damaged flash leaves a file far past what a config holds. Read
    at every boot, it filled the heap: MemoryError, a crash loop (or, where it fitted, a
    config nobody checked). Refused by its size, as a corrupt one: the board's safe C4 for
    her config, the default pins with her C4 for the board profile."""
    kept = json.loads((flash / name).read_text())
    (flash / name).write_text(json.dumps(dict(kept, notes="x" * 600_000)))   # still valid JSON
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode " + why, timeout=60)
        if name == "board.json":
            press_in_safe_mode(vd, calls)
        else:
            _press_and_wait(vd, calls)
        assert "EV crash" not in vd.console_text()
    finally:
        vd.stop()


def _press_and_wait(vd, number):
    vd.wait_console("EV ready safe", timeout=60)   # the firmware, on the safe config
    mark = len(vd.events)
    vd.press(hold_s=2.5)
    vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == number, after=mark, timeout=60)


# A fault that recurs on every start (here: a shadowing pmu.py that raises, as the AXP192
# board's boot imports it; on a chip, a MemoryError at the same point of an alert).
RECURRING_FAULT = "raise RuntimeError('the same fault on every start')\n"


def test_a_crash_loop_during_her_alert_hands_over_to_safe_mode_which_calls_c4(tmp_path, flash):
    (flash / "pmu.py").write_text(RECURRING_FAULT)
    (flash / "alert.json").write_text('{"active": true}')   # her alert was running
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode crash_loop", timeout=120)
        assert vd.console_text().count("EV crash RuntimeError") == 3
        # no press: the alert she raised goes on as safe mode's covert call
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4, timeout=60)
        assert not (flash / "crashes.json").exists()   # the next reset tries the firmware again
    finally:
        vd.stop()


def _flip_board_profile(flash):
    """One flipped bit in board.json ('"' of "modem" -> '#'): no longer JSON."""
    raw = bytearray((flash / "board.json").read_bytes())
    raw[raw.index(b'"modem"')] ^= 0x01
    (flash / "board.json").write_bytes(bytes(raw))


@pytest.mark.parametrize("breaks", [break_firmware, _flip_board_profile], ids=["module", "board_profile"])
def test_her_alert_running_when_the_firmware_stops_starting_is_carried_on_by_safe_mode(
        tmp_path, flash, breaks):
    """Safe mode carried her alert on only after a crash loop. A reset mid-alert that left a
    module corrupt, or a board profile a flipped bit broke, ended in safe mode waiting for a
    press that may not come again: C4 was never called for the alert she had raised."""
    (flash / "alert.json").write_text(json.dumps({"v": 1, "active": True, "elapsed_ms": 60000}))
    breaks(flash)
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode", timeout=60)
        # no press: the alert she raised goes on as safe mode's covert call
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4, timeout=60)
    finally:
        vd.stop()


def test_her_press_in_safe_mode_outlives_a_reset_and_the_mended_firmware_carries_it_on(tmp_path, flash):
    """Safe mode saved her press nowhere: a reset during her alert (a brown-out under the
    modem's transmit burst, the watchdog) forgot it. It is saved as the firmware saves an
    alert: after a reset safe mode calls C4 again, and the firmware, once it starts again,
    carries the alert on and sends her trusted contact the SMS safe mode cannot send."""
    lib_alert = flash / "lib" / "alert.mpy"
    pristine = lib_alert.read_bytes() if lib_alert.exists() else None
    break_firmware(flash)
    vd = _boot(tmp_path, flash)
    try:
        press_in_safe_mode(vd, OTHER_C4)
        assert ("safe_alert", "saved") in [row[2:] for row in log_entries(vd)]
        for firmware_mended in (False, True):
            vd.call(vd.network.hangup, OTHER_C4)   # C4 ends the call
            vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == OTHER_C4, timeout=60)
            if firmware_mended:   # a technician's deploy, as break_firmware found the flash
                (flash / "alert.mpy").unlink()
                if pristine is None:
                    lib_alert.unlink()
                else:
                    lib_alert.write_bytes(pristine)
            console, mark = vd.console_mark(), len(vd.events)
            vd.hard_reset()
            vd.wait_console("EV resume" if firmware_mended else "EV safe_mode import_",
                            since=console, timeout=60)
            # no press since: her alert goes on
            vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4,
                          after=mark, timeout=90)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT and e["delivered"],
                      after=mark, timeout=90)
    finally:
        vd.stop()


@pytest.mark.parametrize("board", [None, "ta7670x_a7670sa"])
def test_safe_mode_dials_once_the_network_has_registered_the_module(tmp_path, flash, board):
    """Registering takes long where coverage is weak (here 60 s after the module starts).
    Safe mode dialled at once: every dial before the registration ended NO CARRIER, its
    three rounds were spent in about 15 s, and the alert it carried on called no one."""
    if board:
        flash = install(tmp_path / f"flash-{board}", board, demo_config(c4=[OTHER_C4]))
    (flash / "pmu.py").write_text(RECURRING_FAULT)
    (flash / "alert.json").write_text('{"active": true}')   # her alert was running
    vd = _boot(tmp_path, flash, network_options={"register_s": 60.0},
               **({"board": board} if board else {}))
    try:
        vd.wait_console("EV safe_mode crash_loop", timeout=120)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4, timeout=60)
        assert vd.console_text().count("EV safe_dial") == 1   # no dial wasted before it
    finally:
        vd.stop()


EPOCH_2000 = 946684800


@pytest.mark.parametrize("saved_ago_s, carried_on", [(10 * 86400, False), (60, True)],
                         ids=["ten_days_ago", "a_minute_ago"])
def test_a_crash_loop_carries_her_alert_on_only_while_the_rtc_says_it_lasts(
        tmp_path, flash, saved_ago_s, carried_on):
    """The RTC has real time and the state was saved ten days ago (her battery died in the
    alert): safe mode called C4 at once, a false alert. The normal resume's age rule
    (appboot.saved_gap_ms) ends it; saved a minute ago, C4 is still called at once."""
    (flash / "pmu.py").write_text(RECURRING_FAULT)
    (flash / "alert.json").write_text(json.dumps(
        {"v": 1, "active": True, "elapsed_ms": 60000, "at": int(time.time()) - saved_ago_s}))
    vd = VirtualDevice(flash, time_scale=FAST, network_log=tmp_path / "net.jsonl",
                       c4_numbers=(DEFAULT_C4, OTHER_C4))
    now = time.time()          # the chip's RTC reads the real time (set before the crashes)
    vd.rtc_base = now - (now - EPOCH_2000) * FAST
    vd.start()
    try:
        vd.wait_console("EV safe_mode crash_loop", timeout=120)
        if carried_on:
            vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4, timeout=60)
            assert "EV expired" not in vd.console_text()
            return
        vd.wait_console("EV expired safe_mode", timeout=30)
        # the modem set up (its last set-up command sent): an alert carried on dials now
        deadline = time.monotonic() + 60
        while b"AT+CLCC=1" not in vd.call(lambda: b"".join(d for _, w, d in vd.modem.at_log if w == "rx")):
            assert time.monotonic() < deadline, "safe mode never set the modem up"
            time.sleep(0.05)
        pressed_at = vd.call(vd.sched.now)
        press_in_safe_mode(vd, OTHER_C4)   # her button still calls C4
        dials = [t for t, w, d in vd.call(lambda: list(vd.modem.at_log)) if w == "rx" and b"ATD" in d]
        assert dials and min(dials) > pressed_at, "C4 was called before her press"
    finally:
        vd.stop()


@pytest.mark.parametrize("board", ["tcall_sim800l_axp192", "ta7670x_a7670sa"])
@pytest.mark.parametrize("days_off, carried_on", [(10, False), (0, True)],
                         ids=["ten_days_off", "just_restarted"])
def test_a_crash_loop_with_the_clock_lost_asks_the_network_how_old_her_alert_is(
        tmp_path, monkeypatch, days_off, carried_on, board):
    """Her battery dies in her alert, and the firmware then crashes at every start. Ten days
    later the RTC, unset since the power-on, cannot tell the alert's age: safe mode called
    C4 at once for an alert long over. It now asks the network's clock (AT+CCLK?) once the
    module is registered, as the firmware's resume does, and carries the alert on only if
    it has not ended; without a network time it still calls (the safe guess)."""
    real, ahead = PhoneNetwork.now_datetime, [timedelta(0)]
    monkeypatch.setattr(PhoneNetwork, "now_datetime", lambda self: real(self) + ahead[0])
    with provisioned_device(tmp_path, board=board, gps_ttff_s=1e6) as vd:   # indoors: the network's time
        vd.wait_console("EV clock network", timeout=30)
        her_alert_on_the_flash(vd)
        (vd.flash_dir / "pmu.py").write_text(RECURRING_FAULT)
        ahead[0] = timedelta(days=days_off)
        console, mark = vd.console_mark(), len(vd.events)
        vd.power_cycle()
        vd.wait_console("EV safe_mode crash_loop", since=console, timeout=120)
        if carried_on:
            vd.wait_event(lambda e: e["kind"] == "call_connected", after=mark, timeout=60)
            assert "EV expired" not in vd.wait_console("EV safe_dial", since=console)
            return
        vd.wait_console("EV expired safe_mode", since=console, timeout=60)
        assert not [e for e in vd.events[mark:] if e["kind"] == "call_start"], vd.events[mark:]
        press_in_safe_mode(vd, DEFAULT_C4)   # her button still calls C4


def test_a_crash_loop_while_idle_waits_in_safe_mode_for_her_press(tmp_path, flash):
    (flash / "pmu.py").write_text(RECURRING_FAULT)
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode crash_loop", timeout=120)
        vd.wait_console("safe mode: button watched", timeout=30)
        assert not [e for e in vd.events if e["kind"] == "call_start"]   # nothing to carry on
        press_in_safe_mode(vd, OTHER_C4)
    finally:
        vd.stop()


def test_a_damaged_crash_count_still_ends_a_crash_loop_in_safe_mode(tmp_path, flash):
    # crash() skipped the count when crashes.json did not parse (a flipped bit, a write
    # torn by some other fault): no crash was ever counted, and the board restarted for ever
    (flash / "pmu.py").write_text(RECURRING_FAULT)
    (flash / "crashes.json").write_bytes(b"\xe2")
    (flash / "alert.json").write_text('{"active": true}')   # her alert was running
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode crash_loop", timeout=120)
        assert vd.console_text().count("EV crash RuntimeError") == 3   # the damaged count was 0
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4, timeout=60)
    finally:
        vd.stop()


def test_a_crash_after_a_memory_error_is_still_logged(tmp_path):
    # crash() built a new EventLog, which reads every segment back (4 KB each): on the
    # heap a MemoryError left that read failed, and the crash went unlogged. Here a
    # MemoryError at the press (in the alert's log line: its save and its entry's write
    # are guarded since 2026-12-02, not the rest of add) also leaves no heap to read the
    # log back with.
    from boton.paths import FIRMWARE as fw
    log_src = (fw / "lib" / "eventlog.py").read_text()
    unreadable = log_src + (
        "\nNO_HEAP = []\n_real_lines = EventLog._lines\n_real_add = EventLog.add\n\n\n"
        "def _lines(self, i):\n"
        "    if NO_HEAP:\n"
        "        raise MemoryError('no heap to read the log back')\n"
        "    return _real_lines(self, i)\n\n\n"
        "def add(self, event, detail='-'):\n"
        "    if event == 'alert' and not NO_HEAP:\n"
        "        NO_HEAP.append(1)\n"
        "        raise MemoryError('heap full')\n"
        "    return _real_add(self, event, detail)\n\n\n"
        "EventLog._lines = _lines\nEventLog.add = add\n")
    with provisioned_device(tmp_path) as vd:
        (vd.flash_dir / "eventlog.py").write_text(unreadable)   # the flash root comes first on sys.path
        mark = vd.console_mark()
        vd.hard_reset()
        vd.wait_console("EV ready", timeout=60, since=mark)
        vd.press(hold_s=1.2)
        vd.wait_console("EV resume", timeout=60, since=mark)   # saved before the crash, or by its handler
        assert "EV crash MemoryError:heap_full" in vd.console_text()[-(vd.console_mark() - mark):]
        assert [r for r in log_entries(vd) if r[2] == "crash" and r[3] == "MemoryError:heap_full"]


def test_safe_mode_sends_what_each_dialect_sends():
    """safe.py copies the dialects' covert line, power timings, registration queries and
    network time switch on purpose (safe mode must
    not import firmware/lib, which may be what is broken): the copies must stay equal."""
    import ast
    import importlib
    import sys
    from boton.paths import FIRMWARE
    tree = ast.parse((FIRMWARE / "safe.py").read_text())
    copied = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name)
              and t.id in ("COVERT", "PWRKEY_ON_MS", "OFF_MS", "REG_QUERIES", "NETWORK_TIME_ON")}
    sys.path.insert(0, str(FIRMWARE / "lib"))
    try:
        for family in ("sim800", "a7670"):
            d = importlib.import_module("dialect_" + family)
            assert (copied["COVERT"][family], copied["PWRKEY_ON_MS"][family], copied["OFF_MS"][family]) == \
                (d.COVERT_AUDIO, d.PWRKEY_ON_MS, d.OFF_MS), family
            assert copied["REG_QUERIES"][family] == tuple(q for q, _ in d.REG_QUERIES), family
            assert copied["NETWORK_TIME_ON"][family] == d.NETWORK_TIME_ON, family
    finally:
        sys.path.remove(str(FIRMWARE / "lib"))


@pytest.mark.parametrize("board", ["ta7670x_a7670sa", None])
def test_a_lost_board_profile_falls_back_to_the_one_frozen_into_its_image(tmp_path, board):
    # Safe mode drives the T-Call's pins when board.json is gone; on a T-A7670X those hold
    # its PWRKEY and RESET pressed and never switch its supply on: no call to C4. A board's
    # own image (make firmware BOARD=...) carries its profile in the stamp module.
    import json as _json

    from boton import frozen, mpy, paths
    from boton.release import board_json

    lib = tmp_path / "frozen"
    lib.mkdir()
    (lib / "boton_frozen.py").write_text(frozen.stamp_source("esp32" if board else "unix", board))
    out = mpy.run("sys.path.insert(0, %r)\nimport bootcheck, json\n"
                  "plan, problem = bootcheck.plan()\nprint(json.dumps([plan[0], problem]))"
                  % str(paths.FIRMWARE), lib=lib, cwd=tmp_path)
    driven, problem = _json.loads(out.strip().splitlines()[-1])
    assert problem == "missing"
    if board:
        assert driven == _json.loads(board_json(board))
        assert driven["modem"]["power_on"] == 12 and driven["modem"]["pwrkey_active"] == 1
    else:   # the virtual device's image (or an .mpy firmware): the programme's T-Call
        assert driven["modem"]["power_on"] == 23 and "pwrkey_active" not in driven["modem"]


def test_deploy_refuses_an_image_built_for_another_board():
    from boton import frozen
    from boton.provision import frozen_mismatch

    stamp = dict(frozen.stamp("esp32"), board="ta7670x_a7670sa")
    assert frozen_mismatch(stamp, "ta7670x_a7670sa") is None
    why = frozen_mismatch(stamp, "tcall_sim800l_axp192")
    assert why == ("its image was built for the ta7670x_a7670sa board, not tcall_sim800l_axp192 "
                   "(make firmware BOARD=tcall_sim800l_axp192)")
    assert frozen_mismatch(dict(stamp, board=None), "tcall_sim800l_axp192") is None  # the rig's image
    # status sent such a board to `boton deploy`, which refuses it; and the flash it needs
    # erases her configuration and PIN, which neither said
    from boton.provision import remedy
    assert remedy(["safe.mpy is not this release's"]) == "boton deploy"
    other = frozen_mismatch(dict(stamp, sha256="0" * 64), "ta7670x_a7670sa")
    assert other.startswith("it runs frozen firmware")
    assert remedy(["safe.mpy is not this release's", other]).startswith("flash the matching image")
    assert "her configuration and PIN" in remedy([why])
    # test-call, deliver and the HIL check say the same (they sent it to deploy too)
    assert remedy(["main.py is missing"], "socket://h:1", "b") == "run `boton deploy --port socket://h:1 --board b`"
    assert remedy([other], "socket://h:1", "b").startswith("flash the matching image")


BOARD = "tcall_sim800l_axp192"


def _chip_with_garbage_at_the_start_of_its_filesystem(tmp_path, frozen=True):
    """A provisioned button's whole flash (this board's image: firmware frozen in), whose
    filesystem's first two blocks are garbage, as a failing sector or a torn superblock
    leaves them: LittleFS will not mount it, and its first block is not erased (the port's
    inisetup then prints "The filesystem appears to be corrupted" for ever)."""
    from boton import image as img

    chip = tmp_path / "chip.bin"
    chip.write_bytes(img.build_image(img.virtual_firmware(),
                                     img.device_files(BOARD, demo_config(c4=[OTHER_C4]), frozen=frozen), "4MB"))
    region = img.flash_image_spec(chip).rsplit("@", 1)[1]
    offset, size = (int(x, 0) for x in region.split("+"))
    with open(chip, "r+b") as f:
        f.seek(offset)
        f.write(bytes(range(256)) * 32)   # 8 KB: blocks 0 and 1, both superblock copies
    return chip, offset, size


def test_a_filesystem_that_will_not_mount_still_calls_c4_from_the_frozen_image(tmp_path):
    """boot.py, main.py, safe mode and her configuration all live on the filesystem: with
    the port's _boot.py the button is dead. The image's own _boot.py runs its frozen safe
    mode instead, with the profile frozen into the image (safe_c4), writing nothing."""
    from boton import frozen

    try:
        interpreter = frozen.board_interpreter(BOARD)   # this board's own release image
    except frozen.Unavailable as e:
        pytest.skip(str(e))
    chip, offset, size = _chip_with_garbage_at_the_start_of_its_filesystem(tmp_path)
    vfs_before = chip.read_bytes()[offset:offset + size]
    vd = VirtualDevice(tmp_path / "flash", board=BOARD, flash_image=chip, interpreter=interpreter,
                       time_scale=FAST, network_log=tmp_path / "net.jsonl")
    vd.start()
    try:
        vd.wait_console("The filesystem appears to be corrupted", timeout=60)   # for a technician
        vd.wait_console("EV safe_mode no_filesystem", timeout=30)
        # Her config (OTHER_C4) is on the filesystem that will not mount: the frozen profile's safe_c4.
        mark = press_in_safe_mode(vd, DEFAULT_C4, hold_s=2.5)
        vd.call(vd.network.hangup, DEFAULT_C4)
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, after=mark, timeout=60)
        assert call["answered"]
        assert call["audio"]["speaker_level"] == 0 and call["audio"]["ringer_level"] == 0
        assert call["audio"]["mic_gain"] > 0
        assert vd.console_text().count("The filesystem appears to be corrupted") == 1
    finally:
        vd.stop()
    assert chip.read_bytes()[offset:offset + size] == vfs_before   # nothing written: as a technician finds it


def test_an_mpy_firmware_has_no_frozen_safe_mode_for_a_filesystem_that_will_not_mount(tmp_path):
    """The .mpy development deploy runs the port's own _boot.py: on such a flash the board
    prints the port's message for ever and never calls C4 (docs/hardware.md says so)."""
    chip, _, _ = _chip_with_garbage_at_the_start_of_its_filesystem(tmp_path, frozen=False)
    vd = VirtualDevice(tmp_path / "flash", board=BOARD, flash_image=chip, interpreter="pypi",
                       time_scale=FAST, network_log=tmp_path / "net.jsonl")
    vd.start()
    try:
        vd.wait_console("The filesystem appears to be corrupted", timeout=60, count=2)   # every 3 s
        vd.press(hold_s=2.5)
        vd.wait_console("The filesystem appears to be corrupted", timeout=30, count=3)
        assert "safe mode" not in vd.console_text()
        assert not [e for e in vd.events if e["kind"] == "call_start"]
    finally:
        vd.stop()


@pytest.mark.skipif(frozen.tooling()[0] is None, reason="no 32-bit MicroPython build tooling "
                    "(CI has it beside the clone)")
# the ESP32's first heap, and from 16 flash path lengths the heap where her press failed
@pytest.mark.parametrize("heap, path_length", [("56k", 0)] + [("96k", n) for n in range(16)])
def test_an_mpy_firmware_too_big_for_the_heap_still_calls_c4_from_safe_mode(tmp_path, heap, path_length,
                                                                              request):
    """The .mpy deploy (development) on a board whose heap cannot hold the firmware's
    bytecode: the import ends in a MemoryError, and the names it loaded stay in the heap.
    Safe mode run on what was left failed her press with a MemoryError at 96 KB for some
    lengths of the flash's path (where the import runs out moves with every string it
    holds; CI's path among them). bootcheck now notes why and resets, and safe mode runs on
    a clean heap. On the 32-bit build with nothing frozen."""
    base = Path(tempfile.mkdtemp(prefix="boton-mpy-heap-" + "x" * path_length, dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    flash = install(base / "flash", config=demo_config(c4=[OTHER_C4]))
    exe = frozen.unix32(frozen=False).exe
    chip = frozen.DeviceInterpreter(str(exe), heap, f"32-bit MicroPython, .mpy files, {heap} heap",
                                    chip=True)
    vd = _boot(tmp_path, flash, interpreter=chip)
    try:
        # MicroPython takes a MemoryError while it looks for a module's file for a missing
        # file (vfs.c, mp_vfs_import_stat): which of the two ends the import depends on where
        # the heap runs out
        text = vd.wait_console("EV safe_mode import_", timeout=60)
        assert ("import_MemoryError" in text or "import_ImportError:no module named" in text), text
        assert "safe mode after a reset: import_" in text, text
        assert not (flash / "safe_next.txt").exists()  # bootcheck.SAFE_NEXT_PATH: the next reset tries the firmware
        press_in_safe_mode(vd, OTHER_C4)
    finally:
        vd.stop()


def _rename_baud(flash):
    """One flipped bit in a key's name ("baud" -> "caud"): still JSON."""
    raw = (flash / "board.json").read_bytes()
    assert b'"baud"' in raw
    (flash / "board.json").write_bytes(raw.replace(b'"baud"', b'"caud"', 1))


def _drop_tx(flash):
    b = json.loads((flash / "board.json").read_text())
    del b["modem"]["tx"]
    (flash / "board.json").write_text(json.dumps(b))


def _ip5306_true(flash):
    b = json.loads((flash / "board.json").read_text())
    b["ip5306"] = True
    (flash / "board.json").write_text(json.dumps(b))


def _button_level_a_string(flash):
    b = json.loads((flash / "board.json").read_text())
    b["button"]["active"] = "0"
    (flash / "board.json").write_text(json.dumps(b))


@pytest.mark.parametrize("breaks", [_rename_baud, _drop_tx, _ip5306_true, _button_level_a_string],
                         ids=["baud_renamed", "no_tx", "ip5306_true", "button_level"])
def test_a_board_profile_missing_a_pin_safe_mode_drives_still_calls_c4(tmp_path, flash, breaks):
    """bootcheck checked only the UART number, PWRKEY and the button's pin: a profile whose
    modem lost its "baud" or "tx" (a flipped bit in a key's name) passed, the firmware
    crashed on it three times, and safe mode, on the same profile, died with a KeyError:
    the button restarted for ever and her press was never called."""
    breaks(flash)
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode board_", timeout=60)
        press_in_safe_mode(vd, OTHER_C4, hold_s=2.5)   # the default pins, her C4
        assert "EV crash" not in vd.console_text() and vd.resets == 0
    finally:
        vd.stop()


def test_a_safe_mode_note_that_is_not_text_still_gives_safe_mode(tmp_path, flash):
    # bootcheck read safe_next.txt as text: a damaged one raised UnicodeError in main.py,
    # before any watchdog, and the button sat at the REPL on every boot
    (flash / "safe_next.txt").write_bytes(b"\xff\xfe\xc3")
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("EV safe_mode import_unknown", timeout=60)
        press_in_safe_mode(vd, OTHER_C4, hold_s=2.5)
        assert not (flash / "safe_next.txt").exists()   # the boot after tries the firmware again
    finally:
        vd.stop()


def test_a_modem_that_goes_silent_while_safe_mode_waits_for_the_network_is_brought_back(tmp_path, flash):
    """The module hung (or switched itself off) while safe mode waited for it to register:
    each query went unanswered for 5 s and counted as "not registered", each unanswered dial
    as "refused", and her alert took about 6 minutes a number with no call."""
    break_firmware(flash)
    vd = _boot(tmp_path, flash, network_options={"register_s": 120.0})
    try:
        vd.wait_console("safe mode: modem ready", timeout=60)
        mark = len(vd.events)
        vd.press(hold_s=2.5)
        vd.wait_console("EV safe_alert", timeout=30)
        vd.call(vd.modem.go_silent)     # hung while it waits for the network
        call = vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == OTHER_C4,
                             after=mark, timeout=120)
        assert call
        assert "EV safe_modem_silent" in vd.console_text()
        presses = vd.call(lambda: list(vd.modem.pwrkey_presses))
        assert not [p for p in presses if p["powered"]]   # never a press on a running module
    finally:
        vd.stop()


def test_a_crash_loop_while_the_firmwares_call_still_rings_calls_the_next_c4_number(tmp_path):
    """The firmware dialled C4's first number (not answering); a fault then recurred on
    every start. Safe mode was up while that call still rang: each of its dials was refused
    (+CME ERROR: 3, the module busy with the firmware's call), that spent all its rounds,
    and C4's second number was never called for the alert she raised."""
    a, b = "+524499100011", "+524499100022"
    flash = install(tmp_path / "flash", config=demo_config(c4=[a, b]))
    vd = VirtualDevice(flash, time_scale=FAST, network_log=tmp_path / "net.jsonl", c4_numbers=(a, b),
                       phones={a: dict(behaviour="no_answer")}, network_options={"ring_timeout_s": 60.0})
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=60)
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_start" and e["to"] == a, after=mark, timeout=60)
        (flash / "pmu.py").write_text(RECURRING_FAULT)
        console = vd.console_mark()
        vd.hard_reset()
        vd.wait_console("EV safe_mode crash_loop", since=console, timeout=120)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == b, after=mark, timeout=120)
        text = vd.console_text()[-(vd.console_mark() - console):]
        assert "EV safe_call_kept" in text, text
    finally:
        vd.stop()


SAFE_MODE_FAILS_ONCE = """# test fault (tests/test_safe_boot.py): safe mode itself stops once
import safe
_main = safe._main
_left = [1]


async def _failing(*args, **kw):
    if _left[0]:
        _left[0] -= 1
        raise KeyError("baud")
    return await _main(*args, **kw)


safe._main = _failing
"""


def test_safe_mode_that_stops_is_run_again_on_the_default_pins(tmp_path, flash):
    # main.py ran safe mode once: whatever stopped it left the button at the REPL until the
    # watchdog reset it into the same failure, for ever
    break_firmware(flash)
    main = flash / "main.py"
    main.write_text(SAFE_MODE_FAILS_ONCE + main.read_text())
    vd = _boot(tmp_path, flash)
    try:
        vd.wait_console("safe mode: safe_KeyError", timeout=60)
        resets = vd.resets     # (one: the failed import's, by design)
        press_in_safe_mode(vd, OTHER_C4, hold_s=2.5)
        assert vd.resets == resets
    finally:
        vd.stop()


def test_an_ip5306_profile_that_leaves_out_the_chips_address_still_starts_the_firmware(tmp_path):
    # the host takes a missing "addr" for the chip's 0x75 (boards.pin_problems), as pmu.py
    # does; bootcheck's stricter check sent such a board to safe mode for good (review)
    flash = install(tmp_path / "flash", "tcall_sim800l_ip5306", demo_config())
    b = json.loads((flash / "board.json").read_text())
    del b["ip5306"]["addr"]
    (flash / "board.json").write_text(json.dumps(b))
    vd = VirtualDevice(flash, board="tcall_sim800l_ip5306", time_scale=FAST,
                       network_log=tmp_path / "net.jsonl")
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=60)
        assert "safe_mode" not in vd.console_text()
    finally:
        vd.stop()
