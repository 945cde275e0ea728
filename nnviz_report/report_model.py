"""The frozen report model: the contract between computing and rendering.

It holds numbers, strings and figure bytes; no tensors, no HTML, no formatting. Everything
except figure bytes goes into report.json, so an archived JSON carries every number the HTML
showed, and everything the figures are drawn from: figures are pure functions of the rest of the
model (``figures.draw``), so ``nnviz-report render`` redraws them from report.json alone. Where
a figure needs more than the numbers the tables show (pixels, feature maps, weight values), the
model carries that source in a compact exact form (``figures.source``); fields that hold it
default to empty so that archives of older schema versions, which lack them, still read.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .flow_model import FlowGraph, LayerRow
from .report_base import Figure, Interval
from .report_sections import (
    BiasSummary,
    CalibrationStats,
    Change,
    CompareSection,
    CompareSide,
    CorruptionChange,
    CorruptionResult,
    CorruptionSummary,
    CorruptionThumbnail,
    FindingChange,
    LayerChange,
    LayerSeparability,
    PackedValues,
    ParamChange,
    PredictionChange,
    ReliabilityBin,
    RobustnessComparison,
    RobustnessSection,
    SaliencyMapResult,
    SaliencySample,
    SaliencySection,
    SlicesSection,
    SliceStrip,
    WeightRow,
    WeightsSection,
)
from .weight_sketch import WeightSketches

__all__ = [
    "ActivationsSection",
    "BiasSummary",
    "CalibrationStats",
    "Change",
    "CheckResult",
    "CompareSection",
    "CompareSide",
    "CorruptionChange",
    "CorruptionResult",
    "CorruptionSummary",
    "CorruptionThumbnail",
    "Environment",
    "FeatureGrid",
    "Figure",
    "Finding",
    "FindingChange",
    "FlowSection",
    "GradientsSection",
    "HistogramData",
    "Interval",
    "LayerChange",
    "LayerMeasurements",
    "LayerSeparability",
    "LayerStats",
    "ModelInfo",
    "PackedValues",
    "ParamChange",
    "ParamMeasurements",
    "ParamStats",
    "Performance",
    "PredictionChange",
    "READABLE_SCHEMA_VERSIONS",
    "RENDERABLE_SCHEMA_VERSIONS",
    "ReliabilityBin",
    "Report",
    "RobustnessComparison",
    "RobustnessSection",
    "SCHEMA_VERSION",
    "SaliencyMapResult",
    "SaliencySample",
    "SaliencySection",
    "SampleInfo",
    "ShowcaseSample",
    "SliceStrip",
    "SlicesSection",
    "SummarySection",
    "Verdict",
    "WeightRow",
    "WeightsSection",
    "iter_figures",
    "to_jsonable",
]

SCHEMA_VERSION = "1.2"
# Archives compare can still read: 1.0 lacks the checklist and the intervals, which compare
# recomputes for the base side from the predictions and labels every version records; 1.1 ran
# every image through every corruption (1.2 evaluates a balanced subset per cell and records which).
READABLE_SCHEMA_VERSIONS = ("1.0", "1.1", SCHEMA_VERSION)
# Archives render can redraw: 1.2 is the first to carry every figure's source.
RENDERABLE_SCHEMA_VERSIONS = (SCHEMA_VERSION,)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    spec: str
    class_name: str
    parameters: int
    trainable_parameters: int
    checkpoint_name: str | None
    checkpoint_sha256: str | None


@dataclasses.dataclass(frozen=True)
class SampleInfo:
    source: str
    per_class: int
    count: int
    fingerprint: str
    class_names: tuple[str, ...]
    normalisation: str
    indices: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Environment:
    nnviz_report: str
    torch: str
    torchvision: str
    python: str
    device: str
    seed: int


@dataclasses.dataclass(frozen=True)
class Performance:
    accuracy: float
    loss: float
    per_class_accuracy: tuple[float, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted class
    labels: tuple[int, ...]
    predictions: tuple[int, ...]
    confidences: tuple[float, ...]  # softmax probability of the predicted class
    correct: int  # samples predicted right; accuracy = correct / len(labels)
    accuracy_interval: Interval
    per_class_count: tuple[int, ...]  # samples of each true class
    per_class_interval: tuple[Interval, ...]
    loss_interval: Interval | None  # None: the mean loss is reported without an interval (loss_note says why)
    loss_note: str


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # "info" | "warn" | "fail" (config.Severity)
    layer: str | None  # where: a layer's call name (LayerStats.name) for a finding about its output or gradient;
    # the owner (ParamStats.owner: its module path, or a root-level parameter's name) for one about a tensor;
    # a corruption's title for corruption-drop; null for one about the whole model
    value: float | None
    threshold: str
    message: str
    anchor: str | None  # in-page anchor of the place the finding is about


@dataclasses.dataclass(frozen=True)
class HistogramData:
    start: int
    width: float
    counts: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class LayerMeasurements:
    """A layer's numbers as the checks read them; :class:`LayerStats` adds the verdict on them."""

    name: str  # call name: the module path, with "#k" for the k-th call of a module called more than once
    module_path: str
    anchor: str
    type: str
    output_shape: tuple[int, ...]
    layout: str  # "feature-map" (N, C, H, W) | "tokens" (N, T, D), channel = D | "channels-first-sequence"
    # (N, C, L) | "vector" (N, D) | "generic" | "not-batch-first" (axis 0 is not the sample: no per-sample analyses)
    layout_note: str  # the axes in words and how one sample is pooled into one vector
    mean: float
    std: float
    min: float
    max: float
    zero_fraction: float
    dead_channels: int | None  # units never positive on any sample and position; counted only after
    # rectifiers (ReLU, ReLU6, LeakyReLU, PReLU, RReLU, ELU, CELU, SELU), null for every other layer
    channels: int  # units along the layout's channel axis (D for tokens); 0 when it has none
    saturation: float | None
    nonfinite: int
    histogram: HistogramData
    grad_rms: float | None  # root mean square over the output's elements of d(loss)/d(output), where loss is the
    # cross-entropy on the true labels averaged over all N images of the sample: it scales as 1/N, not per image
    grad_max_abs: float | None
    grad_nonfinite: int

    @property
    def dead_fraction(self) -> float:
        return self.dead_channels / self.channels if self.channels and self.dead_channels is not None else 0.0


