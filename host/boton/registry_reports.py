"""The buttons' daily status SMS in the registry (Registry.import_reports, report_status).

Each delivered button with a programme number sends a silent daily report to the
programme's phone (firmware/lib/supervision.py; its text: boton.daily_reports). The
programme exports that phone's SMS and imports the file; `boton reports` then says which
delivered buttons went quiet or report a problem, before the day she needs one.

An export is read whole before anything is written, and imported in one transaction:
a file that cannot be read changes nothing. Only bodies that read as whole daily reports
are kept (their fields, not the text, nor the sender's number); every other SMS on that
phone may be personal and is only counted, never shown or stored. A report is keyed by its
button and the time it was received, so importing the same file again adds nothing.

Two formats (docs/registry.md):

* Android "SMS Backup & Restore" XML: <smses><sms address=".." date="ms since 1970"
  type="1" body=".."/>...</smses>; type 1 is a received SMS, the rest (sent, drafts, MMS)
  are skipped.
* CSV (UTF-8, comma or semicolon separated) with a header row naming the columns
  received_at (ISO-8601 with its UTC offset, e.g. 2025-03-01T08:15:00-06:00), body and
  optionally from (read past: the sender's number is never kept).
"""
import csv
import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .daily_reports import is_daily_report_header, parse_daily_report, why_not
from .errors import RegistryError
from .registry_csv import csv_records, header_key
from .registry_fields import normalise_label
from .rules import DAILY_STATUS_DEFAULT_S

# A button is judged by the period the registry recorded at its provisioning
# (devices.daily_interval_s, rules.daily_interval_s of its config; 0: it sends none), or by
# the firmware's default when none was recorded (provisioned before boton recorded it).
DAILY_STATUS_S = DAILY_STATUS_DEFAULT_S
# A report is overdue when none came for two periods and this margin (a report the phone
# received late, one the network held for hours): one missed report is not yet a visit.
OVERDUE_MARGIN_S = 6 * 3600
# The first low-battery threshold of the firmware (alert.DEFAULTS["low_battery_pct"]).
LOW_BATTERY_PCT = 20
# RESTARTED: the uptime a report gives (whole hours, rounded down) is shorter than the time
# since the report before by more than this (delivery delays of either report).
RESTART_SLACK_S = 1800
# A report dated later than the import's time by more than this (the receiving phone's clock
# off, a year typed wrong in a CSV) is not imported: as a button's latest report it counted
# as just received for years, and hid a button gone silent until that date.
FUTURE_SLACK_S = 3600

FLAGS = ("NO REPORT", "OVERDUE", "LOW BATTERY", "GPS NOT RESPONDING", "NO VOICE", "RESTARTED",
         "ALERTS")

# a button whose configuration sends no daily reports (daily_interval_s 0)
NO_REPORTS_NOTE = "no reports configured (provisioned without a programme number)"

CSV_COLUMNS = ("received_at", "from", "body")
_FIELDS = ("label", "test", "battery_pct", "signal", "voice", "gps", "gps_sats", "gps_fix_age_s",
           "firmware", "alerts", "uptime_h", "log_head")


