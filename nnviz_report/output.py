"""Output files: names, output-folder checks, staging, and an all-or-nothing publish.

Everything is written into a staging folder on the output's filesystem and moved into place
only when every requested file is complete, so a failed or interrupted run leaves the previous
report untouched and no partial file behind. Staging folders are named ``.nnviz-report-PID-…``
and hold an ``owner`` file (host and process id); one left behind by a killed run (SIGKILL, a
power cut) is removed by the next run into the same place, and only when its owner process is
gone, so two runs at once never delete each other's work.

Older report files that this run did not write (``report.pdf`` from a run with more formats)
are left in place and named in one line on stderr: deleting a file the user may still want is
not this tool's call, but they must not pass silently for part of this run's report.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from . import interrupts
from .background import BackgroundJob, WarmJob
from .config import OutputFormat
from .errors import OutputError, one_line

if TYPE_CHECKING:
    from .config import ReportSettings
    from .progress import Progress
    from .report_model import Report

FILE_NAMES = {
    OutputFormat.HTML: "report.html",
    OutputFormat.PDF: "report.pdf",
    OutputFormat.JSON: "report.json",
    OutputFormat.MARKDOWN: "report.md",
}
STAGING_PREFIX = ".nnviz-report-"
OWNER_FILE = "owner"
# A staging folder without an owner file (a run killed between creating it and writing the file,
# or made by an older version) is treated as abandoned once it is this old.
UNOWNED_STAGING_AGE_S = 3600.0


def prepare_output_dir(out_dir: Path, formats: Iterable[OutputFormat] = tuple(OutputFormat)) -> Path:
    """Fail before any work is done if the report could not be written there; remove staging
    folders that killed runs left behind."""
    out_dir = out_dir.expanduser().absolute()
    if out_dir.is_symlink() and not out_dir.exists():
        raise OutputError(
            f"output folder {one_line(out_dir)} is a symbolic link to {one_line(os.readlink(out_dir))}, "
            "which does not exist; create the folder it points to or choose another with -o"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output path {one_line(out_dir)} is a file; pass a folder with -o")
    parent = out_dir if out_dir.exists() else _existing_parent(out_dir)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {one_line(parent)}; choose another folder with -o")
    if out_dir.is_dir():
        _check_targets(out_dir, formats)
    remove_abandoned_staging(out_dir, out_dir.parent)
    return out_dir


def _existing_parent(path: Path) -> Path:
    for candidate in path.parents:
        if candidate.is_symlink() and not candidate.exists():
            raise OutputError(
                f"output path {one_line(path)} lies under {one_line(candidate)}, a symbolic link to a "
                "folder that does not exist; choose another folder with -o"
            )
        if candidate.exists():
            if not candidate.is_dir():
                raise OutputError(
                    f"output path {one_line(path)} lies under {one_line(candidate)}, which is a file; "
                    "choose another folder with -o"
                )
            return candidate
    return Path("/")


def _check_targets(out_dir: Path, formats: Iterable[OutputFormat]) -> None:
    """A folder where a report file belongs could only be replaced halfway through publishing."""
    for fmt in formats:
        target = out_dir / FILE_NAMES[fmt]
        if target.is_dir():
            raise OutputError(
                f"{one_line(target)} is a folder, so {FILE_NAMES[fmt]} cannot be written there; "
                "move it away or choose another output folder with -o"
            )


# ---- staging -----------------------------------------------------------------------------------

def _owner_text() -> str:
    return f"{socket.gethostname()} {os.getpid()}\n"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's live process (or an impossible id): leave it alone
    return True


def _abandoned(folder: Path) -> bool:
    try:
        owner = (folder / OWNER_FILE).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        try:
            return time.time() - folder.stat().st_mtime > UNOWNED_STAGING_AGE_S
        except OSError:
            return False
    if len(owner) != 2 or not owner[1].isdigit() or owner[0] != socket.gethostname():
        return False  # another machine's run (a shared filesystem): it cannot be checked from here
    pid = int(owner[1])
    return pid != os.getpid() and not _process_alive(pid)


def remove_abandoned_staging(*folders: Path) -> list[Path]:
    """Staging folders of this tool (its own prefix only) whose run is gone; returns what was removed."""
    removed = []
    for folder in dict.fromkeys(folders):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
                path = Path(entry.path)
                if _abandoned(path):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
    return removed


@contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A temporary folder on the output's filesystem (so the final moves are renames), removed
    whatever happens, Ctrl-C included."""
    parent = out_dir.parent if not out_dir.exists() else out_dir
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot create a folder in {one_line(parent)} ({_reason(exc)}); "
                          "choose another folder with -o") from None
    try:
        _write(staging / OWNER_FILE, _owner_text().encode("utf-8"))
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return one_line(exc.strerror or type(exc).__name__)


