"""`boton devices ...` and `boton registry ...` through click's CliRunner, on a registry
in a temporary folder chosen by environment variables."""
import datetime as dt
import json
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from boton.cli_registry import devices, registry
from boton.errors import RegistryError
from boton.registry import Registry

MAC1, MAC2, MAC3 = "24:6f:28:00:00:01", "24:6f:28:00:00:02", "24:6f:28:00:00:03"
SECRETS = ["Luna", "Maria Lopez", "AGS/2024/00731", "4491112233", "4492223344"]


@pytest.fixture
def env(registry_env):
    return registry_env


def run(group, *args, code=0, input=None):
    res = CliRunner().invoke(group, list(args), input=input, catch_exceptions=False)
    assert res.exit_code == code, (res.stdout, res.stderr)
    return res


def dev(*args, **kw):
    return run(devices, *args, **kw)


ASSIGN = ["assign", MAC1, "--alias", "Luna", "--case-id", "AGS/2024/00731", "--name", "Maria Lopez",
          "--order-ends", "2031-01-31", "--contact", "449 111 2233", "--contact", "449 222 3344"]


def provisioned(env):
    """MAC1 ready for delivery, prepared through the API as the other commands will."""
    dev("add", MAC1, "--board", "tcall_sim800l_axp192", "--flash-size", "4MB")
    dev(*ASSIGN)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.record_deploy(MAC1, "ab" * 32)
        reg.record_provision(MAC1, "cd" * 32)
        reg.record_test_call(MAC1, True, "ok")


def test_list_says_which_buttons_run_another_release_for_a_recall(env):
    # After a firmware fix the programme must bring in every button that runs the old one;
    # the registry knows what each last ran (deploy, test call)
    from boton.release import release_hash

    for mac in (MAC1, MAC2, MAC3):
        dev("add", mac, "--board", "tcall_sim800l_axp192")
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.record_deploy(MAC1, release_hash("tcall_sim800l_axp192"))
        reg.record_deploy(MAC2, "ab" * 32)               # an older release
    rows = {d["mac"]: d["firmware"] for d in json.loads(dev("list", "--json").stdout)["devices"]}
    assert rows == {MAC1: "this release", MAC2: "another release", MAC3: None}
    out = dev("list", "--outdated", "--json").stdout
    assert {d["mac"] for d in json.loads(out)["devices"]} == {MAC2, MAC3}
    table = dev("list").stdout
    line = {m: next(l for l in table.splitlines() if m in l) for m in (MAC1, MAC2)}
    assert " this " in line[MAC1] and " OTHER " in line[MAC2]
    assert "no devices with another release or another C4 in state delivered" in dev(
        "list", "--outdated", "--state", "delivered").stdout
    # the board's own release: another profile's hash is not this board's firmware
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.record_deploy(MAC1, release_hash("tcall_sim800l_ip5306"))
    assert json.loads(dev("show", MAC1, "--json").stdout)["firmware"] == "another release"


def test_list_says_which_buttons_still_call_an_old_c4_for_a_recall(env):
    # The programme's C4 number changes: every button whose configuration calls the old one
    # first must be provisioned again. The registry records the C4 each configuration calls
    # first; the board profile's safe_c4 is the programme's C4
    from boton.boards import load_board
    from boton.release import release_hash

    programme = load_board("tcall_sim800l_axp192")["safe_c4"]
    for mac in (MAC1, MAC2, MAC3):
        dev("add", mac, "--board", "tcall_sim800l_axp192")
    with Registry(env["BOTON_REGISTRY"]) as reg:
        for mac in (MAC1, MAC2, MAC3):
            reg.record_deploy(mac, release_hash("tcall_sim800l_axp192"))   # this release on all
        reg.record_provision(MAC1, "cd" * 32, c4_first=programme)
        reg.record_provision(MAC2, "ce" * 32, c4_first="+524490000001")    # the old C4
        reg.record_provision(MAC3, "cf" * 32)                               # before it was recorded
        with pytest.raises(RegistryError, match="not E.164"):
            reg.record_provision(MAC3, "cf" * 32, c4_first="449 000 0001")
    rows = {d["mac"]: (d["c4"], d["c4_first"]) for d in json.loads(dev("list", "--json").stdout)["devices"]}
    # MAC3's configuration was written before the registry recorded its C4: it may call an
    # old one, so it is on the recall list until a provisioning or a test call records it
    assert rows == {MAC1: ("the programme's", programme), MAC2: ("another number", "+524490000001"),
                    MAC3: ("unknown", None)}
    outdated = lambda: {d["mac"] for d in json.loads(dev("list", "--outdated", "--json").stdout)["devices"]}  # noqa: E731
    assert outdated() == {MAC2, MAC3}
    table = dev("list").stdout
    assert " OTHER " in next(ln for ln in table.splitlines() if MAC2 in ln)
    assert " ? " in next(ln for ln in table.splitlines() if MAC3 in ln)
    assert " OTHER " not in next(ln for ln in table.splitlines() if MAC1 in ln)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.record_provision(MAC2, "ce" * 32, c4_first=programme)   # provisioned again with the new C4
        reg.record_test_call(MAC3, True, "ok", c4_first=programme)  # its test call read its C4
        reg.flash_erasing(MAC1)                     # a chip erase takes the configuration with it
    assert outdated() == set()
    assert json.loads(dev("show", MAC1, "--json").stdout)["c4_first"] is None


