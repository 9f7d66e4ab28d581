"""firmware/lib/nmea.py: the real gpsd captures on MicroPython, unit cases on both
interpreters, and fuzzing.

The reference numbers come from data/nmea/expected.json (read in place);
its `_definitions` are the rules the parser implements.
"""
import inspect
import json
import random
import re
import sys
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from boton.paths import DATA, FIRMWARE

sys.path.insert(0, str(FIRMWARE / "lib"))
import nmea  # noqa: E402  (the firmware module, imported by CPython)

NMEA_DIR = DATA / "nmea"
LOGS = sorted(p.name for p in NMEA_DIR.glob("*.log"))
CHUNKS = (1, 7, 64, 4096)


@pytest.fixture(scope="module")
def expected():
    return json.loads((NMEA_DIR / "expected.json").read_text(encoding="utf-8"))


def test_all_captures_present(expected):
    assert len(LOGS) == 21
    assert sorted(k for k in expected if not k.startswith("_")) == LOGS


# --------------------------------------------------------------------------
# every capture, parsed by MicroPython in several chunk sizes
# --------------------------------------------------------------------------
MPY_LOG = """
import json, nmea
out = []
for cs in %(chunks)r:
    p = nmea.NMEAParser(queue=0)
    buf = bytearray(cs)
    mv = memoryview(buf)
    n = 0
    with open(%(path)r, 'rb') as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            n += p.feed(mv[:k])
    n += p.flush()
    fx = p.fix
    out.append({'chunk': cs, 'new': n, 'stats': p.stats.as_dict(),
                'fix': fx.as_dict() if fx else None})
print(json.dumps(out))
"""


def utc_iso(u):
    return None if u is None else "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % tuple(u)


def half_away_e7(exact: str) -> int:
    d = Decimal(exact) * 10**7
    q = int(abs(d) + Decimal("0.5"))
    return -q if d < 0 else q


@pytest.mark.parametrize("log", LOGS)
def test_capture_on_micropython(mpy, expected, log):
    exp = expected[log]
    runs = mpy.json(MPY_LOG % {"chunks": CHUNKS, "path": str(NMEA_DIR / log)})
    assert [r["chunk"] for r in runs] == list(CHUNKS)
    first = runs[0]
    for r in runs[1:]:  # chunking must not change anything
        assert (r["stats"], r["fix"], r["new"]) == (first["stats"], first["fix"], first["new"]), r["chunk"]
    s = first["stats"]
    got = {
        "sentences_total": s["sentences"],
        "checksum_ok": s["checksum_ok"],
        "checksum_bad": s["checksum_bad"],
        "checksum_missing": s["checksum_missing"],
        "rmc_valid": s["rmc_valid"],
        "rmc_checksum_ok": s["rmc_valid"] + s["rmc_invalid"],
        "gga_checksum_ok": s["gga"],
        "stray_starts": s["stray"],
    }
    assert got == {k: exp[k] for k in got}
    assert s["overlong"] == 0 and s["internal_errors"] == 0
    # every valid RMC of these captures has a usable position -> one fix each
    assert s["rmc_nopos"] == 0
    assert first["new"] == s["fixes"] == exp["rmc_valid"]

    want = exp["last_valid_fix"]
    fix = first["fix"]
    if want is None:
        assert fix is None
        return
    assert fix is not None and fix["valid"] is True
    tol = 1e-6 + 1e-9  # "ties ... may give +-1e-6 (compare with a tolerance)"
    assert abs(fix["lat"] - want["lat"]) <= tol
    assert abs(fix["lon"] - want["lon"]) <= tol
    # tighter: the float is the exact decimal value up to float error
    assert abs(Decimal(repr(fix["lat"])) - Decimal(want["lat_exact"])) < Decimal("1e-9")
    assert abs(Decimal(repr(fix["lon"])) - Decimal(want["lon_exact"])) < Decimal("1e-9")
    assert fix["lat_e7"] == half_away_e7(want["lat_exact"])
    assert fix["lon_e7"] == half_away_e7(want["lon_exact"])
    assert utc_iso(fix["utc"]) == want["utc"]
    tod = want["time_of_day"]
    assert "%02d:%02d:%02d.%03d" % tuple(fix["time"]) == tod


