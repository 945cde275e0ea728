"""The Flow diagram: a ``flow_layout`` layout of a ``FlowGraph`` drawn to a standalone SVG string.

Why a pure-Python layout instead of graphviz: the report must build from a plain ``pip install`` (no
system binaries), be byte-for-byte deterministic across machines and graphviz versions, and look the
same in the HTML and the PDF — WeasyPrint renders inline SVG but runs no JavaScript, so no browser
layout either. How nodes are placed is told in ``flow_layout``.

This module imports no torch: it reads ``flow_model``'s dataclasses only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from nnviz_report.flow_layout import (
    DETAIL_PX,
    GROUP_PX,
    MARGIN,
    NODE_PAD_X,
    TITLE_PX,
    Box,
    Layout,
    PlacedNode,
    group_title,
    shape_text,
    text_width,
)
from nnviz_report.flow_model import FlowGraph, FlowNode, NodeHealth

__all__ = ["DIRECTIONS", "HEALTH_COLOURS", "NodeHealth", "render_flow_svg"]

FONT_FAMILY = "DejaVu Sans, Arial, sans-serif"
HEALTH_COLOURS = {"ok": "#2e7d32", "info": "#1565c0", "warn": "#f9a825", "fail": "#c62828", "unknown": "#9e9e9e"}
DIRECTIONS = ("TB", "LR")
_CORNER = 7.0
_EDGE_COLOUR = "#546e7a"
_SKIP_COLOUR = "#5c6bc0"  # indigo: apart from the green/amber/red/grey of health marks


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
    layout = Layout(graph, horizontal=direction == "LR")
    return _Drawing(layout, health or {}, href).svg()


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


# --------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------


@dataclass
class _Drawing:
    layout: Layout
    health: Mapping[str, NodeHealth]
    href: Callable[[str], str | None]

    def svg(self) -> str:
        left, top, right, bottom = self._bounds()
        width, height = right - left + 2 * MARGIN, bottom - top + 2 * MARGIN
        dx, dy = MARGIN - left, MARGIN - top
        parts = [
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{_num(width)}" height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" '
            f'font-family={_attr(FONT_FAMILY)} role="img">',
            f"<title>{_text('Data flow: ' + self.layout.graph.method)}</title>",
            f'<rect class="flow-bg" x="0" y="0" width="{_num(width)}" height="{_num(height)}" fill="#ffffff"/>',
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
                f'<g class="group"><title>{_text(group_title(group))}</title>'
                f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.w)}" height="{_num(box.h)}" '
                'rx="6" fill="#455a64" fill-opacity="0.05" stroke="#90a4ae" stroke-width="1" '
                'stroke-dasharray="4 3"/>'
                f'<text x="{_num(box.x + 6)}" y="{_num(box.y + 15)}" font-size="{_num(GROUP_PX)}" '
                f'fill="#455a64">{_text(group_title(group))}</text></g>'
            )
        return out

    def _edges(self) -> list[str]:
        out = []
        # Plain edges first, bypasses over them, so a bypass is never hidden.
        for route in sorted(self.layout.routes, key=lambda r: r.skip):
            colour = _SKIP_COLOUR if route.skip else _EDGE_COLOUR
            dash = ' stroke-dasharray="5 3"' if route.skip else ""
            path = _path_data(route.points, route.heading)
            kind = "skip" if route.skip else "edge"
            out.append(f'<path class="{kind}" d="{path}" fill="none" stroke="{colour}" stroke-width="1.4"{dash}/>')
            out.append(_arrow_head(route.points[-1], route.heading, colour, kind))
        return out

    def _nodes(self) -> list[str]:
        return [self._node(p) for p in sorted(self.layout.placed.values(), key=lambda p: p.index)]

    def _node(self, placed: PlacedNode) -> str:
        node, text = placed.node, placed.text
        box = self.layout.node_box(placed)
        fill, stroke = _node_colours(node)
        parts = [f"<title>{_text(self._tooltip(node))}</title>"]
        if node.repeat > 1:  # a second card peeking out behind: a folded stack
            parts.append(_rect(box.x + 3, box.y + 3, box.w, box.h, fill, stroke))
        parts.append(_rect(box.x, box.y, box.w, box.h, fill, stroke))
        x = box.x + NODE_PAD_X
        parts.append(
            f'<text x="{_num(x)}" y="{_num(box.y + 17)}" font-size="{_num(TITLE_PX)}" '
            f'font-weight="bold" fill="#212121">{_text(text.title)}</text>'
        )
        if text.repeat:
            rx = x + text_width(text.title, TITLE_PX, bold=True) + 6
            parts.append(
                f'<text x="{_num(rx)}" y="{_num(box.y + 17)}" font-size="{_num(TITLE_PX)}" '
                f'font-weight="bold" fill="#bf360c">{_text(text.repeat)}</text>'
            )
        for line, (value, colour) in enumerate(((text.kind, "#37474f"), (text.detail, "#546e7a"))):
            parts.append(
                f'<text x="{_num(x)}" y="{_num(box.y + 31 + 13 * line)}" font-size="{_num(DETAIL_PX)}" '
                f'fill="{colour}">{_text(value)}</text>'
            )
        parts += self._health_mark(node, box)
        body = "".join(parts)
        link = self.href(node.module_path) if node.module_path else None
        if link:
            body = f"<a href={_attr(link)} xlink:href={_attr(link)}>{body}</a>"
        return f'<g class="node" id={_attr("flow-" + node.id)}>{body}</g>'

    def _health_mark(self, node: FlowNode, box: Box) -> list[str]:
        # Only nodes with captured statistics get a dot: "unknown" on every add or flatten is noise.
        health = self.health.get(node.module_path) if node.module_path else None
        if health is None:
            return []
        colour = HEALTH_COLOURS.get(health.level, HEALTH_COLOURS["unknown"])
        return [
            f'<circle cx="{_num(box.right - 10)}" cy="{_num(box.y + 12)}" r="5" fill="{colour}" '
            f'stroke="#ffffff" stroke-width="1"><title>{_text(health.level + ": " + health.note)}</title>'
            "</circle>"
        ]

    def _tooltip(self, node: FlowNode) -> str:
        lines = [f"{node.label} ({node.op_type})", f"output {shape_text(node.output_shape)}",
                 f"{node.params:,} params, {node.macs:,} MACs"]
        if node.repeat > 1:
            lines.append(f"{node.repeat} identical blocks: " + ", ".join(node.members))
        return "\n".join(lines)


def _node_colours(node: FlowNode) -> tuple[str, str]:
    if node.op_type in ("input", "output"):
        return "#eceff1", "#78909c"
    if node.members:  # a collapsed block, folded ×N or not
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


def _arrow_head(tip: tuple[float, float], heading: tuple[float, float], colour: str, kind: str) -> str:
    x, y = tip
    hx, hy = heading
    back_x, back_y = x - hx * 7, y - hy * 7
    side_x, side_y = -hy * 3.5, hx * 3.5
    points = f"{_num(x)},{_num(y)} {_num(back_x + side_x)},{_num(back_y + side_y)} " \
             f"{_num(back_x - side_x)},{_num(back_y - side_y)}"
    return f'<polygon class="{kind}" points="{points}" fill="{colour}"/>'
