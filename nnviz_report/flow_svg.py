"""The Flow diagram: a layered layout of a ``FlowGraph`` drawn to a standalone SVG string.

Why a pure-Python layout instead of graphviz: the report must build from a plain ``pip install`` (no
system binaries), be byte-for-byte deterministic across machines and graphviz versions, and look the
same in the HTML and the PDF — WeasyPrint renders inline SVG but runs no JavaScript, so no browser
layout either. Network graphs are nearly chains, so a simple layered (Sugiyama-style) layout is enough:

1. rank = longest path from the input, so every edge points down (or right with ``direction="LR"``);
2. within a rank, nodes sit under the mean of their predecessors and are pushed sideways only to avoid
   overlap, which keeps the main path straight and puts side branches (shortcuts) beside it;
3. an edge spanning more than one rank (a residual shortcut, a skip into a concat) is routed as a
   bypass in a lane to the side of every node it passes, so it never runs through text;
4. group boxes (container modules) get a label band above their first nodes, and the gaps between
   ranks grow to fit the boxes that close and open there.

This module imports no torch: it reads the graph's dataclasses only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from nnviz_report.graph import FlowGraph, FlowGroup, FlowNode

FONT_FAMILY = "DejaVu Sans, Arial, sans-serif"
HEALTH_COLOURS = {"ok": "#2e7d32", "info": "#1565c0", "warn": "#f9a825", "fail": "#c62828", "unknown": "#9e9e9e"}
DIRECTIONS = ("TB", "LR")

_TITLE_PX = 12.0
_DETAIL_PX = 10.5
_CHAR_W = 0.6  # average glyph width as a fraction of the font size (DejaVu Sans is a bit wider)
_BOLD_CHAR_W = 0.66
_NODE_H = 50.0
_NODE_PAD_X = 10.0
_HEALTH_ROOM = 16.0  # space kept at the right of the title for the health mark
_MIN_NODE_W = 96.0
_RANK_GAP = 28.0  # between ranks, before room for group boxes
_CROSS_GAP = 24.0  # between neighbours in one rank, before room for group boxes
_GROUP_PAD = 8.0
_GROUP_BAND = 24.0  # label band at the top of a group box
_GROUP_PX = 10.5
_LANE_GAP = 10.0
_CORNER = 7.0
_MARGIN = 12.0
_EDGE_COLOUR = "#546e7a"
_SKIP_COLOUR = "#d84315"


@dataclass(frozen=True)
class NodeHealth:
    level: str  # "ok" | "info" | "warn" | "fail" | "unknown"
    note: str  # short text for the tooltip


def render_flow_svg(
    graph: FlowGraph,
    *,
    direction: str = "TB",
    health: Mapping[str, NodeHealth] | None = None,
    href: Callable[[str], str | None] = lambda module_path: None,
) -> str:
    """The diagram as a standalone SVG document (a string); the same input gives the same string."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    layout = _Layout(graph, horizontal=direction == "LR")
    return _Drawing(layout, health or {}, href).svg()