def test_capture_cpython_matches_micropython(mpy, expected):
    """The same module under CPython gives the same answer (one capture with
    GGA merging, fractional seconds and a negative longitude)."""
    log = "telit-he910.log"
    mp = mpy.json(MPY_LOG % {"chunks": (64,), "path": str(NMEA_DIR / log)})[0]
    p = nmea.NMEAParser(queue=0)
    data = (NMEA_DIR / log).read_bytes()
    for i in range(0, len(data), 64):
        p.feed(data[i:i + 64])
    p.flush()
    assert p.stats.as_dict() == mp["stats"]
    cp = json.loads(json.dumps(p.fix.as_dict()))
    mf = mp["fix"]
    for k in [k for k, v in cp.items() if isinstance(v, float)]:
        # MicroPython's float repr is not shortest-round-trip: compare closely
        assert abs(cp.pop(k) - mf.pop(k)) <= 1e-12 * max(1.0, abs(mf.get(k, 1.0) or 1.0)), k
    assert cp == mf


# --------------------------------------------------------------------------
# unit cases: plain functions taking the module, run by CPython here and by
# MicroPython in test_unit_cases_on_micropython (same source, sent verbatim)
# --------------------------------------------------------------------------
def _s(body):
    c = 0
    for ch in body:
        c ^= ord(ch)
    return ("$%s*%02X\r\n" % (body, c)).encode()


RMC_A = "GPRMC,123519.00,A,4807.0380,N,01131.0000,E,022.4,084.4,230394,003.1,W"
RMC_SW = "GNRMC,010203.50,A,3347.0877,S,05818.8941,W,0.00,,311214,,,A"
GGA_1 = "GPGGA,123519.00,4807.0380,N,01131.0000,E,2,08,0.9,545.4,M,46.9,M,,"


def case_checksum_counts(nmea):
    p = nmea.NMEAParser()
    good = _s(RMC_A)
    bad = good[:-4] + (b"00" if good[-4:-2] != b"00" else b"01") + b"\r\n"
    lower = good[:-4] + good[-4:-2].lower() + b"\r\n"
    p.feed(good + bad + lower + b"$GPGSV,1,1,00\r\n")
    s = p.stats
    assert (s.sentences, s.checksum_ok, s.checksum_bad, s.checksum_missing) == (4, 2, 1, 1), s.as_dict()
    assert s.rmc_valid == 2 and s.fixes == 2  # the bad one is not a fix
    # not two hex digits at the very end: missing, not bad
    for tail in (b"*4G", b"*G4", b"*4", b"*", b"*4A ", b"*4A*"):
        p.feed(b"$GPGSV,1,1,00" + tail + b"\r\n")
    assert (s.checksum_bad, s.checksum_missing) == (1, 7), s.as_dict()


def case_chunk_boundaries(nmea):
    stream = (b"# comment $GPRMC junk\n" + _s(GGA_1) + b"noise" + _s(RMC_A)
              + b"$$" + _s(RMC_SW)[1:] + b"!AIVDM,1,1,,A,13aG?P0P00PD;88MD5MTDww@2<0L,0*23\n")
    ref = nmea.NMEAParser()
    ref.feed(stream)
    want = (ref.stats.as_dict(), ref.fix.as_dict())
    assert ref.stats.fixes == 2 and ref.stats.stray == 1, want
    for cut in range(len(stream) + 1):  # every two-piece split
        p = nmea.NMEAParser()
        n = p.feed(stream[:cut]) + p.feed(memoryview(stream)[cut:])
        assert n == 2 and (p.stats.as_dict(), p.fix.as_dict()) == want, cut
    p = nmea.NMEAParser()
    n = 0
    for i in range(len(stream)):  # byte by byte, as bytearray
        n += p.feed(bytearray(stream[i:i + 1]))
    assert n == 2 and (p.stats.as_dict(), p.fix.as_dict()) == want


def case_sentence_split_mid_checksum(nmea):
    p = nmea.NMEAParser()
    line = _s(RMC_A)
    assert p.feed(line[:-4]) == 0 and p.fix is None
    assert p.feed(line[-4:-3]) == 0
    assert p.feed(line[-3:-1]) == 0       # '\r' seen, no LF yet
    assert p.feed(line[-1:]) == 1         # LF completes it
    assert p.fix.lat_e7 == 481173000 and p.fix.lon_e7 == 115166667


