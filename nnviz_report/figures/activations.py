"""Activation figures: feature-map grids (PIL pixel grids) and distributions across depth."""

from __future__ import annotations

import numpy as np

from ..report_model import Figure, HistogramData
from ..stats.histogram import histogram_quantile
from .common import (
    CATEGORICAL,
    DEPTH_WIDTH,
    colour_levels,
    depth_axis,
    drawable_names,
    new_figure,
    plain_log_labels,
    png_figure,
    style,
    svg_figure,
    tile,
)
from .source import quantise_unit

MAX_CHANNELS = 8  # one row per sample; 16 doubled the size of a resnet20 report for little more insight


def most_active_channels(maps: np.ndarray, limit: int = MAX_CHANNELS) -> np.ndarray:
    """Indices of the channels with the largest mean |activation| over the showcase samples,
    in channel order, so every sample's grid shows the same channels."""
    strength = np.abs(maps).mean(axis=(0, 2, 3))
    chosen = np.argsort(-strength, kind="stable")[:limit]
    return np.sort(chosen)


def grid_levels(maps: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """One sample's chosen channels of its (C, H, W) maps, each scaled to its own range, as uint8
    colour-map levels stacked top to bottom: (len(channels) · H, W), what its grid is drawn from."""
    tiles = []
    for c in channels:
        m = maps[c]
        lo, hi = float(m.min()), float(m.max())
        tiles.append(quantise_unit((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)))
    return np.concatenate(tiles, axis=0)


def feature_grid_figure(levels: np.ndarray, count: int, name: str, alt: str) -> Figure:
    """The grid of ``count`` channel maps stacked in ``levels`` (see grid_levels)."""
    tiles = [colour_levels(t) for t in np.split(levels, count, axis=0)]
    h = tiles[0].shape[0]
    scale = 1 if h >= 32 else max(1, 32 // h)
    tiles = [np.kron(t, np.ones((scale, scale, 1), dtype=np.uint8)) for t in tiles]
    return png_figure(tile(tiles, columns=min(4, len(tiles)), gap=2), name, alt)


def distribution_figure(names: list[str], histograms: list[HistogramData], means: list[float]) -> Figure:
    """A fan chart: per layer the 5–95 % and 25–75 % ranges and the median, read off the
    streamed histograms, on a symmetric-log axis so small and large layers both show."""
    names = drawable_names(names)
    quantiles = np.array([
        [histogram_quantile(h.start, h.width, h.counts, q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)]
        if sum(h.counts) else [np.nan] * 5
        for h in histograms
    ]).reshape(-1, 5)  # (0, 5) when no layer could be hooked (a TorchScript model)
    x = np.arange(len(names))
    with style():
        fig = new_figure(DEPTH_WIDTH, 2.6)
        ax = fig.add_subplot()
        ax.fill_between(x, quantiles[:, 0], quantiles[:, 4], color=CATEGORICAL[0], alpha=0.18, label="5–95 %")
        ax.fill_between(x, quantiles[:, 1], quantiles[:, 3], color=CATEGORICAL[0], alpha=0.4, label="25–75 %")
        ax.plot(x, quantiles[:, 2], color=CATEGORICAL[0], linewidth=1.2, label="median")
        ax.plot(x, means, color=CATEGORICAL[5], linewidth=0.8, linestyle="--", label="mean")
        ax.set_yscale("symlog", linthresh=1e-2)
        plain_log_labels(ax)
        depth_axis(ax, names)
        ax.set_ylabel("activation value")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=4, frameon=False, fontsize=7)  # above the data
        return svg_figure(fig, "activation-distribution", "Activation value distribution per layer, input to output")
