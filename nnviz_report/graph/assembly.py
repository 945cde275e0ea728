"""Assembly: raw nodes → ``flow_model.FlowGraph``: pruning, the layer table, folding identical
consecutive blocks, skip edges and group boxes. No torch here: it works on ``RawNode`` lists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..flow_model import (
    INPUT_ID,
    OUTPUT_ID,
    FlowEdge,
    FlowGraph,
    FlowGroup,
    FlowNode,
    LayerRow,
    longest_path_ranks,
)
from .raw import RawNode, Scope, dedup

# "auto" keeps the first block of each kind expanded only while the diagram has at most this many
# nodes: about three A4 pages, or three screens at 1280 px.
EXPANDED_NODE_LIMIT = 48


def prune_unreachable(nodes: list[RawNode]) -> list[RawNode]:
    """Drop nodes whose value never reaches the output (e.g. a value only tested in an ``if``)."""
    by_id = {n.id: n for n in nodes}
    alive = {OUTPUT_ID}
    for node in reversed(nodes):
        if node.id in alive:
            alive.update(node.inputs)
    alive.add(INPUT_ID)
    kept = [n for n in nodes if n.id in alive]
    for node in kept:
        node.inputs = [i for i in node.inputs if i in alive and i in by_id]
    return kept


# --------------------------------------------------------------------------------------------------
# Assembly: layer table, folding, skip edges, groups
# --------------------------------------------------------------------------------------------------


def assemble(raw: list[RawNode], method: str, total_params: int, *, group_depth: int,
             fold: str) -> FlowGraph:
    layers = _layer_rows(raw, total_params)
    unfolded = _Drawn.from_raw(raw)
    fold_depth, expanded = _choose_fold(raw, unfolded, group_depth, fold)
    drawn = unfolded if fold_depth is None else _fold(raw, fold_depth, expanded)
    nodes = tuple(drawn.nodes)
    edges = _edges_with_skips(nodes, drawn.edges)
    groups = _groups(drawn, group_depth, fold_depth)
    return FlowGraph(nodes=nodes, edges=edges, method=method, groups=groups,
                     total_params=total_params, total_macs=sum(r.macs for r in layers),
                     layers=layers, fold_depth=fold_depth)


def _layer_rows(raw: list[RawNode], total_params: int) -> tuple[LayerRow, ...]:
    rows = [LayerRow(_row_name(n), n.op_type, n.output_shape, n.params, n.macs)
            for n in raw if n.id not in (INPUT_ID, OUTPUT_ID)]
    unused = total_params - sum(r.params for r in rows)
    if unused:  # parameters the forward pass never touched still belong to the model's total
        rows.append(LayerRow("(parameters not used in forward)", "—", None, unused, 0))
    return tuple(rows)


def _row_name(node: RawNode) -> str:
    """A module's path; a functional op prefixed with the container that calls it, so that every
    block's ``add`` has its own name (``layer1.0.add``) in the layer table."""
    if node.module_path is not None or not node.scope:
        return node.label
    return f"{node.scope[-1][1]}.{node.label}"


def _path_depth(path: str) -> int:
    return path.count(".") + 1


@dataclass
class _Drawn:
    """Nodes and edges to draw, with each node's enclosing container calls (for groups)."""

    nodes: list[FlowNode]
    edges: list[tuple[str, str]]
    scopes: dict[str, Scope]

    @staticmethod
    def from_raw(raw: list[RawNode]) -> _Drawn:
        nodes = [FlowNode(n.id, n.label, n.op_type, n.module_path, n.output_shape, n.params, n.macs)
                 for n in raw]
        edges = [(src, n.id) for n in raw for src in n.inputs]
        return _Drawn(nodes, edges, {n.id: n.scope for n in raw})


