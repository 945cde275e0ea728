"""Activations: per-layer statistics over the whole sample and showcase feature-map grids."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..capture import LayerCapture
from ..checks import severity_at
from ..figures.activations import grid_levels, most_active_channels
from ..figures.draw import activation_distribution, grid_image
from ..figures.source import encode_pixels
from ..report_model import (
    ActivationsSection,
    FeatureGrid,
    Figure,
    Finding,
    HistogramData,
    LayerMeasurements,
    LayerStats,
)
from ..stats import layout as layouts
from .anchors import Anchors
from .stages import map_layers

MAX_TOKEN_GRIDS = 4


def layer_measurements(layers: Sequence[LayerCapture], anchors: Anchors) -> list[LayerMeasurements]:
    """One row of numbers per captured layer, what the checks judge."""
    rows = []
    for layer in layers:
        if layer.repeats is not None:
            continue  # a Flatten of a captured output: same values, same statistics as that row
        a, g = layer.activation, layer.gradient
        rows.append(LayerMeasurements(
            name=layer.name, module_path=layer.module_path, anchor=anchors("act", layer.name),
            type=layer.type, output_shape=layer.output_shape, layout=layer.layout.kind,
            layout_note=layouts.describe(layer.layout, layer.output_shape),
            mean=a.mean, std=a.std, min=a.min, max=a.max, zero_fraction=a.zero_fraction,
            dead_channels=layer.dead_channels, channels=layer.channels, saturation=layer.saturation,
            nonfinite=a.nonfinite,
            histogram=HistogramData(a.histogram.start, a.histogram.width, a.histogram.counts),
            grad_rms=g.rms if g.count else None, grad_max_abs=g.max_abs if g.count else None,
            grad_nonfinite=g.nonfinite,
        ))
    return rows


def layer_stats(measured: Sequence[LayerMeasurements], findings: Sequence[Finding]) -> list[LayerStats]:
    """The Activations table's rows: each layer's numbers and the worst finding about it."""
    return [LayerStats.judged(row, severity_at(findings, row.name, row.module_path)) for row in measured]


@dataclasses.dataclass(frozen=True)
class ActivationCharts:
    """The section's figures, drawn from the measurements alone (before the checks, so that a child
    process can draw them while the probes run): the showcase grids and the distributions."""

    grids: tuple[FeatureGrid, ...]
    distribution: Figure
    grid_candidates: int


def activation_charts(layers: Sequence[LayerCapture], measured: Sequence[LayerMeasurements]) -> ActivationCharts:
    grids = []
    rows = {row.name: row for row in measured}
    shown, candidates = grid_layers(layers)
    for layer, role in shown:
        row = rows[layer.name]
        maps = layer.showcase_maps
        assert maps is not None
        channels = most_active_channels(maps)
        levels = [grid_levels(maps[s], channels) for s in range(maps.shape[0])]
        images = tuple(grid_image(layer.name, row.anchor, len(channels), s, lv) for s, lv in enumerate(levels))
        grids.append(FeatureGrid(layer.name, row.anchor, len(channels), maps.shape[1],
                                 (maps.shape[2], maps.shape[3]), images, layer.layout.kind, role,
                                 tuple(encode_pixels(lv) for lv in levels)))
    return ActivationCharts(tuple(grids), activation_distribution(measured), candidates)


def activations_section(stats: Sequence[LayerStats], charts: ActivationCharts) -> ActivationsSection:
    """The table's judged rows with the charts drawn from their measurements."""
    return ActivationsSection(tuple(stats), charts.grids, charts.distribution, charts.grid_candidates)


def grid_layers(layers: Sequence[LayerCapture]) -> tuple[list[tuple[LayerCapture, str]], int]:
    """The layers whose maps are shown, each with its role, in depth order, and how many could
    have been: the first convolution and the stage outputs of the feature-map layers (stages.py),
    and for transformers a few token-sequence norms (the block inputs, evenly spread by depth)
    with their patch tokens laid out on the patch grid."""
    feature_maps = [layer for layer in layers if layer.repeats is None and layer.layout.kind != layouts.TOKENS]
    shown, candidates = map_layers(feature_maps)
    tokens = [layer for layer in layers if layer.repeats is None and layer.showcase_maps is not None
              and layer.showcase_maps.ndim == 4 and layer.layout.kind == layouts.TOKENS and "Norm" in layer.type]
    candidates += len(tokens)
    if len(tokens) > MAX_TOKEN_GRIDS:
        step = (len(tokens) - 1) / (MAX_TOKEN_GRIDS - 1)
        tokens = [tokens[round(i * step)] for i in range(MAX_TOKEN_GRIDS)]
    shown += [(layer, "a block's input: patch tokens on their grid") for layer in tokens]
    order = {id(layer): i for i, layer in enumerate(layers)}
    return sorted(shown, key=lambda pair: order[id(pair[0])]), candidates
