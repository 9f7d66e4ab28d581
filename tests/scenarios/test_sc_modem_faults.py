"""The modem and the SIM misbehave: SMS refused, SIM missing or locked, no network,
registration denied, a hung modem, garbage on the UART."""
import pytest

# temporary failure, congestion, no service, timeout, unknown; destination out of service
# (24.011), SC busy (23.040 TP-FCS)
RETRYABLE = (41, 42, 331, 332, 500, 27, 192)
PERMANENT = 21                        # short message transfer rejected (barred, blocked)


@pytest.mark.parametrize("code", RETRYABLE)
def test_retryable_cms_error_is_retried(dut, button, network, faults, code):
    faults.cms_error(code)
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    contact = network.contacts[0]
    sms = network.wait_sms(to=contact, after=mark, timeout=dut.within(120, 20))
    tries = [e for e in network.events(mark) if e["kind"] == "sms" and e["to"] == contact]
    assert [e.get("error") for e in tries[:2]] == [code, None], tries
    assert "maps.google.com" in sms["text"]
    # retried as such, not given up on (another SMS of the alert may reach her anyway)
    assert dut.logged("sms_retry", since=log_mark) and not dut.logged("sms_failed", since=log_mark)


def test_permanent_cms_error_is_not_retried(dut, button, network, faults):
    faults.cms_error(PERMANENT)
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    dut.wait_log("sms_failed", since=log_mark, timeout=dut.within(120, 5))
    contact = network.contacts[0]
    tries = [e for e in network.events(mark) if e["kind"] == "sms" and e["to"] == contact]
    assert len(tries) == 1 and tries[0]["error"] == PERMANENT
    # the other recipients and the call are not held up by it
    network.wait_call("call_connected", to=network.c4[0], after=mark, timeout=dut.within(90, 20))


def test_sim_missing_alert_keeps_trying_and_says_why(dut, button, network, faults):
    faults.sim_missing()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    dut.wait_log("alert", "gesture", since=log_mark, timeout=dut.within(10, 5))
    # no call can start, but the device retries (the SIM may be back) and does not crash
    dut.wait_log("call_failed", since=log_mark, timeout=dut.within(60, 10))
    dut.wait_log("dial", since=dut.mark(), timeout=dut.within(60, 10))
    text = dut.console.text(log_mark)
    assert "Traceback" not in text
    assert "SIM" in text or "sim" in " ".join(d for _, d in dut.log(log_mark)), text
    assert not network.calls("call_start", frm=dut.number, after=mark)


def test_pin_locked_sim_is_reported_at_boot(dut, button, faults):
    faults.pin_locked("1234")
    log_mark = dut.mark()
    faults.power_cycle()
    dut.wait_ready(since=log_mark, timeout=dut.within(300, 40))
    problems = dut.logged("sim_problem", since=log_mark)
    assert any("PIN" in p for p in problems), dut.log(log_mark)
    mark = dut.mark()
    button.alert()  # still takes the gesture and tries
    dut.wait_log("call_failed", since=mark, timeout=dut.within(60, 10))
    assert "Traceback" not in dut.console.text(log_mark)


def test_no_network_then_back_alert_gets_through(dut, button, network, faults):
    faults.no_network()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    dut.wait_log("call_failed", since=log_mark, timeout=dut.within(60, 10))
    dut.wait_log("sms_retry", since=log_mark, timeout=dut.within(60, 10))
    assert not network.sms(frm=dut.number, after=mark)
    faults.no_network(False)
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(180, 20))
    assert "maps.google.com" in sms["text"]
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(180, 20))


# no 5-minute update nor a call to C4 getting through comes to the rescue
@pytest.mark.dut_config(update_every_s=3000, attempts_per_number=1, redial_backoff_s=[1],
                        cycle_backoff_s=3000)
