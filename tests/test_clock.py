"""The device's clock without a GPS fix (issue 13, item 7): the network's time (AT+CLTS=1,
NITZ, AT+CCLK?) sets the RTC when the network sends it; a network that sends none leaves
the log stamps marked unsynced ("?"), and GPS UTC wins over the network's time."""
import time
from datetime import datetime, timedelta, timezone

import pytest

from boton.sim.clock import ManualClock, Scheduler
from boton.sim.network import PhoneNetwork
from boton.sim.modem import modem_class
from boton.sim.rig import DEFAULT_C4
from rigkit import demo_config, her_alert_on_the_flash, log_entries, provisioned_device, wait_until

EPOCH_2000 = 946684800
MX = timezone(timedelta(hours=-6))
NO_FIX = dict(gps_ttff_s=1e6)  # indoors: the GPS never gets a fix


def device_unix(vd):
    """UTC Unix seconds by the virtual chip's RTC now."""
    return (time.time() - vd.call(lambda: vd.rtc_base)) / vd.time_scale + EPOCH_2000


def sent_to_modem(vd):
    return b"".join(data for _, d, data in vd.call(lambda: list(vd.modem.at_log)) if d == "rx")


BOARDS = ("tcall_sim800l_axp192", "ta7670x_a7670sa")


@pytest.mark.parametrize("board", BOARDS)
def test_network_time_sets_the_clock_without_a_fix(tmp_path, board):
    # the A7670's set-up had no time switch (AT+CTZU=1): indoors, without a fix, it never
    # knew the time, nor after a flat battery how long she was off
    with provisioned_device(tmp_path, board=board, **NO_FIX) as vd:
        text = vd.wait_console("EV clock network", timeout=30)
        assert "EV clock gps" not in text
        assert abs(device_unix(vd) - time.time()) < 60
        rows = log_entries(vd)
        at = next(i for i, r in enumerate(rows) if r[2:] == ("clock", "network"))
        assert all(r[1].endswith("?") for r in rows[:at])      # before: unsynced
        after = rows[at:]
        assert after and not any(r[1].endswith("?") for r in after), after
        assert all(abs(int(r[1]) - time.time()) < 120 for r in after)
        # set once: later reads do not log it again
        assert [r for r in rows if r[2] == "clock"] == [rows[at]]


@pytest.mark.parametrize("board, default_year", [("tcall_sim800l_axp192", 2004),
                                                 ("ta7670x_a7670sa", 1970)])
def test_a_network_without_time_leaves_the_log_unsynced(tmp_path, monkeypatch, board, default_year):
    # an A7670's unset clock reads "70/01/01": taken for 2070, it set the RTC 44 years
    # ahead, and every SMS (C4's CANCELAR too) was then ignored as stale
    monkeypatch.setattr(PhoneNetwork, "gives_time", False)
    with provisioned_device(tmp_path, board=board, **NO_FIX) as vd:
        text = vd.console_text()
        assert b"AT+CCLK?" in sent_to_modem(vd)                 # it asked...
        assert vd.call(lambda: vd.modem.clock_now()[0].year) == default_year  # ...got the default
        assert "EV clock" not in text, text
        rows = log_entries(vd)
        assert rows and all(r[1].endswith("?") for r in rows), rows
        assert device_unix(vd) < 1577836800                      # the RTC still counts from 2000


def test_gps_utc_wins_over_the_network_time(tmp_path, monkeypatch):
    """The network's clock an hour off: the first fix corrects the RTC."""
    real = PhoneNetwork.now_datetime
    monkeypatch.setattr(PhoneNetwork, "now_datetime", lambda self: real(self) + timedelta(hours=1))
    with provisioned_device(tmp_path, gps_ttff_s=20) as vd:    # a fix ~2 s after boot
        mark = vd.console_mark()
        world = lambda: vd.call(lambda: real(vd.network).timestamp())   # the GPS's UTC too
        vd.wait_console("EV clock network", timeout=30)
        assert abs(device_unix(vd) - world() - 3600) < 60
        vd.wait_console("EV power gps_off", since=mark, timeout=30)  # after a fresh fix
        assert abs(device_unix(vd) - world()) < 60


