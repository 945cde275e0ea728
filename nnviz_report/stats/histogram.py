"""Quantiles of a zero-aligned histogram, torch-free: the activation distribution figure reads
them off the histograms report.json records, in the pipeline and in ``render`` alike."""

from __future__ import annotations

import math
from collections.abc import Sequence


def histogram_quantile(start: int, width: float, counts: Sequence[int], q: float) -> float:
    """Bin ``i`` covers ``[(start + i) * width, (start + i + 1) * width)``; linear interpolation
    inside the bin holding the q-quantile (exact to one bin width). NaN for an empty histogram."""
    total = sum(counts)
    if total == 0:
        return math.nan
    target = q * total
    running = 0
    for i, c in enumerate(counts):
        if c and running + c >= target:
            inside = (target - running) / c
            return (start + i + inside) * width
        running += c
    return (start + len(counts)) * width