def _choose_fold(raw: list[RawNode], unfolded: _Drawn, group_depth: int,
                 fold: str) -> tuple[int | None, frozenset[str]]:
    """The module depth to fold at, and the block calls at that depth left expanded.

    "auto" takes the depth whose folding leaves the fewest nodes when the first block of each
    distinct kind stays expanded (so every kind is shown once in full); then keeps those first
    blocks expanded, in order, while the diagram stays within ``EXPANDED_NODE_LIMIT`` nodes. No
    fold when no depth makes the diagram smaller."""
    if fold == "never":
        return None, frozenset()
    if fold == "always":
        return max(group_depth, 1), frozenset()
    deepest = max((_path_depth(path) for n in raw for _, path, _ in n.scope), default=0)
    best: tuple[int, int] | None = None  # (node count, -depth)
    for depth in range(deepest, 0, -1):
        candidate = (len(_fold(raw, depth, _first_of_each_kind(raw, depth)).nodes), -depth)
        best = candidate if best is None or candidate < best else best
    if best is None or best[0] >= len(unfolded.nodes):
        return None, frozenset()
    depth = -best[1]
    expanded: frozenset[str] = frozenset()
    for call in _first_of_each_kind(raw, depth):
        wider = expanded | {call}
        if len(_fold(raw, depth, wider).nodes) <= EXPANDED_NODE_LIMIT:
            expanded = wider
    return depth, expanded


def _first_of_each_kind(raw: list[RawNode], depth: int) -> list[str]:
    """The first call of each distinct kind of block at ``depth``, in execution order."""
    members: dict[str, list[RawNode]] = {}
    types: dict[str, str] = {}
    parents = _parents(raw)
    for node in raw:
        key = _collapse_key(node.scope, depth, parents)
        if key is not None:
            members.setdefault(key[0], []).append(node)
            types[key[0]] = key[2]
    seen: set[tuple[Any, ...]] = set()
    first = []
    for call, group in members.items():
        # Geometry aside: a stride-2 variant of a block teaches nothing its stride-1 twin does not.
        kind = (types[call], tuple(n.op_type for n in group))
        if kind not in seen:
            seen.add(kind)
            first.append(call)
    return first


def _parents(raw: list[RawNode]) -> set[str]:
    """Container calls that hold other containers."""
    return {entry[0] for n in raw for entry in n.scope[:-1]}


def _collapse_key(scope: Scope, depth: int, parents: set[str]) -> tuple[str, str, str] | None:
    """The container call at ``depth`` (or the shallowest deeper one) that swallows a node; or,
    when there is none, the innermost container if it is below the top level and holds layers only
    (DenseNet's transitions between dense blocks at depth 3), so that it folds like a block."""
    found = next((entry for entry in scope if _path_depth(entry[1]) >= depth), None)
    if found is None and len(scope) > 1 and scope[-1][0] not in parents:
        return scope[-1]
    return found


def _fold(raw: list[RawNode], depth: int, expanded: Iterable[str] = ()) -> _Drawn:
    """Collapse the container calls at ``depth`` into one node each (all but those in
    ``expanded``), then merge runs of identical consecutive blocks into one node marked ×N."""
    blocks = _collapse(raw, depth, frozenset(expanded))
    return _merge_runs(blocks)


@dataclass
class _Block:
    """A drawn node before run-merging: a single raw node, or a collapsed container call."""

    node: FlowNode
    scope: Scope  # containers around it (outside the collapsed one)
    signature: tuple[Any, ...] | None  # None: never merged
    inputs: list[str]


def _collapse(raw: list[RawNode], depth: int, expanded: frozenset[str]) -> list[_Block]:
    owner: dict[str, str] = {}  # raw node id -> drawn node id
    order: list[tuple[str, tuple[str, str, str] | None]] = []
    grouped: dict[str, list[RawNode]] = {}
    parents = _parents(raw)
    for node in raw:
        key = _collapse_key(node.scope, depth, parents)
        if key is not None and key[0] in expanded:
            key = None
        drawn_id = key[0] if key else node.id
        owner[node.id] = drawn_id
        if drawn_id not in grouped:
            grouped[drawn_id] = []
            order.append((drawn_id, key))
        grouped[drawn_id].append(node)
    # Members whose value is used outside their own block: a collapsed block's output is its last one.
    exported = {i for n in raw for i in n.inputs if owner[i] != owner[n.id]}
    blocks = []
    for drawn_id, key in order:
        group = grouped[drawn_id]
        inputs = dedup(owner[i] for n in group for i in n.inputs if owner[i] != drawn_id)
        if key is None:
            (node,) = group
            flow = FlowNode(node.id, node.label, node.op_type, node.module_path, node.output_shape,
                            node.params, node.macs)
            blocks.append(_Block(flow, node.scope, None, inputs))
            continue
        blocks.append(_collapsed_block(drawn_id, key, group, inputs, exported))
    return blocks


