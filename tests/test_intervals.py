"""Wilson interval and exact McNemar p against independent computations written here."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from nnviz_report.stats.intervals import mcnemar_exact_p, wilson_interval


def _wilson_by_quadratic(k: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson bounds are the two roots p of (k/n − p)² = z² p(1 − p)/n (the score test
    inverted): (1 + z²/n) p² − (2k/n + z²/n) p + (k/n)² = 0."""
    phat = k / n
    a = 1 + z * z / n
    b = -(2 * phat + z * z / n)
    c = phat * phat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (9, 100), (72, 100), (90, 100), (100, 100), (3, 7)])
def test_wilson_bounds_are_the_roots_of_the_score_equation(k: int, n: int) -> None:
    z = 1.959963984540054
    low, high = wilson_interval(k, n)
    exp_low, exp_high = _wilson_by_quadratic(k, n, z)
    assert low == pytest.approx(max(0.0, exp_low), abs=1e-12)
    assert high == pytest.approx(min(1.0, exp_high), abs=1e-12)
    # The bounds are where the score statistic equals z: check it at each inner bound.
    for p in (low, high):
        if 0 < p < 1:
            assert abs(k / n - p) / math.sqrt(p * (1 - p) / n) == pytest.approx(z, rel=1e-9)


def test_wilson_published_value() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81 of 263 → 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_wilson_edges_and_bad_counts() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 50)[0] == 0.0
    assert wilson_interval(50, 50)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def _mcnemar_by_enumeration(b: int, c: int) -> Fraction:
    """Two-sided p as the probability, under Binomial(n, ½), of every outcome at least as far
    from n/2 as the observed one (exact fractions, outcome by outcome)."""
    n = b + c
    if n == 0:
        return Fraction(1)
    observed = abs(Fraction(b) - Fraction(n, 2))
    total = sum(Fraction(math.comb(n, i), 2**n) for i in range(n + 1) if abs(Fraction(i) - Fraction(n, 2)) >= observed)
    return min(Fraction(1), total)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (1, 1), (4, 40), (40, 4), (7, 9), (0, 12), (25, 10), (3, 0)])
def test_mcnemar_equals_the_binomial_enumeration(b: int, c: int) -> None:
    assert mcnemar_exact_p(b, c) == pytest.approx(float(_mcnemar_by_enumeration(b, c)), rel=1e-12)


def test_mcnemar_known_values() -> None:
    # 0 of 6 discordant pairs one way: 2 · (½)⁶ = 1/32.
    assert mcnemar_exact_p(6, 0) == pytest.approx(1 / 32)
    # Balanced discordance: no evidence of a difference.
    assert mcnemar_exact_p(5, 5) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 2)
