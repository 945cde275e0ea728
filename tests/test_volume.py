"""The report grows with what matters, not with depth: bounded feature maps, long tables folded,
a PDF of bounded length whose content stays inside the page margins, and an HTML file of bounded
size. The whole PDF is held to the issue's budgets (lenet 12 pages, resnet20 16, a torchvision
architecture at 32×32 30), and so are the sections this budget covers (Activations to the Appendix)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from nnviz_report.cli import main
from tests.test_pdf import pdf_objects

MM = 96 / 25.4  # CSS px per mm, WeasyPrint's layout unit
PAGE_WIDTH_MM, SIDE_MARGIN_MM = 210, 14
# Activations to the Appendix; with at most 4 pages of title and Summary and 3 of Flow diagram
# (and the layer table folded), these keep lenet within 12 pages and resnet20 within 16.
LENET_SECTION_PAGES = 8
RESNET20_SECTION_PAGES = 9
RESNET20_HTML_BYTES = 2_000_000


LENET_PAGES = 12  # the budgets for the whole PDF
RESNET20_PAGES = 16
TORCHVISION_PAGES = 30
DIAGRAM_WIDTH = 1400  # px, the flow diagram at its own size


def build(model: str, data: Path, out: Path, per_class: int = 2) -> Path:
    assert main(["report", "--quiet", "--model", model, "--data", str(data), "--per-class", str(per_class),
                 "--format", "html,pdf", "-o", str(out)]) in (0, 1)
    return out


def pdf_pages(out: Path) -> int:
    """Pages as an independent reader counts them: the /Count of the PDF's page tree root (the
    largest, as a root counts every page below it)."""
    counts = [int(m.group(1)) for body in pdf_objects((out / "report.pdf").read_bytes()).values()
              if re.search(rb"/Type\s*/Pages\b", body) and (m := re.search(rb"/Count\s+(\d+)", body))]
    assert counts, "no page tree found in report.pdf"
    return max(counts)


def diagram_size(out: Path) -> tuple[float, float]:
    """Width and height of the flow diagram as the HTML shows it (the first inline SVG)."""
    html = (out / "report.html").read_text(encoding="utf-8")
    size = re.search(r'<svg xmlns="http://www.w3.org/2000/svg"[^>]*? width="([\d.]+)" height="([\d.]+)"', html)
    assert size is not None
    return float(size.group(1)), float(size.group(2))


def rendered(out: Path) -> Any:
    import weasyprint

    return weasyprint.HTML(string=(out / "report.html").read_text(encoding="utf-8")).render()


def section_pages(document: Any, first: str, until: str = "robustness") -> int:
    """Pages from the one where section ``first`` starts to the one where ``until`` starts (the
    calibration and robustness probes, a section of their own) or to the end."""
    start = next(i for i, page in enumerate(document.pages) if first in page.anchors)
    stop = next((i for i, page in enumerate(document.pages) if until in page.anchors), len(document.pages) - 1)
    return stop - start + 1


def boxes(box: Any) -> list[Any]:
    found = [box]
    for child in getattr(box, "children", []):
        found += boxes(child)
    return found


def beyond_right_margin(document: Any) -> list[str]:
    """Tables, figures and images whose right edge is past the right margin, by page."""
    limit = (PAGE_WIDTH_MM - SIDE_MARGIN_MM) * MM + 1  # one px of rounding
    out = []
    for number, page in enumerate(document.pages, start=1):
        for box in boxes(page._page_box):
            tag = getattr(box, "element_tag", None)
            if tag in ("table", "img", "figure", "svg", "pre") and box.position_x + box.margin_width() > limit:
                out.append(f"page {number}: <{tag}> ends {(box.position_x + box.margin_width()) / MM:.1f} mm")
    return out


@pytest.fixture(scope="module")
def lenet(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("lenet", image_folder, tmp_path_factory.mktemp("lenet"))


def test_lenet_pdf_is_bounded_and_inside_its_margins(lenet: Path) -> None:
    document = rendered(lenet)
    assert len(document.pages) == pdf_pages(lenet) <= LENET_PAGES
    assert section_pages(document, "activations") <= LENET_SECTION_PAGES
    assert beyond_right_margin(document) == []
    assert diagram_size(lenet)[0] <= DIAGRAM_WIDTH


def test_feature_maps_for_first_convolution_and_stage_outputs(lenet: Path) -> None:
    html = (lenet / "report.html").read_text(encoding="utf-8")
    shown = re.findall(r'<div class="layer-detail" id="maps-act-([^"]+)">', html)
    # lenet: conv1 (28×28) → relu1 → pool1 (14×14) → conv2 (10×10) → relu2 → pool2 (5×5); conv1's
    # maps are shown once, after its ReLU (the output of its stage)
    assert shown == ["relu1", "pool1", "relu2", "pool2"]
    assert "first convolution conv1 after its ReLU, output of the 28×28 stage" in html
    assert "output of the 10×10 stage" in html


@pytest.mark.slow
def test_resnet20_pdf_pages_and_html_size(image_folder: Path, tmp_path: Path) -> None:
    out = build("resnet20", image_folder, tmp_path)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(html.encode("utf-8")) <= RESNET20_HTML_BYTES
    # maps for the first convolution and the three stages, not for all 21 convolutions
    shown = re.findall(r'<div class="layer-detail" id="maps-act-([^"]+)">', html)
    assert shown == ["conv1", "layer1.2.relu2", "layer2.2.relu2", "layer3.2.relu2"]
    # 63 layers (the Flatten that repeats avgpool is left out) and 65 parameter tensors: long tables
    # fold, and each row keeps one anchor
    assert html.count('<details class="long-table screen-only">') >= 3
    anchors = re.findall(r'<tr id="([^"]+)"', html)
    assert len(anchors) == len(set(anchors)) and len([a for a in anchors if a.startswith("act-")]) == 63
    document = rendered(out)
    assert len(document.pages) == pdf_pages(out) <= RESNET20_PAGES
    assert section_pages(document, "activations") <= RESNET20_SECTION_PAGES
    assert beyond_right_margin(document) == []
    assert diagram_size(out)[0] <= DIAGRAM_WIDTH


@pytest.mark.slow
@pytest.mark.parametrize("name", ["googlenet", "densenet121"])
def test_torchvision_pdf_pages_and_diagram_width(name: str, image_folder: Path, tmp_path: Path) -> None:
    """The widest fan-out (GoogLeNet's inception blocks) and a dense net whose blocks widen at every
    layer, at one image per class: the PDF within its budget and its margins, the diagram ≤ 1400 px."""
    out = build(f"torchvision:{name}", image_folder, tmp_path, per_class=1)
    assert pdf_pages(out) <= TORCHVISION_PAGES
    assert beyond_right_margin(rendered(out)) == []
    assert diagram_size(out)[0] <= DIAGRAM_WIDTH
    # random weights: a finding on nearly every layer; on paper the list stops at 30 rows and says so
    html = (out / "report.html").read_text(encoding="utf-8")
    table = html[html.index('<table class="findings">'):]
    rows = re.findall(r'<tr class="sev-\w+( screen-only)?">', table[:table.index("</table>")])
    assert len(rows) > 30 and rows == [""] * 30 + [" screen-only"] * (len(rows) - 30)
    assert f"The first 30 of {len(rows)} findings are printed, most severe first" in html


def fake_layer(name: str, kind: str, channels: int, side: int) -> Any:
    from types import SimpleNamespace

    import numpy as np

    return SimpleNamespace(name=name, type=kind, showcase_maps=np.zeros((1, channels, side, side)))


def test_stages_follow_resolution_not_width() -> None:
    """A dense block widens at every layer and stays one stage; normalisation layers are never a
    stage's output; 1×1 maps are not shown; the first convolution always is."""
    from nnviz_report.sections.stages import map_layers

    layers = [fake_layer("conv0", "Conv2d", 64, 16), fake_layer("norm0", "BatchNorm2d", 64, 16)]
    layers += [fake_layer(f"dense.{i}", "Conv2d", 64 + 32 * i, 8) for i in range(6)]
    layers += [fake_layer("dense.norm", "BatchNorm2d", 256, 8), fake_layer("pool", "AvgPool2d", 256, 4),
               fake_layer("head.pool", "AdaptiveAvgPool2d", 256, 1)]
    shown, candidates = map_layers(layers)
    assert [(layer.name, role) for layer, role in shown] == [
        ("conv0", "first convolution, output of the 16×16 stage"),
        ("dense.5", "output of the 8×8 stage"),
        ("pool", "output of the 4×4 stage"),
    ]
    assert candidates == 10  # every layer with maps of at least 2×2


def test_a_first_convolution_and_its_activation_are_one_stage_shown_once() -> None:
    """conv → ReLU at one size is shown after the ReLU; a stage with another convolution after the
    first keeps the first convolution's own maps."""
    from nnviz_report.sections.stages import map_layers

    layers = [fake_layer("conv1", "Conv2d", 6, 28), fake_layer("relu1", "ReLU", 6, 28),
              fake_layer("pool1", "MaxPool2d", 6, 14)]
    shown, _ = map_layers(layers)
    assert [(layer.name, role) for layer, role in shown] == [
        ("relu1", "first convolution conv1 after its ReLU, output of the 28×28 stage"),
        ("pool1", "output of the 14×14 stage"),
    ]
    layers = [fake_layer("conv1", "Conv2d", 6, 28), fake_layer("bn1", "BatchNorm2d", 6, 28),
              fake_layer("relu1", "ReLU", 6, 28), fake_layer("conv2", "Conv2d", 6, 28),
              fake_layer("relu2", "ReLU", 6, 28)]
    shown, _ = map_layers(layers)
    assert [(layer.name, role) for layer, role in shown] == [
        ("conv1", "first convolution"), ("relu2", "output of the 28×28 stage")]


def test_stages_capped_evenly_with_the_last() -> None:
    from nnviz_report.sections.stages import MAX_MAP_LAYERS, map_layers

    layers = [fake_layer("stem", "Conv2d", 8, 64)]
    layers += [fake_layer(f"s{side}", "ReLU", 8, side) for side in range(60, 1, -4)]  # 15 more stages
    shown, _ = map_layers(layers)
    names = [layer.name for layer, _ in shown]
    assert len(names) == MAX_MAP_LAYERS and names[0] == "stem" and names[-1] == "s4"
