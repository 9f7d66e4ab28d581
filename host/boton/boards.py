"""Board profiles (boards/*.json): by name, or a path to a profile of one's own.

check_pins() holds every profile to the ESP32's pin rules (docs/hardware.md, "Pins the
profiles may not choose"): a pin that misbehaves at reset, belongs to the flash or to
PSRAM, or cannot do what the profile asks of it is refused before anything is built."""
import json
from pathlib import Path

from .errors import EXIT_USAGE, DeviceError
from .paths import BOARDS

# Profiles that were split or renamed: the old name says where to go (data/boards.md).
RENAMED = {
    "tcall_sim800l": "the T-Call profile was split by board revision (data/boards.md): use "
                     "--board tcall_sim800l_ip5306 (IP5306 power chip; RI, DTR and LED not wired) or "
                     "--board tcall_sim800l_axp192 (AXP192 power chip; RI 33, DTR 32, LED 13). "
                     "`boton status` says which power chip a board answers with",
}

# ESP32 strapping pins and the pull each has at reset (ESP32 datasheet, "Strapping Pins"):
# an output that must be off at reset may not sit on one whose pull turns it on.
STRAPPING_PULL = {0: 1, 2: 0, 5: 1, 12: 0, 15: 1}
# A strapping pin pulled down (GPIO12) is a sound place for an active-high supply enable
# (the T-A7670X's POWER_ON): the modem's supply stays off from reset until the firmware
# raises it, which is what a pin that must be low at reset gives for free.

# How long each modem family's RESET must be held asserted before the module acts on it.
# The simulated modems hold the same figures (RESET_MIN_S; tests/test_boards.py).
MODEM_RESET_MIN_S = {
    "sim800": 0.105,  # SIM800 hardware design: RESET low >= 105 ms restarts the module
    "a7670": 2.0,     # A7670 hardware design §3.2.3, data/at/a76xx.md §2: a 2-2.5 s pulse
}
# The longest an ESP32 output sits under its strapping pull after a reset, until the firmware
# drives it: ROM and bootloader (PSRAM test included), MicroPython's start and the firmware's
# boot up to modem_init. An estimate with margin, not a measurement: a pull that asserts a
# RESET for less than its module needs to act cannot restart the modem (and drop a call).
STRAPPING_HOLD_S = 1.0
FLASH_PINS = range(6, 12)
PSRAM_PINS = (16, 17)          # WROVER modules wire their PSRAM here
INPUT_ONLY = range(34, 40)     # no output driver, no internal pull resistors
MISSING = (20, 24, 28, 29, 30, 31)
# The pins that can wake the chip from light sleep (ext0: the button; ext1: the modem's RI):
# RTC GPIOs only. MicroPython's esp32.wake_on_ext0/ext1 raise "invalid pin" for any other
# (ports/esp32/modesp32.h RTC_VALID_EXT_PINS).
RTC_WAKE_PINS = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39)

# What a technician should know about a pin a profile uses (docs/hardware.md, "Pins to
# know about" under each board; the rules themselves are pin_problems()).
STRAPPING_NOTES = {
    0: "strapping pin (boot mode), pulled up: held low at reset the chip starts its download mode",
    2: "strapping pin, pulled down: must be low or floating to enter the download mode; "
       "an LED or an active-high output is off at reset",
    5: "strapping pin (SDIO timing), pulled up: keep it floating or high at reset "
       "(an active-low RST idles high: fine)",
    12: "strapping pin (MTDI, flash voltage), pulled down: must be low at reset, never pulled up",
    15: "strapping pin (MTDO), pulled up: held low at reset it only silences the boot messages",
}
PSRAM_NOTE = "carries the PSRAM on WROVER modules: the board must carry a WROOM"
# What a strapping pin's pull does to an output whose active level is that pull, where
# pull_outlasted() allows it: said instead of the pin's general note.
ACTIVE_RESET_NOTE = ("strapping pin, pulled {pull}: from every ESP32 reset until the firmware drives it {idle} "
                     "it asserts the active-{active} modem RESET, for less than the {need:g} s pulse the {family} "
                     "needs to act (the firmware must drive it within {hold:g} s); keep it low through any "
                     "deep sleep (gpio hold), or a glitch at wake restarts the modem")
ACTIVE_POWER_NOTE = "; as the active-high supply enable, its pull keeps the modem off until the firmware raises it"
INPUT_ONLY_NOTE = "input only, no internal pull resistors"


