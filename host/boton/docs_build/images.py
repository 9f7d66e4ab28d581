"""What `python -m boton.docs_build images` writes: the wiring SVGs and the generated
sections of the docs (board tables, SMS examples of both Spanish guides), and which of them are stale."""
import re

from .c4_examples import c4_cell_markdown, c4_redial_markdown, c4_replies_markdown, c4_sms_markdown
from .common import DOCS, GUIDE_C4, GUIDE_ES, IMG, REGEN, DocsError
from .hardware import boards_markdown, load_boards, pin_problems
from .sms_examples import sms_examples_markdown
from .wiring import wiring_svg

# The generated sections of docs/guia-c4.md: what C4 receives, as the alert machine sends it
C4_SECTIONS = (("c4-sms", c4_sms_markdown), ("c4-replies", c4_replies_markdown), ("c4-cell", c4_cell_markdown),
               ("c4-redial", c4_redial_markdown))

BEGIN = "<!-- BEGIN generated: {} (" + REGEN + " images) -->"
END = "<!-- END generated: {} -->"


def replace_section(text, name, body):
    """text with the block between the markers named `name` replaced by body."""
    begin, end = BEGIN.format(name), END.format(name)
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pat.search(text):
        raise DocsError(f"markers for generated section {name!r} not found: add\n{begin}\n{end}")
    return pat.sub(lambda m: f"{begin}\n{body.strip()}\n{end}", text, count=1)


def sections_in(text):
    return re.findall(r"<!-- BEGIN generated: (\S+) \(", text)


def generated_files():
    """{path: text} of everything `images` writes."""
    boards = load_boards()
    for b in boards:
        errs = pin_problems(b)
        if errs:
            raise DocsError(f"boards/{b['id']}.json: " + "; ".join(errs))
    files = {IMG / f"wiring-{b['id']}.svg": wiring_svg(b) for b in boards}
    hw = DOCS / "hardware.md"
    if hw.exists():
        files[hw] = replace_section(hw.read_text(), "boards", boards_markdown(boards))
    if GUIDE_ES.exists() and "sms-examples" in sections_in(GUIDE_ES.read_text()):
        files[GUIDE_ES] = replace_section(GUIDE_ES.read_text(), "sms-examples", sms_examples_markdown())
    if GUIDE_C4.exists():
        text = GUIDE_C4.read_text()
        for name, make in C4_SECTIONS:
            text = replace_section(text, name, make())  # each one must be there
        files[GUIDE_C4] = text
    return files


def stale_images():
    """Paths whose committed text differs from what the generator makes now."""
    stale = [p for p, text in generated_files().items() if not p.exists() or p.read_text() != text]
    wanted = {f"wiring-{b['id']}.svg" for b in load_boards()}
    stale += [p for p in IMG.glob("wiring-*.svg") if p.name not in wanted]  # a board that was removed
    return stale


def write_images():
    IMG.mkdir(parents=True, exist_ok=True)
    wanted = {f"wiring-{b['id']}.svg" for b in load_boards()}
    for p in IMG.glob("wiring-*.svg"):
        if p.name not in wanted:
            p.unlink()
    changed = []
    for p, text in generated_files().items():
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
            changed.append(p)
    return changed
