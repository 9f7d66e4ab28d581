"""CSV import and export of the registry (Registry.import_csv / export_csv).

An import is all or nothing: every problem, in any row, is reported as "line N, field
'F': why" (what the column needs, never what the cell holds: it may be her data) and
nothing changes. An export holds hardware and lifecycle only, unless case
data is asked for (then the file is mode 0600). Both are audited.
"""
import csv
import io
import re
from pathlib import Path

from .boards import board_names
from .errors import InputError, RegistryConflict, RegistryError
from .registry_casedata import (CaseData, check_alias, check_case_id, check_contacts, check_date, check_text,
                                split_contacts)
from .registry_fields import (auto_label, check_known_board, format_flash_size, normalise_iccid, normalise_imei,
                              normalise_label, normalise_mac, parse_flash_size)
from .rules import normalise_number
from .registry_paths import expand_home
from .registry_schema import DEVICE_SELECT, DeviceRecord
from .registry_states import STATES
from .safe_write import check_target, write_file


class CsvTransfer:
    """Registry's CSV methods (a mixin: it uses the registry's transactions and audit)."""

    def import_csv(self, path) -> int:
        """Add the devices of a CSV file (see IMPORT_COLUMNS), all or nothing. Any problem,
        in any row, raises one RegistryError listing each as "line N, field 'F': why"
        and changes nothing. Returns the number of devices added."""
        path = Path(path)
        header, rows = _read_csv(path)
        errors = _Errors(path)
        known = IMPORT_COLUMNS + EXPORT_ONLY_COLUMNS
        # a header cell that is no column name may be her data (a sheet without its header
        # row): it is named by its position, never shown
        unknown = [i for i, h in enumerate(header, 1) if h not in known]
        if unknown and len(unknown) == len(header):
            errors.items.append(_NO_HEADER)
        else:
            for i in unknown:
                errors.add_column(1, i, f"not a column name (known: {', '.join(IMPORT_COLUMNS)})")
            if "mac" not in header:
                errors.add(1, "mac", "the file needs a mac column")
        for h in sorted({h for h in header if h in known and header.count(h) > 1}):
            errors.add(1, h, "column given twice")
        errors.check()
        needs_key = any(any(r.get(k) for k in CASE_COLUMNS) for _, r in rows)
        c = self.cipher() if needs_key else None

        parsed = []            # (line, values for _insert_device, CaseData or None, index entries)
        seen = {}              # (kind, value) -> first line
        for line, r in rows:
            v = {}
            for name, fn in (("mac", normalise_mac), ("label", normalise_label), ("board", check_known_board),
                             ("flash_size", parse_flash_size), ("imei", normalise_imei),
                             ("iccid", normalise_iccid)):
                if r.get(name):
                    try:
                        v[name] = fn(r[name])
                    except RegistryError:
                        errors.add(line, name, EXPECTED[name])   # never the cell: it may be hers
                elif name == "mac":
                    errors.add(line, "mac", "missing (every row needs the board's MAC)")
            state = (r.get("state") or "in_stock").strip().lower()
            if state not in STATES:
                errors.add(line, "state", EXPECTED["state"])
            v["state"] = state
            case, entries = None, []
            if any(r.get(k) for k in CASE_COLUMNS):
                if state in STATES and state not in ("in_stock", "provisioned", "delivered"):
                    errors.add(line, "state", f"a {state} device cannot carry an active case")
                got, ok = {}, True
                for name, fn in (("alias", _csv_alias), ("case_id", check_case_id),
                                 ("contacts", _csv_contacts), ("order_ends", check_date),
                                 ("full_name", lambda x: check_text(_formula_back(x), "full name", 120)),
                                 ("notes", lambda x: check_text(_formula_back(x), "notes", 2000))):
                    try:
                        got[name] = fn(r.get(name) or None)
                    except RegistryError as e:   # these checks say what is wrong, never the value
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
            given_up = self.given_up_labels(db)
            for line, v, case, entries in parsed:
                old = db.execute("SELECT label FROM devices WHERE mac = ?", (v["mac"],)).fetchone()
                if old:
                    errors.add(line, "mac", f"{v['mac']} is already in the registry as {old['label']}")
                if v.get("label"):
                    taken = self._label_refusal(db, v["label"], given_up=given_up)
                    if taken:
                        errors.add(line, "label", taken.removeprefix("label "))   # the field names it
                try:
                    self._check_free(db, entries)
                except RegistryConflict as e:
                    errors.add(line, "contacts" if "contact" in str(e) else "case_id", str(e))
            errors.check(conflict=True)
            if c is not None:
                self._bind_key(db, c)
            # rows with a label first, so an automatic label cannot take one the file names;
            # then automatic labels counted on from the highest (not searched for per row)
            top = None
            for line, v, case, entries in sorted(parsed, key=lambda p: not p[1].get("label")):
                mac, state, label = v.pop("mac"), v.pop("state"), v.pop("label", None)
                if label is None:
                    top = self._top_label(db) + 1 if top is None else top + 1
                    label = auto_label(top)
                label = self._insert_device(db, mac, label, state=state,
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

    def export_csv(self, path, include_case_data=False, force=False) -> int:
        """Write every device to a CSV file (EXPORT_COLUMNS). Case data (CASE_COLUMNS, for
        devices with an active case) only with include_case_data. The file is created
        with mode 0600 either way (IMEI, ICCID). An existing file is replaced only with force, and never the
        registry, its key or a backup (safe_write). Audited. Returns the number of rows."""
        path = expand_home(path, "the file")
        check_target(path, force, self.path, "the export")
        c = self.cipher() if include_case_data else None
        cols = EXPORT_COLUMNS + (CASE_COLUMNS if include_case_data else ())
        with self._write() as db:
            devices = [DeviceRecord.from_row(r) for r in db.execute(DEVICE_SELECT + " ORDER BY d.label")]
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
                row["voice"] = {True: "yes", False: "no"}.get(d.voice)
                if d.mac in cases:
                    cd = cases[d.mac].to_dict()
                    cd["contacts"] = ";".join(cd["contacts"])
                    cd["full_name"] = _no_formula(cd["full_name"])
                    cd["notes"] = _no_formula(cd["notes"])
                    row.update(cd)
                w.writerow(["" if row.get(k) is None else row.get(k) for k in cols])
            # IMEI and ICCID identify her phone line even without her case: never world-readable
            _write_file(path, buf.getvalue().encode("utf-8"), private=True, force=force,
                        registry=self.path)
            self._audit(db, "export", None, f"{len(devices)} device(s), "
                        + (f"WITH case data of {len(cases)} case(s)" if include_case_data
                           else "no case data"))
        return len(devices)


IMPORT_COLUMNS = ("mac", "label", "board", "flash_size", "imei", "iccid", "state",
                  "alias", "case_id", "full_name", "notes", "order_ends", "contacts")
CASE_COLUMNS = ("alias", "case_id", "full_name", "notes", "order_ends", "contacts")
# What `export` writes by default: hardware and lifecycle, nothing about her. Safe for C4.
# voice: "yes", "no" (SMS only: it cannot call C4, so it is not ready) or empty (unknown).
# daily_interval_s: its daily status SMS period (0: it sends none; empty: unknown, provisioned
# before schema 9), what `boton reports` judges its silence by.
EXPORT_COLUMNS = ("label", "mac", "state", "board", "flash_size", "image_hash", "firmware_hash",
                  "config_hash", "imei", "iccid", "voice", "daily_interval_s", "test_call_result",
                  "test_call_at", "provisioned_at", "delivered_at", "returned_at", "updated_at")
# Columns an export has that an import accepts but ignores (so an export re-imports).
EXPORT_ONLY_COLUMNS = tuple(c for c in EXPORT_COLUMNS if c not in IMPORT_COLUMNS)
# What a column needs, said instead of the cell when a cell is refused: with the header row
# missing or the columns shifted a cell may hold her name, her number or her address, and an
# error message ends up on screens, in terminal scrollback and in logs.
EXPECTED = {
    "mac": "not a MAC address: expected the board's eFuse MAC, six hex pairs like aa:bb:cc:dd:ee:ff "
           "(not all zeros or ones, not multicast)",
    "label": "not a label: expected 1-12 letters, digits and dashes, fewer than 7 digits, e.g. BS-0042",
    "board": f"not a board profile of this release: expected one of {', '.join(board_names())}",
    "flash_size": "not a flash size: expected a power of two from 1MB to 128MB, e.g. 4MB",
    "imei": "not an IMEI: expected 15 digits with a correct check digit (AT+GSN prints it)",
    "iccid": "not an ICCID: expected 18-22 digits with a correct check digit (AT+CCID prints it)",
    "state": f"not a state: expected one of {', '.join(STATES)} (empty: in_stock)",
    "alias": "not an alias an SMS can carry: expected 1-16 letters, digits, spaces or . ' - "
             "(a short name she chose, not her full name)",
    "contact": "is not a phone number: expected digits, a leading + and the separators "
               "space - . ( ) /, 10 digits for a Mexican number; several separated by ;",
}
_NO_HEADER = ("line 1 is not a header row (none of its cells is a column name): the first line must "
              f"name the columns, e.g. {','.join(IMPORT_COLUMNS[:4])} (its cells are not shown: they may "
              "be her data)")
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

    def add_column(self, line, column, why):
        """A problem named by the column's position (its header may not be a name)."""
        self.items.append(f"line {line}, column {column}: {why}")

    def check(self, conflict=False):
        """conflict: the problems are the registry's contents (a MAC, label or number it
        already holds), exit 7 as every such refusal; else the file's (exit 2)."""
        if self.items:
            shown = self.items[:self.MAX]
            more = len(self.items) - len(shown)
            error = RegistryConflict if conflict else RegistryError
            raise error(f"import of {self.path} refused, nothing was changed:\n  "
                        + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else ""))



