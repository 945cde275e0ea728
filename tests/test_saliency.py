"""Saliency functions checked against plain reimplementations and hand-computed values."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nnviz_report.stats.saliency import (
    MaskingScore,
    grad_cam,
    input_gradient_map,
    masking_score,
    masking_scores,
    normalise_map,
    upsample,
)


def _tiny_net() -> tuple[nn.Module, nn.Module]:
    """A tiny conv net split by hand into the part before the Grad-CAM layer and the rest."""
    torch.manual_seed(0)
    features = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU()
    )
    head = nn.Sequential(nn.Conv2d(5, 6, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 10))
    return features.double(), head.double()


@pytest.mark.parametrize("target", [0, 3, 9])
def test_grad_cam_equals_plain_reimplementation(target):
    features, head = _tiny_net()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    acts = features(x)
    (grads,) = torch.autograd.grad(head(acts)[:, target].sum(), acts)
    weights = grads.mean(dim=(2, 3))
    expected = torch.relu((weights[:, :, None, None] * acts).sum(dim=1)).detach().numpy()
    for i in range(2):
        np.testing.assert_allclose(grad_cam(acts[i], grads[i]), expected[i], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad_cam(acts, grads), expected, rtol=1e-12, atol=1e-15)  # batched
    assert np.any(expected > 0)


def test_grad_cam_reduces_to_cam_for_global_pool_and_linear_head():
    # score = Σ_c W_kc · mean_hw(A_c) ⇒ ∂score/∂A_c = W_kc/(HW) ⇒ Grad-CAM = relu(Σ_c W_kc A_c)/(HW).
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 4, 5))
    w = rng.standard_normal(6)
    grads = np.broadcast_to(w[:, None, None] / 20.0, a.shape)
    expected = np.maximum(np.tensordot(w, a, axes=1), 0.0) / 20.0
    np.testing.assert_allclose(grad_cam(a, grads), expected, rtol=1e-12)


def test_grad_cam_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="matching"):
        grad_cam(np.ones((2, 3, 3)), np.ones((2, 3, 4)))


def test_upsample_matches_hand_computed_bilinear():
    m = np.array([[0.0, 1.0], [2.0, 3.0]])
    expected = np.array(
        [[0.0, 0.25, 0.75, 1.0], [0.5, 0.75, 1.25, 1.5], [1.5, 1.75, 2.25, 2.5], [2.0, 2.25, 2.75, 3.0]]
    )
    np.testing.assert_allclose(upsample(m, (4, 4)), expected, rtol=1e-12)
    np.testing.assert_allclose(upsample(torch.tensor(m), (4, 4)), expected, rtol=1e-12)
    batch = upsample(np.stack([m, 2 * m]), (4, 4))
    assert batch.shape == (2, 4, 4)
    np.testing.assert_allclose(batch[1], 2 * expected)
    np.testing.assert_array_equal(upsample(m, (2, 2)), m)
    assert upsample(np.ones((8, 8)), (32, 32)).shape == (32, 32)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 999), offset=st.floats(-50, 50))
def test_normalise_map_range_and_order(h, w, seed, offset):
    m = np.random.default_rng(seed).standard_normal((h, w)) + offset
    n = normalise_map(m)
    assert n.shape == (h, w) and n.min() >= 0.0 and n.max() <= 1.0
    if m.max() > m.min():
        assert n.min() == 0.0 and n.max() == pytest.approx(1.0)
        np.testing.assert_array_equal(
            np.argsort(n, axis=None, kind="stable"), np.argsort(m, axis=None, kind="stable")
        )


def test_normalise_map_constant_and_batched():
    np.testing.assert_array_equal(normalise_map(np.zeros((3, 3))), np.zeros((3, 3)))
    np.testing.assert_array_equal(normalise_map(np.full((2, 2), 4.0)), np.zeros((2, 2)))
    batch = normalise_map(np.stack([np.array([[0.0, 2.0]]), np.array([[10.0, 30.0]])]))
    np.testing.assert_array_equal(batch, [[[0.0, 1.0]], [[0.0, 1.0]]])


def test_input_gradient_map_is_max_abs_over_channels():
    g = torch.tensor([[[1.0, -5.0]], [[-3.0, 2.0]], [[0.5, 0.0]]])
    np.testing.assert_array_equal(input_gradient_map(g), [[3.0, 5.0]])
    assert input_gradient_map(torch.randn(4, 3, 6, 7)).shape == (4, 6, 7)


class _QuadrantModel:
    """Class-0 logit grows with the top-left 5×5 quadrant's pixels; records every call."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []
        self.grad_enabled: list[bool] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.batches.append(batch.clone())
        self.grad_enabled.append(torch.is_grad_enabled())
        logits = torch.zeros(batch.shape[0], 10, dtype=batch.dtype)
        logits[:, 0] = 0.2 * batch[:, :, :5, :5].sum(dim=(1, 2, 3))
        return torch.softmax(logits, dim=1)


