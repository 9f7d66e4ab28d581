"""`boton devices ...` (the inventory) and `boton registry ...` (its key and file).

Register into the main group with:

    from .cli_registry import devices, registry
    main.add_command(devices)
    main.add_command(registry)

Each group also turns a DeviceError into one line and its exit code by itself, so it works
the same standalone (tests) and under `boton`. Exit codes: 0 ok, 2 bad input (including a
missing or wrong key), 7 refused by the registry's contents (duplicate, wrong state,
number already on an active case, registry busy). Nothing prompts unless stdin is a TTY.
"""
import json
import os
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import registry as R
from . import registry_crypto
from .boards import board_file, board_names
from . import paths
from .cli_output import OneLineErrors, during_alert_option, err_console, warn_if_exposed
from .errors import EXIT_USAGE, EXIT_VERIFY, DeviceError, InputError, RegistryConflict, RegistryKeyError
from .release import firmware_state, release_hash
from .rules import mask
from .safe_write import check_target

console = Console(highlight=False)


def registry_options(f):
    f = click.option("--technician", envvar="BOTON_TECHNICIAN",
                     help="Who is doing this, for the audit trail (default: BOTON_TECHNICIAN, "
                          "else your OS user name).")(f)
    f = click.option("--registry", "registry_path", envvar="BOTON_REGISTRY",
                     type=click.Path(dir_okay=False),
                     help="Registry file (default: BOTON_REGISTRY, else registry.sqlite3 in "
                          "your user data folder).")(f)
    return f


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def _open(registry_path, technician, create=False):
    """The registry; one that does not exist is refused (a mistyped --registry must not
    become an empty registry), except by the commands that add buttons (create)."""
    warn_if_exposed(R.registry_file(registry_path))
    return R.Registry(registry_path, technician=technician, create=create)


def _echo_json(data):
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _interactive():
    return sys.stdin.isatty()


def _ask_passphrase(path, attempt):
    """registry_crypto's prompt: the key file's passphrase, typed unseen; None off a terminal."""
    if not _interactive():
        return None
    if attempt:
        err_console.print("wrong passphrase, try again")
    return click.prompt(f"Passphrase of the registry key {path}", hide_input=True, err=True,
                        default="", show_default=False)


registry_crypto.passphrase_prompt = _ask_passphrase


def _new_passphrase(required):
    """The passphrase a key file gets: BOTON_KEY_NEW_PASSPHRASE, else typed twice on a
    terminal (empty: none, unless required); None for none."""
    env = os.environ.get(registry_crypto.NEW_PASSPHRASE_ENV)
    if env is not None:
        return registry_crypto.check_passphrase(env, registry_crypto.NEW_PASSPHRASE_ENV)
    if not _interactive():
        if required:
            raise InputError("a new passphrase is typed on a terminal (nothing is asked when stdin "
                             f"is not one), or given in {registry_crypto.NEW_PASSPHRASE_ENV}")
        return None
    while True:
        typed = click.prompt("New passphrase for the key" + ("" if required else " (empty: none)"),
                             hide_input=True, confirmation_prompt=True, err=True, default="",
                             show_default=False)
        if not typed and not required:
            return None
        try:
            return registry_crypto.check_passphrase(typed)
        except InputError as e:
            err_console.print(escape(str(e)))


def _key_protection_note(protected):
    return ("protected by a passphrase: a copy of the file alone does not open her case data"
            if protected else "without a passphrase: only the laptop's disk encryption protects it "
            "(`boton registry key-passphrase` adds one)")


def _need(value, option, prompt):
    """A required option: asked for on a terminal (keeps it out of the shell history),
    a usage error otherwise."""
    if value:
        return value
    if _interactive():
        return click.prompt(prompt)
    raise DeviceError(f"missing {option} (nothing is asked when stdin is not a terminal)", EXIT_USAGE)


def _confirm(question, yes):
    if yes or not _interactive():
        return
    if not click.confirm(question, default=False):
        raise DeviceError("cancelled, nothing was changed", EXIT_USAGE)


def _counts_line(c):
    parts = [f"{c[s]} {s.replace('_', ' ')}" for s in R.STATES if s != "delivered" and c[s]]
    return f"{c['delivered']} of {c['total']} delivered" + (f" ({', '.join(parts)})" if parts else "")


def _test_cell(d):
    """The list's test column: what the button needs before it can be trusted in her hands."""
    # SMS only at its last provisioning: it cannot call C4, whatever the state says
    if d.voice is False:
        return "[red]no voice[/]"
    # her case edited since its configuration was written, or a re-provisioning interrupted:
    # it may text her old contacts: `boton provision` first
    if d.config_outdated or (d.state == "delivered" and d.pending_config_hash):
        return "[red]provision[/]"
    test = d.test_call_result or ""
    # a delivered button whose test no longer counts (new firmware or configuration since)
    if d.state == "delivered" and test != "passed":
        return f"[red]{test or 'untested'}[/]"
    return test


def _device_json(d, current, programme):
    out = d.to_dict()
    out["config_outdated"] = d.config_outdated
    out["flash_size_text"] = R.format_flash_size(d.flash_size)
    out["firmware"] = firmware_state(d.firmware_hash, d.board, current)
    out["c4"] = c4_state(d.c4_first, d.board, programme, has_config=bool(d.config_hash))
    return out


def _current_release() -> dict:
    """board profile -> this release's hash, to tell which buttons run an older firmware."""
    return {b: release_hash(b) for b in board_names()}


