"""Summary: accuracy, loss, per-class accuracy and the confusion matrix on the sample."""

from __future__ import annotations

import numpy as np

from ..figures.draw import summary_figures
from ..report_model import Interval, Performance, SummarySection
from ..stats.intervals import wilson_interval

NUM_CLASSES = 10
LOSS_NOTE = "no interval: the mean loss is reported as measured"


def wilson(successes: int, trials: int) -> Interval:
    low, high = wilson_interval(successes, trials)
    return Interval(low, high, "wilson-95")


def performance(logits: np.ndarray, losses: np.ndarray, labels: np.ndarray) -> Performance:
    predictions = logits.argmax(axis=1)
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class = np.array([confusion[c, c] / confusion[c].sum() if confusion[c].sum() else 0.0
                          for c in range(NUM_CLASSES)])
    correct = int((predictions == labels).sum())
    return Performance(
        accuracy=float((predictions == labels).mean()),
        loss=float(losses.mean()),
        per_class_accuracy=tuple(float(a) for a in per_class),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        labels=tuple(int(v) for v in labels),
        predictions=tuple(int(v) for v in predictions),
        confidences=tuple(round(float(p), 6) for p in probabilities.max(axis=1)),
        correct=correct,
        accuracy_interval=wilson(correct, int(labels.size)),
        per_class_count=tuple(int(confusion[c].sum()) for c in range(NUM_CLASSES)),
        per_class_interval=tuple(wilson(int(confusion[c, c]), int(confusion[c].sum())) for c in range(NUM_CLASSES)),
        loss_interval=None,
        loss_note=LOSS_NOTE,
    )


def summary_section(perf: Performance, class_names: tuple[str, ...]) -> SummarySection:
    return summary_figures(perf, class_names)
