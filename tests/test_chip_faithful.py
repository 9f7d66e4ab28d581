"""The virtual ESP32 is as unkind as the chip where the firmware depends on it (issue 13,
item 7), and the firmware survives it:

* after a light sleep with ext0/ext1 wake, the wake pins are left in RTC mode (read 0,
  no IRQ) until re-initialised, and re-creating the button's IRQ disarms its ext0 wake;
* the UARTs (modem and console) hear nothing while the chip light-sleeps: the bytes are
  lost, not buffered; the SIM800's RI line is a GPIO that wakes it;
* machine.WDT cannot be stopped: it outlives a soft reset (a host's REPL session);
* the RTC counts from 2000-01-01 at power-on until the firmware sets it;
* time.ticks_ms() wraps every 2**30 ms (12.4 days): a button she has carried for two weeks
  crosses a wrap, maybe in the middle of her alert (the rig sets the chip's uptime).

Each scenario fails on a firmware (or host) that trusts a kinder chip.
"""
import json
import threading
import time

import pytest
from click.testing import CliRunner

from boton.boards import board_file, load_board
from boton.cli import main as cli
from boton.device import Device
from boton.frozen import device_interpreter
from boton.sim import chipclock
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT
from rigkit import demo_config, provisioned_device

RI_BOARD = "devkitc_sim800l_neo6m"  # its SIM800's RI is wired to GPIO33


def _no_ri_board(tmp_path):
    """The T-Call's IP5306 revisions route neither RI nor DTR to the ESP32."""
    return "tcall_sim800l_ip5306"


PIN = "5830"


def _ubicacion(vd):
    """C4 asks for her location by SMS, delivered the instant the chip falls asleep (its
    +CMTI then reaches a deaf UART); returns the network event index to wait after."""
    mark = len(vd.events)
    vd.on_next_sleep(lambda: vd.modem.net_incoming_sms(DEFAULT_C4, "UBICACION " + PIN))
    return mark


def test_button_pin_after_light_sleep_is_no_false_alert_and_still_alerts(tmp_path):
    # ESP-IDF leaves the ext0 pin in RTC mode after lightsleep(): an active-low button
    # then reads "pressed" (a false alert) and its IRQs stop (a dead button)
    with provisioned_device(tmp_path, board=RI_BOARD) as vd:
        vd.wait_asleep(4.5, timeout=60)  # three 2 s sleeps: the firmware went back each time
        assert not any(e["kind"].startswith("call") for e in vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
    assert [w for w in vd.wakes if w[1] == "timer"]  # it did sleep and wake in between


def test_a_press_while_asleep_wakes_the_chip_after_every_sleep(tmp_path):
    # Re-creating the button's IRQ after a sleep (Pin.irq) disarms its ext0 wake on the
    # chip (ports/esp32/machine_pin.c): from the second sleep on, only the 2 s timer would
    # end a sleep, and a press shorter than that, all of it while the chip sleeps, is lost.
    with provisioned_device(tmp_path, board=RI_BOARD) as vd:
        vd.wait_asleep(4.5, timeout=60)  # three 2 s sleeps, each followed by after_wake()
        assert not any(e["kind"].startswith("call") for e in vd.events)
        woke = len(vd.wakes)
        vd.press_when_asleep(hold_s=1.2)  # hold_ms 800; the next timer wake is 2 s away
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
    assert vd.wakes[woke][1] == vd.board["button"]["pin"]  # its ext0 ended that sleep


@pytest.mark.parametrize("board", [RI_BOARD, "ta7670x_a7670sa"])
def test_a_stuck_button_lets_the_chip_sleep_and_its_release_is_heard(tmp_path, board):
    # ext0 wakes on a level: a button held down (pressed in a bag, water in the switch) woke
    # every light sleep at once, ~50 times a second: awake 99% of the time, the battery flat
    # in a day instead of days. Presses mode: a press held on is no gesture, so no alert.
    cfg = demo_config(gesture="presses")
    with provisioned_device(tmp_path, config=cfg, board=board) as vd:
        vd.wait_asleep(2.0, timeout=90)
        vd.hold_button(True)
        asleep, woke = vd.asleep_s, len(vd.wakes)
        vd.wait_asleep(asleep + 6.0, timeout=20)      # it sleeps on, the button still down
        assert len(vd.wakes) - woke < 30, vd.wakes[woke:][:10]
        vd.hold_button(False)                          # released: the next sign still works
        vd.wait_asleep(vd.asleep_s + 1.0, timeout=20)  # asleep again: the release was taken
        mark = len(vd.events)
        vd.press_sequence(3)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60, after=mark)


