"""The command line: python -m boton.docs_build [all|images|console|check|pdf] (see __init__)."""
import argparse
import sys
import time

from ..paths import REPO
from . import __doc__ as PACKAGE_DOC
from .common import PDF_OUT, REGEN
from .console import check_console, console_files, run_console
from .images import stale_images, write_images
from .pdf import build_pdf, write_pdf


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m boton.docs_build", description=PACKAGE_DOC.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=("all", "images", "console", "check", "pdf"))
    ap.add_argument("files", nargs="*", help="docs whose console blocks to run (default: docs/*.md, README.md)")
    ap.add_argument("-o", "--out", default=str(PDF_OUT), help="where `pdf` writes the page")
    a = ap.parse_args(argv)
    rc = 0
    if a.what in ("all", "images"):
        for p in write_images():
            print(f"wrote {p.relative_to(REPO)}")
    if a.what in ("all", "console"):
        for p in console_files(a.files):
            t0 = time.monotonic()
            res = run_console(p)
            for cmd, msg in res.problems:
                print(f"{p.relative_to(REPO)}: $ {cmd}\n  {msg}", file=sys.stderr)
                rc = 1
            if res.text != p.read_text():
                p.write_text(res.text)
                print(f"wrote {p.relative_to(REPO)} ({res.commands} commands, {time.monotonic() - t0:.0f} s)")
            else:
                print(f"{p.relative_to(REPO)} up to date ({res.commands} commands, {time.monotonic() - t0:.0f} s)")
    if a.what in ("all", "pdf"):
        out, size = write_pdf(a.out)
        print(f"wrote {out} (1 page, body {size:g} pt)")
    if a.what == "check":
        stale = stale_images()
        for p in stale:
            print(f"stale: {p.relative_to(REPO)} (run `{REGEN} images`)", file=sys.stderr)
        rc = 1 if stale else 0
        for p in console_files(a.files):
            msgs, _ = check_console(p)
            for m in msgs:
                print(f"{p.relative_to(REPO)}:\n{m}\n", file=sys.stderr)
            if msgs:
                print(f"stale: {p.relative_to(REPO)} (run `{REGEN} console {p.relative_to(REPO)}`)", file=sys.stderr)
                rc = 1
        build_pdf()
    return rc


if __name__ == "__main__":
    sys.exit(main())
