"""Layout invariants of the flow diagram on purpose-built graphs, and its size on real architectures:
folding by structure, centred fan-outs, no overlaps, no hidden edges, print windows that cut no node."""

from __future__ import annotations

import colorsys
import functools
import itertools
import re
import xml.etree.ElementTree as ET

import pytest
import torch
import torchvision
from torch import nn

from nnviz_report.flow_layout import Layout
from nnviz_report.flow_model import FlowGraph, NodeHealth
from nnviz_report.flow_svg import HEALTH_COLOURS, render_flow_svg
from nnviz_report.graph import extract_graph
from nnviz_report.sections.anchors import Anchors
from nnviz_report.sections.flow import (
    FIRST_PAGE_WINDOW,
    MAX_PRINT_PAGES,
    MIN_COLUMN_SCALE,
    PAGE_WIDTH,
    PAGE_WINDOW,
    folded_links,
    print_layout,
    print_pages,
    with_folded_health,
)
from nnviz_report.zoo import lenet, resnet20
from tests.fixtures import graph_models as fixtures

CIFAR_BATCH = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
SVG_NS = "{http://www.w3.org/2000/svg}"
# The diagram's column at a 1280 px viewport: the fixed contents bar (230), main's padding (2 × 32)
# and the scroll box's padding and border (2 × 9); a wider SVG is scaled down to this width.
COLUMN_AT_1280 = 1280 - 230 - 2 * 32 - 2 * 9


@functools.cache
def graph_of(name: str, **options: str) -> FlowGraph:
    if name in ("lenet", "resnet20"):
        return extract_graph({"lenet": lenet, "resnet20": resnet20}[name](), CIFAR_BATCH, **options)
    if hasattr(fixtures, name):
        return extract_graph(getattr(fixtures, name)(), fixtures.sample_batch(), **options)
    torch.manual_seed(0)
    # googlenet warns that its default initialisation will change unless init_weights is given
    init = {"init_weights": False} if name == "googlenet" else {}
    model = torchvision.models.get_model(name, weights=None, num_classes=10, **init)
    return extract_graph(model, CIFAR_BATCH, **options)


def boxes_overlap(a, b) -> bool:
    return not (a.right <= b.x or b.right <= a.x or a.bottom <= b.y or b.bottom <= a.y)


# --- folding ---------------------------------------------------------------------------------------


def test_a_dense_chain_of_growing_width_folds():
    unfolded = graph_of("DenseChain", fold="never")
    widths = [n.output_shape[0] for n in unfolded.nodes if n.op_type == "cat"]
    assert widths == [5, 7, 9, 11]  # every layer is wider than the one before
    graph = graph_of("DenseChain")
    assert graph.fold_depth == 2
    (folded,) = [n for n in graph.nodes if n.repeat > 1]
    # The first layer is drawn in full, the other three are one node marked ×3.
    assert (folded.label, folded.repeat, folded.op_type) == ("dense.1–3", 3, "DenseLayer")
    assert folded.members == ("dense.1", "dense.2", "dense.3")
    assert folded.output_shape == (11, 8, 8)
    assert [g.label for g in graph.groups if g.label.startswith("dense.")] == ["dense.0"]
    assert sum(n.params for n in graph.nodes) == graph.total_params


def test_merging_never_hides_an_edge():
    graph = graph_of("TwinsWithSideExit", fold="always", group_depth=1)
    by_label = {n.label: n.id for n in graph.nodes}
    # first and second are identical and consecutive, but first also feeds side: no ×2 node.
    assert all(n.repeat == 1 for n in graph.nodes)
    edges = {(e.src, e.dst) for e in graph.edges}
    assert (by_label["first"], by_label["second"]) in edges
    assert (by_label["first"], by_label["side"]) in edges