def test_a_broken_board_profile_does_not_cost_the_list(env, tmp_path, monkeypatch):
    # the programme's C4 is read from every profile: one broken elsewhere (a pin missing) must
    # not take the whole recall list with it
    import shutil

    from boton import boards

    folder = tmp_path / "boards"
    shutil.copytree(boards.BOARDS, folder)
    broken = folder / "devkitc_sim800l_neo6m.json"
    profile = json.loads(broken.read_text())
    del profile["modem"]["rx"]
    broken.write_text(json.dumps(profile))
    monkeypatch.setattr(boards, "BOARDS", folder)
    dev("add", MAC1, "--board", "tcall_sim800l_axp192")
    assert MAC1 in dev("list").stdout


def test_add_list_and_counts(env):
    assert "added BS-0001 (24:6f:28:00:00:01), in stock" in dev("add", "24-6F-28-00-00-01").stdout
    dev("add", MAC2, "--label", "bs-0042", "--board", "tcall_sim800l_axp192", "--flash-size", "4MB")
    out = dev("list").stdout
    assert "BS-0001" in out and "BS-0042" in out and "24:6f:28:00:00:02" in out
    assert "0 of 2 delivered (2 in stock)" in out
    data = json.loads(dev("list", "--json").stdout)
    assert [d["label"] for d in data["devices"]] == ["BS-0001", "BS-0042"]
    assert data["counts"]["total"] == 2 and data["devices"][1]["flash_size_text"] == "4MB"
    assert json.loads(dev("list", "--state", "delivered", "--json").stdout)["devices"] == []


def test_list_shows_a_button_that_cannot_call(env):
    provisioned(env)
    dev("add", MAC2)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.record_provision(MAC2, "cd" * 32)
        reg.record_no_voice(MAC2, "LTE, SMS only")
    rows = {ln.split()[0]: ln for ln in dev("list").stdout.splitlines() if ln.startswith("BS-")}
    assert "no voice" in rows["BS-0002"] and "passed" not in rows["BS-0002"]
    assert "passed" in rows["BS-0001"] and "no voice" not in rows["BS-0001"]


def test_list_flags_a_delivered_button_whose_test_no_longer_counts(env, capsys):
    # The recall: a delivered button comes in, gets the fixed firmware (deploy clears its
    # test call) and stays delivered; until its test call passes again the list says so,
    # and deploy said so when it ran
    from boton.cli import _warn_if_delivered_untested
    provisioned(env)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.deliver(MAC1)
    line = next(ln for ln in dev("list").stdout.splitlines() if MAC1 in ln)
    assert "passed" in line and "untested" not in line
    with Registry(env["BOTON_REGISTRY"]) as reg:
        rec = reg.record_deploy(MAC1, "01" * 32)
    _warn_if_delivered_untested(rec, "new firmware")
    assert "BS-0001 is delivered: new firmware cleared its test call" in " ".join(capsys.readouterr().err.split())
    line = next(ln for ln in dev("list").stdout.splitlines() if MAC1 in ln)
    assert "delivered" in line and "untested" in line
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.record_test_call(MAC1, True, "ok")
    line = next(ln for ln in dev("list").stdout.splitlines() if MAC1 in ln)
    assert "passed" in line and "untested" not in line


def test_edit_case_on_her_delivered_button_and_what_the_list_says_until_it_is_tested(env):
    # her trusted contacts change while she carries the button: edited in the registry,
    # the list says it needs `provision`, then (re-provisioned, still delivered) its test call
    provisioned(env)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.deliver(MAC1)
    dev("edit-case", "BS-0001", code=2)                          # nothing to edit
    res = dev("edit-case", "BS-0001", "--contact", "449 111 2233", "--contact", "449 555 6677")
    out = " ".join(res.stdout.split())
    assert "2 contact(s) (+52********33, +52********77)" in out and "provision it again" in out
    # she and C4 keep the PIN they know: what it says to run keeps it, as its --help does
    assert "--keep-pin`" in out and "--keep-pin" in " ".join(dev("edit-case", "--help").stdout.split())
    assert "4495556677" not in res.stdout
    line = next(ln for ln in dev("list").stdout.splitlines() if MAC1 in ln)
    assert "delivered" in line and "provision" in line
    assert json.loads(dev("show", "BS-0001", "--json").stdout)["config_outdated"] is True
    with Registry(env["BOTON_REGISTRY"]) as reg:
        _, row = reg.provision_case(MAC1)
        reg.begin_provision(MAC1, "ce" * 32, row)
    line = next(ln for ln in dev("list").stdout.splitlines() if MAC1 in ln)
    assert "delivered" in line and "provision" in line               # interrupted: provision again
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.finish_provision(MAC1, "ce" * 32)
    line = next(ln for ln in dev("list").stdout.splitlines() if MAC1 in ln)
    assert "delivered" in line and "untested" in line and "provision" not in line
    audit = dev("audit", "BS-0001", "--json").stdout
    assert "edit_case" in audit and not any(s in audit for s in SECRETS + ["4495556677"])


