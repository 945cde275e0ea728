"""The robustness probe: the fixed sample under each corruption of the suite, through the model.

Forward passes only, in batches, under ``torch.no_grad``, with the model's state put back
afterwards (``hooks.model_session``); the images go through the pipeline's own normalisation.
Returns plain logits; every number is computed from them in sections/robustness.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .corruptions import SEVERITIES, SUITE, Corruption, corrupt_batch
from .data import normalise
from .hooks import model_session


@dataclasses.dataclass(frozen=True)
class ProbeRun:
    corruption: Corruption
    severity: int
    logits: np.ndarray  # (N, classes) float32, in sample order


def run_probes(model: nn.Module, images: torch.Tensor, source_indices: Sequence[int], *, batch_size: int,
               device: torch.device, seed: int, severities: Sequence[int] = SEVERITIES,
               suite: Sequence[Corruption] = SUITE, progress: Callable[[int], None] | None = None) -> list[ProbeRun]:
    """``images``: the sample's uint8 (N, 3, H, W) pixels."""
    pixels = images.numpy()
    runs = []
    with model_session(model, device, param_grads=False), torch.no_grad():
        for corruption in suite:
            for severity in severities:
                parts = []
                # Corrupted a batch at a time: memory stays that of one batch, whatever the sample size.
                for start in range(0, len(pixels), batch_size):
                    stop = start + batch_size
                    corrupted = corrupt_batch(pixels[start:stop], corruption, severity, source_indices[start:stop],
                                              seed=seed)
                    batch = normalise(torch.from_numpy(corrupted)).to(device)
                    parts.append(model(batch).detach().to("cpu", torch.float32).numpy())
                runs.append(ProbeRun(corruption, severity, np.concatenate(parts)))
                if progress is not None:
                    progress(1)
    return runs