def longest_path_ranks(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the length of the longest path reaching it. ``node_ids`` must be in a
    topological order (execution order is). ``graph`` uses it too, so that a skip edge (one that
    spans more than one layer) means the same there as in the drawing."""
    rank = dict.fromkeys(node_ids, 0)
    incoming: dict[str, list[str]] = {n: [] for n in node_ids}
    for src, dst in edges:
        incoming[dst].append(src)
    for node_id in node_ids:
        if incoming[node_id]:
            rank[node_id] = max(rank[s] for s in incoming[node_id]) + 1
    return rank


# --------------------------------------------------------------------------------------------------
# Text and numbers
# --------------------------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return escape(_XML_INVALID.sub("?", value))


def _attr(value: str) -> str:
    return quoteattr(_XML_INVALID.sub("?", value))


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _text_width(text: str, px: float, bold: bool = False) -> float:
    return len(text) * px * (_BOLD_CHAR_W if bold else _CHAR_W)


def _compact_count(n: int) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "×".join(str(s) for s in shape) if shape else "–"


@dataclass(frozen=True)
class _NodeText:
    title: str
    repeat: str  # "×N" or ""
    kind: str
    detail: str

    @staticmethod
    def of(node: FlowNode) -> _NodeText:
        detail = _shape_text(node.output_shape)
        if node.params:
            detail += f" · {_compact_count(node.params)} params"
        return _NodeText(node.label, f"×{node.repeat}" if node.repeat > 1 else "", node.op_type, detail)

    def width(self) -> float:
        title = _text_width(self.title, _TITLE_PX, bold=True)
        if self.repeat:
            title += 6 + _text_width(self.repeat, _TITLE_PX, bold=True)
        details = (_text_width(self.kind, _DETAIL_PX), _text_width(self.detail, _DETAIL_PX))
        return max(_MIN_NODE_W, title + _HEALTH_ROOM + 2 * _NODE_PAD_X, max(details) + 2 * _NODE_PAD_X)


# --------------------------------------------------------------------------------------------------
# Layout, in rank/cross coordinates: rank runs along the flow (down for TB, right for LR)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h


@dataclass
class _PlacedNode:
    node: FlowNode
    text: _NodeText
    rank: int
    index: int
    rank_size: float
    cross_size: float
    cross_center: float = 0.0
    rank_start: float = 0.0
    groups: frozenset[str] = frozenset()

    @property
    def rank_end(self) -> float:
        return self.rank_start + self.rank_size

    @property
    def cross_start(self) -> float:
        return self.cross_center - self.cross_size / 2

    @property
    def cross_end(self) -> float:
        return self.cross_center + self.cross_size / 2


@dataclass
class _Route:
    """An edge as a polyline in physical coordinates; ``heading`` is the arrow's direction."""

    points: list[tuple[float, float]]
    skip: bool
    heading: tuple[float, float]


@dataclass
class _Layout:
    graph: FlowGraph
    horizontal: bool
    placed: dict[str, _PlacedNode] = field(default_factory=dict)
    group_boxes: dict[str, _Box] = field(default_factory=dict)
    routes: list[_Route] = field(default_factory=list)

    def __post_init__(self) -> None:
        graph = self.graph
        self.ranks = longest_path_ranks([n.id for n in graph.nodes], [(e.src, e.dst) for e in graph.edges])
        self.preds: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
        for edge in graph.edges:
            self.preds[edge.dst].append(edge.src)
        self.groups_of = self._groups_of_nodes()
        self._measure_nodes()
        self._place_ranks()
        self._place_cross()
        self._box_groups()
        self._route_edges()

    # -- structure ------------------------------------------------------------------------------

    def _groups_of_nodes(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {n.id: set() for n in self.graph.nodes}
        for group in self.graph.groups:
            for node_id in group.node_ids:
                found[node_id].add(group.id)
        return {k: frozenset(v) for k, v in found.items()}

    def _measure_nodes(self) -> None:
        for index, node in enumerate(self.graph.nodes):
            text = _NodeText.of(node)
            w = text.width()
            rank_size, cross_size = (w, _NODE_H) if self.horizontal else (_NODE_H, w)
            self.placed[node.id] = _PlacedNode(node, text, self.ranks[node.id], index, rank_size,
                                               cross_size, groups=self.groups_of[node.id])
        self.by_rank: list[list[_PlacedNode]] = [[] for _ in range(max(self.ranks.values(), default=0) + 1)]
        for placed in self.placed.values():
            self.by_rank[placed.rank].append(placed)

    # -- along the flow -------------------------------------------------------------------------

    def _group_span(self, group: FlowGroup) -> tuple[int, int]:
        ranks = [self.ranks[n] for n in group.node_ids]
        return min(ranks), max(ranks)

    def _group_margins(self) -> tuple[dict[str, float], dict[str, float]]:
        """How far each group box reaches before its first rank and after its last one, nested
        boxes that open (close) at the same rank included."""
        children: dict[str | None, list[FlowGroup]] = {}
        for group in self.graph.groups:
            children.setdefault(group.parent, []).append(group)
        opening: dict[str, float] = {}
        closing: dict[str, float] = {}
        start_pad = _GROUP_PAD if self.horizontal else _GROUP_BAND

        def visit(group: FlowGroup) -> None:
            first, last = self._group_span(group)
            kids = children.get(group.id, [])
            for kid in kids:
                visit(kid)
            opening[group.id] = start_pad + max(
                (opening[k.id] for k in kids if self._group_span(k)[0] == first), default=0.0)
            closing[group.id] = _GROUP_PAD + max(
                (closing[k.id] for k in kids if self._group_span(k)[1] == last), default=0.0)

        for root in children.get(None, []):
            visit(root)
        return opening, closing

    def _place_ranks(self) -> None:
        opening, closing = self._group_margins()
        count = len(self.by_rank)
        before = [0.0] * count
        after = [0.0] * count
        for group in self.graph.groups:
            first, last = self._group_span(group)
            before[first] = max(before[first], opening[group.id])
            after[last] = max(after[last], closing[group.id])
        position = _MARGIN + before[0]
        for rank, nodes in enumerate(self.by_rank):
            band = max((p.rank_size for p in nodes), default=0.0)
            for placed in nodes:
                placed.rank_start = position + (band - placed.rank_size) / 2
            if rank + 1 < count:
                position += band + after[rank] + _RANK_GAP + before[rank + 1]

    # -- across the flow ------------------------------------------------------------------------

    def _cross_gap(self, first: _PlacedNode, second: _PlacedNode) -> float:
        only_first = len(first.groups - second.groups)
        only_second = len(second.groups - first.groups)
        second_pad = _GROUP_BAND if self.horizontal else _GROUP_PAD
        return _CROSS_GAP + only_first * _GROUP_PAD + only_second * second_pad

    def _desired_center(self, placed: _PlacedNode) -> float:
        preds = [self.placed[p] for p in self.preds[placed.node.id]]
        near = [p for p in preds if p.rank == placed.rank - 1] or preds
        return sum(p.cross_center for p in near) / len(near) if near else 0.0

    def _place_cross(self) -> None:
        for nodes in self.by_rank:
            desired = {p.node.id: self._desired_center(p) for p in nodes}
            nodes.sort(key=lambda p: (desired[p.node.id], p.index))
            previous: _PlacedNode | None = None
            for placed in nodes:
                center = desired[placed.node.id]
                if previous is not None:
                    least = previous.cross_end + self._cross_gap(previous, placed) + placed.cross_size / 2
                    center = max(center, least)
                placed.cross_center = center
                previous = placed

    # -- physical coordinates -------------------------------------------------------------------

    def xy(self, rank: float, cross: float) -> tuple[float, float]:
        return (rank, cross) if self.horizontal else (cross, rank)

    def node_box(self, placed: _PlacedNode) -> _Box:
        x, y = self.xy(placed.rank_start, placed.cross_start)
        w, h = self.xy(placed.rank_size, placed.cross_size)
        return _Box(x, y, w, h)

    # -- group boxes ----------------------------------------------------------------------------

    def _box_groups(self) -> None:
        children: dict[str | None, list[FlowGroup]] = {}
        for group in self.graph.groups:
            children.setdefault(group.parent, []).append(group)

        def visit(group: FlowGroup) -> _Box:
            kids = [visit(kid) for kid in children.get(group.id, [])]
            nodes = [self.node_box(self.placed[n]) for n in group.node_ids]
            parts = kids + nodes
            left = min(b.x for b in parts) - _GROUP_PAD
            top = min(b.y for b in parts) - _GROUP_BAND
            right = max(b.right for b in parts) + _GROUP_PAD
            bottom = max(b.bottom for b in parts) + _GROUP_PAD
            if not self.horizontal:
                left = min(left, self._label_clear_left(group, top))
            box = _Box(left, top, right - left, bottom - top)
            self.group_boxes[group.id] = box
            return box

        for root in children.get(None, []):
            visit(root)

    def _label_clear_left(self, group: FlowGroup, top: float) -> float:
        """Where the box must start so its label ends before the edges entering its first nodes."""
        first, _ = self._group_span(group)
        entries = [self.placed[n].cross_center for n in group.node_ids if self.ranks[n] == first]
        label = _text_width(_group_title(group), _GROUP_PX) + 2 * 6
        return min(entries) - 8 - label

    # -- edges ----------------------------------------------------------------------------------

    def _route_edges(self) -> None:
        lanes: list[tuple[int, int, float, str, str]] = []
        side_out: dict[str, list[str]] = {}
        side_in: dict[str, list[str]] = {}
        skips = [e for e in self.graph.edges if self.ranks[e.dst] - self.ranks[e.src] > 1]
        for edge in skips:
            if self._is_last_in_rank(edge.src):
                side_out.setdefault(edge.src, []).append(edge.dst)
            if self._is_last_in_rank(edge.dst):
                side_in.setdefault(edge.dst, []).append(edge.src)
        # Short bypasses first, so they hug the nodes and longer ones go round them.
        skips.sort(key=lambda e: (self.ranks[e.dst] - self.ranks[e.src], self.placed[e.src].index))
        for edge in self.graph.edges:
            if self.ranks[edge.dst] - self.ranks[edge.src] <= 1:
                self.routes.append(self._adjacent_route(edge.src, edge.dst, edge.skip))
        for edge in skips:
            lane = self._choose_lane(edge.src, edge.dst, lanes)
            self.routes.append(self._bypass_route(edge.src, edge.dst, lane, side_out, side_in))

    def _is_last_in_rank(self, node_id: str) -> bool:
        placed = self.placed[node_id]
        return self.by_rank[placed.rank][-1] is placed

    def _adjacent_route(self, src_id: str, dst_id: str, skip: bool) -> _Route:
        src, dst = self.placed[src_id], self.placed[dst_id]
        start = self.xy(src.rank_end, src.cross_center)
        end = self.xy(dst.rank_start, dst.cross_center)
        return _Route([start, end], skip, self.xy(1, 0))

    def _choose_lane(self, src_id: str, dst_id: str, lanes: list[tuple[int, int, float, str, str]]) -> float:
        lo, hi = self.ranks[src_id], self.ranks[dst_id]
        base = max(p.cross_end for rank in range(lo, hi + 1) for p in self.by_rank[rank]) + 16
        lane = base
        while any(
            lo <= o_hi and o_lo <= hi and abs(lane - o_lane) < _LANE_GAP - 0.5
            and src_id != o_src and dst_id != o_dst
            for o_lo, o_hi, o_lane, o_src, o_dst in lanes
        ):
            lane += _LANE_GAP
        lanes.append((lo, hi, lane, src_id, dst_id))
        return lane

    def _bypass_route(self, src_id: str, dst_id: str, lane: float,
                      side_out: dict[str, list[str]], side_in: dict[str, list[str]]) -> _Route:
        src, dst = self.placed[src_id], self.placed[dst_id]
        points: list[tuple[float, float]] = []  # in (rank, cross)
        if src_id in side_out:
            offset = _spread(side_out[src_id].index(dst_id), len(side_out[src_id]), src.rank_size)
            rank = src.rank_start + src.rank_size / 2 + offset
            points += [(rank, src.cross_end), (rank, lane)]
        else:
            cross = src.cross_center + src.cross_size / 4
            points += [(src.rank_end, cross), (src.rank_end + 8, cross), (src.rank_end + 8, lane)]
        if dst_id in side_in:
            offset = _spread(side_in[dst_id].index(src_id), len(side_in[dst_id]), dst.rank_size)
            rank = dst.rank_start + dst.rank_size / 2 + offset
            points += [(rank, lane), (rank, dst.cross_end)]
            heading = self.xy(0, -1)
        else:
            cross = dst.cross_center + dst.cross_size / 4
            points += [(dst.rank_start - 5, lane), (dst.rank_start - 5, cross), (dst.rank_start, cross)]
            heading = self.xy(1, 0)
        return _Route([self.xy(r, c) for r, c in points], True, heading)


def _spread(index: int, count: int, size: float) -> float:
    """Offsets for several bypasses leaving (entering) one side of a node, kept inside it."""
    if count == 1:
        return 0.0
    step = min(6.0, size * 0.6 / (count - 1))
    return (index - (count - 1) / 2) * step


def _group_title(group: FlowGroup) -> str:
    return f"{group.label} ({group.module_type})"


# --------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------


@dataclass
class _Drawing:
    layout: _Layout
    health: Mapping[str, NodeHealth]
    href: Callable[[str], str | None]

    def svg(self) -> str:
        left, top, right, bottom = self._bounds()
        width, height = right - left + 2 * _MARGIN, bottom - top + 2 * _MARGIN
        dx, dy = _MARGIN - left, _MARGIN - top
        parts = [
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{_num(width)}" height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" '
            f'font-family={_attr(FONT_FAMILY)} role="img">',
            f"<title>{_text('Data flow: ' + self.layout.graph.method)}</title>",
            f'<rect x="0" y="0" width="{_num(width)}" height="{_num(height)}" fill="#ffffff"/>',
            f'<g transform="translate({_num(dx)},{_num(dy)})">',
        ]
        parts += self._groups()
        parts += self._edges()
        parts += self._nodes()
        parts.append("</g></svg>")
        return "\n".join(parts) + "\n"

    def _bounds(self) -> tuple[float, float, float, float]:
        boxes = [self.layout.node_box(p) for p in self.layout.placed.values()]
        boxes += list(self.layout.group_boxes.values())
        xs = [b.x for b in boxes] + [b.right for b in boxes]
        ys = [b.y for b in boxes] + [b.bottom for b in boxes]
        for route in self.layout.routes:
            xs += [x for x, _ in route.points]
            ys += [y for _, y in route.points]
        if not xs:
            return 0.0, 0.0, 1.0, 1.0
        return min(xs), min(ys), max(xs), max(ys)

    def _groups(self) -> list[str]:
        out = []
        for group in self.layout.graph.groups:
            box = self.layout.group_boxes[group.id]
            out.append(
                f'<g class="group"><title>{_text(_group_title(group))}</title>'
                f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.w)}" height="{_num(box.h)}" '
                'rx="6" fill="#455a64" fill-opacity="0.05" stroke="#90a4ae" stroke-width="1" '
                'stroke-dasharray="4 3"/>'
                f'<text x="{_num(box.x + 6)}" y="{_num(box.y + 15)}" font-size="{_num(_GROUP_PX)}" '
                f'fill="#455a64">{_text(_group_title(group))}</text></g>'
            )
        return out

    def _edges(self) -> list[str]:
        out = []
        # Plain edges first, bypasses over them, so a bypass is never hidden.
        for route in sorted(self.layout.routes, key=lambda r: r.skip):
            colour = _SKIP_COLOUR if route.skip else _EDGE_COLOUR
            dash = ' stroke-dasharray="5 3"' if route.skip else ""
            path = _path_data(route.points, route.heading)
            out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.4"{dash}/>')
            out.append(_arrow_head(route.points[-1], route.heading, colour))
        return out

    def _nodes(self) -> list[str]:
        return [self._node(p) for p in sorted(self.layout.placed.values(), key=lambda p: p.index)]

    def _node(self, placed: _PlacedNode) -> str:
        node, text = placed.node, placed.text
        box = self.layout.node_box(placed)
        fill, stroke = _node_colours(node)
        parts = [f"<title>{_text(self._tooltip(node))}</title>"]
        if node.repeat > 1:  # a second card peeking out behind: a folded stack
            parts.append(_rect(box.x + 3, box.y + 3, box.w, box.h, fill, stroke))
        parts.append(_rect(box.x, box.y, box.w, box.h, fill, stroke))
        x = box.x + _NODE_PAD_X
        parts.append(
            f'<text x="{_num(x)}" y="{_num(box.y + 17)}" font-size="{_num(_TITLE_PX)}" '
            f'font-weight="bold" fill="#212121">{_text(text.title)}</text>'
        )
        if text.repeat:
            rx = x + _text_width(text.title, _TITLE_PX, bold=True) + 6
            parts.append(
                f'<text x="{_num(rx)}" y="{_num(box.y + 17)}" font-size="{_num(_TITLE_PX)}" '
                f'font-weight="bold" fill="#bf360c">{_text(text.repeat)}</text>'
            )
        for line, (value, colour) in enumerate(((text.kind, "#37474f"), (text.detail, "#546e7a"))):
            parts.append(
                f'<text x="{_num(x)}" y="{_num(box.y + 31 + 13 * line)}" font-size="{_num(_DETAIL_PX)}" '
                f'fill="{colour}">{_text(value)}</text>'
            )
        parts += self._health_mark(node, box)
        body = "".join(parts)
        link = self.href(node.module_path) if node.module_path else None
        if link:
            body = f"<a href={_attr(link)} xlink:href={_attr(link)}>{body}</a>"
        return f'<g class="node" id={_attr("flow-" + node.id)}>{body}</g>'

    def _health_mark(self, node: FlowNode, box: _Box) -> list[str]:
        if node.module_path is None:
            return []
        health = self.health.get(node.module_path, NodeHealth("unknown", "no statistics"))
        colour = HEALTH_COLOURS.get(health.level, HEALTH_COLOURS["unknown"])
        return [
            f'<circle cx="{_num(box.right - 10)}" cy="{_num(box.y + 12)}" r="5" fill="{colour}" '
            f'stroke="#ffffff" stroke-width="1"><title>{_text(health.level + ": " + health.note)}</title>'
            "</circle>"
        ]

    def _tooltip(self, node: FlowNode) -> str:
        lines = [f"{node.label} ({node.op_type})", f"output {_shape_text(node.output_shape)}",
                 f"{node.params:,} params, {node.macs:,} MACs"]
        if node.repeat > 1:
            lines.append(f"{node.repeat} identical blocks: " + ", ".join(node.members))
        return "\n".join(lines)


