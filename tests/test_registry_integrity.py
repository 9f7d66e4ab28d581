"""The registry proves what it claims (issue 10, items 4 and 5): an append-only, sealed
audit trail that `verify` checks; device event logs checked against what the registry saw
last time; and a registry that refuses its own empty, foreign or damaged file, with backup
and a verified restore."""
import errno
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from boton import eventlog_check
from boton.registry_workflow import check_event_log
from boton.cli_registry import devices, registry
from boton.errors import RegistryError, RegistryKeyError
from boton.registry import Registry, restore

MAC = "24:6f:28:00:00:01"
BOTON = str(Path(sys.executable).parent / "boton")


@pytest.fixture
def env(tmp_path, monkeypatch):
    key = Fernet.generate_key().decode()
    path = tmp_path / "reg" / "registry.sqlite3"
    monkeypatch.setenv("BOTON_REGISTRY", str(path))
    monkeypatch.setenv("BOTON_KEY", key)
    monkeypatch.setenv("BOTON_KEY_FILE", str(tmp_path / "cfg" / "registry.key"))
    monkeypatch.setenv("BOTON_TECHNICIAN", "ana")
    return {"path": path, "key": key}


def filled(env, n=3):
    with Registry() as reg:
        for i in range(1, n + 1):
            reg.add_device(f"24:6f:28:00:00:{i:02x}")
        reg.record_deploy(MAC, "ab" * 32)


def raw(path):
    return sqlite3.connect(path, isolation_level=None)


def verify_fails(match, code=5):
    with Registry() as reg, pytest.raises(RegistryError, match=match) as e:
        reg.verify()
    assert e.value.exit_code == code
    assert "\n" not in str(e.value)


# =========================================================================== audit trail
def test_the_database_refuses_to_change_or_delete_audit_rows(env):
    filled(env)
    con = raw(env["path"])
    with pytest.raises(sqlite3.DatabaseError, match="append-only: rows cannot be changed"):
        con.execute("UPDATE audit SET technician = 'nadie' WHERE id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: rows cannot be deleted"):
        con.execute("DELETE FROM audit WHERE id = 2")
    con.close()
    with Registry() as reg:
        rep = reg.verify()
    assert rep.unsealed == [] and rep.sealed == rep.rows == 5      # 3 adds, deploy, verify


def without_triggers(path):
    con = raw(path)
    con.execute("DROP TRIGGER audit_no_update")
    con.execute("DROP TRIGGER audit_no_delete")
    return con


def test_an_edited_audit_row_is_caught(env):
    filled(env)
    con = without_triggers(env["path"])
    con.execute("UPDATE audit SET technician = 'beto' WHERE id = 2")
    con.close()
    verify_fails(r"audit row #2 \(.*add\) does not match its seal")


def test_a_deleted_audit_row_is_caught(env):
    filled(env)
    con = without_triggers(env["path"])
    con.execute("DELETE FROM audit WHERE id = 2")
    con.close()
    verify_fails(r"audit row #3 .* a row before it was removed")


def test_rows_cut_off_the_end_are_caught(env):
    filled(env)
    con = without_triggers(env["path"])
    con.execute("DELETE FROM audit WHERE id >= 3")
    con.close()
    # verify appends its own row first: that one is then not sealed into a broken chain
    verify_fails(r"ends at row #2 \(2 sealed\), but its head record says row #4 \(4 sealed\)")


def test_a_removed_or_forged_head_record_is_caught(env):
    filled(env)
    con = without_triggers(env["path"])
    con.execute("UPDATE meta SET value = '2:2:' || (SELECT seal FROM audit WHERE id = 2) || ':00' "
                "WHERE key = 'audit_anchor'")
    con.close()
    verify_fails("head record was altered")
    con = raw(env["path"])
    con.execute("DELETE FROM meta WHERE key = 'audit_anchor'")
    con.close()
    verify_fails("head record is missing")


def test_verify_needs_this_registrys_key(env, monkeypatch):
    filled(env)
    monkeypatch.setenv("BOTON_KEY", Fernet.generate_key().decode())
    with Registry() as reg, pytest.raises(RegistryKeyError, match="wrong BOTON_KEY") as e:
        reg.verify()
    assert e.value.exit_code == 2


