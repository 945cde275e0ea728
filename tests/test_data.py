"""The fixed sample: selection, fingerprint, and refusals with one-line reasons."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnviz_report.data import CIFAR10_CLASSES, load_sample
from nnviz_report.errors import DataError
from tests.conftest import write_image_folder


def test_first_k_of_each_class_in_index_order(image_folder: Path) -> None:
    sample = load_sample(str(image_folder), per_class=3)
    assert sample.count == 30
    assert sample.labels.tolist() == [c for c in range(10) for _ in range(3)]
    # ImageFolder indices: 6 files per class, the first three of each
    assert sample.indices[:6] == (0, 1, 2, 6, 7, 8)
    first = np.asarray(Image.open(image_folder / "airplane" / "0000.png"))
    np.testing.assert_array_equal(sample.images[0].permute(1, 2, 0).numpy(), first)


def test_fingerprint_is_stable_and_sensitive(image_folder: Path, tmp_path: Path) -> None:
    a = load_sample(str(image_folder), per_class=2)
    b = load_sample(str(image_folder), per_class=2)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    assert load_sample(str(image_folder), per_class=3).fingerprint != a.fingerprint
    changed = tmp_path / "changed"
    shutil.copytree(image_folder, changed)
    pixels = np.asarray(Image.open(changed / "dog" / "0000.png")).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(changed / "dog" / "0000.png")
    assert load_sample(str(changed), per_class=2).fingerprint != a.fingerprint


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda root: shutil.rmtree(root / "cat"), "lacks the CIFAR-10 class folders cat"),
        (lambda root: (root / "dog" / "0000.png").write_text("not an image"), "cannot be read as an image"),
        (lambda root: (root / "dog" / "0000.txt").write_text("notes"), "is not an image file"),
        (lambda root: Image.new("RGB", (64, 48)).save(root / "dog" / "0000.png"), "is 64×48, not 32×32"),
        (lambda root: (root / "extra").mkdir(), "not CIFAR-10 classes: extra"),
    ],
    ids=["missing-class", "corrupt-image", "not-an-image", "wrong-size", "extra-folder"],
)
def test_bad_folders_are_refused(tmp_path: Path, mutate, message: str) -> None:
    root = write_image_folder(tmp_path / "data", per_class=2)
    mutate(root)
    with pytest.raises(DataError, match=message):
        load_sample(str(root), per_class=2)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_sample(str(tmp_path / "nope"), per_class=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        load_sample(str(tmp_path / "empty"), per_class=1)


def test_per_class_bounds(image_folder: Path) -> None:
    with pytest.raises(DataError, match="more than .* holds \\(6 files\\); use --per-class 6"):
        load_sample(str(image_folder), per_class=7)
    with pytest.raises(DataError, match="at least 1"):
        load_sample(str(image_folder), per_class=0)


def test_torchvision_cifar10_offline_error_says_how_to_pass_a_local_copy(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets.utils as tv_utils

    def offline(*_args, **_kwargs):
        import urllib.error

        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(DataError, match=r"could not download CIFAR-10 .*--data-root DIR"):
        load_sample("cifar10", per_class=1, data_root=tmp_path)
    with pytest.raises(DataError, match="no CIFAR-10 test split"):
        load_sample("cifar10", per_class=1, data_root=tmp_path, download=False)


def test_torchvision_cifar10_reads_the_official_layout(tmp_path: Path) -> None:
    """A miniature of the official python batches: the real CIFAR10 class reads it."""
    import hashlib
    import pickle

    from torchvision.datasets import CIFAR10

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = [i % 10 for i in range(30)]
    data = rng.integers(0, 256, size=(30, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, f)
    # torchvision verifies the official md5s; point them at our miniature files.
    md5 = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in ("test_batch",)}
    CIFAR10_test_list = [["test_batch", md5["test_batch"]]]
    meta = dict(CIFAR10.meta, md5=hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest())
    import unittest.mock as mock

    with mock.patch.object(CIFAR10, "test_list", CIFAR10_test_list), mock.patch.object(CIFAR10, "meta", meta), \
         mock.patch.object(CIFAR10, "train_list", []):
        sample = load_sample("cifar10", per_class=2, data_root=tmp_path, download=False)
    assert sample.indices == tuple(i for c in range(10) for i in (c, c + 10))
    expected = data[0].reshape(3, 32, 32)
    np.testing.assert_array_equal(sample.images[0].numpy(), expected)
    assert sample.source == "torchvision CIFAR-10 test split"


def test_failed_cifar10_download_leaves_no_empty_cache_folder_and_no_torchvision_hint(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """torchvision makes the folder before it downloads; a failed try must not leave it behind,
    and --no-download's message must not pass on torchvision's "You can use download=True"."""
    import torchvision.datasets.utils as tv_utils

    def offline(_url, download_root, *_args, **_kwargs):
        import os
        import urllib.error

        os.makedirs(download_root, exist_ok=True)  # as torchvision's download_url does first
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    root = tmp_path / "cache" / "nnviz_report" / "cifar10"
    with pytest.raises(DataError, match="could not download"):
        load_sample("cifar10", per_class=1, data_root=root)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="no CIFAR-10 test split") as info:
        load_sample("cifar10", per_class=1, data_root=root, download=False)
    assert "download=True" not in str(info.value) and "not found or corrupted" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()  # a folder that was there before is left alone
    with pytest.raises(DataError):
        load_sample("cifar10", per_class=1, data_root=tmp_path / "kept")
    assert (tmp_path / "kept").is_dir()
