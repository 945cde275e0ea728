"""The compiled fused kernel (stats/_fused.c through stats/fused.py) against the torch path and
against independent float64 computations: extremes, zeros and every histogram bin exactly equal,
mean and std to float rounding; it is used wherever it is built, and the torch path still runs
everything when it is switched off or cannot take a batch."""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from nnviz_report.capture import LayerCapture, run_capture
from nnviz_report.stats import fused
from nnviz_report.stats.moments import Moments, RunningGradient, RunningMoments
from tests.test_properties import arrays, assert_moments_match, finite_float32, split_points

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
built = pytest.mark.skipif(not fused.library_files(), reason="the optional kernel is not built here "
                           "(pip install -e . or python setup.py build_ext --inplace builds it)")


def stream(batches: list[torch.Tensor]) -> Moments:
    running = RunningMoments()
    for batch in batches:
        running.update(batch)
    return running.result()


def both_paths(batches: list[torch.Tensor]) -> tuple[Moments, Moments]:
    kernel = stream(batches)
    with fused.torch_only():
        reference = stream(batches)
    return kernel, reference


def assert_same_numbers(kernel: Moments, reference: Moments) -> None:
    assert (kernel.count, kernel.min, kernel.max, kernel.zero_fraction, kernel.nonfinite) == \
        (reference.count, reference.min, reference.max, reference.zero_fraction, reference.nonfinite)
    assert kernel.histogram == reference.histogram
    scale = max(abs(reference.min), abs(reference.max), 1e-30)
    assert kernel.mean == pytest.approx(reference.mean, rel=1e-6, abs=1e-7 * scale)
    assert kernel.std == pytest.approx(reference.std, rel=1e-6, abs=1e-7 * scale)


def independent(values: np.ndarray, m: Moments) -> None:
    """The float64 reference: every bin by floor(x / width), mean and std in float64."""
    x = values.astype(np.float64).ravel()
    index = np.floor(x / m.histogram.width).astype(np.int64) - m.histogram.start
    assert index.min() >= 0 and tuple(np.bincount(index, minlength=len(m.histogram.counts))) == m.histogram.counts
    assert (m.count, m.min, m.max) == (x.size, x.min(), x.max())
    assert m.zero_fraction == float((x == 0).mean())
    scale = max(float(np.abs(x).max()), 1e-30)
    assert m.mean == pytest.approx(x.mean(), rel=1e-6, abs=1e-7 * scale)
    assert m.std == pytest.approx(x.std(), rel=1e-6, abs=1e-7 * scale)


def relu_maps(seed: int, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, 7, 7, generator=g).clamp_min(0)


CASES = {
    # name: batches in order of arrival
    "gaussian": [torch.randn(4, 3, 9, 9, generator=torch.Generator().manual_seed(s)) for s in range(4)],
    "after a ReLU": [relu_maps(s) for s in range(4)],
    "range widens batch by batch": [torch.linspace(-1, 1, 500) * 3.0**k for k in range(5)],
    "mean far from zero": [1000 + torch.randn(3000, generator=torch.Generator().manual_seed(s)) for s in range(3)],
    "mean jumps between batches": [torch.full((50,), 1e4) + torch.arange(50.0), torch.arange(50.0) * 1e-3],
    "constant": [torch.full((4, 4), 2.5)] * 3,
    "all zeros, signed": [torch.zeros(100), -torch.zeros(100)],
    "tiny negatives beside a wide range": [torch.tensor([-1e-38, -3e-45, 1000.0, -1000.0, 0.0, 5e-39])],
    "huge": [torch.tensor([3e38, -3e38, 1e38, 0.0]), torch.tensor([1.5e38, -2e37])],
    "subnormal only": [torch.tensor([1e-45, 3e-45, -1e-45, 0.0])],
    "odd lengths": [torch.randn(n, generator=torch.Generator().manual_seed(n)) for n in (1, 17, 4097, 8193)],
}


@built
@pytest.mark.parametrize("name", list(CASES))
def test_kernel_and_torch_paths_give_the_same_numbers(name: str) -> None:
    batches = [b.contiguous() for b in CASES[name]]
    kernel, reference = both_paths(batches)
    assert_same_numbers(kernel, reference)
    independent(torch.cat([b.reshape(-1) for b in batches]).numpy(), kernel)


@built
@given(data=st.data(), values=arrays(finite_float32, max_size=300))
def test_any_values_any_split_both_paths_agree(data: st.DataObject, values: np.ndarray) -> None:
    cuts = data.draw(split_points(len(values)))
    batches = [torch.from_numpy(np.ascontiguousarray(p)) for p in np.split(values, cuts)]
    kernel, reference = both_paths(batches)
    assert kernel.histogram == reference.histogram
    assert (kernel.min, kernel.max, kernel.zero_fraction) == (reference.min, reference.max, reference.zero_fraction)
    assert_moments_match(kernel, values)


@built
def test_the_kernel_takes_ordinary_batches_and_declines_the_rest() -> None:
    running = RunningMoments()
    assert running.update_fused(torch.randn(10, 10)) is not None
    assert running.update_fused(torch.randn(10, 10).t()) is None  # not contiguous
    assert running.update_fused(torch.randn(10, dtype=torch.float64)) is None
    assert running.update_fused(torch.tensor([1.0, float("nan")])) is None
    assert running.update_fused(torch.tensor([float("inf"), 0.0])) is None
    assert running.count == 100  # a declined batch changes nothing
    running.update(torch.tensor([1.0, float("nan"), float("-inf")]))  # the torch path counts them
    assert running.result().nonfinite == 2 and running.count == 101


