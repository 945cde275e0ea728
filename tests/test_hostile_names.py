"""Names from the model and the command line (modules, checkpoint, data folder) reach every
output as text: never markup in HTML, SVG or Markdown, exact in JSON, inert in the PDF."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import CONTROL, HOSTILE, run_cli
from tests.conftest import write_image_folder
from tests.fixtures.hostile_models import (
    ANSI,
    ATTRIBUTE_BREAKOUT,
    JS_URL,
    SCRIPT,
    STYLE_BREAKOUT,
    hostile_names,
)

CHECKPOINT_NAME = "w<script>alert(1)\x1b\"'&.pt"
DATA_NAME = "d<script>alert(1)\x1b\"q&"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    data = write_image_folder(root / DATA_NAME, per_class=2)
    torch.save(hostile_names().state_dict(), root / CHECKPOINT_NAME)
    out = root / "out"
    assert run_cli("--model", f"{HOSTILE}:{SCRIPT}", "--weights", root / CHECKPOINT_NAME, "--data", data,
                   "--per-class", "2", "--showcase", "2", "-o", out) == 0
    return out


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def assert_no_active_markup(elements: list[tuple[str, dict[str, str | None]]]) -> None:
    for tag, attrs in elements:
        assert tag.rpartition("}")[2].lower() not in {"script", "iframe", "object", "embed", "base", "link",
                                                      "form", "fc", "foreignobject"}, (tag, attrs)
        for name, value in attrs.items():
            local = name.rpartition("}")[2].lower()
            assert not local.startswith("on"), (tag, attrs)
            if local == "href":  # in-page links, and matplotlib's embedded raster images
                assert (value or "").startswith(("#", "data:image/")), (tag, attrs)
            if local == "src":
                assert (value or "").startswith("data:"), (tag, attrs)


def test_html_shows_names_as_text_never_as_markup(hostile_report: Path) -> None:
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<\s*script", html, re.IGNORECASE)
    assert not re.search(r"""(?:href|src)\s*=\s*["']?\s*javascript:""", html, re.IGNORECASE)
    assert html.count("</style>") == len(re.findall(r"<style[\s>]", html)) == 1
    assert not CONTROL.search(html), "control characters reach the page"
    parser = _Elements()
    parser.feed(html)
    assert_no_active_markup(parser.elements)
    # The names are shown (escaped), not dropped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    title = re.search(r"<title>(.*?)</title>", html, re.DOTALL)
    assert title and "tests.fixtures.hostile_models:&lt;script&gt;" in title.group(1)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp and "default-src 'none'" in csp.group(1) and "script-src 'none'" in csp.group(1)


def outermost_svgs(html: str) -> list[str]:
    """Every top-level inline ``<svg>…</svg>``, nested ones (the PDF's print windows) included in
    their parent, found by counting opening and closing tags."""
    found, depth, start = [], 0, 0
    for tag in re.finditer(r"<svg\b|</svg>", html):
        if tag.group() == "</svg>":
            depth -= 1
            if depth == 0:
                found.append(html[start:tag.end()])
        else:
            if depth == 0:
                start = tag.start()
            depth += 1
    return found


def test_inline_flow_svg_is_valid_xml_with_escaped_names(hostile_report: Path) -> None:
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    svgs = outermost_svgs(html)
    assert svgs, "no inline flow diagram"
    titles: list[str] = []
    for svg in svgs:
        root = ET.fromstring(svg)  # valid XML: nothing broke out of a text node or attribute
        elements = [(el.tag, {k: v for k, v in el.attrib.items()}) for el in root.iter()]
        assert_no_active_markup(elements)
        titles += [el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}title")]
    tooltips = "\n".join(titles)
    assert ATTRIBUTE_BREAKOUT in tooltips and STYLE_BREAKOUT in tooltips and JS_URL in tooltips


def test_svg_figures_are_valid_xml_without_scripts(hostile_report: Path) -> None:
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    figures = re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)
    assert figures
    for payload in figures:
        root = ET.fromstring(base64.b64decode(payload))  # a control character would break the XML
        assert_no_active_markup([(el.tag, dict(el.attrib)) for el in root.iter()])
    alts = re.findall(r'alt="([^"]*)"', html)
    assert alts and not any(CONTROL.search(a) or "<" in a for a in alts)


def test_markdown_escapes_names(hostile_report: Path) -> None:
    md = (hostile_report / "report.md").read_text(encoding="utf-8")
    assert "<script" not in md.lower() and not CONTROL.search(md)
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in md  # the spec, escaped for HTML and Markdown


def test_json_round_trips_names_exactly(hostile_report: Path) -> None:
    record = json.loads((hostile_report / "report.json").read_text(encoding="utf-8"))
    assert record["model"]["class_name"] == SCRIPT
    assert record["model"]["spec"] == f"{HOSTILE}:{SCRIPT}"
    assert record["model"]["checkpoint_name"] == CHECKPOINT_NAME
    assert DATA_NAME in record["sample"]["source"]
    names = {layer["name"] for layer in record["activations"]["layers"]}
    assert {f"body.{ATTRIBUTE_BREAKOUT}", f"body.{ANSI}", f"body.block.layers.{STYLE_BREAKOUT}",
            "body.block.layers.\x00nul\x07bell"} <= names
    types = {layer["type"] for layer in record["activations"]["layers"]}
    assert "<img src=x onerror=alert(3)>" in types


def test_pdf_renders_names_as_inert_text(hostile_report: Path) -> None:
    pdf = (hostile_report / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    for active in (b"/JavaScript", b"/JS ", b"/Launch", b"/SubmitForm", b"javascript:"):
        assert active not in pdf
    import shutil
    import subprocess

    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(hostile_report / "report.pdf"), "-"], capture_output=True,
                              text=True, check=True).stdout
        assert "<script>alert(1)</script>" in text  # printed as the text it is
