"""MicroPython onto a board with esptool: detect, skip if already there, erase, write, verify.

One board, one connection: esptool's Python API (``esptool.cmds``) connects once (one
reset into the ROM loader), then the whole job runs on that connection and the board is
left running its app. Several boards are flashed in parallel, one thread each: every
``ESPLoader`` owns its port, and esptool's one global logger is routed per thread,
so each board keeps its own esptool output for the hints and its own progress (esptool_io). Known failures become hints a technician can act on (HINTS).

The virtual chip (``boton sim --flash-image``, host/boton/sim/rom_loader.py) emulates the
ESP32 ROM loader, not esptool's flasher stub (code uploaded to RAM cannot run there). It
says what it is the way a chip can: its eFuse BLK3 (user data, all zero on a chip from the
factory) holds VIRTUAL_CHIP_MARK in words 6-7. After connecting, ``flash()`` reads those
two words (a plain eFuse read, harmless on any ESP32) and on the virtual chip keeps to the
ROM loader; on a real chip it starts the stub (faster, and it erases the whole chip).
"""
import hashlib
import re
import struct
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import EXIT_CONNECT, EXIT_DEVICE, EXIT_USAGE, EXIT_VERIFY, PORT_PERMISSION_HINT, DeviceError
from .esptool_io import BoardLog, board, install_log_router, open_port
from .sim.rom_loader import EFUSE_BLK3, VIRTUAL_CHIP_MARK

BOOTLOADER_OFFSET = 0x1000  # the ESP32 (classic) reads its bootloader here

# The virtual chip's signature: eFuse BLK3 words 6-7 (EFUSE_BLK3_RDATA6/7_REG) read as
# VIRTUAL_CHIP_MARK. BLK3 is user data; ESP-IDF gives words 6-7 no meaning.
VIRTUAL_CHIP_MARK_REGS = (EFUSE_BLK3 + 6 * 4, EFUSE_BLK3 + 7 * 4)

HINTS = [
    (re.compile(r"Wrong boot mode|waiting for download|not in download mode", re.I),
     "the board is not in download mode: hold BOOT, press and release EN (RST), release BOOT, and retry",
     EXIT_CONNECT),
    (re.compile(r"Invalid head of packet", re.I),  # text, not SLIP: the app (its REPL) answers
     "something other than the ROM loader answers (the board's REPL?): the board is not in "
     "download mode: hold BOOT, press and release EN (RST), release BOOT, and retry; on the "
     "virtual device use the download URL `boton sim` prints", EXIT_CONNECT),
    (re.compile(r"No serial data received|Failed to connect|timed out waiting for packet header", re.I),
     "the chip does not answer: use a data USB cable (not a charge-only one), check TX/RX, "
     "or hold BOOT while it connects", EXIT_CONNECT),
    (re.compile(r"Permission denied", re.I), PORT_PERMISSION_HINT, EXIT_CONNECT),
    (re.compile(r"could not open port|No such file or directory|Connection refused|Could not open", re.I),
     "the port does not exist or another program holds it (close serial monitors)", EXIT_CONNECT),
    (re.compile(r"Failed to start stub flasher", re.I),
     "the flasher stub did not start: retry with --no-stub", EXIT_DEVICE),
    (re.compile(r"MD5 of file does not match|verify failed|Hash of data does not match|"
                r"Verification failed", re.I),
     "what was written does not read back the same: retry; if it repeats the flash chip is faulty", EXIT_VERIFY),
]


class FlashError(DeviceError):
    pass


# A MicroPython board answers a Ctrl-C at once, and one in her alert never light-sleeps
# (powerpolicy.may_light_sleep): no answer in this long, no alert of hers runs on the port.
REPL_PROBE_S = 2.0


