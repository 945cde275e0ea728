"""Stages: where a network's feature maps change resolution, for any architecture.

A stage is a run of consecutive layers whose feature maps share one spatial size; its output is
the last layer of the run (normalisation layers aside, which only rescale what came before).
Channel width is not a boundary: a dense block widens at every layer. The report shows feature
maps for the first convolution and each stage's output, a bounded set however deep the model.
A stage that is the first convolution followed only by its activation (lenet's conv1 → relu1) is
shown once, after the activation: the two grids would show the same maps, one clipped at zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..capture import LayerCapture
from .slices import ACTIVATION_TYPES, NORM_TYPES, evenly_spaced

MAX_MAP_LAYERS = 6  # the first convolution and up to five stage outputs
MIN_SIDE = 2  # a 1×1 map has no spatial pattern to show


def map_candidates(layers: Sequence[LayerCapture]) -> list[LayerCapture]:
    """Layers with showcase feature maps ``(S, C, H, W)`` of at least ``MIN_SIDE`` on each side."""
    return [layer for layer in layers
            if layer.showcase_maps is not None and layer.showcase_maps.ndim == 4
            and min(layer.showcase_maps.shape[2:]) >= MIN_SIDE]


def stage_outputs(candidates: Sequence[LayerCapture]) -> list[tuple[LayerCapture, tuple[int, int]]]:
    """The last non-normalisation layer of each run of one spatial size, with that size."""
    outputs: list[tuple[LayerCapture, tuple[int, int]]] = []
    size: tuple[int, int] | None = None
    for layer in candidates:
        assert layer.showcase_maps is not None
        here = (int(layer.showcase_maps.shape[2]), int(layer.showcase_maps.shape[3]))
        if here != size:
            outputs.append((layer, here))
            size = here
        elif not layer.type.startswith(NORM_TYPES):
            outputs[-1] = (layer, here)
    return outputs


def _same_maps(conv: LayerCapture, layer: LayerCapture) -> bool:
    """``layer`` only rescales or rectifies ``conv``'s maps: a normalisation or an activation of the
    same shape."""
    assert conv.showcase_maps is not None and layer.showcase_maps is not None
    return (layer.type.startswith(NORM_TYPES) or layer.type in ACTIVATION_TYPES) \
        and layer.showcase_maps.shape == conv.showcase_maps.shape


def map_layers(layers: Sequence[LayerCapture]) -> tuple[list[tuple[LayerCapture, str]], int]:
    """The layers whose feature maps are shown, each with its role in words, in depth order, and
    how many layers could have been shown: the first convolution, then the stage outputs (evenly
    spaced by depth, the last one included, when there are more than fit)."""
    candidates = map_candidates(layers)
    first_conv = next((layer for layer in candidates if "conv" in layer.type.lower()), None)
    stages = stage_outputs(candidates)
    chosen: list[tuple[LayerCapture, str]] = []
    if first_conv is not None:
        # a first convolution that is also its stage's output (nothing follows it at that size but
        # normalisation and an activation) is shown once, and leaves its place to another stage
        position = {id(layer): i for i, layer in enumerate(candidates)}
        start = position[id(first_conv)]
        shown, role = first_conv, "first convolution"
        # the output of the first convolution's own stage: the first stage output at or after it
        own = next(((layer, size) for layer, size in stages if position[id(layer)] >= start), None)
        if own is not None:
            layer, (h, w) = own
            between = candidates[start + 1:position[id(layer)] + 1]
            if layer is first_conv:
                role = f"first convolution, output of the {h}×{w} stage"
            elif all(_same_maps(first_conv, b) for b in between):
                shown, role = layer, f"first convolution {first_conv.name} after its {layer.type}, " \
                                     f"output of the {h}×{w} stage"
            if shown is layer:
                stages = [(other, size) for other, size in stages if other is not layer]
        chosen.append((shown, role))
    for index in evenly_spaced(len(stages), MAX_MAP_LAYERS - len(chosen)):
        layer, (h, w) = stages[index]
        chosen.append((layer, f"output of the {h}×{w} stage"))
    order = {id(layer): i for i, layer in enumerate(layers)}
    return sorted(chosen, key=lambda pair: order[id(pair[0])]), len(candidates)
