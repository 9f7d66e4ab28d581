"""`boton image`: one factory image per device (MicroPython + LittleFS with the firmware
and her configuration), flashed with a single esptool write.

Registered by cli.py with `main.add_command(image_cmd)`.
"""
import difflib
import json
import os
import stat
from pathlib import Path

import click
from rich.console import Console

from . import image as img
from . import pin as pins
from . import rules
from .boards import load_board
from .cli_output import board_checked, daily_status_line, programme_number_option, warn_if_exposed
from .errors import EXIT_VERIFY, DeviceError, InputError, RegistryConflict, RegistryError
from .registry_fields import normalise_label
from .registry_paths import expand_home
from .safe_write import check_target, write_file

console = Console(highlight=False)

DEVICE_ID_HELP = ("The button's registry label, e.g. BS-0042 (required: there is no chip to read it from); "
                  "at most 12 letters, digits and dashes, all of which her alert SMS show.")


# What a config file may hold: what build_config writes (a config kept from a device) and a
# plain "pin". A key spelt wrong ("allow911", "programe_number", gesture "hold") was ignored:
# an image without 911, without daily reports or with the default hold, built without a word.
CONFIG_KEYS = ("schema", "device_id", "alias", "c4_numbers", "contacts", "pin", "pin_hash",
               "country_code", "allow_911", "gesture", "vibrate", "update_every_s", "max_alert_s",
               "programme_number", "callback_window_s")
GESTURE_KEYS = ("mode", "hold_ms", "count", "window_ms")


def _unknown_keys(path, keys, known, where=""):
    """InputError naming the first key that is not one of `known` (and the one meant)."""
    for key in keys:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f"; known: {', '.join(known)}"
            raise InputError(f"{path}: unknown setting {where}{rules.echo(key)}{hint}")


def config_from_file(path, obtain_pin=None) -> dict:
    """Her configuration from a JSON file in the device's schema, validated and normalised
    exactly as `provision` would build it (numbers to E.164, PIN, gesture limits). Its
    PIN: the file's pin_hash (a config kept from a device) or plain "pin" (hashed here),
    else obtain_pin() (None: a random one)."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError(f"cannot read config file {path}: {e.strerror}") from None
    except ValueError as e:
        raise InputError(f"cannot read config file {path}: {e}") from None
    except RecursionError:    # nested deeper than Python's parser goes: no config either
        raise InputError(f"cannot read config file {path}: not valid JSON (nested too deeply)") from None
    if not isinstance(raw, dict) or raw.get("schema") != rules.CONFIG_SCHEMA:
        raise InputError(f"{path} is not a device config (schema {rules.CONFIG_SCHEMA})")
    _unknown_keys(path, raw, CONFIG_KEYS)
    g = raw.get("gesture")
    if g is None:
        g = {}
    if not isinstance(g, dict):
        raise InputError(f"{path}: gesture must be an object such as {{\"mode\": \"hold\", "
                         f"\"hold_ms\": 2000}}, got {rules.echo(g)}")
    _unknown_keys(path, g, GESTURE_KEYS, "gesture.")
    for key in ("contacts", "c4_numbers"):
        if not isinstance(raw.get(key) or [], list) or not all(isinstance(n, str) for n in raw.get(key) or []):
            raise InputError(f"{path}: {key} must be a list of phone numbers written as text "
                             "(\"449 111 2233\")")
    for key in ("alias", "device_id", "pin", "pin_hash", "programme_number"):
        if raw.get(key) is not None and not isinstance(raw[key], str):   # her PIN, alias or a number:
            raise InputError(f"{path}: {key} must be text in quotes, got {_json_kind(raw[key])}")  # not shown
    pin, pin_hash = raw.get("pin") or None, raw.get("pin_hash") or None
    if pin is None and pin_hash is None and obtain_pin is not None:
        pin = obtain_pin()
    try:
        return rules.build_config(
            alias=raw.get("alias"), contacts=list(raw.get("contacts") or []),
            c4=list(raw.get("c4_numbers") or []), device_id=raw.get("device_id") or "",
            pin=pin, pin_hash=pin_hash, allow_911=raw.get("allow_911", False),
            gesture=g.get("mode", "hold"), hold_ms=g.get("hold_ms", 2000), presses=g.get("count", 3),
            window_ms=g.get("window_ms", 2000), update_every_s=raw.get("update_every_s", 300),
            max_alert_s=raw.get("max_alert_s", 3600), confirm=raw.get("vibrate", True),
            programme_number=raw.get("programme_number") or None,
            callback_window_s=raw.get("callback_window_s"))
    except TypeError as e:
        raise InputError(f"{path}: {e}") from None


def _json_kind(value) -> str:
    """What a JSON value is, said instead of the value."""
    if isinstance(value, bool):
        return "true or false"
    return {int: "a number", float: "a number", list: "a list", dict: "an object"}[type(value)]


def check_device_id(device_id, unregistered):
    """The label the configuration carries: a new label's rules for an image of no registered
    button (her SMS show it whole); any label a registry holds for a registered one (the
    registry refuses one too long to go on a button, saying how to relabel it)."""
    if not device_id:
        raise InputError("give --device-id (e.g. BS-0042)")
    return normalise_label(device_id, new=unregistered)


def check_build_inputs(board, firmware_path, placeholder, flash_size) -> int:
    """The flash size in bytes, once board and firmware options are valid (before the
    registry is opened: bad input changes nothing)."""
    profile = load_board(board)
    if profile.get("chip", "esp32") != img.CHIP:
        raise InputError(f"board {board} is a {profile.get('chip')}: images are for ESP32 only")
    size = img.parse_flash_size(flash_size or profile.get("flash_size", "4MB"))
    if firmware_path and placeholder:
        raise InputError("give --firmware or --placeholder-firmware, not both")
    if not firmware_path and not placeholder:
        raise InputError("give --firmware <MicroPython ESP32 .bin> (the file written at 0x1000)")
    if firmware_path:
        check_input_file(firmware_path, "firmware file")
    return size


def check_input_file(path, what):
    """InputError unless `path` is a file this user may look at: named, with the OS's
    reason (a folder they may not enter), never a traceback; a pipe or a device (read
    forever) is no file."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        raise InputError(f"no {what} {path}") from None
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from None
    if not regular:
        raise InputError(f"{what} {path} is not a file")


