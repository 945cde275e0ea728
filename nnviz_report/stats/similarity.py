"""Representation similarity and class separability of pooled per-sample features.

Features are ``(n, p)`` arrays: one row per sample (conv maps global-average-pooled per channel,
linear outputs as they are); trailing dimensions are flattened. Everything runs in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# A layer whose centred features are this small relative to the raw features is constant up to
# rounding (float32 activations carry ~1e-7 relative noise at most); its CKA is defined as 0.0.
_CONSTANT_RTOL = 1e-10
# The Gram route stacks one n×n matrix per layer; above this it falls back to feature products.
_GRAM_MEMORY_BYTES = 1 << 30


def _features(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        x = values.detach().to("cpu", torch.float64).numpy()
    else:
        x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("features need a sample dimension, got a scalar")
    return x.reshape(x.shape[0], -1)


def _centred(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """Column-centred features and whether they are (numerically) constant across samples."""
    xc = x - x.mean(axis=0, keepdims=True)
    # Sums of squares, not np.linalg.norm: that is a BLAS dot, which above 10 000 values wakes
    # OpenBLAS's worker threads, ~10 ms a call on a busy machine, for a yes/no answer.
    return xc, bool(_norm(xc) <= _CONSTANT_RTOL * _norm(x))


def _norm(x: np.ndarray) -> float:
    return float(np.sqrt(np.square(x).sum()))


def linear_cka(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) between ``x (n, p)`` and ``y (n, q)``:
    ``‖YcᵀXc‖_F² / (‖XcᵀXc‖_F ‖YcᵀYc‖_F)`` with column-centred ``Xc``, ``Yc``, computed in the
    cheaper of the feature form and the equivalent Gram form ``⟨Kc, Lc⟩ / (‖Kc‖ ‖Lc‖)``.
    In [0, 1]; 0.0 when either side is constant across samples (CKA is 0/0 there, and a dead
    layer shares no information with anything).
    """
    xf, yf = _features(x), _features(y)
    if xf.shape[0] != yf.shape[0]:
        raise ValueError(f"x and y need the same number of samples, got {xf.shape[0]} and {yf.shape[0]}")
    if xf.shape[0] < 2:
        raise ValueError("linear_cka needs at least 2 samples")
    return float(_cka_matrix([xf, yf])[0, 1])


def cka_matrix(features: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
    """Linear CKA between every pair of layers, ``(L, L)``, symmetric, in [0, 1].

    Each layer is centred once. When ``n`` is small next to the feature widths, each layer's
    centred Gram matrix ``XcXcᵀ`` is formed once and every pair costs one ``n²`` inner product;
    otherwise pairs use ``‖YcᵀXc‖_F²`` directly (cost ``n·p·q``). The diagonal is 1.0, except for
    a layer constant across samples, whose whole row and column (diagonal included) are 0.0 —
    in the heatmap that marks a dead layer.
    """
    layers = [_features(f) for f in features]
    if not layers:
        return np.zeros((0, 0))
    n = layers[0].shape[0]
    if any(layer.shape[0] != n for layer in layers):
        raise ValueError(f"all layers need the same number of samples, got {[f.shape[0] for f in layers]}")
    if n < 2:
        raise ValueError("cka_matrix needs at least 2 samples")
    return _cka_matrix(layers)


def _cka_matrix(layers: list[np.ndarray], *, method: str = "auto") -> np.ndarray:
    n = layers[0].shape[0]
    widths = np.array([layer.shape[1] for layer in layers], dtype=np.float64)
    if method == "auto":
        gram_cost = n * n * (widths.sum() / 2 + len(layers) * (len(layers) + 1) / 2)
        feature_cost = n * (np.sum(np.outer(widths, widths)) + np.sum(widths**2)) / 2
        gram_fits = len(layers) * n * n * 8 <= _GRAM_MEMORY_BYTES
        method = "gram" if gram_fits and gram_cost < feature_cost else "feature"
    centred = [_centred(layer) for layer in layers]
    constant = np.array([c for _, c in centred])
    if method == "gram":
        inner = _gram_inner_products([xc for xc, _ in centred])
    elif method == "feature":
        inner = _feature_inner_products([xc for xc, _ in centred])
    else:
        raise ValueError(f"unknown CKA method {method!r}; use 'auto', 'gram' or 'feature'")
    inner = np.triu(inner) + np.triu(inner, 1).T  # exact symmetry whatever BLAS rounding did
    norms = np.sqrt(np.clip(np.diag(inner), 0.0, None))
    live = ~constant & (norms > 0)
    denom = np.outer(norms, norms)
    cka = np.divide(inner, denom, out=np.zeros_like(inner), where=np.outer(live, live))
    np.clip(cka, 0.0, 1.0, out=cka)
    cka[np.diag_indices_from(cka)] = live.astype(np.float64)
    return cka


def _gram_inner_products(centred: list[np.ndarray]) -> np.ndarray:
    """``⟨Kᵢ, Kⱼ⟩_F`` for ``Kᵢ = XᵢXᵢᵀ`` (already doubly centred because ``Xᵢ`` is), one GEMM."""
    n = centred[0].shape[0]
    grams = np.empty((len(centred), n * n))
    for i, xc in enumerate(centred):
        t = torch.from_numpy(xc)
        grams[i] = (t @ t.T).reshape(-1).numpy()
    g = torch.from_numpy(grams)
    return (g @ g.T).numpy()


def _feature_inner_products(centred: list[np.ndarray]) -> np.ndarray:
    """``‖XⱼᵀXᵢ‖_F²`` for every pair, which equals ``⟨Kᵢ, Kⱼ⟩_F``."""
    tensors = [torch.from_numpy(xc) for xc in centred]
    count = len(tensors)
    inner = np.zeros((count, count))
    for i in range(count):
        for j in range(i, count):
            cross = tensors[j].T @ tensors[i]
            inner[i, j] = float(torch.sum(cross * cross))
    return inner


def _labelled(
    features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray, int]:
    x = _features(features)
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels).ravel()
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"features have {x.shape[0]} samples but labels have {y.shape[0]}")
    classes, index = np.unique(y, return_inverse=True)
    return x, index, classes.size


