"""The one place that knows every stage: load → capture → statistics → checks → figures →
report model → files. Everything is written into a temporary folder beside the output and
moved into place only when complete (see output.py), so a failed or interrupted run leaves
the previous report untouched and no partial file behind."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import platform
import re
import sys
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .capture import CaptureResult, choose_showcase, predictions_from_logits, run_capture
from .checks import CheckInputs, Thresholds, load_thresholds, run_checks, worst_severity
from .config import ReportSettings, Severity
from .data import SampleSet, load_sample, normalise
from .errors import ConfigError
from .figures.common import image_pixels
from .figures.draw import showcase_thumbnail
from .figures.source import encode_pixels
from .models import LoadedModel, load_model
from .output import FILE_NAMES, prepare_output_dir, write_outputs  # noqa: F401 (compare imports them from here)
from .probes import assign_cells, run_probes
from .progress import Progress
from .report_model import (
    SCHEMA_VERSION,
    Environment,
    Finding,
    LayerStats,
    ModelInfo,
    ParamStats,
    Performance,
    Report,
    RobustnessSection,
    SaliencySection,
    SampleInfo,
    ShowcaseSample,
    Verdict,
    WeightsSection,
)
from .sections.activations import activations_section, layer_stats
from .sections.anchors import Anchors
from .sections.flow import flow_section
from .sections.gradients import gradients_section, param_stats
from .sections.robustness import robustness_section
from .sections.saliency import saliency_section
from .sections.slices import slices_section
from .sections.summary import performance, summary_section
from .sections.weights import weight_tensors, weights_section
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
    progress = progress or Progress(enabled=settings.progress)
    out_dir = prepare_output_dir(settings.out_dir, settings.formats)
    device = resolve_device(settings.device)
    thresholds = load_thresholds(settings.config_file, min_accuracy=settings.min_accuracy)
    torch.manual_seed(settings.seed)

    progress.stage("loading data")
    sample = load_sample(settings.data, per_class=settings.per_class, data_root=settings.data_root,
                         download=settings.download)
    progress.stage("loading model")
    loaded = load_model(settings.model, weights=settings.weights, trust_checkpoint=settings.trust_checkpoint)

    report = build_report(loaded, sample, settings, thresholds, device, progress)
    paths = write_outputs(report, settings, out_dir, progress)
    progress.close()  # ends the last stage (and its timing); the CLI's closing lines follow
    return ReportResult(report, paths, exit_code_for(report.findings, settings.fail_on))


def capture_sample(loaded: LoadedModel, sample: SampleSet, settings: ReportSettings, device: torch.device,
                   progress: Progress, *, label: str = "capture") -> CaptureResult:
    """The one forward+backward pass over the sample; compare mode runs it once per checkpoint."""
    inputs = normalise(sample.images)

    def showcase_from(logits: np.ndarray) -> tuple[int, ...]:
        # From the capture's own logits: a separate prediction pass first was a whole extra forward.
        predicted, confidence = predictions_from_logits(logits)
        return choose_showcase(sample.labels, settings.showcase, predictions=predicted, confidences=confidence)

    with progress.bar(label, total=sample.count, unit="img") as advance:
        return run_capture(loaded.module, inputs, sample.labels, batch_size=settings.batch_size,
                           device=device, showcase_positions=showcase_from, progress=advance)


@dataclasses.dataclass(frozen=True)
class Statistics:
    performance: Performance
    layers: list[LayerStats]
    params: list[ParamStats]
    findings: list[Finding]
    verdict: Verdict


def robustness_probe(loaded: LoadedModel, sample: SampleSet, settings: ReportSettings, device: torch.device,
                     progress: Progress, capture: CaptureResult) -> RobustnessSection:
    """Calibration of the captured logits, and the corruption suite through the model (forward only)."""
    cells = assign_cells(sample.labels.tolist())
    with progress.bar("robustness probes", total=sum(len(c.positions) for c in cells), unit="img") as advance:
        runs = run_probes(loaded.module, sample.images, sample.indices, cells, batch_size=settings.batch_size,
                          device=device, seed=settings.seed, progress=advance)
    position = capture.showcase_positions[0] if capture.showcase_positions else 0
    return robustness_section(capture.logits, sample.labels.numpy(), runs, sample.images.numpy(), sample.indices,
                              thumbnail_position=position, seed=settings.seed)


def statistics(capture: CaptureResult, sample: SampleSet, thresholds: Thresholds, anchors: Anchors, *,
               weights: WeightsSection | None = None, saliency: SaliencySection | None = None,
               robustness: RobustnessSection | None = None) -> Statistics:
    """Plain numbers and the checklist from a capture, each row marked with its worst finding.
    Without ``weights``, ``saliency`` or ``robustness`` (compare's base side) the checks on them are off."""
    perf = performance(capture.logits, capture.losses, sample.labels.numpy())
    layers = layer_stats(capture.layers, anchors)
    params = param_stats(capture.params, anchors)
    checklist = run_checks(CheckInputs(layers, params, perf, sample.class_names, weights, saliency,
                                       robustness=robustness), thresholds)
    findings = list(checklist.findings)
    layers = [dataclasses.replace(row, severity=_worst_for(findings, row.name, row.module_path)) for row in layers]
    params = [dataclasses.replace(p, severity=_worst_for(findings, None, p.owner)) for p in params]
    return Statistics(perf, layers, params, findings, checklist.verdict)


def build_report(loaded: LoadedModel, sample: SampleSet, settings: ReportSettings, thresholds: Thresholds,
                 device: torch.device, progress: Progress, *, capture: CaptureResult | None = None) -> Report:
    """``capture``: a capture of this model and sample already run (compare mode reuses it)."""
    if capture is None:
        capture = capture_sample(loaded, sample, settings, device, progress)
    robustness = robustness_probe(loaded, sample, settings, device, progress, capture)

    # Weights, saliency and the probes come before the checks, which judge them too.
    progress.stage("figures")
    anchors = Anchors()
    module = loaded.module
    positions = list(capture.showcase_positions)
    showcase_images = sample.images[positions].numpy()
    weights = weights_section(weight_tensors(module), anchors, capture.first_conv)
    saliency = None
    if positions:
        progress.stage("saliency")
        saliency = saliency_section(
            module, normalise(sample.images[positions]), showcase_images, sample.labels[positions],
            torch.from_numpy(capture.logits[positions].argmax(axis=1)), positions=positions,
            layers=capture.layers, gradcam_layer=settings.gradcam_layer, device=device)

    progress.stage("statistics and checks")
    stats = statistics(capture, sample, thresholds, anchors, weights=weights, saliency=saliency,
                       robustness=robustness)
    perf, layers, params, findings = stats.performance, stats.layers, stats.params, stats.findings
    slices = slices_section(capture.layers, sample.labels.numpy(), showcase_images, anchors)
    flow = None
    if not isinstance(module, torch.jit.ScriptModule):  # TorchScript has no Python graph to trace
        progress.stage("flow diagram")
        example = normalise(sample.images[:2]).to(next(module.parameters(), torch.empty(0)).device)
        flow = flow_section(module, example, layers, params, anchors, direction=settings.graph_direction,
                            fold=settings.graph_fold, group_depth=settings.graph_group_depth)
    progress.stage("tables")  # the summary, activation and gradient sections, built below
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
        environment=environment(settings, device),
        settings=tuple(settings.describe().items()),
        performance=perf,
        findings=tuple(findings),
        verdict=stats.verdict,
        showcase=showcase(sample, capture),
        summary=summary_section(perf, sample.class_names),
        activations=activations_section(capture.layers, layers),
        gradients=gradients_section(params, capture.first_conv, thresholds),  # figures: figures.draw
        weights=weights,
        slices=slices,
        saliency=saliency,
        flow=flow,
        robustness=robustness,
        weight_sketches=sketch_weights(module.named_parameters()),
    )


def _worst_for(findings: list[Finding], layer: str | None, module_path: str) -> str:
    relevant = [f for f in findings if f.layer is not None and f.layer in (layer, module_path)]
    return worst_severity(relevant)


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


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available here; use --device cpu")
    return torch.device(name)


def exit_code_for(findings: tuple[Finding, ...] | list[Finding], fail_on: Severity | None) -> int:
    if fail_on is None:
        return 0
    return 1 if any(Severity.rank_of(f.severity) >= fail_on.rank for f in findings) else 0
