# SMS texts for Botón Seguro, sans-IO.
#
# Every text this module builds is safe GSM-7 (see gsm7.py: GSM-7 basic alphabet
# without @ $ _ and the extension characters; accents dropped, ñ kept) and at most
# 160 septets, i.e. exactly one SMS segment.  Spanish text therefore reads
# "Ubicacion", "pidio".
#
#     fmt_coord(deg) / fmt_e7(e7) -> "21.88234"   5 decimals (~1 m), integer rounding
#     maps_link(lat, lon) / maps_link(lat_e7=, lon_e7=) -> str or None
#     alert_text(...), location_text(...), cancel_text(...), status_text(...),
#     low_battery_text(...), daily_status_text(...)   -> str, <= 160 safe septets
#
# The gsm7 helpers are re-exported here: to_gsm7, oneline, is_gsm7, gsm7_septets,
# segments, encode, encode_into, maybe_ucs2, ucs2_ascii.

from gsm7 import (to_gsm7, oneline, is_gsm7, gsm7_septets, segments,  # noqa: F401
                  encode, encode_into, maybe_ucs2, ucs2_ascii)

MAX = 160

# ---------------------------------------------------------------------------
# Formatting

def _e5_str(n):
    sign = "-" if n < 0 else ""
    n = -n if n < 0 else n
    return "%s%d.%05d" % (sign, n // 100000, n % 100000)


def _e7_to_e5(n):
    n = int(n)
    return (n + 50) // 100 if n >= 0 else -((-n + 50) // 100)


def fmt_coord(x):
    # Degrees -> '21.88234' / '-102.29143' (5 decimals, ~1 m), by integer rounding.
    return _e5_str(int(round(x * 100000)))


def fmt_e7(n):
    # 1e-7 degree integer (nmea.Fix.lat_e7) -> 5 decimals, no floats involved
    # (the ESP32 port's single-precision floats are off by ~1e-5 at 100 degrees).
    return _e5_str(_e7_to_e5(n))


def maps_link(lat=None, lon=None, lat_e7=None, lon_e7=None):
    p = _pos(lat, lon, lat_e7, lon_e7)
    if p is None:
        return None
    return _link(p)


def _link(p):
    return "https://maps.google.com/?q=%s,%s" % (_e5_str(p[0]), _e5_str(p[1]))


def _pos(lat, lon, lat_e7=None, lon_e7=None):
    # -> (lat_e5, lon_e5) ints, or None if missing/impossible.
    try:
        if lat_e7 is not None and lon_e7 is not None:
            a, b = _e7_to_e5(lat_e7), _e7_to_e5(lon_e7)
        elif lat is not None and lon is not None:
            a, b = int(round(lat * 100000)), int(round(lon * 100000))
        else:
            return None
    except (TypeError, ValueError, OverflowError):
        return None
    if -9000000 <= a <= 9000000 and -18000000 <= b <= 18000000:
        return (a, b)
    return None


def fmt_age(s):
    s = int(s) if s is not None and s > 0 else 0
    if s < 120:
        return "%ds" % s
    if s < 7200:
        return "%dmin" % (s // 60)
    if s < 172800:
        return "%dh" % (s // 3600)
    return "%dd" % (s // 86400)


def accuracy_m(hdop=None, acc_m=None):
    # Estimated horizontal accuracy in metres: acc_m if given, else HDOP x 5 m
    # (typical civil GPS UERE), at least 3 m.  None if unknown.
    if acc_m is None:
        if hdop is None or hdop <= 0:
            return None
        acc_m = hdop * 5
    a = int(acc_m + 0.5)
    if a < 3:
        a = 3
    if a > 99999:
        a = 99999
    return a


def _cell_txt(cell):
    if not cell:
        return None
    g = cell.get
    parts = []
    for k, name in (("mcc", "MCC"), ("mnc", "MNC"), ("lac", "LAC"), ("tac", "TAC"),
                    ("cellid", "CI"), ("eci", "ECI")):  # GSM; LTE (dialect_a7670)
        v = g(k)
        if v is not None and v != "":
            parts.append("%s %s" % (name, oneline(str(v), 8)))
    return " ".join(parts) if parts else None


def _where(kind, pos, age_s, acc, cell, word=True):
    # Location sentence; acc None omits the accuracy, word=False the "Ubicacion".
    if kind in ("gps", "last") and pos is None:
        kind = "cell" if _cell_txt(cell) else "none"
    if kind == "gps" or kind == "last":
        if kind == "gps":
            w = "Ubicacion GPS" if word else "GPS"
        else:
            w = "Ultima ubicacion"
        if age_s is not None:
            w += " hace " + fmt_age(age_s)
        if acc is not None:
            w += " (+-%dm)" % acc
        return w + ": " + _link(pos)
    if kind == "cell":
        c = _cell_txt(cell)
        if c:
            return "Sin GPS. Celda " + c + "."
    return "Sin ubicacion disponible."


def _dev(device_id):
    return oneline(device_id or "", 12)


def _fit(build, alias, min_alias=8, levels=6):
    # build(level, alias) -> text.  Try increasing drop levels until the text
    # with at least min(len(alias), min_alias) characters of alias fits; then give
    # the alias all the room left.
    need = min(len(alias), min_alias)
    for level in range(levels):
        base = len(build(level, ""))
        room = MAX - base
        if room >= need:
            a = alias[:room].rstrip() if len(alias) > room else alias
            t = build(level, a)
            if len(t) <= MAX:
                return t
    return build(levels - 1, alias[:need])[:MAX]


def _alias(alias):
    a = oneline(alias or "", 40)
    return a if a else "Usuaria"


def _bat(battery):
    if battery is None:
        return ""
    b = int(battery)
    b = 0 if b < 0 else (100 if b > 100 else b)
    return "Bat %d%%" % b


NO_CALL = " No puede llamar al C4: llame al 911."


def alert_text(alias="", kind="none", lat=None, lon=None, age_s=None, hdop=None,
               acc_m=None, battery=None, device_id="", test=False, update=False,
               cell=None, calling_c4=True, lat_e7=None, lon_e7=None, voice=None, unanswered=False):
    # The alert SMS for trusted contacts (one segment).  kind: "gps" (fresh fix),
    # "last" (last known fix, age_s old), "cell" (cell dict: mcc, mnc, lac, cellid; LTE: tac, eci),
    # "none".  Position as float degrees lat/lon or 1e-7 integers lat_e7/lon_e7
    # (preferred on the device).  A gps/last kind without a usable position falls
    # back to the cell, else "none".  update=True: a later location update.
    # voice False: the network carries no call from this button (an LTE SIM without
    # VoLTE where 2G is gone): every alert and update says so, at any length, so that
    # her contacts call 911 themselves.  unanswered: C4 has answered none of her calls
    # yet, and the button is still calling (alerttexts): the same, said as it is.
    pos = _pos(lat, lon, lat_e7, lon_e7)
    alias = _alias(alias)
    acc = accuracy_m(hdop, acc_m)
    dev = _dev(device_id)
    bat = _bat(battery)
    pre = "PRUEBA " if test else ""

    def build(level, a):
        head = pre + ("ACTUALIZACION" if update else "ALERTA")
        head += ": " if level >= 4 else " Boton Seguro: "
        who = a + (". " if update else " pidio ayuda. ")
        t = head + who + _where(kind, pos, age_s, acc if level < 1 else None,
                                cell, level < 2)
        if bat and level < 3:
            t += " " + bat
        if dev and level < 5:  # last to go: "llame al 911" must never be cut
            t += " " + dev + "."
        if calling_c4 and voice is False:
            t += NO_CALL
        elif calling_c4 and unanswered:
            t += " C4 no contesta: llame al 911."  # a literal: one more global costs the heap
        elif calling_c4 and not update and level < 1:
            t += " Llamando al C4."
        return t
    return _fit(build, alias)


def location_text(kind="none", lat=None, lon=None, age_s=None, hdop=None, acc_m=None,
                  battery=None, device_id="", cell=None, test=False, active=False,
                  lat_e7=None, lon_e7=None):
    # Reply to the UBICACION command (arguments as alert_text).
    pos = _pos(lat, lon, lat_e7, lon_e7)
    dev = _dev(device_id)
    bat = _bat(battery)
    acc = accuracy_m(hdop, acc_m)

    def build(level, a):
        t = ("PRUEBA " if test else "") + "UBICACION " + dev + ": "
        t += _where(kind, pos, age_s, acc if level < 1 else None, cell, False)
        if bat and level < 3:
            t += " " + bat
        if level < 2:
            t += " Alerta activa." if active else " Sin alerta activa."
        return t
    return _fit(build, "")


def cancel_text(alias="", device_id="", by="device", test=False, minutes=None,
                advice=True):
    # Alert-ended SMS.  by: "device" (cancel gesture on the button), "c4" (closed
    # by the command centre), "timeout" (automatic tracking ended after `minutes`).
    # advice: add "call 911 if in doubt" (for contacts; a cancel can be coerced).
    alias = _alias(alias)
    dev = _dev(device_id)
    pre = "PRUEBA " if test else ""

    def build(level, a):
        t = pre + "Boton Seguro: "
        if by == "timeout":
            # the ending nobody resolved, where her contacts most need the advice: a
            # shorter wording goes first (a 12-character label left no room for it)
            t += ("termino el envio automatico de ubicacion de " if level < 1
                  else "termino el envio de ubicacion de ") + a
            if minutes is not None:
                t += " (%d min)" % int(minutes)
            t += ". La alerta NO fue cancelada por ella." if level < 1 else ". Ella NO la cancelo."
        elif by == "c4":
            t += "la alerta de " + a + " fue cerrada por C4."
        else:
            t += "alerta de " + a + " CANCELADA desde el boton."
        if dev:
            t += " " + dev + "."
        if advice and (level < 1 or by == "timeout" and level < 2):
            t += " Si duda de su seguridad llame al 911."
        return t
    return _fit(build, alias)


def _signal(rssi):
    if rssi is None or rssi < 0 or rssi > 31:
        return "Senal ?"
    return "Senal %d/31" % rssi


def _gps(gps, sats):
    g = {"ok": "GPS ok", "gps": "GPS ok", "last": "GPS sin senal",
         "nofix": "GPS sin senal", "off": "GPS apagado",
         "mute": "GPS no responde"}.get(gps, "GPS ?")  # mute: sends nothing, a fault
    if sats is not None and g == "GPS ok":
        g += " %dsat" % int(sats)
    return g


def _status_body(battery, rssi, gps, sats, fw, alerts, age=None, voice=None):
    t = []
    if battery is not None:
        t.append(_bat(battery))
    t.append(_signal(rssi))
    if voice is False:
        t.append("SIN VOZ")  # SMS only: no call to C4 can go out
    # a GPS that sends nothing is broken: that, not its last fix's age
    t.append(_gps(gps, sats) if age is None or gps == "mute" else "GPS hace " + fmt_age(age))
    if fw:
        t.append("FW " + oneline(str(fw), 16))
    if alerts is not None:
        t.append("Alertas %d" % int(alerts))
    return " ".join(t)


def status_text(battery=None, rssi=None, gps=None, fw="", alerts=0, device_id="",
                active=False, sats=None, test=False, voice=None, fix_age_s=None):
    # Reply to ESTADO.  gps: "ok" | "nofix" | "mute" | "off"; rssi: AT+CSQ 0..31 (99 unknown);
    # voice False: "SIN VOZ" (no call to C4 can go out); fix_age_s: how old the last fix
    # is, as the daily report says it (between alerts the GPS rests: "sin senal" is wrong).
    t = ("PRUEBA " if test else "") + "ESTADO " + _dev(device_id) + ": "
    t += _status_body(battery, rssi, gps, sats, fw, alerts, fix_age_s, voice)
    t += " Alerta activa." if active else " Sin alerta activa."
    return oneline(t)[:MAX]


def daily_status_text(battery=None, rssi=None, gps=None, fw="", alerts=0, device_id="",
                      sats=None, uptime_h=None, test=False, fix_age_s=None, log_head=None,
                      voice=None):
    # Daily heartbeat SMS to the programme's number.  Never her position: only how old
    # the last fix is (fix_age_s -> "GPS hace 3h"; None or gps "mute" -> the gps word as
    # status_text).
    # alerts: alerts since the previous report; uptime_h: hours since the last reset.
    # log_head: (seq, hex) of the event log's last entry -> " Log 57:a1b2c3", kept whole
    # at the end: the programme can later hold the device's log against it (a rewritten
    # log no longer has that entry; boton.eventlog_check.check_sms_log_head).
    # voice False: "SIN VOZ", the button can send SMS but cannot call C4.
    t = ("PRUEBA " if test else "") + "Boton Seguro " + _dev(device_id) + \
        " reporte diario: " + _status_body(battery, rssi, gps, sats, fw, alerts, fix_age_s,
                                           voice)
    if uptime_h is not None:
        t += " Encendido %dh" % int(uptime_h)
    t = oneline(t + ".")
    if not log_head:
        return t[:MAX]
    tail = " Log %d:%s" % (int(log_head[0]), oneline(str(log_head[1]))[:6])
    return t[:MAX - len(tail)] + tail


def low_battery_text(alias="", battery=None, device_id="", test=False, active=False):
    # Low-battery warning. active: in the middle of her alert, where "cargue el boton" read
    # as if all were calm: it says the alert goes on and the updates may stop.
    alias = _alias(alias)
    dev = _dev(device_id)

    def build(level, a):
        t = ("PRUEBA " if test else "") + "Boton Seguro " + dev
        t += " de " + a + ": bateria baja"
        if battery is not None:
            t += " (%s)" % _bat(battery)[4:]
        if active:
            t += ". La alerta sigue activa; el boton puede apagarse pronto."
        else:
            t += ". Por favor cargue el boton pronto; sin bateria no puede pedir ayuda."
        return t
    return _fit(build, alias)
