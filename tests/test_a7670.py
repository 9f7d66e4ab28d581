"""The simulated A7670SA, driven over its AT interface the way test_sim800.py drives the
SIM800, against data/at/a76xx.md (the notes are parsed in place where they quote the
module's exact bytes). Time is a ManualClock: nothing sleeps."""
import re
from datetime import datetime, timedelta, timezone

import pytest

from boton.sim.clock import ManualClock, Scheduler
from boton.sim.modem import A7670, modem_class
from boton.sim.network import PhoneNetwork

DEVICE = "+524490000042"
C4 = "+524499100000"
CONTACT = "+524491112233"
MX = timezone(timedelta(hours=-6))


@pytest.fixture(scope="module")
def notes(captures):
    return (captures / "at" / "a76xx.md").read_text(encoding="utf-8")


class Bench:
    def __init__(self, boot=True, **modem_kw):
        self.clock = ManualClock()
        self.sched = Scheduler(self.clock, 1.0)
        self.net = PhoneNetwork(self.sched, start_datetime=datetime(2026, 3, 8, 12, tzinfo=MX))
        self.net.add_c4(C4, answer_after_s=3.0)
        self.net.add_contact(CONTACT)
        self.out = bytearray()
        self.ri = []  # (t, level) of every RI change
        self.modem = A7670(self.sched, self.net, DEVICE, emit=self.out.extend, **modem_kw)
        self.modem.ri_observer = lambda level: self.ri.append((self.sched.now(), level))
        self.net.attach(DEVICE, self.modem)
        if boot:
            self.modem.power_on()
            self.run(30)  # booted, SMS DONE / PB DONE, registered
            self.take()

    def run(self, seconds):
        self.clock.advance(self.sched, seconds)

    def take(self):
        data = bytes(self.out)
        self.out.clear()
        return data

    def at(self, cmd, wait=0.5):
        self.modem.feed(cmd.encode("latin-1") + b"\r")
        self.run(wait)
        lines = [ln.decode("latin-1") for ln in re.split(rb"\r\n|\r", self.take()) if ln.strip()]
        return lines[1:] if lines[:1] == [cmd] else lines  # drop the echo


def hhmmss(seconds):
    s = int(seconds)
    return f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}"


def quoted(notes, pattern):
    """The backquoted module output in the notes matching `pattern` (a regex)."""
    found = [m for m in re.findall(r"`([^`]+)`", notes) if re.fullmatch(pattern, m)]
    assert found, f"{pattern} not quoted in a76xx.md"
    return found


def test_the_family_table_knows_a7670():
    assert modem_class("a7670") is A7670
    with pytest.raises(ValueError, match="sim800"):
        modem_class("sim900")


