"""Safety rules checked on top of test_alert_fuzz.AlertUnderFire's random event sequences
(a model-based fuzz review): an alert starts only from her gesture and always dials C4 (or
says there is no C4); it ends only by her cancel, C4's CANCELAR with the PIN, its time or
the off-gap; the Button's flag follows the machine; no location text or alert vibration
after the end; "unsent" vibrates when nothing of this alert got out; queues stay bounded;
no phone number in the log; and every contact told of an alert is told its end."""
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, precondition

from test_alert_fuzz import AlertUnderFire, PIN, SENDERS, COMMANDS, C4  # noqa
import outbox as ob
from alertsms import same_number, command_words

GROUPS = {ob.ALERT: "loc", ob.UPDATE: "loc"}


class Model(AlertUnderFire):
    def _init_model(self):
        if getattr(self, "_mi", False):
            return
        self._mi = True
        self.g_active = False      # what the Button was last told (gesture_active)
        self.alert_told = set()    # numbers a location SMS of this alert was taken for
        self.end_owed = set()      # told numbers the ended alert owes an end text
        self.excused = set()
        self.sent_kind = {}        # n -> (number, kind)
        self.cur_ev = None
        self.dialed = False
        self.got_out = False
        self.seq0 = 0
        self.trace = []

    def _do(self, acts, ev=None):
        self._init_model()
        for a in acts:
            k = a[0]
            if k == "gesture_active":
                self.g_active = a[1]
            elif k == "send_sms":
                e = None
                for x in self.m.outbox.items:
                    if x.n == a[3]:
                        e = x
                assert e is not None, a
                self.sent_kind[a[3]] = (a[1], e.kind)
                if e.kind in ob.LOC:
                    assert self.m.active, ("location SMS after the end", a)
            elif k == "dial":
                self.dialed = True
            elif k == "vibrate" and a[1] == "alert":
                assert self.m.active, ("alert vibration with no alert", ev, acts)
            elif k == "vibrate" and a[1] == "unsent":
                assert not self.got_out, ("unsent vibration but something got out", ev)
        return super()._do(acts, ev)

    def ev(self, *e):
        self._init_model()
        was = self.m.active
        self.trace.append(e)
        if e[0] == "sms_sent" and e[1] == self.m.outbox.inflight:
            info = self.sent_kind.get(e[1])
            if info and e[2]:
                num, kind = info
                if kind in ob.LOC and was:
                    self.alert_told.add(num)
                if was and (kind in ob.LOC or e[1] > self.seq0):
                    self.got_out = True     # a text of this alert (queued after the press)
                if kind == ob.CANCEL:
                    self.end_owed.discard(num)
            elif info and len(e) > 3 and e[3] and info[1] == ob.CANCEL:
                self.excused.add(info[0])
                self.end_owed.discard(info[0])
        if e[0] == "call_state" and e[1] in ("alerting", "active"):
            self.got_out = True
        seq_before = self.m.outbox.seq
        acts = super().ev(*e)
        if not was and self.m.active:
            self.seq0 = seq_before
        if e == ("timer", "unsent") and was and self.m.active and not self.got_out \
                and self.cfg["vibrate"] and self.cfg["unsent_warn_s"]:
            assert ("vibrate", "unsent") in acts, ("nothing got out, she is not told", acts, self.trace[-40:])
        for a in acts:
            if a[0] == "log":
                dg = "".join(c for c in str(a[2]) if c.isdigit())
                for num in self.allowed + SENDERS:
                    d = "".join(c for c in num if c.isdigit())[-8:]
                    assert not d or d not in dg, ("number in the log", a)
        self._transition(was, e, acts)
        return acts

    def _transition(self, was, e, acts):
        now = self.m.active
        if not was and now:
            assert e == ("gesture", "alert"), ("alert raised by", e)
            self.alert_told = set()
            self.end_owed = set()
            self.excused = set()
            self.got_out = False
            kinds = [a[0] for a in acts]
            if self.m.dial_list:
                # or a call-back held on the line, hung up first (calls.redial: C4 dialled once it ends)
                assert "dial" in kinds or self.m.calls.state in ("active", "answering", "dialing", "alerting") \
                    or self.m.calls.redial, (
                    "alert raised without a dial", self.m.calls.state, acts)
            else:
                assert ("log", "no_c4_number", "") in acts
        if was and not now:
            ok = False
            if e == ("gesture", "cancel") or e == ("timer", "max_alert") or e[0] == "off_gap":
                ok = True
            elif e[0] == "sms_command":
                w = command_words(e[2])
                auth = any(same_number(e[1], x) for x in self.cfg["c4_numbers"] + self.cfg["authorized"])
                ok = auth and len(w) > 1 and w[0] == "CANCELAR" and w[1] == PIN
            assert ok, ("alert ended by", e)
            self.end_owed = set(self.alert_told)

    @rule(keep=st.booleans(), gap_ms=st.one_of(st.none(), st.integers(0, 600_000)),
          t0=st.integers(0, (1 << 30) - 1))
    def esp32_resets(self, keep, gap_ms, t0):  # noqa: F811
        self._init_model()
        was = self.m.active
        self.g_active = False
        AlertUnderFire.esp32_resets(self, keep, gap_ms, t0)
        if was and not self.m.active:
            self.end_owed = set(self.alert_told)

    @rule(gap=st.integers(0, 200_000_000))
    def off_gap(self, gap):
        self.ev("off_gap", gap)

    @rule(sender=st.sampled_from(SENDERS), many=st.integers(1, 12))
    def cancel_burst(self, sender, many):
        for _ in range(many):
            self.ev("sms_command", sender, "CANCELAR 0000", None)

    def cells_flap(self, n):
        for i in range(n):
            self.ev("cell", {"mcc": 334, "mnc": 20, "lac": 1, "cid": 100 + i})

    # ---------------------------------------------------------------- invariants
    @invariant()
    def button_knows_the_alert(self):
        m = getattr(self, "m", None)
        if m is None:
            return
        self._init_model()
        assert self.g_active == m.active, ("button active", self.g_active, m.active)

    @invariant()
    def bounded(self):
        m = getattr(self, "m", None)
        if m is None:
            return
        cnt = {}
        for e in m.outbox.items:
            key = (e.number, GROUPS.get(e.kind, e.kind))
            if key[1] != "loc":
                cnt[key] = cnt.get(key, 0) + 1
        assert max(cnt.values() or [0]) <= 2, ("duplicate SMS queued", m.outbox.rows())
        assert len(m.outbox.items) <= 40, m.outbox.rows()
        assert len(m.told) <= 6 and len(m.got_gps) <= 6 and len(m.failing) <= 10
        assert len(m.owed) <= 12 and len(m.commands.pin_fails) <= 8

    def teardown(self):
        m = getattr(self, "m", None)
        if m is None:
            return
        super().teardown()
        m = self.m
        if m.active:
            self.ev("gesture", "cancel")
        self.ev("network", True)
        for _ in range(3000):
            if not m.outbox.items and self.inflight is None:
                break
            if self.inflight is not None:
                n, self.inflight = self.inflight, None
                self.ev("sms_sent", n, True)
            elif self.call is not None and self.call["st"] == "incoming":
                self.call = None
            elif self.call is not None:
                self.call_ends(None)
            else:
                assert self.timers, ("SMS stuck", m.outbox.rows())
                self.next_timer()
        assert not self.end_owed, ("contacts told of the alert never told its end",
                                   self.end_owed, m.owed, m.outbox.rows(), self.trace[-30:])


Model.TestCase.settings = settings(
    max_examples=int(os.environ.get("BOTON_FUZZ_EXAMPLES", 300)),
    stateful_step_count=int(os.environ.get("BOTON_FUZZ_STEPS", 60)), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_model = Model.TestCase
