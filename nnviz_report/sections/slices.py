"""Slices: showcase samples followed through the layers, layer-to-layer CKA, class separability."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..capture import LayerCapture
from ..figures.common import image_pixels
from ..figures.draw import slices_figures
from ..figures.slices import response_map
from ..figures.source import encode_pixels, quantise_unit
from ..report_model import Figure, LayerSeparability, SlicesSection, SliceStrip
from ..stats.similarity import cka_matrix, fisher_ratio, nearest_class_mean_accuracy
from .anchors import Anchors

MAX_STRIP_LAYERS = 12
MAX_CKA_LAYERS = 40
CHANCE = 0.1
# Normalisation layers rescale their input per channel: a strip row for them repeats the row above.
NORM_TYPES = ("BatchNorm", "GroupNorm", "LayerNorm", "InstanceNorm", "LocalResponseNorm")
ACTIVATION_TYPES = ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
                    "Hardswish", "Sigmoid", "Tanh", "Hardtanh", "Softplus")


def evenly_spaced(count: int, limit: int) -> list[int]:
    """``limit`` indices out of ``range(count)``, evenly spread, first and last always included."""
    if count <= limit:
        return list(range(count))
    if limit == 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def strip_layers(layers: Sequence[LayerCapture]) -> tuple[list[LayerCapture], int, str]:
    """The layers whose feature maps the strips show, how many could have been, and the rule."""
    candidates = [
        layer for layer in layers
        if layer.showcase_maps is not None and layer.showcase_maps.ndim == 4 and layer.repeats is None
        and min(layer.showcase_maps.shape[2:]) >= 2 and not layer.type.startswith(NORM_TYPES)
    ]
    rule = "every layer with feature maps of at least 2×2 (normalisation layers left out)"
    if len(candidates) > MAX_STRIP_LAYERS:
        activations = [layer for layer in candidates if layer.type in ACTIVATION_TYPES]
        # The last activation inside each module is that block's output (a ResNet block's
        # post-addition ReLU): when there are enough blocks, they tell the story best.
        last_in_module = {_parent(layer): layer for layer in activations}
        block_outputs = [layer for layer in activations if last_in_module[_parent(layer)] is layer]
        if len(block_outputs) >= MAX_STRIP_LAYERS // 2:
            candidates, rule = block_outputs, "block outputs (the last activation inside each module)"
        elif len(activations) >= MAX_STRIP_LAYERS // 2:
            candidates, rule = activations, "activation outputs"
        rule += " with feature maps of at least 2×2"
    chosen = [candidates[i] for i in evenly_spaced(len(candidates), MAX_STRIP_LAYERS)]
    if len(chosen) < len(candidates):
        rule += f", {len(chosen)} evenly spaced by depth (first and last included)"
    return chosen, len(candidates), rule


def _parent(layer: LayerCapture) -> str:
    return layer.module_path.rpartition(".")[0]


def slices_section(layers: Sequence[LayerCapture], labels: np.ndarray, showcase_images: np.ndarray,
                   anchors: Anchors) -> SlicesSection | None:
    """``showcase_images`` are the showcase samples' uint8 ``(S, 3, H, W)`` pixels; ``labels`` the
    true class of every sample, in the order of the pooled features."""
    section = slices_numbers(layers, labels, showcase_images, anchors)
    return with_slices_figures(section, showcase_images) if section is not None else None


def with_slices_figures(section: SlicesSection, showcase_images: np.ndarray) -> SlicesSection:
    """The section's strips and charts drawn from its own numbers, exactly as render draws them
    from report.json (no torch: a child process can draw them)."""
    return slices_figures(section, lambda slot, _where: image_pixels(showcase_images[slot]))


def slices_numbers(layers: Sequence[LayerCapture], labels: np.ndarray, showcase_images: np.ndarray,
                   anchors: Anchors) -> SlicesSection | None:
    """:func:`slices_section` with its figures not drawn yet (``Figure.undrawn``)."""
    chosen, strip_candidates, rule = strip_layers(layers)
    names = [layer.name for layer in chosen]
    channels = [int(layer.showcase_maps.shape[1]) for layer in chosen]  # type: ignore[union-attr]
    strips = []
    for slot in range(len(showcase_images) if chosen else 0):
        levels = [quantise_unit(response_map(layer.showcase_maps[slot])) for layer in chosen]  # type: ignore[index]
        strips.append(SliceStrip(slot, Figure.undrawn(f"slice-{slot}"), tuple(encode_pixels(lv) for lv in levels)))

    # Flatten rows repeat their input's values (dropped, as from the Activations table), and
    # outputs that are not batch-first have no per-sample vector at all.
    pooled = [layer for layer in layers if layer.pooled_features is not None and layer.repeats is None]
    count = len(labels)
    if not pooled and not strips:
        return None
    cka_layers = [pooled[i] for i in evenly_spaced(len(pooled), MAX_CKA_LAYERS)]
    cka = np.zeros((0, 0))
    if count >= 2 and cka_layers:
        cka = cka_matrix([layer.pooled_features for layer in cka_layers])  # type: ignore[misc]

    splittable = count > 0 and np.bincount(labels).max(initial=0) >= 2
    separability = []
    for layer in pooled:
        features = layer.pooled_features
        assert features is not None
        separability.append(LayerSeparability(
            layer=layer.name, anchor=anchors.lookup("act", layer.name), features=int(features.shape[1]),
            pooling=layer.layout.pooling,
            ncm_accuracy=nearest_class_mean_accuracy(features, labels) if splittable else None,
            fisher_ratio=fisher_ratio(features, labels) if count else None,
        ))
    return SlicesSection(
        strip_layers=tuple(names),
        strip_candidates=strip_candidates,
        strip_rule=rule,
        strips=tuple(strips),
        cka_layers=tuple(layer.name for layer in cka_layers),
        cka_candidates=len(pooled),
        cka=tuple(tuple(float(v) for v in row) for row in cka),
        cka_figure=Figure.undrawn("cka") if count >= 2 and cka_layers else None,
        separability=tuple(separability),
        separability_figure=Figure.undrawn("separability") if separability and splittable else None,
        chance=CHANCE,
        samples=count,
        strip_channels=tuple(channels),
    )
