"""Saliency: input gradients and Grad-CAM (predicted and true class) for the showcase samples,
each with a deletion score that says whether the map points at what the model uses."""

from __future__ import annotations

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
from ..stats.saliency import grad_cam, input_gradient_map, masking_score, upsample

MASK_FRACTION = 0.2
MIN_CAM_SIZE = 4
KIND_TITLES = {
    "input-gradient": "input gradient, predicted class",
    "grad-cam-predicted": "Grad-CAM, predicted class",
    "grad-cam-true": "Grad-CAM, true class",
}


def default_gradcam_layer(layers: Sequence[LayerCapture]) -> str | None:
    """The last ``Conv2d`` (in execution order) whose output is at least 4×4: late enough to be
    semantic, fine enough to localise."""
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
        f"{MIN_CAM_SIZE}×{MIN_CAM_SIZE}. Only input gradients are shown.")
    try:
        # The root module ("") stands in when there is no Grad-CAM layer: its hook sees the logits,
        # and the input gradient comes out of the same call.
        by_prediction = capture_saliency(model, inputs, predicted, layer=layer or "", device=device)
        by_label = capture_saliency(model, inputs, labels, layer=layer, device=device) if layer else None
    except RuntimeError as exc:  # TorchScript modules refuse forward hooks
        return SaliencySection(None, None, source, f"Saliency was not possible: {str(exc).splitlines()[0]}",
                               MASK_FRACTION, ())
    resolution = None
    if layer:
        if by_prediction.activations.ndim != 4:
            raise ModelError(
                f"Grad-CAM layer {layer!r} outputs shape {by_prediction.activations.shape[1:]}; it needs "
                "(channels, height, width) feature maps: pick a convolution from the Activations table")
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
                maps.append(_cam_result("grad-cam-true", by_label, slot, int(labels[slot]), size,
                                        predict, image, pixels))
            samples.append(SaliencySample(slot, int(positions[slot]), int(labels[slot]), int(predicted[slot]),
                                          tuple(maps)))
    return SaliencySection(layer, resolution, source, note, MASK_FRACTION, tuple(samples))


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
