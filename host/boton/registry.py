"""The device registry: every button, its state, and (encrypted) the case it serves.

One SQLite file, local to the technicians' workstation:

* where: `BOTON_REGISTRY`, else `registry.sqlite3` in platformdirs' user data dir for
  "boton-seguro" (Linux: ~/.local/share/boton-seguro/). It must be on a local disk
  (SQLite's WAL mode does not work over network filesystems).
* safe with several `boton` commands at once: WAL mode, a busy timeout, and every change
  is one `BEGIN IMMEDIATE` transaction (read, check, write, audit row) so two technicians
  never lose each other's updates; a command that waits too long gets a clear "busy".
* schema migrations: PRAGMA user_version and the ordered MIGRATIONS list; each migration
  runs in the same transaction as its version bump, so a failed one changes nothing.
* devices are keyed by the eFuse base MAC, normalised to "aa:bb:cc:dd:ee:ff".

Case data (alias, case id, full name, notes, order end date, trusted contacts) is
sensitive: it is stored only as a Fernet token (AES-128-CBC + HMAC-SHA256), one per case,
bound to the device's MAC. The key never enters the database. It comes from, in order:
the `key=` argument, env `BOTON_KEY`, or the key file (env `BOTON_KEY_FILE`, else
`registry.key` in the user config dir, ~/.config/boton-seguro/ on Linux). The key file is
created only on purpose, by `boton registry init-key` (mode 0600, never overwritten) and
must be backed up: without it the case data cannot be read. It is never created silently
on first use, so a second workstation cannot start writing cases under a different key;
the registry also stores the key's fingerprint and refuses any other key before reading
or writing case data. Device-only commands (add, list, deliver, ...) need no key.

To refuse a trusted contact already serving another active case without decrypting
everything, the registry keeps keyed HMAC-SHA256 digests (key derived from the same key
by HKDF) of each active case's contact numbers and case id: equal values collide on a
UNIQUE index, and without the key the digests cannot be brute-forced back to numbers.

Nothing sensitive is logged, audited or put into an exception message: CaseData's repr
is redacted, numbers in messages are masked, and free text from technicians (reasons,
test-call details) has digit runs that look like phone numbers masked before storing.
"""
import base64
import csv
import datetime as dt
import getpass
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import sqlite3
import stat
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import platformdirs
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import registry_audit as RA
from .device import EXIT_USAGE, EXIT_VERIFY, DeviceError
from .provision import MAX_CONTACTS, InputError, mask, normalise_alias, normalise_number
from .provision import config_hash as prov_config_hash

log = logging.getLogger("boton.registry")

APP = "boton-seguro"
DB_NAME = "registry.sqlite3"
KEY_NAME = "registry.key"
BUSY_TIMEOUT_S = 15.0

# Exit codes: device.py has 0 ok, 2 bad input, 3 connect, 4 device, 5 verify, 6 test call.
EXIT_CONFLICT = 7    # well-formed request that the registry's contents refuse (duplicate,
                     # wrong state, number already on an active case, registry busy)
# EXIT_VERIFY (5): the registry file or a backup is empty, foreign or damaged, or its audit
# trail does not verify: something to investigate, not a typo.
SQLITE_HEADER = b"SQLite format 3\x00"
REGISTRY_TABLES = {"devices", "audit", "meta", "cases", "case_index"}
RESTORE_HINT = "restore the last backup with `boton registry restore BACKUP`"

STATES = ("in_stock", "provisioning", "provisioned", "delivered", "returned", "faulty", "retired")

# action -> {state it may start from: state it ends in}
TRANSITIONS = {
    "flash":     {s: s for s in STATES if s != "retired"},
    "deploy":    {s: s for s in STATES if s != "retired"},
    # provisioning is two steps around the device write (docs/registry.md, order of
    # operations): begin -> "provisioning" (what is true while the write may be half
    # done), finish -> "provisioned" once the config read back matches; an interrupted run
    # is finished by the next `provision` or rolled back by `devices abort-provision`.
    # A delivered button that is provisioned again comes back through a test call and
    # delivery: its new config has not been tested.
    "provision": {"in_stock": "provisioning", "provisioning": "provisioning",
                  "provisioned": "provisioning", "delivered": "provisioning"},
    "finish_provision": {"provisioning": "provisioned"},
    "abort_provision": {"provisioning": "in_stock"},
    "test_call": {"provisioned": "provisioned", "delivered": "delivered"},
    "assign":    {"in_stock": "in_stock", "provisioned": "provisioned"},
    "deliver":   {"provisioned": "delivered"},
    "return":    {"delivered": "returned"},
    # a delivered button is wiped only with force (record_wipe): return it first
    "wipe":      {"in_stock": "in_stock", "provisioning": "in_stock", "provisioned": "in_stock",
                  "returned": "in_stock", "delivered": "in_stock", "faulty": "faulty",
                  "retired": "retired"},
    "faulty":    {"in_stock": "faulty", "provisioning": "faulty", "provisioned": "faulty",
                  "returned": "faulty"},
    "restock":   {"faulty": "in_stock"},
    "retire":    {s: "retired" for s in STATES if s not in ("delivered", "retired")},
}
_HINTS = {
    "flash": "a retired device is not flashed again",
    "deploy": "a retired device is not deployed again",
    "provision": "only a device in stock, provisioned or delivered can be (re)provisioned",
    "finish_provision": "run `boton provision` to provision it",
    "abort_provision": "only an interrupted provisioning can be aborted",
    "test_call": "provision it first (an interrupted provisioning is finished by running "
                 "`boton provision` again)",
    "assign": "only a device in stock or provisioned can get a case (finish or abort an "
              "interrupted provisioning first)",
    "deliver": "deliver needs a provisioned device with a passed test call",
    "return": "only a delivered device can be returned",
    "wipe": "return it first",
    "faulty": "a delivered device must be returned first",
    "restock": "only a faulty (now repaired) device goes back to stock",
    "retire": "a delivered device must be returned first",
}


# =========================================================================== errors
class RegistryError(DeviceError):
    """Bad input for the registry: a one-line reason, exit code 2, nothing changed."""

    def __init__(self, message, exit_code=EXIT_USAGE):
        super().__init__(message, exit_code)


class RegistryConflict(RegistryError):
    """The request is well formed but the registry's contents refuse it (exit code 7)."""

    def __init__(self, message):
        super().__init__(message, EXIT_CONFLICT)


class RegistryKeyError(RegistryError):
    """The key is missing, malformed or not the one the case data was encrypted with."""


# =========================================================================== validation
_MAC_RE = re.compile(r"[0-9a-f]{12}|[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}")
_LABEL_RE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{0,22}[A-Z0-9])?")
_AUTO_LABEL_RE = re.compile(r"BS-(\d+)")
_HASH_RE = re.compile(r"[0-9a-f]{8,64}")
_BOARD_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
_CASE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.:-]{0,39}")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PHONEISH_RE = re.compile(r"\+?\d[\d ().-]{5,}\d")
_LOG_HEAD_RE = re.compile(r"head at entry (\d+) ([0-9a-f]{16})")


def normalise_mac(text) -> str:
    """'AA-BB-CC-DD-EE-FF', 'aabbccddeeff' ... -> 'aa:bb:cc:dd:ee:ff', or RegistryError."""
    s = str(text).strip().lower()
    if not _MAC_RE.fullmatch(s):
        raise RegistryError(f"{_show(text)} is not a MAC address: expected six hex pairs like "
                            "aa:bb:cc:dd:ee:ff (the board's eFuse MAC, as esptool prints it)")
    hexs = s.replace(":", "").replace("-", "")
    mac = ":".join(hexs[i:i + 2] for i in range(0, 12, 2))
    if hexs in ("000000000000", "ffffffffffff"):
        raise RegistryError(f"{mac} is not a board's MAC address (all zeros or all ones)")
    if int(hexs[:2], 16) & 1:
        raise RegistryError(f"{mac} is a multicast address, not a board's eFuse MAC")
    return mac


def looks_like_mac(text) -> bool:
    return bool(_MAC_RE.fullmatch(str(text).strip().lower()))


def normalise_label(text) -> str:
    s = str(text).strip().upper()
    if not _LABEL_RE.fullmatch(s) or looks_like_mac(s):
        raise RegistryError(f"label {_show(text)} is not valid: use 1-24 letters, digits and "
                            "dashes, e.g. BS-0042")
    return s


