"""The beneficiary's printable page (build/docs/guia-beneficiaria.pdf): the guide's
<!-- hoja:inicio --> section on one US Letter page, written without any PDF library."""
import re
from pathlib import Path

from .common import GUIDE_ES, PDF_OUT, DocsError

# Widths (1/1000 em) of the PDF base-14 fonts Helvetica and Helvetica-Bold (Adobe AFM),
# for ASCII 32..126, and the Latin-1 letters Spanish needs.
_HELV = [int(x) for x in (
    "278 278 355 556 556 889 667 191 333 333 389 584 278 333 278 278 556 556 556 556 556 556 556 556 556 556 "
    "278 278 584 584 584 556 1015 667 667 722 722 667 611 778 722 278 500 667 556 833 722 778 667 778 722 667 "
    "611 722 667 944 667 667 611 278 278 278 469 556 333 556 556 500 556 556 278 556 556 222 222 500 222 833 "
    "556 556 556 556 333 500 278 556 500 722 500 500 500 334 260 334 584").split()]
_HELV_B = [int(x) for x in (
    "278 333 474 556 556 889 722 238 333 333 389 584 278 333 278 278 556 556 556 556 556 556 556 556 556 556 "
    "333 333 584 584 584 611 975 722 722 722 722 667 611 778 722 278 556 722 611 833 722 778 667 778 722 667 "
    "611 722 667 944 667 667 611 333 278 333 584 556 333 556 611 556 611 556 333 611 611 278 278 556 278 889 "
    "611 611 611 611 389 556 333 611 556 778 556 556 500 389 280 389 584").split()]
_EXTRA = {  # char: (regular, bold)
    "á": (556, 556), "é": (556, 556), "í": (278, 278), "ó": (556, 611), "ú": (556, 611), "ü": (556, 611),
    "ñ": (556, 611), "Á": (667, 722), "É": (667, 667), "Í": (278, 278), "Ó": (778, 778), "Ú": (722, 722),
    "Ñ": (722, 722), "¿": (611, 611), "¡": (333, 333), "°": (400, 400), "·": (278, 278), "–": (556, 556),
    "—": (1000, 1000), "•": (350, 350), "“": (333, 500), "”": (333, 500), "«": (556, 556), "»": (556, 556),
}
PAGE_W, PAGE_H = 612, 792  # US Letter ("carta"), the paper used in Mexico
MARGIN = 42


def text_width(text, size, bold=False):
    table = _HELV_B if bold else _HELV
    w = 0
    for ch in text:
        o = ord(ch)
        if 32 <= o <= 126:
            w += table[o - 32]
        elif ch in _EXTRA:
            w += _EXTRA[ch][1 if bold else 0]
        else:
            raise DocsError(f"the printable page cannot show {ch!r} (WinAnsi Helvetica)")
    return w * size / 1000.0


