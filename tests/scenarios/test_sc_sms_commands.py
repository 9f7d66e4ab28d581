"""SMS commands to the device: only C4 (or an authorized number) with the PIN is obeyed."""
import pytest

from boton.pytest_plugin import REF_PIN

MAPS = "https://maps.google.com/?q="


def _ubicacion(dut, network, text, frm="c4"):
    mark, log_mark = network.mark(), dut.mark()
    network.sms_to_device(text, frm=frm)
    return mark, log_mark


def test_ubicacion_with_pin_gets_location_back(dut, network):
    mark, _ = _ubicacion(dut, network, "UBICACION %s" % REF_PIN)
    reply = network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 20))
    assert reply["text"].startswith("UBICACION"), reply["text"]
    assert MAPS in reply["text"] and len(reply["text"]) <= 160


def test_ubicacion_in_lower_case_with_punctuation(dut, network):
    mark, _ = _ubicacion(dut, network, "ubicacion: %s." % REF_PIN)
    reply = network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 20))
    assert MAPS in reply["text"]


def test_wrong_pin_is_ignored(dut, network):
    mark, log_mark = _ubicacion(dut, network, "UBICACION 0000")
    dut.wait_log("sms_ignored", since=log_mark, timeout=dut.within(120, 20))
    assert any(d.startswith("bad_pin") for d in dut.logged("sms_ignored", since=log_mark))
    # barrier: a good command afterwards is answered, and it is the only answer
    _ubicacion(dut, network, "UBICACION %s" % REF_PIN)
    network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 20))
    assert len(network.sms(frm=dut.number, after=mark)) == 1


def test_unknown_number_is_ignored(dut, network):
    network.require(stranger_sms=True)
    mark, log_mark = _ubicacion(dut, network, "UBICACION %s" % REF_PIN, frm="stranger")
    dut.wait_log("sms_ignored", since=log_mark, timeout=dut.within(120, 20))
    assert any(d.startswith("unauthorized") for d in dut.logged("sms_ignored", since=log_mark))
    _ubicacion(dut, network, "UBICACION %s" % REF_PIN)
    network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 20))
    replies = network.sms(frm=dut.number, after=mark)
    assert len(replies) == 1 and not any(e["to"] == network.stranger for e in replies)


def test_a_strangers_sms_that_reads_like_the_module_changes_nothing(dut, button, network):
    # In the GSM character set a stored SMS's body is printed as it was typed: lines of it
    # reading "RDY" or "UNDER-VOLTAGE POWER DOWN" were taken for the module's own, and
    # anyone who knows her number could cut her call to C4 off or set off a false
    # low-battery SMS to her contacts. The firmware reads SMS in UCS2 (hex) instead.
    network.require(stranger_sms=True)
    button.alert()
    call = network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    network.wait_sms(to=network.contacts[0], timeout=dut.within(90, 20))
    mark, log_mark = network.mark(), dut.mark()
    network.sms_to_device("hola\nRDY\nUNDER-VOLTAGE POWER DOWN\n+CLCC: 1,0,6,0,0\nOK\nSMS Ready",
                          frm="stranger")
    dut.wait_log("sms_ignored", since=log_mark, timeout=dut.within(120, 20))
    # barrier: C4's command after it is read and answered
    network.sms_to_device("UBICACION %s" % REF_PIN)
    network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 20),
                     where=lambda e: e["text"].startswith("UBICACION"))
    for what in ("modem_restarted", "call_failed", "power_warning", "sms_read_error"):
        assert not dut.logged(what, since=log_mark), (what, dut.log(since=log_mark))
    assert not network.calls("call", after=mark, where=lambda e: e["call_id"] == call["call_id"])
    assert not [e for e in network.sms(frm=dut.number, after=mark) if "ateria" in e["text"]]


def test_a_long_command_with_accents_is_read_whole(dut, network):
    # An accent makes her phone (or C4's) send the SMS in UCS2: 70 characters are 280 hex
    # digits on the module's line, past the parser's old 256-byte line
    text = "Ubicación %s por favor, confirmar la ubicación actual de la usuaria" % REF_PIN
    assert len(text) > 64
    mark, _ = _ubicacion(dut, network, text)
    reply = network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 20))
    assert MAPS in reply["text"], reply["text"]


def test_a_command_whose_delete_is_refused_is_still_obeyed(dut, network, faults):
    # AT+CMGR marks the SMS read. The delete came first, and refused it returned before
    # the command was handed over: a sweep lists only unread SMS, so C4's command was
    # lost for good (the next set-up deletes read SMS)
    faults.refuse_next("+CMGD")
    mark, log_mark = _ubicacion(dut, network, "UBICACION %s" % REF_PIN)
    reply = network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 30))
    assert reply["text"].startswith("UBICACION"), reply["text"]
    assert dut.logged("sms_read_error", since=log_mark)


def test_a_command_whose_read_failed_in_her_alert_is_read_at_the_next_health_check(
        dut, button, network, faults):
    # nothing swept during an alert (the standby's sweep does not run): C4's command
    # waited unread in the SIM until her alert was over, up to an hour
    button.alert()
    network.wait_call("call_connected", to=network.c4[0], timeout=dut.within(90, 20))
    network.wait_sms(to=network.contacts[0], timeout=dut.within(90, 20))
    faults.refuse_next('+CSCS="UCS2"')      # the read's switch to UCS2
    mark, log_mark = _ubicacion(dut, network, "UBICACION %s" % REF_PIN)
    dut.wait_log("sms_read_error", since=log_mark, timeout=dut.within(120, 30))
    # the health check comes every health_every_s (60 s; 6 s at the rig's default scale)
    reply = network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(180, 60),
                             where=lambda e: e["text"].startswith("UBICACION"))
    assert MAPS in reply["text"]


@pytest.mark.modem("sim800", reason="the A7670's set-up sends no AT+CLTS=1: no network name URC")
def test_the_networks_name_in_the_middle_of_reading_c4s_command_is_not_its_header(
        dut, network, faults):
    # With AT+CLTS=1 the SIM800 reports the network's name (*PSNWID) with its time when
    # it registers, whenever that is: here while C4's SMS is read. Taken for the first
    # line of AT+CMGR's answer, it was read as the SMS header: C4's command was logged as
    # a stranger's and deleted.
    faults.urc_into_reply("*PSNWID", "+CMGR")
    faults.no_network()
    mark, log_mark = network.mark(), dut.mark()
    network.sms_to_device("ESTADO %s" % REF_PIN)      # the SMSC holds it meanwhile
    faults.no_network(False)          # registered: the network's name and time, then the SMS
    reply = network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 30))
    assert reply["text"].startswith("ESTADO"), reply["text"]
    assert not dut.logged("sms_ignored", since=log_mark), dut.log(log_mark)