def _programme_c4() -> dict:
    """board profile -> its safe_c4: the programme's C4, the number every button's
    configuration must call first (provision and test-call hold them to it)."""
    out = {}
    for b in board_names():
        try:   # only its safe_c4: a profile broken elsewhere must not cost the whole list
            c4 = json.loads(board_file(b).read_text()).get("safe_c4")
        except (OSError, ValueError, AttributeError, DeviceError):
            continue
        if isinstance(c4, str) and c4:
            out[b] = c4
    return out


def c4_state(c4_first, board, programme: dict, has_config=False):
    """"the programme's" or "another number" for the C4 a button's configuration calls
    first, as its last provisioning or test call recorded it; "unknown" for a configuration
    recorded before that was (provisioned before schema 10: it may call an old C4); None:
    no configuration. programme: _programme_c4(); the board's own if the registry knows
    the board, else any."""
    if not c4_first:
        return "unknown" if has_config else None
    ours = {programme[board]} if board in programme else set(programme.values())
    return "the programme's" if c4_first in ours else "another number"


def _outdated(row):
    """What to bring in: another release, or a configuration that calls an old C4 first."""
    return row["firmware"] != "this release" or row["c4"] in ("another number", "unknown")


# =========================================================================== devices
@click.group(cls=OneLineErrors)
def devices():
    """The device inventory: every button, its state and (encrypted) the case it serves.

    States: in_stock -> provisioning -> provisioned -> delivered -> returned -> (wiped)
    in_stock; any but delivered -> faulty or retired. Delivery needs a case, a config
    written from it and a passed test call, and reads the button itself (--port).

    The registry is BOTON_REGISTRY or registry.sqlite3 in the user data folder; case data
    needs the key (BOTON_KEY or the key file from `boton registry init-key`).

    Exit codes: 0 ok, 2 bad input or key problem, 7 refused by the registry's contents
    (duplicate, wrong state, number on another active case, registry busy) or an export
    file that already exists.

    Example: boton devices list --state delivered
    """


@devices.command("list")
@click.option("--state", type=click.Choice(R.STATES), help="Only devices in this state.")
@click.option("--outdated", is_flag=True,
              help="Only devices whose firmware, as last deployed or test-called, is not this "
                   "release's (or not recorded), or whose configuration calls another C4 first than "
                   "the board profiles' safe_c4: what to bring in after a firmware fix or a new C4.")
@json_option
@registry_options
def list_(state, outdated, as_json, registry_path, technician):
    """List devices (all, or one state) and how many are delivered. The firmware column
    says whether a button's firmware, as its last deploy or test call recorded it, is
    this release's ("this"), another ("OTHER") or unknown (""). The c4 column says whether
    the C4 number its configuration calls first (as its last provisioning or test call
    recorded it) is the programme's, its board profile's safe_c4 ("this"), another
    ("OTHER": it calls an old C4), not recorded ("?") or there is no configuration ("").

    Example: boton devices list --state delivered --outdated
    """
    with _open(registry_path, technician) as reg:
        devs, counts = reg.list(state), reg.counts()
    current, programme = _current_release(), _programme_c4()
    listed = [(d, _device_json(d, current, programme)) for d in devs]
    if outdated:
        listed = [(d, row) for d, row in listed if _outdated(row)]
    devs, rows = [d for d, _ in listed], [row for _, row in listed]
    if as_json:
        _echo_json({"devices": rows, "counts": counts})
        return
    table = Table(show_edge=False, pad_edge=False)
    tests = [_test_cell(d) for d in devs]
    # "no voice" is never cut short, even on a narrow terminal (the board name is)
    test_width = max([6] + [len(t.replace("[red]", "").replace("[/]", "")) for t in tests])
    for col, width in (("label", 7), ("mac", 17), ("state", 11), ("test", test_width), ("case", 4)):
        table.add_column(col, no_wrap=True, min_width=width)
    table.add_column("firmware", no_wrap=True, min_width=8)
    table.add_column("c4", no_wrap=True, min_width=5)
    for col in ("board", "flash", "updated"):
        table.add_column(col, overflow="ellipsis", no_wrap=True)
    for d, row, test in zip(devs, rows, tests):
        state = d.state + (" [red]wipe![/]" if d.wipe_required else "")
        firmware = {"this release": "this", "another release": "[red]OTHER[/]"}.get(row["firmware"], "")
        c4 = {"the programme's": "this", "another number": "[red]OTHER[/]", "unknown": "[red]?[/]"}.get(row["c4"], "")
        table.add_row(d.label, d.mac, state, test, "yes" if d.has_case else "", firmware, c4,
                      d.board or "", R.format_flash_size(d.flash_size), (d.updated_at or "")[:10])
    if devs:
        console.print(table)
    else:
        console.print("no devices" + (" with another release or another C4" if outdated else "")
                      + (f" in state {state}" if state else ""))
    console.print(_counts_line(counts))


@devices.command()
@click.argument("device")
@click.option("--reveal", is_flag=True,
              help="Also decrypt and show her case data (needs the key; written to the audit trail).")
