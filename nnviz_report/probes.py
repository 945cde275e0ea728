"""The robustness probe: the fixed sample under the corruption suite, through the model.

The design. The suite has C cells (corruption × severity: 7 × 3 = 21). Running every image
through every cell costs C forward passes over the sample, about five times the capture it
follows. Instead each image is evaluated under ``CELLS_PER_IMAGE`` (3) cells, assigned
deterministically and balanced:

- the images are ranked class-interleaved (the first image of each class in class order, then
  the second of each, …), so consecutive ranks cover every class;
- the image of rank r gets cells r·K, r·K + 1, …, r·K + K − 1 (mod C), with the cells listed
  severity by severity (1, 3, 5), the corruptions in suite order within each. With K = 3 an image
  meets three corruptions, mostly at one severity, so corruptions are compared partly on the same
  images, and each corruption's three cells hold different images: a corruption's mean over its
  severities rests on 3 × 14 distinct images rather than 14 seen three times. Every cell holds
  ⌊N·K/C⌋ or ⌈N·K/C⌉ images (14 or 15 of the default 100), consecutive in the class rotation,
  so from every class or nearly.

So the probes cost K forward passes over the sample (forward only, under
``torch.inference_mode``, channels-last, every cell's images stacked into full batches) instead
of C. The price is a smaller n per cell: each cell's accuracy carries its own n and a Wilson
interval over that n, and drops are measured against the clean accuracy of the same images.
Every image still enters the suite's mean. With fewer than C / K images K is raised so that no
cell is empty; with K ≥ C every image meets every cell (the full design). With more than
``PROBE_EVALUATIONS`` / K images (350 at K = 3) K is lowered, to 2 and then 1: past about 50 images
a cell the intervals narrow slowly while the cost grows with every image, and a 1000-image sample
would otherwise spend three forward passes on the probes (more than the capture's forward and
backward); at K = 1 a cell still holds N / C images (48 of 1000).

Returns plain logits per cell; every number is computed from them in sections/robustness.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .corruptions import SEVERITIES, SUITE, Corruption, corrupt_batch
from .data import normalise
from .hooks import model_session
from .own_arena import ResidentBound, check_stop, on_own_thread

CELLS_PER_IMAGE = 3
PROBE_EVALUATIONS = 1050  # 50 images a cell at K = 3: beyond this many, fewer cells per image


@dataclasses.dataclass(frozen=True)
class ProbeCell:
    corruption: Corruption
    severity: int
    positions: tuple[int, ...]  # rows of the sample evaluated in this cell, ascending


@dataclasses.dataclass(frozen=True)
class ProbeRun:
    corruption: Corruption
    severity: int
    positions: tuple[int, ...]  # rows of the sample, in the order of ``logits``
    logits: np.ndarray  # (len(positions), classes) float32


def cells_per_image(count: int, cells: int, wanted: int | None = None) -> int:
    """``wanted`` (by default ``CELLS_PER_IMAGE``, lowered to 1 at least so that ``count`` images
    take at most ``PROBE_EVALUATIONS`` evaluations), raised so that the images fill every cell at
    least once, at most ``cells``."""
    if wanted is None:
        wanted = max(1, min(CELLS_PER_IMAGE, PROBE_EVALUATIONS // max(count, 1)))
    if count <= 0:
        return min(wanted, cells)
    return max(1, min(cells, max(wanted, math.ceil(cells / count))))


def class_interleaved_ranks(labels: Sequence[int]) -> list[int]:
    """Sample rows in the order: the first image of each class (classes ascending), then the
    second of each, …; a class that runs out drops out of the rotation."""
    seen: dict[int, int] = {}
    keyed = []
    for row, label in enumerate(labels):
        occurrence = seen.get(int(label), 0)
        seen[int(label)] = occurrence + 1
        keyed.append((occurrence, int(label), row))
    return [row for _, _, row in sorted(keyed)]


def assign_cells(labels: Sequence[int], *, suite: Sequence[Corruption] = SUITE,
                 severities: Sequence[int] = SEVERITIES, per_image: int | None = None) -> list[ProbeCell]:
    """The balanced, deterministic design in the module docstring: which rows each cell evaluates."""
    grid = [(corruption, severity) for severity in severities for corruption in suite]
    k = cells_per_image(len(labels), len(grid), per_image)
    members: dict[tuple[str, int], list[int]] = {(c.name, s): [] for c, s in grid}
    for rank, row in enumerate(class_interleaved_ranks(labels)):
        for j in range(k):
            corruption, severity = grid[(rank * k + j) % len(grid)]
            members[corruption.name, severity].append(row)
    return [ProbeCell(c, s, tuple(sorted(members[c.name, s]))) for c in suite for s in severities]


@on_own_thread("nnviz-report-probes")
def run_probes(model: nn.Module, images: torch.Tensor, source_indices: Sequence[int], cells: Sequence[ProbeCell],
               *, batch_size: int, device: torch.device, seed: int,
               progress: Callable[[int], None] | None = None) -> list[ProbeRun]:
    """``images``: the sample's uint8 (N, 3, H, W) pixels; ``cells``: from :func:`assign_cells`.
    ``progress`` is told the number of images evaluated after each batch. Like the capture, the
    passes run on a thread of their own, for an allocator arena of their own (own_arena.py)."""
    pixels = images.numpy()
    # (cell, row) pairs in cell order, cut into full batches whatever the cell sizes: memory
    # stays that of one batch, and the forward passes see as few small batches as possible.
    pairs = [(c, row) for c, cell in enumerate(cells) for row in cell.positions]
    outputs: list[list[np.ndarray]] = [[] for _ in cells]
    layout = [torch.channels_last]
    with model_session(model, device, param_grads=False):
        runner = folded_batch_norms(model)
        try:
            _set_memory_format(runner, torch.channels_last)
        except RuntimeError:  # a 5-D parameter has no channels-last form
            layout[0] = torch.contiguous_format
            _set_memory_format(runner, torch.contiguous_format)
        resident = ResidentBound()
        with torch.inference_mode():
            for start in range(0, len(pairs), batch_size):
                check_stop()
                chunk = pairs[start:start + batch_size]
                parts, owners = [], []
                for c in dict.fromkeys(c for c, _ in chunk):
                    rows = [row for owner, row in chunk if owner == c]
                    parts.append(corrupt_batch(pixels[rows], cells[c].corruption, cells[c].severity,
                                               [source_indices[r] for r in rows], seed=seed))
                    owners.append((c, len(rows)))
                batch = normalise(torch.from_numpy(np.concatenate(parts))).to(device)
                logits = _forward(runner, batch, layout, first=start == 0).to("cpu", torch.float32).numpy()
                offset = 0
                for c, n in owners:
                    outputs[c].append(logits[offset:offset + n])
                    offset += n
                resident.after_batch(last=start + batch_size >= len(pairs))
                if progress is not None:
                    progress(len(chunk))
    return [ProbeRun(cell.corruption, cell.severity, cell.positions,
                     np.concatenate(outputs[c]) if outputs[c] else np.zeros((0, 0), np.float32))
            for c, cell in enumerate(cells)]


def folded_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of the model (in eval mode) with each BatchNorm that follows a convolution folded
    into that convolution's weights and bias, by torch.fx's ``fuse``: the same function up to float
    rounding (resnet20's logits within 1e-5), each forward a fifth faster on the CPU, which the
    probes' forward-only passes are made of. A model fx cannot trace or copy runs as it is."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model)
    except Exception:  # untraceable control flow, TorchScript, an attribute deepcopy refuses, …
        return model


def _set_memory_format(model: nn.Module, memory_format: torch.memory_format) -> None:
    # Outside inference mode, whose tensors could not be restored as parameters afterwards; the
    # session puts each parameter's original storage back when it ends.
    with torch.inference_mode(False), torch.no_grad():
        model.to(memory_format=memory_format)


def _forward(model: nn.Module, batch: torch.Tensor, layout: list[torch.memory_format], *,
             first: bool) -> torch.Tensor:
    """Channels-last runs CPU convolutions about 1.5× faster. A model that cannot take it (a
    ``.view`` of a channels-last activation raises) is run in the ordinary layout instead, decided
    on the first batch; any other failure is raised as it is."""
    if layout[0] == torch.channels_last:
        try:
            return model(batch.contiguous(memory_format=torch.channels_last))
        except RuntimeError:
            if not first:
                raise
            layout[0] = torch.contiguous_format
            _set_memory_format(model, torch.contiguous_format)
    return model(batch)
