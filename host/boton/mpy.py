"""Run code on the real MicroPython unix port (never CPython), with the firmware on sys.path."""
import subprocess
from pathlib import Path

from .paths import FIRMWARE, micropython_exe

# The pure cores' tests on the PyPI port: 64-bit objects, and the firmware compiled from
# source in the heap, so this is no chip's figure (it was 110k until the alert machine
# grew past it). What an ESP32 holds is measured on the 32-bit build at its 56 KB heap
# (tests/test_unix32.py, the virtual device in CI, make bench's memory.esp32_* rows).
# 128k left test_alert's 50-minute call scenario (its harness records every action) 4 KB
# to spare, and the SMS alphabet's qstrs, interned at import since 2026-12-01, took them
# in a clone whose path is longer: 160k. Compiling alert.py from source then ran out at
# 1,030 lines (2026-12-04): 192k.
DEFAULT_HEAP = "192k"


class MicroPythonError(RuntimeError):
    def __init__(self, code, stdout, stderr):
        super().__init__(f"MicroPython exited {code}:\n{stdout}\n{stderr}")
        self.code, self.stdout, self.stderr = code, stdout, stderr


def run(code: str, *, lib: Path = FIRMWARE / "lib", heap: str = DEFAULT_HEAP,
        cwd: Path | None = None, timeout: float = 120, stdin: bytes | None = None,
        exe: str | None = None) -> str:
    """Execute `code` on MicroPython (the PyPI unix port, or `exe`, e.g. the 32-bit build);
    return its stdout or raise MicroPythonError."""
    prelude = f"import sys\nsys.path.insert(0, {str(lib)!r})\n"
    proc = subprocess.run(
        [str(exe or micropython_exe()), "-X", f"heapsize={heap}", "-c", prelude + code],
        input=stdin, capture_output=True, timeout=timeout, cwd=cwd,
    )
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise MicroPythonError(proc.returncode, out, proc.stderr.decode(errors="replace"))
    return out