def build(board, config, firmware_path, placeholder, flash_size):
    """(image bytes, report dict). Validates everything before building."""
    size = check_build_inputs(board, firmware_path, placeholder, flash_size)
    if firmware_path:
        firmware = Path(firmware_path).read_bytes()
    else:
        firmware = img.placeholder_firmware(size)
    layout = img.layout_of_firmware(firmware, size)
    files = img.device_files(board, config)
    image = img.build_image(firmware, files, size, layout=layout)

    # Read the filesystem back out of the finished image before anyone flashes it.
    fs = img.extract_filesystem(image, size)
    if img.read_filesystem(fs, layout.block_count) != dict(files):
        raise DeviceError("the filesystem read back from the image differs from its files", EXIT_VERIFY)
    cfg = rules.config_bytes(config)
    report = {
        "board": board,
        "chip": img.CHIP,
        "flash_size": size,
        "flash_size_name": img.flash_size_name(size),
        "image_size": len(image),
        "write_offset": img.IMAGE_OFFSET,
        "firmware": {"offset": img.BOOTLOADER_OFFSET, "size": len(firmware),
                     "path": str(firmware_path) if firmware_path else None,
                     "placeholder": img.is_placeholder(firmware)},
        "partition_table": {"offset": img.PARTITION_TABLE_OFFSET,
                            "partitions": layout.as_dict()["partitions"]},
        "vfs": {"offset": layout.vfs_offset, "size": layout.vfs_size, "block_size": img.BLOCK_SIZE,
                "block_count": layout.block_count, "source": layout.vfs_source,
                "used_blocks": img.filesystem_usage(fs, layout.block_count),
                "files": len(files), "bytes": sum(len(d) for _, d in files)},
        "device_id": config["device_id"],
        "config_sha256": rules.config_hash(cfg),
        "contacts": len(config["contacts"]),
        "c4_numbers": len(config["c4_numbers"]),
    }
    return image, report


def write_atomic(path: Path, data: bytes, force=False):
    """Write an image readable by its owner only (it holds her numbers): the file is
    created 0600, never open to others even for a moment; a leftover .tmp is replaced and
    removed whatever stops the write (Ctrl-C too). An existing file is replaced only with
    force; the registry, its key or a backup never (safe_write)."""
    write_file(path, data, force=force, private=True, what="the image",
               tmp=path.with_name(path.name + ".tmp"))


