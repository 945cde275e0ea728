"""Properties of the streaming statistics (stats/moments.py), drawn by hypothesis: whatever the
values and however they are split into batches, the running numbers equal the one-shot ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnviz_report.stats.moments import Moments, RunningChannelMax, RunningGradient, RunningMoments, tensor_norm

# derandomize: CI runs the same examples every time, so a red run is reproducible, never a draw.
settings.register_profile("nnviz", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("nnviz")

FLOAT32_MAX = float(np.finfo(np.float32).max)

# Ordinary activations, and the extremes a broken model produces: huge, tiny and subnormal values.
finite_float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
ordinary_float32 = st.floats(min_value=-1e4, max_value=1e4, width=32)
any_float32 = st.floats(width=32)  # NaN and ±inf included


def arrays(elements: st.SearchStrategy[float], max_size: int = 200) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float32, st.integers(1, max_size), elements=elements)


@st.composite
def split_points(draw: st.DrawFn, n: int) -> list[int]:
    """Sorted cut positions in [0, n], possibly repeated: empty batches are allowed too."""
    return sorted(draw(st.lists(st.integers(0, n), max_size=6)))


def stream(values: np.ndarray, cuts: list[int]) -> Moments:
    running = RunningMoments()
    for part in np.split(values, cuts):
        running.update(torch.from_numpy(np.ascontiguousarray(part)))
    return running.result()


def assert_moments_match(m: Moments, values: np.ndarray) -> None:
    x = values.astype(np.float64)
    scale = float(np.abs(x).max())
    assert m.count == x.size
    assert m.min == x.min() and m.max == x.max()  # extremes are exact
    assert m.zero_fraction == float((x == 0).mean())
    # float32 arithmetic inside the batches: errors are relative to the largest magnitude.
    assert m.mean == pytest.approx(x.mean(), rel=1e-5, abs=1e-5 * scale)
    assert m.std == pytest.approx(x.std(), rel=1e-3, abs=1e-5 * scale)
    assert math.isfinite(m.mean) and math.isfinite(m.std)


@given(data=st.data(), values=arrays(finite_float32))
@example(data=None, values=np.array([3e38, -3e38, 1e38], dtype=np.float32))  # squares overflow float32
@example(data=None, values=np.array([1e-30, 2e-30, -1e-30, 4e-30], dtype=np.float32))  # squares underflow
def test_streaming_moments_equal_one_shot_numpy(data: st.DataObject | None, values: np.ndarray) -> None:
    cuts = data.draw(split_points(len(values))) if data is not None else [1]
    assert_moments_match(stream(values, cuts), values)


@given(data=st.data(), values=arrays(ordinary_float32, max_size=400))
@example(data=None, values=np.array([-1476, 1537, 0, 0], dtype=np.float32))
def test_ordinary_data_any_split_gives_the_same_numbers(data: st.DataObject | None, values: np.ndarray) -> None:
    whole = stream(values, [])
    split = stream(values, data.draw(split_points(len(values))) if data is not None else [1, 3])
    assert_moments_match(whole, values)
    assert split.histogram == whole.histogram
    assert (split.count, split.min, split.max, split.zero_fraction) == (whole.count, whole.min, whole.max,
                                                                        whole.zero_fraction)
    # Batch means are float32 sums: a different split may move the mean by a few float32 epsilons of
    # the largest magnitude ([-1476, 1537, 0, 0] split differently: 15.249985 against 15.25).
    assert split.mean == pytest.approx(whole.mean, rel=1e-6, abs=1e-6 * max(1.0, abs(whole.max), abs(whole.min)))
    assert split.mean == pytest.approx(values.astype(np.float64).mean(), rel=1e-5,
                                       abs=1e-6 * max(1.0, abs(whole.max), abs(whole.min)))


@given(data=st.data(), values=arrays(finite_float32))
@example(data=None, values=np.array([3e38, -1e-45, 1.0], dtype=np.float32))  # a subnormal negative beside huge values
def test_histogram_is_the_same_for_every_split(data: st.DataObject | None, values: np.ndarray) -> None:
    whole = stream(values, []).histogram
    for cuts in ([1], [len(values) - 1], list(range(1, len(values)))) if data is None else (
            [data.draw(split_points(len(values)))]):
        assert stream(values, cuts).histogram == whole
    # and so does the reverse order of arrival
    assert stream(values[::-1].copy(), []).histogram == whole


@given(data=st.data(), values=arrays(finite_float32))
@example(data=None, values=np.array([3e38, -1e-45, 1.0], dtype=np.float32))
def test_histogram_counts_every_value_in_its_own_bin(data: st.DataObject | None, values: np.ndarray) -> None:
    cuts = data.draw(split_points(len(values))) if data is not None else [1]
    hist = stream(values, cuts).histogram
    assert hist.total == values.size
    assert len(hist.counts) <= 64
    # Independent: bin i holds the values in [(start + i)·w, (start + i + 1)·w), exact in float64.
    index = np.floor(values.astype(np.float64) / hist.width).astype(np.int64) - hist.start
    assert index.min() >= 0 and index.max() < len(hist.counts)
    assert tuple(np.bincount(index, minlength=len(hist.counts))) == hist.counts


@given(data=st.data(), values=arrays(any_float32))
def test_non_finite_values_are_counted_and_excluded(data: st.DataObject, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    m = stream(values, data.draw(split_points(len(values))))
    assert m.nonfinite == values.size - finite.size
    assert m.count == finite.size == m.histogram.total
    if finite.size:
        assert_moments_match(m, finite)
    else:
        assert math.isnan(m.mean) and m.histogram.counts == ()


@given(data=st.data(), values=arrays(finite_float32))
def test_norm_is_invariant_to_splitting(data: st.DataObject, values: np.ndarray) -> None:
    expected = float(np.linalg.norm(values.astype(np.float64)))
    parts = np.split(values, data.draw(split_points(len(values))))
    assert tensor_norm(torch.from_numpy(values)) == pytest.approx(expected, rel=1e-12)
    combined = math.sqrt(sum(tensor_norm(torch.from_numpy(np.ascontiguousarray(p))) ** 2 for p in parts))
    assert combined == pytest.approx(expected, rel=1e-9)


@given(data=st.data(), values=arrays(st.floats(min_value=-1e3, max_value=1e3, width=32)))
def test_streamed_root_mean_square_is_the_norm(data: st.DataObject, values: np.ndarray) -> None:
    # The report derives a layer's gradient RMS from its streamed moments; it must equal the norm.
    m = stream(values, data.draw(split_points(len(values))))
    rms_norm = math.sqrt(m.count * (m.mean**2 + m.std**2))
    assert rms_norm == pytest.approx(tensor_norm(torch.from_numpy(values)), rel=1e-4, abs=1e-4)


@given(data=st.data(), values=hnp.arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 5),
                                                                 st.integers(1, 4)), elements=ordinary_float32))
def test_channel_max_and_dead_channels_for_any_split(data: st.DataObject, values: np.ndarray) -> None:
    running = RunningChannelMax()
    for part in np.split(values, data.draw(split_points(len(values)))):
        if len(part):
            running.update(torch.from_numpy(np.ascontiguousarray(part)))
    maxima = values.max(axis=(0, 2))
    assert running.maxima is not None
    np.testing.assert_array_equal(running.maxima.numpy(), maxima.astype(np.float64))
    assert running.dead_channels() == (int((maxima <= 0).sum()), values.shape[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ordinary_numbers_are_unchanged(dtype: torch.dtype) -> None:
    # Pinned values for ordinary data: the fallbacks for extreme magnitudes must not touch them.
    x = torch.linspace(-3, 5, 1000, dtype=dtype)
    m = stream(x.numpy(), [100, 350, 999])
    assert m.mean == pytest.approx(1.0, abs=1e-6)
    assert m.std == pytest.approx(float(x.double().std(correction=0)), rel=1e-6)
    assert m.histogram.width == 0.25 and m.histogram.start == -12 and m.histogram.total == 1000
    assert len(m.histogram.counts) == 33 and m.histogram.counts[:3] == (32, 31, 31)


@given(data=st.data(), values=arrays(any_float32))
def test_running_gradient_is_the_norm_for_any_split(data: st.DataObject, values: np.ndarray) -> None:
    running = RunningGradient()
    for part in np.split(values, data.draw(split_points(len(values)))):
        running.update(torch.from_numpy(np.ascontiguousarray(part)))
    summary = running.result()
    finite = values[np.isfinite(values)].astype(np.float64)
    assert summary.nonfinite == values.size - finite.size and summary.count == finite.size
    if finite.size:
        assert summary.rms == pytest.approx(float(np.linalg.norm(finite)) / math.sqrt(finite.size), rel=1e-6)
        assert summary.max_abs == float(np.abs(finite).max())
    else:
        assert math.isnan(summary.rms) and math.isnan(summary.max_abs)
