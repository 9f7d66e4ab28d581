"""What goes onto a device: the firmware files and her configuration.

The device keeps the minimum: an alias she chose (never her name), the numbers it must
reach and a PIN for SMS commands. Case data stays in the host registry.
"""
import hashlib
import importlib
import json
import re
import sys
import time
import unicodedata

import phonenumbers

from .device import EXIT_DEVICE, EXIT_USAGE, EXIT_VERIFY, DeviceError
from . import build
from .boards import board_file
from .paths import FIRMWARE

CONFIG_PATH = "config.json"
BOARD_PATH = "board.json"
CONFIG_SCHEMA = 1
MAX_CONTACTS = 5
ALIAS_MAX = 16
# What an alias may hold once written in the SMS alphabet (the firmware's safe GSM-7).
ALIAS_SMS_CHARS = re.compile("[A-Za-z0-9\u00f1\u00d1\u00fc\u00dc .'-]+")
# Where the first-alert SMS preview puts her (Plaza de la Patria, as the docs' examples).
EXAMPLE_POINT = dict(lat=21.88234, lon=-102.29143)
REGISTRATION_POLL_S = 1.0


class InputError(DeviceError):
    def __init__(self, message):
        super().__init__(message, EXIT_USAGE)


# What a typed phone number may hold: ASCII digits, a leading +, and separators.
PHONE_SEPARATORS = " -.()/"


def _check_number_chars(text, what):
    """InputError naming the first character a phone number cannot hold. phonenumbers
    would read letters as a keypad's (vanity numbers: '449 ABC 2233' -> 4492222233) and
    an 'x45' or 'ext 45' as an extension the device cannot dial: both hide a typo."""
    for i, ch in enumerate(text, 1):
        if "0" <= ch <= "9" or ch in PHONE_SEPARATORS or (ch == "+" and not text[:i - 1].strip()):
            continue
        where = f"{what} {mask(text)}: character {i}"
        if ch.isalpha():
            raise InputError(f"{where} is a letter ({ch!r}); phone numbers are digits only "
                             "(no letters, no extensions)")
        if ch == "+":
            raise InputError(f"{where} is a '+', which may only start the number")
        if ch.isdigit():
            raise InputError(f"{where} ({ch!r}) is not a plain digit 0-9")
        raise InputError(f"{where} ({ch!r}) is not allowed; use digits, a leading + and "
                         f"the separators space - . ( ) /")


def normalise_number(text, what="number", region="MX"):
    """E.164 of a phone number, Mexican by default; InputError naming the field otherwise.
    The one check for every number the tools take (provision, image, registry)."""
    text = str(text).strip()
    if not text:
        raise InputError(f"{what} is empty")
    _check_number_chars(text, what)
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as e:
        raise InputError(f"{what} {mask(text)!s} is not a phone number: {e._msg}") from None
    if not phonenumbers.is_valid_number(num):
        raise InputError(f"{what} {mask(text)} is not a valid number for region {region}")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def mask(number: str) -> str:
    """Show enough of a number to recognise it, never all of it (logs, screens)."""
    digits = str(number)
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]


