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
from .weight_sketch import WeightSketches

SCHEMA_VERSION = "1.2"
# Archives compare can still read: 1.0 lacks the checklist and the intervals, which compare
# recomputes for the base side from the predictions and labels every version records; 1.1 ran
# every image through every corruption (1.2 evaluates a balanced subset per cell and records which).
READABLE_SCHEMA_VERSIONS = ("1.0", "1.1", SCHEMA_VERSION)
# Archives render can redraw: 1.2 is the first to carry every figure's source.
RENDERABLE_SCHEMA_VERSIONS = (SCHEMA_VERSION,)


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str
    media_type: str  # "image/svg+xml" or "image/png"
    data: bytes
    alt: str
    width: int | None = None  # CSS px the figure is meant to be shown at; None: the container's width
    inline: bool = False  # inline SVG (needed for links inside it) rather than an <img>

    @classmethod
    def undrawn(cls, name: str) -> Figure:
        """A figure known by its name only (as report.json records it), before figures.draw draws it."""
        return cls(name, "", b"", "")


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
class Interval:
    """A 95 % confidence interval of a number measured on the sample."""

    low: float
    high: float
    method: str  # "wilson-95": Wilson score interval of a proportion, 95 %


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


# ---- Weights, Slices and Saliency sections ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BiasSummary:
    name: str
    size: int
    mean: float
    std: float
    min: float
    max: float


@dataclasses.dataclass(frozen=True)
class WeightRow:
    """Statistics of one weight tensor with at least 2 dimensions; conv weights are read as the
    matrix ``(out, in·k·k)`` for the spectral numbers."""

    name: str  # parameter name, e.g. "layer1.0.conv1.weight"
    module_path: str
    anchor: str
    type: str  # the owning module's class
    shape: tuple[int, ...]
    matrix_shape: tuple[int, int]
    mean: float
    std: float
    l2_norm: float  # Frobenius norm of the whole tensor
    spectral_norm: float
    stable_rank: float
    near_zero_fraction: float  # |w| < 1e-3 · max|w|
    alpha: float | None  # power-law exponent of the tail of the eigenvalue spectrum of WᵀW: continuous MLE
    # 1 + n / Σ ln(λ/xmin), xmin minimising the two-sided KS distance over tails of ≥ 10 eigenvalues; null
    # below 50 non-zero eigenvalues. Convolutions are one (out, in·k·k) matrix, not WeightWatcher's default
    # pooled per-kernel-position (out, in) slices, so α differs from WeightWatcher's for convolutions
    alpha_xmin: float | None
    alpha_ks_distance: float | None  # fit quality: Kolmogorov–Smirnov distance of the tail
    alpha_tail: int
    alpha_note: str  # "" when fitted, otherwise why not
    bias: BiasSummary | None


@dataclasses.dataclass(frozen=True)
class WeightsSection:
    rows: tuple[WeightRow, ...]
    skipped: tuple[str, ...]  # 1-D parameters (norm scales and the like) left out of the table
    values_per_layer: int  # most values per tensor drawn in the distribution figure
    subsampled: tuple[str, ...]  # tensors thinned by a fixed stride for that figure
    distribution: Figure
    depth: Figure  # alpha and stable rank across depth
    first_layer: Figure | None
    first_layer_name: str | None
    distribution_values: tuple[PackedValues, ...] = ()  # per row, the values its violin is drawn from
    first_layer_tiles: str = ""  # the first layer's filters as RGB tiles stacked top to bottom, base64 PNG


@dataclasses.dataclass(frozen=True)
class PackedValues:
    """Values a distribution figure is drawn from: finite ones only, sorted, as 4095 steps
    between ``low`` and ``high``, delta-encoded, zlib, base64 (figures.source.encode_values)."""

    low: float
    high: float
    count: int
    data: str


@dataclasses.dataclass(frozen=True)
class LayerSeparability:
    layer: str
    anchor: str | None  # the layer's row in the Activations table
    features: int  # width of the pooled feature vector
    pooling: str  # how one sample's output became that vector (channel means, class token, token mean)
    ncm_accuracy: float | None  # nearest-class-mean accuracy on held-out halves; None: too few samples
    fisher_ratio: float | None


@dataclasses.dataclass(frozen=True)
class SliceStrip:
    slot: int  # showcase sample number (0-based)
    image: Figure  # one row per layer: where in the image that layer responds, over the input
    levels: tuple[str, ...] = ()  # per strip layer, its response map as levels 0–255, base64 PNG


@dataclasses.dataclass(frozen=True)
class SlicesSection:
    strip_layers: tuple[str, ...]
    strip_candidates: int  # layers with feature maps that could have been shown
    strip_rule: str  # how strip_layers were chosen, in words
    strips: tuple[SliceStrip, ...]
    cka_layers: tuple[str, ...]
    cka_candidates: int  # layers with pooled features
    cka: tuple[tuple[float, ...], ...]  # linear CKA, rows and columns follow cka_layers
    cka_figure: Figure | None
    separability: tuple[LayerSeparability, ...]
    separability_figure: Figure | None
    chance: float
    samples: int
    strip_channels: tuple[int, ...] = ()  # channels of each strip layer, for the strip's labels