def refuse_a_running_alert(port):
    """esptool's reset into the ROM loader stops the firmware, and the erase takes alert.json
    with it: where a MicroPython REPL answers, the Device session's own check refuses a
    button in her alert (it goes straight back to it). No REPL (a blank chip, other
    firmware, the ROM loader): nothing to stop, the flash goes on. A socket:// port has no
    reset lines: esptool cannot take what runs there into the ROM loader, so it is not asked."""
    from .device import Device

    if port.startswith("socket://"):
        return
    try:
        with Device(port, answer_s=REPL_PROBE_S):
            pass
    except DeviceError as e:
        if e.exit_code != EXIT_CONNECT:
            raise DeviceError(f"{e}; a flash that writes erases her alert with the chip", e.exit_code) from None


def is_network_url(port: str) -> bool:
    return port.startswith(("socket://", "rfc2217://"))


def hint_for(port: str, step: str, text: str) -> FlashError:
    """The FlashError for esptool's failure `text` (its error and what it logged)."""
    for pattern, hint, code in HINTS:
        if pattern.search(text):
            return FlashError(f"esptool {step} failed on {port}: {hint}", code)
    last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["no output"]
    return FlashError(f"esptool {step} failed on {port}: {last[0].strip()}", EXIT_DEVICE)


# ----------------------------------------------------------------------------- the connection
def _connect(port: str):
    from esptool.cmds import detect_chip

    connect_mode = "no-reset" if port.startswith("socket://") else "default-reset"  # a socket has no DTR/RTS
    esp = detect_chip(open_port(port), connect_mode=connect_mode, connect_attempts=3)
    if esp.CHIP_NAME != "ESP32":
        esp._port.close()
        raise FlashError(f"{port} is an {esp.CHIP_NAME}, not the ESP32 Botón Seguro runs on", EXIT_DEVICE)
    return esp


def is_virtual_chip(esp) -> bool:
    """True if the connected chip is the virtual one (eFuse BLK3 words 6-7, module doc)."""
    mark = b"".join(esp.read_reg(a).to_bytes(4, "little") for a in VIRTUAL_CHIP_MARK_REGS)
    return mark == VIRTUAL_CHIP_MARK


class Session:
    """One esptool connection to one board: esp (swapped for the stub or ROM loader as
    needed), its MAC, whether it is the virtual chip, and the board's esptool log."""

    def __init__(self, esp, mac, virtual, sink):
        self.esp, self.mac, self.virtual, self.sink = esp, mac, virtual, sink


@contextmanager
def session(port, on_progress=None):
    """Connect to the ESP32 on port and read its MAC; esptool's log is routed to this board,
    any esptool, serial or socket failure becomes one FlashError with a hint, and the port
    is closed however it ends."""
    install_log_router()
    sink = BoardLog(on_progress)
    board.log = sink
    s = None
    try:
        esp = _connect(port)
        sink.step = "read-mac"
        s = Session(esp, ":".join(f"{b:02x}" for b in esp.read_mac()), is_virtual_chip(esp), sink)
        yield s
    except DeviceError:
        raise
    except Exception as e:  # esptool's FatalError, serial and socket errors: one hint each
        raise hint_for(port, sink.step, f"{sink.text()}\n{type(e).__name__}: {e}") from None
    finally:
        board.log = None
        if s is not None:
            try:
                s.esp._port.close()
            except Exception:  # closing a port that failed must not hide the real error
                pass


def kb_per_s(nbytes: int, seconds: float) -> str:
    return f"{nbytes / max(seconds, 1e-6) / 1000:,.0f} kB/s"


