# The alert state machine, sans-IO and deterministic.
#
#     m = AlertMachine(config)
#     actions = m.handle(event, now_ms)        # now_ms: time.ticks_ms() of the caller
#     actions = m.from_state(saved, now_ms)    # resume after a reset
#     actions = m.start(now_ms)                # once per boot, after from_state
#     saved = m.to_state()                     # also emitted as ("persist", saved)
#
# Nothing here does I/O or reads a clock: the driver performs the actions in order
# and reports what happened as events.  Time only enters through now_ms.
#
# Config (dict; missing keys take DEFAULTS)
#     c4_numbers        ["+524491234567", ...]  C4 numbers, primary first
#     contacts          trusted contacts (1-5), in the order they are notified
#     authorized        extra numbers allowed to send SMS commands (C4 always is)
#     pin_hash          "s$<salt hex>$<hex sha256(salt + PIN)>" of the SMS command PIN
#                       (alertsms.pin_ok); "" and no "pin": SMS commands are off
#     pin               plain PIN of configs from before pin_hash (used only without one)
#     country_code      "+52"  the device's country: a sender reported in national form
#                       (449..., 044 449...) is read as +52 449... (alertsms.canon)
#     allow_911         after every C4 number failed, also try emergency_number
#     emergency_number  "911"
#     alias, device_id, fw    for the texts (alias: short name she chose)
#     test_mode         SMS start with "PRUEBA" (nobody dispatches)
#     sms_c4            location / cancel SMS also go to the primary C4 number
#     redial_backoff_s  [5, 10, 20]  wait after the 1st, 2nd, 3rd.. failed attempt
#     attempts_per_number  3        then move on to the next number
#     cycle_backoff_s   60          wait before starting the list over
#     dial_timeout_s    60          not answered by then -> hang up, count as failure
#     update_every_s    300         periodic location SMS while active
#     max_alert_s       3600        then periodic SMS and redialing stop
#     fix_fresh_s       30          a fix this young is "gps", older is "last"
#     last_fix_max_s    86400       older fixes are forgotten
#     callback_window_s 3600        C4 calls are answered during the alert and this
#                                   long after it ended (-1: always)
#     sms_retries 2, sms_retry_s 20, sms_timeout_s 90
#     pin_max_failures 5, pin_lockout_s 900   wrong-PIN lockout of SMS commands, per
#                       sender: a locked number does not lock C4's other numbers out.
#                       At most PIN_SENDERS senders are tracked (the least recent
#                       unlocked one makes room); the table is persisted with the lock's
#                       age, so a reset does not lift a lock (the time the device was
#                       off does not count towards it: ticks do not survive a reset)
#     vibrate           True        haptic acknowledgement of alert / cancel
#     low_battery_pct   [20, 10]    one low-battery SMS to the contacts per downward
#                                   crossing (readings <= pct; [] disables)
#     battery_hysteresis_pct  5     a threshold re-arms when the battery reads above
#                                   pct + this (she charged it)
#     power_update_gap_s  120       during an alert, a power warning pushes a location
#                                   update at most this often
#     programme_number  ""          gets the silent daily status SMS ("": no reports)
#     daily_status_s    86400       period of the daily status SMS (max 5 days)
#     gesture           dict for gesture.Button(**gesture): debounce_ms,
#                       pressed_level, mode ("hold"|"presses"), hold_ms, count,
#                       window_ms, cancel ("hold"|None), cancel_ms, min_press_ms,
#                       max_press_ms
#
# Events in
#     ("gesture", "alert" | "cancel")
#     ("call_state", "dialing"|"alerting"|"active"|"ended", cause)
#         cause for "ended": "remote" = the far end hung up normally (AT+CEER:
#         normal call clearing) - the only cause that is not redialed after the
#         call was answered; anything else ("busy", "no_answer", "no_carrier",
#         "dropped", "error", None) counts as a failed/dropped call.
#     ("sms_sent", n, ok[, permanent])  n = the id carried by the send_sms action;
#                                  permanent: refused for good, do not retry
#     ("fix", fix)                 nmea.Fix or dict/object with lat_e7/lon_e7 (or
#                                  lat/lon), hdop, sats, valid (False is ignored)
#     ("cell", dict)               atparse.parse_ceng() serving cell
#     ("battery", percent)         AT+CBC percent 0..100 (others logged, ignored)
#     ("signal", csq_rssi)
#     ("power_warning", kind)      from SIM800 URCs: "under_voltage" (UNDER-VOLTAGE
#                                  WARNNING), "power_down" (UNDER-VOLTAGE POWER DOWN),
#                                  "over_voltage" (OVER-VOLTAGE WARNNING or POWER DOWN).
#                                  Not for NORMAL POWER DOWN (AT+CPOWD / PWRKEY: ours)
#     ("timer", name)              a timer set by set_timer expired
#     ("sms_command", sender, text)
#     ("incoming_call", number)    "" if withheld
# Actions out
#     ("covert_audio",)            speaker off / ringer off / mic on, before dial/answer
#     ("dial", number)   ("hangup",)   ("answer",)   ("reject",)
#     ("send_sms", number, text, n)    one at a time; report ("sms_sent", n, ok)
#     ("set_timer", name, ms)   ("cancel_timer", name)   one timer per name
#     ("vibrate", "alert" | "cancel")
#     ("gesture_active", bool)     keep gesture.Button.set_active() in step
#     ("log", event, detail)       phone numbers masked to their last 4 digits;
#                                  supervision: low_battery "<pct>%"|kind [" test"],
#                                  battery_ok, battery?, power_warning, power_warning?,
#                                  daily_status "...1111"|"skipped alert"|"off"
#     ("persist", state_dict)      write it; pass it to from_state() after a reset
#                                  (her last position is in it only during an alert;
#                                  bat_low, rep_alerts, daily_left_ms: supervision)
# Timer names: "redial", "dial_timeout", "update", "max_alert", "sms_timeout",
# "sms_retry", "daily" (armed by start(); at most daily_status_s * 1000 ms).
# The driver must deliver some event at least daily (e.g. battery).
#
# Supervision (alertsup.py)
#   Low battery: a "battery" reading at or below a low_battery_pct threshold not yet
#     warned about queues sms.low_battery_text to every trusted contact (one SMS per
#     contact even if it fell past several thresholds at once); the warned thresholds
#     are persisted, so a reset does not resend.  In test mode nothing is sent, only
#     logged ("low_battery", "<pct>% test"): test-mode devices are on a bench or in
#     training, and the delivery test removes the state file, so it would nag her
#     contacts on every test.  During an alert it is queued behind the alert's SMS.
#   Power warnings: logged.  During an alert "under_voltage" / "over_voltage" /
#     "power_down" move a location update for every recipient to the front of the
#     outbox (behind the SMS in flight; at most once per power_update_gap_s) - the
#     modem is about to switch off.  "under_voltage" / "power_down" also queue the
#     low-battery SMS (without a percentage: the reading may be stale) right after
#     them if no low-battery SMS was sent yet (outside an alert: if none was sent for
#     the lowest threshold), and mark every threshold as warned.
#   Daily status: start() arms the "daily" timer; on expiry it is re-armed and the
#     silent (no vibration, not to her contacts) sms.daily_status_text - battery,
#     signal, age of the last fix (never the position), firmware, alerts since the
#     last delivered report, hours since boot - goes to programme_number.  Skipped
#     (logged, re-armed for a whole period) while an alert is active.  Sent in test
#     mode too, marked PRUEBA: it goes to the programme, not to her contacts, and
#     shows that a training device is alive.  What was left of the period is
#     persisted (restored no sooner than 60 s after boot), so a reset postpones a
#     report by at most the time since the last persist; "Encendido <h>h" in the
#     report shows C4 that the device restarted.
#
# The machine is split over alert.py (core), alertsms.py (outbox, texts, helpers),
# alertcall.py (calls) and alertsup.py (supervision) because MicroPython compiles a
# whole module's parse tree at once: four small modules import from source in an
# 80 KB heap, one big one needed 130 KB (alertsup is imported before alertcall: the
# bigger module compiles while less is loaded).  Comments instead of docstrings for
# the same reason.

