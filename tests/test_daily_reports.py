"""host/boton/daily_reports.py: the daily status SMS read back, against the firmware's own
formatter (firmware/lib/sms.py daily_status_text, run on CPython): whatever the button
says, the host reads the same fields; anything else is None and a reason, never an
exception."""
import sys

import pytest
from hypothesis import given, settings, strategies as st

from boton.daily_reports import is_daily_report_header, parse_daily_report, why_not
from boton.paths import FIRMWARE

sys.path.insert(0, str(FIRMWARE / "lib"))  # the firmware's modules under CPython
import sms  # noqa: E402

LABEL = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789-", min_size=1, max_size=14)
FW = st.text("abcdefghijklmnopqrstuvwxyz0123456789.+-", max_size=20)
# a version as version.py has it: a cut after a trailing "." could not be told from the end
VERSION = st.just("") | st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}([-+][a-z0-9]{1,6})?", fullmatch=True)
GPS = st.sampled_from(["ok", "gps", "last", "nofix", "off", "mute", None, "weird"])
REASONS = {"not a daily report"} | {f"a daily report cut short or garbled at its {p}" for p in (
    "battery and signal", "GPS", "firmware, alerts and uptime", "log head")}
GPS_STATE = {"ok": "ok", "gps": "ok", "last": "no_fix", "nofix": "no_fix", "off": "off",
             "mute": "not_responding", None: "unknown", "weird": "unknown"}


def expected(battery, rssi, gps, sats, fw, alerts, device_id, uptime_h, test, fix_age_s,
             log_head, voice):
    """What the report says, from what daily_status_text was given (its rules, restated)."""
    aged = fix_age_s is not None and gps != "mute"
    state = "last_fix" if aged else GPS_STATE[gps]
    return {
        "label": sms.oneline(device_id, 12) or None,
        "test": test,
        "battery_pct": None if battery is None else min(100, max(0, battery)),
        "signal": rssi if rssi is not None and 0 <= rssi <= 31 else None,
        "voice": False if voice is False else None,
        "gps": state,
        "gps_sats": sats if state == "ok" and sats is not None else None,
        "firmware": sms.oneline(fw, 16) or None,
        "alerts": alerts,
        "uptime_h": uptime_h,
        "log_head": f"{log_head[0]}:{log_head[1][:6]}" if log_head else None,
    }


@settings(max_examples=400, deadline=None)
@given(battery=st.none() | st.integers(-20, 130), rssi=st.none() | st.integers(-5, 120),
       gps=GPS, sats=st.none() | st.integers(0, 24), fw=FW,
       alerts=st.none() | st.integers(0, 999), device_id=LABEL,
       uptime_h=st.none() | st.integers(0, 99999), test=st.booleans(),
       fix_age_s=st.none() | st.integers(-5, 40 * 86400),
       log_head=st.none() | st.tuples(st.integers(0, 99999), st.text("0123456789abcdef", min_size=16,
                                                                      max_size=16)),
       voice=st.sampled_from([None, True, False]))
def test_every_report_the_firmware_makes_reads_back_the_same(**kw):
    text = sms.daily_status_text(**kw)
    assert len(text) <= 160
    got = parse_daily_report(text)
    assert got is not None, text
    age = got.pop("gps_fix_age_s")
    assert got == expected(**kw), text
    if got["gps"] == "last_fix":
        # the age as fmt_age rounds it down: read back, it prints the same
        assert sms.fmt_age(age) == sms.fmt_age(kw["fix_age_s"]) and age <= max(0, kw["fix_age_s"])
    else:
        assert age is None
    assert why_not(text) is None


def test_the_example_of_the_brief():
    text = sms.daily_status_text(battery=86, rssi=18, gps="last", fix_age_s=3 * 3600 + 600,
                                 fw="0.1.0", alerts=0, device_id="BS-0042", uptime_h=51,
                                 log_head=(57, "a1b2c3d4e5f60718"))
    assert text == ("Boton Seguro BS-0042 reporte diario: Bat 86% Senal 18/31 GPS hace 3h FW 0.1.0 "
                    "Alertas 0 Encendido 51h. Log 57:a1b2c3")
    assert parse_daily_report(text) == {
        "label": "BS-0042", "test": False, "battery_pct": 86, "signal": 18, "voice": None,
        "gps": "last_fix", "gps_sats": None, "gps_fix_age_s": 10800, "firmware": "0.1.0",
        "alerts": 0, "uptime_h": 51, "log_head": "57:a1b2c3"}


