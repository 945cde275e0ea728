"""The Calibration and robustness section: in a small lenet report's JSON, HTML and Markdown with
numbers that agree with the rest of the record, its checks, and base against head."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nnviz_report.checks import load_thresholds
from nnviz_report.checks.robustness import calibration_findings, corruption_findings, robustness_loss_findings
from nnviz_report.cli import main
from nnviz_report.corruptions import SEVERITIES, SUITE
from nnviz_report.data import load_sample, normalise
from nnviz_report.errors import ConfigError
from nnviz_report.models import load_model
from nnviz_report.probes import CELLS_PER_IMAGE, ProbeRun, assign_cells, run_probes
from nnviz_report.report_model import SCHEMA_VERSION, Change, RobustnessComparison
from nnviz_report.sections.robustness import robustness_comparison, robustness_section
from nnviz_report.stats.intervals import wilson_interval

PER_CLASS = 2
ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> int:
    return main([args[0], "--quiet", *args[1:]])


def read_json(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def loop_ece(confidences: list[float], correct: list[bool], bins: int = 15) -> float:
    total = 0.0
    for b in range(bins):
        members = [i for i, c in enumerate(confidences) if b / bins < c <= (b + 1) / bins]
        if members:
            gap = sum(correct[i] for i in members) - sum(confidences[i] for i in members)
            total += abs(gap) / len(confidences)
    return total


@pytest.fixture(scope="module")
def lenet_report(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lenet")
    assert cli("report", "--model", "lenet", "--data", str(image_folder), "--per-class", str(PER_CLASS),
               "--format", "html,json,md", "-o", str(out)) == 0
    return out


def test_the_section_is_in_the_json_and_agrees_with_the_rest_of_the_record(lenet_report: Path) -> None:
    record = read_json(lenet_report)
    perf, r = record["performance"], record["robustness"]
    labels = np.array(perf["labels"])
    correct = (np.array(perf["predictions"]) == labels).tolist()
    cal = r["calibration"]
    assert cal["count"] == len(labels) == 10 * PER_CLASS and cal["bins"] == 15
    assert cal["accuracy"] == pytest.approx(perf["accuracy"]) == r["clean_accuracy"]
    # report.json's per-sample confidences (rounded to 6 digits) give the same ECE.
    assert cal["ece"] == pytest.approx(loop_ece(perf["confidences"], correct), abs=1e-5)
    assert cal["mean_confidence"] == pytest.approx(np.mean(perf["confidences"]), abs=1e-6)
    assert cal["ece_low"] <= cal["ece_high"]
    assert sum(b["count"] for b in cal["reliability"]) == len(labels)
    assert cal["nll"] == pytest.approx(perf["loss"], rel=1e-5)  # the mean cross-entropy is the NLL

    assert [(x["corruption"], x["severity"]) for x in r["results"]] == [
        (c.name, s) for c in SUITE for s in SEVERITIES]
    clean_right = np.array(correct)
    for x in r["results"]:
        rows = np.array(x["positions"])
        # The n of a cell is its own: accuracy, interval and the paired clean accuracy over its rows.
        assert x["count"] == len(rows) == len(x["predictions"]) and len(set(rows.tolist())) == len(rows)
        hits = int((np.array(x["predictions"]) == labels[rows]).sum())
        assert x["accuracy"] == pytest.approx(hits / len(rows))
        assert (x["accuracy_low"], x["accuracy_high"]) == pytest.approx(wilson_interval(hits, len(rows)))
        assert x["clean_accuracy"] == pytest.approx(clean_right[rows].mean())
    # Every image is evaluated under the same number of cells, and the cells are balanced.
    per_row = np.bincount(np.concatenate([x["positions"] for x in r["results"]]), minlength=len(labels))
    assert (per_row == r["cells_per_image"]).all() and r["evaluations"] == per_row.sum()
    assert r["cell_count_max"] - r["cell_count_min"] <= 1 and r["cells"] == len(r["results"])
    accuracies = [x["accuracy"] for x in r["results"]]
    paired_clean = np.mean([x["clean_accuracy"] for x in r["results"]])
    assert r["mean_corruption_accuracy"] == pytest.approx(np.mean(accuracies))
    assert r["paired_clean_accuracy"] == pytest.approx(paired_clean)
    assert r["relative_drop"] == pytest.approx(1 - np.mean(accuracies) / paired_clean)
    for s in r["summaries"]:
        rows = [x for x in r["results"] if x["corruption"] == s["corruption"]]
        assert s["mean_accuracy"] == pytest.approx(np.mean([x["accuracy"] for x in rows]))
        at3 = next(x for x in rows if x["severity"] == 3)
        assert s["drop_at_check"] == pytest.approx(at3["clean_accuracy"] - at3["accuracy"])
        assert (s["clean_at_check"], s["count_at_check"]) == (at3["clean_accuracy"], at3["count"])
    assert [t["corruption"] for t in r["thumbnails"]] == ["clean", *[c.name for c in SUITE]]
    assert r["thumbnail_index"] == record["sample"]["indices"][r["thumbnail_position"]]


def test_the_record_matches_the_json_schema(lenet_report: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "nnviz_report" / "schema" / f"report-{SCHEMA_VERSION}.schema.json").read_text())
    errors = [e.message[:200] for e in jsonschema.Draft202012Validator(schema).iter_errors(read_json(lenet_report))]
    assert not errors, errors[:5]
    assert "robustness" in schema["properties"] and "robustness_compare" in schema["properties"]


def test_the_section_is_in_the_html_and_markdown(lenet_report: Path) -> None:
    html = (lenet_report / "report.html").read_text(encoding="utf-8")
    assert '<section id="robustness"' in html
    assert '<a href="#robustness">Calibration and robustness</a>' in html  # contents entry
    assert html.index('id="robustness"') < html.index('<section id="appendix"')
    assert 'alt="Reliability diagram' in html and "Pixelate" in html and 'id="corruption-summary"' in html
    md = (lenet_report / "report.md").read_text(encoding="utf-8")
    r = read_json(lenet_report)["robustness"]
    assert f"**Calibration:** ECE {r['calibration']['ece']:.3f}" in md
    assert "**Robustness (CIFAR-10-C corruptions, severities 1, 3, 5):**" in md


def test_probes_leave_the_model_as_it_was_and_repeat_exactly(image_folder: Path) -> None:
    loaded = load_model("lenet")
    model = loaded.module.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sample = load_sample(str(image_folder), per_class=1)
    cells = assign_cells(sample.labels.tolist(), suite=SUITE[:2])
    formats = [p.is_contiguous() for p in model.parameters()]
    runs = [run_probes(model, sample.images, sample.indices, cells, batch_size=4, device=torch.device("cpu"),
                       seed=0) for _ in range(2)]
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.is_contiguous() for p in model.parameters()] == formats  # channels-last undone
    assert all(not p.is_inference() and p.requires_grad for p in model.parameters())
    assert [(r.corruption.name, r.severity) for r in runs[0]] == [(c.name, s) for c in SUITE[:2] for s in SEVERITIES]
    assert all(a.logits.tobytes() == b.logits.tobytes() for a, b in zip(*runs, strict=True))
    assert all(r.positions == cell.positions and len(r.logits) == len(r.positions)
               for r, cell in zip(runs[0], cells, strict=True))


def section_with(clean_right: int, severity3_right: int, *, overconfident: bool = False) -> Any:
    """A 20-image section built from constructed logits."""
    n = 20
    labels = np.arange(n) % 10
    clean = np.zeros((n, 10))
    margin = 8.0 if overconfident else float(np.log(81.0))  # confidence 0.9: calibrated at 18 of 20 right
    for i in range(n):
        clean[i, labels[i] if i < clean_right else (labels[i] + 1) % 10] = margin
    runs = []
    for c in SUITE[:2]:
        for s in SEVERITIES:
            logits = np.zeros((n, 10))
            right = severity3_right if s == 3 else clean_right
            for i in range(n):
                logits[i, labels[i] if i < right else (labels[i] + 1) % 10] = margin
            runs.append(ProbeRun(c, s, tuple(range(n)), logits))
    images = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    return robustness_section(clean, labels, runs, images, list(range(n)), thumbnail_position=0, seed=0)


def test_checks_warn_on_miscalibration_and_a_large_drop_only() -> None:
    healthy = section_with(18, 16)
    assert calibration_findings(healthy, 0.10) == [] and corruption_findings(healthy, 0.25) == []
    # Confidence ≈ 0.995 while only 12 of 20 are right: far beyond the sampling floor.
    bad = section_with(12, 4, overconfident=True)
    (cal,) = calibration_findings(bad, 0.10)
    assert cal.check == "calibration-ece" and cal.severity == "warn"
    assert cal.value == pytest.approx(bad.calibration.ece - bad.calibration.ece_calibrated_reference)
    assert "overconfident" in cal.message
    drops = corruption_findings(bad, 0.25)
    assert [f.layer for f in drops] == [c.title for c in SUITE[:2]]
    assert drops[0].value == pytest.approx((12 - 4) / 20)
    assert calibration_findings(None, 0.1) == corruption_findings(None, 0.1) == []


def test_robustness_loss_needs_both_size_and_significance() -> None:
    def comparison(delta: float, base_only: int, head_only: int) -> RobustnessComparison:
        from nnviz_report.stats.intervals import mcnemar_exact_p

        zero = Change(0.0, 0.0, 0.0)
        return RobustnessComparison(zero, zero, zero, zero, Change(0.8, 0.8 + delta, delta), (), 1000,
                                    base_only, head_only, mcnemar_exact_p(base_only, head_only))

    (finding,) = robustness_loss_findings(comparison(-0.05, 60, 10), 0.02)
    assert finding.check == "robustness-loss" and finding.value == pytest.approx(0.05)
    assert robustness_loss_findings(comparison(-0.05, 6, 4), 0.02) == []  # not significant
    assert robustness_loss_findings(comparison(-0.01, 60, 50), 0.02) == []  # too small
    assert robustness_loss_findings(comparison(+0.05, 10, 60), 0.02) == []  # a gain


def test_comparison_pairs_predictions_per_corruption_and_severity() -> None:
    base, head = section_with(18, 16), section_with(18, 10)
    labels = list(np.arange(20) % 10)
    c = robustness_comparison(base, head, labels)
    assert c.pairs == 20 * 2 * len(SEVERITIES)
    assert (c.base_only_right, c.head_only_right) == (2 * 6, 0)  # images 10–15 at severity 3, two corruptions
    assert c.mean_corruption_accuracy.delta == pytest.approx(
        head.mean_corruption_accuracy - base.mean_corruption_accuracy)
    assert c.corruptions[0].accuracy.delta == pytest.approx(-6 / 20 / 3)
    assert c.p_value == pytest.approx(2 / 2**12)


def test_thresholds_come_from_the_toml(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text("[thresholds]\nece_warn = 0.2\ncorruption_drop_warn = 0.4\n", encoding="utf-8")
    t = load_thresholds(config)
    assert (t.ece_warn, t.corruption_drop_warn, t.robustness_loss_warn) == (0.2, 0.4, 0.02)
    config.write_text("[thresholds]\nece_warn = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="ece_warn must be between 0 and 1"):
        load_thresholds(config)


def test_compare_against_an_archive_shows_base_and_head(lenet_report: Path, image_folder: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "compare"
    assert cli("compare", "--model", "lenet", "--data", str(image_folder), "--per-class", str(PER_CLASS),
               "--base-json", str(lenet_report / "report.json"), "--format", "html,json,md", "-o", str(out)) == 0
    c = read_json(out)["robustness_compare"]
    base = read_json(lenet_report)["robustness"]
    assert c["ece"] == {"base": base["calibration"]["ece"], "head": base["calibration"]["ece"], "delta": 0.0}
    assert c["pairs"] == base["evaluations"] == CELLS_PER_IMAGE * 10 * PER_CLASS
    assert (c["base_only_right"], c["head_only_right"], c["p_value"]) == (0, 0, 1.0)
    assert [k["corruption"] for k in c["corruptions"]] == [s.name for s in SUITE]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="robustness-compare"' in html and "exact McNemar p = 1" in html
    assert "**Robustness, base → head:** mean corruption accuracy" in (out / "report.md").read_text(encoding="utf-8")
    # An archive made before the probes existed: compared without the robustness part.
    old = read_json(lenet_report)
    del old["robustness"], old["robustness_compare"]
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    assert cli("compare", "--model", "lenet", "--data", str(image_folder), "--per-class", str(PER_CLASS),
               "--base-json", str(tmp_path / "old.json"), "--format", "json", "-o", str(tmp_path / "old")) == 0
    assert read_json(tmp_path / "old")["robustness_compare"] is None


def test_sections_are_frozen() -> None:
    section = section_with(18, 16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        section.seed = 1  # type: ignore[misc]


def test_trained_resnet20_loses_more_under_noise_and_blur_than_under_brightness(cifar10_jpg: Path) -> None:
    """Believability on the real sample, through the report's own subset design: a standard-trained
    CNN is far more sensitive to noise and blur than to a brightness shift (Hendrycks & Dietterich,
    2019, CIFAR-10-C results). Read as the report reads it: the relative drop of each corruption
    against the clean accuracy of the same images, over its three severities."""
    sample = load_sample(str(cifar10_jpg), per_class=10)
    model = load_model("resnet20").module
    cells = assign_cells(sample.labels.tolist())
    runs = run_probes(model, sample.images, sample.indices, cells, batch_size=100, device=torch.device("cpu"),
                      seed=0)
    labels = sample.labels.numpy()
    with torch.no_grad():
        clean = model.eval()(normalise(sample.images)).numpy()
    section = robustness_section(clean, labels, runs, sample.images.numpy(), sample.indices, thumbnail_position=0,
                                 seed=0)
    drop = {s.corruption: s.relative_drop for s in section.summaries}
    assert drop["gaussian_noise"] > drop["brightness"] + 0.03
    assert drop["gaussian_blur"] > drop["brightness"] + 0.03
    assert section.cells_per_image == CELLS_PER_IMAGE and (section.cell_count_min, section.cell_count_max) == (14, 15)


def test_compare_two_checkpoints_runs_the_probes_on_both(image_folder: Path, tmp_path: Path) -> None:
    weights = ROOT / "nnviz_report" / "weights" / "lenet.pt"
    out = tmp_path / "checkpoints"
    assert cli("compare", "--model", "lenet", "--data", str(image_folder), "--per-class", "1",
               "--base-weights", str(weights), "--head-weights", str(weights), "--format", "json", "-o", str(out)) == 0
    record = read_json(out)
    c = record["robustness_compare"]
    assert c["pairs"] == record["robustness"]["evaluations"] == CELLS_PER_IMAGE * 10
    assert c["mean_corruption_accuracy"]["delta"] == 0.0 and c["p_value"] == 1.0
    assert c["mean_corruption_accuracy"]["head"] == record["robustness"]["mean_corruption_accuracy"]
