"""Weight statistics checked against torch's own norms and a brute-force power-law fit."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnviz_report.stats import spectra
from nnviz_report.stats.spectra import (
    as_matrix,
    bias_stats,
    fit_power_law,
    near_zero_fraction,
    spectral_norm,
    stable_rank,
    weight_stats,
)


def _pareto(alpha: float, n: int, seed: int, xmin: float = 1.0) -> np.ndarray:
    """Inverse-CDF samples of p(x) ∝ x^-alpha for x ≥ xmin."""
    u = np.random.default_rng(seed).random(n)
    return xmin * (1.0 - u) ** (-1.0 / (alpha - 1.0))


def _brute_force_fit(values: np.ndarray, min_tail: int) -> tuple[float, float, float, int]:
    """Clauset et al. written out plainly: every distinct xmin, closed-form MLE, KS by loop."""
    x = np.sort(values)
    best = None
    for xmin in np.unique(x):
        tail = x[x >= xmin]
        if tail.size < min_tail or tail[-1] == xmin:
            continue
        alpha = 1.0 + tail.size / np.sum(np.log(tail / xmin))
        d = 0.0
        for k, v in enumerate(tail):
            cdf = 1.0 - (v / xmin) ** (1.0 - alpha)
            d = max(d, abs((k + 1) / tail.size - cdf), abs(k / tail.size - cdf))
        if best is None or d < best[2]:
            best = (alpha, float(xmin), d, tail.size)
    assert best is not None
    return best


def test_as_matrix_reshapes_conv_to_out_by_in_k_k():
    conv = torch.randn(16, 3, 5, 5)
    m = as_matrix(conv)
    assert m.shape == (16, 75) and m.dtype == np.float64
    np.testing.assert_array_equal(m[4], conv[4].reshape(-1).double().numpy())
    assert as_matrix(np.ones((10, 84))).shape == (10, 84)
    with pytest.raises(ValueError, match="at least 2"):
        as_matrix(torch.ones(5))


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_spectral_norm_and_stable_rank_match_torch(rows, cols, seed):
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    expected = float(torch.linalg.matrix_norm(w, ord=2))
    assert spectral_norm(w) == pytest.approx(expected, rel=1e-10)
    fro = float(torch.linalg.matrix_norm(w, ord="fro"))
    assert stable_rank(w) == pytest.approx(fro**2 / expected**2, rel=1e-9)
    assert 1.0 - 1e-9 <= stable_rank(w) <= min(rows, cols) + 1e-9


def test_stable_rank_of_known_matrices():
    assert stable_rank(np.eye(7)) == pytest.approx(7.0)
    u, v = np.arange(1.0, 6.0), np.arange(1.0, 4.0)
    assert stable_rank(np.outer(u, v)) == pytest.approx(1.0)
    assert stable_rank(np.zeros((3, 4))) == 0.0


def test_conv_spectral_norm_uses_reshaped_matrix():
    w = torch.randn(8, 4, 3, 3, dtype=torch.float64)
    assert spectral_norm(w) == pytest.approx(float(torch.linalg.matrix_norm(w.reshape(8, 36), ord=2)))


def test_near_zero_fraction_is_relative_to_the_largest_weight():
    w = np.array([10.0, -10.0, 0.009, -0.0099, 0.01, 0.5])  # threshold 1e-3 · 10 = 0.01
    assert near_zero_fraction(w) == pytest.approx(2 / 6)
    assert near_zero_fraction(w * 1e-6) == pytest.approx(2 / 6)
    assert near_zero_fraction(w, rel_threshold=0.1) == pytest.approx(4 / 6)
    assert near_zero_fraction(np.zeros(4)) == 1.0


def test_weight_stats_matches_independent_numbers():
    w = torch.randn(32, 16, 3, 3, generator=torch.Generator().manual_seed(1))
    s = weight_stats(w)
    flat = w.double().reshape(-1)
    assert s.shape == (32, 16, 3, 3) and s.matrix_shape == (32, 144)
    assert s.mean == pytest.approx(float(flat.mean()), rel=1e-12, abs=1e-15)
    assert s.std == pytest.approx(float(flat.std(correction=0)), rel=1e-12)
    assert s.l2_norm == pytest.approx(float(torch.linalg.vector_norm(flat)), rel=1e-12)
    m = w.double().reshape(32, -1)
    assert s.spectral_norm == pytest.approx(float(torch.linalg.matrix_norm(m, ord=2)), rel=1e-10)
    assert s.stable_rank == pytest.approx(s.l2_norm**2 / s.spectral_norm**2, rel=1e-12)
    assert s.near_zero_fraction == near_zero_fraction(w)
    assert s.alpha.note.startswith("too small to fit (32 eigenvalues < 50)")


def test_weight_stats_alpha_equals_fit_of_squared_singular_values():
    w = torch.randn(300, 120, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = weight_stats(w)
    direct = fit_power_law(torch.linalg.svdvals(w) ** 2)
    assert s.alpha.note == "" and s.alpha.n_tail == direct.n_tail
    assert s.alpha.alpha == pytest.approx(direct.alpha, rel=1e-8)
    assert s.alpha.ks_distance == pytest.approx(direct.ks_distance, rel=1e-6)


def test_weight_stats_decomposes_once(monkeypatch):
    calls = []
    original = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda a: calls.append(a.shape) or original(a))
    weight_stats(torch.randn(64, 200))
    assert calls == [(64, 64)]  # one decomposition, of the smaller Gram matrix


def test_weight_stats_is_json_serialisable_and_deterministic():
    w = torch.randn(80, 90, generator=torch.Generator().manual_seed(3))
    record = json.dumps(dataclasses.asdict(weight_stats(w)))
    assert record == json.dumps(dataclasses.asdict(weight_stats(w.clone())))


def test_rank_deficient_zero_eigenvalues_are_left_out_of_the_fit(monkeypatch):
    g = torch.Generator().manual_seed(4)
    w = torch.randn(200, 60, generator=g, dtype=torch.float64) @ torch.randn(60, 100, generator=g).double()
    seen = []
    original = spectra.fit_power_law
    monkeypatch.setattr(spectra, "fit_power_law", lambda ev: seen.append(np.asarray(ev)) or original(ev))
    fit = weight_stats(w).alpha
    assert seen[0].size == 60  # rank 60 of the 100 eigenvalues of the 100×100 Gram matrix
    assert fit.note == "" and fit.n_tail <= 60


@pytest.mark.parametrize("alpha", [2.5, 4.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_pareto_exponent(alpha, seed):
    # Standard error of the MLE at n=2000 is (alpha-1)/sqrt(n): 0.034 and 0.067; ±0.15 covers the
    # extra variance of choosing xmin from the data.
    fit = fit_power_law(_pareto(alpha, 2000, seed))
    assert fit.note == ""
    assert fit.alpha == pytest.approx(alpha, abs=0.15)
    assert fit.xmin == pytest.approx(1.0, abs=0.5)


def test_fit_is_unbiased_over_seeds():
    estimates = [fit_power_law(_pareto(3.0, 2000, seed)).alpha for seed in range(10)]
    assert float(np.median(estimates)) == pytest.approx(3.0, abs=0.06)


def test_fit_finds_xmin_above_a_non_power_law_bulk():
    rng = np.random.default_rng(5)
    bulk = rng.uniform(0.05, 1.0, 3000)  # the Marchenko–Pastur-like bulk below the tail
    tail = _pareto(3.0, 1500, seed=6)
    fit = fit_power_law(np.concatenate([bulk, tail]))
    assert 0.9 <= fit.xmin <= 1.4
    assert fit.alpha == pytest.approx(3.0, abs=0.2)


def test_fit_matches_brute_force_reference():
    values = np.random.default_rng(7).lognormal(0.0, 1.0, 120)
    fit = fit_power_law(values, min_eigenvalues=50)
    alpha, xmin, ks, n_tail = _brute_force_fit(values, spectra.MIN_TAIL)
    assert (fit.xmin, fit.n_tail) == (xmin, n_tail)
    assert fit.alpha == pytest.approx(alpha, rel=1e-10)
    assert fit.ks_distance == pytest.approx(ks, rel=1e-10)


def test_fit_chunks_agree_with_a_single_block(monkeypatch):
    values = _pareto(2.5, 700, seed=8)
    whole = fit_power_law(values)
    monkeypatch.setattr(spectra, "_KS_CHUNK", 7)
    assert fit_power_law(values) == whole


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), log_scale=st.floats(-20, 20))
def test_fit_alpha_is_scale_invariant(seed, log_scale):
    values = _pareto(3.0, 200, seed)
    scale = math.exp(log_scale)
    a, b = fit_power_law(values), fit_power_law(values * scale)
    assert b.alpha == pytest.approx(a.alpha, rel=1e-8)
    assert b.ks_distance == pytest.approx(a.ks_distance, rel=1e-6, abs=1e-12)
    assert b.xmin == pytest.approx(a.xmin * scale, rel=1e-12)
    assert b.n_tail == a.n_tail


def test_fit_notes_instead_of_fitting():
    assert fit_power_law(np.arange(1.0, 8.0)) == spectra.PowerLawFit(
        None, None, None, 0, "too small to fit (7 eigenvalues < 50)"
    )
    zeros_dropped = fit_power_law(np.r_[np.zeros(60), np.arange(1.0, 8.0)])
    assert zeros_dropped.note == "too small to fit (7 eigenvalues < 50)"
    flat = fit_power_law(np.ones(100))
    assert flat.alpha is None and flat.note.startswith("degenerate")
    with pytest.raises(ValueError, match="finite"):
        fit_power_law(np.r_[np.ones(60), np.nan])


def test_bias_stats():
    b = bias_stats(torch.tensor([1.0, -2.0, 4.0]))
    assert b == spectra.BiasStats(size=3, mean=1.0, std=pytest.approx(math.sqrt(6.0)), min=-2.0, max=4.0)
    json.dumps(dataclasses.asdict(b))
