"""The simulated phone network: routing, call outcomes, SMS, and the event log.

A fake modem stands in for the SIM800 here so the network's own rules are tested alone;
test_sim800.py drives the two together.
"""
import json

import pytest

from boton.sim.clock import ManualClock, Scheduler
from boton.sim.network import PhoneNetwork

DEVICE = "+524490000042"
C4 = "+524499100000"
CONTACT = "+524491112233"
UNKNOWN = "+524499946605"  # a valid number the network was not told about


class FakeModem:
    """Records what the network tells a device."""

    def __init__(self, number):
        self.number = number
        self.reachable = True
        self.in_call = False
        self.audio = {"mic_gain": 15, "speaker_level": 0, "ringer_level": 0}
        self.got = []
        self.accept_sms = True

    def net_alerting(self, call):
        self.got.append(("alerting", call.id))

    def net_connected(self, call):
        self.got.append(("connected", call.id))

    def net_released(self, call, code):
        self.got.append(("released", call.id, code))

    def net_incoming_call(self, call):
        self.got.append(("incoming", call.id, call.caller))

    def net_incoming_sms(self, sender, text):
        self.got.append(("sms", sender, text))
        return self.accept_sms

    def net_conditions_changed(self):
        self.got.append(("conditions",))


@pytest.fixture
def world(tmp_path):
    clock = ManualClock()
    sched = Scheduler(clock)
    net = PhoneNetwork(sched, log_path=tmp_path / "net.jsonl")
    net.add_c4(C4, answer_after_s=3.0)
    net.add_contact(CONTACT)
    modem = FakeModem(DEVICE)
    net.attach(DEVICE, modem)
    yield clock, sched, net, modem, tmp_path / "net.jsonl"
    net.close()


def test_the_network_log_is_readable_by_its_owner_only(world):
    # it holds every SMS whole (her alias, her position's maps link) and every number: a
    # rehearsal with her contacts' real numbers (as the guide advises) left them 0644
    clock, sched, net, modem, log = world
    net.submit_sms(DEVICE, CONTACT, "Ubicacion https://maps.google.com/?q=21.88,-102.29")
    assert log.stat().st_mode & 0o777 == 0o600


def kinds(net):
    return [e["kind"] for e in net.events]


def test_every_event_is_one_flushed_json_line(world):
    clock, sched, net, modem, log = world
    net.submit_sms(DEVICE, C4, "Alerta: botón presionado")
    net.submit_sms(DEVICE, CONTACT, "Ubicación https://maps.google.com/?q=21.88,-102.29")
    # Read while the network still has the file open: each line must already be there.
    lines = log.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == net.events
    first = json.loads(lines[0])
    assert first == {"kind": "sms", "t": 1000.0, "from": DEVICE, "to": C4,
                     "text": "Alerta: botón presionado", "delivered": True}
    assert net.subscribers[C4].inbox == [(1000.0, DEVICE, "Alerta: botón presionado")]


def test_subscribers_are_told_of_each_event_even_if_one_fails(world):
    clock, sched, net, modem, log = world
    seen = []
    net.subscribe(lambda e: 1 / 0)
    unsubscribe = net.subscribe(seen.append)
    net.submit_sms(DEVICE, C4, "uno")
    unsubscribe()
    net.submit_sms(DEVICE, C4, "dos")
    assert [e["text"] for e in seen] == ["uno"]
    assert len(net.events) == 2


