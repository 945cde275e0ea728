"""Weights: per-tensor statistics and spectra, distributions across depth, first-layer filters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from threadpoolctl import threadpool_limits
from torch import nn

from ..figures.common import filter_tiles
from ..figures.draw import packed_values, weight_figures, weight_mosaic
from ..figures.source import encode_pixels, encode_values
from ..figures.weights import subsample
from ..report_model import BiasSummary, Figure, PackedValues, WeightRow, WeightsSection
from ..stats.spectra import bias_stats, weight_stats
from .anchors import Anchors

VALUES_PER_LAYER = 2000


@dataclasses.dataclass(frozen=True)
class WeightTensor:
    """One parameter as plain arrays, with the module it belongs to."""

    name: str
    module_path: str
    module_type: str
    values: np.ndarray
    bias: np.ndarray | None
    bias_name: str | None = None


def weight_tensors(model: nn.Module) -> list[WeightTensor]:
    """Every parameter in registration order, biases attached to their module's weight (a bias
    with no ``weight`` sibling stands alone as a 1-D tensor)."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    tensors = []
    for name, p in params.items():
        owner, _, leaf = name.rpartition(".")
        if leaf == "bias" and f"{owner}.weight".lstrip(".") in params:
            continue
        bias_name = f"{owner}.bias".lstrip(".")
        bias = params.get(bias_name) if leaf == "weight" else None
        module = modules.get(owner)
        tensors.append(WeightTensor(
            name=name, module_path=owner, module_type=type(module).__name__ if module is not None else "",
            values=p.detach().to("cpu").double().numpy().copy(),
            bias=bias.detach().to("cpu").double().numpy().copy() if bias is not None else None,
            bias_name=bias_name if bias is not None else None,
        ))
    return tensors


def has_row(tensor: WeightTensor) -> bool:
    """Whether the tensor gets a row of the table: a weight matrix or kernel, not empty."""
    return tensor.values.ndim >= 2 and tensor.values.size > 0


def weight_anchors(tensors: Sequence[WeightTensor], anchors: Anchors) -> dict[str, str]:
    """The in-page anchor of each row, handed out in table order. Apart from the numbers, so that
    anchors are handed out in the main process while a child computes the numbers."""
    return {t.name: anchors("w", t.name) for t in tensors if has_row(t)}


def weight_rows(tensors: Sequence[WeightTensor], anchor_of: Mapping[str, str]) -> list[WeightRow]:
    rows = []
    for t in tensors:
        if not has_row(t):
            continue
        s = weight_stats(t.values)
        b = bias_stats(t.bias) if t.bias is not None and t.bias.size else None
        rows.append(WeightRow(
            name=t.name, module_path=t.module_path, anchor=anchor_of[t.name], type=t.module_type,
            shape=s.shape, matrix_shape=s.matrix_shape, mean=s.mean, std=s.std, l2_norm=s.l2_norm,
            spectral_norm=s.spectral_norm, stable_rank=s.stable_rank, near_zero_fraction=s.near_zero_fraction,
            alpha=s.alpha.alpha, alpha_xmin=s.alpha.xmin, alpha_ks_distance=s.alpha.ks_distance,
            alpha_tail=s.alpha.n_tail, alpha_note=s.alpha.note,
            bias=BiasSummary(t.bias_name or "", b.size, b.mean, b.std, b.min, b.max) if b is not None else None,
        ))
    return rows


def weights_section(tensors: Sequence[WeightTensor], anchors: Anchors,
                    first_conv: tuple[str, np.ndarray, np.ndarray] | None) -> WeightsSection | None:
    """The whole section: anchors handed out from ``anchors``, then :func:`weights_of`."""
    return weights_of(tensors, weight_anchors(tensors, anchors), first_conv)


def weights_of(tensors: Sequence[WeightTensor], anchor_of: Mapping[str, str],
               first_conv: tuple[str, np.ndarray, np.ndarray] | None) -> WeightsSection | None:
    """The section from numpy alone (the pipeline computes it in a child process while the
    capture runs, see background.py): its numbers, then its charts. On one BLAS thread: beside
    the capture a second would only compete with it, and the eigenvalues' last bits then do not
    depend on how many cores the machine has."""
    with threadpool_limits(limits=1, user_api="blas"):
        section = weights_tables(tensors, anchor_of, first_conv)
    return with_weight_figures(section) if section is not None else None


def weights_tables(tensors: Sequence[WeightTensor], anchor_of: Mapping[str, str],
                   first_conv: tuple[str, np.ndarray, np.ndarray] | None) -> WeightsSection | None:
    """The section with its numbers, packed values and first-layer mosaic, but its two charts
    not drawn yet (:func:`with_weight_figures`)."""
    rows = weight_rows(tensors, anchor_of)
    if not rows:
        return None
    by_name = {t.name: t for t in tensors}
    names = [r.name for r in rows]
    packed = tuple(PackedValues(*encode_values(subsample(by_name[n].values, VALUES_PER_LAYER))) for n in names)
    first_layer = first_name = None
    tiles_source = ""
    if first_conv is not None:
        first_name, weight, _grad = first_conv
        tiles = filter_tiles(weight)
        first_layer = weight_mosaic(tiles, first_name)
        tiles_source = encode_pixels(tiles.reshape(-1, tiles.shape[2], 3))
    return WeightsSection(
        rows=tuple(rows),
        skipped=tuple(t.name for t in tensors if t.values.ndim < 2),
        values_per_layer=VALUES_PER_LAYER,
        subsampled=tuple(n for n in names if by_name[n].values.size > VALUES_PER_LAYER),
        distribution=Figure.undrawn("weight-distribution"),
        depth=Figure.undrawn("weight-spectra-depth"),
        first_layer=first_layer,
        first_layer_name=first_name,
        distribution_values=packed,
        first_layer_tiles=tiles_source,
    )


def with_weight_figures(section: WeightsSection) -> WeightsSection:
    """The section with its violins and spectra-across-depth charts drawn. The violins are drawn
    from the packed values, exactly as render draws them from report.json."""
    values = [packed_values(p, "weights") for p in section.distribution_values]
    distribution, depth = weight_figures(section, values)
    return dataclasses.replace(section, distribution=distribution, depth=depth)
