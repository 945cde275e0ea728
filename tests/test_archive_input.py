"""A crafted archived report.json given to compare --base-json is bad input (exit 2, one line
naming the field), and whatever strings it holds reach report.md as text, never as markup."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nnviz_report.archive_guard import read_archived_report
from nnviz_report.cli import main
from nnviz_report.render.markdown import md_escape

TINY = "tests.fixtures.models:tiny_cnn"


@pytest.fixture(scope="module")
def archive(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("base")
    assert main(["report", "--quiet", "--model", TINY, "--data", str(image_folder), "--per-class", "1",
                 "--format", "json", "-o", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def compare(base_json: Path, image_folder: Path, out: Path, formats: str = "json") -> int:
    return main(["compare", "--quiet", "--model", TINY, "--data", str(image_folder), "--per-class", "1",
                 "--base-json", str(base_json), "--format", formats, "-o", str(out)])


def _set(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = record
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()
CRAFTED = {
    "findings is an object": ("findings", {}, r"findings must be an array, but it is an object"),
    "performance is a list": ("performance", [], r"performance must be an object, but it is an array"),
    "layers is an object": ("activations.layers", {"a": 1}, r"activations\.layers must be an array"),
    "layer row is a list": ("activations.layers.0", [1, 2], r"activations\.layers\[0\] must be an object"),
    "missing layer name": ("activations.layers.0.name", _DELETE, r"activations\.layers\[0\]\.name must be "
                                                                 r"text, but it is missing"),
    "metric is a string": ("activations.layers.0.mean", "big", r"activations\.layers\[0\]\.mean must be a number"),
    "missing predictions": ("performance.predictions", _DELETE, r"performance\.predictions must be an array, but it "
                                                                r"is missing"),
    "prediction out of range": ("performance.predictions.0", 11, r"predictions\[0\] is 11, not a class number"),
    "prediction is a float": ("performance.predictions.0", 1.5, r"predictions\[0\] must be an integer, but it is "
                                                                r"float 1\.5"),
    "prediction is a string": ("performance.predictions.0", "3", r"predictions\[0\] must be an integer, but it is "
                                                                 r"the text '3'"),
    "severity unknown": ("findings", [{"check": "x", "severity": "**boom**", "layer": None, "value": None,
                                       "threshold": "", "message": "m", "anchor": None}],
                         r"findings\[0\]\.severity is '\*\*boom\*\*', not one of pass, info, warn, fail"),
    "checkpoint name a number": ("model.checkpoint_name", 5, r"model\.checkpoint_name must be text, but it is int 5"),
    "param ratio a list": ("gradients.params.0.ratio", [1], r"gradients\.params\[0\]\.ratio must be a number"),
    "check status missing": ("verdict.checks.0.status", _DELETE, r"verdict\.checks\[0\]\.status must be text, "
                                                                 r"but it is missing"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_archive_is_one_line_exit_2(case: str, archive, image_folder: Path, tmp_path: Path,
                                            capsys) -> None:
    path, value, message = CRAFTED[case]
    record = json.loads(json.dumps(archive))
    _set(record, path, value)
    base = tmp_path / "base.json"
    base.write_text(json.dumps(record))
    assert compare(base, image_folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("nnviz-report: error: --base-json base.json") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, message", [
    ('{"schema_version": "1.0", "n": ' + "9" * 5000 + "}", r"an integer of 5000 digits"),
    ("[" * 200_000 + "]" * 200_000, r"nested too deeply"),
])
def test_unbounded_json_is_refused(text: str, message: str, image_folder: Path, tmp_path: Path, capsys) -> None:
    base = tmp_path / "base.json"
    base.write_text(text)
    assert compare(base, image_folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


# ---- Markdown ------------------------------------------------------------------------------------

HOSTILE_ID = "dead|<img src=x onerror=alert(1)>[click](https://evil.example)\n::error::forged *bold* `code`"


def test_md_escape_leaves_no_markup() -> None:
    text = md_escape(HOSTILE_ID)
    assert "\n" not in text and "<" not in text and ">" not in text
    assert re.search(r"(?<!\\)[|*`\[\]()]", text) is None  # every special is escaped
    assert "https\\://evil" in text and "www\\.x" in md_escape("www.x")
    assert md_escape("\x1b[31mred\udcff") == "\\\\x1b\\[31mred\\\\xff"


def test_archived_strings_reach_report_md_as_text(archive, image_folder: Path, tmp_path: Path) -> None:
    record = json.loads(json.dumps(archive))
    # Compare lists findings only of checks that ran on both sides, so the hostile text rides on a
    # real check's layer and message (an unknown check id never reaches report.md at all).
    record["findings"] = [{"check": "dead-channels", "severity": "fail", "layer": HOSTILE_ID + " <b>x</b>",
                           "value": 1.0, "threshold": "t", "message": "m [a](http://evil.example) | x", "anchor": None}]
    record["model"]["checkpoint_name"] = "w|**x**<script>.pt"
    base = tmp_path / "base.json"
    base.write_text(json.dumps(record))
    out = tmp_path / "out"
    assert compare(base, image_folder, out, formats="json,md") in (0, 1)
    markdown = (out / "report.md").read_text()
    assert "<img" not in markdown and "<script>" not in markdown and "<b>" not in markdown
    assert re.search(r"(?<!\\)\]\(", markdown) is None and re.search(r"(?<!\\)://", markdown) is None
    row = next(line for line in markdown.splitlines() if "dead" in line)
    assert row.count("|") - row.count("\\|") == 6  # five columns: the archive's pipes are escaped
    assert not [line for line in markdown.splitlines() if line.startswith("::")]  # no forged annotation


def test_every_severity_of_the_one_scale_is_read(archive, tmp_path: Path) -> None:
    """An info finding (a loose power-law fit) is part of a sound archive, not damage."""
    record = json.loads(json.dumps(archive))
    record["findings"] = [{"check": "weight-spectra", "severity": severity, "layer": "conv1", "value": 1.5,
                           "threshold": "t", "message": "m", "anchor": None} for severity in ("info", "warn", "fail")]
    base = tmp_path / "base.json"
    base.write_text(json.dumps(record))
    assert [f.severity for f in read_archived_report(base).findings] == ["info", "warn", "fail"]