def board_names() -> list:
    """Every board profile of this release (boards/*.json), by name."""
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def board_file(board: str) -> Path:
    path = Path(board) if str(board).endswith(".json") else BOARDS / f"{board}.json"
    if not path.exists():
        if board in RENAMED:
            raise DeviceError(f"board {board!r} no longer exists: {RENAMED[board]}", EXIT_USAGE)
        from .registry_fields import show_input   # it imports this module

        known = ", ".join(board_names())
        raise DeviceError(f"unknown board {show_input(board, 60)} (known: {known})", EXIT_USAGE)
    return path


def load_board(board: str) -> dict:
    """The profile, held to the pin rules (check_pins): a profile that misbehaves at reset
    is refused before anything is built from it."""
    try:
        profile = json.loads(board_file(board).read_text())
    except ValueError as e:
        raise DeviceError(f"board profile {board!r} is not valid JSON: {e}", EXIT_USAGE) from None
    if not isinstance(profile, dict) or not isinstance(profile.get("modem"), dict):
        raise DeviceError(f"board profile {board!r} is not a board profile (no \"modem\" section)",
                          EXIT_USAGE)
    return check_pins(profile)


def power_chip(profile: dict):
    """(chip name, its I2C spec) the profile expects, or (None, None). The same rule as
    firmware/lib/pmu.py expected() (tests/test_boards.py holds them together)."""
    for name in ("axp192", "ip5306"):
        if profile.get(name):
            return name, profile[name]
    return None, None


def pin_uses(profile: dict):
    """(pin, what, kind, active level) for every ESP32 pin the profile uses. kind: "out"
    (driven, and its idle level matters at reset), "in", "in_pulled" (an input that needs
    a pull-up to idle high: UART RX, a button pulled up), "io" (I2C)."""
    uses = []
    m = profile["modem"]
    # PWRKEY and RESET are active low at the module; a board with an inverting transistor
    # (LilyGO's A7670 boards) presses them with a HIGH: "pwrkey_active"/"reset_active": 1.
    uses += [(m["tx"], "modem TX", "io", None), (m["rx"], "modem RX", "in_pulled", None),
             (m["pwrkey"], "modem PWRKEY", "out", m.get("pwrkey_active", 0))]
    for key, level in (("reset", m.get("reset_active", 0)), ("power_on", 1), ("dtr", 0)):
        if m.get(key) is not None:
            uses.append((m[key], f"modem {key.upper()}", "out", level))
    if m.get("ri") is not None:
        uses.append((m["ri"], "modem RI", "in_pulled" if m.get("ri_pull") else "in", None))
    g = profile["gps"]
    uses += [(g["tx"], "GPS TX", "io", None),
             (g["rx"], "GPS RX", "in" if g.get("rx_pullup") == "external" else "in_pulled", None)]
    if g.get("enable") is not None:
        uses.append((g["enable"], "GPS enable", "out", 1))
    b = profile["button"]
    uses.append((b["pin"], "button", "in_pulled" if b.get("pull") else "in", None))
    for part in ("led", "vibration"):
        if profile.get(part):
            uses.append((profile[part]["pin"], part, "out", profile[part].get("active", 1)))
    bat = profile.get("battery") or {}
    if bat.get("source") == "adc":
        uses.append((bat["pin"], "battery ADC", "in", None))
    chip, spec = power_chip(profile)
    if chip:
        uses += [(spec["sda"], f"{chip} SDA", "io", None), (spec["scl"], f"{chip} SCL", "io", None)]
        if spec.get("irq") is not None:
            uses.append((spec["irq"], f"{chip} IRQ", "in", None))
    return uses


def modem_family(profile: dict):
    return profile["modem"].get("family", "sim800")


def reset_min_s(profile: dict):
    """The profile's modem family's minimum RESET pulse (MODEM_RESET_MIN_S), or None for a
    family this host does not know (pin_problems says so)."""
    family = modem_family(profile)
    return MODEM_RESET_MIN_S.get(family) if isinstance(family, str) else None


def pull_outlasted(profile: dict, what: str) -> bool:
    """True for a modem RESET whose module acts only on a pulse longer than the ESP32 leaves
    a strapping pin under its pull (STRAPPING_HOLD_S): the pull asserts it, too briefly to
    restart the modem (the A7670's 2 s). Not for a SIM800, which resets on 105 ms."""
    need = reset_min_s(profile)
    return what == "modem RESET" and need is not None and need > STRAPPING_HOLD_S


def _modem_problems(profile: dict) -> list:
    m, problems = profile["modem"], []
    if reset_min_s(profile) is None:
        problems.append(f"modem family {modem_family(profile)!r} is not one of "
                        + ", ".join(sorted(MODEM_RESET_MIN_S)))
    for key in ("pwrkey_active", "reset_active"):
        if m.get(key, 0) not in (0, 1):
            problems.append(f"modem {key} must be 0 (the GPIO drives the pin low to press it) or 1 "
                            f"(high, through an inverting transistor), not {m[key]!r}")
    return problems


