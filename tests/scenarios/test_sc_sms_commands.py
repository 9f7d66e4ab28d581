"""SMS commands to the device: only C4 (or an authorized number) with the PIN is obeyed."""
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