@click.command("image")
@click.option("--board", default="tcall_sim800l_axp192", show_default=True, callback=board_checked,
              help="Board profile from boards/.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Her configuration as JSON in the device's schema (instead of --alias/--contact/...).")
@click.option("--alias", help="Short name she chose (not her full name), GSM-7 letters. Taken from her "
                              "case when the button has one.")
@click.option("--contact", "contacts", multiple=True,
              help="Trusted contact's number (1 to 5; repeat the option). Mexican numbers by default. "
                   "Taken from her case when the button has one.")
@click.option("--c4", "c4", multiple=True, help="C4 number to call (first is primary).")
@click.option("--device-id", default=None, help=DEVICE_ID_HELP)
@click.option("--unregistered", is_flag=True,
              help="The image is for no button in the registry (a bench or demo board): nothing is "
                   "recorded against a button (the audit trail says an image was made, if a registry "
                   "exists); refused if the device id is a registered label.")
@pins.pin_options
@click.option("--gesture", type=click.Choice(rules.GESTURES), default="hold", show_default=True)
@click.option("--hold-ms", type=int, default=rules.DEFAULT_HOLD_MS, show_default=True)
@click.option("--allow-911", is_flag=True, help="Dial 911 as the last resort if no C4 number answers.")
@click.option("--callback-window-s", type=int, default=None,
              help="How long after her alert (seconds, 0 to 86400) C4's calls are answered; default 3600.")
@programme_number_option
@click.option("--firmware", "firmware_path", type=click.Path(dir_okay=False),
              help="MicroPython's ESP32 firmware .bin, the one written at 0x1000 (bootloader, partition "
                   "table and app); the filesystem goes where its partition table puts `vfs`.")
@click.option("--placeholder-firmware", is_flag=True,
              help="TESTS ONLY: a stand-in firmware with MicroPython's partition table and no code; "
                   "the image will not boot.")
@click.option("--flash-size", type=click.Choice(list(img.FLASH_SIZES)), default=None,
              help="The chip's flash size (default: the board profile's).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Image file to write (refused if it exists, unless --force).")
@click.option("--force", is_flag=True,
              help="Replace the --output file if it exists (never the registry, its key or a backup: "
                   "those are always refused).")
