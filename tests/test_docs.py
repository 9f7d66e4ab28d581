"""The docs cannot go stale: every command they show is run here, the wiring diagrams are
made from boards/ again, and the beneficiary's printable page is built and read back.

Regenerate what these tests compare against with `python -m boton.docs_build` (all),
`python -m boton.docs_build images` or `python -m boton.docs_build console docs/X.md`.
"""
import ast
import importlib.util
import inspect
import re
import sys
import time

import pytest

from boton import docs_build as D
from boton import rules
from boton.paths import FIRMWARE, REPO

REGEN = "python -m boton.docs_build"


# ---------------------------------------------------------------------------- boards -> docs
def test_wiring_images_and_tables_match_boards():
    stale = [str(p.relative_to(REPO)) for p in D.stale_images()]
    assert not stale, (f"generated docs differ from what boards/ and firmware/lib/sms.py give now: {stale}; "
                       f"regenerate with `{REGEN} images` and commit the result")


@pytest.mark.parametrize("board", D.load_boards(), ids=lambda b: b["id"])
def test_board_profile_pins_are_buildable(board):
    assert D.pin_problems(board) == []


def test_every_board_has_its_diagram_in_hardware_md():
    text = (REPO / "docs" / "hardware.md").read_text()
    for b in D.load_boards():
        assert f"(img/wiring-{b['id']}.svg)" in text
        svg = (REPO / "docs" / "img" / f"wiring-{b['id']}.svg").read_text()
        assert svg.startswith("<svg") and "2G" in svg
        for c in D.connections(b):  # every pin of the profile is drawn
            assert f"GPIO{c.pin} " in svg


def test_pin_checks_catch_a_bad_profile():
    bad = dict(D.load_boards()[0])
    bad["led"] = {"pin": bad["button"]["pin"], "active": 1}
    bad["vibration"] = {"pin": 34, "active": 1}
    problems = " ".join(D.pin_problems(bad))
    assert "used twice" in problems and "input-only" in problems


@pytest.mark.parametrize("board", D.load_boards(), ids=lambda b: b["id"])
def test_every_pin_the_profile_uses_is_in_its_table(board):
    from boton.boards import pin_uses
    drawn = {c.pin for c in D.connections(board)}
    missing = [f"GPIO{pin} ({what})" for pin, what, _, _ in pin_uses(board) if pin not in drawn]
    assert not missing, f"{board['id']}: the wiring table leaves out {missing}"


def test_power_chip_is_documented_per_revision():
    boards = {b["id"]: b for b in D.load_boards()}
    axp = D.board_section(boards["tcall_sim800l_axp192"])
    ip = D.board_section(boards["tcall_sim800l_ip5306"])
    assert "| GPIO35 | PMU IRQ ← | AXP192" in axp and "AXP192 at 0x34" in axp
    assert "AXP192 ADC over I2C" in axp and "IP5306" not in axp
    assert "IP5306 at 0x75; keep the boost on" in ip and "AXP192" not in ip and "SIM800 (`AT+CBC`)" in ip
    assert D.power_chain(boards["tcall_sim800l_axp192"])[0][1][0] == "AXP192 PMU"
    assert "TP4056" in str(D.bom(boards["devkitc_sim800l_neo6m"]))


def test_a_supply_enable_on_a_pulled_down_pin_says_a_reset_drops_her_call():
    """GPIO12 falls at every ESP32 reset: the T-A7670X's modem loses its supply; the SIM800
    boards' sections say nothing of it. The hand-written parts say so too, and that this
    firmware supports the A7670 (no more "once it is released")."""
    boards = {b["id"]: b for b in D.load_boards()}
    note = "lets GPIO12 fall (it is pulled down at reset), which most likely cuts the modem's supply"
    section = D.board_section(boards["ta7670x_a7670sa"])
    assert note in section and "redials C4" in section and "cuts the supply at every reset too" in section
    assert not any("most likely cuts" in D.board_section(b) for i, b in boards.items() if i != "ta7670x_a7670sa")
    text = (REPO / "docs" / "hardware.md").read_text()
    pins = text[text.index("## Pins the profiles may not choose"):]
    assert "GPIO12 falls to its pull-down" in pins and "The virtual device models it" in pins
    assert "once the firmware's A7670 support is released" not in text and "being written" not in text


