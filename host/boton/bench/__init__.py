"""`make bench`: performance figures of the firmware and the tooling, separate from the tests.

Each figure module has ``NAME`` and ``run(ctx) -> list[Row]``. A Row is one line of the
table: a figure, its value, an optional budget and whether the value meets it. The suite
fails (exit 1) if any budget is missed; rows without a budget are reported, never judged.

Firmware figures are measured on the MicroPython unix port (the interpreter the virtual
device runs), never CPython. The unix port is 64-bit and runs on a desktop CPU, so its
times are lower and its heap figures higher than an ESP32's; docs/performance.md says how
each figure should be read.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    figure: str                 # what, for humans
    value: float | int | None   # the measured number (None: could not be measured)
    unit: str = ""
    budget: str = ""            # e.g. "< 100 ms"; "" = informational
    ok: bool | None = None      # None: no budget; False: budget missed
    group: str = ""             # the figure module (NAME) that produced it
    key: str = ""               # stable machine name, e.g. "latency.atd.firmware_ms"
    note: str = ""              # one short line of context
    detail: dict = field(default_factory=dict)  # everything else, for the JSON only

    def as_dict(self):
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def budget_row(figure, value, unit, limit, *, key, note="", detail=None, lower_is_better=True,
               inclusive=False):
    """A row judged against `limit` (value < limit, or > limit if lower_is_better=False;
    inclusive: value <= / >= limit)."""
    if value is None:
        ok = False
    elif inclusive:
        ok = value <= limit if lower_is_better else value >= limit
    else:
        ok = value < limit if lower_is_better else value > limit
    sign = ("≤" if lower_is_better else "≥") if inclusive else ("<" if lower_is_better else ">")
    return Row(figure, value, unit, f"{sign} {limit:g} {unit}".strip(), ok, key=key, note=note,
               detail=detail or {})


def info_row(figure, value, unit="", *, key, note="", detail=None):
    return Row(figure, value, unit, "", None, key=key, note=note, detail=detail or {})


class Context:
    """What the figure modules share: a scratch directory and the options."""

    def __init__(self, workdir: Path | None = None, quick=False, samples=None, compare_parser=None):
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="boton-bench-")
            workdir = Path(self._tmp.name)
        self.workdir = Path(workdir)
        self.quick = quick
        self.samples = samples
        self.compare_parser = Path(compare_parser) if compare_parser else None

    def scratch(self, name) -> Path:
        p = self.workdir / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def close(self):
        if self._tmp:
            self._tmp.cleanup()


def figures():
    """name -> module, in table order."""
    from . import latency, memory, nmea_speed, provisioning, registry_speed, size, standby
    mods = (latency, nmea_speed, memory, size, provisioning, registry_speed, standby)
    return {m.NAME: m for m in mods}
