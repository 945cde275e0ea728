"""An archived report.json is untrusted input: bounded parsing and a type check of every field
compare reads, so a crafted archive (a list where an object belongs, a missing field, a
prediction out of range, a 5000-digit integer, 200 000 levels of nesting) is a one-line
SchemaError naming the field, never a traceback deep inside the comparison."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .errors import SchemaError, one_line

MAX_INT_DIGITS = 30  # no count or index in a report comes near this
NUM_CLASSES = 10
SEVERITIES = ("pass", "warn", "fail")


def load_json(text: str, what: str) -> Any:
    def bounded_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise SchemaError(f"{what} holds an integer of {len(digits)} digits; it is not a report.json "
                              "written by nnviz_report")
        return int(digits)

    try:
        return json.loads(text, parse_int=bounded_int)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise SchemaError(f"{what} is nested too deeply to be a report.json") from None


class _Fields:
    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, where: str, expected: str, value: Any) -> SchemaError:
        got = "missing" if value is _MISSING else f"a {type(value).__name__}"
        return SchemaError(f"{self.what}: {where} must be {expected}, but it is {got}; "
                           "the file is damaged or not a report.json written by nnviz_report")

    def get(self, parent: Mapping[str, Any], key: str, where: str, expected: str,
            test: Callable[[Any], bool]) -> Any:
        value = parent.get(key, _MISSING)
        if value is _MISSING or not test(value):
            raise self.fail(where, expected, value)
        return value


_MISSING = object()


def _is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def _is_list(v: Any) -> bool:
    return isinstance(v, list)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_opt_number(v: Any) -> bool:
    # NaN and infinities are allowed: report.json writes non-finite numbers as null, and compare
    # treats a non-finite number as missing anyway.
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def check_compare_fields(record: Mapping[str, Any], what: str) -> None:
    """Every field of ``record`` that compare reads has the type (and range) a report.json gives it."""
    f = _Fields(what)
    model = f.get(record, "model", "'model'", "an object", _is_dict)
    f.get(model, "spec", "model.spec", "a string", _is_str)
    f.get(model, "checkpoint_name", "model.checkpoint_name", "a string or null", _is_opt_str)
    f.get(model, "checkpoint_sha256", "model.checkpoint_sha256", "a string or null", _is_opt_str)
    sample = f.get(record, "sample", "'sample'", "an object", _is_dict)
    f.get(sample, "fingerprint", "sample.fingerprint", "a string", _is_str)
    environment = f.get(record, "environment", "'environment'", "an object", _is_dict)
    f.get(environment, "nnviz_report", "environment.nnviz_report", "a string", _is_str)
    performance = f.get(record, "performance", "'performance'", "an object", _is_dict)
    for key in ("accuracy", "loss"):
        f.get(performance, key, f"performance.{key}", "a number or null", _is_opt_number)
    per_class = f.get(performance, "per_class_accuracy", "performance.per_class_accuracy", "a list", _is_list)
    for i, value in enumerate(per_class):
        if not _is_opt_number(value):
            raise f.fail(f"performance.per_class_accuracy[{i}]", "a number or null", value)
    predictions = f.get(performance, "predictions", "performance.predictions", "a list", _is_list)
    for i, value in enumerate(predictions):
        if not _is_int(value) or not 0 <= value < NUM_CLASSES:
            raise SchemaError(f"{what}: performance.predictions[{i}] is {one_line(repr(value), 40)}, "
                              f"not a class number from 0 to {NUM_CLASSES - 1}; the file is damaged")
    activations = f.get(record, "activations", "'activations'", "an object", _is_dict)
    layers = f.get(activations, "layers", "activations.layers", "a list", _is_list)
    for i, row in enumerate(layers):
        if not _is_dict(row):
            raise f.fail(f"activations.layers[{i}]", "an object", row)
        for key in ("name", "module_path", "type"):
            f.get(row, key, f"activations.layers[{i}].{key}", "a string", _is_str)
        for key in ("mean", "std", "zero_fraction", "dead_channels", "grad_rms"):
            if not _is_opt_number(row.get(key)):
                raise f.fail(f"activations.layers[{i}].{key}", "a number or null", row.get(key))
    gradients = f.get(record, "gradients", "'gradients'", "an object", _is_dict)
    params = f.get(gradients, "params", "gradients.params", "a list", _is_list)
    for i, row in enumerate(params):
        if not _is_dict(row):
            raise f.fail(f"gradients.params[{i}]", "an object", row)
        f.get(row, "name", f"gradients.params[{i}].name", "a string", _is_str)
        f.get(row, "ratio", f"gradients.params[{i}].ratio", "a number or null", _is_opt_number)
    findings = f.get(record, "findings", "'findings'", "a list", _is_list)
    for i, row in enumerate(findings):
        if not _is_dict(row):
            raise f.fail(f"findings[{i}]", "an object", row)
        for key in ("check", "message"):
            f.get(row, key, f"findings[{i}].{key}", "a string", _is_str)
        for key in ("layer", "anchor"):
            f.get(row, key, f"findings[{i}].{key}", "a string or null", _is_opt_str)
        f.get(row, "value", f"findings[{i}].value", "a number or null", _is_opt_number)
        f.get(row, "severity", f"findings[{i}].severity", "one of pass, warn, fail",
              lambda v: isinstance(v, str) and v in SEVERITIES)