def csv_records(text):
    """(line, cells) of each record of a CSV text that is not blank, line being where it
    starts; the delimiter, ',' or ';' (as a spreadsheet in Spanish saves it), is taken from
    the first line. csv.Error says the line."""
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    prev = 0
    try:
        for rec in reader:
            line, prev = prev + 1, reader.line_num
            if any(x.strip() for x in rec):
                yield line, rec
    except csv.Error as e:
        raise csv.Error(f"line {reader.line_num}: {e}") from None


def header_key(cell):
    """A header cell as a column name: "Received at" -> "received_at"."""
    return re.sub(r"[\s-]+", "_", cell.strip().lower())

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
    rows, header = [], None
    try:
        for line, rec in csv_records(text):
            if header is None:
                header = [_HEADER_ALIASES.get(k, k) for k in map(header_key, rec)]
                continue
            if len(rec) != len(header):
                no_header = not set(header) & set(IMPORT_COLUMNS + EXPORT_ONLY_COLUMNS)
                raise RegistryError(f"import of {path} refused, nothing was changed: line {line} has "
                                    f"{len(rec)} fields, the header has {len(header)}"
                                    + (f"; {_NO_HEADER}" if no_header else ""))
            rows.append((line, {k: v.strip() for k, v in zip(header, rec)}))
    except csv.Error as e:
        raise RegistryError(f"import of {path} refused, nothing was changed: {e}") from None
    if header is None:
        raise RegistryError(f"import of {path} refused: the file is empty (it needs a header "
                            f"row, e.g. {','.join(IMPORT_COLUMNS[:4])})")
    return header, rows


