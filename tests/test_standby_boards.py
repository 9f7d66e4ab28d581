"""The standby model knows each board's parts: the T-A7670X's A7670 and its L76K shield
(always on: no enable pin), with their currents marked as assumed until measured."""
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
