"""The raw graph every extractor produces, and the helpers both extractors share.

A ``RawNode`` is one module call or functional op, in execution order, with the ids of the nodes
its inputs came from. Assembly (``graph.assembly``) turns the list into a ``flow_model.FlowGraph``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

# A container call on the way to a node: (call key, module path, module class name).
Scope = tuple[tuple[str, str, str], ...]


@dataclass
class RawNode:
    id: str
    label: str
    op_type: str
    module_path: str | None
    scope: Scope
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    inputs: list[str] = field(default_factory=list)
    structure: str = ""  # what makes two calls "the same layer" when folding, channel counts aside


def is_leaf(module: nn.Module) -> bool:
    """Leaves are drawn as single nodes: torch.nn layers (as fx sees them) and childless modules."""
    builtin = module.__module__.startswith(("torch.nn", "torch.ao.nn")) and not isinstance(
        module, nn.Sequential
    )
    return builtin or next(module.children(), None) is None



class ParamLedger:
    """Hands out each parameter's count once, to the first node that uses it (shared weights)."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def claim(self, tensors: Iterator[torch.Tensor]) -> int:
        count = 0
        for tensor in tensors:
            if isinstance(tensor, nn.Parameter) and id(tensor) not in self._seen:
                self._seen.add(id(tensor))
                count += tensor.numel()
        return count


def per_sample_shape(value: Any, batch: int) -> tuple[int, ...] | None:
    tensors = [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    if not tensors:
        return None
    shape = tuple(int(s) for s in tensors[0].shape)
    return shape[1:] if shape and shape[0] == batch else shape


def holds_tensor(value: Any) -> bool:
    return any(isinstance(t, torch.Tensor) for t in tree_flatten(value)[0])


def module_multiply_adds(module: nn.Module, output_shape: tuple[int, ...] | None) -> int:
    """Multiply-adds for one sample; counted for convolution and linear layers, the dominant cost."""
    if output_shape is None:
        return 0
    out_numel = math.prod(output_shape)
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return out_numel * per_output
    if isinstance(module, nn.Linear):
        return out_numel * module.in_features
    return 0


def structure_of(module: nn.Module) -> str:
    """A convolution's geometry, so a 1×1 and a depthwise 3×3 are not folded together; channel
    counts are left out so growing blocks (DenseNet's layers) still fold."""
    if isinstance(module, nn.modules.conv._ConvNd):
        depthwise = module.groups > 1 and module.groups == module.in_channels
        groups = "dw" if depthwise else module.groups
        return f"k{module.kernel_size}s{module.stride}d{module.dilation}g{groups}"
    return ""


_OP_ALIASES = {"iadd": "add", "radd": "add", "imul": "mul", "rmul": "mul", "isub": "sub",
               "rsub": "sub", "itruediv": "truediv", "truediv": "div", "matmul": "matmul"}


def op_name(target: Any) -> str:
    name = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
    name = name.strip("_")
    return _OP_ALIASES.get(name, name)



def type_name(cls: Any) -> str:
    return cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]


def dedup(items: Iterator[str] | list[str]) -> list[str]:
    return list(dict.fromkeys(items))

