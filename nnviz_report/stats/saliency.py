"""Saliency maps and their quality, as pure functions over captured arrays.

Activations and gradients arrive already captured (the capture stage owns the hooks); these
functions only combine them. Maps are float64 numpy arrays; functions taking ``(C, H, W)`` also
accept a leading batch dimension and work per map.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class MaskingScore:
    """Drops in the target-class probability when the most salient ``fraction`` of pixels, or the
    same number of seeded random pixels, are replaced by the fill value. A useful map has
    ``salient_drop`` well above ``random_drop``."""

    salient_drop: float
    random_drop: float
    fraction: float


def _array(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def grad_cam(activations: np.ndarray | torch.Tensor, gradients: np.ndarray | torch.Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): ``relu(Σ_c mean_hw(∂score/∂A_c) · A_c)``.

    ``(C, H, W)`` activations and gradients of the class score with respect to them → ``(H, W)``
    at the layer's resolution, not normalised, so maps of one layer stay comparable; use
    :func:`upsample` and :func:`normalise_map` for display.
    """
    a, g = _array(activations), _array(gradients)
    if a.shape != g.shape or a.ndim < 3:
        raise ValueError(f"need matching (..., C, H, W) activations and gradients, got {a.shape}, {g.shape}")
    weights = g.mean(axis=(-2, -1))
    return np.maximum(np.einsum("...c,...chw->...hw", weights, a), 0.0)


def upsample(map2d: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(H, W)`` (or ``(N, H, W)``) to ``size``, ``align_corners=False`` as
    in pytorch-grad-cam and torchvision, so a map lines up with the input's pixel centres."""
    m = torch.as_tensor(_array(map2d))
    if m.ndim not in (2, 3):
        raise ValueError(f"upsample takes (H, W) or (N, H, W), got shape {tuple(m.shape)}")
    batch = m.reshape(-1, 1, *m.shape[-2:])
    out = F.interpolate(batch, size=tuple(size), mode="bilinear", align_corners=False)
    return out.reshape(*m.shape[:-2], *size).numpy()


def normalise_map(map2d: np.ndarray | torch.Tensor) -> np.ndarray:
    """Min–max scale each ``(H, W)`` map to [0, 1]; a constant map (all zero included) becomes 0."""
    m = _array(map2d)
    low = m.min(axis=(-2, -1), keepdims=True)
    span = m.max(axis=(-2, -1), keepdims=True) - low
    return np.divide(m - low, span, out=np.zeros_like(m), where=span > 0)


def input_gradient_map(grad: np.ndarray | torch.Tensor) -> np.ndarray:
    """Vanilla gradient saliency (Simonyan et al. 2014): ``(3, H, W)`` input gradient → ``(H, W)``,
    the max over colour channels of ``|∂score/∂x|``."""
    g = _array(grad)
    if g.ndim < 3:
        raise ValueError(f"input_gradient_map takes (C, H, W), got shape {g.shape}")
    return np.abs(g).max(axis=-3)


def masking_score(
    predict_proba: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    saliency: np.ndarray,
    target: int,
    *,
    fraction: float = 0.2,
    fill: torch.Tensor | float = 0.0,
    seed: int = 0,
) -> MaskingScore:
    """Deletion check of a saliency map: how much the target-class probability drops when the
    ``round(fraction·H·W)`` most salient pixels (all channels) are set to ``fill``, against the
    same number of pixels chosen by ``numpy.random.default_rng(seed)``.

    ``image`` is ``(3, H, W)`` as the model expects it; ``fill`` a scalar or a per-channel
    ``(3,)`` value (0.0 is the dataset mean after normalisation). ``saliency`` must be ``(H, W)``;
    ties rank by pixel index so the result is deterministic. The original and both masked images
    go to ``predict_proba`` in one batch, under ``torch.no_grad``.
    """
    return masking_scores(predict_proba, [image], [saliency], [target], fraction=fraction, fill=fill, seed=seed)[0]


def masking_scores(
    predict_proba: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[torch.Tensor],
    saliencies: Sequence[np.ndarray],
    targets: Sequence[int],
    *,
    fraction: float = 0.2,
    fill: torch.Tensor | float = 0.0,
    seed: int = 0,
) -> list[MaskingScore]:
    """:func:`masking_score` of each ``(image, saliency, target)`` triple, all of them in one call of
    ``predict_proba`` (three images per triple: original, salient pixels removed, random pixels
    removed), so a report's dozen maps cost one forward pass instead of a dozen. Every triple
    draws the same seeded random pixels, as separate calls with the same ``seed`` would."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not (len(images) == len(saliencies) == len(targets)):
        raise ValueError(f"{len(images)} images, {len(saliencies)} maps and {len(targets)} targets: one each per map")
    batches = [_masked_batch(image, _array(saliency), fraction, fill, seed)
               for image, saliency in zip(images, saliencies, strict=True)]
    if not batches:
        return []
    with torch.no_grad():
        probs = predict_proba(torch.cat(batches)).detach().to("cpu", torch.float64)
    scores = []
    for item, target in enumerate(targets):
        original, after_salient, after_random = (float(p) for p in probs[3 * item:3 * item + 3, target])
        scores.append(MaskingScore(salient_drop=original - after_salient, random_drop=original - after_random,
                                   fraction=fraction))
    return scores


def _masked_batch(image: torch.Tensor, sal: np.ndarray, fraction: float, fill: torch.Tensor | float,
                  seed: int) -> torch.Tensor:
    """``(3, C, H, W)``: the image, the image without its most salient pixels, and without as many
    seeded random pixels."""
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if sal.shape != (height, width):
        raise ValueError(f"saliency shape {sal.shape} does not match the image's {(height, width)}")
    pixels = height * width
    count = max(1, math.floor(fraction * pixels + 0.5))
    salient = np.argsort(-sal.ravel(), kind="stable")[:count]
    random = np.random.default_rng(seed).permutation(pixels)[:count]
    keep = np.ones((2, pixels), dtype=bool)
    keep[0, salient] = False
    keep[1, random] = False
    keep_t = torch.from_numpy(keep).to(image.device).reshape(2, 1, height, width)
    fill_t = torch.as_tensor(fill, dtype=image.dtype, device=image.device)
    if fill_t.ndim == 1:
        fill_t = fill_t.reshape(-1, 1, 1)
    masked = torch.where(keep_t, image.unsqueeze(0), fill_t)
    return torch.cat([image.unsqueeze(0), masked])