from gesture import ticks_diff, ticks_add
from alertsms import (SmsMixin, _LOC, digits, same_number, mask,  # noqa: F401
                      read_fix, command_words, canon, pin_ok)
from alertsup import SupMixin
from alertcall import CallMixin

DEFAULTS = {
    "c4_numbers": [], "contacts": [], "authorized": [], "pin": "", "pin_hash": "",
    "country_code": "+52",
    "allow_911": False, "emergency_number": "911",
    "alias": "", "device_id": "", "fw": "", "test_mode": False, "sms_c4": True,
    "redial_backoff_s": [5, 10, 20], "attempts_per_number": 3, "cycle_backoff_s": 60,
    "dial_timeout_s": 60, "update_every_s": 300, "max_alert_s": 3600,
    "fix_fresh_s": 30, "last_fix_max_s": 86400, "callback_window_s": 3600,
    "sms_retries": 2, "sms_retry_s": 20, "sms_timeout_s": 90,
    "pin_max_failures": 5, "pin_lockout_s": 900, "vibrate": True,
    "low_battery_pct": [20, 10], "battery_hysteresis_pct": 5, "power_update_gap_s": 120,
    "programme_number": "", "daily_status_s": 86400,
    "gesture": {"debounce_ms": 30, "pressed_level": 0, "mode": "hold",
                "hold_ms": 2000, "count": 3, "window_ms": 2000, "cancel": "hold",
                "cancel_ms": 5000},
}

