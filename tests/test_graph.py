"""The flow graph (nnviz_report.graph → nnviz_report.flow_model) and its diagram (nnviz_report.flow_svg)."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch
import torchvision
from torch import nn

from nnviz_report.errors import ConfigError
from nnviz_report.flow_layout import Box, Layout
from nnviz_report.flow_model import FlowGraph, FlowNode, LayerRow, NodeHealth, layer_table
from nnviz_report.flow_svg import HEALTH_COLOURS, render_flow_svg
from nnviz_report.graph import extract_graph
from nnviz_report.graph.assembly import EXPANDED_NODE_LIMIT
from nnviz_report.graph.fx_extract import FxExtractor
from nnviz_report.zoo import lenet, resnet20
from tests.fixtures import graph_models as fixtures

CIFAR_BATCH = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@functools.cache
def resnet20_graph(fold: str = "auto") -> FlowGraph:
    """Shared by several tests (the graph is frozen); extracting it is the slow part."""
    return extract_graph(resnet20(), CIFAR_BATCH, fold=fold)


def graph_of(model: nn.Module, **options: object) -> FlowGraph:
    return extract_graph(model, fixtures.sample_batch(), **options)  # type: ignore[arg-type]


def node(graph: FlowGraph, node_id: str) -> FlowNode:
    return next(n for n in graph.nodes if n.id == node_id)


def inputs_of(graph: FlowGraph, node_id: str) -> list[str]:
    return [e.src for e in graph.edges if e.dst == node_id]


def ops(graph: FlowGraph) -> list[str]:
    return [n.op_type for n in graph.nodes]


# --- structure on purpose-built fixtures -----------------------------------------------------------


def test_chain_is_a_single_path_with_shapes():
    graph = graph_of(fixtures.Chain())
    assert graph.method == "torch.fx"
    assert ops(graph) == ["input", "Conv2d", "ReLU", "Flatten", "Linear", "output"]
    ids = [n.id for n in graph.nodes]
    assert [(e.src, e.dst) for e in graph.edges] == list(zip(ids, ids[1:], strict=False))
    assert not any(e.skip for e in graph.edges)
    assert node(graph, "conv").output_shape == (4, 8, 8)  # batch dimension dropped
    assert node(graph, "flatten").output_shape == (256,)
    assert node(graph, "fc").module_path == "fc"


def test_residual_add_takes_the_block_input_through_a_skip_edge():
    graph = graph_of(fixtures.ResidualBlock())
    (add,) = [n for n in graph.nodes if n.op_type == "add"]
    assert add.module_path is None
    assert sorted(inputs_of(graph, add.id)) == ["bn", "input"]
    skips = [(e.src, e.dst) for e in graph.edges if e.skip]
    assert skips == [("input", add.id)]


def test_branches_meet_in_a_concat():
    graph = graph_of(fixtures.BranchConcat())
    (cat,) = [n for n in graph.nodes if n.op_type == "cat"]
    assert inputs_of(graph, cat.id) == ["left", "right"]
    assert inputs_of(graph, "left") == inputs_of(graph, "right") == ["input"]
    assert cat.output_shape == (6, 8, 8)
    assert inputs_of(graph, "merge") == [cat.id]


def test_a_reused_module_is_two_nodes_with_its_parameters_counted_once():
    model = fixtures.ReusedModule()
    graph = graph_of(model)
    convs = [n for n in graph.nodes if n.module_path == "conv"]
    assert len(convs) == 2 and convs[0].id != convs[1].id
    assert [c.params for c in convs] == [84, 0]
    assert [c.macs for c in convs] == [5184, 5184]  # the work is done twice, though
    assert inputs_of(graph, convs[1].id) == [n.id for n in graph.nodes if n.op_type == "ReLU"][:1]


def test_untraceable_model_falls_back_to_hooks_and_keeps_the_structure():
    graph = graph_of(fixtures.DataDependent())
    assert graph.method.startswith("forward hooks (fx could not trace: ")
    assert "\n" not in graph.method
    # The value tested in the `if` (sum, gt) does not reach the output, so it is not drawn.
    assert ops(graph) == [
        "input", "Conv2d", "ReLU", "add", "AdaptiveAvgPool2d", "flatten", "Linear", "output"
    ]
    assert sorted(inputs_of(graph, "add")) == ["input", "relu"]
    assert [e.dst for e in graph.edges if e.skip] == ["add"]
    assert node(graph, "flatten").output_shape == (3,)


def test_hook_fallback_matches_fx_on_a_real_network(monkeypatch):
    model = resnet20()
    by_fx = resnet20_graph()

    def refuse(self, example_input):
        raise RuntimeError("pretend fx cannot trace this")

    monkeypatch.setattr(FxExtractor, "run", refuse)
    by_hooks = extract_graph(model, CIFAR_BATCH)
    assert by_hooks.method == "forward hooks (fx could not trace: RuntimeError: pretend fx cannot trace this)"

    def described(graph):  # ids differ between the methods; labels, shapes and wiring do not
        label = {n.id: n.label for n in graph.nodes}
        nodes = [(n.label, n.op_type, n.output_shape, n.params, n.macs) for n in graph.nodes]
        return nodes, sorted((label[e.src], label[e.dst], e.skip) for e in graph.edges)

    assert described(by_hooks) == described(by_fx)
    assert [g.label for g in by_hooks.groups] == [g.label for g in by_fx.groups]


def test_hostile_module_names_survive_and_are_escaped_in_the_svg():
    graph = graph_of(fixtures.HostileNames())
    labels = [n.label for n in graph.nodes]
    assert '<script>alert("x")</script>&' in labels and "it's" in labels
    svg = render_flow_svg(graph, href=lambda path: f"#act-{path}")
    assert "<script>" not in svg
    texts = {t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert set(labels) <= texts


# --- parameters and multiply-adds ------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [fixtures.Chain, fixtures.ResidualBlock, fixtures.BranchConcat, fixtures.ReusedModule,
     fixtures.TiedWeights, fixtures.DataDependent, lenet, resnet20],
)
def test_parameter_totals_count_every_parameter_once(factory):
    model = factory()
    graph = graph_of(model) if factory not in (lenet, resnet20) else extract_graph(model, CIFAR_BATCH)
    expected = sum(p.numel() for p in model.parameters())
    assert graph.total_params == expected
    rows = layer_table(graph)
    assert sum(r.params for r in rows) == expected
    assert sum(n.params for n in graph.nodes) == expected
    assert sum(r.macs for r in rows) == graph.total_macs == sum(n.macs for n in graph.nodes)


def test_tied_weights_and_functional_parameters():
    graph = graph_of(fixtures.TiedWeights())
    assert node(graph, "encode").params == 192 * 192
    assert node(graph, "decode").params == 192  # the shared weight is already counted: bias only
    assert node(graph, "mul").params == 192  # self.scale, read directly in forward


def test_lenet_multiply_adds_match_a_hand_count():
    graph = extract_graph(lenet(), CIFAR_BATCH)
    by_hand = 6 * 28 * 28 * 3 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert graph.total_macs == by_hand
    rows = layer_table(graph)
    assert [r.name for r in rows][:3] == ["conv1", "relu1", "pool1"]
    assert rows[0] == LayerRow("conv1", "Conv2d", (6, 28, 28), 456, 6 * 28 * 28 * 75)


def test_unused_parameters_get_their_own_row():
    model = fixtures.Chain()
    model.spare = nn.Linear(2, 2)  # registered, never called
    graph = graph_of(model)
    assert layer_table(graph)[-1].name == "(parameters not used in forward)"
    assert sum(r.params for r in layer_table(graph)) == graph.total_params == 2682 + 6


# --- folding and groups ----------------------------------------------------------------------------


def test_resnet20_folds_to_one_expanded_block_of_each_kind():
    graph = resnet20_graph()
    assert graph.fold_depth == 2
    repeats = {n.label: n.repeat for n in graph.nodes if n.op_type == "BasicBlock"}
    # layer1.0 (plain) and layer2.0 (downsampling, with a conv shortcut) are drawn in full; layer3.0
    # is the same kind as layer2.0 and collapsed; runs of identical blocks are folded.
    assert repeats == {"layer1.1–2": 2, "layer2.1–2": 2, "layer3.0": 1, "layer3.1–2": 2}
    adds = [n for n in graph.nodes if n.op_type == "add"]
    assert len(adds) == 2
    assert all(any(e.skip for e in graph.edges if e.dst == add.id) for add in adds)
    assert {g.label for g in graph.groups} == {"layer1", "layer1.0", "layer2", "layer2.0", "layer3"}
    assert all(g.parent == g.label.split(".")[0] for g in graph.groups if "." in g.label)
    assert sum(n.params for n in graph.nodes) == graph.total_params


def test_fold_always_merges_identical_consecutive_blocks():
    graph = graph_of(fixtures.Stage(), fold="always")
    folded = [n for n in graph.nodes if n.repeat > 1]
    assert len(folded) == 1
    (block,) = folded
    assert (block.repeat, block.op_type) == (3, "ResidualBlock")
    assert block.members == ("blocks.0", "blocks.1", "blocks.2")
    assert block.label == "blocks.0–2"
    assert block.params == 3 * 168
    assert ops(graph) == ["input", "ResidualBlock", "Flatten", "Linear", "output"]
    # The table stays unfolded and still adds up.
    assert len(layer_table(graph)) == 3 * 6 + 2
    assert sum(n.params for n in graph.nodes) == graph.total_params


def test_resnet20_folded_keeps_differing_blocks_apart():
    graph = resnet20_graph("always")
    repeats = {n.label: n.repeat for n in graph.nodes if n.op_type == "BasicBlock"}
    assert repeats == {"layer1.0–2": 3, "layer2.0": 1, "layer2.1–2": 2, "layer3.0": 1, "layer3.1–2": 2}


def test_fold_never_and_bad_options():
    assert graph_of(fixtures.Stage(), fold="never").fold_depth is None
    with pytest.raises(ConfigError, match="fold"):
        graph_of(fixtures.Chain(), fold="sometimes")
    with pytest.raises(ConfigError, match="group_depth"):
        graph_of(fixtures.Chain(), group_depth=-1)


def test_group_depth_limits_the_groups():
    assert {g.label for g in graph_of(fixtures.Stage(), group_depth=1, fold="never").groups} == {"blocks", "head"}
    assert graph_of(fixtures.Stage(), group_depth=0).groups == ()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "densenet121"])
def test_large_torchvision_models_fold_automatically(name):
    model = torchvision.models.get_model(name, weights=None, num_classes=10)
    unfolded = extract_graph(model, CIFAR_BATCH, fold="never")
    graph = extract_graph(model, CIFAR_BATCH)
    assert len(unfolded.nodes) > 100 and len(graph.nodes) <= EXPANDED_NODE_LIMIT
    assert graph.fold_depth is not None
    assert graph.total_params == unfolded.total_params == sum(p.numel() for p in model.parameters())
    assert sum(n.params for n in graph.nodes) == graph.total_params
    assert layer_table(graph) == layer_table(unfolded)


# --- the model comes back untouched; errors propagate ----------------------------------------------


@pytest.mark.parametrize("factory", [fixtures.ResidualBlock, fixtures.DataDependent])
@pytest.mark.parametrize("training", [True, False])
def test_model_is_left_as_it_was(factory, training):
    model = factory().train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph_of(model)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics included
    assert all(p.grad is None for p in model.parameters())


def test_errors_from_the_model_propagate_and_leave_no_hooks():
    model = fixtures.Broken().train()
    with pytest.raises(ValueError, match="broken on purpose"):
        graph_of(model)
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_graph_is_deterministic_and_json_ready():
    first, second = graph_of(fixtures.Stage()), graph_of(fixtures.Stage())
    assert first == second
    text = json.dumps(first.to_dict())
    assert json.loads(text)["nodes"][0]["id"] == "input"
    assert dataclasses.asdict(first) == first.to_dict()


# --- the SVG -------------------------------------------------------------------------------------

SVG_NS = "{http://www.w3.org/2000/svg}"


def svg_texts(svg: str) -> set[str]:
    return {t.text or "" for t in ET.fromstring(svg).iter(f"{SVG_NS}text")}


@pytest.mark.parametrize("direction", ["TB", "LR"])
@pytest.mark.parametrize("factory", [lenet, resnet20])
def test_svg_parses_and_shows_every_node_label(factory, direction):
    graph = resnet20_graph() if factory is resnet20 else extract_graph(factory(), CIFAR_BATCH)
    svg = render_flow_svg(graph, direction=direction)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}" and width > 0 < height
    assert "DejaVu Sans" in root.get("font-family")
    texts = svg_texts(svg)
    # A title inside a group box drops the box's prefix (conv1 inside layer1.0); tooltips keep it all.
    assert all(n.label in texts or any(n.label.endswith("." + t) for t in texts) for n in graph.nodes)
    tooltips = {t.text.split(" (")[0] for t in root.iter(f"{SVG_NS}title") if t.text}
    assert {n.label for n in graph.nodes} <= tooltips
    sizes = {float(t.get("font-size")) for t in root.iter(f"{SVG_NS}text")}
    assert min(sizes) >= 10
    assert render_flow_svg(graph, direction=direction) == svg


def test_folded_nodes_show_their_repeat_count():
    graph = graph_of(fixtures.Stage(), fold="always")
    assert "×3" in svg_texts(render_flow_svg(graph))


def test_health_marks_and_links():
    graph = graph_of(fixtures.Chain())
    health = {"conv": NodeHealth("fail", "dead channels 50%"), "fc": NodeHealth("ok", "fine")}
    svg = render_flow_svg(graph, health=health, href=lambda path: f"#act-{path}" if path != "relu" else None)
    root = ET.fromstring(svg)
    fills = [c.get("fill") for c in root.iter(f"{SVG_NS}circle")]
    # conv fails, fc is fine; relu and flatten have no statistics and input/output no layer: no mark.
    assert fills == [HEALTH_COLOURS["fail"], HEALTH_COLOURS["ok"]]
    links = [a.get("href") for a in root.iter(f"{SVG_NS}a")]
    assert links == ["#act-conv", "#act-flatten", "#act-fc"]
    assert "dead channels 50%" in svg


def test_bad_direction_is_rejected():
    with pytest.raises(ValueError, match="direction"):
        render_flow_svg(graph_of(fixtures.Chain()), direction="BT")


def _overlaps(a, b, slack: float = 0.0) -> bool:
    apart_x = a.right - slack <= b.x or b.right - slack <= a.x
    apart_y = a.bottom - slack <= b.y or b.bottom - slack <= a.y
    return not (apart_x or apart_y)


def _segment_box(p, q):
    return Box(min(p[0], q[0]), min(p[1], q[1]), abs(p[0] - q[0]), abs(p[1] - q[1]))


@pytest.mark.parametrize("direction", ["TB", "LR"])
@pytest.mark.parametrize("factory", [resnet20, fixtures.BranchConcat, fixtures.Stage])
def test_layout_has_no_overlapping_nodes_and_no_bypass_through_a_node(direction, factory):
    graph = resnet20_graph() if factory is resnet20 else graph_of(factory())
    layout = Layout(graph, horizontal=direction == "LR")
    boxes = {node_id: layout.node_box(p) for node_id, p in layout.placed.items()}
    items = list(boxes.values())
    assert not any(_overlaps(a, b) for i, a in enumerate(items) for b in items[i + 1:])
    bypasses = [r for r in layout.routes if len(r.points) > 2]
    assert len(bypasses) == sum(e.skip for e in graph.edges)
    for route in bypasses:
        segments = list(zip(route.points, route.points[1:], strict=False))
        for p, q in segments[1:-1]:  # the first and last segments touch their own nodes
            assert not any(_overlaps(_segment_box(p, q), box, slack=-0.5) for box in items)


def test_group_labels_stay_clear_of_nodes():
    graph = resnet20_graph()
    layout = Layout(graph, horizontal=False)
    nodes = [layout.node_box(p) for p in layout.placed.values()]
    for box in layout.group_boxes.values():
        band = type(box)(box.x, box.y, box.w, 20)
        assert not any(_overlaps(band, n) for n in nodes)


def test_flow_data_and_drawing_import_neither_torch_nor_extraction():
    code = ("import sys, nnviz_report.flow_svg, nnviz_report.report_model; "
            "sys.exit('torch' in sys.modules or 'nnviz_report.graph' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
