"""Stamps the firmware keeps for days, across the ESP32's ticks_ms wrap (2^30 ms, 12.4
days): older than half the period (6.2 days), ticks_diff reads them negative. Found by a
review: each filter below took "negative" for "recent", for the next 6.2 days."""
import asyncio
import sys

import pytest

from boton.paths import FIRMWARE

sys.path[:0] = [str(FIRMWARE / "lib"), str(FIRMWARE)]  # the firmware's modules under CPython
import atparse  # noqa: E402
import dialect_a7670  # noqa: E402
import dialect_sim800  # noqa: E402
import modemup  # noqa: E402
import radio  # noqa: E402

PERIOD = 1 << 30          # the ESP32's ticks period
DAY = 86400000


class ChipTime:
    """time as the ESP32 has it: ticks_ms wraps at 2^30."""
    def __init__(self):
        self.now = 0

    def ticks_ms(self):
        return self.now % PERIOD

    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + PERIOD // 2) & (PERIOD - 1)) - PERIOD // 2

    @staticmethod
    def ticks_add(a, b):
        return (a + b) % PERIOD


@pytest.fixture
def chip_time(monkeypatch):
    t = ChipTime()
    monkeypatch.setattr(radio, "time", t)
    monkeypatch.setattr(modemup, "time", t)
    return t


class Log:
    def __init__(self):
        self.lines = []

    def add(self, event, detail="-"):
        self.lines.append(event)


@pytest.mark.parametrize("dialect", [dialect_sim800, dialect_a7670], ids=["sim800", "a7670"])
def test_a_supply_warning_a_week_after_the_last_is_passed_on(chip_time, dialect):
    # one discharge a week: the modem's UNDER-VOLTAGE warning is the only battery news a
    # T-Call IP5306 board has (no gauge): her contacts' low-battery SMS come from it
    r = radio.Radio.__new__(radio.Radio)
    r.dialect, r.log, r._warned = dialect, Log(), None
    posted = []
    r.post = posted.append
    for days in (0, 7, 9, 13):
        chip_time.now = 1000 + days * DAY
        radio.Radio._urc(r, atparse.UV_WARN, "")
    assert posted == [("power_warning", "under_voltage")] * 4


def test_the_2g_fallback_is_tried_again_a_week_after_a_vain_one(chip_time):
    r = type("R", (), {})()
    r.no_2g = (1000, modemup.NO_2G_WAIT_S)    # no 2G where she was, day 0
    tried = []
    for days in (0.01, 0.5, 6.0, 6.3, 8, 12.5):
        chip_time.now = 1000 + int(days * DAY)
        tried.append(modemup._2g_worth_a_try(r))
    assert tried == [False, True, True, True, True, True]
