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
    # A fixed identifier and no creation date keep the bytes the same for the same report.
    document.write_pdf(buffer, pdf_identifier=b"nnviz-report", uncompressed_pdf=False)
    return buffer.getvalue()
