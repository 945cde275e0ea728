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
# for its caption. The first page also holds the section's heading and introduction, so its windows
# are shorter. A diagram no wider than the page and at most FIRST_PAGE_WINDOW high is drawn once,
# as it is on screen.
PAGE_WIDTH = 688
PAGE_WINDOW = 900
FIRST_PAGE_WINDOW = 640
MAX_PRINT_PAGES = 3
# A narrow diagram is printed in up to MAX_COLUMNS windows side by side, like a newspaper column, as
# long as that keeps it at MIN_COLUMN_SCALE or more of its size (its 10.5 px detail lines then print
# at 6 pt): lenet's chain fits beside itself on a third of a page instead of filling one alone.
MAX_COLUMNS = 4
MIN_COLUMN_SCALE = 0.76
COLUMN_GAP = 16.0
# Side by side, each window leaves out most of the diagram's empty side margin. A diagram is shrunk
# by up to 12 % where that saves a page holding only its last few nodes.
_COLUMN_CROP = 10.0
# Room kept around each node at a cut, and for the second card behind a folded (×N) node.
_NODE_CLEARANCE = 4.0

_SVG_SIZE = re.compile(r'<svg [^>]*?width="([\d.]+)" height="([\d.]+)" viewBox="0 0 [\d.]+ [\d.]+"')
_TRANSLATE = re.compile(r'<g transform="translate\((-?[\d.]+),(-?[\d.]+)\)">')
_NODE_RECT = re.compile(r'<g class="node"[^>]*>(?:<a [^>]*>)?<title>[^<]*</title>'
                        r'<rect x="-?[\d.]+" y="(-?[\d.]+)" width="[\d.]+" height="([\d.]+)"')
_FIRST_RECT = re.compile(r'<rect x="-?[\d.]+" y="(-?[\d.]+)" width="[\d.]+" height="([\d.]+)"')
_POINTS = re.compile(r'(?:d|points)="([^"]+)"')
_NUMBER = re.compile(r"-?[\d.]+")
_NODE_ID = re.compile(r' id="flow-[^"]*"')

Windows = list[list[tuple[float, float]]]  # per page, the (top, bottom) of each column in diagram units


def print_pages(svg: str) -> tuple[Figure, ...]:
    """A tall diagram cannot continue onto the next PDF page, so the PDF shows it in windows of the
    same drawing, cut only between nodes: one per page, or several side by side where the diagram is
    narrow, scaled to the page width and, where needed, further so that it takes at most
    ``MAX_PRINT_PAGES`` pages. It stays vector: a PDF viewer's zoom brings back every label.

    Each window holds only the elements that reach into it (a node, an edge, a group box), so that
    the PDF draws the diagram about once in all rather than once per window."""
    size, shift = _SVG_SIZE.match(svg), _TRANSLATE.search(svg)
    if size is None or shift is None:
        return ()
    width, height = float(size.group(1)), float(size.group(2))
    if height <= FIRST_PAGE_WINDOW and width <= PAGE_WIDTH:
        return ()
    dy = float(shift.group(2))
    nodes = sorted((float(y) + dy, float(y) + dy + float(h)) for y, h in _NODE_RECT.findall(svg))
    columns, scale, windows = print_layout(width, height, nodes)
    lines = _elements(svg[size.end():])
    spans = [_line_span(line, dy) for line in lines]
    crop = _COLUMN_CROP if columns > 1 else 0.0
    column_width = (width - 2 * crop) * scale
    pages: list[str] = []
    for page in windows:
        parts = []
        for column, (top, bottom) in enumerate(page):
            window = bottom - top
            body = "\n".join(line for line, span in zip(lines, spans, strict=True)
                             if span is None or (span[0] < bottom and span[1] > top))
            parts.append(f'<svg x="{column * (column_width + COLUMN_GAP):.1f}" y="0" width="{column_width:.1f}" '
                         f'height="{window * scale:.1f}" viewBox="{crop:g} {top:g} {width - 2 * crop:g} {window:g}"'
                         + _NODE_ID.sub("", body))
        page_width = len(page) * column_width + (len(page) - 1) * COLUMN_GAP
        page_height = max(bottom - top for top, bottom in page) * scale
        document = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                    f'width="{page_width:.1f}" height="{page_height:.1f}" '
                    f'viewBox="0 0 {page_width:.1f} {page_height:.1f}" role="img">\n' + "\n".join(parts) + "</svg>\n")
        pages.append(document)
    return tuple(Figure(f"flow-page-{number}", "image/svg+xml", document.encode("utf-8"),
                        _caption(number, len(pages), columns, scale), inline=True)
                 for number, document in enumerate(pages, start=1))


def _caption(number: int, count: int, columns: int, scale: float) -> str:
    part = f"Data-flow diagram, part {number} of {count}" if count > 1 else "Data-flow diagram"
    if columns > 1:
        part += f", in {columns} columns read from left to right"
    return part + (f", at {scale * 100:.0f} % of its size" if scale < 0.995 else "")


