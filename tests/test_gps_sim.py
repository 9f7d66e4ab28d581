"""host/boton/sim/gps.py: the simulated receiver, checked with the firmware's own
parser (firmware/lib/nmea.py) and a manual clock (no sleeps)."""
import json
import math
import sys
from datetime import datetime, timedelta, timezone

import pytest

from boton.paths import DATA, FIRMWARE
from boton.sim.clock import ManualClock, Scheduler
from boton.sim.gps import (RECEIVERS, TTFF, GpsSim, fmt_lat, fmt_lon, misread, nmea_checksum, nmea_sentence,
                           restart_mode)

sys.path.insert(0, str(FIRMWARE / "lib"))
import nmea  # noqa: E402

NMEA_DIR = DATA / "nmea"
T0 = datetime(2025, 6, 1, 23, 59, 50, tzinfo=timezone.utc)
AGS = (21.88234, -102.29143)


class Rig:
    """Scheduler + manual clock + GpsSim whose output goes into the firmware parser."""

    def __init__(self, time_scale=1.0, **kw):
        self.clock = ManualClock()
        self.sched = Scheduler(self.clock, time_scale)
        self.raw = bytearray()
        self.parser = nmea.NMEAParser(queue=64)
        self.fixes = []  # (sim seconds since start, Fix)
        self.t_start = self.clock.t
        self.gps = GpsSim(self.sched, self._rx, **kw)

    def _rx(self, data):
        assert isinstance(data, bytes)
        self.raw += data
        self.parser.feed(data)
        while (f := self.parser.pop_fix()) is not None:
            sim_t = (self.clock.t - self.t_start) / self.sched.time_scale
            self.fixes.append((round(sim_t, 6), f))

    def run(self, sim_seconds):
        self.clock.advance(self.sched, sim_seconds * self.sched.time_scale)

    @property
    def stats(self):
        return self.parser.stats


def test_nmea_sentence_matches_a_real_receiver():
    # bu353s4.log line 6 (gpsd regression capture, BSD-2-Clause)
    real = b"$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*7D\r\n"
    assert nmea_sentence("GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000") == real
    assert nmea_sentence(b"GPGSA,A,1,,,,,,,,,,,,,50.0,50.0,50.0") == b"$GPGSA,A,1,,,,,,,,,,,,,50.0,50.0,50.0*05\r\n"
    assert nmea_checksum("") == 0


def test_coordinate_formatting():
    assert fmt_lat(21.88234) == ("2152.94040", "N")
    assert fmt_lon(-102.29143) == ("10217.48580", "W")
    assert fmt_lat(-0.5) == ("0030.00000", "S")
    assert fmt_lon(5.0) == ("00500.00000", "E")
    assert fmt_lat(45.99999999) == ("4600.00000", "N")      # minute rounding carries
    assert fmt_lat(48.1173, decimals=4) == ("4807.0380", "N")


@pytest.mark.parametrize("mode", sorted(TTFF))
def test_fix_only_after_ttff(mode):
    r = Rig(utc=T0)
    r.gps.set_position(*AGS)
    r.gps.start(mode=mode)
    ttff = TTFF[mode]
    assert ttff == {"cold": 30.0, "warm": 25.0, "hot": 1.0}[mode]
    r.run(ttff - 0.5)
    assert r.fixes == [] and r.parser.fix is None
    assert r.stats.rmc_invalid == int(ttff - 0.5)          # one status-V RMC per second
    r.run(0.5)
    assert len(r.fixes) == 1 and r.fixes[0][0] == ttff
    r.run(10)
    assert len(r.fixes) == 11
    s = r.stats
    assert s.checksum_bad == s.checksum_missing == 0 and s.checksum_ok == s.sentences
    # a u-blox's default set: 7 TXT at power-on; RMC VTG GGA GSA GSV GLL a second without a
    # fix; with one, the GSV in three sentences
    assert s.sentences == r.gps.sentences_sent == 7 + 6 * (ttff - 1) + 8 * 11
    f = r.parser.fix
    assert abs(f.lat - AGS[0]) < 2e-7 and abs(f.lon - AGS[1]) < 2e-7
    assert f.gga and f.quality == 1 and f.sats == 8 and f.hdop == 0.9 and f.alt == 1880.0
    assert f.speed_knots == 0.0 and f.course is None


