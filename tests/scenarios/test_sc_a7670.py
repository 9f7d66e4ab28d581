"""What only the A7670 (LTE Cat-1, VoLTE, GSM fallback) has: a SIM or network without VoLTE
leaves it registered on LTE for SMS only. With 2G around, the call to C4 must fall back to
GSM; without it, the SMS still go out. (Its ignored ATH is proven on both families by
test_sc_alert.py::test_cancel_gesture_hangs_up_the_call and test_other_caller_is_rejected.)"""
import pytest

MAPS = "https://maps.google.com/?q="
VOLTE = "VoLTE and LTE registration: the SIM800 is 2G only"


@pytest.mark.modem("a7670", reason=VOLTE)
def test_without_volte_the_call_to_c4_falls_back_to_2g(dut, button, network, faults):
    faults.volte_unavailable()        # the rig's network has 2G: calls work over GSM
    mark = network.mark()
    button.alert()
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(120, 30))
    assert MAPS in sms["text"], sms["text"]
    # on LTE without VoLTE the module cannot call at all: connecting proves the GSM fallback
    network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=mark,
                      timeout=dut.within(180, 40))


@pytest.mark.modem("a7670", reason=VOLTE)
@pytest.mark.rig(modem_options={"gsm": False})   # a region where 2G is switched off
def test_without_volte_or_2g_the_sms_still_go_out(dut, button, network, faults):
    faults.volte_unavailable()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(120, 30))
    assert MAPS in sms["text"], sms["text"]
    # no call can be made; the device keeps trying (VoLTE may come back) and does not crash
    dut.wait_log("call_failed", since=log_mark, timeout=dut.within(120, 30))
    dut.wait_log("dial", since=dut.mark(), timeout=dut.within(60, 20))
    assert not network.calls("call_connected", frm=dut.number, after=mark)
    # her contacts were told "Llamando al C4": once the button finds it cannot call, an
    # update tells them to call 911 themselves
    dut.wait_log("no_voice", since=log_mark, timeout=dut.within(120, 30))
    told = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(120, 30),
                            where=lambda e: "No puede llamar al C4" in e["text"])
    assert told["text"].endswith("llame al 911."), told["text"]
    assert "Traceback" not in dut.console.text(log_mark)


# VoLTE failing silently (LilyGO-Modem-Series #240 on one module firmware; any firmware when
# the operator has no VoLTE interworking for this SIM or the IMS registration is lost): the
# module is registered for voice on LTE, and every call goes dialing -> disconnected at once.

def _fallbacks(dut, since):
    return dut.log(since).count(("voice_fallback", "lte_calls_end"))


@pytest.mark.modem("a7670", reason=VOLTE)
def test_calls_on_lte_that_end_before_ringing_fall_back_to_2g_and_reach_c4(dut, button, network, faults):
    faults.lte_calls_drop()           # registered for voice on LTE; the rig's network has 2G
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=mark,
                      timeout=dut.within(300, 60))
    # after the calls that ended before ringing (SILENT_FAILS in a row), over 2G
    lost = network.calls(frm=dut.number, to=network.c4[0], after=mark, where=lambda e: not e.get("answered"))
    assert len(lost) >= 2, lost
    dut.wait_log("voice", "2g", since=log_mark, timeout=dut.within(60, 10))
    assert _fallbacks(dut, log_mark) == 1
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(120, 30))
    assert MAPS in sms["text"] and "No puede llamar" not in sms["text"], sms["text"]


@pytest.mark.modem("a7670", reason=VOLTE)
@pytest.mark.rig(modem_options={"gsm": False})   # a region where 2G is switched off
def test_calls_on_lte_that_end_before_ringing_without_2g_keep_trying_and_contacts_are_told(
        dut, button, network, faults):
    faults.lte_calls_drop()
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(120, 30))
    assert MAPS in sms["text"], sms["text"]
    # 2G tried once and not found: back to automatic (LTE still carries the SMS), and the
    # button knows it cannot call: an update tells her contacts to call 911 themselves
    dut.wait_log("voice_fallback", "lte_calls_end", since=log_mark, timeout=dut.within(120, 30))
    dut.wait_log("no_voice", since=log_mark, timeout=dut.within(180, 60))
    told = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(180, 60),
                            where=lambda e: "No puede llamar al C4" in e["text"])
    assert told["text"].endswith("llame al 911."), told["text"]
    # it keeps calling, on LTE, and never switches modes again
    for _ in range(3):
        again = dut.mark()
        dut.wait_log("dial", since=again, timeout=dut.within(120, 30))
        dut.wait_log("call_failed", since=again, timeout=dut.within(60, 10))
    assert _fallbacks(dut, log_mark) == 1
    assert not network.calls("call_connected", frm=dut.number, after=mark)
    assert "Traceback" not in dut.console.text(log_mark)