def _csv_alias(value):
    try:
        return check_alias(value)
    except RegistryError:
        raise RegistryError(EXPECTED["alias"]) from None


def _csv_contacts(value):
    """check_contacts, saying which contact (#N) is no number without showing any of it."""
    for i, number in enumerate(split_contacts(value), 1):
        try:
            normalise_number(number, f"contact #{i}")
        except InputError:
            raise RegistryError(f"contact #{i} {EXPECTED['contact']}") from None
    return check_contacts(value)     # how many, and twice the same: without the numbers


FORMULA_STARTS = "=+-@\t\r"


def _no_formula(text):
    """Free text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if text and text[0] in FORMULA_STARTS:
        return "'" + text
    return text


def _formula_back(text):
    """What _no_formula wrote, as it was: the export re-imports unchanged (the apostrophe
    stayed in her name and notes for good)."""
    if text and len(text) > 1 and text[0] == "'" and text[1] in FORMULA_STARTS:
        return text[1:]
    return text


def _write_file(path, data, private=False, force=False, registry=None):
    """Write via a temporary file and rename (never a half-written export, never a file
    replaced unasked, never the registry's own files); mode 0600 if private."""
    try:
        write_file(path, data, force=force, private=private, registry=registry, what="the export")
    except OSError as e:
        raise RegistryError(f"cannot write {path}: {e.strerror}") from None