def test_a_press_held_through_a_reset_raises_her_alert(tmp_path):
    # On the chip an input made while its line is already low raises no edge: her press
    # held through a reset (a watchdog, a brown-out) was never seen (the rig used to send
    # the level after the pin was made, an edge the chip never has). Light sleep off: its
    # level wake would notice the press later, at the first sleep after a GPS fix.
    cfg = demo_config()
    cfg["light_sleep"] = False
    with provisioned_device(tmp_path, config=cfg) as vd:
        mark, console = len(vd.events), vd.console_mark()
        vd.hold_button(True)
        vd.hard_reset()
        vd.wait_console("EV alert gesture", since=console, timeout=60)
        vd.hold_button(False)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60, after=mark)


def test_sms_command_sent_while_asleep_is_answered(tmp_path):
    cfg = demo_config(pin=PIN)
    with provisioned_device(tmp_path, config=cfg, board=RI_BOARD) as vd:
        vd.wait_console("EV power modem_sleep", timeout=30)
        mark = _ubicacion(vd)
        reply = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_C4,
                              timeout=60, after=mark)
    assert reply["text"].startswith("UBICACION")
    assert vd.dropped_asleep["modem"] > 0          # the +CMTI itself was lost...
    assert any(w[1] == vd.board["modem"]["ri"] for w in vd.wakes)  # ...RI's pulse woke it


def test_board_without_ri_sleeps_and_still_hears_sms_and_calls(tmp_path):
    cfg = demo_config(pin=PIN)
    cfg["sweep_s"] = 20  # scaled with time_scale on the rig: every 2 s here
    with provisioned_device(tmp_path, config=cfg, board=_no_ri_board(tmp_path)) as vd:
        vd.wait_asleep(1.0, timeout=60)            # it light-sleeps although no RI is wired
        mark = _ubicacion(vd)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_C4, timeout=60, after=mark)
        assert vd.dropped_asleep["modem"] > 0
        log = vd.console_mark()
        vd.on_next_sleep(lambda: vd.network.call_device(DEFAULT_C4, vd.device_number))
        vd.wait_console("EV incoming_", timeout=30, since=log)  # the ring was heard by a sweep


def test_an_ri_line_held_up_only_by_the_chip_reads_idle_and_still_wakes_it_for_a_call(tmp_path):
    # An RI that only ever pulls low (the T-A7670X's: LilyGO sets INPUT_PULLUP) floats
    # when released unless the firmware enables the chip's pull-up ("ri_pull": "up").
    # Floating, it reads "ringing": the chip never light-sleeps, and her battery is gone.
    # The T-A7670X itself never light-sleeps (its GPS cannot be switched off), so the
    # RI-wired DevKitC build stands in, its RI made open-drain.
    assert load_board("ta7670x_a7670sa")["modem"]["ri_pull"] == "up"
    profile = json.loads(board_file(RI_BOARD).read_text())
    profile["modem"]["ri_pull"] = "up"
    board = tmp_path / "open_drain_ri.json"
    board.write_text(json.dumps(profile))
    with provisioned_device(tmp_path, board=str(board)) as vd:
        vd.wait_asleep(1.0, timeout=60)
        log = vd.console_mark()
        woke = len(vd.wakes)
        vd.on_next_sleep(lambda: vd.network.call_device(DEFAULT_C4, vd.device_number))
        vd.wait_console("EV incoming_", timeout=30, since=log)
        assert vd.board["modem"]["ri"] in [w[1] for w in vd.wakes[woke:]]  # RI going low woke it


def test_watchdog_outlives_the_soft_reset_and_a_long_session_is_fed(tmp_path):
    cfg = demo_config()
    cfg["watchdog_s"] = 2
    with provisioned_device(tmp_path, config=cfg, board=RI_BOARD) as vd:
        with Device(vd.repl_url, timeout=20) as dev:
            # longer than the watchdog the firmware armed before the session's soft reset
            assert dev.exec("import time\ntime.sleep(3)\nprint(7)", timeout=20).strip() == b"7"
        assert vd.wdt_kept_over_soft_reset >= 1 and vd.wdt_resets == 0
        r = CliRunner().invoke(cli, ["status", "--port", vd.repl_url, "--json"])
        assert r.exit_code == 0, r.output
        assert vd.wdt_resets == 0


