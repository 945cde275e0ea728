"""An archived report.json is untrusted input: bounded parsing, then the parts compare reads,
read back into the report model's own dataclasses by :func:`report_json.from_jsonable`, which
checks every field's type as it reads; then the values a type cannot vouch for (a prediction
out of range, an unknown severity). A crafted archive (a list where an object belongs, a missing
field, a 5000-digit integer, 200 000 levels of nesting) is a one-line SchemaError naming the
field, never a traceback deep inside the comparison.

Schema 1.0 archives are still read: they lack the checklist (which checks ran), the accuracy
intervals and the layers' layouts. The intervals are computed here from the predictions and
labels every version records, exactly as a current run computes them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .config import Severity
from .errors import ConfigError, SchemaError, one_line
from .report_json import from_jsonable
from .report_model import (
    READABLE_SCHEMA_VERSIONS,
    Environment,
    Finding,
    LayerStats,
    ModelInfo,
    ParamStats,
    Performance,
    RobustnessSection,
    SampleInfo,
    Verdict,
    to_jsonable,
)
from .sections.summary import LOSS_NOTE, wilson
from .version import __version__

MAX_INT_DIGITS = 30  # no count or index in a report comes near this
NUM_CLASSES = 10


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


@dataclasses.dataclass(frozen=True)
class ArchivedLayers:
    layers: tuple[LayerStats, ...]


@dataclasses.dataclass(frozen=True)
class ArchivedParams:
    params: tuple[ParamStats, ...]


@dataclasses.dataclass(frozen=True)
class ArchivedReport:
    """The parts of a report.json that compare reads, under the names and paths :class:`Report`
    gives them (``activations.layers``, ``gradients.params``), as its own dataclasses."""

    schema_version: str
    model: ModelInfo
    sample: SampleInfo
    environment: Environment
    performance: Performance
    findings: tuple[Finding, ...]
    activations: ArchivedLayers
    gradients: ArchivedParams
    verdict: Verdict | None = None  # None: schema 1.0, which did not record which checks ran
    robustness: RobustnessSection | None = None  # None: made before the robustness probes


def read_archived_report(path: Path) -> ArchivedReport:
    what = f"--base-json {path.name}"
    if path.exists() and not path.is_file():  # a folder, /dev/zero, a FIFO
        raise SchemaError(f"--base-json {path} is not a regular file; pass an archived report.json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--base-json {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"--base-json {path} cannot be read ({exc})") from None
    record = load_json(text, f"--base-json {path}")
    if not isinstance(record, dict) or "schema_version" not in record:
        raise SchemaError(f"--base-json {path} has no schema_version; it is not an nnviz_report report.json")
    version = record["schema_version"]
    if version not in READABLE_SCHEMA_VERSIONS:
        raise SchemaError(
            f"{what} has report schema version {one_line(repr(version), 40)}, which nnviz_report {__version__} "
            f"cannot read (it reads {', '.join(READABLE_SCHEMA_VERSIONS)}); rebuild the base report with this version")
    if version == "1.0":
        record = _upgrade_1_0(record)
    archived = from_jsonable(ArchivedReport, record, what=what)
    _check_values(archived, what)
    return archived


def _upgrade_1_0(record: dict[str, Any]) -> dict[str, Any]:
    """A 1.0 record with the parts 1.1 added that compare reads: the performance's counts and
    intervals, from its labels and confusion matrix. The layers' layouts, which 1.0 did not record
    and compare does not read, become "generic". Anything malformed is left for the reader to name."""
    performance = record.get("performance")
    if isinstance(performance, dict) and not {"correct", "accuracy_interval"} & set(performance):
        try:
            labels, predictions = performance["labels"], performance["predictions"]
            confusion = performance["confusion"]
            correct = sum(1 for label, predicted in zip(labels, predictions, strict=True) if label == predicted)
            counts = [sum(row) for row in confusion]
            performance = {
                **performance, "correct": correct, "accuracy_interval": wilson(correct, len(labels)),
                "per_class_count": counts,
                "per_class_interval": [wilson(confusion[c][c], counts[c]) for c in range(len(confusion))],
                "loss_interval": None, "loss_note": LOSS_NOTE,
            }
            record = {**record, "performance": to_jsonable(performance)}
        except (KeyError, TypeError, IndexError, ValueError):
            pass
    activations = record.get("activations")
    if isinstance(activations, dict) and isinstance(activations.get("layers"), list):
        layers = [{"layout": "generic", "layout_note": "", **row} if isinstance(row, dict) else row
                  for row in activations["layers"]]
        record = {**record, "activations": {**activations, "layers": layers}}
    return record


def _check_values(archived: ArchivedReport, what: str) -> None:
    """What a type cannot say: class numbers in range, severities on the one scale."""
    check_class_numbers(archived.performance, NUM_CLASSES, what)
    for i, finding in enumerate(archived.findings):
        check_status(finding.severity, f"findings[{i}].severity", what)


def check_class_numbers(performance: Performance, classes: int, what: str) -> None:
    """Every recorded prediction and label is a class number below ``classes``."""
    for name, values in (("predictions", performance.predictions), ("labels", performance.labels)):
        for i, value in enumerate(values):
            if not 0 <= value < classes:
                raise SchemaError(f"{what}: performance.{name}[{i}] is {value}, not a class number from 0 to "
                                  f"{classes - 1}; the file is damaged")


def check_status(value: str, where: str, what: str, *, off: bool = False) -> None:
    """``value`` is a severity of the one scale (or "off", for a check that did not run, when ``off``)."""
    known = [s.value for s in Severity] + (["off"] if off else [])
    if value not in known:
        raise SchemaError(f"{what}: {where} is {one_line(repr(value), 40)}, not one of {', '.join(known)}; "
                          "the file is damaged")
