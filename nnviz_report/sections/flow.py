"""Flow: the network's data-flow graph with captured health on its nodes, and the layer table.

Extraction needs torch and is imported where it runs; drawing (``flow_figures`` and what it
uses) needs only the graph and the report's rows, so ``render`` redraws the diagram without torch."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..config import Severity
from ..flow_model import FlowGraph, LayerRow, NodeHealth
from ..flow_svg import render_flow_svg
from ..report_model import Figure, FlowSection, LayerStats, ParamStats
from .anchors import Anchors

if TYPE_CHECKING:
    import torch
    from torch import nn


def node_health(layers: Sequence[LayerStats], params: Sequence[ParamStats]) -> dict[str, NodeHealth]:
    """Per module path: the worst severity of its output and parameters, with the numbers that
    decide it (dead-channel fraction, gradient-to-weight ratio) as the node's tooltip."""
    level: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for row in layers:
        path = row.module_path
        level[path] = Severity.worst((level.get(path, "pass"), row.severity)).value
        if row.channels and row.dead_channels is not None:  # counted only after rectifiers
            notes.setdefault(path, []).append(f"dead channels {row.dead_fraction:.0%}")
    for p in params:
        path = p.module_path
        level[path] = Severity.worst((level.get(path, "pass"), p.severity)).value
        if p.ratio is not None and len(p.shape) > 1:
            notes.setdefault(path, []).append(f"grad/weight {p.ratio:.2g}")
    return {
        path: NodeHealth("ok" if lvl == "pass" else lvl, "; ".join(notes.get(path, [])) or lvl)
        for path, lvl in level.items()
    }


def flow_section(model: nn.Module, example_input: torch.Tensor, layers: Sequence[LayerStats],
                 params: Sequence[ParamStats], anchors: Anchors, *, direction: str, fold: str,
                 group_depth: int) -> FlowSection:
    from ..graph import extract_graph

    graph = extract_graph(model, example_input, group_depth=group_depth, fold=fold)
    graph, macs_counted = with_dispatch_macs(graph, model, example_input)
    diagram, pages = flow_figures(graph, direction, layers, params)
    return FlowSection(graph.method, direction, graph.fold_depth is not None, graph, graph.layers,
                       graph.total_params, graph.total_macs, macs_counted, diagram, pages)


def flow_figures(graph: FlowGraph, direction: str, layers: Sequence[LayerStats],
                 params: Sequence[ParamStats]) -> tuple[Figure, tuple[Figure, ...]]:
    """The diagram and its print pages, from the graph and the rows the report records (their
    severities colour the nodes, their anchors are the nodes' links). Drawn from them as report.json
    records them: an infinite ratio, recorded as null, is left out of a node's tooltip in both."""
    from ..report_json import recorded

    graph = recorded(FlowGraph, graph)
    layers = [recorded(LayerStats, row) for row in layers]
    params = [recorded(ParamStats, p) for p in params]
    anchors = Anchors.recorded([("act", row.name, row.anchor) for row in layers]
                               + [("grad", p.name, p.anchor) for p in params])
    health = with_folded_health(graph, node_health(layers, params))
    links = folded_links(graph, [row.module_path for row in layers], anchors)

    def href(module_path: str) -> str | None:
        anchor = (anchors.lookup("act", module_path) or anchors.lookup("grad", f"{module_path}.weight")
                  or links.get(module_path))
        return f"#{anchor}" if anchor else None

    svg = render_flow_svg(graph, direction=direction, health=health, href=href)
    diagram = Figure("flow", "image/svg+xml", svg.encode("utf-8", "backslashreplace"),  # lone surrogates in names
                     "Data-flow diagram of the network from input to logits", inline=True)
    return diagram, print_pages(svg)


def with_dispatch_macs(graph: FlowGraph, model: nn.Module, example_input: torch.Tensor) -> tuple[FlowGraph, str]:
    """The graph with multiply-adds counted at dispatch level (see ``macs``) in its rows, nodes and
    total, and what was counted; the graph's own per-layer estimate where counting fails."""
    from ..hooks import model_session
    from ..macs import COUNTED, attribute, count_macs

    try:
        with model_session(model, example_input.device):
            count = count_macs(model, example_input)
    except Exception as error:  # a model the counter cannot run (TorchScript) keeps the graph's estimate
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:160]
        return graph, f"convolution and linear weights only (dispatch-level counting failed: {reason})"
    paths = {name for name, _ in model.named_modules()}
    counted = attribute([(row.name, row.output_shape) for row in graph.layers], count, paths)
    rows, position = [], 0
    for entry in counted:
        if entry.extra:
            rows.append(LayerRow(entry.name, "matmuls in its code", None, 0, entry.macs))
        else:
            rows.append(dataclasses.replace(graph.layers[position], macs=entry.macs))
            position += 1
    by_name: dict[str, int] = {}
    for row in rows:  # a module called twice has two rows; its node stands for both calls
        by_name[row.name] = by_name.get(row.name, 0) + row.macs
    nodes = tuple(dataclasses.replace(node, macs=_node_macs(node.module_path, node.members, count.inclusive, by_name))
                  for node in graph.nodes)
    total = sum(row.macs for row in rows)
    return dataclasses.replace(graph, layers=tuple(rows), nodes=nodes, total_macs=total), COUNTED


def _node_macs(path: str | None, members: tuple[str, ...], inclusive: dict[str, int], rows: dict[str, int]) -> int:
    """A folded node holds whole blocks (their inclusive count); a layer node its row's."""
    if members:
        return sum(inclusive.get(m, 0) for m in members)
    return rows.get(path, 0) if path is not None else 0


