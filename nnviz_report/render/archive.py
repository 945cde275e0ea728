"""``nnviz-report render``: a report rebuilt from its report.json alone, without torch, the model
or the data. The archive is read back into the report model (``report_json``), its figures are
drawn from it (``figures.draw``), and the files are written through the same staging and
all-or-nothing publish as a report run. A report rendered from the JSON a version wrote has the
HTML and Markdown bytes that version wrote next to that JSON."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..archive_guard import load_json
from ..config import OutputFormat
from ..errors import ConfigError, SchemaError, one_line
from ..output import prepare_output_dir, write_report_files
from ..progress import Progress
from ..report_json import from_jsonable
from ..report_model import READABLE_SCHEMA_VERSIONS, RENDERABLE_SCHEMA_VERSIONS, Report
from ..version import __version__

DEFAULT_FORMATS = (OutputFormat.HTML, OutputFormat.PDF, OutputFormat.MARKDOWN)
MAX_ARCHIVE_BYTES = 512 * 2**20  # resnet20's report.json is well under 1 MB; this bounds what is parsed


@dataclasses.dataclass(frozen=True)
class RenderResult:
    report: Report
    paths: dict[str, Path]
    exit_code: int  # always 0: render judges nothing, the archive's verdict is shown as recorded


def archive_file(path: Path) -> Path:
    """``path`` itself, or the report.json inside it when it is a folder."""
    path = path.expanduser()
    if path.is_dir() and (path / "report.json").is_file():
        return path / "report.json"
    return path


def read_archive(path: Path) -> Report:
    """The report model recorded in ``path``, figures not yet drawn (names only)."""
    what = one_line(path)
    if not path.exists():
        raise ConfigError(f"{what} does not exist; pass an archived report.json (ARCHIVE/report.json)")
    if not path.is_file():  # a folder without report.json, /dev/zero, a FIFO
        raise SchemaError(f"{what} is not a regular file; pass an archived report.json")
    try:
        if path.stat().st_size > MAX_ARCHIVE_BYTES:
            raise SchemaError(f"{what} is larger than {MAX_ARCHIVE_BYTES // 2**20} MB; it is not a report.json "
                              "written by nnviz_report")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{what} cannot be read ({one_line(exc, 120)})") from None
    record = load_json(text, what)
    if not isinstance(record, dict) or not isinstance(record.get("schema_version"), str):
        raise SchemaError(f"{what} has no schema_version; it is not a report.json written by nnviz_report")
    version = record["schema_version"]
    if version in READABLE_SCHEMA_VERSIONS and version not in RENDERABLE_SCHEMA_VERSIONS:
        raise SchemaError(f"{what} was written by schema {one_line(version, 20)}, which does not carry figure "
                          "sources; re-run nnviz-report report to re-create it")
    if version not in RENDERABLE_SCHEMA_VERSIONS:
        raise SchemaError(f"{what} has report schema version {one_line(version, 20)!r}, which nnviz_report "
                          f"{__version__} cannot render (it renders {', '.join(RENDERABLE_SCHEMA_VERSIONS)}); "
                          "render it with the nnviz_report version that wrote it")
    return from_jsonable(Report, record, what=what)


def draw_archived_figures(report: Report, what: str) -> Report:
    """Every figure drawn; a source that is well typed but inconsistent (a matrix of the wrong
    size, a class number out of range) is damaged input, a one-line SchemaError, not a crash."""
    from ..figures.draw import draw_figures

    try:
        return draw_figures(report)
    except SchemaError:
        raise
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise SchemaError(f"{what}: its figures cannot be drawn ({type(exc).__name__}: {one_line(exc, 160)}); the "
                          "file is damaged or was not written by nnviz_report (rerun with --debug for where)") from exc


def run_render(archive: Path, *, out_dir: Path | None, formats: tuple[OutputFormat, ...] = DEFAULT_FORMATS,
               template_dir: Path | None = None, progress: Progress | None = None) -> RenderResult:
    """``out_dir`` None: the archive's own folder (report.html, report.pdf and report.md are
    replaced next to report.json, all or none)."""
    progress = progress or Progress(enabled=False)
    path = archive_file(archive)
    progress.stage("reading report.json")
    report = read_archive(path)
    target = prepare_output_dir(out_dir if out_dir is not None else path.absolute().parent, formats)
    progress.stage("figures")
    report = draw_archived_figures(report, one_line(path))
    paths = write_report_files(report, formats, target, progress, template_dir=template_dir,
                               source=path.absolute())
    progress.close()
    return RenderResult(report, paths, 0)
