"""MicroPython onto a board with esptool: detect, skip if already there, erase, write, verify.

esptool runs as a subprocess of this interpreter (`python -m esptool`): its output and
exit code are its own, several boards can be flashed in parallel, and its known
failures are turned into hints a technician can act on.
"""
import hashlib
import re
import subprocess
import sys
from pathlib import Path

from .device import EXIT_CONNECT, EXIT_DEVICE, EXIT_VERIFY, DeviceError

BOOTLOADER_OFFSET = 0x1000  # the ESP32 (classic) reads its bootloader here

HINTS = [
    (re.compile(r"Wrong boot mode|waiting for download|not in download mode", re.I),
     "the board is not in download mode: hold BOOT, press and release EN (RST), release BOOT, and retry",
     EXIT_CONNECT),
    (re.compile(r"No serial data received|Failed to connect|timed out waiting for packet header", re.I),
     "the chip does not answer: use a data USB cable (not a charge-only one), check TX/RX, "
     "or hold BOOT while it connects", EXIT_CONNECT),
    (re.compile(r"Permission denied", re.I),
     "no permission to open the port: add yourself to the dialout group "
     "(sudo usermod -aG dialout $USER) and log in again", EXIT_CONNECT),
    (re.compile(r"could not open port|No such file or directory|Connection refused|Could not open", re.I),
     "the port does not exist or another program holds it (close serial monitors)", EXIT_CONNECT),
    (re.compile(r"Failed to start stub flasher", re.I),
     "the flasher stub did not start: retry with --no-stub", EXIT_DEVICE),
    (re.compile(r"MD5 of file does not match|verify failed|Hash of data does not match", re.I),
     "what was written does not read back the same: retry; if it repeats the flash chip is faulty", EXIT_VERIFY),
]


class FlashError(DeviceError):
    pass


def is_network_url(port: str) -> bool:
    return port.startswith(("socket://", "rfc2217://"))


def esptool(port, *args, stub=None, timeout=600) -> str:
    """Run one esptool command; return its output or raise FlashError with a hint."""
    if stub is None:
        stub = not is_network_url(port)
    cmd = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", port]
    if port.startswith("socket://"):
        cmd += ["--before", "no-reset", "--after", "no-reset"]  # a socket carries no DTR/RTS
    if not stub:
        cmd.append("--no-stub")
    cmd += list(args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlashError(f"esptool {args[0]} took longer than {timeout}s on {port}", EXIT_CONNECT) from None
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        for pattern, hint, code in HINTS:
            if pattern.search(out):
                raise FlashError(f"esptool {args[0]} failed on {port}: {hint}", code)
        last = [ln for ln in out.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        raise FlashError(f"esptool {args[0]} failed on {port}: {last[0].strip()}", EXIT_DEVICE)
    return out


def read_mac(port, stub=None) -> str:
    out = esptool(port, "read-mac", stub=stub)
    m = re.search(r"MAC:\s*([0-9a-f]{2}(?::[0-9a-f]{2}){5})", out, re.I)
    if not m:
        raise FlashError(f"esptool did not report a MAC on {port}", EXIT_DEVICE)
    return m.group(1).lower()


def flash_size(port, stub=None) -> str:
    out = esptool(port, "flash-id", stub=stub)
    m = re.search(r"Detected flash size:\s*(\S+)", out)
    if not m:
        raise FlashError(f"esptool could not detect the flash size on {port}", EXIT_DEVICE)
    return m.group(1)


def already_flashed(port, firmware: Path, offset=BOOTLOADER_OFFSET, stub=None) -> bool:
    try:
        esptool(port, "verify-flash", hex(offset), str(firmware), stub=stub)
        return True
    except FlashError as e:
        if e.exit_code == EXIT_VERIFY or "verify" in str(e).lower() or "does not match" in str(e).lower():
            return False
        raise


def flash(port, firmware: Path, *, offset=BOOTLOADER_OFFSET, force=False, stub=None, progress=print) -> dict:
    """The whole job on one board. Returns what the registry records."""
    firmware = Path(firmware)
    data = firmware.read_bytes()
    if len(data) < 256 or data[0] != 0xE9:
        raise FlashError(f"{firmware} is not an ESP32 firmware image (no 0xE9 header)", 2)
    mac = read_mac(port, stub)
    progress(f"{port}: ESP32 {mac}")
    size = flash_size(port, stub)
    progress(f"{port}: flash {size}")
    digest = hashlib.sha256(data).hexdigest()
    result = {"mac": mac, "flash_size": size, "sha256": digest, "skipped": False}
    if not force and already_flashed(port, firmware, offset, stub):
        progress(f"{port}: firmware already there, skipped")
        result["skipped"] = True
        return result
    progress(f"{port}: erasing")
    if stub if stub is not None else not is_network_url(port):
        esptool(port, "erase-flash", stub=stub)
    else:  # the ROM loader has no erase-flash: erase the whole chip as one region
        esptool(port, "erase-region", "0", hex(size_bytes(size)), stub=stub)
    progress(f"{port}: writing {len(data)} bytes at {hex(offset)}")
    esptool(port, "write-flash", "-z", hex(offset), str(firmware), stub=stub)
    esptool(port, "verify-flash", hex(offset), str(firmware), stub=stub)
    progress(f"{port}: verified")
    if port.startswith("socket://"):
        esptool(port, "run", stub=stub)  # no reset line on a socket: ask the ROM to boot the app
    return result


def cached_firmware() -> Path:
    """The newest MicroPython ESP32 .bin in the firmware cache (put official builds there)."""
    from platformdirs import user_cache_dir

    cache = Path(user_cache_dir("boton-seguro")) / "firmware"
    bins = sorted(cache.glob("ESP32*.bin"), key=lambda p: p.stat().st_mtime)
    if not bins:
        raise FlashError(f"no firmware given and none cached in {cache}: download the official "
                         "MicroPython ESP32_GENERIC .bin there or pass --firmware", 2)
    return bins[-1]


def size_bytes(size: str) -> int:
    m = re.fullmatch(r"(\d+)(MB|KB)", size)
    if not m:
        raise FlashError(f"unknown flash size {size!r}", EXIT_DEVICE)
    return int(m.group(1)) * (1 << 20 if m.group(2) == "MB" else 1 << 10)
