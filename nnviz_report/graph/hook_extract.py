"""The fallback for models ``torch.fx`` cannot trace (data-dependent control flow, untraceable
Python): run the real model with forward hooks on its modules plus a ``TorchFunctionMode`` that sees
the functional ops between leaf modules; edges are recovered from tensor identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..flow_model import INPUT_ID, OUTPUT_ID
from ..hooks import HookSet
from .raw import (
    ParamLedger,
    RawNode,
    dedup,
    holds_tensor,
    is_leaf,
    module_multiply_adds,
    op_name,
    per_sample_shape,
    structure_of,
)


class HookExtractor:
    """The fallback: run the real model; hooks see leaf modules, a TorchFunctionMode sees the
    functional ops between them, and tensor identity links producers to consumers."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {id(m): name for name, m in model.named_modules()}
        self.nodes: list[RawNode] = []
        self.producer: dict[int, str] = {}
        self.keepalive: list[torch.Tensor] = []  # ids stay unique only while the tensors live
        self.stack: list[tuple[str, str, str]] = []
        self.call_counts: dict[str, int] = {}
        self.leaf_depth = 0
        self.ledger = ParamLedger()
        self.carried: dict[int, list[torch.Tensor]] = {}  # parameter-only results -> their parameters
        self.batch = 0

    def run(self, example_input: torch.Tensor) -> list[RawNode]:
        self.batch = int(example_input.shape[0])
        self.nodes.append(RawNode(INPUT_ID, "input", "input", None, (),
                                   per_sample_shape(example_input, self.batch), 0, 0))
        self._produced(example_input, INPUT_ID)
        with HookSet() as hooks:
            for name, module in self.model.named_modules():
                if not name:
                    continue
                hooks.forward_pre_hook(module, self._pre_hook)
                hooks.forward_hook(module, self._post_hook)
            with _FunctionalOpRecorder(self):
                output = self.model(example_input)
        self.nodes.append(RawNode(OUTPUT_ID, "output", "output", None, (),
                                   per_sample_shape(output, self.batch), 0, 0, self._sources(output)))
        return self.nodes

    def _call_key(self, path: str) -> str:
        count = self.call_counts.get(path, 0)
        self.call_counts[path] = count + 1
        return path if count == 0 else f"{path}@{count}"

    def _pre_hook(self, module: nn.Module, args: Any) -> None:
        if self.leaf_depth:
            self.leaf_depth += int(is_leaf(module))
            return
        if is_leaf(module):
            self.leaf_depth = 1
        else:
            path = self.names[id(module)]
            self.stack.append((self._call_key(path), path, type(module).__name__))

    def _post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if not is_leaf(module):
            if not self.leaf_depth:
                self.stack.pop()
            return
        self.leaf_depth -= 1
        if self.leaf_depth or isinstance(module, nn.Identity):
            return  # Identity returns its input object: the edge goes straight through
        path = self.names[id(module)]
        shape = per_sample_shape(output, self.batch)
        node = RawNode(self._call_key(path), path, type(module).__name__, path, tuple(self.stack),
                        shape, self.ledger.claim(module.parameters()), module_multiply_adds(module, shape),
                        self._sources(args), structure_of(module))
        self.nodes.append(node)
        self._produced(output, node.id)

    def record_op(self, func: Any, args: Any, kwargs: Any, result: Any) -> None:
        if self.leaf_depth or not holds_tensor(result):
            return
        inputs = self._sources((args, kwargs))
        used = self._parameters_in((args, kwargs))
        if not inputs:
            # Computed from parameters and constants only (a reshaped scale, a position embedding):
            # not part of the data flow; the first op that uses the result counts the parameters.
            for tensor in tree_flatten(result)[0]:
                if isinstance(tensor, torch.Tensor):
                    self.carried[id(tensor)] = used
                    self.keepalive.append(tensor)
            return
        op = op_name(func)
        node_id = self._call_key(op).replace("@", "_")
        self.nodes.append(RawNode(node_id, op, op, None, tuple(self.stack),
                                  per_sample_shape(result, self.batch), self.ledger.claim(iter(used)),
                                  0, inputs))
        self._produced(result, node_id)

    def _parameters_in(self, value: Any) -> list[torch.Tensor]:
        """Parameters an op reads directly or through a parameter-only op's result."""
        found: list[torch.Tensor] = []
        for tensor in tree_flatten(value)[0]:
            if isinstance(tensor, nn.Parameter):
                found.append(tensor)
            elif isinstance(tensor, torch.Tensor):
                found += self.carried.get(id(tensor), [])
        return found

    def _sources(self, value: Any) -> list[str]:
        leaves = tree_flatten(value)[0]
        return dedup(self.producer[id(t)] for t in leaves
                      if isinstance(t, torch.Tensor) and id(t) in self.producer)

    def _produced(self, value: Any, node_id: str) -> None:
        for tensor in tree_flatten(value)[0]:
            if isinstance(tensor, torch.Tensor):
                self.producer[id(tensor)] = node_id
                self.keepalive.append(tensor)


class _FunctionalOpRecorder(TorchFunctionMode):
    def __init__(self, extractor: HookExtractor) -> None:
        super().__init__()
        self.extractor = extractor

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        self.extractor.record_op(func, args, kwargs, result)
        return result

