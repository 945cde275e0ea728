"""The user's model comes back unchanged from capture, saliency and graph extraction (mode,
parameters, .grad, buffers, hooks), also when the model raises or the run is interrupted."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from nnviz_report.capture import run_capture
from nnviz_report.errors import CaptureError
from nnviz_report.graph import extract_graph
from nnviz_report.saliency_capture import capture_saliency
from tests.cli_helpers import CPU
from tests.fixtures.models import InplaceResidual


class FailsAfterBN(InplaceResidual):
    """Runs the stem and the first BatchNorm, then raises: a failure after state could have moved."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.relu(self.bn0(self.stem(x)))
        raise ValueError("fails after bn0")


def prepared(model_class: type[InplaceResidual] = InplaceResidual) -> nn.Module:
    """Train mode with one BatchNorm frozen, moved running statistics, .grad on some parameters,
    requires_grad off on others, and the user's own hooks."""
    torch.manual_seed(0)
    model = model_class()
    model.train()
    model.bn0.eval()  # a frozen BatchNorm inside a training model (fine-tuning)
    with torch.no_grad():
        for bn in (model.bn0, model.bn1):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.num_batches_tracked.fill_(17)
    model.stem.weight.requires_grad_(False)
    model.conv.weight.grad = torch.randn_like(model.conv.weight)
    model.bn1.bias.grad = torch.ones_like(model.bn1.bias)
    model.head.register_forward_hook(lambda *_: None)
    model.bn1.register_forward_pre_hook(lambda *_: None)
    return model


def model_state(model: nn.Module) -> dict[str, Any]:
    hook_kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                  "_state_dict_hooks", "_load_state_dict_pre_hooks")
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
        "params": {n: id(p) for n, p in model.named_parameters()},
        "grads": {n: (id(p.grad), p.grad.clone()) if p.grad is not None else None for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
        "devices": {n: p.device for n, p in model.named_parameters()},
        "hooks": {(n, kind): list(getattr(m, kind)) for n, m in model.named_modules() for kind in hook_kinds},
    }


def assert_same_state(before: dict[str, Any], model: nn.Module) -> None:
    after = model_state(model)
    assert before["tensors"].keys() == after["tensors"].keys()
    for key, value in before["tensors"].items():
        assert torch.equal(value, after["tensors"][key]), f"{key} moved"  # BN running statistics included
    for key in ("params", "requires_grad", "training", "devices", "hooks"):
        assert before[key] == after[key], key
    for name, saved in before["grads"].items():
        now = after["grads"][name]
        assert (saved is None) == (now is None), name
        if saved is not None:
            assert saved[0] == now[0] and torch.equal(saved[1], now[1]), f"{name}.grad changed"


def batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10


def test_capture_leaves_the_model_untouched() -> None:
    model = prepared()
    before = model_state(model)
    x, y = batch()
    run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(0, 1))
    assert_same_state(before, model)


def test_failed_capture_leaves_the_model_untouched() -> None:
    model = prepared(FailsAfterBN)
    before = model_state(model)
    x, y = batch()
    with pytest.raises(CaptureError, match="after layers stem, bn0, relu: fails after bn0"):
        run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(0,))
    assert_same_state(before, model)


def test_interrupted_capture_leaves_the_model_untouched() -> None:
    model = prepared()
    before = model_state(model)
    x, y = batch()

    def interrupt(_done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # after a full forward and backward of the first batch
        run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(0,), progress=interrupt)
    assert_same_state(before, model)


def test_saliency_leaves_the_model_untouched() -> None:
    model = prepared()
    before = model_state(model)
    x, y = batch(4)
    result = capture_saliency(model, x, y, layer="conv", device=CPU)
    assert result.gradients.shape == (4, 8, 32, 32)
    assert_same_state(before, model)
    failing = prepared(FailsAfterBN)
    before = model_state(failing)
    with pytest.raises(ValueError, match="fails after bn0"):
        capture_saliency(failing, x, y, layer="stem", device=CPU)
    assert_same_state(before, failing)


def test_graph_extraction_leaves_the_model_untouched() -> None:
    model = prepared()
    before = model_state(model)
    graph = extract_graph(model, batch(2)[0])
    assert graph.nodes
    assert_same_state(before, model)
    failing = prepared(FailsAfterBN)
    before = model_state(failing)
    with pytest.raises(Exception, match="fails after bn0"):
        extract_graph(failing, batch(2)[0])
    assert_same_state(before, failing)
