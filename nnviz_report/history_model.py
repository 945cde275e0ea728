"""The history model: N archived reports of one model family on one sample, side by side.

Frozen dataclasses like the report model (numbers, strings and figure bytes; no formatting),
computed once by :mod:`history` and written as history.json by the same ``to_jsonable``.
Releases are in the order given on the command line, oldest first; "pairs" are consecutive
releases (before → after).
"""

from __future__ import annotations

import dataclasses

from .report_model import Figure, Finding, Interval, SampleInfo

HISTORY_SCHEMA_VERSION = "1.0"


@dataclasses.dataclass(frozen=True)
class ReleaseSummary:
    label: str  # --labels, or the archive's folder name
    source: str  # the archive's path as given on the command line
    checkpoint_name: str | None
    checkpoint_sha256: str | None
    nnviz_report: str  # version that wrote the archive
    schema_version: str
    status: str  # the release's own verdict: "pass" | "info" | "warn" | "fail"
    accuracy: float
    correct: int
    count: int
    accuracy_interval: Interval  # Wilson 95 % of correct out of count, recomputed from predictions and labels
    loss: float
    findings_fail: int
    findings_warn: int
    findings_info: int


@dataclasses.dataclass(frozen=True)
class CheckCell:
    status: str  # "pass" | "info" | "warn" | "fail" | "off" (did not run), or "absent" (not in that checklist)
    findings: int
    measured: str  # the worst measured value in words, as the release's checklist gave it
    where: str | None


@dataclasses.dataclass(frozen=True)
class CheckHistory:
    """One check across the releases: a row of the release × check grid."""

    id: str
    title: str
    cells: tuple[CheckCell, ...]  # one per release
    events: tuple[str, ...]  # when a finding (warn or fail) appeared, changed severity or was resolved


@dataclasses.dataclass(frozen=True)
class Regression:
    """Something the newest release made worse than the one before it: what --fail-on gates."""

    severity: str  # "warn" | "fail"
    kind: str  # "new-finding" | "accuracy-drop"
    text: str  # one line, for the report and the closing summary


@dataclasses.dataclass(frozen=True)
class ReleasePair:
    before: str  # label
    after: str
    accuracy_delta: float  # after − before
    fixed: int  # samples wrong before and right after
    broken: int  # right before and wrong after
    mcnemar_p: float  # exact two-sided McNemar p from fixed and broken
    significant: bool  # mcnemar_p < p_threshold
    new_findings: tuple[Finding, ...]  # in after, not before (matched on check and layer; checks that ran in both)
    resolved_findings: tuple[Finding, ...]  # in before, not after


@dataclasses.dataclass(frozen=True)
class SeriesTable:
    """Numbers over releases (or over pairs of releases) as rows × columns, and their heat map."""

    metric: str
    title: str
    definition: str  # what each number is, stated where it is shown
    rows: tuple[str, ...]  # layer, tensor or class names
    columns: tuple[str, ...]  # release labels, or "before → after" for pairs
    values: tuple[tuple[float | None, ...], ...]  # rows × columns; None: not measured in that release
    figure: Figure | None  # None when there is no number to draw
    numbers_in_figure: bool  # every cell of the figure carries its number (the PDF then leaves the table out)


@dataclasses.dataclass(frozen=True)
class DriftSection:
    table: SeriesTable  # weight tensors × consecutive pairs: relative change ‖W_b − W_a‖ / ‖W_a‖
    method: str  # the sketch method, "" when no pair could be estimated
    buckets: int  # k of the CountSketch; 0 when none
    exact_tensors: tuple[str, ...]  # tensors small enough to be stored whole: their change is exact
    relative_std: float  # expected relative error of an estimated change, √(1/(2k)); 0 when none
    note: str  # pairs without drift and why; "" when every pair has it
    cka_note: str  # why CKA between releases is not shown here


@dataclasses.dataclass(frozen=True)
class History:
    schema_version: str
    title: str
    model_spec: str
    class_name: str
    sample: SampleInfo  # the sample every release was measured on (one fingerprint)
    nnviz_report: str  # the version that built this history
    p_threshold: float  # McNemar's significance level
    releases: tuple[ReleaseSummary, ...]  # oldest first
    newest_status: str  # worst of the newest release's verdict and its regressions
    regressions: tuple[Regression, ...]  # newest against the release before it
    accuracy_figure: Figure
    checks: tuple[CheckHistory, ...]
    pairs: tuple[ReleasePair, ...]
    per_class: SeriesTable  # classes × releases
    drift: DriftSection
    layers: tuple[SeriesTable, ...]  # α, dead units, gradient ratio: layers × releases
