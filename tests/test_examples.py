"""example_reports/ is current: regenerating an example from the shipped weights gives the same
bytes (``make examples`` rewrites them)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "example_reports"
DETERMINISTIC = ("report.html", "report.json", "report.md")


def load_script():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "scripts" / "make_examples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make_examples = load_script()


@pytest.fixture(scope="module")
def test_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not make_examples.ARCHIVE.exists():
        pytest.skip(f"the CIFAR-10 JPEG archive is not at {make_examples.ARCHIVE}")
    from nnviz_report.stats import fused

    if not fused.available():
        # The examples' numbers are the fused kernel's; the torch path differs in the last digits.
        pytest.skip("the capture's C kernel is not built here (no C compiler at install; `make` installs gcc): "
                    "the examples' last digits are the kernel's")
    return make_examples.cifar10_test_split(cache=tmp_path_factory.mktemp("cache"))


def test_examples_fit_the_size_budget() -> None:
    if not EXAMPLES_DIR.exists() or not any(EXAMPLES_DIR.iterdir()):
        pytest.skip("example_reports/ has not been generated (make examples)")
    assert make_examples.folder_size(EXAMPLES_DIR) <= make_examples.SIZE_BUDGET


@pytest.mark.slow
@pytest.mark.parametrize("example", make_examples.EXAMPLES, ids=lambda e: e.name)
def test_example_is_current(example, test_split: Path, tmp_path: Path) -> None:  # noqa: ANN001
    committed = EXAMPLES_DIR / example.name
    if not (committed / "report.json").exists():
        pytest.skip(f"{committed} has not been generated (make examples)")
    recorded = json.loads((committed / "report.json").read_text())["environment"]
    import torch
    import torchvision

    here = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    if any(recorded[k] != v for k, v in here.items()):
        # The reports record the library versions, and float results may differ between them:
        # the examples are only comparable byte for byte under the versions in constraints.txt.
        pytest.skip(f"examples were made with torch {recorded['torch']}, this is {here['torch']} (see constraints.txt)")
    out = make_examples.make_example(example, test_split, tmp_path)
    if out is None:
        pytest.skip(f"what {example.name} needs is not there (shipped weights or the compare module)")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in committed.iterdir())
    for name in DETERMINISTIC:
        assert (out / name).read_bytes() == (committed / name).read_bytes(), (
            f"{committed / name} is out of date: run `make examples`")
    if (out / "report.pdf").read_bytes() != (committed / "report.pdf").read_bytes():
        # The PDF counts only where its bytes are reproducible here (same fonts, same WeasyPrint):
        # when rendering the same HTML again gives the same PDF, the committed one is stale.
        from nnviz_report.render.pdf import render_pdf

        again = render_pdf((out / "report.html").read_text(encoding="utf-8"))
        if again == (out / "report.pdf").read_bytes():
            pytest.fail(f"{committed / 'report.pdf'} is out of date: run `make examples`")


def test_resnet20_example_html_meets_the_size_target() -> None:
    """The performance target for a resnet20 report (README, "Performance"): report.html ≤ 3 MB."""
    html = EXAMPLES_DIR / "resnet20" / "report.html"
    if not html.exists():
        pytest.skip("example_reports/resnet20 has not been generated (make examples)")
    assert html.stat().st_size <= 3_000_000
