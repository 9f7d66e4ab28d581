"""Backup, restore and verification of the registry file.

* `Registry.backup(dest)`: SQLite's online backup, checked, mode 0600, never over a file;
  audited only once the copy is in place (the copy holds that row too).
* `restore(backup)`: the backup is copied beside the registry and proven there (SQLite
  integrity, schema, the key, the audit chain) before it replaces the current file, which
  is kept as `<name>.bak-<UTC time>`.
* `Registry.verify()`: the same proof on the registry in use.
* `check_registry_file`: an empty or foreign file where a registry should be is refused,
  never started over.
"""
import datetime as dt
import glob
import os
import secrets
import shutil
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from . import registry_audit as RA
from .errors import EXIT_VERIFY, MissingKeyError, RegistryConflict, RegistryError, RegistryKeyError
from .registry_crypto import CaseCipher, missing_key_error
from .registry_fields import scrub
from .registry_paths import expand_home, folder_error, registry_file, remove_db_files
from . import registry_schema as schema
from .registry_schema import read_meta
from .safe_write import NO_HARD_LINKS, place_new

SQLITE_HEADER = b"SQLite format 3\x00"
RESTORE_HINT = "restore the last backup with `boton registry restore BACKUP`"
# the backup row's detail: this, then the copy's file name (backups_since reads it back)
BACKUP_DETAIL = "to "


class BackupAndVerify:
    """Registry's backup and verify methods (a mixin: it uses the registry's connection,
    transactions and audit)."""

    def verify(self):
        """Prove what can be proven about the registry (docs/registry.md): SQLite's full
        integrity check, its key, and the audit chain up to its stored head. Needs the key.
        Audited first (which also starts the chain on a registry from an older boton).
        Returns a registry_audit.ChainReport; RegistryError (exit 5) if anything fails."""
        c = self.cipher()
        with self._write() as db:
            self._audit(db, "verify", None, "integrity check requested")
        with self._read() as db:
            return check_registry_db(db, c, str(self.path))

    def backup(self, dest):
        """A consistent copy of the registry (SQLite's online backup), mode 0600, never over
        an existing file. Case data stays encrypted in it. Audited, and the copy holds that
        row: the copy is made and checked while this command holds the write lock, the
        `backup` row is added to both, and it is committed only once the file is in place,
        so a backup that failed is never recorded as made. Returns the number of audit rows
        it holds."""
        dest = expand_home(dest, "the backup")
        if os.path.lexists(dest):       # False where it cannot be looked at: the write says why
            raise RegistryConflict(f"{dest} already exists; refusing to overwrite a backup")
        if dest.resolve().parent == self.path.resolve().parent and dest.name.startswith(self.path.name):
            raise RegistryError(f"{dest} would sit beside the registry under its name; "
                                "choose another name or folder (ideally another disk)")
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        linked = committed = False
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            out = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                with self._write() as db:      # the write lock: nothing changes until the end
                    self._copy_into(out)
                    last = db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]
                    self._audit(db, "backup", None, BACKUP_DETAIL + scrub(dest.name, 80))
                    _append_new_audit(db, out, last)
                    problem = sqlite_problem(out)
                    rows = out.execute("SELECT count(*) FROM audit").fetchone()[0]
                    out.close()
                    if problem:
                        raise RegistryError(f"the backup copy does not check out ({problem}); {dest} not "
                                            "written", EXIT_VERIFY)
                    if not place_new(tmp, dest):   # never over a file that appeared meanwhile
                        raise FileExistsError(dest)
                    linked = True
                committed = True                   # the row, now that the file is in place
            finally:
                out.close()
        except FileExistsError:
            raise RegistryConflict(f"{dest} already exists; refusing to overwrite a backup") from None
        except OSError as e:
            raise RegistryError(f"cannot write {dest}: {e.strerror}") from None
        except sqlite3.DatabaseError as e:
            raise self._db_error(e) from None
        finally:
            if linked and not committed:           # the row was not recorded: no backup either
                try:
                    os.unlink(dest)
                except OSError:
                    pass
            remove_db_files(tmp)
        return rows

    def backups_since(self, at):
        """[(at, file name)] of the backups the audit trail records from `at` on: after a
        purge, the copies that still hold what it erased."""
        with self._read() as db:
            rows = db.execute("SELECT at, detail FROM audit WHERE action = 'backup' AND at >= ? ORDER BY id",
                              (at,)).fetchall()
        found = [(r["at"], r["detail"].removeprefix(BACKUP_DETAIL)) for r in rows]
        # and the files restores set aside beside the registry (a later restore may have
        # replaced the audit rows that named them): each holds what the registry held
        for kept in sorted(self.path.parent.glob(glob.escape(self.path.name) + ".bak-*")):
            if not kept.name.endswith(("-wal", "-shm")):
                mtime = dt.datetime.fromtimestamp(kept.stat().st_mtime, dt.timezone.utc)
                last_written = mtime.strftime("%Y-%m-%dT%H:%M:%SZ")
                if last_written >= at:
                    found.append((last_written, kept.name))
        return found

    def _copy_into(self, out):
        """The registry as committed, into the connection `out`, as one self-contained file
        (not WAL). Read through a second connection: SQLite cannot back up from a connection
        in a write transaction, and the one this registry holds is; in WAL mode it reads
        what that transaction sees, since nothing else can commit meanwhile."""
        src = sqlite3.connect(str(self.path), timeout=self._timeout, isolation_level=None)
        try:
            src.backup(out)
        finally:
            src.close()
        out.execute("PRAGMA journal_mode = DELETE")