def test_before_the_fix_looks_like_a_real_receiver():
    r = Rig(utc=T0)
    r.gps.start(mode="cold")
    r.run(1)
    lines = bytes(r.raw).split(b"\r\n")
    assert lines[0] == b"$GPTXT,01,01,02,u-blox ag - www.u-blox.com*50"   # its banner first
    assert lines[7:13] == [
        b"$GPRMC,,V,,,,,,,,,,N*53",      # what a u-blox says after a cold start
        b"$GPVTG,,,,,,,,,N*30",
        b"$GPGGA,,,,,,0,00,99.99,,,,,,*48",
        b"$GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99*30",
        b"$GPGSV,1,1,00*79",
        b"$GPGLL,,,,,,V,N*64",
    ]
    r.run(1)
    assert b"TXT" not in bytes(r.raw).split(b"$GPGLL")[1]   # the banner once, at power-on
    r = Rig(utc=T0)
    r.gps.start(mode="warm")                  # RTC kept: time and date, no position
    r.run(1)
    assert b"\r\n$GPRMC,235951.00,V,,,,,,,010625,,,N*" in bytes(r.raw)


@pytest.mark.parametrize("receiver, cold, hot", [("NEO-6M", 27.0, 1.0), ("L76K", 30.0, 5.5)])
def test_a_named_receiver_fixes_after_its_datasheet_time(receiver, cold, hot):
    """The boards' receivers: u-blox NEO-6 data sheet (cold 27 s, hot 1 s), Quectel L76K
    (cold 30 s, hot 5.5 s without AGNSS). Their default start is cold."""
    assert (RECEIVERS[receiver]["cold"], RECEIVERS[receiver]["hot"]) == (cold, hot)
    for mode, ttff in (("cold", cold), ("hot", hot)):
        r = Rig(receiver=receiver)
        r.gps.start() if mode == "cold" else r.gps.start(mode=mode)
        r.run(ttff - 0.5)
        assert r.fixes == []
        r.run(1)
        assert [t for t, _ in r.fixes] == [math.ceil(ttff)]
    with pytest.raises(ValueError, match="NEO-6M, L76K"):
        Rig(receiver="NEO-7")


def test_restart_keeps_a_hot_start_only_with_a_backup_supply():
    """Across a cut of its supply a receiver keeps its ephemeris (hot start, within 2 h of
    its last fix) or its almanac and time (warm) only on its backup supply (V_BCKP)."""
    assert restart_mode(backup=False, since_fix_s=10) == "cold"       # a NEO-6M without its cell
    assert restart_mode(backup=True, since_fix_s=None) == "cold"      # never had a fix
    assert restart_mode(backup=True, since_fix_s=15 * 60) == "hot"    # the duty cycle's rest
    assert restart_mode(backup=True, since_fix_s=3 * 3600) == "warm"  # ephemeris stale


def test_utc_advances_with_simulated_time_and_time_scale():
    r = Rig(time_scale=0.01, utc=T0)
    r.gps.set_position(*AGS)
    r.gps.start(ttff_s=2.0)                   # a test's shortcut on the rig
    r.run(2)
    assert r.clock.t - r.t_start == pytest.approx(0.02)   # 2 simulated s = 20 ms
    assert [t for t, _ in r.fixes] == [2.0]
    r.run(12)
    # 23:59:50 + 14 s crosses midnight: the date field follows
    f = r.parser.fix
    assert f.utc == (2025, 6, 2, 0, 0, 4, 0)
    assert [fx.utc[3:6] for _, fx in r.fixes[:3]] == [(23, 59, 52), (23, 59, 53), (23, 59, 54)]
    assert r.gps.utc == T0 + timedelta(seconds=14)
    r.gps.set_utc(datetime(2030, 1, 1, tzinfo=timezone.utc))
    r.run(1)
    assert r.parser.fix.utc == (2030, 1, 1, 0, 0, 1, 0)


