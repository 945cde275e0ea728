"""Fixed-size running statistics that fold in one batch at a time.

Memory stays constant however many samples pass through: each accumulator holds a handful of
numbers and a histogram of at most ``max_bins`` bins. The histogram's bins have a power-of-two
width and are aligned at zero, so widening the range merges bins exactly, and the final bins
depend only on the overall minimum and maximum, never on how the data was split into batches.
"""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
import torch

from . import fused
from .histogram import histogram_quantile

MIN_EXPONENT = -60  # smallest bin width 2**-60: far below float32 resolution around 1
_FLOAT32_SAFE_MAX = 1e15  # moments of larger values are computed in float64
_FLOAT32_SAFE_MIN = 1e-15  # and so are those of batches whose values lie closer together


@dataclasses.dataclass(frozen=True)
class Histogram:
    """Bin ``i`` covers ``[(start + i) * width, (start + i + 1) * width)``."""

    start: int
    width: float
    counts: tuple[int, ...]

    @property
    def edges(self) -> tuple[float, ...]:
        return tuple((self.start + i) * self.width for i in range(len(self.counts) + 1))

    @property
    def total(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float:
        """Linear interpolation inside the bin holding the q-quantile (exact to one bin width)."""
        return histogram_quantile(self.start, self.width, self.counts, q)


@dataclasses.dataclass(frozen=True)
class Moments:
    count: int
    mean: float
    std: float
    min: float
    max: float
    zero_fraction: float
    nonfinite: int
    histogram: Histogram


def _bin_exponent(lo: float, hi: float, max_bins: int) -> int:
    """The smallest power-of-two exponent whose zero-aligned bins cover [lo, hi] in max_bins."""
    span = max(hi - lo, max(abs(lo), abs(hi)) * 1e-6, 1e-30)
    exponent = max(MIN_EXPONENT, math.floor(math.log2(span / max_bins)))
    while math.floor(hi / 2.0**exponent) - math.floor(lo / 2.0**exponent) + 1 > max_bins:
        exponent += 1
    return exponent


class RunningMoments:
    """Mean and variance by Chan's pairwise update (stable for any split), plus min, max,
    exact-zero count, non-finite count and the zero-aligned histogram."""

    def __init__(self, max_bins: int = 64) -> None:
        self.max_bins = max_bins
        self.count = 0
        self._mean = 0.0
        self._m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zeros = 0
        self.nonfinite = 0
        self._exponent: int | None = None
        self._start = 0
        self._counts = np.zeros(0, dtype=np.int64)

    def update(self, values: torch.Tensor, mean: float | None = None) -> None:
        """``mean``: the batch's mean when the caller has it already (capture derives it from the
        per-sample channel means it keeps anyway), saving a pass over the values; used only for
        finite float32/float64 batches of ordinary magnitude, where it equals the direct mean to
        float rounding."""
        flat = values.detach().reshape(-1)
        if flat.numel() == 0 or self.update_fused(flat) is not None:
            return
        if flat.dtype not in (torch.float32, torch.float64):
            flat = flat.float()  # integers, and half precision, whose sums would lose digits
        lo, hi = torch.aminmax(flat)
        lo_value, hi_value = float(lo), float(hi)
        # NaN and ±inf surface in the extremes, so the common all-finite case costs no extra pass.
        if not (math.isfinite(lo_value) and math.isfinite(hi_value)):
            mean = None
            finite = flat[torch.isfinite(flat)]
            self.nonfinite += flat.numel() - finite.numel()
            if finite.numel() == 0:
                return
            flat = finite
            lo, hi = torch.aminmax(flat)
            lo_value, hi_value = float(lo), float(hi)
        n = flat.numel()
        magnitude = max(abs(lo_value), abs(hi_value))
        # Squares of float32 values beyond ~1e19 overflow and deviations below ~1e-19 underflow
        # (an exploding or vanishing layer); only then is the batch worth a float64 copy.
        extreme = magnitude > _FLOAT32_SAFE_MAX or 0 < hi_value - lo_value < _FLOAT32_SAFE_MIN
        batch_mean, batch_m2 = _mean_and_m2(flat.double() if extreme else flat, None if extreme else mean)
        self._fold(n, batch_mean, batch_m2, lo_value, hi_value, n - count_nonzero(flat))
        self._add_to_histogram(flat, lo_value, hi_value)

    def update_fused(self, values: torch.Tensor, *, rows: int = 1, channels: int = 1,
                     row_means: torch.Tensor | None = None,
                     channel_max: torch.Tensor | None = None) -> fused.ActivationPass | None:
        """The batch through the compiled kernel (stats/fused.py), seen as ``rows`` rows (the
        capture has each row's mean and each channel's maximum written into its buffers on the
        way): one pass, or two for a layer's first batch, when the bins must widen, or when the
        batch's mean lies far from the running mean. None, with nothing folded, where the kernel
        cannot take the batch (not built, not contiguous float32 on the CPU, NaN or ±inf, bins
        beyond float32's exact integers): the torch path of ``update`` then does."""
        if not fused.accepts(values):
            return None
        n = values.numel()
        guess = self._next_window()
        shift = self._mean if self.count else 0.0
        first = fused.activation_pass(values, rows=rows, shift=shift, window=guess, channels=channels,
                                      row_means=row_means, channel_max=channel_max)
        if not math.isfinite(first.sum):
            return None
        exponent = _bin_exponent(min(self.min, first.min), max(self.max, first.max), self.max_bins)
        scale = 2.0**-exponent
        start = math.floor(first.min * scale)
        window = fused.Window(exponent, start, math.floor(first.max * scale) - start + 1)
        if not window.fits():
            return None
        batch_mean = first.sum / n
        # Σ(x - shift)² - n·(mean - shift)² is Σ(x - mean)²; the subtraction loses the digits of the
        # ratio of the two, so a batch far from the running mean is summed again about its own.
        batch_m2 = first.squares - n * (batch_mean - shift) ** 2
        counts = None
        if guess is not None and guess.exponent == exponent and first.outside == 0 and first.counts is not None:
            counts = first.counts[start - guess.start : start - guess.start + window.bins].copy()
        if counts is None or not first.squares <= 1e4 * batch_m2:
            second = fused.activation_pass(values, rows=1, shift=batch_mean, window=window if counts is None else None)
            batch_m2 = second.squares
            if counts is None and second.counts is not None:
                counts = second.counts.copy()
        assert counts is not None
        self._fold(n, batch_mean, batch_m2, first.min, first.max, first.zeros)
        self._set_exponent(exponent)
        self._place(start, counts)
        return first

    def _next_window(self) -> fused.Window | None:
        """The bins the next batch can fill without widening them: every histogram of at most
        max_bins bins at the current width that covers the range so far. None before the first."""
        if self._exponent is None or self.count == 0:
            return None
        scale = 2.0**-self._exponent
        start = math.floor(self.max * scale) - self.max_bins + 1
        window = fused.Window(self._exponent, start, math.floor(self.min * scale) + self.max_bins - start)
        return window if window.fits() else None

    def _fold(self, n: int, batch_mean: float, batch_m2: float, lo: float, hi: float, zeros: int) -> None:
        """Chan's pairwise update of count, mean and m2, and the extremes and zeros."""
        total = self.count + n
        delta = batch_mean - self._mean
        self._mean += delta * n / total
        self._m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total
        self.zeros += zeros
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)

    def _set_exponent(self, exponent: int) -> None:
        if self._exponent is not None and exponent > self._exponent:
            self._merge_bins(exponent - self._exponent)
        self._exponent = exponent

    def _add_to_histogram(self, x: torch.Tensor, lo: float, hi: float) -> None:
        exponent = _bin_exponent(self.min, self.max, self.max_bins)
        self._set_exponent(exponent)
        # Scaling by a power of two and flooring are exact, so every value lands in the same
        # zero-aligned bin whichever batch it arrives in; histc then counts integer values.
        scale = 2.0**-exponent
        first, last = math.floor(lo * scale), math.floor(hi * scale)
        # float32 holds every integer below 2**24 exactly; beyond that, count in float64.
        exact_in_float32 = max(abs(first), abs(last) + 1) < 2**24
        source = x if exact_in_float32 else x.double()
        index = torch.mul(source, scale, out=scratch(source)).floor_()
        if lo < 0 and exponent > 0:
            # A tiny negative value times a small scale can underflow to -0.0 in float32 and
            # land in bin 0; every negative value belongs in bin -1 or below.
            index = torch.where(x < 0, index.clamp(max=-1), index)
        bins = last - first + 1
        # Every index lies in [first, last] by construction, so index - first is an exact small
        # integer and bincount of it is histc's answer at about half of histc's cost; at most 256
        # bins (always, with the default 64) fit in uint8, which bincount counts twice as fast as
        # int32. Non-negative layers (after a ReLU) start at bin 0 and need no shift.
        small = torch.uint8 if bins <= 256 else torch.int32
        offsets = scratch(index, small if exact_in_float32 else torch.int64)
        offsets.copy_(index.sub_(first) if first else index)
        counts = torch.bincount(offsets, minlength=bins)
        if counts.numel() != bins:
            raise AssertionError(f"histogram index beyond its {bins} bins; lo={lo}, hi={hi}, exponent={exponent}")
        self._place(first, counts.to(torch.int64).cpu().numpy())

    def _merge_bins(self, shift: int) -> None:
        if len(self._counts) == 0:
            return
        old_index = np.arange(self._start, self._start + len(self._counts))
        new_index = old_index >> shift  # floor division by 2**shift, also for negative bins
        start = int(new_index[0])
        merged = np.bincount(new_index - start, weights=self._counts).astype(np.int64)
        self._start, self._counts = start, merged

    def _place(self, lo: int, counts: np.ndarray) -> None:
        if len(self._counts) == 0:
            self._start, self._counts = lo, counts
            return
        start = min(self._start, lo)
        end = max(self._start + len(self._counts), lo + len(counts))
        combined = np.zeros(end - start, dtype=np.int64)
        combined[self._start - start : self._start - start + len(self._counts)] += self._counts
        combined[lo - start : lo - start + len(counts)] += counts
        self._start, self._counts = start, combined

    def result(self) -> Moments:
        if self.count == 0:
            empty = Histogram(0, 1.0, ())
            return Moments(0, math.nan, math.nan, math.nan, math.nan, math.nan, self.nonfinite, empty)
        exponent = self._exponent if self._exponent is not None else 0
        histogram = Histogram(self._start, 2.0**exponent, tuple(int(c) for c in self._counts))
        return Moments(
            count=self.count,
            mean=self._mean,
            std=math.sqrt(max(self._m2, 0.0) / self.count),
            min=self.min,
            max=self.max,
            zero_fraction=self.zeros / self.count,
            nonfinite=self.nonfinite,
            histogram=histogram,
        )


