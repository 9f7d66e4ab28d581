"""The alert path, the delivery-day test call and C4 call-backs: on the rig and on a board."""
import pytest

from boton.device import Device

MAPS = "https://maps.google.com/?q="


def test_alert_happy_path(dut, button, network, gps):
    mark = network.mark()
    log_mark = dut.mark()
    button.alert()
    dut.wait_log("alert", "gesture", since=log_mark, timeout=dut.within(10, 5))
    contact = network.contacts[0]
    sms = network.wait_sms(to=contact, after=mark, timeout=dut.within(90, 20))
    call = network.wait_call("call_connected", frm=dut.number, to=network.c4[0], after=mark,
                             timeout=dut.within(90, 20))
    assert MAPS in sms["text"], sms["text"]
    if gps.maps_q():
        assert MAPS + gps.maps_q() in sms["text"]
        # the fix's accuracy (HDOP, from the GGA that most receivers send after the RMC)
        assert "(+-" in sms["text"], sms["text"]
    assert len(sms["text"]) <= 160
    assert "Luna" in sms["text"] and not sms["text"].startswith("PRUEBA")
    audio = dut.audio()
    if audio is not None:  # covert: C4 hears her surroundings, nobody hears C4
        assert audio["speaker_level"] == 0 and audio["ringer_level"] == 0 and audio["mic_gain"] > 0
    # one alert, one call: nothing redials while C4 is on the line
    assert len(network.calls("call_start", frm=dut.number, after=mark)) == 1
    assert call["to"]


def test_alert_from_standby_is_covert(dut, button, network):
    dut.wait_standby()               # how she carries it: modem asleep, GPS resting
    mark, log_mark = network.mark(), dut.mark()
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], after=mark, timeout=dut.within(90, 20))
    assert not dut.logged("audio_error", since=log_mark), dut.log(since=log_mark)
    audio = dut.audio()
    if audio is not None:
        assert audio["speaker_level"] == 0 and audio["ringer_level"] == 0 and audio["mic_gain"] > 0


def test_delivery_day_test_call(dut, network):
    """The delivery-day test call, as `boton test-call` runs it on the device (testcall.test_call
    over the REPL): SMS marked PRUEBA, C4 answers, the device logs test_result ok."""
    mark = network.mark()
    seen = []
    with dut.port_released() as port:
        with Device(port, timeout=dut.within(300, 60)) as dev:
            out = dev.exec("import testcall\nprint('RESULT', testcall.test_call(%d))" % dut.within(120, 30),
                           consumer=seen.append)
    text = b"".join(seen).decode(errors="replace") + out.decode(errors="replace")
    assert "EV test_result ok" in text and "RESULT True" in text, text[-2000:]
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(90, 20))
    assert sms["text"].startswith("PRUEBA"), sms["text"]
    assert MAPS in sms["text"] and len(sms["text"]) <= 160
    assert network.calls("call_connected", to=network.c4[0], after=mark)


def test_c4_callback_is_answered_covertly(dut, button, network):
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    mark = network.mark()
    network.hangup()                 # C4 ends the first call normally ...
    network.wait_call("call", frm=dut.number, after=mark, timeout=dut.within(30, 10))
    mark = network.mark()
    log_mark = dut.mark()
    network.call_device("c4")        # ... and calls her back
    dut.wait_log("callback_answered", since=log_mark, timeout=dut.within(60, 15))
    call = network.wait_call("call_connected", to=dut.number, after=mark, timeout=dut.within(60, 15))
    audio = dut.audio()
    if audio is not None:
        assert audio["speaker_level"] == 0 and audio["ringer_level"] == 0
    assert call["to"]
    # C4 hung up normally after it was answered: the device does not redial
    assert not network.calls("call_start", frm=dut.number, after=mark)


def test_other_caller_is_rejected(dut, button, network):
    network.require(stranger=True)
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    mark = network.mark()
    network.hangup()
    network.wait_call("call", frm=dut.number, after=mark, timeout=dut.within(30, 10))
    mark, log_mark = network.mark(), dut.mark()
    network.call_device("stranger")
    dut.wait_log("incoming_rejected", since=log_mark, timeout=dut.within(60, 15))
    call = network.wait_call("call", to=dut.number, after=mark, timeout=dut.within(60, 15))
    assert not call["answered"] and call["result"] in ("rejected", "busy"), call


def test_cancel_gesture_hangs_up_the_call(dut, button, network):
    """Her cancel ends the call to C4 at once, and nothing redials. The A7670 ignores ATH
    (AT+CVHU=1, its default): its hang-up must end the call all the same (AT+CHUP)."""
    button.alert()
    call = network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    mark, log_mark = network.mark(), dut.mark()
    button.cancel()
    dut.wait_log("cancel", "device", since=log_mark, timeout=dut.within(30, 15))
    ended = network.wait_call("call", after=mark, timeout=dut.within(30, 10),
                              where=lambda e: e["call_id"] == call["call_id"])
    # the device hung up ("remote" is the device as the reference modem sees it), not C4
    assert ended["answered"] and ended["ended_by"] in (dut.number, "remote"), ended
    assert not network.calls("call_start", frm=dut.number, after=mark)