def case_overlong_dropped(nmea):
    p = nmea.NMEAParser()
    cap = len(p._buf)
    junk = b"$GPRMC," + b"9" * 300 + b"*00\r\n"
    assert p.feed(junk + _s(RMC_A)) == 1
    s = p.stats
    assert s.overlong == 1 and s.sentences == 2 and s.checksum_ok == 1
    assert s.sentences == s.checksum_ok + s.checksum_bad + s.checksum_missing + s.overlong
    assert len(p._buf) == cap             # the buffer never grows
    # exactly the buffer size fits; one more byte does not; trailing CRs don't count
    small = nmea.NMEAParser(bufsize=40)
    body = "GPTXT,01,01,02," + "x" * (40 - 4 - 15)
    line = _s(body)
    assert len(line) - 2 == 40
    small.feed(line[:-2] + b"\r" * 5 + b"\n")
    assert small.stats.checksum_ok == 1 and small.stats.overlong == 0
    small.feed(_s(body + "y"))
    assert small.stats.overlong == 1
    # a long line without any '$' never touches the buffer at all
    p.feed(b"x" * 5000 + b"\n" + _s(RMC_A))
    assert p.stats.fixes == 2 and p.stats.sentences == 3 and p.stats.overlong == 1


def case_sign_south_west(nmea):
    p = nmea.NMEAParser()
    p.feed(_s(RMC_SW) + _s(RMC_A))
    a = p.pop_fix()
    b = p.pop_fix()
    assert p.pop_fix() is None
    assert a.lat < 0 and a.lon < 0 and a.lat_e7 == -337847950 and a.lon_e7 == -583149017
    assert abs(a.lat - -(33 + 47.0877 / 60)) < 1e-12 and abs(a.lon - -(58 + 18.8941 / 60)) < 1e-12
    assert b.lat > 0 and b.lon > 0
    assert nmea.deg_str(a.lat_e7) == "-33.784795" and nmea.deg_str(a.lon_e7) == "-58.314902"
    assert a.time == (1, 2, 3, 500) and a.utc == (2014, 12, 31, 1, 2, 3, 500)
    assert a.speed_knots == 0.0 and a.course is None and a.quality == 1 and not a.gga
    assert (a.seq, b.seq) == (1, 2)


def case_gga_merge(nmea):
    # GGA first, then RMC of the same epoch
    p = nmea.NMEAParser()
    p.feed(_s(GGA_1) + _s(RMC_A))
    f = p.fix
    assert f.gga and f.quality == 2 and f.sats == 8 and f.hdop == 0.9 and f.alt == 545.4
    # RMC first: the same Fix object is updated in place by the GGA
    p = nmea.NMEAParser()
    p.feed(_s(RMC_A))
    f = p.fix
    assert not f.gga and f.quality == 1 and f.sats is None
    p.feed(_s(GGA_1))
    assert p.fix is f and f.gga and f.quality == 2 and f.sats == 8
    # another epoch's GGA is not merged, nor is one with a bad checksum
    p = nmea.NMEAParser()
    p.feed(_s(GGA_1.replace("123519.00", "123518.00")) + _s(RMC_A))
    assert not p.fix.gga
    bad = _s(GGA_1)
    p.feed(bad[:-4] + (b"00" if bad[-4:-2] != b"00" else b"01") + b"\r\n")
    assert not p.fix.gga and p.stats.gga == 1 and p.stats.checksum_bad == 1
    # any talker
    for t in ("GN", "GL", "GA", "GB", "BD", "QZ"):
        p = nmea.NMEAParser()
        p.feed(_s(t + GGA_1[2:]) + _s(t + RMC_A[2:]))
        assert p.stats.rmc_valid == 1 and p.fix.gga, t


