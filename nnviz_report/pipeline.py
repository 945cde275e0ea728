"""The one skeleton every command runs: prepare (settings → output folder, device, thresholds,
sample, models) → analyse (capture → statistics → checks, per checkpoint) → build (the report
model) → publish (files). ``report`` analyses one checkpoint; ``compare`` analyses two, or one
and an archive, and adds the comparison (compare.py) before publishing. Files are written into a
temporary folder beside the output and moved into place only when complete (see output.py), so
a failed or interrupted run leaves the previous report untouched and no partial file behind."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .background import BackgroundJob, WarmJob
from .capture import CaptureResult, choose_showcase, first_convolution, predictions_from_logits, run_capture
from .checks import CheckInputs, Thresholds, load_thresholds, run_checks
from .config import ReportSettings, Severity
from .data import SampleSet, load_sample, normalise
from .errors import ConfigError
from .figures.common import image_pixels
from .figures.draw import showcase_thumbnail
from .figures.source import encode_pixels
from .models import LoadedModel, load_model
from .output import pdf_renderer, prepare_output_dir, write_outputs
from .probes import assign_cells, run_probes
from .progress import Progress
from .report_model import (
    SCHEMA_VERSION,
    Environment,
    Finding,
    LayerMeasurements,
    LayerStats,
    ModelInfo,
    ParamMeasurements,
    ParamStats,
    Performance,
    Report,
    RobustnessSection,
    SaliencySection,
    SampleInfo,
    ShowcaseSample,
    SlicesSection,
    SummarySection,
    Verdict,
    WeightsSection,
)
from .sections.activations import (
    ActivationCharts,
    activation_charts,
    activations_section,
    layer_measurements,
    layer_stats,
)
from .sections.anchors import Anchors
from .sections.flow import flow_section
from .sections.gradients import GradientCharts, gradient_charts, gradients_section, param_measurements, param_stats
from .sections.robustness import robustness_numbers, with_robustness_figures
from .sections.saliency import saliency_section
from .sections.slices import slices_numbers, with_slices_figures
from .sections.summary import performance, summary_section
from .sections.weights import weight_anchors, weight_tensors, weights_of
from .version import __version__
from .weight_sketch import sketch_weights

NORMALISATION = (
    "pixels / 255, then per channel (x − mean) / std with CIFAR-10's mean (0.4914, 0.4822, 0.4465) "
    "and std (0.2470, 0.2435, 0.2616)"
)


@dataclasses.dataclass(frozen=True)
class ReportResult:
    report: Report
    paths: dict[str, Path]
    exit_code: int  # 0, or 1 when a finding reaches settings.fail_on


def generate_report(**options: object) -> ReportResult:
    """Build a report; options are the fields of :class:`ReportSettings` (keyword-only)."""
    return run(ReportSettings(**options))  # type: ignore[arg-type]


def run(settings: ReportSettings, *, progress: Progress | None = None) -> ReportResult:
    """``progress``: the CLI's, already showing its first line; by default one from settings."""
    # The PDF's renderer starts first, in a child that imports WeasyPrint while the model loads.
    with pdf_renderer(settings) as renderer, contextlib.ExitStack() as children:
        prepared = prepare(settings, progress)
        report = build_report(prepared, analyse(prepared, prepared.models[0], children=children))
        return publish(prepared, report, pdf_renderer=renderer)


# ---- prepare: settings → output folder, device, thresholds, sample, models ---------------------

@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything a command's analysis starts from, checked and loaded once."""

    settings: ReportSettings
    progress: Progress
    out_dir: Path
    device: torch.device
    thresholds: Thresholds
    sample: SampleSet
    models: tuple[LoadedModel, ...]  # settings.weights's model first, then one per extra checkpoint


def prepare(settings: ReportSettings, progress: Progress | None = None, *,
            extra_weights: Sequence[Path] = ()) -> Prepared:
    """Cheap checks first (output folder, device, thresholds), so that bad input fails before any
    data or model is loaded; then the sample and the models: ``settings.weights`` and, for compare,
    ``extra_weights`` (the same architecture with other checkpoints)."""
    progress = progress or Progress(enabled=settings.progress)
    out_dir = prepare_output_dir(settings.out_dir, settings.formats)
    device = resolve_device(settings.device)
    thresholds = load_thresholds(settings.config_file, min_accuracy=settings.min_accuracy)
    progress.stage("loading data")
    sample = load_sample(settings.data, per_class=settings.per_class, data_root=settings.data_root,
                         download=settings.download)
    progress.stage("loading models" if extra_weights else "loading model")
    models = tuple(_load(settings, weights) for weights in (settings.weights, *extra_weights))
    return Prepared(settings, progress, out_dir, device, thresholds, sample, models)


