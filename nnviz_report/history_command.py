"""``nnviz-report history``: read N archived report.json files, build the history, write its
files through the same staging and all-or-nothing publish as every other command.

No torch here or below: archives are read as JSON into the typed report model
(:func:`report_json.from_jsonable`), bounded and validated like compare's archived side, so a
history runs on a CI machine without PyTorch in a couple of seconds.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from . import interrupts
from .archive_guard import check_class_numbers, check_status, load_json
from .checks import load_thresholds
from .config import OutputFormat
from .errors import CompareError, ConfigError, SchemaError, one_line
from .history import build_history, gate_causes
from .history_model import History
from .output import _write, note_stale_reports, prepare_output_dir, publish, staging_dir
from .progress import Progress
from .report_json import from_jsonable
from .report_model import READABLE_SCHEMA_VERSIONS, Report
from .version import __version__

FILE_NAMES = {
    OutputFormat.HTML: "history.html",
    OutputFormat.PDF: "history.pdf",
    OutputFormat.JSON: "history.json",
    OutputFormat.MARKDOWN: "history.md",
}
# resnet20's report.json is under 0.4 MB; a file this large is not one, and is not read whole.
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024
# Every readable schema but 1.0, which has no checklist (verdict) to follow across releases. Fields a
# later schema adds are read as absent (their defaults) from older archives.
HISTORY_SCHEMA_VERSIONS = tuple(v for v in READABLE_SCHEMA_VERSIONS if v != "1.0")


@dataclasses.dataclass(frozen=True)
class HistoryResult:
    history: History
    paths: dict[str, Path]
    exit_code: int


def read_archive(path: Path) -> Report:
    what = one_line(str(path))
    if path.exists() and not path.is_file():
        raise SchemaError(f"{what} is not a regular file; pass archived report.json files")
    try:
        size = path.stat().st_size
        if size > MAX_ARCHIVE_BYTES:
            raise SchemaError(f"{what} is {size / 2**20:.0f} MiB, too large for a report.json; pass archived "
                              "report.json files")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist; pass archived report.json files "
                          "(e.g. releases/*/report.json)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{what} cannot be read ({one_line(exc, 120)})") from None
    record = load_json(text, what)
    if not isinstance(record, dict) or "schema_version" not in record:
        raise SchemaError(f"{what} has no schema_version; it is not a report.json written by nnviz_report")
    if record["schema_version"] not in HISTORY_SCHEMA_VERSIONS:
        raise SchemaError(f"{what} has report schema version {one_line(repr(record['schema_version']), 20)}; "
                          f"history reads schema {', '.join(HISTORY_SCHEMA_VERSIONS)} (rebuild that release's "
                          f"report with nnviz_report {__version__})")
    report = from_jsonable(Report, record, what=what)
    _validate(report, what)
    return report


def _validate(report: Report, what: str) -> None:
    """What the types alone do not say: statuses from the one scale, class numbers in range, one
    prediction per sample image."""
    classes = len(report.sample.class_names)
    perf = report.performance
    if len(perf.labels) != report.sample.count or len(perf.predictions) != report.sample.count:
        raise SchemaError(f"{what}: performance has {len(perf.labels)} labels and {len(perf.predictions)} "
                          f"predictions for a sample of {report.sample.count}; the file is damaged")
    check_class_numbers(perf, classes, what)
    if len(perf.per_class_accuracy) != classes:
        raise SchemaError(f"{what}: performance.per_class_accuracy has {len(perf.per_class_accuracy)} values "
                          f"for {classes} classes; the file is damaged")
    check_status(report.verdict.status, "verdict.status", what)
    for i, check in enumerate(report.verdict.checks):
        check_status(check.status, f"verdict.checks[{i}].status", what, off=True)
    for i, finding in enumerate(report.findings):
        check_status(finding.severity, f"findings[{i}].severity", what)


def release_labels(archives: Sequence[Path], labels: str | None) -> list[str]:
    """--labels, or each archive's folder name (releases/<version>/report.json → <version>)."""
    if labels is not None:
        names = [n.strip() for n in labels.split(",")]
        if len(names) != len(archives) or not all(names):
            raise ConfigError(f"--labels gives {len(names)} label{'s' if len(names) != 1 else ''} "
                              f"({one_line(labels, 80)}) for {len(archives)} archives; give one non-empty label per "
                              "archive, comma-separated, oldest first")
    else:
        names = [p.expanduser().absolute().parent.name or str(p) for p in archives]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"two archives have the label {one_line(repeated[0], 60)!r}; name each release with "
                          "--labels v1,v2,… (oldest first)")
    return names


