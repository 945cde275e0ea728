"""What a layer's output tensor means: which axis is the batch, which the channels, which positions.

Statistics that speak of "channels" (dead units, pooled features for CKA and separability,
feature-map grids) are only right when they reduce along the right axis. A convolution's
``(N, C, H, W)`` keeps channels on axis 1; a transformer block's ``(N, T, D)`` keeps them on the
last axis, with tokens as positions; a classifier head's ``(N, D)`` has no positions at all. This
module names those layouts and does the reductions; it holds no hooks and draws nothing.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

FEATURE_MAP = "feature-map"  # (N, C, H, W)
TOKENS = "tokens"  # (N, T, D): T tokens of width D, channel = D
SEQUENCE = "channels-first-sequence"  # (N, C, L): Conv1d / BatchNorm1d / 1-d pooling outputs
VECTOR = "vector"  # (N, D)
GENERIC = "generic"  # batch-first, any other rank: described, not reduced per channel
NOT_BATCH_FIRST = "not-batch-first"  # axis 0 is not the sample (e.g. BatchNorm1d over (N·T, C))

LAYOUTS = (FEATURE_MAP, TOKENS, SEQUENCE, VECTOR, GENERIC, NOT_BATCH_FIRST)

# Dead units are counted only after these: a unit that is never positive after a rectifier passes
# nothing on (ReLU family) or sits in the saturated negative branch (ELU family). After a
# convolution, a norm or a pooling layer "never positive" means nothing, so those rows show "—".
RECTIFIER_TYPES = frozenset({"ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "CELU", "SELU"})

# Module types whose 3-d output keeps channels on axis 1 (N, C, L) rather than last (N, T, D).
CHANNELS_FIRST_1D = ("Conv1d", "ConvTranspose1d", "BatchNorm1d", "InstanceNorm1d", "MaxPool1d", "AvgPool1d",
                     "AdaptiveAvgPool1d", "AdaptiveMaxPool1d", "LPPool1d", "LazyConv1d")

# Pure reshapes: their output holds exactly their input's values, so their statistics repeat it.
RESHAPE_TYPES = frozenset({"Flatten", "Unflatten"})

MAX_PREFIX_TOKENS = 8  # class + register/distillation tokens in front of the patch tokens


@dataclasses.dataclass(frozen=True)
class Layout:
    kind: str  # one of LAYOUTS
    channel_axis: int | None  # axis of the units (channels) in the full (N, ...) tensor
    prefix_tokens: int = 0  # tokens layout: non-patch tokens in front (class, registers)
    grid: tuple[int, int] | None = None  # tokens layout: the patch tokens' (h, w), when square
    pooling: str = ""  # how one sample becomes one vector for CKA/separability; "" when it does not

    @property
    def per_sample(self) -> bool:
        return self.kind != NOT_BATCH_FIRST


def classify(shape: tuple[int, ...], batch: int, module_type: str, *, inherited: str | None = None,
             class_token: bool = False) -> Layout:
    """The layout of an output of full ``shape`` (batch included) from a module of ``module_type``.

    ``inherited`` is the layout kind of the module's input when it came from another captured
    layer with the same shape (an activation after a Conv1d stays channels-first); ``class_token``
    says the model has a class-token parameter, so token 0 is the class token.
    """
    if not shape or shape[0] != batch:
        return Layout(NOT_BATCH_FIRST, None)
    rank = len(shape)
    if rank == 2:
        return Layout(VECTOR, 1, pooling="the vector itself")
    if rank == 4:
        return Layout(FEATURE_MAP, 1, pooling="mean over the H×W positions of each channel")
    if rank == 3:
        if module_type.startswith(CHANNELS_FIRST_1D) or inherited == SEQUENCE:
            return Layout(SEQUENCE, 1, pooling="mean over the L positions of each channel")
        prefix, grid = token_grid(shape[1])
        if class_token and prefix >= 1:
            return Layout(TOKENS, 2, prefix, grid, pooling="the class token (token 0)")
        if grid is not None:
            what = "the patch tokens" if prefix else "all tokens"
            return Layout(TOKENS, 2, prefix, grid, pooling=f"mean over {what} of each channel")
        return Layout(TOKENS, 2, 0, None, pooling="mean over all tokens of each channel")
    return Layout(GENERIC, None, pooling="every value, flattened" if rank > 1 else "")


def token_grid(tokens: int) -> tuple[int, tuple[int, int] | None]:
    """(prefix tokens, (h, w)) when ``tokens`` is a square grid of at least 2×2 after a few
    leading class/register tokens; (0, None) otherwise."""
    side = math.isqrt(tokens)
    prefix = tokens - side * side
    if side >= 2 and prefix <= MAX_PREFIX_TOKENS:
        return prefix, (side, side)
    return 0, None


def channel_maxima(values: Tensor, layout: Layout) -> Tensor | None:
    """Per-unit maximum over every sample and position, along the layout's channel axis."""
    if layout.channel_axis is None:
        return None
    dims = [d for d in range(values.dim()) if d != layout.channel_axis]
    return values.amax(dim=dims) if dims else values


