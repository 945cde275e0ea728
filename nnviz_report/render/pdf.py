"""report.pdf from the same HTML by WeasyPrint, with the print stylesheet (A4, page numbers,
bookmarks from headings)."""

from __future__ import annotations

import io
import logging

import weasyprint


def render_pdf(html: str) -> bytes:
    # WeasyPrint logs every CSS property it does not support (screen-only rules such as
    # position: sticky); they are expected, so keep them out of the user's terminal.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    document = weasyprint.HTML(string=html, base_url=None).render()
    buffer = io.BytesIO()
    # Deterministic bytes: the /ID is this fixed identifier plus an md5 of the content, and WeasyPrint
    # (read in version 70) writes /CreationDate and /ModDate only from <meta name=dcterms.created/modified>,
    # which the report never emits; its only random value (an XMP DocumentID) belongs to PDF/X-4, not used.
    # Font subsets follow the glyphs used, so the same HTML, WeasyPrint and fonts give the same file.
    document.write_pdf(buffer, pdf_identifier=b"nnviz-report", uncompressed_pdf=False)
    return buffer.getvalue()
