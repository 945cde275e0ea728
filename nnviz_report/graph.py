"""The data-flow graph of a model, as plain data.

``extract_graph`` traces the model with ``torch.fx`` (modules *and* functional ops such as ``add``,
``flatten`` and ``cat``) and runs one real batch through the traced graph to learn every output shape.
Models that fx cannot trace (data-dependent control flow, untraceable Python) fall back to running the
model itself with forward hooks on its leaf modules plus a ``TorchFunctionMode`` that sees the
functional ops between them; edges are recovered from tensor identity. ``FlowGraph.method`` says
which of the two produced the graph.

Everything returned is a frozen dataclass of str/int/tuple/None, so it goes into report.json as is.
Layout and drawing live in ``flow_svg`` (no torch there).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from nnviz_report.errors import ConfigError
from nnviz_report.flow_svg import longest_path_ranks  # the layout's layers define a skip edge
from nnviz_report.hooks import HookSet, model_session

FOLD_MODES = ("auto", "always", "never")
# "auto" folds only when the unfolded diagram would have more nodes than this.
AUTO_FOLD_NODE_LIMIT = 100
METHOD_FX = "torch.fx"
_INPUT_ID = "input"
_OUTPUT_ID = "output"


# --------------------------------------------------------------------------------------------------
# The public data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowNode:
    id: str
    label: str
    op_type: str
    module_path: str | None
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    repeat: int = 1
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowEdge:
    src: str
    dst: str
    skip: bool


@dataclass(frozen=True)
class FlowGroup:
    """One call of a container module whose nodes are drawn inside a labelled box."""

    id: str  # the call key: the module path, with "@k" for the k-th repeated call
    label: str  # the module path
    module_type: str
    parent: str | None  # id of the enclosing group, if it is a group too
    node_ids: tuple[str, ...]  # every node inside, nested groups' nodes included


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int


@dataclass(frozen=True)
class FlowGraph:
    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]
    method: str
    groups: tuple[FlowGroup, ...]
    total_params: int
    total_macs: int
    layers: tuple[LayerRow, ...] = ()  # the unfolded layer table; see layer_table()
    fold_depth: int | None = None  # module depth the blocks were folded at; None when unfolded

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def extract_graph(
    model: nn.Module, example_input: torch.Tensor, *, group_depth: int = 2, fold: str = "auto"
) -> FlowGraph:
    """The data-flow graph of ``model`` on ``example_input`` (a real batch).

    ``group_depth``: containers this many levels deep (``layer1`` is 1, ``layer1.0`` is 2) or
    shallower are drawn as groups. ``fold``: "never" keeps every node; "always" collapses the
    containers at ``group_depth`` into single nodes and folds identical consecutive ones into one node
    marked ×N; "auto" does so only when the unfolded graph has more than ``AUTO_FOLD_NODE_LIMIT``
    nodes, choosing the deepest depth that brings it under the limit.
    """
    if fold not in FOLD_MODES:
        raise ConfigError(f"fold must be one of {', '.join(FOLD_MODES)}, got {fold!r}")
    if group_depth < 0:
        raise ConfigError(f"group_depth must be >= 0, got {group_depth!r}")
    # The model runs for real here (fx's interpreter or the hook fallback): the session puts every
    # flag, buffer and parameter back, so a forward that updates a buffer leaves no trace.
    with model_session(model, param_grads=False), torch.no_grad():
        raw, method = _extract_raw(model, example_input)
    raw = _prune_unreachable(raw)
    total_params = sum(p.numel() for p in model.parameters())  # parameters() yields shared ones once
    return _assemble(raw, method, total_params, group_depth=group_depth, fold=fold)


def layer_table(graph: FlowGraph) -> tuple[LayerRow, ...]:
    """One row per module call or functional op, unfolded; the rows add up to the graph's totals."""
    return graph.layers


# --------------------------------------------------------------------------------------------------
# Raw extraction: one _RawNode per module call / functional op, in execution order
# --------------------------------------------------------------------------------------------------

# A container call on the way to a node: (call key, module path, module class name).
_Scope = tuple[tuple[str, str, str], ...]


@dataclass
class _RawNode:
    id: str
    label: str
    op_type: str
    module_path: str | None
    scope: _Scope
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    inputs: list[str] = field(default_factory=list)
    structure: str = ""  # what makes two calls "the same layer" when folding, channel counts aside