def _inside(path: str, blocks: Sequence[str]) -> bool:
    return any(path == block or path.startswith(block + ".") for block in blocks)


def _health_rank(level: str) -> int:
    """A node's health on the one severity scale ("ok" is a pass); "unknown" below every severity."""
    return -1 if level == "unknown" else Severity.rank_of("pass" if level == "ok" else level)


def with_folded_health(graph: FlowGraph, health: Mapping[str, NodeHealth]) -> dict[str, NodeHealth]:
    """``health`` plus, for each folded node (keyed by its module path), the worst health of the
    layers inside all of its blocks, so a ×N node shows a failing member instead of "unknown"."""
    combined = dict(health)
    for node in graph.nodes:
        if not node.members or node.module_path is None:
            continue
        inside = [(path, h) for path, h in health.items() if _inside(path, node.members)]
        if not inside:
            continue
        worst_path, worst = max(inside, key=lambda item: _health_rank(item[1].level))
        note = f"worst of {len(inside)} layers: {worst_path}" + (f" ({worst.note})" if worst.note else "")
        combined[node.module_path] = NodeHealth(worst.level, note)
    return combined


def folded_links(graph: FlowGraph, layer_paths: Sequence[str], anchors: Anchors) -> dict[str, str]:
    """A folded node links to the first of its layers that has rows below."""
    links: dict[str, str] = {}
    for node in graph.nodes:
        if not node.members or node.module_path is None:
            continue
        for path in layer_paths:
            anchor = anchors.lookup("act", path) if _inside(path, node.members) else None
            if anchor:
                links[node.module_path] = anchor
                break
    return links


# A4 content at 96 px per inch is about 688 px wide and 986 px high; a page-high window leaves room
# for its caption. The first window shares its page with the section's heading and introduction, so it
# is shorter. A diagram at most FITS_ONE_PAGE high is drawn once, scaled by the print CSS.
PAGE_WIDTH = 688
PAGE_WINDOW = 900
SHRINK_TO_ONE_PAGE = 0.8
FIRST_PAGE_WINDOW = 640
FITS_ONE_PAGE = 1075
MAX_PRINT_PAGES = 3
# Room kept around each node at a cut, and for the second card behind a folded (×N) node.
_NODE_CLEARANCE = 4.0

_SVG_SIZE = re.compile(r'<svg [^>]*?width="([\d.]+)" height="([\d.]+)" viewBox="0 0 [\d.]+ [\d.]+"')
_TRANSLATE = re.compile(r'<g transform="translate\((-?[\d.]+),(-?[\d.]+)\)">')
_NODE_RECT = re.compile(r'<g class="node"[^>]*>(?:<a [^>]*>)?<title>[^<]*</title>'
                        r'<rect x="-?[\d.]+" y="(-?[\d.]+)" width="[\d.]+" height="([\d.]+)"')


def print_pages(svg: str) -> tuple[Figure, ...]:
    """A tall diagram cannot continue onto the next PDF page, so the PDF shows it in windows: the
    same SVG with successive viewBoxes, cut only between nodes, scaled to the page width and, where
    needed, further so that it takes at most ``MAX_PRINT_PAGES`` pages. It stays vector: a PDF
    viewer's zoom brings back every label."""
    size, shift = _SVG_SIZE.match(svg), _TRANSLATE.search(svg)
    if size is None or shift is None:
        return ()
    width, height = float(size.group(1)), float(size.group(2))
    if height <= FITS_ONE_PAGE:
        return ()
    dy = float(shift.group(2))
    nodes = sorted((float(y) + dy, float(y) + dy + float(h)) for y, h in _NODE_RECT.findall(svg))
    scale = min(1.0, PAGE_WIDTH / width)
    windows = print_windows(height, nodes, scale)
    while len(windows) > MAX_PRINT_PAGES:
        scale *= 0.92
        windows = print_windows(height, nodes, scale)
    if len(windows) == 2 and height * scale * SHRINK_TO_ONE_PAGE <= PAGE_WINDOW:
        # Two windows where a modest shrink makes one: a page of its own, whole, at ≥ 80 % of its size.
        scale, windows = PAGE_WINDOW / height, [(0.0, height)]
    pages: list[Figure] = []
    for top, bottom in windows:
        window = bottom - top
        header = f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" ' \
                 f'width="{width * scale:.1f}" height="{window * scale:.1f}" viewBox="0 {top:g} {width:g} {window:g}"'
        page = header + svg[size.end():]
        pages.append(Figure(f"flow-page-{len(pages) + 1}", "image/svg+xml", page.encode("utf-8"),
                            f"Data-flow diagram, part {len(pages) + 1}", inline=True))
    return tuple(pages)


def print_windows(height: float, nodes: Sequence[tuple[float, float]], scale: float) -> list[tuple[float, float]]:
    """Consecutive (top, bottom) windows covering ``[0, height]`` in diagram units, each at most a
    page high once scaled, each cut in a gap between node boxes so that no node is split."""
    windows: list[tuple[float, float]] = []
    top = 0.0
    while top < height:
        limit = top + (FIRST_PAGE_WINDOW if not windows else PAGE_WINDOW) / scale
        if limit >= height:
            windows.append((top, height))
            break
        cut = limit
        for y0, y1 in reversed(nodes):  # bottom-up: move the cut above any node it would split
            if y0 - _NODE_CLEARANCE < cut < y1 + _NODE_CLEARANCE:
                cut = y0 - _NODE_CLEARANCE
        if cut <= top:  # a node taller than a page: cannot happen with fixed-height nodes; cut anyway
            cut = limit
        windows.append((top, cut))
        top = cut
    return windows
