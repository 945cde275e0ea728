"""How sure a number measured on a sample is: the Wilson interval of a proportion and the exact
McNemar test of two classifiers on the same samples.

Pure functions of counts (no numpy needed): the report's sample is small (100 images by default),
where the normal approximation "p ± 1.96·√(p(1−p)/n)" misbehaves — it gives [0, 0] at 0 of n and
can leave [0, 1]. Wilson's score interval stays inside [0, 1] and keeps close to its nominal
coverage at small n, which is why Model Card Toolkit and statsmodels' default users reach for it.
"""

from __future__ import annotations

import math

# Two-sided 95 %: the 0.975 quantile of the standard normal distribution.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``trials``; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 ≤ successes ≤ trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    # At 0 or n successes one bound is exactly 0 or 1 (centre and half cancel); rounding must
    # neither push it past nor leave it a hair short.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def mcnemar_exact_p(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs.

    Under "both classifiers are equally accurate" each of the ``fixed + broken`` samples on which
    they disagree about correctness is equally likely to go either way, so the smaller count is
    Binomial(n, ½); the p-value doubles its lower tail (capped at 1). Samples both get right or
    both get wrong carry no information about the difference and do not enter.
    """
    if fixed < 0 or broken < 0:
        raise ValueError(f"counts must be non-negative, got {fixed} and {broken}")
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    # Exact integer arithmetic for the tail, then one division: no underflow for n in the thousands
    # (a corruption suite pools tens of thousands of pairs); each binomial term from the one before.
    tail, term = 0, 1
    for i in range(k + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, 2 * tail / 2**n)