def _load(settings: ReportSettings, weights: Path | None) -> LoadedModel:
    # Seeded before each model: one without weights gets the same random initial weights on every route.
    torch.manual_seed(settings.seed)
    return load_model(settings.model, weights=weights, trust_checkpoint=settings.trust_checkpoint)


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available here; use --device cpu")
    device = torch.device(name)
    if device.type == "cuda":
        deterministic_cuda()
    return device


def deterministic_cuda() -> None:
    """Same inputs, same bytes on a GPU too. By default cuDNN picks its kernels by timing them and
    several CUDA kernels add with atomics, so two runs of one model differ in the last digits (seen
    on an H200: report.json differed between two runs of torchvision resnet18 while every rounded
    number in the HTML agreed). cuBLAS is deterministic only with a fixed workspace, which it reads
    when its first handle is made, before any model runs here. And full float32: cuDNN's
    convolutions default to TF32 (a 10-bit mantissa) on Ampere and later GPUs, which moved some
    of resnet18's gradient statistics by 1e-4 to 4 % against the same run in float32."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


# ---- analyse: capture → statistics → checks ------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Analysis:
    """One checkpoint over the sample: what its report is built from and what compare compares."""

    loaded: LoadedModel
    capture: CaptureResult
    anchors: Anchors  # the in-page anchors handed out so far; the report's later sections add theirs
    performance: Performance
    layers: tuple[LayerStats, ...]
    params: tuple[ParamStats, ...]
    weights: WeightsSection | None  # None: no weight matrix or kernel
    saliency: SaliencySection | None  # None: no showcase sample, or not asked for
    robustness: RobustnessSection  # its charts not drawn yet: build_report draws them
    findings: tuple[Finding, ...]  # worst first
    verdict: Verdict
    # The summary, activation, gradient and slices charts, drawn by a child since the capture (None:
    # drawn when the report is built; compare's base side, whose charts are not shown, never draws them).
    charts: Callable[[], Charts] | None = None


def analyse(prepared: Prepared, loaded: LoadedModel, *, side: str = "", saliency: bool = True,
            children: contextlib.ExitStack | None = None) -> Analysis:
    """``side``: "head" or "base" in compare mode, added to the progress lines. ``saliency=False``
    leaves the saliency maps (and so their check) out: compare's base, whose maps are not shown.
    ``children``: where the child process that draws the charts during the probes is kept until the
    report is built (none without it)."""
    settings, progress, sample = prepared.settings, prepared.progress, prepared.sample
    suffix = f" ({side})" if side else ""
    torch.manual_seed(settings.seed)  # each side starts from the same state, as a plain report run does
    # Weights, saliency and the probes come before the checks, which judge them too. The weights
    # section needs only the weights: a child process computes its numbers and draws its charts
    # while the model runs (background.py); the summary, activation, gradient and slices charts
    # need only the capture's numbers (no verdict is drawn in a chart): another child draws them
    # while the probes and the saliency run. Anchors are handed out here, in this process, in the
    # same order as without children.
    progress.stage(f"weight statistics{suffix}")
    anchors = Anchors()
    tensors = weight_tensors(loaded.module)
    anchor_of = weight_anchors(tensors, anchors)
    first_conv = first_convolution(loaded.module)
    charts = None
    with BackgroundJob(lambda: weights_of(tensors, anchor_of, first_conv)) as weights_job:
        capture = capture_sample(loaded, sample, settings, prepared.device, progress, label=f"capture{suffix}")
        measured = measure(capture, sample, anchors)
        if children is not None:
            progress.stage("slices")  # their numbers here (CKA runs torch), their figures in the child
            charts = charts_of(prepared, capture, measured, anchors, children)
        robustness = robustness_probe(loaded, sample, settings, prepared.device, progress, capture)
        maps = saliency_maps(prepared, loaded, capture) if saliency else None
        progress.stage(f"figures{suffix}")  # what is left of the weights section (numbers and charts)
        weights = weights_job.result()

    progress.stage(f"statistics and checks{suffix}")
    stats = statistics(capture, sample, prepared.thresholds, anchors, weights=weights, saliency=maps,
                       robustness=robustness, measured=measured)
    return Analysis(loaded, capture, anchors, stats.performance, tuple(stats.layers), tuple(stats.params), weights,
                    maps, robustness, tuple(stats.findings), stats.verdict, charts)


def saliency_maps(prepared: Prepared, loaded: LoadedModel, capture: CaptureResult) -> SaliencySection | None:
    """Input gradients and Grad-CAM of the showcase samples (None without any)."""
    positions = list(capture.showcase_positions)
    if not positions:
        return None
    sample = prepared.sample
    prepared.progress.stage("saliency")
    return saliency_section(
        loaded.module, normalise(sample.images[positions]), sample.images[positions].numpy(),
        sample.labels[positions], torch.from_numpy(capture.logits[positions].argmax(axis=1)),
        positions=positions, layers=capture.layers, gradcam_layer=prepared.settings.gradcam_layer,
        device=prepared.device)


def capture_sample(loaded: LoadedModel, sample: SampleSet, settings: ReportSettings, device: torch.device,
                   progress: Progress, *, label: str = "capture") -> CaptureResult:
    """The one forward+backward pass over the sample (its pixels normalised batch by batch)."""

    def showcase_from(logits: np.ndarray) -> tuple[int, ...]:
        # From the capture's own logits: a separate prediction pass first was a whole extra forward.
        predicted, confidence = predictions_from_logits(logits)
        return choose_showcase(sample.labels, settings.showcase, predictions=predicted, confidences=confidence)

    with progress.bar(label, total=sample.count, unit="img") as advance:
        return run_capture(loaded.module, sample.images, sample.labels, batch_size=settings.batch_size,
                           device=device, showcase_positions=showcase_from, progress=advance)


def robustness_probe(loaded: LoadedModel, sample: SampleSet, settings: ReportSettings, device: torch.device,
                     progress: Progress, capture: CaptureResult) -> RobustnessSection:
    """Calibration of the captured logits, and the corruption suite through the model (forward only)."""
    cells = assign_cells(sample.labels.tolist())
    with progress.bar("robustness probes", total=sum(len(c.positions) for c in cells), unit="img") as advance:
        runs = run_probes(loaded.module, sample.images, sample.indices, cells, batch_size=settings.batch_size,
                          device=device, seed=settings.seed, progress=advance)
    position = capture.showcase_positions[0] if capture.showcase_positions else 0
    return robustness_numbers(capture.logits, sample.labels.numpy(), runs, sample.images.numpy(), sample.indices,
                              thumbnail_position=position, seed=settings.seed)


@dataclasses.dataclass(frozen=True)
class Measured:
    """The capture's numbers as the checks read them, before any check has run."""

    performance: Performance
    layers: list[LayerMeasurements]
    params: list[ParamMeasurements]