def test_alert_sms_that_failed_for_want_of_a_network_go_out_once_it_is_back(
        dut, button, network, faults):
    # She presses in a basement: no network, no GPS fix (a fix would queue her position
    # again anyway), and her alert SMS fail their retries. When the module registers
    # again (+CREG), whoever it did not reach gets it then, not at the next update
    faults.gps_never_fix()
    faults.no_network()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    dut.wait_log("sms_failed", since=log_mark, timeout=dut.within(300, 60))
    failed = dut.logged("sms_failed", since=log_mark)[0]          # "alert_...1234"
    # each try failed the same way: the event log says so once, not once a try
    assert dut.logged("sms_error", since=log_mark) == ["CMS_331_no_network"]
    contact = next(n for n in network.contacts + network.c4 if failed.endswith(n[-4:]))
    faults.no_network(False)
    sms = network.wait_sms(to=contact, after=mark, timeout=dut.within(180, 30))
    assert sms["text"].startswith("ALERTA") and "maps.google.com" in sms["text"], sms["text"]


def test_registration_denied_then_allowed_alert_gets_through(dut, button, network, faults):
    faults.registration_denied()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    dut.wait_log("call_failed", since=log_mark, timeout=dut.within(60, 10))
    faults.registration_denied(False)
    network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(180, 20))
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(180, 20))


@pytest.mark.dut_config(attempts_per_number=1, redial_backoff_s=[1], cycle_backoff_s=2,
                        allow_911=True)
def test_a_barred_sim_still_reaches_911_when_allowed(dut, button, network, faults):
    """A SIM barred or out of credit: the network refuses it (no registration), so C4's
    numbers cannot be called; 911 is free and unrestricted in Mexico, so the network takes
    it as an emergency call in limited service and the operator hears her."""
    network.require(c4=2, emergency=True)
    faults.registration_denied()
    mark = network.mark()
    button.alert()
    call = network.wait_call("call_connected", to=network.emergency, after=mark,
                             timeout=dut.within(240, 30))
    assert call["from"] == dut.number
    assert not network.calls("call_connected", to=network.c4[0], after=mark)


@pytest.mark.dut_config(attempts_per_number=1, redial_backoff_s=[1], cycle_backoff_s=2,
                        allow_911=True, health_every_s=2)
@pytest.mark.parametrize("taken", [True, False], ids=["network_takes_it", "network_refuses"])
def test_with_no_sim_911_is_tried_where_the_network_takes_it(dut, button, network, faults, gps,
                                                             taken):
    """No SIM (fallen out): whether 911 connects is the network's choice; either way the
    device keeps trying and does not crash. Its call is never cut by the re-read of the
    SIM (AT+CFUN=0 ends any call): a review found the operator cut off at each re-read."""
    network.require(c4=2, emergency=True)
    faults.emergency_without_sim(taken)
    faults.sim_missing()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    if taken:
        network.wait_call("call_connected", to=network.emergency, after=mark,
                          timeout=dut.within(240, 30))
        on_call = dut.mark()
        gps.wait_bursts(300, timeout=dut.within(120, 60))   # past several re-reads' waits
        assert not network.calls("call_end", to=network.emergency, after=mark)
        assert "sim_again" not in [e for e, _ in dut.log(on_call)]
    else:
        # C4's numbers, then 911 (the third dial), each refused by the module: once the
        # fourth dial starts, no call has started at all
        assert dut.wait_log("dial", f"{network.emergency}_#3", since=log_mark,
                            timeout=dut.within(240, 30))
        dut.wait_log("dial", since=log_mark, timeout=dut.within(120, 30), count=4)
        assert not network.calls("call_start", frm=dut.number, after=mark)
    assert "Traceback" not in dut.console.text(log_mark)


def test_silent_modem_is_power_cycled_and_alert_gets_through(dut, button, network, faults):
    faults.modem_silent()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(240, 8))
    network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(240, 10))
    assert dut.logged("modem_recovered", since=log_mark)  # the ladder brought it back