def _iso(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    """An ISO time stamp as the registry keeps it (UTC, "...Z"), or None."""
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        return None


@dataclass
class SmsExport:
    """What an export file holds, read whole: received SMS as (where, received_at, body),
    and how many others (sent, drafts, MMS) it had."""
    received: list = field(default_factory=list)
    not_received: int = 0


def _refuse(path, why):
    return RegistryError(f"import of {path} refused, nothing was changed: {why}")


def read_sms_export(path) -> SmsExport:
    """The SMS of an export file (XML or CSV, told apart by their first character), or one
    RegistryError (exit 2) that never quotes an SMS."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RegistryError(f"cannot read {path}: {e.strerror}") from None
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return _read_xml(path, raw)
    if not raw.strip():
        raise _refuse(path, "the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise _refuse(path, f"not an SMS export: line {line} is not UTF-8 text (expected an "
                            "SMS Backup & Restore XML file, or a CSV with columns "
                            f"{', '.join(CSV_COLUMNS)})") from None
    return _read_csv(path, text)


def _read_xml(path, raw):
    if b"<!ENTITY" in raw:
        raise _refuse(path, "the XML declares entities, which no SMS backup does")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        line, col = e.position
        raise _refuse(path, f"malformed XML at line {line}, column {col + 1} (a file cut short?)") from None
    if root.tag != "smses":
        raise _refuse(path, "not an SMS Backup & Restore file (its root element is not <smses>)")
    out = SmsExport()
    for n, el in enumerate(root, 1):
        if el.tag != "sms" or el.get("type") != "1":
            out.not_received += 1
            continue
        date = el.get("date") or ""
        if not re.fullmatch(r"\d{10,14}", date):
            raise _refuse(path, f"SMS #{n}: its date is not milliseconds since 1970")
        try:
            t = dt.datetime.fromtimestamp(int(date) / 1000, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise _refuse(path, f"SMS #{n}: its date is out of range") from None
        out.received.append((f"SMS #{n}", _iso(t), el.get("body") or ""))
    return out


def _read_csv(path, text):
    out, header = SmsExport(), None
    try:
        for line, rec in csv_records(text):
            if header is None:
                header = [header_key(h) for h in rec]
                missing = [c for c in ("received_at", "body") if c not in header]
                if missing:
                    # its cells are not shown: a file without its header row starts with an SMS
                    raise _refuse(path, f"line {line} is not the header row: the CSV needs columns "
                                        f"{', '.join(CSV_COLUMNS)} (from is optional; missing: "
                                        f"{', '.join(missing)})")
                for c in sorted({h for h in header if header.count(h) > 1 and h in CSV_COLUMNS}):
                    raise _refuse(path, f"line {line}: column {c} given twice")
                at, body = header.index("received_at"), header.index("body")
                continue
            if len(rec) != len(header):
                raise _refuse(path, f"line {line} has {len(rec)} fields, the header has {len(header)}")
            t = _csv_time(rec[at].strip())
            if t is None:
                raise _refuse(path, f"line {line}, field 'received_at': not an ISO-8601 time with "
                                    "its UTC offset, e.g. 2025-03-01T08:15:00-06:00")
            out.received.append((f"line {line}", _iso(t), rec[body]))
    except csv.Error as e:
        raise _refuse(path, str(e)) from None
    if header is None:
        raise _refuse(path, f"the file is empty (it needs a header row: {','.join(CSV_COLUMNS)})")
    return out


def _csv_time(text):
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo is not None and 1970 <= t.year <= 9999 else None


def overdue_after_s(interval_s):
    """How long after its last report (or its delivery) a button reporting every
    interval_s is flagged; None for 0 (it sends no reports: never flagged for silence)."""
    return 2 * interval_s + OVERDUE_MARGIN_S if interval_s else None


def judge(delivered_at, last, prev, now, interval_s=DAILY_STATUS_S):
    """The flags of one delivered button (a subset of FLAGS, in that order): last and prev
    are its last two reports since delivery (dicts with received_at and the report's
    fields), or None. interval_s: its daily report period; 0: it sends none, so neither
    NO REPORT nor OVERDUE (what a report it still sent says is judged all the same)."""
    flags = []
    late = overdue_after_s(interval_s)
    if last is None:
        since = parse_time(delivered_at)
        if late is not None and (since is None or (now - since).total_seconds() > late):
            flags.append("NO REPORT")
        return flags
    received = parse_time(last["received_at"])
    if late is not None and (now - received).total_seconds() > late:
        flags.append("OVERDUE")
    if last["battery_pct"] is not None and last["battery_pct"] <= LOW_BATTERY_PCT:
        flags.append("LOW BATTERY")
    if last["gps"] == "not_responding":
        flags.append("GPS NOT RESPONDING")
    if last["voice"] is False:
        flags.append("NO VOICE")
    if prev is not None and last["uptime_h"] is not None:
        gap = (received - parse_time(prev["received_at"])).total_seconds()
        if (last["uptime_h"] + 1) * 3600 + RESTART_SLACK_S < gap:
            flags.append("RESTARTED")
    if last["alerts"]:
        flags.append("ALERTS")
    return flags


class DailyReports:
    """Registry's daily-report methods (a mixin: it uses the registry's transactions and audit)."""

    def import_reports(self, path) -> dict:
        """Store the daily reports of an SMS export (read_sms_export), all in one
        transaction. Returns counts: sms (received SMS read), reports (whole daily reports),
        added (new to the registry), already (there before, or twice in the file), skipped
        (SMS that are not daily reports: never shown), not_received (sent SMS, MMS...),
        unreadable ([(where, why)] of daily reports cut short or garbled), unknown
        ({label: reports} of labels the registry does not hold)."""
        export = read_sms_export(path)
        reports, unreadable, skipped = [], [], 0
        latest = _latest_credible(self._now_utc())
        for where, at, body in export.received:
            r = parse_daily_report(body)
            if r is not None and at > latest:
                unreadable.append((where, f"a daily report dated {at}, later than now: the clock "
                                          "of the phone that received it (or the file) is wrong"))
            elif r is not None:
                reports.append((at, r))
            elif is_daily_report_header(body):
                unreadable.append((where, why_not(body)))
            else:
                skipped += 1
        unknown, added = {}, 0
        with self._write() as db:
            macs = {}
            # a relabelled button carries its old label until it is provisioned again, and
            # no other button is given it: its reports under that label are its own
            given_up = self.given_up_labels(db)
            for at, r in reports:
                label = r["label"] or ""
                if label not in macs:
                    row, known = None, None
                    try:
                        known = normalise_label(label, new=False) if label else None
                        row = db.execute("SELECT mac FROM devices WHERE label = ?", (known,)).fetchone() if known else None
                    except RegistryError:
                        pass
                    macs[label] = row["mac"] if row else given_up.get(known)
                mac = macs[label]
                if mac is None:
                    key = _shown_label(label)
                    unknown[key] = unknown.get(key, 0) + 1
                    continue
                cur = db.execute(
                    f"INSERT OR IGNORE INTO daily_reports (mac, received_at, {', '.join(_FIELDS)}, imported_at) "
                    f"VALUES (?, ?, {', '.join('?' * len(_FIELDS))}, ?)",
                    (mac, at, *(_db_value(r[k]) for k in _FIELDS), self.now()))
                added += cur.rowcount
            stored = len(reports) - sum(unknown.values())
            self._audit(db, "reports_import", None,
                        f"{added} daily report(s) added, {stored - added} already there, "
                        f"{sum(unknown.values())} of unknown labels, {len(unreadable)} unreadable, "
                        f"{skipped} other SMS skipped")
        return {"sms": len(export.received), "reports": len(reports), "added": added,
                "already": stored - added, "skipped": skipped, "not_received": export.not_received,
                "unreadable": unreadable, "unknown": unknown}

    def report_status(self, now=None, interval_s=DAILY_STATUS_S) -> list:
        """For every delivered button, by label: {label, mac, delivered_at, daily_interval_s
        (its period: the one recorded at its provisioning, else interval_s; 0: it sends
        none), interval_recorded, overdue_after_s (None for 0), last_report (its fields,
        received_at and age_s; None if none since delivery), flags, note (why a button
        that sends no reports is not flagged, else None)}. Reports received before its
        delivery (a bench test, a woman who had it before) do not count."""
        now = now or self._now_utc()
        latest = _latest_credible(now)   # one stored before the import refused them is not her latest
        out = []
        with self._read() as db:
            devices = db.execute("SELECT mac, label, delivered_at, daily_interval_s FROM devices "
                                 "WHERE state = 'delivered' ORDER BY label").fetchall()
            for d in devices:
                rows = db.execute(
                    "SELECT * FROM daily_reports WHERE mac = ? AND received_at >= ? AND received_at <= ? "
                    "ORDER BY received_at DESC LIMIT 2", (d["mac"], d["delivered_at"] or "", latest)).fetchall()
                last, prev = (_report(rows[0]) if rows else None), (_report(rows[1]) if len(rows) > 1 else None)
                if last is not None:
                    last["age_s"] = max(0, int((now - parse_time(last["received_at"])).total_seconds()))
                recorded = d["daily_interval_s"] is not None
                every = d["daily_interval_s"] if recorded else interval_s
                out.append({"label": d["label"], "mac": d["mac"], "delivered_at": d["delivered_at"],
                            "daily_interval_s": every, "interval_recorded": recorded,
                            "overdue_after_s": overdue_after_s(every), "last_report": last,
                            "flags": judge(d["delivered_at"], last, prev, now, every),
                            "note": None if every else NO_REPORTS_NOTE})
        return out


def _latest_credible(now):
    """The latest receipt time a report may have (UTC "...Z", compared as text)."""
    return _iso(now + dt.timedelta(seconds=FUTURE_SLACK_S))


def _shown_label(label):
    """A label the registry does not know, as the import names it: only if it could be a
    label (never a run of 7 digits: the text of an SMS is not shown)."""
    if not label:
        return "(no label)"
    try:
        return normalise_label(label)
    except RegistryError:
        return "(not a label)"


def _db_value(v):
    return int(v) if isinstance(v, bool) else v


def _report(row):
    r = {k: row[k] for k in ("received_at",) + _FIELDS}
    r["test"] = bool(r["test"])
    r["voice"] = None if r["voice"] is None else bool(r["voice"])
    return r