def case_empty_and_invalid_fields(nmea):
    p = nmea.NMEAParser()
    bad_positions = [
        "GPRMC,123519,A,,,,,,,230394,,",             # empty position, status A
        "GPRMC,123519,A,4807.038,X,01131.000,E,,,230394,,",
        "GPRMC,123519,A,4807.038,N,01131.000,N,,,230394,,",
        "GPRMC,123519,A,48O7.038,N,01131.000,E,,,230394,,",
        "GPRMC,123519,A,4867.038,N,01131.000,E,,,230394,,",   # 67 minutes
        "GPRMC,123519,A,9107.038,N,01131.000,E,,,230394,,",   # 91 degrees
        "GPRMC,123519,A,4807.0.38,N,01131.000,E,,,230394,,",
        "GPRMC,123519,A,07.038,N,01131.000,E,,,230394,,",     # no degrees
        "GPRMC,123519,A,4807.038,N",                          # truncated
        "GPRMC,123519,A",
    ]
    for body in bad_positions:
        p.feed(_s(body))
    s = p.stats
    assert s.rmc_valid == len(bad_positions) and s.rmc_nopos == len(bad_positions)
    assert s.fixes == 0 and p.fix is None and s.internal_errors == 0
    for body in ("GPRMC,123519,V,4807.038,N,01131.000,E,,,230394,,",
                 "GPRMC,123519,,4807.038,N,01131.000,E,,,230394,,",
                 "GPRMC,123519,AA,4807.038,N,01131.000,E,,,230394,,",
                 "GPRMC,123519,a,4807.038,N,01131.000,E,,,230394,,"):
        p.feed(_s(body))
    assert s.rmc_invalid == 4 and s.fixes == 0
    # bad time / date / numbers only blank those fields
    p.feed(_s("GPRMC,1235,A,4807.038,N,01131.000,E,x,1.2.3,310294,,"))
    f = p.fix
    assert f is not None and f.time is None and f.utc is None
    assert f.speed_knots is None and f.course is None
    p.feed(_s("GPRMC,123519.,A,4807.038,N,01131.000,E,,,230394,,"))
    assert p.fix.time is None
    p.feed(_s("GPRMC,243519,A,4807.038,N,01131.000,E,,,230394,,"))
    assert p.fix.time is None
    p.feed(_s("GPRMC,123560,A,4807.038,N,01131.000,E,,,290200,,"))   # leap second, leap year
    assert p.fix.utc == (2000, 2, 29, 12, 35, 60, 0)
    p.feed(_s("GPRMC,123519,A,4807.038,N,01131.000,E,,,290201,,"))
    assert p.fix.utc is None and p.fix.time == (12, 35, 19, 0)
    p.feed(_s("GPRMC,123519,A,4807.038,N,01131.000,E,,,010179,,"))
    assert p.fix.utc[0] == 2079
    p.feed(_s("GPRMC,123519,A,4807.038,N,01131.000,E,,,010180,,"))
    assert p.fix.utc[0] == 1980
    p.feed(_s("GPRMC,123519.4085,A,4807.038,N,01131.000,E,,,010180,,"))
    assert p.fix.time == (12, 35, 19, 409)                   # half up
    p.feed(_s("GPRMC,123519.9996,A,4807.038,N,01131.000,E,,,010180,,"))
    assert p.fix.time == (12, 35, 19, 999)                   # never 1000
    p.feed(_s("GPRMC,123519.4,A,4807.,N,01131,E,,,010180,,"))
    assert p.fix.time[3] == 400 and p.fix.lat_e7 == 481166667 and p.fix.lon_e7 == 115166667
    # GGA with empty fields merges what it has
    p.feed(_s("GPGGA,123519.4,,,,,,,,,M,,M,,"))
    assert p.fix.gga and p.fix.quality == 1 and p.fix.sats is None and p.fix.hdop is None
    assert s.internal_errors == 0
    assert s.sentences == s.checksum_ok + s.checksum_bad + s.checksum_missing + s.overlong


def case_framing_rules(nmea):
    p = nmea.NMEAParser()
    p.feed(b"#" + _s(RMC_A))                       # comment line: skipped whole
    p.feed(b"\r#" + _s(RMC_A))                     # not a comment ('#' not first)
    p.feed(b"junk#" + _s(RMC_A))                   # fragment then a sentence
    p.feed(_s(RMC_A)[:-1] + _s(RMC_A))             # CR mid-line: 1st is missing
    p.feed(b"$\r\n$$\n")                           # stray starts only
    p.feed(_s("PGRMC,123519,A") + _s("PXRMC,1,A") + b"!" + _s(RMC_A)[1:])
    s = p.stats
    assert s.stray == 3
    assert s.rmc_valid == 3, s.as_dict()           # proprietary and '!' ignored
    assert s.checksum_missing == 1 and s.checksum_ok == 6 and s.sentences == 7


