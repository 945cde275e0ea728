"""Shared fixtures: seeded synthetic CIFAR-shaped images written as an ImageFolder, and the
real JPEG split when ../shared/data is present."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nnviz_report.data import CIFAR10_CLASSES, load_sample, normalise
from tests.fixtures.models import tiny_cnn

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"


def write_image_folder(root: Path, per_class: int, *, seed: int = 0) -> Path:
    """Class c's images are noise around a class-specific colour, so a model can tell them apart."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CIFAR10_CLASSES):
        folder = root / name
        folder.mkdir(parents=True)
        base = np.array([(label * 25) % 256, (label * 70) % 256, (255 - label * 25) % 256])
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("synthetic") / "data", per_class=6)


@pytest.fixture(scope="session")
def cifar10_jpg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED_ARCHIVE.exists():
        pytest.skip(f"real CIFAR-10 copy not found at {SHARED_ARCHIVE}")
    target = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(SHARED_ARCHIVE) as tar:
        members = [m for m in tar.getmembers() if "/test/" in f"/{m.name}" or m.name.startswith("test")]
        tar.extractall(target, members=members, filter="data")
    return next(p for p in target.rglob("test") if p.is_dir())


@pytest.fixture(scope="session")
def trained_tiny(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_cnn trained until it tells the synthetic classes apart (about 90 % on the sample)."""
    sample = load_sample(str(image_folder), per_class=6)
    x, y = normalise(sample.images), sample.labels
    torch.manual_seed(0)
    model = tiny_cnn()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    path = tmp_path_factory.mktemp("trained") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture()
def tiny_state() -> dict[str, torch.Tensor]:
    """The seeded tiny_cnn's state_dict, for checkpoint tests."""
    return tiny_cnn().state_dict()
