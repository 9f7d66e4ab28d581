"""Size of what `boton deploy` puts on a board: build.firmware_modules() (lib/*.mpy from
mpy-cross, boot.py and main.py as source); the board profile and config are not counted."""
from __future__ import annotations

from .. import build
from . import info_row

NAME = "size"


def measure():
    files = build.firmware_modules(mpy=True)
    src = {p: len(d) for p, d in build.firmware_modules(mpy=False)}
    mpy = {p: len(d) for p, d in files}
    return {"files": mpy, "total": sum(mpy.values()),
            "mpy_total": sum(v for p, v in mpy.items() if p.endswith(".mpy")),
            "source_total": sum(src.values()), "count": len(mpy)}


def run(ctx):
    m = measure()
    biggest = sorted(((v, p) for p, v in m["files"].items()), reverse=True)[:3]
    rows = [
        info_row("Firmware deployed (.mpy + boot/main.py)", m["total"] / 1024, "KB",
                 key="size.total_kb",
                 note=f"{m['count']} files; largest " + ", ".join(f"{p.split('/')[-1]} {v / 1024:.1f}"
                                                                for v, p in biggest),
                 detail={"bytes": m["total"], "files": m["files"]}),
        info_row("  of which .mpy bytecode", m["mpy_total"] / 1024, "KB", key="size.mpy_kb",
                 note=f"source would be {m['source_total'] / 1024:.1f} KB",
                 detail={"bytes": m["mpy_total"], "source_bytes": m["source_total"]}),
    ]
    for r in rows:
        r.group = NAME
    return rows
