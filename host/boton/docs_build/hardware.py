"""Board profiles (boards/*.json) as docs/hardware.md shows them: the ESP32 pins in use,
the bill of materials, the power notes, and what the firmware does not act on yet."""
import json
import re

from ..paths import BOARDS, FIRMWARE


def load_boards():
    return [json.loads(p.read_text()) for p in sorted(BOARDS.glob("*.json"))]


# Profile entries the firmware may not act on yet, and how to tell from its source that it
# does: while the pattern is absent from firmware/lib, the docs say so next to the pin.
FIRMWARE_USES = {
    "gps_enable": (r"""\[["']enable["']\]|get\(["']enable["']""", "the firmware does not drive GPS_EN yet: "
                   "make the GPS supply default to on (or wire it permanently)"),
    "led": (r"led\.value\(", "the firmware does not light the LED yet"),
    "battery_adc": (r"battery_adc\(", "the firmware does not read this ADC yet (it uses AT+CBC)"),
    "ri": (r"""\[["']ri["']\]|get\(["']ri["']""", "the firmware does not wake on RI yet: it wakes on a timer "
           "to look for calls and SMS"),
    # pmu.keep_on(): what each power chip is told at boot
    "ip5306": (r"IP5306_ADDR, 0x00, 0x37", "the firmware does not write the IP5306 keep-on register yet"),
    "axp192": (r"AXP192_ADDR, 0x12,", "the firmware does not set the AXP192's outputs yet"),
    "pmu_battery": (r"battery_mv\(spec\)", "the firmware does not read the battery from the PMU yet (it uses AT+CBC)"),
    # Not gaps (nothing needs them today), but the docs must not claim they are used.
    "dtr": (r"""\[["']dtr["']\]|get\(["']dtr["']""", None),
    "pmu_irq": (r"""\[["']irq["']\]|get\(["']irq["']""", None),
}


def firmware_does(key):
    """True if firmware/lib (the hardware backends aside) acts on the profile entry `key`."""
    src = "\n".join(p.read_text() for p in sorted((FIRMWARE / "lib").glob("*.py"))
                    if not p.name.startswith("hw_"))
    return re.search(FIRMWARE_USES[key][0], src) is not None


def firmware_gap(key):
    """The note for a profile entry the firmware does not use yet, or None."""
    return None if firmware_does(key) else FIRMWARE_USES[key][1]


class Conn:
    """One ESP32 pin in use. direction: out (ESP32 drives it), in (ESP32 reads it), io."""

    def __init__(self, part, pin, esp, to, direction, label="", note="", gap=None):
        self.part, self.pin, self.esp, self.to, self.direction = part, pin, esp, to, direction
        self.label, self.note, self.gap = label, note, gap   # label: on the wire; note: in the table


def onboard(board):
    """Parts already wired on the board (the profile's "onboard"): drawn dashed, not bought."""
    return set(board.get("onboard") or ())


def power_chip(board):
    """(chip, I2C spec) of the board's power chip, or (None, None): boards.power_chip."""
    from ..boards import power_chip as chip_of
    return chip_of(board)


# What each power chip is, for the tables, the parts list and the power drawing.
POWER_CHIPS = {
    "ip5306": {"title": "IP5306 charger / boost", "short": "IP5306", "does": "charger + 5 V boost",
               "kind": "IP5306 charger"},
    "axp192": {"title": "AXP192 power management chip", "short": "AXP192 PMU", "does": "charger + DC-DC rails",
               "kind": "AXP192 power management chip (charger, DC-DC converters, battery ADC)"},
}