def _elements(body: str) -> list[str]:
    """``flow_svg`` writes one element per line (a group box, an edge, an arrow head, a node); a
    tooltip's line breaks continue its element, and escaped text never starts a line with ``<``."""
    elements: list[str] = []
    for line in body.split("\n"):
        if elements and not line.startswith("<"):
            elements[-1] += "\n" + line
        else:
            elements.append(line)
    return elements


def _line_span(line: str, dy: float) -> tuple[float, float] | None:
    """The vertical extent of one drawn element (``flow_svg`` writes one per line: a group box, an
    edge, an arrow head, a node); None for the document's own lines, which every window keeps."""
    if line.startswith(('<g class="group"', '<g class="node"')):
        rect = _FIRST_RECT.search(line)
        if rect is None:
            return None
        y = float(rect.group(1)) + dy
        return y, y + float(rect.group(2)) + 3  # the card behind a folded node
    if line.startswith(("<path", "<polygon")):
        points = _POINTS.search(line)
        if points is None:
            return None
        ys = [float(v) + dy for v in _NUMBER.findall(points.group(1))[1::2]]
        return min(ys), max(ys)
    return None


def print_layout(width: float, height: float, nodes: Sequence[tuple[float, float]]) -> tuple[int, float, Windows]:
    """Columns per page, scale and windows: the fewest pages with text at ``MIN_COLUMN_SCALE`` or more
    of its size, then the largest scale, then the lowest (the one most likely to share its page with
    the text around it); the largest scale where no layout keeps that size."""
    candidates = []
    for columns in range(1, MAX_COLUMNS + 1):
        content = width - (2 * _COLUMN_CROP if columns > 1 else 0.0)
        scale = min(1.0, (PAGE_WIDTH - (columns - 1) * COLUMN_GAP) / columns / content)
        windows = paginate(height, nodes, scale, columns)
        while len(windows) > MAX_PRINT_PAGES:
            scale *= 0.92
            windows = paginate(height, nodes, scale, columns)
        # a last page with a sliver of the diagram: a slightly smaller diagram saves that page, unless
        # that would take legible columns below MIN_COLUMN_SCALE
        for step in range(1, 5):
            smaller = scale * (1 - 0.03 * step)
            if len(windows) == 1 or (scale >= MIN_COLUMN_SCALE > smaller):
                break
            shorter = paginate(height, nodes, smaller, columns)
            if len(shorter) < len(windows):
                scale, windows = smaller, shorter
                break
        candidates.append((columns, scale, windows))
    def tallest(candidate: tuple[int, float, Windows]) -> float:
        return max(bottom - top for page in candidate[2] for top, bottom in page) * candidate[1]

    legible = [c for c in candidates if c[1] >= MIN_COLUMN_SCALE - 1e-9]
    if legible:
        return min(legible, key=lambda c: (len(c[2]), -round(c[1], 6), tallest(c)))
    return min(candidates, key=lambda c: (-round(c[1], 6), len(c[2]), tallest(c)))


def paginate(height: float, nodes: Sequence[tuple[float, float]], scale: float, columns: int) -> Windows:
    """Pages of up to ``columns`` consecutive windows covering ``[0, height]`` in diagram units, each
    at most a page high once scaled and cut in a gap between node boxes; the last page's columns are
    balanced (the shortest window height that still takes the rest in ``columns`` windows)."""
    pages: Windows = []
    top = 0.0
    while top < height:
        limit = (FIRST_PAGE_WINDOW if not pages else PAGE_WINDOW) / scale
        page = _greedy(top, height, nodes, limit, columns)
        if page[-1][1] >= height and columns > 1:
            low = max((y1 - y0 for y0, y1 in nodes if y1 > top), default=0.0) + 2 * _NODE_CLEARANCE
            high = limit
            for _ in range(24):
                middle = (low + high) / 2
                if len(trial := _greedy(top, height, nodes, middle, columns + 1)) <= columns \
                        and trial[-1][1] >= height:
                    high = middle
                else:
                    low = middle
            page = _greedy(top, height, nodes, high, columns)
        pages.append(page)
        top = page[-1][1]
    return pages


def _greedy(top: float, height: float, nodes: Sequence[tuple[float, float]], limit: float,
            count: int) -> list[tuple[float, float]]:
    """Up to ``count`` consecutive windows from ``top``, each at most ``limit`` high."""
    windows: list[tuple[float, float]] = []
    while top < height and len(windows) < count:
        if top + limit >= height:
            windows.append((top, height))
            break
        cut = top + limit
        for y0, y1 in reversed(nodes):  # bottom-up: move the cut above any node it would split
            if y0 - _NODE_CLEARANCE < cut < y1 + _NODE_CLEARANCE:
                cut = y0 - _NODE_CLEARANCE
        if cut <= top:  # a node taller than a page: cannot happen with fixed-height nodes; cut anyway
            cut = top + limit
        windows.append((top, cut))
        top = cut
    return windows
