"""The rules for her configuration, pure (no device, no transport): phone numbers, the
alias, the config the device stores, and what a test call's events say.

The device keeps the minimum: an alias she chose (never her name), the numbers it must
reach and a PIN for SMS commands. Case data stays in the host registry. provision.py
writes what these rules build; the registry and the image builder use them too.
"""
import hashlib
import importlib
import json
import re
import sys
import unicodedata

import phonenumbers

from . import pin as pins
from .errors import EXIT_USAGE, DeviceError, InputError
from .paths import FIRMWARE

CONFIG_PATH = "config.json"
CONFIG_SCHEMA = 1
MAX_CONTACTS = 5
ALIAS_MAX = 16
# What an alias may hold once written in the SMS alphabet (the firmware's safe GSM-7).
ALIAS_SMS_CHARS = re.compile("[A-Za-z0-9\u00f1\u00d1\u00fc\u00dc .'-]+")
# Where the first-alert SMS preview puts her (Plaza de la Patria, as the docs' examples).
EXAMPLE_POINT = dict(lat=21.88234, lon=-102.29143)


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


def normalise_number(text, what="number", region="MX", any_kind=False):
    """E.164 of a phone number, Mexican by default; InputError naming the field otherwise.
    The one check for every number the tools take (provision, image, registry). any_kind:
    a number already stored (a case decrypted) is not refused for its kind (800, 900...),
    which an older release let in: it stays readable, to correct."""
    text = str(text).strip()
    if not text:
        raise InputError(f"{what} is empty")
    _check_number_chars(text, what)
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as e:
        raise InputError(f"{what} {mask(text)!s} is not a phone number: {e._msg}") from None
    num = _without_old_mobile_one(num)
    if not phonenumbers.is_valid_number(num):
        if text.startswith("+"):   # its country was given: the default region is beside the point
            raise InputError(f"{what} {mask(text)} is not a valid number of country code "
                             f"+{num.country_code}")
        raise InputError(f"{what} {mask(text)} is not a valid number for region {region} (a "
                         "number of another country starts with + and its country code)")
    kind = phonenumbers.number_type(num)
    if kind not in CALLABLE_TYPES and not any_kind:
        name = NUMBER_TYPE_NAMES.get(kind, "a number of a kind that is not a phone's")
        raise InputError(f"{what} {mask(text)} is {name}: it cannot take the SMS and calls of an alert "
                         "from a mobile; give a mobile or landline number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


# What a number must be to take an alert's SMS or call from the button's SIM.
NT = phonenumbers.PhoneNumberType
CALLABLE_TYPES = (NT.MOBILE, NT.FIXED_LINE, NT.FIXED_LINE_OR_MOBILE)
NUMBER_TYPE_NAMES = {
    NT.TOLL_FREE: "a toll-free number (800)", NT.PREMIUM_RATE: "a premium-rate number (900)",
    NT.SHARED_COST: "a shared-cost number", NT.VOIP: "an internet (VoIP) number",
    NT.PERSONAL_NUMBER: "a personal (forwarding) number", NT.PAGER: "a pager number",
    NT.UAN: "a company's universal access number", NT.VOICEMAIL: "a voicemail access number",
}


def _without_old_mobile_one(num):
    """A Mexican mobile written the old way, with a 1 after +52 (+52 1 449 111 2233, no
    longer used since 2019), as it is dialled now; any other number as it is."""
    national = str(num.national_number)
    if num.country_code == 52 and len(national) == 11 and national.startswith("1"):
        now = phonenumbers.PhoneNumber(country_code=52, national_number=int(national[1:]))
        if phonenumbers.is_valid_number(now):
            return now
    return num


def mask(number: str) -> str:
    """Show enough of a number to recognise it, never all of it (logs, screens)."""
    digits = str(number)
    if len(digits) <= 4:
        return "*" * len(digits)
    if len(digits) > SHOWN_MAX:   # a paste that is no number: not shown back at its length
        return f"{digits[:3]}{'*' * (SHOWN_MAX - 5)}... ({len(digits)} characters)"
    return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]