def measure(capture: CaptureResult, sample: SampleSet, anchors: Anchors) -> Measured:
    return Measured(performance(capture.logits, capture.losses, sample.labels.numpy()),
                    layer_measurements(capture.layers, anchors), param_measurements(capture.params, anchors))


Charts = tuple[SummarySection, ActivationCharts, GradientCharts, SlicesSection | None]


def charts_of(prepared: Prepared, capture: CaptureResult, measured: Measured, anchors: Anchors,
              children: contextlib.ExitStack | None) -> Callable[[], Charts]:
    """The summary, activation, gradient and slices charts, to be collected by calling the result:
    the slices' numbers now, the drawing (plain arrays in, figures out, no torch) in a child kept in
    ``children``, or when collected without them."""
    sample = prepared.sample
    showcase_images = sample.images[list(capture.showcase_positions)].numpy()
    slices = slices_numbers(capture.layers, sample.labels.numpy(), showcase_images, anchors)

    def draw() -> Charts:
        return (summary_section(measured.performance, sample.class_names),
                activation_charts(capture.layers, measured.layers),
                gradient_charts(measured.params, capture.first_conv, prepared.thresholds),
                with_slices_figures(slices, showcase_images) if slices is not None else None)

    return draw if children is None else children.enter_context(BackgroundJob(draw)).result


@dataclasses.dataclass(frozen=True)
class Statistics:
    performance: Performance
    layers: list[LayerStats]
    params: list[ParamStats]
    findings: list[Finding]
    verdict: Verdict


def statistics(capture: CaptureResult, sample: SampleSet, thresholds: Thresholds, anchors: Anchors, *,
               weights: WeightsSection | None = None, saliency: SaliencySection | None = None,
               robustness: RobustnessSection | None = None, measured: Measured | None = None) -> Statistics:
    """Plain numbers (``measured``, or measured now), the checklist over them, then the table rows,
    each with its worst finding. Without ``weights``, ``saliency`` or ``robustness`` the checks on
    them are off."""
    measured = measured or measure(capture, sample, anchors)
    perf, layers, params = measured.performance, measured.layers, measured.params
    checklist = run_checks(CheckInputs(layers, params, perf, sample.class_names, weights, saliency,
                                       robustness=robustness), thresholds)
    findings = list(checklist.findings)
    return Statistics(perf, layer_stats(layers, findings), param_stats(params, findings), findings, checklist.verdict)


# ---- build: the report model, and publish: the files --------------------------------------------