def run_history(archives: Sequence[Path], *, labels: str | None = None, out_dir: Path = Path("nnviz-history"),
                formats: Sequence[OutputFormat] = tuple(OutputFormat), fail_on: str | None = None,
                config_file: Path | None = None, template_dir: Path | None = None,
                progress: Progress | None = None) -> HistoryResult:
    progress = progress or Progress(enabled=False)
    if len(archives) < 2:
        raise CompareError(f"history needs at least two archived report.json files, got {len(archives)}")
    names = release_labels(archives, labels)
    thresholds = load_thresholds(config_file)
    out_dir = prepare_output_dir(out_dir, ())
    _check_targets_named(out_dir, formats)
    reports = []
    for path, name in zip(archives, names, strict=True):
        progress.stage(f"reading {name}")
        reports.append(read_archive(path))
    progress.stage("history")
    history = build_history(reports, names, [str(p) for p in archives], p_threshold=thresholds.compare_p_value)
    paths = write_history(history, out_dir, formats, template_dir, progress)
    exit_code = 1 if gate_causes(history, fail_on) else 0
    return HistoryResult(history, paths, exit_code)


def _check_targets_named(out_dir: Path, formats: Sequence[OutputFormat]) -> None:
    for fmt in formats:
        target = out_dir / FILE_NAMES[fmt]
        if target.is_dir():
            raise ConfigError(f"{one_line(target)} is a folder, so {FILE_NAMES[fmt]} cannot be written there; "
                              "move it away or choose another output folder with -o")


def write_history(history: History, out_dir: Path, formats: Sequence[OutputFormat], template_dir: Path | None,
                  progress: Progress) -> dict[str, Path]:
    from .render.history import render_history_html, render_history_json, render_history_markdown

    with staging_dir(out_dir) as staging:
        html = None
        if OutputFormat.HTML in formats or OutputFormat.PDF in formats:
            progress.stage("rendering HTML")
            html = _utf8(render_history_html(history, template_dir=template_dir))
        for fmt in formats:
            if fmt is OutputFormat.HTML:
                assert html is not None
                data = html.encode("utf-8")
            elif fmt is OutputFormat.PDF:
                from .render.pdf import render_pdf

                progress.stage("rendering PDF")
                assert html is not None
                data = render_pdf(html)
                interrupts.check()
            elif fmt is OutputFormat.JSON:
                data = _utf8(render_history_json(history)).encode("utf-8")
            else:
                data = _utf8(render_history_markdown(history, template_dir=template_dir)).encode("utf-8")
            _write(staging / FILE_NAMES[fmt], data)
        publish(staging, out_dir, [FILE_NAMES[f] for f in formats])
    note_stale_reports(out_dir, [FILE_NAMES[f] for f in formats], FILE_NAMES.values())
    return {fmt.value: out_dir / FILE_NAMES[fmt] for fmt in formats}


def _utf8(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def closing_lines(result: HistoryResult, *, fail_on: str | None, elapsed: float) -> list[str]:
    h = result.history
    newest, last = h.releases[-1], h.pairs[-1]
    interval = newest.accuracy_interval
    lines = [
        f"done in {elapsed:.1f}s: history of {len(h.releases)} releases · newest {newest.label} status "
        f"{h.newest_status.upper()} · accuracy {100 * newest.accuracy:.1f}% [95% {100 * interval.low:.1f}%–"
        f"{100 * interval.high:.1f}%] · against {last.before}: {last.fixed} fixed, {last.broken} broken, "
        f"McNemar p = {last.mcnemar_p:.2g}, {len(last.new_findings)} new findings",
        f"files in {os.fspath(next(iter(result.paths.values())).parent)}: "
        f"{', '.join(p.name for p in result.paths.values())}",
    ]
    causes = gate_causes(h, fail_on)
    if fail_on is not None and causes:
        lines.append(f"exit 1: {len(causes)} regression{'s' if len(causes) > 1 else ''} of {newest.label} at or "
                     f"above --fail-on {fail_on}: {'; '.join(c.text for c in causes[:5])}")
    elif fail_on is not None:
        lines.append(f"exit 0: no regression of {newest.label} at or above --fail-on {fail_on}")
    return lines