def test_every_edge_of_a_folded_graph_joins_the_nodes_that_own_its_ends():
    unfolded, graph = graph_of("resnet20", fold="never"), graph_of("resnet20")
    owner: dict[str, str] = {}
    for node in unfolded.nodes:
        path = node.module_path or ""
        folded = next((f.id for f in graph.nodes if f.id == node.id), None) or next(
            (f.id for f in graph.nodes for m in f.members if path.startswith(m + ".")), None)
        if folded is not None:
            owner[node.id] = folded
    drawn = {(e.src, e.dst) for e in graph.edges}
    checked = 0
    for edge in unfolded.edges:
        src, dst = owner.get(edge.src), owner.get(edge.dst)
        if src is not None and dst is not None and src != dst:
            assert (src, dst) in drawn, edge
            checked += 1
    assert checked > 20


def test_parameter_only_operations_are_not_nodes():
    graph = graph_of("LayerScale")
    assert [n.op_type for n in graph.nodes] == ["input", "Conv2d", "mul", "flatten", "output"]
    mul = next(n for n in graph.nodes if n.op_type == "mul")
    assert mul.params == 3  # gamma, counted where the data flow meets it
    assert sum(r.params for r in graph.layers) == graph.total_params == 3 * 3 + 3 + 3


def test_the_hook_fallback_counts_parameters_used_by_functional_ops():
    graph = graph_of("UntraceablePositionEmbedding")
    assert graph.method.startswith("forward hooks")
    assert "(parameters not used in forward)" not in [r.name for r in graph.layers]
    add = next(n for n in graph.nodes if n.op_type == "add")
    assert add.params == 3 * 8 * 8
    assert sum(n.params for n in graph.nodes) == graph.total_params


def test_layer_table_names_each_blocks_add_apart():
    names = [r.name for r in graph_of("resnet20").layers]
    adds = [n for n in names if n.endswith("add")]
    assert adds == [f"layer{s}.{b}.add" for s in (1, 2, 3) for b in range(3)]


# --- layout ----------------------------------------------------------------------------------------


def test_a_six_way_fan_out_is_centred_under_its_parent():
    layout = Layout(graph_of("SixWayFanOut"), horizontal=False)
    stem = layout.placed["stem"].cross_center
    branches = sorted(p.cross_center for p in layout.placed.values() if p.node.label.startswith("branches."))
    assert len(branches) == 6
    assert sum(branches) / 6 == pytest.approx(stem, abs=0.5)
    assert branches[0] < stem < branches[-1]
    assert branches[2] - branches[0] == pytest.approx(branches[5] - branches[3], abs=25)


@pytest.mark.parametrize("name", ["SixWayFanOut", "DenseChain", "TwinsWithSideExit", "SideBySideBlocks", "resnet20",
                                  "googlenet"])
@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_no_node_box_overlaps_another_and_sibling_groups_stay_apart(name, direction):
    graph = graph_of(name)
    layout = Layout(graph, horizontal=direction == "LR")
    boxes = [layout.node_box(p) for p in layout.placed.values()]
    assert not any(boxes_overlap(a, b) for a, b in itertools.combinations(boxes, 2))
    for a, b in itertools.combinations(graph.groups, 2):
        if a.parent == b.parent:
            assert not boxes_overlap(layout.group_boxes[a.id], layout.group_boxes[b.id]), (a.label, b.label)


def test_skip_edges_are_drawn_outside_the_health_palette():
    svg = render_flow_svg(graph_of("resnet20"))
    dashed = set(re.findall(r'stroke="(#[0-9a-f]{6})" stroke-width="1.4" stroke-dasharray', svg))
    assert len(dashed) == 1
    (colour,) = dashed
    assert colour not in HEALTH_COLOURS.values()
    # Neutral: a blue hue, far from the red, amber and green of fail, warn and ok.
    hue, _, _ = colorsys.rgb_to_hls(*(int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)))
    assert 0.5 <= hue <= 0.75


# --- health on folded nodes ------------------------------------------------------------------------


