"""Linear CKA and class separability checked against the textbook formulas on explicit matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnviz_report.stats import similarity
from nnviz_report.stats.similarity import (
    cka_matrix,
    fisher_ratio,
    linear_cka,
    nearest_class_mean_accuracy,
)


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from the definition: HSIC with H = I − 11ᵀ/n on Gram matrices K = XXᵀ, L = YYᵀ."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, g = x @ x.T, y @ y.T
    khlh = np.trace(k @ h @ g @ h)
    return khlh / np.sqrt(np.trace(k @ h @ k @ h) * np.trace(g @ h @ g @ h))


def _orthogonal(p: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((p, p)))
    return q * np.sign(np.diag(r))


def _related_pair(seed: int, n: int, p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) + 3.0
    y = np.tanh(x @ rng.standard_normal((p, q))) + 0.5 * rng.standard_normal((n, q))
    return x, y


shapes = st.tuples(st.integers(3, 25), st.integers(1, 30), st.integers(1, 30))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_linear_cka_equals_hsic_formula(shape, seed):
    x, y = _related_pair(seed, *shape)
    assert linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), log_scale=st.floats(-8, 8))
def test_linear_cka_invariances(shape, seed, log_scale):
    n, p, q = shape
    x, y = _related_pair(seed, n, p, q)
    rng = np.random.default_rng(seed + 1)
    base = linear_cka(x, y)
    assert 0.0 <= base <= 1.0
    assert linear_cka(y, x) == pytest.approx(base, rel=1e-10, abs=1e-14)
    assert linear_cka(x @ _orthogonal(p, rng), y) == pytest.approx(base, rel=1e-8, abs=1e-12)
    assert linear_cka(x, y @ _orthogonal(q, rng)) == pytest.approx(base, rel=1e-8, abs=1e-12)
    assert linear_cka(np.exp(log_scale) * x, y) == pytest.approx(base, rel=1e-8, abs=1e-12)
    assert linear_cka(x, y * 7.5 - 2.0) == pytest.approx(base, rel=1e-8, abs=1e-12)  # translation too
    assert linear_cka(x, x) == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 20),
    widths=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    seed=st.integers(0, 999),
)
def test_gram_and_feature_routes_agree_with_the_formula(n, widths, seed):
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((n, w)) * rng.uniform(0.1, 10) for w in widths]
    gram = similarity._cka_matrix(layers, method="gram")
    feature = similarity._cka_matrix(layers, method="feature")
    explicit = np.array([[_hsic_cka(a, b) for b in layers] for a in layers])
    np.testing.assert_allclose(gram, explicit, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(feature, explicit, rtol=1e-9, atol=1e-12)
    auto = cka_matrix(layers)
    np.testing.assert_array_equal(auto, auto.T)
    np.testing.assert_array_equal(np.diag(auto), 1.0)


def test_cka_matrix_takes_tensors_and_flattens_trailing_dims():
    g = torch.Generator().manual_seed(0)
    layers = [
        torch.randn(30, 4, generator=g),
        torch.randn(30, 2, 3, generator=g),
        torch.randn(30, 50, generator=g),
    ]
    m = cka_matrix(layers)
    assert m.shape == (3, 3) and m.dtype == np.float64
    assert m[0, 1] == pytest.approx(
        _hsic_cka(layers[0].double().numpy(), layers[1].double().reshape(30, 6).numpy())
    )
    assert cka_matrix([]).shape == (0, 0)


def test_constant_layer_gives_zero_row_and_column():
    rng = np.random.default_rng(1)
    live = rng.standard_normal((20, 5))
    dead = np.full((20, 3), 0.1)  # centring leaves only rounding noise, which must not count
    m = cka_matrix([live, dead, live * 2])
    np.testing.assert_array_equal(m[1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(m[:, 1], [0.0, 0.0, 0.0])
    assert m[0, 2] == pytest.approx(1.0) and m[0, 0] == 1.0
    assert linear_cka(live, dead) == 0.0 and linear_cka(dead, dead) == 0.0


def test_cka_rejects_mismatched_samples():
    with pytest.raises(ValueError, match="same number of samples"):
        linear_cka(np.ones((4, 2)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="same number of samples"):
        cka_matrix([np.ones((4, 2)), np.ones((5, 2))])
    with pytest.raises(ValueError, match="at least 2 samples"):
        cka_matrix([np.ones((1, 2))])


def test_auto_route_picks_gram_for_wide_layers(monkeypatch):
    chosen = []
    original = similarity._gram_inner_products
    monkeypatch.setattr(similarity, "_gram_inner_products", lambda c: chosen.append(1) or original(c))
    rng = np.random.default_rng(2)
    cka_matrix([rng.standard_normal((10, 300)) for _ in range(3)])
    assert chosen == [1]
    cka_matrix([rng.standard_normal((500, 2)) for _ in range(3)])
    assert chosen == [1]


def _ncm_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Nearest class mean written out with loops over samples."""
    seen: dict[int, int] = {}
    fit: list[int] = []
    score: list[int] = []
    for i, label in enumerate(y):
        (fit if seen.get(label, 0) % 2 == 0 else score).append(i)
        seen[label] = seen.get(label, 0) + 1
    mean, std = x[fit].mean(axis=0), x[fit].std(axis=0)
    std[std == 0] = 1.0
    z = (x - mean) / std
    classes = sorted(set(y.tolist()))
    centres = {c: z[[i for i in fit if y[i] == c]].mean(axis=0) for c in classes}
    correct = 0
    for i in score:
        d = [np.sum((z[i] - centres[c]) ** 2) for c in classes]
        correct += classes[int(np.argmin(d))] == y[i]
    return correct / len(score)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(4, 60), d=st.integers(1, 8), k=st.integers(1, 5), seed=st.integers(0, 999))
