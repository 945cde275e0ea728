"""The capture pass, with its hooks registered through hooks.py.

One forward and one backward per batch over the fixed sample. Every layer's output is folded
into fixed-size running statistics inside its forward hook; the gradient of that output is
caught by a hook on the tensor itself (``output.register_hook``), which, unlike full backward
hooks, keeps working with ``ReLU(inplace=True)`` and ``x += shortcut``. Only the showcase
samples keep whole feature maps, and every sample keeps one pooled vector per layer (its
channel means) for the similarity and separability analyses.

The model comes back as it went in: hooks.py's model_session owns every hook handle and
restores mode, device, parameters, ``.grad``, ``requires_grad`` and buffers, also when the
model raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .data import normalise
from .errors import CaptureError, ModelError
from .hooks import model_session
from .own_arena import ResidentBound, check_stop, on_own_thread

# Re-exported: the pipeline, the tests and the benchmarks choose the showcase through capture.
from .showcase import choose_showcase as choose_showcase
from .showcase import predictions_from_logits as predictions_from_logits
from .stats import layout as layouts
from .stats import moments
from .stats.layout import Layout
from .stats.moments import GradientSummary, Moments, RunningGradient, RunningMoments, tensor_norm

NUM_CLASSES = 10
MAX_POOLED_FEATURES = 4096  # wider outputs are left out of CKA/separability to bound memory
SKIPPED_TYPES = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout3d)
SATURATING_TYPES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Hardsigmoid": "sigmoid", "Hardtanh": "tanh"}


@dataclasses.dataclass
class LayerCapture:
    name: str
    module_path: str
    type: str
    output_shape: tuple[int, ...]
    activation: Moments
    gradient: GradientSummary
    layout: Layout
    dead_channels: int | None  # None: not a rectifier output, or no channel axis
    channels: int  # units along the layout's channel axis; 0 when it has none
    saturation: float | None
    pooled_features: np.ndarray | None
    showcase_maps: np.ndarray | None  # (S, C, h, w): feature maps, or patch tokens on their grid
    repeats: str | None = None  # a pure reshape (Flatten) of this captured layer's output


@dataclasses.dataclass
class ParamCapture:
    name: str
    module_path: str
    shape: tuple[int, ...]
    numel: int
    weight_norm: float
    grad_norm: float
    mean_abs_grad: float
    max_abs_grad: float
    nonfinite_weights: int
    nonfinite_grads: int


@dataclasses.dataclass
class CaptureResult:
    layers: list[LayerCapture]
    params: list[ParamCapture]
    logits: np.ndarray
    losses: np.ndarray
    showcase_positions: tuple[int, ...]
    first_conv: tuple[str, np.ndarray, np.ndarray] | None  # (name, weight, grad)


class _LayerAccumulator:
    def __init__(self, name: str, module_path: str, module: nn.Module, showcase: int, layout: Layout,
                 repeats: str | None, samples: int) -> None:
        self.name, self.module_path, self.type = name, module_path, type(module).__name__
        self.layout, self.repeats = layout, repeats
        self.activation = RunningMoments()
        self.gradient = RunningGradient()
        self.count_dead = self.type in layouts.RECTIFIER_TYPES and layout.channel_axis is not None
        self.channel_max: Tensor | None = None
        self.batch_max: Tensor | None = None
        self.channels = 0
        self.saturation_kind = SATURATING_TYPES.get(self.type)
        self.saturated = 0
        self.output_shape: tuple[int, ...] = ()
        self.samples = samples  # in the whole capture: the rows of the pooled store
        self.pooled_store: Tensor | None = None
        self.pooled_rows = 0
        self.showcase: list[np.ndarray | None] = [None] * showcase

    def fold(self, output: Tensor, showcase_rows: dict[int, int]) -> None:
        values = output.detach()
        self.output_shape = tuple(values.shape[1:])
        layout = self.layout
        folded, pooled, batch_max = self._fold_fused(values)
        if not folded:
            # The per-sample channel means, (N, C) from one (N, C, H·W) view, are kept anyway; their
            # mean is the batch's mean (equal-sized groups), which spares the moments one full pass.
            pooled = layouts.pooled(values, layout) if layout.per_sample else None
            mean = None
            if pooled is not None and layout.kind in (layouts.FEATURE_MAP, layouts.SEQUENCE) and \
                    values.dtype in (torch.float32, torch.float64):
                mean = float(pooled.double().mean())
            self.activation.update(values, mean=mean)
        self._fold_saturation(values)
        if not layout.per_sample:
            return
        if layout.channel_axis is not None:
            self.channels = int(values.shape[layout.channel_axis])
        if self.count_dead:
            batch_max = layouts.channel_maxima(values, layout) if batch_max is None else batch_max
            assert batch_max is not None
            batch_max = batch_max.to("cpu", torch.float64)
            if self.channel_max is None:
                self.channel_max = batch_max
            else:
                torch.maximum(self.channel_max, batch_max, out=self.channel_max)
        if pooled is not None and pooled.shape[1] <= MAX_POOLED_FEATURES:
            slot = self._pooled_slot(pooled.shape[0], pooled.shape[1])
            if slot.data_ptr() != pooled.data_ptr():  # the kernel writes into the slot itself
                slot.copy_(pooled)
            self.pooled_rows += pooled.shape[0]
        if showcase_rows:
            self.keep_showcase(values, showcase_rows)

    def _fold_fused(self, values: Tensor) -> tuple[bool, Tensor | None, Tensor | None]:
        """(folded, pooled, channel maxima) from the compiled kernel's one pass (stats/fused.py);
        per-sample channel means and channel maxima for (N, C, positions) outputs. Where it cannot
        take the batch: not folded, nothing changed, and the caller takes the torch path."""
        grid = self.layout.kind in (layouts.FEATURE_MAP, layouts.SEQUENCE)
        rows, channels = (values.shape[0] * values.shape[1], values.shape[1]) if grid else (1, 1)
        keep = grid and channels <= MAX_POOLED_FEATURES and values.dtype == torch.float32
        means = self._pooled_slot(values.shape[0], channels) if keep else None
        if grid and self.count_dead and (self.batch_max is None or self.batch_max.numel() != channels):
            self.batch_max = torch.empty(channels)  # reused: the kernel writes each batch's maxima here
        maxima = self.batch_max if grid and self.count_dead else None
        folded = self.activation.update_fused(values, rows=rows, channels=channels, row_means=means,
                                              channel_max=maxima)
        if folded is None:
            return False, None, None
        if grid:
            return True, means, maxima
        pooled = layouts.pooled(values, self.layout) if self.layout.per_sample else None
        return True, pooled, layouts.channel_maxima(values, self.layout) if self.count_dead else None

    def _pooled_slot(self, rows: int, width: int) -> Tensor:
        """Where the next ``rows`` pooled vectors go: one float32 (samples, width) store per layer,
        allocated once (the kernel writes into it), rather than one small array per batch kept
        between the activations' large temporaries."""
        store = self.pooled_store
        if store is None or self.pooled_rows + rows > store.shape[0]:
            grown = torch.empty(max(self.samples, self.pooled_rows + rows), width)
            if store is not None:
                grown[: self.pooled_rows] = store[: self.pooled_rows]
            store = self.pooled_store = grown
        return store[self.pooled_rows : self.pooled_rows + rows]

    def keep_showcase(self, values: Tensor, showcase_rows: dict[int, int]) -> None:
        """The full maps of the showcase rows of this batch (per-sample layouts only)."""
        maps = layouts.spatial_maps(values, self.layout)
        if maps is not None:
            for row, slot in showcase_rows.items():
                self.showcase[slot] = maps[row].to("cpu", torch.float32).numpy().copy()

    def _fold_saturation(self, values: Tensor) -> None:
        if self.saturation_kind == "sigmoid":
            self.saturated += int(((values < 0.01) | (values > 0.99)).sum())
        elif self.saturation_kind == "tanh":
            self.saturated += int((values.abs() > 0.99).sum())

    def result(self) -> LayerCapture:
        dead = int((self.channel_max <= 0).sum()) if self.channel_max is not None else None
        moments = self.activation.result()
        saturation = None
        if self.saturation_kind is not None and moments.count:
            saturation = self.saturated / moments.count
        complete = all(m is not None for m in self.showcase)
        return LayerCapture(
            name=self.name,
            module_path=self.module_path,
            type=self.type,
            output_shape=self.output_shape,
            activation=moments,
            gradient=self.gradient.result(),
            layout=self.layout,
            dead_channels=dead,
            channels=self.channels,
            saturation=saturation,
            pooled_features=self.pooled_store[: self.pooled_rows].numpy() if self.pooled_store is not None else None,
            showcase_maps=np.stack(self.showcase) if complete and self.showcase else None,  # type: ignore[arg-type]
            repeats=self.repeats,
        )