@dataclasses.dataclass(frozen=True)
class LayerStats(LayerMeasurements):
    severity: str  # worst finding on this layer (its call name or its module path): "pass" | "info" | "warn" | "fail"

    @classmethod
    def judged(cls, measured: LayerMeasurements, severity: str) -> LayerStats:
        return cls(**_fields_of(measured), severity=severity)


@dataclasses.dataclass(frozen=True)
class ParamMeasurements:
    """A parameter tensor's numbers as the checks read them; :class:`ParamStats` adds the verdict on them."""

    name: str
    module_path: str
    anchor: str
    shape: tuple[int, ...]
    numel: int
    weight_norm: float
    grad_norm: float
    ratio: float | None  # grad_norm / weight_norm; None when the weight norm is zero
    mean_abs_grad: float
    max_abs_grad: float
    nonfinite_weights: int
    nonfinite_grads: int

    @property
    def owner(self) -> str:
        """What a finding about this tensor names: its module, or for a root-level parameter
        (a ViT's ``cls_token``) the parameter itself rather than "whole model"."""
        return self.module_path or self.name


@dataclasses.dataclass(frozen=True)
class ParamStats(ParamMeasurements):
    severity: str  # worst finding about this tensor's owner: "pass" | "info" | "warn" | "fail"

    @classmethod
    def judged(cls, measured: ParamMeasurements, severity: str) -> ParamStats:
        return cls(**_fields_of(measured), severity=severity)


def _fields_of(measured: LayerMeasurements | ParamMeasurements) -> dict[str, Any]:
    return {f.name: getattr(measured, f.name) for f in dataclasses.fields(measured)}


@dataclasses.dataclass(frozen=True)
class ShowcaseSample:
    position: int  # row in the sample
    index: int  # index in the data source
    label: int
    predicted: int
    confidence: float
    thumbnail: Figure
    pixels: str = ""  # the sample's RGB pixels as base64 PNG (figures.source); "" in archives before 1.2


@dataclasses.dataclass(frozen=True)
class FeatureGrid:
    layer: str
    anchor: str
    shown_channels: int
    channels: int
    spatial: tuple[int, int]
    images: tuple[Figure, ...]  # one per showcase sample
    layout: str  # "feature-map", or "tokens": patch tokens (class/register tokens dropped) on their grid
    role: str  # why this layer is shown: the first convolution, or the output of a stage (a run of one resolution)
    levels: tuple[str, ...] = ()  # per showcase sample, what its image shows: the shown channels top to bottom,
    # each scaled to its own range as levels 0–255 of the colour map, as base64 PNG (figures.source)


