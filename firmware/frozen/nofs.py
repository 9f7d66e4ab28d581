# What _boot.py runs when the flash filesystem will not mount. Frozen, never deployed.
# An erased partition (a board's first start) is set up as the port's inisetup does it.
# Anything else (a failing sector, a corrupted superblock) gets the port's message once, for
# a technician, then safe mode, frozen into the image with the board's profile: her press
# calls the profile's safe_c4, and nothing is written to the flash.
WHY = "no_filesystem"
MESSAGE = ("The filesystem appears to be corrupted. If you had important data there, you\n"
           "may want to make a flash snapshot to try to recover it. Otherwise, perform\n"
           "factory reprogramming of MicroPython firmware (completely erase flash, followed\n"
           "by firmware programming).\n")


def setup(bdev):
    """Format an erased partition (inisetup), else run safe mode for ever."""
    if erased(bdev):
        import inisetup
        inisetup.setup()
        return
    print(MESSAGE)
    import micropython
    micropython.kbd_intr(3)  # as the port's message loop: a technician's Ctrl-C gets the REPL
    import safe
    safe.run(WHY, log=False)  # no filesystem: nothing to log to


def erased(bdev):
    """Whether the partition's first block is all 0xFF: never formatted (inisetup's test)."""
    buf = bytearray(bdev.ioctl(5, 0))  # 5: the block size
    bdev.readblocks(0, buf)
    for b in buf:
        if b != 0xFF:
            return False
    return True