def stored_fingerprint(path, backup=False):
    """The fingerprint of the key the case data in the registry (or, backup=True, the
    backup) at `path` is encrypted with; None if it has none yet, or is missing, not a
    registry or too damaged to tell. Read only: never creates, migrates or changes it."""
    mode = "ro&immutable=1" if backup else "rw"    # rw: sees its WAL, and never creates a file
    try:
        db = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode={mode}", uri=True, timeout=1)
        try:
            return read_meta(db, "key_fingerprint")
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None


def check_registry_file(path, what):
    """Refuse an empty or non-SQLite file with one line (never start a new one over it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise RegistryError(f"cannot read the {what} {path}: {e.strerror}") from None
    if not head:
        raise RegistryError(f"{path} is empty (0 bytes) where a {what} should be: refusing to "
                            f"start a new one over it (labels and the audit trail would "
                            f"restart); {RESTORE_HINT}", EXIT_VERIFY)
    if head != SQLITE_HEADER:
        raise RegistryError(f"{path} is not a {what} (not an SQLite database): refusing to use "
                            f"or replace it. Check the path, or {RESTORE_HINT}", EXIT_VERIFY)


def _append_new_audit(db, out, last):
    """The audit rows after id `last` and the meta table (its sealed head) from the registry
    transaction `db` into the copy `out`, which held the same before them: the copy's chain
    then ends where the registry's does."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(audit)")]
    names = ", ".join(cols)
    marks = ", ".join("?" for _ in cols)
    out.executemany(f"INSERT INTO audit ({names}) VALUES ({marks})",
                    [tuple(r) for r in db.execute(f"SELECT {names} FROM audit WHERE id > ? ORDER BY id",
                                                  (last,))])
    out.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [tuple(r) for r in db.execute("SELECT key, value FROM meta")])


def sqlite_problem(db, quick=False):
    """None if SQLite finds the file sound, else its first complaint."""
    rows = db.execute(f"PRAGMA {'quick_check' if quick else 'integrity_check'}").fetchall()
    first = rows[0][0] if rows else "no answer"
    return None if first == "ok" else " ".join(str(first).split())[:200]   # one line


def check_registry_db(db, cipher, where):
    """What `verify` and `restore` prove about a registry connection: SQLite's full
    integrity check, a schema this boton knows, the key's fingerprint, the audit chain.
    Returns the ChainReport; RegistryError (exit 5) or RegistryKeyError (exit 2) if not."""
    try:
        problem = sqlite_problem(db)
        if problem:
            raise RegistryError(f"{where} is damaged (SQLite check: {problem})", EXIT_VERIFY)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not 1 <= version <= len(schema.MIGRATIONS) or not {"devices", "audit", "meta"} <= tables:
            raise RegistryError(f"{where} is not a registry this boton knows (schema {version})",
                                EXIT_VERIFY)
        stored = read_meta(db, "key_fingerprint")
        if stored and stored != cipher.fingerprint:
            raise RegistryKeyError(f"{where} was written with key {stored}, the key from "
                                   f"{cipher.source} is {cipher.fingerprint}: wrong BOTON_KEY or key file?")
        cols = [r[1] for r in db.execute("PRAGMA table_info(audit)")]
        seal = "seal" if "seal" in cols else "NULL AS seal"
        rows = [dict(r) for r in db.execute(
            f"SELECT id, at, technician, action, mac, detail, {seal} FROM audit ORDER BY id")]
        anchor = read_meta(db, RA.ANCHOR_META)
        cases = db.execute("SELECT mac, token FROM cases ORDER BY id").fetchall() if "cases" in tables else []
    except sqlite3.DatabaseError as e:
        raise RegistryError(f"{where} is damaged ({e})", EXIT_VERIFY) from None
    rep = RA.verify_chain(rows, cipher.audit_key, cipher.anchor_key, anchor)
    if rep.problem:
        raise RegistryError(f"{where}: audit trail check failed: {rep.problem}", EXIT_VERIFY)
    # every case opens with the key: a damaged one was found only when someone needed it
    damaged = []
    for mac, token in cases:
        try:
            cipher.open(mac, token)
        except RegistryError:
            damaged.append(mac)
    if damaged:
        raise RegistryError(f"{where}: the case data of {len(damaged)} case(s) is damaged (first: "
                            f"{damaged[0]}); restore the registry from a backup", EXIT_VERIFY)
    return rep