def firmware_module(name):
    """A pure firmware module (gsm7, sms) run on CPython, as docs_build renders the SMS
    examples: the host shows and stores exactly what the device will send."""
    lib = str(FIRMWARE / "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    return importlib.import_module(name)


def normalise_alias(alias):
    """The alias as her SMS will carry it, or InputError.

    One alphabet: the firmware's own (gsm7.to_gsm7, "safe GSM-7", what every phone shows).
    Accents are dropped (Ángela -> Angela, Inés -> Ines), ñ Ñ ü Ü are kept (GSM-7 has
    them and every phone shows them: Begoña, Güera), ß -> ss, curly quotes and dashes
    -> ' and -. A character that does not come out as a letter, digit, space or . ' - (emoji, other scripts, symbols) is refused,
    named in the message. 1-16 characters after that. The alias itself is not echoed:
    the registry treats it as case data."""
    gsm7 = firmware_module("gsm7")
    alias = unicodedata.normalize("NFC", str(alias or "")).strip()  # NFD input: one char per letter
    out = []
    for i, ch in enumerate(alias, 1):
        sms = gsm7.to_gsm7(ch)
        # a symbol must not turn into a letter (@ -> a, $ -> S): that would misspell her name
        if not sms or not ALIAS_SMS_CHARS.fullmatch(sms) or (sms.isalpha() and not ch.isalpha()):
            raise InputError(f"alias: character {i} ({ch!r}, U+{ord(ch):04X}) cannot be written in an "
                             "SMS (GSM-7); use letters, digits, spaces or . ' -")
        out.append(sms)
    stored = "".join(out)
    if not 1 <= len(stored) <= ALIAS_MAX:
        raise InputError(f"alias must be 1-{ALIAS_MAX} characters as the SMS write it (got {len(stored)}): "
                         "a short name she chose, not her full name")
    return stored


def first_alert_sms(config):
    """The first alert SMS her contacts get, built by the firmware's sms.py with her alias
    and device id (the position is an example: the real one is where she is)."""
    sms = firmware_module("sms")
    return sms.alert_text(alias=config["alias"], kind="gps", age_s=4, hdop=1.2, battery=86,
                          device_id=config["device_id"], calling_c4=bool(config["c4_numbers"]),
                          **EXAMPLE_POINT)


def build_config(*, alias, contacts, c4, device_id, pin=None, pin_hash=None, allow_911=False,
                 gesture="hold", hold_ms=2000, presses=3, window_ms=2000,
                 update_every_s=300, max_alert_s=3600, confirm=True, region="MX",
                 programme_number=None):
    """Her configuration as the device stores it, or InputError. The PIN goes in only as a
    salted hash (pin.hash_pin): `pin` (4-8 digits; None: a random one nobody is shown, for
    tests and demos) or an existing `pin_hash` (a config kept from an earlier provisioning)."""
    from . import pin as pins

    alias = normalise_alias(alias)
    if not 1 <= len(contacts) <= MAX_CONTACTS:
        raise InputError(f"give 1 to {MAX_CONTACTS} trusted contacts (got {len(contacts)})")
    if not c4:
        raise InputError("give at least one C4 number (--c4)")
    contacts_e164 = [normalise_number(c, f"contact #{i + 1}", region) for i, c in enumerate(contacts)]
    c4_e164 = [normalise_number(c, f"C4 number #{i + 1}", region) for i, c in enumerate(c4)]
    if len(set(contacts_e164)) != len(contacts_e164):
        raise InputError("the same trusted contact is given twice")
    if set(contacts_e164) & set(c4_e164):
        raise InputError("a trusted contact cannot also be a C4 number")
    programme = normalise_number(programme_number, "programme number", region) if programme_number else ""
    if pin_hash is not None:
        if pin is not None:
            raise InputError("give a PIN or a PIN hash, not both")
        if not pins.is_pin_hash(pin_hash):
            raise InputError("pin_hash is not a PIN hash written by boton (s$<salt>$<sha256>)")
    else:
        pin_hash = pins.hash_pin(pins.generate_pin() if pin is None else pins.validate_pin(pin))
    if gesture not in ("hold", "presses"):
        raise InputError("gesture must be 'hold' or 'presses'")
    if not 500 <= hold_ms <= 10000:
        raise InputError("hold time must be 500-10000 ms")
    return {
        "schema": CONFIG_SCHEMA,
        "device_id": device_id,
        "alias": alias,
        "c4_numbers": c4_e164,
        "contacts": contacts_e164,
        "pin_hash": pin_hash,
        "country_code": "+%d" % phonenumbers.country_code_for_region(region),
        "allow_911": bool(allow_911),
        "gesture": {"mode": gesture, "hold_ms": hold_ms, "count": presses, "window_ms": window_ms},
        "vibrate": bool(confirm),
        "update_every_s": update_every_s,
        "max_alert_s": max_alert_s,
        "programme_number": programme,
    }


def config_bytes(config: dict) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def config_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_config(dev, config: dict):
    """Atomically write the config, read it back, and compare: the registry trusts only this."""
    data = config_bytes(config)
    dev.write_file_atomic(CONFIG_PATH, data)
    back = dev.read_file(CONFIG_PATH)
    if back != data:
        raise DeviceError("config read back from the device differs from what was written", EXIT_VERIFY)
    return config_hash(data)


# A profile's documentation, which stays in boards/: neither the firmware nor the host
# reads it from a device, and the firmware keeps board.json on its heap.
BOARD_DOC_KEYS = ("name", "notes")


def board_json(board: str) -> bytes:
    """board.json as deploy writes it: the profile without BOARD_DOC_KEYS, compact."""
    profile = json.loads(board_file(board).read_text())
    for key in BOARD_DOC_KEYS:
        profile.pop(key, None)
    return json.dumps(profile, separators=(",", ":")).encode()


def firmware_files(board: str, mpy=True, frozen=False):
    """(device path, bytes) of everything `deploy` puts on a board: the flash root (boot.py,
    main.py, bootcheck.mpy, safe.mpy, board.json) and lib/*.mpy, unless the board's image
    has the firmware frozen in (frozen=True: what a frozen-mode deploy leaves)."""
    files = [f for f in build.firmware_modules(mpy) if not (frozen and f[0].startswith("lib/"))]
    files.append((BOARD_PATH, board_json(board)))
    return files


def release_hash(board: str, mpy=True) -> str:
    """One hash for everything deploy puts on a board: what the registry records."""
    return build.files_digest(firmware_files(board, mpy))


def identity(dev) -> dict:
    """Chip id, IMEI, ICCID, operator, signal, registration, from the device itself."""
    out = dev.exec("import service\nservice.identity()")
    return json.loads(out.decode().strip().splitlines()[-1])


# The profile to deploy for a board whose I2C answers with this power chip.
POWER_CHIP_BOARDS = {"ip5306": ("tcall_sim800l_ip5306",), "axp192": ("tcall_sim800l_axp192",)}


def detect_power_chip(dev, board=None) -> dict:
    """Which power chip answers on the device's I2C, in one round trip: {"board": profile id,
    "expected": chip the profile names or None, "found": "ip5306" | "axp192" | None}. board:
    the profile to check (default: the board.json on the device). A profile without a power
    chip (DevKitC) is not probed. `status` may show "found"."""
    if board is None:
        code = "import json\nb=json.load(open('board.json'))\n"
    else:
        wanted = {k: board[k] for k in ("id", "ip5306", "axp192") if board.get(k)}
        code = f"import json\nb=json.loads({json.dumps(wanted)!r})\n"
    code += ("import pmu\nn,s=pmu.expected(b)\n"
             "print(json.dumps([b.get('id'),n,pmu.detect(s['sda'],s['scl']) if s else None]))")
    try:
        out = dev.exec(code)
    except DeviceError as e:
        if "No module named" in str(e) or "ENOENT" in str(e):
            raise DeviceError("the device has no firmware with power-chip detection (pmu) or no board "
                              "profile: run `boton deploy --board ...` first", EXIT_USAGE) from None
        raise
    board_id, expected, found = json.loads(out.decode().strip().splitlines()[-1])
    return {"board": board_id, "expected": expected, "found": found}


def check_power_chip(dev, board=None) -> str | None:
    """The detected chip name if it is the one the profile names; DeviceError (exit 2) if
    another chip, or none, answers where the profile expects one."""
    return judge_power_chip(detect_power_chip(dev, board))


def judge_power_chip(d) -> str | None:
    """check_power_chip's verdict on what detect_power_chip found."""
    if d["expected"] is None or d["found"] == d["expected"]:
        return d["found"]
    right = [f"--board {b}" for b in POWER_CHIP_BOARDS.get(d["found"], ())]
    if d["found"] is None:
        raise DeviceError(f"no power chip answers on I2C but the profile {d['board']} expects an "
                          f"{d['expected'].upper()}: check the board revision (data/boards.md) and deploy "
                          "the matching profile", EXIT_USAGE)
    raise DeviceError(f"this board answers as an {d['found'].upper()} but the profile says {d['board']}"
                      + (f": use {' or '.join(right)}" if right else ""), EXIT_USAGE)


def wait_for_network(dev, limit_s, on_wait=None, clock=time.monotonic, pause=time.sleep):
    """(identity, seconds waited): at once when the modem is registered or does not answer
    (waiting will not power it), else once it registers or limit_s has passed. A modem
    registers seconds after power-on (SIM start-up, cell search); on_wait(identity,
    seconds) reports every look that found it not registered yet."""
    start = clock()
    while True:
        ident = identity(dev)
        waited = clock() - start
        if not ident.get("modem") or ident.get("registered") or waited >= limit_s:
            return ident, waited
        if on_wait:
            on_wait(ident, waited)
        # the REPL gives no registration event to wait on: ask the modem again shortly
        pause(min(REGISTRATION_POLL_S, limit_s - waited))


def network_wait_status(ident):
    """What an unregistered modem is doing, without her data (no ICCID, no numbers)."""
    step = "SIM not ready yet" if not ident.get("iccid") else "SIM ready, searching for the network"
    rssi = ident.get("rssi")
    signal = "unknown" if rssi in (None, 99) else f"{rssi}/31"
    return f"{step}; signal {signal}"


def sms_recipients(config):
    """[(role, E.164)] in the order the firmware sends an alert: its own
    AlertMachine.recipients() (her contacts, then C4's copy unless C4 is one of them)."""
    contacts = config.get("contacts") or []
    numbers = firmware_module("alert").AlertMachine(config).recipients()
    return [(f"contact #{contacts.index(n) + 1}" if n in contacts else "C4", n) for n in numbers]


def judge_test_call(config, events):
    """Each alert SMS recipient's outcome from a test call's EV entries ([name, detail],
    e.g. ["sms_ok", "alert_...2233"]: the log writes a detail's spaces as _):
    [(role, number, outcome)] with outcome "accepted", "refused" (sms_failed) or "not sent".
    The device logs numbers as "...<last 4 digits>"; recipients that share their last four
    digits need as many entries."""
    done = {"sms_ok": [], "sms_failed": []}
    for e in events:
        if len(e) >= 2 and e[0] in done:
            msg, _, who = "_".join(e[1:]).partition("_")
            if msg == "alert":
                done[e[0]].append(who[-4:])
    result = []
    for role, number in sms_recipients(config):
        tail = "".join(c for c in number if c.isdigit())[-4:]
        for name, outcome in (("sms_ok", "accepted"), ("sms_failed", "refused")):
            if tail in done[name]:
                done[name].remove(tail)
                break
        else:
            outcome = "not sent"
        result.append((role, number, outcome))
    return result


def call_outcomes(events):
    """What the device's calls to C4 did during a test, from its EV entries, for the
    technician: e.g. "dial #1, call_failed no_answer, dial #2, dial_error CME_30_no_network".
    Numbers are already masked on the device; empty when it never dialled."""
    out = []
    for e in events:
        if e and e[0] in ("dial", "dial_error", "call_failed", "call_ended", "audio_error"):
            detail = " ".join(e[1:])
            if e[0] == "dial":  # "...0000_#2": the attempt, not the (masked) number
                detail = "#" + detail.rpartition("#")[2]
            out.append(f"{e[0]} {detail}".strip())
    return ", ".join(out[-8:])


def read_config(dev):
    """Her configuration as the device holds it, or None (missing or unreadable)."""
    raw = dev.read_file(CONFIG_PATH)
    try:
        config = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return config if isinstance(config, dict) else None


def read_event_log(dev) -> list:
    """The retained event log lines, oldest first."""
    out = dev.exec("import eventlog\nfor e in eventlog.EventLog(echo=False).entries():\n print(e)")
    return [ln for ln in out.decode().splitlines() if ln.strip()]


def _eventlog_module():
    import importlib.util

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
    mod = _eventlog_module()
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
        return False, (f"entry {seq} is not the one the registry saw{seen}: the log was rewritten")
    return True, f"{why}; matches the registry's last check{seen} up to entry {seq}"


def check_sms_log_head(lines, sms_head):
    """(ok, why): does the device's log (lines, oldest first) hold the head its daily status
    SMS reported ("Log 57:a1b2c3" -> "57:a1b2c3": entry 57 and the first hex of its hash16)?
    A log rewritten or cut since that SMS no longer does."""
    m = re.fullmatch(r"\s*(?:Log\s+)?(\d+):([0-9a-fA-F]{6,16})\s*", str(sms_head))
    if not m:
        return False, f"{sms_head!r} is not a log head as the daily SMS gives it (SEQ:HEX, e.g. 57:a1b2c3)"
    seq, head = int(m.group(1)), m.group(2).lower()
    entries = [e for e in (_log_entry(line) for line in lines) if e]
    if not entries or seq > entries[-1][0]:
        return False, f"the log ends before entry {seq}, which the SMS reported: entries were removed"
    if seq < entries[0][0]:
        return True, f"entry {seq} has rotated out of the device: the SMS head cannot be checked"
    found = [h for s, h in entries if s == seq]
    if not found or not found[0].startswith(head):
        return False, f"entry {seq} is not the one the SMS reported: the log was rewritten"
    return True, f"entry {seq} matches the SMS head"


# The firmware's .mpy live in lib/ (on sys.path after the frozen modules). A deploy stages
# the new ones in lib.new/, verifies every file by the device's own SHA-256, then swaps
# with two renames (lib -> lib.old, lib.new -> lib) sent as one command; boot.py puts
# lib.old back if the power goes between them. At any interruption the board keeps a
# whole firmware: the old one until the swap, the new one after it.
LIB, STAGING, RETIRED = "lib", "lib.new", "lib.old"
FROZEN_STAMP_MODULE = "boton_frozen"

# One round trip: the free heap after boot (boot.py only, the firmware not imported, after
# a gc.collect()), the frozen image's stamp if there is one, and the flash root's names.
_BOARD_FACTS = ("import os,gc,json\ngc.collect()\nh=gc.mem_free()\n"
                "try:\n import boton_frozen as z\n f={'version':z.VERSION,'target':z.TARGET,'sha256':z.CONTENT_SHA256}\n"
                "except ImportError:\n f=None\n"
                "print(json.dumps({'frozen':f,'heap_free':h,'root':os.listdir()}))")


class Deployed(tuple):
    """(paths copied, files in the release) as deploy always returned, plus how: `mode`
    "frozen" (the board's image holds this release's firmware: only the flash root was
    installed) or "mpy"; `frozen`, the board's stamp (or None); `heap_free`, bytes free
    after boot as gc.mem_free() says; `removed`, stale files and folders (lib/) taken off."""

    def __new__(cls, copied, total, mode, frozen, heap_free, removed):
        self = super().__new__(cls, (copied, total))
        self.copied, self.total, self.mode, self.frozen = copied, total, mode, frozen
        self.heap_free, self.removed = heap_free, removed
        return self


def frozen_mismatch(stamp: dict) -> str | None:
    """Why the board's frozen firmware is not this release's, or None if it is."""
    from . import frozen

    target = stamp.get("target")
    if target not in ("esp32", "unix"):
        return f"its frozen firmware names an unknown target {target!r}"
    ours = frozen.stamp(target)
    if stamp.get("sha256") == ours["sha256"]:
        return None
    return (f"it runs frozen firmware {stamp.get('version')} (content {str(stamp.get('sha256'))[:12]}, "
            f"{target}), not this release's {ours['version']} (content {ours['sha256'][:12]})")


def deploy(dev, board: str, progress=None, mpy=True):
    """Install the release on a board, copying only what differs (by the device's own
    SHA-256). A board whose image has this release's firmware frozen in gets only the flash
    root (boot files, safe mode, board profile; her configuration stays) and loses any
    lib/*.mpy and root copies of firmware modules (dead weight at best: a root module
    would shadow the frozen one). A board with another release frozen in is refused (see
    frozen_mismatch). Otherwise the firmware's .mpy are staged and swapped in whole.
    Returns a Deployed: (copied, total) plus mode, frozen stamp and free heap."""
    files = firmware_files(board, mpy)
    facts = json.loads(dev.exec(_BOARD_FACTS).decode().strip().splitlines()[-1])
    stamp = facts["frozen"]
    if stamp:
        why = frozen_mismatch(stamp)
        if why:
            raise DeviceError(f"this board's image is another release: {why}. Its frozen modules come before "
                              "/lib, so .mpy files would never run: flash the matching image "
                              "(`make firmware`, then boton flash --firmware <image>)", EXIT_DEVICE)
    root = [(p, d) for p, d in files if not p.startswith(LIB + "/")]
    lib = [(p[len(LIB) + 1:], d) for p, d in files if p.startswith(LIB + "/")]
    # A root module comes before both the frozen ones and lib/ on sys.path: a stale copy
    # of a firmware module there would run instead of the release.
    modules = {n.rsplit(".", 1)[0] for n, _ in lib} | {FROZEN_STAMP_MODULE}
    removed = []
    for name in facts["root"]:
        stem, _, ext = name.rpartition(".")
        if ext in ("py", "mpy") and stem in modules and name not in dict(root):
            dev.remove(name)
            removed.append(name)
    # The flash root first, each file replaced whole; main.py last: it imports bootcheck.mpy,
    # and runs the old lib/ as well as the new.
    root.sort(key=lambda f: f[0] == "main.py")
    have = dev.hash_files([p for p, _ in root])
    copied = []
    for path, data in root:
        if have.get(path) != hashlib.sha256(data).hexdigest():
            dev.write_file_atomic(path, data)
            copied.append(path)
        if progress:
            progress(path)
    if stamp:
        for d in (STAGING, RETIRED, LIB):
            if d in facts["root"]:
                _remove_dir(dev, d)
                removed.append(d + "/")
        if progress:
            for name, _ in lib:
                progress(f"{LIB}/{name} (frozen)")
    else:
        copied += _stage_and_swap(dev, lib, facts["root"], progress)
    return Deployed(copied, len(root) if stamp else len(files), "frozen" if stamp else "mpy", stamp,
                    facts["heap_free"], removed)


def _dir_hashes(dev, d):
    names = dev.eval_json(f"[f[0] for f in __import__('os').ilistdir({d!r})]")
    got = dev.hash_files([f"{d}/{n}" for n in names])
    return {n: got.get(f"{d}/{n}") for n in names}


def _remove_dir(dev, d):
    """rm -r of a flat folder on the device."""
    dev.exec(f"import os\nfor f in os.listdir({d!r}):\n os.remove({d!r}+'/'+f)\nos.rmdir({d!r})")


def _stage_and_swap(dev, lib, root_names, progress):
    """lib/ becomes exactly `lib` ((name, bytes) pairs) through lib.new/ and one swap."""
    if LIB not in root_names and RETIRED in root_names:
        dev.exec(f"import os\nos.rename({RETIRED!r},{LIB!r})")  # power went mid-swap, no boot since
        root_names = [*root_names, LIB]
    if RETIRED in root_names and LIB in root_names:
        _remove_dir(dev, RETIRED)  # the last deploy swapped, then lost the link
    wanted = {name: hashlib.sha256(data).hexdigest() for name, data in lib}
    live = _dir_hashes(dev, LIB) if LIB in root_names else {}
    if live == wanted:
        if STAGING in root_names:
            _remove_dir(dev, STAGING)
        if progress:
            for name in wanted:
                progress(f"{LIB}/{name}")
        return []
    staged = _dir_hashes(dev, STAGING) if STAGING in root_names else {}
    if STAGING not in root_names:
        dev.exec(f"import os\nos.mkdir({STAGING!r})")
    for extra in sorted(set(staged) - set(wanted)):
        dev.remove(f"{STAGING}/{extra}")
    copied, reuse = [], []
    for name, data in lib:
        if staged.get(name) == wanted[name]:
            pass  # staged by an interrupted deploy
        elif live.get(name) == wanted[name]:
            reuse.append(name)  # unchanged: copied on the device, nothing over the cable
        else:
            dev.write_file(f"{STAGING}/{name}", data)
            copied.append(f"{LIB}/{name}")
        if progress:
            progress(f"{LIB}/{name}")
    if reuse:
        dev.exec(f"b=bytearray(512)\nm=memoryview(b)\nfor n in {reuse!r}:\n"
                 f" s=open({LIB!r}+'/'+n,'rb')\n d=open({STAGING!r}+'/'+n,'wb')\n"
                 " while 1:\n  k=s.readinto(b)\n  if not k: break\n  d.write(m[:k])\n s.close()\n d.close()")
    got = _dir_hashes(dev, STAGING)
    if got != wanted:
        bad = sorted(n for n in set(got) | set(wanted) if got.get(n) != wanted.get(n))
        raise DeviceError(f"verify failed in {STAGING}/ for {', '.join(bad)}: the firmware was not switched "
                          "(the old one still runs); deploy again", EXIT_VERIFY)
    # One command, so a dropped link cannot split it; only a power cut can (boot.py's case).
    dev.exec(f"import os\nif {LIB!r} in os.listdir():\n os.rename({LIB!r},{RETIRED!r})\n"
             f"os.rename({STAGING!r},{LIB!r})")
    if LIB in root_names:
        _remove_dir(dev, RETIRED)
    return copied


PRIVATE_FILES = ("config.json", "config.json.tmp", "alert.json", "alert.json.tmp")


class Wiped:
    """What `wipe` did on the device: `raw` (its filesystem partition was erased block by
    block; offset/size say where it is), the files removed (flash folder only), what it
    held before (config, alert_state: the needles' sources), the board profile it was
    given back and, on a flash folder, the files left (for the file-level search)."""

    def __init__(self, **kw):
        self.raw = False
        self.virtual = False
        self.offset = self.size = self.blocks = self.erase_failed = 0
        self.removed, self.left_files = [], {}
        self.config = self.alert_state = self.board = None
        self.reinstalled = []
        self.__dict__.update(kw)


_WALK = ("import os,json\nr=[]\ndef w(d):\n for e in os.ilistdir(d or '.'):\n"
         "  p=(d+'/'+e[0]) if d else e[0]\n  if e[1]==0x4000: w(p)\n  else: r.append(p)\n"
         "w('')\nprint(json.dumps(r))")


def _read_json_file(dev, path):
    raw = dev.read_file(path)
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None


def wipe(dev, keep_log=False, progress=None) -> Wiped:
    """Erase her data from the device. First what it holds is read (config.json and
    alert.json: what the check then searches the flash for), then the firmware's
    wipefs.run() erases every block of the filesystem partition, makes a new
    LittleFS and the release is deployed again (board profile, no configuration): a
    returned button as it left the warehouse. keep_log puts the event log back (it
    holds no names, numbers or positions: eventlog.py). A virtual device on a flash
    folder has no raw blocks: there her files are removed and the rest listed for a
    file-level search."""
    say = progress or (lambda *_: None)
    config = read_config(dev)
    alert_state = _read_json_file(dev, "alert.json")
    board = _read_json_file(dev, BOARD_PATH)
    board_id = board.get("id") if isinstance(board, dict) else None
    logs = {}
    if keep_log:
        for name in dev.eval_json("__import__('os').listdir()"):
            if name.startswith("log."):
                logs[name] = dev.read_file(name)
    virtual = bool(dev.eval_json("__import__('hw').VIRTUAL"))
    done = Wiped(config=config, alert_state=alert_state, board=board_id, virtual=virtual)
    say("erasing every block of the filesystem partition")
    out = dev.exec("import wipefs\nwipefs.run()", timeout=600)
    info = json.loads(out.decode().strip().splitlines()[-1])
    if not info.get("raw"):
        listing = dev.eval_json("__import__('os').listdir()")
        done.removed = [f for f in listing if f in PRIVATE_FILES or (not keep_log and f.startswith("log."))]
        for f in done.removed:
            dev.remove(f)
        left = set(dev.eval_json("__import__('os').listdir()")) & set(done.removed)
        if left:
            raise DeviceError(f"wipe failed: {', '.join(sorted(left))} still on the device", EXIT_VERIFY)
        paths = json.loads(dev.exec(_WALK).decode().strip().splitlines()[-1])
        done.left_files = {p: dev.read_file(p) or b"" for p in paths}
        if board_id:  # what is left is the release: its own bytes are not hers
            done.reinstalled = [d for _, d in firmware_files(board_id)]
        return done
    done.raw = True
    done.offset, done.size = info["offset"], info["size"]
    done.blocks, done.erase_failed = info["blocks"], info["erase_failed"]
    if done.erase_failed:
        raise DeviceError(f"wipe failed: the flash refused to erase {done.erase_failed} of "
                          f"{done.blocks} blocks: the chip may be faulty; retire it and destroy "
                          "its flash", EXIT_VERIFY)
    # a clean interpreter on the new filesystem: the firmware imported for the erase no
    # longer takes the heap deploy needs
    dev._enter_raw_repl()
    if board_id:
        say(f"reinstalling the firmware (board {board_id})")
        deploy(dev, board_id)
        done.reinstalled = [d for _, d in firmware_files(board_id)]
    for name, data in logs.items():
        if data is not None:
            dev.write_file(name, data)
    return done
