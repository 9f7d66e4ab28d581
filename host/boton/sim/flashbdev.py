# Runs ON MICROPYTHON (unix port), never CPython: the rig's stand-in for the ESP32 port's
# frozen flashbdev module, which _boot.py imports. `bdev`: the flash's vfs partition as a
# block device (an esp32.Partition on the chip), here the vfs region of the flash image
# through lfs_blockdev; None on a flash folder, which has no raw blocks (board_seal puts
# the folder at "/" itself, and _boot.py then mounts nothing).
import os

bdev = None
if os.getenv("BOTON_FLASH_IMAGE"):
    import lfs_blockdev

    bdev = lfs_blockdev.FlashRegion(*lfs_blockdev.parse_spec(os.getenv("BOTON_FLASH_IMAGE")))
del os
