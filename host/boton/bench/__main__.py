"""python -m boton.bench [--only NAME[,NAME]] [--json OUT] [--quick] [--compare-parser DIR]

Prints one table (figure, value, budget, pass/fail), writes it as JSON and exits 1 if a
budget is missed (2 if a figure could not be measured at all).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..paths import REPO, micropython_exe
from . import Context, Row, figures

DEFAULT_JSON = REPO / "build" / "bench.json"


def _fmt(v):
    if v is None:
        return "—"
    if isinstance(v, int):
        return f"{v:,}"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def render(rows, console):
    table = Table(title="Botón Seguro — make bench", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("budget", justify="right")
    table.add_column("", justify="center")
    table.add_column("note", overflow="fold")
    last = None
    for r in rows:
        if last is not None and r.group != last:
            table.add_section()
        last = r.group
        verdict = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: ""}[r.ok]
        table.add_row(r.figure, f"{_fmt(r.value)} {r.unit}".strip(), r.budget, verdict, r.note)
    console.print(table)


def markdown(rows):
    """The table as GitHub markdown (for docs/performance.md)."""
    out = ["| figure | value | budget | | note |", "|---|---:|---:|---|---|"]
    for r in rows:
        verdict = {True: "pass", False: "**FAIL**", None: ""}[r.ok]
        cells = [r.figure.strip(), f"{_fmt(r.value)} {r.unit}".strip(), r.budget, verdict, r.note]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


def environment():
    import subprocess
    try:
        mp = subprocess.run([micropython_exe(), "-c", "import sys;print(sys.version)"],
                            capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:  # noqa: BLE001 - informational only
        mp = repr(e)
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "firmware"],
                                    capture_output=True, text=True, timeout=20).stdout.strip())
    except Exception:  # noqa: BLE001
        rev, dirty = "", None
    return {"micropython": mp, "python": sys.version.split()[0], "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "cpus": _cpus(),
            "git": rev, "firmware_dirty": dirty}


def _cpus():
    import os
    return os.cpu_count()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m boton.bench", description=__doc__.split("\n\n")[1])
    ap.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the table as JSON (default %(default)s)")
    ap.add_argument("--only", default="", help="comma-separated figure groups: " + ", ".join(figures()))
    ap.add_argument("--quick", action="store_true", help="fewer samples (one alert, fewer passes)")
    ap.add_argument("--samples", type=int, default=None, help="alerts to time for the latency figure (default 3)")
    ap.add_argument("--compare-parser", default=None, metavar="DIR",
                    help="also time a public NMEA parser module found in DIR (never a dependency)")
    ap.add_argument("--markdown", default=None, metavar="FILE",
                    help="also write the table as markdown (or re-render --json's file with --from-json)")
    ap.add_argument("--from-json", default=None, metavar="FILE",
                    help="measure nothing: print the table stored in FILE (with --markdown: write it)")
    args = ap.parse_args(argv)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        fields = Row.__dataclass_fields__
        rows = [Row(**{k: v for k, v in r.items() if k in fields}) for r in data["rows"]]
        if args.markdown:
            Path(args.markdown).write_text(markdown(rows))
        else:
            render(rows, Console(width=None if sys.stdout.isatty() else 170))
        return 0 if data.get("ok") else 1

    mods = figures()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()] or list(mods)
    unknown = [w for w in wanted if w not in mods]
    if unknown:
        ap.error(f"unknown figure group(s) {', '.join(unknown)}; known: {', '.join(mods)}")

    # a log or CI output is not an 80-column terminal: keep one figure per line there
    console = Console(width=None if sys.stdout.isatty() else 170)
    ctx = Context(quick=args.quick, samples=args.samples, compare_parser=args.compare_parser)
    rows: list[Row] = []
    broken = []
    started = time.monotonic()
    try:
        for name in wanted:
            t = time.monotonic()
            with console.status(f"measuring {name} ..."):
                try:
                    got = mods[name].run(ctx)
                except Exception as e:  # one broken figure must not hide the others
                    traceback.print_exc()
                    broken.append(name)
                    got = [Row(f"{name}: could not be measured", None, ok=False, group=name,
                               key=f"{name}.error", note=f"{type(e).__name__}: {e}"[:160])]
            for r in got:
                r.group = r.group or name
                r.detail.setdefault("_seconds", round(time.monotonic() - t, 2))
            rows.extend(got)
    finally:
        ctx.close()

    render(rows, console)
    missed = [r for r in rows if r.ok is False]
    result = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "environment": environment(),
        "ok": not missed,
        "missed": [r.key for r in missed],
        "rows": [r.as_dict() for r in rows],
    }
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    console.print(f"written {escape(str(out))}; {len(rows)} figures, "
                  + ("all budgets met" if not missed else f"[bold red]{len(missed)} budget(s) missed[/]: "
                     + ", ".join(r.key for r in missed)))
    if broken:
        return 2
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
