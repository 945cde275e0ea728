"""The fixed CIFAR-10 sample: where it comes from, how it is chosen, and its fingerprint.

The sample is the first K images of each class in the source's own index order, so the same
source and K always give the same images; the fingerprint (sha256 over indices, labels and
pixels) lets a reader check that two reports looked at the same images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile

from .errors import DataError, one_line
from .zoo import CIFAR10_MEAN, CIFAR10_STD

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SIZE = 32
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"}


@dataclasses.dataclass(frozen=True)
class SampleSet:
    """The images as uint8 (N, 3, 32, 32), their labels, and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: tuple[int, ...]
    source: str
    per_class: int
    class_names: tuple[str, ...] = CIFAR10_CLASSES

    @property
    def count(self) -> int:
        return len(self.indices)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(np.asarray(self.indices, dtype="<i8").tobytes())
        digest.update(self.labels.numpy().astype("<i8").tobytes())
        digest.update(self.images.numpy().tobytes())
        return digest.hexdigest()


def normalise(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 images → the float input the reference models (and most CIFAR nets) expect."""
    mean = torch.tensor(CIFAR10_MEAN, device=images_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=images_uint8.device).view(1, 3, 1, 1)
    return (images_uint8.float() / 255.0 - mean) / std


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nnviz_report" / "cifar10"


def load_sample(data: str, *, per_class: int, data_root: Path | None = None, download: bool = True) -> SampleSet:
    """``data`` is ``"cifar10"`` (torchvision's test split) or a path to an ImageFolder directory."""
    if per_class < 1:
        raise DataError(f"--per-class must be at least 1, got {per_class}")
    if data == "cifar10":
        return _load_torchvision_cifar10(data_root or default_cache_dir(), per_class, download)
    return _load_image_folder(Path(data), per_class)


def _first_per_class(labels: list[int] | np.ndarray, per_class: int, available: str) -> list[int]:
    chosen: dict[int, list[int]] = {c: [] for c in range(len(CIFAR10_CLASSES))}
    for index, label in enumerate(labels):
        bucket = chosen[int(label)]
        if len(bucket) < per_class:
            bucket.append(index)
    short = {CIFAR10_CLASSES[c]: len(v) for c, v in chosen.items() if len(v) < per_class}
    if short:
        fewest = min(short.values())
        raise DataError(
            f"--per-class {per_class} is more than {available} has (class "
            f"{min(short, key=lambda k: short[k])!r} has {fewest}); use --per-class {fewest} or less"
        )
    # Class by class, each in index order: a stable order for tables and thumbnails.
    return [i for c in range(len(CIFAR10_CLASSES)) for i in chosen[c]]


def _load_torchvision_cifar10(root: Path, per_class: int, download: bool) -> SampleSet:
    from torchvision.datasets import CIFAR10

    # torchvision creates the folder before it tries to download; a failed try must not leave an
    # empty cache folder behind (the next run would look for the data in it).
    created = [p for p in (root, *root.parents) if not p.exists()]
    try:
        dataset = CIFAR10(str(root), train=False, download=download)
    except (urllib.error.URLError, OSError, ConnectionError, RuntimeError) as exc:
        for folder in created:  # deepest first; stops at the first that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        if isinstance(exc, RuntimeError):  # torchvision: "Dataset not found or corrupted. You can use download=True…"
            raise DataError(
                f"no CIFAR-10 test split in {root} (not found or corrupted); pass --data-root DIR holding "
                "cifar-10-batches-py, allow downloading, or use --data PATH to an ImageFolder directory"
            ) from None
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"could not download CIFAR-10 into {root} ({reason}); pass a local copy with "
            "--data-root DIR (holding cifar-10-batches-py) or an ImageFolder directory with --data PATH"
        ) from None
    indices = _first_per_class(np.asarray(dataset.targets), per_class, f"the CIFAR-10 test split in {root}")
    images = torch.from_numpy(dataset.data[indices]).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([dataset.targets[i] for i in indices], dtype=torch.int64)
    return SampleSet(images, labels, tuple(indices), "torchvision CIFAR-10 test split", per_class)


def _load_image_folder(root: Path, per_class: int) -> SampleSet:
    if not root.exists():
        raise DataError(f"data folder {root} does not exist; pass --data cifar10 or an ImageFolder directory")
    if not root.is_dir():
        raise DataError(f"--data {root} is a file, not a folder; pass an ImageFolder directory")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"data folder {root} is empty; it needs the ten CIFAR-10 class folders (airplane … truck)")
    missing = [c for c in CIFAR10_CLASSES if c not in folders]
    if missing:
        raise DataError(
            f"data folder {root} lacks the CIFAR-10 class folders {', '.join(missing)}; "
            "it needs one folder per class named airplane, automobile, … truck"
        )
    # ImageFolder's order: classes sorted, files sorted within each class. Extra folders
    # would shift ImageFolder's label numbers, so they are refused rather than ignored.
    extra = [f for f in folders if f not in CIFAR10_CLASSES]
    if extra:
        raise DataError(
            f"data folder {root} has folders that are not CIFAR-10 classes: {', '.join(extra)}; "
            "move them out, since they would change ImageFolder's label numbers"
        )
    images, labels, indices = [], [], []
    offset = 0
    for label, name in enumerate(CIFAR10_CLASSES):
        files = sorted(p for p in (root / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if len(files) < per_class:
            raise DataError(
                f"--per-class {per_class} is more than {root / name} holds ({len(files)} files); "
                f"use --per-class {len(files)} or less" if files
                else f"class folder {root / name} is empty; put at least {per_class} images of {name} in it"
            )
        for position, path in enumerate(files[:per_class]):
            images.append(_read_image(path))
            labels.append(label)
            indices.append(offset + position)
        offset += len(files)
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return SampleSet(stacked, torch.tensor(labels, dtype=torch.int64), tuple(indices),
                     f"ImageFolder {root.name}", per_class)


# Modes whose samples are 8 bits, which Pillow converts to RGB correctly.
_EIGHT_BIT_MODES = {"RGB", "RGBA", "RGBX", "L", "LA", "La", "P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV", "RGBa"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def _read_image(path: Path) -> np.ndarray:
    """The image as (32, 32, 3) uint8. 8-bit modes go through Pillow's RGB conversion; 16-bit
    greyscale is scaled (v / 257, so 65535 → 255) and 32-bit integer greyscale too when its
    values fit 16 bits; float greyscale in [0, 1] is scaled by 255 and in [0, 255] kept; Pillow
    would clip all of these (16-bit images turn white, float images black). Anything else is
    refused. Pillow's decompression-bomb limits apply, as one-line errors."""
    name = one_line(path)
    if path.suffix.lower() not in _IMAGE_SUFFIXES:
        raise DataError(f"{name} is not an image file; the class folders must hold only 32×32 RGB images")
    # WeasyPrint sets Pillow's LOAD_TRUNCATED_IMAGES process-wide when imported (a PDF rendered
    # earlier in this process): a truncated image would then load with a grey band, silently.
    load_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.size != (IMAGE_SIZE, IMAGE_SIZE):
                    raise DataError(
                        f"{name} is {img.size[0]}×{img.size[1]}, not 32×32; resize the data set to CIFAR-10's size"
                    )
                return _as_rgb8(img, name)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{name} declares more pixels than Pillow's decompression-bomb limit; "
                        "remove it (CIFAR-10 images are 32×32)") from None
    except DataError:
        raise
    except Exception as exc:  # a damaged file makes Pillow's decoders raise almost anything
        raise DataError(f"{name} cannot be read as an image ({exc.__class__.__name__}); remove or replace it") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = load_truncated


def _as_rgb8(img: Image.Image, name: str) -> np.ndarray:
    if img.mode in _EIGHT_BIT_MODES:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise DataError(f"{name} is a 32-bit integer image with values outside 0–65535; save it as an 8-bit "
                            "or 16-bit RGB/greyscale image")
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
            raise DataError(f"{name} is a floating-point image with values outside 0–255 (or NaN); save it as "
                            "an 8-bit RGB image")
        scale = 255.0 if values.max() <= 1.0 else 1.0
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    raise DataError(f"{name} has pixel mode {img.mode!r}, which nnviz_report cannot convert to 8-bit RGB "
                    "faithfully; save it as an 8-bit RGB PNG or JPEG")