def _signature(type_name: str, group: list[RawNode]) -> tuple[Any, ...]:
    """What makes two blocks the same kind: their class, the op types and geometry of their
    members, and how the members are wired; widths and shapes are left out, so blocks whose
    channel count grows (DenseNet's) fold too."""
    inside = {n.id for n in group}
    position = {n.id: k for k, n in enumerate(group)}
    wiring = tuple(sorted((position[i], position[n.id]) for n in group for i in n.inputs if i in inside))
    return type_name, tuple((n.op_type, n.structure) for n in group), wiring


def _collapsed_block(drawn_id: str, key: tuple[str, str, str], group: list[RawNode],
                     inputs: list[str], exported: set[str]) -> _Block:
    _, path, type_name = key
    out = next((n for n in reversed(group) if n.id in exported), group[-1])
    signature = _signature(type_name, group)
    scope = group[0].scope[: group[0].scope.index(key)]
    flow = FlowNode(drawn_id, path, type_name, path, out.output_shape,
                    sum(n.params for n in group), sum(n.macs for n in group), members=(path,))
    return _Block(flow, scope, signature, inputs)


def _merge_runs(blocks: list[_Block]) -> _Drawn:
    consumers: dict[str, set[str]] = {}
    for block in blocks:
        for src in block.inputs:
            consumers.setdefault(src, set()).add(block.node.id)
    runs: list[list[_Block]] = []
    for block in blocks:
        last = runs[-1][-1] if runs else None
        if (last is not None and block.signature is not None and block.signature == last.signature
                and block.scope == last.scope and last.node.id in block.inputs
                and _keeps_every_edge(runs[-1], block, consumers)):
            runs[-1].append(block)
        else:
            runs.append([block])
    owner = {b.node.id: run[0].node.id for run in runs for b in run}
    nodes: list[FlowNode] = []
    edges: list[tuple[str, str]] = []
    scopes: dict[str, Any] = {}
    for run in runs:
        first = run[0]
        node = first.node if len(run) == 1 else _merged_node(run)
        nodes.append(node)
        scopes[node.id] = first.scope
        srcs = dedup(owner[i] for b in run for i in b.inputs if owner[i] != node.id)
        edges.extend((src, node.id) for src in srcs)
    return _Drawn(nodes, edges, scopes)


def _keeps_every_edge(run: list[_Block], block: _Block, consumers: dict[str, set[str]]) -> bool:
    """Merging must never hide an edge: whatever a member of the run feeds outside it, the new last
    member must feed too, so the ×N node's edge stands for each member's (a DenseNet block's final
    concat takes every layer's output)."""
    inside = {b.node.id for b in run} | {block.node.id}
    reached = consumers.get(block.node.id, set())
    return all(consumers.get(b.node.id, set()) - inside <= reached for b in run)


def _merged_node(run: list[_Block]) -> FlowNode:
    first, last = run[0].node, run[-1].node
    head, _, _ = first.label.rpartition(".")
    last_head, _, last_tail = last.label.rpartition(".")
    label = f"{first.label}–{last_tail}" if head == last_head else f"{first.label}–{last.label}"
    return FlowNode(first.id, label, first.op_type, first.module_path, last.output_shape,
                    sum(b.node.params for b in run), sum(b.node.macs for b in run),
                    repeat=len(run), members=tuple(m for b in run for m in b.node.members))


def _edges_with_skips(nodes: tuple[FlowNode, ...], edges: list[tuple[str, str]]) -> tuple[FlowEdge, ...]:
    """An edge that jumps over layers (a residual shortcut, a skip into a concat) is a skip edge."""
    unique = list(dict.fromkeys(edges))  # first occurrence order: deterministic
    rank = longest_path_ranks([n.id for n in nodes], unique)
    return tuple(FlowEdge(src, dst, rank[dst] - rank[src] > 1) for src, dst in unique)


def _groups(drawn: _Drawn, group_depth: int, fold_depth: int | None) -> tuple[FlowGroup, ...]:
    # Folded: blocks at the fold depth that stay expanded get their own box.
    limit = group_depth if fold_depth is None or group_depth == 0 else fold_depth
    members: dict[str, list[str]] = {}
    info: dict[str, tuple[str, str, str | None]] = {}
    for node in drawn.nodes:
        parent = None
        for key, path, type_name in drawn.scopes[node.id]:
            if _path_depth(path) > limit:
                break
            members.setdefault(key, []).append(node.id)
            info.setdefault(key, (path, type_name, parent))
            parent = key
    return tuple(FlowGroup(key, info[key][0], info[key][1], info[key][2], tuple(ids))
                 for key, ids in members.items())