def test_utc_goes_on_while_the_receiver_is_off():
    # satellites keep the time: a receiver switched off for 85 s and on again does not say
    # the time it stopped at (the firmware then set its clock back by 85 s, and every log
    # entry after was stamped before what came earlier)
    r = Rig(time_scale=0.01, utc=T0)
    r.gps.start(ttff_s=1.0)
    r.run(5)
    r.gps.stop()
    r.run(85)
    assert r.gps.utc == T0 + timedelta(seconds=90)
    r.gps.start(ttff_s=1.0, mode="hot")
    r.run(1)
    assert r.gps.utc == T0 + timedelta(seconds=91)
    assert r.parser.fix.utc == (2025, 6, 2, 0, 1, 21, 0)   # 23:59:50 + 91 s


def test_route_is_walked_at_its_speed():
    a, b = (21.8800, -102.2900), (21.8890, -102.2900)     # ~1 km due north
    leg_m = 0.009 * math.pi / 180 * 6371008.8
    r = Rig(utc=T0)
    r.gps.set_route([a, b], speed_kmh=36.0)               # 10 m/s
    r.gps.start(mode="hot")
    r.run(50)
    f = r.parser.fix
    frac = 500 / leg_m
    assert f.lat == pytest.approx(a[0] + (b[0] - a[0]) * frac, abs=2e-7)
    assert f.lon == pytest.approx(-102.29, abs=2e-7) and f.lon < 0
    assert f.speed_knots == pytest.approx(10 * 3600 / 1852, abs=1e-3)
    assert f.course == pytest.approx(0.0, abs=0.01)
    lats = [fx.lat for _, fx in r.fixes]
    assert all(y > x for x, y in zip(lats, lats[1:]))      # moving north every second
    steps = [(y - x) * math.pi / 180 * 6371008.8 for x, y in zip(lats, lats[1:])]
    assert all(abs(s - 10.0) < 0.05 for s in steps)
    r.run(200)                                            # past the end: stays there
    f = r.parser.fix
    assert abs(f.lat - b[0]) < 2e-7 and f.speed_knots == 0.0 and f.course is None


def test_route_course_and_southwest_signs():
    r = Rig(utc=T0)
    r.gps.set_route([(-34.6000, -58.3800), (-34.6000, -58.3900)], speed_kmh=18.0)  # due west
    r.gps.start(mode="hot")
    r.run(5)
    f = r.parser.fix
    assert f.lat < 0 and f.lon < -58.38 and f.course == pytest.approx(270.0, abs=0.01)


def test_silent_fault():
    r = Rig(utc=T0)
    r.gps.set_position(*AGS)
    r.gps.start(mode="hot")
    r.run(3)
    n = len(r.raw)
    r.gps.silent(True)
    r.run(10)
    assert len(r.raw) == n and len(r.fixes) == 3
    r.gps.silent(False)
    r.run(1)
    assert len(r.fixes) == 4
    assert r.parser.fix.utc == (2025, 6, 2, 0, 0, 4, 0)   # time went on while silent


def test_never_fix_fault():
    r = Rig(utc=T0)
    r.gps.set_position(*AGS)
    r.gps.never_fix(True)
    r.gps.start(mode="hot")
    r.run(60)
    assert r.fixes == [] and r.stats.rmc_invalid == 60 and r.stats.checksum_bad == 0
    r.gps.never_fix(False)
    r.run(1)
    assert len(r.fixes) == 1
    r.gps.never_fix(True)                    # losing the fix: status V again
    r.run(5)
    assert len(r.fixes) == 1 and r.stats.rmc_invalid == 65


