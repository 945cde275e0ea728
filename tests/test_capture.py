"""The capture pass against independent computations on the full tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnviz_report.capture import choose_showcase, run_capture
from nnviz_report.errors import CaptureError, ModelError
from nnviz_report.saliency_capture import capture_saliency
from tests.fixtures.models import dead_relu_net, inplace_residual, raises_in_forward, tiny_cnn, wrong_output

CPU = torch.device("cpu")


def synthetic_batch(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10


def full_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every leaf module's output on the whole input at once, recorded by plain hooks."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _i, o, name=name: outputs.setdefault(name, o.detach().clone()))
               for name, m in model.named_modules() if name and not list(m.children())]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return outputs


@pytest.mark.parametrize("batch_size", [5, 24])
def test_activation_moments_match_numpy_on_full_tensors(batch_size: int) -> None:
    model = tiny_cnn()
    x, y = synthetic_batch()
    result = run_capture(model, x, y, batch_size=batch_size, device=CPU, showcase_positions=(0, 1))
    reference = full_outputs(model, x)
    assert [layer.name for layer in result.layers] == list(reference)
    for layer in result.layers:
        full = reference[layer.name].numpy().astype(np.float64)
        m = layer.activation
        assert m.count == full.size
        assert m.mean == pytest.approx(full.mean(), rel=1e-5, abs=1e-6)
        assert m.std == pytest.approx(full.std(), rel=1e-5, abs=1e-6)
        assert m.min == pytest.approx(full.min()) and m.max == pytest.approx(full.max())
        assert m.zero_fraction == pytest.approx((full == 0).mean())
        counts, _ = np.histogram(full, bins=np.array(m.histogram.edges))
        assert tuple(counts) == m.histogram.counts
        assert layer.output_shape == tuple(full.shape[1:])


def test_parameter_gradients_match_plain_autograd_over_whole_sample() -> None:
    model = tiny_cnn()
    x, y = synthetic_batch()
    result = run_capture(model, x, y, batch_size=7, device=CPU, showcase_positions=(0,))
    reference = tiny_cnn()
    reference.eval()
    loss = nn.functional.cross_entropy(reference(x), y)
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    for captured, (name, p), g in zip(result.params, reference.named_parameters(), grads, strict=True):
        assert captured.name == name
        assert captured.weight_norm == pytest.approx(float(p.detach().norm()), rel=1e-6)
        assert captured.grad_norm == pytest.approx(float(g.norm()), rel=1e-4, abs=1e-9)
        assert captured.mean_abs_grad == pytest.approx(float(g.abs().mean()), rel=1e-4, abs=1e-9)
        assert captured.max_abs_grad == pytest.approx(float(g.abs().max()), rel=1e-4, abs=1e-9)
    losses = nn.functional.cross_entropy(reference(x), y, reduction="none").detach().numpy()
    np.testing.assert_allclose(result.losses, losses, rtol=1e-5)


def test_activation_gradients_match_autograd_with_inplace_relu_and_shortcut() -> None:
    model = inplace_residual()
    x, y = synthetic_batch(12)
    result = run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(0,))
    names = [layer.name for layer in result.layers]
    # the reused ReLU is reported once per call
    assert names == ["stem", "bn0", "relu", "conv", "bn1", "relu#2", "head"]
    # Independent: d(mean loss)/d(bn1 output) by splitting the forward by hand, out of place.
    ref = inplace_residual().eval()
    h = torch.relu(ref.bn0(ref.stem(x)))
    bn1_out = ref.bn1(ref.conv(h)).detach().requires_grad_(True)
    logits = ref.head(torch.relu(bn1_out + h).mean(dim=(2, 3)))
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(logits, y), bn1_out)
    layer = result.layers[names.index("bn1")]
    assert layer.gradient.rms == pytest.approx(float(g.pow(2).mean().sqrt()), rel=1e-4)
    assert layer.gradient.max_abs == pytest.approx(float(g.abs().max()), rel=1e-4)
    assert layer.gradient.count == g.numel()


def test_dead_channels_counted() -> None:
    x, y = synthetic_batch()
    result = run_capture(dead_relu_net(), x, y, batch_size=8, device=CPU, showcase_positions=(0,))
    relu1 = next(layer for layer in result.layers if layer.name == "relu1")
    assert (relu1.dead_channels, relu1.channels) == (3, 4)


def test_showcase_maps_are_the_full_feature_maps() -> None:
    model = tiny_cnn()
    x, y = synthetic_batch()
    result = run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(3, 11))
    reference = full_outputs(model, x)
    conv2 = next(layer for layer in result.layers if layer.name == "conv2")
    assert conv2.showcase_maps is not None
    np.testing.assert_allclose(conv2.showcase_maps, reference["conv2"][[3, 11]].numpy(), rtol=1e-6)
    assert conv2.pooled_features is not None and conv2.pooled_features.shape == (24, 8)


def test_showcase_chosen_from_the_capture_logits_reruns_only_its_batches() -> None:
    """A chooser instead of positions: it sees the captured logits, and the maps of the samples it
    picks equal those of a capture told the positions up front, bit for bit, while the extra
    forward covers only the batches that hold them (one of five here), not the whole sample."""
    model = tiny_cnn()
    x, y = synthetic_batch()
    seen: list[np.ndarray] = []
    batches: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args: batches.append(len(args[0])))

    def choose(logits: np.ndarray) -> tuple[int, ...]:
        seen.append(logits.copy())
        return (12, 14)

    chosen = run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=choose)
    handle.remove()
    told = run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(12, 14))
    assert chosen.showcase_positions == (12, 14)
    assert len(seen) == 1 and np.array_equal(seen[0], told.logits)
    assert batches == [5, 5, 5, 5, 4] + [5]  # the capture's five batches, then batch 10–14 only
    for ours, reference in zip(chosen.layers, told.layers, strict=True):
        assert ours.name == reference.name
        if reference.showcase_maps is None:
            assert ours.showcase_maps is None
        else:
            assert ours.showcase_maps is not None
            assert np.array_equal(ours.showcase_maps, reference.showcase_maps)
        assert ours.activation == reference.activation  # the statistics fold the capture pass only


def test_model_comes_back_unchanged() -> None:
    model = tiny_cnn()
    model.train()
    model.conv1.weight.requires_grad_(False)
    sentinel = torch.full_like(model.fc.weight, 7.0)
    model.fc.weight.grad = sentinel
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = synthetic_batch()
    run_capture(model, x, y, batch_size=8, device=CPU, showcase_positions=(0,))
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # BN running statistics did not move
    assert model.training
    assert not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad
    assert model.fc.weight.grad is sentinel
    assert model.conv2.weight.grad is None
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


def test_model_unchanged_when_forward_raises() -> None:
    model = raises_in_forward()
    model.train()
    x, y = synthetic_batch(4)
    with pytest.raises(CaptureError, match=r"ValueError.*after layers conv1, relu1.*boom from the model"):
        run_capture(model, x, y, batch_size=4, device=CPU, showcase_positions=(0,))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_output_that_is_not_ten_logits_is_refused() -> None:
    x, y = synthetic_batch(4)
    with pytest.raises(ModelError, match=r"shape \(4, 7\).*expected \(4, 10\)"):
        run_capture(wrong_output(), x, y, batch_size=4, device=CPU, showcase_positions=(0,))


def test_showcase_picks_different_classes() -> None:
    labels = torch.tensor([3, 3, 1, 3, 2, 1, 0])
    assert choose_showcase(labels, 3) == (2, 4, 0)  # first of classes 1, 2, 3 in class order


def test_saliency_capture_matches_autograd() -> None:
    model = tiny_cnn()
    x, _ = synthetic_batch(3)
    targets = torch.tensor([1, 4, 7])
    result = capture_saliency(model, x, targets, layer="conv2", device=CPU)
    ref = tiny_cnn().eval()
    xr = x.clone().requires_grad_(True)
    a = ref.conv2(ref.pool(ref.relu1(ref.conv1(xr))))
    logits = ref.fc(ref.flatten(ref.gap(ref.relu2(ref.bn(a)))))
    score = logits.gather(1, targets.view(-1, 1)).sum()
    ga, gx = torch.autograd.grad(score, [a, xr])
    np.testing.assert_allclose(result.activations, a.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.gradients, ga.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(result.input_gradients, gx.numpy(), rtol=1e-4, atol=1e-7)

    # Without the input gradient the graph starts at the layer: the same layer gradients, and the
    # model's parameters are left as they were (requires_grad restored, no .grad written).
    flags = [p.requires_grad for p in model.parameters()]
    recorded: list[bool] = []
    handle = model.conv1.register_forward_hook(lambda _m, _i, out: recorded.append(out.requires_grad))
    try:
        layer_only = capture_saliency(model, x, targets, layer="conv2", device=CPU, input_gradients=False)
    finally:
        handle.remove()
    assert recorded == [False]  # nothing before the layer enters the graph
    assert layer_only.input_gradients is None
    np.testing.assert_allclose(layer_only.activations, a.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer_only.gradients, ga.numpy(), rtol=1e-4, atol=1e-7)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_saliency_capture_without_input_gradients_allows_an_in_place_layer_after_it() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4096, 10))
    x, _ = synthetic_batch(2)
    targets = torch.tensor([2, 5])
    with_input = capture_saliency(model, x, targets, layer="0", device=CPU)
    layer_only = capture_saliency(model, x, targets, layer="0", device=CPU, input_gradients=False)
    np.testing.assert_allclose(layer_only.gradients, with_input.gradients, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(layer_only.activations, with_input.activations)
    with pytest.raises(ModelError, match="does not lie on the path"):
        capture_saliency(_UnusedBranch(), x, targets, layer="unused", device=CPU, input_gradients=False)


class _UnusedBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Conv2d(3, 3, 1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.unused(x)
        return self.head(x)


def test_zero_count_and_scratch_buffers_of_the_reductions() -> None:
    import threading

    from nnviz_report.stats.moments import _buffers, count_nonzero, release_scratch, scratch

    values = torch.tensor([0.0, -0.0, 1.5, float("nan"), -2.0, 0.0, float("inf")])
    assert count_nonzero(values) == int(torch.count_nonzero(values)) == 4
    assert count_nonzero(values.double()) == 4
    first = scratch(torch.empty(6))
    assert scratch(torch.empty(2, 3)).data_ptr() == first.data_ptr()  # reused, reshaped
    assert scratch(torch.empty(6), torch.int32).dtype == torch.int32
    other: list[int] = []
    worker = threading.Thread(target=lambda: other.append(scratch(torch.empty(6)).data_ptr()))
    worker.start()
    worker.join()
    assert other[0] != first.data_ptr()  # each thread has its own
    release_scratch()
    assert _buffers() == {}  # nothing of this thread's buffers outlives the capture


def test_parameter_summaries_against_numpy_with_non_finite_values() -> None:
    """Norms, magnitudes and non-finite counts of every parameter and gradient, against numpy in
    float64; one weight is infinite, so that its gradients and the layer's output are not finite."""
    import math

    import numpy as np
    import torch
    from torch import nn

    from nnviz_report.capture import _parameter_summaries

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), nn.Linear(3, 2, bias=False))
    model[3].weight.requires_grad_(False)  # no gradient: summarised as zeros
    with torch.no_grad():
        model[2].weight[1, 2] = float("inf")
    model(torch.randn(4, 6)).sum().backward()

    summaries = {s.name: s for s in _parameter_summaries(model)}
    assert set(summaries) == {name for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        w = p.detach().numpy().astype(np.float64)
        g = p.grad.numpy().astype(np.float64) if p.grad is not None else np.zeros_like(w)
        s = summaries[name]
        assert s.nonfinite_weights == int((~np.isfinite(w)).sum())
        assert s.nonfinite_grads == int((~np.isfinite(g)).sum())
        for got, want in ((s.weight_norm, np.sqrt((w ** 2).sum())), (s.grad_norm, np.sqrt((g ** 2).sum())),
                          (s.mean_abs_grad, np.abs(g).mean()), (s.max_abs_grad, np.abs(g).max())):
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12), name
    assert summaries["2.weight"].nonfinite_weights == 1
    assert summaries["0.weight"].nonfinite_grads > 0  # the infinite weight reaches the first layer's gradient
