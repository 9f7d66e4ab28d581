"""`boton sim`: the virtual device as a tester drives it (the rehearsal rig's console),
and what it says of its simulated modem, GPS and phone network."""
import json
import re
import sys
import threading

import click
from rich.console import Console
from rich.markup import escape

from . import rules
from .cli_output import board_checked
from .errors import EXIT_USAGE, DeviceError

console = Console(highlight=False)


@click.command()
@click.option("--flash", "flash_dir", type=click.Path(file_okay=False), default="build/sim-flash",
              show_default=True, help="Folder that holds the virtual board's flash filesystem.")
@click.option("--board", default="tcall_sim800l_axp192", show_default=True, callback=board_checked,
              help="Board profile from boards/.")
@click.option("--repl", type=click.Choice(["pty", "socket", "rfc2217"]), default="socket", show_default=True,
              help="How the REPL is served; rfc2217 (needs --flash-image) is one URL for esptool "
                   "and mpremote with DTR/RTS auto-reset, like a board's USB port.")
@click.option("--repl-port", type=click.IntRange(0, 65535), default=0,
              help="TCP port for --repl socket (0: any free).")
@click.option("--network-log", type=click.Path(dir_okay=False), help="Append every SMS and call as JSON lines.")
@click.option("--nmea", "nmea_file", type=click.Path(exists=True, dir_okay=False),
              help="Replay a captured NMEA log instead of a simulated fix.")
@click.option("--time-scale", type=float, default=1.0, show_default=True, callback=lambda c, p, v: positive_time_scale(v),
              help="Multiply the simulated parts' delays (0.1 = ten times faster).")
@click.option("--flash-image", type=click.Path(dir_okay=False),
              help="Model the whole SPI flash in this file (created blank): flash it with esptool "
                   "on the printed download URL, MicroPython then mounts its vfs partition.")
@click.option("--phone", "phones", multiple=True, metavar="NUMBER=BEHAVIOUR[:SECONDS]",
              callback=lambda ctx, param, value: _phone_scripts(value),
              help="Script what the phone NUMBER does when called (repeatable): answer, busy, "
                   "no_answer, reject or unreachable; SECONDS is how long it rings before it "
                   "answers or rejects. Any other valid number answers.")
@click.option("--c4-stay", type=click.FloatRange(0, min_open=True), default=None, metavar="SECONDS",
              help="C4 (and any other phone that answers) hangs up after SECONDS on the line "
                   "[default: it stays until the device hangs up].")
@click.option("--volte/--no-volte", default=None,
              help="A7670 boards: the SIM and operator do (or do not) carry voice over LTE "
                   "[default: they do].")
@click.option("--2g/--no-2g", "gsm", default=None,
              help="A7670 boards: the network here still has (or no longer has) 2G to fall back "
                   "to [default: it has]. --no-volte --no-2g rehearses an SMS-only SIM.")
@click.option("--modem-revision", "gmr", default=None, metavar="REVISION", callback=lambda ctx, param, value:
              _modem_revision(value),
              help="A7670 boards: the module firmware's revision (AT+CGMR) [default: A011B07A7670M7]. "
                   "A110B01A7670M7_F rehearses a module firmware that drops every LTE call.")
@click.option("--lte-calls-drop", "lte_calls_drop", is_flag=True,
              help="A7670 boards: every call on LTE ends before it rings, whatever the module "
                   "firmware (VoLTE failing silently); the button falls back to 2G if there is some.")
@click.option("--gps-start", type=click.Choice(["cold", "warm", "hot"]), default=None,
              help="How the GPS receiver starts at power-on [default: cold, as a button from stock: "
                   "its first fix after the receiver's datasheet time, 27 s on a NEO-6M, 30 s on an "
                   "L76K]; hot: as if it had a fix minutes ago (1 s on a NEO-6M).")
@click.option("--gps-ttff", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="The receiver's time to first fix when it starts cold or warm, instead of its "
                   "datasheet's (e.g. 300 for a sky seen through a window).")
@click.option("--ticks-wrap-in", "wrap_in", type=click.FloatRange(0, 2 ** 30 / 1000), default=None, metavar="SECONDS",
              help="Start the chip SECONDS before its time.ticks_ms() wraps (every 12.4 days on an "
                   "ESP32), as a button on for 12 days: rehearses a wrap during the boot or her alert "
                   "(32-bit build; needs Linux time namespaces).")
