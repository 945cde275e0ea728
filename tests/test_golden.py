"""Golden output, in the manner of torchinfo's tests/test_output/*.out: the seeded tiny fixture
model's report.md, and a stable subset of its report.json, compared with the files under
tests/golden/. An unintended change to what a report says fails here in seconds, long before the
byte-identical check of the example reports (test_examples.py) would tell.

After an intended change, regenerate the files and review their diff like code:

    UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

The subset leaves out what differs between machines or runs (versions, paths, timings, figure
bytes, histograms) and rounds floats to 4 significant digits; report.md has its torch version
masked. Everything else a reader sees is compared, the checklist and the findings included.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from nnviz_report.cli import main

GOLDEN = Path(__file__).resolve().parent / "golden" / "tiny_cnn"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
# The seeded untrained TinyCNN: deterministic weights on every machine, and a report with findings
# (it cannot be told from guessing, and misses the required accuracy).
ARGS = ["--model", "tests.fixtures.models:tiny_cnn", "--per-class", "2", "--min-accuracy", "0.5"]
# The parts of report.json compared, and, inside them, what is left out.
SUBSET = ("schema_version", "title", "model", "sample", "performance", "findings", "verdict")
LAYER_KEYS_LEFT_OUT = ("histogram",)


def significant(value: Any, digits: int = 4) -> Any:
    """Every float rounded to ``digits`` significant digits, recursively."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, list):
        return [significant(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: significant(v, digits) for k, v in value.items()}
    return value


def json_subset(record: dict[str, Any]) -> dict[str, Any]:
    subset = {key: record[key] for key in SUBSET}
    subset["layers"] = [{k: v for k, v in row.items() if k not in LAYER_KEYS_LEFT_OUT}
                        for row in record["activations"]["layers"]]
    subset["params"] = record["gradients"]["params"]
    flow = record["flow"]
    subset["flow"] = {"method": flow["method"], "total_params": flow["total_params"],
                      "total_macs": flow["total_macs"], "layers": flow["layers"]}
    return significant(subset)


def masked_markdown(text: str) -> str:
    return re.sub(r"torch [0-9][^ ,|]*", "torch <version>", text)


@pytest.fixture(scope="module")
def report(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    # Exit 1: findings at --fail-on fail, which this model has on purpose.
    assert main(["report", "--quiet", *ARGS, "--data", str(image_folder), "--format", "json,md",
                 "--fail-on", "fail", "-o", str(out)]) == 1
    return out


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 python -m pytest {Path(__file__).name}"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (f"{name} differs from tests/golden/tiny_cnn/{name}; if the change is intended, "
                                f"run UPDATE_GOLDEN=1 python -m pytest tests/{Path(__file__).name} and review the diff")


def test_report_md_matches_golden(report: Path) -> None:
    check_golden("report.md", masked_markdown((report / "report.md").read_text(encoding="utf-8")))


def test_report_json_subset_matches_golden(report: Path) -> None:
    record = json.loads((report / "report.json").read_text(encoding="utf-8"))
    check_golden("report-subset.json", json.dumps(json_subset(record), indent=1, sort_keys=True,
                                                  ensure_ascii=False) + "\n")


def test_subset_and_masking_leave_out_only_what_varies() -> None:
    assert significant({"a": [0.123456789, 2, "x"], "b": 12345.678}) == {"a": [0.1235, 2, "x"], "b": 12350.0}
    assert masked_markdown("| Versions | nnviz_report 0.1.0, torch 2.15.0\\+cu132 |") == \
        "| Versions | nnviz_report 0.1.0, torch <version> |"
