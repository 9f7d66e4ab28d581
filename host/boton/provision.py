"""What goes onto a device: the firmware files and her configuration.

The device keeps the minimum: an alias she chose (never her name), the numbers it must
reach and a PIN for SMS commands. Case data stays in the host registry.
"""
import hashlib
import importlib
import json
import re
import secrets
import sys
import time
import unicodedata

import phonenumbers

from .device import EXIT_USAGE, EXIT_VERIFY, DeviceError
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


def build_config(*, alias, contacts, c4, device_id, pin=None, allow_911=False,
                 gesture="hold", hold_ms=2000, presses=3, window_ms=2000,
                 update_every_s=300, max_alert_s=3600, confirm=True, region="MX",
                 programme_number=None):
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
    return build.files_digest(firmware_files(board, mpy))


def identity(dev) -> dict:
    """Chip id, IMEI, ICCID, operator, signal, registration, from the device itself."""
    out = dev.exec("import service\nservice.identity()")
    return json.loads(out.decode().strip().splitlines()[-1])


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