def test_errors_are_one_line_with_exit_codes(env):
    dev("add", MAC1)
    res = dev("add", MAC1, code=7)
    assert res.stderr.strip() == "error: device 24:6f:28:00:00:01 is already in the registry as BS-0001"
    assert "Traceback" not in res.stderr
    assert "is not a MAC address" in dev("add", "24:6f:28", code=2).stderr
    # registry first: refused by its state before the (unreachable) port is opened
    assert "it is in_stock" in dev("deliver", "BS-0001", "--port", "socket://127.0.0.1:9", code=7).stderr
    # --port may be left out, as the guide says for every command (the one board plugged in)
    assert "it is in_stock" in dev("deliver", "BS-0001", code=7).stderr
    assert "no device 'BS-0099'" in dev("show", "BS-0099", code=2).stderr


def test_assign_show_and_reveal(env):
    dev("add", MAC1)
    out = dev(*ASSIGN).stdout
    assert "assigned a case to BS-0001: 2 contact(s) (+52********33, +52********44)" in out
    for s in SECRETS:
        assert s not in out
    shown = dev("show", "BS-0001").stdout + dev("show", MAC1, "--json").stdout
    assert "assigned (use --reveal to see it)" in shown
    for s in SECRETS:
        assert s not in shown
    data = json.loads(dev("show", "bs-0001", "--reveal", "--json").stdout)
    assert data["case"] == {"alias": "Luna", "case_id": "AGS/2024/00731", "full_name": "Maria Lopez",
                            "notes": None, "order_ends": "2031-01-31",
                            "contacts": ["+524491112233", "+524492223344"]}
    text = dev("show", "BS-0001", "--reveal").stdout
    assert "Maria Lopez" in text and "+524491112233, +524492223344" in text
    assert [a["action"] for a in json.loads(dev("audit", "BS-0001", "--json").stdout)] == [
        "add", "assign", "reveal", "reveal"]


def test_assign_does_not_prompt_without_a_terminal(env):
    dev("add", MAC1)
    res = dev("assign", MAC1, "--case-id", "X-1", "--order-ends", "none", "--contact", "4491112233",
              code=2, input="Luna\n")
    assert "missing --alias" in res.stderr


def test_assign_refuses_a_number_on_another_active_case(env):
    dev("add", MAC1)
    dev("add", MAC2)
    dev(*ASSIGN)
    res = dev("assign", MAC2, "--alias", "Sol", "--case-id", "X-2", "--order-ends", "none",
              "--contact", "+52 449 222 3344", code=7)
    assert "contact #1 +52********44 is already on the active case of BS-0001" in res.stderr
    assert "4492223344" not in res.stderr
    assert "not a valid number" in dev("assign", MAC2, "--alias", "Sol", "--case-id", "X-2",
                                       "--order-ends", "none", "--contact", "449 12", code=2).stderr


def test_delivery_return_and_counts_line(env):
    provisioned(env)
    dev("add", MAC2)
    # `devices deliver` reads the button itself (tests/test_order_of_operations.py); here the
    # registry's side of it, so the rest of the life cycle runs without a device
    with Registry(env["BOTON_REGISTRY"]) as reg:
        assert reg.deliver(MAC1).state == "delivered"
    assert "1 of 2 delivered (1 in stock)" in dev("list").stdout
    # the button is not at hand here: --without-button, confirmed (--yes where nobody is asked)
    assert "--yes" in dev("return", "BS-0001", "--without-button", code=2).stderr
    with Registry(env["BOTON_REGISTRY"]) as reg:
        assert reg.get(MAC1).state == "delivered"
    out = dev("return", "BS-0001", "--without-button", "--yes").stdout
    assert "returned (without the button), her case closed; wipe its configuration" in out
    assert "BS-0002 marked faulty" in dev("faulty", "BS-0002", "--reason", "no GSM", "--technician", "beto").stdout
    res = dev("retire", "BS-0001", "--reason", "cracked", code=7)
    assert "wipe it first" in res.stderr
    assert "NOT wiped" in dev("retire", "BS-0001", "--reason", "cracked", "--unwiped").stdout
    rows = json.loads(dev("audit", "--json").stdout)
    assert rows[-2]["technician"] == "beto" and rows[-2]["action"] == "faulty"
    assert rows[-1]["action"] == "retire"


def test_ending_soon(env):
    dev("add", MAC1)
    dev("add", MAC2)
    dev(*ASSIGN[:6], "--order-ends", "2000-01-01", "--contact", "449 111 2233")
    later = str(dt.date.today() + dt.timedelta(days=1000))
    dev("assign", MAC2, "--alias", "Sol", "--case-id", "X-2", "--order-ends", later, "--contact", "4493334455")
    data = json.loads(dev("ending-soon", "--json").stdout)
    assert [(r["label"], r["alias"], r["order_ends"]) for r in data] == [("BS-0001", "Luna", "2000-01-01")]
    assert data[0]["days_left"] < 0
    assert "ended" in dev("ending-soon").stdout
    assert "BS-0002" in dev("ending-soon", "--days", "1000").stdout


