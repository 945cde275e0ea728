"""`nnviz-report history` over three archives whose trends are known by construction.

v1 is LeNet's report with its shipped weights (run once through the pipeline, read back from its
report.json); v2 has conv2's weights halved, 8 right predictions made wrong and 1 wrong one made
right, and a new fail finding; v3 has v1's predictions back, the finding gone, and fc1 pruned by
magnitude (half its weights zeroed). Every number the history shows is checked against an
independent computation: Wilson by solving its quadratic, McNemar by binomial coefficients,
drift against the exact ‖ΔW‖/‖W‖ of the real tensors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnviz_report.checks import verdict_of
from nnviz_report.cli import main
from nnviz_report.history_command import read_archive
from nnviz_report.render.json_record import render_json
from nnviz_report.report_model import Finding, Report
from nnviz_report.weight_sketch import (
    SKETCH_BUCKETS,
    hash_coefficients,
    sketch_tensor,
    sketch_values,
    sketch_weights,
)

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "nnviz_report" / "weights" / "lenet.pt"
BROKEN, FIXED = 8, 1


def state_dicts() -> list[dict[str, torch.Tensor]]:
    v1 = torch.load(LENET, weights_only=True)
    v2 = {k: v.clone() for k, v in v1.items()}
    v2["conv2.weight"] *= 0.5
    v3 = {k: v.clone() for k, v in v2.items()}
    w = v3["fc1.weight"]
    w[w.abs() <= w.abs().flatten().kthvalue(w.numel() // 2).values] = 0.0
    return [v1, v2, v3]


def with_predictions(report: Report, predictions: list[int]) -> Report:
    labels = report.performance.labels
    per_class = tuple(
        sum(1 for t, p in zip(labels, predictions, strict=True) if t == c and p == c) / max(1, labels.count(c))
        for c in range(10))
    correct = sum(1 for t, p in zip(labels, predictions, strict=True) if t == p)
    perf = dataclasses.replace(report.performance, predictions=tuple(predictions), correct=correct,
                               accuracy=correct / len(labels), per_class_accuracy=per_class)
    return dataclasses.replace(report, performance=perf)


def with_finding(report: Report, finding: Finding) -> Report:
    checks = tuple(dataclasses.replace(c, status="fail", findings=c.findings + 1) if c.id == finding.check else c
                   for c in report.verdict.checks)
    findings = (*report.findings, finding)
    return dataclasses.replace(report, findings=findings, verdict=verdict_of(checks, findings))


@pytest.fixture(scope="module")
def archives(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("releases")
    assert main(["report", "-q", "--model", "lenet", "--data", str(image_folder), "--per-class", "6",
                 "--format", "json", "-o", str(root / "v1")]) == 0
    v1 = read_archive(root / "v1" / "report.json")
    sds = state_dicts()
    labels = list(v1.performance.labels)
    base = list(v1.performance.predictions)
    right = [i for i, (t, p) in enumerate(zip(labels, base, strict=True)) if t == p]
    wrong = [i for i, (t, p) in enumerate(zip(labels, base, strict=True)) if t != p]
    assert len(right) >= BROKEN and len(wrong) >= FIXED
    v2_predictions = list(base)
    for i in right[:BROKEN]:
        v2_predictions[i] = (labels[i] + 1) % 10
    for i in wrong[:FIXED]:
        v2_predictions[i] = labels[i]
    dead = Finding("dead-channels", "fail", "conv2", 0.9, "≤ 0.5", "90 % of conv2's channels are dead", None)
    assert not any(f.check == "dead-channels" for f in v1.findings)
    v2 = with_finding(with_predictions(v1, v2_predictions), dead)
    v2 = dataclasses.replace(v2, weight_sketches=sketch_weights(sds[1].items()))
    v3 = dataclasses.replace(v1, weight_sketches=sketch_weights(sds[2].items()))
    paths = [root / "v1" / "report.json"]
    for name, report in (("v2", v2), ("v3", v3)):
        (root / name).mkdir()
        (root / name / "report.json").write_text(render_json(report), encoding="utf-8")
        paths.append(root / name / "report.json")
    return paths


@pytest.fixture(scope="module")
def history(archives: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("history")
    assert main(["history", "-q", *map(str, archives), "-o", str(out), "--format", "html,json,md"]) == 0
    return json.loads((out / "history.json").read_text(encoding="utf-8")) | {"_out": str(out)}


def wilson_by_quadratic(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The p with (k/n − p)² = z² p (1 − p) / n: the roots of a p² + b p + c."""
    phat = k / n
    a, b, c = 1 + z * z / n, -(2 * phat + z * z / n), phat * phat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def mcnemar_by_binomials(b: int, c: int) -> float:
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n) if n else 1.0