class RunningChannelMax:
    """Per-channel maximum over every sample and position (channel = dim 1), to find channels
    that are never positive: a ReLU after them outputs zero for the whole sample."""

    def __init__(self) -> None:
        self.maxima: torch.Tensor | None = None

    def update(self, values: torch.Tensor) -> None:
        if values.dim() < 2:
            return
        reduce_dims = [d for d in range(values.dim()) if d != 1]
        batch_max = values.detach().amax(dim=reduce_dims).to("cpu", torch.float64)
        self.maxima = batch_max if self.maxima is None else torch.maximum(self.maxima, batch_max)

    def dead_channels(self) -> tuple[int, int]:
        """(channels never positive, channels)."""
        if self.maxima is None:
            return 0, 0
        return int((self.maxima <= 0).sum()), int(self.maxima.numel())


@dataclasses.dataclass(frozen=True)
class GradientSummary:
    count: int
    rms: float
    max_abs: float
    nonfinite: int


class RunningGradient:
    """Root mean square and largest magnitude of a gradient, in two passes per batch: gradient
    tables show only these, so a full histogram per layer would be wasted work on the hot path."""

    def __init__(self) -> None:
        self.count = 0
        self._sum_squares = 0.0
        self.max_abs = 0.0
        self.nonfinite = 0

    def update(self, values: torch.Tensor, mean: float | None = None) -> None:
        """``mean``: the batch's mean when the caller has it already (capture derives it from the
        per-sample channel means it keeps anyway), saving a pass over the values; used only for
        finite float32/float64 batches of ordinary magnitude, where it equals the direct mean to
        float rounding."""
        flat = values.detach().reshape(-1)
        if flat.numel() == 0:
            return
        if fused.accepts(flat):
            squares, peak = fused.gradient_pass(flat)
            if math.isfinite(squares):  # else the torch path below counts the non-finite values
                self.count += flat.numel()
                self._sum_squares += squares
                self.max_abs = max(self.max_abs, peak)
                return
        norm, peak = _norm_and_peak(flat)
        if not (math.isfinite(norm) and math.isfinite(peak)):
            finite = flat[torch.isfinite(flat)]
            self.nonfinite += flat.numel() - finite.numel()
            flat = finite
            if flat.numel() == 0:
                return
            norm, peak = _norm_and_peak(flat)
        self.count += flat.numel()
        self._sum_squares += norm * norm
        self.max_abs = max(self.max_abs, peak)

    def result(self) -> GradientSummary:
        rms = math.sqrt(self._sum_squares / self.count) if self.count else math.nan
        return GradientSummary(self.count, rms, self.max_abs if self.count else math.nan, self.nonfinite)


