# `boton wipe`'s erase, run over the REPL while the firmware is stopped. A module of its
# own, not in service.py: it needs only hw, and the virtual device's block device is
# compiled at run time, which does not fit the 56 KB heap next to the firmware's modules.
import json
import os

import hw


def run():
    """Erase every block of the flash filesystem's partition, make a new LittleFS on it and
    mount it again (empty: the host then reinstalls the firmware files). Deleting files is
    not enough: LittleFS writes copies and leaves the old blocks as they were until it
    reuses them, so her data would stay readable in a raw dump. Prints one JSON line:
    {"raw": false} on a flash folder (the virtual device without an image: no raw blocks,
    the host removes the files instead), else the partition's offset, size, block size,
    block count and how many blocks the flash refused to erase."""
    import vfs
    part = hw.vfs_partition()
    if part is None:
        print(json.dumps({"raw": False}))
        return
    bdev, mnt, offset, size = part
    count = bdev.ioctl(4, 0)
    block = bdev.ioctl(5, 0)
    os.chdir("/")
    try:
        vfs.umount(mnt)
    except OSError:
        pass  # not mounted (a board whose filesystem was already corrupt)
    failed = 0
    for n in range(count):
        try:
            refused = bdev.ioctl(6, n)  # nonzero: refused (a block device in Python)
        except OSError:  # esp32.Partition raises instead (check_esp_err): the rest goes on
            refused = True
        if refused:
            failed += 1
    vfs.VfsLfs2.mkfs(bdev)
    vfs.mount(vfs.VfsLfs2(bdev), mnt)
    os.chdir(mnt)
    print(json.dumps({"raw": True, "offset": offset, "size": size, "block_size": block,
                      "blocks": count, "erase_failed": failed}))