def _node_colours(node: FlowNode) -> tuple[str, str]:
    if node.op_type in ("input", "output"):
        return "#eceff1", "#78909c"
    if node.repeat > 1:
        return "#fff3e0", "#ef6c00"
    if node.module_path is None:
        return "#f3e5f5", "#8e24aa"
    return "#e3f2fd", "#1e88e5"


def _rect(x: float, y: float, w: float, h: float, fill: str, stroke: str) -> str:
    return (f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" rx="4" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>')


def _path_data(points: list[tuple[float, float]], heading: tuple[float, float]) -> str:
    """A polyline with rounded corners; a two-point edge becomes an S-curve along the flow."""
    if len(points) == 2:
        return _s_curve(points, along_y=heading[1] != 0)
    parts = [f"M{_num(points[0][0])},{_num(points[0][1])}"]
    for (ax, ay), (bx, by), (cx, cy) in zip(points, points[1:], points[2:], strict=False):
        r1 = min(_CORNER, _dist(ax, ay, bx, by) / 2)
        r2 = min(_CORNER, _dist(bx, by, cx, cy) / 2)
        px, py = _toward(bx, by, ax, ay, r1)
        qx, qy = _toward(bx, by, cx, cy, r2)
        parts.append(f"L{_num(px)},{_num(py)} Q{_num(bx)},{_num(by)} {_num(qx)},{_num(qy)}")
    parts.append(f"L{_num(points[-1][0])},{_num(points[-1][1])}")
    return " ".join(parts)


def _s_curve(points: list[tuple[float, float]], along_y: bool) -> str:
    (x0, y0), (x1, y1) = points
    start = f"M{_num(x0)},{_num(y0)}"
    if along_y:
        my = _num((y0 + y1) / 2)
        return f"{start} C{_num(x0)},{my} {_num(x1)},{my} {_num(x1)},{_num(y1)}"
    mx = _num((x0 + x1) / 2)
    return f"{start} C{mx},{_num(y0)} {mx},{_num(y1)} {_num(x1)},{_num(y1)}"


def _dist(ax: float, ay: float, bx: float, by: float) -> float:
    return float(((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5)


def _toward(bx: float, by: float, ax: float, ay: float, r: float) -> tuple[float, float]:
    d = _dist(ax, ay, bx, by) or 1.0
    return bx + (ax - bx) * r / d, by + (ay - by) * r / d


def _arrow_head(tip: tuple[float, float], heading: tuple[float, float], colour: str) -> str:
    x, y = tip
    hx, hy = heading
    back_x, back_y = x - hx * 7, y - hy * 7
    side_x, side_y = -hy * 3.5, hx * 3.5
    points = f"{_num(x)},{_num(y)} {_num(back_x + side_x)},{_num(back_y + side_y)} " \
             f"{_num(back_x - side_x)},{_num(back_y - side_y)}"
    return f'<polygon points="{points}" fill="{colour}"/>'