def parse_flash_size(value) -> int:
    """4194304, '4MB', '4M', '4MiB' -> bytes (a power of two from 1 to 128 MiB)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(|k|kb|kib|m|mb|mib)\s*", str(value).lower())
        if not m:
            raise RegistryError(f"flash size {_show(value)} is not a size: use bytes or e.g. 4MB")
        n = int(m.group(1)) * {"": 1, "k": 1024, "kb": 1024, "kib": 1024}.get(m.group(2), 1 << 20)
    if n < (1 << 20) or n > (128 << 20) or n & (n - 1):
        raise RegistryError(f"flash size {_show(value)} is not a power of two from 1MB to 128MB")
    return n


def format_flash_size(n):
    if not n:
        return ""
    return f"{n >> 20}MB" if n % (1 << 20) == 0 else str(n)


def _hash(value, what):
    s = str(value).strip().lower()
    if not _HASH_RE.fullmatch(s):
        raise RegistryError(f"{what} {_show(value)} is not a hex SHA-256 (8-64 hex digits)")
    return s


def _luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def normalise_imei(value):
    s = re.sub(r"[\s-]", "", str(value))
    if not re.fullmatch(r"\d{15}", s) or not _luhn_ok(s):
        raise RegistryError(f"IMEI {_show(value)} is not valid: 15 digits with a correct check "
                            "digit (AT+GSN prints it)")
    return s


def normalise_iccid(value):
    s = re.sub(r"[\s-]", "", str(value)).upper().rstrip("F")
    if not re.fullmatch(r"\d{18,22}", s) or not _luhn_ok(s):
        raise RegistryError(f"ICCID {_show(value)} is not valid: 18-22 digits with a correct "
                            "check digit (AT+CCID prints it)")
    return s


def _board(value):
    s = str(value).strip().lower()
    if not _BOARD_RE.fullmatch(s):
        raise RegistryError(f"board {_show(value)} is not a board profile name (e.g. tcall_sim800l_axp192)")
    return s


def scrub(text, limit=200) -> str:
    """Free text from a technician or a device log, made safe to store and show: control
    characters removed, phone-number-like digit runs masked, length capped."""
    s = _CTRL_RE.sub(" ", str(text or "")).strip()

    def _mask(m):
        digits = re.sub(r"\D", "", m.group())
        return mask(digits) if len(digits) >= 7 else m.group()

    s = _PHONEISH_RE.sub(_mask, s)
    return s if len(s) <= limit else s[:limit - 1] + "…"


def _show(value, limit=40):
    """A non-sensitive input echoed in an error message (MACs, labels, sizes), capped."""
    s = _CTRL_RE.sub("?", str(value))
    return repr(s if len(s) <= limit else s[:limit] + "…")


def resolve_technician(technician=None) -> str:
    name = technician or os.environ.get("BOTON_TECHNICIAN")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "unknown"
    name = str(name).strip()
    if not 1 <= len(name) <= 40 or _CTRL_RE.search(name):
        raise RegistryError("technician name must be 1-40 printable characters "
                            "(--technician or BOTON_TECHNICIAN)")
    return name


def default_path() -> Path:
    env = os.environ.get("BOTON_REGISTRY")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP, appauthor=False)) / DB_NAME


def default_key_file() -> Path:
    env = os.environ.get("BOTON_KEY_FILE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / KEY_NAME


# =========================================================================== case data
def check_alias(value):
    """The alias as the device stores it and her SMS carry it (provision.normalise_alias):
    the case and the button's configuration hold the same string."""
    try:
        return normalise_alias(value)
    except InputError as e:
        raise RegistryError(str(e)) from None


def check_case_id(value):
    s = str(value or "").strip()
    if not _CASE_ID_RE.fullmatch(s):
        raise RegistryError(f"case id must be 1-40 letters, digits and / _ . : - "
                            f"(got {len(s)} characters)")
    return s


def check_date(value, what="order end date"):
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    s = str(value).strip()
    if s.lower() in ("none", "-"):
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            raise ValueError
        return dt.date.fromisoformat(s)
    except ValueError:
        raise RegistryError(f"{what} must be a real date written YYYY-MM-DD (or 'none')") from None


def check_contacts(values, region="MX"):
    if isinstance(values, str):
        values = [values]
    # "449 111 2233; 449 222 3344" in one CSV field or one --contact: numbers have no , ; |
    values = [v for item in (values or []) for v in re.split(r"[;|,\n]", str(item)) if v.strip()]
    if not 1 <= len(values) <= MAX_CONTACTS:
        raise RegistryError(f"give 1 to {MAX_CONTACTS} trusted contacts (got {len(values)})")
    out = []
    for i, v in enumerate(values):
        try:
            out.append(normalise_number(str(v), f"contact #{i + 1}", region))
        except InputError as e:
            raise RegistryError(str(e)) from None
    if len(set(out)) != len(out):
        raise RegistryError("the same trusted contact is given twice")
    return tuple(out)


def check_text(value, what, limit):
    if value is None:
        return None
    s = str(value).strip()
    if not s:
        return None
    if len(s) > limit:
        raise RegistryError(f"{what} is too long ({len(s)} characters; at most {limit})")
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", s):
        raise RegistryError(f"{what} contains control characters")
    return s


@dataclass(frozen=True, repr=False)
class CaseData:
    """The beneficiary's case. Sensitive: its repr/str never show the values, and the
    registry stores it only encrypted. Validated and normalised on construction."""
    alias: str
    case_id: str
    contacts: tuple
    order_ends: dt.date = None
    full_name: str = None
    notes: str = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "alias", check_alias(self.alias))
        set_(self, "case_id", check_case_id(self.case_id))
        set_(self, "contacts", check_contacts(self.contacts))
        set_(self, "order_ends", check_date(self.order_ends))
        set_(self, "full_name", check_text(self.full_name, "full name", 120))
        set_(self, "notes", check_text(self.notes, "notes", 2000))

    def __repr__(self):
        return f"CaseData(<redacted: {len(self.contacts)} contact(s)>)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("CaseData is not picklable (it holds case data in the clear)")

    def to_dict(self):
        """The plaintext, for an explicit reveal or an explicit export."""
        return {"alias": self.alias, "case_id": self.case_id, "full_name": self.full_name,
                "notes": self.notes,
                "order_ends": self.order_ends.isoformat() if self.order_ends else None,
                "contacts": list(self.contacts)}

    @classmethod
    def from_dict(cls, d):
        return cls(alias=d.get("alias"), case_id=d.get("case_id"), contacts=d.get("contacts"),
                   order_ends=d.get("order_ends"), full_name=d.get("full_name"), notes=d.get("notes"))

    def days_left(self, today=None):
        if self.order_ends is None:
            return None
        return (self.order_ends - (today or dt.date.today())).days