# What each modem family is, for the tables, the parts list and the drawings (boards.py
# holds the families' RESET facts). Facts: data/at/sim800_transcripts.md, data/at/a76xx.md.
MODEMS = {
    "sim800": {"title": "SIM800L GSM modem", "short": "SIM800L",
               "rx": "2.8 V into the ESP32: fine",
               "pwrkey": ("low 1.2 s = on/off", "pulled low 1.2 s only when the module does not answer"),
               "reset": ("low = reset", "low 200 ms resets the module (recovery ladder)"),
               "power_on": ("supply switch", "high = supply on", "set high first at every boot"),
               "antenna": "GSM antenna 850/1900 MHz (u.FL or spring, as the modem takes)",
               "sim": ("SIM card, 2G (GSM) voice + SMS, PIN disabled, with credit", "size as the holder takes"),
               "radio": "SIM800 is 2G (GSM) only: check that a carrier still runs 2G where the buttons will be used."},
    "a7670": {"title": "A7670SA LTE Cat-1 modem", "short": "A7670SA",
              "rx": "wired on the board (the module's own UART is 1.8 V logic)",
              "pwrkey": ("high 100 ms = on", "active high through the board's transistor: a 100 ms HIGH starts the "
                         "module (LilyGO), a HIGH of 2.5 s or more switches a running one off (A7670 HW §3.2.2)"),
              "reset": ("high = reset", "active high through the board's transistor: HIGH for 2–2.5 s resets the "
                        "module (emergency only, A7670 HW §3.2.3); idles low"),
              "power_on": ("board power enable", "high = modem powered",
                           "the board's power enable (DC boost) for the modem: set high first at every boot"),
              "antenna": "LTE + GSM main antenna on the modem's u.FL (A7670SA: LTE B1/2/3/4/5/7/8/28/66, "
                         "GSM 850/900/1800/1900)",
              "sim": ("SIM card with VoLTE voice + SMS, PIN disabled, with credit",
                      "ask the operator to confirm VoLTE on the line: without it, where 2G is gone, the button "
                      "can only send SMS"),
              "radio": "A7670SA: LTE Cat-1 with VoLTE, GSM (2G) fallback. Where 2G is gone, calls need VoLTE on "
                       "the SIM."},
}

# Chargers of boards without an I2C power chip, for the parts list and the power drawing.
CHARGERS = {
    "cn3065": {"short": "CN3065", "does": "charger, USB / solar", "protection": "DW06D",
               "kind": "CN3065 charger (USB-C or solar) with DW06D battery protection",
               "esp": ("XC6206 LDO", "→ ESP32 3.3 V")},
}


def family(board):
    return board["modem"].get("family", "sim800")


def modem_facts(board):
    return MODEMS[family(board)]


def part_title(board, part):
    """The title of a part of this board: the modem of its family, its GPS module."""
    if part == "modem":
        return modem_facts(board)["title"]
    if part == "gps" and board["gps"].get("module"):
        return f"GPS receiver ({board['gps']['module']})"
    return PART_TITLES[part]


def _power_chip_rows(board):
    chip, spec = power_chip(board)
    if not chip:
        return []
    addr = f"I2C 0x{spec['addr']:02X}" if spec.get("addr") is not None else "I2C"
    if chip == "ip5306":
        note = f"IP5306 at 0x{spec.get('addr', 0x75):02X}" + (
            "; keep the boost on: register 0x00 = 0x37" if spec.get("keep_boost_on") else "")
        gap = firmware_gap("ip5306") if spec.get("keep_boost_on") else None
    else:
        note = (f"AXP192 at 0x{spec.get('addr', 0x34):02X}; the firmware keeps DC-DC3 (the ESP32's supply) on"
                + ("; the battery is read from its ADC" if (board.get("battery") or {}).get("source") == "pmu" else ""))
        gap = firmware_gap("axp192")
    rows = [Conn(chip, spec["sda"], "I2C SDA", "SDA", "io", addr, note, gap),
            Conn(chip, spec["scl"], "I2C SCL", "SCL", "out", "", "")]
    if spec.get("irq") is not None:
        rows.append(Conn(chip, spec["irq"], "PMU IRQ", "IRQ", "in", "low = event",
                         "interrupt output, open drain, low on an event (PWR key, charger)"
                         + ("" if firmware_does("pmu_irq") else "; the firmware does not use it: it polls the PMU")))
    return rows


