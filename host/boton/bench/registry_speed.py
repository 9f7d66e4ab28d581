"""How the technician's registry scales: a CSV import and export of many devices.

The programme owns about 200 buttons; the figures use 5,000 (a state-wide programme, or
years of returns and re-deliveries) so that a cost growing faster than the rows shows.
Measured in-process on a fresh registry (SQLite, no case data: no key needed), as
`boton devices import` / `export` do it, without the CLI's start-up.
"""
from __future__ import annotations

import time

from ..registry import Registry
from . import budget_row, info_row

NAME = "registry"
DEVICES = 5000
IMPORT_BUDGET_S = 5.0


def write_csv(path, n):
    """n devices in stock, MAC only (each gets the next automatic label)."""
    with open(path, "w") as f:
        f.write("mac,state\n")
        for i in range(n):
            f.write("24:6f:28:%02x:%02x:%02x,in_stock\n" % (i >> 16 & 255, i >> 8 & 255, i & 255))


def measure(workdir, n=DEVICES):
    src, out = workdir / "devices.csv", workdir / "export.csv"
    write_csv(src, n)
    with Registry(workdir / "registry.sqlite3", technician="bench") as reg:
        t0 = time.perf_counter()
        added = reg.import_csv(src)
        t1 = time.perf_counter()
        rows = reg.export_csv(out, force=True)
        t2 = time.perf_counter()
    return {"devices": n, "imported": added, "exported": rows,
            "import_s": t1 - t0, "export_s": t2 - t1}


def run(ctx):
    m = measure(ctx.scratch(NAME))
    rows = [
        budget_row(f"Registry: CSV import of {m['devices']:,} devices", m["import_s"], "s",
                   IMPORT_BUDGET_S, key="registry.import_s",
                   note=f"{m['imported']:,} added, labels counted on (not searched per row)",
                   detail=m),
        info_row(f"Registry: CSV export of {m['devices']:,} devices", m["export_s"], "s",
                 key="registry.export_s", note=f"{m['exported']:,} rows"),
    ]
    for r in rows:
        r.group = NAME
    return rows
