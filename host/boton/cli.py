"""`boton`: the technician's tool. Every command works on a real port or the virtual device."""
import json
import sys
import tempfile
import threading
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from . import provision as prov
from .device import EXIT_TEST, Device, DeviceError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

PORT_HELP = "Serial port of the board: /dev/ttyUSB0, socket://127.0.0.1:PORT, rfc2217://... (or BOTON_PORT)."


def device_mac(dev) -> str:
    """The chip's eFuse MAC (machine.unique_id() on the ESP32): the registry's key."""
    uid = dev.eval_json("__import__('binascii').hexlify(__import__('hw').unique_id()).decode()")
    return ":".join(uid[i:i + 2] for i in range(0, 12, 2))


def record(action, mac, *args, **kw):
    """Write one step to the registry (created on first use), adding the device if new."""
    from .registry import Registry

    label = kw.pop("label", None)
    with Registry() as reg:
        if reg.get(mac) is None:
            reg.add_device(mac, label=label)
        getattr(reg, action)(mac, *args, **kw)


class BotonGroup(click.Group):
    """Turns our expected failures into one line and a documented exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DeviceError as e:
            err_console.print(f"[bold red]error:[/] {e}", soft_wrap=True)
            sys.exit(e.exit_code)


@click.group(cls=BotonGroup)
@click.version_option(package_name="boton-seguro")
def main():
    """Botón Seguro: flash, deploy, provision and test panic buttons, real or virtual.

    Exit codes: 0 ok, 2 bad input, 3 cannot connect, 4 device error, 5 verify failed,
    6 test call failed, 7 registry conflict (duplicate, wrong state, busy).
    """


# --------------------------------------------------------------------------- sim
@main.command()
@click.option("--flash", "flash_dir", type=click.Path(file_okay=False), default="build/sim-flash",
              show_default=True, help="Folder that holds the virtual board's flash filesystem.")
@click.option("--board", default="tcall_sim800l", show_default=True, help="Board profile from boards/.")
@click.option("--repl", type=click.Choice(["pty", "socket", "rfc2217"]), default="socket", show_default=True,
              help="How the REPL is served; rfc2217 (needs --flash-image) is one URL for esptool "
                   "and mpremote with DTR/RTS auto-reset, like a board's USB port.")
@click.option("--repl-port", type=int, default=0, help="TCP port for --repl socket (0: any free).")
@click.option("--network-log", type=click.Path(dir_okay=False), help="Append every SMS and call as JSON lines.")
@click.option("--nmea", "nmea_file", type=click.Path(exists=True, dir_okay=False),
              help="Replay a captured NMEA log instead of a simulated fix.")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Multiply the simulated parts' delays (0.1 = ten times faster).")
@click.option("--flash-image", type=click.Path(dir_okay=False),
              help="Model the whole SPI flash in this file (created blank): flash it with esptool "
                   "on the printed download URL, MicroPython then mounts its vfs partition.")
def sim(flash_dir, board, repl, repl_port, network_log, nmea_file, time_scale, flash_image):
    """Run a virtual device: firmware on the MicroPython unix port with a simulated
    SIM800, GPS, button and phone network.

    Type `press [SECONDS]`, `reset`, `download` (hold BOOT + reset) or `events` and Enter
    to drive it; Ctrl-C stops it.

    Example: boton sim --network-log net.jsonl   then   mpremote connect <URL> fs ls
    """
    from .sim.rig import VirtualDevice

    try:
        vd = VirtualDevice(flash_dir, board=board, repl=repl, repl_port=repl_port,
                           network_log=network_log, nmea_file=nmea_file, time_scale=time_scale,
                           flash_image=flash_image)
    except ValueError as e:
        raise DeviceError(str(e), 2) from None
    vd.start()
    console.print(f"virtual device running; REPL at [bold]{vd.repl_url}[/]", soft_wrap=True)
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
    vd.watch_network(lambda ev: click.echo("network: " + json.dumps(ev, ensure_ascii=False)))
    if vd.download_url:
        console.print(f"ROM download mode (esptool) at [bold]{vd.download_url}[/]; flash file {vd.flash_image}",
                      soft_wrap=True)
    else:
        console.print(f"flash folder: {vd.flash_dir}", soft_wrap=True)
    try:
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "press":
                vd.press(float(cmd[1]) if len(cmd) > 1 else 2.5)
            elif cmd[0] == "reset":
                vd.hard_reset()
            elif cmd[0] == "download":
                vd.enter_download()
                console.print("in ROM download mode: run esptool, then `reset`")
            elif cmd[0] == "events":
                for ev in vd.events:
                    console.print(json.dumps(ev, ensure_ascii=False), soft_wrap=True)
            elif cmd[0] in ("quit", "exit"):
                break
            else:
                console.print("commands: press [SECONDS], reset, download, events, quit")
        else:
            # stdin closed (run in the background): keep serving until interrupted
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        vd.stop()


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
        table.add_row(*r)
    console.print(table)


# --------------------------------------------------------------------------- flash
@main.command("flash")
@click.option("--port", "ports_", multiple=True, envvar="BOTON_PORT",
              help=PORT_HELP + " Repeat to flash several boards in parallel.")
@click.option("--firmware", type=click.Path(exists=True, dir_okay=False),
              help="MicroPython .bin for the ESP32 (default: the newest in the firmware cache).")
@click.option("--virtual-firmware", is_flag=True,
              help="Flash the virtual device's stand-in for MicroPython (socket:// ports only).")
@click.option("--force", is_flag=True, help="Write even if the same firmware is already there.")
@click.option("--no-stub", is_flag=True, help="Use the ROM loader only (slower; for troublesome boards).")
def flash_cmd(ports_, firmware, virtual_firmware, force, no_stub):
    """MicroPython onto the board with esptool: detect the chip, erase, write at 0x1000,
    verify. Skipped when the same firmware is already there. Hold BOOT if it asks.

    Example: boton flash --port /dev/ttyUSB0 --firmware ESP32_GENERIC-v1.26.1.bin
    """
    import concurrent.futures

    from . import flash as fl
    from .device import resolve_port
    from .image import virtual_firmware as make_virtual

    targets = list(ports_) or [resolve_port(None)]
    if virtual_firmware:
        if not all(p.startswith("socket://") for p in targets):
            raise DeviceError("the virtual firmware does not boot a real board: give --firmware", 2)
        firmware = Path(tempfile.gettempdir()) / "boton-virtual-firmware.bin"
        firmware.write_bytes(make_virtual())
    if not firmware:
        firmware = fl.cached_firmware()
    stub = False if no_stub else None

    def one(port):
        res = fl.flash(port, Path(firmware), force=force, stub=stub,
                       progress=lambda msg: console.print(msg, soft_wrap=True))
        record("record_flash", res["mac"], fl.size_bytes(res["flash_size"]), res["sha256"])
        return port, res

    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(targets)) as pool:
        for fut in [pool.submit(one, p) for p in targets]:
            try:
                port, res = fut.result()
                console.print(f"{port}: {'already flashed' if res['skipped'] else 'flashed and verified'} "
                              f"({res['mac']}, {res['flash_size']})", soft_wrap=True)
            except DeviceError as e:
                failures.append(e)
                err_console.print(f"[bold red]error:[/] {e}", soft_wrap=True)
    if failures:
        sys.exit(max(e.exit_code for e in failures))


# --------------------------------------------------------------------------- deploy
@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--board", default="tcall_sim800l", show_default=True, help="Board profile from boards/.")
def deploy(port, board):
    """Copy the firmware onto a board with mpremote: only files whose hash differs,
    each verified by the device's own SHA-256.

    Example: boton deploy --port /dev/ttyUSB0 --board tcall_sim800l
    """
    from rich.progress import Progress

    with Device(port) as dev, Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("deploying", total=len(prov.firmware_files(board)))
        copied, total = prov.deploy(dev, board, progress=lambda path: bar.update(task, advance=1,
                                                                                    description=path))
        mac = device_mac(dev)
    record("record_deploy", mac, prov.release_hash(board))
    if copied:
        console.print(f"deployed {len(copied)} of {total} files: {', '.join(copied)}")
    else:
        console.print(f"firmware already up to date ({total} files)")


# --------------------------------------------------------------------------- provision
@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--alias", required=True, help="Short name she chose (not her full name), GSM-7 letters.")
@click.option("--contact", "contacts", multiple=True, required=True,
              help="Trusted contact's number (1 to 5; repeat the option). Mexican numbers by default.")
@click.option("--c4", "c4", multiple=True, required=True, help="C4 number to call (first is primary).")
@click.option("--device-id", default=None, help="Short device label, e.g. BS-0042 (default: from the chip id).")
@click.option("--pin", default=None, help="PIN for SMS commands (default: a random 6-digit PIN).")
@click.option("--gesture", type=click.Choice(["hold", "presses"]), default="hold", show_default=True)
@click.option("--hold-ms", type=int, default=2000, show_default=True)
@click.option("--allow-911", is_flag=True, help="Dial 911 as the last resort if no C4 number answers.")
@click.option("--programme-number", envvar="BOTON_PROGRAMME_NUMBER",
              help="Number that receives each device's silent daily status SMS (supervision).")
def provision(port, alias, contacts, c4, device_id, pin, gesture, hold_ms, allow_911, programme_number):
    """Write her configuration to the device atomically, read it back and compare.

    Example: boton provision --port /dev/ttyUSB0 --alias Luna --contact 449 111 2233 --c4 449 910 0000
    """
    # Validate everything before touching the device: bad input changes nothing.
    config = prov.build_config(alias=alias, contacts=list(contacts), c4=list(c4), device_id=device_id or "",
                               pin=pin, gesture=gesture, hold_ms=hold_ms, allow_911=allow_911,
                               programme_number=programme_number)
    with Device(port, timeout=30) as dev:
        ident = prov.identity(dev)
        if not ident.get("modem"):
            raise DeviceError("the modem does not answer: check its power (2 A peaks) and wiring", 4)
        if not ident.get("registered"):
            raise DeviceError(f"no network: the SIM is not registered (operator {ident.get('operator')!r}, "
                              f"signal {ident.get('rssi')}); check the SIM, its credit and 2G coverage", 4)
        if not device_id:
            device_id = config["device_id"] = "BS-" + ident["uid"][-4:].upper()
        digest = prov.write_config(dev, config)
    mac = ":".join(ident["uid"][i:i + 2] for i in range(0, 12, 2))
    record("record_provision", mac, digest, imei=ident.get("imei"), iccid=ident.get("iccid"), label=device_id)
    console.print(f"provisioned {device_id} ({mac}): {len(config['contacts'])} contact(s), "
                  f"{len(config['c4_numbers'])} C4 number(s), gesture {gesture}; config {digest[:12]} verified; "
                  f"network {ident.get('operator')}, signal {ident.get('rssi')}/31")
    if pin is None:
        console.print(f"SMS command PIN for C4: [bold]{config['pin']}[/] (shown once; not stored on this computer)")


# --------------------------------------------------------------------------- test-call
@main.command("test-call")
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--timeout", type=click.IntRange(5, 900), default=120, show_default=True,
              help="Seconds the device waits for C4 to answer and the SMS to be accepted.")
def test_call(port, timeout):
    """The delivery-day test: fire a TEST alert (SMS marked PRUEBA, real call to C4) and
    report the outcome from the device's own log.

    Example: boton test-call --port /dev/ttyUSB0
    """
    seen = []

    def consume(b):
        seen.append(b)

    # The device gives up after --timeout; the link allows for its boot and modem start on top.
    with Device(port, timeout=timeout + 60) as dev:
        mac = device_mac(dev)
        out = dev.exec(f"import app\napp.test_call({int(timeout)})", consumer=consume)
        text = b"".join(seen).decode(errors="replace") + out.decode(errors="replace")
    events = [line.split()[1:] for line in text.splitlines() if line.startswith("EV ")]
    names = [e[0] for e in events if e]
    sms_ok = names.count("sms_ok")
    answered = "call_active" in names
    result = "ok" if sms_ok and answered and "test_result" in names else "failed"
    console.print(f"test call: SMS accepted {sms_ok}, C4 call answered: {'yes' if answered else 'no'} -> {result}")
    record("record_test_call", mac, result == "ok", f"sms {sms_ok}, answered {answered}")
    if result != "ok":
        raise DeviceError("test call failed: " + ", ".join(names[-6:]), EXIT_TEST)


# --------------------------------------------------------------------------- wipe
@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--keep-log", is_flag=True, help="Keep the device's event log (e.g. for an investigation).")
def wipe(port, keep_log):
    """Erase her data from a returned device: configuration, alert state and (unless
    --keep-log) the event log; checked afterwards, then recorded in the registry.

    Example: boton wipe --port /dev/ttyUSB0
    """
    with Device(port) as dev:
        mac = device_mac(dev)
        gone = prov.wipe(dev, keep_log=keep_log)
    from .registry import Registry

    with Registry() as reg:
        if reg.get(mac) is not None and reg.get(mac).state == "returned":
            reg.record_wipe(mac)
    console.print(f"wiped {mac}: removed {', '.join(gone) if gone else 'nothing (already clean)'}")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="build/mpy", show_default=True)
def build(out_dir):
    """Cross-compile the firmware to .mpy with mpy-cross (what deploy copies).

    Example: boton build --out build/mpy
    """
    from .build import write_tree

    total = write_tree(Path(out_dir))
    console.print(f"firmware built into {out_dir}: {total} bytes")


# --------------------------------------------------------------------------- status / logs
@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def status(port, as_json):
    """Firmware version, config hash, battery, signal, GPS and the last alerts.

    Example: boton status --port /dev/ttyUSB0 --json
    """
    with Device(port, timeout=30) as dev:
        out = dev.exec("import service\nservice.status()")
    info = json.loads(out.decode().strip().splitlines()[-1])
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    table = Table(show_header=False)
    for k in ("fw", "board", "config_sha256", "modem", "registered", "operator", "rssi", "battery",
              "gps_sentences", "gps_fix", "log_entries"):
        table.add_row(k, str(info.get(k)))
    console.print(table)
    for line in info.get("last_events", []):
        console.print("  " + line, soft_wrap=True)


@main.command()
@click.option("--port", envvar="BOTON_PORT", help=PORT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the entries and the check as JSON.")
def logs(port, as_json):
    """The device's event log, with its hash chain checked (exit 5 if altered).

    Example: boton logs --port /dev/ttyUSB0
    """
    with Device(port) as dev:
        lines = prov.read_event_log(dev)
    ok, why = prov.verify_event_log(lines)
    if as_json:
        click.echo(json.dumps({"intact": ok, "check": why, "entries": lines}, indent=2))
    else:
        for line in lines:
            click.echo(line)
        console.print(f"[bold]{'intact' if ok else 'ALTERED'}[/]: {why}")
    if not ok:
        raise DeviceError(f"event log check failed: {why}", 5)


# --------------------------------------------------------------------------- demo
@main.command()
@click.option("--time-scale", type=float, default=0.3, show_default=True)
@click.option("--keep", is_flag=True, help="Keep the virtual flash folder and logs.")
def demo(time_scale, keep):
    """The whole alert path on a virtual device: deploy, provision, press, and show what
    the phone network saw."""
    from .demo import run_demo

    ok = run_demo(console, time_scale=time_scale, keep=keep)
    sys.exit(0 if ok else 1)


@main.command()
@click.argument("log", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def nmea(log, as_json):
    """Run the firmware's own NMEA parser (on MicroPython) over a captured GPS log and
    print every fix and a summary, to check a GPS module's output.

    Example: boton nmea capture.log --json
    """
    from .nmea_report import analyse, render_text

    result = analyse(log)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(render_text(result))


# Command groups that live in their own modules.
from .cli_image import image_cmd  # noqa: E402
from .cli_registry import devices, registry  # noqa: E402

main.add_command(devices)
main.add_command(registry)
main.add_command(image_cmd)