def connections(board):
    ob = onboard(board)
    rows = []
    m, mf = board["modem"], modem_facts(board)
    u = m["uart"]
    level = "" if "modem" in ob else "; SIM800 logic is 2.8 V: 1 kΩ / 4.7 kΩ divider on this line"
    rows.append(Conn("modem", m["tx"], f"UART{u} TX", "RXD", "out", f"{m['baud']} baud",
                     f"{m['baud']} baud, 8N1{level}"))
    rows.append(Conn("modem", m["rx"], f"UART{u} RX", "TXD", "in", "AT replies, URCs", mf["rx"]))
    pk = "" if "modem" in ob else ("; the common SIM800L breakout ties PWRKEY to GND and does not bring it out: "
                                   "then leave this pin unconnected")
    rows.append(Conn("modem", m["pwrkey"], "PWRKEY", "PWRKEY", "out", mf["pwrkey"][0], mf["pwrkey"][1] + pk))
    if m.get("reset") is not None:
        rows.append(Conn("modem", m["reset"], "RESET", "RST", "out", *mf["reset"]))
    if m.get("power_on") is not None:
        rows.append(Conn("modem", m["power_on"], "POWER_ON", *mf["power_on"][:1], "out", *mf["power_on"][1:]))
    if m.get("ri") is not None:
        rows.append(Conn("modem", m["ri"], "RI", "RI", "in", "low = ring / SMS",
                         "wakes the ESP32 from light sleep on a call or an SMS; the firmware then asks the "
                         "modem what came (AT+CLCC, AT+CMGL)", firmware_gap("ri")))
    if m.get("dtr") is not None:
        rows.append(Conn("modem", m["dtr"], "DTR", "DTR", "out", "low = modem awake",
                         f"wakes a sleeping {mf['short']}" + ("" if firmware_does("dtr") else
                                                       "; not driven: the firmware's modem sleep (AT+CSCLK=2) "
                                                       "wakes on a byte on the UART instead")))
    g = board["gps"]
    rows.append(Conn("gps", g["tx"], f"UART{g['uart']} TX", "RX", "out", f"{g['baud']} baud",
                     f"{g['baud']} baud"))
    rows.append(Conn("gps", g["rx"], f"UART{g['uart']} RX", "TX", "in", "NMEA", "NMEA sentences (RMC, GGA)"))
    if g.get("enable") is not None:
        rows.append(Conn("gps", g["enable"], "GPS_EN", "supply switch", "out", "high = GPS on",
                         "load switch of the GPS supply", firmware_gap("gps_enable")))
    b = board["button"]
    pull = {"up": "internal pull-up", "down": "internal pull-down"}.get(b.get("pull"), "external pull resistor")
    rows.append(Conn("button", b["pin"], "BUTTON", "switch to " + ("GND" if b["active"] == 0 else "3V3"), "in",
                     f"pressed = {'LOW' if b['active'] == 0 else 'HIGH'}",
                     f"pressed = {'LOW' if b['active'] == 0 else 'HIGH'}, {pull}; debounced 30 ms"))
    if board.get("led"):
        act = "high" if board["led"].get("active", 1) else "low"
        rows.append(Conn("led", board["led"]["pin"], "LED", "LED (+ 330 Ω)", "out", f"active {act}",
                         f"active {act}", firmware_gap("led")))
    if board.get("vibration"):
        act = "high" if board["vibration"].get("active", 1) else "low"
        rows.append(Conn("vibration", board["vibration"]["pin"], "VIBRATION", "driver gate / base", "out",
                         f"active {act}, via transistor",
                         f"active {act}; through a transistor, a GPIO cannot power a motor"))
    bat = board.get("battery") or {}
    if bat.get("source") == "adc":
        rows.append(Conn("battery", bat["pin"], "ADC", f"divider ÷{bat.get('divider', 1):g}", "in",
                         f"battery + ÷{bat.get('divider', 1):g}",
                         f"midpoint of a ÷{bat.get('divider', 1):g} divider from battery +",
                         firmware_gap("battery_adc")))
    rows += _power_chip_rows(board)
    return rows


