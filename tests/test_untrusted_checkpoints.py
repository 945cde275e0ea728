"""Checkpoints are untrusted input: loading one never executes code unless --trust-checkpoint
says so, whatever route it takes (a state_dict, a checkpoint dict, a TorchScript archive)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nnviz_report.errors import CheckpointError
from nnviz_report.models import load_model, read_state_dict
from tests.cli_helpers import TINY, one_line_error, run_cli, staging_leftovers
from tests.fixtures.hostile_models import (
    save_marker_checkpoint,
    save_raw_marker_pickle,
)
from tests.fixtures.models import tiny_cnn


def test_hostile_checkpoint_is_refused_and_its_payload_never_runs(tmp_path: Path, tiny_state) -> None:
    marker = tmp_path / "pwned"
    path = save_marker_checkpoint(tmp_path / "hostile.pt", marker, tiny_state)
    with pytest.raises(CheckpointError, match=r"full unpickling.*arbitrary code.*state_dict.*--trust-checkpoint"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["zip-checkpoint", "legacy-pickle"])
def test_hostile_checkpoint_through_the_cli(tmp_path: Path, image_folder: Path, tiny_state, capsys, kind) -> None:
    marker = tmp_path / "pwned"
    if kind == "zip-checkpoint":
        path = save_marker_checkpoint(tmp_path / "hostile.pt", marker, tiny_state)
    else:
        path = save_raw_marker_pickle(tmp_path / "hostile.pkl", marker)
    out = tmp_path / "out"
    assert run_cli("--model", TINY, "--weights", path, "--data", image_folder, "--per-class", "1", "-o", out) == 2
    one_line_error(capsys, r"hostile\.(pt|pkl) holds Python objects .*--trust-checkpoint")
    assert not marker.exists()
    assert not out.exists() and not staging_leftovers(tmp_path)


def test_trust_checkpoint_does_unpickle(tmp_path: Path, tiny_state) -> None:
    # What the flag means, and why it is off by default: the payload runs.
    marker = tmp_path / "pwned"
    path = save_marker_checkpoint(tmp_path / "hostile.pt", marker, tiny_state)
    assert set(read_state_dict(path, trust=True)) == set(tiny_state)
    assert marker.exists()


def test_every_untrusted_load_is_weights_only(tmp_path: Path, tiny_state, monkeypatch) -> None:
    calls: list[Any] = []
    real_load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    torch.save({"model": tiny_state, "epoch": 3}, tmp_path / "plain.pt")
    load_model(TINY, weights=tmp_path / "plain.pt")
    with pytest.raises(CheckpointError):
        read_state_dict(save_marker_checkpoint(tmp_path / "h.pt", tmp_path / "m", tiny_state))
    assert calls == [True, True]


@pytest.mark.parametrize("trust", [False, True])
def test_torchscript_archive_as_weights_is_refused_not_executed(tmp_path: Path, image_folder: Path, capsys,
                                                                  monkeypatch, trust: bool) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(tiny_cnn()).save(str(path))
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load was called"))
    flags = ["--trust-checkpoint"] if trust else []
    assert run_cli("--model", TINY, "--weights", path, *flags, "--data", image_folder, "--per-class", "1",
                   "-o", tmp_path / "o") == 2
    one_line_error(capsys, r"scripted\.pt is a TorchScript archive .*--model torchscript:.*no --weights")
    monkeypatch.undo()
    assert load_model(f"torchscript:{path}").class_name == "TorchScript"  # the explicit spec loads it
