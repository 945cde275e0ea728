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


def corruption_result(run: ProbeRun, labels: np.ndarray, clean_correct: np.ndarray,
                      bins: int = DEFAULT_BINS) -> CorruptionResult:
    """One cell over the images it evaluated (``run.positions``); ``clean_correct`` is per sample row."""
    rows = np.asarray(run.positions, dtype=np.int64)
    probs = softmax(run.logits)
    predictions = probs.argmax(axis=1)
    confidences = probs.max(axis=1)
    correct = predictions == labels[rows]
    hits, n = int(correct.sum()), len(rows)
    low, high = wilson_interval(hits, n)
    return CorruptionResult(
        corruption=run.corruption.name, title=run.corruption.title, severity=run.severity,
        parameter=run.corruption.describe(run.severity), accuracy=hits / n, accuracy_low=low,
        accuracy_high=high, mean_confidence=float(confidences.mean()),
        ece=expected_calibration_error(confidences, correct, bins),
        predictions=tuple(int(p) for p in predictions), positions=tuple(int(r) for r in rows), count=n,
        clean_accuracy=float(clean_correct[rows].mean()))


def _ratio_drop(accuracy: float, clean: float) -> float:
    return 1.0 - accuracy / clean if clean > 0 else 0.0


def robustness_section(clean_logits: np.ndarray, labels: np.ndarray, runs: Sequence[ProbeRun],
                       images: np.ndarray, source_indices: Sequence[int], *, thumbnail_position: int,
                       seed: int, bins: int = DEFAULT_BINS) -> RobustnessSection:
    """``images``: the sample's uint8 (N, 3, H, W) pixels (for the thumbnails). Each run covers the
    sample rows of its cell (nnviz_report.probes' design); drops are against the clean accuracy of
    those same rows, so the subset's luck in which images it drew cancels."""
    return with_robustness_figures(robustness_numbers(clean_logits, labels, runs, images, source_indices,
                                                      thumbnail_position=thumbnail_position, seed=seed, bins=bins))


def robustness_numbers(clean_logits: np.ndarray, labels: np.ndarray, runs: Sequence[ProbeRun],
                       images: np.ndarray, source_indices: Sequence[int], *, thumbnail_position: int,
                       seed: int, bins: int = DEFAULT_BINS) -> RobustnessSection:
    """:func:`robustness_section` without its two charts (``Figure.undrawn``): everything the checks
    and a comparison read. The pipeline draws the charts later, while it waits for a child process."""
    calibration = calibration_stats(clean_logits, labels, bins=bins, seed=seed)
    clean = calibration.accuracy
    clean_correct = softmax(clean_logits).argmax(axis=1) == labels
    results = tuple(corruption_result(run, labels, clean_correct, bins) for run in runs)
    severities = tuple(sorted({r.severity for r in results}))
    check_severity = THUMBNAIL_SEVERITY if THUMBNAIL_SEVERITY in severities else severities[len(severities) // 2]
    summaries = []
    for name in dict.fromkeys(r.corruption for r in results):
        rows = [r for r in results if r.corruption == name]
        mean_accuracy = float(np.mean([r.accuracy for r in rows]))
        at_check = next(r for r in rows if r.severity == check_severity)
        clean_at_check = at_check.clean_accuracy
        assert clean_at_check is not None  # set by corruption_result
        paired_clean = float(np.mean([r.clean_accuracy for r in rows]))
        summaries.append(CorruptionSummary(
            corruption=name, title=rows[0].title, family=BY_NAME[name].family, mean_accuracy=mean_accuracy,
            relative_drop=_ratio_drop(mean_accuracy, paired_clean),
            mean_ece=float(np.mean([r.ece for r in rows])),
            accuracy_at_check=at_check.accuracy, drop_at_check=clean_at_check - at_check.accuracy,
            clean_at_check=clean_at_check, count_at_check=at_check.count))
    mean_corruption_accuracy = float(np.mean([r.accuracy for r in results]))
    paired_clean_accuracy = float(np.mean([r.clean_accuracy for r in results]))
    counts = [int(r.count or 0) for r in results]
    paired = all(len({r.positions for r in results if r.corruption == s.corruption}) == 1 for s in summaries)
    evaluations = sum(counts)
    section = RobustnessSection(
        calibration=calibration,
        reliability_figure=Figure.undrawn("reliability"),
        severities=severities, check_severity=check_severity, seed=seed, clean_accuracy=clean,
        mean_corruption_accuracy=mean_corruption_accuracy,
        relative_drop=_ratio_drop(mean_corruption_accuracy, paired_clean_accuracy),
        results=results, summaries=tuple(summaries),
        accuracy_figure=Figure.undrawn("corruption-accuracy"),
        thumbnail_position=thumbnail_position, thumbnail_index=int(source_indices[thumbnail_position]),
        thumbnails=thumbnails(images[thumbnail_position], int(source_indices[thumbnail_position]),
                              [BY_NAME[s.corruption] for s in summaries], check_severity, seed=seed),
        paired_clean_accuracy=paired_clean_accuracy,
        cells=len(results), cells_per_image=evaluations // len(labels) if len(labels) else 0,
        severities_paired=paired, evaluations=evaluations,
        cell_count_min=min(counts), cell_count_max=max(counts))
    return section


def with_robustness_figures(section: RobustnessSection) -> RobustnessSection:
    """The section with its reliability and corruption-accuracy charts, drawn from its own numbers,
    exactly as render draws them from report.json."""
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
        if before is None:
            continue
        # The same image under the same cell on both sides: rows both evaluated (a 1.1 archive
        # evaluated every row, so against it every row the head evaluated pairs).
        base_right, head_right = _right_by_row(before, truth), _right_by_row(run, truth)
        if base_right is None or head_right is None:
            continue
        shared = sorted(base_right.keys() & head_right.keys())
        b = np.array([base_right[row] for row in shared], dtype=bool)
        h = np.array([head_right[row] for row in shared], dtype=bool)
        pairs += len(shared)
        base_only += int((b & ~h).sum())
        head_only += int((h & ~b).sum())
    return RobustnessComparison(
        ece=Change.of(base_cal.ece, head_cal.ece), mce=Change.of(base_cal.mce, head_cal.mce),
        nll=Change.of(base_cal.nll, head_cal.nll), brier=Change.of(base_cal.brier, head_cal.brier),
        mean_corruption_accuracy=Change.of(base.mean_corruption_accuracy, head.mean_corruption_accuracy),
        corruptions=tuple(changes), pairs=pairs, base_only_right=base_only, head_only_right=head_only,
        p_value=mcnemar_exact_p(base_only, head_only) if pairs else None)


def _right_by_row(run: CorruptionResult, truth: np.ndarray) -> dict[int, bool] | None:
    """Sample row → whether the cell's prediction there was right; None when the record does not
    fit this sample (a different sample size)."""
    predictions = run.predictions
    positions: Sequence[int] | None = run.positions
    if positions is None:  # schema 1.1: every row, in sample order
        positions = range(len(predictions))
        if len(predictions) != len(truth):
            return None
    if len(positions) != len(predictions) or any(not 0 <= int(p) < len(truth) for p in positions):
        return None
    return {int(p): int(pred) == int(truth[int(p)]) for p, pred in zip(positions, predictions, strict=True)}
