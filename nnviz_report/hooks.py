"""The one owner of hook handles and of the model's saved state.

Capture, saliency and graph extraction all run the user's model with hooks on it. Each does so
inside :func:`model_session`, which

* registers hooks through a :class:`HookSet` and removes every handle in ``finally``;
* saves, and restores whatever happens (an exception, Ctrl-C), each module's own train/eval flag
  (a frozen BatchNorm inside a training model stays frozen), each parameter's and buffer's device
  and values (a forward that updates a buffer or mutates a weight in place leaves no trace),
  ``requires_grad`` and ``.grad`` (the very tensor objects the user held);
* never swallows an exception.

Inside the session the model is in eval mode, optionally on another device, with ``.grad``
cleared and gradients enabled on its floating-point parameters (integer parameters cannot
require gradients) when ``param_grads`` is set.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


class HookSet:
    """Hook handles registered through it are removed together by :meth:`remove_all`."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward_hook(self, module: nn.Module, hook: Callable[..., Any]) -> RemovableHandle:
        handle = module.register_forward_hook(hook)
        self._handles.append(handle)
        return handle

    def forward_pre_hook(self, module: nn.Module, hook: Callable[..., Any]) -> RemovableHandle:
        handle = module.register_forward_pre_hook(hook)
        self._handles.append(handle)
        return handle

    def remove_all(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.remove_all()


@dataclasses.dataclass
class _SavedTensor:
    owner: nn.Module
    name: str
    tensor: Tensor  # the object itself: restored as the very same object the user holds
    values: Tensor  # a copy of its values, for in-place changes


@dataclasses.dataclass
class _SavedParameter:
    param: nn.Parameter
    data: Tensor  # the original storage (and device)
    values: Tensor
    requires_grad: bool
    grad: Tensor | None


@dataclasses.dataclass
class SavedModelState:
    training: dict[str, bool]
    params: list[_SavedParameter]
    buffers: list[_SavedTensor]

    @classmethod
    def of(cls, model: nn.Module) -> SavedModelState:
        with torch.no_grad():
            params = [
                _SavedParameter(p, p.data, p.detach().clone(), p.requires_grad, p.grad)
                for p in _unique_parameters(model)
            ]
            buffers = [
                _SavedTensor(owner, name, buffer, buffer.detach().clone())
                for owner in model.modules()
                for name, buffer in list(getattr(owner, "_buffers", {}).items())
                if isinstance(buffer, Tensor)
            ]
        return cls({name: m.training for name, m in model.named_modules()}, params, buffers)

    def restore(self, model: nn.Module) -> None:
        with torch.no_grad():
            for saved in self.params:
                p = saved.param
                p.data = saved.data  # the original storage (and device), whatever .to() or forward did
                if not torch.equal(saved.data, saved.values):
                    saved.data.copy_(saved.values)
                p.grad = saved.grad
                p.requires_grad_(saved.requires_grad)
            for buffer in self.buffers:
                buffer.owner._buffers[buffer.name] = buffer.tensor
                if buffer.tensor.shape == buffer.values.shape and not torch.equal(buffer.tensor, buffer.values):
                    buffer.tensor.copy_(buffer.values)
        for name, module in model.named_modules():
            # Each module's own flag: model.train(flag) would unfreeze a frozen BatchNorm.
            module.training = self.training.get(name, module.training)


def _unique_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(dict.fromkeys(model.parameters()))


@contextlib.contextmanager
def model_session(model: nn.Module, device: torch.device | None = None, *,
                  param_grads: bool = True) -> Iterator[HookSet]:
    """Run ``model`` in eval mode (on ``device`` when given) with hooks registered through the
    yielded :class:`HookSet`; every handle is removed and the model restored afterwards."""
    saved = SavedModelState.of(model)
    hooks = HookSet()
    try:
        model.eval()
        if device is not None:
            model.to(device)
        if param_grads:
            for saved_param in saved.params:
                p = saved_param.param
                p.grad = None
                if p.is_floating_point() or p.is_complex():
                    p.requires_grad_(True)
        yield hooks
    finally:
        try:
            hooks.remove_all()
        finally:
            saved.restore(model)
