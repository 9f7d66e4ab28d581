# Supervision, a part of the alert machine that owns its own state: low-battery warnings
# to the trusted contacts, the modem's power warnings, and the silent daily status SMS to
# the programme's number.  Sans-IO; alert.py documents the events, the actions and the
# decisions (test mode, hysteresis, rate limits).  The machine (m) passes itself in: its
# outbox, whether an alert is on, who the recipients are.

from gesture import ticks_diff
from alertsms import mask
import outbox as ob


class Supervision:
    def __init__(self, cfg):
        self.cfg = cfg
        self.bat_low = []       # thresholds already warned about (re-armed by charging)
        # the modem warned of its supply: every threshold counts as warned until a reading
        # above the top one (she charged), not only above the lowest's hysteresis
        self.pw_low = False
        self.pw_t = None        # last power-warning location push
        self.daily_t = 0        # when the "daily" timer was armed, and for how long
        self.daily_len = 0      # (0: not armed)
        self.daily_left = None  # restored by from_state, used by start
        self.up_ms = 0          # uptime up to daily_t
        self.rep_alerts = 0     # alerts counted by the last delivered report
        self.off_unknown = False  # restored with no time off: an off_gap may shorten the period

    def thresholds(self):
        th = self.cfg["low_battery_pct"]
        th = th if isinstance(th, (list, tuple)) else [th]
        return sorted(set(int(t) for t in th if t is not None), reverse=True)

    def daily_ms(self):
        # 0: no reports.  At most 5 days: timers must stay inside ticks_ms' half period.
        c = self.cfg
        d = int(c["daily_status_s"] or 0)
        return min(d, 432000) * 1000 if d > 0 and c["programme_number"] else 0

    # -------------------------------------------------------------- state
    def save(self, st, now):
        st["bat_low"] = list(self.bat_low)
        st["pw_low"] = self.pw_low
        st["rep_alerts"] = self.rep_alerts
        left = self.daily_left
        if self.daily_len:
            left = max(0, self.daily_len - ticks_diff(now, self.daily_t))
        st["daily_left_ms"] = left

    def restore(self, st, alerts, gap_ms=None):
        # gap_ms: the time off since the save, when the RTC knows it; what was left of the
        # report period shrinks by it (else a button reset more often than that never reports)
        th = self.thresholds()
        self.bat_low = [int(t) for t in (st.get("bat_low") or []) if int(t) in th]
        self.pw_low = bool(st.get("pw_low"))
        self.rep_alerts = min(int(st.get("rep_alerts") or 0), alerts)
        dl = st.get("daily_left_ms")
        self.daily_left = None if dl is None else int(dl) - int(gap_ms or 0)
        self.off_unknown = gap_ms is None

    # -------------------------------------------------------------- daily
    def start(self, now, acts):
        self.up_ms = 0
        self.daily_len = 0
        self.arm_daily(now, acts, self.daily_left)
        if not self.daily_len:
            acts.append(("log", "daily_status", "off"))

    def arm_daily(self, now, acts, left=None):
        p = self.daily_ms()
        if not p:
            return
        if self.daily_len:
            self.up_ms += ticks_diff(now, self.daily_t)
        self.daily_t = now
        self.daily_len = p if left is None else max(60000, min(int(left), p))
        acts.append(("set_timer", "daily", self.daily_len))

    def shorten(self, now, off_ms, acts):
        # The time off a power-on, learnt from the first real time since (off_gap): taken
        # off what is left of the report period.  -> True if the timer changed
        # (once, and only on the period restored: not one a report has started since)
        if not (self.daily_len and self.off_unknown):
            return False
        self.off_unknown = False
        self.arm_daily(now, acts, self.daily_len - ticks_diff(now, self.daily_t) - int(off_ms))
        return True

    def uptime_ms(self, now):
        return self.up_ms + ticks_diff(now, self.daily_t) if self.daily_len else None

    def on_daily(self, m, now, acts):
        # -> True if the state changed
        self.off_unknown = False
        self.arm_daily(now, acts)
        if not self.daily_len:
            return False
        prog = self.cfg["programme_number"]
        if m.active:
            acts.append(("log", "daily_status", "skipped alert"))
        elif not m.outbox.pending(prog, (ob.DAILY,)):
            # the alert count goes with the entry: counted once it was delivered
            m.outbox.queue(prog, ob.DAILY, m.alerts)
            acts.append(("log", "daily_status", mask(prog)))
        return True

    def delivered(self, e):
        if e.kind == ob.DAILY:
            self.rep_alerts = e.arg

    # ------------------------------------------------------------ battery
    def on_battery(self, m, p, acts):
        # p: a valid percentage.  -> True if the state changed
        h = self.cfg["battery_hysteresis_pct"]
        if self.pw_low:
            # the gauge reads the cell at rest, above the modem's sag under a transmit
            # burst: "16%" after its warning was every SMS again at its next warning
            th = self.thresholds()
            if th and p <= th[0] + h:
                return False
            self.pw_low = False
        keep = [t for t in self.bat_low if p <= t + h]
        if len(keep) < len(self.bat_low):
            acts.append(("log", "battery_ok", "%d%%" % p))
        new = [t for t in self.thresholds() if p <= t and t not in keep]
        changed = bool(new) or len(keep) < len(self.bat_low)
        if changed:
            self.bat_low = keep + new
        if new:
            self._low_battery(m, acts, "%d%%" % p, None, None)
        return changed

    def _low_battery(self, m, acts, why, arg, front):
        # The low-battery text for every trusted contact (not in test mode): queued,
        # or appended to front.
        if m.test_now():
            acts.append(("log", "low_battery", why + " test"))
            return
        acts.append(("log", "low_battery", why))
        for n in m.contacts:
            if not m.outbox.pending(n, (ob.LOWBAT,)):
                if front is None:
                    m.outbox.queue(n, ob.LOWBAT, arg)
                else:
                    front.append(m.outbox.new(n, ob.LOWBAT, arg))

    # -------------------------------------------------------------- power
    def on_power_warning(self, m, kind, now, acts):
        # -> True if the state changed
        if kind not in ("under_voltage", "over_voltage", "power_down"):
            acts.append(("log", "power_warning?", str(kind)))
            return False
        acts.append(("log", "power_warning", kind))
        box = m.outbox
        changed = False
        front = []
        d = None if self.pw_t is None else ticks_diff(now, self.pw_t)
        if m.active and (d is None or d < 0 or d >= self.cfg["power_update_gap_s"] * 1000):
            # her position first: move the queued location SMS ahead, or add them
            self.pw_t = now
            for n in m.recipients():
                e = box.pending(n, ob.LOC)
                if e is None:
                    e = box.new(n, ob.UPDATE)
                elif e.n == box.inflight:
                    continue                # on its way, rendered just now
                else:
                    box.take(e)
                front.append(e)
        th = self.thresholds()
        if kind != "over_voltage" and th:
            due = not self.bat_low if m.active else th[-1] not in self.bat_low
            self.bat_low = th               # the battery is at its lowest
            self.pw_low = True
            changed = True
            if due:
                self._low_battery(m, acts, kind, "v", front)
        if front:
            box.put_front(front)
            changed = True
        return changed