def test_what_the_docs_say_the_firmware_does_is_found_in_it():
    """The patterns behind "firmware: not yet" find what firmware/lib does today (pmu.py keeps
    each power chip on, app.py reads the AXP192's battery and wakes on RI)."""
    for key in ("gps_enable", "led", "battery_adc", "ri", "ip5306", "axp192", "pmu_battery"):
        assert D.firmware_gap(key) is None, key


def test_every_strapping_pin_has_its_note():
    from boton import boards
    assert set(boards.STRAPPING_NOTES) == set(boards.STRAPPING_PULL)


# ---------------------------------------------------------------------------- console blocks
def test_console_parsing_and_normalising():
    body = ["$ boton deploy --port $PORT \\", "    --board tcall_sim800l_axp192", "deployed 1 of 1 files: boot.py",
            "$ boton devices deliver BS-0042", "error: no", "$ echo $?", "7"]
    steps = D.parse_steps(body)
    assert [s.command for s in steps] == ["boton deploy --port $PORT --board tcall_sim800l_axp192",
                                          "boton devices deliver BS-0042", "echo $?"]
    assert steps[0].output == ["deployed 1 of 1 files: boot.py"]
    a = "config 0123456789abcdef at 2026-11-27T19:15:34Z on socket://127.0.0.1:4711 took 1.4 s\n│ x   │"
    b = "config fedcba9876543210 at 2027-01-02T03:04:05Z on socket://127.0.0.1:80 took 12.0 s\n│ x │"
    assert D.normalise(a) == D.normalise(b)
    assert D.normalise("SMS accepted 2") == D.normalise("SMS accepted 1")  # timing, not behaviour
    # a release image's build is the version alone on a fresh clone's .mpy files
    assert D.normalise("│ fw │ 0.1.0+549d27eaf88b │") == D.normalise("│ fw │ 0.1.0 │")
    assert D.normalise("fw 0.1.0") != D.normalise("fw 0.2.0")
    assert D.normalise("C4 call answered: yes -> ok") != D.normalise("C4 call answered: no -> failed")


def test_event_log_stamps_normalise_set_or_unset():
    """A stamp is UTC seconds once GPS set the clock, else seconds since 2000 with a "?"
    (eventlog.stamp): which one a run shows is timing."""
    synced = "1 1795967608 boot 0.1.0 10ddfb14fab173ea\n2 1795967608 power gps_off a5f0e41ae2079c12"
    unsynced = "1 946684812? boot 0.1.0 10ddfb14fab173ea\n2 1577836799? power gps_off a5f0e41ae2079c12"
    assert D.normalise(unsynced) == D.normalise(synced) == "<event log entries>"
    assert "?" not in D.normalise("since 946684812?")
    assert D.normalise("ticket 123456789?") == "ticket 123456789?"  # not a stamp


CONSOLE_FILES = D.console_files()


def test_the_technician_guide_is_checked():
    assert REPO / "docs" / "technician-guide.md" in CONSOLE_FILES


@pytest.mark.parametrize("path", CONSOLE_FILES, ids=lambda p: p.name)
def test_console_blocks_print_what_the_docs_show(path):
    if D.BLANK_CHIP in path.read_text():
        from boton import frozen
        where, why = frozen.tooling()
        if where is None:  # CI always has it (.ci/run builds it)
            pytest.skip(f"{path.name} shows a board flashed with the release image: {why}")
    t0 = time.monotonic()
    msgs, res = D.check_console(path)
    rel = path.relative_to(REPO)
    assert res.commands > 0
    assert not msgs, (f"{rel}: what the commands print now differs from the docs "
                      f"(after ignoring ports, paths, times, hashes):\n\n" + "\n\n".join(msgs) +
                      f"\n\nIf the change is right, regenerate with `{REGEN} console {rel}`, read the diff "
                      "and commit it; if not, fix the code.")
    assert time.monotonic() - t0 < 90


