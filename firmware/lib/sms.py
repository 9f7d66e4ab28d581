"""SMS texts for Botón Seguro, sans-IO.

Every text this module builds is "safe GSM-7": only characters of the GSM 03.38
basic alphabet that every phone shows correctly - printable ASCII without
@ $ _ ` [ ] { } \\ ^ ~ | (they map to odd codes or the escape table), plus ñ Ñ -
and at most 160 septets, i.e. exactly one SMS segment.  Accents are dropped
(á->a, é->e, ü->u ...), so Spanish text reads "Ubicacion", "pidio".

Public API
    to_gsm7(text) -> str            transliterate to safe GSM-7 ("\\n" kept)
    is_gsm7(text) -> bool           encodable in GSM-7 (basic + extension table)
    gsm7_septets(text) -> int|None  septets (extension chars count 2), None if not GSM-7
    segments(text) -> int           SMS segments (GSM-7 160/153, else UCS-2 70/67)
    encode(text, charset="GSM") -> bytes   bytes to type after the text-mode prompt
    maybe_ucs2(text) -> str         decode a UCS-2 hex body ("0055004200..."), else as is
    fmt_coord(deg) / fmt_e7(e7) -> "21.88234"   5 decimals (~1 m), integer rounding
    maps_link(lat, lon) / maps_link(lat_e7=, lon_e7=) -> str or None
    alert_text(...), location_text(...), cancel_text(...), status_text(...),
    low_battery_text(...), daily_status_text(...)   -> str, <= 160 safe septets
"""

MAX = 160

# GSM 03.38 default alphabet, code point order 0x00..0x7F.
GSM7_BASIC = ("@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
              "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
              " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
              "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
              "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0")
# Extension table (ESC + code): char -> code.
GSM7_EXT_CHARS = "\x0c^{}\\[~]|\u20ac"
GSM7_EXT_CODES = b"\x0a\x14\x28\x29\x2f\x3c\x3d\x3e\x40\x65"

_AVOID = "@$_`[]{}\\^~|"

# Single-character transliterations: _TR_SRC[i] -> _TR_DST[i].
_TR_SRC = ("\u00e1\u00e0\u00e2\u00e4\u00e3\u00e5\u0101\u0105"
           "\u00c1\u00c0\u00c2\u00c4\u00c3\u00c5\u0100\u0104"
           "\u00e9\u00e8\u00ea\u00eb\u0113\u0119\u011b"
           "\u00c9\u00c8\u00ca\u00cb\u0112\u0118\u011a"
           "\u00ed\u00ec\u00ee\u00ef\u012b\u0131"
           "\u00cd\u00cc\u00ce\u00cf\u012a\u0130"
           "\u00f3\u00f2\u00f4\u00f6\u00f5\u00f8\u014d\u0151"
           "\u00d3\u00d2\u00d4\u00d6\u00d5\u00d8\u014c\u0150"
           "\u00fa\u00f9\u00fb\u00fc\u016b\u016f\u0171"
           "\u00da\u00d9\u00db\u00dc\u016a\u016e\u0170"
           "\u00e7\u0107\u010d\u00c7\u0106\u010c\u00fd\u00ff\u00dd"
           "\u0161\u015b\u015f\u0160\u015a\u015e\u017e\u017a\u017c\u017d\u0179\u017b"
           "\u0142\u0141\u0144\u0148\u0143\u0147\u0159\u0158\u0111\u0110\u011f\u011e\u0165\u0164"
           "\u2018\u2019\u201a\u2032\u00b4`\u201c\u201d\u201e\u2033\u00ab\u00bb"
           "\u2010\u2011\u2012\u2013\u2014\u2015\u2212~_\u00b7\u2022"
           "[{]}\\|@$\u00b0\u00ba\u00aa\u00d7\u00f7\u00a0\t\u2009\u202f")
_TR_DST = ("aaaaaaaa"
           "AAAAAAAA"
           "eeeeeee"
           "EEEEEEE"
           "iiiiii"
           "IIIIII"
           "oooooooo"
           "OOOOOOOO"
           "uuuuuuu"
           "UUUUUUU"
           "cccCCCyyY"
           "sssSSSzzzZZZ"
           "lLnnNNrRdDgGtT"
           "''''''\"\"\"\"\"\""
           "---------"
           "--"
           "(())//aSooax/    ")
_TR_MULTI = {"\u20ac": "EUR", "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE",
             "\u0153": "oe", "\u0152": "OE", "\u2026": "...", "\u00a3": "L",
             "\u00a5": "Y", "\u00a7": "S"}


def _safe(ch):
    o = ord(ch)
    if 0x20 <= o < 0x7F:
        return ch not in _AVOID
    return ch == "\u00f1" or ch == "\u00d1" or ch == "\n"


