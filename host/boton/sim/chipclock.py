"""The virtual chip's time.ticks_ms(): where its count stands, as on an ESP32 that has been on
for days.

On the ESP32, time.ticks_ms() counts milliseconds from the chip's last reset (esp_timer),
goes on through a soft reset, starts over at any chip reset, and wraps every 2**30 ms
(12.4 days): a button she has carried for two weeks has crossed a wrap, and may cross one
during her alert. The 32-bit build wraps at 2**30 as the chip does (the 64-bit PyPI port at
2**62: never, in practice).

The unix port reads CLOCK_MONOTONIC, so the rig sets the chip's count by starting
MicroPython in a Linux time namespace whose CLOCK_MONOTONIC is offset (util-linux's
`unshare --time --monotonic`, inside a user namespace so no privilege is needed). That moves
the C clock itself: the time module, asyncio's C task queue and select's timeouts all agree,
as on the chip. The offset is in whole seconds, so the count starts within a second of the
one asked for, and the rig knows it exactly (ticks_ms()).
"""
import functools
import math
import shutil
import subprocess
import time

TICKS_PERIOD = 1 << 30  # the ESP32's time.ticks_ms() wraps here


@functools.lru_cache(maxsize=None)
def unavailable() -> str:
    """Why this machine cannot offset a child's clock ("" if it can), in one line."""
    unshare = shutil.which("unshare")
    if not unshare:
        return "setting the chip's uptime needs util-linux's unshare, not found on PATH"
    try:
        proc = subprocess.run([unshare, "--user", "--map-root-user", "--time", "--monotonic", "1", "true"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"setting the chip's uptime needs a Linux time namespace: {e}"
    if proc.returncode:
        why = (proc.stderr.strip().splitlines() or ["unshare failed"])[-1]
        return f"setting the chip's uptime needs Linux time namespaces (kernel 5.6+, user namespaces allowed): {why}"
    return ""


class ChipClock:
    """uptime_s: the chip's count at its first boot, in seconds (None: the host's own
    CLOCK_MONOTONIC, no namespace, as the rig always ran)."""

    def __init__(self, uptime_s=None):
        self.offset_s = None  # the child's CLOCK_MONOTONIC offset; None: no namespace
        self._next_boot_s = uptime_s
        if uptime_s is None:
            return
        if isinstance(uptime_s, bool) or not isinstance(uptime_s, (int, float)) or uptime_s < 0:
            raise ValueError(f"uptime_s must be a number of seconds >= 0, not {uptime_s!r}")
        why = unavailable()
        if why:
            raise RuntimeError(why)

    def chip_boot(self):
        """The chip starts: from uptime_s the first time, from 0 after any chip reset, as
        esp_timer does (a soft reset is no chip boot: the count goes on)."""
        if self._next_boot_s is None:  # no uptime asked: the host's clock, no namespace
            return
        # rounded up: the namespace's clock never goes below zero
        self.offset_s = math.ceil(self._next_boot_s - time.monotonic())
        self._next_boot_s = 0

    def ticks_ms(self, now=None) -> int:
        """The chip's time.ticks_ms() at host monotonic time `now`, wrapped as on the ESP32."""
        now = time.monotonic() if now is None else now
        return int((now + (self.offset_s or 0)) * 1000) % TICKS_PERIOD

    def command(self, argv):
        """The command line that starts the interpreter `argv` on this clock."""
        if self.offset_s is None:
            return list(argv)
        return [shutil.which("unshare"), "--user", "--map-root-user", "--time",
                "--monotonic", str(self.offset_s), *argv]