# ---------------------------------------------------------------------------- beneficiary's page
def test_printable_page_is_one_page_with_the_key_phrases(tmp_path):
    out, size = D.write_pdf(tmp_path / "guia.pdf")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    assert D.pdf_pages(data) == 1
    assert size >= 9, "the page only fits in small print: shorten docs/guia-beneficiaria.md"
    text = D.pdf_text(data)
    for phrase in ("Su Botón Seguro", "Apriete el botón y no lo suelte durante 2 segundos",
                   "una vibración corta", "llama al C4", "en silencio", "contactos de confianza",
                   "su ubicación", "Si fue un error", "no lo suelte durante 5 segundos",
                   "dos vibraciones cortas", "Si no vibra", "pida ayuda de otra forma",
                   "Cárguelo cada noche", "No reemplaza al 911", "Número de su botón"):
        assert phrase in text, f"{phrase!r} is not on the printed page"
    assert "Para el personal" not in text  # the staff notes are not printed


def _load(name):
    """A firmware module under CPython; its own imports (alert's gesture, ...) from lib/ too."""
    if str(FIRMWARE / "lib") not in sys.path:
        sys.path.insert(0, str(FIRMWARE / "lib"))
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", FIRMWARE / "lib" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_guide_tells_her_what_the_firmware_does():
    """The numbers she is told are the firmware's: a change there must be told to her."""
    guide = D.GUIDE_ES.read_text()
    cfg = rules.build_config(alias="Luna", contacts=["449 111 2233"], c4=["449 910 0000"], device_id="BS-0042")
    g = cfg["gesture"]
    defaults = {k: p.default for k, p in inspect.signature(_load("gesture").Gesture.__init__).parameters.items()}
    hold_s = g.get("hold_ms", defaults["hold_ms"]) / 1000
    cancel_s = g.get("cancel_ms", defaults["cancel_ms"]) / 1000
    assert g["mode"] == "hold" and g.get("cancel", defaults["cancel"]) == "hold"
    assert f"no lo suelte durante {hold_s:g} segundos" in guide
    assert f"no lo suelte durante {cancel_s:g} segundos" in guide
    assert f"Cada {cfg['update_every_s'] // 60:g} minutos" in guide
    assert cfg["max_alert_s"] == 3600 and "durante una hora" in guide
    # app.VIBRATIONS: one short pulse acknowledges an alert, two a cancel, three long ones
    # say the alert got nothing out after alert.py's unsent_warn_s
    app = (FIRMWARE / "lib" / "app.py").read_text()
    vibrations = ast.literal_eval(re.search(r"^VIBRATIONS = (\{.*\})$", app, re.M).group(1))
    assert [(p, n, ms >= 500) for p, (n, ms) in sorted(vibrations.items())] == \
        [("alert", 1, False), ("cancel", 2, False), ("unsent", 3, True)], \
        "the vibration patterns changed: update 'Las vibraciones' in docs/guia-beneficiaria.md and this test"
    assert "**Una vibración corta:**" in guide and "**Dos vibraciones cortas:**" in guide
    assert "**Tres vibraciones largas** (minuto y medio después)" in guide
    assert _load("alert").DEFAULTS["unsent_warn_s"] == 90 and "unsent_warn_s" not in cfg


@pytest.mark.parametrize("path", D.doc_files(), ids=lambda p: p.name)
def test_commands_shown_but_not_run_still_exist(path):
    """Blocks marked ```text (not run) need a real port or board; their commands and
    options must still be the CLI's."""
    problems = [f"$ {c}: {why}" for c in D.not_run_blocks(path.read_text()) if (why := D.check_not_run(c))]
    assert not problems, "\n".join(problems)


def test_not_run_check_catches_renames():
    assert D.check_not_run("boton devices add 24:0a:c4:00:00:42 --label BS-0042") is None
    assert "no option --lable" in D.check_not_run("boton devices add X --lable BS-0042")
    assert "no command 'flush'" in D.check_not_run("boton flush --port X")


# ---------------------------------------------------------------------------- C4's guide
def test_the_c4_guide_has_every_generated_section():
    """docs/guia-c4.md's SMS examples, replies, cell table and redial table are made by the
    firmware's alert machine (test_wiring_images_and_tables_match_boards keeps them current)."""
    guide = D.GUIDE_C4.read_text()
    assert [n for n, _ in D.C4_SECTIONS if n not in D.sections_in(guide)] == []
    assert D.GUIDE_C4 in D.generated_files()