def test_folded_nodes_carry_the_worst_health_of_their_members():
    graph = graph_of("resnet20")
    health = {"layer1.0.conv1": NodeHealth("ok", ""), "layer1.2.conv1": NodeHealth("fail", "dead"),
              "layer1.1.bn1": NodeHealth("warn", ""), "layer3.0.conv1": NodeHealth("warn", "x")}
    combined = with_folded_health(graph, health)
    assert combined["layer1.1"].level == "fail" and "layer1.2.conv1" in combined["layer1.1"].note
    assert combined["layer3.0"].level == "warn"
    assert "layer2.1" not in combined  # no statistics inside: no dot rather than "unknown"
    svg = render_flow_svg(graph, health=combined)
    fills = re.findall(r'<circle [^>]*fill="(#[0-9a-f]{6})"', svg)
    assert fills.count(HEALTH_COLOURS["fail"]) == 1 and fills.count(HEALTH_COLOURS["warn"]) == 1
    assert HEALTH_COLOURS["unknown"] not in fills


def test_folded_nodes_link_to_the_first_of_their_layers_with_rows():
    graph = graph_of("resnet20")
    anchors = Anchors()
    rows = ["layer1.1.relu1", "layer1.1.relu2", "layer1.2.relu1", "layer3.1.relu1"]
    for path in rows:
        anchors("act", path)
    links = folded_links(graph, ["conv1", *rows], anchors)
    assert links == {"layer1.1": "act-layer1.1.relu1", "layer3.1": "act-layer3.1.relu1"}


# --- sizes -----------------------------------------------------------------------------------------


def _svg_size(svg: str | bytes) -> tuple[float, float]:
    root = ET.fromstring(svg)
    return float(root.get("width")), float(root.get("height"))


def _node_spans(svg: str | bytes, dy: float) -> list[tuple[str, float, float]]:
    """(tooltip, top, bottom) of every node box, in the diagram's coordinates."""
    spans = []
    for g in ET.fromstring(svg).iter(f"{SVG_NS}g"):
        if g.get("class") == "node":
            rect = next(g.iter(f"{SVG_NS}rect"))
            y0 = float(rect.get("y")) + dy
            spans.append((next(g.iter(f"{SVG_NS}title")).text, y0, y0 + float(rect.get("height"))))
    return spans


def _print_windows(svg: str) -> list[list[tuple[float, float, float, list[str]]]]:
    """Per PDF page, its windows side by side: (top, bottom, scale, tooltips of the nodes drawn in it),
    after checking that the page fits the page width and height and the windows do not overlap."""
    dy = float(re.search(r'<g transform="translate\(-?[\d.]+,(-?[\d.]+)\)">', svg).group(1))
    pages = []
    for page in print_pages(svg):
        root = ET.fromstring(page.data)
        page_width, page_height = _svg_size(page.data)
        assert page_width <= PAGE_WIDTH + 0.1 and page_height <= PAGE_WINDOW + 0.1
        windows, right = [], 0.0
        for window in root.findall(f"{SVG_NS}svg"):
            x, w, h = (float(window.get(k)) for k in ("x", "width", "height"))
            _left, top, view_w, view_h = (float(v) for v in window.get("viewBox").split())
            assert x >= right - 0.1 and x + w <= page_width + 0.1 and h <= page_height + 0.1
            right = x + w
            scale = w / view_w
            assert h / view_h == pytest.approx(scale, rel=1e-3)
            drawn = [title for title, _, _ in _node_spans(ET.tostring(window), dy)]
            windows.append((top, top + view_h, scale, drawn))
        pages.append(windows)
    return pages


