"""The report model's later sections: weights, slices, saliency, compare, calibration and
robustness. Frozen dataclasses like the rest of the model (see report_model.py), which
re-exports every name here."""

from __future__ import annotations

import dataclasses
import math

from .report_base import Figure, Interval

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