@pytest.mark.parametrize("cfg", [{}, {"alias": "Maria Guadalupe", "device_id": "BS-2024-99999"}],
                         ids=["guide", "longest"])
def test_every_sms_c4_gets_is_one_gsm7_segment(cfg):
    """What C4 reads is never split nor garbled: safe GSM-7, at most 160 characters (the
    guide says so), for the guide's examples and for her longest alias and device id."""
    sms = _load("sms")
    texts = [t for _, t in D.c4_sms(**cfg)] + [t for _, _, t in D.c4_replies(**cfg)]
    assert len(texts) == 18
    for t in texts:
        assert sms.is_gsm7(t) and sms.to_gsm7(t) == t, t
        assert sms.gsm7_septets(t) <= 160, (len(t), t)
        # the daily report's log head comes after the text's end, kept whole (sms.status_text)
        assert re.search(r"\.( Log \d+:[0-9a-f]{6})?$", t), f"cut short (status_text cuts at 160): {t}"
    assert "nunca llega partido" in D.GUIDE_C4.read_text()


def test_every_command_the_button_takes_is_in_the_c4_guide():
    """The commands table lists exactly what smscommands.py obeys, each with its PIN, and
    each has its generated reply."""
    guide = D.GUIDE_C4.read_text()
    table = re.findall(r"^\| `([A-Z]+) <PIN>` \|", guide, re.M)
    assert sorted(table) == sorted(_load("smscommands").COMMANDS), \
        "smscommands.COMMANDS changed: update the commands table of docs/guia-c4.md"
    replied = {cmd.split()[0] for cmd, _, _ in D.c4_replies()}
    assert replied == set(table)


def test_the_c4_guide_tells_c4_what_the_firmware_does():
    """Every number the guide gives C4 is the firmware's (with `boton provision`'s defaults):
    a change there must be told to C4."""
    guide = " ".join(D.GUIDE_C4.read_text().split())  # one line: phrases may wrap
    alert = _load("alert")
    cfg = D.Story().m.cfg
    assert cfg["update_every_s"] == rules.build_config(alias="L", contacts=["449 111 2233"], c4=["449 910 0000"],
                                                       device_id="X")["update_every_s"]
    minutes = cfg["update_every_s"] // 60
    assert f"repite su ubicación cada {minutes} minutos" in guide and f"cada {minutes} minutos mientras" in guide
    top = cfg["max_alert_s"] // 60
    assert f"durante {top} minutos como máximo" in guide and f"pasan **{top} minutos**" in guide
    assert f"a los **{top} minutos**" in guide
    # the redials: the dial timeout, the pauses and attempts, as the machine does them
    ring = cfg["dial_timeout_s"]
    assert f"cada llamada suena hasta {ring} segundos" in guide
    one = [t for t, _ in D.c4_dials(numbers=1, allow_911=False)]
    gaps = [b - a - ring for a, b in zip(one, one[1:])]
    n = cfg["attempts_per_number"]
    assert len(gaps) == n and gaps[-1] == cfg["cycle_backoff_s"]
    assert f"Hace {n} intentos a cada número del C4 (con {gaps[0]} y {gaps[1]} segundos" in guide
    assert f"al **911** (también {n} intentos)" in guide
    assert f"Después de toda la lista espera {gaps[-1]} segundos" in guide
    assert f"**mismo número** a los {cfg['redial_backoff_s'][0]} segundos" in guide
    window = cfg["callback_window_s"] // 60
    assert f"hasta **{window} minutos** después" in guide and f"durante {window} minutos más" in guide
    assert f"Con {cfg['pin_max_failures']} PIN equivocados" in guide
    assert f"bloqueado {cfg['pin_lockout_s'] // 60} minutos" in guide
    assert f"tras {cfg['pin_max_failures']} errores espere {cfg['pin_lockout_s'] // 60} minutos" in guide
    assert f"(más de {alert.STALE_SLACK_S} segundos antes)" in guide
    radio = (FIRMWARE / "lib" / "radio.py").read_text()
    chars = int(re.search(r"^COMMAND_HEX = (\d+)$", radio, re.M).group(1)) // 4  # UCS2: 4 hex a character
    assert f"lee solo los primeros {chars} caracteres" in guide
    fresh = cfg["fix_fresh_s"]
    assert f"(menos de {fresh} segundos es \"GPS\")" in guide
    assert f"ninguna posición de las últimas {cfg['last_fix_max_s'] // 3600} horas" in guide  # ESTADO
    assert f"posición de más de {cfg['last_fix_max_s'] // 3600} horas" in guide
    assert f"Si nada salió en {cfg['unsent_warn_s']} segundos" in guide
    assert f"cada {cfg['daily_status_s'] // 3600} horas" in guide
    cancel_s = cfg["gesture"].get("cancel_ms", alert.DEFAULTS["gesture"]["cancel_ms"]) // 1000
    assert f"lo mantuvo apretado {cancel_s} segundos" in guide
    # safe mode: ROUNDS through the numbers, RETRY_MS between rounds (safe.py imports hw: read)
    safe = (FIRMWARE / "safe.py").read_text()
    rounds = int(re.search(r"^ROUNDS = (\d+)", safe, re.M).group(1))
    pause = int(re.search(r"^RETRY_MS = (\d+)", safe, re.M).group(1)) // 1000
    assert f"Recorre la lista hasta {rounds} veces, con {pause} segundos entre vueltas" in guide
    register_s = int(re.search(r"^REGISTER_S = (\d+)", safe, re.M).group(1))
    assert f"espera a tener red, hasta {register_s} segundos" in guide
    assert "def _answer" not in safe and "ATA" not in safe  # "en modo seguro el botón no contesta"


