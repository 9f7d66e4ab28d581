"""What goes onto a device: the firmware files and her configuration.

The device keeps the minimum: an alias she chose (never her name), the numbers it must
reach and a PIN for SMS commands. Case data stays in the host registry.
"""
import hashlib
import json
import re
import secrets

import phonenumbers

from .device import EXIT_USAGE, EXIT_VERIFY, DeviceError
from . import build
from .boards import board_file
from .paths import FIRMWARE

CONFIG_PATH = "config.json"
BOARD_PATH = "board.json"
CONFIG_SCHEMA = 1
MAX_CONTACTS = 5
ALIAS_RE = re.compile(r"^[A-Za-z0-9 .'-]{1,16}$")


class InputError(DeviceError):
    def __init__(self, message):
        super().__init__(message, EXIT_USAGE)


def normalise_number(text, what="number", region="MX"):
    """E.164 of a phone number, Mexican by default; InputError naming the field otherwise."""
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


def build_config(*, alias, contacts, c4, device_id, pin=None, allow_911=False,
                 gesture="hold", hold_ms=2000, presses=3, window_ms=2000,
                 update_every_s=300, max_alert_s=3600, confirm=True, region="MX",
                 programme_number=None):
    alias = (alias or "").strip()
    if not ALIAS_RE.match(alias):
        raise InputError("alias must be 1-16 plain letters, digits, spaces or . ' - "
                         "(a short name she chose, not her full name; no accents: SMS are GSM-7)")
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
    if pin is None:
        pin = "".join(secrets.choice("0123456789") for _ in range(6))
    if not re.fullmatch(r"\d{4,8}", str(pin)):
        raise InputError("PIN must be 4 to 8 digits")
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
        "pin": str(pin),
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


def firmware_files(board: str, mpy=True):
    """(device path, bytes) of everything `deploy` puts on a board."""
    files = build.firmware_modules(mpy)
    files.append((BOARD_PATH, board_file(board).read_bytes()))
    return files


def release_hash(board: str, mpy=True) -> str:
    """One hash for everything deploy puts on a board: what the registry records."""
    h = hashlib.sha256()
    for path, data in firmware_files(board, mpy):
        h.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def identity(dev) -> dict:
    """Chip id, IMEI, ICCID, operator, signal, registration, from the device itself."""
    out = dev.exec("import service\nservice.identity()")
    return json.loads(out.decode().strip().splitlines()[-1])


def read_event_log(dev) -> list:
    """The retained event log lines, oldest first."""
    out = dev.exec("import eventlog\nfor e in eventlog.EventLog(echo=False).entries():\n print(e)")
    return [ln for ln in out.decode().splitlines() if ln.strip()]


def verify_event_log(lines):
    import importlib.util

    spec = importlib.util.spec_from_file_location("eventlog", FIRMWARE / "lib" / "eventlog.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.verify(lines)


def deploy(dev, board: str, progress=None, mpy=True):
    """Copy only what differs (by the device's own SHA-256), and remove firmware modules
    the release no longer has (a stale lib/x.py would shadow lib/x.mpy). Returns the
    paths copied and the number of files in the release."""
    files = firmware_files(board, mpy)
    wanted = {p for p, _ in files}
    on_device = dev.eval_json("[('lib/'+f[0]) for f in __import__('os').ilistdir('lib')] "
                              "if 'lib' in __import__('os').listdir() else []")
    for stale in sorted(set(on_device) - wanted):
        dev.remove(stale)
    have = dev.hash_files([p for p, _ in files])
    copied = []
    for path, data in files:
        if have.get(path) != hashlib.sha256(data).hexdigest():
            dev.write_file(path, data)
            copied.append(path)
        if progress:
            progress(path)
    return copied, len(files)


PRIVATE_FILES = ("config.json", "config.json.tmp", "alert.json", "alert.json.tmp")


def wipe(dev, keep_log=False):
    """Remove her data from the device and check it is gone. Returns what was removed."""
    listing = dev.eval_json("__import__('os').listdir()")
    targets = [f for f in listing if f in PRIVATE_FILES or (not keep_log and f.startswith("log."))]
    for f in targets:
        dev.remove(f)
    left = set(dev.eval_json("__import__('os').listdir()")) & set(targets)
    if left:
        raise DeviceError(f"wipe failed: {', '.join(sorted(left))} still on the device", EXIT_VERIFY)
    return targets
