"""Calibration and robustness: how far the confidences can be trusted on the clean sample, and
what the fixed corruption suite costs in accuracy and calibration. Numbers from logits only."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..corruptions import BY_NAME, SUITE, THUMBNAIL_SEVERITY, corrupt_batch
from ..figures.common import image_pixels
from ..figures.draw import corruption_thumbnail, robustness_figures
from ..figures.source import encode_pixels
from ..probes import ProbeRun
from ..report_model import (
    CalibrationStats,
    Change,
    CorruptionChange,
    CorruptionResult,
    CorruptionSummary,
    CorruptionThumbnail,
    Figure,
    ReliabilityBin,
    RobustnessComparison,
    RobustnessSection,
)
from ..stats.calibration import (
    BOOTSTRAP_LEVEL,
    BOOTSTRAP_RESAMPLES,
    DEFAULT_BINS,
    bootstrap_ece_interval,
    brier_score,
    calibrated_reference_ece,
    expected_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability,
    softmax,
)
from ..stats.intervals import mcnemar_exact_p, wilson_interval


def _optional(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def calibration_stats(logits: np.ndarray, labels: np.ndarray, *, bins: int = DEFAULT_BINS,
                      seed: int = 0) -> CalibrationStats:
    probs = softmax(logits)
    confidences = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    table = reliability(confidences, correct, bins)
    low, high = bootstrap_ece_interval(confidences, correct, bins, seed=seed)
    rows = tuple(
        ReliabilityBin(float(table.edges[b]), float(table.edges[b + 1]), int(table.counts[b]),
                       _optional(table.mean_confidence[b]), _optional(table.accuracy[b]))
        for b in range(bins))
    return CalibrationStats(
        count=int(len(labels)), bins=bins, accuracy=float(correct.mean()), mean_confidence=float(confidences.mean()),
        ece=expected_calibration_error(confidences, correct, bins), ece_low=low, ece_high=high,
        ece_level=BOOTSTRAP_LEVEL, bootstrap_resamples=BOOTSTRAP_RESAMPLES,
        ece_calibrated_reference=calibrated_reference_ece(confidences, bins, seed=seed),
        mce=maximum_calibration_error(confidences, correct, bins),
        nll=negative_log_likelihood(logits, labels), brier=brier_score(logits, labels), reliability=rows)


def corruption_result(run: ProbeRun, labels: np.ndarray, bins: int = DEFAULT_BINS) -> CorruptionResult:
    probs = softmax(run.logits)
    predictions = probs.argmax(axis=1)
    confidences = probs.max(axis=1)
    correct = predictions == labels
    hits = int(correct.sum())
    low, high = wilson_interval(hits, len(labels))
    return CorruptionResult(
        corruption=run.corruption.name, title=run.corruption.title, severity=run.severity,
        parameter=run.corruption.describe(run.severity), accuracy=hits / len(labels), accuracy_low=low,
        accuracy_high=high, mean_confidence=float(confidences.mean()),
        ece=expected_calibration_error(confidences, correct, bins),
        predictions=tuple(int(p) for p in predictions))


def robustness_section(clean_logits: np.ndarray, labels: np.ndarray, runs: Sequence[ProbeRun],
                       images: np.ndarray, source_indices: Sequence[int], *, thumbnail_position: int,
                       seed: int, bins: int = DEFAULT_BINS) -> RobustnessSection:
    """``images``: the sample's uint8 (N, 3, H, W) pixels (for the thumbnails)."""
    calibration = calibration_stats(clean_logits, labels, bins=bins, seed=seed)
    clean = calibration.accuracy
    results = tuple(corruption_result(run, labels, bins) for run in runs)
    severities = tuple(sorted({r.severity for r in results}))
    check_severity = THUMBNAIL_SEVERITY if THUMBNAIL_SEVERITY in severities else severities[len(severities) // 2]
    summaries = []
    for name in dict.fromkeys(r.corruption for r in results):
        rows = [r for r in results if r.corruption == name]
        mean_accuracy = float(np.mean([r.accuracy for r in rows]))
        at_check = next(r for r in rows if r.severity == check_severity)
        summaries.append(CorruptionSummary(
            corruption=name, title=rows[0].title, family=BY_NAME[name].family, mean_accuracy=mean_accuracy,
            relative_drop=1.0 - mean_accuracy / clean if clean > 0 else 0.0,
            mean_ece=float(np.mean([r.ece for r in rows])),
            accuracy_at_check=at_check.accuracy, drop_at_check=clean - at_check.accuracy))
    mean_corruption_accuracy = float(np.mean([r.accuracy for r in results]))
    section = RobustnessSection(
        calibration=calibration,
        reliability_figure=Figure.undrawn("reliability"),
        severities=severities, check_severity=check_severity, seed=seed, clean_accuracy=clean,
        mean_corruption_accuracy=mean_corruption_accuracy,
        relative_drop=1.0 - mean_corruption_accuracy / clean if clean > 0 else 0.0,
        results=results, summaries=tuple(summaries),
        accuracy_figure=Figure.undrawn("corruption-accuracy"),
        thumbnail_position=thumbnail_position, thumbnail_index=int(source_indices[thumbnail_position]),
        thumbnails=thumbnails(images[thumbnail_position], int(source_indices[thumbnail_position]),
                              [BY_NAME[s.corruption] for s in summaries], check_severity, seed=seed))
    # Drawn from the section's own numbers, exactly as render draws them from report.json.
    reliability, accuracy = robustness_figures(section)
    return dataclasses.replace(section, reliability_figure=reliability, accuracy_figure=accuracy)


def thumbnails(image_chw: np.ndarray, source_index: int, suite: Sequence[Any], severity: int, *,
               seed: int) -> tuple[CorruptionThumbnail, ...]:
    clean = image_pixels(image_chw)
    items = [CorruptionThumbnail("clean", "Clean", "", corruption_thumbnail(clean, "clean", "Clean", severity),
                                 encode_pixels(clean))]
    for corruption in suite or SUITE:
        corrupted = image_pixels(corrupt_batch(image_chw[None], corruption, severity, [source_index], seed=seed)[0])
        items.append(CorruptionThumbnail(
            corruption.name, corruption.title, corruption.describe(severity),
            corruption_thumbnail(corrupted, corruption.name, corruption.title, severity), encode_pixels(corrupted)))
    return tuple(items)


# ---- compare ---------------------------------------------------------------------------------

def robustness_comparison(base: RobustnessSection, head: RobustnessSection,
                          labels: Sequence[int]) -> RobustnessComparison:
    """Corruptions matched by name, runs by (corruption, severity); an archived base and a base
    checkpoint arrive as the same dataclass."""
    base_cal, head_cal = base.calibration, head.calibration
    base_kinds = {s.corruption: s for s in base.summaries}
    changes = []
    for s in head.summaries:
        other = base_kinds.get(s.corruption)
        changes.append(CorruptionChange(s.corruption, s.title,
                                        Change.of(other.mean_accuracy if other else None, s.mean_accuracy),
                                        Change.of(other.mean_ece if other else None, s.mean_ece)))
    base_runs = {(r.corruption, r.severity): r for r in base.results}
    truth = np.asarray(labels)
    pairs = base_only = head_only = 0
    for run in head.results:
        before = base_runs.get((run.corruption, run.severity))
        if before is None or len(before.predictions) != len(truth) or len(run.predictions) != len(truth):
            continue
        base_right = np.asarray(before.predictions) == truth
        head_right = np.asarray(run.predictions) == truth
        pairs += len(truth)
        base_only += int((base_right & ~head_right).sum())
        head_only += int((head_right & ~base_right).sum())
    return RobustnessComparison(
        ece=Change.of(base_cal.ece, head_cal.ece), mce=Change.of(base_cal.mce, head_cal.mce),
        nll=Change.of(base_cal.nll, head_cal.nll), brier=Change.of(base_cal.brier, head_cal.brier),
        mean_corruption_accuracy=Change.of(base.mean_corruption_accuracy, head.mean_corruption_accuracy),
        corruptions=tuple(changes), pairs=pairs, base_only_right=base_only, head_only_right=head_only,
        p_value=mcnemar_exact_p(base_only, head_only) if pairs else None)
