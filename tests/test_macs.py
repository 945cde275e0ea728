"""Multiply-adds counted at dispatch level: rows add up to torch.utils.flop_counter's total, and
attention products are counted where they happen."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnviz_report.graph import extract_graph
from nnviz_report.macs import OWN_FORWARD
from nnviz_report.sections.flow import with_dispatch_macs
from nnviz_report.zoo import lenet
from tests.fixtures.vit_models import HandAttentionNet, tiny_vit


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        model(x[:1])
    return counter.get_total_flops() // 2


def counted(model: nn.Module):  # type: ignore[no-untyped-def]
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    graph, what = with_dispatch_macs(extract_graph(model, x), model, x)
    return graph, what, flop_counter_macs(model, x)


def test_vit_multiply_adds_include_attention_and_rows_add_up() -> None:
    graph, what, expected = counted(tiny_vit())
    assert graph.total_macs == expected == sum(row.macs for row in graph.layers)
    rows = {row.name: row.macs for row in graph.layers}
    tokens, width, mlp = 17, 16, 32
    # by hand: patch embedding, per block q/k/v/out projections + QKᵀ + AV + the MLP, the head
    attention = 4 * tokens * width * width + 2 * tokens * tokens * width
    assert rows["conv_proj"] == 16 * width * 3 * 8 * 8
    assert rows["encoder.layers.encoder_layer_0.self_attention"] == attention
    assert rows["encoder.layers.encoder_layer_1.mlp.0"] == tokens * width * mlp
    assert rows["heads.head"] == width * 10
    assert expected == rows["conv_proj"] + 2 * (attention + 2 * tokens * width * mlp) + width * 10
    assert "attention" in what
    assert sum(node.macs for node in graph.nodes) == expected  # the diagram's nodes agree with the table


def test_products_in_a_modules_own_code_get_their_own_row() -> None:
    graph, _what, expected = counted(HandAttentionNet())
    assert graph.total_macs == expected == sum(row.macs for row in graph.layers)
    rows = [(row.name, row.macs) for row in graph.layers]
    tokens, width = 16, 12
    own = ("attn " + OWN_FORWARD, 2 * tokens * tokens * width)  # QKᵀ and AV
    assert own in rows
    assert rows.index(own) == [name for name, _ in rows].index("attn.proj") + 1  # right after its layers


def test_convnet_counts_equal_conv_and_linear_weights() -> None:
    graph, _what, expected = counted(lenet())
    assert graph.total_macs == expected
    by_hand = 6 * 28 * 28 * 3 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert expected == by_hand
