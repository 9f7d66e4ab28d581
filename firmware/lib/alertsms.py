# Small pure helpers of the alert machine: phone numbers (canon, same_number, mask),
# the SMS command PIN, fixes, SMS command words.  The host reads some of them too
# (boton.pin, boton.hil.refmodem), so that both sides decide alike.

import sms
import hashlib
import binascii


def digits(s):
    return "".join(c for c in (s or "") if c.isdigit())


def canon(number, cc="52"):
    # A number as the config holds it or as the SIM800 reports a sender (+CLIP,
    # +CMGR) -> "+<country code><national number>"; short codes (911) -> their
    # digits.  Mexican networks present one sender as "+52449...", "+521449..."
    # (the mobile "1" dropped in 2019), "449..." or "044/045/01 449..." (old trunk
    # prefixes); a national form takes the device's own country code cc.  A number
    # written with another country code stays that number: +1 449... is not +52 449...
    s = (number or "").strip()
    for c in s:
        if not (c.isdigit() or c in "+ -()."):
            # a letter: an alphanumeric sender name ("C4499100000", which anyone can set
            # with a bulk-SMS service), not a number, whatever digits it holds
            return ""
    d = digits(s)
    if s[:1] != "+":
        if d[:2] == "00":               # international access code
            d = d[2:]
        elif not (cc == "52" and len(d) in (12, 13) and d[:2] == "52"):
            if cc == "52" and len(d) == 13 and d[:3] in ("044", "045"):
                d = d[3:]
            elif cc == "52" and len(d) == 12 and d[:2] == "01":
                d = d[2:]
            elif len(d) > 7 and d[0] == "0":
                d = d[1:]               # national trunk prefix
            if len(d) < 7:
                return d                # short code: compared as dialled
            d = cc + d
    if cc == "52" and len(d) == 13 and d[:3] == "521":
        d = "52" + d[3:]
    return "+" + d if d else ""


def same_number(a, b, cc="52"):
    # Full numbers compared after canon(): never by a tail of digits.
    ca = canon(a, cc)
    return ca != "" and ca == canon(b, cc)


def pin_ok(cfg, given):
    # cfg["pin_hash"]: "s$<salt hex>$<hex sha256(salt + PIN)>", written by the host
    # (boton/pin.py), so config.json never holds the PIN itself.  A config from
    # before (plain "pin") keeps working until the device is provisioned again.
    # "" or a malformed hash: no PIN matches (SMS commands off).
    h = str(cfg.get("pin_hash") or "")
    given = str(given or "")
    if h:
        p = h.split("$")
        try:
            want = p[2].lower()
            got = binascii.hexlify(hashlib.sha256(binascii.unhexlify(p[1]) + given.encode())
                                   .digest()).decode()
        except (IndexError, ValueError):
            return False
        if p[0] != "s":
            return False
    else:
        want, got = str(cfg.get("pin") or ""), given
    if not want or len(got) != len(want):
        return False
    x = 0                               # every character compared: no early exit
    for i in range(len(want)):
        x |= ord(want[i]) ^ ord(got[i])
    return x == 0


def mask(number):
    d = digits(number)
    return ("..." + d[-4:]) if len(d) > 4 else (d or "?")


def _get(f, k):
    if isinstance(f, dict):
        return f.get(k)
    return getattr(f, k, None)


def read_fix(f):
    # Fix-like -> [lat_e7, lon_e7, hdop, sats, acc_m] or None (invalid/no position).
    if f is None or _get(f, "valid") is False:
        return None
    a, b = _get(f, "lat_e7"), _get(f, "lon_e7")
    if a is None or b is None:
        lat, lon = _get(f, "lat"), _get(f, "lon")
        if lat is None or lon is None:
            return None
        try:
            a, b = int(round(lat * 10000000)), int(round(lon * 10000000))
        except (TypeError, ValueError, OverflowError):
            return None
    if not (-900000000 <= a <= 900000000 and -1800000000 <= b <= 1800000000):
        return None
    return [a, b, _get(f, "hdop"), _get(f, "sats"), _get(f, "acc_m")]


def command_words(text):
    # 'Ubicación: 1234.' -> ['UBICACION', '1234'] (UCS-2 hex decoded, accents
    # stripped, upper case, punctuation as spaces).
    t = sms.oneline(sms.maybe_ucs2(text or "")).upper()
    return "".join(c if (c.isalpha() or c.isdigit()) else " " for c in t).split()
