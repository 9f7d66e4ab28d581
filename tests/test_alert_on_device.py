"""Cancelling a false alarm and C4's SMS commands, on the virtual device."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from boton.sim import chipclock
from boton.sim.flashdir import install
from boton.sim.modem import Sim800
from rigkit import demo_config, provisioned_device, wait_until


def cancel_config():
    cfg = demo_config(pin="482913")
    cfg["gesture"]["cancel_ms"] = 1500
    return cfg


def test_cancel_gesture_tells_contacts_and_c4_and_hangs_up(tmp_path):
    with provisioned_device(tmp_path, config=cancel_config(), c4_hangup_after_s=120) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0], timeout=60)
        mark = len(vd.events)
        vd.press(hold_s=2.0)  # a new, long hold while the alert is active
        to_contact = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0]
                                   and "CANCELADA" in e["text"], timeout=60, after=mark)
        to_c4 = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.c4_numbers[0]
                              and "CANCELADA" in e["text"], timeout=60, after=mark)
        ended = vd.wait_event(lambda e: e["kind"] == "call", timeout=60, after=mark)
    assert "911" in to_contact["text"]  # a cancel can be forced: her contacts are told what to do
    assert len(to_contact["text"]) <= 160 and len(to_c4["text"]) <= 160
    assert ended["ended_by"] == vd.device_number  # the device hung up, C4 did not


def console_since(vd, mark):
    text = vd.console_text()
    return text[max(0, len(text) - (vd.console_mark() - mark)):]


def alert_cancelled_while_the_sim_is_read_again(vd):
    """Her press and her cancel while the modem reads a lost SIM again (a recovery, which
    her dial waits for, up to 30 s) and before it registers, which the caller then lets it
    do (modem.no_network(False)). Returns the console and event marks from before."""
    import time
    m = vd.modem
    vd.wait_console("EV ready", timeout=60)
    mark_c = vd.console_mark()
    vd.call(lambda: (m.no_network(True), m.sim_missing(), m.sim_reseated()))
    vd.wait_console("EV sim_again", since=mark_c, timeout=30)
    mark = len(vd.events)
    vd.press(hold_s=1.2)
    vd.wait_console("EV alert gesture", since=mark_c, timeout=10)
    time.sleep(0.5)  # her hand: a moment between the two presses
    vd.press(hold_s=2.0)
    vd.wait_console("EV cancel device", since=mark_c, timeout=15)
    return mark_c, mark


def test_a_cancel_while_her_call_waits_for_a_modem_recovery_never_calls_c4_after_it(tmp_path):
    # Her dial waits for a recovery of the modem to end; her cancel's hang-up did not
    # wait, and found no call. Then the ATD went out: a call to C4, her microphone open,
    # that nobody ended (review, 2026-12-03). Real time: the field's 30 s wait.
    with provisioned_device(tmp_path, config=cancel_config(), time_scale=1.0) as vd:
        mark_c, mark = alert_cancelled_while_the_sim_is_read_again(vd)
        vd.call(vd.modem.no_network, False)
        # the recovery ends, and her dial, which waited for it, gives up (or calls C4)
        wait_until(vd, lambda: "EV call_ended local" in console_since(vd, mark_c) or
                   any(e["kind"] == "call_start" for e in vd.events[mark:]), timeout=60)
        calls = [e for e in vd.events[mark:] if e["kind"] == "call_start"]
    assert not calls, f"C4 called after her cancel: {calls}"


def test_her_new_alert_after_a_cancel_during_a_modem_recovery_is_not_failed_by_the_old_dial(tmp_path):
    # The dial her cancel left waiting said "ended" when the recovery ended: her new
    # alert's call, waiting too, was counted failed, and its redial met a call going out
    import time
    with provisioned_device(tmp_path, config=cancel_config(), time_scale=1.0, c4_hangup_after_s=300) as vd:
        mark_c, mark = alert_cancelled_while_the_sim_is_read_again(vd)
        time.sleep(1.0)  # her hand again
        vd.press(hold_s=1.2)  # she presses again: a new alert
        vd.wait_console("EV alert gesture", since=mark_c, timeout=15, count=2)
        vd.call(vd.modem.no_network, False)
        vd.wait_event(lambda e: e["kind"] == "call_connected", after=mark, timeout=90)
        text = console_since(vd, mark_c)
    assert "EV call_failed" not in text and "EV dial_error" not in text, text


def test_c4_cancels_by_sms_with_the_pin(tmp_path):
    with provisioned_device(tmp_path, config=cancel_config(), c4_hangup_after_s=120) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        mark = len(vd.events)
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "Cancelar 482913")
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0]
                            and "C4" in e["text"] and "cerrada" in e["text"], timeout=60, after=mark)
    assert "maps.google" not in sms["text"]


def test_c4s_cancel_whose_notice_was_lost_in_her_alert_is_read_at_the_next_health_check(tmp_path):
    # The module's +CMTI for C4's CANCELAR is lost on the line (a garbled byte). Standby's
    # sweep does not run in an alert: the SMS waited unread in the SIM for the rest of her
    # alert (an hour), C4 got no reply and her call stayed up. Each health check of an
    # alert now looks for unread SMS (AT+CPMS?, listed only when the SIM holds one).
    cfg = cancel_config()
    cfg["health_every_s"] = 2       # real seconds: the firmware's default is a minute
    with provisioned_device(tmp_path, config=cfg, c4_hangup_after_s=None) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        mark = len(vd.events)
        vd.call(vd.modem.lose_urcs, "+CMTI", 1)
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "Cancelar 482913")
        vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0]
                      and "cerrada" in e["text"], timeout=60, after=mark)
        wait_until(vd, lambda: not vd.modem.inbox, timeout=30)   # read and deleted


def test_a_cancel_the_network_held_for_hours_does_not_end_her_new_alert(tmp_path):
    # C4 closed an earlier alarm with CANCELAR while the button was out of coverage. The
    # SMSC held the SMS and delivers it when the button registers again, hours later, in
    # the middle of a new alert. The SMS's time stamp (SCTS) says when C4 sent it: before
    # this alert began, so it is not this alert's cancel. C4 gets the status instead.
    with provisioned_device(tmp_path, config=cancel_config(), c4_hangup_after_s=120) as vd:
        vd.wait_console("EV clock", timeout=30)  # the RTC is set: the SMS's age can be told
        vd.call(vd.network.set_coverage, False)
        vd.press(hold_s=1.2)
        vd.wait_console("EV alert", timeout=30)
        mark = len(vd.events)
        vd.call(vd.network.hold_sms, vd.c4_numbers[0], vd.device_number, "Cancelar 482913", 7200)
        vd.call(vd.network.set_coverage, True)
        vd.wait_event(lambda e: e["kind"] == "sms_late" and e["to"] == vd.device_number,
                      timeout=60, after=mark)
        reply = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.c4_numbers[0]
                              and ("ESTADO" in e["text"] or "cerrada" in e["text"]),
                              timeout=60, after=mark)
        assert "Alerta activa" in reply["text"], reply["text"]
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60, after=mark)
    assert not [e for e in vd.events[mark:] if e["kind"] == "sms" and "cerrada" in e["text"]]


def test_c4s_command_that_came_while_the_chip_rebooted_is_answered_in_her_alert(tmp_path):
    # The ESP32 resets mid-alert (watchdog, brown-out); the modem keeps power and stores
    # C4's UBICACION, but its +CMTI went to a chip that was booting. During an alert there
    # is no standby sweep: the firmware must look at unread SMS once it is up again.
    with provisioned_device(tmp_path, config=cancel_config(), c4_hangup_after_s=120) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        mark, console = len(vd.events), vd.console_mark()
        vd.hard_reset()
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "UBICACION 482913")
        got = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.device_number,
                            timeout=30, after=mark)
        assert got["delivered"]
        vd.wait_console("EV ready", since=console, timeout=60)
        reply = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.c4_numbers[0]
                              and e["text"].startswith("UBICACION"), timeout=60, after=mark)
    assert "maps.google.com" in reply["text"]


@pytest.mark.parametrize("board", ["tcall_sim800l_axp192", "ta7670x_a7670sa"])
def test_a_sim_whose_sms_storage_is_full_still_takes_c4s_command(tmp_path, board):
    # A SIM that lived in a phone first (the technician tried it there) can hold its 30
    # slots of read messages. A module whose storage is full refuses every new SMS, so
    # C4's commands would never reach the button, and nothing would say so.
    full = [("+5215550000%03d" % i, "Promocion %d" % i, True) for i in range(Sim800.SMS_CAPACITY)]
    with provisioned_device(tmp_path, config=cancel_config(), board=board, sim_sms=full) as vd:
        mark = len(vd.events)
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "ESTADO 482913")
        got = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.device_number,
                            timeout=30, after=mark)
        assert got["delivered"], "the module refused C4's SMS: its storage is full"
        vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.c4_numbers[0]
                      and e["from"] == vd.device_number, timeout=60, after=mark)


def test_boton_sim_command_serves_mpremote_and_takes_a_press(tmp_path):
    """`boton sim` as a tester runs it: prints the REPL URL, mpremote works on it, typing
    `press 1.5` raises the alert, and it shows the device's log and the network live. (GPS
    hot: a button with a fix, so her first SMS has her position.)"""
    flash = tmp_path / "flash"
    install(flash, "tcall_sim800l_axp192", demo_config())
    log = tmp_path / "net.jsonl"
    bindir = Path(sys.executable).parent
    # a chip on for 12.4 days less 10 minutes, where the rig can set its clock
    wrap = [] if chipclock.unavailable() else ["--ticks-wrap-in", "600"]
    proc = subprocess.Popen([str(bindir / "boton"), "sim", "--flash", str(flash), "--network-log", str(log),
                             "--time-scale", "0.1", "--gps-start", "hot", *wrap], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)

    def read_until(text):
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, f"boton sim exited before printing {text!r}: {lines[-20:]}"
            lines.append(line)
            if text in line:
                return line

    def say(command):
        proc.stdin.write(command + "\n")
        proc.stdin.flush()

    try:
        url = read_until("REPL at").split("REPL at", 1)[1].strip()
        if wrap:
            read_until("chip clock: time.ticks_ms() wraps 600 s after start")
        read_until("device: EV ready")
        out = subprocess.run([str(bindir / "mpremote"), "connect", url, "fs", "ls"], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and "config.json" in out.stdout, out.stderr
        say("reset")  # mpremote stopped the firmware; EN restarts it
        read_until("device: EV ready")
        say("press 1.5")
        sms = json.loads(read_until('"kind": "sms"').split("network: ", 1)[1])
        assert "maps.google.com" in sms["text"]
        say("press soon")  # a typo is a one-line message, not the end of the rehearsal
        assert "press takes seconds, not 'soon'" in read_until("press takes seconds")
        say("coverage off")
        read_until('"kind": "coverage", "t"')
        say("sms UBICACION")  # held by the network while the button is out of coverage
        held = json.loads(read_until('"held": true').split("network: ", 1)[1])
        assert held["text"] == "UBICACION" and not held["delivered"]
        say("coverage on")
        read_until('"kind": "sms_late"')
    finally:
        say("quit")
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert any(json.loads(x)["kind"] == "sms" for x in log.read_text().splitlines())


@pytest.mark.parametrize("board", ["tcall_sim800l_axp192", "ta7670x_a7670sa"])
def test_a_burst_of_sms_in_her_alert_is_read_without_stalling_it(tmp_path, board):
    # The SMSC hands over what it held all at once when the button is back in coverage,
    # and a flood can come at any time: C4's command in the burst is answered, her alert
    # goes on, and the button's 56 KB heap is not spent on one waiting task per SMS (it
    # was: a MemoryError reset the chip in her alert, and two SMS were lost).
    with provisioned_device(tmp_path, config=cancel_config(), board=board, c4_hangup_after_s=300) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        mark, console = len(vd.events), vd.console_mark()
        for i in range(Sim800.SMS_CAPACITY):     # as many as the SIM holds
            vd.call(vd.network.sms_to_device, "+52551000%04d" % i, vd.device_number, "Promo %d" % i)
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "UBICACION 482913")
        vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.c4_numbers[0]
                      and e["text"].startswith("UBICACION"), timeout=60, after=mark)
        vd.wait_console("EV sms_ignored", since=console, count=Sim800.SMS_CAPACITY, timeout=60)
        text = vd.console_text()
    assert "MemoryError" not in text and "EV crash" not in text


@pytest.mark.parametrize("board", ["tcall_sim800l_axp192", "ta7670x_a7670sa"])
def test_a_full_sim_of_unread_sms_after_a_reset_in_her_alert_is_swept_in_the_heap(tmp_path, board):
    # The ESP32 resets in her alert while the SMSC hands over a burst: the module stores
    # them all, unread, and the boot sweep lists them (AT+CMGL gives every text at once)
    # on a heap that holds her alert.
    long_text = "Promocion: recarga hoy y recibe el doble de saldo por 30 dias. " * 2
    with provisioned_device(tmp_path, config=cancel_config(), board=board, c4_hangup_after_s=300) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        mark, console = len(vd.events), vd.console_mark()
        vd.hard_reset()
        for i in range(Sim800.SMS_CAPACITY - 1):
            vd.call(vd.network.sms_to_device, "+52551000%04d" % i, vd.device_number, long_text[:150])
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "UBICACION 482913")
        vd.wait_console("EV ready", since=console, timeout=60)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.c4_numbers[0]
                      and e["text"].startswith("UBICACION"), timeout=60, after=mark)
        vd.wait_console("EV sms_ignored", since=console, count=Sim800.SMS_CAPACITY - 1, timeout=60)
        text = vd.console_text()[-(vd.console_mark() - console):]
    assert "MemoryError" not in text and "EV crash" not in text, text


@pytest.mark.parametrize("board", ["tcall_sim800l_axp192", "ta7670x_a7670sa"])
def test_c4_calling_a_button_that_never_called_rings_silently(tmp_path, board):
    # Mic, speaker and ringer were set covert only before the button's own ATD or ATA:
    # C4 calling first (a check, or a callback after a restart) rang at the module's
    # default level (SIM800 100, A7670 4) on a speaker at her side before anything
    # answered. The set-up silences them.
    with provisioned_device(tmp_path, board=board) as vd:
        vd.call(vd.network.call_device, vd.c4_numbers[0], vd.device_number)
        vd.wait_event(lambda e: e["kind"] in ("call_connected", "call"), timeout=60)
        rings = vd.call(lambda: vd.modem.ring_levels)
    assert rings and set(rings) == {0}, rings


@pytest.mark.parametrize("board", ["tcall_sim800l_axp192", "ta7670x_a7670sa"])
def test_a_read_that_leaves_the_module_in_ucs2_does_not_garble_the_next_sms(tmp_path, board):
    # SMS are read in UCS2 (hex: a body can say nothing the driver takes for the module's)
    # and the GSM set is put back after; when the module refuses that, the next AT+CMGS
    # must put it back first, or her alert's number and text go out as "hex" the module
    # refuses
    with provisioned_device(tmp_path, config=cancel_config(), board=board) as vd:
        vd.call(vd.modem.refuse_next, '+CSCS="GSM"')
        mark = len(vd.events)
        c4 = vd.c4_numbers[0]
        vd.call(vd.network.sms_to_device, c4, vd.device_number, "UBICACION 482913")
        reply = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == c4,
                              timeout=60, after=mark)
        assert reply["text"].startswith("UBICACION") and "maps.google.com" in reply["text"]
        assert vd.modem.cscs == "GSM"


@pytest.mark.parametrize("board", ["tcall_sim800l_axp192", "ta7670x_a7670sa"])
def test_sms_parameters_a_bench_test_left_in_the_module_are_set_right(tmp_path, board):
    # AT+CSMP is kept in the module's non-volatile memory (SIM800 AT manual V1.05): a
    # module tried on the bench with UCS2 (dcs 8) takes the alert's GSM text as hex, and
    # refuses or garbles it. The set-up sets dcs 0 again, also after a restart.
    with provisioned_device(tmp_path, config=cancel_config(), board=board) as vd:
        vd.call(setattr, vd.modem, "csmp", [17, 167, 0, 8])
        console = vd.console_mark()
        vd.call(vd.modem.brown_out)             # restarts keeping it; the firmware sets up again
        vd.wait_console("EV modem_restarted", since=console, timeout=60)
        vd.wait_console("EV registered", since=console, timeout=60)   # set up again
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0]
                            and e.get("delivered"), timeout=60, after=mark)
        assert sms["text"].startswith("ALERTA Boton Seguro"), sms["text"]
        assert vd.modem.csmp == [17, 167, 0, 0]


def test_the_sign_made_again_after_c4_hung_up_calls_c4_again(tmp_path):
    """C4's guide: "Usted cuelga ... si ella vuelve a apretar, el boton llama otra vez"; her
    sheet: "si tiene dudas de que salio, repita la seña". Pressed on the button itself
    (the gesture, not an event handed to the machine), it did nothing during an alert."""
    with provisioned_device(tmp_path, config=demo_config(pin="482913"), c4_hangup_after_s=4) as vd:
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == vd.c4_numbers[0], timeout=60)   # C4 hung up
        vd.wait_console("EV call_ended remote", timeout=30)
        mark, console = len(vd.events), vd.console_mark()
        vd.press(hold_s=1.2)
        vd.wait_console("EV alert_repeat gesture", since=console, timeout=30)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == vd.c4_numbers[0],
                      after=mark, timeout=60)
        update = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0], after=mark, timeout=60)
    assert "CANCELADA" not in update["text"]