def _assert_readable_and_paged(graph: FlowGraph) -> tuple[float, int]:
    svg = render_flow_svg(graph)
    width, height = _svg_size(svg)
    assert width <= 1400
    smallest = min(float(t.get("font-size")) for t in ET.fromstring(svg).iter(f"{SVG_NS}text"))
    assert smallest * min(1.0, COLUMN_AT_1280 / width) >= 9
    pages = _print_windows(svg)
    assert len(pages) <= MAX_PRINT_PAGES
    windows = [w for page in pages for w in page]
    if windows:  # contiguous, covering the whole diagram, every node whole in one window and drawn only there
        assert windows[0][0] == 0 and windows[-1][1] == pytest.approx(height)
        assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(windows))
        dy = float(re.search(r'<g transform="translate\(-?[\d.]+,(-?[\d.]+)\)">', svg).group(1))
        for title, y0, y1 in _node_spans(svg, dy):
            (home,) = [w for w in windows if w[0] <= y0 and y1 <= w[1]]
            assert [w for w in windows if title in w[3]] == [home], title
    return width, len(pages)


def test_print_windows_never_cut_a_node_even_on_a_long_chain():
    chain = nn.Sequential(*(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()) if k % 2 else nn.Conv2d(3, 3, k % 3 * 2 + 1,
                                                                                               padding="same")
                            for k in range(40)))
    graph = extract_graph(chain, fixtures.sample_batch(), fold="never")
    assert _svg_size(render_flow_svg(graph))[1] > 3 * PAGE_WINDOW
    _assert_readable_and_paged(graph)


@pytest.mark.parametrize(("name", "pages"), [("lenet", 1), ("resnet20", 2)])
def test_reference_diagrams_fit_the_screen_and_three_pages(name, pages):
    assert _assert_readable_and_paged(graph_of(name))[1] == pages


def test_a_narrow_diagram_prints_in_columns_side_by_side():
    """lenet's chain is 183 px wide and 1088 px high: its windows stand side by side on one page,
    at full size, with balanced heights, instead of one page-high column (or one shrunk to 80 %)."""
    svg = render_flow_svg(graph_of("lenet"))
    width, height = _svg_size(svg)
    assert height > PAGE_WINDOW
    (page,) = _print_windows(svg)
    assert len(page) >= 3 and all(scale == pytest.approx(1.0) for _, _, scale, _ in page)
    tallest = max(bottom - top for top, bottom, _, _ in page)
    assert tallest <= FIRST_PAGE_WINDOW and tallest < 1.25 * height / len(page)
    (figure,) = print_pages(svg)
    assert figure.alt == f"Data-flow diagram, in {len(page)} columns read from left to right"


def test_a_wide_diagram_prints_in_columns_only_while_its_text_stays_legible():
    """resnet20's diagram (456 px) fits two columns at 77 % of its size: two pages instead of three;
    three columns would print it below MIN_COLUMN_SCALE."""
    svg = render_flow_svg(graph_of("resnet20"))
    pages = _print_windows(svg)
    assert [len(page) for page in pages] == [2, 2]
    assert all(MIN_COLUMN_SCALE <= scale < 1 for page in pages for _, _, scale, _ in page)
    scale = round(pages[0][0][2] * 100)
    assert [f.alt for f in print_pages(svg)] == [
        f"Data-flow diagram, part {n} of 2, in 2 columns read from left to right, at {scale} % of its size"
        for n in (1, 2)]


def test_a_last_page_holding_a_sliver_is_saved_by_a_slightly_smaller_diagram():
    """A one-column chain 60 px taller than its first two windows: at 94 % it takes two pages, not a
    third for its last node."""
    height = FIRST_PAGE_WINDOW + PAGE_WINDOW + 60
    nodes = [(12 + 78 * k, 62 + 78 * k) for k in range(int((height - 74) // 78) + 1)]
    columns, scale, windows = print_layout(680, height, nodes)
    assert columns == 1 and len(windows) == 2 and 0.88 <= scale < 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["googlenet", "densenet121", "mobilenet_v3_small"])
def test_torchvision_diagrams_fit_the_screen_and_three_pages(name):
    graph = graph_of(name)
    assert graph.fold_depth is not None
    _assert_readable_and_paged(graph)