def test_nearest_class_mean_matches_loop_reference(n, d, k, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n) * 3 + 7  # arbitrary, non-contiguous labels
    x = rng.standard_normal((n, d)) + y[:, None] * rng.uniform(0, 0.5, d)
    if np.all(np.bincount(y) <= 1):
        return
    assert nearest_class_mean_accuracy(x, y) == pytest.approx(_ncm_reference(x, y))


def test_nearest_class_mean_split_and_extremes():
    # Class 0 at indices 0,2,4 (fit 0,4; score 2); class 1 at 1,3,5 (fit 1,5; score 3).
    x = np.array([[0.0], [10.0], [0.1], [10.1], [0.2], [10.2]])
    y = np.array([0, 1, 0, 1, 0, 1])
    assert nearest_class_mean_accuracy(x, y) == 1.0
    assert nearest_class_mean_accuracy(x, 1 - y) == 1.0
    x_swapped = x.copy()
    x_swapped[[2, 3]] = x_swapped[[3, 2]]  # scored samples now sit with the other class
    assert nearest_class_mean_accuracy(x_swapped, y) == 0.0
    assert nearest_class_mean_accuracy(torch.ones(6, 3), torch.tensor(y)) == 0.5  # ties → lowest label
    with pytest.raises(ValueError, match="at least 2 samples"):
        nearest_class_mean_accuracy(np.ones((3, 2)), np.array([0, 1, 2]))


def test_fisher_ratio_equals_scatter_matrix_traces():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), [5, 9, 3, 7])
    x = rng.standard_normal((24, 6)) + y[:, None]
    mu = x.mean(axis=0)
    s_between = np.zeros((6, 6))
    s_within = np.zeros((6, 6))
    for c in range(4):
        xc = x[y == c]
        diff = (xc.mean(axis=0) - mu)[:, None]
        s_between += len(xc) * diff @ diff.T
        s_within += (xc - xc.mean(axis=0)).T @ (xc - xc.mean(axis=0))
    expected = np.trace(s_between) / np.trace(s_within)
    assert fisher_ratio(x, y) == pytest.approx(expected, rel=1e-12)
    q = _orthogonal(6, rng)
    assert fisher_ratio(3.0 * x @ q + 5.0, y) == pytest.approx(expected, rel=1e-10)


def test_fisher_ratio_degenerate_cases():
    y = np.array([0, 0, 1, 1])
    assert fisher_ratio(np.ones((4, 2)), y) == 0.0
    assert fisher_ratio(np.array([[0.0], [0.0], [1.0], [1.0]]), y) == float("inf")
