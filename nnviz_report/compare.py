"""Compare mode: the head checkpoint's full report plus a Comparison section against a base.

The base is either a second checkpoint of the same architecture, run over the same fixed sample
(everything can be compared, weights and representations included), or an archived report.json
(no old checkpoint needed; the numbers it recorded are compared, but weight change and
representation similarity need the old weights and are left out). Both sides are the report
model's own dataclasses — a checkpoint's from ``pipeline.analyse``, an archive's read back by
``report_json.from_jsonable`` (archive_guard.py) — so the two routes share every line of the
comparison, and a renamed field fails type checking, not a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .archive_guard import ArchivedReport, read_archived_report
from .capture import CaptureResult
from .checks import CheckInputs, match_findings, run_checks
from .config import ReportSettings
from .data import SampleSet
from .errors import CompareError, ConfigError, SchemaError
from .figures.common import image_pixels
from .figures.draw import changed_thumbnail, compare_figures
from .figures.source import encode_pixels
from .models import LoadedModel
from .output import pdf_renderer
from .pipeline import Analysis, Prepared, ReportResult, analyse, build_report, prepare, publish
from .progress import Progress
from .report_model import (
    SCHEMA_VERSION,
    Change,
    CompareSection,
    CompareSide,
    Finding,
    FindingChange,
    LayerChange,
    LayerStats,
    ParamChange,
    ParamStats,
    Performance,
    PredictionChange,
    Report,
    RobustnessSection,
)
from .sections.robustness import robustness_comparison
from .stats.intervals import mcnemar_exact_p
from .stats.similarity import linear_cka
from .version import __version__

MAX_CHANGED_SHOWN = 40


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of the comparison: the same dataclasses whichever route it came by."""

    info: CompareSide
    performance: Performance
    layers: tuple[LayerStats, ...]
    params: tuple[ParamStats, ...]
    findings: tuple[Finding, ...]
    judged: frozenset[str]  # ids of the checks that ran on this side: only their findings are compared
    robustness: RobustnessSection | None  # None: an archive made before the robustness probes
    capture: CaptureResult | None = None  # None: an archive (no features for CKA)
    loaded: LoadedModel | None = None  # None: an archive (no weights to difference)


def side_of_analysis(analysis: Analysis, label: str) -> Side:
    loaded = analysis.loaded
    return Side(
        info=CompareSide(label, "checkpoint", loaded.checkpoint_name, loaded.checkpoint_sha256, __version__,
                         SCHEMA_VERSION),
        performance=analysis.performance, layers=analysis.layers, params=analysis.params,
        findings=analysis.findings, judged=frozenset(c.id for c in analysis.verdict.checks if c.status != "off"),
        robustness=analysis.robustness, capture=analysis.capture, loaded=loaded)


# The checks of schema 1.0, which recorded findings but not which checks ran: all of these always did
# (min_accuracy aside, whose findings are compared like any other).
CHECKS_OF_SCHEMA_1_0 = frozenset({"non-finite", "dead-channels", "vanishing-gradient", "exploding-gradient",
                                  "gradient-spread", "saturation", "accuracy"})


def side_of_archive(archived: ArchivedReport) -> Side:
    verdict = archived.verdict
    judged = (CHECKS_OF_SCHEMA_1_0 if verdict is None
              else frozenset(c.id for c in verdict.checks if c.status != "off"))
    model = archived.model
    return Side(
        info=CompareSide("base", "report.json", model.checkpoint_name, model.checkpoint_sha256,
                         archived.environment.nnviz_report, archived.schema_version),
        performance=archived.performance, layers=archived.activations.layers, params=archived.gradients.params,
        findings=archived.findings, judged=judged, robustness=archived.robustness)


def run_compare(settings: ReportSettings, *, base_weights: Path | None, base_json: Path | None,
                progress: Progress | None = None) -> ReportResult:
    if (base_weights is None) == (base_json is None):
        raise ConfigError("compare needs exactly one of --base-weights and --base-json")
    # Refuse an unreadable or unfitting archive before any expensive work.
    archived = read_archived_report(base_json) if base_json is not None else None
    if archived is not None and archived.model.spec != settings.model:
        raise CompareError(f"--base-json {base_json.name if base_json else ''} describes model "
                           f"{archived.model.spec!r}, not {settings.model!r}; compare needs the same --model on both "
                           "sides")
    # The PDF's renderer imports WeasyPrint in a child while the models run.
    with pdf_renderer(settings) as renderer, contextlib.ExitStack() as children:
        prepared = prepare(settings, progress, extra_weights=() if base_weights is None else (base_weights,))
        if archived is not None:
            assert base_json is not None
            check_same_sample(archived, base_json, prepared.sample)

        head_analysis = analyse(prepared, prepared.models[0], side="head", children=children)
        report = build_report(prepared, head_analysis)
        if archived is None:
            # The base's saliency maps are not shown, so they are not computed: its saliency check is off
            # and, running on one side only, not compared.
            base = side_of_analysis(analyse(prepared, prepared.models[1], side="base", saliency=False), "base")
            base_name = prepared.models[1].checkpoint_name or "(initial weights)"
        else:
            assert base_json is not None
            base = side_of_archive(archived)
            base_name = base_json.name
        prepared.progress.stage("comparison")
        report = with_comparison(report, base, side_of_analysis(head_analysis, "head"), prepared, base_name)
        # The gate judges the head: the comparison explains, the head is what would ship.
        return publish(prepared, report, pdf_renderer=renderer)