def battery_without_pin(board):
    """(where, why) for a battery measured by a chip instead of an ESP32 pin, or None."""
    source = (board.get("battery") or {}).get("source")
    if source == "modem_cbc":
        return "SIM800 (`AT+CBC`)", "no pin: the modem measures its own supply"
    if source == "pmu":
        chip, _ = power_chip(board)
        gap = firmware_gap("pmu_battery")
        return (f"{(chip or 'PMU').upper()} ADC over I2C",
                "no pin: the PMU measures the battery (12-bit ADC)" + (f" — **{gap}**" if gap else ""))
    return None


# One definition of the ESP32's pin rules and their notes: boton.boards.
def pin_problems(board):
    """Every pin rule the profile breaks (boards.pin_problems): unbuildable, so undocumented."""
    from ..boards import pin_problems as problems
    return problems(board)


def pin_notes(board):
    from ..boards import pin_notes as notes
    return notes(board)


PART_TITLES = {
    "modem": "SIM800L GSM modem",
    "gps": "GPS receiver (u-blox NEO-6M)",
    "button": "Panic button",
    "led": "LED",
    "vibration": "Vibration motor",
    "battery": "Battery sense",
    **{chip: spec["title"] for chip, spec in POWER_CHIPS.items()},
}


def bom(board):
    """(qty, part, notes) rows for one board, from its profile."""
    ob = onboard(board)
    chip, _ = power_chip(board)
    rows = []
    mah = board.get("battery_mah")
    charger = CHARGERS.get(board.get("charger"))
    if "modem" in ob and charger:
        psram = f", {board['psram_size']} PSRAM" if board.get("psram_size") else ""
        rows.append(("1", board["name"].split(" + ")[0],
                     f"ESP32 ({board['flash_size']} flash{psram}), {modem_facts(board)['short']} modem, "
                     f"{charger['kind']}, battery divider and battery holder "
                     f"({(board.get('battery') or {}).get('cell', 'Li-ion')}) on one board"))
    elif "modem" in ob:
        rows.append(("1", board["name"].split(" + ")[0],
                     f"ESP32 ({board['flash_size']} flash), SIM800L, {POWER_CHIPS[chip]['kind']} and battery "
                     "connector on one board" if chip in ob
                     else f"ESP32 ({board['flash_size']} flash) and SIM800L on one board"))
    else:
        rows.append(("1", "ESP32-DevKitC with an ESP32-WROOM-32 module",
                     f"{board['flash_size']} flash; WROOM, not WROVER (GPIO16/17 are PSRAM on WROVER)"))
        rows.append(("1", "SIM800L module (breakout)", "quad-band GSM; the common breakout starts when powered"))
        rows.append(("1", "1000 µF low-ESR electrolytic + 100 nF ceramic capacitor",
                     "across the SIM800L supply, at its pins (2 A peaks)"))
        rows.append(("2", "resistors 1 kΩ and 4.7 kΩ", "divider ESP32 TX → SIM800L RXD (3.3 V → 2.7 V)"))
        sw = board["modem"].get("power_on")
        if sw is not None:
            rows.append(("1", "P-MOSFET ≥ 3 A (e.g. AO3401) + N-MOSFET (e.g. 2N7002) + resistors 100 kΩ and 10 kΩ",
                         f"SIM800L supply switch: GPIO{sw} high (and its 10 kΩ pull-up to 3.3 V while the ESP32 "
                         "resets) keeps the module powered; the firmware cuts it to revive a hung module"))
    if board["gps"].get("module") == "L76K":
        rows.append(("1", "LilyGO L76K GPS shield for this board, with its antenna",
                     f"{board['gps']['baud']} baud on GPIO{board['gps']['rx']}/{board['gps']['tx']}; the firmware "
                     "uses its UART only (not its PPS or wake-up pins)"))
    else:
        rows.append(("1", "u-blox NEO-6M GPS module with its patch antenna",
                     f"{board['gps']['baud']} baud; keep its backup cell (faster fixes after a power cut)"))
    if board["gps"].get("enable") is not None:
        # high = GPS on (app.py, service.py): a P-MOSFET straight on the GPIO would be the
        # other way round, so an N-MOSFET inverts, as for the SIM800L's supply switch
        rows.append(("1", "P-MOSFET (e.g. AO3401) + N-MOSFET (e.g. 2N7002) + 2 resistors 100 kΩ, "
                          "or a load-switch IC with an active-high enable",
                     f"GPS supply switch, on while GPIO{board['gps']['enable']} is high: the N-MOSFET "
                     "pulls the P-MOSFET's gate (100 kΩ to its source) low; 100 kΩ from the GPIO to GND "
                     "keeps the GPS off through a reset"))
    rows.append(("1", "momentary push button (normally open), sealed",
                 "to GND; one a bag cannot press by itself (the firmware ignores short squeezes)"))
    if board.get("led") and "led" not in ob:
        rows.append(("1", "LED + 330 Ω resistor", f"GPIO{board['led']['pin']}"))
    if board.get("vibration"):
        rows.append(("1", "coin vibration motor, 3 V, ~80 mA", f"GPIO{board['vibration']['pin']} through the driver below"))
        rows.append(("1", "N-MOSFET (AO3400) or NPN (S8050) + 1 kΩ gate/base resistor + 1N4148 flyback diode",
                     "a GPIO cannot power a motor"))
    bat = board.get("battery") or {}
    if bat.get("source") == "adc" and "battery" not in ob:
        rows.append(("2", "resistors 100 kΩ (+ 100 nF to GND at the midpoint)",
                     f"battery divider ÷{bat.get('divider', 2):g} into GPIO{bat['pin']}"))
    if mah:
        if charger:
            rows.append(("1", f"{bat.get('cell', 'Li-ion')} Li-ion cell 3.7 V, {mah} mAh",
                         f"in the board's holder, polarity as marked on it; the {charger['short']} charges it and the "
                         f"{charger['protection']} protects it"))
        elif chip:
            rows.append(("1", f"LiPo cell 3.7 V {mah} mAh with protection circuit",
                         "on the board's battery connector (check its polarity: JST leads are not standard)"))
        else:
            rows.append(("1", f"LiPo cell 3.7 V {mah} mAh with protection circuit", "feeds the SIM800L directly"))
            rows.append(("1", "TP4056 charger module with protection (USB)", "charges the cell"))
            rows.append(("1", "3.3 V low-dropout regulator, ≥ 500 mA (e.g. AP2112K-3.3, ME6211)",
                         "battery → ESP32 3V3 (the DevKitC's own regulator needs 5 V)"))
    rows.append(("1", modem_facts(board)["antenna"], "never run the modem without it"))
    rows.append(("1", *modem_facts(board)["sim"]))
    rows.append(("1", "enclosure with the button reachable by feel, USB access for charging", ""))
    return rows


