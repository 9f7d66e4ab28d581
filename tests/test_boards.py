"""Board profiles per real T-Call revision (data/boards.md), the ESP32 pin rules they keep,
and the power chip on I2C: the firmware's pmu module, the rig's emulation, and the host's
refusal of a profile that does not match the board."""
import copy
import re
import sys
import types

import pytest
from click.testing import CliRunner

from boton.boards import (MODEM_RESET_MIN_S, RENAMED, STRAPPING_HOLD_S, STRAPPING_PULL, check_pins, load_board, pin_notes,
                          pin_problems, power_chip)
from boton.cli import main
from boton.device import Device
from boton.errors import EXIT_USAGE, DeviceError
from boton.paths import BOARDS, FIRMWARE, REPO
from boton.provision import check_power_chip
from boton.rules import firmware_module
from boton.sim import pmu as sim_pmu
from rigkit import provisioned_device

BOARDS_MD = REPO / "data" / "boards.md"
A76XX_MD = REPO / "data" / "at" / "a76xx.md"
PROFILES = sorted(p.stem for p in BOARDS.glob("*.json") if p.stem not in RENAMED)


def vendor_rows():
    """revision -> {column: cell} from the table in data/boards.md."""
    lines = [ln for ln in BOARDS_MD.read_text().splitlines() if ln.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return {cells[0]: dict(zip(head, cells)) for cells in
            ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:])}


def gpio(cell):
    """The GPIO number in a data/boards.md cell, or None where the vendor says it is not wired."""
    return int(cell) if re.fullmatch(r"\d+", cell) else None


# ------------------------------------------------------------------ profiles and pin rules
@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_keeps_the_pin_rules(name):
    assert check_pins(load_board(name))["id"] == name


@pytest.mark.parametrize("name, revision, chip", [
    ("tcall_sim800l_ip5306", "SIM800L IP5306 20200811", "ip5306"),
    ("tcall_sim800l_axp192", "SIM800L AXP192 20200327", "axp192"),
])
def test_tcall_profiles_follow_the_vendor_pin_map(name, revision, chip):
    b, row = load_board(name), vendor_rows()[revision]
    m = b["modem"]
    assert (m["pwrkey"], m["reset"], m["power_on"]) == (gpio(row["PWRKEY"]), gpio(row["RST"]),
                                                          gpio(row["MODEM POWER"]))
    assert m.get("ri") == gpio(row["RI"]) and m.get("dtr") == gpio(row["DTR"])
    assert (b["led"] or {}).get("pin") == gpio(row["LED"])
    assert power_chip(b)[0] == chip and chip.upper() in row["power chip"]
    assert power_chip(b)[1].get("irq") == gpio(row["PMU IRQ"])
    assert "data/boards.md" in b["notes"]


