"""The device registry: every button, its state, and (encrypted) the case it serves.

One SQLite file, local to the technicians' workstation:

* where: `BOTON_REGISTRY`, else `registry.sqlite3` in platformdirs' user data dir for
  "boton-seguro" (Linux: ~/.local/share/boton-seguro/). It must be on a local disk
  (SQLite's WAL mode does not work over network filesystems).
* safe with several `boton` commands at once: WAL mode, a busy timeout, and every change
  is one `BEGIN IMMEDIATE` transaction (read, check, write, audit row) so two technicians
  never lose each other's updates; a command that waits too long gets a clear "busy".
* schema migrations: PRAGMA user_version and the ordered MIGRATIONS list
  (registry_schema.py); each migration runs in the same transaction as its version
  bump, so a failed one changes nothing.
* devices are keyed by the eFuse base MAC, normalised to "aa:bb:cc:dd:ee:ff".

Case data (alias, case id, full name, notes, order end date, trusted contacts) is
sensitive: it is stored only as a Fernet token (AES-128-CBC + HMAC-SHA256), one per case,
bound to the device's MAC. The key never enters the database. It comes from, in order:
the `key=` argument, env `BOTON_KEY`, or the key file (env `BOTON_KEY_FILE`, else
`registry.key` in the user config dir, ~/.config/boton-seguro/ on Linux). The key file is
created only on purpose, by `boton registry init-key` (mode 0600, never overwritten; with a
passphrase if given one, which `BOTON_KEY_PASSPHRASE` or a prompt supplies) and must be
backed up: without it the case data cannot be read. It is never created silently
on first use, so a second workstation cannot start writing cases under a different key;
the registry also stores the key's fingerprint and refuses any other key before reading
or writing case data. Device-only commands (add, list, deliver, ...) need no key.

To refuse a trusted contact already serving another active case without decrypting
everything, the registry keeps keyed HMAC-SHA256 digests (key derived from the same key
by HKDF) of each active case's contact numbers and case id: equal values collide on a
UNIQUE index, and without the key the digests cannot be brute-forced back to numbers.

Nothing sensitive is logged, audited or put into an exception message: CaseData's repr
is redacted, numbers in messages are masked, and free text from technicians (reasons,
test-call details) has every run of 7 or more digits masked before storing, whatever
separates them (registry_fields.scrub); names and addresses cannot be recognised, so the
commands that take a reason say it must hold none.

This module is the store: the connection, transactions, migrations, the audit rows, the
key binding, and the devices themselves. Registry's other methods and the rules they
follow live beside it (the public names are all importable from here):

  registry_paths.py      where the registry and its key file live
  registry_fields.py     MAC, label, flash size, IMEI, ICCID, hashes; scrubbing free text
  registry_states.py     STATES and TRANSITIONS (which action moves a button where)
  registry_casedata.py   CaseData and the checks of its fields
  registry_crypto.py     the key: case tokens, index digests, audit keys, fingerprint
  registry_schema.py     migrations, tables, DeviceRecord (a row of `devices`)
  registry_audit.py      the sealed, append-only audit chain
  registry_lifecycle.py  flash, deploy, provision, test call, deliver, return, wipe, retire
  registry_cases.py      assign a case, read it, orders ending soon
  registry_csv.py        CSV import (all or nothing) and export
  registry_reports.py    the buttons' daily status SMS: import from the programme's phone, status
  registry_backup.py     backup, restore, verify; refusing a foreign or empty file
  registry_workflow.py   what the device commands record (a step, an event-log check)
"""
import datetime as dt
import logging
import os
import re
import secrets
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from . import registry_audit as RA
from . import registry_schema as schema
from .errors import EXIT_VERIFY, MissingKeyError, PassphraseError, RegistryConflict, RegistryError, RegistryKeyError
from .registry_backup import (RESTORE_HINT, BackupAndVerify, check_registry_file, restore, sqlite_problem,
                              stored_fingerprint)
