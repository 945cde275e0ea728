"""Gradients: the per-parameter table, gradient flow across depth, first-layer filter gradients."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..capture import ParamCapture
from ..checks import Thresholds, severity_at
from ..figures.common import filter_tiles
from ..figures.draw import gradient_flow, gradient_mosaic
from ..figures.source import encode_pixels
from ..report_model import Figure, Finding, GradientsSection, ParamMeasurements, ParamStats
from .anchors import Anchors


def param_measurements(params: Sequence[ParamCapture], anchors: Anchors) -> list[ParamMeasurements]:
    """One row of numbers per parameter tensor, what the checks judge."""
    return [
        ParamMeasurements(
            name=p.name, module_path=p.module_path, anchor=anchors("grad", p.name), shape=p.shape, numel=p.numel,
            weight_norm=p.weight_norm, grad_norm=p.grad_norm,
            ratio=p.grad_norm / p.weight_norm if p.weight_norm > 0 else None,
            mean_abs_grad=p.mean_abs_grad, max_abs_grad=p.max_abs_grad,
            nonfinite_weights=p.nonfinite_weights, nonfinite_grads=p.nonfinite_grads,
        )
        for p in params
    ]


def param_stats(measured: Sequence[ParamMeasurements], findings: Sequence[Finding]) -> list[ParamStats]:
    """The Gradients table's rows: each tensor's numbers and the worst finding about its owner."""
    return [ParamStats.judged(p, severity_at(findings, p.owner)) for p in measured]


@dataclasses.dataclass(frozen=True)
class GradientCharts:
    """The section's figures, drawn from the measurements alone (before the checks, so that a child
    process can draw them while the probes run)."""

    flow: Figure
    first_layer: Figure | None
    first_layer_name: str | None
    ratio_band: tuple[float, float]
    first_layer_tiles: str


def gradient_charts(measured: Sequence[ParamMeasurements], first_conv: tuple[str, np.ndarray, np.ndarray] | None,
                    thresholds: Thresholds) -> GradientCharts:
    band = (float(thresholds.grad_ratio_low), float(thresholds.grad_ratio_high))
    first_layer = None
    name = None
    tiles_source = ""
    if first_conv is not None:
        name, _weight, grad = first_conv
        tiles = filter_tiles(grad)
        first_layer = gradient_mosaic(tiles, name)
        tiles_source = encode_pixels(tiles.reshape(-1, tiles.shape[2], 3))
    return GradientCharts(gradient_flow(measured, band), first_layer, name, band, tiles_source)


def gradients_section(stats: Sequence[ParamStats], charts: GradientCharts) -> GradientsSection:
    """The table's judged rows with the charts drawn from their measurements."""
    return GradientsSection(tuple(stats), charts.flow, charts.first_layer, charts.first_layer_name, charts.ratio_band,
                            charts.first_layer_tiles)
