# Supervision side of the alert machine (mixed into alert.AlertMachine): low-battery
# warnings to the trusted contacts, the modem's power warnings, and the silent daily
# status SMS to the programme's number.  Sans-IO; see alert.py for the events, the
# actions and the decisions (test mode, hysteresis, rate limits).

import sms
from gesture import ticks_diff
from alertsms import _LOC, same_number, mask


class SupMixin:
    def _sup_init(self):
        self.bat_low = []       # thresholds already warned about (re-armed by charging)
        self.pw_t = None        # last power-warning location push
        self.daily_t = 0        # when the "daily" timer was armed, and for how long
        self.daily_len = 0      # (0: not armed)
        self.daily_left = None  # restored by from_state, used by start
        self.up_ms = 0          # uptime up to daily_t
        self.rep_alerts = 0     # self.alerts counted by the last delivered report
        self.log_head = None    # callable() -> (seq, hex) of the event log, for the daily SMS

    def _bat_th(self):
        th = self.cfg["low_battery_pct"]
        th = th if isinstance(th, (list, tuple)) else [th]
        return sorted(set(int(t) for t in th if t is not None), reverse=True)

    def _daily_ms(self):
        # 0: no reports.  At most 5 days: timers must stay inside ticks_ms' half period.
        c = self.cfg
        d = int(c["daily_status_s"] or 0)
        return min(d, 432000) * 1000 if d > 0 and c["programme_number"] else 0

    # -------------------------------------------------------------- state
    def _sup_state(self, st, now):
        st["bat_low"] = list(self.bat_low)
        st["rep_alerts"] = self.rep_alerts
        left = self.daily_left
        if self.daily_len:
            left = max(0, self.daily_len - ticks_diff(now, self.daily_t))
        st["daily_left_ms"] = left

    def _sup_restore(self, st):
        th = self._bat_th()
        self.bat_low = [int(t) for t in (st.get("bat_low") or []) if int(t) in th]
        self.rep_alerts = min(int(st.get("rep_alerts") or 0), self.alerts)
        dl = st.get("daily_left_ms")
        self.daily_left = None if dl is None else int(dl)

    # -------------------------------------------------------------- daily
    def start(self, now):
        # Call once at boot, after from_state(): arms the daily status timer with
        # what was left of the period before a reset, if a state was restored.
        self._now = now
        acts = []
        self.up_ms = 0
        self.daily_len = 0
        self._arm_daily(now, acts, self.daily_left)
        if not self.daily_len:
            self._log(acts, "daily_status", "off")
        return self._finish(now, acts)

    def _arm_daily(self, now, acts, left=None):
        p = self._daily_ms()
        if not p:
            return
        if self.daily_len:
            self.up_ms += ticks_diff(now, self.daily_t)
        self.daily_t = now
        self.daily_len = p if left is None else max(60000, min(int(left), p))
        acts.append(("set_timer", "daily", self.daily_len))

    def _on_daily(self, now, acts):
        self._arm_daily(now, acts)
        if not self.daily_len:
            return
        self._dirty = True
        prog = self.cfg["programme_number"]
        if self.active:
            self._log(acts, "daily_status", "skipped alert")
        elif not self._pending(prog, "daily"):
            # the alert count goes with the entry: counted once it was delivered
            self._queue(prog, "daily:%d" % self.alerts)
            self._log(acts, "daily_status", mask(prog))

    # ------------------------------------------------------------ battery
    def _on_battery(self, ev, now, acts):
        p = int(ev[1])
        if p < 0 or p > 100:
            self._log(acts, "battery?", str(p))
            return
        self.battery = p
        h = self.cfg["battery_hysteresis_pct"]
        keep = [t for t in self.bat_low if p <= t + h]
        if len(keep) < len(self.bat_low):
            self._log(acts, "battery_ok", "%d%%" % p)
        new = [t for t in self._bat_th() if p <= t and t not in keep]
        if new or len(keep) < len(self.bat_low):
            self.bat_low = keep + new
            self._dirty = True
        if new:
            self._low_battery(acts, "%d%%" % p, "lowbat", None)

    def _low_battery(self, acts, why, msg, front):
        # The low-battery text for every trusted contact (not in test mode): queued,
        # or appended to front.
        if self._test():
            self._log(acts, "low_battery", why + " test")
            return
        self._log(acts, "low_battery", why)
        for n in self.contacts:
            if not self._pending(n, "lowbat"):
                if front is None:
                    self._queue(n, msg)
                else:
                    self.seq += 1
                    front.append([self.seq, n, msg, 0])

    # -------------------------------------------------------------- power
    def _on_power_warning(self, ev, now, acts):
        kind = ev[1]
        if kind not in ("under_voltage", "over_voltage", "power_down"):
            self._log(acts, "power_warning?", str(kind))
            return
        self._log(acts, "power_warning", kind)
        front = []
        d = None if self.pw_t is None else ticks_diff(now, self.pw_t)
        if self.active and (d is None or d < 0 or d >= self.cfg["power_update_gap_s"] * 1000):
            # her position first: move the queued location SMS ahead, or add them
            self.pw_t = now
            for n in self.recipients():
                e = None
                for x in self.outbox:
                    if x[2] in _LOC and same_number(x[1], n):
                        e = x
                        break
                if e is None:
                    self.seq += 1
                    e = [self.seq, n, "update", 0]
                elif e[0] == self.inflight:
                    continue                # on its way, rendered just now
                else:
                    self.outbox.remove(e)
                front.append(e)
        th = self._bat_th()
        if kind != "over_voltage" and th:
            due = not self.bat_low if self.active else th[-1] not in self.bat_low
            self.bat_low = th               # the battery is at its lowest
            self._dirty = True
            if due:
                self._low_battery(acts, kind, "lowbat:v", front)
        if front:
            i = 1 if self.outbox and self.outbox[0][0] == self.inflight else 0
            self.outbox = self.outbox[:i] + front + self.outbox[i:]
            self._dirty = True

    # ------------------------------------------------------------ helpers
    def _pending(self, number, prefix):
        for e in self.outbox:
            if e[2].startswith(prefix) and same_number(e[1], number):
                return True
        return False

    def _render_sup(self, msg, now, kind, age, f):
        c = self.cfg
        if msg.startswith("daily"):
            up = self.up_ms + ticks_diff(now, self.daily_t) if self.daily_len else None
            return sms.daily_status_text(
                battery=self.battery, rssi=self.rssi, gps="ok" if kind == "gps" else "nofix",
                fix_age_s=age if kind == "last" else None,
                sats=f[3] if (f and kind == "gps") else None, fw=c["fw"],
                alerts=max(0, int(msg[6:]) - self.rep_alerts), device_id=c["device_id"],
                uptime_h=None if up is None else up // 3600000, test=self._test(),
                log_head=self.log_head() if self.log_head else None)
        return sms.low_battery_text(alias=c["alias"], device_id=c["device_id"],
                                    battery=self.battery if msg == "lowbat" else None,
                                    test=self._test())
