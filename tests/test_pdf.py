"""report.pdf: one bookmark per heading, metadata from the HTML head, page numbers, and every page
readable by an independent reader (poppler's pdftoppm, pdftotext, pdfinfo)."""

from __future__ import annotations

import html as html_lib
import re
import shutil
import subprocess
import unicodedata
import zlib
from pathlib import Path

import pytest

from nnviz_report.cli import main

HEADING = re.compile(r"<h([1-3])\b[^>]*>(.*?)</h\1>", re.DOTALL)


def text_of(fragment: str) -> str:
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def normalised(text: str) -> str:
    # NFKC folds typographic ligatures (ﬁ) that a PDF text layer may hold back into letters
    return " ".join(unicodedata.normalize("NFKC", text).split())


def poppler(tool: str, *args: str) -> str:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (poppler-utils; make system-deps installs it)")
    return subprocess.run([tool, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def report(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pdf-report")
    assert main(["report", "--quiet", "--model", "tests.fixtures.models:tiny_cnn", "--data", str(image_folder),
                 "--per-class", "2", "--format", "html,pdf", "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def headings(report: Path) -> list[tuple[int, str]]:
    html = (report / "report.html").read_text(encoding="utf-8")
    found = [(int(level), text_of(inner)) for level, inner in HEADING.findall(html)]
    assert [level for level, _ in found].count(1) == 1 and len(found) > 10
    return found


def pdf_objects(data: bytes) -> dict[int, bytes]:
    """Every indirect object by number, object streams unpacked: just enough of a PDF reader to
    check the outline WeasyPrint wrote."""
    objects: dict[int, bytes] = {}
    for m in re.finditer(rb"(\d+) 0 obj\s*(.*?)endobj", data, re.DOTALL):
        objects[int(m.group(1))] = m.group(2)
    for body in list(objects.values()):
        if b"/ObjStm" not in body:
            continue
        head, _, rest = body.partition(b"stream")
        raw = rest.lstrip(b"\r\n").rsplit(b"endstream", 1)[0]
        content = zlib.decompress(raw) if b"/FlateDecode" in head else raw
        first = int(re.search(rb"/First (\d+)", head).group(1))  # type: ignore[union-attr]
        numbers = [int(x) for x in content[:first].split()]
        pairs = list(zip(numbers[::2], numbers[1::2], strict=True))
        for i, (number, offset) in enumerate(pairs):
            end = pairs[i + 1][1] if i + 1 < len(pairs) else len(content) - first
            objects[number] = content[first + offset:first + end]
    return objects


def test_bookmarks_one_per_heading(report: Path, headings: list[tuple[int, str]]) -> None:
    import weasyprint

    document = weasyprint.HTML(string=(report / "report.html").read_text(encoding="utf-8")).render()

    def flatten(tree: list, depth: int = 1) -> list[tuple[int, str]]:
        found = []
        for label, _target, children, _state in tree:
            found.append((depth, " ".join(label.split())))
            found.extend(flatten(children, depth + 1))
        return found

    assert flatten(document.make_bookmark_tree()) == headings

    objects = pdf_objects((report / "report.pdf").read_bytes())
    catalog = next(body for body in objects.values() if b"/Type /Catalog" in body)
    outlines = re.search(rb"/Outlines (\d+) 0 R", catalog)
    assert outlines, "the PDF has no outline (bookmarks)"
    count = re.search(rb"/Count (\d+)", objects[int(outlines.group(1))])
    assert count and int(count.group(1)) == len(headings)


def test_bookmarks_as_poppler_reads_them(report: Path, headings: list[tuple[int, str]]) -> None:
    xml = poppler("pdftohtml", "-xml", "-i", "-q", "-stdout", str(report / "report.pdf"))
    items = [normalised(html_lib.unescape(t)) for t in re.findall(r"<item[^>]*>(.*?)</item>", xml)]
    assert items == [normalised(text) for _, text in headings]


def test_metadata_from_the_html_head(report: Path) -> None:
    html = (report / "report.html").read_text(encoding="utf-8")
    lines = poppler("pdfinfo", str(report / "report.pdf")).splitlines()
    info = {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}
    title = text_of(re.search(r"<title>(.*?)</title>", html).group(1))  # type: ignore[union-attr]
    assert info["Title"] == title
    assert info["Subject"] == "nnviz_report for tests.fixtures.models:tiny_cnn"
    assert "PyTorch" in info["Keywords"] and info["Author"].startswith("nnviz_report")
    assert info["Page size"].endswith("(A4)")
    assert int(info["Pages"]) >= 5


def test_every_page_renders(report: Path, tmp_path: Path) -> None:
    pages = int(re.search(r"Pages:\s+(\d+)", poppler("pdfinfo", str(report / "report.pdf"))).group(1))  # type: ignore[union-attr]
    poppler("pdftoppm", "-r", "30", "-png", str(report / "report.pdf"), str(tmp_path / "page"))
    rendered = sorted(tmp_path.glob("page-*.png"))
    assert len(rendered) == pages
    assert all(p.stat().st_size > 500 for p in rendered)


def test_headings_and_page_numbers_are_text(report: Path, headings: list[tuple[int, str]]) -> None:
    text = poppler("pdftotext", "-enc", "UTF-8", str(report / "report.pdf"), "-")
    flat = normalised(text)
    for _, heading in headings:
        assert normalised(heading) in flat, heading
    pages = text.split("\f")[:-1]
    total = len(pages)
    for number, page in enumerate(pages, start=1):
        assert f"{number} / {total}" in page  # the running footer


def test_screen_only_details_are_not_handed_to_weasyprint() -> None:
    """The folded full tables are hidden in print; WeasyPrint still styles every element it is given,
    so they are left out before it parses the page (efficientnet_v2_s: 15 s → 6 s of layout)."""
    from nnviz_report.render.pdf import without_screen_only_details

    folded = ('<details class="long-table screen-only"><summary>All 3 layers</summary>'
              "<table><tr><td>a</td></tr></table></details>")
    shown = '<details class="layer-detail"><summary>maps</summary><p>kept</p></details>'
    nested = '<details class="layer-detail screen-only"><details><summary>inner</summary></details></details>'
    html = f"<main><p>before</p>{folded}{shown}<p>between</p>{folded}{nested}</main>"
    assert without_screen_only_details(html) == f"<main><p>before</p>{shown}<p>between</p>{nested}</main>"