def a76xx_board_section():
    """data/at/a76xx.md §1 (the T-A7670X board): {signal: (GPIO cell, notes)} of its pin table,
    and the whole section's text."""
    text = A76XX_MD.read_text()
    section = text.split("## 1. Board", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for ln in section.splitlines():
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        if ln.startswith("| ") and len(cells) == 3 and not set(cells[1]) <= set("-"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows, section


def test_ta7670x_profile_follows_the_a76xx_pin_table():
    b, (rows, section) = load_board("ta7670x_a7670sa"), a76xx_board_section()
    m = b["modem"]
    assert m["family"] == "a7670" and m["baud"] == 115200 and "115200" in rows["ESP32 TX → modem RXD"][1] + \
        rows["Modem TXD → ESP32 RX"][1]
    assert (m["tx"], m["rx"]) == (gpio(rows["ESP32 TX → modem RXD"][0]), gpio(rows["Modem TXD → ESP32 RX"][0]))
    assert f"UART({m['uart']}, tx={m['tx']}, rx={m['rx']})" in rows["Modem TXD → ESP32 RX"][1]
    assert m["pwrkey"] == gpio(rows["PWRKEY"][0]) and "active-HIGH" in rows["PWRKEY"][1]
    assert m["pwrkey_active"] == 1
    assert m["reset"] == gpio(rows["RESET"][0]) and "MODEM_RESET_LEVEL HIGH" in rows["RESET"][1]
    assert m["reset_active"] == 1
    assert m["power_on"] == gpio(rows["Board/modem power enable"][0])
    assert "must be HIGH" in rows["Board/modem power enable"][1]
    assert (m["dtr"], m["ri"]) == (gpio(rows["DTR"][0]), gpio(rows["RI (ring)"][0]))
    bat = b["battery"]
    assert bat["source"] == "adc" and bat["pin"] == gpio(rows["Battery ADC"][0])
    assert f"multiply by {bat['divider']:g}" in rows["Battery ADC"][1]
    assert b["led"] is None and rows["LED"][0].startswith("none") and "cannot be turned off" in rows["LED"][1]
    g = b["gps"]  # the L76K shield, pins named from the ESP32's side as LilyGO's sketch opens
    # them: begin(baud, config, RX, TX). Read as the GPS's own TX/RX they were swapped, and
    # the ESP32 listened on the GPS's input: no NMEA, every alert without a live position
    opened = re.search(r"SerialGPS\.begin\((\d+), SERIAL_8N1, BOARD_GPS_RX_PIN /\*(\d+)\*/, "
                       r"BOARD_GPS_TX_PIN /\*(\d+)\*/\)", rows["GPS"][1])
    assert (g["baud"], g["rx"], g["tx"]) == tuple(int(n) for n in opened.groups()) == (9600, 22, 21)
    assert g["module"] == "L76K" and "AT+CGNSSPWR" in b["notes"]
    module = re.search(r"ESP32 module: \*\*ESP32-(WROVER)-E, (\d) MB flash, (\d) MB QSPI PSRAM", section)
    assert (b["module"], b["flash_size"], b["psram_size"]) == (module[1].lower(), f"{module[2]}MB", f"{module[3]}MB")
    # the pins chosen for the button and the motor are none the board or its shield use
    taken = {int(n) for cell, _ in rows.values() for n in re.findall(r"\b\d+\b", cell)} | {23, 19}  # shield PPS, wake
    assert b["button"]["pin"] not in taken and b["vibration"]["pin"] not in taken
    assert "data/at/a76xx.md" in b["notes"]


def test_modem_reset_facts_match_the_simulated_modems():
    from boton.sim.modem import modem_class
    for family, seconds in MODEM_RESET_MIN_S.items():
        assert modem_class(family).RESET_MIN_S == seconds, family


def bad(**changes):
    b = copy.deepcopy(load_board("tcall_sim800l_axp192"))
    for path, value in changes.items():
        part, key = path.split("__")
        b[part][key] = value
    return b


@pytest.mark.parametrize("profile, message", [
    (bad(vibration__pin=15), "GPIO15 is a strapping pin pulled up at reset, which turns the vibration on"),
    (bad(vibration__pin=0), "GPIO0 is a strapping pin pulled up at reset"),
    (bad(led__pin=12, led__active=0), "GPIO12 is a strapping pin pulled down at reset, which turns the led on"),
    (bad(gps__rx=34), "GPIO34 has no internal pull-up, and the GPS RX needs one"),
    (bad(modem__tx=17), "GPIO17 carries the PSRAM on WROVER modules (modem TX)"),
    (bad(gps__enable=36), "GPIO36 is input-only and cannot drive the GPS enable"),
    (bad(vibration__pin=13), "GPIO13 is used twice (led and vibration)"),
    (bad(button__pin=7), "GPIO7 belongs to the SPI flash (button)"),
    (bad(button__pin=24), "GPIO24 does not exist on the ESP32 (button)"),
    (bad(button__pull="down"), "button \"pull\" \"down\" is not one the firmware sets"),
    (bad(axp192__addr=0x35), "axp192 \"addr\" 53 is not the chip's I2C address 52 (0x34)"),
    # MicroPython's esp32.wake_on_ext0/ext1 refuse it: the firmware could never sleep
    (bad(button__pin=3), "GPIO3 cannot wake the ESP32 from light sleep"),
    (bad(modem__ri=1), "GPIO1 cannot wake the ESP32 from light sleep"),
])
def test_a_pin_that_misbehaves_is_refused_with_the_rule_it_breaks(profile, message):
    with pytest.raises(DeviceError) as e:
        check_pins(profile)
    assert e.value.exit_code == EXIT_USAGE
    assert message in str(e.value) and "tcall_sim800l_axp192" in str(e.value)


def test_what_the_rules_allow():
    # an active-high output on a strapping pin pulled down (the motor stays off from reset)
    assert not pin_problems(bad(vibration__pin=12))
    # GPS RX on an input-only pin with the external pull-up the docs ask for
    assert not pin_problems(bad(gps__rx=34, gps__rx_pullup="external"))
    # GPIO16/17 when the profile is sure of a WROOM module
    wroom = bad(modem__tx=17)
    wroom["module"] = "wroom"
    assert not pin_problems(wroom)


def ta7670x(**modem):
    b = copy.deepcopy(load_board("ta7670x_a7670sa"))
    b["modem"].update(modem)
    return b


def test_an_active_high_reset_on_gpio5_only_where_the_pull_is_too_short_to_reset():
    # GPIO5's pull-up asserts an active-high RESET from every ESP32 reset until the firmware
    # drives it: the A7670 needs a 2 s pulse, longer than that, so its reset may sit there...
    assert MODEM_RESET_MIN_S["a7670"] > STRAPPING_HOLD_S > MODEM_RESET_MIN_S["sim800"]
    assert not pin_problems(ta7670x())
    assert any(n.startswith("GPIO5 (modem RESET): strapping pin, pulled up: from every ESP32 reset") and
               "the 2 s pulse the A7670 needs" in n for n in pin_notes(ta7670x()))
    # ...but a SIM800 resets on 105 ms: every ESP32 reset would restart it (and drop her call)
    with pytest.raises(DeviceError) as e:
        check_pins(ta7670x(family="sim800"))
    assert e.value.exit_code == EXIT_USAGE
    assert ("GPIO5 is a strapping pin pulled up at reset, which turns the modem RESET on from reset until the "
            "firmware starts (the SIM800 resets on a 0.105 s pulse") in str(e.value)
    # the exception is for a RESET only: an active-high PWRKEY or motor there is still refused
    assert "turns the modem PWRKEY on" in " ".join(pin_problems(ta7670x(reset=23, pwrkey=5)))
    b = ta7670x()
    b["vibration"]["pin"] = 15
    assert "GPIO15 is a strapping pin pulled up at reset, which turns the vibration on" in " ".join(pin_problems(b))


def test_an_active_high_power_enable_on_gpio12_keeps_the_modem_off_from_reset():
    assert not pin_problems(ta7670x(power_on=12))
    assert any(n.startswith("GPIO12 (modem POWER_ON): strapping pin (MTDI") and "keeps the modem off" in n
               for n in pin_notes(ta7670x()))
    # on a strapping pin pulled up the enable would power the modem from every reset
    assert "GPIO15 is a strapping pin pulled up at reset, which turns the modem POWER_ON on" in \
        " ".join(pin_problems(ta7670x(power_on=15)))


@pytest.mark.parametrize("modem, message", [
    ({"family": "sim900"}, "modem family 'sim900' is not one of a7670, sim800"),
    ({"family": ["a7670"]}, "modem family ['a7670'] is not one of a7670, sim800"),
    ({"reset_active": "high"}, "modem reset_active must be 0 (the GPIO drives the pin low to press it) or 1"),
])
def test_a_modem_the_host_cannot_reason_about_is_refused(modem, message):
    with pytest.raises(DeviceError) as e:
        check_pins(ta7670x(**modem))
    assert e.value.exit_code == EXIT_USAGE and message in str(e.value)


def test_the_split_profile_name_says_which_revisions_to_use():
    with pytest.raises(DeviceError) as e:
        load_board("tcall_sim800l")
    assert e.value.exit_code == EXIT_USAGE
    assert "--board tcall_sim800l_ip5306" in str(e.value) and "--board tcall_sim800l_axp192" in str(e.value)
    with pytest.raises(DeviceError, match="unknown board 'nope'"):
        load_board("nope")


@pytest.mark.parametrize("name", PROFILES)
def test_host_and_firmware_agree_on_the_expected_power_chip(name):
    b = load_board(name)
    assert tuple(firmware_module("pmu").expected(b)) == power_chip(b)


# ------------------------------------------------------------------ firmware pmu on CPython
@pytest.fixture
def fw_pmu(monkeypatch):
    """firmware/lib/pmu.py with a fake hw whose I2C is the rig's emulated bus."""
    bus = sim_pmu.I2cBus(None)
    fake = types.ModuleType("hw")

    def i2c_read(sda, scl, addr, reg, n):
        data = bus.read(addr, reg, n)
        if data is None:
            raise OSError(19)
        return data

    fake.i2c_read = i2c_read
    fake.i2c_write = lambda sda, scl, addr, reg, value: bus.write(addr, reg, value)
    monkeypatch.setitem(sys.modules, "hw", fake)
    return firmware_module("pmu"), bus


def test_pmu_tells_the_chips_apart(fw_pmu):
    pmu, bus = fw_pmu
    assert pmu.detect(21, 22) is None
    bus.chip = sim_pmu.make("ip5306", lambda: 3700)
    assert pmu.detect(21, 22) == "ip5306"
    bus.chip = sim_pmu.make("axp192", lambda: 3700)
    assert pmu.detect(21, 22) == "axp192"


def test_pmu_keeps_the_ip5306_boost_on(fw_pmu):
    pmu, bus = fw_pmu
    bus.chip = chip = sim_pmu.make("ip5306", lambda: 3700)
    assert not chip.kept_on
    pmu.keep_on("ip5306", {"sda": 21, "scl": 22})
    assert chip.regs[0x00] == 0x37 and chip.kept_on


def test_pmu_keeps_the_axp192_esp32_rail_and_reads_the_battery(fw_pmu):
    pmu, bus = fw_pmu
    mv = [4012]
    bus.chip = chip = sim_pmu.make("axp192", lambda: mv[0])
    chip.regs[0x82] = 0x00  # battery ADC off: it reads 0 until keep_on enables it
    assert pmu.battery_mv({"sda": 21, "scl": 22}) == 0
    pmu.keep_on("axp192", {"sda": 21, "scl": 22})
    assert chip.kept_on and chip.regs[0x12] == 0x02  # DC-DC3 only: the unused rails are off
    for mv[0] in (3300, 3712, 4200):
        assert abs(pmu.battery_mv({"sda": 21, "scl": 22}) - mv[0]) <= 1.1  # 1.1 mV per LSB


def test_rig_i2c_requests_are_answered_or_nacked():
    bus = sim_pmu.I2cBus(sim_pmu.make("axp192", lambda: 3700))
    assert bus.request(b"R 52 3 1\n") == b"03\n"
    assert bus.request(b"R 117 0 1\n") == b"NAK\n"
    assert bus.request(b"R 52 x\n") == b"NAK\n"
    with pytest.raises(ValueError, match="power_chip must be one of"):
        sim_pmu.make("ip5307", lambda: 0)


# ------------------------------------------------------------------ on the virtual device
def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_axp192_board_keeps_power_and_reports_the_battery_from_the_pmu(tmp_path):
    with provisioned_device(tmp_path, board="tcall_sim800l_axp192") as vd:
        assert "EV power_chip axp192" in vd.console_text()
        assert "power_chip_mismatch" not in vd.console_text()
        assert vd.i2c_bus.chip.kept_on
        vd.set_battery_mv(3771)  # the PMU's ADC reads it, in 1.1 mV steps (the modem's AT+CBC would say 39%)
        mark = vd.console_mark()
        vd.hard_reset()  # a fresh boot reads the battery
        vd.wait_console("EV ready", timeout=60, since=mark)
        vd.press(hold_s=1.2)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0], timeout=60)
    assert "Bat 30%" in sms["text"]  # 3.77 V on the LiPo chart (powerpolicy.LIPO_MV)


