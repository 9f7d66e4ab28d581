"""Modem power control (issue 13, item 6): a running SIM800, hung or asleep, never gets a
PWRKEY press (a 1-33 s press switches it off); the firmware's idea of the modem's sleep
mode follows the module through recoveries and ESP32-only resets."""
import json
import threading

import pytest

from boton.boards import board_file
from boton.sim.network import PhoneNetwork
from rigkit import demo_config, provisioned_device, wait_until

TCALL = "tcall_sim800l_axp192"            # has a supply switch (POWER_ON pin)
NO_SWITCH = "no_supply_switch"  # a DevKitC build wired without its switch: PWRKEY and RESET only


def board_path(tmp_path, board):
    """A profile name, or for NO_SWITCH a copy of the DevKitC build's with "power_on": null."""
    if board != NO_SWITCH:
        return board
    profile = json.loads(board_file("devkitc_sim800l_neo6m").read_text())
    profile["modem"]["power_on"] = None
    path = tmp_path / "devkitc_without_supply_switch.json"
    path.write_text(json.dumps(profile))
    return str(path)


def checked_every(seconds):
    """A config whose health check (an AT when the modem has been quiet) runs this often,
    in real seconds: the firmware's default is a minute, unscaled."""
    cfg = demo_config()
    cfg["health_every_s"] = seconds
    return cfg


def presses(vd):
    return vd.call(lambda: list(vd.modem.pwrkey_presses))


def presses_on_a_running_module(vd):
    return [p for p in presses(vd) if p["powered"]]


def rx_since(vd, t):
    """The bytes the firmware wrote to the modem from monotonic time t on."""
    log = vd.call(lambda: list(vd.modem.at_log))
    return [(at, data) for at, d, data in log if d == "rx" and at >= t]


def first_rx(vd, t, needle):
    for at, data in rx_since(vd, t):
        if needle in data:
            return at
    raise AssertionError(f"the firmware never sent {needle!r}")


def pin_low_at(vd, name, since):
    return vd.wait_pin(vd.board["modem"][name], 0, timeout=1, since=since)


def wait_modem_sleep(vd, sleeping, after=0, timeout=30):
    ev = vd.wait_event(lambda e: e["kind"] == "modem_sleep" and e["sleeping"] == sleeping,
                       timeout=timeout, after=after)
    return vd.events.index(ev) + 1


def console_since(vd, mark):
    text = vd.console_text()
    return text[max(0, len(text) - (vd.console_mark() - mark)):]


def monotonic_now(vd):
    return vd.call(vd.sched.now)


@pytest.mark.parametrize("board", [TCALL, NO_SWITCH])
def test_module_hung_at_boot_is_never_pressed_while_on(tmp_path, board):
    with provisioned_device(tmp_path, board=board_path(tmp_path, board)) as vd:
        vd.call(vd.modem.go_silent, True)  # hung, and RESET does not help
        t0, mark = monotonic_now(vd), vd.console_mark()
        vd.hard_reset()                    # ESP32 only: the module stays powered and hung
        if board == TCALL:
            vd.wait_console("EV modem_recovered power_cycle", since=mark, timeout=60)
            cut = pin_low_at(vd, "power_on", t0)
            pressed = pin_low_at(vd, "pwrkey", t0)
            assert cut < pressed               # the press only once the supply was cut
            assert [p["result"] for p in presses(vd)] == ["on"]
            vd.wait_console("EV ready", since=mark, timeout=60)
        else:
            vd.wait_console("EV modem_hung", since=mark, timeout=60)
            assert presses(vd) == []           # nothing proves it is off: no press at all
            assert vd.call(lambda: vd.modem.powered)
        assert presses_on_a_running_module(vd) == []