@dataclasses.dataclass(frozen=True)
class ActivationsSection:
    layers: tuple[LayerStats, ...]
    grids: tuple[FeatureGrid, ...]
    distribution: Figure
    grid_candidates: int  # layers with feature maps of at least 2×2, of which grids shows a bounded few


@dataclasses.dataclass(frozen=True)
class GradientsSection:
    params: tuple[ParamStats, ...]
    flow: Figure
    first_layer: Figure | None
    first_layer_name: str | None
    ratio_band: tuple[float, float] | None = None  # the healthy ‖g‖/‖w‖ band drawn in the flow figure
    first_layer_tiles: str = ""  # the filters' gradients as RGB tiles stacked top to bottom, base64 PNG


@dataclasses.dataclass(frozen=True)
class FlowSection:
    # Here rather than in flow_model, which would need Figure from this module: no import cycle.
    method: str
    direction: str
    folded: bool
    graph: FlowGraph
    layers: tuple[LayerRow, ...]
    total_params: int
    total_macs: int  # multiply-adds for one image: the sum of the layer rows
    macs_counted: str  # what the multiply-adds count (dispatch-level: every conv, matmul and attention product)
    diagram: Figure
    print_pages: tuple[Figure, ...]  # the diagram cut into page-high windows for the PDF; () when it fits one page


@dataclasses.dataclass(frozen=True)
class SummarySection:
    confusion: Figure
    per_class: Figure


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One declared check as the checklist shows it, passes and checks that did not run included."""

    id: str
    title: str
    tests: str  # what the check tests, one sentence
    threshold: str  # the threshold(s) in force, in words
    status: str  # "pass" | "info" | "warn" | "fail", or "off" when it did not run (note says why)
    worst_value: float | None  # the measured number closest to (or past) the threshold; None: nothing measured
    measured: str  # that value in words, with its unit and interval where it has one
    where: str | None  # the layer, class or samples of the worst value; None: the whole model
    anchor: str | None  # in-page anchor of that place
    findings: int  # findings this check raised
    note: str  # why the check is off, or how a sampled number was judged; "" otherwise


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The overall status and every count the first screen shows, computed once."""

    status: str  # worst status of any check that ran: "pass" | "info" | "warn" | "fail"
    checks: tuple[CheckResult, ...]  # every declared check: fail, warn, info, pass, off; declared order within
    checks_fail: int
    checks_warn: int
    checks_info: int
    checks_pass: int
    checks_off: int
    findings_fail: int
    findings_warn: int
    findings_info: int
    passed: tuple[str, ...]  # titles of the checks that passed, in declared order
    off: tuple[str, ...]  # titles of the checks that did not run


@dataclasses.dataclass(frozen=True)
class Report:
    schema_version: str
    title: str
    model: ModelInfo
    sample: SampleInfo
    environment: Environment
    settings: tuple[tuple[str, str], ...]
    performance: Performance
    findings: tuple[Finding, ...]
    verdict: Verdict
    showcase: tuple[ShowcaseSample, ...]
    summary: SummarySection
    activations: ActivationsSection
    gradients: GradientsSection
    # Sections built by later stages; None when not computed.
    flow: FlowSection | None = None
    slices: SlicesSection | None = None
    weights: WeightsSection | None = None
    saliency: SaliencySection | None = None
    compare: CompareSection | None = None
    robustness: RobustnessSection | None = None
    robustness_compare: RobustnessComparison | None = None
    weight_sketches: WeightSketches | None = None  # for the history's weight drift (weight_sketch.py)


def to_jsonable(value: Any) -> Any:
    """Plain JSON types. Figures become their name only; non-finite floats become null (the
    layer's ``nonfinite`` counts say why) so the JSON stays strictly valid."""
    if isinstance(value, Figure):
        return {"figure": value.name}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return to_jsonable(value.item())
    raise TypeError(f"cannot put {type(value).__name__} into report.json")


def iter_figures(value: Any) -> list[Figure]:
    """Every figure in the report, in field order (for size accounting and tests)."""
    found: list[Figure] = []
    if isinstance(value, Figure):
        found.append(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            found.extend(iter_figures(getattr(value, f.name)))
    elif isinstance(value, (list, tuple)):
        for v in value:
            found.extend(iter_figures(v))
    return found
