"""Generators for docs/: what the docs show is made from the code, so it cannot drift.

    python -m boton.docs_build                 # all of it: images, generated sections, console outputs, PDF
    python -m boton.docs_build images          # docs/img/wiring-*.svg and the generated sections of the docs
    python -m boton.docs_build console [FILE]  # rerun every ```console block (default: docs/*.md, README.md)
    python -m boton.docs_build check [FILE]    # exit 1 if anything is stale; writes nothing
    python -m boton.docs_build pdf [-o OUT]    # the beneficiary's printable page (build/docs/guia-beneficiaria.pdf)

Wiring diagrams (SVG) and the board tables in docs/hardware.md come from boards/*.json;
the SMS examples in docs/guia-beneficiaria.md come from firmware/lib/sms.py, those of
docs/guia-c4.md from the alert machine itself (firmware/lib/alert.py). Generated text
sits between `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->` markers.
Console blocks are re-run on a virtual device and compared: see console.py.

One module per job:

    common.py        where the docs are, the regeneration command, DocsError
    hardware.py      board profiles -> pin tables, parts lists, power notes (docs/hardware.md)
    wiring.py        board profiles -> wiring diagrams (docs/img/wiring-*.svg)
    sms_examples.py  firmware/lib/sms.py -> the SMS examples of the beneficiary's guide
    c4_examples.py   firmware/lib/alert.py -> what C4 receives and the replies (docs/guia-c4.md)
    images.py        what `images` writes: the SVGs and the generated sections
    console.py       runs every ```console block on a virtual device and compares
    pdf.py           the beneficiary's one-page PDF (no dependency)
    __main__.py      the command line

The names below are the package's public interface (tests/test_docs.py, the Makefile).
"""
from .c4_examples import (C4, C4_2, CELL_GSM, CELL_LTE, PIN, Story, c4_cell_markdown, c4_dials, c4_redial_markdown,
                          c4_replies, c4_replies_markdown, c4_sms, c4_sms_markdown, cell_decimal)
from .common import DOCS, GUIDE_C4, GUIDE_ES, IMG, PDF_OUT, REGEN, DocsError
from .console import (BLANK_CHIP, COLUMNS, FENCE, NOT_RUN, SHOWN_WORKDIR, TECHNICIAN, VOLATILE, Block, Result, Session,
                      Step, check_console, check_not_run, compare_console, console_files, console_outputs,
                      doc_files, fenced_blocks, normalise, not_run_blocks, parse_steps, run_console)
from .hardware import (FIRMWARE_USES, PART_TITLES, POWER_CHIPS, Conn, battery_without_pin, board_section,
                       boards_markdown, bom, connections, firmware_does, firmware_gap, load_boards, onboard,
                       pin_notes, pin_problems, power_chain, power_chip, power_notes)
from .images import BEGIN, C4_SECTIONS, END, generated_files, replace_section, sections_in, stale_images, write_images
from .pdf import MARGIN, PAGE_H, PAGE_W, build_pdf, pdf_pages, pdf_text, sheet_items, text_width, write_pdf
from .sms_examples import sms_examples_markdown
from .wiring import COLOURS, ORDER, wiring_svg


__all__ = ["C4", "C4_2", "CELL_GSM", "CELL_LTE", "PIN", "Story", "c4_cell_markdown", "c4_dials", "c4_redial_markdown",
           "c4_replies", "c4_replies_markdown", "c4_sms", "c4_sms_markdown", "cell_decimal", "C4_SECTIONS",
           "DOCS", "GUIDE_C4", "GUIDE_ES", "IMG", "PDF_OUT", "REGEN", "DocsError",
           "BLANK_CHIP", "COLUMNS", "FENCE", "NOT_RUN",
           "SHOWN_WORKDIR", "TECHNICIAN", "VOLATILE", "Block", "Result", "Session", "Step", "check_console",
           "check_not_run", "compare_console", "console_files", "console_outputs", "doc_files", "fenced_blocks",
           "normalise", "not_run_blocks", "parse_steps", "run_console", "FIRMWARE_USES", "PART_TITLES",
           "POWER_CHIPS", "Conn", "battery_without_pin", "board_section", "boards_markdown", "bom", "connections",
           "firmware_does", "firmware_gap", "load_boards", "onboard", "pin_notes", "pin_problems", "power_chain",
           "power_chip", "power_notes", "BEGIN", "END", "generated_files", "replace_section", "sections_in",
           "stale_images", "write_images", "MARGIN", "PAGE_H", "PAGE_W", "build_pdf", "pdf_pages", "pdf_text",
           "sheet_items", "text_width", "write_pdf", "sms_examples_markdown", "COLOURS", "ORDER", "wiring_svg"]