@pytest.mark.parametrize("board", [TCALL, NO_SWITCH])
def test_recovery_ladder_order_and_no_press_on_a_running_module(tmp_path, board):
    with provisioned_device(tmp_path, checked_every(2), board=board_path(tmp_path, board)) as vd:
        vd.wait_console("EV power modem_sleep", timeout=30)  # standby
        t0, mark = monotonic_now(vd), vd.console_mark()
        vd.call(vd.modem.go_silent, True)
        vd.wait_console("EV modem_silent", since=mark, timeout=60)  # the health check noticed
        if board == TCALL:
            vd.wait_console("EV modem_recovered power_cycle", since=mark, timeout=60)
            t_silent = first_rx(vd, t0, b"AT\r")
            t_cfun = first_rx(vd, t0, b"AT+CFUN=1,1")
            t_rst = pin_low_at(vd, "reset", t0)
            t_cut = pin_low_at(vd, "power_on", t0)
            t_press = pin_low_at(vd, "pwrkey", t0)
            assert t_silent < t_cfun < t_rst < t_cut < t_press
            assert [p["result"] for p in presses(vd)] == ["on"]
        else:
            vd.wait_console("EV modem_hung", since=mark, timeout=60)
            assert presses(vd) == []
            assert vd.call(lambda: vd.modem.powered)
        assert presses_on_a_running_module(vd) == []


TA7670X = "ta7670x_a7670sa"  # GPIO12 powers the modem and, on battery (V1.2), holds the board


def firmware_drove(vd, pin, level):
    """Whether the firmware ever drove `pin` to `level` (a chip reset's pull is not in it)."""
    return any(p == pin and lv == level for _, p, lv in vd.call(lambda: list(vd.pin_history)))


def test_the_ta7670x_boots_without_cutting_the_power_that_holds_the_board(tmp_path):
    # At boot the A7670 is off (GPIO12's pull-down cut its supply at the chip reset), and the
    # ladder cut GPIO12 for 2 s to be sure before PWRKEY: on a V1.2 board on battery that
    # cuts the ESP32's own power too, so the button reset at every boot and never came up
    with provisioned_device(tmp_path, board=TA7670X) as vd:
        vd.wait_console("EV ready", timeout=120)
        assert vd.board_power_losses == 0 and vd.resets == 0
        assert not firmware_drove(vd, 12, 0)
        # the press comes once the supply has been up a while (LilyGO holds it >= 2.7 s)
        raised = min(t for t, p, lv in vd.call(lambda: list(vd.pin_history)) if p == 12 and lv == 1)
        pressed = vd.wait_pin(vd.board["modem"]["pwrkey"], 1, timeout=1, since=raised)  # HIGH presses
        assert [p["result"] for p in presses(vd)] == ["on"]
        assert pressed - raised >= 2.0 * vd.time_scale


def test_a_hung_a7670_is_switched_off_by_its_key_never_by_a_supply_cut(tmp_path):
    # RESET does not help this hang; the ladder cut GPIO12 next, which holds a V1.2 board's
    # own power on battery: the A7670 is switched off by PWRKEY held 3 s (>= 2.5 s), then on
    with provisioned_device(tmp_path, checked_every(2), board=TA7670X) as vd:
        vd.wait_console("EV ready", timeout=120)
        t0, mark = monotonic_now(vd), vd.console_mark()
        vd.call(vd.modem.go_silent, True)            # hung, and RESET does not help
        vd.wait_console("EV modem_recovered pwrkey_cycle", since=mark, timeout=120)
        assert first_rx(vd, t0, b"AT+CFUN=1,1") < vd.wait_pin(vd.board["modem"]["reset"], 1, since=t0)
        assert vd.board_power_losses == 0 and vd.resets == 0 and not firmware_drove(vd, 12, 0)
        late = [(p["powered"], p["result"]) for p in presses(vd) if p["t"] >= t0]
        assert late == [(True, "off"), (False, "on")]
        vd.wait_console("EV registered", since=mark, timeout=60)   # set up again


def test_module_that_switched_itself_off_is_powered_on_without_a_supply_switch(tmp_path):
    """A POWER DOWN URC proves the module is off: then, and only then, PWRKEY on a board
    that cannot cut the supply."""
    with provisioned_device(tmp_path, board=board_path(tmp_path, NO_SWITCH)) as vd:
        mark, t0 = vd.console_mark(), monotonic_now(vd)
        vd.call(vd.modem.under_voltage, 0.5)
        vd.wait_console("EV modem_recovered pwrkey", since=mark, timeout=60)
        # the cell stays at 3.35 V: the set-up's AT+CBATCHK=1 may switch it off again, and
        # it is pressed on again; never a press on a running module
        ps = [(p["powered"], p["result"]) for p in presses(vd)]
        assert ps[0] == (False, "on") and not any(powered for powered, _ in ps), ps
        # known to be off: no AT+CFUN=1,1 and no RESET pulse to wait out first
        assert not [d for _, d in rx_since(vd, t0) if b"AT+CFUN=1,1" in d]
        with pytest.raises(TimeoutError):
            pin_low_at(vd, "reset", t0)