@pytest.mark.parametrize("kw, field, value", [
    (dict(test=True), "test", True),
    (dict(voice=False), "voice", False),
    (dict(gps="mute", fix_age_s=600), "gps", "not_responding"),   # a mute GPS: not its fix's age
    (dict(gps="ok", sats=7), "gps_sats", 7),
    (dict(rssi=99), "signal", None),
    (dict(device_id=""), "label", None),
])
def test_the_words_that_matter(kw, field, value):
    base = dict(battery=50, rssi=10, gps="ok", fw="0.1.0", alerts=1, device_id="BS-0001", uptime_h=3)
    text = sms.daily_status_text(**{**base, **kw})
    assert parse_daily_report(text)[field] == value, text


@settings(max_examples=200, deadline=None)
@given(fw=VERSION, device_id=LABEL, alerts=st.integers(0, 999), uptime_h=st.none() | st.integers(0, 9999),
       seq=st.none() | st.integers(0, 99999), gps=GPS, fix_age_s=st.none() | st.integers(0, 10 ** 6))
def test_a_report_cut_short_is_refused_with_a_reason(fw, device_id, alerts, uptime_h, seq, gps, fix_age_s):
    text = sms.daily_status_text(battery=40, rssi=12, gps=gps, fw=fw, alerts=alerts, device_id=device_id,
                                 uptime_h=uptime_h, fix_age_s=fix_age_s,
                                 log_head=None if seq is None else (seq, "0123456789abcdef"))
    whole = parse_daily_report(text)
    for n in range(len(text)):
        cut = text[:n]
        got = parse_daily_report(cut)
        if got is not None:
            # a cut right after a "." reads as a whole report: before the log head (a button
            # that kept no log ends there), or inside the version ("FW 0.1.0" cut to "FW 0.")
            assert cut.rstrip().endswith(".")
            if seq is not None and cut.rstrip() == text[:text.rindex(" Log ")]:
                assert got == {**whole, "log_head": None}
            else:
                assert whole["firmware"].startswith(got["firmware"] + ".")
            continue
        why = why_not(cut)
        if is_daily_report_header(cut):
            assert why.startswith("a daily report cut short or garbled at its "), why
        else:
            assert why == "not a daily report" and n <= text.index("diario: ") + len("diario: ")


@settings(max_examples=300, deadline=None)
@given(body=st.text(max_size=200) | st.binary(max_size=50).map(lambda b: b.decode("latin-1")))
def test_anything_else_is_none_and_a_reason_never_an_exception(body):
    got = parse_daily_report(body)
    if got is None:
        assert why_not(body) in REASONS     # a fixed set: never any of the body


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(0, 200), ch=st.characters(), data=st.data())
def test_a_garbled_report_never_raises(pos, ch, data):
    text = sms.daily_status_text(battery=86, rssi=18, gps="last", fix_age_s=12000, fw="0.1.0",
                                 alerts=2, device_id="BS-0042", uptime_h=51, log_head=(57, "a1b2c3d4e5f60718"))
    pos %= len(text)
    bad = text[:pos] + ch + text[pos + data.draw(st.integers(0, 3)):]
    got = parse_daily_report(bad)
    assert got is None or isinstance(got, dict)
    assert (why_not(bad) is None) == (got is not None)
    assert got is not None or why_not(bad) in REASONS


@pytest.mark.parametrize("body, why", [
    ("Hola, nos vemos a las 5", "not a daily report"),
    ("", "not a daily report"),
    ("ESTADO BS-0042: Bat 86% Senal 18/31 GPS ok FW 0.1.0 Alertas 0 Sin alerta activa.", "not a daily report"),
    ("Boton Seguro BS-0042 reporte diario: Bat 86% Senal", "a daily report cut short or garbled at its battery and signal"),
    ("Boton Seguro BS-0042 reporte diario: Bat 86% Senal 18/31 GPS hace", "a daily report cut short or garbled at its GPS"),
    ("Boton Seguro BS-0042 reporte diario: Bat 86% Senal 18/31 GPS ok FW 0.1.0 Alertas 0 Encendido 51h",
     "a daily report cut short or garbled at its firmware, alerts and uptime"),
    ("Boton Seguro BS-0042 reporte diario: Bat 86% Senal 18/31 GPS ok. Log 57:a1b2", "a daily report cut short or garbled at its log head"),
    ("Boton Seguro BS-0042 reporte diario: Bat 186% Senal 18/31 GPS ok.", "a daily report cut short or garbled at its battery and signal"),
])
def test_reasons_name_the_part_not_the_text(body, why):
    assert parse_daily_report(body) is None
    assert why_not(body) == why
    assert is_daily_report_header(body) == why.startswith("a daily report")


def test_not_a_string_is_not_a_report():
    assert parse_daily_report(None) is None and parse_daily_report(b"Boton Seguro") is None
    assert why_not(None) == "not a daily report"