def to_gsm7(text):
    """Transliterate to safe GSM-7 basic: accents dropped (ñ/Ñ kept), @ $ _ and the
    extension characters replaced, CR dropped, other unknown characters
    (emoji, CJK, control) removed."""
    if not text:
        return ""
    out = []
    for ch in text:
        if _safe(ch):
            out.append(ch)
            continue
        i = _TR_SRC.find(ch)
        if i >= 0:
            out.append(_TR_DST[i])
            continue
        m = _TR_MULTI.get(ch)
        if m is not None:
            out.append(m)
    return "".join(out)


def oneline(text, maxlen=None):
    """to_gsm7, newlines to spaces, runs of spaces collapsed, stripped, cut."""
    s = " ".join(to_gsm7(text).replace("\n", " ").split())
    if maxlen is not None and len(s) > maxlen:
        s = s[:maxlen].rstrip()
    return s


def is_gsm7(text):
    for ch in text:
        if GSM7_BASIC.find(ch) < 0 and GSM7_EXT_CHARS.find(ch) < 0:
            return False
    return True


def gsm7_septets(text):
    n = 0
    for ch in text:
        if GSM7_BASIC.find(ch) >= 0:
            n += 1
        elif GSM7_EXT_CHARS.find(ch) >= 0:
            n += 2
        else:
            return None
    return n


def segments(text):
    """Number of SMS segments text needs (concatenated SMS lose 7 septets / 3 UCS-2
    units per segment to the UDH; an escape pair or surrogate pair is never split)."""
    if gsm7_septets(text) is not None:
        units = [1 if GSM7_BASIC.find(ch) >= 0 else 2 for ch in text]
        single, multi = 160, 153
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    seg, used = 1, 0
    for u in units:
        if used + u > multi:
            seg += 1
            used = 0
        used += u
    return seg


def encode(text, charset="GSM"):
    """Bytes to type after the AT+CMGS prompt for the modem's AT+CSCS charset.
    "GSM": GSM 03.38 codes (ñ -> 0x7D, extension chars as ESC pairs); "IRA": ASCII
    (ñ -> n); "8859-1": Latin-1.  Other characters are transliterated with to_gsm7
    first; what is still unencodable becomes '?'.  Never emits Ctrl-Z or ESC alone."""
    out = bytearray()
    for ch in text:
        for c in (ch if _enc1(ch, charset) is not None else (to_gsm7(ch) or "?")):
            b = _enc1(c, charset)
            out.extend(b if b is not None else b"?")
    return bytes(out)


def _enc1(ch, charset):
    o = ord(ch)
    if charset == "GSM":
        i = GSM7_BASIC.find(ch)
        if i >= 0 and i != 0x1B:
            return bytes((i,))
        j = GSM7_EXT_CHARS.find(ch)
        if j >= 0:
            return bytes((0x1B, GSM7_EXT_CODES[j]))
        return None
    if charset == "8859-1":
        return bytes((o,)) if o < 0x100 and o != 0x1A and o != 0x1B else None
    if ch == "\u00f1":
        return b"n"
    if ch == "\u00d1":
        return b"N"
    return bytes((o,)) if o < 0x80 and o != 0x1A and o != 0x1B else None


def maybe_ucs2(text):
    """SIM800 text mode shows UCS-2 messages as hex ("0055004200490043...").  If
    text looks like that (>= 2 chars, all hex, length multiple of 4) decode it."""
    s = text.strip() if text else ""
    if len(s) < 8 or len(s) % 4:
        return text
    try:
        cps = [int(s[i:i + 4], 16) for i in range(0, len(s), 4)]
    except ValueError:
        return text
    out = []
    i = 0
    while i < len(cps):
        c = cps[i]
        if 0xD800 <= c < 0xDC00 and i + 1 < len(cps) and 0xDC00 <= cps[i + 1] < 0xE000:
            c = 0x10000 + ((c - 0xD800) << 10) + (cps[i + 1] - 0xDC00)
            i += 1
        elif 0xD800 <= c < 0xE000:
            c = 0x3F
        out.append(chr(c))
        i += 1
    return "".join(out)


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
    """Degrees -> '21.88234' / '-102.29143' (5 decimals, ~1 m), by integer rounding."""
    return _e5_str(int(round(x * 100000)))


def fmt_e7(n):
    """1e-7 degree integer (nmea.Fix.lat_e7) -> 5 decimals, no floats involved
    (the ESP32 port's single-precision floats are off by ~1e-5 at 100 degrees)."""
    return _e5_str(_e7_to_e5(n))


def maps_link(lat=None, lon=None, lat_e7=None, lon_e7=None):
    p = _pos(lat, lon, lat_e7, lon_e7)
    if p is None:
        return None
    return _link(p)


def _link(p):
    return "https://maps.google.com/?q=%s,%s" % (_e5_str(p[0]), _e5_str(p[1]))


def _pos(lat, lon, lat_e7=None, lon_e7=None):
    """-> (lat_e5, lon_e5) ints, or None if missing/impossible."""
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
    """Estimated horizontal accuracy in metres: acc_m if given, else HDOP x 5 m
    (typical civil GPS UERE), at least 3 m.  None if unknown."""
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
    for k, name in (("mcc", "MCC"), ("mnc", "MNC"), ("lac", "LAC"), ("cellid", "CI")):
        v = g(k)
        if v is not None and v != "":
            parts.append("%s %s" % (name, oneline(str(v), 8)))
    return " ".join(parts) if parts else None


