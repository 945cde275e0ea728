"""report.json read back into the report model: every example round-trips exactly, and a damaged
archive fails on its first wrong field with one line naming that field's path."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from nnviz_report.errors import SchemaError
from nnviz_report.report_json import from_jsonable
from nnviz_report.report_model import Figure, HistogramData, LayerStats, Report, to_jsonable

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "example_reports").glob("*/report.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_reads_back_into_the_model_and_writes_the_same_json(path: Path) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    report = from_jsonable(Report, record)
    assert isinstance(report.activations.layers[0], LayerStats)
    assert isinstance(report.activations.layers[0].output_shape, tuple)  # arrays back as the tuples the model holds
    assert isinstance(report.activations.distribution, Figure)
    assert json.loads(json.dumps(to_jsonable(report))) == record


def test_the_examples_cover_the_optional_sections() -> None:
    seen = set()
    for path in EXAMPLES:
        record = json.loads(path.read_text(encoding="utf-8"))
        seen |= {key for key, value in record.items() if value is not None}
    assert {"flow", "slices", "weights", "saliency", "compare", "robustness", "robustness_compare"} <= seen


def _lenet() -> dict:
    return json.loads(next(p for p in EXAMPLES if p.parent.name == "lenet").read_text(encoding="utf-8"))


def test_a_missing_field_names_its_path() -> None:
    record = _lenet()
    del record["activations"]["layers"][2]["mean"]
    with pytest.raises(SchemaError) as caught:
        from_jsonable(Report, record, what="--base-json old/report.json")
    message = str(caught.value)
    assert message.startswith(
        "--base-json old/report.json: activations.layers[2].mean must be a number, but it is missing")
    assert "\n" not in message


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("performance", "accuracy"), "high", "performance.accuracy must be a number, but it is the text 'high'"),
    (("performance", "correct"), 3.5, "performance.correct must be an integer, but it is float 3.5"),
    (("performance", "correct"), True, "performance.correct must be an integer, but it is bool True"),
    (("model", "spec"), 7, "model.spec must be text, but it is int 7"),
    (("findings",), {"a": 1}, "findings must be an array, but it is an object"),
    (("sample", "indices", 0), None, "sample.indices[0] must be an integer, but it is null"),
    (("activations", "layers", 0, "output_shape"), [1, "x"],
     "activations.layers[0].output_shape[1] must be an integer"),
])
def test_a_mistyped_field_names_its_path(path: tuple, value: object, expected: str) -> None:
    record = _lenet()
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SchemaError) as caught:
        from_jsonable(Report, record)
    assert str(caught.value).startswith(f"report.json: {expected}")


def test_a_fixed_length_tuple_checks_its_length() -> None:
    record = _lenet()
    record["settings"][0] = ["only-a-key"]
    with pytest.raises(SchemaError, match=r"settings\[0\] must hold 2 values, but it holds 1"):
        from_jsonable(Report, record)


def test_null_in_a_plain_float_is_the_non_finite_number_to_jsonable_wrote() -> None:
    stats = from_jsonable(HistogramData, {"start": 0, "width": None, "counts": [1, 2]})
    assert math.isnan(stats.width) and stats.counts == (1, 2)


def test_hostile_text_in_a_mistyped_field_cannot_add_a_line_to_the_message() -> None:
    record = _lenet()
    record["performance"]["accuracy"] = "0.9\n::error::forged\x1b[2J"
    with pytest.raises(SchemaError) as caught:
        from_jsonable(Report, record)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)
    assert "\\n::error::forged" in str(caught.value)


def test_fields_with_defaults_may_be_absent_and_unknown_keys_are_ignored() -> None:
    record = _lenet()
    record.pop("robustness_compare", None)
    record["written_by_a_newer_version"] = {"x": 1}
    report = from_jsonable(Report, record)
    assert report.robustness_compare is None
    assert dataclasses.is_dataclass(report)


def test_a_wrong_field_inside_an_optional_section_names_its_own_path() -> None:
    record = _lenet()
    assert record["flow"] is not None
    record["flow"]["total_params"] = "many"
    with pytest.raises(SchemaError) as caught:
        from_jsonable(Report, record)
    assert str(caught.value).startswith("report.json: flow.total_params must be an integer, but it is the text 'many'")