def test_dead_reckoning_fault_looks_like_a_ublox_estimate():
    # u-blox M8 receiver description, "NMEA valid flag": a dead-reckoning fix is status A,
    # RMC mode E, GGA quality 6 (the NMEA standard would have status V)
    r = Rig(utc=T0)
    r.gps.set_position(*AGS)
    r.gps.start(mode="hot")
    r.run(2)
    assert len(r.fixes) == 2 and all(f.valid for _, f in r.fixes)
    r.gps.dead_reckoning(True)
    n = len(r.raw)
    r.run(3)
    rmc = [l for l in bytes(r.raw[n:]).split(b"\r\n") if l[3:6] == b"RMC"]
    gga = [l for l in bytes(r.raw[n:]).split(b"\r\n") if l[3:6] == b"GGA"]
    assert len(rmc) == 3 and all(l.split(b",")[2] == b"A" and l.split(b",")[12][:1] == b"E" for l in rmc)
    assert all(l.split(b",")[6] == b"6" for l in gga)
    assert len(r.fixes) == 2 and r.stats.rmc_invalid == 3   # the parser takes none of them
    r.gps.dead_reckoning(False)
    r.run(1)
    assert len(r.fixes) == 3 and r.fixes[-1][1].valid


def test_wrong_baud_fault_is_a_uart_reading_bits_at_its_own_speed():
    line = nmea_sentence("GPRMC,235950.00,A,2152.94040,N,10217.48580,W,0.000,,010625,,,A")
    assert misread(line, 1.0) == line                       # the model reads its own speed
    r = Rig(utc=T0)
    r.gps.set_position(*AGS)
    r.gps.wrong_baud(38400)                                 # a u-blox M9N's default speed
    r.gps.start(mode="hot")
    r.run(10)
    s = r.stats
    # bytes arrive, '$' among them, but never one sentence: no fix, nothing to trust
    assert len(r.raw) >= 400 and s.sentences > 0 and s.checksum_ok == 0 and r.fixes == []
    r.gps.wrong_baud(4800)
    r.run(5)
    assert r.stats.checksum_ok == 0 and r.fixes == []
    r.gps.wrong_baud(None)
    r.run(1)
    assert len(r.fixes) == 1


def test_corrupt_checksums_fault():
    r = Rig(utc=T0, seed=7)
    r.gps.set_position(*AGS)
    r.gps.corrupt_checksums(1.0)
    r.gps.start(mode="hot")
    r.run(20)
    s = r.stats
    sent = 7 + 8 * 20                         # the banner, then a fix's eight a second
    assert r.fixes == [] and s.checksum_ok == 0 and s.checksum_bad == s.sentences == sent
    r.gps.corrupt_checksums(0.3)
    r.run(200)
    s = r.stats
    frac = (s.checksum_bad - sent) / (s.sentences - sent)
    assert 0.2 < frac < 0.4 and s.checksum_missing == 0
    assert s.checksum_bad == r.gps.corrupted
    with pytest.raises(ValueError):
        r.gps.corrupt_checksums(1.5)


def test_stop():
    r = Rig(utc=T0)
    r.gps.start(mode="hot")
    r.run(2)
    r.gps.stop()
    n = len(r.raw)
    r.run(10)
    assert len(r.raw) == n and r.sched.next_deadline() is None