def _extract_raw(model: nn.Module, example_input: torch.Tensor) -> tuple[list[_RawNode], str]:
    try:
        return _FxExtractor(model).run(example_input), METHOD_FX
    except Exception as error:  # any failure of tracing falls back; the model's own errors recur below
        reason = _one_line(f"{type(error).__name__}: {error}")
    nodes = _HookExtractor(model).run(example_input)
    return nodes, f"forward hooks (fx could not trace: {reason})"


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _is_leaf(module: nn.Module) -> bool:
    """Leaves are drawn as single nodes: torch.nn layers (as fx sees them) and childless modules."""
    builtin = module.__module__.startswith(("torch.nn", "torch.ao.nn")) and not isinstance(
        module, nn.Sequential
    )
    return builtin or next(module.children(), None) is None


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _is_leaf(m)


class _ParamLedger:
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


def _per_sample_shape(value: Any, batch: int) -> tuple[int, ...] | None:
    tensors = [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    if not tensors:
        return None
    shape = tuple(int(s) for s in tensors[0].shape)
    return shape[1:] if shape and shape[0] == batch else shape


def _holds_tensor(value: Any) -> bool:
    return any(isinstance(t, torch.Tensor) for t in tree_flatten(value)[0])


def _module_macs(module: nn.Module, output_shape: tuple[int, ...] | None) -> int:
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


def _structure(module: nn.Module) -> str:
    """A convolution's geometry, so a 1×1 and a depthwise 3×3 are not folded together; channel
    counts are left out so growing blocks (DenseNet's layers) still fold."""
    if isinstance(module, nn.modules.conv._ConvNd):
        depthwise = module.groups > 1 and module.groups == module.in_channels
        groups = "dw" if depthwise else module.groups
        return f"k{module.kernel_size}s{module.stride}d{module.dilation}g{groups}"
    return ""


_OP_ALIASES = {"iadd": "add", "radd": "add", "imul": "mul", "rmul": "mul", "isub": "sub",
               "rsub": "sub", "itruediv": "truediv", "truediv": "div", "matmul": "matmul"}


def _op_name(target: Any) -> str:
    name = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
    name = name.strip("_")
    return _OP_ALIASES.get(name, name)


class _FxExtractor:
    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def run(self, example_input: torch.Tensor) -> list[_RawNode]:
        tracer = _LeafTracer()
        graph = tracer.trace(self.model)
        module = fx.GraphModule(tracer.root, graph)
        values = _ValueRecorder(module).record(example_input)
        return self._raw_nodes(module, graph, values, batch=int(example_input.shape[0]))

    def _raw_nodes(
        self, gm: fx.GraphModule, graph: fx.Graph, values: dict[str, Any], batch: int
    ) -> list[_RawNode]:
        ledger = _ParamLedger()
        nodes: list[_RawNode] = []
        # For nodes that are not drawn: the drawn nodes their value comes from, and parameters
        # they read (get_attr) that the first drawn consumer should count.
        sources: dict[str, list[str]] = {}
        pending: dict[str, list[torch.Tensor]] = {}
        seen_input = False
        for node in graph.nodes:
            value = values.get(node.name)
            inputs = _dedup(s for arg in node.all_input_nodes for s in sources.get(arg.name, []))
            carried = [t for arg in node.all_input_nodes for t in pending.get(arg.name, [])]
            if node.op == "placeholder":
                sources[node.name] = [] if seen_input else [_INPUT_ID]
                if not seen_input:
                    nodes.append(_RawNode(_INPUT_ID, "input", "input", None, (),
                                          _per_sample_shape(value, batch), 0, 0))
                seen_input = True
            elif node.op == "get_attr":
                sources[node.name] = []
                attr = _fetch_attr(gm, str(node.target))
                pending[node.name] = [attr] if isinstance(attr, torch.Tensor) else []
            elif node.op == "output":
                nodes.append(_RawNode(_OUTPUT_ID, "output", "output", None, (),
                                      _per_sample_shape(value, batch), 0, 0, inputs))
            elif self._passes_through(gm, node, value):
                sources[node.name] = inputs  # not a step of its own
                pending[node.name] = carried
            elif node.op != "call_module" and not _holds_tensor(value):
                sources[node.name] = []  # sizes, shapes, flags: metadata, not data flow
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
        return node.op == "call_function" and node.target is operator.getitem and _holds_tensor(value)

    def _drawn_node(
        self, gm: fx.GraphModule, node: fx.Node, value: Any, batch: int, ledger: _ParamLedger
    ) -> _RawNode:
        shape = _per_sample_shape(value, batch)
        stack = list((node.meta.get("nn_module_stack") or {}).items())
        scope: _Scope = tuple((key, path, _type_name(cls)) for key, (path, cls) in stack)
        if node.op == "call_module":
            path = str(node.target)
            module = gm.get_submodule(path)
            params = ledger.claim(module.parameters())
            return _RawNode(node.name, path, type(module).__name__, path, scope[:-1], shape,
                            params, _module_macs(module, shape), structure=_structure(module))
        op = _op_name(node.target)
        return _RawNode(node.name, op, op, None, scope, shape, 0, 0)


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


def _type_name(cls: Any) -> str:
    return cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]


