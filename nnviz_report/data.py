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
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DataError
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


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() not in _IMAGE_SUFFIXES:
        raise DataError(f"{path} is not an image file; the class folders must hold only 32×32 RGB images")
    try:
        with Image.open(path) as img:
            if img.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise DataError(
                    f"{path} is {img.size[0]}×{img.size[1]}, not 32×32; resize the data set to CIFAR-10's size"
                )
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path} cannot be read as an image ({exc.__class__.__name__}); remove or replace it") from None
