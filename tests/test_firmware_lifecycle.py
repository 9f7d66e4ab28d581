"""Firmware behaviours around boot: safe mode, watchdog, standby power states."""
import json

import pytest

from boton.sim.flashdir import install
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice
from rigkit import FAST, demo_config, log_entries, provisioned_device


def boot(tmp_path, config_bytes=None, **kw):
    flash = tmp_path / "flash"
    install(flash, "tcall_sim800l_axp192", None)
    if config_bytes is not None:
        (flash / "config.json").write_bytes(config_bytes)
    vd = VirtualDevice(flash, time_scale=FAST, **kw)
    vd.start()
    return vd


def test_missing_config_still_calls_the_boards_c4(tmp_path):
    vd = boot(tmp_path)
    try:
        text = vd.wait_console("EV ready", timeout=60)
        assert "EV safe_mode config_missing" in text and "EV ready safe" in text
        vd.press(hold_s=2.5)  # safe mode uses the default 2 s hold
        call = vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        assert call["to"] == DEFAULT_C4 == vd.board["safe_c4"]
        assert not [e for e in vd.events if e["kind"] == "sms" and e["to"] != DEFAULT_C4]
    finally:
        vd.stop()


def test_corrupt_config_is_reported_and_safe_mode_used(tmp_path):
    vd = boot(tmp_path, b'{"alias": "Luna", "contacts": [')
    try:
        text = vd.wait_console("EV ready", timeout=60)
        assert "EV safe_mode config_corrupt" in text
    finally:
        vd.stop()


def test_invalid_config_is_reported(tmp_path):
    vd = boot(tmp_path, b'{"alias": "Luna"}')
    try:
        assert "EV safe_mode config_missing_c4_numbers" in vd.wait_console("EV ready", timeout=60)
    finally:
        vd.stop()


@pytest.mark.parametrize("key, contact_kept", [("contacts", False), ("alias", True)])
def test_a_flipped_bit_in_a_config_key_keeps_what_still_holds_of_her_configuration(
        tmp_path, key, contact_kept):
    """One flipped bit in a key's name ("contacts" -> "contactw") leaves valid JSON, her C4
    numbers and contacts intact, and the firmware threw all of it away: her press called
    the board's safe_c4 instead of her C4, and no contact got an SMS."""
    her_c4 = "+524499100077"
    damaged = key[:-1] + chr(ord(key[-1]) ^ 0x04)
    text = json.dumps(demo_config(c4=[her_c4])).replace('"%s"' % key, '"%s"' % damaged)
    vd = boot(tmp_path, text.encode(), c4_numbers=(DEFAULT_C4, her_c4))
    try:
        assert "EV safe_mode config_missing_" + key in vd.wait_console("EV ready", timeout=60)
        vd.press(hold_s=2.5)  # her gesture's hold is not kept: the default 2 s
        call = vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        assert call["to"] == her_c4
        if contact_kept:
            vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT
                          and e["delivered"], timeout=90)
    finally:
        vd.stop()


def test_hung_firmware_is_reset_by_the_watchdog_and_boots_again(tmp_path):
    cfg = demo_config()
    cfg["watchdog_s"] = 3
    with provisioned_device(tmp_path, config=cfg) as vd:
        mark = vd.console_mark()
        vd.freeze()
        text = vd.wait_console("EV ready", timeout=60, since=mark)
        assert "watchdog got triggered" in text and "EV boot" in text
        assert vd.wdt_resets == 1


def test_standby_puts_modem_to_sleep_and_rests_the_gps(tmp_path):
    cfg = demo_config()
    cfg["gps_every_s"] = 600
    with provisioned_device(tmp_path, config=cfg) as vd:
        vd.wait_console("EV power gps_off", timeout=30)
        vd.wait_console("EV power modem_sleep", timeout=30)
        assert vd.modem.csclk == 2 and not vd.gps.running
        mark = vd.console_mark()
        vd.press(hold_s=1.2)
        vd.wait_console("EV power gps_on", timeout=30, since=mark)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        assert vd.gps.running and vd.modem.csclk == 0