def test_esp32_reset_with_the_module_asleep(tmp_path):
    with provisioned_device(tmp_path) as vd:
        vd.wait_console("EV power modem_sleep", timeout=30)
        after = len(vd.events)
        vd.freeze()  # nothing talks to the module now: it falls asleep and stays so
        if not vd.call(lambda: vd.modem.sleeping):
            wait_modem_sleep(vd, True, after=after)
        assert vd.call(lambda: (vd.modem.csclk, vd.modem.sleeping)) == (2, True)
        t0, mark = monotonic_now(vd), vd.console_mark()
        vd.hard_reset()  # the ESP32 restarts; the module keeps AT+CSCLK=2 and its sleep
        vd.wait_console("EV ready", since=mark, timeout=60)
        sent = b"".join(data for _, data in rx_since(vd, t0))
        assert sent.startswith(b"\r")        # the wake byte before the first command
        assert b"AT+CSCLK?" in sent           # it asked the module...
        assert b"AT+CSCLK=2" not in sent      # ...and so knew sleep was already on
        text = console_since(vd, mark)
        assert "EV modem_silent" not in text and "EV modem_recovered" not in text, text


def test_sleep_is_enabled_again_after_a_recovery(tmp_path):
    with provisioned_device(tmp_path, checked_every(2)) as vd:
        vd.wait_console("EV power modem_sleep", timeout=30)
        t0, mark = monotonic_now(vd), vd.console_mark()
        vd.call(vd.modem.go_silent)  # RESET clears this hang: the module restarts, CSCLK=0
        vd.wait_console("EV modem_recovered reset_pin", since=mark, timeout=60)
        t_rst = pin_low_at(vd, "reset", t0)
        vd.wait_event(lambda e: e["kind"] == "modem_sleep" and e["sleeping"] and e["t"] > t_rst,
                      timeout=30)
        assert vd.call(lambda: vd.modem.csclk) == 2


def test_a_very_fast_rig_does_not_take_a_sleeping_modem_for_a_silent_one(tmp_path):
    """At this scale a health-check AT has 25 ms for its answer. The virtual UART once
    held the AT that follows the wake byte for 40 ms (Nagle waiting on a delayed ACK,
    fixed by TCP_NODELAY in hw_sim): a sleeping modem then looked silent."""
    cfg = checked_every(0.5)
    # The ESP32's light sleep is left out: its 2 s naps are not time-scaled, which at this
    # scale is its own matter (reported separately); this is about the modem's own sleep.
    cfg["light_sleep"] = False
    with provisioned_device(tmp_path, cfg, time_scale=0.01) as vd:
        vd.wait_console("EV power modem_sleep", timeout=30)
        mark = vd.console_mark()
        after = len(vd.events)
        for _ in range(5):  # five times asleep, then woken by the firmware's own commands
            after = wait_modem_sleep(vd, True, after=after)
            after = wait_modem_sleep(vd, False, after=after)
        text = console_since(vd, mark)
        assert "EV modem_silent" not in text, text


def test_a_module_dead_at_boot_is_left_alone_the_chip_sleeps_and_a_revived_one_sleeps_again(tmp_path):
    """A module that never answers (burnt by a supply spike, a cracked joint): the ladder
    gives up (modem_dead) and the health check tries again later. Meanwhile standby used to
    ask it to sleep (AT+CSCLK=2) every few seconds, and a module that never took it kept the
    ESP32 from light sleep: her battery drained while the button could not call anyway."""
    with provisioned_device(tmp_path, checked_every(10), board=TCALL) as vd:
        vd.wait_console("EV power modem_sleep", timeout=30)
        vd.call(vd.modem.break_down)
        mark = vd.console_mark()
        vd.hard_reset()
        vd.wait_console("EV modem_dead power_cycle", since=mark, timeout=60)
        vd.wait_console("EV ready", since=mark, timeout=60)
        slept = threading.Event()
        vd.on_next_sleep(slept.set)
        assert slept.wait(30), "the chip never light-slept beside a dead module"
        vd.call(vd.modem.break_down, False)      # the joint makes contact again
        mark = vd.console_mark()
        vd.wait_console("EV modem_recovered power_cycle", since=mark, timeout=60)
        vd.wait_console("EV power modem_sleep", since=mark, timeout=30)
        assert presses_on_a_running_module(vd) == []


