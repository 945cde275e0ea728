"""Weights, Slices and Saliency sections against independent computations on tiny models."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nnviz_report.capture import CaptureResult, run_capture
from nnviz_report.config import OutputFormat
from nnviz_report.errors import ConfigError, ModelError
from nnviz_report.figures.weights import subsample
from nnviz_report.pipeline import generate_report
from nnviz_report.report_model import to_jsonable
from nnviz_report.sections.anchors import Anchors
from nnviz_report.sections.saliency import default_gradcam_layer, saliency_section
from nnviz_report.sections.slices import MAX_STRIP_LAYERS, evenly_spaced, slices_section, strip_layers
from nnviz_report.sections.weights import VALUES_PER_LAYER, weight_tensors, weights_section
from nnviz_report.stats.saliency import grad_cam
from nnviz_report.stats.similarity import fisher_ratio, linear_cka, nearest_class_mean_accuracy
from nnviz_report.zoo import lenet, resnet20
from tests.fixtures.analysis_models import deep_plain_cnn, plain_mlp
from tests.fixtures.models import tiny_cnn

CPU = torch.device("cpu")
SHOWCASE = (0, 1, 2)


def synthetic(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Normalised inputs, labels 0..9 repeating, and uint8 pixels standing for the raw images."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    pixels = (torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8).numpy()
    return x, torch.arange(n) % 10, pixels


def capture(model: nn.Module, n: int = 40) -> tuple[CaptureResult, torch.Tensor, torch.Tensor, np.ndarray]:
    x, y, pixels = synthetic(n)
    result = run_capture(model, x, y, batch_size=16, device=CPU, showcase_positions=SHOWCASE)
    return result, x, y, pixels


def saliency_for(model: nn.Module, *, gradcam_layer: str | None = None):  # type: ignore[no-untyped-def]
    result, x, y, pixels = capture(model, n=12)
    positions = list(SHOWCASE)
    predicted = torch.from_numpy(result.logits[positions].argmax(axis=1))
    return saliency_section(model, x[positions], pixels[positions], y[positions], predicted, positions=positions,
                            layers=result.layers, gradcam_layer=gradcam_layer, device=CPU), x[positions], y[positions]


# ---- Weights ----------------------------------------------------------------------------------

def test_weight_rows_match_torch_matrix_norms() -> None:
    model = tiny_cnn()
    section = weights_section(weight_tensors(model), Anchors(), None)
    assert section is not None
    params = dict(model.named_parameters())
    assert [r.name for r in section.rows] == ["conv1.weight", "conv2.weight", "fc.weight"]
    assert section.skipped == ("bn.weight",)  # 1-D: batch-norm scale (its shift rides along)
    for row in section.rows:
        w = params[row.name].detach().double()
        matrix = w.reshape(w.shape[0], -1)
        assert row.matrix_shape == tuple(matrix.shape)
        assert row.spectral_norm == pytest.approx(float(torch.linalg.matrix_norm(matrix, ord=2)), rel=1e-9)
        assert row.l2_norm == pytest.approx(float(torch.linalg.matrix_norm(matrix)), rel=1e-9)
        assert row.stable_rank == pytest.approx(row.l2_norm**2 / row.spectral_norm**2, rel=1e-9)
        assert row.mean == pytest.approx(float(w.mean()))
        assert row.std == pytest.approx(float(w.std(unbiased=False)))
        bias = params[row.name.replace("weight", "bias")].detach().double()
        assert row.bias is not None and row.bias.size == bias.numel()
        assert row.bias.mean == pytest.approx(float(bias.mean()))
        assert (row.bias.min, row.bias.max) == (pytest.approx(float(bias.min())), pytest.approx(float(bias.max())))
        # every matrix of the tiny net is far below the 50 eigenvalues a power-law fit needs
        assert row.alpha is None and row.alpha_note.startswith("too small")
    assert section.first_layer is None


def test_power_law_is_fitted_for_large_layers_and_first_filters_are_shown() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(120, 200))
    conv = model[0]
    first = ("0", conv.weight.detach().numpy(), np.zeros(conv.weight.shape, np.float32))
    section = weights_section(weight_tensors(model), Anchors(), first)
    assert section is not None
    linear = section.rows[1]
    assert linear.alpha is not None and linear.alpha > 1.0 and 0.0 <= linear.alpha_ks_distance <= 1.0  # type: ignore[operator]
    assert linear.alpha_note == "" and linear.alpha_tail >= 10
    assert section.subsampled == ("2.weight",)  # 24 000 values; the conv's 216 are drawn whole
    assert section.first_layer is not None and section.first_layer_name == "0"


def test_subsample_takes_a_fixed_stride() -> None:
    values = np.arange(10_001, dtype=np.float64).reshape(73, 137)
    picked = subsample(values, VALUES_PER_LAYER)
    assert picked.size <= VALUES_PER_LAYER
    np.testing.assert_array_equal(picked, values.ravel()[::6])
    np.testing.assert_array_equal(subsample(values[:10], VALUES_PER_LAYER), values[:10].ravel())


# ---- Slices -----------------------------------------------------------------------------------

def test_cka_and_separability_equal_direct_computation_on_the_pooled_features() -> None:
    result, _x, y, pixels = capture(tiny_cnn())
    section = slices_section(result.layers, y.numpy(), pixels[list(SHOWCASE)], Anchors())
    assert section is not None
    pooled = {layer.name: layer.pooled_features for layer in result.layers
              if layer.pooled_features is not None and layer.type != "Flatten"}
    assert section.cka_layers == tuple(pooled)  # the Flatten repeats relu2's values: left out
    for i, a in enumerate(section.cka_layers):
        for j, b in enumerate(section.cka_layers):
            assert section.cka[i][j] == pytest.approx(linear_cka(pooled[a], pooled[b]), abs=1e-9)
    for row in section.separability:
        assert row.ncm_accuracy == pytest.approx(nearest_class_mean_accuracy(pooled[row.layer], y.numpy()))
        assert row.fisher_ratio == pytest.approx(fisher_ratio(pooled[row.layer], y.numpy()))
    assert section.chance == 0.1 and section.samples == 40


def test_strips_follow_each_showcase_sample_through_the_layers() -> None:
    result, _x, y, pixels = capture(tiny_cnn())
    section = slices_section(result.layers, y.numpy(), pixels[list(SHOWCASE)], Anchors())
    assert section is not None
    # batch norm repeats its input and the 1×1 global pool shows nothing: both left out
    assert section.strip_layers == ("conv1", "relu1", "pool", "conv2", "relu2")
    assert [s.slot for s in section.strips] == [0, 1, 2]
    image = Image.open(io.BytesIO(section.strips[0].image.data))
    assert image.height >= len(section.strip_layers) * 36


def test_many_layers_are_thinned_evenly_keeping_the_last() -> None:
    model = deep_plain_cnn()
    result, _x, y, pixels = capture(model, n=20)
    section = slices_section(result.layers, y.numpy(), pixels[list(SHOWCASE)], Anchors())
    assert section is not None
    assert len(section.strip_layers) == MAX_STRIP_LAYERS
    relus = [layer.name for layer in result.layers if layer.type == "ReLU"]
    assert set(section.strip_layers) <= set(relus)
    assert section.strip_layers[0] == relus[0] and section.strip_layers[-1] == relus[-1]
    assert section.cka_candidates == len(result.layers) > 40
    assert len(section.cka_layers) == 40 and section.cka_layers[-1] == "head"
    assert section.cka_layers[0] == result.layers[0].name


def test_resnet_strips_show_block_outputs() -> None:
    x, y, _ = synthetic(2)
    result = run_capture(resnet20(), x, y, batch_size=2, device=CPU, showcase_positions=(0, 1))
    chosen, candidates, rule = strip_layers(result.layers)
    blocks = [f"layer{s}.{b}.relu2" for s in (1, 2, 3) for b in range(3)]
    assert [layer.name for layer in chosen] == ["relu", *blocks]
    assert candidates == 10 and rule.startswith("block outputs")


@pytest.mark.parametrize(("count", "limit"), [(5, 12), (13, 12), (64, 40), (100, 7)])
def test_evenly_spaced(count: int, limit: int) -> None:
    chosen = evenly_spaced(count, limit)
    assert chosen == sorted(set(chosen))
    assert len(chosen) == min(count, limit)
    assert chosen[0] == 0 and chosen[-1] == count - 1


# ---- Saliency ---------------------------------------------------------------------------------

def test_grad_cam_in_the_section_equals_a_hand_split_reimplementation() -> None:
    model = tiny_cnn()
    section, x, y = saliency_for(model)
    assert section.gradcam_layer == "conv2" and section.gradcam_resolution == (16, 16)
    assert section.gradcam_source == "auto" and section.note == ""
    ref = tiny_cnn().eval()
    xr = x.clone().requires_grad_(True)
    a = ref.conv2(ref.pool(ref.relu1(ref.conv1(xr))))
    logits = ref.fc(ref.flatten(ref.gap(ref.relu2(ref.bn(a)))))
    predicted = logits.argmax(dim=1)
    for kind, targets in (("grad-cam-predicted", predicted), ("grad-cam-true", y)):
        (ga,) = torch.autograd.grad(logits.gather(1, targets.view(-1, 1)).sum(), a, retain_graph=True)
        expected = grad_cam(a.detach(), ga)
        for slot, sample in enumerate(section.samples):
            found = [m for m in sample.maps if m.kind == kind]
            if kind == "grad-cam-true" and int(y[slot]) == int(predicted[slot]):
                assert found == []  # the predicted class's map already is the true class's
                continue
            (result,) = found
            assert result.target == int(targets[slot])
            assert result.cam is not None
            np.testing.assert_allclose(np.array(result.cam), expected[slot], rtol=1e-4, atol=1e-6)
    assert any(int(y[slot]) != int(predicted[slot]) for slot in range(len(section.samples)))
    for slot, sample in enumerate(section.samples):
        differs = int(y[slot]) != int(predicted[slot])
        assert [m.kind for m in sample.maps] == ["input-gradient", "grad-cam-predicted"] + ["grad-cam-true"] * differs
        for m in sample.maps:
            assert -1.0 <= m.salient_drop <= 1.0 and -1.0 <= m.random_drop <= 1.0
            assert Image.open(io.BytesIO(m.image.data)).size == (96, 96)


def test_saliency_runs_one_gradient_pass_and_one_scoring_pass_equal_to_per_sample_calls() -> None:
    """Both Grad-CAM targets and every deletion score come from batched passes (two forwards in
    all, not two per target plus one per map), and the maps equal per-sample computations."""
    from nnviz_report.saliency_capture import capture_saliency

    model = tiny_cnn()
    result, x, y, pixels = capture(model, n=12)
    positions = list(SHOWCASE)
    predicted = torch.from_numpy(result.logits[positions].argmax(axis=1))
    forwards: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args: forwards.append(len(args[0])))
    try:
        section = saliency_section(model, x[positions], pixels[positions], y[positions], predicted,
                                   positions=positions, layers=result.layers, gradcam_layer=None, device=CPU)
    finally:
        handle.remove()
    assert forwards == [2 * len(positions), 3 * sum(len(sample.maps) for sample in section.samples)]
    layer = section.gradcam_layer
    assert layer is not None
    for slot, sample in enumerate(section.samples):
        for kind, targets in (("grad-cam-predicted", predicted), ("grad-cam-true", y[positions])):
            alone = capture_saliency(model, x[positions][slot:slot + 1], targets[slot:slot + 1], layer=layer,
                                     device=CPU)
            expected = grad_cam(alone.activations[0], alone.gradients[0])
            shown = [m for m in sample.maps if m.kind == kind]
            if not shown:  # the true class's map is left out where it equals the predicted class's
                assert kind == "grad-cam-true" and int(y[positions][slot]) == int(predicted[slot])
                continue
            cam = shown[0].cam
            assert cam is not None
            np.testing.assert_allclose(np.array(cam), expected, rtol=1e-5, atol=1e-7)


def test_saliency_leaves_the_model_as_it_was() -> None:
    model = tiny_cnn()
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    saliency_for(model)
    assert model.training
    for n, p in model.named_parameters():
        assert p.grad is None and torch.equal(p.detach(), before[n])


@pytest.mark.parametrize(("factory", "expected"), [(lenet, "conv2"), (resnet20, "layer3.2.conv2")])
def test_default_gradcam_layer_is_the_last_conv_of_at_least_4x4(factory, expected) -> None:  # type: ignore[no-untyped-def]
    x, y, _ = synthetic(2)
    result = run_capture(factory(), x, y, batch_size=2, device=CPU, showcase_positions=(0,))
    assert default_gradcam_layer(result.layers) == expected


def test_default_gradcam_layer_skips_convs_below_4x4() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, stride=8, padding=1),
                          nn.Flatten(), nn.Linear(4 * 2 * 2, 10))
    x, y, _ = synthetic(2)
    result = run_capture(model, x, y, batch_size=2, device=CPU, showcase_positions=(0,))
    assert default_gradcam_layer(result.layers) == "0"  # 16×16; the 2×2 conv after it is too coarse


def test_configured_gradcam_layer_is_used_and_checked() -> None:
    section, _x, _y = saliency_for(tiny_cnn(), gradcam_layer="conv1")
    assert section.gradcam_layer == "conv1" and section.gradcam_resolution == (32, 32)
    assert section.gradcam_source == "settings"
    with pytest.raises(ModelError, match="'fc'.*feature maps"):
        saliency_for(tiny_cnn(), gradcam_layer="fc")
    with pytest.raises(ModelError, match="'nope' is not a module"):
        saliency_for(tiny_cnn(), gradcam_layer="nope")


def test_model_without_convolutions_still_gets_input_gradients() -> None:
    section, _x, _y = saliency_for(plain_mlp())
    assert section.gradcam_layer is None and section.gradcam_resolution is None
    assert "Grad-CAM was not possible" in section.note
    assert [[m.kind for m in s.maps] for s in section.samples] == [["input-gradient"]] * len(SHOWCASE)


# ---- JSON and the whole report ----------------------------------------------------------------

def test_sections_round_trip_through_strict_json() -> None:
    model = tiny_cnn()
    result, _x, y, pixels = capture(model)
    sections = [
        weights_section(weight_tensors(model), Anchors(), result.first_conv),
        slices_section(result.layers, y.numpy(), pixels[list(SHOWCASE)], Anchors()),
        saliency_for(model)[0],
    ]
    for section in sections:
        text = json.dumps(to_jsonable(section), allow_nan=False)
        assert json.loads(text) == to_jsonable(section)
        assert '"figure": "' in text and "<svg" not in text  # figures go in by name only
    assert json.loads(json.dumps(to_jsonable(sections[2])))["samples"][0]["maps"][0]["image"] == {
        "figure": "saliency-0-input-gradient"}


def test_report_shows_the_three_sections(image_folder: Path, tmp_path: Path) -> None:
    result = generate_report(model="tests.fixtures.models:tiny_cnn", data=str(image_folder), per_class=2,
                             formats=(OutputFormat.HTML, OutputFormat.JSON), out_dir=tmp_path / "out", progress=False)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    for anchor in ("weights", "slices", "saliency", "weight-table", "cka", "separability", "slice-strips"):
        assert f'id="{anchor}"' in html
    record = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert record["saliency"]["gradcam_layer"] == "conv2"
    assert len(record["slices"]["cka"]) == len(record["slices"]["cka_layers"])
    assert [r["name"] for r in record["weights"]["rows"]] == ["conv1.weight", "conv2.weight", "fc.weight"]
    assert result.report.weights is not None and result.report.slices is not None


def test_api_takes_plain_strings_for_paths_and_formats(image_folder: Path, tmp_path: Path) -> None:
    weights = tmp_path / "tiny.pt"
    torch.save(tiny_cnn().state_dict(), weights)
    generate_report(model="tests.fixtures.models:tiny_cnn", weights=str(weights), data=str(image_folder),
                    per_class=1, formats="json,md", out_dir=str(tmp_path / "out"), fail_on="fail", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md"]
    record = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    settings = dict(record["settings"])
    assert settings["weights"] == "tiny.pt" and settings["formats"] == "json,md" and settings["fail_on"] == "fail"
    with pytest.raises(ConfigError, match="fail_on must be warn or fail"):
        generate_report(model="tests.fixtures.models:tiny_cnn", data=str(image_folder), fail_on="sometimes")