def pooled(values: Tensor, layout: Layout) -> Tensor | None:
    """One vector per sample: ``(N, units)``, as ``layout.pooling`` says; None when not per-sample."""
    kind = layout.kind
    if kind == NOT_BATCH_FIRST:
        return None
    if kind == VECTOR:
        return values
    if kind in (FEATURE_MAP, SEQUENCE):
        return values.flatten(2).mean(dim=2)
    if kind == TOKENS:
        if layout.pooling.startswith("the class token"):
            return values[:, 0]
        return values[:, layout.prefix_tokens:].mean(dim=1)
    return values.reshape(values.shape[0], -1)


def spatial_maps(values: Tensor, layout: Layout) -> Tensor | None:
    """``(N, C, h, w)`` maps for grids and Grad-CAM: feature maps as they are, patch tokens
    (class/register tokens removed) reshaped to their grid with the channels first; else None."""
    if layout.kind == FEATURE_MAP:
        return values
    if layout.kind == TOKENS and layout.grid is not None:
        h, w = layout.grid
        patches = values[:, layout.prefix_tokens:]
        return patches.reshape(values.shape[0], h, w, values.shape[2]).permute(0, 3, 1, 2)
    return None


def has_class_token(named_parameters: dict[str, torch.nn.Parameter]) -> bool:
    """A root-level (or embedding-level) parameter named like a class token, shaped (1, 1, D)."""
    for name, p in named_parameters.items():
        leaf = name.rpartition(".")[2]
        if leaf in ("class_token", "cls_token") and p.dim() == 3 and p.shape[0] == 1 and p.shape[1] == 1:
            return True
    return False


def describe(layout: Layout, shape: tuple[int, ...]) -> str:
    """One line for the report: what the axes are and how the statistics read them."""
    if layout.kind == FEATURE_MAP:
        return f"feature maps: {shape[0]} channels × {shape[1]}×{shape[2]}"
    if layout.kind == SEQUENCE:
        return f"channels-first sequence: {shape[0]} channels × {shape[1]} positions"
    if layout.kind == TOKENS:
        text = f"tokens: {shape[0]} tokens × {shape[1]} channels"
        if layout.grid is not None:
            h, w = layout.grid
            text += f" ({layout.prefix_tokens} prefix + {h}×{w} patch grid)" if layout.prefix_tokens \
                else f" ({h}×{w} patch grid)"
        return text + f"; pooled: {layout.pooling}"
    if layout.kind == VECTOR:
        return f"vector of {shape[0]}"
    if layout.kind == NOT_BATCH_FIRST:
        return "axis 0 is not the sample: left out of per-sample analyses (dead units, CKA, separability, maps)"
    return "generic: no channel axis assumed"
