# Runs ON MICROPYTHON (unix port), never CPython: a region of a flash image file as a
# block device, so MicroPython's own VfsLfs2 reads (and writes) the filesystem that
# `boton image` puts in the `vfs` partition, exactly as a board's firmware would.
#
# The ESP32 port mounts its `vfs` partition through esp32.Partition, which speaks the
# extended block device protocol: readblocks(n, buf, off), writeblocks(n, buf, off)
# without an implicit erase, ioctl(6, n) to erase a block, ioctl(4) the block count,
# ioctl(5) the block size (4096, the flash sector). FlashRegion does the same over a
# file; it also behaves like NOR flash (a write can only clear bits, an erase sets a
# whole block to 0xFF), so a littlefs that forgot an erase fails here as on the chip.
#
#   import lfs_blockdev
#   fs = lfs_blockdev.mount_image("flash.bin", 0x200000, 0x200000)   # -> /flash, cwd
#   exec(open("boot.py").read())
#
# The virtual device boots from an image (instead of a flash folder) named by
# BOTON_FLASH_IMAGE="PATH@OFFSET+SIZE" (offset and size in bytes, decimal or 0x hex): its
# flashbdev stand-in makes the FlashRegion, and _boot.py mounts it at "/" as on the chip.
# mount_from_env() mounts the same at /flash, for tools beside the host's own "/".
import os
import vfs

BLOCK_SIZE = 4096           # SPI flash sector; what esp32.Partition reports to ioctl(5)
MOUNT_POINT = "/flash"

IOCTL_INIT, IOCTL_DEINIT, IOCTL_SYNC = 1, 2, 3
# esp32.Partition erases and writes in C without touching MicroPython's heap; this stand-in
# works through two small buffers made once, so that at the ESP32's 56 KB heap it does not
# take the 4 KB blocks (per erase, per write) that the firmware never pays on the chip.
CHUNK = 256
ERASED = b"\xff" * CHUNK
IOCTL_BLOCK_COUNT, IOCTL_BLOCK_SIZE, IOCTL_BLOCK_ERASE = 4, 5, 6


