"""Each corruption against its definition, the published parameters, and determinism."""

from __future__ import annotations

import colorsys
import io
import math

import numpy as np
import pytest
from PIL import Image

from nnviz_report.corruptions import BY_NAME, SEVERITIES, SUITE, corrupt_batch, gaussian_kernel, image_rng


def photo(seed: int = 0, size: int = 32) -> np.ndarray:
    """A smooth, image-like uint8 (H, W, 3) picture that stays away from 0 and 255."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.5 + 0.3 * np.sin(6 * x + c) * np.cos(4 * y - c) for c in range(3)], axis=2)
    return np.clip(np.rint((base + rng.normal(0, 0.03, base.shape)) * 255), 20, 235).astype(np.uint8)


def apply(name: str, image: np.ndarray, severity: int, index: int = 0, seed: int = 0) -> np.ndarray:
    c = BY_NAME[name]
    return c.apply(image, c.value(severity), image_rng(seed, c, severity, index))


def test_the_published_cifar10_c_parameters() -> None:
    # hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py, severities 1–5.
    published = {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot_noise": (500, 250, 100, 75, 50),
        "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
        "jpeg_compression": (80, 65, 58, 50, 40),
        "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    }
    assert {c.name: c.values for c in SUITE} == published
    assert SEVERITIES == (1, 3, 5)
    assert BY_NAME["gaussian_noise"].describe(3) == "σ = 0.08"
    assert BY_NAME["jpeg_compression"].describe(5) == "quality = 40"
    with pytest.raises(ValueError):
        BY_NAME["contrast"].value(6)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_contrast_keeps_each_channels_mean_and_scales_its_spread(severity: int) -> None:
    image = photo(1)
    out = apply("contrast", image, severity).astype(np.float64)
    factor = BY_NAME["contrast"].value(severity)
    x = image.astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), x.mean(axis=(0, 1)), atol=0.5)  # rounding only
    np.testing.assert_allclose(out.std(axis=(0, 1)), factor * x.std(axis=(0, 1)), atol=0.5)
    expected = (x - x.mean(axis=(0, 1))) * factor + x.mean(axis=(0, 1))
    assert np.abs(out - expected).max() <= 0.5 + 1e-9


def test_gaussian_noise_is_seeded_reproducible_and_has_the_stated_sigma() -> None:
    grey = np.full((64, 64, 3), 128, dtype=np.uint8)
    first, again = apply("gaussian_noise", grey, 3, index=5), apply("gaussian_noise", grey, 3, index=5)
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != apply("gaussian_noise", grey, 3, index=6).tobytes()
    assert first.tobytes() != apply("gaussian_noise", grey, 3, index=5, seed=1).tobytes()
    residual = first.astype(np.float64) - 128
    assert abs(residual.mean()) < 0.5
    assert residual.std() == pytest.approx(0.08 * 255, rel=0.05)


def test_shot_noise_is_poisson_at_the_stated_photon_count() -> None:
    grey = np.full((64, 64, 3), 102, dtype=np.uint8)  # 0.4 of full scale
    out = apply("shot_noise", grey, 3).astype(np.float64) / 255
    # Poisson(0.4 · λ) / λ: mean 0.4, variance 0.4 / λ, λ = 100 at severity 3.
    assert out.mean() == pytest.approx(0.4, abs=0.005)
    assert out.var() == pytest.approx(0.4 / 100, rel=0.08)
    assert out.tobytes() == (apply("shot_noise", grey, 3).astype(np.float64) / 255).tobytes()


def direct_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A 2-D convolution with the outer-product kernel, edge pixels extended, by plain loops."""
    k1 = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-int(4 * sigma + 0.5), int(4 * sigma + 0.5) + 1)]
    total = sum(k1)
    k1 = [v / total for v in k1]
    r = len(k1) // 2
    h, w, _ = image.shape
    x = image.astype(np.float64) / 255
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            acc = np.zeros(3)
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    ii, jj = min(max(i + di, 0), h - 1), min(max(j + dj, 0), w - 1)
                    acc += k1[di + r] * k1[dj + r] * x[ii, jj]
            out[i, j] = acc
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("severity", [1, 5])
def test_gaussian_blur_equals_a_direct_convolution(severity: int) -> None:
    image = photo(2, size=16)
    sigma = BY_NAME["gaussian_blur"].value(severity)
    out = apply("gaussian_blur", image, severity)
    assert np.abs(out.astype(int) - direct_blur(image, sigma).astype(int)).max() <= 1  # float summation order
    assert len(gaussian_kernel(1.0)) == 9 and gaussian_kernel(0.4).sum() == pytest.approx(1.0)
    flat = np.full((8, 8, 3), 77, dtype=np.uint8)
    assert (apply("gaussian_blur", flat, severity) == 77).all()
    assert out.astype(float).std() < image.astype(float).std()


def test_brightness_raises_the_hsv_value_and_keeps_hue_and_saturation() -> None:
    image = photo(3, size=12)
    image[0, 0] = (0, 0, 0)  # black becomes grey c
    image[0, 1] = (250, 240, 10)  # clipped at value 1
    shift = BY_NAME["brightness"].value(3)
    out = apply("brightness", image, 3)
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            h, s, v = colorsys.rgb_to_hsv(*(image[i, j] / 255))
            expected = np.array(colorsys.hsv_to_rgb(h, s, min(v + shift, 1.0))) * 255
            assert np.abs(out[i, j].astype(float) - expected).max() <= 0.5 + 1e-9, (i, j)


def test_jpeg_equals_a_pil_round_trip_at_the_stated_quality() -> None:
    image = photo(4)
    for severity in SEVERITIES:
        quality = int(BY_NAME["jpeg_compression"].value(severity))
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        assert apply("jpeg_compression", image, severity).tobytes() == expected.tobytes()
    assert apply("jpeg_compression", image, 1).tobytes() != apply("jpeg_compression", image, 5).tobytes()


def test_pixelate_is_box_down_and_up_with_blocks() -> None:
    image = photo(5)
    out = apply("pixelate", image, 5)  # 32 · 0.65 → 20 pixels a side
    small = Image.fromarray(image).resize((20, 20), Image.Resampling.BOX)
    assert out.tobytes() == np.asarray(small.resize((32, 32), Image.Resampling.BOX)).tobytes()
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 20 * 20 * 4  # at most the blocks and their seams
    flat = np.full((32, 32, 3), 90, dtype=np.uint8)
    assert (apply("pixelate", flat, 3) == 90).all()


def test_the_suite_gives_the_same_bytes_twice_and_per_image_noise() -> None:
    images = np.stack([np.transpose(photo(s), (2, 0, 1)) for s in range(4)])
    indices = [10, 11, 12, 13]
    for corruption in SUITE:
        first = corrupt_batch(images, corruption, 3, indices, seed=0)
        assert first.dtype == np.uint8 and first.shape == images.shape
        assert first.tobytes() == corrupt_batch(images, corruption, 3, indices, seed=0).tobytes()
        # An image's corruption depends on its own index, not on the rest of the batch.
        alone = corrupt_batch(images[2:3], corruption, 3, [12], seed=0)
        assert alone.tobytes() == first[2:3].tobytes(), corruption.name
        assert not np.array_equal(first, images), corruption.name
