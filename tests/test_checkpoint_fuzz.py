"""Checkpoints are untrusted bytes: whatever a truncation, a flipped byte or a crafted archive
does to torch's loader, the result is a loaded model or a one-line CheckpointError (exit 2), and
nothing is unpacked or read without bound first."""

from __future__ import annotations

import io
import random
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from nnviz_report.errors import CheckpointError
from nnviz_report.models import MAX_EXPANSION_ENV, apply_state_dict, load_model, read_state_dict
from nnviz_report.zoo import BUILTIN_MODELS

LENET_WEIGHTS = Path(__file__).resolve().parents[1] / "nnviz_report" / "weights" / "lenet.pt"
HEAD_TAIL = 4096  # the zip headers, data.pkl and the central directory sit in the first and last few KiB


def damaged_copies(data: bytes, count: int, seed: int = 0) -> list[bytes]:
    """Deterministic damage: a third truncated at random lengths, the rest with 1–4 bytes
    overwritten, mostly in the structural parts (the tensor payload in the middle tolerates any byte)."""
    rng = random.Random(seed)
    copies = []
    for i in range(count):
        damaged = bytearray(data)
        if i % 3 == 0:
            damaged = damaged[: rng.randrange(len(damaged))]
        else:
            for _ in range(rng.randint(1, 4)):
                position = (rng.randrange(HEAD_TAIL) if rng.random() < 0.5
                            else len(damaged) - 1 - rng.randrange(HEAD_TAIL))
                damaged[position] = rng.randrange(256)
        copies.append(bytes(damaged))
    return copies


def load_into_lenet(path: Path) -> None:
    state = read_state_dict(path)
    apply_state_dict(BUILTIN_MODELS["lenet"][0](), state, path.name)


def test_damaged_checkpoints_load_or_fail_in_one_line(tmp_path: Path) -> None:
    outcomes = {"loaded": 0, "refused": 0}
    for number, damaged in enumerate(damaged_copies(LENET_WEIGHTS.read_bytes(), 360)):
        path = tmp_path / f"damaged-{number}.pt"
        path.write_bytes(damaged)
        try:
            load_into_lenet(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and path.name in str(exc), (number, str(exc))
            outcomes["refused"] += 1
        else:
            outcomes["loaded"] += 1
        path.unlink()
    # Both outcomes occur: the fuzzing reaches the loader's error paths, not only the payload.
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 50, outcomes


def test_damaged_checkpoint_through_the_cli_is_exit_2(tmp_path: Path, image_folder: Path, capsys) -> None:
    from nnviz_report.cli import main

    # The first copy whose damage makes torch's loader raise something other than RuntimeError.
    damaged = tmp_path / "flipped.pt"
    candidates = damaged_copies(LENET_WEIGHTS.read_bytes(), 60)
    for data in candidates:
        damaged.write_bytes(data)
        try:
            load_into_lenet(damaged)
        except CheckpointError as exc:
            if "KeyError" in str(exc) or "TypeError" in str(exc) or "IndexError" in str(exc):
                break
    else:
        pytest.skip("no copy hit a non-RuntimeError path")
    assert main(["report", "--quiet", "--model", "lenet", "--weights", str(damaged), "--format", "json",
                 "--data", str(image_folder), "--per-class", "1",
                 "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnviz-report: error: checkpoint flipped.pt is corrupt") and err.count("\n") == 1, err


def test_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path, monkeypatch) -> None:
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (64 << 20))  # 64 MiB of zeros: ~64 KiB on disk
    assert bomb.stat().st_size < 1 << 20

    class ReadTheBomb(BaseException):
        pass

    def never(*_args, **_kwargs):
        raise ReadTheBomb

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(CheckpointError, match=r"bomb\.pt declares 67,108,864 bytes once unpacked.*limit is 4×"):
        read_state_dict(bomb)
    # The limit is a factor of the file's size, and it can be raised for a file one trusts.
    monkeypatch.setenv(MAX_EXPANSION_ENV, "5000")
    with pytest.raises(ReadTheBomb):
        read_state_dict(bomb)
    monkeypatch.setenv(MAX_EXPANSION_ENV, "nan")
    with pytest.raises(CheckpointError, match="is not a positive number"):
        read_state_dict(bomb)


def test_real_checkpoints_stay_under_the_expansion_limit() -> None:
    for name in ("lenet.pt", "resnet20.pt"):
        path = LENET_WEIGHTS.with_name(name)
        with zipfile.ZipFile(path) as archive:
            declared = sum(i.file_size for i in archive.infolist())
        assert declared < 1.1 * path.stat().st_size


def test_endless_inputs_are_refused() -> None:
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_state_dict(Path("/dev/zero"))
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_model("torchscript:/dev/zero")


@pytest.mark.parametrize("kind", ["meta", "sparse"])
def test_tensors_without_values_are_refused(tmp_path: Path, kind: str) -> None:
    state = BUILTIN_MODELS["lenet"][0]().state_dict()
    name = next(iter(state))
    state[name] = state[name].to("meta") if kind == "meta" else state[name].to_sparse()
    path = tmp_path / f"{kind}.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=rf"{kind}.*save it from a model whose weights are materialised"):
        read_state_dict(path)


@pytest.mark.parametrize("form", ["state_dict", "plain dict", "DataParallel"])
def test_modules_that_read_version_metadata_load(tmp_path: Path, form: str) -> None:
    # torchvision's MNASNet refuses a state_dict without its version record.
    model = load_model("torchvision:mnasnet0_5").module
    with torch.no_grad():
        model.classifier[1].bias.fill_(0.25)
    state = model.state_dict()
    if form == "plain dict":
        state = dict(state)
    elif form == "DataParallel":
        prefixed: OrderedDict[str, torch.Tensor] = OrderedDict((f"module.{k}", v) for k, v in state.items())
        prefixed._metadata = OrderedDict(  # type: ignore[attr-defined]
            (f"module.{k}" if k else "module", v) for k, v in state._metadata.items())  # type: ignore[attr-defined]
        state = prefixed
    path = tmp_path / "mnasnet.pt"
    torch.save(state, path)
    loaded = load_model("torchvision:mnasnet0_5", weights=path).module
    assert torch.equal(loaded.classifier[1].bias, torch.full((10,), 0.25))


def test_checkpoint_keys_are_printed_on_one_line(tmp_path: Path) -> None:
    state = BUILTIN_MODELS["lenet"][0]().state_dict()
    state["evil\n::error title=forged::x\x1b[31m"] = torch.zeros(1)
    path = tmp_path / "keys.pt"
    torch.save(state, path)
    buffer = io.StringIO()
    with pytest.raises(CheckpointError) as caught:
        load_into_lenet(path)
    message = str(caught.value)
    buffer.write(message)
    assert "\n" not in message and "\x1b" not in message
    assert r"unexpected keys evil\n::error title=forged::x\x1b[31m;" in message
