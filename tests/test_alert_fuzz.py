"""firmware/lib/alert.py under random event sequences (hypothesis, stateful), against rules
that must hold whatever the modem, the network, C4 and strangers do.

The driver here is the radio as the machine sees it: it keeps the timers the machine sets
and fires them in time, holds one modem call (ours, ringing at C4, answered, or a call
coming in) and reports its progress only as a modem can, reports the one SMS in flight
(taken, failed, refused for good, or never: the machine's own timeout), and resets the
ESP32 (the machine is rebuilt from its last persisted state; the modem may keep the call).
Around that, any order of button presses, fixes, cells, battery and power warnings,
signal, network and voice changes, SMS commands from C4, her contacts or strangers, and
time, across the 2^30 ms wrap of the ESP32's ticks.

Rules checked after every event:
- the machine never fails an event ("error" log) nor refuses a move the modem made;
- a dial goes only to a C4 number (or 911 if allowed), only during an alert, only with
  covert audio first and no other call up; an answer likewise covert;
- an active alert always has a way to reach C4: a call up, a redial armed, or C4 has
  answered and hung up; a call ringing out always has its dial timeout; the alert has its
  end armed;
- SMS go one at a time, in the GSM-7 alphabet and one 160-character segment, never to a
  number outside her contacts, C4, the authorised senders and the programme; marked
  PRUEBA exactly on a training button; none says the opposite of the alert's state
  (CANCELADA during an alert, "pidio ayuda" after it);
- the delivery test's verdict comes once a boot, only on a training button;
- an SMS waiting always has a way out: one in flight (with its timeout) or a retry armed;
- every persisted state survives JSON and is taken back by a new machine, and holds her
  position or cell only during an alert.
And at the end: once the network takes every SMS and C4 answers, a running alert reaches
everyone within a location update's time.

Pure CPython (hypothesis): the machine's code is the firmware's, sans-IO; the scripted
scenarios in test_alert.py run it on MicroPython too.
"""
import json
import os
import sys

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from boton.paths import FIRMWARE

sys.path.insert(0, str(FIRMWARE / "lib"))
from alert import AlertMachine  # noqa: E402
from alertsms import same_number  # noqa: E402
from gesture import ticks_add  # noqa: E402
from gsm7 import is_gsm7  # noqa: E402

C4, C4B = "+524491110000", "+524492220000"
CONTACTS = ["+524493330001", "+524493330002", "+524493330003", "+524493330004", "+524493330005"]
AUTHORIZED = "+524495550000"
PROGRAMME = "+524496660000"
STRANGER = "+524497770000"
PIN = "4321"
SENDERS = [C4, C4B, "4491110000", "044 449 111 0000", CONTACTS[0], AUTHORIZED, STRANGER, ""]
COMMANDS = ["CANCELAR " + PIN, "ESTADO " + PIN, "UBICACION " + PIN, "cancelar " + PIN,
            "CANCELAR 0000", "UBICACION", "hola", "", "CANCELAR  %s  " % PIN, "ubicación " + PIN]
CAUSES = ["remote", "busy", "no_answer", "no_carrier", "dropped", "error", None]
CANCEL_WORDS = ("CANCELADA", "cerrada por C4", "termino el envio")
LOCATION_WORDS = ("ALERTA", "ACTUALIZACION", "PRUEBA ALERTA", "PRUEBA ACTUALIZACION")
PERIOD = 1 << 30
MAX_TIMER_MS = 5 * 86400 * 1000

configs = st.fixed_dictionaries({
    "contacts": st.integers(1, 5).map(lambda k: CONTACTS[:k]),
    "c4_numbers": st.sampled_from([[C4], [C4, C4B]]),
    "allow_911": st.booleans(),
    "sms_c4": st.booleans(),
    "authorized": st.sampled_from([[], [AUTHORIZED]]),
    "programme_number": st.sampled_from(["", PROGRAMME]),
    "test_mode": st.booleans(),
    "unsent_warn_s": st.sampled_from([0, 90]),
    "callback_window_s": st.sampled_from([-1, 0, 3600]),
    "max_alert_s": st.sampled_from([600, 3600]),
    "daily_status_s": st.sampled_from([3600, 86400]),
    "redial_backoff_s": st.sampled_from([[5, 10, 20], [1], []]),
    "attempts_per_number": st.integers(1, 4),
    "cycle_backoff_s": st.sampled_from([1, 60]),
    "dial_timeout_s": st.sampled_from([20, 60]),
    "update_every_s": st.sampled_from([60, 300]),
    "sms_retries": st.integers(0, 3),
    "low_battery_pct": st.sampled_from([[20, 10], [15], []]),
    "vibrate": st.booleans(),
})
fixes = st.fixed_dictionaries({
    "lat": st.floats(-90, 90, allow_nan=False), "lon": st.floats(-180, 180, allow_nan=False),
    "hdop": st.one_of(st.none(), st.floats(0, 99, allow_nan=False)),
    "sats": st.integers(0, 24), "valid": st.booleans(),
})
cells = st.one_of(st.none(), st.fixed_dictionaries({
    "mcc": st.just(334), "mnc": st.integers(0, 99), "lac": st.integers(0, 65535),
    "cid": st.integers(0, 65535)}))