@pytest.mark.dut_config(unsent_warn_s=30)
def test_modem_dead_for_good_her_alert_tells_her_it_got_nothing_out(dut, button, network, faults):
    """The module dies in standby and never answers again. Her gesture still gets its one
    short pulse ("asking for help"); once unsent_warn_s passed with nothing out, the
    firmware logs alert_unsent (and vibrates three long pulses: tests/test_modem_power.py)
    so that she asks for help another way, and goes on trying."""
    faults.modem_dead()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    dut.wait_log("alert_unsent", "30s", since=log_mark, timeout=dut.within(120, 60))
    assert dut.logged("modem_dead", since=log_mark) or dut.logged("modem_hung", since=log_mark)
    assert network.sms(frm=dut.number, after=mark) == [] and network.calls(frm=dut.number, after=mark) == []


def test_modem_that_hangs_during_her_call_is_restarted_and_c4_called_again(dut, button, network, faults):
    """The module hangs in the middle of her call to C4. The ladder restarts it, and a
    restarted module carries no call: the firmware must call C4 again, not go on
    believing the old call is up (no NO CARRIER will ever come for it)."""
    _c4_called_again_after(dut, button, network, faults.modem_silent, "modem_recovered")


def test_modem_that_restarts_by_itself_during_her_call_is_set_up_again_and_c4_called_again(
        dut, button, network, faults):
    """A supply dip restarts the module in the middle of her call, with no URC first: the
    call is gone and every setting is back to its default (echo on, call-state reports
    off, PDU mode). The firmware notices the restart, sets the module up again and calls
    C4 again. The A7670 says so (*ATREADY); a SIM800 at autobaud, its factory setting,
    sends nothing until the next AT, which it then echoes: that echo is how it is known."""
    _restart_mid_call(dut, button, network, faults, "echo" if dut.family == "sim800" else "boot_urc")


@pytest.mark.modem("sim800", reason="a SIM800 set to a fixed rate (AT+IPR=115200, saved)")
@pytest.mark.rig(modem_options={"baud": 115200})
def test_sim800_at_a_fixed_rate_that_restarts_by_itself_is_known_by_its_rdy(dut, button, network, faults):
    """At a fixed baud rate the restarted SIM800 says RDY at once."""
    _restart_mid_call(dut, button, network, faults, "boot_urc")


def test_modem_that_hangs_once_her_call_is_quiet_is_noticed_within_the_call_pace(dut, button, network, faults):
    """Her call is up and every SMS is out: nothing else will talk to the module. While a
    call of ours is out or up, Radio.watch_call asks it after 10 s of silence, so a module
    that hangs then is restarted and C4 called again within about half a minute, not after
    the minute of silence the idle health check waits for."""
    mark = network.mark()
    button.alert()
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(240, 8))
    for n in [*network.contacts, network.c4[0]]:
        network.wait_sms(to=n, frm=dut.number, after=mark, timeout=dut.within(240, 40))
    log_mark = dut.mark()
    faults.modem_silent()
    # the call pace notices it within 2 x 10 s; the idle pace needs 60 s of silence first
    dut.wait_log("modem_recovered", since=log_mark, timeout=dut.within(60, 30))
    again = network.mark()
    network.wait_call("call_connected", frm=dut.number, after=again, timeout=dut.within(240, 40))


# A real network lets a call ring 30-60 s; the rig's time_scale would cut that to a few
# real seconds, and the firmware's alert timers run in real seconds.
@pytest.mark.rig(network_options={"ring_timeout_s": 1200})
@pytest.mark.dut_config(dial_timeout_s=90)
def test_modem_that_hangs_while_c4_rings_is_restarted_and_c4_called_again(dut, button, network, faults):
    """The module hangs while her call rings at C4, every SMS already out. The firmware
    notices at the call's health pace, not the idle one, and a restarted module carries
    no call: it dials again once the module is back instead of waiting out the dial
    timeout on a call that no longer exists."""
    network.set_c4("answer", answer_after_s=1200)  # rings on
    mark = network.mark()
    button.alert()
    for n in [*network.contacts, network.c4[0]]:
        network.wait_sms(to=n, frm=dut.number, after=mark, timeout=dut.within(240, 40))
    network.wait_call("ringing", frm=dut.number, to=network.c4[0], after=mark, timeout=dut.within(60, 10))
    network.set_c4("answer", answer_after_s=4)
    log_mark = dut.mark()
    faults.modem_silent()
    dut.wait_log("modem_recovered", since=log_mark, timeout=dut.within(60, 30))
    again = network.mark()
    network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=again,
                      timeout=dut.within(120, 30))


