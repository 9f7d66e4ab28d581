"""Generators for docs/: what the docs show is made from the code, so it cannot drift.

    python -m boton.docs_build                 # all of it: images, generated sections, console outputs, PDF
    python -m boton.docs_build images          # docs/img/wiring-*.svg and the generated sections of the docs
    python -m boton.docs_build console [FILE]  # rerun every ```console block (default: docs/*.md, README.md)
    python -m boton.docs_build check [FILE]    # exit 1 if anything is stale; writes nothing
    python -m boton.docs_build pdf [-o OUT]    # the beneficiary's printable page (build/docs/guia-beneficiaria.pdf)

Wiring diagrams (SVG) and the board tables in docs/hardware.md come from boards/*.json;
the SMS examples in docs/guia-beneficiaria.md come from firmware/lib/sms.py. Generated text
sits between `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->` markers.

Console blocks: a fenced block whose info string is `console` holds `$ command` lines, each
followed by its output. Every command is run, in order, against one fresh virtual device
per file (boton.sim.rig.VirtualDevice) with a scratch registry and key:

* `$PORT` is the virtual device's REPL URL (its value never appears in the docs);
* `boton ...` runs the CLI; `mpremote ...` runs mpremote (only with `$PORT`);
* `echo $?` prints the previous command's exit code: a command that fails on purpose
  must be followed by it (an unexpected failure is an error);
* `export NAME=value` sets a variable for the rest of the file;
* `make ...` and `boton sim` (which never ends) are shown, not run;
* a line ending in `\\` continues on the next line.

A step whose command does not exist yet is written in a ```text (not run) block, which
nothing runs. The comparison (check, tests/test_docs.py) ignores what changes from run
to run: ports, temporary paths, times, dates, hashes, table padding.
"""
import argparse
import difflib
import html
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .paths import BOARDS, FIRMWARE, REPO

DOCS = REPO / "docs"
IMG = DOCS / "img"
PDF_OUT = REPO / "build" / "docs" / "guia-beneficiaria.pdf"
GUIDE_ES = DOCS / "guia-beneficiaria.md"
REGEN = "python -m boton.docs_build"

# Shown (never run) in console blocks.
NOT_RUN = (("make",), ("boton", "sim"))
# What the outputs in the docs show instead of the rehearsal's temporary folder.
SHOWN_WORKDIR = "/tmp/boton-docs"
TECHNICIAN = "tecnico1"
COLUMNS = 100


class DocsError(RuntimeError):
    pass


def load_boards():
    return [json.loads(p.read_text()) for p in sorted(BOARDS.glob("*.json"))]


# ============================================================================ generated sections
BEGIN = "<!-- BEGIN generated: {} (" + REGEN + " images) -->"
END = "<!-- END generated: {} -->"


def replace_section(text, name, body):
    """text with the block between the markers named `name` replaced by body."""
    begin, end = BEGIN.format(name), END.format(name)
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pat.search(text):
        raise DocsError(f"markers for generated section {name!r} not found: add\n{begin}\n{end}")
    return pat.sub(lambda m: f"{begin}\n{body.strip()}\n{end}", text, count=1)


def sections_in(text):
    return re.findall(r"<!-- BEGIN generated: (\S+) \(", text)


# ============================================================================ boards: pins, notes, BOM
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
    "pmu_battery": (r"pmu\.battery_mv\(", "the firmware does not read the battery from the PMU yet (it uses AT+CBC)"),
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
    from .boards import power_chip as chip_of
    return chip_of(board)