def with_comparison(report: Report, base: Side, head: Side, prepared: Prepared, base_name: str) -> Report:
    """The head's report with the Comparison section, the robustness comparison, and the head's
    checklist again with the comparison's own checks (accuracy, class and robustness drops)."""
    thresholds = prepared.thresholds
    anchors = {row.name: row.anchor for row in report.activations.layers}
    section = compare_section(base, head, prepared.sample, anchors=anchors, p_threshold=thresholds.compare_p_value)
    robustness = None
    if base.robustness is not None and head.robustness is not None:
        robustness = robustness_comparison(base.robustness, head.robustness, report.performance.labels)
    checklist = run_checks(CheckInputs(report.activations.layers, report.gradients.params, report.performance,
                                       report.sample.class_names, report.weights, report.saliency, section,
                                       report.robustness, robustness), thresholds)
    return dataclasses.replace(
        report, title=f"nnviz_report · compare · {prepared.settings.model}", compare=section,
        robustness_compare=robustness, findings=checklist.findings, verdict=checklist.verdict,
        settings=(*report.settings, ("compare_base", base_name), ("compare_mode", section.mode)))


def check_same_sample(archived: ArchivedReport, path: Path, sample: SampleSet) -> None:
    old = archived.sample
    if old.fingerprint != sample.fingerprint:
        raise CompareError(
            f"--base-json {path.name} was made on a different sample (fingerprint {old.fingerprint[:12]}…, "
            f"{old.count} images from {old.source}, {old.per_class} per class) than this run "
            f"({sample.fingerprint[:12]}…, {sample.count} images from {sample.source}); "
            "use the same --data and --per-class")


# ---- the comparison --------------------------------------------------------------------------

def compare_section(base: Side, head: Side, sample: SampleSet, *, anchors: Mapping[str, str],
                    p_threshold: float) -> CompareSection:
    both_checkpoints = base.loaded is not None and head.loaded is not None
    params = _param_changes(base.loaded, head.loaded) if both_checkpoints else []
    relative = {p.name: p.relative for p in params}
    cka = _cka_per_layer(base.capture, head.capture) if base.capture is not None and head.capture is not None else {}

    base_layers = {row.name: row for row in base.layers}
    head_layers = {row.name: row for row in head.layers}
    base_ratio = {p.name: p.ratio for p in base.params}
    head_ratio = {p.name: p.ratio for p in head.params}
    layers = []
    for name, h in head_layers.items():
        b = base_layers.get(name)
        if b is None:
            continue
        weight = f"{h.module_path}.weight"
        layers.append(LayerChange(
            name=name, anchor=anchors.get(name, h.anchor), type=h.type,
            mean=Change.of(b.mean, h.mean), std=Change.of(b.std, h.std),
            zero_fraction=Change.of(b.zero_fraction, h.zero_fraction),
            dead_channels=Change.of(b.dead_channels, h.dead_channels), grad_rms=Change.of(b.grad_rms, h.grad_rms),
            grad_ratio=Change.of(base_ratio.get(weight), head_ratio.get(weight)),
            weight_change=relative.get(weight), cka=cka.get(name)))

    perf_b, perf_h = base.performance, head.performance
    changed, total, fixed, broken = _changed_predictions(perf_b, perf_h, sample)
    p_value = mcnemar_exact_p(fixed, broken)
    both = base.judged & head.judged
    findings = finding_changes([f for f in base.findings if f.check in both],
                               [f for f in head.findings if f.check in both])
    note = "" if both_checkpoints else (
        "The base is an archived report.json: weight change and representation similarity (CKA) need the base "
        "checkpoint and are not shown. Every other number is compared with what the archive recorded.")
    weight_rows = [p for p in params if len(p.shape) > 1]
    layer_cka = [(row.name, row.cka) for row in layers if row.cka is not None]
    section = CompareSection(
        mode="checkpoints" if both_checkpoints else "archived-json",
        base=base.info, head=head.info,
        accuracy=Change.of(perf_b.accuracy, perf_h.accuracy),
        base_accuracy_interval=perf_b.accuracy_interval,
        head_accuracy_interval=perf_h.accuracy_interval,
        mcnemar_p=p_value, significant=p_value < p_threshold, p_threshold=p_threshold,
        loss=Change.of(perf_b.loss, perf_h.loss),
        per_class_accuracy=tuple(Change.of(b, h) for b, h in zip(perf_b.per_class_accuracy,
                                                                    perf_h.per_class_accuracy, strict=True)),
        layers=tuple(layers),
        base_only_layers=tuple(n for n in base_layers if n not in head_layers),
        head_only_layers=tuple(n for n in head_layers if n not in base_layers),
        params=tuple(params),
        weights_note=note,
        changed_total=total, changed_fixed=fixed, changed_broken=broken, changed_other=total - fixed - broken,
        changed=tuple(changed), changed_limit=MAX_CHANGED_SHOWN,
        findings=tuple(findings),
        findings_new=sum(f.status == "new" for f in findings),
        findings_resolved=sum(f.status == "resolved" for f in findings),
        findings_unchanged=sum(f.status == "unchanged" for f in findings),
        weight_figure=None,
        cka_figure=None,
    )
    # Drawn from the section's own numbers, exactly as render draws them from report.json.
    weight_figure, cka_figure = compare_figures(section)
    return dataclasses.replace(section, weight_figure=weight_figure if weight_rows else None,
                               cka_figure=cka_figure if layer_cka else None)


