"""Layout-aware statistics: token sequences reduce along D, feature maps along C, and outputs
that are not batch-first stay out of per-sample analyses; checked against direct computation."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from nnviz_report.capture import run_capture
from nnviz_report.sections.activations import layer_measurements
from nnviz_report.sections.anchors import Anchors
from nnviz_report.sections.slices import slices_section
from nnviz_report.stats import layout as layouts
from tests.fixtures.models import DeadReLUNet
from tests.fixtures.vit_models import MeanPooledTokens, tiny_vit

CPU = torch.device("cpu")
SHOWCASE = (0, 1, 2)


def inputs(n: int = 24) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10


def outputs_of(model: nn.Module, x: Tensor, paths: list[str]) -> dict[str, Tensor]:
    """Each module's output on the whole input in one call, by a plain forward hook."""
    seen: dict[str, Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[p].register_forward_hook(lambda _m, _i, out, p=p: seen.setdefault(p, out.detach().clone()))
               for p in paths]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_vit_tokens_pool_the_class_token_and_count_channels_along_d() -> None:
    model = tiny_vit()
    x, y = inputs()
    result = run_capture(model, x, y, batch_size=10, device=CPU, showcase_positions=SHOWCASE)
    by_name = {layer.name: layer for layer in result.layers}
    ln = by_name["encoder.layers.encoder_layer_0.ln_1"]
    assert ln.layout.kind == layouts.TOKENS and ln.layout.prefix_tokens == 1 and ln.layout.grid == (4, 4)
    assert ln.layout.pooling == "the class token (token 0)"
    assert ln.channels == 16  # D, not the 17 tokens
    assert ln.dead_channels is None  # a norm, not a rectifier
    direct = outputs_of(model, x, ["encoder.layers.encoder_layer_0.ln_1", "conv_proj", "encoder.ln"])
    np.testing.assert_allclose(ln.pooled_features, direct["encoder.layers.encoder_layer_0.ln_1"][:, 0].numpy(),
                               rtol=1e-5, atol=1e-6)
    assert ln.pooled_features.shape == (24, 16)  # type: ignore[union-attr]
    # Showcase maps: the 16 patch tokens (class token removed) on their 4×4 grid, channels first.
    expected = direct["encoder.layers.encoder_layer_0.ln_1"][list(SHOWCASE), 1:].reshape(3, 4, 4, 16)
    np.testing.assert_allclose(ln.showcase_maps, expected.permute(0, 3, 1, 2).numpy(), rtol=1e-5, atol=1e-6)
    conv = by_name["conv_proj"]
    assert conv.layout.kind == layouts.FEATURE_MAP and conv.channels == 16
    np.testing.assert_allclose(conv.pooled_features, direct["conv_proj"].mean(dim=(2, 3)).numpy(),
                               rtol=1e-5, atol=1e-6)
    # The MLP's hidden GELU is a token sequence too, with D = mlp_dim.
    gelu = by_name["encoder.layers.encoder_layer_0.mlp.1"]
    assert gelu.layout.kind == layouts.TOKENS and gelu.channels == 32 and gelu.dead_channels is None
    # The separability table reports D features per token layer, not T = 17.
    section = slices_section(result.layers, y.numpy(), np.zeros((3, 3, 32, 32), np.uint8), Anchors())
    assert section is not None
    widths = {row.layer: row.features for row in section.separability}
    assert widths["encoder.layers.encoder_layer_0.ln_1"] == 16 and widths["encoder.ln"] == 16


def test_tokens_without_a_class_token_pool_by_mean_and_rows_not_batch_first_are_skipped() -> None:
    torch.manual_seed(0)
    model = MeanPooledTokens().eval()
    x, y = inputs()
    result = run_capture(model, x, y, batch_size=8, device=CPU, showcase_positions=SHOWCASE)
    by_name = {layer.name: layer for layer in result.layers}
    direct = outputs_of(model, x, ["act", "norm"])
    act = by_name["act"]
    assert act.layout.kind == layouts.TOKENS and act.layout.pooling == "mean over all tokens of each channel"
    np.testing.assert_allclose(act.pooled_features, direct["act"].mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)
    # Dead units of a rectifier on tokens: channels of D never positive over every sample and token.
    never_positive = (direct["act"].amax(dim=(0, 1)) <= 0).sum().item()
    assert act.dead_channels == never_positive and act.channels == 8
    bn = by_name["rows_bn"]
    assert bn.layout.kind == layouts.NOT_BATCH_FIRST
    assert bn.pooled_features is None and bn.showcase_maps is None and bn.dead_channels is None
    assert bn.activation.count == 24 * 16 * 8  # still described: moments over every value
    rows = {row.name: row for row in layer_measurements(result.layers, Anchors())}
    assert rows["rows_bn"].layout == "not-batch-first" and "not the sample" in rows["rows_bn"].layout_note


def test_dead_units_only_on_rectifiers_and_flatten_rows_dropped() -> None:
    torch.manual_seed(0)
    model = DeadReLUNet().eval()  # conv1's channels 0-2 never positive → relu1's dead
    x, y = inputs()
    result = run_capture(model, x, y, batch_size=8, device=CPU, showcase_positions=SHOWCASE)
    rows = {row.name: row for row in layer_measurements(result.layers, Anchors())}
    for row in rows.values():
        assert (row.dead_channels is not None) == (row.type in layouts.RECTIFIER_TYPES), row.name
    assert rows["conv1"].dead_channels is None and rows["conv1"].channels == 4
    assert rows["relu1"].dead_channels == 3 and rows["relu1"].channels == 4
    assert rows["bn"].dead_channels is None and rows["gap"].dead_channels is None and rows["fc"].dead_channels is None
    flatten = next(layer for layer in result.layers if layer.type == "Flatten")
    assert flatten.repeats == "gap" and flatten.name not in rows


def test_token_grid_recognises_prefix_tokens() -> None:
    assert layouts.token_grid(65) == (1, (8, 8))
    assert layouts.token_grid(68) == (4, (8, 8))  # class token + 3 registers
    assert layouts.token_grid(64) == (0, (8, 8))
    assert layouts.token_grid(30) == (5, (5, 5))
    assert layouts.token_grid(3) == (0, None)
    assert layouts.token_grid(120) == (0, None)  # 10² + 20: too many to be prefix tokens
