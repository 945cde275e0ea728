"""Every bad input is one line on stderr and exit 2, with nothing written; a model that yields
NaN is a finding, not an error."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from nnviz_report import output
from tests.cli_helpers import HOSTILE, TINY, one_line_error, run_cli, staging_leftovers
from tests.conftest import write_image_folder
from tests.fixtures.models import tiny_cnn

Case = Callable[[Path, Path, dict[str, torch.Tensor]], tuple[list[str | Path], str]]


def _checkpoint(tmp: Path, payload: Any, name: str = "ckpt.pt") -> Path:
    torch.save(payload, tmp / name)
    return tmp / name


def _truncated(tmp: Path, state: dict[str, torch.Tensor]) -> Path:
    good = _checkpoint(tmp, state, "good.pt")
    (tmp / "truncated.pt").write_bytes(good.read_bytes()[:300])
    return tmp / "truncated.pt"


def _folder(tmp: Path, *names: str) -> Path:
    for name in names:
        (tmp / "data" / name).mkdir(parents=True)
    (tmp / "data").mkdir(exist_ok=True)
    return tmp / "data"


def _with_bad_file(tmp: Path, name: str, write: Callable[[Path], None]) -> Path:
    data = write_image_folder(tmp / "data", per_class=2)
    write(data / "cat" / name)  # sorts before 0000.png, so it is among the first images read
    return data


def _edited(state: dict[str, torch.Tensor], drop: str = "", add: str = "", reshape: str = "") -> dict[str, Any]:
    edited = dict(state)
    if drop:
        del edited[drop]
    if add:
        edited[add] = torch.zeros(1)
    if reshape:
        edited[reshape] = torch.zeros(3)
    return edited


W = "--weights"
BAD_INPUTS: dict[str, Case] = {
    "checkpoint missing": lambda t, d, s: ([W, t / "nope.pt"], r"nope\.pt does not exist; check the --weights path"),
    "checkpoint is a folder": lambda t, d, s: ([W, t], r"is a folder, not a file; pass the \.pt file"),
    "checkpoint corrupt": lambda t, d, s: (
        [W, (t / "junk.pt", (t / "junk.pt").write_bytes(b"\x80\x02 not a checkpoint" * 9))[0]],
        r"junk\.pt is corrupt or not a PyTorch file .*; re-save it"),
    "checkpoint truncated": lambda t, d, s: ([W, _truncated(t, s)], r"corrupt or truncated .*re-save or re-download"),
    "checkpoint not a state_dict": lambda t, d, s: ([W, _checkpoint(t, [1, 2, 3])], r"holds no state_dict"),
    "checkpoint non-tensor entries": lambda t, d, s: (
        [W, _checkpoint(t, {**s, "epoch": 3})], r"entries that are not tensors: epoch"),
    "state_dict missing keys": lambda t, d, s: (
        [W, _checkpoint(t, _edited(s, drop="conv1.weight"))], r"missing keys conv1\.weight; check that --model"),
    "state_dict unexpected keys": lambda t, d, s: (
        [W, _checkpoint(t, _edited(s, add="extra.weight"))], r"unexpected keys extra\.weight"),
    "state_dict mis-shaped keys": lambda t, d, s: (
        [W, _checkpoint(t, _edited(s, reshape="fc.bias"))], r"mis-shaped keys fc\.bias \(3,\) vs \(10,\)"),
    "torchscript as weights": lambda t, d, s: (
        [W, (t / "ts.pt", torch.jit.script(tiny_cnn()).save(str(t / "ts.pt")))[0]],
        r"TorchScript archive.*--model torchscript:"),
    "spec does not import": lambda t, d, s: (["--model", "no_such_pkg_xyz:build"], r"cannot import 'no_such_pkg_xyz'"),
    "spec attribute missing": lambda t, d, s: (
        ["--model", "tests.fixtures.models:nope"], r"has no attribute 'nope'; check the name after the colon"),
    "spec not a module": lambda t, d, s: (
        ["--model", "tests.fixtures.models:NOT_A_MODULE"], r"neither an nn\.Module nor callable; point the spec at"),
    "factory returns non-module": lambda t, d, s: (
        ["--model", f"{HOSTILE}:returns_not_a_module"], r"returned dict, not an nn\.Module"),
    "unknown model name": lambda t, d, s: (["--model", "alexnet2"], r"unknown model 'alexnet2'; use one of"),
    "unknown torchvision model": lambda t, d, s: (["--model", "torchvision:nope_net"], r"torchvision has no model"),
    "output not (N, 10) logits": lambda t, d, s: (
        ["--model", "tests.fixtures.models:wrong_output"], r"shape \(\d+, 7\).*expected \(\d+, 10\) logits"),
    "output not a tensor": lambda t, d, s: (
        ["--model", f"{HOSTILE}:returns_tuple"], r"returned tuple, not a tensor of \(N, 10\) logits"),
    "model rejects 32x32": lambda t, d, s: (
        ["--model", f"{HOSTILE}:wants_large_input"], r"RuntimeError .*after layers flatten: .*3×32×32"),
    "model raises in forward": lambda t, d, s: (
        ["--model", "tests.fixtures.models:raises_in_forward"], r"ValueError .*after layers conv1, relu1: boom"),
    "data folder missing": lambda t, d, s: (["--data", t / "nope"], r"data folder .*nope does not exist"),
    "data is a file": lambda t, d, s: (
        ["--data", (t / "f.txt", (t / "f.txt").write_text("x"))[0]], r"is a file, not a folder"),
    "data folder empty": lambda t, d, s: (["--data", _folder(t)], r"is empty; it needs the ten CIFAR-10 class"),
    "no CIFAR-10 class folders": lambda t, d, s: (
        ["--data", _folder(t, "cats", "dogs")], r"lacks the CIFAR-10 class folders airplane, .*truck"),
    "extra class folder": lambda t, d, s: (
        ["--data", (write_image_folder(t / "data", 2), (t / "data" / "zebra").mkdir())[0]],
        r"folders that are not CIFAR-10 classes: zebra; move them out"),
    "non-image file": lambda t, d, s: (
        ["--data", _with_bad_file(t, "000.txt", lambda p: p.write_text("notes"))], r"000\.txt is not an image file"),
    "image not 32x32": lambda t, d, s: (
        ["--data", _with_bad_file(t, "000.png", lambda p: Image.new("RGB", (64, 48)).save(p))],
        r"000\.png is 64×48, not 32×32; resize"),
    "unreadable image": lambda t, d, s: (
        ["--data", _with_bad_file(t, "000.png", lambda p: p.write_bytes(b"not a png"))],
        r"000\.png cannot be read as an image .*remove or replace it"),
    "empty class folder": lambda t, d, s: (
        ["--data", (write_image_folder(t / "data", 2), [f.unlink() for f in (t / "data" / "cat").iterdir()])[0]],
        r"class folder .*cat is empty; put at least 2 images of cat in it"),
    "template dir missing": lambda t, d, s: (
        ["--template-dir", t / "nope", "--format", "html"], r"--template-dir .*nope is not a folder"),
    "per-class 0": lambda t, d, s: (["--per-class", "0"], r"--per-class must be at least 1, got 0"),
    "per-class negative": lambda t, d, s: (["--per-class", "-3"], r"--per-class must be at least 1, got -3"),
    "per-class above the data": lambda t, d, s: (
        ["--per-class", "7"], r"more than .* holds \(6 files\); use --per-class 6"),
    "unknown format": lambda t, d, s: (["--format", "html,docx"], r"unknown output format 'docx'; choose from"),
    "no format": lambda t, d, s: (["--format", ","], r"no output format given"),
    "unknown device": lambda t, d, s: (["--device", "tpu"], r"unknown device 'tpu'; use cpu or cuda"),
    "batch size 0": lambda t, d, s: (["--batch-size", "0"], r"--batch-size must be at least 1"),
    "min-accuracy above 1": lambda t, d, s: (["--min-accuracy", "2"], r"--min-accuracy must be between 0 and 1"),
    "config file missing": lambda t, d, s: (
        ["--config", t / "nope.toml"], r"config file .*nope\.toml does not exist; check the --config path"),
    "output path is a file": lambda t, d, s: (
        ["-o", (t / "taken", (t / "taken").write_text("keep"))[0]], r"output path .*taken is a file; pass a folder"),
    "output path under a file": lambda t, d, s: (
        ["-o", (t / "f" / "out", (t / "f").write_text("keep"))[0]],
        r"lies under .*f, which is a file; choose another folder with -o"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: str, image_folder: Path, tmp_path: Path,
                                                          tiny_state, capsys) -> None:
    args, pattern = BAD_INPUTS[case](tmp_path, image_folder, tiny_state)
    options = {"--model": TINY, "--data": image_folder, "--per-class": "2", "-o": tmp_path / "out"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[str(flag)] = value
    before = sorted(p.name for p in tmp_path.iterdir())
    code = run_cli(*[x for pair in options.items() for x in pair])
    one_line_error(capsys, pattern)
    assert code == 2
    out = Path(options["-o"])
    assert not out.is_dir() or not any(out.iterdir()), "files left in the output folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was created beside the output"
    assert not staging_leftovers(tmp_path, out)


def test_cuda_without_cuda(image_folder: Path, tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert run_cli("--model", TINY, "--data", image_folder, "--device", "cuda", "-o", tmp_path / "o") == 2
    one_line_error(capsys, r"--device cuda .*CUDA is not available here; use --device cpu")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o500; the os.access test covers the path")
def test_unwritable_output_directory(image_folder: Path, tmp_path: Path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert run_cli("--model", TINY, "--data", image_folder, "-o", locked / "out") == 2
        one_line_error(capsys, r"cannot write into .*locked; choose another folder with -o")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_output_directory_access_check(image_folder: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    checked: list[Path] = []

    def no_access(path: Any, mode: int) -> bool:
        checked.append(Path(path))
        return False

    monkeypatch.setattr(output.os, "access", no_access)
    assert run_cli("--model", TINY, "--data", image_folder, "-o", tmp_path / "a" / "b") == 2
    one_line_error(capsys, r"cannot write into .*; choose another folder with -o")
    assert checked == [tmp_path]  # the nearest folder that exists
    assert not (tmp_path / "a").exists()


def test_nan_weights_are_a_failing_finding_not_an_error(image_folder: Path, tmp_path: Path) -> None:
    args = ["--model", f"{HOSTILE}:nan_weights", "--data", image_folder, "--per-class", "1", "--format", "json,html"]
    assert run_cli(*args, "-o", tmp_path / "a") == 0
    record = json.loads((tmp_path / "a" / "report.json").read_text())
    non_finite = [f for f in record["findings"] if f["check"] == "non-finite"]
    assert non_finite and all(f["severity"] == "fail" for f in non_finite)
    assert any("conv1.weight holds 1 NaN" in f["message"] for f in non_finite)
    assert run_cli(*args, "-o", tmp_path / "b", "--fail-on", "fail") == 1
    assert (tmp_path / "b" / "report.json").exists() and (tmp_path / "b" / "report.html").exists()
