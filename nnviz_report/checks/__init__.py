"""The checklist: a declared list of checks, each with thresholds a TOML file can override.

Checks read the report model's plain numbers and return, for every declared check, its status
(passes and checks that did not run included), its worst measured value and where, and the
findings it raised; they never look at the model itself. Every finding names the check, the
place, the measured value, the threshold and a sentence a person understands. Severities come
from :class:`config.Severity`, the one scale the rows, the diagram and the --fail-on gate share.

``thresholds`` holds the thresholds and their defaults, ``declared`` the checks themselves (a new
check is one function and one entry in ``CHECKS`` there), ``robustness`` the calibration and
corruption checks' findings; this module runs them and computes the verdict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..config import Severity
from ..report_model import CheckResult, Finding, Verdict
from .declared import CHECKS, CheckInputs
from .thresholds import Thresholds, load_thresholds

__all__ = ["CHECKS", "CheckInputs", "Checklist", "Thresholds", "load_thresholds", "run_checks", "severity_at",
           "verdict_of"]


@dataclasses.dataclass(frozen=True)
class Checklist:
    findings: tuple[Finding, ...]  # worst first, then in declared order
    verdict: Verdict


def run_checks(inputs: CheckInputs, thresholds: Thresholds) -> Checklist:
    """Every declared check over ``inputs``; the verdict and its counts are computed here, once."""
    results: list[CheckResult] = []
    findings: list[Finding] = []
    for check in CHECKS:
        outcome = check.run(inputs, thresholds)
        status = Severity.worst(f.severity for f in outcome.findings).value if outcome.ran else "off"
        results.append(CheckResult(
            id=check.id, title=check.title, tests=check.tests, threshold=check.threshold(thresholds), status=status,
            worst_value=outcome.worst_value, measured=outcome.measured, where=outcome.where, anchor=outcome.anchor,
            findings=len(outcome.findings), note=outcome.note))
        findings += outcome.findings
    order = {c.id: i for i, c in enumerate(CHECKS)}
    findings.sort(key=lambda f: (-Severity.rank_of(f.severity), order[f.check]))
    return Checklist(tuple(findings), verdict_of(tuple(results), findings))


def verdict_of(checks: tuple[CheckResult, ...], findings: Sequence[Finding]) -> Verdict:
    """Checks worst first (fail, warn, info, pass, then those that did not run), declared order within."""
    ran = [c for c in checks if c.status != "off"]
    checks = tuple(sorted(checks, key=lambda c: -1 if c.status == "off" else Severity.rank_of(c.status), reverse=True))

    def count(items: Sequence[CheckResult] | Sequence[Finding], status: str) -> int:
        return sum(1 for item in items if (item.status if isinstance(item, CheckResult) else item.severity) == status)

    return Verdict(
        status=Severity.worst(c.status for c in ran).value,
        checks=checks,
        checks_fail=count(ran, "fail"), checks_warn=count(ran, "warn"), checks_info=count(ran, "info"),
        checks_pass=count(ran, "pass"), checks_off=len(checks) - len(ran),
        findings_fail=count(findings, "fail"), findings_warn=count(findings, "warn"),
        findings_info=count(findings, "info"),
        passed=tuple(c.title for c in ran if c.status == "pass"),
        off=tuple(c.title for c in checks if c.status == "off"),
    )


def severity_at(findings: Sequence[Finding], *places: str) -> str:
    """The worst severity of the findings about any of ``places`` (see ``Finding.layer``); "pass" when none."""
    return Severity.worst(f.severity for f in findings if f.layer is not None and f.layer in places).value


@dataclasses.dataclass(frozen=True)
class FindingMatch:
    """Two lists of findings (an earlier and a later run) matched on (check, layer)."""

    kept: tuple[tuple[Finding, Finding], ...]  # (earlier, later) pairs about the same check and place
    new: tuple[Finding, ...]  # later findings with no earlier one left to pair with
    resolved: tuple[Finding, ...]  # earlier findings with no later one left to pair with


def match_findings(earlier: Sequence[Finding], later: Sequence[Finding]) -> FindingMatch:
    """The one matching compare and history share: findings about the same check and place pair
    up in order, so two dead-channel findings on a layer against one leave one resolved."""
    waiting: dict[tuple[str, str | None], list[Finding]] = {}
    for f in earlier:
        waiting.setdefault((f.check, f.layer), []).append(f)
    kept, new = [], []
    for f in later:
        matches = waiting.get((f.check, f.layer))
        if matches:
            kept.append((matches.pop(0), f))
        else:
            new.append(f)
    left = {id(f) for fs in waiting.values() for f in fs}
    return FindingMatch(tuple(kept), tuple(new), tuple(f for f in earlier if id(f) in left))