def sim(flash_dir, board, repl, repl_port, network_log, nmea_file, time_scale, flash_image,
        phones, c4_stay, volte, gsm, gmr, lte_calls_drop, gps_start, gps_ttff, wrap_in):
    """Run a virtual device: firmware on the MicroPython unix port with a simulated
    modem (the board profile's: SIM800, or A7670 on ta7670x_a7670sa), GPS, button and
    phone network.

    The network answers every valid number (such as the programme's real C4 number) with a
    simulated phone, unless --phone scripts it otherwise; each phone it makes up or is
    scripted shows as a "phone" event.

    Type a command and Enter to drive it: `press [SECONDS]`, `sms TEXT` (C4 texts the
    button), `coverage on|off`, `reset`, `download` (hold BOOT + reset), `events` or
    `quit`; Ctrl-C stops it too.

    Example: boton sim --network-log net.jsonl   then   boton status --port <URL>

    Rehearse a busy C4: boton sim --phone "+52 449 994 6605=busy" --c4-stay 60

    Rehearse a SIM without VoLTE where 2G is gone (provision must refuse it):
    boton sim --board ta7670x_a7670sa --no-volte --no-2g

    Rehearse a button on for 12.4 days whose clock wraps a minute in: boton sim --ticks-wrap-in 60

    The GPS starts cold, as a real receiver from stock: a press before its first fix
    texts her contacts without a position (the serving cell), and an ACTUALIZACION with the
    maps link follows the fix. Rehearse a button that had a fix minutes ago:
    boton sim --gps-start hot
    """
    from .boards import load_board
    from .sim.chipclock import TICKS_PERIOD
    from .sim.rig import DEFAULT_DEVICE_NUMBER, RigError, VirtualDevice

    if DEFAULT_DEVICE_NUMBER in phones:
        raise click.BadParameter(f"{rules.mask(DEFAULT_DEVICE_NUMBER)} is the virtual device's own "
                                 f"number", param_hint="'--phone'")
    modem_options = _modem_options(load_board(board), board, volte=volte, gsm=gsm, gmr=gmr,
                                   lte_calls_drop=lte_calls_drop or None)
    if nmea_file and (gps_start or gps_ttff is not None):
        raise click.BadParameter("a replayed log has its own fixes: --nmea takes no --gps-start or --gps-ttff",
                                 param_hint="'--nmea'")
    try:
        vd = VirtualDevice(flash_dir, board=board, repl=repl, repl_port=repl_port,
                           gps_start=gps_start or "cold", gps_ttff_s=gps_ttff,
                           network_log=network_log, nmea_file=nmea_file, time_scale=time_scale,
                           flash_image=flash_image, phones=phones, c4_hangup_after_s=c4_stay,
                           modem_options=modem_options,
                           uptime_s=None if wrap_in is None else TICKS_PERIOD / 1000 - wrap_in)
    except ValueError as e:
        raise DeviceError(str(e), EXIT_USAGE) from None
    except RuntimeError as e:  # no time namespace for the chip's clock
        raise DeviceError(str(e), EXIT_USAGE) from None
    if repl == "rfc2217" and not flash_image:
        raise click.BadParameter("the rfc2217 port models a board's USB port: it needs --flash-image",
                                 param_hint="'--repl'")
    try:
        vd.start()
    except RigError as e:   # a port taken, a log's folder missing: said, no traceback
        where = f" (--repl-port {repl_port})" if repl_port else ""
        raise DeviceError(f"{e}{where}", EXIT_USAGE) from None
    console.print(f"virtual device running; REPL at [bold]{escape(vd.repl_url)}[/]", soft_wrap=True)
    console.print(f"firmware runs on: {vd.interpreter.label}", soft_wrap=True)
    console.print(f"modem: {_modem_line(vd.modem_family, modem_options)}", soft_wrap=True)
    console.print(f"GPS: {_gps_line(vd, nmea_file)}", soft_wrap=True, markup=False)
    if wrap_in is not None:
        console.print(f"chip clock: time.ticks_ms() wraps {wrap_in:g} s after start"
                      + ("" if vd.interpreter.chip else " (on this 64-bit port ticks wrap at 2**62: "
                         "the count is set, but it does not wrap)"), soft_wrap=True)
    for line in _phone_network_lines(vd, phones, c4_stay):
        console.print(line, soft_wrap=True)
    # What a tester watches: the device's log lines and the phone network, as they happen.
    pending = bytearray()

    def device_lines(data):
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            if line.startswith(b"EV "):
                click.echo("device: " + line.decode(errors="replace").rstrip())

    vd.watch_console(device_lines)

    def network_line(ev):
        click.echo("network: " + json.dumps(_on_screen(ev), ensure_ascii=False))

    def watch_network():  # on the rig's loop: no event between the replay and the subscribe
        for ev in list(vd.network.events):  # the scripted phones, recorded as the rig started
            network_line(ev)
        vd.network.subscribe(network_line)

    vd.call(watch_network)
    if vd.download_url:
        console.print(f"ROM download mode at [bold]{escape(vd.download_url)}[/] (`boton flash "
                      f"--virtual-firmware`, or esptool with --no-stub); flash file {escape(str(vd.flash_image))}",
                      soft_wrap=True)
    else:
        console.print(f"flash folder: {vd.flash_dir}", soft_wrap=True, markup=False)
    try:
        for line in sys.stdin:
            try:
                if not _sim_command(vd, line):
                    break
            except ValueError as e:
                console.print(f"{e}; {SIM_COMMANDS}", soft_wrap=True, markup=False)
        else:
            # stdin closed (run in the background): keep serving until interrupted
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        vd.stop()