@json_option
@registry_options
def show(device, reveal, as_json, registry_path, technician):
    """Show one device by MAC or label. Case data only with --reveal.

    Example: boton devices show BS-0042 --reveal
    """
    with _open(registry_path, technician) as reg:
        d = reg.find(device)
        case = reg.case(d.mac) if reveal else None
    data = _device_json(d, _current_release(), _programme_c4())
    if reveal:
        data["case"] = case.to_dict() if case else None
    if as_json:
        _echo_json(data)
        return
    for k, v in data.items():
        if k in ("case", "flash_size_text") or v is None or v == "":
            continue
        if k == "flash_size":
            v = data["flash_size_text"]
        console.print(f"{k:>16}: {escape('' if v is None else str(v))}", soft_wrap=True)
    if not reveal:
        console.print(f"{'case':>16}: {'assigned (use --reveal to see it)' if d.has_case else 'none'}")
    elif case is None:
        console.print(f"{'case':>16}: none")
    else:
        for k, v in case.to_dict().items():
            v = ", ".join(v) if isinstance(v, list) else v
            console.print(f"{'case ' + k:>16}: {escape('' if v is None else str(v))}", soft_wrap=True)


@devices.command()
@click.argument("mac")
@click.option("--label", help="Label on the case, e.g. BS-0042 (default: the next free BS-NNNN).")
@click.option("--board", help="Board profile, e.g. tcall_sim800l_axp192.")
@click.option("--flash-size", help="Flash size, e.g. 4MB.")
@registry_options
def add(mac, label, board, flash_size, registry_path, technician):
    """Register a new device by its eFuse MAC (as `esptool.py chip_id` prints it).

    Example: boton devices add 24:6f:28:aa:bb:cc --label BS-0042 --board tcall_sim800l_axp192
    """
    with _open(registry_path, technician, create=True) as reg:
        d = reg.add_device(mac, label=label, board=board, flash_size=flash_size)
    console.print(f"added {d.label} ({d.mac}), in stock")


@devices.command()
@click.argument("device")
@click.argument("label")
@registry_options
def relabel(device, label, registry_path, technician):
    """Give a button another label (at most 12 letters, digits and dashes: her alert SMS
    shows a button's label only up to 12, so a label registered longer before cannot go on
    a button). Only the registry changes: a configuration written under the old label
    still carries it (her alert SMS and daily reports name the button by it) until the
    button is provisioned again, then test-called. The old label is never given to another
    button.

    Example: boton devices relabel AGS-CENTRO-0042 AGS-0042
    """
    with _open(registry_path, technician) as reg:
        d = reg.find(device)
        new = reg.relabel(d.mac, label)
    note = ""
    if new.state == "delivered":
        # in her hands: her SMS, her daily reports and C4's file still say the old label
        note = (f". Her button still carries {d.label} in its configuration: her alert SMS and "
                f"daily reports name it {d.label} (still filed under this button) until, with the "
                f"button at hand, `boton provision --device {new.label} --keep-pin ...` writes the "
                "new label; then `boton test-call` it and tell C4 its new label")
    elif new.config_hash or new.state == "provisioning":
        note = (f"; its configuration still carries {d.label}: provision it again (`boton provision "
                f"--device {new.label} ...`), then test-call it")
    console.print(f"{d.label} ({d.mac}) is now {new.label}{note}", soft_wrap=True, markup=False)


@devices.command()
@click.argument("device")
@click.option("--alias", help="Short name she chose (not her full name), as the device will use it.")
@click.option("--case-id", help="Case number, e.g. AGS/2024/00731.")
@click.option("--name", help="Her full name (optional).")
@click.option("--notes", help="Notes for the program staff (optional).")
@click.option("--order-ends", help="Restraining order end date, YYYY-MM-DD, or 'none'.")
@click.option("--contact", "contacts", multiple=True,
              help="Trusted contact's number (1 to 5; repeat the option). Mexican numbers by default.")
@click.option("--replace", is_flag=True, help="Replace the case the device already has (only in stock).")
@registry_options
def assign(device, alias, case_id, name, notes, order_ends, contacts, replace, registry_path, technician):
    """Give a device her case (stored encrypted). A number already on another active case
    is refused. On a terminal, leave options out to be asked (keeps them out of the shell
    history).

    Example: boton devices assign BS-0042 --alias Luna --case-id AGS/2024/00731
    --order-ends 2025-12-31 --contact "449 111 2233" --contact "449 222 3344"
    """
    alias = _need(alias, "--alias", "Alias (short name she chose)")
    case_id = _need(case_id, "--case-id", "Case id")
    order_ends = _need(order_ends, "--order-ends", "Restraining order end date (YYYY-MM-DD or none)")
    if not contacts:
        contacts = [c for c in _need(None, "--contact", "Trusted contacts (separate with ;)").split(";")
                    if c.strip()]
    case = R.CaseData(alias=alias, case_id=case_id, contacts=list(contacts), order_ends=order_ends,
                      full_name=name, notes=notes)
    with _open(registry_path, technician) as reg:
        d = reg.assign(reg.find(device).mac, case, replace=replace)
    console.print(f"assigned a case to {d.label}: {len(case.contacts)} contact(s) "
                  f"({', '.join(mask(n) for n in case.contacts)}), "
                  + ("order end date recorded" if case.order_ends else "no order end date"),
                  soft_wrap=True)


@devices.command("edit-case")
@click.argument("device")
@click.option("--contact", "contacts", multiple=True,
              help="Her trusted contacts as they are now, all of them (1 to 5; repeat the option): "
                   "the list replaces the old one.")
