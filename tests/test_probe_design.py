"""The robustness probes' subset design: which images each corruption × severity cell evaluates,
that it is balanced and deterministic, that it changes nothing about what an image is given, the
channels-last fast path and its fallback, the stacked corruptions, and compare's pairing by row."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nnviz_report.corruptions import BY_NAME, SEVERITIES, SUITE, corrupt_batch, image_rng
from nnviz_report.data import load_sample, normalise
from nnviz_report.models import load_model
from nnviz_report.probes import (
    CELLS_PER_IMAGE,
    PROBE_EVALUATIONS,
    assign_cells,
    cells_per_image,
    class_interleaved_ranks,
    run_probes,
)
from nnviz_report.report_json import from_jsonable
from nnviz_report.report_model import RobustnessSection, to_jsonable
from nnviz_report.sections.robustness import robustness_comparison, robustness_section

CELLS = len(SUITE) * len(SEVERITIES)


def grouped_labels(per_class: int) -> list[int]:
    """Labels as load_sample orders them: class by class."""
    return [c for c in range(10) for _ in range(per_class)]


def test_the_default_design_is_balanced_over_images_cells_and_classes() -> None:
    labels = grouped_labels(10)
    cells = assign_cells(labels)
    assert [(c.corruption.name, c.severity) for c in cells] == [(c.name, s) for c in SUITE for s in SEVERITIES]
    per_row = Counter(row for cell in cells for row in cell.positions)
    assert set(per_row) == set(range(100)) and set(per_row.values()) == {CELLS_PER_IMAGE}
    sizes = [len(c.positions) for c in cells]
    assert sum(sizes) == 100 * CELLS_PER_IMAGE and (min(sizes), max(sizes)) == (14, 15)
    for cell in cells:
        assert list(cell.positions) == sorted(set(cell.positions))
        assert len({labels[r] for r in cell.positions}) == 10  # every class in every cell
    # A corruption's three severities rest on different images: its mean covers 3 × 14 of them.
    for corruption in SUITE:
        rows = [set(c.positions) for c in cells if c.corruption is corruption]
        assert sum(len(r) for r in rows) == len(set().union(*rows))
    assert assign_cells(labels) == cells  # deterministic


def test_class_interleaved_ranks_take_each_class_in_turn() -> None:
    labels = [0, 0, 0, 1, 1, 2]
    assert class_interleaved_ranks(labels) == [0, 3, 5, 1, 4, 2]
    grouped = grouped_labels(3)
    assert [grouped[r] for r in class_interleaved_ranks(grouped)][:10] == list(range(10))


def test_small_samples_fill_every_cell_and_large_k_is_the_full_design() -> None:
    assert cells_per_image(100, CELLS) == CELLS_PER_IMAGE
    assert cells_per_image(5, CELLS) == 5 and cells_per_image(1, CELLS) == CELLS
    few = assign_cells([0, 1, 2, 3, 4])
    assert all(len(c.positions) >= 1 for c in few)
    full = assign_cells(grouped_labels(2), per_image=CELLS)
    assert all(c.positions == tuple(range(20)) for c in full)
    assert cells_per_image(1000, CELLS, wanted=50) == CELLS


def test_an_image_gets_the_same_corruption_and_prediction_in_the_subset_as_in_the_full_design(
        image_folder: Path) -> None:
    sample = load_sample(str(image_folder), per_class=2)
    model = load_model("lenet").module
    labels = sample.labels.tolist()
    subset = run_probes(model, sample.images, sample.indices, assign_cells(labels), batch_size=16,
                        device=torch.device("cpu"), seed=0)
    full = run_probes(model, sample.images, sample.indices, assign_cells(labels, per_image=CELLS), batch_size=16,
                      device=torch.device("cpu"), seed=0)
    for part, whole in zip(subset, full, strict=True):
        assert whole.positions == tuple(range(len(labels)))
        np.testing.assert_allclose(part.logits, whole.logits[list(part.positions)], rtol=1e-4, atol=1e-5)
    # and the logits are those of the model on the corrupted images, in the ordinary layout
    cell = subset[4]
    rows = list(cell.positions)
    pixels = corrupt_batch(sample.images.numpy()[rows], cell.corruption, cell.severity,
                           [sample.indices[r] for r in rows], seed=0)
    with torch.no_grad():
        expected = model.eval()(normalise(torch.from_numpy(pixels))).numpy()
    np.testing.assert_allclose(cell.logits, expected, rtol=1e-4, atol=1e-5)


class ViewsItsActivations(nn.Module):
    """``.view`` on a conv output: impossible on a channels-last tensor, so the probes fall back."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.fc(y.view(y.shape[0], -1))


