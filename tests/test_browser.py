"""report.html in a real browser (Debian's headless Chromium driven by Playwright): it opens
without a console error or any request beyond the file itself, its contents links land on their
sections, and nothing spills sideways in a narrow window."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nnviz_report.cli import main

CHROMIUM = Path("/usr/bin/chromium")
# No GPU, no sandbox (containers), and none of Chromium's own background traffic, so that every
# request the test sees comes from the page.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> Path | None:
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (make system-deps installs Debian's chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def report_html(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser-report")
    assert main(["report", "--quiet", "--model", "tests.fixtures.models:tiny_cnn", "--data", str(image_folder),
                 "--per-class", "2", "--format", "html,pdf", "-o", str(out)]) == 0
    return out / "report.html"


class Page:
    """A page with every console message and request recorded from before the file loads."""

    def __init__(self, browser: Any, url: str, *, width: int, color_scheme: str = "light") -> None:
        # reduced motion: no smooth scrolling, so a link's target is in place as soon as the click returns
        self.context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=color_scheme,
                                           reduced_motion="reduce")
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        self.page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(url, wait_until="load")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def wide_page(browser: Any, report_html: Path) -> Iterator[Page]:
    page = Page(browser, report_html.as_uri(), width=1280)
    yield page
    page.close()


def test_opens_without_errors_or_requests(wide_page: Page, report_html: Path, tmp_path: Path) -> None:
    wide_page.page.screenshot(path=str(tmp_path / "report-1280.png"))
    assert (tmp_path / "report-1280.png").stat().st_size > 0
    assert [m for m in wide_page.console if m.startswith(("error", "pageerror"))] == []
    assert wide_page.requests == [report_html.as_uri()]


def test_contents_links_land_on_their_sections(wide_page: Page, report_html: Path) -> None:
    page = wide_page.page
    links = page.locator("nav.toc ol a")
    targets = links.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    section_ids = page.locator("section.report-section").evaluate_all("els => els.map(e => e.id)")
    assert [t for t in targets if t[1:] in section_ids] == [f"#{s}" for s in section_ids]  # every section, in order
    assert len(targets) > len(section_ids)  # and their sub-sections
    assert page.locator("nav.toc").evaluate("e => getComputedStyle(e).position") == "fixed"  # stays in view
    for index, href in enumerate(targets):
        links.nth(index).click()
        assert page.evaluate("location.hash") == href
        target = page.locator(f"[id='{href[1:]}']")
        assert target.is_visible(), href
        top, bottom = target.evaluate("e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; }")
        assert -1 <= top < 900 and bottom > 0, f"{href} is not in the viewport after its link was clicked ({top})"
    assert wide_page.requests == [report_html.as_uri()]  # in-page links load nothing


def test_findings_link_to_their_rows(browser: Any, image_folder: Path, tmp_path: Path) -> None:
    """A model with dead ReLUs has findings; each links to an element that exists."""
    assert main(["report", "--quiet", "--model", "tests.fixtures.models:dead_relu_net", "--data", str(image_folder),
                 "--per-class", "2", "--format", "html", "-o", str(tmp_path)]) in (0, 1)
    page = Page(browser, (tmp_path / "report.html").as_uri(), width=1280)
    try:
        hrefs = page.page.locator("table.findings a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert hrefs, "the fixture model should have findings tied to layers"
        for href in hrefs:
            assert page.page.locator(f"[id='{href[1:]}']").count() == 1, href
    finally:
        page.close()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_narrow_window_does_not_scroll_sideways(browser: Any, report_html: Path, tmp_path: Path,
                                                color_scheme: str) -> None:
    page = Page(browser, report_html.as_uri(), width=800, color_scheme=color_scheme)
    try:
        page.page.screenshot(path=str(tmp_path / f"report-800-{color_scheme}.png"), full_page=True)
        assert page.page.evaluate("document.documentElement.scrollWidth") <= 800
        assert page.page.locator("nav.toc").evaluate("e => getComputedStyle(e).position") == "static"
        background = page.page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(255, 255, 255)") == (color_scheme == "light")
    finally:
        page.close()


def test_tables_keep_their_header_in_view(wide_page: Page) -> None:
    """Long tables scroll inside their own box, so the sticky header stays above the rows."""
    page = wide_page.page
    wrap = page.locator("#activations .table-wrap").first
    header = wrap.locator("thead th").first
    assert header.evaluate("e => getComputedStyle(e).position") == "sticky"
    wrap.evaluate("e => { e.style.maxHeight = '120px'; e.scrollTop = e.scrollHeight; }")
    wrap_top = wrap.evaluate("e => e.getBoundingClientRect().top")
    header_top = header.evaluate("e => e.getBoundingClientRect().top")
    assert abs(header_top - wrap_top) < 2


@pytest.mark.parametrize("width", [1280, 800])
def test_the_verdict_is_on_the_first_screen(browser: Any, image_folder: Path, tmp_path: Path, width: int) -> None:
    """Status, headline numbers, every non-passing check and the line naming the passed ones all
    lie within the first 800 px, for a model with findings (the untrained dead-ReLU fixture)."""
    assert main(["report", "--quiet", "--model", "tests.fixtures.models:dead_relu_net", "--data", str(image_folder),
                 "--per-class", "2", "--format", "html", "-o", str(tmp_path)]) in (0, 1)
    page = Page(browser, (tmp_path / "report.html").as_uri(), width=width)
    try:
        bottom = page.page.locator("#verdict").evaluate("e => e.getBoundingClientRect().bottom")
        assert bottom <= 800, f"the verdict ends at {bottom}px"
        rows = page.page.locator("#verdict > table.checklist tbody tr").count()
        assert rows >= 1  # the untrained model fails at least the chance-level check
        summary = page.page.locator("#verdict details.checklist-passed summary").inner_text()
        assert "passed:" in summary and page.page.locator("#verdict .verdict-status").inner_text().lower() == "fail"
    finally:
        page.close()


@pytest.mark.parametrize("width", [800, 1280])
def test_tables_show_every_number(browser: Any, report_html: Path, width: int) -> None:
    """No number is cut: a table either fits its box, or the box scrolls sideways with the
    first column (the row's name) pinned; the box itself never runs past the window."""
    page = Page(browser, report_html.as_uri(), width=width)
    try:
        wraps = page.page.locator(".table-wrap").evaluate_all("""els => els.filter(e => e.offsetParent).map(e => {
            const first = e.querySelector('tbody tr > :first-child');
            return {fits: e.scrollWidth <= e.clientWidth + 1, right: e.getBoundingClientRect().right,
                    overflow: getComputedStyle(e).overflowX,
                    sticky: first ? getComputedStyle(first).position : 'none'};
        })""")
        assert wraps
        for wrap in wraps:
            assert wrap["right"] <= width
            assert wrap["fits"] or (wrap["overflow"] in ("auto", "scroll") and wrap["sticky"] == "sticky"), wrap
    finally:
        page.close()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_depth_chart_labels_legible_at_800px(browser: Any, report_html: Path, color_scheme: str) -> None:
    """Each chart across depth is shown at a scale where its smallest text is at least 9 px, and
    on a transparent background (the page's own, light or dark)."""
    import base64
    import re

    page = Page(browser, report_html.as_uri(), width=800, color_scheme=color_scheme)
    try:
        charts = page.page.locator("figure.wide img.figure").evaluate_all(
            "els => els.map(e => [e.getAttribute('src'), e.getBoundingClientRect().width])")
        assert len(charts) >= 4
        for src, shown_px in charts:
            svg = base64.b64decode(src.split(",", 1)[1]).decode()
            width_pt = float(re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', svg).group(1))  # type: ignore[union-attr]
            smallest = min(float(s) for s in re.findall(r"font(?:-size)?:\s*(?:[a-z]+\s+)*([\d.]+)px", svg))
            assert smallest * shown_px / width_pt >= 9, (svg[:200], shown_px)
            assert 'fill: #ffffff' not in svg  # no white slab behind the chart
    finally:
        page.close()
