"""Factory images: MicroPython plus a LittleFS holding the firmware and one woman's
configuration, so a device is flashed and provisioned with one esptool write.

Flash layout of an ESP32 running MicroPython (the firmware .bin is written at 0x1000 and
carries the second-stage bootloader, the partition table at 0x8000 and the app at 0x10000):

    0x000000  (unused on ESP32, 0xFF in the image)
    0x001000  bootloader            \
    0x008000  partition table        > MicroPython's firmware .bin
    0x009000  nvs, phy_init          |
    0x010000  factory (the app)     /
    vfs       LittleFS v2, 4096-byte blocks, up to the end of the flash

Where `vfs` is (MicroPython >= 1.26, PR #17337): if the partition table has a data
partition labelled "vfs", that one; otherwise the port registers one at boot, from the end
of the last partition in the table to the end of the flash chip it detects. The generic
ESP32 build's table (partitions-4MiBplus.csv) ends at 0x200000, so on a 4 MiB chip `vfs`
is 0x200000 + 0x200000 = 512 blocks, on 8 MiB 1536 blocks, on 16 MiB 3584 blocks; the
2 MiB table (partitions-2MiB.csv) ends at 0x170000: 144 blocks. With a real firmware .bin
the partition table is read from the .bin itself, so a custom build is handled the same way.

The board mounts it in _boot.py with `vfs.mount(bdev, "/")`, i.e. `VfsLfs2(bdev)` with
its defaults (readsize=32, progsize=32, lookahead=32; littlefs then uses cache_size
4*max(read, prog) = 128, block_cycles 100, name_max 255). littlefs refuses a superblock
whose block count differs from the partition's (EINVAL), and _boot.py then falls into
inisetup's "filesystem appears to be corrupted" loop: the block count must be exact.
LFS_CONFIG below formats byte-for-byte what MicroPython's own VfsLfs2.mkfs writes.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import re
import struct
from dataclasses import dataclass, field

from littlefs import LittleFS, LittleFSError, UserContext

from .errors import EXIT_USAGE, DeviceError
from .release import firmware_files
from .rules import CONFIG_PATH, config_bytes

CHIP = "esp32"
BLOCK_SIZE = 4096                 # flash sector; esp32.Partition's ioctl(5)
BOOTLOADER_OFFSET = 0x1000        # ESP32 (0x0 on S3/C3; not our boards)
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_SIZE = 0xC00      # what ESP-IDF reads (95 entries + MD5)
APP_OFFSET = 0x10000
IMAGE_OFFSET = 0x0                # the merged image is written from the start of the flash
MiB = 1 << 20

# MicroPython's VfsLfs2 defaults (extmod/vfs_lfs.c, vfs_lfsx.c): readsize/progsize/lookahead
# 32 bytes; cache 4*max(read, prog); block_cycles 100; name/file/attr max left to littlefs
# (255 / 2^31-1 / 1022). disk_version 0 = littlefs 2.11's 2.1, as MicroPython's lib/littlefs.
LFS_CONFIG = dict(read_size=32, prog_size=32, lookahead_size=32, cache_size=128,
                  block_cycles=100, name_max=255, file_max=0, attr_max=0, disk_version=0)

PLACEHOLDER_MARK = (b"BOTON SEGURO PLACEHOLDER FIRMWARE - NOT MICROPYTHON - FOR TESTS ONLY. "
                    b"Build the image with --firmware <MicroPython ESP32 .bin> to flash a board.\n")


class ImageError(DeviceError):
    def __init__(self, message):
        super().__init__(message, EXIT_USAGE)


# ----------------------------------------------------------------------------- partitions
TYPES = {"app": 0x00, "data": 0x01}
SUBTYPES = {"factory": 0x00, "nvs": 0x02, "phy": 0x01, "fat": 0x81, "spiffs": 0x82, "littlefs": 0x83,
            "ota": 0x00, "romfs": 0x8F}
ENTRY = struct.Struct("<HBBII16sI")
ENTRY_MAGIC = 0x50AA
MD5_MAGIC = 0xEBEB


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def end(self):
        return self.offset + self.size


def _p(label, kind, sub, offset, size):
    return Partition(label, TYPES[kind], SUBTYPES[sub], offset, size)


# MicroPython >= 1.26 ports/esp32 tables: no `vfs` row; the port adds it at boot.
TABLE_4MIBPLUS = (  # partitions-4MiBplus.csv: ESP32_GENERIC, for 4 MiB or more
    _p("nvs", "data", "nvs", 0x9000, 0x6000),
    _p("phy_init", "data", "phy", 0xF000, 0x1000),
    _p("factory", "app", "factory", 0x10000, 0x1F0000),
)
TABLE_2MIB = (  # partitions-2MiB.csv
    _p("nvs", "data", "nvs", 0x9000, 0x6000),
    _p("phy_init", "data", "phy", 0xF000, 0x1000),
    _p("factory", "app", "factory", 0x10000, 0x160000),
)
# A ROMFS partition (MicroPython >= 1.25 on the ESP32, in a build with ROMFS: vfs.rom_ioctl
# finds the data partition labelled "romfs", of any subtype; 0x8f is what MicroPython's own
# ROMFS tables use). The port mounts it at /rom at start-up and puts /rom and /rom/lib on
# sys.path, and .mpy files there run in place from the mapped flash: `boton deploy` puts the
# firmware's lib/ there (the worst alert then needs 66 KB of heap, not the 125 KB of .mpy
# files in LittleFS). 192 KB: the release's lib/ is about 90 KB as an image, room to double.
# A table without such a row gets one from `boton flash` (if the build has ROMFS) after the
# last partition, which moves the vfs that the port registers from there (with_romfs).
ROMFS_LABEL = "romfs"
# Only a build with ROMFS has vfs.rom_ioctl (MicroPython 1.25's release notes list no ESP32
# board among those that enable it; its ESP32_GENERIC board has a ROMFS variant, with its
# own table). A build names it among its interned names, which are plain text in the app.
ROMFS_SUPPORT_MARK = b"rom_ioctl"
ROMFS_SIZE = 0x30000
FLASH_SIZES = {"2MB": 2 * MiB, "4MB": 4 * MiB, "8MB": 8 * MiB, "16MB": 16 * MiB}


def parse_flash_size(value) -> int:
    """4194304, "4MB", "4MiB", "4M" -> bytes; only the sizes ESP32 modules come with."""
    if isinstance(value, int):
        size = value
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(M|MB|MiB)?\s*", str(value), re.I)
        if not m:
            raise ImageError(f"flash size {value!r} is not like 4MB")
        size = int(m.group(1)) * (MiB if m.group(2) else 1)
    if size not in FLASH_SIZES.values():
        raise ImageError(f"flash size {value!r} is not one of {', '.join(FLASH_SIZES)}")
    return size


def flash_size_name(size: int) -> str:
    return {v: k for k, v in FLASH_SIZES.items()}[size]


def default_partitions(flash_size: int):
    """The table of MicroPython's generic ESP32 build for this flash size (>= 1.26)."""
    return TABLE_2MIB if parse_flash_size(flash_size) < 4 * MiB else TABLE_4MIBPLUS