def power_chain(board):
    """The power drawing: (chain left to right, branches from its last box, a box hanging
    under a chain box as (label, sub, index) or None)."""
    mah = board.get("battery_mah")
    chip, _ = power_chip(board)
    charger = CHARGERS.get(board.get("charger"))
    if charger:
        sw = board["modem"].get("power_on")
        modem = (f"{modem_facts(board)['short']} supply", f"enabled by GPIO{sw}" if sw is not None else "")
        cell = (board.get("battery") or {}).get("cell", "Li-ion")
        return ([("USB 5 V / solar", "charging input"), (charger["short"], charger["does"])],
                [charger["esp"], modem], (f"{cell} {mah} mAh", f"3.7 V, {charger['protection']} protection", 1))
    if chip:
        sw = board["modem"].get("power_on")
        modem = ("SIM800L supply", f"switched by GPIO{sw}" if sw is not None else "2 A peaks")
        esp = (("AXP192 DC-DC3", "→ ESP32 3.3 V, kept on") if chip == "axp192"
               else ("board regulators", "→ ESP32 3.3 V"))
        return ([("USB 5 V", "charging input"), (POWER_CHIPS[chip]["short"], POWER_CHIPS[chip]["does"])],
                [esp, modem], (f"LiPo {mah} mAh", "3.7 V, protected", 1))
    sw = board["modem"].get("power_on")
    modem = (("SIM800L VCC", f"switched by GPIO{sw}, 1000 µF") if sw is not None
             else ("SIM800L VCC", "direct, 1000 µF + 100 nF"))
    return ([("USB 5 V", "charging input"), ("TP4056", "charger + protection"), (f"LiPo {mah} mAh", "3.7 V, protected")],
            [modem, ("LDO 3.3 V", "→ ESP32 3V3")], None)


