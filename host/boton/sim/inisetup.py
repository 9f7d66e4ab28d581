# Runs ON MICROPYTHON (unix port), never CPython: the rig's stand-in for the ESP32 port's
# frozen inisetup module, which _boot.py runs when the flash will not mount. Its rule: an
# erased first block is a new board, formatted (LittleFS), mounted at "/" and given a
# boot.py; anything else is reported corrupted, every 3 s, for ever (Ctrl-C or a reset
# ends it). The board is dead there: nothing on the filesystem can run.
import vfs
from flashbdev import bdev

CORRUPTED = ("The filesystem appears to be corrupted. If you had important data there, you\n"
             "may want to make a flash snapshot to try to recover it. Otherwise, perform\n"
             "factory reprogramming of MicroPython firmware (completely erase flash, followed\n"
             "by firmware programming).\n")


def check_bootsec():
    first = bytearray(bdev.ioctl(5, 0))
    bdev.readblocks(0, first)
    if first == b"\xff" * len(first):
        return True
    fs_corrupted()


def fs_corrupted():
    import time
    while True:
        print(CORRUPTED)
        time.sleep(3)


def setup():
    check_bootsec()
    print("Performing initial setup")
    vfs.VfsLfs2.mkfs(bdev)
    fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, "/")
    with open("boot.py", "w") as f:
        f.write("# Runs at every boot (written by the port's initial setup)\n")
    return fs