# The most of a value typed in that a message or a masked number shows back: longer than
# any number typed with its separators (a 5000-character paste is not repeated whole).
SHOWN_MAX = 24


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


# The numeric settings of her configuration: (config key, the option that sets it or None,
# unit, lowest, highest, what it is). Outside these the firmware would not raise her alert as
# meant: gesture.py fires on a hold of hold_ms or `count` presses within window_ms; alert.py
# sends a location SMS every update_every_s and stops after max_alert_s (0 or less: expired
# at once). Defaults as the firmware's alert.DEFAULTS.
SETTINGS = {
    # at most 3 s: the sign she repeats in her alert must come well before the 5 s hold that
    # cancels it (gesture.py checks the cancel first: a 6 s sign repeated was her cancel)
    "hold_ms": ("gesture.hold_ms", "--hold-ms", "ms", 500, 3000, "how long she holds the button"),
    "count": ("gesture.count", None, "presses", 2, 10, "presses that raise the alert"),
    "window_ms": ("gesture.window_ms", None, "ms", 1000, 10000, "time the presses must fall within"),
    "update_every_s": ("update_every_s", None, "s", 60, 3600, "location SMS period in an alert"),
    "max_alert_s": ("max_alert_s", None, "s", 300, 86400, "how long an alert lasts"),
    # C4's call-backs are answered silently, microphone up, during her alert and this long
    # after it: whoever fakes C4's caller ID can listen in that long (docs/registry.md).
    # 0: during the alert only. The firmware's default (alert.DEFAULTS) when not written.
    "callback_window_s": ("callback_window_s", "--callback-window-s", "s", 0, 86400,
                          "how long after her alert C4's calls are answered"),
}
DEFAULT_CALLBACK_WINDOW_S = 3600
FLAGS = {"allow_911": ("allow_911", "--allow-911"), "vibrate": ("vibrate", None)}


def echo(value) -> str:
    """A refused value as a message repeats it, cut short (a 5000-character paste is not
    shown back whole)."""
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else f"{text[:SHOWN_MAX - 3]}... ({len(text)} characters)"


def _field(key, option, what=None):
    about = "; ".join(x for x in (what, option) if x)
    return f"{key} ({about})" if about else key


def check_settings(**values):
    """InputError naming the first setting (SETTINGS: a whole number in its range; FLAGS:
    true or false) that is not one; the values as given otherwise."""
    for name, value in values.items():
        if name in FLAGS:
            if not isinstance(value, bool):
                raise InputError(f"{_field(*FLAGS[name])} must be true or false, got {echo(value)}")
            continue
        key, option, unit, lo, hi, what = SETTINGS[name]
        kind = "text" if isinstance(value, str) else type(value).__name__
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{_field(key, option, what)} must be a whole number of {unit} from "
                             f"{lo} to {hi}, got {echo(value)} ({kind})")
        if not lo <= value <= hi:
            raise InputError(f"{_field(key, option, what)} must be {lo} to {hi} {unit}, got {value}")
    return values


def check_numbers(contacts, c4, programme=""):
    """InputError if the same number has two roles or is given twice: contacts and C4 in
    E.164 (normalise_number), programme "" for none. A contact that is C4 would get her
    alert's SMS as a contact and never be called as C4; the daily status SMS to a contact
    would tell her contact about the button; one C4 number twice would be called twice
    over while the other numbers wait."""
    def first_repeat(numbers):
        for j, n in enumerate(numbers):
            if n in numbers[:j]:
                return numbers.index(n) + 1, j + 1
        return None

    if (twice := first_repeat(contacts)):
        raise InputError("the same trusted contact is given twice (contact #%d and #%d)" % twice)
    if (twice := first_repeat(c4)):
        raise InputError("the same C4 number is given twice (--c4 #%d and #%d): give each once" % twice)
    for i, n in enumerate(contacts, 1):
        if n in c4:
            raise InputError(f"contact #{i} is C4 number #{c4.index(n) + 1}: a trusted contact cannot "
                             "also be a C4 number (the button calls C4 itself); give her contact's own "
                             "number, or correct the C4 numbers")
    if programme and programme in contacts:
        raise InputError(f"the programme number is contact #{contacts.index(programme) + 1}: the "
                         "programme's daily status SMS must not go to her trusted contact")