def case_pop_fix_queue(nmea):
    p = nmea.NMEAParser(queue=3)
    for i in range(5):
        p.feed(_s(RMC_A.replace("123519.00", "12351%d.00" % i)))
    assert p.stats.fixes == 5 and p.stats.fix_dropped == 2
    assert [p.pop_fix().seq for _ in range(3)] == [3, 4, 5]
    assert p.pop_fix() is None and p.fix.seq == 5
    q0 = nmea.NMEAParser(queue=0)
    assert q0.feed(_s(RMC_A)) == 1 and q0.pop_fix() is None and q0.fix is not None


def case_flush_and_junk_types(nmea):
    p = nmea.NMEAParser()
    line = _s(RMC_A).rstrip()
    assert p.feed(line) == 0
    assert p.flush() == 1 and p.flush() == 0
    assert p.feed(b"") == 0 and p.feed("") == 0
    assert p.feed(_s(RMC_A).decode()) == 1         # str is accepted too
    assert p.feed(bytes(range(256)) * 4) == 0
    assert p.stats.internal_errors == 0


def case_mode_n_or_e_is_no_fix(nmea):
    # NMEA 2.3 mode N ("data not valid") or E (estimated: dead reckoning, which u-blox
    # sends with status A, extrapolating her last speed after the sky is lost) with
    # status A: no fix. Mode A/D and NMEA 4.1's navigational status V (u-blox sends it
    # with every fix: "no navigational status information") are fixes.
    p = nmea.NMEAParser()
    assert p.feed(_s(RMC_A + ",N")) == 0 and p.fix is None
    assert p.feed(_s(RMC_A + ",E,V")) == 0 and p.fix is None
    assert p.stats.rmc_invalid == 2 and p.stats.rmc_valid == 0
    for tail in (",A", ",D", ",A,V", ",,V", ""):
        assert p.feed(_s(RMC_A + tail)) == 1, tail
    assert p.stats.rmc_valid == 5


def case_gga_no_fix_or_estimated_makes_the_fix_invalid(nmea):
    # a receiver without the RMC mode field (NMEA 2.2, SiRF) says dead reckoning only in
    # GGA's quality 6; quality 0 is no fix. Either order within the epoch.
    for q, valid in (("0", False), ("6", False), ("1", True), ("2", True), ("", True)):
        gga = GGA_1.replace(",2,08,", ",%s,08," % q)
        for stream in (_s(RMC_A) + _s(gga), _s(gga) + _s(RMC_A)):
            p = nmea.NMEAParser()
            p.feed(stream)
            assert p.fix.gga and p.fix.valid is valid, (q, stream)


def case_zero_zero_is_no_position(nmea):
    # "$GPRMC,000000.00,A,0.000,N,0.000,E,..." (wellenvogel/esp32-nmea2000#38): a
    # placeholder, not her position (the Gulf of Guinea); a fix on one axis is kept.
    p = nmea.NMEAParser()
    for body in ("GPRMC,000000.00,A,0.000,N,0.000,E,0.0,0.0,050505,0.0,E",
                 "GPRMC,123519,A,0000.0000,S,00000.0000,W,,,230394,,"):
        assert p.feed(_s(body)) == 0, body
    assert p.stats.rmc_nopos == 2 and p.fix is None
    assert p.feed(_s("GPRMC,123519,A,0000.0000,N,01131.000,E,,,230394,,")) == 1
    assert p.feed(_s("GPRMC,123520,A,4807.038,N,00000.000,W,,,230394,,")) == 1


def case_a_date_with_a_broken_year_is_no_date(nmea):
    # a Telit after the 2019 week rollover (data/nmea/april6_2019.log, line 15) sent year
    # "-1": read as 1999, a made-up date; the fix itself stands
    p = nmea.NMEAParser()
    assert p.feed(b"$GPRMC,000231.099,A,4829.0005,N,00022.0015,E,0.15,212.28,2208-1,,,A*73\r\n") == 1
    assert p.fix.utc is None
    assert p.feed(_s("GPRMC,123519,A,4807.038,N,01131.000,E,,,2303x4,,")) == 1 and p.fix.utc is None


def case_deg_str(nmea):
    d = nmea.deg_str
    assert d(0) == "0.000000" and d(5) == "0.000001" and d(-5) == "-0.000001"
    assert d(-4) == "0.000000" and d(1213142285) == "121.314229" and d(-1213142285) == "-121.314229"
    assert d(481173000, 3) == "48.117" and d(481173000, 0) == "48" and d(-7, 7) == "-0.0000007"