def _masked_by_loops(image: torch.Tensor, pixels: list[int], fill: torch.Tensor) -> torch.Tensor:
    out = image.clone()
    width = image.shape[2]
    for p in pixels:
        for c in range(image.shape[0]):
            out[c, p // width, p % width] = fill[c]
    return out


def test_masking_score_matches_explicit_masking():
    image = torch.rand(3, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) + 0.5
    saliency = np.zeros((10, 10))
    saliency[:5, :5] = 1.0  # 25 tied pixels; 20 are masked, taken in pixel-index order
    fill = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    model = _QuadrantModel()
    score = masking_score(model, image, saliency, target=0, fraction=0.2, fill=fill, seed=4)

    assert len(model.batches) == 1 and model.batches[0].shape == (3, 3, 10, 10)
    assert model.grad_enabled == [False]
    quadrant = [r * 10 + c for r in range(5) for c in range(5)][:20]
    random = np.random.default_rng(4).permutation(100)[:20].tolist()
    torch.testing.assert_close(model.batches[0][0], image)
    torch.testing.assert_close(model.batches[0][1], _masked_by_loops(image, quadrant, fill))
    torch.testing.assert_close(model.batches[0][2], _masked_by_loops(image, random, fill))

    reference = _QuadrantModel()
    p = reference(model.batches[0])[:, 0]
    assert score == MaskingScore(
        salient_drop=pytest.approx(float(p[0] - p[1]), abs=1e-15),
        random_drop=pytest.approx(float(p[0] - p[2]), abs=1e-15),
        fraction=0.2,
    )
    assert score.salient_drop > score.random_drop > 0.0
    json.dumps(dataclasses.asdict(score))


def test_masking_score_is_deterministic_and_seeded():
    image = torch.rand(3, 10, 10, generator=torch.Generator().manual_seed(5))
    saliency = np.random.default_rng(6).random((10, 10))
    a = masking_score(_QuadrantModel(), image, saliency, 0, seed=1)
    assert masking_score(_QuadrantModel(), image, saliency, 0, seed=1) == a
    others = {masking_score(_QuadrantModel(), image, saliency, 0, seed=s).random_drop for s in range(2, 6)}
    assert len(others - {a.random_drop}) > 0


def test_masking_score_scalar_fill_and_validation():
    image = torch.ones(3, 4, 4)
    model = _QuadrantModel()
    masking_score(model, image, np.arange(16.0).reshape(4, 4), 0, fraction=0.25, fill=0.0)
    salient_masked = model.batches[0][1]
    assert torch.all(salient_masked[:, 3, :] == 0.0) and torch.all(salient_masked[:, :3, :] == 1.0)
    with pytest.raises(ValueError, match="does not match"):
        masking_score(model, image, np.ones((3, 3)), 0)
    with pytest.raises(ValueError, match="fraction"):
        masking_score(model, image, np.ones((4, 4)), 0, fraction=0.0)


def test_masking_scores_equal_separate_calls_in_one_forward():
    gen = torch.Generator().manual_seed(8)
    images = [torch.rand(3, 10, 10, dtype=torch.float64, generator=gen) + 0.5 for _ in range(4)]
    maps = [np.random.default_rng(i).random((10, 10)) for i in range(4)]
    targets = [0, 1, 2, 3]
    batched_model = _QuadrantModel()
    batched = masking_scores(batched_model, images, maps, targets, fraction=0.3, seed=2)
    separate = [masking_score(_QuadrantModel(), image, m, t, fraction=0.3, seed=2)
                for image, m, t in zip(images, maps, targets, strict=True)]
    assert len(batched_model.batches) == 1 and batched_model.batches[0].shape == (12, 3, 10, 10)
    for got, expected in zip(batched, separate, strict=True):
        assert got.salient_drop == pytest.approx(expected.salient_drop, abs=1e-12)
        assert got.random_drop == pytest.approx(expected.random_drop, abs=1e-12)
    with pytest.raises(ValueError, match="one each per map"):
        masking_scores(batched_model, images, maps[:3], targets)
