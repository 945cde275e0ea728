"""The real pipeline on the real CIFAR-10 JPEG test split (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnviz_report.cli import main


@pytest.mark.slow
def test_resnet20_report_on_real_cifar10(cifar10_jpg: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["report", "--quiet", "--model", "resnet20", "--data", str(cifar10_jpg), "--per-class", "5",
                 "--format", "html,pdf,json,md", "-o", str(out)]) == 0
    record = json.loads((out / "report.json").read_text())
    assert record["sample"]["count"] == 50
    assert record["model"]["checkpoint_name"] == "resnet20.pt"
    # the shipped weights are trained: far above chance on real images
    assert record["performance"]["accuracy"] >= 0.6
    assert (out / "report.pdf").stat().st_size > 10_000