def _where(kind, pos, age_s, acc, cell, word=True):
    """Location sentence; acc None omits the accuracy, word=False the "Ubicacion"."""
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
    """build(level, alias) -> text.  Try increasing drop levels until the text
    with at least min(len(alias), min_alias) characters of alias fits; then give
    the alias all the room left."""
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


def alert_text(alias="", kind="none", lat=None, lon=None, age_s=None, hdop=None,
               acc_m=None, battery=None, device_id="", test=False, update=False,
               cell=None, calling_c4=True, lat_e7=None, lon_e7=None):
    """The alert SMS for trusted contacts (one segment).  kind: "gps" (fresh fix),
    "last" (last known fix, age_s old), "cell" (cell dict: mcc, mnc, lac, cellid),
    "none".  Position as float degrees lat/lon or 1e-7 integers lat_e7/lon_e7
    (preferred on the device).  A gps/last kind without a usable position falls
    back to the cell, else "none".  update=True: a later location update."""
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
        if dev:
            t += " " + dev + "."
        if calling_c4 and not update and level < 1:
            t += " Llamando al C4."
        return t
    return _fit(build, alias)


def location_text(kind="none", lat=None, lon=None, age_s=None, hdop=None, acc_m=None,
                  battery=None, device_id="", cell=None, test=False, active=False,
                  lat_e7=None, lon_e7=None):
    """Reply to the UBICACION command (arguments as alert_text)."""
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
    """Alert-ended SMS.  by: "device" (cancel gesture on the button), "c4" (closed
    by the command centre), "timeout" (automatic tracking ended after `minutes`).
    advice: add "call 911 if in doubt" (for contacts; a cancel can be coerced)."""
    alias = _alias(alias)
    dev = _dev(device_id)
    pre = "PRUEBA " if test else ""

    def build(level, a):
        t = pre + "Boton Seguro: "
        if by == "timeout":
            t += "termino el envio automatico de ubicacion de " + a
            if minutes is not None:
                t += " (%d min)" % int(minutes)
            t += ". La alerta NO fue cancelada por ella."
        elif by == "c4":
            t += "la alerta de " + a + " fue cerrada por C4."
        else:
            t += "alerta de " + a + " CANCELADA desde el boton."
        if dev:
            t += " " + dev + "."
        if advice and level < 1:
            t += " Si duda de su seguridad llame al 911."
        return t
    return _fit(build, alias)


def _signal(rssi):
    if rssi is None or rssi < 0 or rssi > 31:
        return "Senal ?"
    return "Senal %d/31" % rssi


def _gps(gps, sats):
    g = {"ok": "GPS ok", "gps": "GPS ok", "last": "GPS sin senal",
         "nofix": "GPS sin senal", "off": "GPS apagado"}.get(gps, "GPS ?")
    if sats is not None and g == "GPS ok":
        g += " %dsat" % int(sats)
    return g


def _status_body(battery, rssi, gps, sats, fw, alerts):
    t = []
    if battery is not None:
        t.append(_bat(battery))
    t.append(_signal(rssi))
    t.append(_gps(gps, sats))
    if fw:
        t.append("FW " + oneline(str(fw), 16))
    if alerts is not None:
        t.append("Alertas %d" % int(alerts))
    return " ".join(t)


def status_text(battery=None, rssi=None, gps=None, fw="", alerts=0, device_id="",
                active=False, sats=None, test=False):
    """Reply to ESTADO.  gps: "ok" | "nofix" | "off"; rssi: AT+CSQ 0..31 (99 unknown)."""
    t = ("PRUEBA " if test else "") + "ESTADO " + _dev(device_id) + ": "
    t += _status_body(battery, rssi, gps, sats, fw, alerts)
    t += " Alerta activa." if active else " Sin alerta activa."
    return oneline(t)[:MAX]


def daily_status_text(battery=None, rssi=None, gps=None, fw="", alerts=0, device_id="",
                      sats=None, uptime_h=None, test=False):
    """Daily heartbeat SMS."""
    t = ("PRUEBA " if test else "") + "Boton Seguro " + _dev(device_id) + \
        " reporte diario: " + _status_body(battery, rssi, gps, sats, fw, alerts)
    if uptime_h is not None:
        t += " Encendido %dh" % int(uptime_h)
    return oneline(t + ".")[:MAX]


def low_battery_text(alias="", battery=None, device_id="", test=False):
    """Low-battery warning."""
    alias = _alias(alias)
    dev = _dev(device_id)

    def build(level, a):
        t = ("PRUEBA " if test else "") + "Boton Seguro " + dev
        t += " de " + a + ": bateria baja"
        if battery is not None:
            t += " (%s)" % _bat(battery)[4:]
        t += ". Por favor cargue el boton pronto; sin bateria no puede pedir ayuda."
        return t
    return _fit(build, alias)
