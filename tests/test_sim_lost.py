"""A SIM that lost contact for a moment (a knock, a worn holder) is read again.

The module reports the loss (+CPIN: NOT READY), its registration goes, and it does not read
the SIM again by itself once the contact is back: until then every dial and SMS is refused
(+CME ERROR: 10, +CMS ERROR: 310), her alert's included. A review found the button dead so
until its battery was pulled (on a T-Call the module keeps its supply through a chip reset).
"""
import time

import pytest

from rigkit import log_entries, provisioned_device, wait_until
from test_modem_power import checked_every

BOARDS = {"sim800": "tcall_sim800l_axp192", "a7670": "ta7670x_a7670sa"}


def logged(vd, event):
    return [d for _, _, e, d in log_entries(vd) if e == event]


@pytest.mark.parametrize("family", sorted(BOARDS))
def test_a_sim_that_lost_contact_in_standby_is_read_again_and_her_alert_goes_out(tmp_path, family):
    with provisioned_device(tmp_path, config=checked_every(2), board=BOARDS[family]) as vd:
        m = vd.modem
        vd.call(m.sim_missing)
        vd.wait_console("EV sim_lost NOT_READY", timeout=30)
        vd.call(m.sim_reseated)
        # the health check reads it again (AT+CFUN=0, 1), without a press
        wait_until(vd, lambda: m.sim_state == "ready" and m.creg_stat in (1, 5), timeout=60)
        vd.wait_console("EV sim_back", timeout=60)
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", after=mark, timeout=60)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["text"].startswith("ALERTA"), after=mark, timeout=60)


def test_a_sim_that_lost_contact_just_before_her_press_is_read_again_by_the_alert(tmp_path):
    # the default health check (a real minute): the alert's own refusals must do it
    with provisioned_device(tmp_path) as vd:
        m = vd.modem
        vd.call(m.sim_missing)
        vd.call(m.sim_reseated)
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", after=mark, timeout=90)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["text"].startswith("ALERTA"), after=mark, timeout=60)
        assert logged(vd, "sim_again")


def test_a_module_that_kept_its_lost_sim_through_a_chip_reset_is_read_again(tmp_path):
    # The T-Call's module keeps its supply through the ESP32's reset: the set-up finds
    # no SIM ("+CME ERROR: 10") although it is back in contact
    with provisioned_device(tmp_path, config=checked_every(2)) as vd:
        m = vd.modem
        vd.wait_console("EV ready", timeout=60)
        mark = vd.console_mark()
        # lost and back while the chip is down: the firmware never hears the URC
        vd.hard_reset(while_down=lambda: (m.sim_missing(), m.sim_reseated()))
        vd.wait_console("EV sim_problem CME_10", since=mark, timeout=60)
        vd.wait_console("EV sim_back", since=mark, timeout=60)
        wait_until(vd, lambda: m.sim_state == "ready" and m.creg_stat in (1, 5), timeout=60)


@pytest.mark.parametrize("family", sorted(BOARDS))
def test_a_chip_reset_between_reading_the_sims_radio_off_and_on_leaves_the_radio_on(tmp_path, family):
    # sim_again sends AT+CFUN=0 then AT+CFUN=1. A reset between the two (the watchdog, a
    # brown-out) left a module that keeps its supply with its radio and SIM off: the set-up
    # read "+CME ERROR: 3", which is no lost SIM, and nothing turned the radio on again
    with provisioned_device(tmp_path, config=checked_every(2), board=BOARDS[family]) as vd:
        m = vd.modem
        vd.wait_console("EV ready", timeout=60)
        vd.reset_when_modem_gets(b"AT+CFUN=0")
        mark = vd.console_mark()
        vd.call(lambda: (m.sim_missing(), m.sim_reseated()))
        vd.wait_console("EV boot", since=mark, timeout=60)
        vd.wait_console("EV registered", since=mark, timeout=90)
        assert vd.call(lambda: m.cfun) == 1
        after = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", after=after, timeout=60)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["text"].startswith("ALERTA"), after=after, timeout=60)


def test_a_sim_truly_gone_is_tried_again_at_growing_waits_not_at_every_health_check(tmp_path):
    # Each try takes the module off the network for a while: a button without its SIM
    # (taken out) must not re-read it at every health check (2 s here, 20 module seconds)
    with provisioned_device(tmp_path, config=checked_every(2)) as vd:
        vd.call(vd.modem.sim_missing)
        vd.wait_console("EV sim_again", timeout=30)
        first = time.monotonic()
        vd.wait_console("EV sim_again", timeout=90, count=3)
        # at once, then after 60 and 120 module seconds: 18 s here at the least
        assert time.monotonic() - first > 15


def test_her_alert_refused_for_a_sim_back_in_contact_reads_it_at_once_not_at_the_next_growing_wait(tmp_path):
    # The SIM was out a few minutes (tries at 0, 60 and 180 module seconds), then makes
    # contact again. Her press was refused (CME 10, CMS 310) until the next scheduled try,
    # 240 module seconds on (up to an hour later on): C4 and her contacts heard nothing
    with provisioned_device(tmp_path, config=checked_every(2)) as vd:
        m = vd.modem
        vd.call(m.sim_missing)
        vd.wait_console("EV sim_again", timeout=120, count=3)
        mark = vd.console_mark()
        vd.wait_console("EV not_registered", since=mark, timeout=60)  # the 3rd try's set-up ended
        vd.call(m.sim_reseated)
        mark, ev = vd.console_mark(), len(vd.events)
        vd.press(hold_s=1.2)
        # at once (the next scheduled try is over 20 s away here)
        vd.wait_console("EV sim_again", since=mark, timeout=10)
        vd.wait_console("EV sim_back", since=mark, timeout=60)
        vd.wait_event(lambda e: e["kind"] == "call_connected", after=ev, timeout=120)
        vd.wait_event(lambda e: e["kind"] == "sms" and e["text"].startswith("ALERTA"), after=ev, timeout=60)


def written(vd, command):
    """How many times the firmware wrote command (bytes, with its CR) to the modem. On the
    rig's loop: wait_until(vd, ...) runs it there, vd.call(written, ...) from a test."""
    return sum(d.count(command) for _, k, d in vd.modem.at_log if k == "rx")


def test_a_button_whose_sim_is_fine_goes_through_its_health_checks_and_her_call(tmp_path):
    # Every health check and the call watch ask whether the SIM is due a re-read: with no
    # SIM lost, that raised TypeError (a None read as the lost SIM's time), and the button
    # crashed every minute into safe mode (review, 2026-12-03)
    with provisioned_device(tmp_path, config=checked_every(2)) as vd:
        vd.wait_console("EV ready", timeout=60)
        checks = vd.call(written, vd, b"AT\r")
        wait_until(vd, lambda: written(vd, b"AT\r") >= checks + 2, timeout=30)  # two health checks in standby
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", after=mark, timeout=60)
        watched = vd.call(written, vd, b"AT+CLCC\r")
        # the call watch, and health checks, during her call
        wait_until(vd, lambda: written(vd, b"AT+CLCC\r") >= watched + 3, timeout=60)
        assert "EV crash" not in vd.console_text() and "safe mode" not in vd.console_text()