# Squares of gradients within these bounds neither overflow nor lose a relevant part to underflow
# in float32; beyond them the sum of squares is taken in float64.
_GRADIENT_FLOAT32_MAX = 1e15
_GRADIENT_FLOAT32_MIN = 1e-10


def _mean_and_m2(flat: torch.Tensor, known_mean: float | None = None) -> tuple[float, float]:
    """Mean and sum of squared deviations, in two passes (one when the mean is known). torch.var_mean
    (Welford) is about 4x slower on CPU; the mean and the squares are summed pairwise by torch.sum,
    which keeps the relative error near 1e-7 where a running float32 accumulator would drift to 1e-5.
    The sum of squared deviations is insensitive to a rounding-sized error in the mean."""
    mean = flat.mean() if known_mean is None else known_mean
    deviations = torch.sub(flat, mean, out=scratch(flat))
    return float(mean), float(deviations.square_().sum())


def _norm_and_peak(flat: torch.Tensor) -> tuple[float, float]:
    lo, hi = torch.aminmax(flat)
    peak = max(-float(lo), float(hi))
    # vector_norm accumulates float32 squares in order (relative error ~1e-5 over a million
    # values) and its float64 variant copies the tensor first; squaring and a pairwise sum is
    # both exact enough and about 3x faster.
    ordinary = _GRADIENT_FLOAT32_MIN <= peak <= _GRADIENT_FLOAT32_MAX and flat.dtype == torch.float32
    values = flat if ordinary else flat.double()
    return math.sqrt(float(torch.mul(values, values, out=scratch(values)).sum())), peak


