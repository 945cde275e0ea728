"""The one place that knows every stage: load → capture → statistics → checks → figures →
report model → files. Everything is written into a temporary folder beside the output and
moved into place only when complete, so a failed or interrupted run leaves the previous
report untouched and no partial file behind."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torchvision

from . import __version__
from .capture import CaptureResult, choose_showcase, run_capture
from .checks import SEVERITY_RANK, Thresholds, load_thresholds, run_checks, worst_severity
from .config import OutputFormat, ReportSettings, Severity
from .data import SampleSet, load_sample, normalise
from .errors import ConfigError, OutputError
from .figures.common import image_pixels, png_figure
from .models import LoadedModel, load_model
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
    SampleInfo,
    ShowcaseSample,
)
from .sections.activations import activations_section, layer_stats
from .sections.anchors import Anchors
from .sections.flow import flow_section
from .sections.gradients import gradients_section, param_stats
from .sections.saliency import saliency_section
from .sections.slices import slices_section
from .sections.summary import performance, summary_section
from .sections.weights import weight_tensors, weights_section

NORMALISATION = (
    "pixels / 255, then per channel (x − mean) / std with CIFAR-10's mean (0.4914, 0.4822, 0.4465) "
    "and std (0.2470, 0.2435, 0.2616)"
)
FILE_NAMES = {
    OutputFormat.HTML: "report.html",
    OutputFormat.PDF: "report.pdf",
    OutputFormat.JSON: "report.json",
    OutputFormat.MARKDOWN: "report.md",
}


@dataclasses.dataclass(frozen=True)
class ReportResult:
    report: Report
    paths: dict[str, Path]
    exit_code: int  # 0, or 1 when a finding reaches settings.fail_on


def generate_report(**options: object) -> ReportResult:
    """Build a report; options are the fields of :class:`ReportSettings` (keyword-only)."""
    return run(ReportSettings(**options))  # type: ignore[arg-type]


def run(settings: ReportSettings) -> ReportResult:
    progress = Progress(enabled=settings.progress)
    out_dir = prepare_output_dir(settings.out_dir)
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
    progress.done(f"wrote {', '.join(p.name for p in paths.values())} to {out_dir}")
    return ReportResult(report, paths, exit_code_for(report.findings, settings.fail_on))


def capture_sample(loaded: LoadedModel, sample: SampleSet, settings: ReportSettings, device: torch.device,
                   progress: Progress) -> CaptureResult:
    """The one forward+backward pass over the sample; compare mode runs it once per checkpoint."""
    showcase_positions = choose_showcase(sample.labels, settings.showcase)
    with progress.bar("capture", total=sample.count, unit="img") as advance:
        return run_capture(loaded.module, normalise(sample.images), sample.labels, batch_size=settings.batch_size,
                           device=device, showcase_positions=showcase_positions, progress=advance)


@dataclasses.dataclass(frozen=True)
class Statistics:
    performance: Performance
    layers: list[LayerStats]
    params: list[ParamStats]
    findings: list[Finding]


def statistics(capture: CaptureResult, sample: SampleSet, thresholds: Thresholds, anchors: Anchors) -> Statistics:
    """Plain numbers and findings from a capture, each row marked with its worst finding."""
    perf = performance(capture.logits, capture.losses, sample.labels.numpy())
    layers = layer_stats(capture.layers, anchors)
    params = param_stats(capture.params, anchors)
    findings = run_checks(layers, params, perf.accuracy, thresholds)
    layers = [dataclasses.replace(row, severity=_worst_for(findings, row.name, row.module_path)) for row in layers]
    params = [dataclasses.replace(p, severity=_worst_for(findings, None, p.module_path or p.name)) for p in params]
    return Statistics(perf, layers, params, findings)


def build_report(loaded: LoadedModel, sample: SampleSet, settings: ReportSettings, thresholds: Thresholds,
                 device: torch.device, progress: Progress, *, capture: CaptureResult | None = None) -> Report:
    """``capture``: a capture of this model and sample already run (compare mode reuses it)."""
    if capture is None:
        capture = capture_sample(loaded, sample, settings, device, progress)

    progress.stage("statistics and checks")
    anchors = Anchors()
    stats = statistics(capture, sample, thresholds, anchors)
    perf, layers, params, findings = stats.performance, stats.layers, stats.params, stats.findings

    progress.stage("figures")
    module = loaded.module
    positions = list(capture.showcase_positions)
    showcase_images = sample.images[positions].numpy()
    weights = weights_section(weight_tensors(module), anchors, capture.first_conv)
    slices = slices_section(capture.layers, sample.labels.numpy(), showcase_images, anchors)
    saliency = None
    if positions:
        progress.stage("saliency")
        saliency = saliency_section(
            module, normalise(sample.images[positions]), showcase_images, sample.labels[positions],
            torch.from_numpy(capture.logits[positions].argmax(axis=1)), positions=positions,
            layers=capture.layers, gradcam_layer=settings.gradcam_layer, device=device)
    progress.stage("flow diagram")
    flow = None
    if not isinstance(module, torch.jit.ScriptModule):  # TorchScript has no Python graph to trace
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
        showcase=showcase(sample, capture),
        summary=summary_section(perf, sample.class_names),
        activations=activations_section(capture.layers, layers),
        gradients=gradients_section(params, capture.first_conv, thresholds),
        weights=weights,
        slices=slices,
        saliency=saliency,
        flow=flow,
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
        thumb = png_figure(image_pixels(sample.images[position].numpy()), f"showcase-{slot}",
                           f"Showcase sample {slot + 1}: a {sample.class_names[int(sample.labels[position])]}", scale=3)
        items.append(ShowcaseSample(position, sample.indices[position], int(sample.labels[position]),
                                    int(probs.argmax()), float(probs.max()), thumb))
    return tuple(items)


def environment(settings: ReportSettings, device: torch.device) -> Environment:
    device_name = str(device)
    if device.type == "cuda":
        device_name = f"{device} ({torch.cuda.get_device_name(device)})"
    return Environment(__version__, torch.__version__, torchvision.__version__, platform.python_version(),
                       device_name, settings.seed)


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available here; use --device cpu")
    return torch.device(name)


def exit_code_for(findings: tuple[Finding, ...] | list[Finding], fail_on: Severity | None) -> int:
    if fail_on is None:
        return 0
    return 1 if any(SEVERITY_RANK[f.severity] >= fail_on.rank for f in findings) else 0


# ---- output ----------------------------------------------------------------------------------

def prepare_output_dir(out_dir: Path) -> Path:
    """Fail before any work is done if the report could not be written there."""
    out_dir = out_dir.expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output path {out_dir} is a file; pass a folder with -o")
    parent = out_dir if out_dir.exists() else _existing_parent(out_dir)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {parent}; choose another folder with -o")
    return out_dir


def _existing_parent(path: Path) -> Path:
    for candidate in path.parents:
        if candidate.exists():
            if not candidate.is_dir():
                raise OutputError(
                    f"output path {path} lies under {candidate}, which is a file; choose another folder with -o"
                )
            return candidate
    return Path("/")


def write_outputs(report: Report, settings: ReportSettings, out_dir: Path, progress: Progress) -> dict[str, Path]:
    from .render.html import render_html
    from .render.json_record import render_json
    from .render.markdown import render_markdown

    with staging_dir(out_dir) as staging:
        written: dict[str, Path] = {}
        html = None
        if OutputFormat.HTML in settings.formats or OutputFormat.PDF in settings.formats:
            progress.stage("rendering HTML")
            html = render_html(report, template_dir=settings.template_dir)
        for fmt in settings.formats:
            target = staging / FILE_NAMES[fmt]
            if fmt is OutputFormat.HTML:
                assert html is not None
                target.write_text(html, encoding="utf-8")
            elif fmt is OutputFormat.PDF:
                from .render.pdf import render_pdf

                progress.stage("rendering PDF")
                assert html is not None
                target.write_bytes(render_pdf(html))
            elif fmt is OutputFormat.JSON:
                progress.stage("rendering JSON")
                target.write_text(render_json(report), encoding="utf-8")
            elif fmt is OutputFormat.MARKDOWN:
                progress.stage("rendering Markdown")
                target.write_text(render_markdown(report, template_dir=settings.template_dir), encoding="utf-8")
            written[fmt.value] = out_dir / FILE_NAMES[fmt]
        publish(staging, out_dir)
    return written


@contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A temporary folder on the output's filesystem (so the final moves are renames), removed
    whatever happens, Ctrl-C included."""
    parent = out_dir.parent if not out_dir.exists() else out_dir
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".nnviz-report-", dir=parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.iterdir()):
        os.replace(path, out_dir / path.name)