def flash(port, firmware, *, offset=BOOTLOADER_OFFSET, force=False, stub=None, progress=print,
          on_progress=None, virtual_only=False, check=None, before_write=None,
          during_alert=False, keep_config=False, romfs=True) -> dict:
    """The whole job on one board, on one connection. Returns what the registry records
    plus timings. stub: None = the flasher stub on a real chip, the ROM loader on the
    virtual one; False = the ROM loader. virtual_only: refuse a chip that is not the
    virtual one before anything is erased (for the virtual firmware). firmware: a path,
    or the image itself as bytes. check(mac): called once the chip's MAC is read, before
    anything is written (the registry's pre-check: raise to refuse); before_write(mac):
    called right before anything is erased or written, not for a skip (so the registry
    says first what an interrupted write may leave: her config going, her test call void).
    during_alert: go on with a button in her alert (refuse_a_running_alert). keep_config:
    a new release for a button that holds her configuration: nothing is erased but the
    sectors the image is written to, and only if the image leaves her filesystem where the
    board has it (keeps_her_filesystem). romfs: the partition table of a MicroPython with
    ROMFS gets a romfs partition if it has none (image.with_romfs: `boton deploy` then runs
    the firmware's .mpy in place from it); False takes it out. With keep_config the board's own table decides
    (with_romfs_as_chosen), so her filesystem stays where it is."""
    if isinstance(firmware, (bytes, bytearray)):
        data, name = bytes(firmware), "the firmware"
    else:
        data, name = Path(firmware).read_bytes(), str(firmware)
    if len(data) < 256 or data[0] != 0xE9:
        raise FlashError(f"{name} is not an ESP32 firmware image (no 0xE9 header)", EXIT_USAGE)
    started = time.monotonic()
    if not during_alert:
        refuse_a_running_alert(port)
    with session(port, on_progress) as s:
        mac, virtual = s.mac, s.virtual
        progress(f"{port}: ESP32 {mac}" + (" (virtual chip: ROM loader, no flasher stub)" if virtual else ""))
        if virtual_only and not virtual:
            raise FlashError(f"{port} is a real ESP32 ({mac}): the virtual firmware does not boot "
                             "on it; give --firmware", EXIT_USAGE)
        if check:
            check(mac)
        s.esp = _with_loader(s.esp, stub, virtual)
        result = _flash_on(s.esp, port, data, offset, force, progress,
                           before_write and (lambda: before_write(mac)), keep_config, romfs)
        result.update(mac=mac, virtual=virtual)
    result["seconds"] = time.monotonic() - started
    return result


def _with_loader(esp, stub, virtual):
    from esptool.cmds import run_stub

    if stub is False or (stub is None and virtual):
        return esp
    board.log.step = "run-stub"
    return run_stub(esp)


def with_romfs_as_chosen(data: bytes, offset: int, romfs: bool, board_table: bytes | None = None,
                         flash_size: int | None = None, read=None, say=None) -> bytes:
    """The firmware .bin with a romfs partition in its table or without one, as `romfs`
    asks, if it fits the flash (else as it is, said through say()). Given the board's
    table (--keep-config), as the board has it, its own romfs row copied, so that the vfs
    the port registers after the last partition stays where her filesystem is; a board
    table that cannot be read: the layout under which read(offset, n) finds her LittleFS.
    Data that is not a .bin for 0x1000 with a table is left as it is (check_firmware's)."""
    from . import image as img

    if offset != BOOTLOADER_OFFSET:
        return data
    try:
        parts = img.firmware_partitions(data)
    except img.ImageError:
        return data  # a damaged table: keeps_her_filesystem and check_firmware say so
    if not parts:
        return data
    have = img.romfs_partition(parts)

    def variant(row):  # the table with `row` as its romfs partition (None: none)
        if row == have:
            return data
        base = img.without_romfs(parts)
        return img.firmware_with_table(data, base + (row,) if row else base)

    try:
        ours = have or img.romfs_partition(img.with_romfs(parts))
    except img.ImageError as e:
        ours, no_room = None, str(e)
    if ours and flash_size:
        try:
            img.layout_of_firmware(variant(ours), flash_size)
        except img.ImageError as e:
            ours, no_room = None, str(e)
    if board_table is not None:
        try:
            board_parts = img.decode_partition_table(board_table)
        except img.ImageError:
            board_parts = None
        if board_parts:
            return variant(img.romfs_partition(board_parts))
        # unreadable (a --keep-config flash cut short after the erase took 0x8000): where is she?
        for row in dict.fromkeys([ours, None] if romfs else [None, ours]) if read and flash_size else ():
            candidate = variant(row)
            try:
                layout = img.layout_of_firmware(candidate, flash_size)
            except img.ImageError:
                continue
            if littlefs_at(read, layout.vfs_offset) == (img.BLOCK_SIZE, layout.block_count):
                return candidate
        return variant(ours if romfs else None)
    if romfs and have is None and not img.supports_romfs(data):
        if say:
            say("no romfs partition added: this MicroPython has no ROMFS (vfs.rom_ioctl is not in it), so "
                "`boton deploy` will put the .mpy firmware in lib/ (a build with ROMFS, such as MicroPython's "
                "ESP32_GENERIC ROMFS variant, runs it in place with far less heap; the frozen image needs none)")
        return data
    if romfs and ours is None:
        if say:
            say(f"no romfs partition added ({no_room}): the table is written as the firmware has it, "
                "and `boton deploy` will put the .mpy firmware in lib/")
        return data
    return variant(ours if romfs else None)