def count_nonzero(flat: torch.Tensor) -> int:
    """Non-zero elements of a 1-D tensor. On the CPU numpy's SIMD count is ~5x faster than
    torch.count_nonzero (which was the costliest single reduction of the capture); same answer,
    -0.0 counts as zero and NaN as non-zero in both."""
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64) and not flat.requires_grad:
        return int(np.count_nonzero(flat.numpy()))
    return int(torch.count_nonzero(flat))


# One reusable buffer per (dtype, device) for the activation-sized temporaries of the reductions
# (deviations, squares, histogram indices): a fresh allocation of that size may be freshly mapped
# memory (glibc maps blocks above its mmap threshold) and pay a page fault per 4 KiB on every use.
# Per thread, so two captures running in parallel threads never share one.
_LOCAL = threading.local()


def _buffers() -> dict[tuple[torch.dtype, torch.device], torch.Tensor]:
    if not hasattr(_LOCAL, "buffers"):
        _LOCAL.buffers = {}
    return _LOCAL.buffers  # type: ignore[no-any-return]


def scratch(like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A buffer of ``like``'s shape and device, in ``dtype`` (default: ``like``'s); its contents
    are garbage, and it is shared per dtype, so a caller must be done with it before the next call."""
    dtype = dtype or like.dtype
    if like.device.type != "cpu":
        # Other devices' caching allocators already reuse memory, and CUDA runs gradient hooks on
        # its own long-lived thread, whose buffers nothing would release.
        return torch.empty(like.shape, dtype=dtype, device=like.device)
    key = (dtype, like.device)
    buffers = _buffers()
    buffer = buffers.get(key)
    if buffer is None or buffer.numel() < like.numel():
        buffer = buffers[key] = torch.empty(like.numel(), dtype=dtype, device=like.device)
    return buffer[: like.numel()].view(like.shape)


def release_scratch() -> None:
    """Free this thread's buffers (the capture calls this when it ends, so they do not outlive it)."""
    _buffers().clear()


def tensor_norm(values: torch.Tensor) -> float:
    """The L2 norm, each value squared and summed in float64 (without a float64 copy of floating
    point values; integer ones, which the norm refuses, are converted)."""
    values = values.detach()
    if not values.is_floating_point():
        values = values.to(torch.float64)
    return float(torch.linalg.vector_norm(values, dtype=torch.float64))