def _param_changes(base: LoadedModel | None, head: LoadedModel | None) -> list[ParamChange]:
    assert base is not None and head is not None
    base_params = dict(base.module.named_parameters())
    rows = []
    for name, w_head in head.module.named_parameters():
        w_base = base_params.get(name)
        if w_base is None or w_base.shape != w_head.shape:
            continue
        b = w_base.detach().to("cpu", torch.float64)
        d = w_head.detach().to("cpu", torch.float64) - b
        base_norm, delta_norm = float(torch.linalg.vector_norm(b)), float(torch.linalg.vector_norm(d))
        rows.append(ParamChange(name, name.rpartition(".")[0], tuple(w_head.shape), base_norm, delta_norm,
                                delta_norm / base_norm if base_norm > 0 and math.isfinite(base_norm) else None))
    return rows


def _cka_per_layer(base: CaptureResult, head: CaptureResult) -> dict[str, float]:
    base_features = {layer.name: layer.pooled_features for layer in base.layers}
    result = {}
    for layer in head.layers:
        x, y = base_features.get(layer.name), layer.pooled_features
        if x is None or y is None or x.shape[0] != y.shape[0] or x.shape[0] < 2:
            continue
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            continue
        result[layer.name] = linear_cka(x, y)
    return result


def _changed_predictions(base: Performance, head: Performance,
                         sample: SampleSet) -> tuple[list[PredictionChange], int, int, int]:
    """Samples whose predicted class differs; regressions (right → wrong) first, then fixes,
    then wrong → another wrong, each in sample order."""
    labels = np.asarray(head.labels)
    before, after = np.asarray(base.predictions), np.asarray(head.predictions)
    if before.shape != after.shape:
        raise SchemaError(f"the base has {before.size} predictions but this sample has {after.size} images")
    moved = np.flatnonzero(before != after)
    broken = [int(i) for i in moved if before[i] == labels[i]]
    fixed = [int(i) for i in moved if after[i] == labels[i]]
    other = [int(i) for i in moved if before[i] != labels[i] and after[i] != labels[i]]
    names = sample.class_names
    shown = []
    for slot, position in enumerate((broken + fixed + other)[:MAX_CHANGED_SHOWN]):
        label, b, h = int(labels[position]), int(before[position]), int(after[position])
        pixels = image_pixels(sample.images[position].numpy())
        thumb = changed_thumbnail(pixels, slot, names[label], names[b], names[h])
        kind = "broken" if b == label else "fixed" if h == label else "other"
        shown.append(PredictionChange(position, sample.indices[position], label, b, h, kind, thumb,
                                      encode_pixels(pixels)))
    return shown, int(moved.size), len(fixed), len(broken)


def finding_changes(base: Sequence[Finding], head: Sequence[Finding]) -> list[FindingChange]:
    """Findings matched on (check, layer) by checks.match_findings: new, then resolved, then kept."""
    match = match_findings(base, head)
    new = [FindingChange("new", f.check, f.layer, None, f.severity, None, _finite(f.value), f.message, f.anchor)
           for f in match.new]
    resolved = [FindingChange("resolved", b.check, b.layer, b.severity, None, _finite(b.value), None, b.message, None)
                for b in match.resolved]
    unchanged = [FindingChange("unchanged", f.check, f.layer, b.severity, f.severity, _finite(b.value),
                               _finite(f.value), f.message, f.anchor) for b, f in match.kept]
    return new + resolved + unchanged


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
