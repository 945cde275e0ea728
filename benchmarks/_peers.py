"""Side by side with the peers, each producing its own artefact from the same model and data.

Every comparison returns a dict with our time, the peer's time (medians of interleaved repeats),
their ratio, and a note; a peer that is not installed (or whose system tool is missing) is
skipped with the reason instead of failing the run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import warnings
from typing import Any

import numpy as np
import torch
from _common import interleaved, median
from torch import nn


def _result(name: str, ours: list[float], theirs: list[float], note: str, **extra: Any) -> dict[str, Any]:
    o, t = median(ours), median(theirs)
    return {"name": name, "ours_s": o, "peer_s": t, "ratio": o / t, "note": note, **extra}


def _skipped(name: str, reason: str) -> dict[str, Any]:
    return {"name": name, "skipped": reason}


@contextlib.contextmanager
def _quiet():
    """The peers print progress and warnings; keep the benchmark's output readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(previous)


def weights_and_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and its gradient of the mean cross-entropy over ``x`` (one batch)."""
    model.eval()
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    tensors = []
    for name, p in model.named_parameters():
        tensors.append((f"weight/{name}", p.detach().clone()))
        tensors.append((f"grad/{name}", p.grad.detach().clone()))
    model.zero_grad(set_to_none=True)
    return tensors


def histograms(tensors: list[tuple[str, torch.Tensor]], repeats: int) -> dict[str, Any]:
    name = "histograms of every weight and gradient vs TensorBoard add_histogram"
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        return _skipped(name, f"tensorboard is not installed ({exc})")
    from nnviz_report.stats.moments import RunningMoments

    def ours() -> None:
        for _, t in tensors:
            running = RunningMoments()
            running.update(t)
            running.result()

    logdir = tempfile.mkdtemp(prefix="nnviz-bench-tb-")
    writer = SummaryWriter(logdir)
    step = [0]

    def theirs() -> None:
        step[0] += 1
        for tag, t in tensors:
            writer.add_histogram(tag, t, step[0])
        writer.flush()

    try:
        times = interleaved({"ours": ours, "theirs": theirs}, repeats)
    finally:
        writer.close()
        shutil.rmtree(logdir, ignore_errors=True)
    return _result(name, times["ours"], times["theirs"], f"{len(tensors)} tensors, one histogram each")


def flow(model: nn.Module, example: torch.Tensor, repeats: int) -> dict[str, Any]:
    name = "flow diagram (graph + SVG) vs torchview draw_graph"
    try:
        import graphviz
        from torchview import draw_graph
    except ImportError as exc:
        return _skipped(name, f"torchview or the graphviz package is not installed ({exc})")
    from nnviz_report.flow_svg import render_flow_svg
    from nnviz_report.graph import extract_graph

    has_dot = shutil.which("dot") is not None

    def ours() -> None:
        render_flow_svg(extract_graph(model, example))

    def theirs() -> None:
        with _quiet():
            graph = draw_graph(model, input_data=example, depth=10, expand_nested=True, device="cpu")
            if has_dot:
                graph.visual_graph.pipe(format="svg")
            else:
                graph.visual_graph.source  # noqa: B018 — the DOT text, without a layout

    try:
        times = interleaved({"ours": ours, "theirs": theirs}, repeats)
    except graphviz.backend.ExecutableNotFound as exc:  # pragma: no cover - depends on the machine
        return _skipped(name, f"graphviz's dot binary is missing ({exc})")
    note = "both to an SVG string; torchview with depth=10, expand_nested=True, laid out by graphviz dot"
    if not has_dot:
        note = "graphviz's dot binary is missing: torchview's time covers the graph and DOT text only, no layout"
    return _result(name, times["ours"], times["theirs"], note)


def spectra(model: nn.Module, repeats: int, label: str) -> dict[str, Any]:
    name = f"spectral statistics of every weight vs WeightWatcher analyze ({label})"
    try:
        with _quiet():
            import weightwatcher
    except ImportError as exc:
        return _skipped(name, f"weightwatcher is not installed ({exc})")
    from nnviz_report.stats.spectra import weight_stats

    weights = [p.detach() for p in model.parameters() if p.dim() >= 2]

    def ours() -> None:
        for w in weights:
            weight_stats(w)

    def theirs() -> None:
        with _quiet():
            weightwatcher.WeightWatcher(model=model).analyze()

    times = interleaved({"ours": ours, "theirs": theirs}, repeats)
    note = (f"{len(weights)} weight tensors; ours: eigvalsh of the Gram matrix + power-law fit for every tensor; "
            "WeightWatcher: its defaults (per-kernel-position matrices, layers under 50 eigenvalues skipped)")
    return _result(name, times["ours"], times["theirs"], note)


def grad_cam(model: nn.Module, layer: str, x: torch.Tensor, targets: torch.Tensor, repeats: int) -> dict[str, Any]:
    name = "Grad-CAM vs pytorch-grad-cam GradCAM"
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as exc:
        return _skipped(name, f"grad-cam is not installed ({exc})")
    from nnviz_report.saliency_capture import capture_saliency
    from nnviz_report.stats.saliency import grad_cam as our_grad_cam
    from nnviz_report.stats.saliency import normalise_map, upsample

    module = dict(model.named_modules())[layer]
    size = (int(x.shape[2]), int(x.shape[3]))
    cpu = torch.device("cpu")
    maps: dict[str, np.ndarray] = {}

    def ours() -> None:
        captured = capture_saliency(model, x, targets, layer=layer, device=cpu, input_gradients=False)
        maps["ours"] = normalise_map(upsample(our_grad_cam(captured.activations, captured.gradients), size))

    def theirs() -> None:
        with GradCAM(model=model, target_layers=[module]) as cam:
            maps["theirs"] = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])

    times = interleaved({"ours": ours, "theirs": theirs}, repeats)
    model.eval()  # pytorch-grad-cam leaves the model in eval mode; say so rather than hide it
    difference = float(np.abs(maps["ours"] - maps["theirs"].astype(np.float64)).max())
    note = (f"{len(x)} images, layer {layer}, maps upsampled to {size[0]}×{size[1]} and min–max scaled as "
            f"pytorch-grad-cam does; largest difference between the maps {difference:.2e} (must be ≤ 1e-4)")
    return _result(name, times["ours"], times["theirs"], note, max_abs_difference=difference,
                   maps_match=difference <= 1e-4)
