"""The capture's shared passes give the numbers of the direct computation: the batch mean taken
from the per-sample channel means, the histogram counted in uint8 with and without a shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nnviz_report.capture import run_capture
from nnviz_report.stats.moments import RunningMoments


def test_a_known_mean_gives_the_moments_of_the_direct_computation() -> None:
    torch.manual_seed(0)
    batches = [torch.randn(8, 4, 6, 6) * 3 + 1.5 for _ in range(3)]
    direct, hinted = RunningMoments(), RunningMoments()
    for b in batches:
        direct.update(b)
        hinted.update(b, mean=float(b.flatten(2).mean(2).double().mean()))
    a, h = direct.result(), hinted.result()
    assert h.mean == pytest.approx(a.mean, rel=1e-6) and h.std == pytest.approx(a.std, rel=1e-6)
    assert h.histogram == a.histogram and (h.min, h.max, h.zero_fraction) == (a.min, a.max, a.zero_fraction)
    every = torch.cat([b.reshape(-1) for b in batches]).double()
    assert h.mean == pytest.approx(float(every.mean()), rel=1e-6)
    assert h.std == pytest.approx(float(every.std(unbiased=False)), rel=1e-6)


def test_a_known_mean_is_ignored_where_the_batch_has_non_finite_values() -> None:
    values = torch.tensor([1.0, 2.0, float("nan"), 3.0])
    moments = RunningMoments()
    moments.update(values, mean=float("nan"))
    result = moments.result()
    assert result.nonfinite == 1 and result.mean == pytest.approx(2.0) and math.isfinite(result.std)


@pytest.mark.parametrize("shift", [0.0, -2.5])  # bins from 0 (after a ReLU, no shift) and below it
def test_histograms_count_every_value_in_its_bin(shift: float) -> None:
    torch.manual_seed(1)
    values = torch.rand(5000) * 4 + shift
    moments = RunningMoments()
    moments.update(values[:2500])
    moments.update(values[2500:])
    histogram = moments.result().histogram
    expected, _ = np.histogram(values.double().numpy(), bins=np.asarray(histogram.edges))
    assert histogram.counts == tuple(int(c) for c in expected) and histogram.total == 5000


def test_capture_layer_means_equal_the_full_activations() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(),
                          nn.Linear(5 * 32 * 32, 10))
    x, y = torch.randn(12, 3, 32, 32), torch.arange(12) % 10
    seen: dict[str, list[torch.Tensor]] = {"0": [], "2": []}
    handles = [model[int(k)].register_forward_hook(lambda m, i, o, k=k: seen[k].append(o.detach().clone()))
               for k in seen]
    with torch.no_grad():
        model.eval()(x[:5]), model(x[5:])
    for h in handles:
        h.remove()
    layers = {layer.name: layer for layer in run_capture(model, x, y, batch_size=5, device=torch.device("cpu"),
                                                           showcase_positions=()).layers}
    for name, parts in seen.items():
        every = torch.cat([p.reshape(-1) for p in parts]).double()
        assert layers[name].activation.mean == pytest.approx(float(every.mean()), rel=1e-5, abs=1e-7)
        assert layers[name].activation.std == pytest.approx(float(every.std(unbiased=False)), rel=1e-5)