# ---------------------------------------------------------------------- the module alone
def bench(gives_time=True, family="sim800"):
    clock = ManualClock()
    sched = Scheduler(clock, 1.0)
    net = PhoneNetwork(sched, start_datetime=datetime(2026, 3, 8, 12, 0, 0, tzinfo=MX))
    net.gives_time = gives_time
    out = bytearray()
    modem = modem_class(family)(sched, net, "+524490000042", emit=out.extend)
    net.attach("+524490000042", modem)
    modem.power_on()

    def at(cmd, wait=0.5):
        modem.feed(cmd.encode() + b"\r")
        clock.advance(sched, wait)
        data = bytes(out)
        out.clear()
        return [ln.decode() for ln in data.replace(b"\r", b"\n").split(b"\n") if ln.strip()]
    clock.advance(sched, max(2.5, modem.T_UART_READY + 0.2))  # UART up, not yet registered
    out.clear()
    return at, lambda s: clock.advance(sched, s), out


def test_an_a7670_with_ctzu_on_before_it_registers_gets_the_network_time():
    # the rig's A7670 dropped the network's time URCs (its _urc took no `ahead`): the
    # exception stopped the simulated module for good, silent from its registration on
    at, run, out = bench(family="a7670")
    at("AT+CTZU=1", 0.1)
    run(30)
    assert b"*PSUTTZ: 2026,3,8,18," in bytes(out)   # 12:00 in Mexico is 18:00 UTC
    out.clear()
    assert [ln for ln in at("AT+CCLK?") if ln.startswith("+CCLK")][0].startswith('+CCLK: "26/03/08,12:00:')
    assert at("AT+CTZU?")[-2:] == ["+CTZU: 1", "OK"]


@pytest.mark.parametrize("gives_time", [True, False])
def test_sim800_clts_cclk_and_the_network_time_urcs(gives_time):
    at, run, out = bench(gives_time)
    at("ATE0")  # (the SIM's +CPIN: READY URC comes meanwhile)
    assert at("AT+CLTS?") == ["+CLTS: 0", "OK"]
    assert at("AT+CLTS=1") == ["OK"]
    run(10)  # registers
    urcs = [ln for ln in out.decode().split("\r\n") if ln[:8] in ("*PSNWID:", "*PSUTTZ:", "DST: 0")]
    out.clear()
    got = at("AT+CCLK?")
    if gives_time:
        # 18:00 UTC, 12:00 in Mexico's central zone (-6 h = -24 quarters)
        assert urcs[0] == '*PSNWID: "334","020", "TELCEL",0, "TELCEL",0'
        assert urcs[1].startswith("*PSUTTZ: 2026,3,8,18,0,") and urcs[1].endswith(',"-24",0')
        assert urcs[2] == "DST: 0"
        assert got[0].startswith('+CCLK: "26/03/08,12:00:') and got[0].endswith('-24"')
    else:
        assert urcs == []
        assert got[0].startswith('+CCLK: "04/01/01,00:00:')


def test_sim800_clts_is_saved_only_by_at_w():
    at, run, _ = bench()
    at("AT+CLTS=1")
    at("AT+CFUN=1,1", 5)
    run(5)
    assert at("AT+CLTS?")[-2:] == ["+CLTS: 0", "OK"]
    at("AT+CLTS=1;&W")
    at("AT+CFUN=1,1", 5)
    run(5)
    assert at("AT+CLTS?")[-2:] == ["+CLTS: 1", "OK"]
    assert at('AT+CCLK="25/12/31,23:59:50+00"')[-1:] == ["OK"]
    run(20)
    assert at("AT+CCLK?")[-2:][0].startswith('+CCLK: "26/01/01,00:00:')


@pytest.mark.parametrize("board", BOARDS)
def test_the_module_starts_with_the_network_time_switch_saved(tmp_path, board):
    """AT+CLTS=1 (the set-up) lasts until the module's power-off unless AT&W saves it. On a
    network that sends its time the firmware never saved it, so after her battery went flat
    a module that registered before the set-up came got no network time: neither the
    resume nor safe mode (test_safe_boot) could tell how long she was off."""
    with provisioned_device(tmp_path, board=board, **NO_FIX) as vd:
        vd.wait_console("EV clock network", timeout=30)
        deadline = time.monotonic() + 30
        while vd.call(lambda: vd.modem._profile["clts"]) != 1:
            assert time.monotonic() < deadline, "AT+CLTS=1 never saved"
            time.sleep(0.05)
        assert vd.call(lambda: vd.modem.echo) == 0   # saved with the echo on, then off again
        # saved once: a module that starts with it is not written again
        console, writes = vd.console_mark(), sent_to_modem(vd).count(b"AT&W")
        vd.power_cycle()
        vd.wait_console("EV clock network", since=console, timeout=60)
        vd.wait_console("EV ready", since=console, timeout=60)
        assert sent_to_modem(vd).count(b"AT&W") == writes