CASES = [f for n, f in sorted(globals().items()) if n.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__[5:])
def test_unit_case_cpython(case):
    case(nmea)


def test_unit_cases_on_micropython(mpy):
    src = inspect.getsource(_s) + "\n"
    src += "RMC_A = %r\nRMC_SW = %r\nGGA_1 = %r\n" % (RMC_A, RMC_SW, GGA_1)
    src += "\n".join(inspect.getsource(f) for f in CASES)
    src += """
import json, nmea
res = {}
for name, fn in %s:
    try:
        fn(nmea)
        res[name] = 'ok'
    except Exception as e:
        res[name] = '%%s: %%s' %% (type(e).__name__, e)
print(json.dumps(res))
""" % ("[" + ", ".join("(%r, %s)" % (f.__name__, f.__name__) for f in CASES) + "]")
    res = mpy.json(src)
    assert res == {f.__name__: "ok" for f in CASES}


def test_a_wrong_checksum_would_fail_the_capture_test(expected):
    """Guard against a vacuous suite: corrupting one RMC's checksum in a real
    capture changes checksum_bad and rmc_valid away from expected.json."""
    data = (NMEA_DIR / "bu353s4.log").read_bytes()
    i = data.index(b"$GPRMC")
    j = data.index(b"*", i)
    wrong = b"%02X" % (int(data[j + 1:j + 3], 16) ^ 0x55)
    p = nmea.NMEAParser(queue=0)
    p.feed(data[:j + 1] + wrong + data[j + 3:])
    exp = expected["bu353s4.log"]
    assert p.stats.checksum_bad == exp["checksum_bad"] + 1
    assert p.stats.rmc_valid == exp["rmc_valid"] - 1


def test_no_allocation_per_byte_on_micropython(mpy):
    """Sentences that produce no fix, and junk, allocate (almost) nothing."""
    code = """
import gc, nmea
p = nmea.NMEAParser(queue=0)
gsv = b'$GPGSV,4,1,15,02,11,115,36,05,34,060,48,07,00,023,,13,56,090,49*71\\r\\n'
rmc_v = b'$GPRMC,012527.562,V,4131.7353,N,09336.8150,W,0.00,,050405,,*18\\r\\n'
junk = bytes(range(256))
block = gsv * 20 + rmc_v * 20 + junk * 4 + b'$' + b'9' * 2000 + b'\\n'
p.feed(block)
gc.collect(); gc.disable()
a0 = gc.mem_alloc()
for i in range(10):
    p.feed(block)
used = gc.mem_alloc() - a0
gc.enable()
print(used, len(block) * 10, p.stats.sentences, p.stats.rmc_invalid, p.stats.overlong)
"""
    used, nbytes, sentences, rmc_inv, overlong = map(int, mpy.run(code).split())
    assert nbytes > 50000 and rmc_inv == 220 and overlong >= 11 and sentences > 400
    assert used < 64 * 10  # a few small objects per feed() call, nothing per byte


# --------------------------------------------------------------------------
# fuzzing
# --------------------------------------------------------------------------
_CAND = re.compile(rb"[$!]")
_CS = re.compile(rb"\*([0-9A-Fa-f]{2})$")


def reference_counts(data: bytes, cap: int):
    """The framing/checksum rules of expected.json `_definitions`, written
    independently of the parser (whole-input, regex based)."""
    c = dict(sentences=0, checksum_ok=0, checksum_bad=0, checksum_missing=0,
             overlong=0, stray=0, rmc_valid=0)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        line = line.rstrip(b"\r")
        if line.startswith(b"#"):
            continue
        idx = [m.start() for m in _CAND.finditer(line)]
        for a, b in zip(idx, idx[1:] + [len(line)]):
            cand = line[a:b]
            if len(cand) == 1:
                c["stray"] += 1
                continue
            c["sentences"] += 1
            if len(cand) > cap:
                c["overlong"] += 1
                continue
            m = _CS.search(cand)
            if not m:
                c["checksum_missing"] += 1
                continue
            x = 0
            for ch in cand[1:m.start()]:
                x ^= ch
            if x != int(m.group(1), 16):
                c["checksum_bad"] += 1
                continue
            c["checksum_ok"] += 1
            t = cand[1:3]
            if (cand[:1] == b"$" and cand[3:7] == b"RMC," and re.fullmatch(rb"[A-Za-z0-9_]{2}", t)
                    and t[:1] not in (b"P", b"p") and cand.count(b"*") == 1
                    and cand[7:m.start()].split(b",")[1:2] == [b"A"]):
                c["rmc_valid"] += 1
    return c


