"""RefModem (the HIL reference modem driver) against simulated SIM800s on one network, and
the scenarios run through it on the rig (--virtual-ref-modem)."""
import subprocess
import sys
from pathlib import Path

import pytest

from boton.hil.refmodem import RefModem, RefModemError, same_number
from boton.hil.simbench import SimBench

DEVICE, REF = "+524490000042", "+524499100000"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pair():
    """Two simulated SIM800s, each driven by a RefModem: one over socket://, one over a pty."""
    with SimBench(time_scale=0.05) as bench:
        _, ba = bench.add_modem(DEVICE)
        _, bb = bench.add_modem(REF, bridge="pty")
        a, b = RefModem(ba.url, DEVICE), RefModem(bb.url, REF)
        a.open(timeout=20)
        b.open(timeout=20)
        yield bench, a, b
        a.close()
        b.close()


def test_sms_both_ways(pair):
    _, a, b = pair
    mr = a.send_sms(REF, "UBICACION 4821")
    assert mr >= 1
    got = b.wait_event(lambda e: e["kind"] == "sms" and e["to"] == REF, timeout=10)
    assert got["text"] == "UBICACION 4821" and same_number(got["from"], DEVICE)
    b.send_sms(DEVICE, "Ubicacion GPS: https://maps.google.com/?q=21.88234,-102.29143")
    got = a.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEVICE, timeout=10)
    assert got["text"].endswith("q=21.88234,-102.29143")
    assert not a.cmd("AT+CMGL=\"ALL\"")[1]  # read messages are deleted from the SIM


def test_incoming_call_answered_then_hung_up(pair):
    _, a, b = pair
    b.set_incoming("answer", answer_after_s=0.1)
    a.dial(REF)
    con = b.wait_event(lambda e: e["kind"] == "call_connected", timeout=10)
    assert same_number(con["from"], DEVICE) and con["to"] == REF
    a.wait_event(lambda e: e["kind"] == "call_connected", timeout=10)
    b.hangup()
    end = b.wait_event(lambda e: e["kind"] == "call", timeout=10)
    assert end["answered"] and end["result"] == "answered" and end["ended_by"] == REF
    other = a.wait_event(lambda e: e["kind"] == "call", timeout=10)
    assert other["answered"] and other["ended_by"] == "remote" and other["code"] == "NO CARRIER"


def test_a_reference_modem_ends_its_call_when_its_session_closes(pair):
    # A bench resets the board between scenarios, not the modems: a call left up by one
    # scenario (the board's module keeps it through an EN reset) failed the next ones' dials
    _, a, b = pair
    b.set_incoming("answer", answer_after_s=0.1)
    a.dial(REF)
    a.wait_event(lambda e: e["kind"] == "call_connected", timeout=10)
    b.close()
    end = a.wait_event(lambda e: e["kind"] == "call", timeout=10)
    assert end["answered"] and end["ended_by"] == "remote"


def test_a_reference_modem_opened_ends_the_call_a_killed_session_left_up(pair):
    _, a, b = pair
    b.set_incoming("answer", answer_after_s=0.1)
    a.dial(REF)
    a.wait_event(lambda e: e["kind"] == "call_connected", timeout=10)
    b._closing = True  # killed: its port closed, nothing said to the module
    b._jobs.put(None)
    b.ser.close()
    again = RefModem(b.port, REF).open(timeout=20)
    try:
        end = a.wait_event(lambda e: e["kind"] == "call", timeout=10)
        assert end["answered"] and end["ended_by"] == "remote"
        assert not again.cmd("AT+CLCC", check=False)[1]
    finally:
        again.close()


def test_reject_is_busy_for_the_caller_and_once_policy(pair):
    _, a, b = pair
    b.set_incoming("answer", answer_after_s=0.1)
    b.set_incoming("reject", once=True)
    a.dial(REF)
    first = a.wait_event(lambda e: e["kind"] == "call", timeout=10)
    assert first["result"] == "busy" and not first["answered"]
    rejected = b.wait_event(lambda e: e["kind"] == "call", timeout=10)
    assert rejected["result"] == "rejected"
    mark = a.mark()
    a.dial(REF)  # the once-policy is used up: answered now
    a.wait_event(lambda e: e["kind"] == "call_connected", after=mark, timeout=10)


def test_ignored_call_ends_no_answer(pair):
    _, a, b = pair
    b.set_incoming("ignore")
    a.dial(REF)
    end = a.wait_event(lambda e: e["kind"] == "call", timeout=10)
    assert end["result"] == "no_answer" and end["code"] == "NO ANSWER"
    assert b.wait_event(lambda e: e["kind"] == "call", timeout=10)["result"] == "no_answer"


def test_errors_are_reported_not_hung(pair):
    bench, a, _ = pair
    with pytest.raises(RefModemError, match="CME ERROR"):
        a.cmd("AT+NOSUCHTHING")
    bench.call(bench.network.subscribers[DEVICE].modem.cms_error, 42)
    with pytest.raises(RefModemError, match="Congestion"):
        a.send_sms(REF, "hola")
    assert a.events[-1]["kind"] == "sms" and a.events[-1]["error"].startswith("+CMS ERROR")


def test_open_fails_clearly_when_nothing_answers():
    with SimBench(time_scale=0.05) as bench:
        modem, bridge = bench.add_modem(DEVICE, power_on=False)
        ref = RefModem(bridge.url, DEVICE)
        with pytest.raises(RefModemError, match="does not answer AT"):
            ref.open(timeout=1.0)
        ref.close()


def test_scenarios_run_through_the_reference_modem_on_the_rig():
    """The hardware code path end to end: the firmware on the rig, C4 and contact played by a
    second simulated SIM800 that only RefModem's AT commands drive."""
    picks = ["tests/scenarios/test_sc_alert.py::test_c4_callback_is_answered_covertly",
             "tests/scenarios/test_sc_calls.py::test_busy_once_redials_after_backoff"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--virtual-ref-modem", "--modem-family", "sim800", *picks], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout
