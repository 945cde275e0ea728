"""Which samples the report shows in full (feature maps, saliency, slices): chosen from the
capture's own logits, deterministically, so that they inform."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def choose_showcase(labels: Tensor, count: int, *, predictions: Sequence[int] | None = None,
                    confidences: Sequence[float] | None = None) -> tuple[int, ...]:
    """Showcase samples that inform, deterministically, in this order of roles: the most
    confidently correct sample, the most confidently misclassified one (when any is), the least
    confidently correct one, then more misclassified ones, then the most confident of the rest;
    each role prefers a class not shown yet. Ties go to the earlier sample. Without predictions:
    the first sample of each of the first ``count`` classes."""
    label_list = [int(v) for v in labels.tolist()]
    if predictions is None or confidences is None:
        first: dict[int, int] = {}
        for position, label in enumerate(label_list):
            first.setdefault(label, position)
            if len(first) == count:
                break
        return tuple(first[c] for c in sorted(first))
    positions = range(len(label_list))
    correct = [i for i in positions if int(predictions[i]) == label_list[i]]
    wrong = [i for i in positions if int(predictions[i]) != label_list[i]]
    most_confident = sorted(correct, key=lambda i: (-confidences[i], i))
    least_confident = sorted(correct, key=lambda i: (confidences[i], i))
    confidently_wrong = sorted(wrong, key=lambda i: (-confidences[i], i))
    everything = sorted(positions, key=lambda i: (-confidences[i], i))
    roles = [most_confident, confidently_wrong, least_confident] + [confidently_wrong] * max(0, count - 3)
    chosen: list[int] = []
    for slot in range(min(count, len(label_list))):
        candidates = [i for i in (roles[slot] if slot < len(roles) else []) if i not in chosen] or \
            [i for i in everything if i not in chosen]
        shown = {label_list[i] for i in chosen}
        fresh = [i for i in candidates if label_list[i] not in shown]
        chosen.append((fresh or candidates)[0])
    return tuple(chosen)


def predictions_from_logits(logits: np.ndarray) -> tuple[list[int], list[float]]:
    """Predicted class and its softmax probability per sample (softmax in float64): what the
    showcase is chosen from."""
    best = torch.softmax(torch.from_numpy(logits).double(), dim=1).max(dim=1)
    return [int(v) for v in best.indices.tolist()], [float(v) for v in best.values.tolist()]