def build_report(prepared: Prepared, analysis: Analysis) -> Report:
    """The report model of one analysed checkpoint: the analysis and the sections drawn from it."""
    settings, progress, sample = prepared.settings, prepared.progress, prepared.sample
    loaded, capture, anchors = analysis.loaded, analysis.capture, analysis.anchors
    module = loaded.module
    # Without a child started by analyse (analyse without children), the charts are drawn here.
    charts = analysis.charts or charts_of(
        prepared, capture, Measured(analysis.performance, list(analysis.layers), list(analysis.params)), anchors, None)
    # The robustness charts are charts of plain arrays too: a child process draws them while this
    # one builds the flow diagram and the weight sketches (background.py; those hand out anchors
    # or run torch), and collects the other charts, drawn since the capture.
    with BackgroundJob(lambda: with_robustness_figures(analysis.robustness)) as drawing:
        flow = None
        if not isinstance(module, torch.jit.ScriptModule):  # TorchScript has no Python graph to trace
            progress.stage("flow diagram")
            example = normalise(sample.images[:2]).to(next(module.parameters(), torch.empty(0)).device)
            flow = flow_section(module, example, analysis.layers, analysis.params, anchors,
                                direction=settings.graph_direction, fold=settings.graph_fold,
                                group_depth=settings.graph_group_depth)
        progress.stage("tables")  # the weight sketches, and what is left of the charts
        sketches = sketch_weights(module.named_parameters())
        summary, activation_figures, gradient_figures, slices = charts()
        robustness = drawing.result()
    activations = activations_section(analysis.layers, activation_figures)
    gradients = gradients_section(analysis.params, gradient_figures)  # figures: figures.draw
    return Report(
        schema_version=SCHEMA_VERSION,
        title=f"nnviz_report · {settings.model}",
        model=ModelInfo(
            spec=settings.model, class_name=loaded.class_name,
            parameters=sum(p.numel() for p in module.parameters()),
            trainable_parameters=sum(p.numel() for p in module.parameters() if p.requires_grad),
            checkpoint_name=loaded.checkpoint_name, checkpoint_sha256=loaded.checkpoint_sha256,
        ),
        sample=SampleInfo(sample.source, sample.per_class, sample.count, sample.fingerprint, sample.class_names,
                          NORMALISATION, sample.indices),
        environment=environment(settings, prepared.device),
        settings=tuple(settings.describe().items()),
        performance=analysis.performance,
        findings=analysis.findings,
        verdict=analysis.verdict,
        showcase=showcase(sample, capture),
        summary=summary,
        activations=activations,
        gradients=gradients,
        weights=analysis.weights,
        slices=slices,
        saliency=analysis.saliency,
        flow=flow,
        robustness=robustness,
        weight_sketches=sketches,
    )


def publish(prepared: Prepared, report: Report, *, pdf_renderer: WarmJob[Report, bytes] | None = None) -> ReportResult:
    """Every requested file, staged and moved into place together; the exit code of the gate.
    ``pdf_renderer``: the child :func:`output.pdf_renderer` started when the command began."""
    paths = write_outputs(report, prepared.settings, prepared.out_dir, prepared.progress, pdf_renderer=pdf_renderer)
    prepared.progress.close()  # ends the last stage (and its timing); the CLI's closing lines follow
    return ReportResult(report, paths, exit_code_for(report.findings, prepared.settings.fail_on))


def showcase(sample: SampleSet, capture: CaptureResult) -> tuple[ShowcaseSample, ...]:
    logits = capture.logits
    items = []
    for slot, position in enumerate(capture.showcase_positions):
        row = logits[position].astype(np.float64)
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        pixels = image_pixels(sample.images[position].numpy())
        thumb = showcase_thumbnail(pixels, slot, sample.class_names[int(sample.labels[position])])
        items.append(ShowcaseSample(position, sample.indices[position], int(sample.labels[position]),
                                    int(probs.argmax()), float(probs.max()), thumb, encode_pixels(pixels)))
    return tuple(items)


def environment(settings: ReportSettings, device: torch.device) -> Environment:
    device_name = str(device)
    if device.type == "cuda":
        device_name = f"{device} ({torch.cuda.get_device_name(device)})"
    return Environment(__version__, torch.__version__, torchvision_version(), platform.python_version(),
                       device_name, settings.seed)


def torchvision_version() -> str:
    """torchvision's ``__version__`` (local tag included, e.g. "+cpu", which the distribution's
    metadata lacks), read from its version.py when it is not loaded: importing torchvision costs
    over a second (its ops import torch._dynamo), for a report on a model that never uses it."""
    loaded = sys.modules.get("torchvision")
    if loaded is not None:
        return str(loaded.__version__)
    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.origin is not None:
        source = Path(spec.origin).with_name("version.py")
        if source.is_file():
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", source.read_text(), re.MULTILINE)
            if found:
                return found.group(1)
    return str(importlib.import_module("torchvision").__version__)


def exit_code_for(findings: tuple[Finding, ...] | list[Finding], fail_on: Severity | None) -> int:
    if fail_on is None:
        return 0
    return 1 if any(Severity.rank_of(f.severity) >= fail_on.rank for f in findings) else 0
