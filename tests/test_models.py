"""Model specs and checkpoint loading: weights_only always, clear refusals otherwise."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

from nnviz_report.errors import CheckpointError, ModelError
from nnviz_report.models import load_model, read_state_dict
from tests.fixtures.models import TrainingNotes, tiny_cnn

SPEC = "tests.fixtures.models:tiny_cnn"


@pytest.fixture()
def state() -> dict[str, torch.Tensor]:
    model = tiny_cnn()
    with torch.no_grad():
        model.fc.bias.fill_(0.25)
    return model.state_dict()


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "module-prefix"])
def test_checkpoint_layouts(tmp_path: Path, state, wrap: str) -> None:
    payload = {
        "bare": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state, "optimizer": {}},
        "module-prefix": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    path = tmp_path / "ckpt.pt"
    torch.save(payload, path)
    loaded = load_model(SPEC, weights=path)
    assert torch.equal(loaded.module.fc.bias, torch.full((10,), 0.25))
    assert loaded.checkpoint_name == "ckpt.pt" and len(loaded.checkpoint_sha256 or "") == 64


def test_key_problems_are_listed(tmp_path: Path, state) -> None:
    broken = collections.OrderedDict(state)
    del broken["conv1.weight"]
    broken["extra.weight"] = torch.zeros(1)
    broken["fc.bias"] = torch.zeros(3)
    path = tmp_path / "broken.pt"
    torch.save(broken, path)
    with pytest.raises(CheckpointError) as info:
        load_model(SPEC, weights=path)
    text = str(info.value)
    assert "missing keys conv1.weight" in text and "unexpected keys extra.weight" in text
    assert "mis-shaped keys fc.bias (3,) vs (10,)" in text and "\n" not in text


def test_missing_truncated_and_corrupt_files(tmp_path: Path, state) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(SPEC, weights=tmp_path / "nope.pt")
    good = tmp_path / "good.pt"
    torch.save(state, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(SPEC, weights=truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 definitely not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(SPEC, weights=garbage)


class _Marker:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_hostile_pickle_never_runs(tmp_path: Path, state) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pt"
    torch.save({"state_dict": state, "payload": _Marker(str(marker))}, path)
    with pytest.raises(CheckpointError, match="full unpickling.*--trust-checkpoint"):
        load_model(SPEC, weights=path)
    assert not marker.exists()


def test_trust_checkpoint_allows_full_unpickling(tmp_path: Path, state) -> None:
    path = tmp_path / "objects.pt"
    torch.save({"state_dict": state, "meta": TrainingNotes("adam", 3)}, path)
    with pytest.raises(CheckpointError):
        read_state_dict(path)
    assert set(read_state_dict(path, trust=True)) == set(state)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:build", "cannot import 'no_such_module_xyz'"),
        ("tests.fixtures.models:missing", "has no attribute 'missing'"),
        ("tests.fixtures.models:NOT_A_MODULE", "neither an nn.Module nor callable"),
        ("torchvision:not_a_net", "torchvision has no model 'not_a_net'"),
        ("alexnet2", "unknown model 'alexnet2'"),
    ],
)
def test_bad_model_specs(spec: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_model(spec)


def test_builtin_models_ship_trained_weights() -> None:
    for name, expected_params in (("lenet", 62_006), ("resnet20", None)):
        loaded = load_model(name)
        params = sum(p.numel() for p in loaded.module.parameters())
        if expected_params:
            assert params == expected_params
        else:
            assert 0.26e6 < params < 0.28e6
        assert loaded.checkpoint_name == f"{name}.pt" and loaded.checkpoint_sha256


def test_torchvision_and_torchscript(tmp_path: Path) -> None:
    model = load_model("torchvision:resnet18").module
    assert model.fc.out_features == 10
    scripted = torch.jit.script(tiny_cnn())
    path = tmp_path / "m.ts"
    scripted.save(str(path))
    loaded = load_model(f"torchscript:{path}")
    assert loaded.class_name == "TorchScript" and loaded.checkpoint_sha256
    with pytest.raises(CheckpointError, match="not a TorchScript archive"):
        bad = tmp_path / "bad.ts"
        bad.write_bytes(b"nope")
        load_model(f"torchscript:{bad}")
