"""Exit codes are a contract: 0/1 only when every requested file was written, 2 bad input in one
line (the user's own code ending the process included), 3 an internal error in one line, 130/143
a received SIGINT/SIGTERM. Interrupted or failed runs publish nothing."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nnviz_report import interrupts
from nnviz_report.cli import main
from nnviz_report.output import STAGING_PREFIX, remove_abandoned_staging

TINY = "tests.fixtures.models:tiny_cnn"
EXITING = "tests.fixtures.exiting_models"
ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str | Path, data: Path, out: Path, formats: str = "json") -> int:
    return main(["report", "--quiet", "--data", str(data), "--per-class", "1", "--format", formats,
                 "-o", str(out), *map(str, args)])


def one_line(capsys: pytest.CaptureFixture[str], prefix: str = "nnviz-report: error: ") -> str:
    err = capsys.readouterr().err
    assert err.startswith(prefix) and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture()
def previous_report(image_folder: Path, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "out"
    assert run_cli("--model", TINY, data=image_folder, out=out, formats="json,md") == 0
    return out, snapshot(out)


# ---- the user's code ends the process --------------------------------------------------------

EXITS = {
    "at import": ("tests.fixtures.exits_on_import:model",
                  r"importing 'tests\.fixtures\.exits_on_import' called sys\.exit\(0\)"),
    "in the factory": (f"{EXITING}:exits_in_factory", r"calling exits_in_factory\(\) called sys\.exit\(0\)"),
    "builtins:exit": ("builtins:exit", r"calling exit\(\) called sys\.exit\(None\)"),
    "in forward": (f"{EXITING}:exits_in_forward", r"the model's code called sys\.exit\(0\)"),
    "KeyboardInterrupt in forward": (f"{EXITING}:interrupts_in_forward",
                                     r"raised KeyboardInterrupt by itself \(no signal was received\)"),
}


@pytest.mark.parametrize("case", list(EXITS))
def test_a_model_that_exits_is_bad_input(case: str, image_folder: Path, tmp_path: Path, capsys) -> None:
    spec, message = EXITS[case]
    sys.modules.pop("tests.fixtures.exits_on_import", None)
    out = tmp_path / "out"
    assert run_cli("--model", spec, data=image_folder, out=out) == 2
    err = one_line(capsys)
    assert re.search(message, err), err
    assert not out.exists()


# ---- internal errors -------------------------------------------------------------------------

def _bug(*_args: Any, **_kwargs: Any) -> str:
    raise ZeroDivisionError("a bug\nwith a second line")


def test_internal_error_is_exit_3_in_one_line(previous_report, image_folder: Path, monkeypatch, capsys) -> None:
    out, before = previous_report
    monkeypatch.setattr("nnviz_report.render.json_record.render_json", _bug)
    monkeypatch.delenv("NNVIZ_DEBUG", raising=False)
    capsys.readouterr()
    assert run_cli("--model", TINY, data=image_folder, out=out, formats="json,md") == 3
    err = one_line(capsys, "nnviz-report: internal error: ")
    assert err == ("nnviz-report: internal error: ZeroDivisionError: a bug\\nwith a second line — rerun with "
                   "--debug and report it\n")
    assert snapshot(out) == before


@pytest.mark.parametrize("how", ["--debug", "NNVIZ_DEBUG=1"])
def test_debug_shows_the_traceback(image_folder: Path, tmp_path: Path, monkeypatch, capsys, how: str) -> None:
    monkeypatch.setattr("nnviz_report.render.json_record.render_json", _bug)
    extra = []
    if how == "--debug":
        extra.append("--debug")
    else:
        monkeypatch.setenv("NNVIZ_DEBUG", "1")
    assert run_cli("--model", TINY, *extra, data=image_folder, out=tmp_path / "out") == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in _bug" in err
    assert err.rstrip("\n").splitlines()[-1].startswith("nnviz-report: internal error: ZeroDivisionError")


# ---- signals ---------------------------------------------------------------------------------

def test_sigterm_is_143_and_publishes_nothing(previous_report, image_folder: Path, monkeypatch, capsys) -> None:
    out, before = previous_report

    def terminated(*_args: Any, **_kwargs: Any) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the SIGTERM handler did not stop the run")

    monkeypatch.setattr("nnviz_report.render.markdown.render_markdown", terminated)
    capsys.readouterr()
    assert run_cli("--model", TINY, data=image_folder, out=out, formats="json,md") == 143
    assert capsys.readouterr().err == "nnviz-report: terminated; no files were written\n"
    assert snapshot(out) == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are put back
    assert interrupts.received() is None  # a later generate_report() in this process is not "interrupted"


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_swallowed_interrupt_still_stops_the_run(previous_report, image_folder: Path, monkeypatch, capsys,
                                                   sig: signal.Signals, code: int) -> None:
    # WeasyPrint catches BaseException around SVG drawing: the KeyboardInterrupt never reaches us,
    # and the PDF comes back without the figure. The flag is checked after rendering.
    out, before = previous_report

    def swallowing(_html: str) -> bytes:
        with contextlib.suppress(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
        return b"%PDF-1.7 a PDF with a figure missing"

    monkeypatch.setattr("nnviz_report.render.pdf.render_pdf", swallowing)
    assert run_cli("--model", TINY, data=image_folder, out=out, formats="html,pdf,json") == code
    assert snapshot(out) == before


def test_a_swallowed_interrupt_during_capture_stops_at_the_next_stage(previous_report, image_folder: Path,
                                                                      monkeypatch) -> None:
    out, before = previous_report
    import nnviz_report.pipeline as pipeline

    real = pipeline.run_capture

    def capture_that_swallows(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(KeyboardInterrupt):  # user code that catches Ctrl-C and carries on
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_capture", capture_that_swallows)
    assert run_cli("--model", TINY, data=image_folder, out=out, formats="json,md") == 130
    assert snapshot(out) == before


def test_real_sigterm_on_a_subprocess(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # The child stops itself with a real SIGTERM while the report is being rendered.
    script = (
        "import os, signal, sys\n"
        "import nnviz_report.render.json_record as j\n"
        "real = j.render_json\n"
        "def render(report):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(report)\n"
        "j.render_json = render\n"
        "from nnviz_report.cli import main\n"
        f"sys.exit(main(['report', '--quiet', '--model', {TINY!r}, '--data', {str(image_folder)!r}, "
        f"'--per-class', '1', '--format', 'json', '-o', {str(out)!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 143, done.stderr
    assert done.stderr == "nnviz-report: terminated; no files were written\n"
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]


# ---- staging folders left by killed runs ----------------------------------------------------

def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_abandoned_staging_folders_are_removed_and_only_those(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = tmp_path / f"{STAGING_PREFIX}{_dead_pid()}-abc"
    alive = tmp_path / f"{STAGING_PREFIX}{os.getppid()}-def"
    elsewhere = tmp_path / f"{STAGING_PREFIX}1-ghi"
    for folder, owner in ((dead, f"{host} {dead.name.split('-')[2]}"), (alive, f"{host} {os.getppid()}"),
                          (elsewhere, "another-host 1")):
        folder.mkdir()
        (folder / "owner").write_text(owner + "\n")
        (folder / "report.json").write_text("{}")
    unowned_fresh = tmp_path / f"{STAGING_PREFIX}fresh"
    unowned_fresh.mkdir()
    unowned_old = tmp_path / f"{STAGING_PREFIX}old"
    unowned_old.mkdir()
    os.utime(unowned_old, (0, 0))
    not_ours = tmp_path / ".other-tool-123"
    not_ours.mkdir()
    (not_ours / "owner").write_text(f"{host} {_dead_pid()}\n")
    assert sorted(remove_abandoned_staging(tmp_path)) == sorted([dead, unowned_old])
    assert alive.is_dir() and elsewhere.is_dir() and unowned_fresh.is_dir() and not_ours.is_dir()


def test_the_next_run_removes_a_killed_runs_staging(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    left = out / f"{STAGING_PREFIX}{_dead_pid()}-xyz"
    left.mkdir()
    (left / "owner").write_text(f"{socket.gethostname()} {left.name.split('-')[2]}\n")
    (left / "report.html").write_text("half")
    assert run_cli("--model", TINY, data=image_folder, out=out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]


# ---- where the output goes -------------------------------------------------------------------

def test_disk_full_is_exit_2_and_keeps_the_previous_report(previous_report, image_folder: Path, monkeypatch,
                                                           capsys) -> None:
    out, before = previous_report
    real_fsync = os.fsync
    calls = []

    def full(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 2:  # the owner file and the first report file fit, the second does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    assert run_cli("--model", TINY, data=image_folder, out=out, formats="json,md") == 2
    err = one_line(capsys)
    assert "cannot write report.md" in err and "no space left on the device" in err
    assert snapshot(out) == before


def test_output_folder_that_is_a_dangling_symlink(image_folder: Path, tmp_path: Path, capsys) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    assert run_cli("--model", TINY, data=image_folder, out=link) == 2
    assert "is a symbolic link to" in one_line(capsys)


def test_a_folder_where_a_report_file_belongs(image_folder: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"
    (out / "report.json").mkdir(parents=True)

    def never(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the sample was loaded before the output folder was checked")

    monkeypatch.setattr("nnviz_report.pipeline.load_sample", never)
    assert run_cli("--model", TINY, data=image_folder, out=out) == 2
    assert "report.json is a folder" in one_line(capsys)


def test_config_that_is_a_folder(image_folder: Path, tmp_path: Path, capsys) -> None:
    assert run_cli("--model", TINY, "--config", tmp_path, data=image_folder, out=tmp_path / "out") == 2
    assert "cannot be read" in one_line(capsys)


def test_endless_config_and_archive_are_refused(image_folder: Path, tmp_path: Path, capsys) -> None:
    assert run_cli("--model", TINY, "--config", "/dev/zero", data=image_folder, out=tmp_path / "out") == 2
    assert "config file /dev/zero is not a regular file" in one_line(capsys)
    assert main(["compare", "--quiet", "--model", TINY, "--data", str(image_folder), "--base-json", "/dev/zero",
                 "-o", str(tmp_path / "out")]) == 2
    assert "--base-json /dev/zero is not a regular file" in one_line(capsys)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1" + "0" * 400])
def test_thresholds_must_be_finite(image_folder: Path, tmp_path: Path, capsys, value: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[thresholds]\nmin_accuracy = {value}\n")
    assert run_cli("--model", TINY, "--config", config, data=image_folder, out=tmp_path / "out") == 2
    assert "must be a finite number" in one_line(capsys)


def test_a_failed_move_puts_the_previous_report_back(previous_report, image_folder: Path, monkeypatch,
                                                     capsys) -> None:
    out, before = previous_report
    import nnviz_report.output as output

    real_replace = os.replace
    moves = []

    def flaky(src: Any, dst: Any) -> None:
        moves.append(dst)
        if Path(dst) == out / "report.md" and Path(src).parent.name != ".previous":
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(output.os, "replace", flaky)
    assert run_cli("--model", TINY, data=image_folder, out=out, formats="json,md") == 2
    assert "cannot move the report into" in one_line(capsys)
    monkeypatch.undo()
    assert snapshot(out) == before  # report.json was already replaced, and is back


def test_older_report_files_are_named_on_stderr(previous_report, image_folder: Path, capsys) -> None:
    out, _ = previous_report
    capsys.readouterr()
    assert run_cli("--model", TINY, data=image_folder, out=out, formats="json") == 0
    err = capsys.readouterr().err
    assert err == (f"nnviz-report: note: report.md in {out} is left from an earlier run, not from this one; "
                   "delete them or add their formats to --format\n")
