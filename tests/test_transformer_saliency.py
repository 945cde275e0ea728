"""Grad-CAM on a vision transformer: patch tokens on their grid, checked against pytorch-grad-cam
with the same reshape_transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnviz_report.capture import run_capture
from nnviz_report.sections.saliency import default_gradcam_layer, saliency_section
from nnviz_report.stats.saliency import normalise_map, upsample
from tests.fixtures.vit_models import tiny_vit

CPU = torch.device("cpu")
SHOWCASE = (0, 1, 2)


def vit_saliency():  # type: ignore[no-untyped-def]
    model = tiny_vit()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(12, 3, 32, 32, generator=g), torch.arange(12) % 10
    result = run_capture(model, x, y, batch_size=12, device=CPU, showcase_positions=SHOWCASE)
    positions = list(SHOWCASE)
    predicted = torch.from_numpy(result.logits[positions].argmax(axis=1))
    pixels = np.zeros((3, 3, 32, 32), np.uint8)
    section = saliency_section(model, x[positions], pixels, y[positions], predicted, positions=positions,
                               layers=result.layers, gradcam_layer=None, device=CPU)
    return model, result, section, x[positions], predicted


def test_transformer_grad_cam_targets_the_last_blocks_first_norm_and_names_the_reshape() -> None:
    _model, result, section, _x, _predicted = vit_saliency()
    # not the patch-embedding convolution, and not the final norm (only its class token reaches the logits)
    assert default_gradcam_layer(result.layers) == "encoder.layers.encoder_layer_1.ln_1"
    assert section.gradcam_layer == "encoder.layers.encoder_layer_1.ln_1"
    assert section.gradcam_resolution == (4, 4)
    assert section.gradcam_reshape == ("17 tokens × 16 channels: the class token (token 0) dropped, "
                                       "the 16 patch tokens reshaped to a 4×4 grid of 16 channels")
    for sample in section.samples:
        cam = next(m for m in sample.maps if m.kind == "grad-cam-predicted").cam
        assert cam is not None and np.asarray(cam).shape == (4, 4) and np.asarray(cam).max() > 0


def test_transformer_grad_cam_equals_pytorch_grad_cam_with_the_same_reshape() -> None:
    gradcam = pytest.importorskip("pytorch_grad_cam", reason="grad-cam (pytorch-grad-cam) is not installed")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, _result, section, x, predicted = vit_saliency()

    def reshape_transform(tensor: torch.Tensor, height: int = 4, width: int = 4) -> torch.Tensor:
        result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    layer = model.encoder.layers.encoder_layer_1.ln_1
    with gradcam.GradCAM(model=model, target_layers=[layer], reshape_transform=reshape_transform) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in predicted])
    model.eval()
    for slot, sample in enumerate(section.samples):
        ours_cam = next(m for m in sample.maps if m.kind == "grad-cam-predicted").cam
        ours = normalise_map(upsample(np.asarray(ours_cam), (32, 32)))
        np.testing.assert_allclose(ours, theirs[slot].astype(np.float64), atol=1e-4)