from .registry_casedata import CaseData, check_contacts
from .registry_cases import CaseRecords
from .registry_crypto import (CaseCipher, create_key_file, load_key, missing_key_error, read_key_file,
                              rewrap_key_file)
from .registry_csv import CASE_COLUMNS, EXPORT_COLUMNS, IMPORT_COLUMNS, CsvTransfer
from .registry_fields import (AUTO_LABEL_RE, auto_label, check_hash, check_known_board, format_flash_size,
                              looks_like_mac, normalise_iccid, normalise_imei, normalise_label,
                              normalise_mac, parse_flash_size, resolve_technician, scrub, show_input)
from .registry_lifecycle import DeviceLifecycle
from .registry_reports import DailyReports
from .registry_paths import (default_key_file, default_path, expand_home, folder_error, registry_exists,
                             registry_file, remove_db_files, witness_path)
from .safe_write import place_new
from .registry_schema import DEVICE_SELECT, DeviceRecord, EndingSoon, read_meta
from .registry_states import STATES, TRANSITIONS, refusal_hint

# The registry's public names, wherever they are defined: `from boton.registry import ...`
# and `registry.X` keep working for the CLI and the tests.
__all__ = ["Registry", "CaseData", "DeviceRecord", "EndingSoon", "STATES", "TRANSITIONS",
           "RESTORE_HINT", "IMPORT_COLUMNS", "EXPORT_COLUMNS", "CASE_COLUMNS", "restore", "stored_fingerprint",
           "create_key_file", "load_key", "read_key_file", "rewrap_key_file", "expand_home",
           "default_path", "default_key_file", "registry_exists", "check_contacts",
           "normalise_mac", "normalise_label", "looks_like_mac", "parse_flash_size",
           "format_flash_size", "normalise_imei", "normalise_iccid", "resolve_technician", "scrub"]

log = logging.getLogger("boton.registry")

BUSY_TIMEOUT_S = 15.0
_LOG_HEAD_RE = re.compile(r"head at entry (\d+) ([0-9a-f]{16})")
_RELABEL_RE = re.compile(r"label (\S+) -> (\S+)")     # a `relabel` audit row's detail