COMMANDS = ("UBICACION", "ESTADO", "CANCELAR")
_TIMERS = ("redial", "dial_timeout", "update", "max_alert")
PIN_SENDERS = 8     # senders tracked by the wrong-PIN lockout


class AlertMachine(SmsMixin, CallMixin, SupMixin):
    def __init__(self, config=None):
        c = dict(DEFAULTS)
        c.update(config or {})
        self.cfg = c
        self.contacts = [n for n in c["contacts"] if n][:5]
        self.c4 = [n for n in c["c4_numbers"] if n]
        self.dial_list = list(self.c4)
        self.cc = digits(c["country_code"]) or "52"
        if c["allow_911"] and c["emergency_number"]:
            self.dial_list.append(c["emergency_number"])
        self._now = 0
        self._dirty = False
        self.active = False
        self.test = False
        self.start_t = 0
        self.alerts = 0
        self.call = "idle"      # idle dialing alerting answering active hangup
        self.connected = False  # the current call was answered
        self.call_done = False  # C4 answered and later hung up: no more redials
        self.ni = 0             # index in dial_list
        self.att = 0            # attempts on dial_list[ni]
        self.cancel_by = None
        self.end_t = None       # when the last alert ended (callback window)
        self.fix = None         # read_fix() list
        self.fix_t = 0
        self.cell = None
        self.battery = None
        self.rssi = None
        self.got_gps = []       # recipients that got a fresh-GPS location SMS
        self.seq = 0
        self.outbox = []        # [n, number, msg, tries]
        self.inflight = None
        self._inflight_kind = None
        self._retry_ready = False
        self._retry_armed = False
        self.pin_fails = []     # [sender (canon), wrong PINs, lock time or None]
        self._sup_init()

    # ------------------------------------------------------------------ API
    def handle(self, ev, now):
        self._now = now
        acts = []
        self._housekeeping(now)
        h = getattr(self, "_on_" + str(ev[0]), None)
        if h is None:
            acts.append(("log", "unknown_event", str(ev[0])))
        else:
            try:
                h(ev, now, acts)
            except Exception as e:  # a malformed event must not kill the alert
                acts.append(("log", "error", "%s %s" % (ev[0], type(e).__name__)))
        return self._finish(now, acts)

    def _finish(self, now, acts):
        self._pump(now, acts)
        if self._dirty:
            self._dirty = False
            acts.append(("persist", self.to_state(now)))
        return acts

    def to_state(self, now=None):
        now = self._now if now is None else now
        fx = None
        if self.fix is not None and self.active:   # her position is kept only in an alert
            fx = self.fix + [ticks_diff(now, self.fix_t)]
        st = {
            "v": 1, "active": self.active, "test": self.test,
            "elapsed_ms": ticks_diff(now, self.start_t) if self.active else 0,
            "alerts": self.alerts, "call_done": self.call_done, "ni": self.ni,
            "att": self.att, "seq": self.seq, "by": self.cancel_by,
            "out": [list(e) for e in self.outbox], "got_gps": list(self.got_gps),
            # her cell (a location too) likewise; modem_init reads it again after a reset
            "fix": fx, "cell": self.cell if self.active else None, "battery": self.battery,
            "end_ago_ms": None if self.end_t is None else ticks_diff(now, self.end_t),
            "pin_fails": [[e[0], e[1], None if e[2] is None else ticks_diff(now, e[2])]
                          for e in self.pin_fails],
        }
        self._sup_state(st, now)
        return st

    def from_state(self, st, now):
        # Restore a persisted state (after a reset) and return the actions that
        # resume it: an active alert redials C4 (unless C4 had already answered and
        # hung up), sends an immediate location update and re-arms its timers.
        self._now = now
        acts = []
        if not isinstance(st, dict) or st.get("v") != 1:
            acts.append(("log", "state_ignored", ""))
            return acts
        try:
            self._restore(st, now)
        except Exception as e:  # a damaged file must not stop the button from working
            self.__init__(self.cfg)
            self._now = now
            acts.append(("log", "state_ignored", type(e).__name__))
            return acts
        if self.active:
            el = ticks_diff(now, self.start_t)
            left = self.cfg["max_alert_s"] * 1000 - el
            if left <= 0:
                self._expire(now, acts)
            else:
                acts.append(("log", "resume", "%ds" % (el // 1000)))
                acts.append(("gesture_active", True))
                acts.append(("set_timer", "max_alert", left))
                acts.append(("set_timer", "update",
                             min(self.cfg["update_every_s"] * 1000, left)))
                self._queue_location(acts, "update")
                if not self.call_done and self.dial_list:
                    self._dial(now, acts)
        if self.daily_len:              # start() came first: re-arm what was left
            self._arm_daily(now, acts, self.daily_left)
        self._dirty = True
        return self._finish(now, acts)

    def _restore(self, st, now):
        self.active = bool(st.get("active"))
        self.test = bool(st.get("test"))
        self.alerts = int(st.get("alerts") or 0)
        self.call_done = bool(st.get("call_done"))
        self.ni = int(st.get("ni") or 0)
        if not 0 <= self.ni < len(self.dial_list):
            self.ni = 0
        self.att = int(st.get("att") or 0)
        self.seq = int(st.get("seq") or 0)
        self.cancel_by = st.get("by")
        out = []
        for e in st.get("out") or []:
            out.append([int(e[0]), str(e[1]), str(e[2]), int(e[3])])
        self.outbox = out
        self.got_gps = list(st.get("got_gps") or [])
        self.cell = st.get("cell")
        self.battery = st.get("battery")
        fx = st.get("fix")
        if fx:
            self.fix = list(fx[:5])
            self.fix_t = ticks_add(now, -int(fx[5]))
        ea = st.get("end_ago_ms")
        self.end_t = None if ea is None else ticks_add(now, -int(ea))
        self.start_t = ticks_add(now, -int(st.get("elapsed_ms") or 0))
        pf = []
        for e in (st.get("pin_fails") or [])[-PIN_SENDERS:]:
            # a lock's age: it goes on from where the last persist left it
            pf.append([str(e[0]), int(e[1]), None if e[2] is None else ticks_add(now, -int(e[2]))])
        self.pin_fails = pf
        self._sup_restore(st)
        self.call = "idle"
        self.connected = False
        self.inflight = None
        self._housekeeping(now)

    # --------------------------------------------------------------- helpers
    def _log(self, acts, what, detail=""):
        acts.append(("log", what, detail))

    def _housekeeping(self, now):
        # forget what is too old (also keeps wrapping tick differences sane)
        if self.fix is not None:
            age = ticks_diff(now, self.fix_t)
            if age < 0 or age > self.cfg["last_fix_max_s"] * 1000:
                self.fix = None
        if self.end_t is not None and self.cfg["callback_window_s"] >= 0:
            d = ticks_diff(now, self.end_t)
            if d < 0 or d > self.cfg["callback_window_s"] * 1000:
                self.end_t = None
        pf = self.pin_fails
        for i in range(len(pf) - 1, -1, -1):
            if pf[i][2] is not None:
                d = ticks_diff(now, pf[i][2])
                if d < 0 or d >= self.cfg["pin_lockout_s"] * 1000:
                    pf.pop(i)           # lock served: the count starts over
                    self._dirty = True

    def is_c4(self, number):
        for n in self.c4:
            if same_number(n, number, self.cc):
                return True
        return False

    def _authorized(self, number):
        if self.is_c4(number):
            return True
        for n in self.cfg["authorized"]:
            if same_number(n, number, self.cc):
                return True
        return False

    def recipients(self):
        r = list(self.contacts)
        if self.cfg["sms_c4"] and self.c4:
            p = self.c4[0]
            if not any(same_number(p, x) for x in r):
                r.append(p)
        return r

    def fix_kind(self, now):
        # -> (kind, age_s): "gps" | "last" | "cell" | "none".
        if self.fix is not None:
            age = ticks_diff(now, self.fix_t)
            if 0 <= age <= self.cfg["fix_fresh_s"] * 1000:
                return "gps", age // 1000
            if 0 <= age <= self.cfg["last_fix_max_s"] * 1000:
                return "last", age // 1000
        if self.cell:
            return "cell", None
        return "none", None

    def _test(self):
        return self.test if self.active else bool(self.cfg["test_mode"])

    # ---------------------------------------------------------------- SMS
    def _on_gesture(self, ev, now, acts):
        if ev[1] == "alert":
            self._alert(now, acts, "gesture")
        elif ev[1] == "cancel":
            self._cancel(now, acts, "device")

    def _alert(self, now, acts, source):
        c = self.cfg
        if self.active:
            self._log(acts, "alert_repeat", source)
            if c["vibrate"]:
                acts.append(("vibrate", "alert"))
            self._queue_location(acts, "update")
            if self.call == "idle" and self.dial_list:
                self.call_done = False
                acts.append(("cancel_timer", "redial"))
                self._dial(now, acts)
            return
        self.active = True
        self.test = bool(c["test_mode"])
        self.start_t = now
        self.alerts += 1
        self.call_done = False
        self.ni = 0
        self.att = 0
        self.got_gps = []
        self.cancel_by = None
        self._log(acts, "alert", source)
        if c["vibrate"]:
            acts.append(("vibrate", "alert"))
        acts.append(("gesture_active", True))
        if not self.dial_list:
            self._log(acts, "no_c4_number", "")
        elif self.call in ("idle", "hangup"):
            self._dial(now, acts)
        # location SMS are rendered when sent: never wait for the GPS
        self._queue_location(acts, "alert")
        acts.append(("set_timer", "update", c["update_every_s"] * 1000))
        acts.append(("set_timer", "max_alert", c["max_alert_s"] * 1000))
        self._dirty = True

    def _stop(self, now, acts, by):
        self.active = False
        self.cancel_by = by
        self.end_t = now
        acts.append(("gesture_active", False))
        # location messages not yet on their way are obsolete
        self.outbox = [e for e in self.outbox
                       if e[0] == self.inflight or e[2] not in _LOC]
        self._dirty = True

    def _cancel(self, now, acts, by, reply_to=None):
        if not self.active:
            self._log(acts, "cancel_ignored", by)
            return
        self._stop(now, acts, by)
        for t in _TIMERS:
            acts.append(("cancel_timer", t))
        if self.call != "idle":
            acts.append(("hangup",))
            self.call = "hangup"
        if self.cfg["vibrate"]:
            acts.append(("vibrate", "cancel"))
        rcpt = self.recipients()
        if reply_to and not any(same_number(reply_to, x, self.cc) for x in rcpt):
            rcpt.append(reply_to)
        for n in rcpt:
            self._queue(n, "cancel:" + by)
        self._log(acts, "cancel", by)

    def _expire(self, now, acts):
        self._stop(now, acts, "timeout")
        acts.append(("cancel_timer", "redial"))
        acts.append(("cancel_timer", "update"))
        for n in self.recipients():
            self._queue(n, "cancel:timeout")
        self._log(acts, "expired", "%ds" % self.cfg["max_alert_s"])

    # --------------------------------------------------------------- inputs
    def _on_fix(self, ev, now, acts):
        f = read_fix(ev[1])
        if f is None:
            return
        self.fix = f
        self.fix_t = now
        if not self.active:
            return
        # the first fresh fix after a location-less alert: tell who lacks it
        for n in self.recipients():
            if n not in self.got_gps and not self._pending_loc(n):
                self._queue(n, "update")

    def _on_cell(self, ev, now, acts):
        if ev[1]:
            self.cell = ev[1]

    def _on_signal(self, ev, now, acts):
        self.rssi = ev[1]

    def _on_timer(self, ev, now, acts):
        name = ev[1]
        c = self.cfg
        if name == "sms_timeout":
            if self.inflight is not None:
                self._log(acts, "sms_timeout", str(self.inflight))
                self._sms_done(False, acts, now)
        elif name == "sms_retry":
            self._retry_armed = False
            self._retry_ready = True
        elif name == "redial":
            if self.active and self.dial_list and self.call in ("idle", "hangup"):
                self._dial(now, acts)
        elif name == "dial_timeout":
            if self.call in ("dialing", "alerting", "answering"):
                acts.append(("hangup",))
                self.call = "hangup"
                self._call_failed(now, acts, "timeout")
        elif name == "update":
            if self.active:
                self._queue_location(acts, "update")
                left = c["max_alert_s"] * 1000 - ticks_diff(now, self.start_t)
                if left > 0:
                    acts.append(("set_timer", "update",
                                 min(c["update_every_s"] * 1000, left)))
        elif name == "max_alert":
            if self.active:
                self._expire(now, acts)
        elif name == "daily":
            self._on_daily(now, acts)
        else:
            self._log(acts, "unknown_timer", str(name))

    def _pin_failed(self, e, who, now, acts, sender):
        c = self.cfg
        pf = self.pin_fails
        if e is None:
            if len(pf) >= PIN_SENDERS:
                # make room: the least recent sender that is not locked, else the oldest
                i = 0
                for j in range(len(pf)):
                    if pf[j][2] is None:
                        i = j
                        break
                pf.pop(i)
            e = [who, 0, None]
        else:
            pf.remove(e)
        pf.append(e)                    # most recent last
        e[1] += 1
        self._dirty = True
        self._log(acts, "sms_ignored", "bad_pin " + mask(sender))
        if e[1] >= c["pin_max_failures"]:
            e[2] = now
            self._log(acts, "sms_locked", "%ds %s" % (c["pin_lockout_s"], mask(sender)))

    def _on_sms_command(self, ev, now, acts):
        sender, text = ev[1], ev[2]
        c = self.cfg
        if not self._authorized(sender):
            self._log(acts, "sms_ignored", "unauthorized " + mask(sender))
            return
        w = command_words(text)
        if not w or w[0] not in COMMANDS:
            self._log(acts, "sms_ignored", "unknown " + mask(sender))
            return
        who = canon(sender, self.cc)
        e = None
        for x in self.pin_fails:
            if x[0] == who:
                e = x
        if e is not None and e[2] is not None:
            self._log(acts, "sms_ignored", "locked " + mask(sender))
            return
        if not pin_ok(c, w[1] if len(w) > 1 else ""):
            self._pin_failed(e, who, now, acts, sender)
            return
        if e is not None:               # the right PIN: this sender's count starts over
            self.pin_fails.remove(e)
            self._dirty = True
        cmd = w[0]
        self._log(acts, "sms_command", cmd + " " + mask(sender))
        if cmd == "UBICACION":
            self._queue(sender, "location")
        elif cmd == "ESTADO":
            self._queue(sender, "status")
        elif self.active:
            self._cancel(now, acts, "c4", reply_to=sender)
        else:
            self._queue(sender, "status")
