"""A fixed, deterministic corruption suite in the manner of CIFAR-10-C.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations" (ICLR 2019). The parameters per severity (1–5) are the published CIFAR-10-C
ones (hendrycks/robustness, ``make_cifar_c.py``); the implementations here are our own, in
numpy and PIL on uint8 RGB images, written from the definitions:

- gaussian_noise: x + N(0, σ²) on [0, 1] pixels, clipped.
- shot_noise: Poisson(x · λ) / λ on [0, 1] pixels, clipped (photon noise: λ photons at full scale).
- gaussian_blur: a Gaussian filter of standard deviation σ pixels per channel, the kernel cut at
  4σ and the border extended with the edge pixel (as skimage's ``gaussian``).
- contrast: (x − m) · c + m with m each channel's mean over the image: the mean stays, the
  spread shrinks by c.
- brightness: the HSV value (a pixel's largest channel) raised by c, clipped at 1, hue and
  saturation kept; for a pixel with value v > 0 that is every channel times min(v + c, 1) / v,
  and black becomes grey c.
- jpeg_compression: a JPEG round trip through PIL at the stated quality.
- pixelate: box-downsampled to ⌊32 · c⌋ pixels a side and box-upsampled back.

One difference from ``make_cifar_c.py``: results are rounded to the nearest uint8 rather than
truncated, so a corruption does not also darken the image by half a level on average.

Random corruptions draw from a generator seeded by (seed, corruption, severity, the image's
index in its data source): an image gets the same noise whatever else is in the sample. The
deterministic ones that numpy can run on a whole (N, H, W, 3) stack at once (blur, contrast,
brightness) do so: the same arithmetic per image, without a Python loop over images; JPEG and
pixelate go through PIL one image at a time.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

SEVERITIES = (1, 3, 5)
THUMBNAIL_SEVERITY = 3

CorruptionFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8, rounded to the nearest level."""
    return np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def _unit(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255.0


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    return to_uint8(x + rng.normal(0.0, sigma, size=x.shape))


def shot_noise(image: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    return to_uint8(rng.poisson(x * photons) / photons)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _filter_axis(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    radius = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(x, pad, mode="edge")
    size = x.shape[axis]
    out = np.zeros_like(x)
    for k, weight in enumerate(kernel):
        out += weight * np.take(padded, np.arange(k, k + size), axis=axis)
    return out


# The three below take one (H, W, 3) image or a stack (..., H, W, 3): the axes count from the end.

def gaussian_blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    kernel = gaussian_kernel(sigma)
    x = _filter_axis(_unit(image), kernel, axis=image.ndim - 3)
    return to_uint8(_filter_axis(x, kernel, axis=image.ndim - 2))


def contrast(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    means = x.mean(axis=(-3, -2), keepdims=True)
    return to_uint8((x - means) * factor + means)


def brightness(image: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    value = x.max(axis=-1, keepdims=True)
    raised = np.minimum(value + shift, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(value > 0, x * (raised / np.where(value > 0, value, 1.0)), raised)
    return to_uint8(scaled)


def jpeg_compression(image: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


def pixelate(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    small = Image.fromarray(np.ascontiguousarray(image), mode="RGB").resize(
        (int(width * factor), int(height * factor)), Image.Resampling.BOX)
    return np.asarray(small.resize((width, height), Image.Resampling.BOX), dtype=np.uint8).copy()


@dataclasses.dataclass(frozen=True)
class Corruption:
    name: str
    title: str
    family: str  # "noise" | "blur" | "photometric" | "digital"
    parameter: str  # the parameter's symbol, as the definitions above name it
    values: tuple[float, float, float, float, float]  # published CIFAR-10-C value per severity 1–5
    apply: CorruptionFn
    random: bool
    stacked: bool = False  # ``apply`` takes a whole (N, H, W, 3) stack in one call

    def value(self, severity: int) -> float:
        if severity not in range(1, 6):
            raise ValueError(f"severity must be 1 to 5, got {severity}")
        return self.values[severity - 1]

    def describe(self, severity: int) -> str:
        value = self.value(severity)
        shown = f"{int(value)}" if float(value).is_integer() else f"{value:g}"
        return f"{self.parameter} = {shown}"


SUITE: tuple[Corruption, ...] = (
    Corruption("gaussian_noise", "Gaussian noise", "noise", "σ", (0.04, 0.06, 0.08, 0.09, 0.10),
               gaussian_noise, True),
    Corruption("shot_noise", "Shot noise", "noise", "λ", (500, 250, 100, 75, 50), shot_noise, True),
    Corruption("gaussian_blur", "Gaussian blur", "blur", "σ", (0.4, 0.6, 0.7, 0.8, 1.0), gaussian_blur, False,
               stacked=True),
    Corruption("contrast", "Contrast", "photometric", "c", (0.75, 0.5, 0.4, 0.3, 0.15), contrast, False,
               stacked=True),
    Corruption("brightness", "Brightness", "photometric", "c", (0.05, 0.1, 0.15, 0.2, 0.3), brightness, False,
               stacked=True),
    Corruption("jpeg_compression", "JPEG", "digital", "quality", (80, 65, 58, 50, 40), jpeg_compression, False),
    Corruption("pixelate", "Pixelate", "digital", "c", (0.95, 0.9, 0.85, 0.75, 0.65), pixelate, False),
)
BY_NAME = {c.name: c for c in SUITE}


def image_rng(seed: int, corruption: Corruption, severity: int, source_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SUITE.index(corruption), severity, source_index])


def corrupt_batch(images_nchw: np.ndarray, corruption: Corruption, severity: int, source_indices: Sequence[int],
                  *, seed: int = 0) -> np.ndarray:
    """uint8 (N, 3, H, W) → the same images corrupted, each with its own seeded generator."""
    value = corruption.value(severity)
    if corruption.stacked and not corruption.random:
        stack = np.ascontiguousarray(np.transpose(images_nchw, (0, 2, 3, 1)))
        unused = np.random.default_rng(0)  # deterministic corruptions draw nothing
        return np.ascontiguousarray(np.transpose(corruption.apply(stack, value, unused), (0, 3, 1, 2)))
    out = np.empty_like(images_nchw)
    for row, (image, index) in enumerate(zip(images_nchw, source_indices, strict=True)):
        hwc = np.ascontiguousarray(np.transpose(image, (1, 2, 0)))
        corrupted = corruption.apply(hwc, value, image_rng(seed, corruption, severity, int(index)))
        out[row] = np.transpose(corrupted, (2, 0, 1))
    return out