def test_a_module_that_saved_its_time_switch_before_saves_its_dark_led_too(tmp_path):
    """AT+CNETLIGHT=0 was saved only by an AT&W the time switch called for: a module whose
    time switch an earlier firmware had saved kept its network LED saved on, flashing every
    3 s from each power-on (her battery charged, a recovery's supply cut) until the set-up."""
    with provisioned_device(tmp_path, **NO_FIX) as vd:
        vd.wait_console("EV clock network", timeout=30)
        vd.call(lambda: vd.modem._profile.update(clts=1, netlight=1))   # as it was saved
        console = vd.console_mark()
        vd.power_cycle()
        vd.wait_console("EV ready", since=console, timeout=60)
        deadline = time.monotonic() + 30
        while vd.call(lambda: vd.modem._profile["netlight"]) != 0:
            assert time.monotonic() < deadline, "AT+CNETLIGHT=0 never saved"
            time.sleep(0.05)
        assert vd.call(lambda: vd.modem.netlight) == 0


# ---------------------------------------------------------------------- her alert across an outage
def test_an_alert_whose_battery_died_is_not_resumed_days_later(tmp_path, monkeypatch):
    """Her battery dies in the middle of an alert; she charges it ten days later. The
    network's time tells the board how long it was off: the alert expired long ago, and
    the board says so instead of calling C4 and texting her contacts as if she had just
    pressed (a gap of over a day was taken for "unknown", and unknown for none)."""
    real, ahead = PhoneNetwork.now_datetime, [timedelta(0)]
    monkeypatch.setattr(PhoneNetwork, "now_datetime", lambda self: real(self) + ahead[0])
    with provisioned_device(tmp_path, **NO_FIX) as vd:
        vd.wait_console("EV clock network", timeout=30)
        her_alert_on_the_flash(vd)
        ahead[0] = timedelta(days=10)     # past a ticks_diff's reach (6.2 days) too
        console, mark = vd.console_mark(), len(vd.events)
        vd.power_cycle()
        text = vd.wait_console("EV ready", since=console, timeout=60)
        assert "EV expired" in text and "EV resume" not in text, text
        assert not [e for e in vd.events[mark:] if e["kind"] == "call_start"], vd.events[mark:]


def test_an_alert_resumed_with_no_clock_ends_once_real_time_shows_it_is_days_old(tmp_path, monkeypatch):
    """The same ten days, on a network that sends no time: at power-on nothing can tell a
    flat battery from a cut in her alert, and the alert resumes (the safe guess). The first
    GPS fix gives real time: ten days off, the alert ends, and C4's call with it."""
    monkeypatch.setattr(PhoneNetwork, "gives_time", False)
    with provisioned_device(tmp_path) as vd:
        vd.wait_console("EV clock gps", timeout=30)
        her_alert_on_the_flash(vd)

        def ten_days_later_indoors():
            vd.gps.set_utc(vd.gps.utc + timedelta(days=10))
            vd.gps.never_fix(True)
        vd.call(ten_days_later_indoors)
        console = vd.console_mark()
        vd.power_cycle()
        vd.wait_console("EV resume", since=console, timeout=60)
        mark = len(vd.events)
        vd.wait_event(lambda e: e["kind"] == "call_connected", after=mark, timeout=60)
        vd.call(lambda: vd.gps.never_fix(False))
        text = vd.wait_console("EV expired", since=console, timeout=60)
        assert "EV clock gps" in text.split("EV resume")[1], text
        vd.wait_event(lambda e: e["kind"] == "call" and e.get("ended_by"), after=mark, timeout=30)


def test_c4s_cancel_is_not_taken_for_a_stale_one_when_the_rig_runs_fast(tmp_path):
    """At --time-scale 0.1 the GPS's UTC counted ten seconds a host second and the SMS
    centre's time stamps one: once the RTC was set from a fix, every SMS looked minutes old
    and C4's CANCELAR, sent during her alert, was ignored as held from an earlier one
    (`sms_ignored stale_794s`). The rig's clocks now count the same seconds."""
    cfg = demo_config(pin="482913")
    with provisioned_device(tmp_path, cfg) as vd:   # a fix within seconds
        vd.press(hold_s=1.2)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        vd.wait_console("EV clock gps", timeout=60)
        t = vd.call(vd.sched.now)
        wait_until(vd, lambda: vd.sched.now() - t > 150 * vd.time_scale, timeout=60)   # 2.5 minutes in
        mark = len(vd.events)
        vd.call(vd.network.sms_to_device, DEFAULT_C4, vd.device_number, "CANCELAR 482913")
        vd.wait_event(lambda e: e["kind"] == "sms" and "cerrada" in e["text"], after=mark, timeout=60)
    assert "sms_ignored" not in vd.console_text()