def test_accuracy_and_intervals_per_release(history: dict, archives: list[Path]) -> None:
    releases = history["releases"]
    assert [r["label"] for r in releases] == ["v1", "v2", "v3"]
    v1 = read_archive(archives[0])
    n = len(v1.performance.labels)
    assert releases[1]["correct"] == releases[0]["correct"] - BROKEN + FIXED
    assert releases[2]["correct"] == releases[0]["correct"] == v1.performance.correct
    for r in releases:
        low, high = wilson_by_quadratic(r["correct"], n)
        assert r["accuracy"] == pytest.approx(r["correct"] / n)
        assert r["accuracy_interval"]["low"] == pytest.approx(low, abs=1e-12)
        assert r["accuracy_interval"]["high"] == pytest.approx(high, abs=1e-12)


def test_mcnemar_between_consecutive_releases(history: dict) -> None:
    first, second = history["pairs"]
    assert (first["fixed"], first["broken"]) == (FIXED, BROKEN)
    assert (second["fixed"], second["broken"]) == (BROKEN, FIXED)  # v3 undoes v2
    assert first["mcnemar_p"] == pytest.approx(mcnemar_by_binomials(FIXED, BROKEN)) == pytest.approx(2 * (1 + 9) / 2**9)
    assert first["significant"] and second["significant"]


def test_checklist_grid_shows_when_the_finding_appeared_and_was_resolved(history: dict) -> None:
    row = next(c for c in history["checks"] if c["id"] == "dead-channels")
    assert [cell["status"] for cell in row["cells"]] == ["pass", "fail", "pass"]
    assert row["events"] == ["fail appeared in v2", "resolved in v3"]
    first, second = history["pairs"]
    assert [(f["check"], f["layer"]) for f in first["new_findings"]] == [("dead-channels", "conv2")]
    assert [(f["check"], f["layer"]) for f in second["resolved_findings"]] == [("dead-channels", "conv2")]
    assert history["regressions"] == []  # v3 against v2: nothing got worse


def test_drift_estimates_match_the_exact_relative_change(history: dict) -> None:
    sds = state_dicts()
    table = history["drift"]["table"]
    assert history["drift"]["buckets"] == SKETCH_BUCKETS
    sigma = math.sqrt(1 / (2 * SKETCH_BUCKETS))
    for r, name in enumerate(table["rows"]):
        for c in range(2):
            before, after = sds[c][name].double(), sds[c + 1][name].double()
            exact = float((after - before).norm() / before.norm())
            estimate = table["values"][r][c]
            if exact == 0:
                assert estimate == 0.0, name
            else:
                assert abs(estimate / exact - 1) < 4 * sigma, (name, estimate, exact)
    conv2, fc1 = table["rows"].index("conv2.weight"), table["rows"].index("fc1.weight")
    assert table["values"][conv2][0] == pytest.approx(0.5, rel=4 * sigma)
    assert table["values"][fc1][0] == 0.0 and table["values"][fc1][1] > 0.1


def test_per_class_and_layer_tables(history: dict, archives: list[Path]) -> None:
    v1 = read_archive(archives[0])
    per_class = history["per_class"]
    assert per_class["rows"] == list(v1.sample.class_names)
    assert [row[0] for row in per_class["values"]] == pytest.approx(list(v1.performance.per_class_accuracy))
    tables = {t["metric"]: t for t in history["layers"]}
    assert v1.weights is not None
    alpha = tables["alpha"]
    for row in v1.weights.rows:
        assert alpha["values"][alpha["rows"].index(row.name)][0] == (row.alpha if row.alpha is None
                                                                       else pytest.approx(row.alpha))
    ratio = tables["grad-ratio"]
    for p in v1.gradients.params:
        if len(p.shape) >= 2:
            assert ratio["values"][ratio["rows"].index(p.name)][0] == pytest.approx(p.ratio)
    dead = tables["dead-units"]
    for layer in v1.activations.layers:
        if layer.dead_channels is not None:
            assert dead["values"][dead["rows"].index(layer.name)][0] == pytest.approx(layer.dead_fraction)


def test_html_and_markdown_show_the_history(history: dict) -> None:
    out = Path(history["_out"])
    html = (out / "history.html").read_text(encoding="utf-8")
    for text in ("fail appeared in v2", "resolved in v3", "Weight drift", "CKA between releases needs"):
        assert text in html
    # Small maps carry every number in their cells: the PDF leaves their tables out.
    assert html.count('<details class="long-table screen-only">') == 5
    md = (out / "history.md").read_text(encoding="utf-8")
    assert "| v1 → v2 | −" in md and "(significant)" in md