@click.option("--alias", help="A new short name she chose.")
@click.option("--order-ends", help="A new restraining order end date, YYYY-MM-DD, or 'none'.")
@click.option("--name", help="Her full name.")
@click.option("--notes", help="Notes for the programme staff.")
@registry_options
def edit_case(device, contacts, alias, order_ends, name, notes, registry_path, technician):
    """Edit her case on the button she has, delivered or not: her trusted contacts change
    (a new number, one she no longer trusts), her alias, the order's end. The case id
    stays: it is her (another woman's case goes on a button only after a return and a
    wipe). A number on another active case is refused. Audited, without her data.

    \b
    Contacts or alias changed: her button still texts the old ones. Provision it again
    with it at hand (it stays delivered), keeping the SMS command PIN she and C4 know,
    then test-call it:
      boton provision --port PORT --device BS-0042 --c4 ... --keep-pin
      boton test-call --port PORT --device BS-0042
    Until then `devices list` flags it, and test-call and deliver refuse it.

    Example: boton devices edit-case BS-0042 --contact "449 111 2233" --contact "449 555 6677"
    """
    changes = {k: v for k, v in (("alias", alias), ("order_ends", order_ends), ("full_name", name),
                                 ("notes", notes)) if v is not None}
    if contacts:
        changes["contacts"] = list(contacts)
    if not changes:
        raise DeviceError("nothing to edit: give --contact (all of them), --alias, --order-ends, --name "
                          "or --notes", EXIT_USAGE)
    with _open(registry_path, technician) as reg:
        d = reg.find(device)
        new = reg.edit_case(d.mac, **changes)
    console.print(f"edited the case on {new.label}"
                  + (f": {len(changes['contacts'])} contact(s) ({', '.join(mask(n) for n in R.check_contacts(contacts))})"
                     if contacts else ""), soft_wrap=True)
    if new.config_outdated or (new.pending_config_hash and new.pending_case != new.case_row):
        console.print(f"[yellow]its button still holds the old version:[/] provision it again, keeping her PIN "
                      f"(`boton provision --device {new.label} ... --keep-pin`), then `boton test-call`; until then test-call and deliver "
                      "refuse it", soft_wrap=True)


def _simple(name, method, doc, message):
    @devices.command(name, help=doc)
    @click.argument("device")
    @registry_options
    def cmd(device, registry_path, technician):
        with _open(registry_path, technician) as reg:
            d = getattr(reg, method)(reg.find(device).mac)
            counts = reg.counts()
        console.print(message(d, counts), soft_wrap=True)
    return cmd


@devices.command()
@click.argument("device")
@click.option("--port", envvar="BOTON_PORT",
              help="Serial port of the button being handed over (or BOTON_PORT; left out: the one "
                   "board plugged in): it is read before it is recorded as delivered.")
@registry_options
@during_alert_option
def deliver(device, port, registry_path, technician, during_alert):
    """Mark a provisioned button as delivered to her, reading the button itself first.

    \b
    Registry first: DEVICE must be provisioned, with her case assigned, its configuration
    written from that case, and a passed test call since the last flash, deploy or
    provision, run with this release's firmware (refused with exit 7 before the port is
    opened). Then the button on --port must be DEVICE (its eFuse MAC), hold the
    configuration recorded at provisioning and test-called, matching her case (needs the
    key), and run this release exactly as `deploy` leaves it: otherwise exit 5, nothing
    recorded. What she takes home is what the test call proved.

    Example: boton devices deliver BS-0042 --port /dev/ttyUSB0
    """
    from .device import Device
    from .provision import device_mac, differences, release_on_board, remedy_sentence
    from .rules import CONFIG_PATH

    with _open(registry_path, technician) as reg:
        d = reg.find(device)
        reg.deliver(d.mac, dry_run=True)          # registry first: refused before the port opens
        _tested_this_release(d)
        reg.unlock()                              # a mistyped passphrase too
        with Device(port, during_alert=during_alert) as dev:
            mac = device_mac(dev)
            reg.precheck("deliver", mac, expected=d.mac)
            raw = dev.read_file(CONFIG_PATH)
            config = reg.check_config(mac, raw)
            board, differs = release_on_board(dev)
        if differs or board != d.board:
            why = differences(differs) if differs else f"its board profile is {board}, the test call ran {d.board}"
            raise DeviceError(f"cannot deliver {d.label}: the button does not run what its test call "
                              f"ran: {why}. {remedy_sentence(differs, dev.port, d.board)}, and "
                              "`boton test-call` again", EXIT_VERIFY)
        d = reg.deliver(mac, config_hash=config)
        counts = reg.counts()
    console.print(f"{d.label} delivered; {_counts_line(counts)}", soft_wrap=True)


def _tested_this_release(d):
    """The passed test call ran this release on this board profile (the registry recorded
    what it ran): a tool upgraded since, or a test call recorded by a boton that did not
    record it, means the firmware she would take home was never test-called."""
    if not (d.firmware_hash and d.board in board_names()):
        why = "its test call did not record which firmware it ran (an older boton)"
    elif d.firmware_hash != release_hash(d.board):
        why = "its test call ran another release than this tool's (deployed or upgraded since?)"
    else:
        return
    raise RegistryConflict(f"cannot deliver {d.label} ({d.mac}): {why}; run `boton deploy` "
                             "and `boton test-call` again")


@devices.command("abort-provision")
@click.argument("device")
@registry_options
def abort_provision(device, registry_path, technician):
    """Roll back an interrupted provisioning that will not be finished (the button is gone
    or broken): provisioning -> in stock, with no recorded configuration and flagged for a
    wipe (it may hold the old or the new one). If the button is at hand, running `boton
    provision` again finishes it instead.

    Example: boton devices abort-provision BS-0042
    """
    with _open(registry_path, technician) as reg:
        d = reg.abort_provision(reg.find(device).mac)
    console.print(f"{d.label} back in stock; its provisioning was aborted: wipe it or provision "
                  "it again before use", soft_wrap=True)