class FlashRegion:
    """`size` bytes of the file `path` from byte `offset`, as a block device.

    block_count can be given to lie about the region's size (a test of what a board
    with another partition size would see); it defaults to size // block_size.
    """

    def __init__(self, path, offset=0, size=None, block_size=BLOCK_SIZE,
                 block_count=None, readonly=False, nor=True):
        self.f = open(path, "rb" if readonly else "r+b")
        if size is None:
            size = self.f.seek(0, 2) - offset
        if offset % block_size or size % block_size:
            raise ValueError("region must be whole blocks")
        self.offset = offset
        self.size = size
        self.block_size = block_size
        self.block_count = size // block_size if block_count is None else block_count
        self.readonly = readonly
        self.nor = nor
        self.worn = ()  # block numbers whose erase fails: a worn-out sector (tests)
        self.reads = self.writes = self.erases = 0
        self._old = bytearray(CHUNK)
        self._new = bytearray(CHUNK)

    def _seek(self, block_num, off):
        pos = block_num * self.block_size + off
        if block_num < 0 or pos < 0 or block_num >= self.block_count or pos > self.size:
            raise OSError(5)  # EIO: outside the partition
        self.f.seek(self.offset + pos)
        return pos

    def readblocks(self, block_num, buf, offset=0):
        pos = self._seek(block_num, offset)
        n = len(buf)
        if pos + n > self.size:
            raise OSError(5)
        got = self.f.readinto(buf)
        if got is None or got < n:  # past the end of a short file reads as erased flash
            got = got or 0
            for i in range(got, n):
                buf[i] = 0xFF
        self.reads += 1

    def writeblocks(self, block_num, buf, offset=None):
        if self.readonly:
            raise OSError(30)  # EROFS
        if offset is None:
            # Simple protocol: whole blocks, erased first (FAT-style callers).
            for i in range(len(buf) // self.block_size):
                self.ioctl(IOCTL_BLOCK_ERASE, block_num + i)
            offset = 0
        pos = self._seek(block_num, offset)
        n = len(buf)
        if pos + n > self.size:
            raise OSError(5)
        if not self.nor:
            self.f.write(buf)
        else:
            self._nor_write(pos, buf)
        self.writes += 1

    def _nor_write(self, pos, buf):
        # NOR flash: a write can only clear bits (new = old & data), chunk by chunk. No
        # object is made per chunk (stream write(buf, off, len), not slices): the rig's
        # garbage would land in the firmware's share of the 56 KB heap, where the chip's
        # C block device makes none.
        old, new, n, done = self._old, self._new, len(buf), 0
        f, base = self.f, self.offset + pos
        while done < n:
            k = n - done
            if k > CHUNK:
                k = CHUNK
            f.seek(base + done)
            i = f.readinto(old) or 0  # reads up to CHUNK: only the first k count
            while i < k:  # (while, not range: a range is an object)
                old[i] = 0xFF
                i += 1
            f.seek(base + done)
            if k == CHUNK and old == ERASED:
                f.write(buf, done, k)
            else:
                i = 0
                while i < k:
                    new[i] = old[i] & buf[done + i]
                    i += 1
                f.write(new, 0, k)
            done += k

    def ioctl(self, op, arg):
        if op == IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == IOCTL_BLOCK_ERASE:
            if self.readonly or arg in self.worn:
                # as esp32.Partition: an erase the flash refuses raises (check_esp_err)
                raise OSError(30 if self.readonly else 5)
            self._seek(arg, 0)
            for _ in range(self.block_size // CHUNK):
                self.f.write(ERASED)
            self.erases += 1
            return 0
        if op == IOCTL_SYNC:
            if not self.readonly:
                self.f.flush()
            return 0
        if op in (IOCTL_INIT, IOCTL_DEINIT):
            return 0
        return None

    def close(self):
        self.f.close()


def mount_image(path, offset, size, mountpoint=MOUNT_POINT, chdir=True, readonly=False,
                block_count=None):
    """Mount the LittleFS in [offset, offset+size) of the image file at `mountpoint`
    with VfsLfs2's defaults (as the ESP32 port's _boot.py does), and make it the
    current directory, so '' and 'lib' on sys.path are the device's flash.

    Raises OSError if MicroPython cannot mount it (no filesystem there, or one made for
    another block size or block count: on a board that is "filesystem appears to be
    corrupted")."""
    bdev = FlashRegion(path, offset, size, readonly=readonly, block_count=block_count)
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:
        bdev.close()
        raise
    vfs.mount(fs, mountpoint, readonly=readonly)
    if chdir:
        os.chdir(mountpoint)
    return fs


def parse_spec(spec):
    """'PATH@OFFSET+SIZE' -> (path, offset, size); numbers decimal or 0x hex."""
    at = spec.rfind("@")
    if at < 0:
        raise ValueError("flash image spec must be PATH@OFFSET+SIZE")
    region = spec[at + 1:].split("+")
    if len(region) != 2:
        raise ValueError("flash image spec must be PATH@OFFSET+SIZE")
    return spec[:at], int(region[0], 0), int(region[1], 0)


def mount_from_env(var="BOTON_FLASH_IMAGE", mountpoint=MOUNT_POINT):
    """Mount the image named by the environment (if any) and chdir into it; None if unset."""
    spec = os.getenv(var)
    if not spec:
        return None
    path, offset, size = parse_spec(spec)
    return mount_image(path, offset, size, mountpoint)


def walk(top=""):
    """(path, size) of every file under `top` of the current filesystem, depth first."""
    out = []
    for name, kind, _, size in os.ilistdir(top or "."):
        p = top + "/" + name if top else name
        if kind == 0x4000:
            out.extend(walk(p))
        else:
            out.append((p, size))
    return out