def test_what_the_c4_guide_says_of_commands_and_copies_holds():
    """The guide's rules, acted out on the alert machine: who gets C4's copy, what a wrong
    PIN, a stranger, a repeat and the lockout get, and the low-battery SMS going only to her
    contacts."""
    s = D.Story().ev("battery", 86).ev("gesture", "alert")
    assert s.to(D.C4) and not s.to(D.C4_2)  # "solo al primer número del C4"
    assert s.command("UBICACION 000000") == []  # "PIN equivocado: no hay respuesta"
    assert s.command("UBICACION " + D.PIN, sender="+524495556677") == []  # "otro número ... en silencio"
    assert s.command("HOLA " + D.PIN) == []  # "Una palabra que no es comando: sin respuesta"
    assert s.command("Ubicación: " + D.PIN).pop().startswith("UBICACION BS-0042")  # accents, signs
    assert s.command("ubicacion " + D.PIN)  # a right PIN starts the count over
    cfg = s.m.cfg
    for _ in range(cfg["pin_max_failures"]):
        assert s.command("ESTADO 000000") == []
    assert s.command("ESTADO " + D.PIN) == []  # locked: "ni el PIN correcto"
    assert s.command("ESTADO " + D.PIN, sender=D.C4_2)  # "Los demás números del C4 siguen"
    s.wait(cfg["pin_lockout_s"])
    assert s.command("ESTADO " + D.PIN)
    # a repeat while its reply waits is answered once: hold the sends
    m = D.Story().m
    acts = m.handle(("sms_command", D.C4, "ESTADO " + D.PIN), 1000)
    for t in (1100, 1200):
        acts += m.handle(("sms_command", D.C4, "ESTADO " + D.PIN), t)
    sends = [a for a in acts if a[0] == "send_sms"]
    assert len(sends) == 1 and len(m.outbox.items) == 1  # on its way, nothing more queued
    acts = m.handle(("sms_sent", sends[0][3], True), 1300)
    assert [a for a in acts if a[0] == "send_sms"] == [] and m.outbox.items == []
    # low battery: her contacts, never C4
    s = D.Story().ev("battery", 80).ev("battery", 15)
    assert s.to(s.m.contacts[0]) and s.to(D.C4) == []
    assert "ese aviso va **solo a sus contactos** de confianza, no al C4" in D.GUIDE_C4.read_text()