@devices.command("return")
@click.argument("device")
@click.option("--port", envvar="BOTON_PORT",
              help="Serial port of the button she gave back (or BOTON_PORT; left out: the one board "
                   "plugged in): it is read first, and must be DEVICE.")
@click.option("--without-button", is_flag=True,
              help="Her case ends without the button at hand (lost, stolen, or it no longer starts): "
                   "asks for confirmation on a terminal (--yes elsewhere).")
@click.option("--yes", is_flag=True, help="With --without-button: do not ask for confirmation.")
@registry_options
@during_alert_option
def return_(device, port, without_button, yes, registry_path, technician, during_alert):
    """She gave the button back: delivered -> returned. Her case is closed (its numbers are
    free again, her button leaves `boton reports`) and the device is flagged until its
    configuration is wiped. It cannot be undone, so the button is read first and must be
    DEVICE (its eFuse MAC): a mistyped label would close another woman's case. Without the
    button, --without-button.

    Example: boton devices return BS-0042 --port /dev/ttyUSB0
    """
    if yes and not without_button:
        raise click.UsageError("--yes is for --without-button: with the button at hand, it is read instead")
    with _open(registry_path, technician) as reg:
        d = reg.find(device)
        reg.precheck("return", d.mac)             # registry first: refused before the port opens
        if without_button:
            if not (yes or _interactive()):
                raise click.UsageError("--without-button closes her case for good: add --yes to "
                                       "confirm it where nobody can be asked")
            _confirm(f"Close her case on {d.label} ({d.mac}, delivered {(d.delivered_at or '?')[:10]}) "
                     "without the button? It cannot be undone, and her button is no longer watched.",
                     yes)
        else:
            from .device import Device
            from .provision import device_mac

            with Device(port, during_alert=during_alert) as dev:
                reg.check_named(device_mac(dev), d.mac)
        d = reg.return_device(d.mac, without_button=without_button)
        how = " (without the button)" if without_button else ""
    console.print(f"{d.label} returned{how}, her case closed; wipe its configuration before reuse",
                  soft_wrap=True)


_simple("restock", "restock",
        "A repaired faulty device goes back to stock (refused while it may hold someone's "
        "configuration).\n\nExample: boton devices restock BS-0042",
        lambda d, c: f"{d.label} back in stock")


REASON_WARNING = ("It stays in the audit trail and in every backup for good (the trail cannot be "
                  "edited): write only about the hardware, never her name, address, phone numbers "
                  "or anything of her case. Runs of 7 or more digits are masked; names and "
                  "addresses cannot be recognised, so they would be kept.")


@devices.command()
@click.argument("device")
@click.option("--reason", help="What is wrong with the hardware, in a few words. " + REASON_WARNING)
@registry_options
def faulty(device, reason, registry_path, technician):
    """Mark a device faulty (not when delivered: return it first). A case it had is closed.
    The reason is about the hardware only: it is kept for good in the audit trail and every
    backup, so never her name, address or numbers.

    Example: boton devices faulty BS-0042 --reason "SIM800 does not register"
    """
    reason = _need(reason, "--reason", "What is wrong with the hardware (never her name, address or numbers)")
    with _open(registry_path, technician) as reg:
        d = reg.mark_faulty(reg.find(device).mac, reason)
    console.print(f"{d.label} marked faulty" + ("; it may hold a configuration: wipe it" if d.wipe_required else ""))


@devices.command()
@click.argument("device")
@click.option("--reason", help="Why it leaves service for good, in a few words. " + REASON_WARNING)
@click.option("--unwiped", is_flag=True,
              help="Retire it although it may hold her configuration (it cannot be wiped and its "
                   "flash will be destroyed).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@registry_options
def retire(device, reason, unwiped, yes, registry_path, technician):
    """Take a device out of service for good (any state but delivered). The reason is about
    the hardware only: it is kept for good in the audit trail and every backup, so never her
    name, address or numbers.

    Example: boton devices retire BS-0042 --reason "water damage"
    """
    reason = _need(reason, "--reason", "Why is it retired (hardware only; never her name, address or numbers)")
    with _open(registry_path, technician) as reg:
        d = reg.find(device)
        _confirm(f"Retire {d.label} ({d.mac}) for good?", yes)
        d = reg.retire(d.mac, reason, allow_unwiped=unwiped)
    console.print(f"{d.label} retired" + ("; NOT wiped: destroy its flash" if d.wipe_required else ""))


@devices.command("ending-soon")
@click.option("--days", type=click.IntRange(0, 3650), default=30, show_default=True,
              help="How many days ahead to look (orders already ended are always listed).")
@json_option
@registry_options
def ending_soon(days, as_json, registry_path, technician):
    """Cases whose restraining order ends within --days (or has ended): time to check on
    her and on the order's renewal. Needs the key; written to the audit trail.

    Example: boton devices ending-soon --days 15
    """
    with _open(registry_path, technician) as reg:
        rows = reg.ending_soon(days)
    data = [{"label": e.device.label, "mac": e.device.mac, "state": e.device.state,
             "alias": e.case.alias, "case_id": e.case.case_id,
             "order_ends": e.case.order_ends.isoformat(), "days_left": e.days_left} for e in rows]
    if as_json:
        _echo_json(data)
        return
    if not data:
        console.print(f"no active case's order ends within {days} days")
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("label", "alias", "case id", "order ends", "days left", "state"):
        table.add_column(col)
    for r in data:
        left = r["days_left"]
        table.add_row(r["label"], escape(r["alias"]), escape(r["case_id"]), r["order_ends"],
                      f"[red]ended {-left} d ago[/]" if left < 0 else str(left), r["state"])
    console.print(table)


@devices.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@registry_options
def import_(file, registry_path, technician):
    """Add devices from a CSV file, all or nothing. Columns: mac (required), label, board,
    flash_size, imei, iccid, state, and for a case alias, case_id, full_name, notes,
    order_ends, contacts (separated by ;). UTF-8, comma or semicolon separated. Any
    problem is reported as "line N, field 'F'" and nothing is imported.

    Example: boton devices import inventario.csv
    """
    with _open(registry_path, technician, create=True) as reg:
        n = reg.import_csv(file)
        counts = reg.counts()
    console.print(f"imported {n} device(s); {_counts_line(counts)}")


@devices.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--with-case-data", is_flag=True,
              help="Also write her alias, case id, name, notes, order end date and contacts, in "
                   "the clear (needs the key; file mode 0600, on Windows private only inside your "
                   "user profile; written to the audit trail).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@click.option("--force", is_flag=True,
              help="Replace FILE if it exists (never the registry, its key or a backup: those are "
                   "always refused).")