@dataclasses.dataclass(frozen=True)
class SaliencyMapResult:
    kind: str  # "input-gradient" | "grad-cam-predicted" | "grad-cam-true"
    target: int  # class whose logit the map explains
    salient_drop: float  # drop in that class's probability with the most salient pixels set to the dataset
    # mean (0 after normalisation), all channels; equal saliency ranked by pixel index (row-major)
    random_drop: float  # the same with as many pixels drawn by numpy default_rng(0): one fixed draw, the same
    # pixels for every map and sample (a single baseline, not an average over draws)
    image: Figure
    cam: tuple[tuple[float, ...], ...] | None  # Grad-CAM at the layer's resolution, unnormalised
    heat: str = ""  # the map as shown (input resolution, 0–255 levels of the heat colour map), base64 PNG


@dataclasses.dataclass(frozen=True)
class SaliencySample:
    slot: int
    position: int
    label: int
    predicted: int
    maps: tuple[SaliencyMapResult, ...]


@dataclasses.dataclass(frozen=True)
class SaliencySection:
    gradcam_layer: str | None  # None: no suitable layer, only input gradients are shown
    gradcam_resolution: tuple[int, int] | None
    gradcam_source: str  # "auto" or "settings"
    note: str  # why Grad-CAM (or all saliency) was not possible; "" when it ran
    mask_fraction: float  # fraction of pixels the deletion check sets to the dataset mean; the most salient
    # first, ties broken by pixel index (row-major); baseline: as many pixels drawn once by numpy's
    # default_rng(0), the same pixels for every map
    samples: tuple[SaliencySample, ...]
    gradcam_reshape: str  # how a token layer's output became maps ("" for feature maps): prefix tokens
    # dropped, patch tokens reshaped to their grid, channels first (pytorch-grad-cam's reshape_transform)


# ---- Compare section -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Change:
    """One number on both sides; ``delta`` is head − base, None when either side is missing."""

    base: float | None
    head: float | None
    delta: float | None

    @classmethod
    def of(cls, base: float | None, head: float | None) -> Change:
        """A non-finite side counts as missing: there is no difference to show."""
        b = base if base is not None and math.isfinite(base) else None
        h = head if head is not None and math.isfinite(head) else None
        return cls(b, h, h - b if b is not None and h is not None else None)


@dataclasses.dataclass(frozen=True)
class CompareSide:
    label: str  # "base" | "head"
    source: str  # "checkpoint" | "report.json"
    checkpoint_name: str | None
    checkpoint_sha256: str | None
    nnviz_report: str  # version that produced this side's numbers
    schema_version: str


@dataclasses.dataclass(frozen=True)
class LayerChange:
    """One layer present on both sides, matched by name."""

    name: str
    anchor: str  # the head's row in the Activations table
    type: str
    mean: Change
    std: Change
    zero_fraction: Change
    dead_channels: Change
    grad_rms: Change
    grad_ratio: Change  # ‖g‖/‖w‖ of the layer's weight tensor; None sides for layers without one
    weight_change: float | None  # ‖W_head − W_base‖ / ‖W_base‖ of the layer's weight; None without both checkpoints
    cka: float | None  # linear CKA between base and head pooled features on the same samples


@dataclasses.dataclass(frozen=True)
class ParamChange:
    name: str
    module_path: str
    shape: tuple[int, ...]
    base_norm: float
    delta_norm: float  # ‖W_head − W_base‖_F
    relative: float | None  # delta_norm / base_norm; None when the base norm is zero


@dataclasses.dataclass(frozen=True)
class PredictionChange:
    position: int  # row in the sample
    index: int  # index in the data source
    label: int
    base: int
    head: int
    kind: str  # "broken" (right in base, wrong in head) | "fixed" (wrong → right) | "other" (wrong in both)
    thumbnail: Figure
    pixels: str = ""  # the sample's RGB pixels as base64 PNG


@dataclasses.dataclass(frozen=True)
class FindingChange:
    status: str  # "new" | "resolved" | "unchanged"
    check: str
    layer: str | None
    base_severity: str | None
    head_severity: str | None
    base_value: float | None
    head_value: float | None
    message: str  # the head's message, or the base's for a resolved finding
    anchor: str | None


@dataclasses.dataclass(frozen=True)
class CompareSection:
    mode: str  # "checkpoints" | "archived-json"
    base: CompareSide
    head: CompareSide
    accuracy: Change
    base_accuracy_interval: Interval
    head_accuracy_interval: Interval
    mcnemar_p: float  # exact two-sided McNemar p on the paired predictions (fixed against broken)
    significant: bool  # mcnemar_p below the compare_p_value threshold
    p_threshold: float
    loss: Change
    per_class_accuracy: tuple[Change, ...]
    layers: tuple[LayerChange, ...]
    base_only_layers: tuple[str, ...]
    head_only_layers: tuple[str, ...]
    params: tuple[ParamChange, ...]  # empty unless both checkpoints were given
    weights_note: str  # why weight change and CKA are missing; "" when they are there
    changed_total: int
    changed_fixed: int  # wrong in base, right in head
    changed_broken: int  # right in base, wrong in head
    changed_other: int  # wrong in both, with a different wrong class
    changed: tuple[PredictionChange, ...]  # the first ones in sample order, at most changed_limit
    changed_limit: int
    findings: tuple[FindingChange, ...]
    findings_new: int
    findings_resolved: int
    findings_unchanged: int
    weight_figure: Figure | None
    cka_figure: Figure | None