def pulses_since(vd, pin, on, t0, count, timeout=30):
    """The lengths (s) of the first `count` pulses the firmware drives on `pin` from t0."""
    lengths, t = [], t0
    for _ in range(count):
        up = vd.wait_pin(pin, on, since=t, timeout=timeout)
        t = vd.wait_pin(pin, 1 - on, since=up, timeout=timeout)
        lengths.append(round(t - up, 2))
    return lengths


def test_an_alert_a_dead_module_cannot_send_tells_her_with_three_long_vibrations(tmp_path):
    """The gesture's one short pulse says "the button is asking for help". With a module
    that never answers nothing goes out; after unsent_warn_s she feels three long pulses
    (docs/guia-beneficiaria.md: ask for help another way)."""
    cfg = demo_config()
    cfg["unsent_warn_s"] = 8
    with provisioned_device(tmp_path, cfg, board=TCALL) as vd:
        vib = vd.board["vibration"]["pin"]
        on = vd.board["vibration"].get("active", 1)
        vd.call(vd.modem.break_down)
        mark = vd.console_mark()
        vd.hard_reset()
        vd.wait_console("EV modem_dead", since=mark, timeout=60)
        vd.wait_console("EV ready", since=mark, timeout=60)
        t0 = vd.call(vd.sched.now)
        vd.press(hold_s=1.3, bounce=False)
        pulses = pulses_since(vd, vib, on, t0, 4)
        assert "EV alert_unsent 8s" in console_since(vd, mark)
        assert pulses[0] < 0.4 and all(0.5 <= p < 1.5 for p in pulses[1:]), pulses


@pytest.mark.parametrize("board", ["devkitc_sim800l_neo6m", NO_SWITCH])
def test_a_module_back_but_off_after_a_dead_spell_is_revived_by_its_supply_switch(tmp_path, board):
    """The soak's seeds 20 and 22 on the DevKitC build: the module goes dead for a while
    (a loose battery lead) and comes back switched off. Nothing proves a silent module is off
    but a supply cut, so the DevKitC build has a switch (GPIO32); without it the module
    stays off for good (modem_hung, no press), which this shows on the NO_SWITCH copy."""
    with provisioned_device(tmp_path, checked_every(2), board=board_path(tmp_path, board)) as vd:
        mark = vd.console_mark()
        vd.call(vd.modem.break_down, True)
        vd.wait_console("EV modem_silent", since=mark, timeout=60)  # the health check noticed
        vd.call(vd.modem.break_down, False)  # contact again, but off
        back = vd.console_mark()
        if board == NO_SWITCH:
            vd.wait_console("EV modem_hung no_supply_switch", since=back, timeout=60)
            assert presses(vd) == [] and not vd.call(lambda: vd.modem.powered)  # off for good
        else:
            vd.wait_console("EV modem_recovered power_cycle", since=back, timeout=60)
            vd.wait_console("EV registered", since=back, timeout=60)
        assert presses_on_a_running_module(vd) == []


def test_a_restart_in_the_middle_of_the_set_up_is_set_up_again_and_the_next_one_is_noticed(tmp_path):
    # Soak seed 408: a supply dip restarted the SIM800 while a recovery was setting it up,
    # after ATE0. The set-up went on and ended with echo on and numeric errors off (only
    # its SMS settings were retried); with echo already on, the next silent restart (at
    # autobaud) showed no new echo, so nothing knew it was in PDU mode: every SMS of her
    # alert was refused with ERROR, for good.
    with provisioned_device(tmp_path, config=checked_every(2)) as vd:
        vd.call(vd.modem.brown_out_on, "+CLIP")  # restarts when the set-up gets that far
        log = vd.console_mark()
        vd.call(vd.modem.go_silent)              # hung: the ladder restarts and sets it up
        vd.wait_console("EV modem_recovered", timeout=60, since=log)
        vd.wait_console("EV modem_restarted echo", timeout=60, since=log)
        vd.wait_console("EV registered", timeout=60, since=log, count=2)  # the set-up, and again
        assert vd.call(lambda: (vd.modem.echo, vd.modem.cmee, vd.modem.cmgf)) == (False, 1, 1)

        vd.call(vd.modem.brown_out)              # silent at autobaud: says nothing
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["text"].startswith("ALERTA"), timeout=90,
                      after=mark)


