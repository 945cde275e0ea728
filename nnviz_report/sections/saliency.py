"""Saliency: input gradients and Grad-CAM (predicted and true class) for the showcase samples,
each with a deletion score that says whether the map points at what the model uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..capture import LayerCapture, SaliencyCapture, capture_saliency
from ..errors import ModelError
from ..figures.common import image_pixels
from ..figures.saliency import display_scaled, overlay_figure
from ..hooks import model_session
from ..report_model import SaliencyMapResult, SaliencySample, SaliencySection
from ..stats import layout as layouts
from ..stats.saliency import grad_cam, input_gradient_map, masking_score, upsample

MASK_FRACTION = 0.2
MIN_CAM_SIZE = 4
KIND_TITLES = {
    "input-gradient": "input gradient, predicted class",
    "grad-cam-predicted": "Grad-CAM, predicted class",
    "grad-cam-true": "Grad-CAM, true class",
}


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
        by_prediction = capture_saliency(model, inputs, predicted, layer=layer or "", device=device)
        by_label = capture_saliency(model, inputs, labels, layer=layer, device=device) if layer else None
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
    samples = []
    with model_session(model, device):
        def predict(batch: Tensor) -> Tensor:
            return torch.softmax(model(batch.to(device)).float(), dim=1)

        for slot in range(len(inputs)):
            image = inputs[slot].to(device)
            pixels = image_pixels(images[slot])
            maps = [_input_gradient_result(by_prediction, slot, int(predicted[slot]), predict, image, pixels)]
            if by_label is not None:
                maps.append(_cam_result("grad-cam-predicted", by_prediction, slot, int(predicted[slot]), size,
                                        predict, image, pixels))
                if int(labels[slot]) != int(predicted[slot]):  # otherwise the same map as the predicted class's
                    maps.append(_cam_result("grad-cam-true", by_label, slot, int(labels[slot]), size,
                                            predict, image, pixels))
            samples.append(SaliencySample(slot, int(positions[slot]), int(labels[slot]), int(predicted[slot]),
                                          tuple(maps)))
    return SaliencySection(layer, resolution, source, note, MASK_FRACTION, tuple(samples), reshape)


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


def _input_gradient_result(captured: SaliencyCapture, slot: int, target: int,
                           predict: Callable[[Tensor], Tensor], image: Tensor,
                           pixels: np.ndarray) -> SaliencyMapResult:
    saliency = input_gradient_map(captured.input_gradients[slot])
    score = masking_score(predict, image, saliency, target, fraction=MASK_FRACTION, fill=0.0)
    figure = overlay_figure(pixels, display_scaled(saliency), f"saliency-{slot}-input-gradient",
                            f"Showcase sample {slot + 1}: {KIND_TITLES['input-gradient']}")
    return SaliencyMapResult("input-gradient", target, score.salient_drop, score.random_drop, figure, None)


def _cam_result(kind: str, captured: SaliencyCapture, slot: int, target: int, size: tuple[int, int],
                predict: Callable[[Tensor], Tensor], image: Tensor, pixels: np.ndarray) -> SaliencyMapResult:
    cam = grad_cam(captured.activations[slot], captured.gradients[slot])
    full = upsample(cam, size)
    score = masking_score(predict, image, full, target, fraction=MASK_FRACTION, fill=0.0)
    top = float(full.max())
    heat = np.clip(full / top, 0.0, 1.0) if top > 0 else np.zeros_like(full)
    figure = overlay_figure(pixels, heat, f"saliency-{slot}-{kind}",
                            f"Showcase sample {slot + 1}: {KIND_TITLES[kind]}")
    return SaliencyMapResult(kind, target, score.salient_drop, score.random_drop, figure,
                             tuple(tuple(float(v) for v in row) for row in cam))
