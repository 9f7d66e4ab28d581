"""The registry's SQLite schema: the ordered migrations, the tables a registry has, and
the records read from its rows."""
import sqlite3
from dataclasses import dataclass, fields

from .registry_casedata import CaseData

REGISTRY_TABLES = {"devices", "audit", "meta", "cases", "case_index", "daily_reports"}


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


def _m5_voice(db):
    """Whether the network offered voice when the button was last provisioned (1 yes, 0
    no: SMS only, not ready; NULL unknown: old firmware, or never checked). A button
    provisioned before this was checked is unknown, as today."""
    db.execute("ALTER TABLE devices ADD COLUMN voice INTEGER")


def _m6_wipe_case(db):
    """Why a button is flagged for a wipe, when it is only her own data: the case whose
    configuration alone its flash may hold unverified (an aborted provisioning or a chip
    erase of her button, with nothing of anyone else's on it before). Provisioning it
    again from that case clears the flag; NULL: anyone's data (a return, a failed wipe, an
    event log kept), only a verified wipe clears it."""
    db.execute("ALTER TABLE devices ADD COLUMN wipe_case INTEGER")


def _m7_pending_pin_kept(db):
    """Whether the configuration being written (pending_config_hash) keeps the PIN hash of
    the recorded one (`provision --keep-pin`): its PIN is the one she and C4 know, so a
    --keep-pin run after an interruption may keep it from that configuration too. NULL or
    0: a new PIN, perhaps never shown."""
    db.execute("ALTER TABLE devices ADD COLUMN pending_pin_kept INTEGER")


def _m8_daily_reports(db):
    """The daily status SMS the buttons sent to the programme's phone, as `boton reports
    import` read them from an export of that phone (registry_reports.py): their fields only
    (never the SMS text, nor the sender's number). Keyed by button and the time the phone
    received it, so importing the same export again adds nothing."""
    _script(db, """
        CREATE TABLE daily_reports (
            mac           TEXT NOT NULL REFERENCES devices(mac),
            received_at   TEXT NOT NULL,
            label         TEXT,
            test          INTEGER NOT NULL DEFAULT 0,
            battery_pct   INTEGER,
            signal        INTEGER,
            voice         INTEGER,
            gps           TEXT NOT NULL,
            gps_sats      INTEGER,
            gps_fix_age_s INTEGER,
            firmware      TEXT,
            alerts        INTEGER,
            uptime_h      INTEGER,
            log_head      TEXT,
            imported_at   TEXT NOT NULL,
            PRIMARY KEY (mac, received_at)
        );
    """)


def _m9_daily_interval(db):
    """How often the configuration written at the button's last finished provisioning has
    it send its silent daily status SMS, in seconds (rules.daily_interval_s; 0: it sends
    none, provisioned without a programme number), so `boton reports` judges each button
    by its own period and does not flag one that was never meant to report. NULL:
    unknown (provisioned before this was recorded): judged at the firmware's default, as
    before."""
    db.execute("ALTER TABLE devices ADD COLUMN daily_interval_s INTEGER")


def _m10_c4_first(db):
    """The first C4 number (E.164) of the configuration written at the button's last
    finished provisioning: the number her press calls first, and safe mode's too. When the
    programme's C4 changes, `devices list` compares it with the board profiles' `safe_c4`
    (the programme's C4) and `--outdated` lists the buttons that still call the old one.
    NULL: unknown (provisioned before this was recorded) or no configuration."""
    db.execute("ALTER TABLE devices ADD COLUMN c4_first TEXT")


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
MIGRATIONS = [_m1_devices, _m2_cases, _m3_audit_chain, _m4_order_of_operations, _m5_voice,
              _m6_wipe_case, _m7_pending_pin_kept, _m8_daily_reports, _m9_daily_interval,
              _m10_c4_first]


@dataclass(frozen=True)
class DeviceRecord:
    """One button as the registry holds it (a row of `devices`; not device.Device, the REPL)."""
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
    pending_pin_kept: bool = None
    config_case: int = None
    test_call_config: str = None
    voice: bool = None
    wipe_case: int = None
    daily_interval_s: int = None   # daily status SMS period of its config (0: none; None: unknown)
    c4_first: str = None           # the C4 number its config calls first (None: unknown or no config)
    case_row: int = None      # her active case's row (cases.id), None without one

    @property
    def config_outdated(self):
        """Her case was edited since the configuration on the button was written from it:
        the button still texts her old contacts until `provision` writes the new ones."""
        return bool(self.case_row and self.config_hash and self.config_case != self.case_row)

    @classmethod
    def from_row(cls, row):
        names = {f.name for f in fields(cls)}
        d = {k: row[k] for k in row.keys() if k in names}
        d["wipe_required"] = bool(d.get("wipe_required"))
        d["has_case"] = bool(d.get("has_case"))
        for k in ("voice", "pending_pin_kept"):
            if d.get(k) is not None:
                d[k] = bool(d[k])
        return cls(**d)

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class EndingSoon:
    device: DeviceRecord
    case: CaseData
    days_left: int


# a device's row and whether it has an active case: what DeviceRecord.from_row reads
DEVICE_SELECT = ("SELECT d.*, EXISTS (SELECT 1 FROM cases c WHERE c.mac = d.mac AND c.active = 1) "
                 "AS has_case, (SELECT c.id FROM cases c WHERE c.mac = d.mac AND c.active = 1) AS case_row "
                 "FROM devices d")


def read_meta(db, key):
    """A value of the `meta` table (key fingerprint, audit anchor), or None."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None