@registry_options
def export(file, with_case_data, yes, force, registry_path, technician):
    """Write the inventory to a CSV file (e.g. for C4): hardware and lifecycle columns only,
    unless --with-case-data. An existing FILE is refused (exit 7) unless --force; the
    registry, its -wal/-shm/-journal, its key file or any registry backup are refused
    even with --force (exit 2).

    Example: boton devices export botones.csv
    """
    with _open(registry_path, technician) as reg:
        check_target(file, force, reg.path, "the export")   # before asking anything
        if with_case_data:
            _confirm(f"{file} will hold case data in the clear. Continue?", yes)
        n = reg.export_csv(file, include_case_data=with_case_data, force=force)
    warn_if_exposed(file)
    console.print(f"exported {n} device(s) to {escape(str(file))}"
                  + ("; it holds case data in the clear: hand it over encrypted, then delete it"
                     if with_case_data else ""), soft_wrap=True)


@devices.command()
@click.argument("device", required=False)
@click.option("--limit", type=click.IntRange(0, 1_000_000), default=200, show_default=True,
              help="Show only the last N entries (0: all).")
@json_option
@registry_options
def audit(device, limit, as_json, registry_path, technician):
    """Who did what to which device, and when (never case data).

    Example: boton devices audit BS-0042 --json
    """
    with _open(registry_path, technician) as reg:
        mac = reg.find(device).mac if device else None
        rows = reg.audit(mac, limit=limit or None)
    if as_json:
        _echo_json(rows)
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("when (UTC)", "technician", "action", "device", "detail"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["at"], escape(r["technician"]), r["action"], r["label"] or "",
                      escape(r["detail"] or ""))
    console.print(table)


# =========================================================================== registry
@click.group(cls=OneLineErrors)
def registry():
    """The registry file and its key: info, verify, backup, restore.

    Exit codes: 0 ok, 2 bad input or key problem, 5 the registry (or a backup) is empty,
    foreign or damaged, or its audit trail does not verify, 7 refused (busy, exists).

    Example: boton registry info
    """


KEY_FILE_HELP = "The key file (default: BOTON_KEY_FILE, else registry.key in your user config folder)."


@registry.command("init-key")
@click.option("--key-file", type=click.Path(dir_okay=False), help=KEY_FILE_HELP)
@click.option("--passphrase/--no-passphrase", default=None,
              help="Protect the key with a passphrase (asked twice on a terminal, or "
                   "BOTON_KEY_NEW_PASSPHRASE), or not. Default: asked on a terminal (empty for "
                   "none), none otherwise.")
def init_key(key_file, passphrase):
    """Create the key that encrypts case data, once per registry (mode 0600; on Windows
    private only inside your user profile, where it goes by default; never overwritten),
    protected by a passphrase if you give one: then a copy of the user's files (a lost
    laptop, a backup of the home folder) does not open her case data, and
    commands that read it ask for the passphrase (or take BOTON_KEY_PASSPHRASE). Back the
    key file up (e.g. on a USB stick in the office safe): without it the case data cannot
    be read.

    Refused for a registry that already holds case data: only the key it was encrypted
    with opens it (on a new laptop, install the office's key file from its backup).

    Example: boton registry init-key --passphrase
    """
    # a registry copied to a new laptop: a new key cannot open it, and the file written
    # would stand where the office's key must go (init-key never overwrites)
    reg_path = R.registry_file()
    stored = R.stored_fingerprint(reg_path) if reg_path.is_file() else None
    if stored:
        raise RegistryConflict(
            f"refusing to create a new key: the registry at {reg_path} already uses key {stored} (its "
            "case data is encrypted and its audit trail sealed with it), which a new key cannot "
            "replace. Install the office's key "
            f"file from its backup (the USB stick in the office safe) at {R.default_key_file()}, "
            "mode 0600, or set BOTON_KEY to that key; `boton registry info` then says whether it "
            "fits (a key for another, new registry: set BOTON_REGISTRY to its path first)")
    new = None if passphrase is False else _new_passphrase(required=passphrase is True)
    path = R.create_key_file(key_file, new)
    how = ("readable by this PC's other accounts" if warn_if_exposed(path) else
           "in your user profile, private to your account" if paths.WINDOWS else "mode 0600")
    console.print(f"wrote a new key to {escape(str(path))} ({how}), "
                  f"{_key_protection_note(new is not None)}. Back it up now: without it the "
                  "case data cannot be read.", soft_wrap=True)
    if os.environ.get("BOTON_KEY"):
        console.print("note: BOTON_KEY is set and takes precedence over this file")