def positive_time_scale(value):
    """--time-scale as given, or click's one-line usage error: a delay multiplied by 0, a
    negative number, nan or inf is no time at all or never ends."""
    import math

    if not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value:g} is not a positive finite number (e.g. 1, or 0.1 for "
                                 "ten times faster)", param_hint="'--time-scale'")
    return value


SIM_COMMANDS = ("commands: press [SECONDS], sms TEXT (C4 texts the button), coverage on|off, "
                "reset, download, events, quit")


def _sim_command(vd, line):
    """One line a tester typed into `boton sim`; False to quit. ValueError: what was wrong."""
    cmd = line.split()
    if not cmd:
        return True
    word, args = cmd[0].lower(), cmd[1:]
    if word == "press":
        try:
            hold = float(args[0]) if args else 2.5
        except ValueError:
            raise ValueError(f"press takes seconds, not {args[0]!r}") from None
        if not 0 < hold <= 60:
            raise ValueError(f"press {args[0]}: hold 0 to 60 seconds")
        vd.press(hold)
    elif word == "sms":
        text = line.strip()[len(cmd[0]):].strip()
        if not text:
            raise ValueError("sms needs the text C4 sends, e.g. sms UBICACION 4821")
        # the SMSC holds it while the button is out of reach (coverage off): it comes later
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, text)
    elif word == "coverage":
        if args not in (["on"], ["off"]):
            raise ValueError("coverage takes on or off")
        vd.call(vd.network.set_coverage, args[0] == "on")
    elif word == "reset":
        vd.hard_reset()
    elif word == "download":
        vd.enter_download()
        console.print("in ROM download mode: run `boton flash` (or esptool --no-stub), then `reset`")
    elif word == "events":
        for ev in vd.events:
            console.print(json.dumps(_on_screen(ev), ensure_ascii=False), soft_wrap=True, markup=False)
    elif word in ("quit", "exit"):
        return False
    else:
        raise ValueError(f"unknown command {cmd[0]!r}")
    return True


# The rehearsal flags of `boton sim` -> the A7670 simulator's constructor options.
A7670_FLAGS = (("volte", "--volte/--no-volte"), ("gsm", "--2g/--no-2g"), ("gmr", "--modem-revision"),
               ("lte_calls_drop", "--lte-calls-drop"))


def _modem_options(profile, board, **flags):
    """The rig's modem_options for the flags given (None: not given, the simulator's
    default); a flag on a board whose modem has no such choice is refused by name."""
    family = profile["modem"].get("family", "sim800")
    given = {k: v for k, v in flags.items() if v is not None}
    if given and family != "a7670":
        names = " and ".join(flag for k, flag in A7670_FLAGS if k in given)
        raise DeviceError(f"{names}: board {board} has a {family.upper()} (2G only, no VoLTE): these "
                          "rehearse an A7670 board, e.g. --board ta7670x_a7670sa", EXIT_USAGE)
    return given


def _modem_revision(value):
    """--modem-revision as AT+CGMR would print it: letters, digits, '_' and '.' only."""
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_.]{1,40}", value):
        raise click.BadParameter("a module firmware revision is 1-40 letters, digits, '_' or '.', "
                                 "as AT+CGMR prints it, e.g. A011B07A7670M7", param_hint="'--modem-revision'")
    return value


