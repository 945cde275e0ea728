"""Calibration numbers against independent computations on constructed predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnviz_report.stats.calibration import (
    bin_index,
    bootstrap_ece_interval,
    brier_score,
    calibrated_reference_ece,
    expected_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability,
)
from nnviz_report.stats.intervals import mcnemar_exact_p, wilson_interval


def loop_bins(confidences: list[float], correct: list[bool], bins: int) -> list[tuple[int, float, float]]:
    """(count, mean confidence, accuracy) per bin (lo, hi], 0 in the first bin, by plain comparison."""
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidences) if (lo < c <= hi) or (b == 0 and c == 0.0)]
        if members:
            rows.append((len(members), sum(confidences[i] for i in members) / len(members),
                         sum(correct[i] for i in members) / len(members)))
        else:
            rows.append((0, math.nan, math.nan))
    return rows


def loop_ece(confidences: list[float], correct: list[bool], bins: int) -> float:
    n = len(confidences)
    return sum(count / n * abs(acc - conf) for count, conf, acc in loop_bins(confidences, correct, bins) if count)


def constructed(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, size=(n, 10))
    labels = rng.integers(0, 10, size=n)
    # Make the model right more often than chance, and over-confident where it is wrong.
    labels[: n // 2] = logits[: n // 2].argmax(axis=1)
    return logits, labels


def loop_softmax(row: np.ndarray) -> list[float]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / sum(exps) for e in exps]


def test_ece_of_a_hand_made_case() -> None:
    # Ten images at confidence 0.95, eight right: one bin, |0.8 − 0.95| = 0.15.
    assert expected_calibration_error(np.full(10, 0.95), np.array([1] * 8 + [0] * 2)) == pytest.approx(0.15)
    # Two bins of five: (0.3, right 1 of 5) and (0.9, right 5 of 5) → ½·0.1 + ½·0.1.
    conf = np.array([0.3] * 5 + [0.9] * 5)
    right = np.array([1, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    assert expected_calibration_error(conf, right) == pytest.approx(0.1)
    assert maximum_calibration_error(conf, right) == pytest.approx(0.1)


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_mce_and_reliability_match_a_loop_over_bins(bins: int) -> None:
    logits, labels = constructed()
    probs = np.array([loop_softmax(row) for row in logits])
    confidences = [float(max(p)) for p in probs]
    correct = [int(np.argmax(p)) == int(y) for p, y in zip(probs, labels, strict=True)]
    assert expected_calibration_error(np.array(confidences), np.array(correct), bins) == pytest.approx(
        loop_ece(confidences, correct, bins), abs=1e-12)
    rows = loop_bins(confidences, correct, bins)
    gaps = [abs(acc - conf) for count, conf, acc in rows if count]
    assert maximum_calibration_error(np.array(confidences), np.array(correct), bins) == pytest.approx(max(gaps))
    table = reliability(np.array(confidences), np.array(correct), bins)
    assert table.counts.tolist() == [r[0] for r in rows]
    np.testing.assert_allclose(table.accuracy, [r[2] for r in rows], equal_nan=True)
    np.testing.assert_allclose(table.mean_confidence, [r[1] for r in rows], equal_nan=True)


def test_bin_edges_belong_to_the_lower_bin() -> None:
    assert bin_index(np.array([0.0, 1 / 15, 1 / 15 + 1e-9, 1.0]), 15).tolist() == [0, 0, 1, 14]


def test_nll_and_brier_match_per_row_sums() -> None:
    logits, labels = constructed(n=50)
    nll = sum(-math.log(loop_softmax(row)[y]) for row, y in zip(logits, labels, strict=True)) / len(labels)
    brier = sum(sum((p - (k == y)) ** 2 for k, p in enumerate(loop_softmax(row)))
                for row, y in zip(logits, labels, strict=True)) / len(labels)
    assert negative_log_likelihood(logits, labels) == pytest.approx(nll, rel=1e-12)
    assert brier_score(logits, labels) == pytest.approx(brier, rel=1e-12)
    # Huge logits stay finite (a certain right answer costs nothing, a certain wrong one a lot).
    sure = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    assert negative_log_likelihood(sure, np.array([0, 0])) == pytest.approx(500.0)
    assert brier_score(sure, np.array([0, 1])) == pytest.approx(0.0)


def test_bootstrap_interval_is_seeded_and_equals_resampling_by_hand() -> None:
    logits, labels = constructed(n=60)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    interval = bootstrap_ece_interval(conf, right, 15, resamples=300, seed=7)
    assert interval == bootstrap_ece_interval(conf, right, 15, resamples=300, seed=7)
    draws = np.random.default_rng(7).integers(0, 60, size=(300, 60))
    by_hand = [loop_ece(conf[d].tolist(), right[d].tolist(), 15) for d in draws]
    assert interval == pytest.approx(tuple(np.quantile(by_hand, [0.025, 0.975])), abs=1e-12)
    # A model that is always right with confidence 1 has ECE 0 in every resample.
    assert bootstrap_ece_interval(np.ones(20), np.ones(20, dtype=bool)) == (0.0, 0.0)


def test_sampling_floor_matches_the_normal_approximation() -> None:
    # One bin, confidence c: ECE = |mean of n Bernoulli(c) − c|, whose mean is about √(2/π)·√(c(1−c)/n).
    for n in (100, 400):
        expected = math.sqrt(2 / math.pi) * math.sqrt(0.7 * 0.3 / n)
        assert calibrated_reference_ece(np.full(n, 0.7), resamples=2000) == pytest.approx(expected, rel=0.1)
    assert calibrated_reference_ece(np.ones(30)) == 0.0


def test_wilson_interval_against_published_values() -> None:
    # Newcombe (1998), Table I: 81/263 → 0.2553–0.3662; and the textbook 8/10 → 0.4902–0.9433.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=5e-5)
    assert wilson_interval(10, 10)[1] == 1.0


def test_mcnemar_exact_matches_binomial_tails() -> None:
    def by_comb(b: int, c: int) -> float:
        n = b + c
        return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)

    assert mcnemar_exact_p(0, 6) == pytest.approx(2 / 64)
    for b, c in [(1, 5), (3, 3), (10, 25), (40, 60), (0, 0)]:
        assert mcnemar_exact_p(b, c) == pytest.approx(by_comb(b, c) if b + c else 1.0, rel=1e-9)
    assert 0.0 < mcnemar_exact_p(9000, 9400) < 0.05  # large pooled counts stay finite
