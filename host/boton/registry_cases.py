"""Cases on buttons: assign her case to a button (encrypted, with the uniqueness index
that refuses a contact or case id already on another active case), read it back, and
list the protection orders ending soon."""
import datetime as dt

from .errors import RegistryConflict, RegistryError
from .registry_casedata import CaseData
from .registry_fields import normalise_mac
from .registry_schema import DeviceRecord, EndingSoon
from .registry_states import KEPT_LOG_NOTE
from .rules import mask


class CaseRecords:
    """Registry's case methods (a mixin: it uses the registry's transactions, key and audit)."""

    def assign(self, mac, case: CaseData, replace=False) -> DeviceRecord:
        """Give a device in stock (or provisioned, if it has no case yet) her case. Refuses
        a contact number or case id already on another active case, and a button flagged
        for a wipe (it may hold someone's configuration) until it is wiped."""
        if not isinstance(case, CaseData):
            raise TypeError("assign() needs a CaseData")
        mac = normalise_mac(mac)
        c = self.cipher()
        with self._write() as db:
            row, _ = self._begin(db, mac, "assign")
            self._bind_key(db, c)
            if row["wipe_required"] and not (row["has_case"] and not replace):
                # an aborted provisioning or an unverified erase: her config, alert state and
                # log may be on it, and a new case's config would go out beside them
                raise RegistryConflict(f"{row['label']} ({mac}) may still hold a previous "
                                       "configuration or event log: run `boton wipe` before giving "
                                       "it a case (a full one: not --keep-log)")
            if row["has_case"]:
                if not replace:
                    raise RegistryConflict(f"{row['label']} ({mac}) already has a case; "
                                           "replace it explicitly (--replace)")
                if row["state"] != "in_stock":
                    raise RegistryConflict(f"{row['label']} ({mac}) is provisioned with the current "
                                           "case's contacts: wipe it before assigning another case")
                self._close_case(db, mac)
            self._insert_case(db, c, mac, case)
            self._audit(db, "assign", mac, f"{len(case.contacts)} contact(s)"
                        + (", order end date set" if case.order_ends else ", no order end date")
                        + ("; replaced the previous case" if row["has_case"] else ""))
            return DeviceRecord.from_row(self._row(db, mac))

    # what of her case her button's configuration carries (rules.build_config): editing
    # these means the button must be provisioned again; the rest stays in the registry
    ON_THE_BUTTON = ("alias", "contacts")
    EDITABLE = ("alias", "contacts", "order_ends", "full_name", "notes")

    def edit_case(self, mac, **changes) -> DeviceRecord:
        """Edit her active case where it is (in stock, provisioned, delivered: her trusted
        contacts change, a new number, an order extended): the same woman, so the case id
        cannot change (another woman's case comes only after a return and a wipe). Each
        contact is checked against the other active cases, as in assign. What her button
        carries (alias, contacts) goes into a new version of her case and the old one is
        closed, kept encrypted: her button holds it until it is provisioned again (its
        test call no longer counts; test-call and deliver refuse it until then) and a wipe
        searches for it. Order end, name and notes are updated in place. Audited without
        her data (how many contacts, which fields changed)."""
        unknown = set(changes) - set(self.EDITABLE)
        if unknown:
            raise RegistryError(f"cannot edit {', '.join(sorted(unknown))} of a case (only "
                                f"{', '.join(self.EDITABLE)}): the case id says who she is; another "
                                "woman's case goes on a button only after a return and a wipe")
        mac = normalise_mac(mac)
        c = self.cipher()
        with self._write() as db:
            row, _ = self._begin(db, mac, "edit_case")
            self._bind_key(db, c)
            active = self._active_case_row(db, mac)
            if active is None:
                raise RegistryConflict(f"{row['label']} ({mac}) has no case to edit "
                                       "(`boton devices assign` gives it one)")
            old = c.open(mac, active["token"])
            new = CaseData(**{**old.to_dict(), **changes})
            changed = [k for k in self.EDITABLE if getattr(new, k) != getattr(old, k)]
            if not changed:
                raise RegistryError(f"nothing to change in the case of {row['label']}: what was given "
                                    "is what it holds")
            what = ", ".join(f"contacts {len(old.contacts)} -> {len(new.contacts)}" if k == "contacts"
                             else k.replace("_", " ") for k in changed)
            if not any(k in self.ON_THE_BUTTON for k in changed):
                db.execute("UPDATE cases SET token = ? WHERE id = ?", (c.seal(mac, new), active["id"]))
                self._audit(db, "edit_case", mac, f"case edited: {what}; nothing on the button changes")
                return DeviceRecord.from_row(self._row(db, mac))
            self._close_case(db, mac)
            case_row = self._insert_case(db, c, mac, new)
            cols = {}
            if row["wipe_case"] == active["id"]:   # her own data only: still only hers
                cols["wipe_case"] = case_row
            if row["config_hash"] or row["pending_config_hash"]:   # the button texts the old ones
                cols.update(test_call_result=None, test_call_detail=None, test_call_at=None,
                            test_call_config=None)
            if cols:
                self._update(db, mac, **cols)
            held = row["config_hash"] or row["pending_config_hash"]
            self._audit(db, "edit_case", mac, f"case edited: {what}"
                        + ("; her button still holds the old version: provision it again, then "
                           "test-call it" if held else ""))
            return DeviceRecord.from_row(self._row(db, mac))

    def _insert_case(self, db, c, mac, case):
        """Her case sealed for this button and indexed, once no active case holds its id or
        numbers (RegistryConflict). Returns its row id."""
        entries = self._index_entries(c, case)
        self._check_free(db, entries)
        cur = db.execute("INSERT INTO cases (mac, token, created_at) VALUES (?, ?, ?)",
                         (mac, c.seal(mac, case), self.now()))
        db.executemany("INSERT INTO case_index (case_row, kind, digest) VALUES (?, ?, ?)",
                       [(cur.lastrowid, kind, d) for kind, d, _ in entries])
        return cur.lastrowid

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

    def purge_closed_cases(self, older_than_days, dry_run=False):
        """Erase the closed cases that nothing needs any more: closed at least
        `older_than_days` days ago (the programme's retention period), on a button whose
        flash no longer may hold them: a full verified wipe since it was closed (whatever
        the button became after: the next woman's button keeps none of hers; an edited
        case's old version stays on the flash of the button in use until then), or the
        button is retired (its flash destroyed). A closed case whose button still waits
        for its wipe is kept: the wipe searches the flash for it (wipe_cases). The rows are
        deleted (secure_delete zeroes them in the file) and the WAL is checkpointed and
        truncated; backups made before still hold them, encrypted. No key needed.
        Returns what was (dry_run: would be) erased, [{label, mac, created_at,
        closed_at}], audited per button."""
        if not isinstance(older_than_days, int) or older_than_days < 0:
            raise RegistryError("--older-than must be a whole number of days >= 0")
        now = dt.datetime.strptime(self.now(), "%Y-%m-%dT%H:%M:%SZ")
        cutoff = (now - dt.timedelta(days=older_than_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._write() as db:
            rows = db.execute(
                "SELECT c.id, c.mac, c.created_at, c.closed_at, d.label FROM cases c JOIN devices d ON d.mac = c.mac "
                "WHERE c.active = 0 AND c.closed_at <= ? AND (d.state = 'retired' OR EXISTS ("
                "SELECT 1 FROM audit a WHERE a.mac = c.mac AND a.action = 'wipe' AND a.at >= c.closed_at "
                "AND a.detail NOT LIKE ?)) ORDER BY d.label, c.id", (cutoff, f"%{KEPT_LOG_NOTE}%")).fetchall()
            out = [{"label": r["label"], "mac": r["mac"], "created_at": r["created_at"],
                    "closed_at": r["closed_at"]} for r in rows]
            if dry_run or not rows:
                return out
            for r in rows:
                db.execute("DELETE FROM case_index WHERE case_row = ?", (r["id"],))
                db.execute("DELETE FROM cases WHERE id = ?", (r["id"],))
                self._audit(db, "purge_case", r["mac"], f"closed case erased (closed {r['closed_at'][:10]}, "
                            f"retention {older_than_days} days)")
        # the deleted pages' old images leave the WAL too (secure_delete zeroed the file's)
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return out

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
                    out.append(EndingSoon(DeviceRecord.from_row(r), case, left))
            self._audit(db, "ending_soon", None, f"within {days} days: {len(out)} case(s)")
        out.sort(key=lambda e: (e.days_left, e.device.label))
        return out