def _write(path: Path, data: bytes) -> None:
    try:
        with path.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputError(
            f"cannot write {path.name} in {one_line(path.parent.parent)} ({_reason(exc)}); "
            "free some space or choose another folder with -o"
        ) from None


# ---- writing and publishing ---------------------------------------------------------------------

def write_outputs(report: Report, settings: ReportSettings, out_dir: Path, progress: Progress, *,
                  pdf_renderer: WarmJob[Report, bytes] | None = None) -> dict[str, Path]:
    """Every file is rendered from the report as report.json records it (``as_recorded``), so that
    ``nnviz-report render`` of that JSON gives the same bytes. ``pdf_renderer``: from
    :func:`pdf_renderer`, started when the run began."""
    from .report_json import as_recorded

    return write_report_files(as_recorded(report), settings.formats, out_dir, progress,
                              template_dir=settings.template_dir, pdf_renderer=pdf_renderer)


@contextmanager
def pdf_renderer(settings: ReportSettings) -> Iterator[WarmJob[Report, bytes] | None]:
    """A child process that imports WeasyPrint and the templates now, while the model loads and
    runs, and renders the PDF when the report is handed to it (background.WarmJob), stopped when
    the block ends however it ends; None when no PDF is asked for or no child would run
    (background.forking_pays). Its result goes to :func:`write_outputs`."""
    if OutputFormat.PDF not in settings.formats:
        yield None
        return
    job = WarmJob(pdf_work(settings.template_dir), warm_up=_warm_up_pdf)
    with job:
        yield job if job.forked else None


def pdf_work(template_dir: Path | None) -> Callable[[Report], bytes]:
    def render(report: Report) -> bytes:
        from .render.html import render_html
        from .render.pdf import render_pdf

        return render_pdf(_utf8(render_html(report, template_dir=template_dir)))

    return render


def _warm_up_pdf() -> None:
    from .render.html import render_html  # noqa: F401 - imported for the PDF child's head start
    from .render.pdf import warm_up

    warm_up()