def capturable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules in registration order: the layers whose outputs the report describes."""
    layers = []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()) and not isinstance(module, SKIPPED_TYPES):
            layers.append((name, module))
    return layers


@on_own_thread("nnviz-report-capture")
def run_capture(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    *,
    batch_size: int,
    device: torch.device,
    showcase_positions: tuple[int, ...] | Callable[[np.ndarray], tuple[int, ...]],
    progress: Callable[[int], None] | None = None,
) -> CaptureResult:
    """``inputs``: (N, 3, 32, 32) on the CPU, normalised, or the sample's uint8 pixels, normalised
    here batch by batch (a float copy of 5000 images is 61 MB); batches move to ``device``.

    ``showcase_positions``: the samples whose full maps are kept, or a function that chooses them
    from the captured logits ``(N, classes)``. Then, after the pass, only the batches holding the
    chosen samples run forward once more, exactly as in the pass (same batches, same grad mode),
    for their maps: a second forward over the whole sample to choose them first would cost more.

    The pass runs on a thread of its own, for an allocator arena of its own (own_arena.py).
    """
    choose = showcase_positions if callable(showcase_positions) else None
    positions: tuple[int, ...] = () if callable(showcase_positions) else showcase_positions
    layers = capturable_layers(model)
    accumulators: dict[str, _LayerAccumulator] = {}
    order: list[str] = []
    calls: dict[str, int] = {}
    ran: list[str] = []
    showcase_rows: dict[int, int] = {}
    count = len(inputs)
    batch_of = (lambda a, b: normalise(inputs[a:b])) if inputs.dtype == torch.uint8 else (lambda a, b: inputs[a:b])
    class_token = layouts.has_class_token(dict(model.named_parameters()))
    # During the first batch only: which captured layer produced each tensor (kept alive so its id
    # is not reused), so a layer can inherit its input's layout and a Flatten can name what it repeats.
    producers: dict[int, tuple[Tensor, str, str]] = {}
    batch = [0]
    maps_only = [False]  # the showcase pass after the capture: keep maps, fold nothing

    def make_hook(path: str, module: nn.Module) -> Callable[..., None]:
        def hook(_module: nn.Module, args: object, output: object) -> None:
            check_stop()  # an interrupt: the waiting thread asks the pass to end at the next layer
            if not isinstance(output, Tensor) or output.dim() < 1:
                return
            calls[path] = calls.get(path, 0) + 1
            name = path if calls[path] == 1 else f"{path}#{calls[path]}"
            ran.append(name)
            acc = accumulators.get(name)
            if maps_only[0]:
                if acc is not None and acc.layout.per_sample and showcase_rows:
                    with torch.no_grad():
                        acc.keep_showcase(output.detach(), showcase_rows)
                return
            if acc is None:
                acc = accumulators[name] = _new_accumulator(name, path, module, output, args, producers,
                                                            batch[0], class_token, len(positions), count)
                order.append(name)
                producers[id(output)] = (output, name, acc.layout.kind)
            with torch.no_grad():
                acc.fold(output, showcase_rows)
            if output.requires_grad:
                output.register_hook(lambda grad, acc=acc: acc.gradient.update(grad))

        return hook

    logits_parts: list[np.ndarray] = []
    loss_parts: list[np.ndarray] = []
    try:
        with model_session(model, device) as hooks:
            for path, module in layers:
                with contextlib.suppress(RuntimeError):  # TorchScript modules refuse Python hooks
                    hooks.forward_hook(module, make_hook(path, module))
            # Without a trainable parameter the loss depends on nothing that requires a gradient;
            # the input then does, so that activation gradients still flow.
            input_grad = not any(p.requires_grad for p in model.parameters())
            resident = ResidentBound()
            for start in range(0, count, batch_size):
                check_stop()
                stop = min(start + batch_size, count)
                calls.clear()
                ran.clear()
                showcase_rows.clear()
                showcase_rows.update({p - start: slot for slot, p in enumerate(positions) if start <= p < stop})
                x = batch_of(start, stop).to(device).requires_grad_(input_grad)
                y = labels[start:stop].to(device)
                batch[0] = stop - start
                logits = _forward(model, x, ran)
                producers.clear()
                _check_logits(logits, stop - start)
                losses = nn.functional.cross_entropy(logits.float(), y, reduction="none")
                # Summing per-sample losses divided by N makes the accumulated .grad the
                # gradient of the mean loss over the whole sample, whatever the batch size.
                (losses.sum() / count).backward()
                logits_parts.append(logits.detach().to("cpu", torch.float32).numpy())
                loss_parts.append(losses.detach().to("cpu", torch.float64).numpy())
                resident.after_batch(last=stop == count)
                if progress is not None:
                    progress(stop - start)
            if choose is not None:
                positions = choose(np.concatenate(logits_parts))
                maps_only[0] = True
                for acc in accumulators.values():
                    acc.showcase = [None] * len(positions)
                for start in sorted({p - p % batch_size for p in positions}):
                    stop = min(start + batch_size, count)
                    calls.clear()
                    ran.clear()
                    showcase_rows.clear()
                    showcase_rows.update({p - start: slot for slot, p in enumerate(positions) if start <= p < stop})
                    _forward(model, batch_of(start, stop).to(device).requires_grad_(input_grad), ran)
            params = _parameter_summaries(model)
            first_conv = first_convolution(model)
    finally:
        moments.release_scratch()  # the reductions' shared buffers do not outlive the capture
    return CaptureResult(
        layers=[_batch_first_only(accumulators[n].result(), count) for n in order],
        params=params,
        logits=np.concatenate(logits_parts),
        losses=np.concatenate(loss_parts),
        showcase_positions=positions,
        first_conv=first_conv,
    )


def _new_accumulator(name: str, path: str, module: nn.Module, output: Tensor, args: object,
                     producers: dict[int, tuple[Tensor, str, str]], batch: int, class_token: bool,
                     showcase: int, samples: int) -> _LayerAccumulator:
    first = args[0] if isinstance(args, tuple) and args and isinstance(args[0], Tensor) else None
    source = producers.get(id(first)) if first is not None else None
    type_name = type(module).__name__
    inherited = source[2] if source is not None and first is not None and first.shape == output.shape else None
    layout = layouts.classify(tuple(output.shape), batch, type_name, inherited=inherited, class_token=class_token)
    # A pure reshape of another captured layer's output holds the same values: its row would repeat.
    repeats = source[1] if source is not None and type_name in layouts.RESHAPE_TYPES else None
    return _LayerAccumulator(name, path, module, showcase, layout, repeats, samples)


def _forward(model: nn.Module, x: Tensor, ran: list[str]) -> Tensor:
    try:
        output = model(x)
    except Exception as exc:
        where = f"after layers {', '.join(ran[-3:])}" if ran else "before any layer produced output"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CaptureError(
            f"the model raised {type(exc).__name__} on a batch of {tuple(x.shape)} inputs {where}: {message}; "
            "nnviz_report needs a classifier that takes 3×32×32 CIFAR-10 images"
        ) from None
    if not isinstance(output, Tensor):
        raise ModelError(
            f"the model returned {type(output).__name__}, not a tensor of (N, 10) logits; "
            "wrap it so that forward returns the logits"
        )
    return output


def _check_logits(logits: Tensor, batch: int) -> None:
    if logits.shape != (batch, NUM_CLASSES):
        raise ModelError(
            f"the model's output has shape {tuple(logits.shape)} for a batch of {batch}; "
            f"expected ({batch}, {NUM_CLASSES}) logits for the ten CIFAR-10 classes"
        )
    if not (logits.is_floating_point() or logits.is_complex()):
        raise ModelError(
            f"the model returned {str(logits.dtype).removeprefix('torch.')} logits; nnviz_report needs "
            "floating-point scores per class (return the logits before any argmax or rounding)"
        )
    if not logits.requires_grad:
        raise ModelError(
            "the model's output does not depend on anything autograd tracks: its forward runs under "
            "torch.no_grad() or torch.inference_mode() (or detaches its output); remove that so gradients "
            "can be computed"
        )


def _batch_first_only(layer: LayerCapture, count: int) -> LayerCapture:
    """A layer whose output's first dimension is not the batch (LeViT's BatchNorm1d over
    (batch·tokens, channels)) keeps its statistics but is left out of the per-sample analyses
    (similarity, separability), which need one row per sample."""
    if layer.pooled_features is not None and layer.pooled_features.shape[0] != count:
        return dataclasses.replace(layer, pooled_features=None, showcase_maps=None)
    return layer


def _parameter_summaries(model: nn.Module) -> list[ParamCapture]:
    """Norms and magnitudes of each parameter and its gradient, accumulated in float64 without a
    float64 copy of either. A norm is finite exactly when every value is (float32 squares summed
    in float64 cannot overflow), so the non-finite values are counted only when it is not: the
    counting passes cost as much as the rest together on a model of 11 million parameters."""
    summaries = []
    for name, p in model.named_parameters():
        w = p.detach()
        g = p.grad.detach() if p.grad is not None else torch.zeros_like(w)
        magnitudes = g.abs()
        weight_norm, grad_norm = tensor_norm(w), tensor_norm(g)
        summaries.append(
            ParamCapture(
                name=name,
                module_path=name.rpartition(".")[0],
                shape=tuple(p.shape),
                numel=p.numel(),
                weight_norm=weight_norm,
                grad_norm=grad_norm,
                mean_abs_grad=float(magnitudes.sum(dtype=torch.float64)) / g.numel() if g.numel() else 0.0,
                max_abs_grad=float(magnitudes.max()) if g.numel() else 0.0,
                nonfinite_weights=0 if math.isfinite(weight_norm) else int((~torch.isfinite(w)).sum()),
                nonfinite_grads=0 if math.isfinite(grad_norm) else int((~torch.isfinite(g)).sum()),
            )
        )
    return summaries


def first_convolution(model: nn.Module) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The first convolution over the three colour channels: (name, weight, gradient), the
    gradient zeros before any backward pass (the weights section asks before the capture)."""
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, nn.Conv2d) and isinstance(weight, Tensor) and weight.shape[1] == 3:
            grad = weight.grad if weight.grad is not None else torch.zeros_like(weight)
            return (name, weight.detach().cpu().float().numpy().copy(), grad.detach().cpu().float().numpy().copy())
    return None