@pytest.fixture(scope="module")
def expected():
    return json.loads((NMEA_DIR / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("log", sorted(p.name for p in NMEA_DIR.glob("*.log")))
def test_replay_fast_reproduces_expected(expected, log):
    r = Rig()
    r.gps.replay(NMEA_DIR / log, realtime=False, chunk=100)
    r.run(0)                                 # as fast as the consumer takes it
    r.parser.flush()
    exp = expected[log]
    s = r.stats
    assert s.rmc_valid == exp["rmc_valid"]
    assert (s.sentences, s.checksum_ok, s.checksum_bad, s.checksum_missing) == (
        exp["sentences_total"], exp["checksum_ok"], exp["checksum_bad"], exp["checksum_missing"])
    assert b"\n#" not in b"\n" + bytes(r.raw)  # gpsd's metadata is not sent
    assert not r.gps.replaying and r.sched.next_deadline() is None


def test_replay_realtime_is_one_burst_per_second(expected):
    log = "bu353s4.log"
    r = Rig(time_scale=0.5)
    r.gps.replay(NMEA_DIR / log, realtime=True)
    r.run(0)
    counts = []
    for _ in range(30):
        counts.append(bytes(r.raw).count(b"RMC,"))
        r.run(1)
    n_rmc = expected[log]["rmc_checksum_ok"]
    # a burst starts at each RMC: the log's lead-in (GGA, GSA, GSV before the
    # first RMC) goes out at once, then exactly one RMC per second
    assert counts == [min(k, n_rmc) for k in range(30)]
    r.parser.flush()
    assert r.stats.rmc_valid == expected[log]["rmc_valid"]
    assert not r.gps.replaying


def test_replay_with_corruption_counts_bad():
    r = Rig(seed=1)
    r.gps.corrupt_checksums(1.0)
    r.gps.replay(NMEA_DIR / "bu353s4.log")
    r.run(0)
    assert r.stats.rmc_valid == 0 and r.stats.checksum_ok == 0
    assert r.stats.checksum_bad == r.stats.sentences > 50


def test_sim_output_parsed_on_micropython(mpy, tmp_path):
    r = Rig(utc=T0)
    r.gps.set_route([(21.8800, -102.2900), (21.8890, -102.2900)], speed_kmh=5.0)
    r.gps.start(mode="warm")
    r.run(40)
    path = tmp_path / "sim.nmea"
    path.write_bytes(bytes(r.raw))
    out = mpy.json("""
import json, nmea
p = nmea.NMEAParser(queue=0)
with open(%r, 'rb') as f:
    while True:
        b = f.read(50)
        if not b:
            break
        p.feed(b)
print(json.dumps([p.stats.as_dict(), p.fix.as_dict()]))
""" % str(path))
    stats, fix = out
    assert stats["fixes"] == len(r.fixes) == 40 - 25 + 1 and stats["checksum_bad"] == 0
    assert fix["lat_e7"] == r.parser.fix.lat_e7 and fix["lon_e7"] == r.parser.fix.lon_e7


def test_every_sentence_has_the_fields_a_real_u_blox_gives_it():
    """Each sentence type the simulated receiver sends, with a fix and without, has the
    field count the u-blox captures have (data/nmea/ublox-lea-5h.log, -5q.log)."""
    def fields(lines):
        out = {}
        for ln in lines:
            if ln.startswith(b"$GP") and b"*" in ln:
                body = ln[1:ln.index(b"*")].split(b",")
                out.setdefault((body[0], body[2] == b"V" if body[0] == b"GPRMC" else None), set()).add(len(body))
        return out

    real = {}
    for name in ("ublox-lea-5h.log", "ublox-lea-5q.log"):
        for k, v in fields((NMEA_DIR / name).read_bytes().splitlines()).items():
            real.setdefault(k, set()).update(v)
    r = Rig(utc=T0)
    r.gps.set_position(*AGS)
    r.gps.start(mode="warm")
    r.run(40)                                   # without a fix, then with one
    ours = fields(bytes(r.raw).splitlines())
    kinds = {k[0] for k in ours}
    assert kinds == {b"GPTXT", b"GPRMC", b"GPVTG", b"GPGGA", b"GPGSA", b"GPGSV", b"GPGLL"}
    for k, counts in ours.items():
        assert counts <= real[k], (k, counts, real[k])
