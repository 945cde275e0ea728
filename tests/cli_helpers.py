"""Small helpers shared by the CLI-level tests: run the report command in-process, and read
its one-line errors and its output folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from nnviz_report.cli import main

TINY = "tests.fixtures.models:tiny_cnn"
HOSTILE = "tests.fixtures.hostile_models"
CPU = torch.device("cpu")
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def run_cli(*args: str | Path) -> int:
    return main(["report", "--quiet", *map(str, args)])


def one_line_error(capsys: pytest.CaptureFixture[str], pattern: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("nnviz-report: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), f"{pattern!r} not in {err!r}"
    return err


def staging_leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.name.startswith(".nnviz-report-")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