def test_the_gps_duty_cycle_does_not_fill_the_event_log(tmp_path):
    # In standby the GPS wakes every gps_every_s (900 s: 96 times a day). The log is a ring
    # of 256 entries: an entry per switch would rotate out, within a day, the alerts and
    # resets a technician reads on her next visit and the entry the registry anchors.
    # Only the change of regime is kept: the first rest, and the GPS held on for an alert.
    cfg = demo_config()
    cfg["gps_every_s"] = 1
    gps_enable = 25
    with provisioned_device(tmp_path, config=cfg) as vd:
        t = vd.wait_pin(gps_enable, 0, timeout=30)
        for _ in range(4):   # four more rests, each after a fresh fix
            t = vd.wait_pin(gps_enable, 1, since=t, timeout=30)
            t = vd.wait_pin(gps_enable, 0, since=t, timeout=30)
        gps = [r for r in log_entries(vd) if r[2] == "power" and r[3].startswith("gps")]
        assert [r[3] for r in gps] == ["gps_off"], gps
        mark = vd.console_mark()
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        vd.wait_console("EV power gps_on", since=mark, timeout=30)   # held on for her alert


def test_an_rmc_only_gps_never_hands_over_a_fix_from_before_its_rest(tmp_path):
    # A receiver that sends no GGA (magellan-ec10.log: RMC only) has its newest fix kept
    # back for a GGA that never comes, and taken at the next RMC. The duty cycle rests the
    # GPS in between: at its next wake, the fix kept from the last one went to her alert's
    # SMS as if just taken, the place she was before the rest (an old firmware's fault).
    cfg = demo_config()
    cfg["gps_every_s"] = 3
    gps_enable = 25
    elsewhere = (21.85000, -102.30000)
    with provisioned_device(tmp_path, config=cfg, time_scale=1.0) as vd:
        vd.call(setattr, vd.gps, "gga", False)
        t = vd.wait_pin(gps_enable, 0, timeout=60)
        t = vd.wait_pin(gps_enable, 1, since=t, timeout=30)
        t = vd.wait_pin(gps_enable, 0, since=t, timeout=30)   # a whole RMC-only wake here
        vd.call(vd.gps.set_position, *elsewhere)             # taken elsewhere while it rests
        t = vd.wait_pin(gps_enable, 1, since=t, timeout=30)
        t = vd.wait_pin(gps_enable, 0, since=t, timeout=30)   # its wake saw her there
        vd.call(vd.gps.never_fix, True)                      # indoors from then on
        sent = len(vd.events)
        vd.press(hold_s=1.2)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0],
                            after=sent, timeout=60)
        assert "q=21.85000,-102.30000" in sms["text"], sms["text"]


def test_a_flood_from_strangers_leaves_the_log_to_her_and_c4_is_still_answered(tmp_path):
    # Carrier spam, or someone who has the button's number: every SMS and call from a
    # stranger was a log entry, and enough of them rotate her alerts and the registry's
    # anchor out of the ring. The console shows each; the flash keeps a day's quota and
    # a count, and C4's command right after the flood is still carried out.
    quota = 4    # firmware/lib/eventlog.py's STRANGER_PER_DAY
    cfg = demo_config(pin="482913")
    with provisioned_device(tmp_path, config=cfg) as vd:
        vd.wait_console("EV ready", timeout=60)
        before = log_entries(vd)
        mark = vd.console_mark()
        for i in range(12):      # at once, as a flood comes
            vd.call(vd.network.sms_to_device, "+52551000%04d" % i, vd.device_number, "Recarga hoy")
        vd.wait_console("EV sms_ignored", since=mark, count=12, timeout=60)
        for i in range(2):       # a RING repeated before the ATH took is a console line more
            vd.call(vd.network.call_device, "+52552000%04d" % i, vd.device_number)
            vd.wait_console("EV incoming_rejected", since=mark, count=i + 1, timeout=30)
        sent = len(vd.events)
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "ESTADO 482913")
        reply = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.c4_numbers[0],
                              after=sent, timeout=60)
        assert reply["text"].startswith("ESTADO")
        console = vd.console_text()[-(vd.console_mark() - mark):]
        after = log_entries(vd)[len(before):]
    # up to C4's command: the count of what came before it went in just ahead of it (a
    # RING repeated after it is counted in RAM until the next entry)
    console = console[:console.index("EV sms_command ")]
    after = after[:[r[2] for r in after].index("sms_command")]
    stranger = ("sms_ignored", "incoming_rejected")
    logged = [r for r in after if r[2] in stranger]
    assert [r[2] for r in logged] == ["sms_ignored"] * quota, after
    told = dict.fromkeys(stranger, 0)    # what the not_logged entries counted
    for r in after:
        if r[2] == "not_logged":
            for part in r[3].split(","):
                event, n = part.split("=")
                told[event] += int(n)
    for event in stranger:    # none lost: each one on the console is logged or counted
        assert console.count("EV %s " % event) == told[event] + len(
            [r for r in logged if r[2] == event]), (event, after)
    assert told["incoming_rejected"] >= 2
    assert before == log_entries(vd)[:len(before)]     # the boot is still in the ring


