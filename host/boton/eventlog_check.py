"""Checks on a device's event log, pure (no device): the firmware's own hash-chain check,
the ring of segments, the registry's anchor and the daily status SMS's log head."""
import importlib.util
import re

from .paths import FIRMWARE
from .registry_fields import show_input


def firmware_eventlog():
    """The firmware's own eventlog.py, run on CPython: one chain rule on both sides."""
    spec = importlib.util.spec_from_file_location("eventlog", FIRMWARE / "lib" / "eventlog.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _log_entry(line):
    """(seq, hash16) of a log line, or None if it is not one."""
    parts = str(line).split(" ")
    if len(parts) < 5 or not parts[0].isdigit() or not re.fullmatch(r"[0-9a-f]{16}", parts[-1]):
        return None
    return int(parts[0]), parts[-1]


def event_log_head(lines):
    """{"seq", "head"} of the log's last entry (what the registry anchors), None if empty."""
    last = _log_entry(lines[-1]) if lines else None
    return {"seq": last[0], "head": last[1]} if last else None


def verify_event_log(lines, anchor=None):
    """(ok, why) for the device's log lines, oldest first: the firmware's own chain check
    (counters contiguous, each hash chained to the one before, entry 1 to the genesis); the
    first retained entry where the ring of segments puts it (the device drops whole segments,
    oldest first, so a missing head is a cut); and, given the registry's anchor ({"seq",
    "head"[, "at"]} of its last check), that the log still reaches that entry with that same
    hash: a rewritten (even re-chained), cut or deleted log no longer does. Entries written
    after the anchor are only chained: nothing secret proves them (docs/registry.md)."""
    mod = firmware_eventlog()
    entries = [_log_entry(line) for line in lines]
    for i, e in enumerate(entries):
        if e is None:
            return False, f"line {i + 1} of the log is not a log entry"
    try:
        ok, why = mod.verify(list(lines))
    except (ValueError, IndexError):
        return False, "the log does not parse as chained entries"
    if not ok:
        return ok, why
    seen = f" on {anchor['at']}" if anchor and anchor.get("at") else ""
    if not entries:
        if anchor:
            return False, (f"the log is empty, but the registry saw {anchor['seq']} entries{seen} "
                           "(no wipe or flash recorded since): it was deleted")
        return True, why
    first, last = entries[0][0], entries[-1][0]
    per, segments = getattr(mod, "PER_SEGMENT", 64), getattr(mod, "SEGMENTS", 4)
    expected = per * max(0, (last - 1) // per - (segments - 1)) + 1
    if first != expected:
        return False, (f"the log starts at entry {first}, but the device keeps every entry from "
                       f"{expected} on: its first entries were removed")
    if not anchor:
        return True, why
    seq, head = int(anchor["seq"]), anchor["head"]
    if last < seq:
        return False, (f"the log ends at entry {last}, but the registry saw entries up to {seq}{seen}: "
                       "entries were removed, or the log was replaced")
    if seq < first:
        return True, (f"{why}; entry {seq}, where the registry's last check{seen} ended, has "
                      "rotated out of the device: the link to it cannot be checked")
    if entries[seq - first][1] != head:
        # a cut log that the button then wrote on has new entries where the anchored ones were
        return False, (f"entry {seq} is not the one the registry saw{seen}: the log was rewritten "
                       "(or cut, and written on since)")
    return True, f"{why}; matches the registry's last check{seen} up to entry {seq}"


def parse_sms_log_head(sms_head):
    """(seq, hex) of a log head as the daily status SMS gives it ("Log 57:a1b2c3" or
    "57:a1b2c3"), or None if it is not one."""
    m = re.fullmatch(r"\s*(?:Log\s+)?(\d+):([0-9a-fA-F]{6,16})\s*", str(sms_head))
    if not m or int(m.group(1)) < 1:   # entries count from 1: a head 0 was never sent
        return None
    return int(m.group(1)), m.group(2).lower()


def check_sms_log_head(lines, sms_head):
    """(ok, why): does the device's log (lines, oldest first) hold the head its daily status
    SMS reported ("Log 57:a1b2c3" -> "57:a1b2c3": entry 57 and the first 6 hex of its
    hash16)? A log rewritten or cut since that SMS no longer does, unless it was forged to
    match: 6 hex are 24 bits of an unkeyed chain (docs/registry.md)."""
    parsed = parse_sms_log_head(sms_head)
    if parsed is None:
        return False, f"{show_input(sms_head)} is not a log head as the daily SMS gives it (SEQ:HEX, e.g. 57:a1b2c3)"
    seq, head = parsed
    entries = [e for e in (_log_entry(line) for line in lines) if e]
    if not entries or seq > entries[-1][0]:
        return False, f"the log ends before entry {seq}, which the SMS reported: entries were removed"
    if seq < entries[0][0]:
        return True, f"entry {seq} has rotated out of the device: the SMS head cannot be checked"
    found = [h for s, h in entries if s == seq]
    if not found or not found[0].startswith(head):
        return False, f"entry {seq} is not the one the SMS reported: the log was rewritten"
    return True, f"entry {seq} matches the SMS head"
