"""host/boton/nmea_report.py: the firmware parser (on MicroPython) over every
captured log agrees with data/nmea/expected.json."""
import json

import pytest

from boton.nmea_report import analyse, render_text
from boton.paths import DATA
from boton.sim.gps import nmea_sentence

NMEA_DIR = DATA / "nmea"
LOGS = sorted(p.name for p in NMEA_DIR.glob("*.log"))


@pytest.fixture(scope="module")
def expected():
    return json.loads((NMEA_DIR / "expected.json").read_text(encoding="utf-8"))


def test_every_capture_is_covered():
    assert len(LOGS) == 21


@pytest.mark.parametrize("log", LOGS)
def test_analyse_matches_expected(expected, log):
    exp = expected[log]
    res = analyse(NMEA_DIR / log)
    assert res["interpreter"] == "micropython"
    json.dumps(res)  # JSON-serialisable for `boton nmea --json`
    s = res["summary"]
    assert (s["sentences"], s["checksum_ok"], s["bad_checksum"], s["missing_checksum"]) == (
        exp["sentences_total"], exp["checksum_ok"], exp["checksum_bad"], exp["checksum_missing"])
    assert s["valid"] == exp["rmc_valid"]
    assert s["valid"] + s["invalid"] == exp["rmc_checksum_ok"]
    assert s["gga"] == exp["gga_checksum_ok"]
    assert len(res["fixes"]) == s["fixes"] == exp["rmc_valid"]
    assert [f["seq"] for f in res["fixes"]] == list(range(1, s["fixes"] + 1))
    last = exp["last_valid_fix"]
    text = render_text(res)
    assert "checksum ok %d, bad checksum %d" % (exp["checksum_ok"], exp["checksum_bad"]) in text
    if last is None:
        assert res["fixes"] == [] and "no valid fix" in text
        return
    f = res["fixes"][-1]
    assert abs(f["lat"] - last["lat"]) <= 1e-6 + 1e-9
    assert abs(f["lon"] - last["lon"]) <= 1e-6 + 1e-9
    assert f["utc"] == last["utc"]
    assert f["time"] == last["time_of_day"]
    for key in ("time", "lat", "lon", "quality", "sats", "hdop"):
        assert key in f
    assert len(text.splitlines()) == s["fixes"] + 7


def test_gga_is_merged_even_when_it_follows_the_rmc(expected):
    # ublox-neo-m9n sends RMC before GGA in each epoch: every reported fix
    # still carries its GGA data (reported once the epoch is over)
    res = analyse(NMEA_DIR / "ublox-neo-m9n-nmea.log")
    assert res["fixes"] and all(f["sats"] is not None and f["hdop"] is not None for f in res["fixes"])
    assert {f["quality"] for f in res["fixes"]} <= {1, 2}


def test_cpython_and_micropython_agree():
    for log in ("telit-he910.log", "isync.log"):
        mp = analyse(NMEA_DIR / log)
        cp = analyse(NMEA_DIR / log, use_micropython=False)
        assert cp["interpreter"] == "cpython" and mp["summary"] == cp["summary"]
        assert len(mp["fixes"]) == len(cp["fixes"])
        for a, b in zip(mp["fixes"], cp["fixes"]):
            for k in ("lat", "lon"):
                assert abs(a.pop(k) - b.pop(k)) < 1e-12
            for k in [k for k, v in a.items() if isinstance(v, float)]:
                assert a.pop(k) == pytest.approx(b.pop(k), rel=1e-12)
            assert a == b


def test_render_text_shape(tmp_path):
    log = tmp_path / "two.nmea"
    log.write_bytes(
        b"# a comment\n"
        + nmea_sentence("GPRMC,123519.00,A,4807.0380,N,01131.0000,E,022.4,084.4,230394,003.1,W")
        + b"$GPRMC,123520.00,A,4807.0380,S,01131.0000,W,022.4,084.4,230394,003.1,W*00\r\n"
        b"$GPGGA,123519.00,4807.0380,N,01131.0000,E,2,08,0.9,545.4,M,46.9,M,,\r\n")
    res = analyse(log)
    s = res["summary"]
    assert (s["sentences"], s["valid"], s["bad_checksum"], s["missing_checksum"]) == (3, 1, 1, 1)
    text = render_text(res)
    assert "48.117300" in text and "11.516667" in text and "1994-03-23T12:35:19.000Z" in text
    with pytest.raises(FileNotFoundError):
        analyse(tmp_path / "nope.log")