def power_notes(board):
    mah = board.get("battery_mah")
    chip, spec = power_chip(board)
    charger = CHARGERS.get(board.get("charger"))
    if charger:
        return _charger_power_notes(board, charger)
    if not chip:
        sw = board["modem"].get("power_on")
        notes = [f"A {mah} mAh LiPo (3.7 V, protected) feeds the SIM800L VCC directly: the module wants 3.4–4.4 V and "
                 "takes 2 A peaks. Never feed it from the 3.3 V rail or through the DevKitC."]
        if sw is not None:
            notes.append(
                f"The SIM800L's VCC goes through a high-side switch: the P-MOSFET's source on the battery, its drain "
                f"to the module, 100 kΩ from its gate to its source (off by default); the N-MOSFET pulls that gate to "
                f"GND when GPIO{sw} is high, and 10 kΩ from GPIO{sw} to 3.3 V keeps it high while the ESP32 resets "
                "(her call survives a reset). At 2 A an AO3401 drops about 0.15 V; while on, the 100 kΩ draws about "
                "0.04 mA from the battery (1 % of the standby current). Without the switch a module that "
                "hangs past its RESET pin, or loses its supply alone (a loose battery lead), cannot be brought back: "
                "the firmware cannot prove it is off, so it never presses PWRKEY (the soak's seeds 20 and 22 on this "
                "build, docs/hil.md).")
        notes += ["Put the 1000 µF + 100 nF at the SIM800L's VCC/GND pins, after the switch; short, thick wires "
                  "(≥ 22 AWG).",
                  "The ESP32 gets 3.3 V from a low-dropout regulator on the battery; all grounds are common."]
        return notes
    where = f"I2C 0x{spec['addr']:02X} on GPIO{spec['sda']}/GPIO{spec['scl']}"
    if chip == "ip5306":
        out = [f"A {mah} mAh LiPo on the board's battery connector; the IP5306 charges it from USB and "
               "boosts it for the board. The SIM800L draws up to 2 A in transmit bursts.",
               f"The IP5306 ({where}) switches its boost off "
               "at light load unless told to keep it on (register 0x00 = 0x37): a button that idles at a few "
               "mA needs that, or it dies silently in standby."]
        gap = firmware_gap("ip5306")
    else:
        irq = f", IRQ on GPIO{spec['irq']}" if spec.get("irq") is not None else ""
        out = [f"A {mah} mAh LiPo on the board's battery connector; the AXP192 power-management chip (PMU) "
               "charges it from USB and makes the board's supplies from it. The SIM800L draws up to 2 A in "
               "transmit bursts.",
               f"The AXP192 ({where}{irq}) is a PMU, not a power bank's boost: it does not cut a light load. At "
               "boot the firmware keeps its DC-DC3 (the ESP32's supply) on, switches the rails the board does not "
               "use off and turns its battery-voltage ADC on. Start the board by holding PWR for 2 s; it then "
               "powers on whenever a battery is inserted."]
        if (board.get("battery") or {}).get("source") == "pmu":
            out.append("The battery is read from the AXP192's ADC (1.1 mV steps), not from the modem's AT+CBC, "
                       "so the low-battery SMS does not depend on the modem.")
        gap = firmware_gap("axp192")
    if gap:
        out.append(f"**Note: {gap}**: check the standby current on a bench before delivering these buttons.")
    if board["modem"].get("power_on") is not None:
        out.append(f"The SIM800L's supply is switched by GPIO{board['modem']['power_on']} (POWER_ON): "
                   "the firmware sets it high before anything else.")
    return out


