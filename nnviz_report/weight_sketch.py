"""Weight sketches: what report.json keeps of each weight tensor so that a history can estimate
how far a layer's weights moved between two releases without either checkpoint.

report.json cannot hold the weights themselves (resnet20's are 1 MB as float32, a torchvision
model's hundreds), and the per-tensor norms it does hold cannot give ‖W_b − W_a‖. A linear
sketch can: a CountSketch S sends element i of the flattened tensor to bucket h(i) of k with a
sign s(i), so S is linear and S(W_b) − S(W_a) = S(W_b − W_a). For any fixed x, ‖S x‖² is an
unbiased estimate of ‖x‖² (pairwise-independent h, four-wise independent s), with variance
(2/k)(‖x‖⁴ − Σ x_i⁴) ≤ (2/k)‖x‖⁴: a relative standard deviation of at most √(2/k) for the
squared norm, about √(1/(2k)) for the norm. The history divides the estimated ‖W_b − W_a‖ by
the exact ‖W_a‖ recorded beside the sketch, so only the numerator is estimated.

The hashes are polynomials over the prime field 2³¹ − 1 with coefficients drawn from SHA-256
of the seed, not from torch's random generator: the same index lands in the same bucket with
the same sign in every release, on every platform and every torch version, and the history can
check that two sketches were made alike (method, buckets, seed). Tensors with at most k
elements are stored whole (``exact``): their change is then computed exactly.

Values are stored as base64 of little-endian float32 (k = 256 buckets: 1 368 characters per
tensor) rather than as a JSON list of numbers, which would be five times larger.

This module never imports torch (the history command reads it): :func:`sketch_weights` takes the
pipeline's tensors and reads them through ``.numpy()``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SKETCH_BUCKETS = 256
SKETCH_SEED = 0
PRIME = 2**31 - 1  # indices and coefficients below it: a product of two fits in int64
METHOD = "countsketch-poly31-v1"
# Indices hashed per step: bounds the temporary int64 tensors whatever the tensor's size.
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class TensorSketch:
    name: str  # parameter name, e.g. "layer1.0.conv1.weight"
    shape: tuple[int, ...]
    norm: float  # exact Frobenius norm ‖W‖ of the tensor (computed in float64)
    exact: bool  # true: the tensor has at most `buckets` elements and values holds it whole (flattened)
    values: str  # base64 of little-endian float32: the bucket sums Σ_{h(i)=j} s(i)·W_i, or the tensor when exact


@dataclasses.dataclass(frozen=True)
class WeightSketches:
    """A CountSketch of every weight tensor with at least two dimensions (the Weights section's rows)."""

    method: str  # hash family and layout; sketches compare only when method, buckets and seed agree
    buckets: int  # k: relative standard deviation of an estimated squared norm at most √(2/k)
    seed: int
    tensors: tuple[TensorSketch, ...]


def hash_coefficients(seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(bucket polynomial of degree 1, sign polynomial of degree 3), coefficients in [0, PRIME)."""
    digest = hashlib.sha256(f"nnviz-report {METHOD} seed {seed}".encode()).digest()
    numbers = [int.from_bytes(digest[4 * i:4 * i + 4], "little") % PRIME for i in range(6)]
    # A zero leading coefficient would make a polynomial constant; move it to 1.
    bucket = (numbers[0] or 1, numbers[1])
    sign = (numbers[2] or 1, numbers[3], numbers[4], numbers[5])
    return bucket, sign


def buckets_and_signs(indices: np.ndarray, buckets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """h(i) in [0, buckets) and s(i) in {−1, +1} for int64 indices below PRIME."""
    bucket_poly, sign_poly = hash_coefficients(seed)
    h = _poly(indices.astype(np.int64), bucket_poly) % buckets
    s = 1 - 2 * (_poly(indices.astype(np.int64), sign_poly) & 1)
    return h, s


def _poly(x: np.ndarray, coefficients: tuple[int, ...]) -> np.ndarray:
    """Horner's rule modulo PRIME; every intermediate stays below 2⁶³ (x, acc, c < 2³¹)."""
    acc = x * 0 + coefficients[0]
    for c in coefficients[1:]:
        acc = _mod_prime(acc * x + c)
    return acc


def _mod_prime(x: np.ndarray) -> np.ndarray:
    """x mod (2³¹ − 1) for 0 ≤ x < 2⁶³ by shifts and masks (2³¹ ≡ 1): several times faster than
    the integer division behind ``%`` on int64 arrays, and the same numbers."""
    x = (x & PRIME) + (x >> 31)
    x = (x & PRIME) + (x >> 31)
    return x - PRIME * (x >= PRIME)


# Hashes of the first indices are kept for the other tensors of one sketch_weights call (every
# tensor starts at index 0): up to 4 chunks, at most 40 MB, whatever the model's size.
CACHED_CHUNKS = 4
_Hashes = dict[int, tuple[np.ndarray, np.ndarray]]


def _chunk_hashes(start: int, length: int, buckets: int, seed: int,
                  cache: _Hashes | None) -> tuple[np.ndarray, np.ndarray]:
    """(h, s) of indices start … start + length − 1: buckets as int64, signs as float64 ±1."""
    if cache is not None and start in cache and cache[start][0].size >= length:
        h, signs = cache[start]
        return h[:length], signs[:length]
    h, s = buckets_and_signs(np.arange(start, start + length, dtype=np.int64), buckets, seed)
    signs = s.astype(np.float64)
    if cache is not None and start < CACHED_CHUNKS * CHUNK:
        cache[start] = (h, signs)
    return h, signs


def sketch_tensor(tensor: torch.Tensor, name: str, *, buckets: int = SKETCH_BUCKETS,
                  seed: int = SKETCH_SEED, cache: _Hashes | None = None) -> TensorSketch:
    """The sketch of one tensor. Done in numpy, single-threaded, on purpose: torch's int64
    element-wise ops through its thread pool were a hundred times slower on a busy machine."""
    flat = tensor.detach().cpu().double().reshape(-1).numpy()
    numel = flat.size
    if numel >= PRIME - CHUNK:
        raise ValueError(f"{name} has {numel} elements; sketches index fewer than {PRIME - CHUNK}")
    norm = float(np.linalg.norm(flat))
    if numel <= buckets:
        values = flat
    else:
        values = np.zeros(buckets, dtype=np.float64)
        for start in range(0, numel, CHUNK):
            n = min(CHUNK, numel - start)
            h, signs = _chunk_hashes(start, n, buckets, seed, cache)
            values += np.bincount(h, weights=flat[start:start + n] * signs, minlength=buckets)
    data = values.astype("<f4").tobytes()
    return TensorSketch(name, tuple(int(d) for d in tensor.shape), norm, numel <= buckets,
                        base64.b64encode(data).decode("ascii"))


def sketch_weights(named_parameters: Iterable[tuple[str, torch.Tensor]], *, buckets: int = SKETCH_BUCKETS,
                   seed: int = SKETCH_SEED) -> WeightSketches:
    """One pass over the parameters, O(numel) each; 1-D tensors (biases, norm scales) are left out."""
    cache: _Hashes = {}
    tensors = tuple(sketch_tensor(p, name, buckets=buckets, seed=seed, cache=cache)
                    for name, p in named_parameters if p.dim() >= 2)
    return WeightSketches(METHOD, buckets, seed, tensors)


def sketch_values(sketch: TensorSketch) -> np.ndarray:
    """The stored values as float64; raises ValueError when the base64 or its length is wrong."""
    raw = base64.b64decode(sketch.values.encode("ascii"), validate=True)
    if len(raw) % 4:
        raise ValueError(f"the sketch of {sketch.name} is {len(raw)} bytes, not whole float32 values")
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)


def sketches_comparable(a: WeightSketches, b: WeightSketches) -> bool:
    return (a.method, a.buckets, a.seed) == (b.method, b.buckets, b.seed)


def relative_change(before: TensorSketch, after: TensorSketch, buckets: int) -> float | None:
    """‖W_after − W_before‖ / ‖W_before‖: exact when both tensors were stored whole, otherwise
    the CountSketch estimate ‖S W_after − S W_before‖ / ‖W_before‖ (exact denominator).
    None when the shapes differ, the old norm is zero, a value is not finite, or the stored
    values do not have the length they must have."""
    if before.shape != after.shape or before.exact != after.exact or not before.norm > 0:
        return None
    try:
        a, b = sketch_values(before), sketch_values(after)
    except ValueError:
        return None
    expected = math.prod(before.shape) if before.exact else buckets
    if a.size != expected or b.size != expected:
        return None
    change = float(np.linalg.norm(b - a)) / before.norm
    return change if math.isfinite(change) else None
