"""The battery sags and the GPS misbehaves: the alert never waits for a fix, falls back to
the last fix or the serving cell, and never trusts a corrupted sentence."""
import time

import pytest

from boton.pytest_plugin import REF_PIN

MAPS = "https://maps.google.com/?q="
NO_FIX = 1e6  # rig: the simulated GPS never gets its first fix


# ------------------------------------------------------------------------------- power
# In standby the chip light-sleeps and its UARTs are deaf (as on a board): a modem warning
# that comes then is lost. The URC is logged by a chip that listens (here: light sleep
# off; in her alert it never sleeps); asleep, the battery poll finds the sag.
@pytest.mark.dut_config(light_sleep=False)
def test_under_voltage_warning_is_logged(dut, faults):
    log_mark = dut.mark()
    faults.under_voltage(power_down_after_s=1000)
    dut.wait_log("modem_power", "UNDER-VOLTAGE_WARNNING", since=log_mark, timeout=dut.within(60, 10))


@pytest.mark.dut_config(health_every_s=1, status_every_s=2)
def test_under_voltage_warning_tells_contacts(dut, network, faults):
    mark = network.mark()
    faults.under_voltage(power_down_after_s=1000)
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(120, 5))
    assert "bateria baja" in sms["text"] and len(sms["text"]) <= 160


@pytest.mark.modem("sim800", reason="the SIM800 switches itself off after its under-voltage "
                   "warning; an A7670 only with AT+CPMVT, at its own 10 s check")
def test_alert_after_modem_power_down_gets_through(dut, button, network, faults):
    log_mark = dut.mark()
    faults.under_voltage(power_down_after_s=0.5)
    dut.wait_log("modem_power", "UNDER-VOLTAGE_POWER_DOWN", since=log_mark, timeout=dut.within(60, 10))
    faults.set_battery(3900)  # she plugs the charger in; the supply is good again
    mark = network.mark()
    button.alert()
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(240, 8))
    network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(240, 10))


@pytest.mark.modem("sim800", reason="the SIM800 switches itself off after its under-voltage "
                   "warning; an A7670 only with AT+CPMVT, at its own 10 s check")
def test_modem_power_down_in_the_middle_of_her_call_to_c4_calls_c4_again(dut, button, network, faults):
    """The battery sags under the transmit bursts of her call: the module warns, then
    switches itself off, and the call drops. Once the supply is good, the firmware brings
    the module back and calls C4 again: her alert is not over."""
    mark = network.mark()
    button.alert()
    network.wait_call("call_connected", frm=dut.number, after=mark, timeout=dut.within(240, 8))
    log_mark = dut.mark()
    faults.under_voltage(power_down_after_s=0.5)
    dut.wait_log("modem_power", "UNDER-VOLTAGE_POWER_DOWN", since=log_mark, timeout=dut.within(60, 10))
    faults.set_battery(3900)
    again = network.mark()
    network.wait_call("call_connected", frm=dut.number, after=again, timeout=dut.within(240, 40))


# ------------------------------------------------------------------------------- GPS
@pytest.mark.rig(gps_ttff_s=NO_FIX)
def test_gps_silent_alert_is_not_delayed(dut, button, network, faults):
    faults.gps_silent()
    mark = network.mark()
    button.alert()
    t_press = time.monotonic()
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(90, 20))
    assert MAPS not in sms["text"]
    assert "Sin" in sms["text"], sms["text"]          # "Sin GPS. Celda ..." / "Sin ubicacion"
    # rendered when sent, never held for the GPS: as fast as with a fix (network time only)
    assert sms["t"] - t_press < dut.within(60, 5)
    network.wait_call("call_connected", to=network.c4[0], after=mark, timeout=dut.within(90, 20))


@pytest.mark.rig(gps_ttff_s=NO_FIX)
def test_gps_never_fixing_falls_back_to_cell_id(dut, button, network, faults):
    faults.gps_never_fix()
    mark = network.mark()
    button.alert()
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(90, 20))
    text = sms["text"]
    assert MAPS not in text
    # a GSM cell's LAC and CI, an LTE cell's TAC and ECI (dialect_a7670.serving_cell)
    assert "Celda" in text and (" LAC " in text and " CI " in text
                                or " TAC " in text and " ECI " in text), text
    cell_id = dut.serving_cell_id()
    if cell_id is not None:
        assert ("%x" % cell_id) in text.lower() or str(cell_id) in text, text