@built
def test_row_means_and_channel_maxima_equal_torch() -> None:
    values = torch.randn(6, 5, 7, 3, generator=torch.Generator().manual_seed(3))
    means, maxima = torch.empty(6, 5), torch.empty(5)
    assert RunningMoments().update_fused(values, rows=30, channels=5, row_means=means, channel_max=maxima)
    expected = values.double().flatten(2).mean(2)
    np.testing.assert_allclose(means.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
    assert torch.equal(maxima, values.amax(dim=(0, 2, 3)))


@built
@pytest.mark.parametrize("values", [torch.randn(5000) * 3, torch.tensor([-7.5, 2.0, 0.0]), torch.full((9,), -0.0)])
def test_gradient_kernel_equals_float64(values: torch.Tensor) -> None:
    running = RunningGradient()
    running.update(values[: len(values) // 2].contiguous())
    running.update(values[len(values) // 2 :].contiguous())
    summary = running.result()
    x = values.double().numpy()
    assert summary.rms == pytest.approx(math.sqrt((x**2).mean()), rel=1e-12, abs=1e-300)
    assert summary.max_abs == float(np.abs(x).max())


def conv_relu_net() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 3, stride=2),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 15 * 15, 16), nn.ReLU(), nn.Linear(16, 10))


def count_kernel_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"activation": 0, "gradient": 0}
    activation, gradient = fused.activation_pass, fused.gradient_pass

    def spy_activation(*args: object, **kwargs: object) -> fused.ActivationPass:
        calls["activation"] += 1
        return activation(*args, **kwargs)  # type: ignore[arg-type]

    def spy_gradient(values: torch.Tensor) -> tuple[float, float]:
        calls["gradient"] += 1
        return gradient(values)

    monkeypatch.setattr(fused, "activation_pass", spy_activation)
    monkeypatch.setattr(fused, "gradient_pass", spy_gradient)
    return calls


def capture(model: nn.Module) -> list[LayerCapture]:
    x = torch.randn(20, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    return run_capture(model, x, torch.arange(20) % 10, batch_size=8, device=CPU, showcase_positions=(1, 9)).layers


def test_a_built_kernel_loads() -> None:
    """A library next to the package that does not load (stale, wrong ABI, broken build) would
    silently send every capture down the slow path."""
    if not fused.library_files():
        pytest.skip("the optional kernel is not built here")
    assert fused.available()


@built
def test_capture_uses_the_kernel_and_matches_the_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    model = conv_relu_net()
    calls = count_kernel_calls(monkeypatch)
    kernel = capture(model)
    batches, layers = 3, len(kernel)
    assert calls["activation"] >= batches * layers and calls["gradient"] == batches * layers
    with fused.torch_only():
        reference = capture(model)
    assert calls["gradient"] == batches * layers  # torch_only: no further kernel call
    for k, r in zip(kernel, reference, strict=True):
        assert k.name == r.name
        assert_same_numbers(k.activation, r.activation)
        assert (k.dead_channels, k.channels, k.activation.count) == (r.dead_channels, r.channels, r.activation.count)
        assert k.gradient.count == r.gradient.count and k.gradient.max_abs == r.gradient.max_abs
        assert k.gradient.rms == pytest.approx(r.gradient.rms, rel=1e-6)
        assert k.pooled_features is not None and r.pooled_features is not None
        np.testing.assert_allclose(k.pooled_features, r.pooled_features, rtol=1e-5, atol=1e-6)
        assert (k.showcase_maps is None) == (r.showcase_maps is None)  # feature maps only
        if k.showcase_maps is not None:
            np.testing.assert_array_equal(k.showcase_maps, r.showcase_maps)


def test_torch_only_forces_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_kernel_calls(monkeypatch)
    with fused.torch_only():
        assert not fused.available() and not fused.accepts(torch.ones(3))
        layers = capture(conv_relu_net())
    assert calls == {"activation": 0, "gradient": 0}
    assert all(layer.activation.histogram.total == layer.activation.count > 0 for layer in layers)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_setup_builds_a_kernel_that_loads_and_counts(tmp_path: Path) -> None:
    """What pip install runs: setup.py's optional extension, built here into a scratch folder."""
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
                    "--build-temp", str(tmp_path / "tmp")], cwd=ROOT, check=True, capture_output=True)
    (library,) = (tmp_path / "lib").rglob("_fused*")
    kernel = ctypes.CDLL(str(library))
    assert kernel.nnviz_fused_version() == fused.KERNEL_VERSION
    values = np.array([-2.5, -1e-30, 0.0, 0.75, 3.0], dtype=np.float32)
    out = np.zeros(5)
    slots = np.zeros(4 + 2, dtype=np.int64)  # bins -3 .. 0 at width 1, and the two outer slots
    kernel.nnviz_activation_pass(
        ctypes.c_void_p(values.ctypes.data), ctypes.c_int64(1), ctypes.c_int64(5), ctypes.c_int64(1),
        ctypes.c_double(0.0), ctypes.c_float(1.0), ctypes.c_int64(-3), ctypes.c_int64(4),
        ctypes.c_void_p(slots.ctypes.data), None, None, ctypes.c_void_p(out.ctypes.data))
    wide = values.astype(np.float64)
    assert list(out) == [-2.5, 3.0, float(wide.sum()), float((wide**2).sum()), 1]
    assert list(slots) == [0, 1, 0, 1, 2, 1]  # -2.5 → bin -3, -1e-30 → bin -1, 0 and 0.75 → bin 0, 3.0 above
