"""Weight figures: value distributions across depth and spectral numbers across depth."""

from __future__ import annotations

import colorsys

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..report_model import Figure
from .common import (
    CATEGORICAL,
    DEPTH_WIDTH,
    depth_axis,
    drawable_names,
    line_markers,
    new_figure,
    style,
    svg_figure,
)
from .source import MARKED_POINTS

ALPHA_BAND = (2.0, 6.0)  # WeightWatcher's range for well-trained layers


def subsample(values: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` values by a fixed stride over the flattened tensor: deterministic, and
    spread over every output unit rather than the first few."""
    flat = np.asarray(values).ravel()
    stride = -(-flat.size // limit) if flat.size > limit else 1
    return flat[::stride]


def _scale_for(ax: Axes, values: list[float]) -> None:
    """Log scale with plain tick labels (0.5, 10, 200) when the values span a decade or more;
    linear otherwise, where a log axis would show one tick or none."""
    finite = np.array([v for v in values if np.isfinite(v) and v > 0])
    if finite.size and finite.max() / finite.min() >= 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


VIOLIN_WIDTH = 0.8  # of the spacing between layers
VIOLIN_GRID = 100  # density evaluations per violin, from the tensor's smallest value to its largest
VIOLIN_BANDWIDTH = 0.8  # times Scott's rule


def violin_density(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(grid, density scaled to a peak of 1) of a Gaussian kernel density estimate with Scott's
    bandwidth times VIOLIN_BANDWIDTH, over [min, max] (the violin is cut at the extreme values):
    seaborn's violins, computed with numpy. None when there is no spread to estimate (fewer than
    two finite values, or all equal)."""
    finite = values[np.isfinite(values)]
    if finite.size < 2 or finite.min() == finite.max():
        return None
    bandwidth = float(finite.std(ddof=1)) * finite.size ** -0.2 * VIOLIN_BANDWIDTH
    grid = np.linspace(finite.min(), finite.max(), VIOLIN_GRID)
    density = np.exp(-0.5 * ((grid[:, None] - finite[None, :]) / bandwidth) ** 2).sum(axis=1)
    return grid, density / density.max()


def _violin_colours() -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(fill, line): the palette's first colour at 80 % saturation, outlined in a grey of 60 % of
    its lightness, as seaborn colours a violin."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*to_rgb(CATEGORICAL[0]))
    fill = colorsys.hls_to_rgb(hue, lightness, saturation * 0.8)
    grey = colorsys.rgb_to_hls(*fill)[1] * 0.6
    return fill, (grey, grey, grey)


def draw_violins(ax: Axes, values: list[np.ndarray], *, linewidth: float) -> None:
    """One violin per array at x = 0, 1, …, each as wide as VIOLIN_WIDTH at its densest value, with
    dashed lines across it at the quartiles (the median's dashes longer). An array without spread
    is a horizontal line at its mean."""
    fill, line = _violin_colours()
    half = VIOLIN_WIDTH / 2
    for position, array in enumerate(values):
        array = np.asarray(array, dtype=np.float64).ravel()
        finite = array[np.isfinite(array)]
        estimate = violin_density(finite)
        if estimate is None:
            if finite.size:
                level = float(finite.mean())
                ax.plot([position - half, position + half], [level, level], color=line, linewidth=linewidth)
            continue
        grid, density = estimate
        span = density * half
        ax.fill_betweenx(grid, position - span, position + span, facecolor=fill, edgecolor=line, linewidth=linewidth)
        quartiles = np.percentile(finite, [25, 50, 75])
        reach = np.interp(quartiles, grid, span)
        for level, width, dashes in zip(quartiles, reach, ((1.25, 0.75), (2.5, 1), (1.25, 0.75)), strict=True):
            ax.plot([position - width, position + width], [level, level], color=line, linewidth=linewidth,
                    dashes=dashes)


def weight_distribution_figure(names: list[str], values: list[np.ndarray]) -> Figure:
    """One violin per weight tensor, input to output, on a shared axis; each violin is cut at
    the tensor's extreme values and shows its quartiles. Drawn with numpy and matplotlib: seaborn
    would bring pandas and scipy.stats, over a second of imports, for the same violins."""
    names = drawable_names(names)
    with style():
        fig = new_figure(DEPTH_WIDTH, 2.6)
        ax = fig.add_subplot()
        draw_violins(ax, values, linewidth=0.6)
        zero = ax.axhline(0.0, color="#888888", linewidth=0.6, zorder=0)
        depth_axis(ax, names)
        ax.set_ylabel("weight value")
        many = len(values) > MARKED_POINTS
        if many:
            # A few points wide each, the violins gain nothing from vector paths, which cost the
            # PDF a second for DenseNet-121's 121 (with their quartile lines); as one embedded image
            # at 300 dpi they are a fraction of that, while the axes and labels stay vector and text.
            for artist in [*ax.collections, *(line for line in ax.lines if line is not zero)]:
                artist.set_rasterized(True)
        return svg_figure(fig, "weight-distribution",
                          "Distribution of the weight values of each layer, input to output",
                          raster_dpi=300 if many else None)


def spectral_depth_figure(names: list[str], alphas: list[float | None], stable_ranks: list[float],
                          spectral_norms: list[float]) -> Figure:
    """Power-law alpha (with the 2–6 band) above, stable rank and spectral norm below."""
    names = drawable_names(names)
    x = np.arange(len(names))
    alpha = np.array([a if a is not None else np.nan for a in alphas], dtype=float)
    missing = np.isnan(alpha)
    with style():
        fig = new_figure(DEPTH_WIDTH, 3.1)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1))
        low, high = ALPHA_BAND
        top.axhspan(low, high, color=CATEGORICAL[2], alpha=0.1, label=f"α {low:g}–{high:g}")
        top.plot(x, alpha, color=CATEGORICAL[1], markersize=3, linewidth=1.2,
                 **line_markers(alpha, "o"), label="power-law α")
        if missing.any():
            # at the foot of the panel, not at any α value
            top.scatter(x[missing], np.full(missing.sum(), 0.06), marker="x", color="#888888", s=18,
                        transform=top.get_xaxis_transform(), clip_on=False, label="not fitted (too small)")
        top.set_ylabel("α")
        fitted = alpha[~missing]
        top.set_ylim(bottom=min(1.5, float(fitted.min()) - 0.5) if fitted.size else 1.5)
        top.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3, frameon=False, fontsize=7)
        bottom.plot(x, stable_ranks, color=CATEGORICAL[0], markersize=3, linewidth=1.2,
                    **line_markers(stable_ranks, "o"), label="stable rank")
        bottom.set_ylabel("stable rank")
        _scale_for(bottom, stable_ranks)
        right = bottom.twinx()
        right.plot(x, spectral_norms, color=CATEGORICAL[5], linewidth=0.8, linestyle="--",
                   **line_markers(spectral_norms, "."), label="spectral norm ‖W‖₂")
        right.set_ylabel("‖W‖₂")
        _scale_for(right, spectral_norms)
        right.grid(False)
        right.spines["right"].set_visible(True)
        handles = bottom.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        bottom.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, frameon=False,
                      fontsize=7)
        depth_axis(bottom, names, axis_inches=DEPTH_WIDTH - 1.8)
        return svg_figure(fig, "weight-spectra-depth",
                          "Power-law alpha, stable rank and spectral norm per layer")