@registry.command("key-passphrase")
@click.option("--key-file", type=click.Path(dir_okay=False), help=KEY_FILE_HELP)
@click.option("--remove", is_flag=True, help="Take the passphrase off (the key file is then "
                                             "protected only by the laptop's disk encryption).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal (--remove).")
def key_passphrase(key_file, remove, yes):
    """Give the key file a passphrase, change it, or take it off (--remove). Asks for the
    current passphrase, if it has one, and the new one twice (BOTON_KEY_PASSPHRASE and
    BOTON_KEY_NEW_PASSPHRASE give them without a terminal). The key itself does not change:
    the registry, its backups and the key's backups open as before (an old backup of the
    key file keeps its old passphrase, or none: replace it too).

    Example: boton registry key-passphrase
    """
    path = R.expand_home(key_file, "--key-file") if key_file else R.default_key_file()
    R.read_key_file(path)                   # the current passphrase first: wrong, nothing asked
    if remove:
        _confirm(f"Take the passphrase off {path}? Whoever copies it can then read every case", yes)
    new = None if remove else _new_passphrase(required=True)
    R.rewrap_key_file(path, new)
    warn_if_exposed(path)
    console.print(f"key file {escape(str(path))} is now {_key_protection_note(new is not None)}; "
                  "the key is unchanged. Replace the key's backup with this file.", soft_wrap=True)
    if os.environ.get("BOTON_KEY"):
        console.print("note: BOTON_KEY is set and takes precedence over this file")


@registry.command()
@json_option
@registry_options
def info(as_json, registry_path, technician):
    """Where the registry and the key are, its schema version, and whether the key fits.

    Example: boton registry info --json
    """
    data = {"key_file": str(R.default_key_file()),
            "key_file_passphrase": _key_file_protected(R.default_key_file())}
    if R.default_key_file().exists():
        warn_if_exposed(R.default_key_file())
    if R.registry_exists(registry_path):
        with _open(registry_path, technician) as reg:
            data.update(path=str(reg.path), exists=True, schema_version=reg.schema_version,
                        counts=reg.counts(), key_fingerprint=reg.key_fingerprint())
            data.update(_key_state(reg.cipher))
    else:   # described, not made: the first `devices add` or `import` makes it (the key is checked alone)
        data.update(path=str(R.registry_file(registry_path)), exists=False, schema_version=None, counts=None,
                    key_fingerprint=None)
        data.update(_key_state(registry_crypto.CaseCipher))
    if as_json:
        _echo_json(data)
        return
    if data["exists"]:
        console.print(f"registry: {escape(data['path'])} (schema {data['schema_version']})", soft_wrap=True)
        console.print(_counts_line(data["counts"]))
    else:
        console.print(f"registry: {escape(data['path'])} (none yet: the first `boton devices add` or "
                      "`devices import` makes it)", soft_wrap=True)
    console.print(f"key: {escape(data['key_source'] or 'none')}; case data encrypted with key "
                  f"{data['key_fingerprint'] or '(none yet)'}", soft_wrap=True)
    if data["key_file_passphrase"] is not None:
        console.print(f"key file: {escape(data['key_file'])}, "
                      f"{_key_protection_note(data['key_file_passphrase'])}", soft_wrap=True)
    if not data["key_ok"]:
        console.print(f"[yellow]key problem:[/] {escape(data['key_problem'])}", soft_wrap=True)


def _key_state(cipher):
    """Whether the key loads (and, from an open registry, is its key): cipher() gives it."""
    try:
        return {"key_source": cipher().source, "key_ok": True}
    except RegistryKeyError as e:
        return {"key_source": None, "key_ok": False, "key_problem": str(e)}


def _key_file_protected(path):
    """Whether the key file has a passphrase; None if there is no file to tell."""
    try:
        return registry_crypto.is_wrapped(path.read_text("ascii", errors="replace"))
    except OSError:
        return None


@registry.command()
@json_option
@registry_options
def verify(as_json, registry_path, technician):
    """Check the registry: SQLite's full integrity check, that your key is its key, and
    that the audit trail is whole (every sealed row unchanged, none removed, up to the
    head it recorded). Needs the key. Exit 5 with one line if anything fails. What this
    proves and what it cannot: docs/registry.md.

    Example: boton registry verify
    """
    with _open(registry_path, technician) as reg:
        rep = reg.verify()
    data = {"ok": True, "audit_rows": rep.rows, "sealed": rep.sealed,
            "covered_by_chain_start": rep.covered, "unsealed_ids": rep.unsealed,
            "last_sealed": rep.last and {k: rep.last[k] for k in ("id", "at", "action")}}
    if as_json:
        _echo_json(data)
        return
    console.print(f"registry verified: {rep.sealed} sealed audit row(s) chained up to row "
                  f"#{rep.last['id']} ({rep.last['at']})"
                  + (f", {rep.covered} earlier row(s) covered by the chain's start" if rep.covered else ""),
                  soft_wrap=True)
    if rep.unsealed:
        console.print(f"[yellow]warning:[/] {len(rep.unsealed)} row(s) were written without the "
                      f"key and are not sealed, so nothing proves them (ids "
                      f"{', '.join(map(str, rep.unsealed[:10]))}{' ...' if len(rep.unsealed) > 10 else ''})",
                      soft_wrap=True)


