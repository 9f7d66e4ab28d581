"""The daily status SMS a button sends to the programme's number, read back: pure, no I/O.

The firmware builds it in firmware/lib/sms.py (daily_status_text and its helpers
_status_body, _bat, _signal, _gps, fmt_age). Its grammar, one line, at most 160 GSM-7
characters, items in this order, those in [] present only when the button knows them:

    [PRUEBA ]Boton Seguro LABEL reporte diario: [Bat N%] Senal N/31|? [SIN VOZ]
        GPS ok[ Nsat]|GPS sin senal|GPS apagado|GPS no responde|GPS ?|GPS hace AGE
        [FW VERSION] [Alertas N] [Encendido Nh].[ Log SEQ:HEX6]

AGE is fmt_age's: "45s" (under 2 min), "12min" (under 2 h), "3h" (under 2 days), "5d".
LABEL is the button's label (at most 12 characters; none if the config had none).

parse_daily_report(body) -> a dict of the report's fields, or None when the body is not a
whole daily report; why_not(body) says in a few words why not, never quoting the body
(an SMS on the programme's phone that is not a report may be anybody's).
"""
import re

# fmt_age's units, in seconds
_AGE_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}

# The GPS words of sms._gps, and what the report calls them.
GPS_WORDS = {"ok": "ok", "sin senal": "no_fix", "apagado": "off", "no responde": "not_responding",
             "?": "unknown"}

# The report, piece by piece, each named for why_not: read in turn, each where the one
# before it ended (the "." ends the body or comes before its log head).
_PIECES = [(name, re.compile(p)) for name, p in (
    ("its header", r"(?P<test>PRUEBA )?Boton Seguro (?:(?P<label>[^ ]{1,12}) )?reporte diario: "),
    ("its battery and signal", r"(?:Bat (?P<bat>100|[1-9]?\d)% )?Senal (?:(?P<rssi>3[01]|[12]?\d)/31|\?)"),
    ("its GPS", r"(?P<novoice> SIN VOZ)? GPS (?:hace (?P<age>\d{1,6})(?P<unit>s|min|h|d)"
                r"|(?P<ok>ok)(?: (?P<sats>\d{1,3})sat)?|(?P<gps>sin senal|apagado|no responde|\?))"),
    ("its firmware, alerts and uptime",
     r"(?: FW (?P<fw>[^ ].{0,15}?))?(?: Alertas (?P<alerts>\d{1,6}))?(?: Encendido (?P<up>\d{1,7})h)?"
     r"\.(?= Log |\Z)"),
    ("its log head", r"(?: Log (?P<seq>\d{1,9}):(?P<hex>[0-9a-fA-F]{6}))?\Z"),
)]


def _read(body):
    """(groups, None) of a whole report, or (None, the name of the piece that does not read)."""
    if not isinstance(body, str):
        return None, None
    text, pos, groups = body.strip(), 0, {}
    for name, piece in _PIECES:
        m = piece.match(text, pos)
        if m is None:
            return None, name
        groups.update(m.groupdict())
        pos = m.end()
    return groups, None


def parse_daily_report(body):
    """The fields of one daily status SMS, or None if `body` is not a whole one:

    label (str or None), test (bool: PRUEBA, a button in test mode), battery_pct (0-100 or
    None: not reported), signal (0-31, None: "Senal ?"), voice (False: "SIN VOZ", the button
    cannot call C4; None: not said), gps ("ok", "no_fix", "last_fix", "off",
    "not_responding", "unknown"), gps_sats (with "ok", if said), gps_fix_age_s (with
    "last_fix": the age of the last fix, rounded down as fmt_age shows it, e.g. "3h" ->
    10800), firmware (str or None), alerts (alerts since the previous report, or None),
    uptime_h (hours since the button's last reset, or None), log_head ("57:a1b2c3", as
    `boton logs --sms-head` takes it, or None)."""
    groups, _ = _read(body)
    if groups is None:
        return None
    g = groups.get
    bat = int(g("bat")) if g("bat") is not None else None
    rssi = int(g("rssi")) if g("rssi") is not None else None
    if g("age") is not None:
        gps, age = "last_fix", int(g("age")) * _AGE_UNITS[g("unit")]
    else:
        gps, age = GPS_WORDS[g("ok") or g("gps")], None
    return {
        "label": g("label"),
        "test": bool(g("test")),
        "battery_pct": bat,
        "signal": rssi,
        "voice": False if g("novoice") else None,
        "gps": gps,
        "gps_sats": int(g("sats")) if g("sats") is not None else None,
        "gps_fix_age_s": age,
        "firmware": g("fw"),
        "alerts": int(g("alerts")) if g("alerts") is not None else None,
        "uptime_h": int(g("up")) if g("up") is not None else None,
        "log_head": f"{int(g('seq'))}:{g('hex').lower()}" if g("seq") is not None else None,
    }


def is_daily_report_header(body):
    """Does `body` begin as a daily report does (whether or not the rest reads)?"""
    return isinstance(body, str) and _PIECES[0][1].match(body.strip()) is not None


def why_not(body):
    """None if `body` is a whole daily report; else why not, in a few words that never
    quote it: "not a daily report", or the first part of a report that is cut short or
    garbled ("a daily report cut short or garbled at its GPS")."""
    groups, failed = _read(body)
    if groups is not None:
        return None
    if failed in (None, "its header"):
        return "not a daily report"
    return f"a daily report cut short or garbled at {failed}"