def feed_chunked(data, cuts, **kw):
    p = nmea.NMEAParser(**kw)
    pos = 0
    n = 0
    for cut in sorted(cuts):
        n += p.feed(data[pos:cut])
        pos = cut
    n += p.feed(data[pos:])
    n += p.flush()
    return p, n


def check_invariants(p, n):
    s = p.stats
    assert s.internal_errors == 0
    assert s.sentences == s.checksum_ok + s.checksum_bad + s.checksum_missing + s.overlong
    assert s.rmc_valid + s.rmc_invalid + s.gga <= s.checksum_ok
    assert s.fixes == n == s.rmc_valid - s.rmc_nopos
    assert len(p._buf) == 128
    if s.fixes:
        f = p.fix
        assert f.seq == s.fixes and -90 <= f.lat <= 90 and -180 <= f.lon <= 180
        assert abs(f.lat_e7 / 1e7 - f.lat) < 1e-7 and abs(f.lon_e7 / 1e7 - f.lon) < 1e-7
    else:
        assert p.fix is None


def stats_subset(p):
    d = p.stats.as_dict()
    return {k: d[k] for k in ("sentences", "checksum_ok", "checksum_bad", "checksum_missing",
                              "overlong", "stray", "rmc_valid")}


SAMPLE_LINES = []
for _log in ("telit-he910.log", "isync.log", "st-teseo-liv4f.log", "magellan-ec10.log",
             "unicore-um621.log", "holux-gm-210.log"):
    _lines = (NMEA_DIR / _log).read_bytes().split(b"\n")
    SAMPLE_LINES += [l + b"\n" for l in _lines[:: max(1, len(_lines) // 40)] if l]

# text made of NMEA's own alphabet finds far more framing corner cases than
# uniform bytes
nmea_alphabet = st.sampled_from(list(b"$!*#\r\n,.0123456789ABCDEFabcdefNSEWGPRMC") + [0, 0xFF, ord("V")])
nmea_text = st.lists(nmea_alphabet, max_size=400).map(bytes)
cuts = st.lists(st.integers(0, 2000), max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=600), nmea_text), cut=cuts)
def test_fuzz_random_bytes(data, cut):
    p, n = feed_chunked(data, [c for c in cut if c <= len(data)])
    check_invariants(p, n)
    assert stats_subset(p) == reference_counts(data, 128)
    whole, _ = feed_chunked(data, [])
    assert whole.stats.as_dict() == p.stats.as_dict()


@st.composite
def mutated_log(draw):
    lines = draw(st.lists(st.sampled_from(SAMPLE_LINES), min_size=1, max_size=12))
    data = bytearray(b"".join(lines))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[i] = draw(st.sampled_from(list(b"$!*,.\r\n#-9AN") + [draw(st.integers(0, 255))]))
        elif kind == "insert":
            data[i:i] = draw(st.sampled_from([b"$", b"!", b"*", b"\n", b"\r", b",", b"999999", b"$GPRMC,"]))
        elif kind == "delete" and data:
            del data[i:i + draw(st.integers(1, 20))]
        elif kind == "dup":
            j = draw(st.integers(i, len(data)))
            data[j:j] = data[i:j][:200]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_log(), cut=cuts)
def test_fuzz_mutated_real_sentences(data, cut):
    p, n = feed_chunked(data, [c for c in cut if c <= len(data)], queue=4)
    check_invariants(p, n)
    assert stats_subset(p) == reference_counts(data, 128)


