# Frozen into the release image as _boot, never deployed. The ESP32 port runs the frozen
# _boot.py first at every start (main.c), then boot.py and main.py from the filesystem.
# This is the port's own _boot.py (ports/esp32/modules; boton.frozen refuses to build an
# image if the port's differs) with one change: a filesystem that will not mount goes to
# nofs, not to inisetup.setup(), which prints "The filesystem appears to be corrupted" for
# ever when the partition is not erased. boot.py, main.py, safe mode and her configuration
# all live on that filesystem: the button would never call C4.
import gc
import vfs
from flashbdev import bdev

try:
    if bdev:
        vfs.mount(bdev, "/")
except OSError:
    import nofs

    nofs.setup(bdev)

gc.collect()
