"""Compare figures: how far each weight tensor moved, and how similar each layer's representation
stayed, from the base checkpoint to the head."""

from __future__ import annotations

import numpy as np

from ..report_model import Figure
from .common import CATEGORICAL, DEPTH_WIDTH, depth_axis, line_markers, new_figure, style, svg_figure


def weight_change_figure(names: list[str], relative: list[float | None]) -> Figure:
    """Bars of ‖W_head − W_base‖ / ‖W_base‖ per weight tensor, input to output. Tensors whose
    base norm is zero (no relative change defined) or whose values are not finite are left empty."""
    values = np.array([v if v is not None and np.isfinite(v) else np.nan for v in relative], dtype=float)
    with style():
        fig = new_figure(DEPTH_WIDTH, 3.2)
        ax = fig.add_subplot()
        ax.bar(np.arange(len(names)), np.nan_to_num(values, nan=0.0), color=CATEGORICAL[0], width=0.7)
        missing = np.isnan(values)
        if missing.any():
            ax.scatter(np.flatnonzero(missing), np.zeros(int(missing.sum())), marker="x", color="#c62828",
                       zorder=5, label="undefined (zero base norm or non-finite)")
            ax.legend(loc="upper left", frameon=False, fontsize=7)
        depth_axis(ax, names, pad=0.6)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("‖ΔW‖ / ‖W_base‖")
        ax.grid(axis="x", visible=False)
        return svg_figure(fig, "compare-weight-change",
                          "Relative weight change from base to head per weight tensor, input to output")


def cka_change_figure(names: list[str], cka: list[float | None]) -> Figure:
    """Linear CKA between the base's and the head's pooled features of each layer on the same
    samples: 1 means the layer represents the sample the same way (up to rotation and scale)."""
    values = np.array([v if v is not None else np.nan for v in cka], dtype=float)
    x = np.arange(len(names))
    with style():
        fig = new_figure(DEPTH_WIDTH, 3.2)
        ax = fig.add_subplot()
        ax.axhline(1.0, color="#888888", linewidth=0.8, linestyle="--")
        ax.plot(x, values, color=CATEGORICAL[1], linewidth=1.4, markersize=3,
                **line_markers(values, "o"))
        depth_axis(ax, names, pad=0.6)
        ax.set_ylim(-0.02, 1.05)
        ax.set_ylabel("CKA(base, head)")
        return svg_figure(fig, "compare-cka",
                          "Linear CKA between base and head representations per layer, input to output")