def _dedup(items: Iterator[str] | list[str]) -> list[str]:
    return list(dict.fromkeys(items))


class _HookExtractor:
    """The fallback: run the real model; hooks see leaf modules, a TorchFunctionMode sees the
    functional ops between them, and tensor identity links producers to consumers."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {id(m): name for name, m in model.named_modules()}
        self.nodes: list[_RawNode] = []
        self.producer: dict[int, str] = {}
        self.keepalive: list[torch.Tensor] = []  # ids stay unique only while the tensors live
        self.stack: list[tuple[str, str, str]] = []
        self.call_counts: dict[str, int] = {}
        self.leaf_depth = 0
        self.ledger = _ParamLedger()
        self.batch = 0

    def run(self, example_input: torch.Tensor) -> list[_RawNode]:
        self.batch = int(example_input.shape[0])
        self.nodes.append(_RawNode(_INPUT_ID, "input", "input", None, (),
                                   _per_sample_shape(example_input, self.batch), 0, 0))
        self._produced(example_input, _INPUT_ID)
        with HookSet() as hooks:
            for name, module in self.model.named_modules():
                if not name:
                    continue
                hooks.forward_pre_hook(module, self._pre_hook)
                hooks.forward_hook(module, self._post_hook)
            with _FunctionalOpRecorder(self):
                output = self.model(example_input)
        self.nodes.append(_RawNode(_OUTPUT_ID, "output", "output", None, (),
                                   _per_sample_shape(output, self.batch), 0, 0, self._sources(output)))
        return self.nodes

    def _call_key(self, path: str) -> str:
        count = self.call_counts.get(path, 0)
        self.call_counts[path] = count + 1
        return path if count == 0 else f"{path}@{count}"

    def _pre_hook(self, module: nn.Module, args: Any) -> None:
        if self.leaf_depth:
            self.leaf_depth += int(_is_leaf(module))
            return
        if _is_leaf(module):
            self.leaf_depth = 1
        else:
            path = self.names[id(module)]
            self.stack.append((self._call_key(path), path, type(module).__name__))

    def _post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if not _is_leaf(module):
            if not self.leaf_depth:
                self.stack.pop()
            return
        self.leaf_depth -= 1
        if self.leaf_depth or isinstance(module, nn.Identity):
            return  # Identity returns its input object: the edge goes straight through
        path = self.names[id(module)]
        shape = _per_sample_shape(output, self.batch)
        node = _RawNode(self._call_key(path), path, type(module).__name__, path, tuple(self.stack),
                        shape, self.ledger.claim(module.parameters()), _module_macs(module, shape),
                        self._sources(args), _structure(module))
        self.nodes.append(node)
        self._produced(output, node.id)

    def record_op(self, func: Any, args: Any, kwargs: Any, result: Any) -> None:
        if self.leaf_depth or not _holds_tensor(result):
            return
        inputs = self._sources((args, kwargs))
        if not inputs:
            return  # computed from constants only: not part of the data flow
        op = _op_name(func)
        node_id = self._call_key(op).replace("@", "_")
        self.nodes.append(_RawNode(node_id, op, op, None, tuple(self.stack),
                                   _per_sample_shape(result, self.batch), 0, 0, inputs))
        self._produced(result, node_id)

    def _sources(self, value: Any) -> list[str]:
        leaves = tree_flatten(value)[0]
        return _dedup(self.producer[id(t)] for t in leaves
                      if isinstance(t, torch.Tensor) and id(t) in self.producer)

    def _produced(self, value: Any, node_id: str) -> None:
        for tensor in tree_flatten(value)[0]:
            if isinstance(tensor, torch.Tensor):
                self.producer[id(tensor)] = node_id
                self.keepalive.append(tensor)


class _FunctionalOpRecorder(TorchFunctionMode):
    def __init__(self, extractor: _HookExtractor) -> None:
        super().__init__()
        self.extractor = extractor

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        self.extractor.record_op(func, args, kwargs, result)
        return result


def _prune_unreachable(nodes: list[_RawNode]) -> list[_RawNode]:
    """Drop nodes whose value never reaches the output (e.g. a value only tested in an ``if``)."""
    by_id = {n.id: n for n in nodes}
    alive = {_OUTPUT_ID}
    for node in reversed(nodes):
        if node.id in alive:
            alive.update(node.inputs)
    alive.add(_INPUT_ID)
    kept = [n for n in nodes if n.id in alive]
    for node in kept:
        node.inputs = [i for i in node.inputs if i in alive and i in by_id]
    return kept


# --------------------------------------------------------------------------------------------------
# Assembly: layer table, folding, skip edges, groups
# --------------------------------------------------------------------------------------------------


def _assemble(raw: list[_RawNode], method: str, total_params: int, *, group_depth: int,
              fold: str) -> FlowGraph:
    layers = _layer_rows(raw, total_params)
    unfolded = _Drawn.from_raw(raw)
    fold_depth = _choose_fold_depth(raw, unfolded, group_depth, fold)
    drawn = unfolded if fold_depth is None else _fold(raw, fold_depth)
    nodes = tuple(drawn.nodes)
    edges = _edges_with_skips(nodes, drawn.edges)
    groups = _groups(drawn, group_depth, fold_depth)
    return FlowGraph(nodes=nodes, edges=edges, method=method, groups=groups,
                     total_params=total_params, total_macs=sum(r.macs for r in layers),
                     layers=layers, fold_depth=fold_depth)


def _layer_rows(raw: list[_RawNode], total_params: int) -> tuple[LayerRow, ...]:
    rows = [LayerRow(n.label, n.op_type, n.output_shape, n.params, n.macs)
            for n in raw if n.id not in (_INPUT_ID, _OUTPUT_ID)]
    unused = total_params - sum(r.params for r in rows)
    if unused:  # parameters the forward pass never touched still belong to the model's total
        rows.append(LayerRow("(parameters not used in forward)", "—", None, unused, 0))
    return tuple(rows)


def _path_depth(path: str) -> int:
    return path.count(".") + 1


@dataclass
class _Drawn:
    """Nodes and edges to draw, with each node's enclosing container calls (for groups)."""

    nodes: list[FlowNode]
    edges: list[tuple[str, str]]
    scopes: dict[str, _Scope]

    @staticmethod
    def from_raw(raw: list[_RawNode]) -> _Drawn:
        nodes = [FlowNode(n.id, n.label, n.op_type, n.module_path, n.output_shape, n.params, n.macs)
                 for n in raw]
        edges = [(src, n.id) for n in raw for src in n.inputs]
        return _Drawn(nodes, edges, {n.id: n.scope for n in raw})