# ---------------------------------------------------------------------- boot and PWRKEY
def test_boot_is_silent_11_s_then_atready_cpin_sms_done_pb_done(notes):
    b = Bench(boot=False)
    b.modem.pwrkey(0)
    b.run(0.06)           # a ~50 ms press switches it on
    b.modem.pwrkey(1)
    b.run(11.0)
    assert b.take() == b""  # no RDY, nothing, until Ton(uart)
    b.run(0.2)
    assert b.take() == b"\r\n*ATREADY: 1\r\n"
    assert b.at("AT+CMEE=1", wait=0.2) == ["OK"]
    assert b.at("AT+CPIN?", wait=0.2) == ["+CME ERROR: 13"]  # SIM not up yet (a76xx.md §2)
    b.run(20)
    lines = [ln for ln in b.take().decode().split("\r\n") if ln]
    assert [ln for ln in lines if ln in ("+CPIN: READY", "SMS DONE", "PB DONE")] == \
        ["+CPIN: READY", "SMS DONE", "PB DONE"]
    for absent in ("RDY", "Call Ready", "SMS Ready", "+CFUN: 1"):
        assert absent not in lines
    assert b.at("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert "*ATREADY: 1" in notes and "PB DONE" in notes


def test_echo_is_on_until_ate0_and_the_baud_is_fixed():
    b = Bench()
    b.modem.feed(b"AT\r")
    b.run(0.2)
    assert b.take() == b"AT\r\r\nOK\r\n"
    assert b.at("ATE0") == ["OK"]
    b.modem.feed(b"AT\r")
    b.run(0.2)
    assert b.take() == b"\r\nOK\r\n"
    assert b.at("AT+IPR?") == ["+IPR: 115200", "OK"]


@pytest.mark.parametrize("family", ["a7670", "sim800"])
def test_a_press_held_long_enough_turns_it_on_even_if_the_host_ran_late(family):
    # A busy host may hand the rig the release before the hold timer it set at the press
    # has run (at time_scale 0.1 the A7670's 50 ms is 5 ms). The module goes by how long
    # the key was held, as a real one does.
    b = Bench(boot=False)
    modem = modem_class(family)(b.sched, b.net, DEVICE, emit=b.out.extend)
    for held in (modem.PWRKEY_MIN_S * 0.6, modem.PWRKEY_MIN_S * 1.4):
        modem.pwrkey(0)
        b.clock.t += held        # time passes; the scheduler has not run yet
        modem.pwrkey(1)
    assert modem.powered
    assert [(p["powered"], p["result"]) for p in modem.pwrkey_presses] == [(False, "none"), (False, "on")]


@pytest.mark.parametrize("family", ["a7670", "sim800"])
def test_a_press_read_late_counts_from_when_the_firmware_drove_the_pin(family):
    # A busy rig may read the press and the release in one go: the module goes by the
    # times the firmware drove the pin (the rig's GPIO lines carry them), as a real one does.
    b = Bench(boot=False)
    modem = modem_class(family)(b.sched, b.net, DEVICE, emit=b.out.extend)
    t = b.clock.t
    b.clock.t += 5.0                              # both lines read 5 s late, together
    modem.pwrkey(0, at=t)
    modem.pwrkey(1, at=t + modem.PWRKEY_MIN_S * 1.4)
    assert modem.powered
    assert [(p["powered"], p["held_s"] > modem.PWRKEY_MIN_S, p["result"])
            for p in modem.pwrkey_presses] == [(False, True, "on")]


def test_a_long_pwrkey_press_switches_it_off_a_short_one_does_not():
    b = Bench()
    b.modem.pwrkey(0)
    b.run(1.0)
    b.modem.pwrkey(1)
    b.run(3)
    assert b.modem.powered  # 1 s is neither an on nor an off press for a running module
    b.modem.pwrkey(0)
    b.run(2.6)
    b.modem.pwrkey(1)
    b.run(0.5)
    assert b.modem.powered and b.at("AT") == []  # shutting down: no more commands
    b.run(2.0)
    assert not b.modem.powered
    assert [p["result"] for p in b.modem.pwrkey_presses] == ["none", "off"]


def test_cpof_answers_ok_then_switches_off_without_a_urc():
    b = Bench()
    assert b.at("AT+CPOF") == ["OK"]
    b.run(3)
    assert not b.modem.powered and b.take() == b""


# ---------------------------------------------------------------------- calls
def test_mo_call_clcc_urcs_voice_call_begin_and_end():
    b = Bench()
    b.at("AT+CLCC=1")
    assert b.at("ATD" + C4 + ";", wait=0.2) == ["OK", f'+CLCC: 1,0,2,0,0,"{C4}",145,""']
    b.run(10)
    lines = b.at("AT")
    assert "VOICE CALL: BEGIN" in lines and f'+CLCC: 1,0,0,0,0,"{C4}",145,""' in lines
    b.run(16.5)
    lines = b.at("AT+CHUP")
    assert lines[:2] == ["OK", f'+CLCC: 1,0,6,0,0,"{C4}",145,""']
    assert lines[2] == "VOICE CALL: END: " + hhmmss(b.net.call_records()[-1]["duration_s"])
    assert len(lines) == 3 and b.modem.call_state is None


def test_clcc_urc_has_no_spaces_and_ends_with_an_empty_alpha(notes):
    real = quoted(notes, r'\+CLCC: 1,0,2,0,0,"\d+",129,""')[0]
    b = Bench()
    b.at("AT+CLCC=1")
    got = b.at("ATD1455;", wait=0.2)[1]
    assert got == real


def test_ath_is_ignored_unless_cvhu_0():
    b = Bench()
    b.at("ATD" + C4 + ";")
    b.run(10)
    b.take()
    assert b.modem.call_state == "active"
    assert b.at("AT+CVHU?") == ["+CVHU: 1", "OK"]
    assert b.at("ATH") == ["OK"]
    assert b.modem.call_state == "active"  # the call goes on
    b.at("AT+CVHU=0")
    lines = b.at("ATH")
    assert lines[0] == "OK" and lines[1].startswith("VOICE CALL: END: ")
    assert b.modem.call_state is None


def test_remote_hangup_prints_voice_call_end_then_no_carrier():
    b = Bench()
    b.at("ATD" + C4 + ";")
    b.run(10)
    b.take()
    b.run(7)
    b.net.release(b.net.live_calls()[0], C4)
    b.run(0.5)
    duration = hhmmss(b.net.call_records()[-1]["duration_s"])
    assert duration >= "000007"
    assert [ln for ln in b.take().decode().split("\r\n") if ln] == \
        ["VOICE CALL: END: " + duration, "NO CARRIER"]


def test_incoming_call_rings_every_6_s_with_clip_and_ata_connects():
    b = Bench()
    b.at("AT+CLIP=1")
    b.net.call_device(CONTACT, DEVICE)
    b.run(b.net.alert_delay_s + 12.5)
    lines = [ln for ln in b.take().decode().split("\r\n") if ln]
    assert lines.count("RING") == 3  # at 0, 6 and 12 s after it starts ringing
    assert f'+CLIP: "{CONTACT}",145,,,,0' in lines
    assert b.at("ATA") == ["OK", "VOICE CALL: BEGIN"]
    assert b.modem.call_state == "active"


def test_ri_shapes_sms_call_and_urc_with_cfgri():
    b = Bench()
    b.net.sms_to_device(CONTACT, DEVICE, "hola")
    b.run(b.net.sms_delivery_s + 1)
    (t0, lo), (t1, hi) = b.ri
    assert (lo, hi) == (0, 1) and t1 - t0 == pytest.approx(0.12)
    b.ri.clear()
    b.net.call_device(CONTACT, DEVICE)
    b.run(20)
    levels = [lvl for _, lvl in b.ri]
    times = [t for t, _ in b.ri]
    assert levels[:4] == [0, 1, 0, 1]
    assert times[1] - times[0] == pytest.approx(5.9)
    assert times[2] - times[1] == pytest.approx(0.1)
    b.at("ATA")
    assert b.modem.ri == 1
    b.at("AT+CHUP")
    b.ri.clear()
    assert b.at("AT+CFGRI?") == ["+CFGRI: 0,60,120", "OK"]
    b.modem.no_network()   # a +CREG URC with CREG=1...
    b.at("AT+CREG=1")
    b.modem.no_network(False)
    b.run(10)
    assert b.ri == []      # ...does not move RI by default
    b.at("AT+CFGRI=1")
    b.modem.no_network()
    b.run(1)
    (t0, lo), (t1, hi) = b.ri
    assert (lo, hi) == (0, 1) and t1 - t0 == pytest.approx(0.06)


# ---------------------------------------------------------------------- audio
def test_gains_default_4_are_kept_across_a_power_cycle_and_sim800_audio_is_error():
    b = Bench()
    assert b.at("AT+COUTGAIN?") == ["+COUTGAIN: 4", "OK"]
    assert b.at("AT+CMICGAIN?") == ["+CMICGAIN: 4", "OK"]
    assert b.at("AT+COUTGAIN=0") == ["OK"] and b.at("AT+CMICGAIN=7") == ["OK"]
    assert b.at("AT+COUTGAIN=8") == ["ERROR"]
    assert b.at("AT+CSDVC=3") == ["OK"] and b.at("AT+CSDVC=2") == ["ERROR"]
    b.modem.power_off()
    b.modem.power_on()
    b.run(30)
    b.take()
    assert b.at("AT+COUTGAIN?") == ["+COUTGAIN: 0", "OK"]  # AUTO_SAVE
    assert b.at("AT+CMICGAIN?") == ["+CMICGAIN: 7", "OK"]
    b.at("AT+CMEE=2")
    for cmd in ("AT+CLVL=0", "AT+CRSL=0", "AT+CMIC=0,10", "AT+CENG?", "AT+CPOWD=1",
                "AT+CALM=1", "AT+CBATCHK=1"):
        assert b.at(cmd) == ["ERROR"], cmd
    assert b.modem.powered  # AT+CPOWD did nothing


def test_mute_is_refused_outside_a_call_and_reset_after_it():
    b = Bench()
    assert b.at("AT+VMUTE=1") == ["ERROR"] and b.at("AT+CMUT=1") == ["ERROR"]
    b.at("ATD" + C4 + ";")
    b.run(1)
    assert b.at("AT+VMUTE=1") == ["ERROR"]  # dialling is not a connected call
    b.run(10)
    b.take()
    assert b.at("AT+VMUTE=1") == ["OK"] and b.at("AT+CMUT=1") == ["OK"]
    assert b.modem.audio == {"mic_gain": 0, "speaker_level": 0, "ringer_level": 4}
    b.at("AT+CHUP")
    assert b.at("AT+VMUTE?") == ["+VMUTE: 0", "OK"] and b.at("AT+CMUT?") == ["+CMUT: 0", "OK"]


def test_the_call_record_tells_a_covert_call_from_a_loud_one():
    b = Bench()
    b.at("ATD" + C4 + ";")
    b.run(10)
    b.at("AT+CHUP")
    b.at("AT+COUTGAIN=0")
    b.at("AT+CMICGAIN=7")
    b.at("ATD" + C4 + ";")
    b.run(10)
    b.at("AT+CHUP")
    loud, covert = [c["audio"] for c in b.net.call_records(to=C4)]
    assert loud == {"mic_gain": 4, "speaker_level": 4, "ringer_level": 4}
    assert covert == {"mic_gain": 7, "speaker_level": 0, "ringer_level": 0}


# ---------------------------------------------------------------------- network
def test_registration_reads_on_lte():
    b = Bench()
    assert b.at("AT+CREG?") == ["+CREG: 0,1", "OK"]
    assert b.at("AT+CEREG=2") == ["OK"]
    assert b.at("AT+CEREG?") == ['+CEREG: 2,1,"7764","06FB8115"', "OK"]
    assert b.at("AT+COPS?") == ['+COPS: 0,0,"TELCEL",7', "OK"]
    assert b.at("AT+CNSMOD?") == ["+CNSMOD: 0,8", "OK"]
    assert b.at("AT+CNMP?") == ["+CNMP: 2", "OK"]
    cpsi = b.at("AT+CPSI?")[0]
    assert re.fullmatch(r"\+CPSI: LTE,Online,334-020,0x7764,\d+,127,EUTRAN-BAND4,2300,5,5,"
                        r"\d+,\d+,\d+,-?\d+", cpsi), cpsi
    assert re.fullmatch(r"\+CSQ: \d+,\d+", b.at("AT+CSQ")[0])
    b.modem.no_network()
    b.run(1)
    assert b.take() == b"\r\n+CEREG: 0\r\n"  # CEREG=2 reports the loss
    assert b.at("AT+CPSI?") == ["+CPSI: NO SERVICE,Online", "OK"]


def test_cpsi_lte_line_has_the_shape_of_the_real_one(notes):
    real = quoted(notes, r"\+CPSI: LTE,Online,.*")[0]
    got = Bench().at("AT+CPSI?")[0]
    assert got.count(",") == real.count(",")


def test_without_volte_lte_is_sms_only_and_voice_fails_until_cnmp_13():
    b = Bench(volte=False)
    assert b.at("AT+CREG?") == ["+CREG: 0,6", "OK"]
    b.at("AT+CMEE=1")
    assert b.at("ATD" + C4 + ";", wait=1) == ["+CME ERROR: 30"]
    assert [c["result"] for c in b.net.call_records()] == ["unreachable"]  # the attempt is recorded
    # SMS still goes
    b.at("AT+CMGF=1")
    b.modem.feed(f'AT+CMGS="{CONTACT}"\r'.encode())
    b.run(0.5)
    b.modem.feed(b"hola\x1a")
    b.run(5)
    assert re.search(rb"\+CMGS: \d+\r\n\r\nOK", b.take())
    # GSM only: registers afresh on 2G, where calls work
    assert b.at("AT+CNMP=13") == ["OK"]
    assert b.at("AT+CREG?") == ["+CREG: 0,2", "OK"]
    b.run(5)
    assert b.at("AT+CREG?") == ["+CREG: 0,1", "OK"]
    assert b.at("AT+CNSMOD?") == ["+CNSMOD: 0,1", "OK"]
    assert b.at("AT+COPS?") == ['+COPS: 0,0,"TELCEL",0', "OK"]
    assert b.at("AT+CPSI?")[0].startswith("+CPSI: GSM,Online,334-020,0x")
    assert b.at("ATD" + C4 + ";") == ["OK"]
    b.run(10)
    assert b.modem.call_state == "active"


def test_cnmp_13_without_2g_finds_nothing_and_the_mode_is_kept():
    b = Bench(gsm=False)
    b.at("AT+CNMP=13")
    b.run(10)
    assert b.at("AT+CREG?") == ["+CREG: 0,2", "OK"]
    b.modem.power_off()
    b.modem.power_on()
    b.run(30)
    b.take()
    assert b.at("AT+CNMP?") == ["+CNMP: 13", "OK"]  # AUTO_SAVE


def test_sms_only_fault_refuses_incoming_voice_and_emergency_only_reads_11():
    b = Bench()
    b.modem.sms_only()
    b.run(5)
    assert b.at("AT+CREG?") == ["+CREG: 0,6", "OK"]
    b.net.call_device(CONTACT, DEVICE)
    b.run(10)
    assert b.modem.call_state is None and b.net.live_calls() == []
    assert b"RING" not in b.take() and b.net.call_records()[-1]["answered"] is False
    b.modem.sms_only(False)
    b.modem.emergency_only()
    b.modem.no_network()
    b.run(1)
    assert b.at("AT+CREG?") == ["+CREG: 0,11", "OK"]


def test_911_needs_a_cell_of_a_technology_the_module_may_use():
    # a review: pinned to GSM (the 2G fallback's saved AT+CNMP=13) where 2G is gone, the
    # module has no service at all, yet the rig connected 911
    b = Bench(gsm=False)
    b.run(5)
    b.at("AT+CMEE=1;+CNMP=13")
    b.run(5)
    assert b.at("AT+CPSI?")[0].startswith("+CPSI: NO SERVICE")
    assert b.at("ATD911;")[0] == "+CME ERROR: 30"
    assert not b.net.live_calls()
    # "emergency calls only" (+CREG stat 11): 911 goes through
    b = Bench()
    b.modem.emergency_only()
    b.modem.no_network()
    b.run(1)
    assert b.at("AT+CREG?") == ["+CREG: 0,11", "OK"]
    assert b.at("ATD911;")[0] == "OK"
    b.run(10)
    assert b.modem.call_state == "active"


def test_a_call_to_an_sms_only_a7670_is_recorded_unreachable_not_rejected():
    """Nobody declined it: the network could not page the module for voice."""
    b = Bench(volte=False)          # LTE without VoLTE: registered for SMS only
    b.run(5)
    assert b.at("AT+CREG?") == ["+CREG: 0,6", "OK"]
    b.net.call_device(C4, DEVICE)
    b.run(10)
    record = b.net.call_records()[-1]
    assert (record["result"], record["ended_by"], record["cause"]) == ("unreachable", "network", 20)
    assert not [e for e in b.net.events if e["kind"] == "ringing"]  # it never rang
    assert b"RING" not in b.take() and b.modem.call_state is None


# ---------------------------------------------------------------------- SMS
def test_sms_text_mode_cmti_cmgr_cmgl_cmgd_and_cms_errors():
    b = Bench()
    assert b.at("AT+CMGF?") == ["+CMGF: 0", "OK"]
    b.at("AT+CMGF=1")
    assert b.at('AT+CSCS=?') == ['+CSCS: ("IRA","UCS2","GSM")', "OK"]
    b.at('AT+CSCS="GSM"')
    b.modem.feed(f'AT+CMGS="{CONTACT}"\r'.encode())
    b.run(0.5)
    assert b.take().endswith(b"\r\n> ")
    b.modem.feed("Ayuda, estoy en peligro".encode() + b"\x1a")
    b.run(5)
    assert re.search(rb"\+CMGS: \d+\r\n\r\nOK\r\n$", b.take())
    assert b.net.sms(to=CONTACT)[-1]["text"] == "Ayuda, estoy en peligro"
    b.modem.net_incoming_sms(CONTACT, "ok")
    b.run(1)
    assert b.take() == b'\r\n+CMTI: "SM",1\r\n'
    assert b.at("AT+CMGR=1")[1] == "ok"
    assert b.at('AT+CMGL="ALL"')[0].startswith('+CMGL: 1,"REC READ"')
    assert b.at("AT+CMGD=1") == ["OK"] and b.at("AT+CMGR=1") == ["OK"]
    b.at("AT+CMEE=1")
    b.modem.cms_error(332)
    b.modem.feed(f'AT+CMGS="{CONTACT}"\r'.encode())
    b.run(0.5)
    b.modem.feed(b"x\x1a")
    b.run(5)
    assert b"+CMS ERROR: 332" in b.take()
    assert b.at("AT+CMGR=99") == ["+CMS ERROR: 321"]


def test_cmgf_and_cscs_are_auto_saved():
    b = Bench()
    b.at("AT+CMGF=1")
    b.at('AT+CSCS="GSM"')
    b.modem.power_off()
    b.modem.power_on()
    b.run(30)
    b.take()
    assert b.at("AT+CMGF?") == ["+CMGF: 1", "OK"]
    assert b.at("AT+CSCS?") == ['+CSCS: "GSM"', "OK"]


# ---------------------------------------------------------------------- power
def test_cbc_is_volts_with_three_decimals(notes):
    assert quoted(notes, r"\+CBC: 3\.749V")
    b = Bench()
    b.modem.set_battery(3749)
    assert b.at("AT+CBC") == ["+CBC: 3.749V", "OK"]


def test_voltage_warnings_only_with_cvalarm_and_power_down_only_with_cpmvt():
    b = Bench()
    b.modem.under_voltage()
    b.run(25)
    assert b"WARNNING" not in b.take() and b.modem.powered  # both off by default
    assert b.at("AT+CVALARM=1,3400,4200") == ["OK"]
    b.run(25)
    assert b.take().count(b"\r\nUNDER-VOLTAGE WARNNING\r\n") == 2  # every 10 s
    assert b.at("AT+CPMVT=1,3300,4300") == ["OK"]
    b.run(10.5)
    assert b"UNDER-VOLTAGE WARNNING POWER DOWN" in b.take()
    assert not b.modem.powered


def test_csclk_modes_are_not_saved_and_rx_sleep_wakes_on_data():
    b = Bench()
    assert b.at("AT+CSCLK=2") == ["OK"]
    b.run(11)
    assert b.modem.sleeping
    b.modem.feed(b"A")     # the wake byte is lost
    b.run(0.1)
    assert not b.modem.sleeping and b.at("AT") == ["OK"]
    b.modem.power_off()
    b.modem.power_on()
    b.run(30)
    b.take()
    assert b.at("AT+CSCLK?") == ["+CSCLK: 0", "OK"]
    b.at("AT+CSCLK=1")
    b.modem.dtr(1)
    b.run(1)
    assert b.modem.sleeping
    b.modem.dtr(0)
    b.run(0.05)
    assert not b.modem.sleeping


def test_cfun_and_clock():
    b = Bench()
    assert b.at("AT+CFUN=0", wait=2) == ["+CPIN: NOT READY", "OK"]
    assert b.at("AT+CPSI?") == ["+CPSI: NO SERVICE,Low Power Mode", "OK"]
    b.at("AT+CFUN=1", wait=15)
    assert b.at("AT+CREG?") == ["+CREG: 0,1", "OK"]
    assert re.fullmatch(r'\+CCLK: "\d\d/\d\d/\d\d,\d\d:\d\d:\d\d[+-]\d\d"', b.at("AT+CCLK?")[0])
    assert b.at("AT+CLTS?") == ["+CLTS: 0", "OK"]


# ---------------------------------------------------------------------- faults
def test_faults_silent_module_call_drop_and_no_network():
    b = Bench()
    b.at("ATD" + C4 + ";")
    b.run(10)
    b.take()
    b.modem.drop_call()
    b.run(0.5)
    assert b"NO CARRIER" in b.take() and b.modem.call_state is None
    b.modem.no_network()
    b.run(0.5)
    b.at("AT+CMEE=2")
    assert b.at("ATD" + C4 + ";", wait=1) == ["+CME ERROR: no network service"]
    b.modem.go_silent()
    assert b.at("AT") == []


# ---------------------------------------------------------------------- the rig
def test_the_rig_builds_the_family_asked_for_and_refuses_unknown_ones(tmp_path):
    from boton.sim.rig import VirtualDevice

    with pytest.raises(ValueError, match="known are a7670, sim800"):
        VirtualDevice(tmp_path / "f1", modem_family="sim900")
    with pytest.raises(ValueError, match="no option 'voltee'.*volte"):
        VirtualDevice(tmp_path / "f2", modem_family="a7670", modem_options={"voltee": False})
    assert VirtualDevice(tmp_path / "f3").modem_family == "sim800"  # boards/*.json: no family
    with pytest.raises(ValueError, match="network has no option 'ring_timeout'.*ring_timeout_s"):
        VirtualDevice(tmp_path / "f4", network_options={"ring_timeout": 60})
    with pytest.raises(ValueError, match="ring_timeout_s must be a number of seconds > 0, not 'long'"):
        VirtualDevice(tmp_path / "f5", network_options={"ring_timeout_s": "long"})
    # LilyGO's A7670 boards press PWRKEY/RESET with a high GPIO (an inverting transistor).
    assert [VirtualDevice._module_pin_level(level, 1) for level in (0, 1)] == [1, 0]
    assert [VirtualDevice._module_pin_level(level, 0) for level in (0, 1)] == [0, 1]


def test_a_started_rig_runs_the_a7670_with_its_options(tmp_path):
    from boton.sim.rig import VirtualDevice

    with VirtualDevice(tmp_path / "flash", time_scale=0.1, modem_family="a7670",
                       modem_options={"volte": False}).start() as vd:
        assert vd.call(lambda: (type(vd.modem).__name__, vd.modem.volte)) == ("A7670", False)
