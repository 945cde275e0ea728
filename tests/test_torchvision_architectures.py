"""Architectures nobody here wrote (torchvision's) build complete reports."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import run_cli
from tests.conftest import write_image_folder

TORCHVISION_MODELS = ("resnet18", "vgg11_bn", "mobilenet_v3_small", "densenet121", "efficientnet_b0",
                      "shufflenet_v2_x0_5", "squeezenet1_0", "regnet_x_400mf")


@pytest.mark.slow
def test_torchvision_architectures_build_complete_reports(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", per_class=1)
    timings: dict[str, float] = {}
    for name in TORCHVISION_MODELS:
        out = tmp_path / name
        formats = "json,html" if name == "resnet18" else "json"
        started = time.perf_counter()
        code = run_cli("--model", f"torchvision:{name}", "--data", data, "--per-class", "1", "--batch-size", "10",
                       "--showcase", "1", "--format", formats, "-o", out)
        timings[name] = time.perf_counter() - started
        assert code in (0, 1), name
        record = json.loads((out / "report.json").read_text())
        for section in ("summary", "activations", "gradients", "flow"):
            assert record[section], f"{name}: no {section} section"
        assert record["activations"]["layers"], name
        assert record["gradients"]["params"], name
        assert record["flow"]["graph"]["nodes"], name
        assert record["sample"]["count"] == 10
        assert np.isfinite(record["performance"]["loss"]), name
    assert (tmp_path / "resnet18" / "report.html").stat().st_size > 0
    print("torchvision report timings (s):", {k: round(v, 1) for k, v in timings.items()},
          "total", round(sum(timings.values()), 1))