def test_a_model_that_cannot_take_channels_last_runs_in_the_ordinary_layout(image_folder: Path) -> None:
    torch.manual_seed(0)
    model = ViewsItsActivations()
    with pytest.raises(RuntimeError):  # the premise: this model breaks under channels-last
        model.to(memory_format=torch.channels_last)(
            torch.zeros(2, 3, 32, 32).contiguous(memory_format=torch.channels_last))
    model.to(memory_format=torch.contiguous_format)
    sample = load_sample(str(image_folder), per_class=1)
    cells = assign_cells(sample.labels.tolist(), suite=SUITE[:1])
    runs = run_probes(model, sample.images, sample.indices, cells, batch_size=8, device=torch.device("cpu"), seed=0)
    assert all(p.is_contiguous() and not p.is_inference() for p in model.parameters())
    rows = list(runs[0].positions)
    pixels = corrupt_batch(sample.images.numpy()[rows], SUITE[0], runs[0].severity,
                           [sample.indices[r] for r in rows], seed=0)
    with torch.no_grad():
        np.testing.assert_allclose(runs[0].logits, model(normalise(torch.from_numpy(pixels))).numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", ["gaussian_blur", "contrast", "brightness"])
def test_stacked_corruptions_equal_the_per_image_definition(name: str) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 3, 32, 32), dtype=np.uint8)
    corruption = BY_NAME[name]
    assert corruption.stacked
    for severity in SEVERITIES:
        stacked = corrupt_batch(images, corruption, severity, list(range(5)))
        for i, image in enumerate(images):
            one = corruption.apply(np.ascontiguousarray(image.transpose(1, 2, 0)), corruption.value(severity),
                                   image_rng(0, corruption, severity, i))
            # contrast's per-image mean may be summed in another order: at most one level apart
            assert np.abs(stacked[i].transpose(1, 2, 0).astype(int) - one.astype(int)).max() <= 1


def test_compare_pairs_the_rows_both_sides_evaluated() -> None:
    """A 1.2 head (subset) against a 1.1-style base that evaluated every row in sample order."""
    from nnviz_report.probes import ProbeRun

    n = 21
    labels = np.arange(n) % 10
    eye = np.eye(10) * 5.0
    cells = assign_cells(labels.tolist())
    head_runs = [ProbeRun(c.corruption, c.severity, c.positions, eye[labels[list(c.positions)]]) for c in cells]
    images = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    head = robustness_section(eye[labels], labels, head_runs, images, list(range(n)), thumbnail_position=0, seed=0)
    record = to_jsonable(head)
    wrong = (labels + 1) % 10
    for result in record["results"]:  # the old layout: every row, in order; all wrong
        del result["positions"], result["count"], result["clean_accuracy"]
        result["predictions"] = wrong.tolist()
    base = from_jsonable(RobustnessSection, record)  # as compare reads an archived base
    comparison = robustness_comparison(base, head, labels.tolist())
    assert comparison.pairs == head.evaluations == n * CELLS_PER_IMAGE
    assert (comparison.base_only_right, comparison.head_only_right) == (0, n * CELLS_PER_IMAGE)
    # A base from another sample size pairs nothing rather than the wrong rows.
    assert robustness_comparison(base, head, labels.tolist()[:-1]).pairs == 0


def test_large_samples_take_fewer_cells_per_image_within_the_budget() -> None:
    """Past PROBE_EVALUATIONS / 3 images an image meets fewer cells: the probes stay near one
    forward pass over the sample while every cell still grows with it."""
    assert [cells_per_image(n, CELLS) for n in (100, 350, 351, 525, 526, 1000, 5000)] == [3, 3, 2, 2, 1, 1, 1]
    assert PROBE_EVALUATIONS == 1050
    labels = [i % 10 for i in range(1000)]
    cells = assign_cells(labels)
    sizes = [len(c.positions) for c in cells]
    assert sum(sizes) == 1000 and (min(sizes), max(sizes)) == (47, 48)
    # every image in exactly one cell, every cell from every class
    rows = sorted(r for c in cells for r in c.positions)
    assert rows == list(range(1000))
    assert all({labels[r] for r in c.positions} == set(range(10)) for c in cells)


def test_the_probes_run_a_copy_with_batch_norms_folded_into_their_convolutions() -> None:
    from nnviz_report.probes import folded_batch_norms

    model = load_model("resnet20").module.eval()
    folded = folded_batch_norms(model)
    assert folded is not model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 21  # the model itself untouched
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)

    class Branchy(nn.Module):  # data-dependent control flow: fx cannot trace it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.conv(x)) if x.sum() > 0 else x

    branchy = Branchy().eval()
    assert folded_batch_norms(branchy) is branchy