def test_answered_call_timeline_duration_and_audio(world):
    clock, sched, net, modem, log = world
    call = net.place_call(DEVICE, C4)
    clock.advance(sched, 2.9)
    assert kinds(net) == ["call_start"]
    clock.advance(sched, 0.2)   # 3.1 s: routed, the C4 phone rings
    assert kinds(net)[-1] == "ringing" and ("alerting", call.id) in modem.got
    clock.advance(sched, 2.9)   # 6.0 s: answered 3 s after it started ringing
    assert kinds(net)[-1] == "call_connected" and ("connected", call.id) in modem.got
    clock.advance(sched, 20.0)
    net.hangup(C4)              # the operator hangs up
    rec = net.call_records()[-1]
    assert rec["answered"] is True and rec["result"] == "answered"
    assert rec["duration_s"] == pytest.approx(20.0)
    assert rec["ended_by"] == C4
    assert rec["audio"] == {"mic_gain": 15, "speaker_level": 0, "ringer_level": 0}
    assert rec["cause"] == 16  # normal call clearing
    assert modem.got[-1] == ("released", call.id, "NO CARRIER")
    assert kinds(net) == ["call_start", "ringing", "call_connected", "call_end", "call"]


@pytest.mark.parametrize("behaviour,result,code,after", [
    ("busy", "busy", "BUSY", 3.0),
    ("no_answer", "no_answer", "NO ANSWER", 3.0 + 30.0),
    ("reject", "rejected", "BUSY", 3.0 + 3.0),
    ("unreachable", "unreachable", "NO CARRIER", 3.0),
])
def test_call_outcomes_by_behaviour(world, behaviour, result, code, after):
    clock, sched, net, modem, log = world
    net.set_behaviour(C4, behaviour)
    call = net.place_call(DEVICE, C4)
    clock.advance(sched, after - 0.01)
    assert not net.call_records()
    clock.advance(sched, 0.02)
    rec = net.call_records()[-1]
    assert (rec["result"], rec["answered"], rec["duration_s"]) == (result, False, 0.0)
    assert modem.got[-1] == ("released", call.id, code)


def test_override_beats_the_subscribers_behaviour_once(world):
    clock, sched, net, modem, log = world
    net.place_call(DEVICE, C4, override="busy")
    clock.advance(sched, 5)
    net.place_call(DEVICE, C4)
    clock.advance(sched, 7)
    assert [r["result"] for r in net.call_records()] == ["busy"]
    assert net.live_calls()[0].state == "active"


def test_invalid_number_and_no_coverage_are_unreachable(world):
    clock, sched, net, modem, log = world
    call = net.place_call(DEVICE, "+5212345")  # not an assigned number anywhere
    clock.advance(sched, 4)
    assert modem.got[-1] == ("released", call.id, "NO CARRIER")
    net.set_coverage(False)
    net.place_call(DEVICE, C4)
    net.place_call(DEVICE, UNKNOWN)  # valid, but the network cannot route anything now
    clock.advance(sched, 4)
    records = net.call_records()
    assert [r["result"] for r in records] == ["unreachable"] * 3
    assert [r["cause"] for r in records] == [1, 20, 1]  # unassigned; absent; unassigned
    assert {"kind": "coverage", "t": 1004.0, "ok": False} in net.events
    assert ("conditions",) in modem.got
    assert not [e for e in net.events if e["kind"] == "phone"]  # no phone was made up


def test_any_valid_number_reaches_a_phone_that_answers(world):
    clock, sched, net, modem, log = world
    call = net.place_call(DEVICE, UNKNOWN)
    clock.advance(sched, 3.0)  # routed: the network creates the phone and it rings
    phone = [e for e in net.events if e["kind"] == "phone"]
    assert phone == [{"kind": "phone", "t": 1003.0, "number": UNKNOWN, "origin": "auto",
                      "behaviour": "answer", "answer_after_s": net.auto_answer_after_s,
                      "hangup_after_s": None}]
    clock.advance(sched, net.auto_answer_after_s)
    assert call.state == "active" and ("connected", call.id) in modem.got
    clock.advance(sched, 600)  # by default it stays on the line until the device hangs up
    assert call.state == "active"
    net.release(call, DEVICE)
    rec = net.call_records()[-1]
    assert (rec["to"], rec["result"], rec["ended_by"]) == (UNKNOWN, "answered", DEVICE)
    # The same phone the next time: created once, and logged as a JSON line like the rest.
    net.place_call(DEVICE, UNKNOWN)
    clock.advance(sched, 10)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [e["kind"] for e in lines].count("phone") == 1