def test_rows_written_without_the_key_are_reported_unsealed(env, monkeypatch):
    filled(env)
    monkeypatch.delenv("BOTON_KEY")
    with Registry() as reg:
        reg.add_device("24:6f:28:00:00:09")                 # device commands need no key
    monkeypatch.setenv("BOTON_KEY", env["key"])
    res = CliRunner().invoke(registry, ["verify"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "registry verified" in res.stdout and "1 row(s) were written without the key" in res.stdout


def test_verify_through_the_cli_fails_with_one_line(env):
    filled(env)
    con = without_triggers(env["path"])
    con.execute("UPDATE audit SET detail = 'label BS-0099' WHERE id = 1")
    con.close()
    res = CliRunner().invoke(registry, ["verify"])
    assert res.exit_code == 5
    assert res.stderr.count("\n") == 1 and "audit row #1" in res.stderr and "Traceback" not in res.stderr


# =========================================================================== device logs
def device_log(n, start=1, prev=None, tamper=None):
    """Log lines as the firmware writes them (its own chain function); tamper(seq) may
    change an entry's event, the chain being recomputed over it as a forger would."""
    chain = eventlog_check.firmware_eventlog().chain
    prev = prev or "0" * 16
    lines = []
    for seq in range(start, n + 1):
        event = (tamper(seq) if tamper else None) or "boot"
        body = f"{seq} {1700000000 + seq} {event} -"
        prev = chain(prev, body)
        lines.append(f"{body} {prev}")
    return lines


def test_a_log_checked_against_its_anchor():
    log = device_log(20)
    anchor = eventlog_check.event_log_head(log)
    assert anchor == {"seq": 20, "head": log[-1].rsplit(" ", 1)[1]}
    ok, why = eventlog_check.verify_event_log(device_log(30), anchor)  # it grew: fine
    assert ok and "matches the registry's last check up to entry 20" in why
    cases = {
        "rewritten": (device_log(30, tamper=lambda s: "press" if s == 7 else None),
                      "entry 20 is not the one the registry saw: the log was rewritten"),
        "tail cut": (log[:15], "ends at entry 15, but the registry saw entries up to 20"),
        "head cut": (log[5:], "starts at entry 6, but the device keeps every entry from 1 on"),
        "deleted": ([], "the log is empty, but the registry saw 20 entries"),
    }
    for name, (lines, expect) in cases.items():
        ok, why = eventlog_check.verify_event_log(lines, anchor)
        assert not ok and expect in why, name


def test_the_ring_dropping_its_oldest_segment_is_not_a_cut():
    full = device_log(300)      # segments of 64: 1-64 went when 257-300 began; 65-300 kept
    kept = full[64:]
    assert eventlog_check.verify_event_log(kept)[0]
    ok, why = eventlog_check.verify_event_log(full[100:])
    assert not ok and "starts at entry 101, but the device keeps every entry from 65 on" in why
    ok, why = eventlog_check.verify_event_log(kept, {"seq": 20, "head": full[19].rsplit(" ", 1)[1]})
    assert ok and "rotated out of the device: the link to it cannot be checked" in why
    assert eventlog_check.verify_event_log(["garbage"])[0] is False


def test_the_registry_keeps_the_anchor_and_catches_a_forged_log(env):
    filled(env)
    log = device_log(12)
    assert check_event_log(MAC, log) == (True, "12 entries intact")
    with Registry() as reg:
        assert reg.log_anchor(MAC)["seq"] == 12
    forged = device_log(14, tamper=lambda s: "x" if s == 3 else None)
    ok, why = check_event_log(MAC, forged)
    assert not ok and "entry 12 is not the one the registry saw on 20" in why
    ok, why = check_event_log(MAC, [])
    assert not ok and "it was deleted" in why
    with Registry() as reg:
        assert reg.log_anchor(MAC)["seq"] == 12                  # failures leave the anchor
        assert [a["action"] for a in reg.audit(MAC)][-3:] == ["log_check", "log_check_failed",
                                                              "log_check_failed"]
        reg.record_flash(MAC, "4MB", "12" * 32)                  # a flash erases the log
        assert reg.log_anchor(MAC) is None
    assert check_event_log(MAC, [])[0]
    ok, why = check_event_log("24:6f:28:00:00:42", log)
    assert ok and "not in the registry" in why


def test_an_sms_head_catches_what_the_anchor_cannot_and_is_never_anchored(env):
    filled(env)
    assert check_event_log(MAC, device_log(12))[0]              # the registry saw 12 entries
    sent = device_log(15)                                       # a daily SMS then said "Log 15:..."
    sms = f"Log 15:{sent[-1].rsplit(' ', 1)[1][:6]}"
    forged = device_log(20, tamper=lambda s: "x" if s == 14 else None)   # after the anchor
    assert check_event_log(MAC, forged)[0]                      # the anchor alone cannot tell
    ok, why = check_event_log(MAC, forged, sms_head=sms)
    assert not ok and "SMS head: entry 15 is not the one the SMS reported" in why
    with Registry() as reg:
        assert reg.log_anchor(MAC)["seq"] == 20                 # from the check without the SMS
    with Registry() as reg:
        reg.record_flash(MAC, "4MB", "12" * 32)
    assert check_event_log(MAC, device_log(12))[0]
    ok, why = check_event_log(MAC, device_log(18), sms_head=sms)
    assert ok and "matches the SMS head" in why
    with Registry() as reg:
        assert reg.log_anchor(MAC)["seq"] == 18
    ok, why = check_event_log(MAC, device_log(18)[:-4], sms_head="Log 18:" + "0" * 6)
    assert not ok and "ends at entry 14, but the registry saw entries up to 18" in why


# =========================================================================== registry files
def run_cli(*args):
    return CliRunner().invoke(devices, list(args))


def one_line_refusal(res, *expect):
    assert res.exit_code == 5, res.output
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    for e in expect:
        assert e in res.stderr


def test_an_empty_registry_file_is_refused_not_restarted(env):
    filled(env)
    env["path"].write_bytes(b"")
    for name in ("-wal", "-shm"):
        Path(f"{env['path']}{name}").unlink(missing_ok=True)
    one_line_refusal(run_cli("add", "24:6f:28:00:00:07"), "is empty (0 bytes)", "registry restore")
    assert env["path"].stat().st_size == 0                      # never started over


def test_a_foreign_file_is_refused(env, tmp_path):
    env["path"].parent.mkdir(parents=True)
    env["path"].write_text("a spreadsheet someone saved here\n")
    one_line_refusal(run_cli("list"), "not a registry (not an SQLite database)")
    env["path"].unlink()
    con = raw(env["path"])
    con.execute("CREATE TABLE contacts (name TEXT)")
    con.close()
    one_line_refusal(run_cli("list"), "is an SQLite database but not a registry")


def corrupt(path):
    """Overwrite a page in the middle of the file with junk, as a failing disk would."""
    with Registry() as reg:
        for i in range(2, 400):
            reg.add_device(f"24:6f:28:00:{i >> 8:02x}:{i & 255:02x}", board="tcall_sim800l_axp192")
    con = raw(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = con.execute("PRAGMA page_size").fetchone()[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    with open(path, "r+b") as f:
        f.seek(page * (pages // 2))
        f.write(b"\xa5" * page)


def test_a_damaged_registry_gives_one_line_and_no_traceback(env):
    filled(env, n=1)
    corrupt(env["path"])
    for args in (["list"], ["show", "BS-0001"], ["audit"]):
        res = run_cli(*args)
        assert res.exit_code == 5, (args, res.output)
        assert res.stderr.count("\n") == 1 and "damaged" in res.stderr and "Traceback" not in res.stderr
    proc = subprocess.run([BOTON, "registry", "verify"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
    assert proc.returncode == 5, proc.stderr
    assert "damaged" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


# =========================================================================== backup / restore
def test_backup_and_verified_restore(env, tmp_path):
    filled(env)
    dest = tmp_path / "usb" / "copia.sqlite3"
    dest.parent.mkdir()
    res = CliRunner().invoke(registry, ["backup", str(dest)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert CliRunner().invoke(registry, ["backup", str(dest)]).exit_code == 7   # never overwritten
    with Registry() as reg:
        reg.add_device("24:6f:28:00:00:09")                     # after the backup
    res = CliRunner().invoke(registry, ["restore", str(dest), "--yes"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    kept = list(env["path"].parent.glob("registry.sqlite3.bak-*"))
    assert len(kept) == 1 and "kept as" in res.stdout
    with Registry() as reg:
        assert [d.label for d in reg.list()] == ["BS-0001", "BS-0002", "BS-0003"]
        assert [a["action"] for a in reg.audit()][-2:] == ["backup", "restore"]
        reg.verify()
    with Registry(kept[0]) as old:
        assert old.get("24:6f:28:00:00:09") is not None        # the replaced data is not lost


def test_a_registry_and_its_backups_on_a_usb_stick_without_hard_links(env, tmp_path, monkeypatch):
    # FAT (a USB stick) has no hard links: link() fails with EPERM. The registry could not
    # be created there, a backup to the stick failed after its copy was made, and a
    # restore could not set the replaced registry aside
    def fat(*args, **kw):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", fat)
    filled(env)                                                 # created on the "stick"
    dest = tmp_path / "usb" / "copia.sqlite3"
    dest.parent.mkdir()
    res = CliRunner().invoke(registry, ["backup", str(dest)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    res = CliRunner().invoke(registry, ["backup", str(dest)])
    assert res.exit_code == 7 and "already exists" in res.stderr   # still never overwritten
    with Registry() as reg:
        reg.add_device("24:6f:28:00:00:09")
    res = CliRunner().invoke(registry, ["restore", str(dest), "--yes"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    kept = list(env["path"].parent.glob("registry.sqlite3.bak-*"))
    assert len(kept) == 1 and stat.S_IMODE(kept[0].stat().st_mode) == 0o600
    with Registry() as reg:
        assert [d.label for d in reg.list()] == ["BS-0001", "BS-0002", "BS-0003"]
        reg.verify()
    with Registry(kept[0]) as old:
        assert old.get("24:6f:28:00:00:09") is not None


def test_a_restore_over_newer_changes_says_so_and_needs_yes(env, tmp_path):
    # restoring last month's copy by mistake (the wrong file on the stick) replaced the
    # registry without a word: buttons delivered and cases assigned since were gone from
    # it, a button in her hands looked in stock; only a .bak beside it held them
    filled(env)
    dest = tmp_path / "copia.sqlite3"
    assert CliRunner().invoke(registry, ["backup", str(dest)]).exit_code == 0
    with Registry() as reg:
        reg.add_device("24:6f:28:00:00:09")
        reg.record_deploy("24:6f:28:00:00:09", "ab" * 32)
    before = env["path"].read_bytes()
    res = CliRunner().invoke(registry, ["restore", str(dest)])
    assert res.exit_code == 7, res.output
    said = " ".join(res.stderr.split())
    assert "2 audit row(s) this backup does not hold" in said and "--yes" in said
    assert ": add BS-0004, deploy BS-0004; the latest: deploy BS-0004" in said
    assert env["path"].read_bytes() == before and not list(env["path"].parent.glob("*.bak-*"))
    assert not [p for p in env["path"].parent.iterdir() if ".restore-" in p.name]
    res = CliRunner().invoke(registry, ["restore", str(dest), "--yes"], catch_exceptions=False)
    assert res.exit_code == 0 and "with 2 audit row(s) the backup does not hold" in res.stdout
    with Registry() as reg:
        assert reg.get("24:6f:28:00:00:09") is None


def test_a_backup_of_another_registry_is_not_restored_unasked(env, tmp_path, monkeypatch):
    """A bench's (or a test's) registry under the same key, backed up after the office's
    last change: its backup is newer, so nothing said so, and it replaced every device and
    open case of the office's registry without a question."""
    import datetime as dt

    last_week = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=7)
    with Registry(clock=lambda: last_week) as reg:   # the office's last change, a week ago
        reg.add_device(MAC)
        reg.record_deploy(MAC, "ab" * 32)
    office = env["path"]
    bench = tmp_path / "bench" / "registry.sqlite3"
    monkeypatch.setenv("BOTON_REGISTRY", str(bench))
    with Registry(create=True) as reg:
        reg.add_device("24:6f:28:cc:cc:01", label="BENCH-1")
    dest = tmp_path / "bench-copia.sqlite3"
    assert CliRunner().invoke(registry, ["backup", str(dest)]).exit_code == 0
    monkeypatch.setenv("BOTON_REGISTRY", str(office))
    before = office.read_bytes()
    res = CliRunner().invoke(registry, ["restore", str(dest)])
    assert res.exit_code == 7, res.output
    assert "this backup is not a copy of this registry" in " ".join(res.stderr.split())
    assert office.read_bytes() == before and not list(office.parent.glob("*.bak-*"))
    # a copy of this registry itself is no other registry
    own = tmp_path / "own.sqlite3"
    assert CliRunner().invoke(registry, ["backup", str(own)]).exit_code == 0
    res = CliRunner().invoke(registry, ["restore", str(own)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(registry, ["restore", str(dest), "--yes"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with Registry() as reg:
        assert [d.label for d in reg.list()] == ["BENCH-1"]

def test_a_restore_names_the_work_another_copy_did_that_the_backup_lacks(env, tmp_path, monkeypatch):
    """Two laptops from one backup: laptop 2 returned BS-0002 (lost) and gave BS-0150 a
    case; laptop 1 then added a button and made a backup. Restoring that backup on laptop 2
    said nothing (its last row was later than all of laptop 2's work, and both trails start
    alike) and put BS-0002 back in her hands and BS-0150 in stock with no case."""
    import datetime as dt

    from boton.registry import CaseData

    t0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
    at = lambda hours: (lambda: t0 + dt.timedelta(hours=hours))   # noqa: E731
    her = CaseData(alias="Luna", case_id="AGS/2024/00731", contacts=["449 111 2233"],
                   order_ends="2031-01-31", full_name="Maria Lopez")
    other = CaseData(alias="Sol", case_id="AGS/2024/00999", contacts=["449 222 3344"],
                     order_ends="2031-01-31", full_name="Rosa Diaz")
    lost, spare = "24:6f:28:00:00:02", "24:6f:28:00:01:50"
    with Registry(clock=at(0)) as reg:                     # laptop 1
        reg.add_device("24:6f:28:00:00:01")
        reg.add_device(lost)
        reg.assign(lost, her)
        reg.record_deploy(lost, "ab" * 32)
        reg.record_provision(lost, "cd" * 32)
        reg.record_test_call(lost, True, "ok")
        reg.deliver(lost)
        reg.add_device(spare, label="BS-0150")
        reg.backup(tmp_path / "b0.sqlite3")
    laptop2 = tmp_path / "laptop2" / "registry.sqlite3"
    restore(tmp_path / "b0.sqlite3", path=laptop2, clock=at(1))
    with Registry(laptop2, clock=at(1)) as reg:
        reg.return_device(lost, without_button=True)
        reg.assign(spare, other)
    with Registry(clock=at(2)) as reg:                     # laptop 1, later
        reg.add_device("24:6f:28:00:00:03")
        reg.backup(tmp_path / "b1.sqlite3")
    monkeypatch.setenv("BOTON_REGISTRY", str(laptop2))
    before = laptop2.read_bytes()
    res = CliRunner().invoke(registry, ["restore", str(tmp_path / "b1.sqlite3")])   # no terminal
    assert res.exit_code == 7, res.output
    said = " ".join(res.stderr.split())
    assert "audit row(s) this backup does not hold" in said and "--yes" in said
    assert "return BS-0002" in said and "assign BS-0150" in said
    for secret in ("Luna", "Sol", "Maria Lopez", "Rosa Diaz", "AGS/2024", "4491112233", "4492223344"):
        assert secret not in res.stdout + res.stderr
    assert laptop2.read_bytes() == before and not list(laptop2.parent.glob("*.bak-*"))
    with Registry(laptop2) as reg:
        assert reg.find("BS-0002").state == "returned" and reg.find("BS-0150").has_case
    # a copy of this very registry lacks nothing: restored without a question
    with Registry(laptop2, clock=at(3)) as reg:
        reg.backup(tmp_path / "own.sqlite3")
    res = CliRunner().invoke(registry, ["restore", str(tmp_path / "own.sqlite3")], catch_exceptions=False)
    assert res.exit_code == 0, res.output


def audit_rows(path=None):
    con = raw(str(path or os.environ["BOTON_REGISTRY"]))
    try:
        return con.execute("SELECT id, action, detail, seal FROM audit ORDER BY id").fetchall()
    finally:
        con.close()


def test_a_failed_backup_is_not_recorded_as_made(env, tmp_path, monkeypatch):
    # `registry backup /nonexistent/x` wrote its audit row before the copy: the trail said
    # a backup was made that does not exist
    filled(env)
    before = audit_rows()
    res = CliRunner().invoke(registry, ["backup", str(tmp_path / "no-such-folder" / "copia.sqlite3")])
    assert res.exit_code == 2 and "cannot write" in res.stderr and "Traceback" not in res.stderr
    assert audit_rows() == before

    def refused(*args, **kw):                                # the copy made, then the file refused
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(os, "link", refused)
        res = CliRunner().invoke(registry, ["backup", str(tmp_path / "copia.sqlite3")])
    assert res.exit_code == 2 and "cannot write" in res.stderr
    assert audit_rows() == before and list(tmp_path.iterdir()) == [env["path"].parent]
    with Registry() as reg:
        reg.verify()                                         # the chain's head was rolled back too


def test_a_backup_holds_its_own_audit_row(env, tmp_path):
    filled(env)
    dest = tmp_path / "copia.sqlite3"
    assert CliRunner().invoke(registry, ["backup", str(dest)]).exit_code == 0
    mine, copy = audit_rows(), audit_rows(dest)
    assert mine[-1][1] == "backup" and mine[-1][2] == "to copia.sqlite3"
    assert copy == mine                                      # the same rows, the same seals
    rep, _ = restore(dest)                                   # and its chain verifies
    assert rep.rows == len(mine)


def test_a_bad_backup_is_refused_and_changes_nothing(env, tmp_path):
    filled(env)
    good = tmp_path / "good.sqlite3"
    with Registry() as reg:
        reg.backup(good)
    before = env["path"].read_bytes()
    tampered = tmp_path / "tampered.sqlite3"
    tampered.write_bytes(good.read_bytes())
    con = without_triggers(tampered)
    con.execute("UPDATE audit SET action = 'wipe' WHERE id = 4")
    con.close()
    with pytest.raises(RegistryError, match="audit trail check failed") as e:
        restore(tampered)
    assert e.value.exit_code == 5
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")
    with pytest.raises(RegistryError, match="is empty"):
        restore(empty)
    with pytest.raises(RegistryKeyError, match="wrong BOTON_KEY"):
        restore(good, key=Fernet.generate_key())
    res = CliRunner().invoke(registry, ["restore", str(tampered)])
    assert res.exit_code == 5 and "Traceback" not in res.stderr
    assert env["path"].read_bytes() == before
    assert not list(env["path"].parent.glob("*.bak-*"))


def test_a_deleted_registry_is_refused_until_restored(env, tmp_path):
    filled(env)
    backup = tmp_path / "copia.sqlite3"
    assert CliRunner().invoke(registry, ["backup", str(backup)]).exit_code == 0
    env["path"].unlink()                                 # someone deletes the registry file
    res = CliRunner().invoke(devices, ["list"])
    assert res.exit_code == 5 and "missing" in res.output and "restore" in res.output
    assert not env["path"].exists()                      # nothing was started in its place
    res = CliRunner().invoke(registry, ["restore", str(backup)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with Registry() as reg:
        assert [d.label for d in reg.list()] == ["BS-0001", "BS-0002", "BS-0003"]
