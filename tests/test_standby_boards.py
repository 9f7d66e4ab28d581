"""The standby model knows each board's parts: the T-A7670X's A7670 and its L76K shield
(always on: no enable pin), with their currents marked as assumed until measured."""
import re

import pytest

from boton.bench import standby
from boton.boards import load_board

FACTS = {"esp_sleep_calls": 0, "modem_csclk": False, "gps_uart_writes": 0}


def test_the_t_a7670x_is_modelled_with_its_own_parts():
    modem, gps = standby.board_parts(load_board("ta7670x_a7670sa"))
    assert (modem.label, gps.label) == ("A7670", "L76K") and modem.assumed and gps.assumed
    assert standby.board_parts(load_board("tcall_sim800l_axp192"))[0] is standby.MODEMS["sim800"]
    assert "ta7670x_a7670sa" in standby.boards() and load_board("ta7670x_a7670sa")["battery_mah"]


def test_an_a7670_half_asleep_and_an_l76k_never_switched_off():
    measured = {"modem_asleep_share": 0.5, "gps_enable_driven": [], "modem_family": "a7670",
                "gps_module": "L76K", "esp_asleep_share": 0.0}
    pm = standby.model(measured, FACTS)
    a7670, l76k = standby.MODEMS["a7670"], standby.GPS_RECEIVERS["L76K"]
    assert pm["i_modem"] == pytest.approx((a7670.on + a7670.rest) / 2)
    assert pm["gps_duty"] == 1.0 and pm["i_gps"] == pytest.approx(l76k.on)
    lo, hi = pm["i_total_range"]
    assert lo < pm["i_total"] < hi
    assert hi - lo == pytest.approx(0.5 * (a7670.on_range[1] - a7670.on_range[0]))


def test_a_battery_sense_that_reads_no_cell_is_not_her_battery(tmp_path):
    # A divider missing or open (a T-A7670X V1.1 has none) reads 0 V: every SMS said
    # "Bat 0%", her contacts were told "bateria baja", and the modem's reading was ignored
    from rigkit import demo_config, provisioned_device
    cfg = demo_config()
    cfg["status_every_s"] = cfg["health_every_s"] = 2  # real seconds: polled in the health check
    with provisioned_device(tmp_path, cfg, board="devkitc_sim800l_neo6m") as vd:
        mark = vd.console_mark()
        vd.open_battery_sense()
        vd.wait_console("EV battery_gauge implausible_0mV", since=mark, timeout=60)
        ev = len(vd.events)
        vd.press(hold_s=1.2)
        alert = vd.wait_event(lambda e: e["kind"] == "sms" and e["text"].startswith("ALERTA"), after=ev,
                              timeout=60)
        assert "Bat 0%" not in alert["text"] and "Bat " in alert["text"], alert["text"]
        assert "EV low_battery" not in vd.console_text()[mark:]


@pytest.mark.parametrize("board", ["devkitc_sim800l_neo6m", "tcall_sim800l_axp192"])
def test_status_shows_the_battery_the_firmware_acts_on(tmp_path, board):
    # status read the modem's AT+CBC while the firmware acts on the board's gauge: 14 on
    # the technician's screen, "Bat 33%" in her SMS from the same battery
    from click.testing import CliRunner
    from boton.cli import main
    from rigkit import demo_config, provisioned_device
    cfg = demo_config()
    cfg["status_every_s"] = cfg["health_every_s"] = 2  # real seconds: polled in the health check
    with provisioned_device(tmp_path, cfg, board=board) as vd:
        vd.set_battery_mv(3700)  # the modem's AT+CBC would say 29%
        vd.wait_console("EV low_battery 12%", timeout=60)  # what her contacts are told
        r = CliRunner().invoke(main, ["status", "--port", vd.repl_url], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert re.search(r"battery\s+│ 12 % \(board's gauge\)", r.output), r.output


def test_a_board_read_through_its_sim800_warns_her_contacts_as_the_battery_falls(tmp_path):
    # The IP5306 T-Call has no gauge: the module's own warning (<= 3.49 V) is what tells
    # the firmware, and the rig's battery used to fall without it
    from rigkit import demo_config, provisioned_device
    cfg = demo_config()
    cfg["light_sleep"] = False  # a URC in light sleep is lost on the chip, and in the rig
    with provisioned_device(tmp_path, cfg, board="tcall_sim800l_ip5306") as vd:
        vd.wait_console("EV ready", timeout=60)
        mark, ev = vd.console_mark(), len(vd.events)
        vd.set_battery_mv(3480)
        vd.wait_console("EV power_warning under_voltage", since=mark, timeout=60)
        vd.wait_event(lambda e: e["kind"] == "sms" and "bateria baja" in e["text"], after=ev, timeout=60)