def _modem_line(family, options):
    """What the simulated modem and its network offer, for the technician."""
    if family != "a7670":
        return f"{family.upper()} (2G: GSM voice and SMS)"
    volte, gsm = options.get("volte", True), options.get("gsm", True)
    voice = ("VoLTE" if volte else "") + (" and " if volte and gsm else "") + ("2G fallback" if gsm else "")
    revision = f"module firmware {options['gmr']}; " if options.get("gmr") else ""
    revision += "calls on LTE end before ringing; " if options.get("lte_calls_drop") else ""
    return (f"A7670 ({revision}LTE{', 2G' if gsm else ', no 2G here'}; SIM "
            f"{'with' if volte else 'without'} VoLTE): "
            + (f"voice by {voice}" if voice else "SMS only, NO VOICE (provision refuses it)"))


def _gps_line(vd, nmea_file=None):
    """How the simulated receiver started, for the technician."""
    if nmea_file:
        return f"replays {nmea_file}"
    mode, ttff = vd.call(lambda: (vd.gps.mode, vd.gps.ttff_s))
    scaled = f" ({ttff * vd.time_scale:g} s at --time-scale {vd.time_scale:g})" if vd.time_scale != 1 else ""
    return (f"{vd.gps_receiver}, {mode} start: first fix {ttff:g} s after power-on{scaled}; "
            f"her alert does not wait for it")


def _phone_scripts(values):
    """--phone NUMBER=BEHAVIOUR[:SECONDS] values -> {E.164: script for the rig's network}."""
    from .sim.network import BEHAVIOURS, RINGING_BEHAVIOURS

    scripts = {}
    for value in values:
        number, sep, spec = value.rpartition("=")
        if not sep or not number.strip() or not spec.strip():
            raise click.BadParameter(f"{rules.mask(value)!r} is not NUMBER=BEHAVIOUR[:SECONDS], "
                                     f"e.g. \"+52 449 994 6605=busy\"", param_hint="'--phone'")
        behaviour, _, seconds = spec.strip().lower().replace("-", "_").partition(":")
        if behaviour not in BEHAVIOURS:
            raise click.BadParameter(f"behaviour {behaviour!r} for {rules.mask(number.strip())}: "
                                     f"use one of {', '.join(BEHAVIOURS)}", param_hint="'--phone'")
        try:
            e164 = rules.normalise_number(number.strip(), "--phone number")
        except DeviceError as e:
            raise click.BadParameter(str(e), param_hint="'--phone'") from None
        if e164 in scripts:
            raise click.BadParameter(f"{rules.mask(e164)} is scripted twice", param_hint="'--phone'")
        script = {"behaviour": behaviour}
        if seconds:
            if behaviour not in RINGING_BEHAVIOURS:
                raise click.BadParameter(f"{behaviour} for {rules.mask(e164)} takes no ring time "
                                         f"(only answer and reject ring first)", param_hint="'--phone'")
            try:
                ring_s = float(seconds)
            except ValueError:
                ring_s = None
            if ring_s is None or not 0 <= ring_s <= 300:  # also refuses nan and inf
                raise click.BadParameter(f"ring time {seconds!r} for {rules.mask(e164)}: give "
                                         f"0 to 300 seconds", param_hint="'--phone'")
            script["answer_after_s"] = ring_s
        scripts[e164] = script
    return scripts


# A rehearsal uses her contacts' real numbers: the window (watched, recorded, pasted into
# a ticket) shows them masked, as every screen of the tool does; --network-log keeps them
# whole, readable by its owner only. Service numbers (911, 112: four digits at most) are
# nobody's: shown, so that a rehearsal of the 911 fallback shows 911 reached.
NUMBER_FIELDS = ("from", "to", "number")


def _on_screen(ev):
    return {k: rules.mask(v) if k in NUMBER_FIELDS and isinstance(v, str) and len(v) > 4 else v
            for k, v in ev.items()}


def _phone_network_lines(vd, phones, c4_stay):
    """What the simulated network will do, for the technician (numbers masked)."""
    stay = f"hangs up after {c4_stay:g} s" if c4_stay else "stays until the device hangs up"
    lines = []
    for number, script in phones.items():
        how = script["behaviour"]
        if "answer_after_s" in script:
            how += f" after {script['answer_after_s']:g} s ringing"
        lines.append(f"phone network: {rules.mask(number)} is scripted: {how}")
    lines.append(f"phone network: any other valid number answers after "
                 f"{vd.network.auto_answer_after_s:g} s and {stay}; built-in C4 "
                 f"{', '.join(rules.mask(n) for n in vd.c4_numbers)}, contact "
                 f"{', '.join(rules.mask(n) for n in vd.contacts)}")
    return lines