def _flash_on(esp, port, data, offset, force, progress, before_write=None, keep_config=False,
              romfs=True) -> dict:
    from esptool.cmds import attach_flash, detect_flash_size, erase_flash, erase_region, write_flash

    sink = board.log
    sink.step = "flash-id"
    attach_flash(esp)
    size = detect_flash_size(esp)
    if size is None:
        raise FlashError(f"esptool could not detect the flash size on {port}", EXIT_DEVICE)
    esp.flash_set_parameters(size_bytes(size))  # the ROM assumes 2 MB until told
    progress(f"{port}: flash {size}")
    board_table = None
    if keep_config:
        from .image import PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE

        sink.step = "read-partition-table"
        board_table = esp.read_flash(PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE)
    data = with_romfs_as_chosen(data, offset, romfs, board_table, size_bytes(size), esp.read_flash,
                                lambda msg: progress(f"{port}: {msg}"))
    digest = hashlib.sha256(data).hexdigest()
    md5 = hashlib.md5(data).hexdigest()
    result = {"flash_size": size, "sha256": digest, "skipped": False, "bytes": 0, "write_seconds": 0.0}
    sink.step = "verify-flash"
    if not force and esp.flash_md5sum(offset, len(data)) == md5:
        progress(f"{port}: firmware already there, skipped")
        result["skipped"] = True
        _leave(esp, port, progress)
        return result
    if keep_config:
        vfs = keeps_her_filesystem(port, board_table, data, offset, size_bytes(size), read=esp.read_flash,
                                   progress=progress)
        progress(f"{port}: her filesystem stays as it is ({vfs.vfs_size // 1024} KB at {vfs.vfs_offset:#x}); "
                 "only the sectors the image covers are erased")
        result["kept_filesystem"] = (vfs.vfs_offset, vfs.vfs_size)
    if before_write:
        before_write()
    if not keep_config:
        progress(f"{port}: erasing {size}")
        sink.step = "erase"
        if esp.IS_STUB:
            erase_flash(esp)
        else:  # the ROM loader has no whole-chip erase: one region as big as the chip
            erase_region(esp, 0, size_bytes(size))
    progress(f"{port}: writing {len(data):,} bytes at {offset:#x}")
    sink.step = "write-flash"
    t = time.monotonic()
    write_flash(esp, [(offset, data)], compress=True)
    result["write_seconds"] = time.monotonic() - t
    result["bytes"] = len(data)
    progress(f"{port}: wrote {len(data):,} bytes in {result['write_seconds']:.1f} s "
             f"({kb_per_s(len(data), result['write_seconds'])})")
    sink.step = "verify-flash"
    if esp.flash_md5sum(offset, len(data)) != md5:
        raise FlashError(f"esptool verify failed on {port}: what was written does not read back the "
                         "same: retry; if it repeats the flash chip is faulty", EXIT_VERIFY)
    progress(f"{port}: verified")
    _leave(esp, port, progress)
    return result


def littlefs_at(read, offset):
    """(block size, block count) from the LittleFS superblock at `offset` (either block of
    its metadata pair: revision, name tag, "littlefs", struct tag, then version, block
    size, block count, little-endian), or None. read(offset, n): esptool's read_flash."""
    for block in (0, 4096):
        head = read(offset + block, 32)
        if head[8:16] == b"littlefs":
            return struct.unpack_from("<2I", head, 24)
    return None


