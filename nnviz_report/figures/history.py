"""History figures: accuracy with its interval per release, and heat maps of a number per layer
(or class) over releases. Pure functions of the numbers; the same numbers give the same bytes."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..report_model import Figure
from .common import (
    CATEGORICAL,
    DEPTH_LABEL_PT,
    DEPTH_WIDTH,
    depth_labels,
    drawable_names,
    new_figure,
    style,
    svg_figure,
)

ROW_INCHES = 0.17  # one heat-map row: a 7 pt label and a 7 pt number fit inside it
MAX_HEIGHT = 9.0  # taller maps label every k-th row (depth_labels), as the depth charts do
ANNOTATE_CELLS = 400  # cells up to which each one carries its number
MISSING = "#9e9e9e"


def accuracy_figure(labels: Sequence[str], accuracy: Sequence[float], low: Sequence[float],
                    high: Sequence[float]) -> Figure:
    """Accuracy on the sample per release with its 95 % Wilson interval as an error bar."""
    x = np.arange(len(labels))
    acc = np.asarray(accuracy, dtype=float)
    with style():
        fig = new_figure(DEPTH_WIDTH, 2.6)
        ax = fig.add_subplot()
        ax.errorbar(x, acc, yerr=[acc - np.asarray(low), np.asarray(high) - acc], color=CATEGORICAL[0],
                    marker="o", markersize=4, capsize=4, linewidth=1.4)
        # Above each interval, where the line between releases never runs.
        for xi, a, top in zip(x, acc, high, strict=True):
            ax.annotate(f"{100 * a:.1f} %", (xi, top), textcoords="offset points", xytext=(0, 3), ha="center",
                        va="bottom", fontsize=DEPTH_LABEL_PT)
        ax.set_xticks(x, drawable_names(list(labels)))
        ax.set_xlim(-0.5, len(labels) - 0.3)
        ax.set_ylim(max(0.0, float(np.min(low)) - 0.05), min(1.08, float(np.max(high)) + 0.08))
        ax.set_ylabel("accuracy on the sample")
        ax.grid(axis="x", visible=False)
        return svg_figure(fig, "history-accuracy",
                          "Accuracy on the sample per release, oldest first, with 95 % Wilson intervals")


def heatmap_figure(name: str, alt: str, rows: Sequence[str], columns: Sequence[str],
                   values: Sequence[Sequence[float | None]], *, label: str, log: bool = False,
                   vmin: float | None = None, vmax: float | None = None, percent: bool = False) -> Figure:
    """rows × columns of numbers; a missing number (None, or not finite) is a grey cell marked "—".
    ``log``: colours on a log scale over the positive values (zeros are drawn as missing)."""
    data = np.array([[np.nan if v is None else float(v) for v in row] for row in values], dtype=float)
    data[~np.isfinite(data)] = np.nan
    if log:
        data[data <= 0] = np.nan
    finite = data[np.isfinite(data)]
    low = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    high = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if high <= low:
        high = low * 10 if log and low > 0 else low + 1.0
    norm: Normalize = LogNorm(low, high) if log and low > 0 else Normalize(low, high)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=MISSING)
    height = min(MAX_HEIGHT, 1.1 + ROW_INCHES * len(rows))
    with style():
        fig = new_figure(DEPTH_WIDTH, height)
        ax = fig.add_subplot()
        image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        ax.set_xticks(np.arange(len(columns)), drawable_names(list(columns)), fontsize=DEPTH_LABEL_PT + 1)
        ax.xaxis.tick_top()
        step, positions, texts = depth_labels(drawable_names(list(rows)), height - 1.0)
        ax.set_yticks(positions, texts, fontsize=DEPTH_LABEL_PT)
        if step > 1:
            ax.set_ylabel(f"every {step} of {len(rows)} rows labelled", fontsize=DEPTH_LABEL_PT)
        ax.grid(False)
        ax.tick_params(length=0)
        if data.size <= ANNOTATE_CELLS:
            for (r, c), v in np.ndenumerate(data):
                bright = np.isfinite(v) and norm(v) > 0.6
                text = "—" if not np.isfinite(v) else f"{100 * v:.1f} %" if percent else _short(v)
                ax.text(c, r, text, ha="center", va="center", fontsize=DEPTH_LABEL_PT,
                        color="#000000" if bright or not np.isfinite(v) else "#ffffff")
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label(label, fontsize=DEPTH_LABEL_PT + 1)
        bar.ax.tick_params(labelsize=DEPTH_LABEL_PT)
        if log:  # plain numbers, not 10^n with its exponent at 70 % of the label size
            bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}".replace("-", "−")))
            bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            bar.ax.yaxis.set_minor_formatter(NullFormatter())
        return svg_figure(fig, name, alt)


def _short(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.1e}".replace("e-0", "e-").replace("e+0", "e").replace("-", "−")
    return f"{value:.3g}".replace("-", "−")