class AlertUnderFire(RuleBasedStateMachine):
    @initialize(cfg=configs, t0=st.one_of(st.integers(0, PERIOD - 1),
                                          st.integers(PERIOD - 600_000, PERIOD - 1)))
    def boot(self, cfg, t0):
        self.cfg = dict(cfg, alias="Luna", device_id="BS-0042", fw="1.0.0", pin=PIN)
        self.t = 0              # story time, ms; the machine sees ticks_add(t0, t)
        self.t0 = t0
        self.timers = {}        # name -> due story time
        self.call = None        # the modem's call: {"st": ..., "hanging": bool}
        self.inflight = None    # n of the SMS the modem is sending
        self.saved = None       # the last persisted state, as JSON gives it back
        self.m = AlertMachine(self.cfg)
        self.test_done = False
        c = self.cfg    # who may get an SMS from her button: never a stranger
        self.allowed = c["contacts"] + c["c4_numbers"] + c["authorized"] + [c["programme_number"]]
        self._do(self.m.start(self.now()))

    # ------------------------------------------------------------ the driver
    def now(self):
        return ticks_add(self.t0, self.t)

    def ev(self, *e):
        if e[0] == "timer" and e[1] == "sms_timeout":
            self.inflight = None    # the machine gives the send up; a late report is stale
        return self._do(self.m.handle(tuple(e), self.now()), e)

    def _do(self, acts, ev=None):
        covert = False
        for a in acts:
            k = a[0]
            if k == "log":
                assert a[1] != "error", (ev, a)
                assert a[1] != "call_refused", (ev, a, self.call)
            elif k == "covert_audio":
                covert = True
            elif k == "dial":
                assert covert, acts
                assert self.m.active, acts
                assert a[1] in self.m.dial_list, a
                assert self.call is None or self.call["hanging"], (self.call, acts)
                self.call = {"st": "dialing", "hanging": False}
            elif k == "answer":
                assert covert, acts
                assert self.call is not None and self.call["st"] == "incoming", (self.call, acts)
                self.call = {"st": "answering", "hanging": False}
            elif k == "reject":
                if self.call is not None and self.call["st"] == "incoming":
                    self.call = None
            elif k == "hangup":
                assert self.call is not None, acts
                self.call["hanging"] = True
            elif k == "send_sms":
                _, number, text, n = a
                assert self.inflight is None, ("two SMS at once", acts)
                assert any(same_number(number, x) for x in self.allowed), a
                assert is_gsm7(text), text
                assert len(text) <= 160, (len(text), text)
                # an alert's news never contradicts what is true when it goes out: a
                # contact told "CANCELADA" during a new alert believes she is safe
                # a training button's SMS are marked, a real one's never: nobody dispatches
                # on PRUEBA
                assert text.startswith("PRUEBA") == self.cfg["test_mode"], text
                if any(w in text for w in CANCEL_WORDS):
                    assert not self.m.active, ("cancel text during an alert", text, acts)
                if any(text.startswith(w) for w in LOCATION_WORDS):
                    assert self.m.active, ("alert text after the alert", text, acts)
                self.inflight = n
            elif k == "test_done":          # the delivery test's verdict: once a boot
                assert self.cfg["test_mode"] and not self.test_done, a
                self.test_done = True
            elif k == "set_timer":
                assert isinstance(a[2], int) and 0 < a[2] <= MAX_TIMER_MS, a
                self.timers[a[1]] = self.t + a[2]
            elif k == "cancel_timer":
                self.timers.pop(a[1], None)
            elif k == "persist":
                if not a[1]["active"]:      # her position stays on the flash only in an alert
                    assert a[1]["fix"] is None and a[1]["cell"] is None, a
                self.saved = json.loads(json.dumps(a[1]))
                again = AlertMachine(self.cfg).from_state(self.saved, self.now())
                assert not [x for x in again if x[:2] == ("log", "state_ignored")], again
        return acts

    def _fire(self, name):
        self.t = self.timers.pop(name)
        self.ev("timer", name)

    def _advance(self, dt):
        end = self.t + dt
        while self.timers:
            name = min(self.timers, key=lambda k: self.timers[k])
            if self.timers[name] > end:
                break
            self._fire(name)
        self.t = max(self.t, end)

    # ------------------------------------------------------------- her button
    @rule()
    def press_alert(self):
        was = self.m.active
        line_free = self.call is None or self.call["hanging"]
        owed = self.m.calls.redial
        acts = self.ev("gesture", "alert")
        kinds = [a[0] for a in acts]
        if self.m.calls.redial and not owed:   # over a call-back: hung up, C4 dialled once it ends
            assert "hangup" in kinds and self.call["hanging"], acts
        if not was:
            if self.m.dial_list and line_free:
                assert "dial" in kinds, acts     # the call goes out at once
            if self.inflight is None:
                assert "send_sms" in kinds, acts   # her contacts are told at once

    @rule()
    def press_cancel(self):
        self.ev("gesture", "cancel")

    # ------------------------------------------------------------- the modem
    @precondition(lambda self: self.call is not None and not self.call["hanging"]
                  and self.call["st"] in ("dialing", "alerting", "answering"))
    @rule(answered=st.booleans())
    def call_progress(self, answered):
        # ours: dialing -> alerting (C4's phone rings) or straight to active; then
        # active (C4 answered). A call-back being picked up: active
        c = self.call
        c["st"] = "alerting" if c["st"] == "dialing" and not answered else "active"
        self.ev("call_state", c["st"])

    @precondition(lambda self: self.call is not None and self.call["st"] != "incoming")
    @rule(cause=st.sampled_from(CAUSES))
    def call_ends(self, cause):
        hanging = self.call["hanging"]
        self.call = None
        self.ev("call_state", "ended", None if hanging else cause)

    @precondition(lambda self: self.call is None)
    @rule(cause=st.sampled_from(CAUSES))
    def stray_call_end(self, cause):
        # a NO CARRIER / +CLCC end for no call of ours (a late or repeated report)
        self.ev("call_state", "ended", cause)

    @precondition(lambda self: self.call is None)
    @rule(number=st.sampled_from(SENDERS))
    def call_comes_in(self, number):
        self.call = {"st": "incoming", "hanging": False}
        acts = self.ev("incoming_call", number)
        kinds = [a[0] for a in acts]
        assert "answer" in kinds or "reject" in kinds, acts
        if "answer" in kinds:
            assert self.m.is_c4(number), (number, acts)

    @precondition(lambda self: self.inflight is not None)
    @rule(ok=st.booleans(), permanent=st.booleans())
    def sms_report(self, ok, permanent):
        n, self.inflight = self.inflight, None
        self.ev("sms_sent", n, ok, *([permanent] if not ok else []))

    @rule(n=st.integers(-2, 50), ok=st.booleans())
    def sms_report_stale(self, n, ok):
        if n != self.inflight:
            self.ev("sms_sent", n, ok)

    # ---------------------------------------------------------- the world
    @rule(fix=fixes)
    def fix(self, fix):
        self.ev("fix", fix)

    @rule(cell=cells)
    def cell(self, cell):
        self.ev("cell", cell)

    @rule(pct=st.integers(-5, 110))
    def battery(self, pct):
        self.ev("battery", pct)

    @rule(kind=st.sampled_from(["under_voltage", "power_down", "over_voltage", "other"]))
    def power_warning(self, kind):
        self.ev("power_warning", kind)

    @rule(rssi=st.integers(0, 99))
    def signal(self, rssi):
        self.ev("signal", rssi)

    @rule(up=st.booleans())
    def network(self, up):
        self.ev("network", up)

    @rule(ok=st.sampled_from([True, False, None]))
    def voice(self, ok):
        self.ev("voice", ok)

    @rule(sender=st.sampled_from(SENDERS), text=st.sampled_from(COMMANDS) | st.text(max_size=40),
          age=st.one_of(st.none(), st.integers(-100, 100_000)))
    def sms_command(self, sender, text, age):
        self.ev("sms_command", sender, text, age)

    # ---------------------------------------------------------------- time
    @rule(dt=st.integers(0, 120_000))
    def time_passes(self, dt):
        self._advance(dt)

    @precondition(lambda self: bool(self.timers))
    @rule()
    def next_timer(self):
        self._fire(min(self.timers, key=lambda k: self.timers[k]))

    # --------------------------------------------------------------- a reset
    @rule(keep=st.booleans(), gap_ms=st.one_of(st.none(), st.integers(0, 600_000)),
          t0=st.integers(0, PERIOD - 1))
    def esp32_resets(self, keep, gap_ms, t0):
        kept = None
        if self.call is not None and keep and not self.call["hanging"] \
                and self.call["st"] in ("dialing", "alerting", "active"):
            kept = self.call["st"]
        else:
            self.call = None    # the firmware hangs up what it does not keep
        self.m = AlertMachine(self.cfg)
        self.test_done = False
        self.timers = {}
        self.inflight = None    # what the modem was sending is never reported
        self.t0, self.t = t0, 0
        if self.saved:
            self._do(self.m.from_state(self.saved, self.now(), kept, gap_ms))
        self._do(self.m.start(self.now()))
        if kept:
            self.ev("call_state", kept, None)

    # ------------------------------------------------------------- in the end
    def teardown(self):
        # Whatever happened, once the network takes every SMS and C4 answers, a running
        # alert reaches everyone: each recipient is told (a location SMS taken) and C4
        # is on the line, within the next location update's time (or the alert ends).
        m = getattr(self, "m", None)
        if m is None or not m.active:
            return
        start = self.t
        for _ in range(1000):
            if not m.active:
                assert "max_alert" not in self.timers, "the alert ended before its time"
                return
            told = all(any(same_number(r, x) for x in m.told) for r in m.recipients())
            c4 = not m.dial_list or m.calls.connected or m.calls.done
            if told and c4 and self.inflight is None:
                return
            if self.inflight is not None:
                self.sms_report(True, False)
            elif self.call is not None and self.call["st"] == "incoming":
                self.call = None
            elif self.call is not None and not self.call["hanging"] and self.call["st"] != "active":
                self.call_progress(True)
            elif self.call is not None and self.call["hanging"]:
                self.call_ends(None)
            else:
                assert self.timers, "nothing left to happen"
                self.next_timer()
            assert self.t - start <= m.cfg["update_every_s"] * 1000 + 60_000, (
                "not everyone reached", m.told, m.recipients(), m.calls.state, self.timers)
        raise AssertionError("no end to the drain")

    # ------------------------------------------------------------ invariants
    @invariant()
    def an_alert_always_has_a_way_to_c4(self):
        m = getattr(self, "m", None)
        if m is None or not m.active or not m.dial_list or m.calls.done:
            return
        assert self.call is not None or "redial" in self.timers, (m.calls.state, self.timers)

    @invariant()
    def a_call_ringing_out_has_its_timeout(self):
        m = getattr(self, "m", None)
        if m is not None and m.calls.ringing_out():
            assert "dial_timeout" in self.timers, (m.calls.state, self.timers)

    @invariant()
    def an_alert_has_its_end_armed(self):
        m = getattr(self, "m", None)
        if m is not None and m.active:
            assert "max_alert" in self.timers, self.timers

    @invariant()
    def a_waiting_sms_has_a_way_out(self):
        m = getattr(self, "m", None)
        if m is None or not m.outbox.items:
            return
        if m.outbox.inflight is not None:
            assert "sms_timeout" in self.timers, self.timers
        else:
            assert "sms_retry" in self.timers, (m.outbox.rows(), self.timers)

    @invariant()
    def the_machine_and_the_modem_agree_on_the_call(self):
        m = getattr(self, "m", None)
        if m is None:
            return
        if self.call is None:
            assert m.calls.state == "idle", m.calls.state
        elif self.call["hanging"]:
            assert m.calls.state == "hangup", m.calls.state
        else:
            assert m.calls.state == self.call["st"], (m.calls.state, self.call)


# BOTON_FUZZ_EXAMPLES / BOTON_FUZZ_STEPS for a longer hunt (8,000 x 100 took 5 min)
AlertUnderFire.TestCase.settings = settings(
    max_examples=int(os.environ.get("BOTON_FUZZ_EXAMPLES", 300)),
    stateful_step_count=int(os.environ.get("BOTON_FUZZ_STEPS", 60)), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_alert_under_fire = AlertUnderFire.TestCase
