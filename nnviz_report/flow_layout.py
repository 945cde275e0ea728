"""Layout of a ``FlowGraph`` for its diagram: node sizes, ranks, positions across the flow, group
boxes and edge routes, in physical coordinates. ``flow_svg`` draws the result.

A layered (Sugiyama-style) layout, enough for networks, which are nearly chains:

1. rank = longest path from the input, so every edge points down (or right with ``direction="LR"``);
2. within a rank, nodes sit as close as they can to the mean of their predecessors without overlap
   (least squares over each run of touching nodes), which keeps the main path straight, puts side
   branches (shortcuts) beside it and centres a fan-out under its parent;
3. an edge spanning more than one rank (a residual shortcut, a skip into a concat) is routed as a
   bypass in a lane to the side of every node it passes, so it never runs through text;
4. group boxes (container modules) get a label band above their first nodes, and the gaps between
   ranks grow to fit the boxes that close and open there.

No torch and no drawing here: it reads ``flow_model``'s dataclasses only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nnviz_report.flow_model import FlowGraph, FlowGroup, FlowNode, longest_path_ranks

TITLE_PX = 12.0
DETAIL_PX = 10.5
_CHAR_W = 0.6  # average glyph width as a fraction of the font size (DejaVu Sans is a bit wider)
_BOLD_CHAR_W = 0.66
_NODE_H = 50.0
NODE_PAD_X = 10.0
_HEALTH_ROOM = 16.0  # space kept at the right of the title for the health mark
_MIN_NODE_W = 96.0
_RANK_GAP = 28.0  # between ranks, before room for group boxes
_CROSS_GAP = 24.0  # between neighbours in one rank, before room for group boxes
_GROUP_PAD = 8.0
_GROUP_BAND = 24.0  # label band at the top of a group box
GROUP_PX = 10.5
_LANE_GAP = 10.0
MARGIN = 12.0


def text_width(text: str, px: float, bold: bool = False) -> float:
    return len(text) * px * (_BOLD_CHAR_W if bold else _CHAR_W)


def _compact_count(n: int) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)


def shape_text(shape: tuple[int, ...] | None) -> str:
    return "×".join(str(s) for s in shape) if shape else "–"


@dataclass(frozen=True)
class NodeText:
    title: str
    repeat: str  # "×N" or ""
    kind: str
    detail: str

    @staticmethod
    def of(node: FlowNode, within: str = "") -> NodeText:
        """``within``: the label of the innermost group box around the node; the title drops that
        prefix (``branch1.conv`` inside ``inception3a``), the tooltip keeps the full path."""
        detail = shape_text(node.output_shape)
        if node.params:
            detail += f" · {_compact_count(node.params)} params"
        title = node.label
        rest = title[len(within) + 1:] if within and title.startswith(within + ".") else ""
        if rest and not rest[0].isdigit():  # "1–2" or "0" alone would say too little
            title = rest
        return NodeText(title, f"×{node.repeat}" if node.repeat > 1 else "", node.op_type, detail)

    def width(self) -> float:
        title = text_width(self.title, TITLE_PX, bold=True)
        if self.repeat:
            title += 6 + text_width(self.repeat, TITLE_PX, bold=True)
        details = (text_width(self.kind, DETAIL_PX), text_width(self.detail, DETAIL_PX))
        return max(_MIN_NODE_W, title + _HEALTH_ROOM + 2 * NODE_PAD_X, max(details) + 2 * NODE_PAD_X)


# --------------------------------------------------------------------------------------------------
# Layout, in rank/cross coordinates: rank runs along the flow (down for TB, right for LR)
# --------------------------------------------------------------------------------------------------


@dataclass
class Box:
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
class PlacedNode:
    node: FlowNode
    text: NodeText
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
class Route:
    """An edge as a polyline in physical coordinates; ``heading`` is the arrow's direction."""

    points: list[tuple[float, float]]
    skip: bool
    heading: tuple[float, float]


