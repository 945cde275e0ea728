"""The report grows with what matters, not with depth: bounded feature maps, long tables folded,
a PDF of bounded length whose content stays inside the page margins, and an HTML file of bounded
size. The page counts are those of the sections this budget covers (Activations to the Appendix);
the title, Summary and Flow pages come before them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from nnviz_report.cli import main

MM = 96 / 25.4  # CSS px per mm, WeasyPrint's layout unit
PAGE_WIDTH_MM, SIDE_MARGIN_MM = 210, 14
# Activations to the Appendix; with at most 4 pages of title and Summary and 3 of Flow diagram
# (and the layer table folded), these keep lenet within 12 pages and resnet20 within 16.
LENET_SECTION_PAGES = 8
RESNET20_SECTION_PAGES = 9
RESNET20_HTML_BYTES = 2_000_000


def build(model: str, data: Path, out: Path) -> Path:
    assert main(["report", "--quiet", "--model", model, "--data", str(data), "--per-class", "2",
                 "--format", "html,pdf", "-o", str(out)]) in (0, 1)
    return out


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
    assert section_pages(document, "activations") <= LENET_SECTION_PAGES
    assert beyond_right_margin(document) == []


def test_feature_maps_for_first_convolution_and_stage_outputs(lenet: Path) -> None:
    html = (lenet / "report.html").read_text(encoding="utf-8")
    shown = re.findall(r'<div class="layer-detail" id="maps-act-([^"]+)">', html)
    # lenet: conv1 (28×28) → relu1 → pool1 (14×14) → conv2 (10×10) → relu2 → pool2 (5×5)
    assert shown == ["conv1", "relu1", "pool1", "relu2", "pool2"]
    assert "first convolution" in html and "output of the 10×10 stage" in html


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
    assert section_pages(document, "activations") <= RESNET20_SECTION_PAGES
    assert beyond_right_margin(document) == []


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


def test_stages_capped_evenly_with_the_last() -> None:
    from nnviz_report.sections.stages import MAX_MAP_LAYERS, map_layers

    layers = [fake_layer("stem", "Conv2d", 8, 64)]
    layers += [fake_layer(f"s{side}", "ReLU", 8, side) for side in range(60, 1, -4)]  # 15 more stages
    shown, _ = map_layers(layers)
    names = [layer.name for layer, _ in shown]
    assert len(names) == MAX_MAP_LAYERS and names[0] == "stem" and names[-1] == "s4"
