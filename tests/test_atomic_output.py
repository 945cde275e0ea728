"""Nothing half-written: a failed, interrupted or crashing run leaves the previous report as it
was and no partial file or staging folder behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from nnviz_report.errors import OutputError
from tests.cli_helpers import TINY, run_cli, snapshot, staging_leftovers


@pytest.fixture()
def existing_report(image_folder: Path, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "out"
    assert run_cli("--model", TINY, "--data", image_folder, "--per-class", "1", "--format", "html,json,md",
                   "-o", out) == 0
    (out / "notes.txt").write_text("the user's own file")
    return out, snapshot(out)


RENDER_FAILURES = {
    "bad input": ("nnviz_report.render.markdown.render_markdown", OutputError("cannot write report.md here"), 2),
    "Ctrl-C while rendering": ("nnviz_report.render.json_record.render_json", signal.SIGINT, 130),
}


@pytest.mark.parametrize("failure", list(RENDER_FAILURES))
def test_failed_render_leaves_the_existing_report_unchanged(existing_report, image_folder: Path, capsys,
                                                            monkeypatch, failure: str) -> None:
    out, before = existing_report
    target, error, expected = RENDER_FAILURES[failure]

    def fail(*_args: Any, **_kwargs: Any) -> str:
        if isinstance(error, signal.Signals):
            os.kill(os.getpid(), error)  # a real Ctrl-C: the handler raises KeyboardInterrupt here
        raise error

    monkeypatch.setattr(target, fail)
    capsys.readouterr()
    # md is rendered after HTML and JSON, json after HTML: earlier files already sit in the staging folder
    assert run_cli("--model", TINY, "--data", image_folder, "--per-class", "2", "--format", "html,json,md",
                   "-o", out) == expected
    assert snapshot(out) == before
    assert not staging_leftovers(out, out.parent)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("interrupted; no files were written" in err if expected == 130 else True)


@pytest.mark.parametrize("bad", [["--model", "tests.fixtures.models:raises_in_forward"], ["--weights", "/nope.pt"]])
def test_failed_run_leaves_the_existing_report_unchanged(existing_report, image_folder: Path, bad) -> None:
    out, before = existing_report
    options = {"--model": TINY, "--data": str(image_folder), "-o": str(out)} | dict([bad])
    assert run_cli(*[x for pair in options.items() for x in pair]) == 2
    assert snapshot(out) == before and not staging_leftovers(out, out.parent)


def test_ctrl_c_into_a_new_folder_leaves_nothing(image_folder: Path, tmp_path: Path, monkeypatch) -> None:
    def interrupt(*_args: Any, **_kwargs: Any) -> bytes:
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal handler did not raise")

    monkeypatch.setattr("nnviz_report.render.pdf.render_pdf", interrupt)
    out = tmp_path / "new" / "out"
    assert run_cli("--model", TINY, "--data", image_folder, "--per-class", "1", "--format", "html,pdf",
                   "-o", out) == 130
    assert not out.exists() or not any(out.iterdir())
    assert not staging_leftovers(tmp_path / "new", out)


def test_an_unexpected_error_still_leaves_nothing_behind(existing_report, image_folder: Path, monkeypatch,
                                                         capsys) -> None:
    # A bug is not the user's fault: exit 3 with one line, and the output is still all-or-nothing.
    out, before = existing_report

    def bug(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("a bug in a renderer")

    monkeypatch.setattr("nnviz_report.render.markdown.render_markdown", bug)
    capsys.readouterr()
    assert run_cli("--model", TINY, "--data", image_folder, "--per-class", "1", "--format", "html,md",
                   "-o", out) == 3
    assert capsys.readouterr().err == ("nnviz-report: internal error: RuntimeError: a bug in a renderer — rerun "
                                       "with --debug and report it\n")
    assert snapshot(out) == before and not staging_leftovers(out, out.parent)