class NewerThanBackup:
    """What the registry holds that a backup does not: `rows` audit rows the backup lacks
    (recorded since it was made, or on another copy made from the same start), `kinds`
    what they were (action and label, never a detail), the latest `latest` at `latest_at`."""

    SHOWN = 6     # kinds named; the rest counted

    def __init__(self, rows, kinds, latest_at, latest):
        self.rows, self.kinds, self.latest_at, self.latest = rows, kinds, latest_at, latest

    def __str__(self):
        named = ", ".join(f"{kind} x{n}" if n > 1 else kind for kind, n in self.kinds[:self.SHOWN])
        if len(self.kinds) > self.SHOWN:
            named += f" and {len(self.kinds) - self.SHOWN} more"
        return (f"the registry holds {self.rows} audit row(s) this backup does not hold (recorded "
                f"since it was made, or on another copy of the registry): {named}; the latest: "
                f"{self.latest} at {self.latest_at}")


def _audit_rows(db):
    """Every audit row, whole (id, when, who, what, device, detail, seal): what identifies it."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(audit)")}
    seal = "seal" if "seal" in cols else "NULL AS seal"
    return db.execute(f"SELECT id, at, technician, action, mac, detail, {seal} FROM audit ORDER BY id").fetchall()


def _newer_than(path, backup_db):
    """NewerThanBackup for the registry at `path` against the backup connection, or None:
    nothing the backup lacks, or a registry too damaged to tell (the usual reason to
    restore). Compared row by row, not by time: a copy restored on another laptop and
    worked on there holds rows older than the backup's last that the backup never saw."""
    theirs = {tuple(r) for r in _audit_rows(backup_db)}
    try:
        db = sqlite3.connect(str(path), timeout=1)   # read only; read-only mode may not see its WAL
        try:
            ours = [tuple(r) for r in _audit_rows(db)]
            labels = dict(db.execute("SELECT mac, label FROM devices").fetchall())
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None
    missing = [r for r in ours if r not in theirs]
    if not missing:
        return None
    kinds = {}
    for r in missing:      # action and label only: a detail is free text
        kind = f"{r[3]} {labels.get(r[4]) or ''}".strip()
        kinds[kind] = kinds.get(kind, 0) + 1
    last = missing[-1]
    return NewerThanBackup(len(missing), list(kinds.items()), last[1],
                           f"{last[3]} {labels.get(last[4]) or ''}".strip())


def _first_row(db):
    row = db.execute("SELECT at, technician, action, mac, detail FROM audit ORDER BY id LIMIT 1").fetchone()
    return tuple(row) if row else None


def _another_registry(path, backup_db):
    """A description if the backup is not a copy of the registry at `path` (their audit
    trails, which nothing edits, start with different rows: another registry under the same
    key, a bench's or a test's), else None: a copy, a registry with no trail yet, or one too
    damaged to tell (the usual reason to restore)."""
    try:
        db = sqlite3.connect(str(path), timeout=1)
        try:
            ours = _first_row(db)
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None
    theirs = _first_row(backup_db)
    if ours is None or theirs is None or ours == theirs:
        return None
    return (f"this backup is not a copy of this registry (its audit trail starts {theirs[0]}, "
            f"this registry's {ours[0]}): restoring replaces every device and case this one holds")


