"""Extraction with ``torch.fx``: modules *and* functional ops (``add``, ``flatten``, ``cat``) from a
symbolic trace, then one real batch through the traced graph to learn every output shape."""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.utils._pytree import tree_flatten

from ..flow_model import INPUT_ID, OUTPUT_ID
from .raw import (
    ParamLedger,
    RawNode,
    Scope,
    dedup,
    holds_tensor,
    is_leaf,
    module_multiply_adds,
    op_name,
    per_sample_shape,
    structure_of,
    type_name,
)


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf(m)



class FxExtractor:
    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def run(self, example_input: torch.Tensor) -> list[RawNode]:
        tracer = _LeafTracer()
        graph = tracer.trace(self.model)
        module = fx.GraphModule(tracer.root, graph)
        values = _ValueRecorder(module).record(example_input)
        return self._raw_nodes(module, graph, values, batch=int(example_input.shape[0]))

    def _raw_nodes(
        self, gm: fx.GraphModule, graph: fx.Graph, values: dict[str, Any], batch: int
    ) -> list[RawNode]:
        ledger = ParamLedger()
        nodes: list[RawNode] = []
        # For nodes that are not drawn: the drawn nodes their value comes from, and parameters
        # they read (get_attr) that the first drawn consumer should count.
        sources: dict[str, list[str]] = {}
        pending: dict[str, list[torch.Tensor]] = {}
        seen_input = False
        for node in graph.nodes:
            value = values.get(node.name)
            inputs = dedup(s for arg in node.all_input_nodes for s in sources.get(arg.name, []))
            carried = [t for arg in node.all_input_nodes for t in pending.get(arg.name, [])]
            if node.op == "placeholder":
                sources[node.name] = [] if seen_input else [INPUT_ID]
                if not seen_input:
                    nodes.append(RawNode(INPUT_ID, "input", "input", None, (),
                                          per_sample_shape(value, batch), 0, 0))
                seen_input = True
            elif node.op == "get_attr":
                sources[node.name] = []
                attr = _fetch_attr(gm, str(node.target))
                pending[node.name] = [attr] if isinstance(attr, torch.Tensor) else []
            elif node.op == "output":
                nodes.append(RawNode(OUTPUT_ID, "output", "output", None, (),
                                      per_sample_shape(value, batch), 0, 0, inputs))
            elif self._passes_through(gm, node, value):
                sources[node.name] = inputs  # not a step of its own
                pending[node.name] = carried
            elif node.op != "call_module" and not holds_tensor(value):
                sources[node.name] = []  # sizes, shapes, flags: metadata, not data flow
            elif node.op != "call_module" and not inputs:
                # Computed from parameters and constants only (ConvNeXt's gamma.reshape): not a step
                # of the data flow; its parameters go to the first drawn node that uses the result.
                sources[node.name] = []
                pending[node.name] = carried
            else:
                raw = self._drawn_node(gm, node, value, batch, ledger)
                raw.params += ledger.claim(iter(carried))
                raw.inputs = inputs
                nodes.append(raw)
                sources[node.name] = [raw.id]
        return nodes

    @staticmethod
    def _passes_through(gm: fx.GraphModule, node: fx.Node, value: Any) -> bool:
        """Unpacking a tuple, and nn.Identity (a shortcut that does nothing), are drawn as edges."""
        if node.op == "call_module":
            return isinstance(gm.get_submodule(str(node.target)), nn.Identity)
        return node.op == "call_function" and node.target is operator.getitem and holds_tensor(value)

    def _drawn_node(
        self, gm: fx.GraphModule, node: fx.Node, value: Any, batch: int, ledger: ParamLedger
    ) -> RawNode:
        shape = per_sample_shape(value, batch)
        stack = list((node.meta.get("nn_module_stack") or {}).items())
        scope: Scope = tuple((key, path, type_name(cls)) for key, (path, cls) in stack)
        if node.op == "call_module":
            path = str(node.target)
            module = gm.get_submodule(path)
            params = ledger.claim(module.parameters())
            return RawNode(node.name, path, type(module).__name__, path, scope[:-1], shape,
                            params, module_multiply_adds(module, shape), structure=structure_of(module))
        op = op_name(node.target)
        return RawNode(node.name, op, op, None, scope, shape, 0, 0)


class _ValueRecorder(fx.Interpreter):
    """Runs the traced graph on the real batch and keeps each node's output for its shape."""

    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.values: dict[str, Any] = {}

    def record(self, example_input: torch.Tensor) -> dict[str, Any]:
        self.run(example_input)
        return self.values

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        # Keep shapes, not tensors, so memory does not grow with the graph.
        self.values[n.name] = _shape_only(result)
        return result


def _shape_only(value: Any) -> Any:
    """A stand-in for ``value`` that keeps tensors' shapes but not their storage."""
    leaves, _ = tree_flatten(value)
    tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
    if not tensors:
        return value if isinstance(value, (int, float, bool, str, type(None))) else None
    return [torch.empty(t.shape, device="meta") for t in tensors]


def _fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


