"""A call showing C4's number (a caller ID anyone can fake), answered and held open during
her alert; and her press, which must hang it up and call C4 itself (CallState.drop_callback).
Shared by the call scenarios and the reset ones."""


def hold_a_faked_c4_call(dut, button, network, faults):
    """C4 busy at her press; then the call, answered covertly. Returns it (call_connected)."""
    faults.next_call_result("busy")
    mark = network.mark()
    button.alert()
    network.wait_call("call", frm=dut.number, after=mark, timeout=dut.within(90, 20))
    log_mark = dut.mark()
    network.call_device("c4")        # stays on the line until someone hangs up
    dut.wait_log("callback_answered", since=log_mark, timeout=dut.within(60, 15))
    return network.wait_call("call_connected", to=dut.number, after=mark, timeout=dut.within(60, 15))


def her_press_hangs_it_up_and_calls_c4(dut, button, network, held):
    mark = network.mark()
    button.alert()                   # she presses again
    ended = network.wait_call("call", after=mark, timeout=dut.within(60, 15),
                              where=lambda e: e["call_id"] == held["call_id"])
    assert ended["ended_by"] == dut.number, ended
    network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=mark,
                      timeout=dut.within(60, 20))
