"""Flow: the network's data-flow graph with captured health on its nodes, and the layer table."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import torch
from torch import nn

from ..flow_svg import NodeHealth, render_flow_svg
from ..graph import FlowGraph, LayerRow, extract_graph
from ..report_model import Figure, LayerStats, ParamStats
from .anchors import Anchors


@dataclasses.dataclass(frozen=True)
class FlowSection:
    method: str
    direction: str
    folded: bool
    graph: FlowGraph
    layers: tuple[LayerRow, ...]
    total_params: int
    total_macs: int
    diagram: Figure
    print_pages: tuple[Figure, ...]  # the diagram cut into page-high windows for the PDF; () when it fits one page


def node_health(layers: Sequence[LayerStats], params: Sequence[ParamStats]) -> dict[str, NodeHealth]:
    """Per module path: the worst severity of its output and parameters, with the numbers that
    decide it (dead-channel fraction, gradient-to-weight ratio) as the node's tooltip."""
    rank = {"pass": 0, "warn": 1, "fail": 2}
    level: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for row in layers:
        path = row.module_path
        level[path] = max(level.get(path, "pass"), row.severity, key=rank.__getitem__)
        if row.channels and row.type in {"ReLU", "ReLU6", "LeakyReLU"}:
            notes.setdefault(path, []).append(f"dead channels {row.dead_fraction:.0%}")
    for p in params:
        path = p.module_path
        level[path] = max(level.get(path, "pass"), p.severity, key=rank.__getitem__)
        if p.ratio is not None and len(p.shape) > 1:
            notes.setdefault(path, []).append(f"grad/weight {p.ratio:.2g}")
    return {
        path: NodeHealth("ok" if lvl == "pass" else lvl, "; ".join(notes.get(path, [])) or lvl)
        for path, lvl in level.items()
    }


def flow_section(model: nn.Module, example_input: torch.Tensor, layers: Sequence[LayerStats],
                 params: Sequence[ParamStats], anchors: Anchors, *, direction: str, fold: str,
                 group_depth: int) -> FlowSection:
    graph = extract_graph(model, example_input, group_depth=group_depth, fold=fold)

    def href(module_path: str) -> str | None:
        anchor = anchors.lookup("act", module_path) or anchors.lookup("grad", f"{module_path}.weight")
        return f"#{anchor}" if anchor else None

    svg = render_flow_svg(graph, direction=direction, health=node_health(layers, params), href=href)
    diagram = Figure("flow", "image/svg+xml", svg.encode("utf-8", "backslashreplace"),  # lone surrogates in names
                     "Data-flow diagram of the network from input to logits", inline=True)
    return FlowSection(graph.method, direction, graph.fold_depth is not None, graph, graph.layers,
                       graph.total_params, graph.total_macs, diagram, print_pages(svg))


# A4 content height at 96 px per inch is about 940 px; a window that tall, drawn at the diagram's own
# scale, keeps every label at its screen size. The first window shares its page with the section's
# heading and introduction, so it is shorter. Windows overlap by more than a node's height so that
# every node is whole on at least one page.
PAGE_WINDOW = 860
FIRST_PAGE_WINDOW = 640
PAGE_OVERLAP = 70


def print_pages(svg: str) -> tuple[Figure, ...]:
    """A tall diagram cannot continue onto the next PDF page, and scaled to one page its labels
    become unreadable, so the PDF shows it in windows: the same SVG with successive viewBoxes."""
    match = re.match(r'<svg [^>]*?width="([\d.]+)" height="([\d.]+)" viewBox="0 0 [\d.]+ [\d.]+"', svg)
    if match is None:
        return ()
    width, height = float(match.group(1)), float(match.group(2))
    if height <= PAGE_WINDOW * 1.25:
        return ()
    pages = []
    top = 0.0
    while top < height:
        window = min(PAGE_WINDOW if pages else FIRST_PAGE_WINDOW, height - top)
        header = f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" ' \
                 f'width="{width:g}" height="{window:g}" viewBox="0 {top:g} {width:g} {window:g}"'
        page = header + svg[match.end():]
        pages.append(Figure(f"flow-page-{len(pages) + 1}", "image/svg+xml", page.encode("utf-8"),
                            f"Data-flow diagram, part {len(pages) + 1}", inline=True))
        if top + window >= height:
            break
        top += window - PAGE_OVERLAP
    return tuple(pages)