def _charger_power_notes(board, charger):
    """The power notes of a board with a plain charger and the modem on it (the T-A7670X)."""
    mah, m, mf = board.get("battery_mah"), board["modem"], modem_facts(board)
    bat = board.get("battery") or {}
    out = [f"An {bat.get('cell', 'Li-ion')} Li-ion cell in the board's holder ({mah} mAh in the profile); the "
           f"{charger['short']} charges it from USB-C or a solar panel and the {charger['protection']} protects it. "
           f"The {mf['short']} draws its transmit peaks from it: a worn or counterfeit cell browns the board out."]
    if m.get("power_on") is not None:
        out.append(f"GPIO{m['power_on']} (POWER_ON) is the board's power enable for the modem (LilyGO: the DC boost, "
                   "\"must be HIGH for the modem to supply power\"): until it is high the modem has no supply, so "
                   "the firmware sets it high at boot before it touches the modem; V1.2 boards on battery reset unless it goes "
                   "high right after boot.")
        from ..boards import STRAPPING_PULL
        if STRAPPING_PULL.get(m["power_on"]) == 0:
            # every ESP32 reset lets the pin fall to its pull-down before the firmware raises it again
            out.append(f"An ESP32 reset (the watchdog, a brown-out) lets GPIO{m['power_on']} fall (it is pulled "
                       "down at reset), which most likely cuts the modem's supply: a call to C4 in progress drops, "
                       "and the firmware redials C4 once it has restarted (it resumes the alert). The virtual "
                       "device cuts the supply at every reset too, so the tests go through this.")
    if bat.get("source") == "adc":
        out.append(f"The battery is read on GPIO{bat['pin']} through the board's ÷{bat.get('divider', 2):g} divider "
                   "(V1.1 boards have none). The A7670's `AT+CBC` reports the module's supply in volts, not the cell.")
    out.append("The modem's VBUS is tied to USB: on USB-C power it cannot sleep unless a resistor is removed "
               "(LilyGO), so measure standby on the battery.")
    return out


def board_section(board):
    """The generated part of docs/hardware.md for one board."""
    bid = board["id"]
    ob = onboard(board)
    out = [f"### {board['name']} (`{bid}`)", "",
           f"![Wiring of {bid}: ESP32 pins to the {modem_facts(board)['short']}, GPS, button, LED, vibration motor "
           f"and battery](img/wiring-{bid}.svg)", "",
           f"Modem: {modem_facts(board)['title']} (family `{family(board)}`). {modem_facts(board)['radio']}", "",
           "| ESP32 pin | signal | goes to | notes |", "|---|---|---|---|"]
    for c in connections(board):
        arrow = {"out": "→", "in": "←", "io": "↔"}[c.direction]
        where = " (on the board)" if c.part in ob else ""
        note = c.note + (f" — **{c.gap}**" if c.gap else "")
        out.append(f"| GPIO{c.pin} | {c.esp} {arrow} | {part_title(board, c.part)}{where}: {c.to} | {note} |")
    if battery_without_pin(board):
        out.append("| – | battery voltage | %s | %s |" % battery_without_pin(board))
    if not board.get("led") and board.get("lights"):
        out.append(f"| – | no LED | – | {lights_warning(board)} |")
    out += ["", "**Bill of materials**", "", "| qty | part | notes |", "|---|---|---|"]
    out += [f"| {q} | {p} | {n} |" for q, p, n in bom(board)]
    out += ["", "**Power**", ""] + [f"- {p}" for p in power_notes(board)]
    notes = pin_notes(board)
    if notes:
        out += ["", "**Pins to know about**", ""] + [f"- {n}" for n in notes]
    if board.get("notes"):
        out += ["", f"From the profile: *{board['notes']}*"]
    return "\n".join(out)


def lights_warning(board):
    """What lights the board shows that the firmware cannot switch off, or None."""
    if not board.get("lights"):
        return None
    return (f"no LED the firmware drives; the board shows {board['lights']}: cover them inside the case, "
            "a light can give her away at night")


def boards_markdown(boards):
    return "\n\n".join(board_section(b) for b in boards)
