"""What the registry accepts for a device's fields (MAC, label, flash size, IMEI, ICCID,
hashes, board) and how free text is made safe to store: one RegistryError each, naming
the field, never echoing anything sensitive."""
import getpass
import os
import re

from .boards import board_names
from .errors import RegistryError

_MAC_RE = re.compile(r"[0-9a-f]{12}|[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}")
# Her alert SMS names the button by its device id's first 12 characters (firmware/lib/sms.py
# _dev), and the device id is the button's label: a new label is at most that long, so C4
# reads it whole and no two buttons look alike there. Older registries may hold labels up to
# 24 characters: they are still found, and relabelled before they go on a button.
LABEL_MAX = 12
_LABEL_RE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{0,22}[A-Z0-9])?")
_HASH_RE = re.compile(r"[0-9a-f]{8,64}")
_BOARD_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")
# digits with any separators a number is written with: spaces (any), . , / \ - – — ( ) [ ]
# _ ; : * # ' " | (a spreadsheet's 4,491,112,233 too); scrub masks a run of 7 or more
# digits ("449/111/2233", "(449) 111-2233", "449 . 111 . 2233", "449_111_2233")
_PHONEISH_RE = re.compile(r"\+?\d(?:[\s.,/\\()\[\]_;:*#'\"|\-\u2010-\u2015]*\d)+")
# what reasons and log lines say when, kept as written: a date (2026-12-02, 02/12/2026) or a
# clock time (12:30, 12:30:45), not inside a longer run of digits
_DATE_TIME_RE = re.compile(r"""(?<![\d/.:-])(
      (?:19|20)\d\d-[01]\d-[0-3]\d           # 2026-12-02
    | [0-3]?\d/[01]?\d/(?:19|20)\d\d         # 02/12/2026
    | [0-2]?\d:[0-5]\d(?::[0-5]\d)?           # 12:30, 12:30:45
    )(?![/.:-]?\d)""", re.VERBOSE)


def normalise_mac(text) -> str:
    """'AA-BB-CC-DD-EE-FF', 'aabbccddeeff' ... -> 'aa:bb:cc:dd:ee:ff', or RegistryError."""
    s = str(text).strip().lower()
    if not _MAC_RE.fullmatch(s):
        raise RegistryError(f"{show_input(text)} is not a MAC address: expected six hex pairs like "
                            "aa:bb:cc:dd:ee:ff (the board's eFuse MAC, as esptool prints it)")
    hexs = s.replace(":", "").replace("-", "")
    mac = ":".join(hexs[i:i + 2] for i in range(0, 12, 2))
    if hexs in ("000000000000", "ffffffffffff"):
        raise RegistryError(f"{mac} is not a board's MAC address (all zeros or all ones)")
    if int(hexs[:2], 16) & 1:
        raise RegistryError(f"{mac} is a multicast address, not a board's eFuse MAC")
    return mac


def looks_like_mac(text) -> bool:
    return bool(_MAC_RE.fullmatch(str(text).strip().lower()))


AUTO_LABEL_RE = re.compile(r"BS-(\d+)")


def auto_label(number):
    """The label a device gets when none is given: BS-0001, BS-0002, ..."""
    return f"BS-{number:04d}"


def normalise_label(text, new=True) -> str:
    """A button's label, upper case. A new one (new=True) is at most LABEL_MAX characters,
    and one with 7 or more digits is refused unshown: labels are kept in the clear and
    printed everywhere, and a sheet whose columns slipped puts her phone number in the
    label column (scrub masks such runs likewise). new=False: any label a registry holds."""
    s = str(text).strip().upper()
    if not _LABEL_RE.fullmatch(s) or looks_like_mac(s):
        raise RegistryError(f"label {show_input(text)} is not valid: use 1-{LABEL_MAX} letters, digits and "
                            "dashes, e.g. BS-0042")
    if new and len(s) > LABEL_MAX:
        raise RegistryError(f"label {show_input(text)} has {len(s)} characters: her alert SMS shows only the "
                            f"first {LABEL_MAX} of a button's label; use at most {LABEL_MAX} letters, digits "
                            "and dashes, e.g. BS-0042")
    if new and sum(ch.isdigit() for ch in s) >= 7:
        raise RegistryError("a label with 7 or more digits looks like a phone or ID number (labels are "
                            "kept in the clear and printed everywhere): use e.g. BS-0042")
    return s


