"""PINs and numbers on the device (issue 10, item 6): the device holds only the PIN's
salted hash, a number with another country code is not C4 even if its last ten digits
are C4's, and wrong PINs lock out the sender that sent them - not C4 - across a reset."""
import hashlib
import json

import pytest

from boton.pytest_plugin import REF_PIN

SPOOFED_DESK = "+524495550000"   # an authorised number someone is spoofing


def _command(dut, network, text, frm="c4"):
    mark, log_mark = network.mark(), dut.mark()
    network.sms_to_device(text, frm=frm)
    return mark, log_mark


def test_the_device_holds_only_the_pin_hash(dut):
    # "s$<salt hex>$<sha256(salt + PIN) hex>": random hex that holds the PIN's four digits
    # by chance about once in a thousand configs, so the PIN is looked for everywhere but
    # there, and the hash is checked to be the PIN's
    kind, salt, digest = dut.config["pin_hash"].split("$")
    assert kind == "s" and hashlib.sha256(bytes.fromhex(salt) + REF_PIN.encode()).hexdigest() == digest
    assert not dut.config.get("pin")
    assert REF_PIN not in json.dumps({k: v for k, v in dut.config.items() if k != "pin_hash"})


def test_c4_digits_with_another_country_code_are_not_c4(dut, network):
    network.require(stranger_sms=True)
    c4 = network.c4[0]
    assert c4.startswith("+52")
    lookalike = "+1" + c4[3:]        # +1 449 ...: the same last ten digits
    mark, log_mark = _command(dut, network, "UBICACION %s" % REF_PIN, frm=lookalike)
    dut.wait_log("sms_ignored", since=log_mark, timeout=dut.within(120, 20))
    assert any(d.startswith("unauthorized") for d in dut.logged("sms_ignored", since=log_mark))
    _command(dut, network, "UBICACION %s" % REF_PIN)     # barrier: C4 itself is answered
    network.wait_sms(to=c4, after=mark, timeout=dut.within(120, 20))
    assert [e["to"] for e in network.sms(frm=dut.number, after=mark)] == [c4]


@pytest.mark.dut_config(authorized=[SPOOFED_DESK], pin_max_failures=2, pin_lockout_s=900)
def test_wrong_pins_lock_that_sender_only_and_survive_a_reset(dut, network, faults):
    network.require(stranger_sms=True)
    mark, log_mark = _command(dut, network, "ESTADO 1111", frm=SPOOFED_DESK)
    dut.wait_log("sms_ignored", since=log_mark, timeout=dut.within(120, 20))
    _, log_mark = _command(dut, network, "ESTADO 2222", frm=SPOOFED_DESK)
    dut.wait_log("sms_locked", since=log_mark, timeout=dut.within(120, 20))

    log_mark = dut.mark()
    faults.esp32_reset()
    dut.wait_ready(since=log_mark)

    _, log_mark = _command(dut, network, "ESTADO %s" % REF_PIN, frm=SPOOFED_DESK)
    dut.wait_log("sms_ignored", "locked_...0000", since=log_mark, timeout=dut.within(120, 20))
    _command(dut, network, "ESTADO %s" % REF_PIN)          # C4 is not locked out
    reply = network.wait_sms(to=network.c4[0], after=mark, timeout=dut.within(120, 20))
    assert reply["text"].startswith("ESTADO")
    assert not network.sms(to=SPOOFED_DESK, after=mark)
