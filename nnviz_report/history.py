"""History: N archived reports of one model on one sample, read as typed report models and set
side by side — accuracy with its interval, the checklist per release, McNemar between
consecutive releases, per-class accuracy, and per-layer numbers over releases (weight drift
estimated from the weight sketches, α, dead units, gradient ratios).

Pure functions of :class:`Report` objects: no torch, no model, no data. The figures are drawn
here too, from the numbers this module computed, so the model that leaves it is complete.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from .checks import match_findings
from .config import Severity
from .errors import CompareError, SchemaError, one_line
from .figures.history import ANNOTATE_CELLS, accuracy_figure, heatmap_figure
from .history_model import (
    HISTORY_SCHEMA_VERSION,
    CheckCell,
    CheckHistory,
    DriftSection,
    History,
    Regression,
    ReleasePair,
    ReleaseSummary,
    SeriesTable,
)
from .report_model import Interval, Report
from .stats.intervals import mcnemar_exact_p, wilson_interval
from .version import __version__
from .weight_sketch import TensorSketch, relative_change, sketches_comparable

FINDING_STATUSES = ("warn", "fail")  # what "a finding appeared / was resolved" follows in the grid
CKA_NOTE = ("CKA between releases needs each release's activations on the sample, which report.json does not "
            "keep (they would dwarf it); compare mode (nnviz-report compare with both checkpoints) shows it per "
            "layer.")


def check_same_sample(reports: Sequence[Report], sources: Sequence[str]) -> None:
    """Every release must be of one model family and measured on the same fixed sample: otherwise
    accuracy, McNemar and per-class numbers would compare different images, and per-layer rows
    different layers."""
    first = reports[0].sample
    family = reports[0].model.class_name
    for report, source in zip(reports[1:], sources[1:], strict=True):
        # One model family: releases of one architecture class (resnet20 and resnet56 are both
        # CifarResNet); another class has other layers, so its drift, α and dead-unit rows would not line up.
        if report.model.class_name != family:
            raise CompareError(
                f"{one_line(source)} is a {one_line(report.model.class_name, 60)} ({one_line(report.model.spec, 60)}), "
                f"but {one_line(sources[0])} is a {one_line(family, 60)} ({one_line(reports[0].model.spec, 60)}); "
                "a history follows one model family: give it the releases of one architecture")
        s = report.sample
        if s.fingerprint != first.fingerprint:
            raise CompareError(
                f"{one_line(source)} was measured on a different sample (fingerprint {s.fingerprint[:12]}…, "
                f"{s.count} images from {one_line(s.source, 80)}) than {one_line(sources[0])} "
                f"({first.fingerprint[:12]}…, {first.count} images from {one_line(first.source, 80)}); "
                "a history needs every report made with the same --data and --per-class")
        perf = report.performance
        if len(perf.labels) != len(perf.predictions) or tuple(perf.labels) != tuple(reports[0].performance.labels):
            raise SchemaError(f"{one_line(source)} records labels or predictions that do not match its sample; "
                              "the file is damaged")


def build_history(reports: Sequence[Report], labels: Sequence[str], sources: Sequence[str], *,
                  p_threshold: float = 0.05) -> History:
    if len(reports) < 2:
        raise CompareError("a history needs at least two archived report.json files")
    check_same_sample(reports, sources)
    releases = tuple(_release(r, label, source) for r, label, source in zip(reports, labels, sources, strict=True))
    pairs = tuple(_pair(reports[i], reports[i + 1], labels[i], labels[i + 1], p_threshold)
                  for i in range(len(reports) - 1))
    regressions = _regressions(pairs[-1], p_threshold)
    newest = reports[-1]
    newest_status = Severity.worst([newest.verdict.status, *(r.severity for r in regressions)]).value
    class_names = newest.sample.class_names
    per_class_values = tuple(tuple(r.performance.per_class_accuracy[c] for r in reports)
                             for c in range(len(class_names)))
    per_class = _table(
        "per-class-accuracy", "Per-class accuracy",
        "Share of each class's sample images predicted right, per release (the class's row of the confusion matrix).",
        class_names, labels, per_class_values, label="accuracy", vmin=0.0, vmax=1.0, percent=True)
    return History(
        schema_version=HISTORY_SCHEMA_VERSION,
        title=f"nnviz_report · history · {newest.model.spec}",
        model_spec=newest.model.spec,
        class_name=newest.model.class_name,
        sample=newest.sample,
        nnviz_report=__version__,
        p_threshold=p_threshold,
        releases=releases,
        newest_status=newest_status,
        regressions=regressions,
        accuracy_figure=accuracy_figure(labels, [r.accuracy for r in releases],
                                        [r.accuracy_interval.low for r in releases],
                                        [r.accuracy_interval.high for r in releases]),
        checks=_check_grid(reports, labels),
        pairs=pairs,
        per_class=per_class,
        drift=_drift(reports, labels),
        layers=_layer_tables(reports, labels),
    )


def _release(report: Report, label: str, source: str) -> ReleaseSummary:
    perf = report.performance
    correct = sum(1 for t, p in zip(perf.labels, perf.predictions, strict=True) if t == p)
    count = len(perf.labels)
    low, high = wilson_interval(correct, count)
    v = report.verdict
    return ReleaseSummary(
        label=label, source=source, checkpoint_name=report.model.checkpoint_name,
        checkpoint_sha256=report.model.checkpoint_sha256, nnviz_report=report.environment.nnviz_report,
        schema_version=report.schema_version, status=v.status, accuracy=correct / count if count else math.nan,
        correct=correct, count=count, accuracy_interval=Interval(low, high, "wilson-95"), loss=perf.loss,
        findings_fail=v.findings_fail, findings_warn=v.findings_warn, findings_info=v.findings_info)


def _ran(report: Report) -> set[str]:
    return {c.id for c in report.verdict.checks if c.status != "off"}


def _pair(before: Report, after: Report, label_a: str, label_b: str, p_threshold: float) -> ReleasePair:
    labels = before.performance.labels
    a, b = before.performance.predictions, after.performance.predictions
    fixed = sum(1 for t, x, y in zip(labels, a, b, strict=True) if x != t and y == t)
    broken = sum(1 for t, x, y in zip(labels, a, b, strict=True) if x == t and y != t)
    p = mcnemar_exact_p(fixed, broken)
    both = _ran(before) & _ran(after)
    match = match_findings([f for f in before.findings if f.check in both],
                           [f for f in after.findings if f.check in both])
    return ReleasePair(label_a, label_b, (fixed - broken) / len(labels) if labels else 0.0, fixed, broken, p,
                       p < p_threshold, match.new, match.resolved)


def _regressions(pair: ReleasePair, p_threshold: float) -> tuple[Regression, ...]:
    found = [Regression(f.severity, "new-finding",
                        f"new {f.severity} {f.check}{f' at {f.layer}' if f.layer else ''} in {pair.after}")
             for f in pair.new_findings if f.severity in FINDING_STATUSES]
    if pair.significant and pair.broken > pair.fixed:
        found.append(Regression(
            "fail", "accuracy-drop",
            f"accuracy {pair.before} → {pair.after} dropped {100 * -pair.accuracy_delta:.1f} pp: {pair.broken} "
            f"broken, {pair.fixed} fixed, exact McNemar p = {pair.mcnemar_p:.2g} < {p_threshold:g}"))
    return tuple(found)


def gate_causes(history: History, fail_on: str | None) -> list[Regression]:
    """The regressions of the newest release at or above ``fail_on``: what makes the run exit 1."""
    if fail_on is None:
        return []
    return [r for r in history.regressions if Severity.rank_of(r.severity) >= Severity(fail_on).rank]


# ---- the checklist over releases -------------------------------------------------------------

def _check_grid(reports: Sequence[Report], labels: Sequence[str]) -> tuple[CheckHistory, ...]:
    order: dict[str, str] = {}
    for report in reversed(reports):  # the newest checklist's order; checks only older ones had, after
        for c in report.verdict.checks:
            order.setdefault(c.id, c.title)
    rows = []
    for check_id, title in order.items():
        cells = []
        for report in reports:
            found = next((c for c in report.verdict.checks if c.id == check_id), None)
            cells.append(CheckCell("absent", 0, "", None) if found is None
                         else CheckCell(found.status, found.findings, found.measured, found.where))
        rows.append(CheckHistory(check_id, title, tuple(cells), _events(cells, labels)))
    return tuple(rows)


def _events(cells: Sequence[CheckCell], labels: Sequence[str]) -> tuple[str, ...]:
    events = []
    if cells[0].status in FINDING_STATUSES:
        events.append(f"{cells[0].status} in {labels[0]}")
    for i in range(1, len(cells)):
        was, now = cells[i - 1].status, cells[i].status
        if was == now:
            continue
        if now in FINDING_STATUSES and was not in FINDING_STATUSES:
            events.append(f"{now} appeared in {labels[i]}")
        elif was in FINDING_STATUSES and now in ("pass", "info"):
            events.append(f"resolved in {labels[i]}")
        elif was in FINDING_STATUSES and now in FINDING_STATUSES:
            events.append(f"{was} → {now} in {labels[i]}")
        elif was in FINDING_STATUSES:
            events.append(f"not judged in {labels[i]} ({now})")
    return tuple(events)


# ---- per-layer numbers over releases ---------------------------------------------------------

def _row_order(per_release: Sequence[Iterable[str]]) -> tuple[str, ...]:
    """The newest release's order, then names only older releases had, in their order."""
    order: dict[str, None] = {}
    for names in reversed(per_release):
        for name in names:
            order.setdefault(name, None)
    return tuple(order)