@dataclass
class Layout:
    graph: FlowGraph
    horizontal: bool
    placed: dict[str, PlacedNode] = field(default_factory=dict)
    group_boxes: dict[str, Box] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)

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
        labels = {g.id: g.label for g in self.graph.groups}
        for index, node in enumerate(self.graph.nodes):
            within = max((labels[g] for g in self.groups_of[node.id]), key=len, default="")
            text = NodeText.of(node, within)
            w = text.width()
            rank_size, cross_size = (w, _NODE_H) if self.horizontal else (_NODE_H, w)
            self.placed[node.id] = PlacedNode(node, text, self.ranks[node.id], index, rank_size,
                                               cross_size, groups=self.groups_of[node.id])
        self.by_rank: list[list[PlacedNode]] = [[] for _ in range(max(self.ranks.values(), default=0) + 1)]
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
        position = MARGIN + before[0]
        for rank, nodes in enumerate(self.by_rank):
            band = max((p.rank_size for p in nodes), default=0.0)
            for placed in nodes:
                placed.rank_start = position + (band - placed.rank_size) / 2
            if rank + 1 < count:
                position += band + after[rank] + _RANK_GAP + before[rank + 1]

    # -- across the flow ------------------------------------------------------------------------

    def _cross_gap(self, first: PlacedNode, second: PlacedNode) -> float:
        only_first = len(first.groups - second.groups)
        only_second = len(second.groups - first.groups)
        second_pad = _GROUP_BAND if self.horizontal else _GROUP_PAD
        return _CROSS_GAP + only_first * _GROUP_PAD + only_second * second_pad

    def _desired_center(self, placed: PlacedNode) -> float:
        preds = [self.placed[p] for p in self.preds[placed.node.id]]
        near = [p for p in preds if p.rank == placed.rank - 1] or preds
        return sum(p.cross_center for p in near) / len(near) if near else 0.0

    def _place_cross(self) -> None:
        for nodes in self.by_rank:
            desired = {p.node.id: self._desired_center(p) for p in nodes}
            nodes.sort(key=lambda p: (desired[p.node.id], p.index))
            self._centre_row(nodes, [desired[p.node.id] for p in nodes])

    def _centre_row(self, nodes: list[PlacedNode], desired: list[float]) -> None:
        """Place one rank's nodes, in order and without overlap, as close to their desired centres
        as possible (least squares): runs of touching nodes sit centred on their desired centres,
        so a fan-out spreads evenly under its parent instead of stepping off to one side."""
        # Each block: (first node index, offsets of its nodes from the first, mean position).
        blocks: list[tuple[int, list[float], float]] = []
        for i, want in enumerate(desired):
            first, offsets, start = i, [0.0], want
            while blocks:
                p_first, p_offsets, p_start = blocks[-1]
                last = p_first + len(p_offsets) - 1
                separation = (nodes[last].cross_size / 2 + self._cross_gap(nodes[last], nodes[first])
                              + nodes[first].cross_size / 2)
                if p_start + p_offsets[-1] + separation <= start:
                    break
                blocks.pop()
                shift = p_offsets[-1] + separation
                offsets = p_offsets + [shift + o for o in offsets]
                first = p_first
                start = sum(desired[first + k] - o for k, o in enumerate(offsets)) / len(offsets)
            blocks.append((first, offsets, start))
        for first, offsets, start in blocks:
            for k, offset in enumerate(offsets):
                nodes[first + k].cross_center = start + offset

    # -- physical coordinates -------------------------------------------------------------------

    def xy(self, rank: float, cross: float) -> tuple[float, float]:
        return (rank, cross) if self.horizontal else (cross, rank)

    def node_box(self, placed: PlacedNode) -> Box:
        x, y = self.xy(placed.rank_start, placed.cross_start)
        w, h = self.xy(placed.rank_size, placed.cross_size)
        return Box(x, y, w, h)

    # -- group boxes ----------------------------------------------------------------------------

    def _box_groups(self) -> None:
        children: dict[str | None, list[FlowGroup]] = {}
        for group in self.graph.groups:
            children.setdefault(group.parent, []).append(group)

        content_left: dict[str, float] = {}

        def visit(group: FlowGroup) -> Box:
            for kid in children.get(group.id, []):
                visit(kid)
            _keep_apart([k.id for k in children.get(group.id, [])], self.group_boxes, content_left)
            nodes = [self.node_box(self.placed[n]) for n in group.node_ids]
            parts = [self.group_boxes[k.id] for k in children.get(group.id, [])] + nodes
            left = min(b.x for b in parts) - _GROUP_PAD
            content_left[group.id] = left
            top = min(b.y for b in parts) - _GROUP_BAND
            right = max(b.right for b in parts) + _GROUP_PAD
            bottom = max(b.bottom for b in parts) + _GROUP_PAD
            if not self.horizontal:
                left = min(left, self._label_clear_left(group, top))
                members = set(group.node_ids)
                for placed in self.placed.values():  # nor over a node beside it that is not inside
                    other = self.node_box(placed)
                    beside = other.y < bottom and top < other.bottom and other.right <= content_left[group.id]
                    if beside and placed.node.id not in members:
                        left = max(left, min(other.right + _GROUP_PAD / 2, content_left[group.id]))
            box = Box(left, top, right - left, bottom - top)
            self.group_boxes[group.id] = box
            return box

        roots = children.get(None, [])
        for root in roots:
            visit(root)
        _keep_apart([r.id for r in roots], self.group_boxes, content_left)

    def _label_clear_left(self, group: FlowGroup, top: float) -> float:
        """Where the box must start so its label ends before the edges entering its first nodes."""
        first, _ = self._group_span(group)
        entries = [self.placed[n].cross_center for n in group.node_ids if self.ranks[n] == first]
        label = text_width(group_title(group), GROUP_PX) + 2 * 6
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

    def _adjacent_route(self, src_id: str, dst_id: str, skip: bool) -> Route:
        src, dst = self.placed[src_id], self.placed[dst_id]
        start = self.xy(src.rank_end, src.cross_center)
        end = self.xy(dst.rank_start, dst.cross_center)
        return Route([start, end], skip, self.xy(1, 0))

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
                      side_out: dict[str, list[str]], side_in: dict[str, list[str]]) -> Route:
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
        return Route([self.xy(r, c) for r, c in points], True, heading)


def _keep_apart(siblings: list[str], boxes: dict[str, Box], content_left: dict[str, float]) -> None:
    """A box widened leftwards for its label stops short of a sibling box beside it (the label may
    then meet an entering edge; overlapping boxes would be worse)."""
    for group_id in siblings:
        box = boxes[group_id]
        for other_id in siblings:
            other = boxes[other_id]
            beside = other_id != group_id and other.y < box.bottom and box.y < other.bottom
            if beside and box.x < other.right <= content_left[group_id]:
                right = box.right
                box.x = min(other.right + _GROUP_PAD / 2, content_left[group_id])
                box.w = right - box.x


def _spread(index: int, count: int, size: float) -> float:
    """Offsets for several bypasses leaving (entering) one side of a node, kept inside it."""
    if count == 1:
        return 0.0
    step = min(6.0, size * 0.6 / (count - 1))
    return (index - (count - 1) / 2) * step


def group_title(group: FlowGroup) -> str:
    return f"{group.label} ({group.module_type})"