def test_ctrl_c_lost_while_the_board_sleeps_is_sent_again(tmp_path):
    with provisioned_device(tmp_path, board=RI_BOARD) as vd:
        asleep = threading.Event()
        vd.wait_console("EV power modem_sleep", timeout=30)
        vd.on_next_sleep(asleep.set)
        assert asleep.wait(30)
        with Device(vd.repl_url, timeout=10) as dev:  # its first Ctrl-C reaches a deaf UART
            assert dev.exec("print(6*7)").strip() == b"42"
    assert vd.dropped_asleep["console"] > 0


def test_a_ctrl_c_taken_as_the_board_fell_asleep_leaves_it_awake_for_the_session(tmp_path):
    # deploy's knocks raced the sleep: the Ctrl-C stopped the firmware inside lightsleep().
    # The chip is awake once its interpreter runs again; the rig kept its UARTs deaf for
    # good, and the session's own Ctrl-A went unheard ("the prompt went silent")
    with provisioned_device(tmp_path, board=RI_BOARD) as vd:
        vd.wait_console("EV power modem_sleep", timeout=30)
        log = vd.console_mark()
        vd.ctrl_c_as_it_sleeps()
        vd.wait_console("KeyboardInterrupt", timeout=30, since=log)
        with Device(vd.repl_url, timeout=10) as dev:
            assert dev.exec("print(6*7)").strip() == b"42"


def test_log_stamps_unset_clock_as_such_then_gps_utc(tmp_path):
    with provisioned_device(tmp_path, board=RI_BOARD) as vd:
        vd.wait_console("EV clock gps", timeout=60)
        lines = []
        for i in range(4):
            f = tmp_path / "flash" / ("log.%d" % i)
            if f.exists():
                lines += [ln for ln in f.read_text().splitlines() if ln.strip()]
    stamps = {ln.split(" ")[2]: ln.split(" ")[1] for ln in lines}
    assert stamps["boot"].endswith("?") and stamps["boot"].startswith("9466")  # 2000-01-01
    assert abs(int(stamps["clock"]) - time.time()) < 120   # then GPS UTC: real time


WRAP_S = chipclock.TICKS_PERIOD / 1000   # 12.4 days
LEAD_S = 25     # the chip starts this long before its ticks wrap: its boot fits in it


def test_her_alert_across_the_ticks_wrap_of_a_button_on_for_twelve_days(tmp_path):
    if chipclock.unavailable():
        pytest.skip(chipclock.unavailable())
    if not device_interpreter().chip:
        pytest.skip("the 64-bit PyPI port's ticks wrap at 2**62, not at the ESP32's 2**30")
    cfg = demo_config()
    cfg["update_every_s"] = 60   # scaled with time_scale: every 6 s
    with provisioned_device(tmp_path, config=cfg, uptime_s=WRAP_S - LEAD_S) as vd:
        left_ms = chipclock.TICKS_PERIOD - vd.chip_ticks_ms()
        assert 4000 < left_ms < LEAD_S * 1000, f"the boot ended {left_ms} ms before the wrap"
        # C4 does not answer the first call: the alert's dial timeout, redial and update
        # run on ticks taken across the wrap
        vd.call(vd.network.set_behaviour, DEFAULT_C4, "no_answer")
        # she presses 0.4 s before the wrap: the 0.8 s hold ends after it
        time.sleep((left_ms - 400) / 1000)
        mark = len(vd.events)
        pressed_at = vd.chip_ticks_ms()
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, timeout=30, after=mark)
        vd.call(vd.network.set_behaviour, DEFAULT_C4, "answer")
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT, timeout=30, after=mark)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=60, after=mark)
        connected_at = vd.chip_ticks_ms()
        update = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT
                               and e["text"].startswith("ACTUALIZACION"), timeout=60, after=mark)
        text = vd.console_text()
    text = text[text.index("EV alert gesture"):]
    assert pressed_at > chipclock.TICKS_PERIOD - 1000 and connected_at < LEAD_S * 1000  # it did wrap in between
    assert sms["text"].startswith("ALERTA") and update
    # no AT command timed out, nothing looked like a fault, because of the wrap
    for bad in ("at_error", "dial_error", "sms_error", "modem_hung", "modem_silent", "modem_recovered",
                "sweep_error", "Traceback"):
        assert bad not in text, bad