def test_random_bytes_on_micropython(mpy, tmp_path):
    """A few KB of random bytes (with NMEA-ish bursts) on MicroPython: no
    exception, and exactly the CPython result."""
    rng = random.Random(1234)
    parts = []
    for _ in range(300):
        r = rng.random()
        if r < 0.4:
            parts.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))))
        elif r < 0.8:
            parts.append(bytes(rng.choice(b"$!*#\r\n,.0123456789ABCDEFNSEWGPRMCA") for _ in range(rng.randint(0, 40))))
        else:
            line = bytearray(rng.choice(SAMPLE_LINES))
            if line and rng.random() < 0.5:
                line[rng.randrange(len(line))] = rng.getrandbits(8)
            parts.append(bytes(line))
    data = b"".join(parts)
    assert len(data) > 4000
    path = tmp_path / "random.bin"
    path.write_bytes(data)
    out = mpy.json("""
import json, nmea
res = []
for cs in (1, 13, 512):
    p = nmea.NMEAParser(queue=2)
    n = 0
    with open(%r, 'rb') as f:
        while True:
            b = f.read(cs)
            if not b:
                break
            n += p.feed(b)
            while p.pop_fix():
                pass
    n += p.flush()
    res.append([n, p.stats.as_dict(), p.fix.as_dict() if p.fix else None])
print(json.dumps(res))
""" % str(path))
    p, n = feed_chunked(data, [])
    check_invariants(p, n)
    for mp_n, mp_stats, mp_fix in out:
        mp_stats.pop("fix_dropped")
        want = p.stats.as_dict()
        want.pop("fix_dropped")
        assert mp_n == n and mp_stats == want
        assert (mp_fix is None) == (p.fix is None)
        if mp_fix:
            assert (mp_fix["lat_e7"], mp_fix["lon_e7"]) == (p.fix.lat_e7, p.fix.lon_e7)
    assert sum(mp_stats[k] for k in ("checksum_ok", "checksum_bad", "checksum_missing")) > 50


def test_pop_latest_drains_the_queue_and_keeps_the_newest(mpy):
    out = mpy.json("""
import json
from nmea import NMEAParser
p = NMEAParser()
for s in ("$GPRMC,120000.00,A,2152.9404,N,10217.4858,W,0.0,0.0,271126,,,A*7D",
          "$GPRMC,120001.00,A,2152.9405,N,10217.4858,W,0.0,0.0,271126,,,A*7D"):
    body = s[1:s.index("*")]
    x = 0
    for c in body:
        x ^= ord(c)
    p.feed((s[:s.index("*") + 1] + "%02X" % x + "\\r\\n").encode())
f = p.pop_latest()
print(json.dumps([f.time[2] if f else None, p.pop_latest() is None, p.pop_fix() is None]))
""")
    assert out == [1, True, True]


# --------------------------------------------------------------------------
# property: an epoch becomes a usable fix (fix.valid) only when the receiver
# itself says it has a real one, whatever talker, field layout or chunking
# --------------------------------------------------------------------------
@st.composite
def epoch(draw):
    talker = draw(st.sampled_from(["GP", "GN", "GL", "GA", "GB", "BD"]))
    status = draw(st.sampled_from(["A", "V"]))
    # no mode field (NMEA 2.2), mode (2.3), mode + navigational status (4.1)
    mode = draw(st.sampled_from(["", ",A", ",D", ",E", ",N", ",A,V", ",E,V", ",N,V", ",D,S"]))
    quality = draw(st.sampled_from(["", "0", "1", "2", "4", "5", "6", None]))  # None: no GGA
    lat = draw(st.sampled_from(["0000.0000", "2152.9404", "0000.0001"]))
    lon = draw(st.sampled_from(["00000.0000", "10217.4860", "00000.0001"]))
    ns, ew = draw(st.sampled_from("NS")), draw(st.sampled_from("EW"))
    rmc = _s("%sRMC,183000.00,%s,%s,%s,%s,%s,0.1,,010625,,%s" % (talker, status, lat, ns, lon, ew, mode))
    out = [rmc]
    if quality is not None:
        gga = _s("%sGGA,183000.00,%s,%s,%s,%s,%s,07,1.2,1880.0,M,-9.4,M,," % (
            talker, lat, ns, lon, ew, quality))
        out.insert(draw(st.integers(0, 1)), gga)
    real = (status == "A" and mode[1:2] not in ("E", "N") and quality not in ("0", "6")
            and not (lat == "0000.0000" and lon == "00000.0000"))
    return b"".join(out), real


@settings(max_examples=300, deadline=None)
@given(ep=epoch(), cut=cuts)
def test_fuzz_only_a_real_fix_is_usable(ep, cut):
    data, real = ep
    p, n = feed_chunked(data, [c for c in cut if c <= len(data)])
    check_invariants(p, n)
    assert (p.fix is not None and p.fix.valid) == real, data
