"""Compare mode: the head checkpoint's full report plus a Comparison section against a base.

The base is either a second checkpoint of the same architecture, run over the same fixed sample
(everything can be compared, weights and representations included), or an archived report.json
(no old checkpoint needed; the numbers it recorded are compared, but weight change and
representation similarity need the old weights and are left out). Both sides are read in the
same plain form — the report.json form — so the two routes share every line of the comparison.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .archive_guard import check_compare_fields, load_json
from .capture import CaptureResult
from .checks import CheckInputs, load_thresholds, run_checks
from .config import ReportSettings
from .data import SampleSet, load_sample
from .errors import CompareError, ConfigError, SchemaError
from .figures.common import image_pixels
from .figures.draw import changed_thumbnail, compare_figures
from .figures.source import encode_pixels
from .models import LoadedModel, load_model
from .pipeline import (
    ReportResult,
    build_report,
    capture_sample,
    exit_code_for,
    prepare_output_dir,
    resolve_device,
    robustness_probe,
    statistics,
    write_outputs,
)
from .progress import Progress
from .report_model import (
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    Change,
    CompareSection,
    CompareSide,
    FindingChange,
    Interval,
    LayerChange,
    ParamChange,
    PredictionChange,
    to_jsonable,
)
from .sections.anchors import Anchors
from .sections.robustness import robustness_comparison
from .sections.summary import wilson
from .sections.weights import weight_tensors, weights_section
from .stats.intervals import mcnemar_exact_p
from .stats.similarity import linear_cka

KNOWN_SCHEMA_VERSIONS = READABLE_SCHEMA_VERSIONS
MAX_CHANGED_SHOWN = 40
LAYER_METRICS = ("mean", "std", "zero_fraction", "dead_channels", "grad_rms")


@dataclasses.dataclass(frozen=True)
class _Side:
    """One side of the comparison in report.json form (plain dicts and lists)."""

    info: CompareSide
    performance: Mapping[str, Any]
    layers: Sequence[Mapping[str, Any]]
    params: Sequence[Mapping[str, Any]]
    findings: Sequence[Mapping[str, Any]]
    judged: frozenset[str]  # ids of the checks that ran on this side: only their findings are compared
    capture: CaptureResult | None = None
    loaded: LoadedModel | None = None
    robustness: Mapping[str, Any] | None = None  # None: an archive made before the robustness probes


def run_compare(settings: ReportSettings, *, base_weights: Path | None, base_json: Path | None,
                progress: Progress | None = None) -> ReportResult:
    if (base_weights is None) == (base_json is None):
        raise ConfigError("compare needs exactly one of --base-weights and --base-json")
    progress = progress or Progress(enabled=settings.progress)
    out_dir = prepare_output_dir(settings.out_dir)
    device = resolve_device(settings.device)
    thresholds = load_thresholds(settings.config_file, min_accuracy=settings.min_accuracy)
    # Refuse an unreadable archive before any expensive work.
    archived = read_archived_report(base_json) if base_json is not None else None

    progress.stage("loading data")
    sample = load_sample(settings.data, per_class=settings.per_class, data_root=settings.data_root,
                         download=settings.download)
    if archived is not None:
        assert base_json is not None
        check_archive_matches(archived, base_json, model=settings.model, sample=sample)
    progress.stage("loading models")
    head = load_model(settings.model, weights=settings.weights, trust_checkpoint=settings.trust_checkpoint)
    base_loaded = None
    if base_weights is not None:
        base_loaded = load_model(settings.model, weights=base_weights, trust_checkpoint=settings.trust_checkpoint)

    # The seed is set before each side so the head's sections are those of a plain report run.
    torch.manual_seed(settings.seed)
    head_capture = capture_sample(head, sample, settings, device, progress, label="capture (head)")
    report = build_report(head, sample, settings, thresholds, device, progress, capture=head_capture)
    if base_loaded is not None:
        torch.manual_seed(settings.seed)
        base_capture = capture_sample(base_loaded, sample, settings, device, progress, label="capture (base)")
        base_robustness = robustness_probe(base_loaded, sample, settings, device, progress, base_capture)
        progress.stage("base statistics")
        # The base's weight spectra are judged too, so that a spectra finding can be new or resolved;
        # saliency is not computed for the base, so its findings are not compared.
        base_anchors = Anchors()
        base_spectra = weights_section(weight_tensors(base_loaded.module), base_anchors, base_capture.first_conv)
        stats = statistics(base_capture, sample, thresholds, base_anchors, weights=base_spectra,
                           robustness=base_robustness)
        base = _Side(
            info=CompareSide("base", "checkpoint", base_loaded.checkpoint_name, base_loaded.checkpoint_sha256,
                             __version__, SCHEMA_VERSION),
            performance=to_jsonable(stats.performance), layers=to_jsonable(stats.layers),
            params=to_jsonable(stats.params), findings=to_jsonable(stats.findings),
            judged=frozenset(c.id for c in stats.verdict.checks if c.status != "off"),
            capture=base_capture, loaded=base_loaded, robustness=to_jsonable(base_robustness))
        base_name = base_loaded.checkpoint_name or "(initial weights)"
    else:
        assert archived is not None and base_json is not None
        base = _side_from_record(archived)
        base_name = base_json.name
    head_side = _Side(
        info=CompareSide("head", "checkpoint", head.checkpoint_name, head.checkpoint_sha256, __version__,
                         SCHEMA_VERSION),
        performance=to_jsonable(report.performance), layers=to_jsonable(report.activations.layers),
        params=to_jsonable(report.gradients.params), findings=to_jsonable(report.findings),
        judged=frozenset(c.id for c in report.verdict.checks if c.status != "off"),
        capture=head_capture, loaded=head, robustness=to_jsonable(report.robustness))

    progress.stage("comparison")
    anchors = {row.name: row.anchor for row in report.activations.layers}
    section = compare_section(base, head_side, sample, anchors=anchors, p_threshold=thresholds.compare_p_value)
    robustness = None
    if base.robustness is not None and head_side.robustness is not None:
        try:
            robustness = robustness_comparison(base.robustness, head_side.robustness, report.performance.labels)
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"the base's robustness record is missing {exc} where a report.json has it; "
                              "rebuild the base report") from None
    # The head's checklist again, now with the comparison's own checks (accuracy, class and
    # robustness drops).
    checklist = run_checks(CheckInputs(report.activations.layers, report.gradients.params, report.performance,
                                       report.sample.class_names, report.weights, report.saliency, section,
                                       report.robustness, robustness), thresholds)
    report = dataclasses.replace(
        report, title=f"nnviz_report · compare · {settings.model}", compare=section, robustness_compare=robustness,
        findings=checklist.findings, verdict=checklist.verdict,
        settings=(*report.settings, ("compare_base", base_name), ("compare_mode", section.mode)))
    paths = write_outputs(report, settings, out_dir, progress)
    # The gate judges the head: the comparison explains, the head is what would ship.
    return ReportResult(report, paths, exit_code_for(report.findings, settings.fail_on))


# ---- the archived side -----------------------------------------------------------------------

def read_archived_report(path: Path) -> dict[str, Any]:
    if path.exists() and not path.is_file():  # a folder, /dev/zero, a FIFO
        raise SchemaError(f"--base-json {path} is not a regular file; pass an archived report.json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--base-json {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"--base-json {path} cannot be read ({exc})") from None
    record = load_json(text, f"--base-json {path}")
    if not isinstance(record, dict) or "schema_version" not in record:
        raise SchemaError(f"--base-json {path} has no schema_version; it is not an nnviz_report report.json")
    version = record["schema_version"]
    if version not in KNOWN_SCHEMA_VERSIONS:
        raise SchemaError(
            f"--base-json {path.name} has report schema version {version!r}, which nnviz_report {__version__} "
            f"cannot read (it reads {', '.join(KNOWN_SCHEMA_VERSIONS)}); rebuild the base report with this version")
    for key in ("model", "sample", "environment", "performance", "findings", "activations", "gradients"):
        if not isinstance(record.get(key), (dict, list)):
            raise SchemaError(f"--base-json {path.name} lacks the {key!r} part of a report.json; it is incomplete")
    check_compare_fields(record, f"--base-json {path.name}")
    return record


def check_archive_matches(record: Mapping[str, Any], path: Path, *, model: str, sample: SampleSet) -> None:
    old_model = record["model"].get("spec")
    if old_model != model:
        raise CompareError(f"--base-json {path.name} describes model {old_model!r}, not {model!r}; "
                           "compare needs the same --model on both sides")
    old = record["sample"]
    if old.get("fingerprint") != sample.fingerprint:
        raise CompareError(
            f"--base-json {path.name} was made on a different sample (fingerprint {str(old.get('fingerprint'))[:12]}…, "
            f"{old.get('count')} images from {old.get('source')}, {old.get('per_class')} per class) than this run "
            f"({sample.fingerprint[:12]}…, {sample.count} images from {sample.source}); "
            "use the same --data and --per-class")


def _side_from_record(record: Mapping[str, Any]) -> _Side:
    try:
        model, env = record["model"], record["environment"]
        return _Side(
            info=CompareSide("base", "report.json", model["checkpoint_name"], model["checkpoint_sha256"],
                             str(env["nnviz_report"]), str(record["schema_version"])),
            performance=record["performance"], layers=record["activations"]["layers"],
            params=record["gradients"]["params"], findings=record["findings"], judged=_judged(record),
            robustness=record.get("robustness"))
    except (KeyError, TypeError) as exc:
        raise SchemaError(f"--base-json is missing {exc} where a report.json has it; it is incomplete") from None


# The checks of schema 1.0, which recorded findings but not which checks ran: all of these always did
# (min_accuracy aside, whose findings are compared like any other).
CHECKS_OF_SCHEMA_1_0 = frozenset({"non-finite", "dead-channels", "vanishing-gradient", "exploding-gradient",
                                  "gradient-spread", "saturation", "accuracy"})


def _judged(record: Mapping[str, Any]) -> frozenset[str]:
    verdict = record.get("verdict")
    if not isinstance(verdict, dict):
        return CHECKS_OF_SCHEMA_1_0
    return frozenset(str(c["id"]) for c in verdict["checks"] if c["status"] != "off")


# ---- the comparison --------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def change(base: Any, head: Any) -> Change:
    b, h = _number(base), _number(head)
    return Change(b, h, h - b if b is not None and h is not None else None)


def compare_section(base: _Side, head: _Side, sample: SampleSet, *, anchors: Mapping[str, str],
                    p_threshold: float) -> CompareSection:
    both_checkpoints = base.loaded is not None and head.loaded is not None
    params = _param_changes(base.loaded, head.loaded) if both_checkpoints else []
    relative = {p.name: p.relative for p in params}
    cka = _cka_per_layer(base.capture, head.capture) if base.capture is not None and head.capture is not None else {}

    base_layers = {row["name"]: row for row in base.layers}
    head_layers = {row["name"]: row for row in head.layers}
    base_ratio = {p["name"]: p["ratio"] for p in base.params}
    head_ratio = {p["name"]: p["ratio"] for p in head.params}
    layers = []
    for name, h in head_layers.items():
        b = base_layers.get(name)
        if b is None:
            continue
        weight = f"{h['module_path']}.weight"
        metrics = {m: change(b.get(m), h.get(m)) for m in LAYER_METRICS}
        layers.append(LayerChange(
            name=name, anchor=anchors.get(name, h.get("anchor", "")), type=h["type"], **metrics,
            grad_ratio=change(base_ratio.get(weight), head_ratio.get(weight)),
            weight_change=relative.get(weight), cka=cka.get(name)))

    perf_b, perf_h = base.performance, head.performance
    changed, total, fixed, broken = _changed_predictions(perf_b, perf_h, sample)
    p_value = mcnemar_exact_p(fixed, broken)
    both = base.judged & head.judged
    findings = _finding_changes([f for f in base.findings if f["check"] in both],
                                [f for f in head.findings if f["check"] in both])
    note = "" if both_checkpoints else (
        "The base is an archived report.json: weight change and representation similarity (CKA) need the base "
        "checkpoint and are not shown. Every other number is compared with what the archive recorded.")
    weight_rows = [p for p in params if len(p.shape) > 1]
    layer_cka = [(row.name, row.cka) for row in layers if row.cka is not None]
    section = CompareSection(
        mode="checkpoints" if both_checkpoints else "archived-json",
        base=base.info, head=head.info,
        accuracy=change(perf_b["accuracy"], perf_h["accuracy"]),
        base_accuracy_interval=_accuracy_interval(perf_b),
        head_accuracy_interval=_accuracy_interval(perf_h),
        mcnemar_p=p_value, significant=p_value < p_threshold, p_threshold=p_threshold,
        loss=change(perf_b["loss"], perf_h["loss"]),
        per_class_accuracy=tuple(change(b, h) for b, h in zip(perf_b["per_class_accuracy"],
                                                                 perf_h["per_class_accuracy"], strict=True)),
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


def _accuracy_interval(perf: Mapping[str, Any]) -> Interval:
    """From the predictions and labels, which every schema version records (1.0 has no interval)."""
    labels, predictions = np.asarray(perf["labels"]), np.asarray(perf["predictions"])
    return wilson(int((labels == predictions).sum()), int(labels.size))


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


def _changed_predictions(base: Mapping[str, Any], head: Mapping[str, Any],
                         sample: SampleSet) -> tuple[list[PredictionChange], int, int, int]:
    """Samples whose predicted class differs; regressions (right → wrong) first, then fixes,
    then wrong → another wrong, each in sample order."""
    labels = np.asarray(head["labels"])
    before, after = np.asarray(base["predictions"]), np.asarray(head["predictions"])
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


def _finding_changes(base: Sequence[Mapping[str, Any]], head: Sequence[Mapping[str, Any]]) -> list[FindingChange]:
    """Findings matched on (check, layer); repeated keys pair up in order."""
    remaining: dict[tuple[str, str | None], list[Mapping[str, Any]]] = {}
    for f in base:
        remaining.setdefault((f["check"], f["layer"]), []).append(f)
    new, unchanged = [], []
    for f in head:
        matches = remaining.get((f["check"], f["layer"]))
        if matches:
            b = matches.pop(0)
            unchanged.append(FindingChange("unchanged", f["check"], f["layer"], b["severity"], f["severity"],
                                           _number(b["value"]), _number(f["value"]), f["message"], f["anchor"]))
        else:
            new.append(FindingChange("new", f["check"], f["layer"], None, f["severity"], None, _number(f["value"]),
                                     f["message"], f["anchor"]))
    resolved = [
        FindingChange("resolved", b["check"], b["layer"], b["severity"], None, _number(b["value"]), None,
                      b["message"], None)
        for b in base if any(b is r for rs in remaining.values() for r in rs)
    ]
    return new + resolved + unchanged

