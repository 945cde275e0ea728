"""Gradients: the per-parameter table, gradient flow across depth, first-layer filter gradients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..capture import ParamCapture
from ..checks import Thresholds, severity_at
from ..figures.common import filter_mosaic
from ..figures.gradients import gradient_flow_figure
from ..report_model import Finding, GradientsSection, ParamMeasurements, ParamStats
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


def gradients_section(stats: Sequence[ParamStats], first_conv: tuple[str, np.ndarray, np.ndarray] | None,
                      thresholds: Thresholds) -> GradientsSection:
    weights = [p for p in stats if len(p.shape) > 1]
    flow = gradient_flow_figure(
        [p.name for p in weights], [p.ratio for p in weights], [p.mean_abs_grad for p in weights],
        [p.max_abs_grad for p in weights], low=thresholds.grad_ratio_low, high=thresholds.grad_ratio_high)
    first_layer = None
    name = None
    if first_conv is not None:
        name, _weight, grad = first_conv
        first_layer = filter_mosaic(grad, "first-layer-gradients",
                                    f"Gradients of the {grad.shape[0]} filters of {name} as RGB tiles (grey = zero)")
    return GradientsSection(tuple(stats), flow, first_layer, name)
