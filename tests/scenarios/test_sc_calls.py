"""Calls that fail: BUSY, NO ANSWER, a dropped call, the signal lost mid-call. The device
redials with backoff, moves on to the secondary C4, and tries 911 only if allowed."""
import pytest
from faked_callback import her_press_hangs_it_up_and_calls_c4, hold_a_faked_c4_call


def _starts(network, mark, n, timeout):
    """The first n calls the device started after mark (waits for the n-th)."""
    def nth(_ev):
        return len(network.calls("call_start", frm=network.device_number, after=mark)) >= n
    network.wait_call("call_start", after=mark, timeout=timeout, where=nth)
    return network.calls("call_start", frm=network.device_number, after=mark)[:n]


def _gap_after_end(network, mark, start_ev):
    """Seconds between the end of the call before start_ev and start_ev."""
    ends = [e for e in network.calls("call", frm=network.device_number, after=mark)
            if e["t"] <= start_ev["t"]]
    return start_ev["t"] - ends[-1]["t"]


def test_busy_once_redials_after_backoff(dut, button, network, faults):
    faults.next_call_result("busy")
    mark = network.mark()
    button.alert()
    first = network.wait_call("call", frm=dut.number, after=mark, timeout=dut.within(90, 20))
    assert first["result"] in ("busy", "rejected") and not first["answered"]
    connected = network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=mark,
                                  timeout=dut.within(120, 20))
    starts = network.calls("call_start", frm=dut.number, after=mark)
    assert len(starts) == 2 and connected
    assert _gap_after_end(network, mark, starts[1]) >= dut.config["redial_backoff_s"][0] - 0.05


@pytest.mark.dut_config(attempts_per_number=3, redial_backoff_s=[1, 2], cycle_backoff_s=30)
def test_busy_backoff_grows_then_secondary_c4(dut, button, network):
    network.require(c4=2)
    network.set_c4("busy", network.c4[0])
    network.set_c4("busy", network.c4[1])
    mark = network.mark()
    button.alert()
    starts = _starts(network, mark, 4, timeout=dut.within(240, 30))
    assert [s["to"] for s in starts] == [network.c4[0]] * 3 + [network.c4[1]]
    gaps = [_gap_after_end(network, mark, s) for s in starts[1:]]
    back = dut.config["redial_backoff_s"]
    assert gaps[0] >= back[0] - 0.05 and gaps[1] >= back[1] - 0.05, gaps
    assert gaps[1] > gaps[0]          # the backoff grows
    assert gaps[2] >= back[0] - 0.05   # next number after the first backoff step
    assert not network.calls("call_start", to=network.emergency or "911", after=mark)


def _every_c4_busy(dut, button, network):
    network.require(c4=2)
    for n in network.c4:
        network.set_c4("busy", n)
    mark = network.mark()
    button.alert()
    return mark


@pytest.mark.dut_config(attempts_per_number=1, redial_backoff_s=[1], cycle_backoff_s=2,
                        allow_911=False)
def test_911_not_dialled_when_not_allowed(dut, button, network):
    mark = _every_c4_busy(dut, button, network)
    starts = _starts(network, mark, 3, timeout=dut.within(240, 30))
    # both C4 numbers, then the list starts over after cycle_backoff_s: never 911
    assert [s["to"] for s in starts] == [network.c4[0], network.c4[1], network.c4[0]]
    assert _gap_after_end(network, mark, starts[2]) >= dut.config["cycle_backoff_s"] - 0.05


@pytest.mark.dut_config(attempts_per_number=1, redial_backoff_s=[1], cycle_backoff_s=2,
                        allow_911=True)
def test_911_dialled_after_every_c4_when_allowed(dut, button, network):
    network.require(c4=2, emergency=True)
    mark = _every_c4_busy(dut, button, network)
    starts = _starts(network, mark, 3, timeout=dut.within(240, 30))
    assert [s["to"] for s in starts] == [network.c4[0], network.c4[1], network.emergency]
    network.wait_call("call_connected", to=network.emergency, after=mark, timeout=dut.within(90, 20))


def test_no_answer_redials(dut, button, network, faults):
    faults.next_call_result("no_answer")
    mark = network.mark()
    button.alert()
    first = network.wait_call("call", frm=dut.number, after=mark, timeout=dut.within(150, 20))
    assert first["result"] == "no_answer" and not first["answered"], first
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(150, 20))
    starts = network.calls("call_start", frm=dut.number, after=mark)
    assert _gap_after_end(network, mark, starts[1]) >= dut.config["redial_backoff_s"][0] - 0.05


def test_dropped_call_is_redialled(dut, button, network, faults):
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    mark, log_mark = network.mark(), dut.mark()
    faults.drop_call()
    dropped = network.wait_call("call", frm=dut.number, after=mark, timeout=dut.within(60, 10))
    assert dropped["result"] == "dropped"
    dut.wait_log("call_failed", "dropped", since=log_mark, timeout=dut.within(60, 10))
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(90, 20))