def test_same_archives_give_identical_bytes(archives: list[Path], tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        assert main(["history", "-q", *map(str, archives), "-o", str(tmp_path / name), "--format", "html,json,md"]) == 0
        outputs.append({p.name: p.read_bytes() for p in (tmp_path / name).iterdir()})
    assert outputs[0] == outputs[1] and len(outputs[0]) == 3


def test_archive_without_sketches_has_no_drift_and_says_why(archives: list[Path], tmp_path: Path) -> None:
    old = damaged(archives[0], tmp_path, "v0.9", lambda r: r.update(weight_sketches=None))
    assert main(["history", "-q", str(old), str(archives[1]), str(archives[2]), "-o", str(tmp_path / "out"),
                 "--format", "json"]) == 0
    drift = json.loads((tmp_path / "out" / "history.json").read_text(encoding="utf-8"))["drift"]
    assert all(row[0] is None for row in drift["table"]["values"])
    assert all(row[1] is not None for row in drift["table"]["values"])
    assert drift["note"] == "v0.9 → v2: v0.9's report.json has no weight sketches (written before they existed)"


def test_labels_are_escaped_in_markdown_and_html(archives: list[Path], tmp_path: Path) -> None:
    hostile = "<img src=x>|[a](http://e.vil)"
    assert main(["history", "-q", str(archives[0]), str(archives[1]), "--labels", f"{hostile},v2", "-o",
                 str(tmp_path), "--format", "html,md"]) == 0
    md = (tmp_path / "history.md").read_text(encoding="utf-8")
    html = (tmp_path / "history.html").read_text(encoding="utf-8")
    assert hostile not in md and "<img" not in md and "\\|" in md
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html


def test_fail_on_gates_the_newest_release_against_the_one_before(archives: list[Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["history", "--format", "json", "-o", str(tmp_path / "a"), str(archives[0]), str(archives[1])]
    assert main([*args, "--fail-on", "fail"]) == 1
    closing = capsys.readouterr().err
    assert "exit 1: 2 regressions of v2" in closing and "dead-channels at conv2" in closing
    assert "accuracy v1 → v2 dropped" in closing
    assert main([*args, "--fail-on", "warn"]) == 1
    assert main(["history", "-q", "--format", "json", "-o", str(tmp_path / "b"), str(archives[1]),
                 str(archives[2]), "--fail-on", "fail"]) == 0
    assert main(["history", "-q", "--format", "md", "-o", str(tmp_path / "b"), str(archives[1]), str(archives[2])]) == 0
    assert "history.json in" in capsys.readouterr().err  # left from the run before, and said so


def test_mismatched_samples_are_refused_in_one_line(archives: list[Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    record = json.loads(archives[1].read_text(encoding="utf-8"))
    record["sample"]["fingerprint"] = "0" * 64
    other = tmp_path / "other" / "report.json"
    other.parent.mkdir()
    other.write_text(json.dumps(record), encoding="utf-8")
    assert main(["history", "-q", str(archives[0]), str(other), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different sample" in err and "same --data and --per-class" in err
    assert not (tmp_path / "out").exists()



def test_releases_of_another_model_family_are_refused_in_one_line(archives: list[Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    record = json.loads(archives[1].read_text(encoding="utf-8"))
    record["model"]["class_name"], record["model"]["spec"] = "CifarResNet", "resnet20"
    other = tmp_path / "other" / "report.json"
    other.parent.mkdir()
    other.write_text(json.dumps(record), encoding="utf-8")
    assert main(["history", "-q", str(archives[0]), str(other), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a CifarResNet (resnet20)" in err and "one model family" in err
    assert not (tmp_path / "out").exists()

def damaged(archive: Path, tmp_path: Path, name: str, edit) -> Path:  # noqa: ANN001
    record = json.loads(archive.read_text(encoding="utf-8"))
    edit(record)
    path = tmp_path / name / "report.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "edit", "expected"), [
    ("no-labels", lambda r: r["performance"].pop("labels"), "performance.labels must be"),
    ("old-schema", lambda r: r.update(schema_version="1.0"), "history reads schema"),
    ("bad-prediction", lambda r: r["performance"]["predictions"].__setitem__(0, 12), "performance.predictions[0]"),
    ("bad-status", lambda r: r["verdict"].update(status="great"), "verdict.status"),
    ("sketch-text", lambda r: r["weight_sketches"]["tensors"][0].update(values=7), "weight_sketches"),
])
def test_bad_archives_exit_2_in_one_line(archives: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         name: str, edit, expected: str) -> None:  # noqa: ANN001
    bad = damaged(archives[0], tmp_path, name, edit)
    assert main(["history", "-q", str(bad), str(archives[1]), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_bad_usage_exits_2_in_one_line(archives: list[Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = ["-o", str(tmp_path / "out")]
    cases = [
        ([str(archives[0])], "at least two"),
        ([str(archives[0]), str(tmp_path / "missing.json")], "does not exist"),
        ([str(archives[0]), str(archives[1]), "--labels", "a"], "--labels gives 1 label (a) for 2 archives"),
        ([str(archives[0]), str(archives[1]), "--labels", "a,a"], "two archives have the label"),
    ]
    (tmp_path / "text.json").write_text("not json", encoding="utf-8")
    cases.append(([str(archives[0]), str(tmp_path / "text.json")], "is not valid JSON"))
    for args, expected in cases:
        assert main(["history", "-q", *args, *out]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_history_never_imports_torch(archives: list[Path], tmp_path: Path) -> None:
    code = ("import sys; from nnviz_report.cli import main; "
            f"rc = main(['history', '-q', {str(archives[0])!r}, {str(archives[2])!r}, '-o', {str(tmp_path)!r}, "
            "'--format', 'html,json,md']); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "history.html").is_file()


# ---- the sketch itself --------------------------------------------------------------------------

def test_sketch_follows_its_definition_in_plain_integers() -> None:
    """Bucket (a·i + b) mod p mod k and sign parity of (c₃i³ + c₂i² + c₁i + c₀) mod p, p = 2³¹ − 1,
    in Python's unbounded integers: the vectorised shifts and masks give the same sketch."""
    w = torch.load(LENET, weights_only=True)["fc1.weight"]
    (a, b), (c3, c2, c1, c0) = hash_coefficients(0)
    p = 2**31 - 1
    reference = np.zeros(SKETCH_BUCKETS)
    for i, value in enumerate(w.double().reshape(-1).tolist()):
        sign = 1 - 2 * (((((c3 * i + c2) % p) * i + c1) % p * i + c0) % p & 1)
        reference[(a * i + b) % p % SKETCH_BUCKETS] += sign * value
    stored = sketch_values(sketch_tensor(w, "fc1.weight"))
    assert np.allclose(stored, reference, rtol=1e-6, atol=1e-7)
    small = sketch_tensor(w[:2, :100], "small")  # 200 ≤ k elements: stored whole, exactly
    assert small.exact and np.array_equal(sketch_values(small), w[:2, :100].reshape(-1).numpy())


def test_squared_sketch_norm_is_unbiased_with_the_stated_spread() -> None:
    """Over 300 seeds, ‖S x‖² / ‖x‖² for the real change of pruning fc1 averages 1 and spreads
    by about √(2/k)."""
    sds = state_dicts()
    x = (sds[2]["fc1.weight"] - sds[1]["fc1.weight"]).double()
    ratios = []
    for seed in range(300):
        sketch = sketch_values(sketch_tensor(x, "d", seed=seed))
        ratios.append(float(np.sum(sketch**2) / float(x.norm()) ** 2))
    spread = math.sqrt(2 / SKETCH_BUCKETS)
    assert np.mean(ratios) == pytest.approx(1.0, abs=4 * spread / math.sqrt(300))
    assert np.std(ratios) == pytest.approx(spread, rel=0.25)


# ---- legibility ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [5, 300])
def test_heat_maps_stay_legible_at_800_px_and_on_paper(rows: int) -> None:
    from nnviz_report.figures.history import accuracy_figure, heatmap_figure
    from tests.test_chart_legibility import (
        COLUMN_800_PX,
        PDF_TEXT_WIDTH_PT,
        PX_PER_PT,
        WIDE_PRINT_SHARE,
        names_for,
        smallest_text_pt,
        svg_width_pt,
    )

    rng = np.random.default_rng(rows)
    columns = [f"v1.{i} → v1.{i + 1}" for i in range(6)]
    values = [[float(v) for v in rng.uniform(1e-4, 1.0, len(columns))] for _ in range(rows)]
    figures = [heatmap_figure("h", "alt", names_for(rows), columns, values, label="x", log=log)
               for log in (False, True)]
    figures.append(accuracy_figure([f"v{i}" for i in range(8)], [0.8] * 8, [0.7] * 8, [0.9] * 8))
    for figure in figures:
        width_pt = svg_width_pt(figure)
        screen_px = smallest_text_pt(figure) * min(width_pt * PX_PER_PT, COLUMN_800_PX) / width_pt
        paper_pt = smallest_text_pt(figure) * min(1.0, PDF_TEXT_WIDTH_PT * WIDE_PRINT_SHARE / width_pt)
        assert screen_px >= 9 and paper_pt >= 6, (rows, screen_px, paper_pt)
