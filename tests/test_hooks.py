"""hooks.py owns every hook handle and the model's saved state: capture, saliency and graph
extraction leave the user's model exactly as it was — buffers a forward updates and parameters
it mutates in place included — and remove every handle, also when the model raises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnviz_report.capture import run_capture
from nnviz_report.graph import extract_graph
from nnviz_report.hooks import HookSet, model_session
from nnviz_report.saliency_capture import capture_saliency

CPU = torch.device("cpu")


class SelfModifying(nn.Module):
    """A forward with side effects: it counts its calls in a buffer and nudges a weight in place."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 10)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.register_buffer("seen", torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.calls += 1
            self.seen.copy_(x.mean(dim=(0, 2, 3)))
            self.conv.weight.mul_(1.5)
        return self.head(self.conv(x).mean(dim=(2, 3)))


def snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "values": {k: v.clone() for k, v in model.state_dict().items()},
        "objects": {k: id(v) for k, v in [*model.named_parameters(), *model.named_buffers()]},
        "training": {n: m.training for n, m in model.named_modules()},
        "hooks": {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()},
    }


def assert_unchanged(before: dict[str, object], model: nn.Module) -> None:
    after = snapshot(model)
    values_before, values_after = before["values"], after["values"]
    assert isinstance(values_before, dict) and isinstance(values_after, dict)
    for key, value in values_before.items():
        assert torch.equal(value, values_after[key]), f"{key} changed"
    for key in ("objects", "training", "hooks"):
        assert before[key] == after[key], key


def prepared() -> SelfModifying:
    torch.manual_seed(0)
    model = SelfModifying()
    model.train()
    return model


def batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(n) % 10


def test_capture_undoes_a_forward_with_side_effects() -> None:
    model = prepared()
    before = snapshot(model)
    x, y = batch()
    run_capture(model, x, y, batch_size=4, device=CPU, showcase_positions=(0,))
    assert_unchanged(before, model)


def test_saliency_undoes_a_forward_with_side_effects() -> None:
    model = prepared()
    before = snapshot(model)
    x, y = batch(2)
    capture_saliency(model, x, y, layer="conv", device=CPU)
    assert_unchanged(before, model)


def test_graph_extraction_undoes_a_forward_with_side_effects() -> None:
    model = prepared()
    before = snapshot(model)
    assert extract_graph(model, batch(2)[0]).nodes
    assert_unchanged(before, model)


def test_session_restores_everything_when_the_body_raises() -> None:
    model = prepared()
    model.conv.weight.grad = torch.ones_like(model.conv.weight)
    grad = model.conv.weight.grad
    model.head.weight.requires_grad_(False)
    before = snapshot(model)
    with pytest.raises(ValueError, match="boom"), model_session(model, CPU) as hooks:
        hooks.forward_hook(model.conv, lambda *_: None)
        hooks.forward_pre_hook(model.head, lambda *_: None)
        assert not model.training and model.conv.weight.grad is None and model.head.weight.requires_grad
        model(batch(2)[0])
        raise ValueError("boom")
    assert_unchanged(before, model)
    assert model.conv.weight.grad is grad and not model.head.weight.requires_grad


def test_hook_set_removes_its_handles_only() -> None:
    module = nn.Linear(2, 2)
    own = module.register_forward_hook(lambda *_: None)
    with HookSet() as hooks:
        hooks.forward_hook(module, lambda *_: None)
        hooks.forward_pre_hook(module, lambda *_: None)
        assert len(module._forward_hooks) == 2 and len(module._forward_pre_hooks) == 1
    assert list(module._forward_hooks) == [own.id] and not module._forward_pre_hooks


def test_integer_parameters_do_not_break_the_session() -> None:
    model = nn.Linear(2, 2)
    model.register_parameter("steps", nn.Parameter(torch.arange(3), requires_grad=False))
    with model_session(model, CPU):
        assert not model.steps.requires_grad and model.weight.requires_grad
    assert torch.equal(model.steps, torch.arange(3))