def test_a_national_number_reaches_the_same_phone_as_its_e164_form(world):
    clock, sched, net, modem, log = world
    net.script_phone(UNKNOWN, "busy")
    call = net.place_call(DEVICE, "4499946605")  # dialled without +52
    clock.advance(sched, 3.1)
    assert net.call_records()[-1]["result"] == "busy"
    assert modem.got[-1] == ("released", call.id, "BUSY")
    assert net.submit_sms(DEVICE, "449 994 6605", "hola") is True
    assert net.subscribers[UNKNOWN].inbox == [(1003.1, DEVICE, "hola")]


def test_sms_to_an_unknown_valid_number_is_delivered_to_its_phone(world):
    clock, sched, net, modem, log = world
    assert net.submit_sms(DEVICE, UNKNOWN, "Alerta PRUEBA") is True
    assert net.sms()[-1]["delivered"] is True
    assert net.subscribers[UNKNOWN].inbox == [(1000.0, DEVICE, "Alerta PRUEBA")]
    assert [e["kind"] for e in net.events] == ["phone", "sms"]


@pytest.mark.parametrize("behaviour,result,code", [
    ("busy", "busy", "BUSY"),
    ("no_answer", "no_answer", "NO ANSWER"),
    ("reject", "rejected", "BUSY"),
    ("unreachable", "unreachable", "NO CARRIER"),
])
def test_a_scripted_number_behaves_as_scripted(world, behaviour, result, code):
    clock, sched, net, modem, log = world
    net.script_phone(UNKNOWN, behaviour)
    assert net.events[-1]["kind"] == "phone" and net.events[-1]["origin"] == "scripted"
    assert net.events[-1]["behaviour"] == behaviour
    call = net.place_call(DEVICE, UNKNOWN)
    clock.advance(sched, 3.0 + 30.0 + 0.1)
    rec = net.call_records()[-1]
    assert (rec["result"], rec["answered"]) == (result, False)
    assert modem.got[-1] == ("released", call.id, code)
    assert not [e for e in net.events if e.get("origin") == "auto"]


def test_scripted_answer_delay_and_stay(world):
    clock, sched, net, modem, log = world
    net.script_phone(UNKNOWN, "answer", answer_after_s=8.0, hangup_after_s=20.0)
    call = net.place_call(DEVICE, UNKNOWN)
    clock.advance(sched, 3.0 + 7.9)
    assert call.state == "alerting"
    clock.advance(sched, 0.2)
    assert call.state == "active"
    clock.advance(sched, 20.0)
    rec = net.call_records()[-1]
    assert (rec["result"], rec["ended_by"]) == ("answered", UNKNOWN)
    assert rec["duration_s"] == pytest.approx(20.0)


def test_scripting_a_builtin_c4_keeps_it_and_a_device_cannot_be_scripted(world):
    clock, sched, net, modem, log = world
    net.script_phone(C4, "busy")
    assert net.subscribers[C4].kind == "c4" and net.subscribers[C4].behaviour == "busy"
    with pytest.raises(ValueError, match="device's own number"):
        net.script_phone(DEVICE, "busy")
    with pytest.raises(ValueError, match="behaviour must be one of"):
        net.script_phone(UNKNOWN, "maybe")


def test_auto_phones_can_be_turned_off_and_take_the_networks_stay():
    clock = ManualClock()
    sched = Scheduler(clock)
    strict = PhoneNetwork(sched, auto_phones=False)
    strict.attach(DEVICE, FakeModem(DEVICE))
    strict.place_call(DEVICE, UNKNOWN)
    clock.advance(sched, 4)
    assert strict.call_records()[-1]["result"] == "unreachable"
    net = PhoneNetwork(sched, auto_hangup_after_s=15.0)
    net.attach(DEVICE, FakeModem(DEVICE))
    net.place_call(DEVICE, UNKNOWN)
    clock.advance(sched, 3.0 + net.auto_answer_after_s + 15.0)
    rec = net.call_records()[-1]
    assert (rec["result"], rec["ended_by"], rec["duration_s"]) == ("answered", UNKNOWN, 15.0)


