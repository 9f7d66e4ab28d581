"""The firmware's lib/ as a ROMFS image, written to a board's romfs partition.

MicroPython (>= 1.25) on the ESP32, in a build with ROMFS (not the default build: its
ESP32_GENERIC ROMFS variant has it), mounts the flash's "romfs" data partition at /rom at
start-up and puts /rom and /rom/lib on sys.path, after /lib. Bytecode in a ROMFS runs in
place from the mapped flash, where .mpy files from LittleFS are copied into the heap: the
bench's worst alert needs 66 KB of heap so (memory.esp32_mpy.min_heap_kb), 125 KB from
LittleFS (memory.esp32_mpy_lfs.min_heap_kb). `boton flash` gives the table the partition
(image.with_romfs); `boton deploy` puts lib/ there (provision.deploy).

The image is made by mpremote's VfsRomWriter, as `mpremote romfs build` makes it, and
written as `mpremote romfs deploy` writes it: through vfs.rom_ioctl, whose segment 0 is an
esp32.Partition on the ESP32 (erased with ioctl(6, block), written with writeblocks) and a
memoryview on ports that erase and write through rom_ioctl(3/4/5) (the unix port, stm32;
the virtual device's rom_partition). Each chunk goes as base64; the device's own SHA-256 of
the partition's first bytes then must match the image's.
"""
from __future__ import annotations

import base64
import hashlib
import json

from .errors import EXIT_DEVICE, EXIT_VERIFY, DeviceError

HEADER = b"\xd2\xcd\x31"
CHUNK = 4096
MOUNT = "/rom"


def image(lib_files) -> bytes:
    """A ROMFS image holding lib/<name> for each (name, bytes) pair."""
    from mpremote.romfs import VfsRomWriter

    w = VfsRomWriter()
    w.opendir("lib")
    for name, data in sorted(lib_files):
        w.mkfile(name, bytes(data))
    w.closedir()
    return w.finalise()


_QUERY = ("import vfs,json\nr=getattr(vfs,'rom_ioctl',None)\nn=r(1) if r else 0\ns=b=0\no=False\n"
          "if n>0:\n d=r(2,0)\n o=hasattr(d,'ioctl')\n"
          " if o:\n  b=d.ioctl(5,0)\n  s=d.ioctl(4,0)*b\n"
          " elif not isinstance(d,int):\n  s=len(d)\n  b=s\n"
          "print(json.dumps({'segments':n,'size':s,'block':b,'object':o}))")


def partition(dev) -> dict:
    """{"segments", "size", "block", "object"} of the board's ROMFS segment 0 (segments 0:
    no romfs partition, or no rom_ioctl at all)."""
    return json.loads(dev.exec(_QUERY).decode().strip().splitlines()[-1])


def holds(dev, img: bytes) -> bool:
    """Whether the board's romfs partition starts with exactly `img` (its own SHA-256)."""
    out = dev.exec("import vfs,hashlib,binascii\nm=memoryview(vfs.rom_ioctl(2,0))\nh=hashlib.sha256()\n"
                   f"n={len(img)}\nfor i in range(0,n,1024):\n h.update(m[i:min(i+1024,n)])\n"
                   "print(binascii.hexlify(h.digest()).decode())\ndel m")
    return out.decode().strip().splitlines()[-1:] == [hashlib.sha256(img).hexdigest()]


def check_fits(img: bytes, info: dict):
    """DeviceError unless the board has a romfs partition that `img` fits."""
    if info["segments"] <= 0:
        raise DeviceError("the board has no romfs partition: flash it with `boton flash` (which adds one) "
                          "or deploy without it", EXIT_DEVICE)
    if len(img) > info["size"]:
        raise DeviceError(f"the firmware's ROMFS image ({len(img) // 1024} KB) does not fit the board's "
                          f"romfs partition ({info['size'] // 1024} KB): nothing was written", EXIT_DEVICE)


def write(dev, img: bytes, info: dict | None = None, progress=None):
    """Write `img` to the romfs partition, verify it, and mount it at /rom again."""
    info = info or partition(dev)
    check_fits(img, info)
    dev.exec(f"import vfs\ntry:\n vfs.umount({MOUNT!r})\nexcept OSError:\n pass\nd=vfs.rom_ioctl(2,0)")
    block = info["block"] or CHUNK
    if info["object"]:  # esp32.Partition: erase the blocks, then writeblocks at block offsets
        dev.exec(f"for b in range({-(-len(img) // block)}):\n d.ioctl(6,b)", timeout=60)
        chunk, put = min(CHUNK, block), "d.writeblocks({o}//{b},buf,{o}%{b})"
    else:
        least = int(dev.exec(f"print(vfs.rom_ioctl(3,0,{len(img)}))", timeout=60).decode().split()[-1])
        if least < 0:
            raise DeviceError(f"the board refused to erase its romfs partition (error {-least})", EXIT_DEVICE)
        chunk, put = max(CHUNK, least), "r=vfs.rom_ioctl(4,0,{o},buf)\nif r: raise OSError(-r)"
    dev.exec("from binascii import a2b_base64")
    # the first chunk (the ROMFS header) last: an image cut short does not mount, so no
    # import can meet a module whose end was never written
    offsets = list(range(chunk, len(img), chunk)) + [0]
    for done, offset in enumerate(offsets, 1):
        part = img[offset:offset + chunk]
        part += bytes(chunk - len(part))
        dev.exec(f"buf=a2b_base64({base64.b64encode(part).decode()!r})\n" + put.format(o=offset, b=block))
        if progress:
            progress(min(done * chunk, len(img)), len(img))
    if not info["object"]:
        dev.exec("vfs.rom_ioctl(5,0)")
    dev.exec("del d,buf")
    if not holds(dev, img):
        raise DeviceError("verify failed for the romfs partition: the board holds different bytes; deploy again",
                          EXIT_VERIFY)
    dev.exec(f"import vfs\nvfs.mount(vfs.VfsRom(vfs.rom_ioctl(2,0)),{MOUNT!r})")