def pin_problems(profile: dict) -> list:
    """Every rule the profile breaks, one sentence each; [] if none."""
    problems, seen = _modem_problems(profile), {}
    for chip, addr in (("axp192", 0x34), ("ip5306", 0x75)):
        spec = profile.get(chip)
        if isinstance(spec, dict) and spec.get("addr", addr) != addr:
            # pmu.py talks to the chip at its fixed address; safe mode and the docs read this
            problems.append(f"{chip} \"addr\" {spec['addr']!r} is not the chip's I2C address "
                            f"{addr} (0x{addr:02x}), the one the firmware talks to")
    pull = profile["button"].get("pull")
    if pull not in ("up", None):
        # app.py and safe.py set the chip's pull-up or none: any other value left the
        # button floating, and an active-high one reads presses that never were
        problems.append(f"button \"pull\" {json.dumps(pull)} is not one the firmware sets: \"up\", or "
                        "null with an external resistor (a pull-down for a button pressed = HIGH)")
    may_be_wrover = profile.get("module", "unknown") != "wroom"
    for pin, what, kind, active in pin_uses(profile):
        if pin in seen:
            problems.append(f"GPIO{pin} is used twice ({seen[pin]} and {what})")
        seen.setdefault(pin, what)
        if not 0 <= pin <= 39 or pin in MISSING:
            problems.append(f"GPIO{pin} does not exist on the ESP32 ({what})")
        elif pin in FLASH_PINS:
            problems.append(f"GPIO{pin} belongs to the SPI flash ({what})")
        elif pin in PSRAM_PINS and may_be_wrover:
            problems.append(f"GPIO{pin} carries the PSRAM on WROVER modules ({what}): choose another pin, "
                            "or say \"module\": \"wroom\" if the board is sure to carry a WROOM")
        elif pin in INPUT_ONLY and kind in ("out", "io"):
            problems.append(f"GPIO{pin} is input-only and cannot drive the {what}")
        elif pin in INPUT_ONLY and kind == "in_pulled":
            problems.append(f"GPIO{pin} has no internal pull-up, and the {what} needs one to idle high "
                            "(a floating line reads as garbage): choose another pin"
                            + (", or wire an external 10 kΩ pull-up and say \"rx_pullup\": \"external\""
                               if what == "GPS RX" else ""))
        elif what in ("button", "modem RI") and pin not in RTC_WAKE_PINS:
            problems.append(f"GPIO{pin} cannot wake the ESP32 from light sleep (only the RTC GPIOs 0, 2, 4, "
                            f"12-15, 25-27 and 32-39 can), and the {what} must: choose one of those")
        elif kind == "out" and STRAPPING_PULL.get(pin) == active and not pull_outlasted(profile, what):
            pull = "up" if active else "down"
            why = ""
            if what == "modem RESET" and reset_min_s(profile) is not None:
                why = (f" (the {modem_family(profile).upper()} resets on a {reset_min_s(profile):g} s "
                       "pulse: every ESP32 reset would restart the modem)")
            problems.append(f"GPIO{pin} is a strapping pin pulled {pull} at reset, which turns the {what} "
                            f"on from reset until the firmware starts{why}: choose another pin")
    return problems


def pin_notes(profile: dict) -> list:
    """One sentence per used pin that has something to know about (strapping, PSRAM,
    input-only), e.g. "GPIO5 (modem RESET): strapping pin ..."."""
    notes = []
    for pin, what, kind, active in pin_uses(profile):
        strap = STRAPPING_NOTES.get(pin)
        if kind == "out" and STRAPPING_PULL.get(pin) == active and pull_outlasted(profile, what):
            strap = ACTIVE_RESET_NOTE.format(pull="up" if active else "down", idle="low" if active else "high",
                                             active="high" if active else "low", need=reset_min_s(profile),
                                             family=modem_family(profile).upper(), hold=STRAPPING_HOLD_S)
        elif strap and what == "modem POWER_ON" and not STRAPPING_PULL[pin]:
            strap += ACTIVE_POWER_NOTE
        for note in (strap, PSRAM_NOTE if pin in PSRAM_PINS else None,
                     INPUT_ONLY_NOTE if pin in INPUT_ONLY else None):
            if note:
                notes.append(f"GPIO{pin} ({what}): {note}.")
    return notes


def check_pins(profile: dict) -> dict:
    """The profile if it keeps every pin rule; else DeviceError (exit 2) naming each broken one."""
    problems = pin_problems(profile)
    if problems:
        raise DeviceError(f"board profile {profile.get('id', '?')!r} chooses pins that misbehave: "
                          + "; ".join(problems), EXIT_USAGE)
    return profile
