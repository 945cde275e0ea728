"""A finding about a root-level parameter names the parameter, not "whole model"."""

from __future__ import annotations

import torch

from nnviz_report.capture import run_capture
from nnviz_report.checks import CheckInputs, Thresholds, run_checks
from nnviz_report.sections.activations import layer_stats
from nnviz_report.sections.anchors import Anchors
from nnviz_report.sections.gradients import param_stats
from nnviz_report.sections.summary import performance
from tests.fixtures.vit_models import IdleClassToken


def test_root_level_parameter_finding_names_the_parameter() -> None:
    torch.manual_seed(0)
    model = IdleClassToken().eval()
    x, y = torch.randn(12, 3, 32, 32), torch.arange(12) % 10
    result = run_capture(model, x, y, batch_size=12, device=torch.device("cpu"), showcase_positions=(0,))
    anchors = Anchors()
    perf = performance(result.logits, result.losses, y.numpy())
    inputs = CheckInputs(layer_stats(result.layers, anchors), param_stats(result.params, anchors), perf,
                         tuple(str(c) for c in range(10)))
    vanishing = [f for f in run_checks(inputs, Thresholds()).findings if f.check == "vanishing-gradient"]
    assert [f.layer for f in vanishing] == ["cls_token"]