def test_wrong_profile_runs_but_provision_refuses_it(tmp_path):
    # An AXP192 board flashed with the IP5306 profile: the button still works (the chip
    # that answers is kept on), and provisioning stops before writing anything.
    with provisioned_device(tmp_path, board="tcall_sim800l_ip5306", power_chip="axp192") as vd:
        text = vd.console_text()
        assert "EV power_chip axp192" in text
        assert "EV power_chip_mismatch axp192_answers_profile_says_ip5306" in text
        assert vd.i2c_bus.chip.kept_on
        before = (vd.flash_dir / "config.json").read_bytes()
        r = run("provision", "--port", vd.repl_url, "--alias", "Sol", "--contact", "449 111 2233",
                "--c4", "449 910 0000")
        assert r.exit_code == EXIT_USAGE, r.output
        assert ("this board answers as an AXP192 but the profile says tcall_sim800l_ip5306: "
                "use --board tcall_sim800l_axp192") in " ".join(r.output.split())
        assert (vd.flash_dir / "config.json").read_bytes() == before
        with Device(vd.repl_url) as dev:  # the matching profile is accepted
            assert check_power_chip(dev, load_board("tcall_sim800l_axp192")) == "axp192"
            assert check_power_chip(dev, load_board("devkitc_sim800l_neo6m")) is None  # nothing to probe


