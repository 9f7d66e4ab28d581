"""Proof that a wipe left nothing of her on the button's flash.

What is searched for (needles), each kind counted separately and reported without her data:

* alias and full name: as stored (UTF-8), in upper case, as JSON writes non-ASCII
  (\\u00f1) and as UTF-16LE;
* each trusted contact and C4 number: E.164 ("+524491234567"), digits only
  ("524491234567") and the national number ("4491234567", a substring of the other two
  but also what a SIM800 phonebook or a log in national format would hold), each also
  as UTF-16LE. A masked form (the logs' "+52*******67") is not her number and is not searched;
* the PIN: the config's `pin_hash` string and its salt (hex, and as raw bytes); the plain
  PIN only in the form an old firmware stored it (`"pin": "1234"`) and only if the
  technician supplied it (it is nowhere on the host); a bare 4-digit string would match
  any flash at random;
* her positions: each fix the device still held before the wipe (alert.json's
  `fix`, as the integer 1e-7 degrees it writes there and as the 5-decimal strings of her
  SMS, "21.88234"), and, with no known value, any stale alert state that carried a
  position (`"fix": [<digit>`, or a sealed `"loc": "<hex>"`: firmware/lib/shred.py) or a
  maps link with coordinates (`maps.google.com/?q=<digit>`).

Where the needles come from: the registry's case for the device (its last one, open or
closed by the return) and what the device itself held, read just before the erase
(config.json, alert.json). A device unknown to the registry is still searched for what it
held; with nothing readable there is nothing to search for, and the result says so.

How the flash is read back (read_partition): esptool, not the firmware: the chip's ROM
loader (on a real ESP32 with esptool's flasher stub; the virtual chip is ROM only) reads
the `vfs` partition independently of MicroPython. To keep it fast on the ROM loader
(READ_FLASH_SLOW: 64 bytes per command, ~64 kB/s on the virtual chip, ~32 s for the 2 MB
partition), each 64 KB region and then each 4 KB block is first hashed on the chip
(SPI_FLASH_MD5, a ROM command); a block whose MD5 is that of erased flash (all 0xFF) is
all 0xFF (finding other contents with that MD5 is a second-preimage attack on MD5, not
something a LittleFS leaves behind), every other block is read in full. After a wipe only
the blocks of the new filesystem and the reinstalled firmware are read: a few seconds.
"""
import hashlib
import json
import re
from dataclasses import dataclass, field

from .errors import EXIT_DEVICE

REGION = 64 * 1024
BLOCK = 4096

# what a finding of each kind is called in the report (never the value)
KINDS = ("alias", "full_name", "contact", "c4", "pin_hash", "pin_salt", "pin", "position",
         "stale_position")


@dataclass
class Needle:
    kind: str
    patterns: list                 # bytes to look for
    regex: bool = False            # patterns are regular expressions (stale_position)
    baseline: int = 0              # occurrences in the files the wipe reinstalls: not hers