# The rig runs the receiver ten times faster than the firmware's boot (scaled parts, real
# CPU): the receiver is held without a fix until the press, then makes its cold start from
# there with its datasheet's time (NEO-6M 27 s, L76K 30 s), as on a board pressed soon
# after it was switched on.
@pytest.mark.rig(gps_ttff_s=NO_FIX)
def test_press_before_the_first_fix_texts_at_once_then_her_position(dut, button, network, gps):
    """She presses before the receiver's cold start has its first fix: her contacts' first
    SMS goes out without waiting for it (the serving cell instead), and an ACTUALIZACION
    with the maps link follows the fix."""
    assert gps.fixed is not True, "the receiver fixed before the press: nothing to test"
    mark = network.mark()
    gps.start(ttff_s=None)                   # its cold start, from now
    button.alert()
    t_press = time.monotonic()
    first = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(90, 20))
    assert MAPS not in first["text"] and "Celda" in first["text"], first["text"]
    # sent on its own time, well before the cold start's fix (27 s of the rig's time: 2.7 s)
    assert first["t"] - t_press < dut.within(20, 2)
    update = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(120, 20),
                              where=lambda e: MAPS in e["text"])
    assert update["text"].startswith("ACTUALIZACION"), update["text"]
    assert MAPS + gps.maps_q() in update["text"]


def _wait_first_fix(dut, network):
    if dut.board_profile["gps"].get("enable") is not None:
        # the GPS runs at boot until it has a fresh fix, then rests (duty cycle)
        dut.wait_log("power", "gps_off", timeout=dut.within(600, 15))
    else:
        # no switch (the T-A7670X's L76K): the GPS stays on; its location back proves a fix
        ask = network.mark()
        network.sms_to_device("UBICACION %s" % REF_PIN)
        network.wait_sms(to=network.c4[0], after=ask, timeout=dut.within(600, 20),
                         where=lambda e: MAPS in e["text"])


@pytest.mark.dut_config(fix_fresh_s=0)  # any fix not taken this very millisecond is "last"
def test_gps_never_fixing_again_uses_last_fix(dut, button, network, faults, gps):
    _wait_first_fix(dut, network)
    faults.gps_never_fix()
    mark = network.mark()
    button.alert()     # the GPS wakes up for the alert but never fixes again
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(90, 20))
    assert "Ultima ubicacion hace" in sms["text"], sms["text"]
    assert MAPS + gps.maps_q() in sms["text"]


@pytest.mark.rig(gps_ttff_s=NO_FIX)
def test_corrupted_nmea_is_never_used(dut, button, network, faults, gps):
    faults.gps_corrupt(1.0)
    gps.set_position(21.85000, -102.30000)   # somewhere else: no link to it may ever go out
    mark = network.mark()
    button.alert()                           # the GPS stays on during the alert ...
    gps.start(ttff_s=0)                      # ... with a "fix" in every burst, every checksum wrong
    network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(90, 20))
    gps.wait_bursts(10)
    ask = network.mark()
    network.sms_to_device("UBICACION %s" % REF_PIN)
    network.wait_sms(to=network.c4[0], after=ask, timeout=dut.within(120, 20),
                     where=lambda e: e["text"].startswith("UBICACION"))
    sent = network.sms(frm=dut.number, after=mark)
    assert not [e["text"] for e in sent if "21.85" in e["text"] or MAPS in e["text"]]


@pytest.mark.dut_config(fix_fresh_s=0)
def test_dead_reckoning_indoors_is_never_sent_as_her_position(dut, button, network, faults, gps):
    """She walks into a building: the receiver loses the sky and, as u-blox (and SiRF) do,
    goes on with status A and an estimate (RMC mode E, GGA quality 6) that drifts along her
    last speed. Her SMS carry her last real fix with its age, never the estimate."""
    _wait_first_fix(dut, network)
    here = gps.maps_q()
    faults.gps_dead_reckoning()
    gps.set_position(21.85000, -102.30000)   # where the estimate drifted: she is not there
    mark = network.mark()
    button.alert()
    sms = network.wait_sms(to=network.contacts[0], after=mark, timeout=dut.within(90, 20))
    assert "Ultima ubicacion hace" in sms["text"] and MAPS + here in sms["text"], sms["text"]
    gps.wait_bursts(10)                      # estimates keep coming during her alert
    ask = network.mark()
    network.sms_to_device("UBICACION %s" % REF_PIN)
    network.wait_sms(to=network.c4[0], after=ask, timeout=dut.within(120, 20),
                     where=lambda e: e["text"].startswith("UBICACION"))
    sent = network.sms(frm=dut.number, after=mark)
    assert not [e["text"] for e in sent if "21.85" in e["text"]]