@registry.command("purge-cases")
@click.option("--older-than", "days", type=click.IntRange(0, 36500), metavar="DAYS",
              help="Erase cases closed at least this many days ago (the programme's retention period).")
@click.option("--dry-run", is_flag=True, help="Only list what would be erased.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@json_option
@registry_options
def purge_cases(days, dry_run, yes, as_json, registry_path, technician):
    """Erase closed cases that nothing needs any more: her case is closed when her button
    is returned (or the case replaced) and stays encrypted only so that the wipe can
    search the flash for it. Erased here: cases closed at least DAYS ago whose button has
    been wiped and verified since, or retired. A button still waiting for its wipe keeps
    its cases. The backups made since such a case was opened still hold it (encrypted):
    they are named, to replace. Audited per button; no key needed.

    Example: boton registry purge-cases --older-than 365 --dry-run
    """
    if days is None:  # no default: how long cases are kept is the programme's decision
        if not _interactive():
            raise DeviceError("missing --older-than (nothing is asked when stdin is not a terminal)", EXIT_USAGE)
        days = click.prompt("Erase cases closed at least how many days ago", type=click.IntRange(0, 36500))
    with _open(registry_path, technician) as reg:
        found = reg.purge_closed_cases(days, dry_run=True)
        if found and not dry_run:
            _confirm(f"Erase {len(found)} closed case(s) for good?", yes)
            found = reg.purge_closed_cases(days)
        # the copies made while those cases existed still hold them
        backups = reg.backups_since(min(c["created_at"] for c in found)) if found else []
    if as_json:  # cases: erased, or (dry_run) that would be
        _echo_json({"dry_run": dry_run, "cases": found,
                    "backups_holding_them": [{"at": at, "file": name} for at, name in backups]})
        return
    if not found:
        console.print(f"no closed case older than {days} days that nothing needs")
        return
    for c in found:
        console.print(f"{c['label']} ({c['mac']}): case closed {c['closed_at'][:10]}" + ("" if dry_run else " erased"))
    console.print(f"{len(found)} closed case(s) " + ("would be erased (dry run)" if dry_run else "erased"))
    if backups:
        console.print(f"{len(backups)} backup(s) made since still hold them, encrypted: replace them with a "
                      "new backup and destroy these: " + ", ".join(f"{escape(name)} ({at[:10]})" for at, name in backups),
                      soft_wrap=True)


@registry.command()
@click.argument("dest", type=click.Path(dir_okay=False))
@registry_options
def backup(dest, registry_path, technician):
    """Copy the registry to DEST while others may read it (SQLite's online backup): mode
    0600 (on Windows private only inside your user profile), never over an existing file. Case data stays encrypted in it; keep the key's
    backup apart from it. Written to the audit trail once DEST is in place (a backup that
    failed is not recorded); the copy holds that row too.

    Example: boton registry backup /media/usb/registro-2025-03-01.sqlite3
    """
    with _open(registry_path, technician) as reg:
        rows = reg.backup(dest)
    warn_if_exposed(dest)
    console.print(f"backed up to {escape(str(dest))} ({rows} audit rows, case data still "
                  "encrypted)", soft_wrap=True)


@registry.command()
@click.argument("backup_file", metavar="BACKUP", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@registry_options
def restore(backup_file, yes, registry_path, technician):
    """Replace the registry with BACKUP, after checking it: SQLite's integrity check, a
    known schema, your key is its key, its audit trail verifies. The current file is kept
    as <name>.bak-<UTC time>. A registry with audit rows the backup does not hold (an older
    copy picked by mistake, or a backup from another laptop that lacks the work done here)
    is named and asked again; without a terminal that needs --yes. Run it when no other boton command is running. Needs the key.

    Example: boton registry restore /media/usb/registro-2025-03-01.sqlite3
    """
    _confirm(f"Replace the registry with {backup_file}? (the current file is kept beside it)", yes)
    set_aside = []

    def confirm_newer(newer):
        # an older copy picked by mistake, or another laptop's that lacks the work done here:
        # those rows would leave the registry (returns, cases, wipes), kept only in the file set aside
        set_aside.append(newer)
        if yes:
            return
        if not _interactive():
            raise RegistryConflict(f"{newer}: restoring sets them aside; check the backup, or add "
                                   "--yes to restore it anyway")
        _confirm(f"{newer}. Restore this backup anyway? (they are kept in the file set aside)", False)

    def confirm_other(other):
        if yes:
            return
        if not _interactive():
            raise RegistryConflict(f"{other}; check the backup, or add --yes to restore it anyway")
        _confirm(f"{other}. Restore it anyway? (the current file is kept beside it)", False)

    rep, kept = R.restore(backup_file, registry_path, technician=R.resolve_technician(technician),
                          confirm_newer=confirm_newer, confirm_other=confirm_other)
    console.print(f"restored from {escape(str(backup_file))}: {rep.rows} audit rows verified"
                  + (f"; the replaced file is kept as {escape(str(kept))}" if kept else "")
                  + (f", with {set_aside[0].rows} audit row(s) the backup does not hold" if set_aside else ""),
                  soft_wrap=True)