GESTURES = ("hold", "presses")   # gesture.mode: hold the button, or press it `count` times
DEFAULT_HOLD_MS = 2000


def check_typed(*, c4, contacts=None, programme_number=None, gesture="hold", region="MX", **settings):
    """What the technician typed for a configuration, checked as build_config will before
    anything is opened or written: (C4 numbers, programme number) in E.164. contacts: the
    typed ones in E.164 (typed_case_values), or None when they come from her case."""
    if not c4:
        raise InputError("give at least one C4 number (--c4)")
    c4_e164 = [normalise_number(c, f"C4 number #{i + 1}", region) for i, c in enumerate(c4)]
    programme = normalise_number(programme_number, "programme number", region) if programme_number else ""
    check_numbers(list(contacts or []), c4_e164, programme)
    if gesture not in GESTURES:
        raise InputError(f"gesture (gesture.mode) must be 'hold' or 'presses', got {echo(gesture)}")
    check_settings(**settings)
    return c4_e164, programme


def build_config(*, alias, contacts, c4, device_id, pin=None, pin_hash=None, allow_911=False,
                 gesture="hold", hold_ms=DEFAULT_HOLD_MS, presses=3, window_ms=2000,
                 update_every_s=300, max_alert_s=3600, confirm=True, region="MX",
                 programme_number=None, callback_window_s=None):
    """Her configuration as the device stores it, or InputError. The PIN goes in only as a
    salted hash (pin.hash_pin): `pin` (4-8 digits; None: a random one nobody is shown, for
    tests and demos) or an existing `pin_hash` (a config kept from an earlier provisioning)."""
    alias = normalise_alias(alias)
    if not 1 <= len(contacts) <= MAX_CONTACTS:
        raise InputError(f"give 1 to {MAX_CONTACTS} trusted contacts (got {len(contacts)})")
    if not c4:
        raise InputError("give at least one C4 number (--c4)")
    contacts_e164 = [normalise_number(c, f"contact #{i + 1}", region) for i, c in enumerate(contacts)]
    c4_e164 = [normalise_number(c, f"C4 number #{i + 1}", region) for i, c in enumerate(c4)]
    programme = normalise_number(programme_number, "programme number", region) if programme_number else ""
    check_numbers(contacts_e164, c4_e164, programme)
    if pin_hash is not None:
        if pin is not None:
            raise InputError("give a PIN or a PIN hash, not both")
        if not pins.is_pin_hash(pin_hash):
            raise InputError("pin_hash is not a PIN hash written by boton (s$<salt>$<sha256>)")
    else:
        pin_hash = pins.hash_pin(pins.generate_pin() if pin is None else pins.validate_pin(pin))
    if gesture not in GESTURES:
        raise InputError(f"gesture (gesture.mode) must be 'hold' or 'presses', got {echo(gesture)}")
    check_settings(hold_ms=hold_ms, count=presses, window_ms=window_ms, update_every_s=update_every_s,
                   max_alert_s=max_alert_s, allow_911=allow_911, vibrate=confirm)
    if callback_window_s is not None:
        check_settings(callback_window_s=callback_window_s)
    config = {
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
    if callback_window_s is not None and callback_window_s != DEFAULT_CALLBACK_WINDOW_S:
        config["callback_window_s"] = callback_window_s  # else the firmware's own default
    config_bytes(config)  # one the firmware would refuse is refused here, before any write
    return config


def settings_kept(settings, held, c4, contacts):
    """build_config's settings for a provisioning: each one given (not None) as given, each
    one left out as the configuration the button holds (`held`, its config.json bytes or
    None) has it, if that still builds; else the default. Returns (build_config keywords,
    what was kept, in words): a visit that leaves out --programme-number or --allow-911 must
    not switch off her daily status SMS or her 911 fallback without a word."""
    try:
        old = json.loads(held) if held else {}
    except ValueError:
        old = {}
    old = old if isinstance(old, dict) else {}
    chosen, kept = {}, []
    gesture = settings.get("gesture")
    if gesture is not None:
        chosen.update(gesture=gesture["mode"], hold_ms=gesture["hold_ms"])
    elif (g := _held_gesture(old)) is not None:
        chosen.update(g)
        if (g["gesture"], g["hold_ms"]) != ("hold", DEFAULT_HOLD_MS):
            kept.append(f"gesture hold ({g['hold_ms']} ms hold)" if g["gesture"] == "hold"
                        else f"gesture {g['presses']} presses")
    allow = settings.get("allow_911")
    if allow is None:
        allow = old.get("allow_911") is True
        if allow:
            kept.append("911 as the last resort")
    chosen["allow_911"] = allow
    programme = settings.get("programme_number")
    if programme is None:
        programme = _held_programme(old, c4, contacts)
        if programme:
            kept.append(f"daily status SMS to {mask(programme)}")
    chosen["programme_number"] = programme or None
    window = settings.get("callback_window_s")
    if window is None:
        window = old.get("callback_window_s")
        try:
            check_settings(callback_window_s=window)
        except InputError:
            window = None   # none held (the firmware's default), or one that would not build
        else:
            if window != DEFAULT_CALLBACK_WINDOW_S:
                kept.append(f"C4's call-backs answered {window} s after an alert")
    chosen["callback_window_s"] = window
    return chosen, kept


def _held_gesture(old):
    """build_config's gesture keywords from a held configuration, or None if it has none
    that would build."""
    g = old.get("gesture")
    try:
        keep = {"gesture": g["mode"], "hold_ms": g["hold_ms"], "presses": g["count"], "window_ms": g["window_ms"]}
        if keep["gesture"] not in GESTURES:
            return None
        check_settings(hold_ms=keep["hold_ms"], count=keep["presses"], window_ms=keep["window_ms"])
    except (InputError, KeyError, TypeError):
        return None
    return keep


def _held_programme(old, c4, contacts):
    """The held configuration's programme number, or None if it has none that would build."""
    programme = old.get("programme_number")
    if not programme:
        return None
    try:
        check_numbers(list(contacts), list(c4), normalise_number(programme, "programme number"))
    except (InputError, TypeError, AttributeError):
        return None
    return programme


# The firmware's daily status SMS period (alert.DEFAULTS["daily_status_s"]; build_config
# does not set it) and its cap (supervision.daily_ms: timers stay inside ticks_ms' half period).
DAILY_STATUS_DEFAULT_S = 86400
DAILY_STATUS_MAX_S = 432000


def daily_interval_s(config: dict) -> int:
    """How often a button with this configuration sends its silent daily status SMS, in
    seconds; 0: never (no programme number, or a period of 0). Mirrors the firmware's
    supervision.daily_ms (tests/test_reports.py holds them together): the period is the
    config's daily_status_s or the firmware default, capped at 5 days."""
    period = config.get("daily_status_s", DAILY_STATUS_DEFAULT_S)
    period = int(period or 0)
    return min(period, DAILY_STATUS_MAX_S) if period > 0 and config.get("programme_number") else 0


def config_bytes(config: dict) -> bytes:
    """config.json as the device stores it, or InputError if the device would refuse it."""
    return device_json(json.dumps(config, sort_keys=True, separators=(",", ":")).encode(),
                       "her configuration (config.json)", "give fewer C4 numbers")


def device_json(data: bytes, what: str, fix: str) -> bytes:
    """data, or InputError if it is longer than the firmware reads (store.JSON_MAX: it
    would refuse it at every boot and run in safe mode)."""
    most = firmware_module("store").JSON_MAX
    if len(data) > most:
        raise InputError(f"{what} would be {len(data)} bytes on the device, and the firmware "
                         f"refuses more than {most} (it reads it at every boot on a 56 KB heap): {fix}")
    return data


def config_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The profile to deploy for a board whose I2C answers with this power chip.
POWER_CHIP_BOARDS = {"ip5306": ("tcall_sim800l_ip5306",), "axp192": ("tcall_sim800l_axp192",)}


def judge_power_chip(d) -> str | None:
    """The verdict of provision.check_power_chip on what provision.detect_power_chip found."""
    if d["expected"] is None or d["found"] == d["expected"]:
        return d["found"]
    right = [f"--board {b}" for b in POWER_CHIP_BOARDS.get(d["found"], ())]
    if d["found"] is None:
        raise DeviceError(f"no power chip answers on I2C but the profile {d['board']} expects an "
                          f"{d['expected'].upper()}: check the board revision (data/boards.md) and deploy "
                          "the matching profile", EXIT_USAGE)
    raise DeviceError(f"this board answers as an {d['found'].upper()} but the profile says {d['board']}"
                      + (f": use {' or '.join(right)}" if right else ""), EXIT_USAGE)


# The SIM's state (service._modem_facts "sim": the AT+CPIN? reply, or the error the
# module gave) in the technician's words; 27.007 8.3 and 9.2 (+CME 10-14 with AT+CMEE=1).
SIM_WORDS = (
    (("SIM PIN", "CME 11"), "the SIM asks for a PIN: disable the PIN in a phone (the firmware does "
                            "not enter one)"),
    (("SIM PUK", "CME 12"), "the SIM is blocked (it asks for its PUK): unblock it in a phone or replace it"),
    (("NOT INSERTED", "CME 10"), "no SIM: not inserted, or not making contact (reseat it, clean its "
                                 "contacts)"),
    (("CME 13",), "the SIM fails (SIM failure): reseat it, else replace it"),
    (("NOT READY", "CME 14"), "the SIM is still starting"),
)
# +CREG stat (27.007 7.2) of a module that is not registered
CREG_WORDS = {0: "not searching for a network (no SIM, or the module's radio is off)",
              2: "searching for the network",
              3: "the operator refuses this SIM (registration denied: line suspended, not "
                 "activated, or not allowed on this network)",
              4: "registration unknown (no coverage?)"}


def sim_problem(ident) -> str | None:
    """What keeps the modem off the network, from its SIM state and its +CREG stat, in
    plain words; None if the SIM is ready and nothing is known against the network."""
    sim = ident.get("sim")
    if isinstance(sim, str) and sim.split(":")[-1].strip() != "READY":
        for answers, words in SIM_WORDS:
            if any(a in sim for a in answers):
                return words
        return f"the SIM does not answer as ready ({sim[:40]})"
    creg = ident.get("creg")
    return CREG_WORDS.get(creg) if creg == 3 or (creg in (0, 4) and sim is not None) else None


def network_wait_status(ident):
    """What an unregistered modem is doing, without her data (no ICCID, no numbers)."""
    if "sim" in ident:  # firmware that reports the SIM's own state
        step = sim_problem(ident) or "SIM ready, " + CREG_WORDS[2]
    else:
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


# Why the modem refused an SMS (+CMS ERROR, 27.005 3.2.5; below 128 the network's cause,
# 24.011 8.2.5.4), in the technician's words, by what fixes it.
SMS_ERROR_WORDS = (
    ((330,), "the SIM has no SMS-centre number: check the message centre in a phone with this SIM, "
             "or ask the operator"),
    ((8, 10, 21, 29, 50, 69), "the operator refuses SMS from this line: no credit, no SMS in its "
                              "plan, or the line is suspended"),
    ((1, 28, 96), "the network refused the recipient's number"),
    ((310, 313, 311, 316), "the SIM: missing, failing or locked (see `boton status`)"),
    ((331, 332, 17, 22, 27, 38, 41, 42, 47), "no network or a congested one: try again where the "
                                             "signal is better"),
)


def sms_error_words(events):
    """The distinct SMS refusals a test call's EV entries hold (["sms_error",
    "CMS_330_smsc_unknown"]), each as "CMS 330: <what fixes it>", in the order seen."""
    said = []
    for e in events:
        if len(e) < 2 or e[0] != "sms_error":
            continue
        kind, _, rest = e[1].partition("_")
        code = rest.split("_")[0]
        words = next((w for codes, w in SMS_ERROR_WORDS if code.isdigit() and int(code) in codes), None)
        line = f"{kind} {code}" + (f": {words}" if words else "") if kind in ("CMS", "CME") else e[1]
        if line not in said:
            said.append(line)
    return said


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


# What the modem's registration means for her call to C4. The firmware reports (service
# identity/status, both families): "family", "rat" ("GSM" | "LTE" | None), "voice" (True
# | False | None: unknown, e.g. not registered) and "voice_via" ("2G" | "VoLTE" | None).
RADIO_KEYS = ("rat", "voice", "voice_via")
NO_VOICE_ADVICE = ("fit a SIM whose plan has VoLTE, or use another operator's SIM (one with "
                   "VoLTE, or where 2G still works here)")
# Module firmware revisions (AT+CGMR, "modem_rev") that drop every call on LTE: dialing,
# then disconnected at once, on a VoLTE SIM; B07 fixed it. LilyGO-Modem-Series #240 (a
# T-Call A7670E on B01) and #180 (the same user's T-Call A7670E-FASE: A110B01A7670M7_F).
LTE_CALLS_DROP = ("A110B01A7670M7",)
LTE_CALLS_DROP_ADVICE = ("upgrade the module's firmware (B07 or later: docs/hardware.md, \"Modem "
                         "firmware\") and run `boton provision` again")


class RadioVerdict:
    """What the network will do for her: `voice` True (C4 can be called), False (SMS
    only: the button must not be marked ready), None (unknown); `summary`, one line for
    the technician (e.g. "LTE, voice over LTE"); `advice`, what to do ("" if nothing)."""

    def __init__(self, voice, summary, advice=""):
        self.voice, self.summary, self.advice = voice, summary, advice

    def line(self):
        return self.summary + (f" — {self.advice}" if self.advice else "")

    def __repr__(self):
        return f"RadioVerdict({self.voice!r}, {self.summary!r}, {self.advice!r})"


def radio_verdict(ident) -> RadioVerdict:
    """The verdict on service.identity()/status()'s radio keys; never raises: old firmware
    (no keys) and malformed values are "unknown", said so."""
    if not isinstance(ident, dict) or not any(k in ident for k in RADIO_KEYS):
        return RadioVerdict(None, "unknown (firmware does not report it)",
                            "the test call shows whether C4 can be called")
    rat, voice, via = ident.get("rat"), ident.get("voice"), ident.get("voice_via")
    if rat not in ("GSM", "LTE", None) or voice not in (True, False, None) \
            or via not in ("2G", "VoLTE", None):
        return RadioVerdict(None, f"unknown (the firmware reported rat={rat!r}, voice={voice!r}, "
                                  f"voice_via={via!r})", "")
    registered = ident.get("registered")
    if registered is False or (registered is None and rat is None and voice is None):
        # not registered, no call, whatever rat says (a SIM800 always says "GSM")
        return RadioVerdict(None, f"not registered: {sim_problem(ident) or 'voice unknown'}", "")
    where = {"GSM": "GSM (2G)", "LTE": "LTE", None: "registered (radio unknown)"}[rat]
    if voice is None:
        return RadioVerdict(None, f"{where}, voice unknown", "")
    rev = ident.get("modem_rev")
    drops = isinstance(rev, str) and rev.startswith(LTE_CALLS_DROP)
    if voice and drops:
        if rat == "LTE" and via != "2G":
            return RadioVerdict(False, f"LTE: NO VOICE — module firmware {rev} drops every call "
                                       "on LTE", LTE_CALLS_DROP_ADVICE)
        return RadioVerdict(True, f"{where}, voice over 2G (module firmware {rev} drops every call on "
                                  "LTE: once 2G is gone here the button cannot call C4)", LTE_CALLS_DROP_ADVICE)
    if voice:
        if rat == "GSM":
            return RadioVerdict(True, "GSM (2G), voice")
        how = {"VoLTE": "voice over LTE", "2G": "voice over 2G (falls back from LTE for a call)",
               None: "voice"}[via]
        return RadioVerdict(True, f"{where}, {how}")
    if rat == "LTE":
        return RadioVerdict(False, "LTE, SMS only: NO VOICE — this SIM/operator has no VoLTE and "
                                   "there is no 2G here", NO_VOICE_ADVICE)
    if rat == "GSM":
        return RadioVerdict(False, "GSM (2G), SMS only: NO VOICE — the network refuses calls on "
                                   "this SIM", "check the SIM's plan allows calls, or use "
                                               "another operator's SIM")
    return RadioVerdict(False, "NO VOICE — the modem reports no voice service", NO_VOICE_ADVICE)


def typed_case_values(alias, contacts):
    """--alias/--contact as the configuration would hold them (InputError if malformed)."""
    if len(contacts) > MAX_CONTACTS:
        raise InputError(f"give 1 to {MAX_CONTACTS} trusted contacts (got {len(contacts)})")
    return (normalise_alias(alias) if alias else None,
            [normalise_number(n, f"contact #{i + 1}") for i, n in enumerate(contacts)] or None)


def case_values(label, case, typed):
    """(alias, contacts) for the configuration: her case is the single source; typed values
    only confirm it, or stand in for it on a bench button without a case."""
    alias, contacts = typed
    if case is None:
        if alias is None or contacts is None:
            raise DeviceError(f"{label} has no case assigned: assign hers first (`boton devices assign "
                              f"{label} ...`; provision then takes her alias and contacts from it), or "
                              "give --alias and --contact for a bench test (never delivered)", EXIT_USAGE)
        return alias, contacts
    if alias is not None and alias != case.alias:
        raise DeviceError(f"--alias differs from the case assigned to {label}: leave it out (the case "
                          "is the single source) or correct the case", EXIT_USAGE)
    if contacts is not None and contacts != list(case.contacts):
        raise DeviceError(f"--contact differs from the case assigned to {label} (numbers and order): "
                          "leave it out (the case is the single source) or correct the case", EXIT_USAGE)
    return case.alias, list(case.contacts)


GPS_FAULT = ("the GPS module is dead, unplugged or set to another baud than the board "
             "profile's gps.baud: repair the button")


def gps_fault(log_lines=(), sentences=None):
    """Why the GPS looks broken, or None. The device's log says so when its firmware heard
    no NMEA sentence for a while it listened ("gps silent", not yet followed by "gps
    talks"); `boton status`'s own look says so when it heard none in its 3 s (sentences
    0). A GPS without sky still talks: that is no fault."""
    last = None
    for line in log_lines or ():
        parts = str(line).split(" ")
        if len(parts) >= 5 and parts[2] == "gps":
            last = parts
    if last is not None and last[3] == "silent":
        return f"GPS SENDS NOTHING since log entry {last[0]} (stamp {last[1]}): {GPS_FAULT}"
    if sentences == 0:
        return f"GPS SENDS NOTHING (no NMEA sentence in 3 s): {GPS_FAULT}"
    return None