@click.option("--json", "as_json", is_flag=True, help="Print the layout as JSON.")
def image_cmd(board, config_file, alias, contacts, c4, device_id, unregistered, pin_file, gesture, hold_ms,
              allow_911, callback_window_s, programme_number, firmware_path, placeholder_firmware, flash_size, output, force,
              as_json):
    """Build one device's factory image: MicroPython plus a LittleFS holding the firmware
    and her configuration, in the geometry MicroPython mounts. Flash it with one write:

        esptool --chip esp32 write-flash 0x0 OUT.bin

    \b
    The image provisions a registered button, in provision's order (docs/registry.md):
      1. registry first: --device-id is the button's registry label, in a state that
         allows provisioning (not delivered: that one is in her hands); her alias and
         contacts come from its case (typed ones that differ are refused; without a
         case it is a bench configuration, never delivered);
      2. the registry says "provisioning" (with the config's hash) before the file is
         written, and "provisioned" once the image read back holds that config; flash
         it, then `boton test-call` checks the button holds exactly that config.
    --unregistered makes an image for no registered button, and says so.
    An existing --output file is refused (exit 7) unless --force; the registry, its
    -wal/-shm/-journal, its key file or any registry backup are refused even with
    --force (exit 2).

    Example: boton image --firmware ESP32_GENERIC-v1.26.1.bin --device-id BS-0042
    --c4 "449 910 0000" -o BS-0042.bin
    """
    out = expand_home(output, "--output")
    check_target(out, force, what="the image")   # before a PIN is asked for or anything recorded
    got = {}    # the PIN obtained here (not kept in the config file), and how

    def obtain_pin():
        got["pin"], got["how"] = pins.obtain_pin(pin_file)
        return got["pin"]

    # Validate everything typed before the registry is opened: bad input changes nothing.
    if config_file:
        ctx = click.get_current_context()
        typed_here = ctx.get_parameter_source("programme_number")
        if alias or contacts or c4 or typed_here == click.core.ParameterSource.COMMANDLINE:
            raise InputError("give --config or --alias/--contact/--c4/--programme-number, not both "
                             "(the file's programme_number decides where its daily status SMS go)")
        # the file's settings are the image's: one typed beside it was silently dropped
        # (a call-back window of 0 built as the default hour)
        typed = [f"--{p.replace('_', '-')}" for p in ("gesture", "hold_ms", "allow_911", "callback_window_s")
                 if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
        if typed:
            raise InputError(f"give {', '.join(typed)} in the config file, not beside --config (the file's "
                             "settings are the image's)")
        check_input_file(config_file, "config file")
        config = config_from_file(config_file, obtain_pin)
        if pin_file and not got:
            raise InputError(f"{config_file} already holds a PIN: give --pin-file only "
                                  "with a config without one")
        device_id = device_id or config["device_id"]
    else:
        if not c4 or (unregistered and (not alias or not contacts)):
            raise InputError("give --config FILE.json, or --c4 with --alias and --contact (a registered "
                             "button with a case takes these two from it)")
        typed = rules.typed_case_values(alias, contacts)
        c4, programme_number = rules.check_typed(c4=c4, contacts=typed[1], gesture=gesture, hold_ms=hold_ms,
                                                 allow_911=allow_911, programme_number=programme_number)
        obtain_pin()
    # a generated PIN is shown on a terminal only (never into a redirected stdout or the JSON)
    pin_screen = pins.pin_screen(got.get("how", "config file"), avoid_stdout=as_json)
    device_id = check_device_id(device_id, unregistered)
    check_build_inputs(board, firmware_path, placeholder_firmware, flash_size)

    def her_config(label, case):
        """The configuration under the device id `label`; her case (None: none) is the
        single source of her alias and contacts, as in `provision`."""
        if config_file:
            if case is not None and (config["alias"], config["contacts"]) != (case.alias, list(case.contacts)):
                raise InputError(f"the alias or contacts in {config_file} differ from the case assigned to "
                                 f"{label}: correct the file or the case (the case is the single source)")
            return dict(config, device_id=label)
        alias_, contacts_ = rules.case_values(label, case, typed)
        return rules.build_config(alias=alias_, contacts=contacts_, c4=c4, device_id=label, pin=got["pin"],
                                  gesture=gesture, hold_ms=hold_ms, allow_911=allow_911,
                                  programme_number=programme_number or None,
                                  callback_window_s=callback_window_s)

    if unregistered:
        config = her_config(device_id, None)
        data, report = build(board, config, firmware_path, placeholder_firmware, flash_size)
        report["registry"] = _unregistered(device_id, report["config_sha256"],
                                           lambda: _write_image(out, data, force))
    else:
        from .registry import Registry
        from .registry_paths import default_path, registry_exists

        label = device_id
        if not registry_exists():
            raise RegistryConflict(f"no registry at {default_path()}, so {label} is no registered button: "
                                   f"register it first (`boton devices add MAC --label {label}`), or give "
                                   "--unregistered for an image of no registered button")
        with Registry() as reg:  # registry first: a broken registry refuses before anything is built
            known = _registered_button(reg, label)
            case, case_row = reg.provision_case(known.mac)
            config = her_config(known.label, case)
            data, report = build(board, config, firmware_path, placeholder_firmware, flash_size)
            # "provisioning" before the file: an interrupted run leaves it true (run it again)
            reg.begin_provision(known.mac, report["config_sha256"], case_row)
            _write_image(out, data, force, known.label)
            # registry last: the config read back from the finished image (build) is the one
            d = reg.finish_provision(known.mac, report["config_sha256"], image=True,
                                     daily_interval_s=rules.daily_interval_s(config),
                                     c4_first=config["c4_numbers"][0])
        report["registry"] = {"recorded": True, "label": d.label, "mac": d.mac, "state": d.state,
                              "case": case is not None}
    report["output"] = str(out)
    report["pin"] = got.get("how", "config file")  # where it came from; the PIN is never in it
    report["esptool"] = f"esptool --chip {img.CHIP} write-flash {img.IMAGE_OFFSET:#x} {out}"

    if as_json:
        click.echo(json.dumps(report, indent=2))
        if got.get("how") == "generated":  # stdout stays the JSON; the PIN is seen once, on a terminal
            pins.show_pin(got["how"], got["pin"], pin_screen, lambda line: None)
        return
    fw, vfs = report["firmware"], report["vfs"]

    def say(line):    # paths as typed: text, never rich markup ("usb[/]BS-0001.bin")
        console.print(line, soft_wrap=True, markup=False)

    say(f"image {out}: {report['image_size']:,} bytes for {report['flash_size_name']} flash, board {board}")
    firmware = f"  firmware    {fw['offset']:#08x}  {fw['size']:>10,} bytes  "
    if fw["placeholder"]:
        console.print(firmware + "[bold red]PLACEHOLDER: will not boot (tests only)[/]", soft_wrap=True)
    else:
        say(firmware + str(fw["path"]))
    parts = ", ".join(f"{p['label']} {p['offset']:#x}+{p['size']:#x}"
                      for p in report["partition_table"]["partitions"])
    say(f"  partitions  {img.PARTITION_TABLE_OFFSET:#08x}  {parts}")
    how = "its vfs partition" if vfs["source"] == "table" else "end of last partition to end of flash"
    say(f"  vfs         {vfs['offset']:#08x}  {vfs['size']:>10,} bytes = {vfs['block_count']} blocks "
        f"of {vfs['block_size']} (LittleFS v2; {how})")
    say(f"  files       {vfs['files']} files, {vfs['bytes']:,} bytes, {vfs['used_blocks']} blocks used; "
        f"read back from the image: ok")
    say(f"device {report['device_id']}: {report['contacts']} contact(s), "
        f"{report['c4_numbers']} C4 number(s); config {report['config_sha256'][:12]}")
    say(daily_status_line(config, f"{config_file} has no programme_number" if config_file
                          else "no --programme-number"))
    say(_registry_line(report["registry"]))
    say(f"flash with: {report['esptool']}")
    if got:
        pins.show_pin(got["how"], got["pin"], pin_screen, say)
    else:
        say(f"SMS command PIN: as in {config_file} (not shown; the image keeps only a salted hash)")


def _write_image(out, data, force, label=None):
    try:
        write_atomic(out, data, force)
    except OSError as e:
        left = (f"; the registry says {label} is provisioning: run `boton image` again, or `boton devices "
                f"abort-provision {label}`" if label else "")
        raise InputError(f"cannot write {out}: {e.strerror}{left}") from None
    warn_if_exposed(out)


def _registered_button(reg, label):
    """The registry's record of the button `label` names, if an image may provision it."""
    try:
        known = reg.find(label)
    except RegistryError:
        raise RegistryConflict(f"{label} is not in the registry: register the button under that label "
                               f"first (`boton devices add MAC --label {label}`), or give --unregistered "
                               "for an image of no registered button") from None
    if known.state == "delivered":  # provision may re-provision it at the bench; an image cannot tell
        raise RegistryConflict(f"cannot make an image for {known.label} ({known.mac}): it is delivered (in "
                               "her hands); return it first, or provision it at the bench with "
                               "`boton provision`")
    return reg.precheck("provision", known.mac)


def _unregistered(device_id, config_sha256, write) -> dict:
    """--unregistered: write() the image unless the device id is a registered label, and
    audit it where a registry exists (none is created here)."""
    from .registry import Registry
    from .registry_paths import registry_exists

    if not registry_exists():
        write()
        return {"recorded": False, "audited": False}
    with Registry() as reg:
        try:
            known = reg.find(device_id)
        except RegistryError:  # not a label it holds, or not a label at all
            known = None
        if known is not None:
            raise RegistryConflict(f"{known.label} is a registered button ({known.mac}): leave out "
                                   "--unregistered, so the registry records its image")
        given_up = reg.label_refusal(device_id)   # a relabelled button may still carry it
        if given_up:
            raise RegistryConflict(given_up)
        write()
        reg.record_unregistered_image(device_id, config_sha256)
    return {"recorded": False, "audited": True}


def _registry_line(rec) -> str:
    if rec["recorded"]:
        source = "from her case" if rec["case"] else "bench configuration (no case: it cannot be delivered)"
        return (f"registry: {rec['label']} ({rec['mac']}) {rec['state']} with this config, {source}; "
                "the button holds it once the image is flashed: then run `boton test-call`")
    return ("registry: NOT recorded (--unregistered): no registered button gets this image"
            + ("; the audit trail says it was made" if rec["audited"] else "; no registry here"))