Rows = tuple[tuple[float | None, ...], ...]


def _series(reports: Sequence[Report],
            read: Callable[[Report], dict[str, float | None]]) -> tuple[tuple[str, ...], Rows]:
    per_release = [read(r) for r in reports]
    rows = _row_order([list(values) for values in per_release])
    return rows, tuple(tuple(values.get(name) for values in per_release) for name in rows)


def _table(metric: str, title: str, definition: str, rows: Sequence[str], columns: Sequence[str],
           values: Sequence[Sequence[float | None]], *, label: str, log: bool = False, vmin: float | None = None,
           vmax: float | None = None, percent: bool = False) -> SeriesTable:
    drawable = any(v is not None and math.isfinite(v) for row in values for v in row)
    figure = heatmap_figure(f"history-{metric}", f"{title}: {len(rows)} rows by {len(columns)} columns",
                            rows, columns, values, label=label, log=log, vmin=vmin, vmax=vmax,
                            percent=percent) if drawable and rows else None
    return SeriesTable(metric, title, definition, tuple(rows), tuple(columns),
                       tuple(tuple(row) for row in values), figure,
                       figure is not None and len(rows) * len(columns) <= ANNOTATE_CELLS)


def _alpha(report: Report) -> dict[str, float | None]:
    return {row.name: row.alpha for row in report.weights.rows} if report.weights is not None else {}


