"""Legal but unusual models and images: each builds a report or is refused in one line (exit 2),
never a traceback or an internal error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nnviz_report.cli import main
from nnviz_report.data import CIFAR10_CLASSES, load_sample
from nnviz_report.errors import DataError
from tests.conftest import write_image_folder
from tests.fixtures.models import tiny_cnn

ODD = "tests.fixtures.odd_models"


def report(spec: str, data: Path, out: Path, formats: str = "json,md") -> int:
    return main(["report", "--quiet", "--model", spec, "--data", str(data), "--per-class", "1",
                 "--showcase", "2", "--format", formats, "-o", str(out)])


REFUSED = {
    "no_grad_forward": r"forward runs under torch\.no_grad\(\) or torch\.inference_mode\(\)",
    "inference_mode_forward": r"forward runs under torch\.no_grad\(\) or torch\.inference_mode\(\)",
    "integer_logits": r"the model returned int64 logits; nnviz_report needs floating-point scores",
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_models_without_usable_gradients_are_bad_input(name: str, image_folder: Path, tmp_path: Path,
                                                       capsys) -> None:
    assert report(f"{ODD}:{name}", image_folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("nnviz-report: error: ") and err.count("\n") == 1, err
    assert re.search(REFUSED[name], err), err


@pytest.mark.parametrize("name", ["no_parameters", "integer_parameter", "token_batch_norm", "css_looking_names",
                                  "surrogate_names"])
def test_unusual_models_build_reports(name: str, image_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert report(f"{ODD}:{name}", image_folder, out, formats="json,md,html") == 0, capsys.readouterr().err
    record = json.loads((out / "report.json").read_text())
    layers = {row["name"]: row for row in record["activations"]["layers"]}
    if name == "token_batch_norm":
        # Its statistics are kept; only the per-sample analyses leave it out.
        assert "norm" in layers
        similarity_layers = record["slices"]["cka_layers"] if "cka_layers" in (record.get("slices") or {}) else None
        assert similarity_layers is None or "norm" not in similarity_layers
    if name == "no_parameters":
        assert record["model"]["parameters"] == 0 and record["gradients"]["params"] == []
        assert layers["act"]["grad_rms"] is not None  # activation gradients flow from the input
    if name == "surrogate_names":
        assert "conv\\udcff" in (out / "report.html").read_text(encoding="utf-8")  # valid UTF-8, written out


def test_torchscript_models_build_reports(image_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(tiny_cnn()).save(str(path))
    out = tmp_path / "out"
    assert report(f"torchscript:{path}", image_folder, out, formats="json,html") == 0
    record = json.loads((out / "report.json").read_text())
    assert record["model"]["class_name"] == "TorchScript" and record["performance"]["accuracy"] is not None


# ---- images ---------------------------------------------------------------------------------

def folder_with(tmp_path: Path, image: Image.Image, suffix: str) -> Path:
    root = write_image_folder(tmp_path / "data", per_class=1)
    target = root / CIFAR10_CLASSES[0] / f"0000{suffix}"
    for old in (root / CIFAR10_CLASSES[0]).iterdir():
        old.unlink()
    image.save(target)
    return root


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    values = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)
    root = folder_with(tmp_path, Image.fromarray(values), ".png")
    pixels = load_sample(str(root), per_class=1).images[0].numpy()
    expected = np.rint(values / 257.0).astype(np.uint8)
    assert np.array_equal(pixels[0], expected) and np.array_equal(pixels[2], expected)
    assert 0 < pixels.mean() < 255


@pytest.mark.parametrize("top", [1.0, 255.0])
def test_float_images_are_scaled_not_clipped(tmp_path: Path, top: float) -> None:
    values = (np.arange(32 * 32).reshape(32, 32) / 1023.0 * top).astype(np.float32)
    root = folder_with(tmp_path, Image.fromarray(values), ".tiff")
    pixels = load_sample(str(root), per_class=1).images[0].numpy()
    expected = np.rint(values.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    assert np.array_equal(pixels[1], expected)


def test_float_images_out_of_range_are_refused(tmp_path: Path) -> None:
    values = np.full((32, 32), 1000.0, dtype=np.float32)
    root = folder_with(tmp_path, Image.fromarray(values), ".tiff")
    with pytest.raises(DataError, match=r"floating-point image with values outside 0–255"):
        load_sample(str(root), per_class=1)


def test_decompression_bomb_is_one_line(tmp_path: Path, monkeypatch) -> None:
    root = folder_with(tmp_path, Image.new("RGB", (32, 32)), ".png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 32×32 image is then a "bomb" of 1024 pixels
    with pytest.raises(DataError, match=r"more pixels than Pillow's decompression-bomb limit"):
        load_sample(str(root), per_class=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # between 1× and 2× the limit: Pillow only warns
    with pytest.raises(DataError, match=r"decompression-bomb limit"):
        load_sample(str(root), per_class=1)


def test_damaged_image_is_one_line(tmp_path: Path) -> None:
    import weasyprint  # noqa: F401  (it sets Pillow's LOAD_TRUNCATED_IMAGES when imported)

    root = folder_with(tmp_path, Image.new("RGB", (32, 32)), ".png")
    target = root / CIFAR10_CLASSES[0] / "0000.png"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot be read as an image"):
        load_sample(str(root), per_class=1)


def test_non_utf8_data_folder_name(tmp_path: Path, capsys) -> None:
    import os

    root = Path(os.fsdecode(bytes(tmp_path) + b"/da\xfft\nx"))
    write_image_folder(root, per_class=1)
    out = tmp_path / "out"
    assert report("tests.fixtures.models:tiny_cnn", root, out, formats="json,md,html") == 0
    record = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # The name is kept exactly (JSON escapes the newline); the non-UTF-8 byte, which UTF-8 cannot
    # hold, is written as the escape \\udcff, which reads back as the same string.
    assert record["sample"]["source"] == root.name.join(["ImageFolder ", ""])
    assert "da\\udcfft\\nx" in (out / "report.json").read_text(encoding="utf-8")
