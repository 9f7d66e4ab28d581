# Runs ON MICROPYTHON (unix port), never CPython: the virtual chip's ROMFS partition, the
# flash's "romfs" data partition that MicroPython (>= 1.25) on the ESP32 reaches through
# vfs.rom_ioctl, mounts at /rom at start-up and puts on sys.path ("/rom", "/rom/lib").
#
# BOTON_ROMFS="PATH@OFFSET+SIZE" names it in the flash image (image.romfs_image_spec);
# unset: the flash has no such partition, and board_repl does not load this module.
# On the chip the partition is memory-mapped flash, outside the heap, and .mpy files there
# run in place. Here `mapped` is a copy of it in one bytearray made before anything else
# (the rig starts the interpreter larger by its size: rig._started_heap), so the firmware
# finds the heap a chip leaves it. Writes go to the flash file and to that copy, with NOR
# rules (an erase sets 0xFF, a write only clears bits), as lfs_blockdev's FlashRegion.
#
# rom_ioctl as MicroPython's unix and stm32 ports answer it (segment 0 a memoryview,
# 3 = erase `length` bytes from the start, 4 = write at an offset, 5 = done). The ESP32
# port answers 2 with an esp32.Partition (mapped, with ioctl/writeblocks) instead; boton's
# deploy speaks both, as `mpremote romfs deploy` does.
import os

HEADER = b"\xd2\xcd\x31"
EINVAL = 22

region = None
mapped = None


def _open():
    global region, mapped
    spec = os.getenv("BOTON_ROMFS")
    if not spec:
        return
    import lfs_blockdev

    region = lfs_blockdev.FlashRegion(*lfs_blockdev.parse_spec(spec))
    mapped = bytearray(region.size)
    region.f.seek(region.offset)
    region.f.readinto(mapped)


def rom_ioctl(op, *args):
    if op == 1:
        return 1 if region else 0
    if not region or not args or args[0] != 0:
        return -EINVAL
    if op == 2:
        return memoryview(mapped)
    if op == 3:  # prepare: erase the blocks that `length` bytes from the start cover
        n = args[1] if len(args) > 1 else region.size
        if not 0 <= n <= region.size:
            return -EINVAL
        for block in range((n + region.block_size - 1) // region.block_size):
            region.ioctl(6, block)
            start = block * region.block_size
            for i in range(start, start + region.block_size):
                mapped[i] = 0xFF
        return 4  # the smallest write
    if op == 4:  # write buf at offset
        offset, buf = args[1], args[2]
        if offset < 0 or offset + len(buf) > region.size:
            return -EINVAL
        region.writeblocks(offset // region.block_size, buf, offset % region.block_size)
        for i in range(len(buf)):
            mapped[offset + i] &= buf[i]
        return 0
    if op == 5:
        region.ioctl(3, 0)
        return 0
    return -EINVAL


def mount(vfs):
    """What mp_init does on a port with ROMFS: a valid image in segment 0 at /rom, and
    /rom and /rom/lib on sys.path. Returns the paths to append (none without one)."""
    if mapped is None or mapped[:3] != HEADER:
        return []
    try:
        vfs.mount(vfs.VfsRom(memoryview(mapped)), "/rom")
    except OSError:
        return []
    return ["/rom", "/rom/lib"]


_open()
