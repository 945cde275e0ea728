"""How far a classifier's confidences can be trusted: calibration numbers over the sample.

Pure numpy over plain arrays (logits or probabilities, labels); no model, no figures.

Definitions (Guo et al., "On Calibration of Modern Neural Networks", 2017):

- confidence: the softmax probability of the predicted class.
- bins: ``bins`` equal-width intervals of confidence, (b/B, (b+1)/B]; a confidence of exactly 0
  falls into the first bin.
- ECE (expected calibration error): Σ_b (n_b / n) · |accuracy_b − mean confidence_b|.
- MCE (maximum calibration error): max over non-empty bins of |accuracy_b − mean confidence_b|.
- NLL: mean over samples of −log p(true class).
- Brier score: mean over samples of Σ_k (p_k − 1[k = true class])², between 0 and 2.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DEFAULT_BINS = 15
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def bin_index(confidences: np.ndarray, bins: int) -> np.ndarray:
    """Bin b holds confidences in (b/B, (b+1)/B]; 0 goes into bin 0. A NaN confidence (from a
    model with NaN weights) is put in bin 0 rather than cast to an arbitrary integer; the numbers
    it enters still come out NaN."""
    scaled = np.nan_to_num(np.asarray(confidences, dtype=np.float64) * bins, nan=0.0)
    index = np.ceil(scaled).astype(np.int64) - 1
    return np.clip(index, 0, bins - 1)


@dataclasses.dataclass(frozen=True)
class Reliability:
    """Per-bin counts, mean confidence and accuracy; empty bins hold NaN means."""

    edges: np.ndarray  # bins + 1 edges from 0 to 1
    counts: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray


def reliability(confidences: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS) -> Reliability:
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    index = bin_index(conf, bins)
    counts = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=conf, minlength=bins)
    hit_sum = np.bincount(index, weights=hit, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / np.maximum(counts, 1), np.nan)
        accuracy = np.where(counts > 0, hit_sum / np.maximum(counts, 1), np.nan)
    return Reliability(np.linspace(0.0, 1.0, bins + 1), counts, mean_conf, accuracy)


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    n = len(confidences)
    if n == 0:
        return math.nan
    index = bin_index(np.asarray(confidences), bins)
    # Σ_b (n_b/n)|acc_b − conf_b| = (1/n) Σ_b |Σ_{i∈b} (correct_i − conf_i)|
    gap = np.bincount(index, weights=np.asarray(correct, dtype=np.float64) - np.asarray(confidences, np.float64),
                      minlength=bins)
    return float(np.abs(gap).sum() / n)


def maximum_calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    table = reliability(confidences, correct, bins)
    filled = table.counts > 0
    if not filled.any():
        return math.nan
    return float(np.abs(table.accuracy[filled] - table.mean_confidence[filled]).max())


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray) -> float:
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(labels)), np.asarray(labels)].mean())


def brier_score(logits: np.ndarray, labels: np.ndarray) -> float:
    probs = softmax(logits)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), np.asarray(labels)] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def bootstrap_ece_interval(confidences: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS, *,
                           resamples: int = BOOTSTRAP_RESAMPLES, level: float = BOOTSTRAP_LEVEL,
                           seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the ECE over images drawn with replacement; seeded, so
    the same inputs give the same interval."""
    conf = np.asarray(confidences, dtype=np.float64)
    gap = np.asarray(correct, dtype=np.float64) - conf
    n = len(conf)
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    index = bin_index(conf, bins)[draws] + bins * np.arange(resamples)[:, None]
    sums = np.bincount(index.ravel(), weights=gap[draws].ravel(), minlength=resamples * bins)
    eces = np.abs(sums.reshape(resamples, bins)).sum(axis=1) / n
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(eces, [tail, 1.0 - tail])
    return float(low), float(high)


def calibrated_reference_ece(confidences: np.ndarray, bins: int = DEFAULT_BINS, *, resamples: int = 200,
                             seed: int = 0) -> float:
    """Mean ECE a perfectly calibrated model would show with these confidences on this many
    images: each image is right with probability equal to its confidence. ECE over few images
    is biased upward; this is the floor to read a measured ECE against."""
    conf = np.asarray(confidences, dtype=np.float64)
    if len(conf) == 0:
        return math.nan
    rng = np.random.default_rng(seed)
    hits = rng.random((resamples, len(conf))) < conf
    index = bin_index(conf, bins)[None, :] + bins * np.arange(resamples)[:, None]
    sums = np.bincount(index.ravel(), weights=(hits - conf).ravel(), minlength=resamples * bins)
    return float((np.abs(sums.reshape(resamples, bins)).sum(axis=1) / len(conf)).mean())