def test_signal_lost_mid_call_redials_when_back(dut, button, network, faults):
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    mark, log_mark = network.mark(), dut.mark()
    faults.signal_lost()
    dut.wait_log("call_failed", "dropped", since=log_mark, timeout=dut.within(60, 10))
    # a redial while there is no network fails too ...
    dut.wait_log("dial", since=dut.mark(), timeout=dut.within(60, 10))
    dut.wait_log("call_failed", since=dut.mark(), timeout=dut.within(60, 10))
    assert not network.calls("call_connected", after=mark)
    faults.signal_lost(False)
    # ... and once the signal is back the device gets C4 on the line again
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(120, 20))


@pytest.mark.dut_config(dial_timeout_s=4)
def test_c4_callback_stays_up_past_the_dial_timeout(dut, button, network):
    """An answered call-back is C4 talking to her: the dial timeout armed while it rang
    must not hang it up, and C4 is not redialled after it hangs up normally."""
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    mark = network.mark()
    network.hangup()                 # C4 ends the first call normally ...
    network.wait_call("call", frm=dut.number, after=mark, timeout=dut.within(30, 10))
    # ... and calls back, staying on the line 3 s (real time) past the device's dial timeout
    stay_s = dut.config["dial_timeout_s"] + 3
    network.set_c4("answer", hangup_after_s=stay_s / getattr(dut, "time_scale", 1.0))
    mark, log_mark = network.mark(), dut.mark()
    network.call_device("c4")
    dut.wait_log("callback_answered", since=log_mark, timeout=dut.within(60, 15))
    back = network.wait_call("call_connected", to=dut.number, after=mark, timeout=dut.within(60, 15))
    ended = network.wait_call("call", after=mark, timeout=dut.within(60, stay_s + 30),
                              where=lambda e: e["call_id"] == back["call_id"])
    assert ended["answered"] and ended["ended_by"] == network.c4[0], ended
    dut.wait_log("call_ended", "remote", since=log_mark, timeout=dut.within(30, 10))
    assert not network.calls("call_start", frm=dut.number, after=mark)
    assert not dut.logged("call_failed", since=log_mark)


@pytest.mark.dut_config(redial_backoff_s=[120])
def test_c4_calling_again_after_giving_up_as_the_device_answered_is_answered(dut, button, network, faults):
    """C4 hung up just as the device picked up its call-back (ATA: NO CARRIER). The
    machine was left "answering": C4's next call-back was ignored, and the dial timeout's
    hang-up then rejected it."""
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    mark = network.mark()
    network.hangup()                 # C4 ends the first call normally
    network.wait_call("call", frm=dut.number, after=mark, timeout=dut.within(30, 10))
    faults.caller_gives_up_on_answer()
    log_mark = dut.mark()
    network.call_device("c4")
    dut.wait_log("at_error", since=log_mark, timeout=dut.within(60, 15))
    mark = network.mark()
    network.call_device("c4")        # C4 tries again at once
    network.wait_call("call_connected", frm=network.c4[0], to=dut.number, after=mark,
                      timeout=dut.within(60, 20))


@pytest.mark.dut_config(redial_backoff_s=[1])
def test_a_call_end_the_device_never_heard_is_found_and_c4_called_again(dut, button, network, faults):
    """Her call dropped, and its end lines (+CLCC ...,6 and NO CARRIER) never reached the
    ESP32 (garbled, or the UART deaf): the in-call check only asked the module "AT", so
    the device believed the call up for the rest of the alert and never called C4 again.
    It now reads the call list at each in-call check."""
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    faults.lose_urcs("+CLCC", 1)
    faults.lose_urcs("NO CARRIER", 1)
    mark, log_mark = network.mark(), dut.mark()
    faults.drop_call()
    network.wait_call("call_connected", to=network.c4[0], after=mark, timeout=dut.within(120, 60))
    assert dut.logged("call_failed", since=log_mark)


@pytest.mark.dut_config(dial_timeout_s=25)
def test_c4_answering_while_the_device_asks_for_its_calls_is_heard(dut, button, network, faults):
    """While her call rings, the in-call check asks the module for its calls (AT+CLCC)
    every 10 s. C4's answer, reported (+CLCC ...,0,...) while that question was being
    answered, came in the middle of the answer and was counted as part of it; the check
    only looked for our call missing, so the device never heard C4 answer: at
    dial_timeout_s it hung up on C4 and called again."""
    faults.urc_into_reply("+CLCC: 1,0,0,", "+CLCC")
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], after=mark, timeout=dut.within(90, 20))
    dut.wait_log("call_active", since=log_mark, timeout=dut.within(60, 20))
    assert len(network.calls("call_start", frm=dut.number, after=mark)) == 1


@pytest.mark.dut_config(redial_backoff_s=[120])
def test_her_press_hangs_up_a_held_call_showing_c4s_number_and_calls_c4(dut, button, network, faults):
    """C4 busy at her press; then a call showing C4's number (a caller ID anyone can fake)
    is answered covertly and held open. Her next press found the line taken and never
    called C4 for as long as he stayed. Now it hangs that call up and calls C4 itself."""
    log_mark = dut.mark()
    held = hold_a_faked_c4_call(dut, button, network, faults)
    her_press_hangs_it_up_and_calls_c4(dut, button, network, held)
    dut.wait_log("callback_dropped", "press", since=log_mark, timeout=dut.within(30, 10))