# =========================================================================== registry
class Registry(DeviceLifecycle, CaseRecords, CsvTransfer, BackupAndVerify, DailyReports):
    """The registry. One instance per thread (it holds one SQLite connection).

    `key` is only needed (and only loaded) for case data. `technician` defaults to
    BOTON_TECHNICIAN, then the OS user; it is written to every audit row. `create`: a
    registry that does not exist yet is made (the commands that register buttons); False
    refuses it, so a mistyped path never becomes an empty registry.
    """

    def __init__(self, path=None, key=None, technician=None, *, clock=None,
                 timeout=BUSY_TIMEOUT_S, create=True):
        self.path = registry_file(path)
        self.technician = resolve_technician(technician)
        self._key = key
        self._cipher = None
        self._seal_cipher = None     # the key for audit seals: None not tried yet, False none
        self._clock = clock
        self._timeout = timeout
        self.db = self._connect(create)
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    def __repr__(self):
        return f"<Registry {self.path}>"

    # ------------------------------------------------------------------ plumbing
    def _connect(self, create):
        try:
            if not self.path.exists():
                self._refuse_if_deleted()
                if not create:
                    raise RegistryError(f"no registry at {self.path}: check --registry or BOTON_REGISTRY "
                                        "(the first `boton devices add` or `devices import` makes a new one)")
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._create()
        except OSError as e:
            raise RegistryError(f"cannot create the registry at {self.path}: {folder_error(e)}") from None
        check_registry_file(self.path, "registry")
        db = None
        try:
            db = sqlite3.connect(str(self.path), timeout=self._timeout, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            mode = self._wal(db)
            if mode.lower() != "wal":
                raise RegistryError(f"cannot use WAL mode for {self.path} (is it on a network "
                                    "filesystem? the registry must be on a local disk)")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            # what is deleted or overwritten (a closed case's index digests, replaced rows) is
            # zeroed in the file, not left in free pages: python.org's SQLite builds leave it off
            db.execute("PRAGMA secure_delete = ON")
            problem = sqlite_problem(db, quick=True)
            if problem:
                raise RegistryError(f"{self.path} is damaged (SQLite check: {problem}); "
                                    f"{RESTORE_HINT}", EXIT_VERIFY)
        except (sqlite3.DatabaseError, RegistryError) as e:
            if db is not None:
                db.close()
            if isinstance(e, RegistryError):
                raise
            raise self._db_error(e) from None
        return db

    def _create(self):
        """A new registry, whole or not at all: built under a temporary name and linked into
        place (never over an existing file). So a file at the registry path that is empty
        or holds no registry was never ours to start over: it is refused, never reused."""
        tmp = self.path.with_name(f".{self.path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            db = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("BEGIN IMMEDIATE")
                for migration in schema.MIGRATIONS:
                    migration(db)
                db.execute(f"PRAGMA user_version = {len(schema.MIGRATIONS)}")
                db.execute("COMMIT")
            finally:
                db.close()
            # False: another command created it at the same moment: use theirs
            if place_new(tmp, self.path):
                fd = os.open(self._witness(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(f"registry {self.path.name} created {self.now()}\n")
        except sqlite3.DatabaseError as e:
            raise RegistryError(f"cannot create the registry at {self.path}: {e}") from None
        finally:
            remove_db_files(tmp)

    def _witness(self) -> Path:
        """A small file beside the registry saying one was created here: a registry that is
        later deleted is then refused, not silently started again empty (labels would
        restart at BS-0001 and every record of who had which button would be gone)."""
        return witness_path(self.path)

    def _refuse_if_deleted(self):
        w = self._witness()
        if w.exists():
            raise RegistryError(f"the registry {self.path} is missing, but one was created there "
                                f"({w.name}): restore it with `boton registry restore BACKUP`; "
                                f"only to really start an empty one, delete {w}", EXIT_VERIFY)

    def _wal(self, db):
        """Switch to WAL (persistent, so usually already done). On a new file two processes
        may race to switch it, and SQLite answers "locked" at once instead of waiting: retry
        until the busy timeout."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                mode = db.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                return mode
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _db_error(self, e):
        text = str(e)
        if "locked" in text or "busy" in text:
            return RegistryConflict(f"the registry is busy: another boton command has held it "
                                    f"for over {self._timeout:g} s; try again")
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return RegistryError(f"{self.path} is damaged ({text}); {RESTORE_HINT}", EXIT_VERIFY)
        return RegistryError(f"registry error in {self.path}: {text}")

    @contextmanager
    def _write(self):
        """One transaction that holds the write lock from the start (BEGIN IMMEDIATE), so
        what it reads cannot change before it writes. Any exception rolls everything back."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise self._db_error(e) from None
        try:
            yield self.db
        except BaseException as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._db_error(exc) from None
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise self._db_error(e) from None

    @contextmanager
    def _read(self):
        try:
            self.db.execute("BEGIN")
            yield self.db
        except sqlite3.DatabaseError as e:
            raise self._db_error(e) from None
        finally:
            if self.db.in_transaction:
                self.db.execute("COMMIT")

    def _migrate(self):
        try:
            current = self.db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise self._db_error(e) from None
        # registries are created migrated (_create): version 0 or missing tables are not ours
        if current == 0 or "devices" not in tables or "audit" not in tables:
            raise RegistryError(f"{self.path} is an SQLite database but not a registry: refusing "
                                f"to use or replace it. Check BOTON_REGISTRY / --registry, or "
                                f"{RESTORE_HINT}", EXIT_VERIFY)
        if current == len(schema.MIGRATIONS):
            if not schema.REGISTRY_TABLES <= tables:
                raise RegistryError(f"{self.path} lacks registry tables "
                                    f"({', '.join(sorted(schema.REGISTRY_TABLES - tables))}); {RESTORE_HINT}",
                                    EXIT_VERIFY)
            return                   # the usual case: no write lock needed to open
        # A migration may rebuild a table (SQLite's way to change a CHECK): foreign keys are
        # off around the transaction (the pragma is a no-op inside one) and checked before
        # the commit, as SQLite's "generalized ALTER TABLE" procedure says.
        self.db.execute("PRAGMA foreign_keys = OFF")
        try:
            with self._write() as db:    # re-read under the lock: another process may have migrated
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > len(schema.MIGRATIONS):
                    raise RegistryError(f"{self.path} has schema version {version}, newer than this "
                                        f"boton knows ({len(schema.MIGRATIONS)}): update boton")
                for i in range(version, len(schema.MIGRATIONS)):
                    schema.MIGRATIONS[i](db)
                    db.execute(f"PRAGMA user_version = {i + 1}")
                    log.info("registry %s migrated to schema %d", self.path, i + 1)
                if db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                    raise RegistryError(f"{self.path}: migrating it would break links between its "
                                        f"tables; nothing was changed. {RESTORE_HINT}", EXIT_VERIFY)
        finally:
            self.db.execute("PRAGMA foreign_keys = ON")

    @property
    def schema_version(self):
        with self._read() as db:
            return db.execute("PRAGMA user_version").fetchone()[0]

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def now(self):
        """The registry's time stamp: UTC, "...Z"."""
        return self._now_utc().astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _now_utc(self):
        """The registry's clock (a test's, else the system's), as an aware UTC datetime."""
        return self._clock() if self._clock else dt.datetime.now(dt.timezone.utc)

    def _audit(self, db, action, mac=None, detail=""):
        """Append an audit row, sealed into the chain when the key is at hand
        (registry_audit.py); without it the row stays unsealed and `verify` says so."""
        keys = self._seal_keys(db)
        head = self._chain_head(db, keys) if keys else None
        if head is None:
            db.execute("INSERT INTO audit (at, technician, action, mac, detail) VALUES (?, ?, ?, ?, ?)",
                       (self.now(), self.technician, action, mac, detail))
        else:
            prev, count = head
            if prev is None:         # the chain starts here, covering the rows before it
                earlier = [dict(r) for r in db.execute(
                    "SELECT id, at, technician, action, mac, detail FROM audit ORDER BY id")]
                prev = ""
                if earlier:
                    prev = self._insert_sealed(db, keys[0], prev, RA.START_ACTION, None,
                                               RA.start_detail(earlier))
                    count += 1
            seal = self._insert_sealed(db, keys[0], prev, action, mac, detail)
            last_id = db.execute("SELECT max(id) FROM audit").fetchone()[0]
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       (RA.ANCHOR_META, RA.anchor_value(keys[1], last_id, count + 1, seal)))
        log.info("%s %s by %s", action, mac or "-", self.technician)

    def _seal_keys(self, db):
        """(audit key, anchor key) if the registry key can be loaded and is this registry's
        (binding it on first use, as case data does); None otherwise."""
        if self._seal_cipher is None:
            try:
                self._seal_cipher = self._cipher or CaseCipher(self._key)
            except RegistryKeyError:
                self._seal_cipher = False
        c = self._seal_cipher
        if not c:
            return None
        stored = read_meta(db, "key_fingerprint")
        if stored is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('key_fingerprint', ?)", (c.fingerprint,))
        elif stored != c.fingerprint:
            log.warning("the key from %s is not this registry's: audit row not sealed", c.source)
            return None
        return c.audit_key, c.anchor_key

    def _chain_head(self, db, keys):
        """(last seal, sealed count) to chain onto; (None, 0) before the chain started; None
        when the stored head does not match the last sealed row: a broken chain is left for
        `verify` to report, never sealed over."""
        stored = read_meta(db, RA.ANCHOR_META)
        last = db.execute("SELECT id, seal FROM audit WHERE seal IS NOT NULL "
                          "ORDER BY id DESC LIMIT 1").fetchone()
        if stored is None and last is None:
            return None, 0
        head = RA.parse_anchor(keys[1], stored)
        if head is None or last is None or head[0] != last["id"] or head[2] != last["seal"]:
            log.warning("the audit chain's head does not match its last row: run `boton registry verify`")
            return None
        return last["seal"], head[1]

    def _insert_sealed(self, db, audit_key, prev, action, mac, detail):
        # the id is sealed too, so it is chosen here (as AUTOINCREMENT would) before inserting
        new_id = db.execute("SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0), "
                            "coalesce((SELECT max(id) FROM audit), 0)) + 1").fetchone()[0]
        row = {"id": new_id, "at": self.now(), "technician": self.technician, "action": action,
               "mac": mac, "detail": detail}
        seal = RA.seal(audit_key, prev, row)
        db.execute("INSERT INTO audit (id, at, technician, action, mac, detail, seal) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", (*row.values(), seal))
        return seal

    def _row(self, db, mac):
        row = db.execute(DEVICE_SELECT + " WHERE d.mac = ?", (mac,)).fetchone()
        if row is None:
            raise RegistryError(f"no device {mac} in the registry (add it with `boton devices add`)")
        return row

    def _begin(self, db, mac, action):
        """The device's row, if `action` is allowed from its state, and the state it leads to."""
        row = self._row(db, mac)
        to = TRANSITIONS[action].get(row["state"])
        if to is None:
            raise RegistryConflict(f"cannot {action.replace('_', ' ')} {row['label']} ({mac}): "
                                   f"it is {row['state']}; {refusal_hint(action, row['state'])}")
        return row, to

    def _update(self, db, mac, **cols):
        if "wipe_required" in cols and "wipe_case" not in cols:
            cols["wipe_case"] = None   # flagged for anyone's data unless the caller says only hers
        cols["updated_at"] = self.now()
        sets = ", ".join(f"{k} = ?" for k in cols)
        db.execute(f"UPDATE devices SET {sets} WHERE mac = ?", (*cols.values(), mac))

    def _close_case(self, db, mac):
        row = db.execute("SELECT id FROM cases WHERE mac = ? AND active = 1", (mac,)).fetchone()
        if row:
            db.execute("DELETE FROM case_index WHERE case_row = ?", (row["id"],))
            db.execute("UPDATE cases SET active = 0, closed_at = ? WHERE id = ?", (self.now(), row["id"]))
        return bool(row)

    # ------------------------------------------------------------------ key
    def cipher(self):
        """The loaded key (RegistryKeyError if missing or malformed); checked against the
        fingerprint stored in the registry, so a different key is refused before use."""
        if self._cipher is None:
            try:
                c = CaseCipher(self._key)
            except MissingKeyError as e:
                stored = self.key_fingerprint()
                if stored:          # only the office's key opens it: a new one would not
                    raise missing_key_error(stored, e.path) from None
                raise
            with self._read() as db:
                stored = read_meta(db, "key_fingerprint")
            if stored and stored != c.fingerprint:
                raise RegistryKeyError(
                    f"cannot decrypt: wrong BOTON_KEY or key file? this registry's case data was "
                    f"encrypted with key {stored}, the key from {c.source} is {c.fingerprint}")
            self._cipher = c
        return self._cipher

    def _bind_key(self, db, c):
        """Inside a write: record the key's fingerprint on first use; refuse another key."""
        stored = read_meta(db, "key_fingerprint")
        if stored is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('key_fingerprint', ?)", (c.fingerprint,))
        elif stored != c.fingerprint:
            self._cipher = None
            raise RegistryKeyError(f"cannot decrypt: wrong BOTON_KEY or key file? this registry's "
                                   f"case data was encrypted with key {stored}, the key from "
                                   f"{c.source} is {c.fingerprint}")

    def unlock(self):
        """Unlock the key now, before a board is opened, if the registry holds case data: a
        passphrase missing or mistyped then stops the command before it touches the board,
        as a broken registry does (PassphraseError). No key, or another one, is left to the
        step that reads her case, as before (a button without a case needs none)."""
        if self.key_fingerprint() is None:
            return
        try:
            self.cipher()
        except PassphraseError:
            raise
        except RegistryKeyError:
            pass

    def key_fingerprint(self):
        """The fingerprint of the key the case data is encrypted with (None before any)."""
        with self._read() as db:
            return read_meta(db, "key_fingerprint")

    # ------------------------------------------------------------------ devices
    def add_device(self, mac, label=None, board=None, flash_size=None) -> DeviceRecord:
        mac = normalise_mac(mac)
        label = normalise_label(label) if label else None
        board = check_known_board(board) if board else None
        flash = parse_flash_size(flash_size) if flash_size not in (None, "") else None
        with self._write() as db:
            self._insert_device(db, mac, label, board=board, flash_size=flash)
            self._audit(db, "add", mac, f"label {label or self._label_of(db, mac)}")
            return DeviceRecord.from_row(self._row(db, mac))

    def _label_of(self, db, mac):
        return db.execute("SELECT label FROM devices WHERE mac = ?", (mac,)).fetchone()[0]

    def _insert_device(self, db, mac, label, state="in_stock", **cols):
        old = db.execute("SELECT label FROM devices WHERE mac = ?", (mac,)).fetchone()
        if old:
            raise RegistryConflict(f"device {mac} is already in the registry as {old['label']}")
        if label:
            taken = self._label_refusal(db, label)
            if taken:
                raise RegistryConflict(taken)
        else:
            label = self._next_label(db)
        now = self.now()
        cols = {k: v for k, v in cols.items() if v is not None}
        names = ["mac", "label", "state", "created_at", "updated_at", *cols]
        db.execute(f"INSERT INTO devices ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                   (mac, label, state, now, now, *cols.values()))
        return label

    def label_refusal(self, label, mac=None):
        """Why `label` cannot go to device `mac` (None: no registered device, such as an
        unregistered image's device id), or None if it may."""
        try:
            label = normalise_label(label, new=False)
        except RegistryError:
            return None                    # no label at all: none a button holds or held
        with self._read() as db:
            return self._label_refusal(db, label, mac)

    def _label_refusal(self, db, label, mac=None, given_up=None):
        """Why `label` cannot go to device `mac` (None: a new device), or None if it may.
        A label once used by a device is never given to another: a relabel changes only
        the registry, the button carries its old label until it is provisioned again, and
        C4 (her file) and her daily reports know the button by it. `given_up`: the
        registry's given_up_labels(db), when the caller already has it."""
        other = db.execute("SELECT mac FROM devices WHERE label = ? AND mac IS NOT ?", (label, mac)).fetchone()
        if other:
            return f"label {label} is already used by device {other['mac']}"
        was = (self.given_up_labels(db) if given_up is None else given_up).get(label)
        if was is None or was == mac:      # a button may take back a label it gave up
            return None
        now = self._label_of(db, was)
        return (f"label {label} was used by device {was} (now {now}), which may still carry it: "
                "a label is never given to another button (C4 and the daily reports know a "
                "button by it); choose another label")

    @staticmethod
    def given_up_labels(db):
        """{label: MAC} of the labels devices were relabelled from (the audit trail's
        `relabel` rows, which nothing edits): the last device that gave each up."""
        out = {}
        for r in db.execute("SELECT mac, detail FROM audit WHERE action = 'relabel' ORDER BY id"):
            m = _RELABEL_RE.fullmatch(r["detail"] or "")
            if m and r["mac"]:
                out[m.group(1).upper()] = r["mac"]
        return out

    def _next_label(self, db):
        return auto_label(self._top_label(db) + 1)

    def _top_label(self, db):
        """The highest number of a BS-NNNN label in the registry, held or given up (0: none)."""
        top = 0
        held = [r[0] for r in db.execute("SELECT label FROM devices WHERE label LIKE 'BS-%'")]
        for label in held + list(self.given_up_labels(db)):
            m = AUTO_LABEL_RE.fullmatch(label.upper())
            if m:
                top = max(top, int(m.group(1)))
        return top

    def get(self, mac):
        """The DeviceRecord with this MAC, or None (RegistryError if `mac` is malformed)."""
        mac = normalise_mac(mac)
        with self._read() as db:
            row = db.execute(DEVICE_SELECT + " WHERE d.mac = ?", (mac,)).fetchone()
        return DeviceRecord.from_row(row) if row else None

    def find(self, label_or_mac) -> DeviceRecord:
        """The DeviceRecord with this MAC or label (any case, any MAC spelling); RegistryError if none."""
        text = str(label_or_mac).strip()
        if looks_like_mac(text):
            dev = self.get(text)
        else:
            label = normalise_label(text, new=False)   # any label it already holds
            with self._read() as db:
                row = db.execute(DEVICE_SELECT + " WHERE d.label = ?", (label,)).fetchone()
            dev = DeviceRecord.from_row(row) if row else None
        if dev is None:
            # a label the technician knows, not found: often the wrong registry (a mistyped path)
            raise RegistryError(f"no device {show_input(text)} in the registry at {self.path} (check "
                                "--registry or BOTON_REGISTRY if it is registered)")
        return dev

    def list(self, state=None):
        if state is not None and state not in STATES:
            raise RegistryError(f"unknown state {show_input(state)}: one of {', '.join(STATES)}")
        with self._read() as db:
            if state:
                rows = db.execute(DEVICE_SELECT + " WHERE d.state = ? ORDER BY d.label", (state,))
            else:
                rows = db.execute(DEVICE_SELECT + " ORDER BY d.label")
            return [DeviceRecord.from_row(r) for r in rows]

    def counts(self):
        """{state: n for every state} plus "total" (all devices ever registered)."""
        out = dict.fromkeys(STATES, 0)
        with self._read() as db:
            for state, n in db.execute("SELECT state, COUNT(*) FROM devices GROUP BY state"):
                out[state] = n
        out["total"] = sum(out[s] for s in STATES)
        return out

    # ------------------------------------------------------------------ device event logs
    def log_anchor(self, mac):
        """What the registry last saw of the device's event log: {"seq", "head", "at"} from
        its last passed log check, or None (never checked, or flashed, wiped or given a
        factory image since: each erases the log). Kept in the audit trail, so it is as
        tamper-evident as it."""
        mac = normalise_mac(mac)
        with self._read() as db:
            row = db.execute("SELECT action, at, detail FROM audit WHERE mac = ? AND action IN "
                             "('log_check', 'flash', 'wipe', 'image') ORDER BY id DESC LIMIT 1", (mac,)).fetchone()
        m = _LOG_HEAD_RE.search(row["detail"] or "") if row and row["action"] == "log_check" else None
        return {"seq": int(m.group(1)), "head": m.group(2), "at": row["at"]} if m else None

    def record_log_check(self, mac, head, entries, ok=True, why=""):
        """A device log check: passed with its new head ({"seq", "head"} or None for an
        empty log) and entry count, or failed with why (the anchor stays as it was)."""
        mac = normalise_mac(mac)
        with self._write() as db:
            self._row(db, mac)
            if not ok:
                self._audit(db, "log_check_failed", mac, scrub(why))
            elif head:
                self._audit(db, "log_check", mac, f"{int(entries)} entries intact; head at entry "
                            f"{int(head['seq'])} {check_hash(head['head'], 'log head')[:16]}")
            else:
                self._audit(db, "log_check", mac, "log empty")

    # ------------------------------------------------------------------ audit
    def audit(self, mac=None, limit=None):
        """Audit rows, oldest first (the last `limit` if given): dicts with id, at,
        technician, action, mac, label, detail. Never contains case data."""
        q = ("SELECT a.id, a.at, a.technician, a.action, a.mac, d.label, a.detail FROM audit a "
             "LEFT JOIN devices d ON d.mac = a.mac")
        args = ()
        if mac is not None:
            q += " WHERE a.mac = ?"
            args = (normalise_mac(mac),)
        q += " ORDER BY a.id DESC"
        if limit:
            q += f" LIMIT {int(limit)}"
        with self._read() as db:
            rows = [dict(r) for r in db.execute(q, args)]
        return rows[::-1]