def restore(backup, path=None, key=None, technician=None, clock=None, confirm_newer=None,
            confirm_other=None):
    """Replace the registry with a verified backup. The backup is copied next to the
    registry and checked there (SQLite integrity, schema, the key in use is its key, its
    audit chain verifies); only then is the current file kept as `<name>.bak-<UTC time>`
    and the copy renamed into place in one step. Audited in the restored registry.
    If the registry holds audit rows the backup lacks (compared whole, not by time),
    confirm_newer (NewerThanBackup) is called first and raises to cancel (nothing changed); if the
    backup is of another registry, confirm_other (a description) likewise.
    Returns (restored Registry's ChainReport, path of the kept file or None)."""
    from .registry import Registry  # lazily: registry.py builds Registry from this module's mixin

    backup = expand_home(backup, "the backup")
    path = registry_file(path)
    try:
        cipher = CaseCipher(key)                          # no key, no restore: nothing to verify with
    except MissingKeyError as e:
        stored = stored_fingerprint(backup, backup=True) if os.path.isfile(backup) else None
        if stored:                                        # only the office's key opens it
            raise missing_key_error(stored, e.path, "the backup's") from None
        raise
    try:
        regular = stat.S_ISREG(os.stat(backup).st_mode)
    except OSError as e:
        raise RegistryError(f"cannot read the backup {backup}: {e.strerror}") from None
    if not regular:                    # a folder, or a pipe or device that would be read forever
        raise RegistryError(f"the backup {backup} is not a file")
    check_registry_file(backup, "registry backup")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise RegistryError(f"cannot restore {path}: cannot make its folder {path.parent}: "
                            f"{folder_error(e)}") from None
    tmp = path.with_name(f".{path.name}.restore-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            src = sqlite3.connect(f"file:{urllib.parse.quote(str(backup))}?mode=ro&immutable=1",
                                  uri=True)
            dst = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                src.backup(dst)
                dst.row_factory = sqlite3.Row
                rep = check_registry_db(dst, cipher, f"backup {backup}")
                if dst.execute("PRAGMA user_version").fetchone()[0] < 1:
                    raise RegistryError(f"backup {backup} is not a registry", EXIT_VERIFY)
                newer = _newer_than(path, dst) if path.exists() else None
                other = _another_registry(path, dst) if path.exists() else None
            finally:
                src.close()
                dst.close()
        except sqlite3.DatabaseError as e:
            raise RegistryError(f"backup {backup} is damaged or not a registry ({e})", EXIT_VERIFY) from None
        if other is not None and confirm_other is not None:
            confirm_other(other)       # the office's registry replaced by a bench's
        if newer is not None and confirm_newer is not None:
            confirm_newer(newer)       # an older copy picked by mistake: asked before anything moves
        kept = _set_aside(path) if path.exists() else None
        os.replace(tmp, path)
    except OSError as e:
        raise RegistryError(f"cannot restore {path}: {e.strerror}") from None
    finally:
        remove_db_files(tmp)
    with Registry(path, key=key, technician=technician, clock=clock) as reg:
        with reg._write() as db:
            reg._audit(db, "restore", None, f"from backup {backup.name} ({rep.rows} audit rows); "
                       + (f"the replaced file is kept as {kept.name}" if kept else "no file was replaced"))
    return rep, kept


def _set_aside(path):
    """Keep the current registry as <name>.bak-<time> (a hard link: the registry path never
    goes missing). A usable one is first checkpointed out of WAL, which SQLite allows only
    when no other connection is open; a damaged one is kept with its -wal as it is."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kept = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while kept.exists():  # two restores within a second ("File exists")
        n += 1
        kept = path.with_name(f"{path.name}.bak-{stamp}-{n}")
    try:
        db = sqlite3.connect(str(path), timeout=1, isolation_level=None)
        try:
            mode = db.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        finally:
            db.close()
        if mode.lower() != "delete":
            raise RegistryConflict("another boton command is using the registry; restore when "
                                   "none is running")
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise RegistryConflict("another boton command is using the registry; restore when "
                                   "none is running") from None
    except sqlite3.DatabaseError:
        pass                                           # damaged: keep it exactly as it is
    try:
        os.link(path, kept)
    except OSError as e:
        if e.errno not in NO_HARD_LINKS:
            raise
        shutil.copy2(path, kept)                       # FAT: a copy, the path still never missing
        os.chmod(kept, 0o600)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{kept}{suffix}"))  # a WAL belongs to its file only
    return kept