def _class_means(x: np.ndarray, index: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean row of each class (every class must occur in ``index``)."""
    onehot = (index[:, None] == np.arange(n_classes)[None, :]).astype(np.float64)
    return (onehot.T @ x) / onehot.sum(axis=0)[:, None]


def nearest_class_mean_accuracy(
    features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> float:
    """Accuracy of a nearest-class-mean classifier on a fixed split.

    Within each class, samples at even positions (0, 2, 4, … in index order) fit the class means
    and samples at odd positions are scored, so the number needs no seed and does not depend on
    how classes interleave. Features are standardised per dimension with the fit half's mean and
    std (dimensions with std 0 are only centred) so no single wide-ranging channel dominates the
    Euclidean distance. Ties go to the lowest label.
    """
    x, index, n_classes = _labelled(features, labels)
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index, minlength=n_classes)
    class_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty_like(order)
    position[order] = np.arange(order.size) - class_start[index[order]]
    fit = position % 2 == 0
    score = ~fit
    if not np.any(score):
        raise ValueError("nearest_class_mean_accuracy needs a class with at least 2 samples")
    mean = x[fit].mean(axis=0)
    std = x[fit].std(axis=0)
    std[std == 0] = 1.0
    z = (x - mean) / std
    centres = _class_means(z[fit], index[fit], n_classes)
    zs = z[score]
    distances = (
        np.sum(zs * zs, axis=1, keepdims=True) - 2.0 * zs @ centres.T + np.sum(centres * centres, axis=1)
    )
    predicted = np.argmin(distances, axis=1)
    return float(np.mean(predicted == index[score]))


def fisher_ratio(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """``tr(S_between) / tr(S_within)`` over the whole sample, on the raw features:
    ``S_between = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ``, ``S_within = Σ_c Σ_{i∈c} (x_i − μ_c)(x_i − μ_c)ᵀ``.
    Unchanged by rotation, translation and isotropic scaling of the features. 0.0 when both traces
    are 0; ``inf`` when only the within-class trace is (every class collapsed to a point).
    """
    x, index, n_classes = _labelled(features, labels)
    counts = np.bincount(index, minlength=n_classes).astype(np.float64)
    centres = _class_means(x, index, n_classes)
    between = float(np.sum(counts * np.sum((centres - x.mean(axis=0)) ** 2, axis=1)))
    within = float(np.sum((x - centres[index]) ** 2))
    if within == 0.0:
        return 0.0 if between == 0.0 else float("inf")
    return between / within