def test_no_power_chip_answering_is_refused(tmp_path):
    with provisioned_device(tmp_path, board="tcall_sim800l_axp192", power_chip="none") as vd:
        assert "EV power_chip_mismatch none_answers_profile_says_axp192" in vd.console_text()
        with Device(vd.repl_url) as dev, pytest.raises(DeviceError) as e:
            check_power_chip(dev)
    assert e.value.exit_code == EXIT_USAGE
    assert "no power chip answers on I2C but the profile tcall_sim800l_axp192 expects an AXP192" in str(e.value)


def test_hardware_docs_show_the_ta7670x_as_it_is_wired():
    """docs/hardware.md's generated section: active-high PWRKEY/RESET, the power enable, the
    modem family, the lights she cannot switch off, and nothing of the SIM800 boards."""
    from boton.docs_build import board_section, power_chain, wiring_svg
    b = load_board("ta7670x_a7670sa")
    section = board_section(b)
    assert "| GPIO4 | PWRKEY → | A7670SA LTE Cat-1 modem (on the board): PWRKEY | active high" in section
    assert "| GPIO5 | RESET → | A7670SA LTE Cat-1 modem (on the board): RST | active high" in section
    assert "| GPIO12 | POWER_ON → | A7670SA LTE Cat-1 modem (on the board): board power enable |" in section
    assert "(family `a7670`)" in section and "VoLTE" in section
    assert "| – | no LED | – |" in section and "a light can give her away at night" in section
    assert "GPS receiver (L76K)" in section and "18650 Li-ion cell" in section
    assert "SIM800" not in section and "NEO-6M" not in section and "TP4056" not in section
    assert power_chain(b)[1][1] == ("A7670SA supply", "enabled by GPIO12")
    svg = wiring_svg(b)
    assert "modem family a7670" in svg and "high 100 ms = on" in svg and "a light can give her away" in svg


def test_the_firmware_knows_which_supply_enables_the_reset_pulls_off():
    """modemup.OFF_AT_RESET and safe.OFF_AT_RESET (the firmware cannot import boards.py) are
    STRAPPING_PULL's pulled-down pins: a supply enable there leaves the module unpowered at
    every boot."""
    import ast
    for path in (FIRMWARE / "lib" / "modemup.py", FIRMWARE / "safe.py"):   # safe mode: without lib/
        node = next(n for n in ast.parse(path.read_text()).body if isinstance(n, ast.Assign)
                    and getattr(n.targets[0], "id", None) == "OFF_AT_RESET")
        pins = ast.literal_eval(node.value)
        assert set(pins) == {p for p, pull in STRAPPING_PULL.items() if pull == 0}, path
        assert load_board("ta7670x_a7670sa")["modem"]["power_on"] in pins, path