def test_a_restart_after_the_set_up_saved_the_profile_is_noticed(tmp_path, monkeypatch):
    # Indoors, no fix, a network that sends no time: the set-up saves CLTS=1 with AT&W,
    # which saved ATE0 too. A brown-out then restarted the SIM800 with echo off and (at
    # autobaud) no RDY: nothing showed it, and her alert ran in PDU mode without +CLCC
    # (every SMS refused, C4's answered call taken for a failed one and dialled again)
    monkeypatch.setattr(PhoneNetwork, "gives_time", False)
    with provisioned_device(tmp_path, config=checked_every(2), gps_ttff_s=1e6) as vd:
        vd.wait_console("EV ready", timeout=60)
        assert b"AT&W" in b"".join(d for _, k, d in vd.call(lambda: list(vd.modem.at_log)) if k == "rx")
        log = vd.console_mark()
        vd.call(vd.modem.brown_out)               # silent at autobaud: says nothing
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["text"].startswith("ALERTA"), timeout=90,
                      after=mark)
        vd.wait_console("EV modem_restarted echo", timeout=30, since=log)
        assert vd.call(lambda: (vd.modem.echo, vd.modem.cmee, vd.modem.cmgf, vd.modem.clcc_urc)) == (False, 1, 1, 1)


@pytest.mark.parametrize("family", ["sim800", "a7670"])
def test_sms_settings_refused_until_a_late_sms_ready_are_sent_again_before_her_alert(tmp_path, family):
    # The set-up tries its SMS settings (text mode, +CMTI) ten times a second apart after
    # the SIM is ready; an A7670 says "SMS DONE" ~10 s after it, a slow SIM later still. A
    # module still refusing them after the tries stayed in PDU mode: every SMS of her
    # alert was refused with ERROR, and C4's commands were never announced.
    board = "ta7670x_a7670sa" if family == "a7670" else TCALL
    with provisioned_device(tmp_path, config=checked_every(2), board=board) as vd:
        vd.call(setattr, vd.modem, "T_SMS_READY", 60.0)  # from its next start (6 s here)
        log = vd.console_mark()
        vd.call(vd.modem.go_silent)                       # the ladder restarts it
        vd.wait_console("EV init_error", timeout=90, since=log)
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["text"].startswith("ALERTA"), timeout=120,
                      after=mark)
        vd.wait_console("EV init_done", timeout=30, since=log)
        assert vd.call(lambda: vd.modem.cmgf) == 1


def test_a_button_without_its_sim_says_so_at_once_and_does_not_wait_it_out(tmp_path):
    # AT+CMEE=1 makes "no SIM" "+CME ERROR: 10", which the SIM wait took for a SIM still
    # starting: 30 more AT+CPIN? a second apart on every start, while her dials (911 needs
    # no SIM) wait for the modem
    with provisioned_device(tmp_path) as vd:
        vd.wait_console("EV ready", timeout=60)
        t0, mark = monotonic_now(vd), vd.console_mark()
        # taken out while the chip is down: the firmware never heard it go (else it reads
        # the SIM again at once, and a reset in the middle of that is another test's case)
        vd.hard_reset(while_down=vd.modem.sim_missing)
        vd.wait_console("EV sim_problem CME_10", since=mark, timeout=60)
        asked = [d for _, d in rx_since(vd, t0) if b"AT+CPIN?" in d]
        assert len(asked) == 1, len(asked)


def test_a_module_asleep_through_the_chips_reset_is_logged_in_standby(tmp_path):
    # The module keeps AT+CSCLK=2 through an ESP32-only reset: the firmware read it and
    # never logged "power modem_sleep" again, so a HIL bench's standby scenario (every test
    # starts with an EN reset) waited for it in vain, every time
    with provisioned_device(tmp_path) as vd:
        vd.wait_console("EV power modem_sleep", timeout=60)
        wait_until(vd, lambda: vd.modem.sleeping, timeout=60)
        mark = vd.console_mark()
        vd.hard_reset()
        vd.wait_console("EV power modem_sleep", since=mark, timeout=60)
        vd.wait_console("EV ready", since=mark, timeout=60)
