# SMS side of the alert machine (mixed into alert.AlertMachine): the outbox,
# rendering of the texts at send time (supervision texts: alertsup.py), and small
# pure helpers (phone numbers, fixes, SMS command words).  Sans-IO; see alert.py
# for the events and actions.

import sms
import hashlib
import binascii

_LOC = ("alert", "update")


def digits(s):
    return "".join(c for c in (s or "") if c.isdigit())


def canon(number, cc="52"):
    # A number as the config holds it or as the SIM800 reports a sender (+CLIP,
    # +CMGR) -> "+<country code><national number>"; short codes (911) -> their
    # digits.  Mexican networks present one sender as "+52449...", "+521449..."
    # (the mobile "1" dropped in 2019), "449..." or "044/045/01 449..." (old trunk
    # prefixes); a national form takes the device's own country code cc.  A number
    # written with another country code stays that number: +1 449... is not +52 449...
    d = digits(number)
    s = (number or "").strip()
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


class SmsMixin:
    def _queue(self, number, msg):
        self.seq += 1
        self.outbox.append([self.seq, number, msg, 0])
        self._dirty = True

    def _pending_loc(self, number):
        for e in self.outbox:
            if e[2] in _LOC and same_number(e[1], number):
                return True
        return False

    def _queue_location(self, acts, msg):
        for n in self.recipients():
            if not self._pending_loc(n):
                self._queue(n, msg)

    def _render(self, e, now):
        c = self.cfg
        msg = e[2]
        kind, age = self.fix_kind(now)
        f = self.fix if kind in ("gps", "last") else None
        loc = {}
        if f is not None:
            loc = {"lat_e7": f[0], "lon_e7": f[1], "hdop": f[2], "acc_m": f[4]}
        if msg[:6] in ("lowbat", "daily:"):
            return self._render_sup(msg, now, kind, age, f), kind
        if msg in _LOC:
            return sms.alert_text(alias=c["alias"], kind=kind, age_s=age,
                                  battery=self.battery, device_id=c["device_id"],
                                  test=self._test(), update=msg == "update",
                                  cell=self.cell, calling_c4=bool(self.dial_list),
                                  **loc), kind
        if msg == "location":
            return sms.location_text(kind=kind, age_s=age, battery=self.battery,
                                     device_id=c["device_id"], cell=self.cell,
                                     test=self._test(), active=self.active, **loc), kind
        if msg == "status":
            return sms.status_text(battery=self.battery, rssi=self.rssi,
                                   gps="ok" if kind == "gps" else "nofix", fw=c["fw"],
                                   alerts=self.alerts, device_id=c["device_id"],
                                   active=self.active,
                                   sats=f[3] if (f and kind == "gps") else None,
                                   test=self._test()), kind
        by = msg[7:] if msg.startswith("cancel:") else "device"
        return sms.cancel_text(alias=c["alias"], device_id=c["device_id"], by=by,
                               test=self._test(), minutes=c["max_alert_s"] // 60,
                               advice=not self.is_c4(e[1])), kind

    def _pump(self, now, acts):
        if self.inflight is not None or not self.outbox:
            return
        e = self.outbox[0]
        if e[3] > 0:
            if not self._retry_ready:
                if not self._retry_armed:
                    self._retry_armed = True
                    acts.append(("set_timer", "sms_retry", self.cfg["sms_retry_s"] * 1000))
                return
            self._retry_ready = False
        text, kind = self._render(e, now)
        self.inflight = e[0]
        self._inflight_kind = kind
        acts.append(("send_sms", e[1], text, e[0]))
        acts.append(("set_timer", "sms_timeout", self.cfg["sms_timeout_s"] * 1000))

    def _sms_done(self, ok, acts, now, permanent=False):
        n = self.inflight
        self.inflight = None
        acts.append(("cancel_timer", "sms_timeout"))
        e = None
        for i in range(len(self.outbox)):
            if self.outbox[i][0] == n:
                e = self.outbox.pop(i)
                break
        if e is None:
            return
        self._dirty = True
        if ok:
            self._log(acts, "sms_ok", "%s %s" % (e[2], mask(e[1])))
            if e[2][:6] == "daily:":
                self.rep_alerts = int(e[2][6:])
            if e[2] in _LOC and e[1] not in self.got_gps:
                if self._inflight_kind == "gps":
                    self.got_gps.append(e[1])
                elif self.active and self.fix_kind(now)[0] == "gps":
                    # the fix came while this one was on its way without it
                    self._queue(e[1], "update")
            return
        e[3] += 1
        if permanent or e[3] > self.cfg["sms_retries"]:
            self._log(acts, "sms_failed", "%s %s" % (e[2], mask(e[1])))
        else:
            self._log(acts, "sms_retry", "%s %s" % (e[2], mask(e[1])))
            self.outbox.append(e)

    def _on_sms_sent(self, ev, now, acts):
        if ev[1] != self.inflight:
            self._log(acts, "sms_stale", str(ev[1]))
            return
        # ev[3] (optional): the network refused it for good (+CMS ERROR not in the
        # temporary set 41/42/331/332/500): retrying would only delay the others
        self._sms_done(bool(ev[2]), acts, now, len(ev) > 3 and bool(ev[3]))

    # ---------------------------------------------------------------- calls
