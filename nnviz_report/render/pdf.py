"""report.pdf from the same HTML by WeasyPrint, with the print stylesheet (A4, page numbers,
bookmarks from headings).

Self-contained is enforced here, not only checked: WeasyPrint gets a URL fetcher that serves
``data:`` URIs and refuses everything else (``file:``, ``http:``, any scheme), so a template or
a name that slipped past the HTML check still cannot make the PDF read a local file or the
network. WeasyPrint catches a fetcher's errors (and, inside SVG drawing, every BaseException)
and goes on without the resource, so refusals are recorded and turned into an error once
rendering has returned.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import urllib.parse
from typing import Any

import weasyprint
import weasyprint.urls

from ..errors import OutputError, one_line


class DataOnlyFetcher:
    """Serves ``data:`` URIs, records and refuses every other URL."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def fetch(self, url: str) -> tuple[bytes, str]:
        if url[:5].lower() != "data:":
            self.refused.append(url)
            raise ValueError("nnviz_report fetches nothing but data: URIs")
        header, comma, payload = url[5:].partition(",")
        if not comma:
            self.refused.append(url)
            raise ValueError("malformed data: URI")
        params = header.split(";")
        media_type = params[0].strip() or "text/plain"
        if params[-1].strip().lower() == "base64":
            try:
                body = base64.b64decode(urllib.parse.unquote(payload), validate=False)
            except (binascii.Error, ValueError):
                self.refused.append(url)
                raise ValueError("malformed base64 in a data: URI") from None
        else:
            body = urllib.parse.unquote_to_bytes(payload)
        return body, media_type


def _weasyprint_fetcher(fetcher: DataOnlyFetcher) -> Any:
    """The fetcher in the form the installed WeasyPrint expects: a ``URLFetcher`` subclass
    (version 68 and later, whose ``fetch`` helper reads ``_fail_on_errors`` from it) or a
    function returning a dict (earlier versions)."""
    url_fetcher_class = getattr(weasyprint.urls, "URLFetcher", None)
    if url_fetcher_class is None:
        def legacy(url: str, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
            body, media_type = fetcher.fetch(url)
            return {"string": body, "mime_type": media_type, "redirected_url": url}

        return legacy
    response_class = weasyprint.urls.URLFetcherResponse

    class Fetcher(url_fetcher_class):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            # No protocol allowed to urllib: even a mistaken call of the base class fetches nothing.
            super().__init__(allowed_protocols=(), allow_redirects=False, fail_on_errors=False)

        def fetch(self, url: str, headers: Any = None) -> Any:
            body, media_type = fetcher.fetch(url)
            return response_class(url, body, {"Content-Type": media_type})

    return Fetcher()


_SCREEN_ONLY_DETAILS = re.compile(r'<details class="[^"]*\bscreen-only\b[^"]*"[^>]*>.*?</details>', re.DOTALL)


def without_screen_only_details(html: str) -> str:
    """The HTML less its screen-only ``<details>`` (the folded full tables, hundreds of rows each on a
    deep model): the print stylesheet hides them anyway, but WeasyPrint computes the style of every
    element, hidden or not, and those rows were over half of the elements on efficientnet_v2_s. A
    block with another ``<details>`` inside it is kept, as a non-greedy match cannot tell its end."""
    return _SCREEN_ONLY_DETAILS.sub(lambda m: m.group(0) if "<details" in m.group(0)[8:] else "", html)


def render_pdf(html: str) -> bytes:
    # WeasyPrint logs every CSS property it does not support (screen-only rules such as
    # position: sticky); they are expected, so keep them out of the user's terminal.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    fetcher = DataOnlyFetcher()
    document = weasyprint.HTML(string=without_screen_only_details(html), base_url=None,
                               url_fetcher=_weasyprint_fetcher(fetcher)).render()
    buffer = io.BytesIO()
    # Deterministic bytes: the /ID is this fixed identifier plus an md5 of the content, and WeasyPrint
    # (read in version 70) writes /CreationDate and /ModDate only from <meta name=dcterms.created/modified>,
    # which the report never emits; its only random value (an XMP DocumentID) belongs to PDF/X-4, not used.
    # Font subsets follow the glyphs used, so the same HTML, WeasyPrint and fonts give the same file.
    document.write_pdf(buffer, pdf_identifier=b"nnviz-report", uncompressed_pdf=False)
    if fetcher.refused:
        raise OutputError(
            f"the PDF would load an external resource ({one_line(fetcher.refused[0], 120)}); "
            "refusing to write it: the report must be self-contained (check --template-dir)"
        )
    return buffer.getvalue()


def warm_up() -> None:
    """What a first PDF costs before its own content: WeasyPrint's import is done by importing this
    module; a one-line document also loads the fonts (fontconfig, Pango) every PDF uses."""
    render_pdf("<!DOCTYPE html><html><body><p>nnviz_report</p><p><code>warm</code></p></body></html>")