def test_light_sleep_between_events_and_the_button_still_wakes_it(tmp_path):
    # the DevKitC build wires the SIM800's RI line, so the ESP32 may light-sleep
    with provisioned_device(tmp_path, board="devkitc_sim800l_neo6m") as vd:
        vd.wait_asleep(3.0, timeout=60)
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        asleep = vd.asleep_s
        vd.wait_event(lambda e: e["kind"] == "sms", timeout=60)
    assert vd.asleep_s == asleep  # never asleep during the alert


def test_without_ri_a_ring_is_still_heard(tmp_path):
    # a build without RI routed to the ESP32 light-sleeps in chunks and sweeps the modem
    # (AT+CLCC) between them: the ring is heard although its RING reached a deaf UART
    with provisioned_device(tmp_path, board="tcall_sim800l_ip5306") as vd:
        vd.wait_console("EV power modem_sleep", timeout=30)
        vd.call(vd.network.call_device, DEFAULT_C4, vd.device_number)
        vd.wait_console("EV incoming_rejected", timeout=30)


PROGRAMME = "+524499990000"


def test_daily_status_sms_goes_to_the_programme(tmp_path):
    cfg = demo_config(programme_number=PROGRAMME)
    cfg["daily_status_s"] = 3
    with provisioned_device(tmp_path, config=cfg, contacts=(cfg["contacts"][0], PROGRAMME)) as vd:
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == PROGRAMME, timeout=60)
    assert "maps.google" not in sms["text"]  # supervision never carries her position
    assert "Bat" in sms["text"] and len(sms["text"]) <= 160


def test_under_voltage_during_an_alert_pushes_her_location_first(tmp_path):
    with provisioned_device(tmp_path, c4_hangup_after_s=60) as vd:
        vd.press(hold_s=1.2)
        contact = vd.contacts[0]
        first = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == contact, timeout=60)
        mark = len(vd.events)
        vd.call(vd.modem.under_voltage, 30.0)
        vd.wait_console("EV modem_power UNDER-VOLTAGE_WARNNING", timeout=30)
        again = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == contact, timeout=60, after=mark)
    assert again is not first and "maps.google.com" in again["text"]


def test_tcall_light_sleeps_too(tmp_path):
    with provisioned_device(tmp_path, board="tcall_sim800l_axp192") as vd:
        vd.wait_asleep(2.0, timeout=60)


def test_tcall_keeps_its_ip5306_boost_on(tmp_path):
    with provisioned_device(tmp_path, board="tcall_sim800l_ip5306") as vd:
        assert vd.i2c.get((0x75, 0x00)) == 0x37
    with provisioned_device(tmp_path / "b", board="devkitc_sim800l_neo6m") as vd:
        assert not vd.i2c  # no IP5306 on that build


def test_battery_from_the_adc_on_the_devkitc(tmp_path):
    cfg = demo_config()
    with provisioned_device(tmp_path, config=cfg, board="devkitc_sim800l_neo6m") as vd:
        vd.set_battery_mv(3750)  # through the divider to the ADC (the modem's AT+CBC would say 36%)
        mark = vd.console_mark()
        vd.hard_reset()  # a fresh boot reads the battery
        vd.wait_console("EV ready", timeout=60, since=mark)
        vd.press(hold_s=1.2)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0], timeout=60)
    assert "Bat 25%" in sms["text"]  # 3.75 V on the LiPo chart (powerpolicy.LIPO_MV)