# A GPS that sends nothing (dead, unplugged, another baud) is a fault, the button must be
# repaired; a GPS without sky is not. ESTADO and the daily report tell them apart, and the
# log records the change once. Short duty cycles so that the switched GPS (T-Call) is
# listened to again soon; gps_silent_s: the listening without one sentence that says so.
PROGRAMME = "+524495550000"
SILENCE = dict(gps_silent_s=8, gps_every_s=5, gps_max_on_s=20, programme_number=PROGRAMME,
               daily_status_s=30)


def _estado(dut, network):
    ask = network.mark()
    network.sms_to_device("ESTADO %s" % REF_PIN)
    return network.wait_sms(to=network.c4[0], after=ask, timeout=dut.within(120, 30),
                            where=lambda e: e["text"].startswith("ESTADO"))["text"]


def _daily(dut, network, after):
    return network.wait_sms(to=PROGRAMME, after=after, timeout=dut.within(120, 60),
                            where=lambda e: "reporte diario" in e["text"])["text"]


@pytest.mark.dut_config(**SILENCE)
def test_a_gps_that_sends_nothing_is_reported_as_not_responding(dut, network, faults):
    log_mark = dut.mark()
    faults.gps_silent()
    dut.wait_log("gps", "silent", since=log_mark, timeout=dut.within(300, 60))
    assert "GPS no responde" in _estado(dut, network)
    faults.gps_silent(False)                 # its connector pressed back in
    dut.wait_log("gps", "talks", since=log_mark, timeout=dut.within(120, 30))
    assert "GPS no responde" not in _estado(dut, network)
    assert dut.logged("gps", since=log_mark) == ["silent", "talks"]   # once per change


@pytest.mark.dut_config(**SILENCE)
def test_a_gps_at_the_wrong_baud_is_reported_as_not_responding(dut, network, faults):
    log_mark = dut.mark()
    faults.gps_wrong_baud(38400)             # bytes, '$' among them, but never a sentence
    dut.wait_log("gps", "silent", since=log_mark, timeout=dut.within(300, 60))
    text = _daily(dut, network, network.mark())
    assert "GPS no responde" in text and len(text) <= 160, text


@pytest.mark.rig(gps_ttff_s=NO_FIX)
@pytest.mark.dut_config(**SILENCE)
def test_a_gps_without_sky_is_still_no_signal_not_a_fault(dut, network, faults, gps):
    log_mark = dut.mark()
    faults.gps_never_fix()
    mark = network.mark()
    first = _daily(dut, network, mark)
    second = _daily(dut, network, network.mark())    # over 30 s more, most of it listened
    for text in (first, second, _estado(dut, network)):
        assert "GPS sin senal" in text and "no responde" not in text, text
    assert not dut.logged("gps", since=log_mark)


@pytest.mark.modem("a7670", reason="the T-A7670X's L76K has no switch: between fixes the firmware "
                   "stops listening and the chip light-sleeps, its UART deaf to a healthy GPS")
@pytest.mark.dut_config(gps_silent_s=8, gps_every_s=20, programme_number=PROGRAMME,
                        daily_status_s=30)
def test_a_healthy_gps_on_a_sleeping_board_is_never_reported_silent(dut, network, gps):
    # each rest (gps_every_s) is longer than gps_silent_s: time the chip did not listen
    # must not count, or every rest would read as a dead GPS
    log_mark, mark = dut.mark(), network.mark()
    gps.wait_bursts(700, timeout=dut.within(900, 150))   # over three rests of the listening
    texts = [e["text"] for e in network.sms(to=PROGRAMME, after=mark)] + [_estado(dut, network)]
    assert len(texts) >= 3, texts
    assert not [t for t in texts if "no responde" in t], texts
    assert not dut.logged("gps", since=log_mark)
    if dut.kind == "virtual":
        assert dut.vd.call(lambda: dut.vd.dropped_asleep["gps"]) > 0   # it did sleep through sentences