@dataclass
class SearchResult:
    bytes_searched: int
    found: dict = field(default_factory=dict)      # kind -> occurrences found
    searched: dict = field(default_factory=dict)   # kind -> how many needles of that kind

    @property
    def clean(self) -> bool:
        return not any(self.found.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {self.searched[k]}" for k in KINDS if self.searched.get(k))
        hits = ", ".join(f"{k} x{n}" for k, n in self.found.items() if n)
        return (f"{self.bytes_searched:,} bytes searched for {kinds or 'nothing'}: "
                + (f"FOUND {hits}" if hits else "nothing found"))

    def as_dict(self) -> dict:
        return {"bytes_searched": self.bytes_searched, "searched": dict(self.searched),
                "found": {k: n for k, n in self.found.items() if n}}


def _text_forms(text: str, fold=True) -> list:
    forms = {text, text.upper()} if fold else {text}
    out = set()
    for t in forms:
        out.add(t.encode())
        out.add(json.dumps(t)[1:-1].encode())  # \u00f1 for ñ, as CPython's json writes it
        out.add(t.encode("utf-16-le"))
    return sorted(out)


def _number_forms(e164: str) -> list:
    digits = re.sub(r"\D", "", e164)
    national = digits[-10:] if len(digits) > 10 else digits
    out = set()
    for t in {e164, digits, national}:
        out.add(t.encode())
        out.add(t.encode("utf-16-le"))
    return sorted(out)


def _e5(e7: int) -> str:
    # sms.fmt_e7: 1e-7 degrees -> "21.88234" by integer rounding
    n = (e7 + 50) // 100 if e7 >= 0 else -((-e7 + 50) // 100)
    sign = "-" if n < 0 else ""
    n = abs(n)
    return "%s%d.%05d" % (sign, n // 100000, n % 100000)


def position_forms(lat_e7: int, lon_e7: int) -> list:
    out = []
    for v in (int(lat_e7), int(lon_e7)):
        out += [str(v).encode(), _e5(v).encode()]
    return out


def needles(cases=(), config=None, alert_state=None, pin=None) -> list:
    """The needles for what the registry's cases (every one the button had) and the
    device's own files say its beneficiaries had."""
    out = []
    alias = set()
    numbers = {"contact": set(), "c4": set()}
    for case in cases:
        alias.add(case.alias)
        numbers["contact"].update(case.contacts)
        if getattr(case, "full_name", None):
            out.append(Needle("full_name", _text_forms(case.full_name)))
    if isinstance(config, dict):
        if isinstance(config.get("alias"), str) and config["alias"].strip():
            alias.add(config["alias"])
        for kind, key in (("contact", "contacts"), ("c4", "c4_numbers")):
            for n in config.get(key) or []:
                if isinstance(n, str) and re.search(r"\d{6}", n):
                    numbers[kind].add(n)
        ph = config.get("pin_hash")
        if isinstance(ph, str) and ph.count("$") == 2:
            _, salt, digest = ph.split("$")
            out.append(Needle("pin_hash", [ph.encode(), digest.encode()]))
            try:
                out.append(Needle("pin_salt", [salt.encode(), bytes.fromhex(salt)]))
            except ValueError:
                out.append(Needle("pin_salt", [salt.encode()]))
        if isinstance(config.get("pin"), str) and config["pin"]:
            pin = pin or config["pin"]
    if pin:
        out.append(Needle("pin", [f'"pin": "{pin}"'.encode(), f'"pin":"{pin}"'.encode()]))
    for a in sorted(alias):
        out.append(Needle("alias", _text_forms(a)))
    for kind in ("contact", "c4"):
        for n in sorted(numbers[kind]):
            out.append(Needle(kind, _number_forms(n)))
    fix = alert_state.get("fix") if isinstance(alert_state, dict) else None
    if isinstance(fix, list) and len(fix) >= 2 and all(isinstance(v, int) for v in fix[:2]):
        out.append(Needle("position", position_forms(fix[0], fix[1])))
    loc = alert_state.get("loc") if isinstance(alert_state, dict) else None
    if isinstance(loc, str) and loc:
        # an active alert's position, sealed under a key that lives only in the chip's RTC
        # memory (firmware/lib/shred.py): unreadable without it, but hers all the same
        out.append(Needle("sealed_position", [loc.encode()]))
    out.append(Needle("stale_position", [rb'"fix": ?\[-?\d', rb"maps\.google\.com/\?q=-?\d",
                                         rb'"loc": ?"[0-9a-f]'], regex=True))
    return out


def _count(data: bytes, n: Needle) -> int:
    """Distinct offsets where any of the needle's patterns starts."""
    hits = set()
    for p in n.patterns:
        if n.regex:
            hits.update(m.start() for m in re.finditer(p, data))
        else:
            i = data.find(p)
            while i >= 0:
                hits.add(i)
                i = data.find(p, i + 1)
    return len(hits)


def with_baseline(found_needles, reinstalled: list) -> list:
    """Count each needle in the files the wipe put back (the release's own bytes): those
    occurrences are the firmware's, not hers (an alias that is also a word in the code)."""
    blob = b"\x00".join(reinstalled)
    for n in found_needles:
        n.baseline = _count(blob, n)
    return found_needles


def search(data: bytes, found_needles) -> SearchResult:
    res = SearchResult(len(data))
    for n in found_needles:
        res.searched[n.kind] = res.searched.get(n.kind, 0) + 1
        res.found[n.kind] = res.found.get(n.kind, 0) + max(0, _count(data, n) - n.baseline)
    return res


# ----------------------------------------------------------------------------- read back
ERASED_MD5 = {n: hashlib.md5(b"\xff" * n).hexdigest() for n in (REGION, BLOCK)}


@dataclass
class ReadBack:
    data: bytes
    blocks_read: int
    blocks_erased: int
    seconds: float
    virtual: bool
    mac: str


def read_partition(port, offset, size, progress=print) -> ReadBack:
    """The `size` bytes at `offset` of the chip's flash, through esptool (module doc):
    erased blocks proven by the chip's MD5, the others read in full. Leaves the board
    running its app."""
    import time

    from . import flash as fl

    if offset % BLOCK or size % BLOCK:
        raise fl.FlashError(f"vfs region {offset:#x}+{size:#x} is not whole 4 KB blocks", EXIT_DEVICE)
    started = time.monotonic()
    buf = bytearray(b"\xff" * size)
    read = erased = 0
    with fl.session(port) as s:
        mac, virtual, sink = s.mac, s.virtual, s.sink
        esp = s.esp = fl._with_loader(s.esp, None, virtual)

        from esptool.cmds import attach_flash, detect_flash_size  # noqa: E402 - esptool loads slowly

        sink.step = "flash-id"
        attach_flash(esp)
        chip_size = detect_flash_size(esp)
        if chip_size is None:
            raise fl.FlashError(f"esptool could not detect the flash size on {port}", EXIT_DEVICE)
        esp.flash_set_parameters(fl.size_bytes(chip_size))
        if offset + size > fl.size_bytes(chip_size):
            raise fl.FlashError(f"the vfs region {offset:#x}+{size:#x} is beyond this chip's "
                                f"{chip_size} flash", EXIT_DEVICE)
        sink.step = "read-flash"
        for r in range(0, size, REGION):
            n = min(REGION, size - r)
            if n == REGION and esp.flash_md5sum(offset + r, n) == ERASED_MD5[REGION]:
                erased += n // BLOCK
                continue
            for b in range(r, r + n, BLOCK):
                if esp.flash_md5sum(offset + b, BLOCK) == ERASED_MD5[BLOCK]:
                    erased += 1
                    continue
                buf[b:b + BLOCK] = esp.read_flash(offset + b, BLOCK)
                read += 1
        fl._leave(esp, port, lambda *_: None)
    took = time.monotonic() - started
    progress(f"read back the vfs partition ({size // 1024} KB at {offset:#x}) with esptool: "
             f"{read} blocks read, {erased} proven erased by MD5, {took:.1f} s")
    return ReadBack(bytes(buf), read, erased, took, virtual, mac)