def _inline(text):
    """Markdown inline text -> [(text, bold)] (links keep their text, code loses its ticks)."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = text.replace("`", "")
    runs = []
    for k, part in enumerate(re.split(r"\*\*", text)):
        part = re.sub(r"(?<!\w)[*_]([^*_]+)[*_](?!\w)", r"\1", part)
        if part:
            runs.append((part, k % 2 == 1))
    return runs


def sheet_items(markdown):
    """The printable part of the guide (between <!-- hoja:inicio --> and <!-- hoja:fin -->)
    as [(kind, runs)], kind: title | h | p | li (bullet) | ol:N (numbered)."""
    m = re.search(r"<!-- hoja:inicio -->(.*?)<!-- hoja:fin -->", markdown, re.S)
    if not m:
        raise DocsError(f"{GUIDE_ES.name}: no <!-- hoja:inicio --> ... <!-- hoja:fin --> section to print")
    raw_items = []  # [kind, text]; list items and paragraphs gather their continuation lines

    for raw in m.group(1).split("\n"):
        line = raw.strip()
        if not line or line.startswith("<!--"):
            raw_items.append(None)
        elif line.startswith("# "):
            raw_items.append(["title", line[2:]])
        elif line.startswith("## "):
            raw_items.append(["h", line[3:]])
        elif re.match(r"^[-*] ", line):
            raw_items.append(["li", line[2:]])
        elif re.match(r"^\d+\. ", line):
            n, rest = line.split(". ", 1)
            raw_items.append([f"ol:{n}", rest])
        elif raw_items and raw_items[-1] and raw_items[-1][0] in ("p", "li") or (
                raw_items and raw_items[-1] and raw_items[-1][0].startswith("ol:")):
            raw_items[-1][1] += " " + line
        else:
            raw_items.append(["p", line])
    return [(kind, _inline(text)) for kind, text in (i for i in raw_items if i)]


def _wrap_runs(runs, width, size):
    """Word-wrap [(text, bold)] into lines of [(text, bold)] no wider than width."""
    words = []  # (word, bold, space_before)
    for text, bold in runs:
        for k, w in enumerate(re.split(r"(\s+)", text)):
            if not w:
                continue
            if w.isspace():
                words.append((None, bold, True))
            else:
                words.append((w, bold, False))
    lines, cur, cur_w, space = [], [], 0.0, False
    for w, bold, is_space in words:
        if is_space:
            space = bool(cur)
            continue
        sp = text_width(" ", size, bold) if space else 0.0
        ww = text_width(w, size, bold)
        if cur and cur_w + sp + ww > width:
            lines.append(cur)
            cur, cur_w, sp = [], 0.0, 0.0
        if sp and cur:
            if cur[-1][1] == bold:
                cur[-1] = (cur[-1][0] + " ", bold)
            else:
                cur.append((" ", bold))
        if cur and cur[-1][1] == bold:
            cur[-1] = (cur[-1][0] + w, bold)
        else:
            cur.append((w, bold))
        cur_w += sp + ww
        space = False
    if cur:
        lines.append(cur)
    return lines


def _pdf_str(text):
    data = text.encode("cp1252")
    return "(" + data.decode("latin-1").replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _layout(items, size):
    """PDF drawing operators for the items at body font size `size`, or None if they do not fit."""
    ops = []
    width = PAGE_W - 2 * MARGIN
    y = PAGE_H - MARGIN
    lead = size * 1.28
    for kind, runs in items:
        if kind == "title":
            tsize = size * 1.9
            y -= tsize
            for line in _wrap_runs([(t, True) for t, _ in runs], width, tsize):
                ops.append(_text_line(line, MARGIN, y, tsize, (0.55, 0.0, 0.25)))
                y -= tsize * 1.2
            ops.append(f"0.55 0 0.25 RG 1.5 w {MARGIN} {y + tsize * 0.6:.2f} m {PAGE_W - MARGIN} "
                       f"{y + tsize * 0.6:.2f} l S")
            y -= size * 0.3
            continue
        if kind == "h":
            hsize = size * 1.25
            y -= hsize * 0.7
            for line in _wrap_runs([(t, True) for t, _ in runs], width, hsize):
                y -= hsize * 1.15
                ops.append(_text_line(line, MARGIN, y, hsize, (0.55, 0.0, 0.25)))
            y -= size * 0.25
            continue
        indent = 0.0
        marker = None
        if kind == "li":
            indent, marker = size * 1.3, "•"
        elif kind.startswith("ol:"):
            indent, marker = size * 1.6, kind[3:] + "."
        lines = _wrap_runs(runs, width - indent, size)
        for i, line in enumerate(lines):
            y -= lead
            if i == 0 and marker:
                ops.append(_text_line([(marker, kind.startswith("ol:"))], MARGIN + size * 0.2, y, size))
            ops.append(_text_line(line, MARGIN + indent, y, size))
        y -= size * (0.35 if kind != "p" else 0.55)
        if y < MARGIN:
            return None
    return ops if y >= MARGIN else None


def _text_line(runs, x, y, size, rgb=(0, 0, 0)):
    parts = [f"BT {rgb[0]:g} {rgb[1]:g} {rgb[2]:g} rg"]
    for text, bold in runs:
        parts.append(f"/{'F2' if bold else 'F1'} {size:.2f} Tf 1 0 0 1 {x:.2f} {y:.2f} Tm {_pdf_str(text)} Tj")
        x += text_width(text, size, bold)
    parts.append("ET")
    return " ".join(parts)


def build_pdf(markdown=None, title="Botón Seguro: guía para la beneficiaria"):
    """One US Letter page from the guide's printable section; the body font shrinks from
    12 pt until it fits (DocsError below 8 pt: shorten the guide)."""
    markdown = GUIDE_ES.read_text() if markdown is None else markdown
    items = sheet_items(markdown)
    size = 12.0
    while True:
        ops = _layout(items, size)
        if ops is not None:
            break
        size -= 0.25
        if size < 8:
            raise DocsError("the beneficiary's page does not fit on one page even at 8 pt: shorten it")
    content = "\n".join(ops).encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] "
         "/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>").encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        ("<< /Title " + _pdf_str(title) + " /Producer (boton.docs_build) /Lang (es-MX) >>").encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 7 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out), size


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)\b", data))


def pdf_text(data: bytes) -> str:
    """The text of an uncompressed PDF written by build_pdf, one line per BT..ET, joined by
    spaces (enough to search it for phrases)."""
    lines = []
    for bt in re.findall(rb"BT(.*?)ET", data, re.S):
        parts = []
        for s in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", bt):
            parts.append(re.sub(rb"\\(.)", rb"\1", s).decode("cp1252"))
        lines.append("".join(parts))
    return " ".join(" ".join(lines).split())


def write_pdf(out=PDF_OUT):
    data, size = build_pdf()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out, size
