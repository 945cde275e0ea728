"""The data-flow graph of a model, extracted into ``flow_model`` data.

``extract_graph`` traces the model with ``torch.fx`` (``fx_extract``). Models that fx cannot trace
fall back to running the model itself with hooks (``hook_extract``). Both produce the same raw node
list, which ``assembly`` prunes, folds and turns into a ``FlowGraph``; ``FlowGraph.method`` says
which extractor produced it. Layout and drawing live in ``flow_svg`` (no torch there).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, one_line
from ..flow_model import FOLD_MODES, METHOD_FX, FlowGraph, layer_table
from ..hooks import model_session
from .assembly import assemble, prune_unreachable
from .fx_extract import FxExtractor
from .hook_extract import HookExtractor
from .raw import RawNode

__all__ = ["extract_graph", "layer_table"]


def extract_graph(
    model: nn.Module, example_input: torch.Tensor, *, group_depth: int = 2, fold: str = "auto"
) -> FlowGraph:
    """The data-flow graph of ``model`` on ``example_input`` (a real batch).

    ``group_depth``: containers this many levels deep (``layer1`` is 1, ``layer1.0`` is 2) or
    shallower are drawn as groups (when folded: down to the fold depth, so that an expanded block has
    its box). ``fold``: "never" keeps every node; "always" collapses the containers at
    ``group_depth`` into single nodes and folds identical consecutive ones (same structure and op
    types, whatever their widths) into one node marked ×N; "auto" picks the depth whose folding
    leaves the fewest nodes and keeps the first block of each kind expanded while the diagram stays
    within ``assembly.EXPANDED_NODE_LIMIT`` nodes; it does not fold when folding saves nothing.
    """
    if fold not in FOLD_MODES:
        raise ConfigError(f"fold must be one of {', '.join(FOLD_MODES)}, got {fold!r}")
    if group_depth < 0:
        raise ConfigError(f"group_depth must be >= 0, got {group_depth!r}")
    # The model runs for real here (fx's interpreter or the hook fallback): the session puts every
    # flag, buffer and parameter back, so a forward that updates a buffer leaves no trace.
    with model_session(model, param_grads=False), torch.no_grad():
        raw, method = _extract_raw(model, example_input)
    raw = prune_unreachable(raw)
    total_params = sum(p.numel() for p in model.parameters())  # parameters() yields shared ones once
    return assemble(raw, method, total_params, group_depth=group_depth, fold=fold)


def _extract_raw(model: nn.Module, example_input: torch.Tensor) -> tuple[list[RawNode], str]:
    try:
        return FxExtractor(model).run(example_input), METHOD_FX
    except Exception as error:  # any failure of tracing falls back; the model's own errors recur below
        reason = one_line(f"{type(error).__name__}: {error}", 160)
    nodes = HookExtractor(model).run(example_input)
    return nodes, f"forward hooks (fx could not trace: {reason})"