def _restart_mid_call(dut, button, network, faults, how):
    since = _c4_called_again_after(dut, button, network, faults.modem_brown_out, "modem_restarted", how)
    # and the set-up is whole again (text mode): the SMS the restart cut off goes out
    network.wait_sms(frm=dut.number, after=since, timeout=dut.within(240, 40))


def _c4_called_again_after(dut, button, network, fault, logged, *arg):
    """Her call to C4 connected, fault() in the middle of it, the firmware logs `logged`,
    and C4 is connected again. Returns the network mark from just before the fault."""
    mark = network.mark()
    button.alert()
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(240, 8))
    log_mark, since = dut.mark(), network.mark()
    fault()
    dut.wait_log(logged, *arg, since=log_mark, timeout=dut.within(300, 60))
    again = network.mark()
    network.wait_call("call_connected", frm=dut.number, after=again, timeout=dut.within(240, 40))
    return since


def test_garbage_on_the_uart_does_not_stop_the_alert(dut, button, network, faults):
    faults.uart_garbage()
    mark = network.mark()
    button.alert()
    faults.uart_garbage(b"\r\n+CM\xff\xfeTI: \"SM\",\r\nOK\x00\r\nRI\x13NG\r\n")
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(90, 20))
    faults.uart_garbage(b"\x00" * 40 + b"\r\nNO CARR\r\n")
    assert "maps.google.com" in sms["text"]
    network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=mark,
                      timeout=dut.within(90, 20))
    assert "Traceback" not in dut.console.text()


def test_a_garbled_sms_reference_neither_restarts_the_board_nor_resends(dut, button, network, faults):
    # "+CMGS: 1?" (a bit flipped on the line) with OK after it: the network took the SMS.
    # int() of it raised in Modem.send_sms, the send task died, and a dead task restarts
    # the board (app._task_died): mid-alert, and the SMS went out again after the resume.
    faults.garble_lines("+CMGS", 1)
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    contact = network.contacts[0]
    network.wait_sms(to=contact, after=mark, timeout=dut.within(90, 20))
    network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=mark,
                      timeout=dut.within(90, 20))
    dut.wait_log("sms_ok", since=log_mark, timeout=dut.within(60, 10))
    assert not dut.logged("crash", since=log_mark), dut.log(log_mark)
    assert "Traceback" not in dut.console.text(log_mark)
    tries = [e for e in network.events(mark) if e["kind"] == "sms" and e["to"] == contact]
    assert len(tries) == 1, tries


def test_a_slow_delete_of_the_sims_read_sms_is_waited_for_not_taken_for_the_next_reply(
        dut, button, network, faults):
    """The set-up's AT+CMGD=1,3 (the SIM's read and sent SMS deleted), refused while the
    module was not ready for it, goes again before her first SMS. A SIM800 takes up to
    25 s to delete 50 SMS (AT manual V1.09); waited for 2 s, its late OK was taken for
    AT+CMGS's answer, and the "> " prompt after it left the module typing what came next
    into an SMS: the covert-audio line, the dial to C4."""
    faults.refuse_next("+CMGD", 10)     # every try of the set-up
    log_mark = dut.mark()
    faults.power_cycle()
    dut.wait_ready(since=log_mark, timeout=dut.within(300, 60))
    assert "AT+CMGD=1,3" in dut.logged("init_error", since=log_mark), dut.log(log_mark)
    faults.sim_holds_sms(12)            # about 6 s to delete
    mark = network.mark()
    button.alert()
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(120, 30))
    assert "maps.google.com" in sms["text"]
    network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=mark,
                      timeout=dut.within(120, 30))
    typed = [e["text"] for e in network.sms(frm=dut.number, after=mark) if "AT" in e["text"]]
    assert not typed, typed