def test_coverage_loss_drops_a_live_call(world):
    clock, sched, net, modem, log = world
    call = net.place_call(DEVICE, C4)
    clock.advance(sched, 10)
    net.set_coverage(False)
    rec = net.call_records()[-1]
    assert rec["result"] == "dropped" and rec["answered"] is True and rec["ended_by"] == "network"
    assert rec["cause"] == 41
    assert rec["duration_s"] == pytest.approx(4.0)
    assert modem.got[-2] == ("released", call.id, "NO CARRIER")


def test_scripted_phone_hangs_up_by_itself(world):
    clock, sched, net, modem, log = world
    net.set_behaviour(C4, "answer", hangup_after_s=12.0)
    net.place_call(DEVICE, C4)
    clock.advance(sched, 6.0 + 12.0)
    rec = net.call_records()[-1]
    assert rec["result"] == "answered" and rec["duration_s"] == pytest.approx(12.0)


def test_device_giving_up_is_no_answer_and_it_is_not_told_again(world):
    clock, sched, net, modem, log = world
    call = net.place_call(DEVICE, C4)
    clock.advance(sched, 4)
    net.release(call, DEVICE)  # ATH while it rings
    rec = net.call_records()[-1]
    assert (rec["result"], rec["ended_by"]) == ("no_answer", DEVICE)
    assert not [g for g in modem.got if g[0] == "released"]


def test_c4_calls_the_device_back(world):
    clock, sched, net, modem, log = world
    call = net.call_device(C4, DEVICE)
    clock.advance(sched, 3.0)
    assert modem.got[-1] == ("incoming", call.id, C4)
    net.answer(call, DEVICE)  # the modem's ATA
    clock.advance(sched, 30)
    net.hangup(C4)
    rec = net.call_records()[-1]
    assert rec["from"] == C4 and rec["to"] == DEVICE
    assert rec["result"] == "answered" and rec["duration_s"] == pytest.approx(30)
    assert rec["audio"] == modem.audio


def test_call_to_a_busy_or_unreachable_device(world):
    clock, sched, net, modem, log = world
    modem.in_call = True
    net.call_device(C4, DEVICE)
    clock.advance(sched, 4)
    modem.in_call, modem.reachable = False, False
    net.call_device(C4, DEVICE)
    clock.advance(sched, 4)
    assert [r["result"] for r in net.call_records()] == ["busy", "unreachable"]


def test_sms_to_device_delivery_and_failure(world):
    clock, sched, net, modem, log = world
    net.sms_to_device(C4, DEVICE, "UBICACION")
    clock.advance(sched, 1.9)
    assert not net.sms()
    clock.advance(sched, 0.2)
    assert modem.got[-1] == ("sms", C4, "UBICACION")
    modem.reachable = False
    net.sms_to_device(C4, DEVICE, "otra")
    clock.advance(sched, 3)
    assert [(e["text"], e["delivered"]) for e in net.sms(to=DEVICE)] == [("UBICACION", True), ("otra", False)]


def test_failed_submission_is_recorded_with_its_error(world):
    clock, sched, net, modem, log = world
    assert net.submit_sms(DEVICE, C4, "x", error=500) is False
    assert net.sms()[-1]["error"] == 500 and net.sms()[-1]["delivered"] is False
    assert net.submit_sms(DEVICE, "+15550000000", "y") is True  # SMSC accepts any number
    assert net.sms()[-1]["delivered"] is False


def test_time_scale_scales_network_delays():
    clock = ManualClock()
    sched = Scheduler(clock, time_scale=0.1)
    net = PhoneNetwork(sched)
    net.add_c4(C4, answer_after_s=3.0)
    modem = FakeModem(DEVICE)
    net.attach(DEVICE, modem)
    net.place_call(DEVICE, C4)
    clock.advance(sched, 0.61)  # 3 s + 3 s at one tenth
    assert net.live_calls()[0].state == "active"