def _dead(report: Report) -> dict[str, float | None]:
    return {row.name: row.dead_channels / row.channels for row in report.activations.layers
            if row.dead_channels is not None and row.channels}


def _ratio(report: Report) -> dict[str, float | None]:
    return {p.name: p.ratio for p in report.gradients.params if len(p.shape) >= 2}


def _layer_tables(reports: Sequence[Report], labels: Sequence[str]) -> tuple[SeriesTable, ...]:
    alpha_rows, alpha = _series(reports, _alpha)
    dead_rows, dead = _series(reports, _dead)
    ratio_rows, ratio = _series(reports, _ratio)
    return (
        _table("alpha", "Power-law exponent α of each weight tensor",
               "α of the tail of the eigenvalue spectrum of WᵀW (continuous maximum-likelihood fit, as in the "
               "Weights section of each report); well-trained layers tend to lie between 2 and 6. — : not fitted "
               "(fewer than 50 non-zero eigenvalues) or the tensor is absent in that release.",
               alpha_rows, labels, alpha, label="α"),
        _table("dead-units", "Dead units after each rectifier",
               "Share of the layer's units (channels) never positive on any sample image and position, per "
               "release; counted only after rectifiers (ReLU and its kin).",
               dead_rows, labels, dead, label="dead share", vmin=0.0, vmax=1.0, percent=True),
        _table("grad-ratio", "Gradient-to-weight ratio of each weight tensor",
               "‖∂loss/∂W‖ / ‖W‖ with the cross-entropy on true labels averaged over the sample (as in the "
               "Gradients section), per release; colours on a log scale.",
               ratio_rows, labels, ratio, label="‖g‖ / ‖W‖", log=True),
    )


def _drift(reports: Sequence[Report], labels: Sequence[str]) -> DriftSection:
    columns = [f"{labels[i]} → {labels[i + 1]}" for i in range(len(reports) - 1)]
    per_release = [{t.name: t for t in r.weight_sketches.tensors} if r.weight_sketches else {} for r in reports]
    rows = _row_order([list(d) for d in per_release])
    values: list[list[float | None]] = [[None] * len(columns) for _ in rows]
    notes, method, buckets = [], "", 0
    for i, column in enumerate(columns):
        a, b = reports[i].weight_sketches, reports[i + 1].weight_sketches
        if a is None or b is None:
            missing = labels[i] if a is None else labels[i + 1]
            notes.append(f"{column}: {missing}'s report.json has no weight sketches (written before they existed)")
            continue
        if not sketches_comparable(a, b):
            notes.append(f"{column}: the two sketches were made differently ({a.method}, k = {a.buckets}, seed "
                         f"{a.seed} against {b.method}, k = {b.buckets}, seed {b.seed})")
            continue
        method, buckets = b.method, b.buckets
        before: dict[str, TensorSketch] = per_release[i]
        after: dict[str, TensorSketch] = per_release[i + 1]
        for r, name in enumerate(rows):
            if name in before and name in after:
                values[r][i] = relative_change(before[name], after[name], b.buckets)
    exact = tuple(name for name in rows if any(name in d and d[name].exact for d in per_release))
    relative_std = math.sqrt(1 / (2 * buckets)) if buckets else 0.0
    definition = (
        "Relative weight change ‖W_after − W_before‖ / ‖W_before‖ of each weight tensor between consecutive "
        "releases, estimated from the CountSketch each report.json keeps of every weight tensor "
        f"(k = {buckets} buckets): ‖S W_after − S W_before‖ / ‖W_before‖, with the exact ‖W_before‖. An estimate: "
        f"its relative standard deviation is about √(1/(2k)) = {100 * relative_std:.1f} %. Tensors with at most k "
        "elements are stored whole, and their change is exact. 0 means unchanged; 1 means the change is as large "
        "as the tensor itself.")
    table = _table("weight-drift", "Weight drift between consecutive releases", definition, rows, columns,
                   values, label="‖ΔW‖ / ‖W_before‖", vmin=0.0)
    return DriftSection(table, method, buckets, exact, relative_std, "; ".join(notes), CKA_NOTE)
