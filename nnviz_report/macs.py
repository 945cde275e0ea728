"""Multiply-adds counted where PyTorch dispatches them, attributed to the layer-table rows.

Counting layer types (conv and linear weights) misses every matrix product a model does in its
own code: attention's QKᵀ and AV, a ``torch.matmul`` in a custom block. ``FlopCounterMode``
sees each aten call instead (convolution, mm/addmm/bmm/baddbmm, scaled-dot-product attention
and their kin) and counts 2 FLOPs per multiply-add, so multiply-adds = FLOPs / 2. It does not
count bias additions, normalisation, activations, pooling or other element-wise work.

Its counts are per module and inclusive of submodules. A layer-table row for module ``P`` takes
P's inclusive count; a module that is not a row but does matrix products in its own forward
(outside its submodules) gets a row "P (own forward)". By telescoping, those rows add up to the
model's total exactly.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode


def _skip_compiler_import() -> None:
    """torch wraps the handler of every dispatch mode (FlopCounterMode's is ``_FlopCounterMode``'s)
    so that torch.compile leaves it alone, and the wrapper imports torch._dynamo on its first call:
    about a second, the largest cost of a built-in model's flow diagram, for a compiler nothing here
    uses. The wrapper caches what to call in the handler's ``__dynamo_disable``; naming the handler
    itself there, before that first call, skips the import. Only while torch._dynamo is not loaded
    (once it is, the import costs nothing); where torch's internals differ, nothing changes."""
    if "torch._dynamo" in sys.modules:
        return
    mode = getattr(flop_counter, "_FlopCounterMode", None)
    wrapper = mode.__dict__.get("__torch_dispatch__") if mode is not None else None
    handler = getattr(wrapper, "__wrapped__", None)
    if callable(handler) and not hasattr(handler, "__dynamo_disable"):
        handler.__dynamo_disable = handler  # type: ignore[attr-defined]


COUNTED = ("every convolution, matrix product (linear layers, attention's QKᵀ and AV, matmul/bmm in a model's own "
           "code) and scaled-dot-product attention, as dispatched to PyTorch's kernels (FLOPs ÷ 2); bias "
           "additions, normalisation, activations and pooling are not counted")
OWN_FORWARD = "(own forward)"


@dataclasses.dataclass(frozen=True)
class MacsCount:
    total: int  # multiply-adds for one sample
    inclusive: dict[str, int]  # module path ("" for the model) → multiply-adds inside it, submodules included
    by_op: dict[str, int]  # aten operator → multiply-adds, over the whole model


@dataclasses.dataclass(frozen=True)
class MacsRow:
    """One layer-table row: the module path (or an op name) the graph gave it, and its count."""

    name: str
    macs: int
    extra: bool = False  # a module's own-forward products, added after the graph's rows


def count_macs(model: nn.Module, example_input: torch.Tensor) -> MacsCount:
    """Multiply-adds of one forward pass on the first sample of ``example_input``. The model
    must already be in the mode the report describes (eval).

    Gradients stay enabled: under ``no_grad`` ``nn.MultiheadAttention`` takes a fused fast path
    (``_native_multi_head_attention``) that the counter cannot see, and attention would count 0.
    """
    _skip_compiler_import()
    counter = FlopCounterMode(display=False)
    with torch.enable_grad(), counter:
        model(example_input[:1])
    root = type(model).__name__
    inclusive: dict[str, int] = {}
    for key, ops in counter.get_flop_counts().items():
        if key == "Global":
            continue
        path = "" if key == root else key[len(root) + 1:] if key.startswith(root + ".") else None
        if path is None:
            continue
        inclusive[path] = sum(int(v) for v in ops.values()) // 2
    by_op = {str(op): int(v) // 2 for op, v in counter.get_flop_counts().get("Global", {}).items()}
    total = int(counter.get_total_flops()) // 2
    inclusive.setdefault("", total)
    return MacsCount(total, inclusive, by_op)


def attribute(rows: Sequence[tuple[str, tuple[int, ...] | None]], count: MacsCount,
              module_paths: set[str]) -> list[MacsRow]:
    """Multiply-adds for each layer-table row, given as (name, output shape) in table order, plus
    "own forward" rows for modules that multiply in their own code. Rows naming a module take
    its inclusive count, shared by output size when the module is called more than once; other
    rows (functional operations such as ``add``) get 0, their products being in the own-forward
    row of the module whose code calls them."""
    row_paths = {name for name, _ in rows if name in module_paths}
    calls: dict[str, list[int]] = {}
    for index, (name, _shape) in enumerate(rows):
        if name in row_paths:
            calls.setdefault(name, []).append(index)
    macs = [0] * len(rows)
    for name, indices in calls.items():
        sizes = [math.prod(rows[i][1] or (1,)) for i in indices]
        whole = count.inclusive.get(name, 0)
        given = 0
        for k, i in enumerate(indices):
            share = whole - given if k == len(indices) - 1 else whole * sizes[k] // max(sum(sizes), 1)
            macs[i], given = share, given + share
    result = [MacsRow(name, m) for (name, _), m in zip(rows, macs, strict=True)]

    def inside_a_row(path: str) -> bool:
        return any(path == r or path.startswith(r + ".") for r in row_paths)

    # Own-forward products: a module's count less its direct children's (children inside rows
    # included, since a row takes its module's whole count).
    children: dict[str, int] = {}
    for path, value in count.inclusive.items():
        if path:
            parent = path.rpartition(".")[0]
            children[parent] = children.get(parent, 0) + value
    for path in sorted(count.inclusive, key=_depth_first_key):
        own = count.inclusive[path] - children.get(path, 0)
        if own and not inside_a_row(path):
            label = f"{path} {OWN_FORWARD}" if path else f"model {OWN_FORWARD}"
            result.insert(_after_scope(result, path), MacsRow(label, own, extra=True))
    return result


def _depth_first_key(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def _after_scope(rows: list[MacsRow], path: str) -> int:
    """Index just after the last row inside module ``path``: its own-forward row sits with its layers."""
    prefix = path + "."
    last = -1
    for index, row in enumerate(rows):
        if not path or row.name.startswith(prefix) or row.name == path:
            last = index
    return last + 1 if last >= 0 else len(rows)
