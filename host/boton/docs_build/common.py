"""What every docs generator shares: where the docs are, how to regenerate them, the error."""
from ..paths import REPO

DOCS = REPO / "docs"
IMG = DOCS / "img"
PDF_OUT = REPO / "build" / "docs" / "guia-beneficiaria.pdf"
GUIDE_ES = DOCS / "guia-beneficiaria.md"
GUIDE_C4 = DOCS / "guia-c4.md"
REGEN = "python -m boton.docs_build"


class DocsError(RuntimeError):
    pass
