"""The compiled fused reductions (``_fused.c``), loaded with ctypes when the install built them.

The capture folds every layer output into running statistics; in torch that is about ten passes
over each activation (extremes, mean, deviations, squares, zeros, histogram indices, bin counts,
per-sample channel means, channel maxima) and three over each gradient. The C kernel does the
same in one pass each. It is an optional extension (setup.py): without a C compiler the package
installs without it and every caller takes the torch path, which stays the reference and handles
everything the kernel does not take: other dtypes and devices, non-contiguous tensors, batches
with NaN or ±inf, histogram windows beyond float32's exact integers.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib.machinery
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

KERNEL_VERSION = 1  # nnviz_fused_version() of the C source this binding was written for
MAX_WINDOW_BINS = 256  # the C side's MAX_SLOTS less the two out-of-window slots
_EXACT_FLOAT32_INTEGERS = 2**24
_MAX_VALUES = 2**31 - 1  # the C side counts a bin's values in uint32 (and zeros in int32 lanes)


def library_files() -> list[Path]:
    """The built library next to this module (one per interpreter ABI that built it)."""
    here = Path(__file__).resolve().parent
    return [here / f"_fused{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if (here / f"_fused{suffix}").is_file()]


def _load() -> ctypes.CDLL | None:
    for path in library_files():
        try:
            library = ctypes.CDLL(str(path))
            version = library.nnviz_fused_version()
        except (OSError, AttributeError):  # not loadable here, or not this kernel
            continue
        if version != KERNEL_VERSION:
            continue  # a stale build from an older source: its arguments may differ
        pointer, i64, f64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_float
        library.nnviz_activation_pass.restype = None
        library.nnviz_activation_pass.argtypes = [pointer, i64, i64, i64, f64, f32, i64, i64, pointer, pointer,
                                                  pointer, pointer]
        library.nnviz_gradient_pass.restype = None
        library.nnviz_gradient_pass.argtypes = [pointer, i64, pointer]
        return library
    return None


_LIBRARY = _load()
_enabled = True


def available() -> bool:
    """The kernel is built, loaded, and not switched off (``torch_only``)."""
    return _LIBRARY is not None and _enabled


@contextlib.contextmanager
def torch_only() -> Iterator[None]:
    """Every reduction on the torch path while inside (tests compare the two paths)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def accepts(values: torch.Tensor) -> bool:
    """Tensors the kernel reads in place: contiguous float32 on the CPU, not empty, and few enough
    values for its 32-bit counters."""
    return (available() and values.device.type == "cpu" and values.dtype == torch.float32
            and 0 < values.numel() <= _MAX_VALUES and values.is_contiguous())


@dataclasses.dataclass(frozen=True)
class Window:
    """Histogram bins ``start .. start + bins - 1`` of width ``2**exponent`` (zero-aligned)."""

    exponent: int
    start: int
    bins: int

    def fits(self) -> bool:
        """Whether the kernel can count it: its edges are integers float32 holds exactly (as in
        moments.py's float32 branch) and its scale is a normal float32."""
        return (0 < self.bins <= MAX_WINDOW_BINS and -126 < -self.exponent < 127
                and max(abs(self.start), abs(self.start + self.bins)) < _EXACT_FLOAT32_INTEGERS)


@dataclasses.dataclass(frozen=True)
class ActivationPass:
    min: float
    max: float
    sum: float
    squares: float  # sum of (x - shift)²
    zeros: int
    counts: np.ndarray | None  # int64, window.bins values (valid until this thread's next pass); or None
    outside: int  # values below or above the window



def activation_pass(values: torch.Tensor, *, rows: int, shift: float, window: Window | None,
                    channels: int = 1, row_means: torch.Tensor | None = None,
                    channel_max: torch.Tensor | None = None) -> ActivationPass:
    """One pass over ``values`` (``accepts`` must hold) seen as ``rows`` rows; channel of row r is
    ``r % channels``. Each row's mean is written into ``row_means`` (``rows`` values) and each
    channel's maximum into ``channel_max`` (``channels`` values) when given, both contiguous
    float32 on the CPU. Non-finite values show as a non-finite ``sum``; the rest is then
    meaningless."""
    assert _LIBRARY is not None and accepts(values) and values.numel() % rows == 0
    means, maxima = row_means, channel_max
    for buffer, size in ((means, rows), (maxima, channels)):
        assert buffer is None or (buffer.dtype == torch.float32 and buffer.device.type == "cpu"
                                  and buffer.is_contiguous() and buffer.numel() == size)
    out, slots = _outputs()
    _LIBRARY.nnviz_activation_pass(
        values.data_ptr(), rows, values.numel() // rows, channels, shift,
        2.0 ** -window.exponent if window is not None else 1.0,
        window.start if window is not None else 0, window.bins if window is not None else 0,
        slots.ctypes.data, means.data_ptr() if means is not None else None,
        maxima.data_ptr() if maxima is not None else None, out.ctypes.data)
    return ActivationPass(
        min=float(out[0]), max=float(out[1]), sum=float(out[2]), squares=float(out[3]), zeros=int(out[4]),
        counts=slots[1 : window.bins + 1] if window is not None else None,
        outside=int(slots[0] + slots[window.bins + 1]) if window is not None else 0)


def gradient_pass(values: torch.Tensor) -> tuple[float, float]:
    """(sum of squares, largest magnitude) of ``values`` (``accepts`` must hold); the sum is not
    finite when a value is not."""
    assert _LIBRARY is not None and accepts(values)
    out, _ = _outputs()
    _LIBRARY.nnviz_gradient_pass(values.data_ptr(), values.numel(), out.ctypes.data)
    return float(out[0]), float(out[1])


# The kernel's small outputs, one set per thread and reused: the capture folds thousands of
# batches, and fresh arrays of varying sizes for each would be carved out of the free heap space
# that the activations' large temporaries are otherwise served from without page faults.
_LOCAL = threading.local()


def _outputs() -> tuple[np.ndarray, np.ndarray]:
    """(out: 5 float64, slots: the largest window's counts), this thread's."""
    if not hasattr(_LOCAL, "outputs"):
        _LOCAL.outputs = (np.zeros(5, dtype=np.float64), np.zeros(MAX_WINDOW_BINS + 2, dtype=np.int64))
    return _LOCAL.outputs  # type: ignore[no-any-return]