def write_report_files(report: Report, formats: tuple[OutputFormat, ...], out_dir: Path, progress: Progress, *,
                       template_dir: Path | None, source: Path | None = None,
                       pdf_renderer: WarmJob[Report, bytes] | None = None) -> dict[str, Path]:
    """Every format of ``report`` staged, then published together (report, compare and render).
    ``source``: the report.json render read, which is not a stale file of an earlier run.
    The PDF is rendered in a child process (background.py) while this one renders the other files,
    or by ``pdf_renderer``, such a child started earlier (:func:`pdf_renderer`)."""
    from .render.html import render_html
    from .render.json_record import render_json
    from .render.markdown import render_markdown

    if out_dir.is_dir():
        _check_targets(out_dir, formats)
    rendered: list[str] = []  # the HTML, once this process has it
    render_pdf_of = pdf_work(template_dir)

    def pdf() -> bytes:
        from .render.pdf import render_pdf

        # A child renders its own copy of the HTML (it starts before this process has one); done
        # here instead, the PDF uses the HTML already rendered.
        return render_pdf(rendered[0]) if rendered else render_pdf_of(report)

    wants_pdf = OutputFormat.PDF in formats
    if pdf_renderer is not None:
        pdf_renderer.send(report)
    with staging_dir(out_dir) as staging, \
            BackgroundJob(pdf, fork=wants_pdf and pdf_renderer is None) as pdf_job:
        names: list[str] = []
        if OutputFormat.HTML in formats or wants_pdf:
            progress.stage("rendering HTML")
            rendered.append(_utf8(render_html(report, template_dir=template_dir)))
        for fmt in formats:
            if fmt is OutputFormat.HTML:
                data = rendered[0].encode("utf-8")
            elif fmt is OutputFormat.PDF:
                continue  # written last: its child (when there is one) runs while the others are rendered
            elif fmt is OutputFormat.JSON:
                progress.stage("rendering JSON")
                data = _utf8(render_json(report)).encode("utf-8")
            else:
                progress.stage("rendering Markdown")
                data = _utf8(render_markdown(report, template_dir=template_dir)).encode("utf-8")
            _write(staging / FILE_NAMES[fmt], data)
            names.append(FILE_NAMES[fmt])
        if wants_pdf:
            progress.stage("rendering PDF")
            data = pdf_renderer.result() if pdf_renderer is not None else pdf_job.result()
            # WeasyPrint swallows a KeyboardInterrupt raised while it draws an SVG figure.
            interrupts.check()
            _write(staging / FILE_NAMES[OutputFormat.PDF], data)
            names.append(FILE_NAMES[OutputFormat.PDF])
        publish(staging, out_dir, names)
    beside = source is not None and source.parent.resolve() == out_dir.resolve()
    note_stale_reports(out_dir, names + ([source.name] if source is not None and beside else []))
    return {fmt.value: out_dir / FILE_NAMES[fmt] for fmt in formats}


def _utf8(text: str) -> str:
    """``text`` with any lone surrogate (what Python makes of a non-UTF-8 byte in a file name or
    argument) written out as ``\\udcff``: valid UTF-8 for every format, and in JSON the same
    escape reads back as the same string."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def publish(staging: Path, out_dir: Path, names: list[str]) -> None:
    """Move ``names`` from ``staging`` into ``out_dir``, all or none: files they replace are kept
    in the staging folder until every move has succeeded, and put back if one fails or a signal
    arrives meanwhile."""
    interrupts.check()
    previous = staging / ".previous"
    replaced: list[str] = []
    placed: list[str] = []
    with interrupts.deferred():
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            previous.mkdir()
            for name in names:
                target = out_dir / name
                if target.is_dir() and not target.is_symlink():
                    raise OutputError(f"{one_line(target)} is a folder, so {name} cannot be written there; "
                                      "move it away or choose another output folder with -o")
                if target.exists() or target.is_symlink():
                    os.replace(target, previous / name)
                    replaced.append(name)
                os.replace(staging / name, target)
                placed.append(name)
            missing = [n for n in names if not (out_dir / n).is_file()]
            if missing:
                raise OutputError(f"{', '.join(missing)} did not arrive in {one_line(out_dir)}; "
                                  "check the folder and run again")
            if interrupts.received() is not None:
                raise KeyboardInterrupt
        except BaseException as exc:
            _roll_back(out_dir, previous, placed, replaced)
            if isinstance(exc, OSError):
                raise OutputError(f"cannot move the report into {one_line(out_dir)} ({_reason(exc)}); "
                                  "choose another folder with -o") from None
            raise


def _roll_back(out_dir: Path, previous: Path, placed: list[str], replaced: list[str]) -> None:
    for name in placed:
        with suppress(OSError):
            os.unlink(out_dir / name)
    for name in replaced:
        with suppress(OSError):
            os.replace(previous / name, out_dir / name)


def note_stale_reports(out_dir: Path, written: list[str], names: Iterable[str] = FILE_NAMES.values()) -> list[str]:
    """Name, in one line on stderr, the files of ``names`` (a report's, or a history's) in
    ``out_dir`` that this run did not write."""
    stale = [name for name in names if name not in written and (out_dir / name).exists()]
    if stale:
        print(
            f"nnviz-report: note: {', '.join(stale)} in {one_line(out_dir)} "
            f"{'is' if len(stale) == 1 else 'are'} left from an earlier run, not from this one; "
            "delete them or add their formats to --format",
            file=sys.stderr,
        )
    return stale
