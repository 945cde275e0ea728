"""The real CLI, in-process through main([...]): outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnviz_report.cli import main

TINY = "tests.fixtures.models:tiny_cnn"


def run_cli(*args: str) -> int:
    return main(["report", "--quiet", *args])


@pytest.fixture(scope="module")
def tiny_report(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert run_cli("--model", TINY, "--data", str(image_folder), "--per-class", "4", "--batch-size", "7",
                   "-o", str(out)) == 0
    return out


def test_writes_all_formats(tiny_report: Path) -> None:
    assert sorted(p.name for p in tiny_report.iterdir()) == ["report.html", "report.json", "report.md", "report.pdf"]
    assert (tiny_report / "report.pdf").read_bytes().startswith(b"%PDF")


def test_json_numbers_agree_with_raw_predictions(tiny_report: Path) -> None:
    record = json.loads((tiny_report / "report.json").read_text())
    perf = record["performance"]
    labels, predictions = np.array(perf["labels"]), np.array(perf["predictions"])
    assert perf["accuracy"] == pytest.approx((labels == predictions).mean())
    confusion = np.zeros((10, 10), dtype=int)
    for t, p in zip(labels, predictions, strict=True):
        confusion[t, p] += 1
    assert perf["confusion"] == confusion.tolist()
    for c in range(10):
        mask = labels == c
        assert perf["per_class_accuracy"][c] == pytest.approx((predictions[mask] == c).mean())
    assert record["sample"]["count"] == 40 and len(record["sample"]["fingerprint"]) == 64
    assert record["schema_version"] and record["environment"]["torch"]


def test_html_is_self_contained(tiny_report: Path) -> None:
    html = (tiny_report / "report.html").read_text()
    assert 'http-equiv="Content-Security-Policy"' in html and "script-src 'none'" in html
    assert "<script" not in html
    for attr in ("src=\"http", "href=\"http", "src='http", "url(http", "@import"):
        assert attr not in html
    for heading in ("Summary", "Activations", "Gradients", "Appendix"):
        assert f">{heading}" in html


def test_same_inputs_give_identical_bytes(image_folder: Path, tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert run_cli("--model", TINY, "--data", str(image_folder), "--per-class", "2", "--format", "html,json,md",
                       "-o", str(out)) == 0
        outputs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert outputs[0] == outputs[1]


def test_fail_on_gate_writes_the_report_then_exits_1(image_folder: Path, tmp_path: Path) -> None:
    args = ["--model", "tests.fixtures.models:dead_relu_net", "--data", str(image_folder), "--per-class", "2",
            "--format", "json"]
    assert run_cli(*args, "-o", str(tmp_path / "a"), "--fail-on", "warn") == 1
    record = json.loads((tmp_path / "a" / "report.json").read_text())
    assert {f["check"] for f in record["findings"]} >= {"dead-channels"}
    assert run_cli(*args, "-o", str(tmp_path / "b")) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "nope_pkg:build"], "cannot import"),
        (["--model", TINY, "--weights", "/nonexistent/w.pt"], "does not exist"),
        (["--model", TINY, "--format", "html,docx"], "unknown output format 'docx'"),
        (["--model", TINY, "--per-class", "0"], "--per-class must be at least 1"),
        (["--model", TINY, "--per-class", "-3"], "--per-class must be at least 1"),
        (["--model", TINY, "--per-class", "99"], "use --per-class 6 or less"),
        (["--model", TINY, "--device", "cuda"], "CUDA is not available"),
        (["--model", "tests.fixtures.models:wrong_output"], "expected \\(.*, 10\\) logits"),
        (["--model", "tests.fixtures.models:raises_in_forward"], "after layers conv1, relu1"),
    ],
)
def test_bad_input_exits_2_with_one_line(image_folder: Path, tmp_path: Path, capsys, extra, message) -> None:
    import torch

    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "out"
    code = run_cli("--data", str(image_folder), "--per-class", "2", "-o", str(out), *extra)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("nnviz-report: error:")
    assert "Traceback" not in err
    import re

    assert re.search(message, err)
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nnviz-report-")]


def test_output_path_that_is_a_file(image_folder: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert run_cli("--model", TINY, "--data", str(image_folder), "-o", str(target)) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_usage_error_exits_2(capsys) -> None:
    assert main_exit(["report"]) == 2
    assert "--model" in capsys.readouterr().err


def main_exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code)
