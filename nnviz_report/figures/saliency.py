"""Saliency figures: a heat map alpha-blended over the enlarged input image (PIL only)."""

from __future__ import annotations

import numpy as np

from ..report_model import Figure
from .common import colour_levels, png_figure
from .source import quantise_unit

KIND_TITLES = {
    "input-gradient": "input gradient, predicted class",
    "grad-cam-predicted": "Grad-CAM, predicted class",
    "grad-cam-true": "Grad-CAM, true class",
}
SCALE = 3  # 32×32 inputs are shown at 96×96, like the showcase thumbnails
BLEND = 0.55  # weight of the heat map where it is at its strongest


def overlay_figure(image_hwc: np.ndarray, heat: np.ndarray, name: str, alt: str) -> Figure:
    """``heat`` in [0, 1] at the image's resolution. The heat map's own value sets its opacity
    (up to ``BLEND``), so cold regions leave the image readable. NaN (a model with NaN weights)
    is drawn cold."""
    return overlay_levels_figure(image_hwc, quantise_unit(heat), name, alt)


def overlay_levels_figure(image_hwc: np.ndarray, levels: np.ndarray, name: str, alt: str) -> Figure:
    """The overlay drawn from the heat map as uint8 levels 0–255 (what report.json records)."""
    heat = np.asarray(levels, dtype=np.float64) / 255.0
    colours = colour_levels(levels, "inferno").astype(np.float64)
    weight = (BLEND * heat)[..., None] + (1 - BLEND) * 0.35
    blended = (1 - weight) * image_hwc.astype(np.float64) + weight * colours
    return png_figure(np.clip(blended.round(), 0, 255).astype(np.uint8), name, alt, scale=SCALE)


def display_scaled(saliency: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """[0, 1] for display: values above the ``percentile`` are clipped so that one extreme pixel
    does not wash out the rest of an input-gradient map."""
    top = float(np.percentile(saliency, percentile))
    low = float(saliency.min())
    if top <= low:
        return np.zeros_like(saliency, dtype=np.float64)
    return np.clip((saliency - low) / (top - low), 0.0, 1.0)