def keeps_her_filesystem(port, board_table: bytes, data: bytes, offset: int, flash_size: int,
                         read=None, progress=print):
    """The board's filesystem Layout, if writing `data` at `offset` leaves it as it is: the
    new image's partition table puts the filesystem (MicroPython's `vfs`) at the same
    offset and size as the board's own table does, and the image ends before it. Else a
    FlashError before anything is written: a moved or resized filesystem no longer mounts
    (littlefs refuses a block count that differs), and MicroPython then stops at "the
    filesystem appears to be corrupted" or formats it, her configuration gone either way.
    A board table that cannot be read (a --keep-config flash cut short after the ROM
    erased the image's sectors, 0x8000 with them) is no proof of a blank chip: where the
    new image puts the filesystem, read(offset, n) looks for her LittleFS of that size,
    and writing the image then restores the table."""
    from . import image as img

    try:
        new = img.layout_of_firmware(data, flash_size)
    except img.ImageError as e:
        raise FlashError(f"{e}; nothing was written", EXIT_USAGE) from None
    try:
        parts = img.decode_partition_table(board_table)
        if not parts:
            raise img.ImageError("it is blank")
        board = img.layout_for(flash_size, parts)
    except img.ImageError as e:
        found = littlefs_at(read, new.vfs_offset) if read else None
        if found != (img.BLOCK_SIZE, new.block_count):
            raise FlashError(f"{port}: the board's partition table at {img.PARTITION_TABLE_OFFSET:#x} cannot be "
                             f"read ({e}), and no filesystem of the size the new image expects is at "
                             f"{new.vfs_offset:#x}: nothing was written. A new board (a blank chip) has nothing "
                             "to keep: flash it without --keep-config. A button that was provisioned may still "
                             "hold her configuration elsewhere: do not erase it", EXIT_DEVICE) from None
        progress(f"{port}: the board's partition table cannot be read ({e}), but her filesystem is where the "
                 f"new image puts it (LittleFS, {new.block_count} blocks at {new.vfs_offset:#x}): the image "
                 "brings the table back")
        board = new
    if (new.vfs_offset, new.vfs_size) != (board.vfs_offset, board.vfs_size):
        raise FlashError(f"{port}: the new image puts the filesystem at {new.vfs_offset:#x} "
                         f"({new.vfs_size // 1024} KB); the board has it at {board.vfs_offset:#x} "
                         f"({board.vfs_size // 1024} KB): her configuration would not survive it. Nothing "
                         "was written. Take the button back (return, wipe), flash it without --keep-config "
                         "and provision it again", EXIT_USAGE)
    if offset + len(data) > board.vfs_offset:
        raise FlashError(f"{port}: the image ({len(data):,} bytes at {offset:#x}) reaches into her filesystem "
                         f"at {board.vfs_offset:#x}: nothing was written", EXIT_USAGE)
    return board


def _leave(esp, port, progress):
    """Leave the board running its app: over a socket (no reset line) the ROM loader is
    asked to run it; elsewhere EN is pulsed through RTS, as esptool's --after hard-reset does."""
    board.log.step = "reset"
    if not port.startswith("socket://"):
        esp.hard_reset()
    elif not esp.IS_STUB:
        esp.run()
    else:  # esptool's ESP32 stub cannot jump to the app, and a socket cannot reset it
        progress(f"{port}: press EN (RST) to boot it (no reset line over a socket)")


def cached_firmware() -> Path:
    """The newest MicroPython ESP32 .bin in the firmware cache (put official builds there)."""
    from platformdirs import user_cache_dir

    cache = Path(user_cache_dir("boton-seguro")) / "firmware"
    bins = sorted(cache.glob("ESP32*.bin"), key=lambda p: p.stat().st_mtime)
    if not bins:
        raise FlashError(f"no firmware given and none cached in {cache}: download the official "
                         "MicroPython ESP32_GENERIC .bin there or pass --firmware", EXIT_USAGE)
    return bins[-1]


def size_bytes(size: str) -> int:
    m = re.fullmatch(r"(\d+)(MB|KB)", size)
    if not m:
        raise FlashError(f"unknown flash size {size!r}", EXIT_DEVICE)
    return int(m.group(1)) * (1 << 20 if m.group(2) == "MB" else 1 << 10)
