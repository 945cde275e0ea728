"""Calibration and robustness figures: a reliability diagram with its confidence histogram, and
accuracy under each corruption across severity. Pure functions of the section's numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..report_model import CorruptionResult, Figure, ReliabilityBin
from .common import CATEGORICAL, new_figure, style, svg_figure


def reliability_figure(bins: Sequence[ReliabilityBin], ece: float) -> Figure:
    """Left: accuracy per confidence bin against the diagonal of perfect calibration, the gap
    shaded. Right: how many images fall into each bin."""
    lower = np.array([b.lower for b in bins])
    width = np.array([b.upper - b.lower for b in bins])
    counts = np.array([b.count for b in bins])
    filled = counts > 0
    accuracy = np.array([b.accuracy if b.accuracy is not None else 0.0 for b in bins])
    confidence = np.array([b.mean_confidence if b.mean_confidence is not None else 0.0 for b in bins])
    with style():
        fig = new_figure(7.2, 3.0)
        left, right = fig.subplots(1, 2, width_ratios=(1.1, 1.0))
        left.bar(lower[filled], accuracy[filled], width=width[filled], align="edge", color=CATEGORICAL[0],
                 edgecolor="white", linewidth=0.5, label="accuracy in the bin")
        # The gap as a hatched outline, not a fill: it reads the same over a bar (accuracy above
        # confidence) and over the background (accuracy below it).
        gap_bottom = np.minimum(accuracy, confidence)[filled]
        left.bar(lower[filled], np.abs(accuracy - confidence)[filled], bottom=gap_bottom, width=width[filled],
                 align="edge", facecolor="none", hatch="////", edgecolor=CATEGORICAL[5], linewidth=0.8,
                 label="gap to mean confidence")
        left.plot([0, 1], [0, 1], color="#888888", linestyle="--", linewidth=1, label="perfect calibration")
        left.set_xlim(0, 1)
        left.set_ylim(0, 1)
        left.set_xlabel("confidence (bin)")
        left.set_ylabel("accuracy")
        left.set_title(f"Reliability (ECE {ece:.3f}, {len(bins)} bins)")
        left.legend(loc="upper left", frameon=False, fontsize=7)
        right.bar(lower, counts, width=width, align="edge", color=CATEGORICAL[4], edgecolor="white", linewidth=0.5)
        right.set_xlim(0, 1)
        right.set_xlabel("confidence (bin)")
        right.set_ylabel("images")
        right.set_title("Confidence histogram")
        return svg_figure(fig, "reliability",
                          "Reliability diagram (accuracy against confidence per bin) and confidence histogram",
                          width=680)


def corruption_accuracy_figure(results: Sequence[CorruptionResult], clean_accuracy: float) -> Figure:
    """Accuracy per corruption across severity, clean at severity 0, 95 % Wilson intervals as bars."""
    titles = list(dict.fromkeys(r.title for r in results))
    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    with style():
        fig = new_figure(6.4, 3.2)
        ax = fig.add_subplot()
        for i, title in enumerate(titles):
            rows = [r for r in results if r.title == title]
            x = np.array([0] + [r.severity for r in rows], dtype=float) + (i - (len(titles) - 1) / 2) * 0.05
            y = np.array([clean_accuracy] + [r.accuracy for r in rows]) * 100
            low = np.array([0.0] + [r.accuracy - r.accuracy_low for r in rows]) * 100
            high = np.array([0.0] + [r.accuracy_high - r.accuracy for r in rows]) * 100
            colour = CATEGORICAL[i % len(CATEGORICAL)]
            ax.errorbar(x, y, yerr=np.vstack([low, high]), color=colour, marker=markers[i % len(markers)],
                        markersize=4, linewidth=1.2, capsize=2, elinewidth=0.7, label=title)
        severities = sorted({r.severity for r in results})
        ax.set_xticks([0, *severities], ["clean", *[str(s) for s in severities]])
        ax.set_xlabel("severity")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
        return svg_figure(fig, "corruption-accuracy",
                          "Accuracy on the sample under each corruption at each severity, with 95 % intervals",
                          width=620)