def parse_flash_size(value) -> int:
    """4194304, '4MB', '4M', '4MiB' -> bytes (a power of two from 1 to 128 MiB)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(|k|kb|kib|m|mb|mib)\s*", str(value).lower())
        if not m:
            raise RegistryError(f"flash size {show_input(value)} is not a size: use bytes or e.g. 4MB")
        n = int(m.group(1)) * {"": 1, "k": 1024, "kb": 1024, "kib": 1024}.get(m.group(2), 1 << 20)
    if n < (1 << 20) or n > (128 << 20) or n & (n - 1):
        raise RegistryError(f"flash size {show_input(value)} is not a power of two from 1MB to 128MB")
    return n


def format_flash_size(n):
    if n is None or n == "":
        return ""
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:   # not what the registry writes
        return "invalid"
    return f"{n >> 20}MB" if n % (1 << 20) == 0 else str(n)


def check_hash(value, what):
    s = str(value).strip().lower()
    if not _HASH_RE.fullmatch(s):
        raise RegistryError(f"{what} {show_input(value)} is not a hex SHA-256 (8-64 hex digits)")
    return s


def _luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def normalise_imei(value):
    s = re.sub(r"[\s-]", "", str(value))
    if not re.fullmatch(r"\d{15}", s) or not _luhn_ok(s):
        raise RegistryError(f"IMEI {show_input(value)} is not valid: 15 digits with a correct check "
                            "digit (AT+GSN prints it)")
    return s


def normalise_iccid(value):
    s = re.sub(r"[\s-]", "", str(value)).upper().rstrip("F")
    if not re.fullmatch(r"\d{18,22}", s) or not _luhn_ok(s):
        raise RegistryError(f"ICCID {show_input(value)} is not valid: 18-22 digits with a correct "
                            "check digit (AT+CCID prints it)")
    return s


def check_board(value):
    s = str(value).strip().lower()
    if not _BOARD_RE.fullmatch(s):
        raise RegistryError(f"board {show_input(value)} is not a board profile name (e.g. tcall_sim800l_axp192)")
    return s


def check_known_board(value):
    """A board profile of this release (boards/*.json), for a button being registered:
    deploy, the release checks and `list --outdated` know no other."""
    s = check_board(value)
    if s not in board_names():
        raise RegistryError(f"board {show_input(value)} is not a board profile of this release: one of "
                            f"{', '.join(board_names())}")
    return s


def scrub(text, limit=200) -> str:
    """Free text from a technician or a device log, made safe to store and show: control
    characters removed, any run of 7 or more digits masked whatever separates them (a
    phone number, a case or ID number; dates and clock times are kept), length capped.
    Names and addresses cannot be told from other words: the commands that take free text
    say it must hold none."""
    s = _CTRL_RE.sub(" ", str(text or "")).strip()

    def _mask(m):
        run = m.group()
        left = sum(ch.isdigit() for ch in run)
        if left < 7:
            return run
        out = []                 # every digit but the last two, in place: "(***) ***-**33"
        for ch in run:
            if ch.isdigit():
                left -= 1
                ch = ch if left < 2 else "*"
            out.append(ch)
        return "".join(out)

    # the split puts the dates and times at its odd places; the text between them is masked
    parts = _DATE_TIME_RE.split(s)
    s = "".join(part if i % 2 else _PHONEISH_RE.sub(_mask, part) for i, part in enumerate(parts))
    return s if len(s) <= limit else s[:limit - 1] + "…"


def show_input(value, limit=24):
    """An input echoed in an error message (a MAC, a label, a size), only when it cannot be
    her data: what is typed where a label or MAC goes may be her number or her name (a
    sheet whose columns slipped, a paste into the wrong field). Shown: at most `limit`
    characters (the longest label), no words separated by spaces (a name, "449 111 2233")
    and no number that scrub would mask (7 or more digits, whatever separates them).
    Anything else is described by its length."""
    s = _CTRL_RE.sub("?", str(value)).strip()
    if len(s) > limit or re.search(r"\S\s+\S", s) or scrub(s) != s:
        return f"(not shown: {len(s)} characters that may be her name or number)"
    return repr(s)


def resolve_technician(technician=None) -> str:
    name = technician or os.environ.get("BOTON_TECHNICIAN")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "unknown"
    name = str(name).strip()
    if not 1 <= len(name) <= 40 or _CTRL_RE.search(name):
        raise RegistryError("technician name must be 1-40 printable characters "
                            "(--technician or BOTON_TECHNICIAN)")
    return name