# What each power chip is, for the tables, the parts list and the power drawing.
POWER_CHIPS = {
    "ip5306": {"title": "IP5306 charger / boost", "short": "IP5306", "does": "charger + 5 V boost",
               "kind": "IP5306 charger"},
    "axp192": {"title": "AXP192 power management chip", "short": "AXP192 PMU", "does": "charger + DC-DC rails",
               "kind": "AXP192 power management chip (charger, DC-DC converters, battery ADC)"},
}


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
    m = board["modem"]
    u = m["uart"]
    level = "" if "modem" in ob else "; SIM800 logic is 2.8 V: 1 kΩ / 4.7 kΩ divider on this line"
    rows.append(Conn("modem", m["tx"], f"UART{u} TX", "RXD", "out", f"{m['baud']} baud",
                     f"{m['baud']} baud, 8N1{level}"))
    rows.append(Conn("modem", m["rx"], f"UART{u} RX", "TXD", "in", "AT replies, URCs", "2.8 V into the ESP32: fine"))
    pk = "" if "modem" in ob else ("; the common SIM800L breakout ties PWRKEY to GND and does not bring it out: "
                                   "then leave this pin unconnected")
    rows.append(Conn("modem", m["pwrkey"], "PWRKEY", "PWRKEY", "out", "low 1.2 s = on/off",
                     "pulled low 1.2 s only when the module does not answer" + pk))
    if m.get("reset") is not None:
        rows.append(Conn("modem", m["reset"], "RESET", "RST", "out", "low = reset",
                         "low 200 ms resets the module (recovery ladder)"))
    if m.get("power_on") is not None:
        rows.append(Conn("modem", m["power_on"], "POWER_ON", "supply switch", "out", "high = supply on",
                         "set high first at every boot"))
    if m.get("ri") is not None:
        rows.append(Conn("modem", m["ri"], "RI", "RI", "in", "low = ring / SMS",
                         "wakes the ESP32 from light sleep on a call or an SMS; the firmware then asks the "
                         "modem what came (AT+CLCC, AT+CMGL)", firmware_gap("ri")))
    if m.get("dtr") is not None:
        rows.append(Conn("modem", m["dtr"], "DTR", "DTR", "out", "low = modem awake",
                         "wakes a sleeping SIM800" + ("" if firmware_does("dtr") else
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
    from .boards import pin_problems as problems
    return problems(board)


def pin_notes(board):
    from .boards import pin_notes as notes
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
    if "modem" in ob:
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
    rows.append(("1", "u-blox NEO-6M GPS module with its patch antenna",
                 f"{board['gps']['baud']} baud; keep its backup cell (faster fixes after a power cut)"))
    if board["gps"].get("enable") is not None:
        rows.append(("1", "P-MOSFET load switch (e.g. AO3401 + 10 kΩ gate resistor) or a load-switch IC",
                     f"GPS supply, driven by GPIO{board['gps']['enable']}"))
    rows.append(("1", "momentary push button (normally open), sealed",
                 "to GND; one a bag cannot press by itself (the firmware ignores short squeezes)"))
    if board.get("led") and "led" not in ob:
        rows.append(("1", "LED + 330 Ω resistor", f"GPIO{board['led']['pin']}"))
    if board.get("vibration"):
        rows.append(("1", "coin vibration motor, 3 V, ~80 mA", f"GPIO{board['vibration']['pin']} through the driver below"))
        rows.append(("1", "N-MOSFET (AO3400) or NPN (S8050) + 1 kΩ gate/base resistor + 1N4148 flyback diode",
                     "a GPIO cannot power a motor"))
    bat = board.get("battery") or {}
    if bat.get("source") == "adc":
        rows.append(("2", "resistors 100 kΩ (+ 100 nF to GND at the midpoint)",
                     f"battery divider ÷{bat.get('divider', 2):g} into GPIO{bat['pin']}"))
    if mah:
        if chip:
            rows.append(("1", f"LiPo cell 3.7 V {mah} mAh with protection circuit",
                         "on the board's battery connector (check its polarity: JST leads are not standard)"))
        else:
            rows.append(("1", f"LiPo cell 3.7 V {mah} mAh with protection circuit", "feeds the SIM800L directly"))
            rows.append(("1", "TP4056 charger module with protection (USB)", "charges the cell"))
            rows.append(("1", "3.3 V low-dropout regulator, ≥ 500 mA (e.g. AP2112K-3.3, ME6211)",
                         "battery → ESP32 3V3 (the DevKitC's own regulator needs 5 V)"))
    rows.append(("1", "GSM antenna 850/1900 MHz (u.FL or spring, as the modem takes)", "never run the modem without it"))
    rows.append(("1", "SIM card, 2G (GSM) voice + SMS, PIN disabled, with credit", "size as the holder takes"))
    rows.append(("1", "enclosure with the button reachable by feel, USB access for charging", ""))
    return rows


def power_chain(board):
    """The power drawing: (chain left to right, branches from its last box, a box hanging
    under a chain box as (label, sub, index) or None)."""
    mah = board.get("battery_mah")
    chip, _ = power_chip(board)
    if chip:
        sw = board["modem"].get("power_on")
        modem = ("SIM800L supply", f"switched by GPIO{sw}" if sw is not None else "2 A peaks")
        esp = (("AXP192 DC-DC3", "→ ESP32 3.3 V, kept on") if chip == "axp192"
               else ("board regulators", "→ ESP32 3.3 V"))
        return ([("USB 5 V", "charging input"), (POWER_CHIPS[chip]["short"], POWER_CHIPS[chip]["does"])],
                [esp, modem], (f"LiPo {mah} mAh", "3.7 V, protected", 1))
    return ([("USB 5 V", "charging input"), ("TP4056", "charger + protection"), (f"LiPo {mah} mAh", "3.7 V, protected")],
            [("SIM800L VCC", "direct, 1000 µF + 100 nF"), ("LDO 3.3 V", "→ ESP32 3V3")], None)


def power_notes(board):
    mah = board.get("battery_mah")
    chip, spec = power_chip(board)
    if not chip:
        return [f"A {mah} mAh LiPo (3.7 V, protected) feeds the SIM800L VCC directly: the module wants 3.4–4.4 V and "
                "takes 2 A peaks. Never feed it from the 3.3 V rail or through the DevKitC.",
                "Put the 1000 µF + 100 nF at the SIM800L's VCC/GND pins; short, thick wires (≥ 22 AWG).",
                "The ESP32 gets 3.3 V from a low-dropout regulator on the battery; all grounds are common."]
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


# ============================================================================ wiring SVG
COLOURS = {"modem": "#1f77b4", "gps": "#2ca02c", "button": "#d62728", "led": "#e67300",
           "vibration": "#9467bd", "battery": "#8c564b", "ip5306": "#138d9c", "axp192": "#138d9c"}
ORDER = ("modem", "gps", *POWER_CHIPS, "button", "led", "vibration", "battery")


def _t(x, y, text, size=13, anchor="start", weight="normal", fill="#222"):
    return (f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}"'
            f' fill="{fill}">{html.escape(str(text), quote=False)}</text>')


def _box(x, y, w, h, stroke, fill="#ffffff", dashed=False, width=2):
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    return (f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="8" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="{width}"{dash}/>')


def _arrow(x1, y1, x2, y2, colour, dashed=False, start=False, end=True):
    dash = ' stroke-dasharray="7 5"' if dashed else ""
    m = (' marker-start="url(#arrow)"' if start else "") + (' marker-end="url(#arrow)"' if end else "")
    return (f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke="{colour}" stroke-width="2"{dash}{m}/>')


def wiring_svg(board):
    """A wiring diagram of one board profile: ESP32 pins on the left, parts on the right,
    an arrow per signal in its direction; dashed = already wired on the board."""
    conns = connections(board)
    ob = onboard(board)
    W = 1000
    row_h, head, pad = 28, 30, 10
    x_esp, w_esp, x_part, w_part = 30, 250, 640, 330
    top = 100
    groups = [(p, [c for c in conns if c.part == p]) for p in ORDER if any(c.part == p for c in conns)]
    y, boxes = top, []
    for part, rows in groups:
        h = head + row_h * len(rows) + pad
        boxes.append((part, rows, y, h))
        y += h + 14
    if battery_without_pin(board):
        boxes.append(("battery", [], y, head + 26))
        y += head + 26 + 14
    esp_bottom = y - 14
    panel_y = esp_bottom + 26
    notes = []
    for p in power_notes(board):
        notes.extend(_wrap_chars(p.replace("**", ""), 140))
    chain_h = 50 + 46 + (80 if power_chain(board)[2] else 0) + 46
    panel_h = chain_h + 18 * len(notes) + 26
    H = panel_y + panel_h + 20

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="DejaVu Sans, Verdana, Arial, sans-serif">',
         f"<!-- generated by `{REGEN} images` from boards/{board['id']}.json: do not edit -->",
         '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
         'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker>'
         '<marker id="parrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
         'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8a5a00"/></marker></defs>',
         f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
         _t(30, 36, f"Wiring: {board['name']}", 19, weight="bold"),
         _t(30, 60, f"boards/{board['id']}.json · chip {board['chip']} · flash {board['flash_size']} · "
                    f"battery {board.get('battery_mah', '?')} mAh", 13, fill="#555"),
         _t(30, 80, "arrow = signal direction · solid = wire to solder · dashed = already wired on the board · "
                    "all GNDs common", 12, fill="#555")]
    o.append(_box(x_esp, top, w_esp, esp_bottom - top, "#333", fill="#f2f2f2"))
    o.append(_t(x_esp + 14, top + 24, "ESP32", 16, weight="bold"))
    for part, rows, by, bh in boxes:
        colour = COLOURS[part]
        dashed = part in ob
        o.append(_box(x_part, by, w_part, bh, colour, dashed=dashed))
        o.append(_t(x_part + 12, by + 20, PART_TITLES[part] + ("  (on the board)" if dashed else ""), 13,
                    weight="bold", fill=colour))
        if not rows:  # battery measured by the modem or the PMU
            where, why = battery_without_pin(board)
            o.append(_t(x_part + 12, by + 44, f"measured by the {where.replace('`', '')}: no pin", 12, fill="#444"))
            continue
        for i, c in enumerate(rows):
            ry = by + head + row_h * i + 14
            o.append(_t(x_esp + w_esp - 12, ry + 4.5, f"GPIO{c.pin}  {c.esp}", 13, anchor="end"))
            o.append(f'<circle cx="{x_esp + w_esp}" cy="{ry}" r="3.5" fill="{colour}"/>')
            o.append(f'<circle cx="{x_part}" cy="{ry}" r="3.5" fill="{colour}"/>')
            o.append(_arrow(x_esp + w_esp + 5, ry, x_part - 5, ry, colour, dashed,
                            start=c.direction in ("in", "io"), end=c.direction in ("out", "io")))
            if c.label:
                o.append(_t((x_esp + w_esp + x_part) / 2, ry - 6, c.label, 11, anchor="middle", fill="#555"))
            o.append(_t(x_part + 12, ry + 4.5, c.to, 13, weight="bold"))
            if c.gap:
                o.append(_t(x_part + w_part - 10, ry + 4.5, "firmware: not yet", 10.5, anchor="end", fill="#b00020"))
    # power drawing
    o.append(_box(30, panel_y, 940, panel_h, "#c98a00", fill="#fff8e6"))
    o.append(_t(44, panel_y + 26, "Power", 15, weight="bold", fill="#8a5a00"))
    chain, branches, hang = power_chain(board)
    bw, bh, gap = 170, 46, 40
    by = panel_y + 50
    x = 44
    lefts = []
    for i, (label, sub) in enumerate(chain):
        lefts.append(x)
        o.append(_box(x, by, bw, bh, "#8a5a00", fill="#ffffff", width=1.5))
        o.append(_t(x + bw / 2, by + 20, label, 13, anchor="middle", weight="bold"))
        o.append(_t(x + bw / 2, by + 37, sub, 11, anchor="middle", fill="#555"))
        if i < len(chain) - 1:
            o.append(f'<line x1="{x + bw + 3}" y1="{by + bh / 2}" x2="{x + bw + gap - 3}" y2="{by + bh / 2}" '
                     'stroke="#8a5a00" stroke-width="2" marker-end="url(#parrow)"/>')
        x += bw + gap
    src_x = x - gap  # right edge of the last chain box
    bx = src_x + gap + 20
    for j, (label, sub) in enumerate(branches):
        yy = by - 22 + j * 50
        o.append(_box(bx, yy, bw + 20, 40, "#8a5a00", fill="#ffffff", width=1.5))
        o.append(_t(bx + (bw + 20) / 2, yy + 17, label, 12.5, anchor="middle", weight="bold"))
        o.append(_t(bx + (bw + 20) / 2, yy + 32, sub, 11, anchor="middle", fill="#555"))
        o.append(f'<line x1="{src_x + 3}" y1="{by + bh / 2}" x2="{bx - 3}" y2="{yy + 20}" '
                 'stroke="#8a5a00" stroke-width="2" marker-end="url(#parrow)"/>')
    extra = 0
    if hang:
        label, sub, idx = hang
        hx, hy = lefts[idx], by + bh + 34
        o.append(_box(hx, hy, bw, bh, "#8a5a00", fill="#ffffff", width=1.5))
        o.append(_t(hx + bw / 2, hy + 20, label, 13, anchor="middle", weight="bold"))
        o.append(_t(hx + bw / 2, hy + 37, sub, 11, anchor="middle", fill="#555"))
        o.append(f'<line x1="{hx + bw / 2}" y1="{by + bh + 3}" x2="{hx + bw / 2}" y2="{hy - 3}" '
                 'stroke="#8a5a00" stroke-width="2" marker-start="url(#parrow)" marker-end="url(#parrow)"/>')
        extra = bh + 34
    ty = by + bh + extra + 46
    for i, ln in enumerate(notes):
        o.append(_t(44, ty + 18 * i, ln, 12))
    o.append(_t(44, ty + 18 * len(notes) + 14, "SIM800 is 2G (GSM) only: check that a carrier still runs 2G "
                "where the buttons will be used.", 12.5, weight="bold", fill="#b00020"))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def _wrap_chars(text, width):
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return lines


def board_section(board):
    """The generated part of docs/hardware.md for one board."""
    bid = board["id"]
    ob = onboard(board)
    out = [f"### {board['name']} (`{bid}`)", "",
           f"![Wiring of {bid}: ESP32 pins to the SIM800L, GPS, button, LED, vibration motor and battery]"
           f"(img/wiring-{bid}.svg)", "",
           "| ESP32 pin | signal | goes to | notes |", "|---|---|---|---|"]
    for c in connections(board):
        arrow = {"out": "→", "in": "←", "io": "↔"}[c.direction]
        where = " (on the board)" if c.part in ob else ""
        note = c.note + (f" — **{c.gap}**" if c.gap else "")
        out.append(f"| GPIO{c.pin} | {c.esp} {arrow} | {PART_TITLES[c.part]}{where}: {c.to} | {note} |")
    if battery_without_pin(board):
        out.append("| – | battery voltage | %s | %s |" % battery_without_pin(board))
    out += ["", "**Bill of materials**", "", "| qty | part | notes |", "|---|---|---|"]
    out += [f"| {q} | {p} | {n} |" for q, p, n in bom(board)]
    out += ["", "**Power**", ""] + [f"- {p}" for p in power_notes(board)]
    notes = pin_notes(board)
    if notes:
        out += ["", "**Pins to know about**", ""] + [f"- {n}" for n in notes]
    if board.get("notes"):
        out += ["", f"From the profile: *{board['notes']}*"]
    return "\n".join(out)


def boards_markdown(boards):
    return "\n\n".join(board_section(b) for b in boards)


# ============================================================================ SMS examples (Spanish guide)
def _sms_module():
    import importlib
    lib = str(FIRMWARE / "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    return importlib.import_module("sms")


def sms_examples_markdown():
    sms = _sms_module()
    point = dict(lat=21.88234, lon=-102.29143)
    ex = [
        ("Alerta, con GPS (a sus contactos y al C4)",
         sms.alert_text(alias="Luna", kind="gps", age_s=4, hdop=1.2, battery=86, device_id="BS-0042", **point)),
        ("Alerta sin GPS (por ejemplo dentro de un edificio): la celda del teléfono",
         sms.alert_text(alias="Luna", kind="cell", battery=86, device_id="BS-0042",
                        cell={"mcc": 334, "mnc": "020", "lac": "1A2B", "cellid": "3C4D"})),
        ("Cada 5 minutos mientras dura la alerta",
         sms.alert_text(alias="Luna", kind="gps", age_s=2, hdop=1.0, battery=84, device_id="BS-0042",
                        update=True, **point)),
        ("Ella canceló desde el botón",
         sms.cancel_text(alias="Luna", device_id="BS-0042", by="device")),
        ("El C4 cerró la alerta",
         sms.cancel_text(alias="Luna", device_id="BS-0042", by="c4")),
        ("Prueba del día de entrega",
         sms.alert_text(alias="Luna", kind="gps", age_s=3, hdop=1.2, battery=90, device_id="BS-0042", test=True,
                        **point)),
    ]
    if hasattr(sms, "low_battery_text"):
        ex.append(("Batería baja (a sus contactos)",
                   sms.low_battery_text(alias="Luna", battery=20, device_id="BS-0042")))
    out = []
    for title, text in ex:
        out += [f"*{title}:*", "", "```text", text, "```", ""]
    return "\n".join(out).strip()


# ============================================================================ generated files
def generated_files():
    """{path: text} of everything `images` writes."""
    boards = load_boards()
    for b in boards:
        errs = pin_problems(b)
        if errs:
            raise DocsError(f"boards/{b['id']}.json: " + "; ".join(errs))
    files = {IMG / f"wiring-{b['id']}.svg": wiring_svg(b) for b in boards}
    hw = DOCS / "hardware.md"
    if hw.exists():
        files[hw] = replace_section(hw.read_text(), "boards", boards_markdown(boards))
    if GUIDE_ES.exists() and "sms-examples" in sections_in(GUIDE_ES.read_text()):
        files[GUIDE_ES] = replace_section(GUIDE_ES.read_text(), "sms-examples", sms_examples_markdown())
    return files


def stale_images():
    """Paths whose committed text differs from what the generator makes now."""
    stale = [p for p, text in generated_files().items() if not p.exists() or p.read_text() != text]
    wanted = {f"wiring-{b['id']}.svg" for b in load_boards()}
    stale += [p for p in IMG.glob("wiring-*.svg") if p.name not in wanted]  # a board that was removed
    return stale


def write_images():
    IMG.mkdir(parents=True, exist_ok=True)
    wanted = {f"wiring-{b['id']}.svg" for b in load_boards()}
    for p in IMG.glob("wiring-*.svg"):
        if p.name not in wanted:
            p.unlink()
    changed = []
    for p, text in generated_files().items():
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
            changed.append(p)
    return changed


# ============================================================================ console blocks
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`]*)$")


class Block:
    """One fenced block: lines [start, end) of the file are its body."""

    def __init__(self, info, start, end, body):
        self.info, self.start, self.end, self.body = info, start, end, body

    @property
    def is_console(self):
        return self.info.split()[:1] == ["console"]


def fenced_blocks(text):
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(2), m.group(3).strip()
        j = i + 1
        while j < len(lines):
            c = FENCE.match(lines[j])
            if c and c.group(2)[0] == fence[0] and len(c.group(2)) >= len(fence) and not c.group(3).strip():
                break
            j += 1
        blocks.append(Block(info, i + 1, j, lines[i + 1:j]))
        i = j + 1
    return blocks


class Step:
    def __init__(self, shown, output):
        self.shown = shown      # the command lines as written (with `$ ` and continuations)
        self.output = output    # the output lines that follow

    @property
    def command(self):
        text = "\n".join(line[2:] if k == 0 else line for k, line in enumerate(self.shown))
        return re.sub(r"\s*\\\n\s*", " ", text).strip()


def parse_steps(body):
    steps, i = [], 0
    while i < len(body):
        line = body[i]
        if not line.startswith("$ "):
            if line.strip():
                raise DocsError(f"console block: output before any `$ command`: {line!r}")
            i += 1
            continue
        shown = [line]
        while shown[-1].endswith("\\") and i + 1 < len(body):
            i += 1
            shown.append(body[i])
        i += 1
        out = []
        while i < len(body) and not body[i].startswith("$ "):
            out.append(body[i])
            i += 1
        while out and not out[-1].strip():
            out.pop()
        steps.append(Step(shown, out))
    return steps


def _exe(name):
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else (shutil.which(name) or name)


# A file that says this starts its virtual device as a blank chip (see Session).
BLANK_CHIP = "<!-- docs: the virtual device starts as a blank chip -->"


class Session:
    """Runs one file's console commands: one virtual device (started on first use of
    $PORT), one scratch registry and key, shared by all the file's blocks in order."""

    def __init__(self, blank_chip=False):
        from cryptography.fernet import Fernet

        # blank_chip: the device starts as a board from the factory (a whole SPI flash, one
        # rfc2217 URL for esptool and mpremote), so the file can flash it before deploying.
        self.blank_chip = blank_chip
        self.work = Path(tempfile.mkdtemp(prefix="boton-docs-"))
        self.vd = None
        self.last_rc = 0
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("BOTON_") and k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE",
                                                          "TTY_INTERACTIVE", "COLUMNS", "LINES")}
        env.update(BOTON_REGISTRY=str(self.work / "registry.sqlite3"), BOTON_KEY=Fernet.generate_key().decode(),
                   BOTON_KEY_FILE=str(self.work / "registry.key"), BOTON_TECHNICIAN=TECHNICIAN,
                   COLUMNS=str(COLUMNS), LINES="60", TERM="dumb", NO_COLOR="1", PYTHONIOENCODING="utf-8")
        self.env = env
        self.vars = {}

    def close(self):
        if self.vd is not None:
            self.vd.stop()
            self.vd = None
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def port(self):
        if self.vd is None:
            from .sim.rig import VirtualDevice

            # C4 answers after 20 s of simulated time (2 s here): both SMS are accepted
            # before the call is answered, so the log's order is the same on every run.
            # A blank chip is the technician guide's board: flashed with the release image (the
            # firmware frozen into a 32-bit MicroPython at the ESP32's heap), as in the field.
            chip = dict(flash_image=self.work / "chip.bin", repl="rfc2217",
                        interpreter="esp32") if self.blank_chip else {}
            self.vd = VirtualDevice(self.work / "flash", time_scale=0.1, c4_answer_after_s=20, seed=1,
                                    **chip).start()
        return self.vd.repl_url

    def _expand(self, token):
        def sub(m):
            name = m.group(1) or m.group(2)
            if name == "PORT":
                return self.port()
            if name in self.vars:
                return self.vars[name]
            raise DocsError(f"${name} is not set (only $PORT and exported names)")
        return re.sub(r"\$(?:\{(\w+)\}|(\w+))", sub, token)

    def run(self, command):
        """(output lines as the docs show them, ran) for one command."""
        words = shlex.split(command)
        if not words:
            return [], False
        if tuple(words[:2]) in NOT_RUN or tuple(words[:1]) in NOT_RUN:
            return None, False
        if words == ["echo", "$?"]:
            out, self.last_rc = [str(self.last_rc)], 0
            return out, True
        if words[0] == "export":
            for w in words[1:]:
                name, _, value = w.partition("=")
                self.vars[name] = self._expand(value)
                self.env[name] = self.vars[name]
            self.last_rc = 0
            return [], True
        if words[0] not in ("boton", "mpremote"):
            raise DocsError(f"cannot run {command!r}: console blocks run `boton`, `mpremote`, `echo $?` and "
                            "`export`; show anything else in a ```sh or ```text block")
        uses_port = "$PORT" in command or "${PORT}" in command
        if words[0] == "mpremote" and not uses_port:
            raise DocsError(f"{command!r}: an mpremote command in a console block must use $PORT")
        args = [_exe(words[0])] + [self._expand(w) for w in words[1:]]
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=self.env, cwd=self.work, timeout=600)
        self.last_rc = proc.returncode
        text = proc.stdout.decode("utf-8", "replace")
        # after flashing, MicroPython boots with no firmware yet: nothing to settle
        if uses_port and proc.returncode == 0 and words[0] == "boton" and words[1:2] != ["flash"]:
            self._wait_ready()
        return self.shown(text), True

    def shown(self, text):
        if self.vd is not None:
            text = text.replace(self.vd.repl_url, "$PORT")
        text = text.replace(str(self.work), SHOWN_WORKDIR)
        lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        while lines and not lines[0]:
            lines.pop(0)  # what a transient progress bar leaves when the output is not a terminal
        return lines

    def _wait_ready(self, timeout=30.0, quiet=1.5):
        """`boton` restarts the firmware when it lets go of the board: wait until it is up
        again and has settled (standby: modem asleep, GPS off after its fix), so the next
        command finds the same state on every run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.vd.console_text()
            i = text.rfind("soft reboot")
            if i >= 0 and "EV ready" in text[i:]:
                break
            time.sleep(0.05)
        else:
            return False
        mark, since = self.vd.console_mark(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.vd.console_mark()
            if now != mark:
                mark, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return True
        return False


class Result:
    def __init__(self, path):
        self.path = path
        self.text = None        # the file with fresh outputs
        self.problems = []      # (command, message)
        self.commands = 0


def run_console(path):
    """Run every console block of one file; Result.text is the file with fresh outputs."""
    path = Path(path)
    text = path.read_text()
    lines = text.split("\n")
    res = Result(path)
    blocks = [b for b in fenced_blocks(text) if b.is_console]
    if not blocks:
        res.text = text
        return res
    new_lines, pos = [], 0
    with Session(blank_chip=BLANK_CHIP in text) as s:
        for b in blocks:
            new_lines += lines[pos:b.start]
            body = []
            steps = parse_steps(b.body)
            for k, st in enumerate(steps):
                cmd = st.command
                try:
                    out, ran = s.run(cmd)
                except (DocsError, subprocess.TimeoutExpired) as e:
                    res.problems.append((cmd, str(e)))
                    out, ran = st.output, False
                if out is None:
                    out = st.output
                if ran:
                    res.commands += 1
                    nxt = steps[k + 1].command if k + 1 < len(steps) else ""
                    if s.last_rc != 0 and nxt != "echo $?":
                        res.problems.append((cmd, f"exited {s.last_rc} (if that is intended, follow it with "
                                                  f"`$ echo $?`):\n" + "\n".join(out[-5:])))
                body += st.shown + out
            new_lines += body
            pos = b.end
    new_lines += lines[pos:]
    res.text = "\n".join(new_lines)
    return res


def not_run_blocks(text):
    """[(command)] of every ```text (not run) block."""
    out = []
    for b in fenced_blocks(text):
        if b.info.replace(" ", "") == "text(notrun)":
            out += [st.command for st in parse_steps(b.body)]
    return out


def check_not_run(command):
    """Why a command shown but not run would not work with today's CLI, or None: the
    (sub)command must exist and every --option must be one it has."""
    import click

    from .cli import main as cli

    words = shlex.split(command)
    if words[:1] != ["boton"]:
        return None
    cmd, path, rest = cli, ["boton"], words[1:]
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        if sub is None:
            return f"`{' '.join(path)}` has no command {rest[0]!r}"
        cmd, path, rest = sub, path + [rest[0]], rest[1:]
    known = {o for p in cmd.params for o in p.opts + p.secondary_opts} | {"--help"}
    bad = [w.split("=")[0] for w in rest if w.startswith("-") and w.split("=")[0] not in known]
    if bad:
        return f"`{' '.join(path)}` has no option {', '.join(bad)}"
    return None


# What changes from run to run, and so is left out of the comparison.
VOLATILE = [
    (re.compile(r"socket://[\w.\-]+:\d+|rfc2217://\S+|/dev/pts/\d+"), "$PORT"),
    (re.compile(r"(?:/tmp|/var/folders)/[\w.\-/]+"), "<path>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?"), "<date>"),
    (re.compile(r"\b\d\d:\d\d(?::\d\d)?\b"), "<time>"),
    # Event log stamps: UTC Unix seconds once the clock was set (from 2020: 1577836800), or
    # seconds since 2000-01-01 with a "?" while it never was (eventlog.stamp). Whether GPS
    # set it before a command ran is timing, so either stands for the other.
    (re.compile(r"\b(?:9[4-9]\d{7}|1[0-5]\d{8})\?|\b1[5-9]\d{8}\b"), "<unix-time>"),
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "<hash>"),
    (re.compile(r"\b[\d,]+(?:\.\d+)? ?[kM]?B/s\b"), "<rate>"),  # write speed: the machine's, not the tool's
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:s|ms)\b"), "<duration>"),
    # The device's event log is a timeline of asynchronous events (modem asleep, GPS off...):
    # which entries exist at the moment of the command depends on timing, so compare its shape.
    (re.compile(r"(?:\b\d+ <unix-time> \S+ \S+ <hash>\s*)+"), "<event log entries> "),
    (re.compile(r"(log_entries\s*│\s*)\d+"), r"\1<n>"),
    # free heap after boot moves by a few hundred bytes with the interpreter's paths and the
    # order tasks started in; the bench measures and budgets it, the guide shows where to read it
    (re.compile(r"(heap free\s*│\s*|largest free block\s*│\s*)\d+(?:\.\d+)? KB"), r"\1<n> KB"),
    (re.compile(r"\b\d+ entries intact"), "<n> entries intact"),
    # how many SMS were accepted before C4 answered depends on timing, not behaviour
    (re.compile(r"(SMS accepted:? |sms )\d+"), r"\1<n>"),
    (re.compile(r"([━─═│┃┼╇╋┬┴┌┐└┘├┤╭╮╯╰])\1+"), r"\1"),
]


def normalise(text):
    """The output with volatile parts replaced and table padding and line wrapping ignored."""
    for pat, rep in VOLATILE:
        text = pat.sub(rep, text)
    return " ".join(text.split())


def console_outputs(text):
    """[(command, output text)] of every console block, for comparing two versions."""
    out = []
    for b in fenced_blocks(text):
        if b.is_console:
            out += [(st.command, "\n".join(st.output)) for st in parse_steps(b.body)]
    return out


def compare_console(old_text, new_text):
    """Messages for every command whose output differs (after normalise)."""
    old, new = console_outputs(old_text), console_outputs(new_text)
    msgs = []
    for (cmd, a), (_, b) in zip(old, new):
        if normalise(a) != normalise(b):
            diff = "\n".join(difflib.unified_diff(a.split("\n"), b.split("\n"), "in the docs", "now", lineterm="", n=1))
            msgs.append(f"$ {cmd}\n{diff}")
    return msgs


def doc_files():
    files = sorted(DOCS.glob("*.md"))
    readme = REPO / "README.md"
    return files + ([readme] if readme.exists() else [])


def console_files(paths=None):
    paths = [Path(p).resolve() for p in paths] if paths else doc_files()
    return [p for p in paths if any(b.is_console for b in fenced_blocks(p.read_text()))]


def check_console(path):
    """Problems of one file's console blocks (empty: the docs match what the commands print)."""
    res = run_console(path)
    msgs = [f"$ {c}\n{m}" for c, m in res.problems]
    msgs += compare_console(Path(path).read_text(), res.text)
    return msgs, res


# ============================================================================ one-page PDF (no dependency)
# Widths (1/1000 em) of the PDF base-14 fonts Helvetica and Helvetica-Bold (Adobe AFM),
# for ASCII 32..126, and the Latin-1 letters Spanish needs.
_HELV = [int(x) for x in (
    "278 278 355 556 556 889 667 191 333 333 389 584 278 333 278 278 556 556 556 556 556 556 556 556 556 556 "
    "278 278 584 584 584 556 1015 667 667 722 722 667 611 778 722 278 500 667 556 833 722 778 667 778 722 667 "
    "611 722 667 944 667 667 611 278 278 278 469 556 333 556 556 500 556 556 278 556 556 222 222 500 222 833 "
    "556 556 556 556 333 500 278 556 500 722 500 500 500 334 260 334 584").split()]
_HELV_B = [int(x) for x in (
    "278 333 474 556 556 889 722 238 333 333 389 584 278 333 278 278 556 556 556 556 556 556 556 556 556 556 "
    "333 333 584 584 584 611 975 722 722 722 722 667 611 778 722 278 556 722 611 833 722 778 667 778 722 667 "
    "611 722 667 944 667 667 611 333 278 333 584 556 333 556 611 556 611 556 333 611 611 278 278 556 278 889 "
    "611 611 611 611 389 556 333 611 556 778 556 556 500 389 280 389 584").split()]
_EXTRA = {  # char: (regular, bold)
    "á": (556, 556), "é": (556, 556), "í": (278, 278), "ó": (556, 611), "ú": (556, 611), "ü": (556, 611),
    "ñ": (556, 611), "Á": (667, 722), "É": (667, 667), "Í": (278, 278), "Ó": (778, 778), "Ú": (722, 722),
    "Ñ": (722, 722), "¿": (611, 611), "¡": (333, 333), "°": (400, 400), "·": (278, 278), "–": (556, 556),
    "—": (1000, 1000), "•": (350, 350), "“": (333, 500), "”": (333, 500), "«": (556, 556), "»": (556, 556),
}
PAGE_W, PAGE_H = 612, 792  # US Letter ("carta"), the paper used in Mexico
MARGIN = 42


def text_width(text, size, bold=False):
    table = _HELV_B if bold else _HELV
    w = 0
    for ch in text:
        o = ord(ch)
        if 32 <= o <= 126:
            w += table[o - 32]
        elif ch in _EXTRA:
            w += _EXTRA[ch][1 if bold else 0]
        else:
            raise DocsError(f"the printable page cannot show {ch!r} (WinAnsi Helvetica)")
    return w * size / 1000.0


def _inline(text):
    """Markdown inline text -> [(text, bold)] (links keep their text, code loses its ticks)."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = text.replace("`", "")
    runs = []
    for k, part in enumerate(re.split(r"\*\*", text)):
        part = re.sub(r"(?<!\w)[*_]([^*_]+)[*_](?!\w)", r"\1", part)
        if part:
            runs.append((part, k % 2 == 1))
    return runs


def sheet_items(markdown):
    """The printable part of the guide (between <!-- hoja:inicio --> and <!-- hoja:fin -->)
    as [(kind, runs)], kind: title | h | p | li (bullet) | ol:N (numbered)."""
    m = re.search(r"<!-- hoja:inicio -->(.*?)<!-- hoja:fin -->", markdown, re.S)
    if not m:
        raise DocsError(f"{GUIDE_ES.name}: no <!-- hoja:inicio --> ... <!-- hoja:fin --> section to print")
    raw_items = []  # [kind, text]; list items and paragraphs gather their continuation lines

    for raw in m.group(1).split("\n"):
        line = raw.strip()
        if not line or line.startswith("<!--"):
            raw_items.append(None)
        elif line.startswith("# "):
            raw_items.append(["title", line[2:]])
        elif line.startswith("## "):
            raw_items.append(["h", line[3:]])
        elif re.match(r"^[-*] ", line):
            raw_items.append(["li", line[2:]])
        elif re.match(r"^\d+\. ", line):
            n, rest = line.split(". ", 1)
            raw_items.append([f"ol:{n}", rest])
        elif raw_items and raw_items[-1] and raw_items[-1][0] in ("p", "li") or (
                raw_items and raw_items[-1] and raw_items[-1][0].startswith("ol:")):
            raw_items[-1][1] += " " + line
        else:
            raw_items.append(["p", line])
    return [(kind, _inline(text)) for kind, text in (i for i in raw_items if i)]


def _wrap_runs(runs, width, size):
    """Word-wrap [(text, bold)] into lines of [(text, bold)] no wider than width."""
    words = []  # (word, bold, space_before)
    for text, bold in runs:
        for k, w in enumerate(re.split(r"(\s+)", text)):
            if not w:
                continue
            if w.isspace():
                words.append((None, bold, True))
            else:
                words.append((w, bold, False))
    lines, cur, cur_w, space = [], [], 0.0, False
    for w, bold, is_space in words:
        if is_space:
            space = bool(cur)
            continue
        sp = text_width(" ", size, bold) if space else 0.0
        ww = text_width(w, size, bold)
        if cur and cur_w + sp + ww > width:
            lines.append(cur)
            cur, cur_w, sp = [], 0.0, 0.0
        if sp and cur:
            if cur[-1][1] == bold:
                cur[-1] = (cur[-1][0] + " ", bold)
            else:
                cur.append((" ", bold))
        if cur and cur[-1][1] == bold:
            cur[-1] = (cur[-1][0] + w, bold)
        else:
            cur.append((w, bold))
        cur_w += sp + ww
        space = False
    if cur:
        lines.append(cur)
    return lines


def _pdf_str(text):
    data = text.encode("cp1252")
    return "(" + data.decode("latin-1").replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _layout(items, size):
    """PDF drawing operators for the items at body font size `size`, or None if they do not fit."""
    ops = []
    width = PAGE_W - 2 * MARGIN
    y = PAGE_H - MARGIN
    lead = size * 1.28
    for kind, runs in items:
        if kind == "title":
            tsize = size * 1.9
            y -= tsize
            for line in _wrap_runs([(t, True) for t, _ in runs], width, tsize):
                ops.append(_text_line(line, MARGIN, y, tsize, (0.55, 0.0, 0.25)))
                y -= tsize * 1.2
            ops.append(f"0.55 0 0.25 RG 1.5 w {MARGIN} {y + tsize * 0.6:.2f} m {PAGE_W - MARGIN} "
                       f"{y + tsize * 0.6:.2f} l S")
            y -= size * 0.3
            continue
        if kind == "h":
            hsize = size * 1.25
            y -= hsize * 0.7
            for line in _wrap_runs([(t, True) for t, _ in runs], width, hsize):
                y -= hsize * 1.15
                ops.append(_text_line(line, MARGIN, y, hsize, (0.55, 0.0, 0.25)))
            y -= size * 0.25
            continue
        indent = 0.0
        marker = None
        if kind == "li":
            indent, marker = size * 1.3, "•"
        elif kind.startswith("ol:"):
            indent, marker = size * 1.6, kind[3:] + "."
        lines = _wrap_runs(runs, width - indent, size)
        for i, line in enumerate(lines):
            y -= lead
            if i == 0 and marker:
                ops.append(_text_line([(marker, kind.startswith("ol:"))], MARGIN + size * 0.2, y, size))
            ops.append(_text_line(line, MARGIN + indent, y, size))
        y -= size * (0.35 if kind != "p" else 0.55)
        if y < MARGIN:
            return None
    return ops if y >= MARGIN else None


def _text_line(runs, x, y, size, rgb=(0, 0, 0)):
    parts = [f"BT {rgb[0]:g} {rgb[1]:g} {rgb[2]:g} rg"]
    for text, bold in runs:
        parts.append(f"/{'F2' if bold else 'F1'} {size:.2f} Tf 1 0 0 1 {x:.2f} {y:.2f} Tm {_pdf_str(text)} Tj")
        x += text_width(text, size, bold)
    parts.append("ET")
    return " ".join(parts)


def build_pdf(markdown=None, title="Botón Seguro: guía para la beneficiaria"):
    """One US Letter page from the guide's printable section; the body font shrinks from
    12 pt until it fits (DocsError below 8 pt: shorten the guide)."""
    markdown = GUIDE_ES.read_text() if markdown is None else markdown
    items = sheet_items(markdown)
    size = 12.0
    while True:
        ops = _layout(items, size)
        if ops is not None:
            break
        size -= 0.25
        if size < 8:
            raise DocsError("the beneficiary's page does not fit on one page even at 8 pt: shorten it")
    content = "\n".join(ops).encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] "
         "/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>").encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        ("<< /Title " + _pdf_str(title) + " /Producer (boton.docs_build) /Lang (es-MX) >>").encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 7 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out), size


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)\b", data))


def pdf_text(data: bytes) -> str:
    """The text of an uncompressed PDF written by build_pdf, one line per BT..ET, joined by
    spaces (enough to search it for phrases)."""
    lines = []
    for bt in re.findall(rb"BT(.*?)ET", data, re.S):
        parts = []
        for s in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", bt):
            parts.append(re.sub(rb"\\(.)", rb"\1", s).decode("cp1252"))
        lines.append("".join(parts))
    return " ".join(" ".join(lines).split())


def write_pdf(out=PDF_OUT):
    data, size = build_pdf()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out, size


# ============================================================================ command line
def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m boton.docs_build", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=("all", "images", "console", "check", "pdf"))
    ap.add_argument("files", nargs="*", help="docs whose console blocks to run (default: docs/*.md, README.md)")
    ap.add_argument("-o", "--out", default=str(PDF_OUT), help="where `pdf` writes the page")
    a = ap.parse_args(argv)
    rc = 0
    if a.what in ("all", "images"):
        for p in write_images():
            print(f"wrote {p.relative_to(REPO)}")
    if a.what in ("all", "console"):
        for p in console_files(a.files):
            t0 = time.monotonic()
            res = run_console(p)
            for cmd, msg in res.problems:
                print(f"{p.relative_to(REPO)}: $ {cmd}\n  {msg}", file=sys.stderr)
                rc = 1
            if res.text != p.read_text():
                p.write_text(res.text)
                print(f"wrote {p.relative_to(REPO)} ({res.commands} commands, {time.monotonic() - t0:.0f} s)")
            else:
                print(f"{p.relative_to(REPO)} up to date ({res.commands} commands, {time.monotonic() - t0:.0f} s)")
    if a.what in ("all", "pdf"):
        out, size = write_pdf(a.out)
        print(f"wrote {out} (1 page, body {size:g} pt)")
    if a.what == "check":
        stale = stale_images()
        for p in stale:
            print(f"stale: {p.relative_to(REPO)} (run `{REGEN} images`)", file=sys.stderr)
        rc = 1 if stale else 0
        for p in console_files(a.files):
            msgs, _ = check_console(p)
            for m in msgs:
                print(f"{p.relative_to(REPO)}:\n{m}\n", file=sys.stderr)
            if msgs:
                print(f"stale: {p.relative_to(REPO)} (run `{REGEN} console {p.relative_to(REPO)}`)", file=sys.stderr)
                rc = 1
        build_pdf()
    return rc


if __name__ == "__main__":
    sys.exit(main())
