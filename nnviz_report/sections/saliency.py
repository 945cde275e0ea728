"""Saliency: input gradients and Grad-CAM (predicted and true class) for the showcase samples,
each with a deletion score that says whether the map points at what the model uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..capture import LayerCapture
from ..errors import ModelError
from ..figures.common import image_pixels
from ..figures.draw import saliency_image
from ..figures.saliency import KIND_TITLES, display_scaled  # noqa: F401 (KIND_TITLES: read from here by tests)
from ..figures.source import encode_pixels, quantise_unit
from ..hooks import model_session
from ..report_model import SaliencyMapResult, SaliencySample, SaliencySection
from ..saliency_capture import SaliencyCapture, capture_saliency
from ..stats import layout as layouts
from ..stats.saliency import MaskingScore, grad_cam, input_gradient_map, masking_scores, upsample

MASK_FRACTION = 0.2
MIN_CAM_SIZE = 4


def default_gradcam_layer(layers: Sequence[LayerCapture]) -> str | None:
    """For a transformer (token outputs on a patch grid), the first norm of the last block: the
    last place where patch tokens still reach the logits (after the last block only the class
    token does, so later maps are zero), as pytorch-grad-cam's ViT example
    (``blocks[-1].norm1``). Otherwise the last ``Conv2d`` (in execution order) whose output is at
    least 4×4: late enough to be semantic, fine enough to localise."""
    token_norms = [layer for layer in layers if layer.layout.kind == layouts.TOKENS and layer.layout.grid is not None
                   and "Norm" in layer.type and "#" not in layer.name]
    if token_norms:
        by_block: dict[str, list[LayerCapture]] = {}
        for layer in token_norms:
            by_block.setdefault(layer.module_path.rpartition(".")[0], []).append(layer)
        blocks = [norms for norms in by_block.values() if len(norms) >= 2]
        return (blocks[-1][0] if blocks else token_norms[-1]).module_path
    for layer in reversed(layers):
        shape = layer.output_shape
        if layer.type == "Conv2d" and len(shape) == 3 and min(shape[1:]) >= MIN_CAM_SIZE:
            return layer.module_path
    return None


def saliency_section(model: nn.Module, inputs: Tensor, images: np.ndarray, labels: Tensor,
                     predicted: Tensor, *, positions: Sequence[int], layers: Sequence[LayerCapture],
                     gradcam_layer: str | None, device: torch.device) -> SaliencySection:
    """``inputs`` are the showcase samples normalised as the model expects them, ``images`` the
    same samples as uint8 ``(S, 3, H, W)``; ``labels`` and ``predicted`` their classes."""
    source = "settings" if gradcam_layer else "auto"
    layer = gradcam_layer or default_gradcam_layer(layers)
    note = "" if layer else (
        f"Grad-CAM was not possible: the model has no Conv2d layer with an output of at least "
        f"{MIN_CAM_SIZE}×{MIN_CAM_SIZE} and no token sequence on a patch grid. Only input gradients are shown.")
    try:
        # The root module ("") stands in when there is no Grad-CAM layer: its hook sees the logits,
        # and the input gradient comes out of the same call.
        by_prediction, by_label = _capture_both(model, inputs, predicted, labels, layer, device)
    except RuntimeError as exc:  # TorchScript modules refuse forward hooks
        return SaliencySection(None, None, source, f"Saliency was not possible: {str(exc).splitlines()[0]}",
                               MASK_FRACTION, (), "")
    resolution = None
    reshape = ""
    if layer:
        assert by_label is not None
        class_token = layouts.has_class_token(dict(model.named_parameters()))
        by_prediction, reshape = _on_grid(by_prediction, layer, class_token)
        by_label, _ = _on_grid(by_label, layer, class_token)
        resolution = (int(by_prediction.activations.shape[2]), int(by_prediction.activations.shape[3]))

    size = (int(inputs.shape[2]), int(inputs.shape[3]))
    # Every map of every sample first, then all their deletion scores in one forward pass.
    planned: list[tuple[int, str, int, np.ndarray, np.ndarray | None]] = []  # slot, kind, target, map, cam
    for slot in range(len(inputs)):
        assert by_prediction.input_gradients is not None
        planned.append((slot, "input-gradient", int(predicted[slot]),
                        input_gradient_map(by_prediction.input_gradients[slot]), None))
        if by_label is not None:
            kinds = [("grad-cam-predicted", by_prediction, int(predicted[slot]))]
            if int(labels[slot]) != int(predicted[slot]):  # otherwise the same map as the predicted class's
                kinds.append(("grad-cam-true", by_label, int(labels[slot])))
            for kind, captured, target in kinds:
                cam = grad_cam(captured.activations[slot], captured.gradients[slot])
                planned.append((slot, kind, target, upsample(cam, size), cam))
    with model_session(model, device):
        def predict(batch: Tensor) -> Tensor:
            return torch.softmax(model(batch.to(device)).float(), dim=1)

        scores = masking_scores(predict, [inputs[slot].to(device) for slot, *_ in planned],
                                [full for *_, full, _cam in planned], [target for _s, _k, target, *_ in planned],
                                fraction=MASK_FRACTION, fill=0.0)
    results: dict[int, list[SaliencyMapResult]] = {slot: [] for slot in range(len(inputs))}
    for (slot, kind, target, full, cells), score in zip(planned, scores, strict=True):
        results[slot].append(_map_result(kind, slot, target, full, cells, score, image_pixels(images[slot])))
    samples = [SaliencySample(slot, int(positions[slot]), int(labels[slot]), int(predicted[slot]),
                              tuple(results[slot])) for slot in range(len(inputs))]
    return SaliencySection(layer, resolution, source, note, MASK_FRACTION, tuple(samples), reshape)


def _capture_both(model: nn.Module, inputs: Tensor, predicted: Tensor, labels: Tensor, layer: str | None,
                  device: torch.device) -> tuple[SaliencyCapture, SaliencyCapture | None]:
    """The predicted-class and the true-class gradients in one forward and one backward: the
    showcase batch twice, the first copy scored by its predicted classes, the second by its labels.
    Each sample's target logit depends on that sample alone (the model is in eval mode), so the
    gradients are those of two separate calls. Without a Grad-CAM layer only the first is needed."""
    if not layer:
        return capture_saliency(model, inputs, predicted, layer="", device=device), None
    count = len(inputs)
    both = capture_saliency(model, torch.cat([inputs, inputs]), torch.cat([predicted, labels]), layer=layer,
                            device=device)

    def half(part: slice) -> SaliencyCapture:
        assert both.input_gradients is not None
        return dataclasses.replace(both, activations=both.activations[part], gradients=both.gradients[part],
                                   input_gradients=both.input_gradients[part], probabilities=both.probabilities[part])

    return half(slice(0, count)), half(slice(count, 2 * count))


def _on_grid(captured: SaliencyCapture, layer: str, class_token: bool) -> tuple[SaliencyCapture, str]:
    """Feature maps as they are; a token sequence's patch tokens (class and register tokens
    removed) reshaped to their grid, channels first — pytorch-grad-cam's ``reshape_transform``
    for vision transformers. Returns the maps and the reshape in words ("" for feature maps)."""
    shape = tuple(captured.activations.shape)
    layout = layouts.classify(shape, shape[0], "", class_token=class_token)
    if layout.kind == layouts.FEATURE_MAP:
        return captured, ""
    if layout.kind != layouts.TOKENS or layout.grid is None:
        raise ModelError(
            f"Grad-CAM layer {layer!r} outputs shape {shape[1:]}; it needs (channels, height, width) feature maps "
            "or (tokens, channels) on a square patch grid: pick a convolution or a transformer block's norm "
            "from the Activations table")
    h, w = layout.grid
    activations = layouts.spatial_maps(torch.from_numpy(captured.activations), layout)
    gradients = layouts.spatial_maps(torch.from_numpy(captured.gradients), layout)
    assert activations is not None and gradients is not None
    prefix = layout.prefix_tokens
    dropped = ("" if not prefix else "the class token (token 0) dropped, " if prefix == 1 and class_token
               else f"the first {prefix} tokens (class/register) dropped, ")
    words = (f"{shape[1]} tokens × {shape[2]} channels: {dropped}the {h * w} patch tokens reshaped to a "
             f"{h}×{w} grid of {shape[2]} channels")
    return dataclasses.replace(captured, activations=activations.contiguous().numpy(),
                               gradients=gradients.contiguous().numpy()), words


def _map_result(kind: str, slot: int, target: int, full: np.ndarray, cam: np.ndarray | None,
                score: MaskingScore, pixels: np.ndarray) -> SaliencyMapResult:
    """An input-gradient map (``cam`` None) is shown display-scaled; a Grad-CAM map relative to
    its peak, with its layer-resolution values kept for the record."""
    if cam is None:
        heat = display_scaled(full)
    else:
        top = float(full.max())
        heat = np.clip(full / top, 0.0, 1.0) if top > 0 else np.zeros_like(full)
    levels = quantise_unit(heat)
    cells = None if cam is None else tuple(tuple(float(v) for v in row) for row in cam)
    return SaliencyMapResult(kind, target, score.salient_drop, score.random_drop,
                             saliency_image(pixels, slot, kind, levels), cells, encode_pixels(levels))
