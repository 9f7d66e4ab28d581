# The texts of the alert machine's SMS, rendered when a message is sent (never stale):
# which sms.py text an outbox record becomes, given what the machine knows now.  Pure.

import sms
import outbox as ob


def render(m, e, now):
    # m: the AlertMachine; e: an outbox.Sms.  -> (text, fix kind it carries)
    c = m.cfg
    k = e.kind
    kind, age = m.fix_kind(now)
    f = m.fix if kind in ("gps", "last") else None
    g = "mute" if m.gps_silent else "ok" if kind == "gps" else "nofix"
    # the position as plain arguments, not a **dict: a render at the alert's burst (a text
    # for each contact, the heap full) builds no dict and no spread argument array
    lat = lon = hdop = acc = None
    if f is not None:
        lat, lon, hdop, acc = f[0], f[1], f[2], f[4]
    if k in ob.LOC:
        q = m.calls
        return sms.alert_text(alias=c["alias"], kind=kind, age_s=age,
                              battery=m.battery, device_id=c["device_id"],
                              test=m.test_now(), update=k == ob.UPDATE and e.number in m.told,
                              cell=m.cell, calling_c4=bool(m.dial_list),
                              voice=m.voice,
                              # two of her calls failed and none was answered: her contacts
                              # must not believe C4 is on it (C4's own copy: C4 knows; a
                              # delivery test: nobody is to call 911 over it)
                              unanswered=not (q.reached or q.connected) and q.dials > 2
                              and not m.is_c4(e.number) and not m.test_now(),
                              lat_e7=lat, lon_e7=lon, hdop=hdop, acc_m=acc), kind
    if k == ob.LOCATION:
        return sms.location_text(kind=kind, age_s=age, battery=m.battery,
                                 device_id=c["device_id"], cell=m.cell,
                                 test=m.test_now(), active=m.active,
                                 lat_e7=lat, lon_e7=lon, hdop=hdop, acc_m=acc), kind
    if k == ob.STATUS:
        return sms.status_text(battery=m.battery, rssi=m.rssi,
                               gps=g, fw=c["fw"],
                               alerts=m.alerts, device_id=c["device_id"],
                               active=m.active,
                               sats=f[3] if (f and kind == "gps") else None,
                               test=m.test_now(), voice=m.voice,
                               fix_age_s=age if kind == "last" else None), kind
    if k == ob.DAILY:
        up = m.sup.uptime_ms(now)
        return sms.daily_status_text(
            battery=m.battery, rssi=m.rssi, gps=g,
            fix_age_s=age if kind == "last" else None,
            sats=f[3] if (f and kind == "gps") else None, fw=c["fw"],
            alerts=max(0, e.arg - m.sup.rep_alerts), device_id=c["device_id"],
            uptime_h=None if up is None else up // 3600000, test=m.test_now(),
            log_head=m.log_head() if m.log_head else None, voice=m.voice), kind
    if k == ob.LOWBAT:
        return sms.low_battery_text(alias=c["alias"], device_id=c["device_id"],
                                    battery=m.battery if e.arg is None else None,
                                    test=m.test_now(), active=m.active), kind
    return sms.cancel_text(alias=c["alias"], device_id=c["device_id"],
                           by=e.arg or "device", test=m.test_now(),
                           minutes=c["max_alert_s"] // 60,
                           advice=not m.is_c4(e.number)), kind

