"""The registry's audit chain: what makes an edited, removed or added audit row visible.

Every audit row written while the registry key is at hand carries a seal:

    seal = HMAC-SHA256(audit key, previous seal + "\\n" + the row as canonical JSON)

(the audit key is derived from the registry key by HKDF; the first sealed row chains from
""). The row's id is part of what is sealed, so rows cannot be reordered or renumbered.
Rows written before the chain existed (an older registry, or commands run without the key
before the first one with it) are covered by one "audit_chain_started" row whose detail
holds a SHA-256 over all of them. Rows written without the key after that stay unsealed
and are reported as such: nothing proves them.

The head of the chain (last sealed id, how many are sealed, its seal) is kept in the meta
table with its own HMAC (another derived key), so cutting rows off the end is visible
too, unless whoever cut them also put back an older head they had copied before.

Pure functions: no SQLite, no key loading (registry.py does both).
"""
import hashlib
import hmac
import json
import re

AUDIT_INFO = b"boton-seguro/audit/v1"
ANCHOR_INFO = b"boton-seguro/audit-anchor/v1"
START_ACTION = "audit_chain_started"
ANCHOR_META = "audit_anchor"
_START_RE = re.compile(r"covers (\d+) earlier row\(s\), sha256 ([0-9a-f]{64})")


def canonical(row) -> bytes:
    return json.dumps([row["id"], row["at"], row["technician"], row["action"], row["mac"],
                       row["detail"]], ensure_ascii=False, separators=(",", ":")).encode()


def seal(key, prev, row) -> str:
    return hmac.new(key, prev.encode() + b"\n" + canonical(row), hashlib.sha256).hexdigest()


def earlier_digest(rows) -> str:
    """SHA-256 over the rows the chain start covers (no key: they were never sealed)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(canonical(r) + b"\n")
    return h.hexdigest()


def start_detail(rows):
    return f"covers {len(rows)} earlier row(s), sha256 {earlier_digest(rows)}"


def anchor_value(anchor_key, last_id, count, last_seal) -> str:
    body = f"{last_id}:{count}:{last_seal}"
    return body + ":" + hmac.new(anchor_key, body.encode(), hashlib.sha256).hexdigest()


def parse_anchor(anchor_key, value):
    """(last id, sealed count, last seal) of a stored anchor, or None if it was altered."""
    parts = str(value or "").split(":")
    if len(parts) != 4:
        return None
    body = ":".join(parts[:3])
    want = hmac.new(anchor_key, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, parts[3]) or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


class ChainReport:
    """What verify_chain found. `problem` is None when the chain holds."""

    def __init__(self):
        self.problem = None
        self.rows = 0
        self.sealed = 0
        self.covered = 0          # rows from before the chain, covered by its start row
        self.unsealed = []        # ids of rows written without the key after the chain began
        self.last = None          # the last sealed row

    def fail(self, why):
        self.problem = why
        return self


def _where(r):
    return f"audit row #{r['id']} ({r['at']}, {r['action']})"


def verify_chain(rows, audit_key, anchor_key, anchor):
    """Check audit rows (dicts with id, at, technician, action, mac, detail, seal; oldest
    first) against their seals and the stored anchor (meta value or None)."""
    rep = ChainReport()
    prev, earlier = "", []
    for r in rows:
        rep.rows += 1
        if r["seal"] is None:
            if rep.last is None:
                earlier.append(r)
            else:
                rep.unsealed.append(r["id"])
            continue
        if rep.last is None and earlier:
            m = _START_RE.search(r["detail"] or "")
            if r["action"] != START_ACTION or not m:
                return rep.fail(f"{_where(earlier[0])} and {len(earlier) - 1} after it are not covered "
                                "by the chain: rows were added before the first sealed one")
            if int(m.group(1)) != len(earlier) or m.group(2) != earlier_digest(earlier):
                return rep.fail(f"the {len(earlier)} row(s) from before the audit chain started do "
                                f"not match what {_where(r)} recorded: one was altered, added or removed")
            rep.covered = len(earlier)
        if not hmac.compare_digest(seal(audit_key, prev, r), r["seal"]):
            return rep.fail(f"{_where(r)} does not match its seal: it was altered, or a row "
                            "before it was removed")
        prev, rep.last = r["seal"], r
        rep.sealed += 1
    if anchor is None:
        if rep.last is not None:
            return rep.fail("the audit chain's head record is missing from the registry: it was "
                            "removed (rows at the end may have been cut)")
        return rep
    head = parse_anchor(anchor_key, anchor)
    if head is None:
        return rep.fail("the audit chain's head record was altered (or written with another key)")
    last_id, count, last_seal = head
    if rep.last is None or rep.last["id"] != last_id or rep.sealed != count \
            or rep.last["seal"] != last_seal:
        have = f"row #{rep.last['id']}" if rep.last else "no sealed row"
        return rep.fail(f"the audit trail ends at {have} ({rep.sealed} sealed), but its head "
                        f"record says row #{last_id} ({count} sealed): rows were removed")
    return rep