# =========================================================================== the key
def _parse_key(text, source):
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            text = ""
    text = str(text).strip()
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii")) if len(text) == 44 else b""
    except (ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise RegistryKeyError(f"{source} is not a registry key: expected 44 characters of "
                               "url-safe base64 (as written by `boton registry init-key`)")
    return text, raw


def load_key(key=None):
    """(key text, 32 raw bytes, where it came from); RegistryKeyError if none or malformed."""
    if key is not None:
        return (*_parse_key(key, "the given key"), "the given key")
    env = os.environ.get("BOTON_KEY")
    if env:
        return (*_parse_key(env, "BOTON_KEY"), "BOTON_KEY")
    path = default_key_file()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RegistryKeyError(f"no registry key: case data needs one. Create it once with "
                               f"`boton registry init-key` (writes {path}) and back it up, or "
                               "set BOTON_KEY") from None
    except OSError as e:
        raise RegistryKeyError(f"cannot read key file {path}: {e.strerror}") from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise RegistryKeyError(f"key file {path} is readable by other users "
                               f"(mode {stat.S_IMODE(st.st_mode):04o}): run chmod 600 {path}")
    try:
        text = path.read_text("ascii", errors="replace")
    except OSError as e:
        raise RegistryKeyError(f"cannot read key file {path}: {e.strerror}") from None
    return (*_parse_key(text, f"key file {path}"), f"key file {path}")


def create_key_file(path=None) -> Path:
    """Write a new random key with mode 0600; never overwrites. Returns the path."""
    path = Path(path) if path else default_key_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise RegistryConflict(f"key file {path} already exists; refusing to overwrite it (the "
                               "case data encrypted with it would become unreadable)") from None
    with os.fdopen(fd, "w") as f:
        f.write(Fernet.generate_key().decode() + "\n")
    return path


class _Cipher:
    """Fernet for the case tokens, HMAC digests for the uniqueness index, a fingerprint."""

    def __init__(self, key=None):
        text, raw, self.source = load_key(key)
        self._fernet = Fernet(text.encode())
        self._index_key = _hkdf(raw, b"boton-seguro/index/v1")
        self.audit_key = _hkdf(raw, RA.AUDIT_INFO)
        self.anchor_key = _hkdf(raw, RA.ANCHOR_INFO)
        self.fingerprint = hmac.new(_hkdf(raw, b"boton-seguro/fingerprint/v1"), b"registry key",
                                    hashlib.sha256).hexdigest()[:16]

    def __repr__(self):
        return f"<registry key {self.fingerprint} from {self.source}>"

    def digest(self, kind, value):
        return hmac.new(self._index_key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()

    def seal(self, mac, case: CaseData) -> bytes:
        body = {"v": 1, "mac": mac, **case.to_dict()}
        return self._fernet.encrypt(json.dumps(body, ensure_ascii=False).encode())

    def open(self, mac, token) -> CaseData:
        try:
            body = json.loads(self._fernet.decrypt(bytes(token)))
        except (InvalidToken, ValueError):
            raise RegistryKeyError(f"cannot decrypt the case data of {mac}: wrong BOTON_KEY or "
                                   f"key file? (using the key from {self.source})") from None
        if body.get("mac") != mac:
            raise RegistryError(f"the case data stored for {mac} belongs to another device: "
                                "the registry was tampered with")
        try:
            return CaseData.from_dict(body)
        except RegistryError:
            raise RegistryError(f"the case data stored for {mac} no longer validates") from None


def _hkdf(raw, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)


# =========================================================================== schema
def _m1_devices(db):
    _script(db, """
        CREATE TABLE devices (
            mac              TEXT PRIMARY KEY,
            label            TEXT NOT NULL UNIQUE COLLATE NOCASE,
            state            TEXT NOT NULL CHECK (state IN ('in_stock', 'provisioned', 'delivered',
                                                            'returned', 'faulty', 'retired')),
            board            TEXT,
            flash_size       INTEGER,
            image_hash       TEXT,
            firmware_hash    TEXT,
            config_hash      TEXT,
            imei             TEXT,
            iccid            TEXT,
            test_call_result TEXT CHECK (test_call_result IN ('passed', 'failed')),
            test_call_detail TEXT,
            test_call_at     TEXT,
            technician       TEXT,
            state_reason     TEXT,
            wipe_required    INTEGER NOT NULL DEFAULT 0,
            created_at       TEXT NOT NULL,
            updated_at       TEXT NOT NULL,
            flashed_at       TEXT,
            deployed_at      TEXT,
            provisioned_at   TEXT,
            delivered_at     TEXT,
            returned_at      TEXT
        );
        CREATE INDEX devices_state ON devices(state);
        CREATE TABLE audit (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            at         TEXT NOT NULL,
            technician TEXT NOT NULL,
            action     TEXT NOT NULL,
            mac        TEXT,
            detail     TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_mac ON audit(mac, id);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """)


def _m2_cases(db):
    _script(db, """
        CREATE TABLE cases (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            mac        TEXT NOT NULL REFERENCES devices(mac),
            token      BLOB NOT NULL,
            active     INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            closed_at  TEXT
        );
        CREATE UNIQUE INDEX cases_one_active ON cases(mac) WHERE active = 1;
        CREATE TABLE case_index (
            case_row INTEGER NOT NULL REFERENCES cases(id),
            kind     TEXT NOT NULL,
            digest   TEXT NOT NULL,
            UNIQUE (kind, digest)
        );
    """)


def _m3_audit_chain(db):
    """The audit trail becomes append-only and sealed (registry_audit.py). Rows already
    there are covered by the "audit_chain_started" row the first command with the key adds."""
    _script(db, """
        ALTER TABLE audit ADD COLUMN seal TEXT;
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: rows cannot be changed'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: rows cannot be deleted'); END;
    """)


_DEVICE_COLUMNS_M1 = ("mac, label, state, board, flash_size, image_hash, firmware_hash, config_hash, "
                      "imei, iccid, test_call_result, test_call_detail, test_call_at, technician, "
                      "state_reason, wipe_required, created_at, updated_at, flashed_at, deployed_at, "
                      "provisioned_at, delivered_at, returned_at")


def _m4_order_of_operations(db):
    """The "provisioning" state (a CHECK cannot be altered in SQLite: the table is rebuilt,
    with foreign keys off around it, see Registry._migrate) and what ties a button's
    config to the registry: the config being written and the case it was built from
    (pending_*), the case the provisioned config came from (config_case: a cases.id, NULL
    for a bench config), the config a test call ran with (test_call_config)."""
    _script(db, f"""
        CREATE TABLE devices_new (
            mac              TEXT PRIMARY KEY,
            label            TEXT NOT NULL UNIQUE COLLATE NOCASE,
            state            TEXT NOT NULL CHECK (state IN ('in_stock', 'provisioning', 'provisioned',
                                                            'delivered', 'returned', 'faulty', 'retired')),
            board            TEXT,
            flash_size       INTEGER,
            image_hash       TEXT,
            firmware_hash    TEXT,
            config_hash      TEXT,
            imei             TEXT,
            iccid            TEXT,
            test_call_result TEXT CHECK (test_call_result IN ('passed', 'failed')),
            test_call_detail TEXT,
            test_call_at     TEXT,
            technician       TEXT,
            state_reason     TEXT,
            wipe_required    INTEGER NOT NULL DEFAULT 0,
            created_at       TEXT NOT NULL,
            updated_at       TEXT NOT NULL,
            flashed_at       TEXT,
            deployed_at      TEXT,
            provisioned_at   TEXT,
            delivered_at     TEXT,
            returned_at      TEXT,
            pending_config_hash TEXT,
            pending_case     INTEGER,
            config_case      INTEGER,
            test_call_config TEXT
        );
        INSERT INTO devices_new ({_DEVICE_COLUMNS_M1}) SELECT {_DEVICE_COLUMNS_M1} FROM devices;
        DROP TABLE devices;
        ALTER TABLE devices_new RENAME TO devices;
        CREATE INDEX devices_state ON devices(state);
    """)
    # a config provisioned while a case was assigned was built from it (the rule then)
    db.execute("UPDATE devices SET config_case = (SELECT c.id FROM cases c WHERE c.mac = devices.mac "
               "AND c.active = 1) WHERE config_hash IS NOT NULL")


def _script(db, sql):
    """Run SQL statements one by one: sqlite3's executescript() would COMMIT the
    migration's transaction half-way."""
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            db.execute(buf)
            buf = ""
    if buf.strip():
        db.execute(buf)


# Ordered: MIGRATIONS[i](db) takes a database from user_version i to i + 1, inside the
# caller's transaction (so it may also move data in Python). Append only; never edit one
# that has shipped.
MIGRATIONS = [_m1_devices, _m2_cases, _m3_audit_chain, _m4_order_of_operations]


# =========================================================================== records
@dataclass(frozen=True)
class Device:
    mac: str
    label: str
    state: str
    board: str = None
    flash_size: int = None
    image_hash: str = None
    firmware_hash: str = None
    config_hash: str = None
    imei: str = None
    iccid: str = None
    test_call_result: str = None
    test_call_detail: str = None
    test_call_at: str = None
    technician: str = None
    state_reason: str = None
    wipe_required: bool = False
    has_case: bool = False
    created_at: str = None
    updated_at: str = None
    flashed_at: str = None
    deployed_at: str = None
    provisioned_at: str = None
    delivered_at: str = None
    returned_at: str = None
    pending_config_hash: str = None
    pending_case: int = None
    config_case: int = None
    test_call_config: str = None

    @classmethod
    def from_row(cls, row):
        names = {f.name for f in fields(cls)}
        d = {k: row[k] for k in row.keys() if k in names}
        d["wipe_required"] = bool(d.get("wipe_required"))
        d["has_case"] = bool(d.get("has_case"))
        return cls(**d)

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class EndingSoon:
    device: Device
    case: CaseData
    days_left: int


_DEVICE_SELECT = ("SELECT d.*, EXISTS (SELECT 1 FROM cases c WHERE c.mac = d.mac AND c.active = 1) "
                  "AS has_case FROM devices d")


def _now_iso(clock):
    t = clock() if clock else dt.datetime.now(dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# =========================================================================== registry
class Registry:
    """The registry. One instance per thread (it holds one SQLite connection).

    `key` is only needed (and only loaded) for case data. `technician` defaults to
    BOTON_TECHNICIAN, then the OS user; it is written to every audit row.
    """

    def __init__(self, path=None, key=None, technician=None, *, clock=None,
                 timeout=BUSY_TIMEOUT_S):
        self.path = Path(path).expanduser() if path else default_path()
        self.technician = resolve_technician(technician)
        self._key = key
        self._cipher = None
        self._seal_cipher = None     # the key for audit seals: None not tried yet, False none
        self._clock = clock
        self._timeout = timeout
        self.db = self._connect()
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    def __repr__(self):
        return f"<Registry {self.path}>"

    # ------------------------------------------------------------------ plumbing
    def _connect(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                self._refuse_if_deleted()
                self._create()
        except OSError as e:
            raise RegistryError(f"cannot create the registry at {self.path}: {e.strerror}") from None
        _check_file(self.path, "registry")
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
            problem = _integrity(db, quick=True)
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
                for migration in MIGRATIONS:
                    migration(db)
                db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
                db.execute("COMMIT")
            finally:
                db.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass                 # another command created it at the same moment: use theirs
            else:
                fd = os.open(self._witness(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(f"registry {self.path.name} created {self.now()}\n")
        except sqlite3.DatabaseError as e:
            raise RegistryError(f"cannot create the registry at {self.path}: {e}") from None
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(f"{tmp}{suffix}")
                except OSError:
                    pass

    def _witness(self) -> Path:
        """A small file beside the registry saying one was created here: a registry that is
        later deleted is then refused, not silently started again empty (labels would
        restart at BS-0001 and every record of who had which button would be gone)."""
        return self.path.with_name(f".{self.path.name}.created")

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
        if current == len(MIGRATIONS):
            if not REGISTRY_TABLES <= tables:
                raise RegistryError(f"{self.path} lacks registry tables "
                                    f"({', '.join(sorted(REGISTRY_TABLES - tables))}); {RESTORE_HINT}",
                                    EXIT_VERIFY)
            return                   # the usual case: no write lock needed to open
        # A migration may rebuild a table (SQLite's way to change a CHECK): foreign keys are
        # off around the transaction (the pragma is a no-op inside one) and checked before
        # the commit, as SQLite's "generalized ALTER TABLE" procedure says.
        self.db.execute("PRAGMA foreign_keys = OFF")
        try:
            with self._write() as db:    # re-read under the lock: another process may have migrated
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > len(MIGRATIONS):
                    raise RegistryError(f"{self.path} has schema version {version}, newer than this "
                                        f"boton knows ({len(MIGRATIONS)}): update boton")
                for i in range(version, len(MIGRATIONS)):
                    MIGRATIONS[i](db)
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
        return _now_iso(self._clock)

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
                self._seal_cipher = self._cipher or _Cipher(self._key)
            except RegistryKeyError:
                self._seal_cipher = False
        c = self._seal_cipher
        if not c:
            return None
        stored = _meta(db, "key_fingerprint")
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
        stored = _meta(db, RA.ANCHOR_META)
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
        row = db.execute(_DEVICE_SELECT + " WHERE d.mac = ?", (mac,)).fetchone()
        if row is None:
            raise RegistryError(f"no device {mac} in the registry (add it with `boton devices add`)")
        return row

    def _begin(self, db, mac, action):
        """The device's row, if `action` is allowed from its state, and the state it leads to."""
        row = self._row(db, mac)
        to = TRANSITIONS[action].get(row["state"])
        if to is None:
            raise RegistryConflict(f"cannot {action.replace('_', ' ')} {row['label']} ({mac}): "
                                   f"it is {row['state']}; {_HINTS[action]}")
        return row, to

    def _update(self, db, mac, **cols):
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
            c = _Cipher(self._key)
            with self._read() as db:
                stored = _meta(db, "key_fingerprint")
            if stored and stored != c.fingerprint:
                raise RegistryKeyError(
                    f"cannot decrypt: wrong BOTON_KEY or key file? this registry's case data was "
                    f"encrypted with key {stored}, the key from {c.source} is {c.fingerprint}")
            self._cipher = c
        return self._cipher

    def _bind_key(self, db, c):
        """Inside a write: record the key's fingerprint on first use; refuse another key."""
        stored = _meta(db, "key_fingerprint")
        if stored is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('key_fingerprint', ?)", (c.fingerprint,))
        elif stored != c.fingerprint:
            self._cipher = None
            raise RegistryKeyError(f"cannot decrypt: wrong BOTON_KEY or key file? this registry's "
                                   f"case data was encrypted with key {stored}, the key from "
                                   f"{c.source} is {c.fingerprint}")

    def key_fingerprint(self):
        """The fingerprint of the key the case data is encrypted with (None before any)."""
        with self._read() as db:
            return _meta(db, "key_fingerprint")

    # ------------------------------------------------------------------ devices
    def add_device(self, mac, label=None, board=None, flash_size=None) -> Device:
        mac = normalise_mac(mac)
        label = normalise_label(label) if label else None
        board = _board(board) if board else None
        flash = parse_flash_size(flash_size) if flash_size not in (None, "") else None
        with self._write() as db:
            self._insert_device(db, mac, label, board=board, flash_size=flash)
            self._audit(db, "add", mac, f"label {label or self._label_of(db, mac)}")
            return Device.from_row(self._row(db, mac))

    def _label_of(self, db, mac):
        return db.execute("SELECT label FROM devices WHERE mac = ?", (mac,)).fetchone()[0]

    def _insert_device(self, db, mac, label, state="in_stock", **cols):
        old = db.execute("SELECT label FROM devices WHERE mac = ?", (mac,)).fetchone()
        if old:
            raise RegistryConflict(f"device {mac} is already in the registry as {old['label']}")
        if label:
            other = db.execute("SELECT mac FROM devices WHERE label = ?", (label,)).fetchone()
            if other:
                raise RegistryConflict(f"label {label} is already used by device {other['mac']}")
        else:
            label = self._next_label(db)
        now = self.now()
        cols = {k: v for k, v in cols.items() if v is not None}
        names = ["mac", "label", "state", "created_at", "updated_at", *cols]
        db.execute(f"INSERT INTO devices ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                   (mac, label, state, now, now, *cols.values()))
        return label

    def _next_label(self, db):
        top = 0
        for (label,) in db.execute("SELECT label FROM devices WHERE label LIKE 'BS-%'"):
            m = _AUTO_LABEL_RE.fullmatch(label.upper())
            if m:
                top = max(top, int(m.group(1)))
        return f"BS-{top + 1:04d}"

    def get(self, mac):
        """The Device with this MAC, or None (RegistryError if `mac` is malformed)."""
        mac = normalise_mac(mac)
        with self._read() as db:
            row = db.execute(_DEVICE_SELECT + " WHERE d.mac = ?", (mac,)).fetchone()
        return Device.from_row(row) if row else None

    def find(self, label_or_mac) -> Device:
        """The Device with this MAC or label (any case, any MAC spelling); RegistryError if none."""
        text = str(label_or_mac).strip()
        if looks_like_mac(text):
            dev = self.get(text)
        else:
            label = normalise_label(text)
            with self._read() as db:
                row = db.execute(_DEVICE_SELECT + " WHERE d.label = ?", (label,)).fetchone()
            dev = Device.from_row(row) if row else None
        if dev is None:
            raise RegistryError(f"no device {_show(text)} in the registry")
        return dev

    def list(self, state=None):
        if state is not None and state not in STATES:
            raise RegistryError(f"unknown state {_show(state)}: one of {', '.join(STATES)}")
        with self._read() as db:
            if state:
                rows = db.execute(_DEVICE_SELECT + " WHERE d.state = ? ORDER BY d.label", (state,))
            else:
                rows = db.execute(_DEVICE_SELECT + " ORDER BY d.label")
            return [Device.from_row(r) for r in rows]

    def counts(self):
        """{state: n for every state} plus "total" (all devices ever registered)."""
        out = dict.fromkeys(STATES, 0)
        with self._read() as db:
            for state, n in db.execute("SELECT state, COUNT(*) FROM devices GROUP BY state"):
                out[state] = n
        out["total"] = sum(out[s] for s in STATES)
        return out

    # ------------------------------------------------------------------ lifecycle
    def record_flash(self, mac, flash_size, firmware_image_hash) -> Device:
        """MicroPython image written with esptool. Any earlier test call no longer counts."""
        mac = normalise_mac(mac)
        size = parse_flash_size(flash_size)
        image = _hash(firmware_image_hash, "firmware image hash")
        with self._write() as db:
            row, to = self._begin(db, mac, "flash")
            self._update(db, mac, flash_size=size, image_hash=image, flashed_at=self.now(),
                         test_call_result=None, test_call_detail=None, test_call_at=None)
            self._audit(db, "flash", mac, f"image {image[:12]}, flash {format_flash_size(size)}")
            return Device.from_row(self._row(db, mac))

    def record_deploy(self, mac, firmware_hash) -> Device:
        """Application firmware copied with `boton deploy`. Any earlier test call no longer counts."""
        mac = normalise_mac(mac)
        fw = _hash(firmware_hash, "firmware hash")
        with self._write() as db:
            self._begin(db, mac, "deploy")
            self._update(db, mac, firmware_hash=fw, deployed_at=self.now(),
                         test_call_result=None, test_call_detail=None, test_call_at=None)
            self._audit(db, "deploy", mac, f"firmware {fw[:12]}")
            return Device.from_row(self._row(db, mac))

    # ------------------------------------------------------------------ order of operations
    # Every command that touches a button runs registry first, device second, registry last
    # (docs/registry.md): precheck() before anything is written to the device, then the
    # device step, then the record. Provisioning is two records around the write.
    def precheck(self, action, mac, expected=None, register=False, label=None) -> Device:
        """Registry first: may `action` touch the button whose eFuse MAC `mac` was read from
        the port? expected: the label or MAC the technician named (--device): another button
        on the port is refused. A button not in the registry is refused, or registered in
        stock first when `register` (flash, deploy, a bench provision), under `label`.
        Refused if its state does not allow `action` (TRANSITIONS). Returns the Device;
        changes nothing unless it registers the button."""
        mac = normalise_mac(mac)
        if expected is not None:
            named = self.find(expected)
            if named.mac != mac:
                raise RegistryConflict(f"the button on the port is {mac}"
                                       + (f" ({self.get(mac).label})" if self.get(mac) else "")
                                       + f", not {named.label} ({named.mac}): nothing was changed; "
                                       "plug in the button you named")
        dev = self.get(mac)
        if dev is None:
            if not register:
                raise RegistryConflict(f"the button on the port ({mac}) is not in the registry: "
                                       "provision it with `boton provision` first (or add it with "
                                       "`boton devices add`)")
            dev = self.add_device(mac, label=label)
        if dev.state not in TRANSITIONS[action]:
            raise RegistryConflict(f"cannot {action.replace('_', ' ')} {dev.label} ({mac}): it is "
                                   f"{dev.state}; {_HINTS[action]}")
        return dev

    def _active_case_row(self, db, mac):
        return db.execute("SELECT id, token FROM cases WHERE mac = ? AND active = 1", (mac,)).fetchone()

    def provision_case(self, mac):
        """(CaseData, case row id) of the case her button's configuration must be built from,
        or (None, None) for a button without a case (a bench configuration, which can be
        test-called but never delivered). Decrypting it is audited."""
        mac = normalise_mac(mac)
        with self._read() as db:
            row = self._active_case_row(db, mac)
        if row is None:
            return None, None
        c = self.cipher()
        with self._write() as db:
            case = c.open(mac, row["token"])
            self._audit(db, "reveal", mac, "case data read to write the button's configuration")
        return case, row["id"]

    def begin_provision(self, mac, config_hash, case_row=None) -> Device:
        """Before the config is written: -> provisioning, recording the config about to be
        written and the case it was built from (None: a bench config). Refused if the case
        was replaced since it was read, or a bench config is given for a button with a case."""
        mac = normalise_mac(mac)
        cfg = _hash(config_hash, "config hash")
        with self._write() as db:
            row, to = self._begin(db, mac, "provision")
            active = self._active_case_row(db, mac)
            if (active["id"] if active else None) != case_row:
                raise RegistryConflict(f"cannot provision {row['label']} ({mac}): its case changed while "
                                       "the configuration was being prepared; run `boton provision` again")
            self._update(db, mac, state=to, pending_config_hash=cfg, pending_case=case_row,
                         test_call_result=None, test_call_detail=None, test_call_at=None,
                         test_call_config=None)
            self._audit(db, "provision_begin", mac, f"config {cfg[:12]} "
                        + ("from her case" if case_row else "for the bench (no case)")
                        + f"; {row['state']} -> {to}")
            return Device.from_row(self._row(db, mac))

    def finish_provision(self, mac, config_hash, imei=None, iccid=None) -> Device:
        """After the config was read back from the button and its hash is the one
        begin_provision recorded: provisioning -> provisioned."""
        mac = normalise_mac(mac)
        cfg = _hash(config_hash, "config hash")
        imei = normalise_imei(imei) if imei else None
        iccid = normalise_iccid(iccid) if iccid else None
        with self._write() as db:
            row, to = self._begin(db, mac, "finish_provision")
            if row["pending_config_hash"] != cfg:
                raise RegistryConflict(f"cannot finish provisioning {row['label']} ({mac}): the button "
                                       f"holds config {cfg[:12]}, the registry expected "
                                       f"{(row['pending_config_hash'] or 'none')[:12]}; run "
                                       "`boton provision` again")
            self._update(db, mac, state=to, config_hash=cfg, config_case=row["pending_case"],
                         pending_config_hash=None, pending_case=None,
                         imei=imei or row["imei"], iccid=iccid or row["iccid"],
                         technician=self.technician, provisioned_at=self.now(), state_reason=None)
            self._audit(db, "provision", mac, f"config {cfg[:12]} verified; {row['state']} -> {to}")
            return Device.from_row(self._row(db, mac))

    def abort_provision(self, mac) -> Device:
        """An interrupted provisioning that will not be finished (the button is gone or
        broken): provisioning -> in_stock. The registry cannot know which config the button
        holds (the old or the new one: the write itself is atomic), so it is flagged for a
        wipe and has no recorded config: it cannot be test-called or delivered as it is."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, to = self._begin(db, mac, "abort_provision")
            self._update(db, mac, state=to, config_hash=None, config_case=None,
                         pending_config_hash=None, pending_case=None, wipe_required=1,
                         test_call_result=None, test_call_detail=None, test_call_at=None,
                         test_call_config=None)
            self._audit(db, "provision_abort", mac, f"{row['state']} -> {to}; it may hold a "
                        "configuration: wipe it or provision it again")
            return Device.from_row(self._row(db, mac))

    def record_provision(self, mac, config_hash, imei=None, iccid=None, technician=None) -> Device:
        """begin_provision and finish_provision in one step, for a configuration already
        written and verified (the API, imports, tests): built from the case the device has
        now, if any. The CLI uses the two steps around the write."""
        mac = normalise_mac(mac)
        cfg = _hash(config_hash, "config hash")
        imei = normalise_imei(imei) if imei else None
        iccid = normalise_iccid(iccid) if iccid else None
        tech = resolve_technician(technician or self.technician)
        with self._write() as db:
            row, _ = self._begin(db, mac, "provision")
            to = TRANSITIONS["finish_provision"]["provisioning"]
            active = self._active_case_row(db, mac)
            self._update(db, mac, state=to, config_hash=cfg, config_case=active["id"] if active else None,
                         pending_config_hash=None, pending_case=None,
                         imei=imei or row["imei"], iccid=iccid or row["iccid"], technician=tech,
                         provisioned_at=self.now(), test_call_result=None, test_call_detail=None,
                         test_call_at=None, test_call_config=None, state_reason=None)
            self._audit(db, "provision", mac, f"config {cfg[:12]}; {row['state']} -> {to}")
            return Device.from_row(self._row(db, mac))

    def check_config(self, mac, raw) -> str:
        """Is the configuration read from the button (its bytes, None if it has none) the
        one the registry recorded at provisioning, built from her current case? Returns its
        hash. A mismatch is audited and refused with one line that shows none of her data
        (RegistryError, exit 5). Needs the key when the button has a case (its alias and
        contacts are compared with the case's, not only the hash)."""
        mac = normalise_mac(mac)
        digest = prov_config_hash(raw) if raw is not None else None
        with self._read() as db:
            row = self._row(db, mac)
            active = self._active_case_row(db, mac)
        why, case = None, None
        if active is not None:
            case = self.cipher().open(mac, active["token"])
        try:
            config = json.loads(raw) if raw is not None else None
        except ValueError:
            config = None
        if raw is None:
            why = "it has no configuration"
        elif row["config_hash"] is None:
            why = "the registry has no configuration recorded for it (provision it)"
        elif digest != row["config_hash"]:
            why = (f"its configuration ({digest[:12]}) is not the one recorded at provisioning "
                   f"({row['config_hash'][:12]})")
        elif not isinstance(config, dict):
            why = "its configuration is not readable"
        elif config.get("device_id") != row["label"]:
            why = (f"its configuration names it {_show(config.get('device_id'), 24)}, the registry "
                   f"knows it as {row['label']}")
        elif case is not None and row["config_case"] != active["id"]:
            why = ("its configuration was not written from her current case (provisioned before "
                   "the case was assigned, or the case was replaced)")
        elif case is not None and config.get("alias") != case.alias:
            why = "its alias differs from her case's"
        elif case is not None and list(config.get("contacts") or ()) != list(case.contacts):
            why = "its trusted contacts differ from her case's"
        with self._write() as db:
            if why:
                self._audit(db, "config_mismatch", mac, why)
            else:
                self._audit(db, "config_check", mac, f"config {digest[:12]} is the recorded one"
                            + ("; matches her case" if case is not None else "; bench config, no case"))
        if why:
            raise RegistryError(f"{row['label']} ({mac}) refused: {why}; nothing was done. Provision "
                                "it again with `boton provision` (from her case)", EXIT_VERIFY)
        return digest

    def record_test_call(self, mac, ok, detail="", config_hash=None) -> Device:
        """A test call's result; config_hash: the configuration it ran with (what
        check_config returned), which delivery requires to still be the button's."""
        mac = normalise_mac(mac)
        result = "passed" if ok else "failed"
        detail = scrub(detail)
        cfg = _hash(config_hash, "config hash") if config_hash else None
        with self._write() as db:
            row, _ = self._begin(db, mac, "test_call")
            if cfg and cfg != row["config_hash"]:
                raise RegistryConflict(f"cannot record the test call of {row['label']} ({mac}): it ran "
                                       f"with config {cfg[:12]}, the registry recorded "
                                       f"{(row['config_hash'] or 'none')[:12]}")
            self._update(db, mac, test_call_result=result, test_call_detail=detail,
                         test_call_at=self.now(), test_call_config=cfg or row["config_hash"])
            self._audit(db, "test_call", mac, f"{result}{': ' + detail if detail else ''}")
            return Device.from_row(self._row(db, mac))

    def deliver(self, mac, config_hash=None, dry_run=False) -> Device:
        """provisioned -> delivered: needs a case, a config written from that case, and a
        passed test call since the last flash, deploy or provision. config_hash: the config
        just read from the button (check_config); it must be the one the test call ran with.
        dry_run: only the checks (before the button is read), nothing changes."""
        mac = normalise_mac(mac)
        cfg = _hash(config_hash, "config hash") if config_hash else None
        with self._write() as db:
            row, to = self._begin(db, mac, "deliver")
            if row["test_call_result"] != "passed":
                why = ("its last test call failed" if row["test_call_result"] == "failed" else
                       "no test call since it was last flashed, deployed or provisioned")
                raise RegistryConflict(f"cannot deliver {row['label']} ({mac}): {why}; "
                                       "run `boton test-call` and record a passed one")
            active = self._active_case_row(db, mac)
            if active is None:
                raise RegistryConflict(f"cannot deliver {row['label']} ({mac}): no case is assigned "
                                       "(`boton devices assign`)")
            if row["config_case"] != active["id"]:
                raise RegistryConflict(f"cannot deliver {row['label']} ({mac}): its configuration was "
                                       "not written from her case (provisioned before the case was "
                                       "assigned, or the case was replaced); run `boton provision`")
            if cfg and cfg != (row["test_call_config"] or row["config_hash"]):
                raise RegistryConflict(f"cannot deliver {row['label']} ({mac}): its configuration "
                                       f"({cfg[:12]}) is not the one its test call passed with; run "
                                       "`boton test-call` again")
            if dry_run:
                return Device.from_row(row)
            self._update(db, mac, state=to, delivered_at=self.now(), state_reason=None)
            self._audit(db, "deliver", mac, "provisioned -> delivered"
                        + (f"; config {cfg[:12]} read from the button" if cfg else ""))
            return Device.from_row(self._row(db, mac))

    def check_flash(self, mac, force=False, expected=None) -> Device:
        """Registry first for `boton flash` (registers a new button in stock): a retired
        button is not flashed; a delivered one is in her hands (return it first, or --force
        for a repair); a returned one still holds her data: `boton wipe` first (the recorded,
        verified wipe; a flash erase is not one)."""
        dev = self.precheck("flash", mac, expected=expected, register=True)
        if dev.state == "delivered" and not force:
            raise RegistryConflict(f"cannot flash {dev.label} ({dev.mac}): it is delivered (her "
                                   "configuration would be erased); return it first, or --force")
        if dev.state == "returned":
            raise RegistryConflict(f"cannot flash {dev.label} ({dev.mac}): it is returned and still "
                                   "holds her data; run `boton wipe` first")
        return dev

    def flash_erasing(self, mac) -> Device:
        """Just before esptool erases the chip: a configuration on it is going (say so
        now, so an interrupted flash leaves the registry true): a provisioning, provisioned
        or delivered button goes back to stock with no recorded config, flagged for a wipe
        (the erase is not verified as `boton wipe` verifies). Its case stays assigned."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, _ = self._begin(db, mac, "flash")
            if not self._holds_config(row) or row["state"] not in ("provisioning", "provisioned", "delivered"):
                return Device.from_row(row)
            self._update(db, mac, state="in_stock", config_hash=None, config_case=None,
                         pending_config_hash=None, pending_case=None, wipe_required=1,
                         test_call_result=None, test_call_detail=None, test_call_at=None,
                         test_call_config=None)
            self._audit(db, "flash_erase", mac, f"{row['state']} -> in_stock: the chip is erased, "
                        "its configuration with it")
            return Device.from_row(self._row(db, mac))

    def return_device(self, mac) -> Device:
        """delivered -> returned. Her case is closed (its numbers are free for another
        case) and the device is marked as still holding her config: `record_wipe` after
        the CLI has wiped it."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, to = self._begin(db, mac, "return")
            self._close_case(db, mac)
            self._update(db, mac, state=to, returned_at=self.now(), wipe_required=1)
            self._audit(db, "return", mac, "delivered -> returned; config must be wiped")
            return Device.from_row(self._row(db, mac))

    def record_wipe(self, mac, verified=True, detail="", forced=False) -> Device:
        """The result of `boton wipe`. verified: the raw read-back of its flash found none of
        her data: the wipe flag is cleared and a returned or provisioned device goes back to
        stock. Not verified: her data may still be there: the device keeps (or, forced from
        delivered, gets) the wipe flag and stays where it is, audited as wipe_failed. A
        delivered device is refused unless forced (her case is then closed, and the audit
        says it was forced). detail: what was checked (counts only, never her data)."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, to = self._begin(db, mac, "wipe")
            was = row["state"]
            if was == "delivered" and not forced:
                raise RegistryConflict(self.wipe_refusal(row["label"], mac))
            note = ""
            if was == "delivered":
                self._close_case(db, mac)
                note = "; FORCED on a delivered button without a return, case closed"
            detail = f": {detail}" if detail else ""
            if verified:
                self._update(db, mac, state=to, wipe_required=0, config_hash=None, config_case=None,
                             pending_config_hash=None, pending_case=None,
                             test_call_result=None, test_call_detail=None, test_call_at=None,
                             test_call_config=None)
                self._audit(db, "wipe", mac, f"{was} -> {to}; verified{detail}{note}")
            else:
                stay = "returned" if was == "delivered" else was
                cols = {"returned_at": self.now()} if was == "delivered" else {}
                self._update(db, mac, state=stay, wipe_required=1, **cols)
                self._audit(db, "wipe_failed", mac, f"{was} -> {stay}; NOT verified{detail}{note}")
            return Device.from_row(self._row(db, mac))

    @staticmethod
    def wipe_refusal(label, mac):
        return (f"cannot wipe {label} ({mac}): it is delivered (in her hands as far as the "
                f"registry knows); return it first: boton devices return {label} "
                "(or, if it cannot be returned, boton wipe --force, which is audited)")

    def wipe_case(self, mac):
        """Her last case on this device (the open one, or the one its return closed),
        decrypted, for `boton wipe` to search the flash for; None if it never had one.
        Audited."""
        mac = normalise_mac(mac)
        with self._read() as db:
            self._row(db, mac)
            row = db.execute("SELECT token FROM cases WHERE mac = ? ORDER BY id DESC LIMIT 1",
                             (mac,)).fetchone()
        if row is None:  # never had a case: no key needed
            return None
        case = self.cipher().open(mac, row["token"])
        with self._write() as db:
            self._audit(db, "reveal", mac, "case data read to verify the wipe")
            return case

    def mark_faulty(self, mac, reason) -> Device:
        mac = normalise_mac(mac)
        reason = self._reason(reason)
        with self._write() as db:
            row, to = self._begin(db, mac, "faulty")
            closed = self._close_case(db, mac)
            holds = self._holds_config(row)
            self._update(db, mac, state=to, state_reason=reason, wipe_required=int(holds),
                         test_call_result=None, test_call_detail=None, test_call_at=None)
            self._audit(db, "faulty", mac, f"{row['state']} -> faulty: {reason}"
                        + ("; case closed" if closed else ""))
            return Device.from_row(self._row(db, mac))

    def restock(self, mac) -> Device:
        """faulty (repaired) -> in_stock. Refused while it may still hold someone's config."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, to = self._begin(db, mac, "restock")
            if row["wipe_required"]:
                raise RegistryConflict(f"cannot restock {row['label']} ({mac}): it may still hold a "
                                       "beneficiary's config; wipe it first")
            self._update(db, mac, state=to, state_reason=None)
            self._audit(db, "restock", mac, "faulty -> in_stock")
            return Device.from_row(self._row(db, mac))

    def retire(self, mac, reason, allow_unwiped=False) -> Device:
        """Any state but delivered -> retired. A device that may hold a beneficiary's config
        is refused unless allow_unwiped (the board cannot be wiped; its flash is destroyed)."""
        mac = normalise_mac(mac)
        reason = self._reason(reason)
        with self._write() as db:
            row, to = self._begin(db, mac, "retire")
            holds = self._holds_config(row)
            if holds and not allow_unwiped:
                raise RegistryConflict(f"cannot retire {row['label']} ({mac}): it may still hold a "
                                       "beneficiary's config; wipe it first (or, if it cannot be "
                                       "wiped and its flash will be destroyed, allow unwiped)")
            closed = self._close_case(db, mac)
            self._update(db, mac, state=to, state_reason=reason, wipe_required=int(holds))
            self._audit(db, "retire", mac, f"{row['state']} -> retired: {reason}"
                        + ("; NOT wiped" if holds else "") + ("; case closed" if closed else ""))
            return Device.from_row(self._row(db, mac))

    @staticmethod
    def _holds_config(row):
        """May the device still hold a beneficiary's config on its flash?"""
        return bool(row["wipe_required"] or row["config_hash"]
                    or row["state"] in ("provisioning", "provisioned", "delivered"))

    @staticmethod
    def _reason(reason):
        r = scrub(reason)
        if not r:
            raise RegistryError("give a reason (what is wrong with the hardware; no case data)")
        return r

    # ------------------------------------------------------------------ cases
    def assign(self, mac, case: CaseData, replace=False) -> Device:
        """Give a device in stock (or provisioned, if it has no case yet) her case. Refuses
        a contact number or case id already on another active case."""
        if not isinstance(case, CaseData):
            raise TypeError("assign() needs a CaseData")
        mac = normalise_mac(mac)
        c = self.cipher()
        with self._write() as db:
            row, _ = self._begin(db, mac, "assign")
            self._bind_key(db, c)
            if row["has_case"]:
                if not replace:
                    raise RegistryConflict(f"{row['label']} ({mac}) already has a case; "
                                           "replace it explicitly (--replace)")
                if row["state"] != "in_stock":
                    raise RegistryConflict(f"{row['label']} ({mac}) is provisioned with the current "
                                           "case's contacts: wipe it before assigning another case")
                self._close_case(db, mac)
            entries = self._index_entries(c, case)
            self._check_free(db, entries)
            cur = db.execute("INSERT INTO cases (mac, token, created_at) VALUES (?, ?, ?)",
                             (mac, c.seal(mac, case), self.now()))
            db.executemany("INSERT INTO case_index (case_row, kind, digest) VALUES (?, ?, ?)",
                           [(cur.lastrowid, kind, d) for kind, d, _ in entries])
            self._audit(db, "assign", mac, f"{len(case.contacts)} contact(s)"
                        + (", order end date set" if case.order_ends else ", no order end date")
                        + ("; replaced the previous case" if row["has_case"] else ""))
            return Device.from_row(self._row(db, mac))

    @staticmethod
    def _index_entries(c, case):
        """(kind, digest, masked description) of what must be unique among active cases."""
        out = [("case", c.digest("case", case.case_id.upper()), "case id")]
        for i, n in enumerate(case.contacts):
            out.append(("contact", c.digest("contact", n), f"contact #{i + 1} {mask(n)}"))
        return out

    def _check_free(self, db, entries):
        for kind, d, what in entries:
            hit = db.execute("SELECT d.label FROM case_index i JOIN cases c ON c.id = i.case_row "
                             "JOIN devices d ON d.mac = c.mac WHERE i.kind = ? AND i.digest = ?",
                             (kind, d)).fetchone()
            if hit:
                raise RegistryConflict(f"{what} is already on the active case of {hit['label']}"
                                       + (" (one number cannot serve two active cases)"
                                          if kind == "contact" else ""))

    def case(self, mac):
        """The active case of a device, decrypted (None if it has none). Audited."""
        mac = normalise_mac(mac)
        c = self.cipher()
        with self._write() as db:
            self._row(db, mac)
            row = db.execute("SELECT token FROM cases WHERE mac = ? AND active = 1", (mac,)).fetchone()
            if row is None:
                return None
            case = c.open(mac, row["token"])
            self._audit(db, "reveal", mac, "case data shown")
            return case

    def ending_soon(self, days=30, today=None):
        """Active cases whose order ends within `days` (or has already ended), soonest
        first, as EndingSoon(device, case, days_left). Decrypts in memory. Audited."""
        if not isinstance(days, int) or days < 0:
            raise RegistryError("days must be a whole number >= 0")
        today = today or dt.date.today()
        c = self.cipher()
        out = []
        with self._write() as db:
            rows = db.execute("SELECT c.token, d.* , 1 AS has_case FROM cases c "
                              "JOIN devices d ON d.mac = c.mac WHERE c.active = 1").fetchall()
            for r in rows:
                case = c.open(r["mac"], r["token"])
                left = case.days_left(today)
                if left is not None and left <= days:
                    out.append(EndingSoon(Device.from_row(r), case, left))
            self._audit(db, "ending_soon", None, f"within {days} days: {len(out)} case(s)")
        out.sort(key=lambda e: (e.days_left, e.device.label))
        return out

    # ------------------------------------------------------------------ CSV
    def import_csv(self, path) -> int:
        """Add the devices of a CSV file (see IMPORT_COLUMNS), all or nothing. Any problem,
        in any row, raises one RegistryError listing each as "line N, field 'F': why"
        and changes nothing. Returns the number of devices added."""
        path = Path(path)
        header, rows = _read_csv(path)
        errors = _Errors(path)
        unknown = [h for h in header if h not in IMPORT_COLUMNS and h not in EXPORT_ONLY_COLUMNS]
        for h in unknown:
            errors.add(1, h, f"unknown column (known: {', '.join(IMPORT_COLUMNS)})")
        for h in {h for h in header if header.count(h) > 1}:
            errors.add(1, h, "column given twice")
        if "mac" not in header:
            errors.add(1, "mac", "the file needs a mac column")
        errors.check()
        needs_key = any(any(r.get(k) for k in CASE_COLUMNS) for _, r in rows)
        c = self.cipher() if needs_key else None

        parsed = []            # (line, values for _insert_device, CaseData or None, index entries)
        seen = {}              # (kind, value) -> first line
        for line, r in rows:
            v = {}
            for name, fn in (("mac", normalise_mac), ("label", normalise_label), ("board", _board),
                             ("flash_size", parse_flash_size), ("imei", normalise_imei),
                             ("iccid", normalise_iccid)):
                if r.get(name):
                    try:
                        v[name] = fn(r[name])
                    except RegistryError as e:
                        errors.add(line, name, str(e))
                elif name == "mac":
                    errors.add(line, "mac", "missing (every row needs the board's MAC)")
            state = (r.get("state") or "in_stock").strip().lower()
            if state not in STATES:
                errors.add(line, "state", f"unknown state {_show(state)}: one of {', '.join(STATES)}")
            v["state"] = state
            case, entries = None, []
            if any(r.get(k) for k in CASE_COLUMNS):
                if state not in ("in_stock", "provisioned", "delivered"):
                    errors.add(line, "state", f"a {state} device cannot carry an active case")
                got, ok = {}, True
                for name, fn in (("alias", check_alias), ("case_id", check_case_id),
                                 ("contacts", check_contacts), ("order_ends", check_date),
                                 ("full_name", lambda x: check_text(x, "full name", 120)),
                                 ("notes", lambda x: check_text(x, "notes", 2000))):
                    try:
                        got[name] = fn(r.get(name) or None)
                    except RegistryError as e:
                        errors.add(line, name, str(e))
                        ok = False
                if ok:
                    case = CaseData(**got)
                    entries = self._index_entries(c, case)
            elif state == "delivered":
                errors.add(line, "alias", "a delivered device needs its case "
                                          "(alias, case_id, contacts; order_ends)")
            for kind, value, field, what in (
                    [("mac", v.get("mac"), "mac", v.get("mac")), ("label", v.get("label"), "label", v.get("label"))]
                    + [(k, d, "case_id" if k == "case" else "contacts", w) for k, d, w in entries]):
                if value is None:
                    continue
                if (kind, value) in seen:
                    errors.add(line, field, f"{what} is also on line {seen[kind, value]}")
                else:
                    seen[kind, value] = line
            parsed.append((line, v, case, entries))
        errors.check()

        with self._write() as db:
            for line, v, case, entries in parsed:
                old = db.execute("SELECT label FROM devices WHERE mac = ?", (v["mac"],)).fetchone()
                if old:
                    errors.add(line, "mac", f"{v['mac']} is already in the registry as {old['label']}")
                if v.get("label"):
                    other = db.execute("SELECT mac FROM devices WHERE label = ?", (v["label"],)).fetchone()
                    if other:
                        errors.add(line, "label", f"{v['label']} is already used by {other['mac']}")
                try:
                    self._check_free(db, entries)
                except RegistryConflict as e:
                    errors.add(line, "contacts" if "contact" in str(e) else "case_id", str(e))
            errors.check()
            if c is not None:
                self._bind_key(db, c)
            # rows with a label first, so an automatic label cannot take one the file names
            for line, v, case, entries in sorted(parsed, key=lambda p: not p[1].get("label")):
                mac, state = v.pop("mac"), v.pop("state")
                label = self._insert_device(db, mac, v.pop("label", None), state=state,
                                            wipe_required=int(state == "returned"), **v)
                if case is not None:
                    cur = db.execute("INSERT INTO cases (mac, token, created_at) VALUES (?, ?, ?)",
                                     (mac, c.seal(mac, case), self.now()))
                    db.executemany("INSERT INTO case_index (case_row, kind, digest) VALUES (?, ?, ?)",
                                   [(cur.lastrowid, kind, d) for kind, d, _ in entries])
                self._audit(db, "import", mac, f"label {label}, {state}"
                            + (", with case" if case is not None else ""))
            self._audit(db, "import_csv", None, f"{len(parsed)} device(s) from a CSV file")
        return len(parsed)

    def export_csv(self, path, include_case_data=False) -> int:
        """Write every device to a CSV file (EXPORT_COLUMNS). Case data (CASE_COLUMNS, for
        devices with an active case) only with include_case_data: that file is created
        with mode 0600. Audited. Returns the number of rows."""
        path = Path(path)
        c = self.cipher() if include_case_data else None
        cols = EXPORT_COLUMNS + (CASE_COLUMNS if include_case_data else ())
        with self._write() as db:
            devices = [Device.from_row(r) for r in db.execute(_DEVICE_SELECT + " ORDER BY d.label")]
            cases = {}
            if c is not None:
                for r in db.execute("SELECT mac, token FROM cases WHERE active = 1"):
                    cases[r["mac"]] = c.open(r["mac"], r["token"])
            buf = io.StringIO(newline="")
            w = csv.writer(buf, lineterminator="\r\n")
            w.writerow(cols)
            for d in devices:
                row = d.to_dict()
                row["flash_size"] = format_flash_size(d.flash_size)
                if d.mac in cases:
                    cd = cases[d.mac].to_dict()
                    cd["contacts"] = ";".join(cd["contacts"])
                    cd["full_name"] = _no_formula(cd["full_name"])
                    cd["notes"] = _no_formula(cd["notes"])
                    row.update(cd)
                w.writerow(["" if row.get(k) is None else row.get(k) for k in cols])
            _write_file(path, buf.getvalue().encode("utf-8"), private=include_case_data)
            self._audit(db, "export", None, f"{len(devices)} device(s), "
                        + (f"WITH case data of {len(cases)} case(s)" if include_case_data
                           else "no case data"))
        return len(devices)

    # ------------------------------------------------------------------ device event logs
    def log_anchor(self, mac):
        """What the registry last saw of the device's event log: {"seq", "head", "at"} from
        its last passed log check, or None (never checked, or flashed or wiped since: both
        may erase the log). Kept in the audit trail, so it is as tamper-evident as it."""
        mac = normalise_mac(mac)
        with self._read() as db:
            row = db.execute("SELECT action, at, detail FROM audit WHERE mac = ? AND action IN "
                             "('log_check', 'flash', 'wipe') ORDER BY id DESC LIMIT 1", (mac,)).fetchone()
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
                            f"{int(head['seq'])} {_hash(head['head'], 'log head')[:16]}")
            else:
                self._audit(db, "log_check", mac, "log empty")

    # ------------------------------------------------------------------ integrity
    def verify(self):
        """Prove what can be proven about the registry (docs/registry.md): SQLite's full
        integrity check, its key, and the audit chain up to its stored head. Needs the key.
        Audited first (which also starts the chain on a registry from an older boton).
        Returns a registry_audit.ChainReport; RegistryError (exit 5) if anything fails."""
        c = self.cipher()
        with self._write() as db:
            self._audit(db, "verify", None, "integrity check requested")
        with self._read() as db:
            return _check_registry_db(db, c, str(self.path))

    def backup(self, dest):
        """A consistent copy of the registry (SQLite's online backup), mode 0600, never over
        an existing file. Case data stays encrypted in it. Audited (the copy holds that row).
        Returns the number of audit rows it holds."""
        dest = Path(dest).expanduser()
        if dest.exists():
            raise RegistryConflict(f"{dest} already exists; refusing to overwrite a backup")
        if dest.resolve().parent == self.path.resolve().parent and dest.name.startswith(self.path.name):
            raise RegistryError(f"{dest} would sit beside the registry under its name; "
                                "choose another name or folder (ideally another disk)")
        with self._write() as db:
            self._audit(db, "backup", None, f"to {scrub(dest.name, 80)}")
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            out = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                self.db.backup(out)
                problem = _integrity(out)
                rows = out.execute("SELECT count(*) FROM audit").fetchone()[0]
            finally:
                out.close()
            if problem:
                raise RegistryError(f"the backup copy does not check out ({problem}); {dest} not written",
                                    EXIT_VERIFY)
            os.link(tmp, dest)                     # never over a file that appeared meanwhile
        except FileExistsError:
            raise RegistryConflict(f"{dest} already exists; refusing to overwrite a backup") from None
        except OSError as e:
            raise RegistryError(f"cannot write {dest}: {e.strerror}") from None
        except sqlite3.DatabaseError as e:
            raise self._db_error(e) from None
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(f"{tmp}{suffix}")
                except OSError:
                    pass
        return rows

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


IMPORT_COLUMNS = ("mac", "label", "board", "flash_size", "imei", "iccid", "state",
                  "alias", "case_id", "full_name", "notes", "order_ends", "contacts")
CASE_COLUMNS = ("alias", "case_id", "full_name", "notes", "order_ends", "contacts")
# What `export` writes by default: hardware and lifecycle, nothing about her. Safe for C4.
EXPORT_COLUMNS = ("label", "mac", "state", "board", "flash_size", "image_hash", "firmware_hash",
                  "config_hash", "imei", "iccid", "test_call_result", "test_call_at",
                  "provisioned_at", "delivered_at", "returned_at", "updated_at")
# Columns an export has that an import accepts but ignores (so an export re-imports).
EXPORT_ONLY_COLUMNS = tuple(c for c in EXPORT_COLUMNS if c not in IMPORT_COLUMNS)
_HEADER_ALIASES = {"case": "case_id", "name": "full_name", "order_end": "order_ends",
                   "order_ends_on": "order_ends", "contact": "contacts"}


class _Errors:
    """Collects "line N, field 'F': why" and raises them as one RegistryError."""

    MAX = 25

    def __init__(self, path):
        self.path = path
        self.items = []

    def add(self, line, field, why):
        self.items.append(f"line {line}, field '{field}': {why}")

    def check(self):
        if self.items:
            shown = self.items[:self.MAX]
            more = len(self.items) - len(shown)
            raise RegistryError(f"import of {self.path} refused, nothing was changed:\n  "
                                + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else ""))


def _read_csv(path):
    """(normalised header, [(line number, {column: value})]) of a CSV file (UTF-8, with or
    without BOM, comma or semicolon separated)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RegistryError(f"cannot read {path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise RegistryError(f"{path}: line {line} is not UTF-8 text; save the sheet as "
                            "'CSV UTF-8'") from None
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    rows, header, prev = [], None, 0
    try:
        for rec in reader:
            line, prev = prev + 1, reader.line_num
            if not any(x.strip() for x in rec):
                continue
            if header is None:
                header = [_HEADER_ALIASES.get(k, k) for k in
                          (re.sub(r"[\s-]+", "_", h.strip().lower()) for h in rec)]
                continue
            if len(rec) != len(header):
                raise RegistryError(f"import of {path} refused, nothing was changed: line {line} has "
                                    f"{len(rec)} fields, the header has {len(header)}")
            rows.append((line, {k: v.strip() for k, v in zip(header, rec)}))
    except csv.Error as e:
        raise RegistryError(f"import of {path} refused, nothing was changed: line "
                            f"{reader.line_num}: {e}") from None
    if header is None:
        raise RegistryError(f"import of {path} refused: the file is empty (it needs a header "
                            f"row, e.g. {','.join(IMPORT_COLUMNS[:4])})")
    return header, rows


def _no_formula(text):
    """Free text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def _write_file(path, data, private=False):
    """Write via a temporary file and rename (never a half-written export); mode 0600 if private."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if private:
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise RegistryError(f"cannot write {path}: {e.strerror}") from None


def _meta(db, key):
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


# =========================================================================== file checks
def _check_file(path, what):
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


def _integrity(db, quick=False):
    """None if SQLite finds the file sound, else its first complaint."""
    rows = db.execute(f"PRAGMA {'quick_check' if quick else 'integrity_check'}").fetchall()
    first = rows[0][0] if rows else "no answer"
    return None if first == "ok" else " ".join(str(first).split())[:200]   # one line


def _check_registry_db(db, cipher, where):
    """What `verify` and `restore` prove about a registry connection: SQLite's full
    integrity check, a schema this boton knows, the key's fingerprint, the audit chain.
    Returns the ChainReport; RegistryError (exit 5) or RegistryKeyError (exit 2) if not."""
    try:
        problem = _integrity(db)
        if problem:
            raise RegistryError(f"{where} is damaged (SQLite check: {problem})", EXIT_VERIFY)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not 1 <= version <= len(MIGRATIONS) or not {"devices", "audit", "meta"} <= tables:
            raise RegistryError(f"{where} is not a registry this boton knows (schema {version})",
                                EXIT_VERIFY)
        stored = _meta(db, "key_fingerprint")
        if stored and stored != cipher.fingerprint:
            raise RegistryKeyError(f"{where} was written with key {stored}, the key from "
                                   f"{cipher.source} is {cipher.fingerprint}: wrong BOTON_KEY or key file?")
        cols = [r[1] for r in db.execute("PRAGMA table_info(audit)")]
        seal = "seal" if "seal" in cols else "NULL AS seal"
        rows = [dict(r) for r in db.execute(
            f"SELECT id, at, technician, action, mac, detail, {seal} FROM audit ORDER BY id")]
        anchor = _meta(db, RA.ANCHOR_META)
    except sqlite3.DatabaseError as e:
        raise RegistryError(f"{where} is damaged ({e})", EXIT_VERIFY) from None
    rep = RA.verify_chain(rows, cipher.audit_key, cipher.anchor_key, anchor)
    if rep.problem:
        raise RegistryError(f"{where}: audit trail check failed: {rep.problem}", EXIT_VERIFY)
    return rep


def restore(backup, path=None, key=None, technician=None, clock=None):
    """Replace the registry with a verified backup. The backup is copied next to the
    registry and checked there (SQLite integrity, schema, the key in use is its key, its
    audit chain verifies); only then is the current file kept as `<name>.bak-<UTC time>`
    and the copy renamed into place in one step. Audited in the restored registry.
    Returns (restored Registry's ChainReport, path of the kept file or None)."""
    backup = Path(backup).expanduser()
    path = Path(path).expanduser() if path else default_path()
    cipher = _Cipher(key)                              # no key, no restore: nothing to verify with
    if not backup.is_file():
        raise RegistryError(f"no backup file {backup}")
    _check_file(backup, "registry backup")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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
                rep = _check_registry_db(dst, cipher, f"backup {backup}")
                if dst.execute("PRAGMA user_version").fetchone()[0] < 1:
                    raise RegistryError(f"backup {backup} is not a registry", EXIT_VERIFY)
            finally:
                src.close()
                dst.close()
        except sqlite3.DatabaseError as e:
            raise RegistryError(f"backup {backup} is damaged or not a registry ({e})", EXIT_VERIFY) from None
        kept = _set_aside(path) if path.exists() else None
        os.replace(tmp, path)
    except OSError as e:
        raise RegistryError(f"cannot restore {path}: {e.strerror}") from None
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(f"{tmp}{suffix}")
            except OSError:
                pass
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
    os.link(path, kept)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{kept}{suffix}"))  # a WAL belongs to its file only
    return kept