def _choose_fold_depth(raw: list[_RawNode], unfolded: _Drawn, group_depth: int, fold: str) -> int | None:
    if fold == "never":
        return None
    if fold == "always":
        return max(group_depth, 1)
    if len(unfolded.nodes) <= AUTO_FOLD_NODE_LIMIT:
        return None
    deepest = max((_path_depth(path) for n in raw for _, path, _ in n.scope), default=0)
    for depth in range(deepest, 0, -1):
        if len(_fold(raw, depth).nodes) <= AUTO_FOLD_NODE_LIMIT:
            return depth
    return 1 if deepest else None


def _collapse_key(scope: _Scope, depth: int) -> tuple[str, str, str] | None:
    """The container call at ``depth`` (or the shallowest deeper one) that swallows a node."""
    return next((entry for entry in scope if _path_depth(entry[1]) >= depth), None)


def _fold(raw: list[_RawNode], depth: int) -> _Drawn:
    """Collapse every container call at ``depth`` into one node, then merge runs of identical
    consecutive blocks into one node marked ×N."""
    blocks = _collapse(raw, depth)
    return _merge_runs(blocks)


@dataclass
class _Block:
    """A drawn node before run-merging: a single raw node, or a collapsed container call."""

    node: FlowNode
    scope: _Scope  # containers around it (outside the collapsed one)
    signature: tuple[Any, ...] | None  # None: never merged
    inputs: list[str]