def supports_romfs(firmware_bin: bytes) -> bool:
    """Whether this MicroPython build can reach a romfs partition (vfs.rom_ioctl)."""
    return ROMFS_SUPPORT_MARK in firmware_bin


def romfs_partition(parts):
    """The table's ROMFS partition (as vfs.rom_ioctl finds it), or None."""
    return next((p for p in parts or () if p.label == ROMFS_LABEL and p.type == TYPES["data"]), None)


def with_romfs(parts, size=ROMFS_SIZE):
    """`parts` with a ROMFS partition right after the last one (as it is if it has one).
    A table with its own `vfs` row (MicroPython <= 1.25's, to the end of the flash) has no
    room after it: ImageError."""
    if romfs_partition(parts):
        return tuple(parts)
    if any(p.label == "vfs" and p.type == TYPES["data"] for p in parts):
        raise ImageError("the firmware's partition table has its own vfs partition: no room after it")
    end = max(p.end for p in parts)
    start = -(-end // 0x10000) * 0x10000  # 64 KB aligned: the flash cache maps 64 KB pages
    return tuple(parts) + (_p(ROMFS_LABEL, "data", "romfs", start, size),)


def without_romfs(parts):
    return tuple(p for p in parts if p is not romfs_partition(parts))


def firmware_with_table(firmware_bin: bytes, parts) -> bytes:
    """The firmware .bin (written at 0x1000) with `parts` as its partition table."""
    rel = PARTITION_TABLE_OFFSET - BOOTLOADER_OFFSET
    out = bytearray(firmware_bin)
    out[rel:rel + PARTITION_TABLE_SIZE] = encode_partition_table(parts)
    return bytes(out)


def firmware_partitions(firmware_bin: bytes):
    """The partition table inside a firmware .bin (written at 0x1000), or None."""
    rel = PARTITION_TABLE_OFFSET - BOOTLOADER_OFFSET
    return decode_partition_table(firmware_bin[rel:rel + PARTITION_TABLE_SIZE])


def encode_partition_table(parts) -> bytes:
    """ESP-IDF binary partition table (gen_esp32part.py layout): 32-byte entries, then an
    MD5 entry over them, 0xFF to 0xC00 bytes."""
    out = bytearray()
    for p in parts:
        label = p.label.encode()
        if len(label) > 16:
            raise ImageError(f"partition label {p.label!r} is longer than 16 bytes")
        out += ENTRY.pack(ENTRY_MAGIC, p.type, p.subtype, p.offset, p.size, label.ljust(16, b"\0"), p.flags)
    out += struct.pack("<H", MD5_MAGIC) + b"\xff" * 14 + hashlib.md5(out).digest()
    return bytes(out.ljust(PARTITION_TABLE_SIZE, b"\xff"))


def decode_partition_table(data: bytes):
    """Partitions of a binary table, or None if `data` does not start with one. The MD5
    entry, when present, must match."""
    parts = []
    for pos in range(0, min(len(data), PARTITION_TABLE_SIZE) - ENTRY.size + 1, ENTRY.size):
        magic, kind, sub, offset, size, label, flags = ENTRY.unpack_from(data, pos)
        if magic == ENTRY_MAGIC:
            parts.append(Partition(label.rstrip(b"\0").decode(errors="replace"), kind, sub, offset, size, flags))
        elif magic == MD5_MAGIC:
            if hashlib.md5(data[:pos]).digest() != data[pos + 16:pos + 32]:
                raise ImageError("the partition table's MD5 does not match: it is damaged")
            break
        else:
            break
    return parts or None


# ----------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    flash_size: int
    partitions: tuple = field(repr=False)
    vfs_offset: int
    vfs_size: int
    vfs_source: str               # "table" (a vfs row) or "auto" (end of last partition)

    @property
    def romfs(self):
        """The ROMFS partition (vfs.rom_ioctl's segment 0), or None."""
        return romfs_partition(self.partitions)

    @property
    def block_count(self):
        return self.vfs_size // BLOCK_SIZE

    def as_dict(self):
        return {"flash_size": self.flash_size, "vfs_offset": self.vfs_offset, "vfs_size": self.vfs_size,
                "block_size": BLOCK_SIZE, "block_count": self.block_count, "vfs_source": self.vfs_source,
                "partitions": [{"label": p.label, "type": p.type, "subtype": p.subtype,
                                "offset": p.offset, "size": p.size} for p in self.partitions]}


def layout_for(flash_size, partitions=None) -> Layout:
    """Where MicroPython will find its filesystem on a chip of `flash_size` whose
    partition table is `partitions` (default: the generic build's)."""
    flash_size = parse_flash_size(flash_size)
    parts = tuple(partitions) if partitions else default_partitions(flash_size)
    end = max(p.end for p in parts)
    if end > flash_size:
        raise ImageError(f"the partition table needs {end:#x} bytes of flash; the chip has {flash_size:#x}")
    if any(p.label == "ffat" for p in parts):
        raise ImageError("this firmware uses an 'ffat' (FAT, TinyUF2) partition, not LittleFS")
    vfs = [p for p in parts if p.label == "vfs" and p.type == TYPES["data"]]
    if vfs:
        offset, size, source = vfs[0].offset, vfs[0].size, "table"
    else:
        offset, size, source = end, flash_size - end, "auto"
    if offset % BLOCK_SIZE or size % BLOCK_SIZE:
        raise ImageError(f"vfs region {offset:#x}+{size:#x} is not whole 4 KB sectors")
    if size < 2 * BLOCK_SIZE:  # littlefs needs at least its superblock pair
        raise ImageError(f"no room for a filesystem on {flash_size_name(flash_size)} after {end:#x}")
    rom = romfs_partition(parts)
    if rom and (rom.offset < offset + size and offset < rom.end):
        raise ImageError(f"the romfs partition ({rom.offset:#x}+{rom.size:#x}) overlaps the filesystem")
    return Layout(flash_size, parts, offset, size, source)


def layout_of_firmware(firmware_bin: bytes, flash_size) -> Layout:
    """Layout from the partition table inside a MicroPython firmware .bin (written at 0x1000)."""
    check_firmware(firmware_bin)
    parts = firmware_partitions(firmware_bin)
    if not parts:
        raise ImageError("no partition table at 0x8000 in the firmware: use the full MicroPython .bin "
                         "that is written at 0x1000 (bootloader + table + app), not the app alone")
    return layout_for(flash_size, parts)


def layout_of_image(image: bytes, flash_size=None) -> Layout:
    """Layout of a merged image (written at 0x0): its own partition table at 0x8000."""
    if flash_size is None:
        flash_size = len(image)
    parts = decode_partition_table(image[PARTITION_TABLE_OFFSET:PARTITION_TABLE_OFFSET + PARTITION_TABLE_SIZE])
    return layout_for(flash_size, parts)


# ----------------------------------------------------------------------------- firmware
def is_placeholder(firmware_bin: bytes) -> bool:
    return firmware_bin.startswith(PLACEHOLDER_MARK)


def placeholder_firmware(flash_size=4 * MiB) -> bytes:
    """A stand-in for MicroPython's firmware .bin, for tests only: no network here to fetch
    a real build. It has the real partition table of the generic build (so the layout
    logic runs as with a real .bin) but no bootloader or app: a board flashed with it will
    not boot. Its bootloader and app slots start with PLACEHOLDER_MARK, never 0xE9."""
    body = bytearray(b"\xff" * (APP_OFFSET - BOOTLOADER_OFFSET + BLOCK_SIZE))
    body[:len(PLACEHOLDER_MARK)] = PLACEHOLDER_MARK
    rel = PARTITION_TABLE_OFFSET - BOOTLOADER_OFFSET
    body[rel:rel + PARTITION_TABLE_SIZE] = encode_partition_table(default_partitions(flash_size))
    app = APP_OFFSET - BOOTLOADER_OFFSET
    body[app:app + len(PLACEHOLDER_MARK)] = PLACEHOLDER_MARK
    return bytes(body)


VIRTUAL_MARK = (b"BOTON SEGURO VIRTUAL MICROPYTHON - BOOTS ONLY ON THE VIRTUAL DEVICE (boton sim). "
                b"With ROMFS (vfs.rom_ioctl). ")


def virtual_firmware(flash_size=4 * MiB) -> bytes:
    """The firmware .bin for the virtual device: the placeholder's layout with an ESP32
    image header (0xE9, no segments) in the bootloader and app slots, so the virtual
    chip's ROM sees an app to boot (the unix port then stands in for it). A real ESP32's
    ROM rejects it, so `boton flash` offers it on virtual (socket://) ports only."""
    body = bytearray(placeholder_firmware(flash_size))
    header = bytes([0xE9, 0, 2, 0x20]) + b"\x00" * 20  # magic, 0 segments, DIO, 4MB/40MHz
    for rel in (0, APP_OFFSET - BOOTLOADER_OFFSET):
        body[rel:rel + len(PLACEHOLDER_MARK)] = b"\xff" * len(PLACEHOLDER_MARK)
        body[rel:rel + len(header)] = header
        body[rel + len(header):rel + len(header) + len(VIRTUAL_MARK)] = VIRTUAL_MARK
    return bytes(body)


def check_firmware(firmware_bin: bytes):
    if is_placeholder(firmware_bin):
        return
    if len(firmware_bin) < APP_OFFSET - BOOTLOADER_OFFSET or firmware_bin[0] != 0xE9:
        raise ImageError("not an ESP32 firmware image (no 0xE9 bootloader header at its start): "
                         "give MicroPython's ESP32 .bin, the one written at 0x1000")


# ----------------------------------------------------------------------------- filesystem
def _clean_path(path: str) -> str:
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ImageError(f"bad device path {path!r}")
    return "/".join(parts)


def _lfs(buffer: bytearray, block_count: int) -> LittleFS:
    return LittleFS(UserContext(buffer=buffer), mount=False, block_size=BLOCK_SIZE,
                    block_count=block_count, **LFS_CONFIG)


def build_filesystem(files, flash_size, *, layout: Layout | None = None) -> bytes:
    """The `vfs` partition's bytes (exactly its size): a LittleFS holding `files`
    ((device path, bytes) pairs), in the geometry MicroPython mounts on this flash size."""
    layout = layout or layout_for(flash_size)
    entries = {}
    for path, data in files:
        p = _clean_path(path)
        if p in entries:
            raise ImageError(f"{p} is given twice")
        entries[p] = bytes(data)
    buffer = bytearray(b"\xff" * layout.vfs_size)
    fs = _lfs(buffer, layout.block_count)
    try:
        fs.format()
        fs.mount()
        made = set()
        for p in sorted(entries):
            parts = p.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in made:
                    if d in entries:
                        raise ImageError(f"{d} is both a file and a directory")
                    fs.mkdir(d)
                    made.add(d)
            with fs.open(p, "wb") as f:
                f.write(entries[p])
        fs.unmount()
    except LittleFSError as e:
        if e.code == LittleFSError.Error.LFS_ERR_NOSPC:
            total = sum(map(len, entries.values()))
            raise ImageError(f"{total} bytes of files do not fit in the {layout.vfs_size // 1024} KB "
                             f"filesystem of a {flash_size_name(layout.flash_size)} flash") from None
        raise
    return bytes(buffer)


def read_filesystem(fs_bytes: bytes, block_count: int | None = None) -> dict:
    """{device path: bytes} of every file in a LittleFS region (littlefs-python)."""
    block_count = block_count or len(fs_bytes) // BLOCK_SIZE
    fs = _lfs(bytearray(fs_bytes), block_count)
    fs.mount()
    out = {}
    for root, _dirs, names in fs.walk("/"):
        for name in names:
            path = (root.rstrip("/") + "/" + name).lstrip("/")
            with fs.open(path, "rb") as f:
                out[path] = f.read()
    fs.unmount()
    return out


def filesystem_usage(fs_bytes: bytes, block_count: int | None = None) -> int:
    """Blocks in use (littlefs' own count)."""
    fs = _lfs(bytearray(fs_bytes), block_count or len(fs_bytes) // BLOCK_SIZE)
    fs.mount()
    try:
        return fs.used_block_count
    finally:
        fs.unmount()


# ----------------------------------------------------------------------------- image
def device_files(board: str, config: dict, frozen=False):
    """Everything a provisioned device holds: the release for `board` and her config, laid
    out as `boton deploy` leaves them (frozen=True: for a firmware .bin with this release
    frozen in, so no lib/)."""
    return firmware_files(board, frozen=frozen) + [(CONFIG_PATH, config_bytes(config))]


def merge(parts) -> bytes:
    """esptool merge-bin (raw, from 0x0, flash parameters kept) of (offset, bytes) pairs."""
    from esptool.cmds import merge_bin

    ordered = sorted(parts)
    for (a, da), (b, _) in zip(ordered, ordered[1:]):
        if a + len(da) > b:
            raise ImageError(f"the data at {a:#x} ({len(da)} bytes) runs into {b:#x}")
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
        return merge_bin(ordered, CHIP, output=None, target_offset=IMAGE_OFFSET)


def build_image(firmware_bin: bytes | None, files, flash_size, *, layout: Layout | None = None) -> bytes:
    """The factory image, written at 0x0: `firmware_bin` at 0x1000 and a LittleFS of
    `files` in the vfs partition. firmware_bin=None puts placeholder_firmware() there
    (tests only: the result will not boot)."""
    flash_size = parse_flash_size(flash_size)
    if firmware_bin is None:
        firmware_bin = placeholder_firmware(flash_size)
    layout = layout or layout_of_firmware(firmware_bin, flash_size)
    if BOOTLOADER_OFFSET + len(firmware_bin) > layout.vfs_offset:
        raise ImageError(f"the firmware ({len(firmware_bin)} bytes from {BOOTLOADER_OFFSET:#x}) runs into "
                         f"the filesystem at {layout.vfs_offset:#x}")
    fs = build_filesystem(files, flash_size, layout=layout)
    return merge([(BOOTLOADER_OFFSET, firmware_bin), (layout.vfs_offset, fs)])


def extract_filesystem(image: bytes, flash_size=None) -> bytes:
    """The vfs partition's bytes out of a merged image (or a whole-flash dump)."""
    layout = layout_of_image(image, flash_size if flash_size is not None else len(image))
    fs = image[layout.vfs_offset - IMAGE_OFFSET:layout.vfs_offset - IMAGE_OFFSET + layout.vfs_size]
    if len(fs) != layout.vfs_size:
        raise ImageError(f"the image ends before the end of its filesystem "
                         f"({layout.vfs_offset:#x}+{layout.vfs_size:#x})")
    return fs


def _file_table(path) -> bytes:
    """The partition table's bytes of a whole-flash file."""
    with open(path, "rb") as f:
        f.seek(PARTITION_TABLE_OFFSET)
        return f.read(PARTITION_TABLE_SIZE)


def flash_image_spec(path) -> str:
    """'PATH@OFFSET+SIZE' of the vfs region of a whole-flash file (a merged image, or the
    virtual device's flash after an esptool write): what lfs_blockdev.mount_from_env() and
    the rig's BOTON_FLASH_IMAGE take. The file's length is the flash size."""
    from pathlib import Path

    p = Path(path)
    layout = layout_for(p.stat().st_size - IMAGE_OFFSET, decode_partition_table(_file_table(p)))
    return f"{p}@{layout.vfs_offset:#x}+{layout.vfs_size:#x}"


def romfs_image_spec(path) -> str | None:
    """'PATH@OFFSET+SIZE' of the romfs partition of a whole-flash file, or None."""
    from pathlib import Path

    p = Path(path)
    try:
        rom = romfs_partition(decode_partition_table(_file_table(p)))
    except ImageError:
        return None
    if rom is None or rom.end > p.stat().st_size:
        return None
    return f"{p}@{rom.offset:#x}+{rom.size:#x}"
