"""The checklist: each check fires on a purpose-built case and stays quiet on a healthy one; the
verdict's counts add up; sampled numbers are judged by their interval; the showcase informs."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnviz_report.capture import choose_showcase
from nnviz_report.checks import CHECKS, CheckInputs, Thresholds, run_checks
from nnviz_report.config import ReportSettings, Severity
from nnviz_report.data import CIFAR10_CLASSES, load_sample
from nnviz_report.models import load_model
from nnviz_report.pipeline import capture_sample, statistics
from nnviz_report.progress import Progress
from nnviz_report.report_model import (
    Change,
    CompareSection,
    CompareSide,
    Figure,
    Performance,
    SaliencyMapResult,
    SaliencySample,
    SaliencySection,
    WeightRow,
    WeightsSection,
)
from nnviz_report.sections.anchors import Anchors
from nnviz_report.sections.summary import performance

NAMES = tuple(CIFAR10_CLASSES)
EMPTY = Figure("x", "image/png", b"", "")


def perf_with(correct_per_class: list[int], per_class: int = 10, *, wrong_as: int | None = None) -> Performance:
    """A sample of ``per_class`` images per class with the given number right in each class;
    wrong ones are predicted as ``wrong_as`` (or the next class)."""
    labels, logits = [], []
    for c, right in enumerate(correct_per_class):
        for i in range(per_class):
            row = np.zeros(10)
            row[c if i < right else (wrong_as if wrong_as is not None and wrong_as != c else (c + 1) % 10)] = 5.0
            labels.append(c)
            logits.append(row)
    return performance(np.array(logits), np.ones(len(labels)), np.array(labels))


def checklist(perf: Performance, thresholds: Thresholds | None = None, **sections: object):
    return run_checks(CheckInputs([], [], perf, NAMES, **sections), thresholds or Thresholds())  # type: ignore[arg-type]


def status(result, check: str) -> str:  # noqa: ANN001
    return next(c.status for c in result.verdict.checks if c.id == check)


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# ---- one severity ------------------------------------------------------------------------------

def test_one_severity_scale() -> None:
    assert [s.rank for s in (Severity.PASS, Severity.INFO, Severity.WARN, Severity.FAIL)] == [0, 1, 2, 3]
    assert Severity.worst(["info", "pass", "warn"]) is Severity.WARN
    assert Severity.worst([]) is Severity.PASS


def test_performance_intervals_are_wilson_of_the_counts() -> None:
    perf = perf_with([10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    assert perf.correct == 55
    assert (perf.accuracy_interval.low, perf.accuracy_interval.high) == pytest.approx(wilson(55, 100))
    for c, ci in enumerate(perf.per_class_interval):
        right = 10 - c
        low, high = wilson(right, 10)
        assert (ci.low, ci.high) == pytest.approx((max(0.0, low), min(1.0, high)), abs=1e-12)
    assert perf.loss_interval is None and "no interval" in perf.loss_note


# ---- the verdict -------------------------------------------------------------------------------

def test_every_declared_check_is_listed_and_the_counts_add_up() -> None:
    result = checklist(perf_with([7] * 10))
    v = result.verdict
    assert sorted(c.id for c in v.checks) == sorted(c.id for c in CHECKS)
    assert v.checks_fail + v.checks_warn + v.checks_info + v.checks_pass + v.checks_off == len(CHECKS)
    assert v.findings_fail + v.findings_warn + v.findings_info == len(result.findings)
    assert v.passed == tuple(c.title for c in v.checks if c.status == "pass")
    ranks = [-1 if c.status == "off" else Severity.rank_of(c.status) for c in v.checks]
    assert ranks == sorted(ranks, reverse=True)  # worst first
    # Off by default, and it says how to switch it on.
    accuracy = next(c for c in v.checks if c.id == "accuracy")
    assert accuracy.status == "off" and "--min-accuracy" in accuracy.note


@pytest.mark.parametrize(("floor", "expected"), [(0.85, "fail"), (0.70, "warn"), (0.60, "pass")])
def test_min_accuracy_is_judged_by_the_interval(floor: float, expected: str) -> None:
    # 72 of 100: the 95 % Wilson interval is about 62.5–79.9 %.
    low, high = wilson(72, 100)
    assert high < 0.85 and low < 0.70 < high and low > 0.60
    perf = perf_with([8, 8, 7, 7, 7, 7, 7, 7, 7, 7])
    assert perf.correct == 72
    assert status(checklist(perf, Thresholds(min_accuracy=floor)), "accuracy") == expected


# ---- chance level ------------------------------------------------------------------------------

def test_chance_level_fires_on_guessing_and_on_collapse() -> None:
    guessing = checklist(perf_with([1] * 10))  # 10 % on ten classes
    assert status(guessing, "chance-level") == "fail"
    assert "untrained or not loaded" in next(f.message for f in guessing.findings if f.check == "chance-level")
    # 55 % accurate, but 60 of 100 images go to class 0: collapsed.
    collapsed = checklist(perf_with([10, 5, 5, 5, 5, 5, 5, 5, 5, 5], wrong_as=0))
    assert [f.value for f in collapsed.findings if f.check == "chance-level"] == [pytest.approx(0.55)]
    assert status(checklist(perf_with([7] * 10)), "chance-level") == "pass"


def test_chance_level_on_real_weights(cifar10_jpg: Path) -> None:
    """Fires on a randomly initialised torchvision resnet18 and an untrained LeNet; quiet on the
    shipped LeNet and ResNet-20 weights (100 real CIFAR-10 test images)."""
    sample = load_sample(str(cifar10_jpg), per_class=10)
    found = {}
    for spec in ("lenet", "resnet20", "nnviz_report.zoo:lenet", "torchvision:resnet18"):
        torch.manual_seed(0)
        settings = ReportSettings(model=spec, data=str(cifar10_jpg), per_class=10, progress=False, showcase=1)
        capture = capture_sample(load_model(spec), sample, settings, torch.device("cpu"), Progress(enabled=False))
        stats = statistics(capture, sample, Thresholds(), Anchors())
        found[spec] = {f.check for f in stats.findings}
    assert "chance-level" not in found["lenet"] and "chance-level" not in found["resnet20"]
    assert "chance-level" in found["nnviz_report.zoo:lenet"] and "chance-level" in found["torchvision:resnet18"]


# ---- saliency sanity ---------------------------------------------------------------------------

def saliency(drops: list[tuple[float, float]]) -> SaliencySection:
    samples = tuple(
        SaliencySample(slot, slot, slot, slot, (
            SaliencyMapResult("input-gradient", slot, 0.5, 0.1, EMPTY, None),
            SaliencyMapResult("grad-cam-predicted", slot, salient, random, EMPTY, None)))
        for slot, (salient, random) in enumerate(drops))
    return SaliencySection("layer", (8, 8), "auto", "", 0.1, samples, "")


def test_saliency_sanity_warns_naming_the_samples() -> None:
    perf = perf_with([7] * 10)
    bad = checklist(perf, saliency=saliency([(-0.09, 0.38), (0.95, 0.27), (0.03, 0.55), (0.10, 0.10)]))
    finding = next(f for f in bad.findings if f.check == "saliency-sanity")
    assert finding.severity == "warn" and finding.value == pytest.approx(0.75)
    assert "#1 airplane, #3 bird, #4 cat" in finding.message  # equal drops count as no better
    good = checklist(perf, saliency=saliency([(-0.09, 0.38), (0.95, 0.27), (0.5, 0.2), (0.6, 0.1)]))
    assert status(good, "saliency-sanity") == "pass"
    assert status(checklist(perf), "saliency-sanity") == "off"


# ---- weight spectra ----------------------------------------------------------------------------

def weight_row(name: str, alpha: float | None, ks: float | None) -> WeightRow:
    return WeightRow(name, name.rpartition(".")[0], f"w-{name}", "Conv2d", (64, 64, 3, 3), (64, 576), 0.0, 0.1, 1.0,
                     1.0, 2.0, 0.0, alpha, None if alpha is None else 0.1, ks, 0 if alpha is None else 60,
                     "" if alpha is not None else "too small", None)


def weights(*rows: WeightRow) -> WeightsSection:
    return WeightsSection(rows, (), 0, (), EMPTY, EMPTY, None, None)


def test_weight_spectra_warn_with_a_good_fit_and_inform_with_a_loose_one() -> None:
    perf = perf_with([7] * 10)
    result = checklist(perf, weights=weights(weight_row("a.weight", 1.46, 0.079), weight_row("b.weight", 7.5, 0.2),
                                             weight_row("c.weight", 3.0, 0.05), weight_row("d.weight", None, None)))
    spectra = [(f.layer, f.severity) for f in result.findings if f.check == "weight-spectra"]
    assert spectra == [("a", "warn"), ("b", "info")]
    row = next(c for c in result.verdict.checks if c.id == "weight-spectra")
    assert row.where == "b.weight" and row.worst_value == 7.5  # 1.5 past the band beats 0.54 below it
    healthy = checklist(perf, weights=weights(weight_row("c.weight", 3.0, 0.05)))
    assert status(healthy, "weight-spectra") == "pass"
    assert status(checklist(perf, weights=weights(weight_row("d.weight", None, None))), "weight-spectra") == "off"


# ---- compare -----------------------------------------------------------------------------------

def comparison(base: Performance, head: Performance) -> CompareSection:
    from nnviz_report.stats.intervals import mcnemar_exact_p

    b_right = np.array(base.labels) == np.array(base.predictions)
    h_right = np.array(head.labels) == np.array(head.predictions)
    fixed, broken = int((~b_right & h_right).sum()), int((b_right & ~h_right).sum())
    side = CompareSide("base", "checkpoint", None, None, "0", "1.1")
    p = mcnemar_exact_p(fixed, broken)
    return CompareSection(
        "checkpoints", side, dataclasses.replace(side, label="head"),
        Change(base.accuracy, head.accuracy, head.accuracy - base.accuracy),
        base.accuracy_interval, head.accuracy_interval, p, p < 0.05, 0.05,
        Change(1.0, 1.0, 0.0),
        tuple(Change(b, h, h - b) for b, h in zip(base.per_class_accuracy, head.per_class_accuracy, strict=True)),
        (), (), (), (), "", fixed + broken, fixed, broken, 0, (), 40, (), 0, 0, 0, None, None)


def test_compare_checks() -> None:
    good, worse = perf_with([8] * 10), perf_with([8, 8, 8, 8, 8, 8, 8, 8, 4, 4])
    dropped = checklist(worse, compare=comparison(good, worse))
    # 8 broken, 0 fixed: p = 2 · ½⁸ = 1/128.
    drop = next(f for f in dropped.findings if f.check == "accuracy-drop")
    assert drop.severity == "fail" and drop.value == pytest.approx(1 / 128)
    assert [f.message.split(" drops")[0] for f in dropped.findings if f.check == "class-drop"] == [
        "Accuracy on ship", "Accuracy on truck"]
    # The same 40 pp on a sample of 5 per class is 2 images: below class_drop_min_images.
    few, fewer = perf_with([4] * 10, per_class=5), perf_with([4] * 8 + [2, 2], per_class=5)
    assert status(checklist(fewer, compare=comparison(few, fewer)), "class-drop") == "pass"
    slight = perf_with([8, 8, 8, 8, 8, 8, 8, 8, 8, 6])  # 2 broken: p = 0.5, 20 pp is not beyond 20 pp
    quiet = checklist(slight, compare=comparison(good, slight))
    assert status(quiet, "accuracy-drop") == "pass" and status(quiet, "class-drop") == "pass"
    better = checklist(good, compare=comparison(worse, good))
    assert status(better, "accuracy-drop") == "pass"
    assert status(checklist(good), "accuracy-drop") == "off"


# ---- showcase ----------------------------------------------------------------------------------

def test_showcase_is_chosen_to_inform() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    predictions = [0, 0, 1, 5, 2, 2, 3, 1]
    confidences = [0.99, 0.90, 0.40, 0.80, 0.99, 0.30, 0.70, 0.95]
    # most confident correct: 0 (0.99, tie with 4 goes to the earlier); most confident wrong: 7;
    # least confident correct: 5 (class 2, new); next wrong: 3 (class 1, new).
    assert choose_showcase(labels, 4, predictions=predictions, confidences=confidences) == (0, 7, 5, 3)
    # All correct: the mistake's role falls back to the most confident of the rest in a new class (4, class 2);
    # the least confident correct one in a new class is then 2 (5 is class 2, already shown).
    assert choose_showcase(labels, 3, predictions=labels.tolist(), confidences=confidences) == (0, 4, 2)
    assert choose_showcase(labels, 2) == (0, 2)


def test_the_damaged_example_fails_and_warns(cifar10_jpg: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/make_examples.py's damaged LeNet shows a failing and a warning row, on their layers."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_examples", root / "scripts" / "make_examples.py")
    assert spec is not None and spec.loader is not None
    make_examples = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_examples", make_examples)  # its dataclasses look their module up
    spec.loader.exec_module(make_examples)
    first = make_examples.damaged_lenet(root / "nnviz_report" / "weights" / "lenet.pt", tmp_path / "a")
    second = make_examples.damaged_lenet(root / "nnviz_report" / "weights" / "lenet.pt", tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()  # the example's checkpoint sha256 is stable

    sample = load_sample(str(cifar10_jpg), per_class=10)
    settings = ReportSettings(model="lenet", weights=first, data=str(cifar10_jpg), per_class=10, progress=False,
                              showcase=1)
    capture = capture_sample(load_model("lenet", weights=first), sample, settings, torch.device("cpu"),
                             Progress(enabled=False))
    stats = statistics(capture, sample, Thresholds(), Anchors())
    dead = {(f.layer, f.severity) for f in stats.findings if f.check == "dead-channels"}
    assert {("relu2", "fail"), ("relu3", "warn")} <= dead
    rows = {row.name: row.severity for row in stats.layers}
    assert rows["relu2"] == "fail" and rows["relu3"] == "warn"
    assert stats.verdict.status == "fail"
    statuses = {c.id: c.status for c in stats.verdict.checks}
    assert statuses["exploding-gradient"] == "warn" and statuses["gradient-spread"] == "warn"
    assert next(f.layer for f in stats.findings if f.check == "exploding-gradient") == "fc3"


def test_findings_match_on_check_and_place_pairing_repeats_in_order() -> None:
    from nnviz_report.checks import match_findings
    from nnviz_report.report_model import Finding

    def finding(check: str, layer: str | None, value: float) -> Finding:
        return Finding(check, "warn", layer, value, "t", "m", None)

    earlier = [finding("dead-channels", "relu1", 1), finding("dead-channels", "relu1", 2),
               finding("saturation", "tanh", 3), finding("accuracy", None, 4)]
    later = [finding("dead-channels", "relu1", 5), finding("saturation", "tanh2", 6), finding("accuracy", None, 7)]
    match = match_findings(earlier, later)
    assert [(a.value, b.value) for a, b in match.kept] == [(1, 5), (4, 7)]
    assert [f.value for f in match.new] == [6]  # another place is another finding
    assert [f.value for f in match.resolved] == [2, 3]  # the second dead-channel finding has no partner left
