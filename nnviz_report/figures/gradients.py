"""Gradient figures: gradient flow across depth and the first layer's filter gradients."""

from __future__ import annotations

import numpy as np

from ..report_model import Figure
from .common import (
    CATEGORICAL,
    DEPTH_WIDTH,
    depth_axis,
    drawable_names,
    line_markers,
    new_figure,
    plain_log_labels,
    style,
    svg_figure,
)


def gradient_flow_figure(names: list[str], ratios: list[float | None], mean_abs: list[float],
                         max_abs: list[float], *, low: float, high: float) -> Figure:
    """Per weight tensor, input to output, on a log scale; the band between ``low`` and
    ``high`` is the healthy range of the gradient-to-weight ratio, and points outside it are
    marked as vanishing (▼) or exploding (▲)."""
    names = drawable_names(names)
    x = np.arange(len(names))
    floor = 1e-30  # log axes cannot show zeros; a zero gradient is drawn at the bottom
    ratio = np.array([r if r is not None else np.nan for r in ratios], dtype=float)
    with style():
        fig = new_figure(DEPTH_WIDTH, 2.7)
        ax = fig.add_subplot()
        ax.axhspan(low, high, color=CATEGORICAL[2], alpha=0.08, label=f"healthy ‖g‖/‖w‖ {low:g}–{high:g}")
        ax.plot(x, np.maximum(max_abs, floor), color=CATEGORICAL[4], linewidth=0.8,
                **line_markers(max_abs, "."), label="max |g|")
        ax.plot(x, np.maximum(mean_abs, floor), color=CATEGORICAL[0], linewidth=1.0,
                **line_markers(mean_abs, "."), label="mean |g|")
        ax.plot(x, np.maximum(ratio, floor), color=CATEGORICAL[1], linewidth=1.4, markersize=3,
                **line_markers(ratio, "o"), label="‖g‖ / ‖w‖")
        vanishing = ratio < low
        exploding = ratio > high
        if vanishing.any():
            ax.scatter(x[vanishing], np.maximum(ratio[vanishing], floor), marker="v", s=40, color="#c62828",
                       zorder=5, label="vanishing")
        if exploding.any():
            ax.scatter(x[exploding], ratio[exploding], marker="^", s=40, color="#c62828", zorder=5, label="exploding")
        ax.set_yscale("log")
        plain_log_labels(ax)
        depth_axis(ax, names)
        ax.set_ylabel("gradient of the mean loss")
        ax.legend(loc="upper left", ncols=3, frameon=False, fontsize=7, bbox_to_anchor=(0, 1.18))
        return svg_figure(fig, "gradient-flow", "Gradient magnitude per weight tensor across depth, log scale")
