"""Slice figures: one sample through the layers (PIL), CKA heatmap and separability across depth."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import one_line
from ..report_model import Figure
from .common import (
    CATEGORICAL,
    DEPTH_LABEL_PT,
    DEPTH_WIDTH,
    colourise,
    depth_axis,
    depth_labels,
    drawable_names,
    line_markers,
    matrix_cells,
    new_figure,
    ordinal,
    png_figure,
    style,
    svg_figure,
)
from .saliency import BLEND

TILE = 40  # px per map: four strips side by side fit a 768 px column and the PDF's text width
GAP = 3
LABEL_WIDTH = 118
# The labels are drawn into the image, so they cannot follow the page's colour scheme: a mid grey
# that reads on the light page (4.4:1) and on the dark one (4.2:1), on a transparent background.
LABEL_COLOUR = (112, 122, 133, 255)


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # matplotlib ships DejaVu Sans, so labels look the same on every machine.
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), 10) if path.exists() else ImageFont.load_default()


def _enlarge(pixels: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    return np.asarray(image.resize((size, size), Image.Resampling.NEAREST))


def response_map(maps: np.ndarray) -> np.ndarray:
    """Where in the image one sample's ``(C, H, W)`` output responds: the mean |activation| over
    channels, scaled to [0, 1] over its own range (all zeros for a constant map)."""
    energy = np.abs(np.asarray(maps, dtype=np.float64)).mean(axis=0)
    lo, hi = float(energy.min()), float(energy.max())
    return (energy - lo) / (hi - lo) if hi > lo else np.zeros_like(energy)


def _overlay(thumb: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``levels`` (h, w), a heat map as uint8 0–255, enlarged bilinearly to the thumbnail and
    blended over it the way the saliency maps are (its value sets its opacity, up to BLEND)."""
    size = thumb.shape[0]
    heat_image = Image.fromarray(np.ascontiguousarray(levels, dtype=np.uint8), mode="L")
    heat_big = np.asarray(heat_image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64) / 255
    colours = colourise(heat_big, "inferno").astype(np.float64)
    weight = (BLEND * heat_big)[..., None] + (1 - BLEND) * 0.35
    return np.clip(((1 - weight) * thumb + weight * colours).round(), 0, 255).astype(np.uint8)


def strip_figure(image_hwc: np.ndarray, layers: list[tuple[str, int, np.ndarray]], name: str, alt: str) -> Figure:
    """One sample through the layers, top to bottom: the input, then for each layer where in the
    image it responds (its ``response_map`` as uint8 levels 0–255, blended over the input, inferno:
    dark low, yellow high), labelled with its name and channel count. One tile per layer, not its
    channels: those are the Activations section's feature maps."""
    thumb = _enlarge(image_hwc, TILE)
    rows = [("input", f"{image_hwc.shape[0]}×{image_hwc.shape[1]}", thumb)]
    rows += [(label, f"{channels} ch · {levels.shape[0]}×{levels.shape[1]}", _overlay(thumb, levels))
             for label, channels, levels in layers]
    width = LABEL_WIDTH + TILE + GAP
    canvas = Image.new("RGBA", (width, len(rows) * (TILE + GAP) - GAP), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for r, (label, detail, pixels) in enumerate(rows):
        y = r * (TILE + GAP)
        label = one_line(label)  # Pillow cannot measure multi-line text or draw a lone surrogate
        text = label if draw.textlength(label, font=font) <= LABEL_WIDTH - 6 else "…" + label[-17:]
        draw.text((0, y + TILE // 2 - 12), text, fill=LABEL_COLOUR, font=font)
        draw.text((0, y + TILE // 2 + 1), detail, fill=LABEL_COLOUR, font=font)
        canvas.paste(Image.fromarray(pixels).convert("RGBA"), (LABEL_WIDTH, y))
    return png_figure(np.asarray(canvas), name, alt)


def cka_figure(names: list[str], matrix: np.ndarray) -> Figure:
    """A square heatmap at most ``DEPTH_WIDTH`` wide, so it is never shrunk and its labels stay at
    ``DEPTH_LABEL_PT``; when the layers outnumber what the side can label, every k-th is labelled."""
    names = drawable_names(names)
    n = len(names)
    side = max(2.6, min(4.0, 0.14 * n + 1.0))  # the cells; labels and colour bar take 2.2 in beside, 1.3 in below
    step, positions, labels = depth_labels(names, side)
    with style():
        fig = new_figure(side + 2.2, side + 1.3)
        ax = fig.add_subplot()
        cells = matrix_cells(ax, matrix, cmap="viridis", vmin=0.0, vmax=1.0, colour_label="linear CKA", shrink=0.7,
                             annotate=".2f" if n <= 8 else None, annotate_pt=DEPTH_LABEL_PT)
        ticks = np.array(positions) + 0.5
        ax.set_xticks(ticks, labels, rotation=90, fontsize=DEPTH_LABEL_PT)
        ax.set_yticks(ticks, labels, rotation=0, fontsize=DEPTH_LABEL_PT)
        if step > 1:
            ax.set_xlabel(f"every {ordinal(step)} of {n} layers labelled", fontsize=DEPTH_LABEL_PT)
        ax.grid(False)
        # One vector path per cell made this figure 0.35 MB for resnet20's 64 layers; as one embedded
        # image the cells cost a few KB, while labels and colour bar stay text and vector.
        cells.set_rasterized(True)
        return svg_figure(fig, "cka", "Linear CKA between every pair of layers; bright is similar")


def separability_figure(names: list[str], accuracy: list[float | None], fisher: list[float | None],
                        chance: float) -> Figure:
    names = drawable_names(names)
    x = np.arange(len(names))
    acc = np.array([a if a is not None else np.nan for a in accuracy], dtype=float)
    fr = np.array([f if f is not None and np.isfinite(f) else np.nan for f in fisher], dtype=float)
    with style():
        fig = new_figure(DEPTH_WIDTH, 2.6)
        ax = fig.add_subplot()
        ax.axhline(chance * 100, color="#888888", linestyle=":", linewidth=1, label=f"chance {chance:.0%}")
        ax.plot(x, acc * 100, color=CATEGORICAL[0], markersize=3, linewidth=1.4,
                **line_markers(acc, "o"), label="nearest-class-mean accuracy")
        ax.set_ylim(0, 100)
        ax.set_ylabel("held-out accuracy (%)")
        right = ax.twinx()
        right.plot(x, fr, color=CATEGORICAL[1], linewidth=0.9, linestyle="--",
                   **line_markers(fr, "."), label="Fisher ratio")
        right.set_ylabel("Fisher ratio tr(S_B)/tr(S_W)")
        right.set_ylim(bottom=0)
        right.grid(False)
        right.spines["right"].set_visible(True)
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3, frameon=False, fontsize=7)
        depth_axis(ax, names, axis_inches=DEPTH_WIDTH - 2.0)
        return svg_figure(fig, "separability",
                          "Class separability of each layer's pooled features, input to output")
