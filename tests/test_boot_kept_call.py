"""firmware/lib/appboot.kept_call: with no alert saved, the boot starts the machine before
the modem is up (a press then is acted on at once), so a call the modem kept through the
reset is looked at afterwards. The boot order itself runs on the rig
(tests/scenarios/test_sc_reset.py)."""
import asyncio
import sys

import pytest

from boton.paths import FIRMWARE

sys.path[:0] = [str(FIRMWARE / "lib"), str(FIRMWARE)]  # the firmware's modules under CPython
import appboot  # noqa: E402


class FakeRadio:
    def __init__(self, kept):
        self.kept = kept
        self.call_active = self.call_out = False
        self.watched = False
        self.hangups = []
        self._dials = 1           # her dial, waiting at the gate
        self._adopt = None

    async def call_survived(self):
        return self.kept

    def watch_call(self):
        self.watched = True

    async def hangup(self, ours=True):
        self.call_out = False
        self.hangups.append(ours)


class FakeLog:
    def __init__(self):
        self.lines = []

    def add(self, event, detail="-"):
        self.lines.append((event, detail))


class FakeMachine:
    def __init__(self, active):
        self.active = active


class FakeApp:
    def __init__(self, kept, active):
        self.radio = FakeRadio(kept)
        self.machine = FakeMachine(active)
        self.log = FakeLog()
        self.posted = []

    def post(self, ev):
        self.posted.append(ev)


@pytest.mark.parametrize("kept", ["active", "alerting", "callback"])
def test_a_call_kept_by_an_idle_button_is_the_machines(kept):
    app = FakeApp(kept, active=False)
    asyncio.run(appboot.kept_call(app, {"v": 1, "active": False}))
    # a call-back is up: the machine hears "active" after call_kept said whose it is
    assert app.posted == [("call_kept", kept), ("call_state", "active" if kept == "callback" else kept, None)]
    r = app.radio
    assert r.call_out and r.watched and r.call_active == (kept != "alerting") and not r.hangups


def test_a_kept_call_back_is_hung_up_when_she_pressed_during_the_set_up():
    # a call to her (a caller ID said C4) kept through the reset, and she pressed: her new
    # alert calls C4 itself (CallState.drop_callback), after the call-back is hung up
    app = FakeApp("callback", active=True)
    app.radio._answered_id = 1
    asyncio.run(appboot.kept_call(app, {"v": 1, "active": False}))
    r = app.radio
    assert r.hangups == [False] and r._adopt is None and r._answered_id is None
    assert app.posted == [] and app.log.lines == [("callback_dropped", "press")]


def test_a_kept_call_is_her_dials_when_she_pressed_during_the_set_up():
    # her alert's dial waits at the radio's gate: it takes the kept call (C4's call-back)
    # instead of an ATD over it (which holds C4) or a hang-up (which cuts C4 off)
    app = FakeApp("active", active=True)
    asyncio.run(appboot.kept_call(app, {"v": 1, "active": False}))
    r = app.radio
    assert r.hangups == [] and r._adopt == (1, "active") and r.call_out and r.call_active
    assert app.posted == [] and app.log.lines == [("call_kept", "alert")]


class Modem:
    def __init__(self):
        self.sent = []

    async def cmd(self, command, timeout, **kw):
        self.sent.append(command)
        return "OK", None, ()


def _radio():
    import radio
    r = radio.Radio.__new__(radio.Radio)
    r.ok, r.set_up = asyncio.Event(), asyncio.Event()
    r.ok.set()
    r.set_up.set()
    r._end_cause = r._answered_id = r._adopt = None
    r._hangups = r._dials = 0
    r.modem = Modem()
    r.posted = []
    r.post = r.posted.append
    r.watch_call = lambda: None
    return r


def test_the_waiting_dial_takes_the_kept_call_and_sends_no_atd(monkeypatch):
    import radio
    # MicroPython's names, as the firmware uses them
    monkeypatch.setattr(asyncio, "wait_for_ms", lambda aw, ms: asyncio.wait_for(aw, ms / 1000),
                        raising=False)
    monkeypatch.setattr(radio, "time", type("T", (), {"ticks_ms": staticmethod(lambda: 0)}))

    async def story():
        r = _radio()
        r.set_up.clear()                        # the boot's set-up
        dial = asyncio.create_task(r.dial("+524499100000"))
        await asyncio.sleep(0)
        r._adopt = (r._dials, "active")         # appboot.kept_call
        r.set_up.set()
        await dial
        later = _radio()                        # no kept call: the dial goes out
        await later.dial("+524499100000")
        return r, later
    r, later = asyncio.run(story())
    assert r.modem.sent == [] and r.posted == [("call_state", "active", None)] and r._adopt is None
    assert later.modem.sent == ["ATD+524499100000;"]


def test_the_call_of_a_delivery_test_cut_short_is_hung_up():
    # the machine dropped the test's state (AlertMachine.resumes): its call is no one's
    app = FakeApp("active", active=False)
    asyncio.run(appboot.kept_call(app, {"v": 1, "active": True, "test": True}))
    assert app.radio.hangups == [False] and app.posted == []


def test_no_kept_call_changes_nothing():
    app = FakeApp(None, active=True)
    asyncio.run(appboot.kept_call(app, {"v": 1, "active": False}))
    assert app.posted == [] and app.log.lines == [] and not app.radio.hangups


def test_safe_mode_does_not_carry_on_a_delivery_test_cut_short(tmp_path, monkeypatch):
    # bootcheck.alert_running: what safe mode carries on after a crash loop. A test alert
    # saved by an interrupted `boton test-call` is over, as AlertMachine.resumes says
    import json

    import bootcheck
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"c4_numbers": ["+524499100000"]}))
    for test, running in ((True, False), (False, True)):
        (tmp_path / "alert.json").write_text(json.dumps(
            {"v": 1, "active": True, "test": test, "elapsed_ms": 20000}))
        assert bootcheck.alert_running() is running
    (tmp_path / "config.json").write_text(json.dumps({"test_mode": True}))  # a bench button
    (tmp_path / "alert.json").write_text(json.dumps({"v": 1, "active": True, "test": True}))
    assert bootcheck.alert_running() is True