@pytest.mark.parametrize("typed", ["0001-01-01", "1999-12-31", "9999-12-31", "past the last year"])
def test_an_order_end_no_order_can_have_is_refused(env, typed):
    last = dt.date.today().year + 20
    typed = f"{last + 1}-01-01" if typed == "past the last year" else typed
    dev("add", MAC1)
    err = dev(*ASSIGN[:6], "--order-ends", typed, "--contact", "449 111 2233", code=2).stderr
    assert err.strip() == (f"error: order end date {typed} is not a plausible order end: give a date from "
                           f"2000-01-01 to {last}-12-31 (or 'none' if the order has no end)")
    dev(*ASSIGN[:6], "--order-ends", f"{last}-12-31", "--contact", "449 111 2233")


def test_a_stored_case_stays_readable_under_rules_added_since(env, monkeypatch):
    """Her case written before the order-date range and the number-kind rule (an 800
    contact, an order to 9999) is still read, shown and can be corrected."""
    import phonenumbers

    from boton import registry_casedata, rules
    dev("add", MAC1)
    with monkeypatch.context() as before:   # as an older release wrote it
        before.setattr(registry_casedata, "ORDER_YEARS_AHEAD", 9999)
        before.setattr(rules, "CALLABLE_TYPES", (*rules.CALLABLE_TYPES, phonenumbers.PhoneNumberType.TOLL_FREE))
        dev(*ASSIGN[:6], "--order-ends", "9999-12-31", "--contact", "800 123 4567")
    data = json.loads(dev("show", "BS-0001", "--reveal", "--json").stdout)
    assert (data["case"]["order_ends"], data["case"]["contacts"]) == ("9999-12-31", ["+528001234567"])
    assert "toll-free" in dev(*ASSIGN[:6], "--order-ends", "none", "--contact", "800 123 4567", code=2).stderr


def test_ending_soon_with_a_wrong_key(env, monkeypatch):
    dev("add", MAC1)
    dev(*ASSIGN)
    monkeypatch.setenv("BOTON_KEY", Fernet.generate_key().decode())
    res = dev("ending-soon", code=2)
    assert "cannot decrypt: wrong BOTON_KEY" in res.stderr
    monkeypatch.delenv("BOTON_KEY")
    assert "no registry key" in dev("show", MAC1, "--reveal", code=2).stderr
    assert "BS-0001" in dev("list").stdout                        # no key needed for devices


