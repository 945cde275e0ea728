"""The flow graph as data: nodes, edges, groups and layer rows, plus layout-independent helpers.

Graph extraction (``nnviz_report.graph``) builds these; the drawing (``flow_svg``) and the report
model read them. This module imports neither torch nor anything that draws, so archived reports
can be read back and re-drawn without either.

Everything here is a frozen dataclass of str/int/tuple/None, so it goes into report.json as is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FOLD_MODES = ("auto", "always", "never")
METHOD_FX = "torch.fx"
INPUT_ID = "input"
OUTPUT_ID = "output"


@dataclass(frozen=True)
class FlowNode:
    id: str
    label: str
    op_type: str
    module_path: str | None
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    repeat: int = 1
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowEdge:
    src: str
    dst: str
    skip: bool


@dataclass(frozen=True)
class FlowGroup:
    """One call of a container module whose nodes are drawn inside a labelled box."""

    id: str  # the call key: the module path, with "@k" for the k-th repeated call
    label: str  # the module path
    module_type: str
    parent: str | None  # id of the enclosing group, if it is a group too
    node_ids: tuple[str, ...]  # every node inside, nested groups' nodes included


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int


@dataclass(frozen=True)
class FlowGraph:
    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]
    method: str
    groups: tuple[FlowGroup, ...]
    total_params: int
    total_macs: int
    layers: tuple[LayerRow, ...] = ()  # the unfolded layer table; see layer_table()
    fold_depth: int | None = None  # module depth the blocks were folded at; None when unfolded

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NodeHealth:
    level: str  # "ok" | "info" | "warn" | "fail" | "unknown"
    note: str  # short text for the tooltip


def layer_table(graph: FlowGraph) -> tuple[LayerRow, ...]:
    """One row per module call or functional op, unfolded; the rows add up to the graph's totals."""
    return graph.layers


def longest_path_ranks(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the length of the longest path reaching it. ``node_ids`` must be in a
    topological order (execution order is). Assembly and drawing both use it, so that a skip edge
    (one that spans more than one layer) means the same in the graph as in the drawing."""
    rank = dict.fromkeys(node_ids, 0)
    incoming: dict[str, list[str]] = {n: [] for n in node_ids}
    for src, dst in edges:
        incoming[dst].append(src)
    for node_id in node_ids:
        if incoming[node_id]:
            rank[node_id] = max(rank[s] for s in incoming[node_id]) + 1
    return rank