def _collapse(raw: list[_RawNode], depth: int) -> list[_Block]:
    owner: dict[str, str] = {}  # raw node id -> drawn node id
    members: dict[str, list[_RawNode]] = {}
    order: list[tuple[str, tuple[str, str, str] | None]] = []
    for node in raw:
        key = _collapse_key(node.scope, depth)
        drawn_id = key[0] if key else node.id
        owner[node.id] = drawn_id
        if drawn_id not in members:
            members[drawn_id] = []
            order.append((drawn_id, key))
        members[drawn_id].append(node)
    # Members whose value is used outside their own block: a collapsed block's output is its last one.
    exported = {i for n in raw for i in n.inputs if owner[i] != owner[n.id]}
    blocks = []
    for drawn_id, key in order:
        group = members[drawn_id]
        inputs = _dedup(owner[i] for n in group for i in n.inputs if owner[i] != drawn_id)
        if key is None:
            (node,) = group
            flow = FlowNode(node.id, node.label, node.op_type, node.module_path, node.output_shape,
                            node.params, node.macs)
            blocks.append(_Block(flow, node.scope, None, inputs))
            continue
        blocks.append(_collapsed_block(drawn_id, key, group, inputs, exported))
    return blocks


def _collapsed_block(drawn_id: str, key: tuple[str, str, str], group: list[_RawNode],
                     inputs: list[str], exported: set[str]) -> _Block:
    _, path, type_name = key
    inside = {n.id for n in group}
    out = next((n for n in reversed(group) if n.id in exported), group[-1])
    position = {n.id: k for k, n in enumerate(group)}
    wiring = tuple(sorted((position[i], position[n.id]) for n in group for i in n.inputs if i in inside))
    signature = (type_name, tuple((n.op_type, n.structure) for n in group), wiring, out.output_shape)
    scope = group[0].scope[: group[0].scope.index(key)]
    flow = FlowNode(drawn_id, path, type_name, path, out.output_shape,
                    sum(n.params for n in group), sum(n.macs for n in group), members=(path,))
    return _Block(flow, scope, signature, inputs)


def _merge_runs(blocks: list[_Block]) -> _Drawn:
    runs: list[list[_Block]] = []
    for block in blocks:
        last = runs[-1][-1] if runs else None
        if (last is not None and block.signature is not None and block.signature == last.signature
                and block.scope == last.scope and last.node.id in block.inputs):
            runs[-1].append(block)
        else:
            runs.append([block])
    owner = {b.node.id: run[0].node.id for run in runs for b in run}
    nodes: list[FlowNode] = []
    edges: list[tuple[str, str]] = []
    scopes: dict[str, Any] = {}
    for run in runs:
        first = run[0]
        node = first.node if len(run) == 1 else _merged_node(run)
        nodes.append(node)
        scopes[node.id] = first.scope
        srcs = _dedup(owner[i] for b in run for i in b.inputs if owner[i] != node.id)
        edges.extend((src, node.id) for src in srcs)
    return _Drawn(nodes, edges, scopes)


def _merged_node(run: list[_Block]) -> FlowNode:
    first, last = run[0].node, run[-1].node
    head, _, _ = first.label.rpartition(".")
    last_head, _, last_tail = last.label.rpartition(".")
    label = f"{first.label}–{last_tail}" if head == last_head else f"{first.label}–{last.label}"
    return FlowNode(first.id, label, first.op_type, first.module_path, last.output_shape,
                    sum(b.node.params for b in run), sum(b.node.macs for b in run),
                    repeat=len(run), members=tuple(m for b in run for m in b.node.members))


def _edges_with_skips(nodes: tuple[FlowNode, ...], edges: list[tuple[str, str]]) -> tuple[FlowEdge, ...]:
    """An edge that jumps over layers (a residual shortcut, a skip into a concat) is a skip edge."""
    unique = list(dict.fromkeys(edges))  # first occurrence order: deterministic
    rank = longest_path_ranks([n.id for n in nodes], unique)
    return tuple(FlowEdge(src, dst, rank[dst] - rank[src] > 1) for src, dst in unique)


def _groups(drawn: _Drawn, group_depth: int, fold_depth: int | None) -> tuple[FlowGroup, ...]:
    limit = group_depth if fold_depth is None else min(group_depth, fold_depth - 1)
    members: dict[str, list[str]] = {}
    info: dict[str, tuple[str, str, str | None]] = {}
    for node in drawn.nodes:
        parent = None
        for key, path, type_name in drawn.scopes[node.id]:
            if _path_depth(path) > limit:
                break
            members.setdefault(key, []).append(node.id)
            info.setdefault(key, (path, type_name, parent))
            parent = key
    return tuple(FlowGroup(key, info[key][0], info[key][1], info[key][2], tuple(ids))
                 for key, ids in members.items())