def test_import_and_export(env, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("mac,label,alias,case_id,contacts,order_ends\n"
                   f"{MAC1},BS-0001,Luna,AGS/2024/00731,4491112233;4492223344,2031-01-31\n"
                   f"{MAC2},,,,,\n")
    assert "imported 2 device(s); 0 of 2 delivered (2 in stock)" in dev("import", str(src)).stdout
    # again: every device and label is in the registry already, a conflict as `devices --help` says
    again = dev("import", str(src), code=7).stderr
    assert "exit codes: 0 ok, 2 bad input or key problem, 7 refused by the registry's" in \
        " ".join(dev("--help").stdout.split()).lower()
    assert f"line 2, field 'mac': {MAC1} is already in the registry as BS-0001" in again
    out = tmp_path / "c4.csv"
    dev("export", str(out))
    text = out.read_text()
    assert "BS-0001" in text and not any(s in text for s in SECRETS)
    full = tmp_path / "full.csv"
    assert "holds case data in the clear" in dev("export", str(full), "--with-case-data").stdout
    assert "Luna" in full.read_text() and stat.S_IMODE(full.stat().st_mode) == 0o600


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_an_export_stopped_by_a_signal_leaves_none_of_her_data_behind(env, tmp_path, sig):
    """A terminal closed (SIGHUP) or a shutdown or `timeout` (SIGTERM) while the export of
    her case data is written: unwound as Ctrl-C is, so its temporary file, in the clear,
    is removed and the command says it was stopped. (By default Python ended at once and
    left it, its pid in the name, so no later run cleaned it up.)"""
    import subprocess
    import sys

    provisioned(env)
    out = tmp_path / "exp" / "cases.csv"
    out.parent.mkdir()
    # the signal comes while the temporary file is written, as a real one may
    code = ("import os, signal\n"
            "real = os.fsync\n"
            f"os.fsync = lambda fd: (os.kill(os.getpid(), signal.{sig}), real(fd))\n"
            "from boton.cli import main\n"
            f"main(['devices', 'export', {str(out)!r}, '--with-case-data', '--yes'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, (proc.returncode, proc.stderr)
    assert f"stopped ({sig})" in proc.stderr and "Traceback" not in proc.stderr
    assert list(out.parent.iterdir()) == []
    assert "export" not in [a["action"] for a in json.loads(dev("audit", "--json").stdout)]

def test_export_never_writes_over_the_registry_its_key_or_a_backup(env, tmp_path):
    # `boton devices export $BOTON_REGISTRY` once said "exported 1 device(s)" over the registry:
    # every device, her encrypted case and the audit trail gone. Never, even with --force.
    provisioned(env)
    reg = Path(env["BOTON_REGISTRY"])
    backup = tmp_path / "copia.sqlite3"
    run(registry, "backup", str(backup))
    key_copy = tmp_path / "llave.txt"
    key_copy.write_text(env["BOTON_KEY"] + "\n")
    link = tmp_path / "inventario.csv"
    link.symlink_to(reg)
    kept = reg.parent / "registry.sqlite3.bak-20260101T000000Z"
    kept.write_bytes(backup.read_bytes())
    targets = [reg, Path(f"{reg}-wal"), Path(f"{reg}-shm"), Path(f"{reg}-journal"), kept,
               Path(env["BOTON_KEY_FILE"]), backup, key_copy, link]
    before = {t: t.read_bytes() for t in targets if t.is_file()}
    for target in targets:
        for force in ([], ["--force"]):
            for case_data in ([], ["--with-case-data", "--yes"]):
                res = dev("export", str(target), *force, *case_data, code=2)
                assert "refusing to write the export to" in res.stderr, target
                assert "--force never allows this" in res.stderr and res.stderr.count("\n") == 1
    assert {t: t.read_bytes() for t in targets if t.is_file()} == before
    assert not Path(f"{reg}-journal").exists() and not Path(env["BOTON_KEY_FILE"]).exists()
    assert "BS-0001" in dev("list").stdout                      # the registry is whole
    run(registry, "verify")
    assert "export" not in [a["action"] for a in json.loads(dev("audit", "--json").stdout)]


def test_export_replaces_an_existing_file_only_with_force(env, tmp_path):
    provisioned(env)
    out = tmp_path / "c4.csv"
    out.write_text("someone else's sheet")
    res = dev("export", str(out), code=7)
    assert "already exists" in res.stderr and "--force" in res.stderr
    res = dev("export", str(out), "--with-case-data", "--yes", code=7)
    assert out.read_text() == "someone else's sheet"
    assert "exported 1 device(s)" in dev("export", str(out), "--force").stdout
    assert "BS-0001" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "reg") == ["c4.csv"]   # no .tmp left


def test_import_errors_name_line_and_field(env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"mac,label\n{MAC1},BS-0001\n{MAC2},BS-0001\nzz,BS-0003\n")
    res = dev("import", str(bad), code=2)
    assert "line 3, field 'label': BS-0001 is also on line 2" in res.stderr
    assert "line 4, field 'mac': not a MAC address" in res.stderr
    assert "nothing was changed" in res.stderr
    assert json.loads(dev("list", "--json").stdout)["devices"] == []


def test_help_says_what_and_gives_an_example(env):
    for cmd in devices.commands:
        out = dev(cmd, "--help").stdout
        assert "Example: boton devices " + cmd in out, cmd
    for cmd in registry.commands:
        assert "Example: boton registry " + cmd in run(registry, cmd, "--help").stdout, cmd
    for cmd in ("list", "show", "ending-soon", "audit"):
        assert "--json" in dev(cmd, "--help").stdout


def test_reasons_say_they_must_not_hold_her_data(env):
    # a reason is kept for good in the append-only audit trail and in every backup
    for cmd in ("faulty", "retire"):
        text = " ".join(dev(cmd, "--help").stdout.split())
        assert "never her name, address" in text and "audit trail" in text and "backup" in text, cmd


def test_init_key_and_info(env, monkeypatch, tmp_path):
    monkeypatch.delenv("BOTON_KEY")
    info = json.loads(run(registry, "info", "--json").stdout)
    assert info["key_ok"] is False and "no registry key" in info["key_problem"]
    assert (info["exists"], info["schema_version"]) == (False, None)       # described, not made
    assert not Path(env["BOTON_REGISTRY"]).parent.exists()
    out = run(registry, "init-key").stdout
    assert "Back it up" in out
    kf = tmp_path / "cfg" / "registry.key"
    assert stat.S_IMODE(kf.stat().st_mode) == 0o600
    assert kf.read_text().strip() not in out                         # the key is never printed
    assert "refusing to overwrite" in run(registry, "init-key", code=7).stderr
    dev("add", MAC1)
    dev(*ASSIGN)
    info = json.loads(run(registry, "info", "--json").stdout)
    assert info["key_ok"] and info["key_source"].startswith("key file")
    assert len(info["key_fingerprint"]) == 16 and info["schema_version"] == 10


def test_a_new_laptop_without_the_key_is_told_to_install_the_offices_key(env, monkeypatch, tmp_path):
    # a registry copied to a new laptop, no key file: `info` said "Create it once with
    # `boton registry init-key`", which made a new, wrong key; every case command then
    # failed "cannot decrypt", and the wrong file sat where the office's key must go
    dev("add", MAC1)
    dev(*ASSIGN)                                     # case data under the office's key
    office = Registry(env["BOTON_REGISTRY"]).key_fingerprint()
    monkeypatch.delenv("BOTON_KEY")
    kf = Path(env["BOTON_KEY_FILE"])
    info = json.loads(run(registry, "info", "--json").stdout)
    problem = " ".join(info["key_problem"].split())
    assert info["key_ok"] is False and "init-key" not in problem
    assert f"locked with key {office}" in problem
    assert "Install the office's key file from its backup" in problem and str(kf) in problem
    out = " ".join(run(registry, "info").stdout.split())
    assert "init-key" not in out and "Install the office's key file" in out
    res = run(registry, "init-key", code=7)
    said = " ".join(res.stderr.split())
    assert said.startswith("error: refusing to create a new key: the registry at ")
    assert f"already uses key {office}" in said and str(kf) in said and "backup" in said
    assert not kf.exists()
    # with the office's key in place, all is as before
    kf.parent.mkdir(exist_ok=True)
    kf.write_text(env["BOTON_KEY"] + "\n")
    kf.chmod(0o600)
    assert json.loads(run(registry, "info", "--json").stdout)["key_ok"] is True


def test_a_restore_without_the_key_is_told_to_install_the_offices_key(env, monkeypatch, tmp_path):
    dev("add", MAC1)
    dev(*ASSIGN)
    run(registry, "backup", str(tmp_path / "copia.sqlite3"))
    monkeypatch.delenv("BOTON_KEY")
    monkeypatch.setenv("BOTON_REGISTRY", str(tmp_path / "new-laptop" / "registry.sqlite3"))
    said = " ".join(run(registry, "restore", str(tmp_path / "copia.sqlite3"), code=2).stderr.split())
    assert "init-key" not in said and "Install the office's key file from its backup" in said


def test_works_inside_the_main_group(env):
    """As registered by `main.add_command(devices)` under cli.py's BotonGroup."""
    from boton.cli import BotonGroup

    main = BotonGroup(name="boton")
    main.add_command(devices)
    main.add_command(registry)
    res = run(main, "devices", "add", MAC1)
    assert "added BS-0001" in res.stdout
    assert "already in the registry" in run(main, "devices", "add", MAC1, code=7).stderr
    assert isinstance(main.commands["registry"], click.Group)


def test_purge_cases_erases_only_what_nothing_needs(env):
    provisioned(env)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.deliver(MAC1)
        reg.return_device(MAC1)
    res = run(registry, "purge-cases", code=2)                 # no default retention
    assert "missing --older-than" in res.stderr
    assert "no closed case older than 0 days" in run(registry, "purge-cases", "--older-than", "0").stdout
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.record_wipe(MAC1, verified=True)
    copia = Path(env["BOTON_REGISTRY"]).parent.parent / "copia-marzo.sqlite3"
    run(registry, "backup", str(copia))
    # each restore keeps the file it replaced beside the registry, her case in it: such a
    # copy was never named (and two restores within a second failed, "File exists")
    for _ in range(2):
        run(registry, "restore", str(copia), "--yes")
    kept = sorted(p.name for p in Path(env["BOTON_REGISTRY"]).parent.glob("*.bak-*"))
    assert len(kept) == 2
    out = run(registry, "purge-cases", "--older-than", "0", "--dry-run").stdout
    assert "BS-0001 (24:6f:28:00:00:01): case closed" in out and "would be erased (dry run)" in out
    assert "3 backup(s) made since still hold them" in out and "copia-marzo.sqlite3" in out
    data = json.loads(run(registry, "purge-cases", "--older-than", "0", "--json").stdout)
    assert not data["dry_run"] and [r["label"] for r in data["cases"]] == ["BS-0001"]
    assert sorted(b["file"] for b in data["backups_holding_them"]) == sorted(["copia-marzo.sqlite3"] + kept)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        assert reg.wipe_cases(MAC1) == []
    assert "Luna" not in run(devices, "audit", MAC1).stdout


def test_export_into_a_missing_folder_is_one_line_and_changes_nothing(env, tmp_path):
    dev("add", MAC1)
    before = json.loads(dev("audit", "--json").stdout)
    out = tmp_path / "nonexistent-dir" / "botones.csv"
    res = dev("export", str(out), code=2)
    assert res.stderr == f"error: cannot write the export to {out}: there is no folder {out.parent}\n"
    assert json.loads(dev("audit", "--json").stdout) == before


def test_paths_in_a_folder_the_user_may_not_enter_are_one_line(env, tmp_path, unenterable):
    # as a technician's account: `registry backup /root/x/b.sqlite3` (and export, restore)
    # ended in a PermissionError traceback from looking whether the file exists
    dev("add", MAC1)
    before = json.loads(dev("audit", "--json").stdout)
    b = unenterable / "b.sqlite3"
    res = run(registry, "backup", str(b), code=2)
    assert res.stderr == f"error: cannot write {b}: Permission denied\n"
    e = unenterable / "e.csv"
    res = dev("export", str(e), code=2)
    assert res.stderr == f"error: cannot write the export to {e}: {unenterable}: Permission denied\n"
    res = run(registry, "restore", "--yes", str(b), code=2)
    assert res.stderr == f"error: cannot read the backup {b}: Permission denied\n"
    assert json.loads(dev("audit", "--json").stdout) == before


def test_restore_where_a_file_is_in_the_way_of_the_registry_folder_is_one_line(env, tmp_path, monkeypatch):
    dev("add", MAC1)
    b = tmp_path / "b.sqlite3"
    run(registry, "backup", str(b))
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    monkeypatch.setenv("BOTON_REGISTRY", str(in_the_way / "registry.sqlite3"))
    res = run(registry, "restore", "--yes", str(b), code=2)
    assert res.stderr == (f"error: cannot restore {in_the_way / 'registry.sqlite3'}: cannot make its folder "
                          f"{in_the_way}: a file is in the way\n")
    assert in_the_way.read_text() == ""


def test_relabel_gives_a_button_a_label_her_sms_shows_whole(env):
    dev("add", MAC1)
    with Registry(env["BOTON_REGISTRY"]) as reg:     # a label from before labels were limited to 12
        reg.db.execute("UPDATE devices SET label = 'AGS-CENTRO-0042'")
    res = dev("add", MAC2, "--label", "AGS-CENTRO-0043", code=2)
    assert "her alert SMS shows only the first 12" in res.stderr
    res = dev("relabel", "AGS-CENTRO-0042", "AGS-0042")
    assert res.stdout == "AGS-CENTRO-0042 (24:6f:28:00:00:01) is now AGS-0042\n"
    assert json.loads(dev("show", MAC1, "--json").stdout)["label"] == "AGS-0042"


def test_relabel_of_a_delivered_button_says_it_still_carries_its_old_label(env):
    # her button keeps its old label (her alert SMS, her daily reports, C4's file) until it
    # is provisioned again; that label is never given to another button
    provisioned(env)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.deliver(MAC1)
    out = " ".join(dev("relabel", "BS-0001", "AGS-0001").stdout.split())
    assert out.startswith("BS-0001 (24:6f:28:00:00:01) is now AGS-0001")
    assert "Her button still carries BS-0001 in its configuration" in out
    assert "`boton provision --device AGS-0001" in out and "--keep-pin" in out and "test-call" in out
    res = dev("add", MAC2, "--label", "BS-0001", code=7)
    assert res.stderr.startswith("error: label BS-0001 was used by device 24:6f:28:00:00:01 (now AGS-0001)")
    assert "added BS-0002" in dev("add", MAC2).stdout
    for s in SECRETS:
        assert s not in out + res.stderr


@pytest.mark.parametrize("args", [
    ["add", MAC1, "--label", "+52 449 111 2233"],
    ["show", "449 111 2233"], ["show", "4491112233"], ["show", "Maria Lopez Hernandez"],
    ["show", "+524491112233"], ["add", "449 111 2233"], ["show", "AGS/2024/00731"],
])
def test_what_is_refused_where_a_label_or_mac_goes_is_not_echoed_if_it_may_be_hers(env, args):
    # `devices show "449 111 2233"` said "label '449 111 2233' is not valid": her number (or
    # her name) on the screen and in whatever log keeps it
    dev("add", MAC2)
    res = dev(*args, code=2)
    assert res.stderr.count("\n") == 1 and "not shown" in res.stderr, res.stderr
    # the registry's path is the machine's (pytest's temporary folder, "pytest-449/..."
    # in CI's 449th run), never hers
    said = res.stderr.replace(str(Path(env["BOTON_REGISTRY"]).parent), "<registry folder>")
    for secret in ("449", "2233", "Maria", "Lopez", "00731"):
        assert secret not in said


def test_a_label_or_mac_that_cannot_be_hers_is_still_echoed(env):
    assert "label 'BS_0042' is not valid" in dev("add", MAC1, "--label", "BS_0042", code=2).stderr
    assert "no device 'BS-0099' in the registry" in dev("show", "BS-0099", code=2).stderr
    assert "'24:6f:28' is not a MAC address" in dev("add", "24:6f:28", code=2).stderr


@pytest.mark.parametrize("args", [
    (devices, "list"), (devices, "show", "BS-0001"), (devices, "audit"), (devices, "ending-soon"),
    (devices, "return", "BS-0001", "--without-button", "--yes"), (registry, "verify"), (registry, "backup", "b.sqlite3"),
    (registry, "purge-cases", "--older-than", "30"),
])
def test_a_mistyped_registry_path_is_refused_not_created(env, tmp_path, args):
    # `devices list --registry /tmp/typo/x.sqlite3` said "no devices" and left a folder, an
    # empty registry and its witness there (the next command then wrote to it)
    typo = tmp_path / "typo" / "x.sqlite3"
    res = run(*args, "--registry", str(typo), code=2)
    assert res.stderr == (f"error: no registry at {typo}: check --registry or BOTON_REGISTRY (the first "
                          "`boton devices add` or `devices import` makes a new one)\n")
    assert not typo.parent.exists()


def test_info_on_a_registry_not_made_yet_describes_it_and_makes_nothing(env, tmp_path):
    typo = tmp_path / "typo" / "x.sqlite3"
    out = run(registry, "info", "--registry", str(typo)).stdout
    assert f"registry: {typo} (none yet: the first `boton devices add` or `devices import` makes it)" in out
    assert not typo.parent.exists()


def test_the_first_device_added_or_imported_makes_the_registry(env, tmp_path):
    first = tmp_path / "new" / "registry.sqlite3"
    dev("add", MAC1, "--registry", str(first))
    assert "1 in stock" in dev("list", "--registry", str(first)).stdout
    csv_file = tmp_path / "in.csv"
    csv_file.write_text(f"mac\n{MAC2}\n")
    other = tmp_path / "other" / "registry.sqlite3"
    dev("import", str(csv_file), "--registry", str(other))
    assert other.exists()



@pytest.mark.parametrize("force", [(), ("--force",)])
def test_export_to_a_named_pipe_is_refused_even_with_force_and_never_waits_on_it(env, tmp_path, force,
                                                                                 unblocking):
    # `devices export FIFO` hung for ever (the target was opened to be read); with --force a
    # pipe or a device node was replaced by a regular file
    import os

    dev("add", MAC1)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link-to-pipe"
    link.symlink_to(fifo)
    for target in (fifo, link):
        res = unblocking(fifo, lambda: CliRunner().invoke(devices, ["export", str(target), *force],
                                                          catch_exceptions=False))
        assert res.exit_code == 2, res.output
        assert res.stderr == (f"error: refusing to write the export to {target}: it is not a regular file "
                              "(a device, a pipe or a folder); choose another file name (--force never "
                              "allows this)\n")
        assert stat.S_ISFIFO(os.stat(target).st_mode)


def test_an_audit_limit_beyond_any_trail_is_a_usage_error_not_a_registry_error(env):
    # --limit 99999999999999999999 reached SQLite: "registry error ...: datatype mismatch"
    dev("add", MAC1)
    res = dev("audit", "--limit", "99999999999999999999", code=2)
    assert "--limit" in res.stderr and "registry error" not in res.stderr
    assert len(json.loads(dev("audit", "--limit", "1000000", "--json").stdout)) == 1


def test_a_board_is_one_of_this_releases_profiles(env, tmp_path):
    # `devices add --board nonexistent_board` was registered: deploy, release checks and
    # `list --outdated` then knew no such board
    res = dev("add", MAC1, "--board", "nonexistent_board", code=2)
    assert res.stderr.startswith("error: board 'nonexistent_board' is not a board profile of this release: "
                                 "one of ") and "tcall_sim800l_axp192" in res.stderr
    sheet = tmp_path / "in.csv"
    sheet.write_text(f"mac,board\n{MAC1},nonexistent_board\n{MAC2},tcall_sim800l_axp192\n")
    res = dev("import", str(sheet), code=2)
    assert "line 2, field 'board': not a board profile of this release: expected one of " in res.stderr
    assert "nonexistent_board" not in res.stderr            # a cell is never shown back
    dev("add", MAC1, "--board", "TCALL_SIM800L_AXP192")
    assert json.loads(dev("show", MAC1, "--json").stdout)["board"] == "tcall_sim800l_axp192"


@pytest.mark.parametrize("column, value", [("flash_size", "abc"), ("flash_size", 3.5), ("board", 7),
                                           ("updated_at", 20261202), ("voice", "yes")])
def test_a_registry_value_of_the_wrong_type_is_shown_as_invalid(env, column, value):
    # devices.flash_size = 'abc' (a hand edit, another tool): `devices list` died of a TypeError
    dev("add", MAC1, "--board", "tcall_sim800l_axp192", "--flash-size", "4MB")
    dev("add", MAC2)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.db.execute(f"UPDATE devices SET {column} = ? WHERE mac = ?", (value, MAC1))
    out = dev("list").stdout
    assert MAC1 in out and MAC2 in out
    if column == "flash_size":
        assert "flash_size: invalid" in dev("show", MAC1).stdout
        assert json.loads(dev("list", "--json").stdout)["devices"][0]["flash_size_text"] == "invalid"
    assert MAC1 in dev("show", MAC1).stdout
    dev("export", str(Path(env["BOTON_REGISTRY"]).parent / "e.csv"))


@pytest.mark.parametrize("args, env_extra, where", [
    (["add", MAC2, "--technician", "Jos\udce9"], {}, "the value of --technician"),
    (["add", MAC2], {"BOTON_TECHNICIAN": "Jos\udce9"}, "BOTON_TECHNICIAN"),
    (ASSIGN[:-4] + ["--name=Mar\udceda"], {}, "the value of --name"),
    (["faulty", MAC1, "--reason", "bater\udceda"], {}, "the value of --reason"),
])
def test_text_that_is_not_utf8_is_refused_naming_where_not_what(env, monkeypatch, args, env_extra, where):
    """A terminal in Latin-1 hands Python bytes it cannot encode: every write (the audit's
    seal, her case's encryption) crashed with a UnicodeEncodeError traceback."""
    dev("add", MAC1)
    for k, v in env_extra.items():
        monkeypatch.setenv(k, v)
    res = run(devices, *args, code=2)
    assert res.stderr == (f"error: {where} is not UTF-8 text (a terminal set to another encoding?): "
                          "set it to UTF-8 (e.g. LANG=es_MX.UTF-8) and type it again\n")
    assert "Mar" not in res.stderr and "bater" not in res.stderr
    for k in env_extra:
        monkeypatch.delenv(k)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        assert [d.mac for d in reg.list()] == [MAC1]
        reg.verify()


@pytest.mark.parametrize("damage", ["flipped", "text"])
def test_a_damaged_case_is_named_as_damaged_and_verify_finds_it(env, damage):
    """One byte of her stored case changed (or the token stored as TEXT): `show --reveal`
    blamed the key ("wrong BOTON_KEY or key file?") whose fingerprint matched, the TEXT one
    crashed (TypeError), and `registry verify` said all was well."""
    import sqlite3
    provisioned(env)
    con = sqlite3.connect(env["BOTON_REGISTRY"])
    token = bytearray(con.execute("SELECT token FROM cases").fetchone()[0])
    if damage == "flipped":
        token[40] ^= 0x01
        con.execute("UPDATE cases SET token = ?", (bytes(token),))
    else:
        con.execute("UPDATE cases SET token = 'garbage'")
    con.commit()
    con.close()
    res = dev("show", MAC1, "--reveal", code=5)
    assert f"the case data stored for {MAC1} is damaged" in res.stderr and "wrong" not in res.stderr
    res = run(registry, "verify", code=5)
    assert "the case data of 1 case(s) is damaged" in res.stderr
