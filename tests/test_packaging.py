"""The wheel carries the templates, the CSS and the trained weights, and they load the same
way (importlib.resources) from it as from the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_templates_and_weights(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("nnviz_report-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*") if p.is_file()}
    for template in templates:
        assert f"nnviz_report/{template}" in names, template
    for weights in ("lenet.pt", "resnet20.pt"):
        assert f"nnviz_report/weights/{weights}" in names
    assert "nnviz_report/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nnviz-report = nnviz_report.cli:console_main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_templates_resolve_through_the_package() -> None:
    from nnviz_report.render.html import builtin_template_dir

    folder = builtin_template_dir()
    assert (folder / "report.html.j2").is_file() and (folder / "report.css").is_file()
    assert folder.resolve() == (ROOT / "templates").resolve()