# ---- Calibration and robustness section -------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float  # the bin holds confidences in (lower, upper]
    count: int
    mean_confidence: float | None  # None for an empty bin
    accuracy: float | None


@dataclasses.dataclass(frozen=True)
class CalibrationStats:
    """Over the clean sample; definitions in nnviz_report.stats.calibration."""

    count: int
    bins: int  # equal-width confidence bins
    accuracy: float
    mean_confidence: float
    ece: float
    ece_low: float  # percentile bootstrap interval over images
    ece_high: float
    ece_level: float
    bootstrap_resamples: int
    ece_calibrated_reference: float  # mean ECE of a perfectly calibrated model with these confidences and n
    mce: float
    nll: float
    brier: float
    reliability: tuple[ReliabilityBin, ...]


@dataclasses.dataclass(frozen=True)
class CorruptionResult:
    corruption: str  # name in nnviz_report.corruptions.SUITE
    title: str
    severity: int
    parameter: str  # e.g. "σ = 0.08"
    accuracy: float
    accuracy_low: float  # 95 % Wilson interval
    accuracy_high: float
    mean_confidence: float
    ece: float
    predictions: tuple[int, ...]  # per image evaluated, in the order of positions (compare pairs them with the base)
    # The probes' subset design (nnviz_report.probes): each cell evaluates some of the sample's images.
    # None in archives of schema 1.1, which evaluated every image in every cell, in sample order.
    positions: tuple[int, ...] | None = None  # rows of the sample evaluated in this cell
    count: int | None = None  # images evaluated in this cell: the n of its accuracy, interval and ECE
    clean_accuracy: float | None = None  # accuracy of the same images without corruption


@dataclasses.dataclass(frozen=True)
class CorruptionSummary:
    corruption: str
    title: str
    family: str
    mean_accuracy: float  # over the severities run
    relative_drop: float  # 1 − mean_accuracy / clean accuracy
    mean_ece: float
    accuracy_at_check: float  # at the checked severity (3)
    drop_at_check: float  # clean accuracy of the same images − accuracy_at_check, in accuracy points
    clean_at_check: float | None = None  # clean accuracy of the images evaluated at the checked severity
    count_at_check: int | None = None  # how many images that is


@dataclasses.dataclass(frozen=True)
class CorruptionThumbnail:
    corruption: str  # "clean" for the unaltered image
    title: str
    parameter: str
    image: Figure
    pixels: str = ""  # the corrupted sample's RGB pixels as base64 PNG


@dataclasses.dataclass(frozen=True)
class RobustnessSection:
    calibration: CalibrationStats
    reliability_figure: Figure
    severities: tuple[int, ...]
    check_severity: int
    seed: int
    clean_accuracy: float
    mean_corruption_accuracy: float  # mean over the corruption × severity cells of their accuracy
    relative_drop: float  # 1 − mean_corruption_accuracy / paired_clean_accuracy
    results: tuple[CorruptionResult, ...]
    summaries: tuple[CorruptionSummary, ...]
    accuracy_figure: Figure
    thumbnail_position: int  # row in the sample
    thumbnail_index: int  # index in the data source
    thumbnails: tuple[CorruptionThumbnail, ...]
    # The subset design (nnviz_report.probes); None in archives of schema 1.1 (every image in every cell).
    paired_clean_accuracy: float | None = None  # mean over the cells of the clean accuracy of their images
    cells: int | None = None  # corruption × severity cells in the suite
    cells_per_image: int | None = None  # of them, how many each image is evaluated under
    severities_paired: bool | None = None  # each corruption's severities evaluated on the same images
    evaluations: int | None = None  # images evaluated over all cells: cells_per_image × the sample
    cell_count_min: int | None = None  # the smallest and largest n of a cell
    cell_count_max: int | None = None


@dataclasses.dataclass(frozen=True)
class CorruptionChange:
    corruption: str
    title: str
    accuracy: Change  # mean over severities
    ece: Change  # mean over severities


@dataclasses.dataclass(frozen=True)
class RobustnessComparison:
    ece: Change
    mce: Change
    nll: Change
    brier: Change
    mean_corruption_accuracy: Change
    corruptions: tuple[CorruptionChange, ...]
    pairs: int  # (image, corruption, severity) predictions paired between the sides
    base_only_right: int
    head_only_right: int
    p_value: float | None  # exact McNemar over the pairs; None when the base has no per-image predictions
