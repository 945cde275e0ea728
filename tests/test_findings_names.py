"""A finding about a root-level parameter names the parameter, not "whole model", and marks its row."""

from __future__ import annotations

import torch

from nnviz_report.capture import run_capture
from nnviz_report.checks import CheckInputs, Thresholds, run_checks
from nnviz_report.sections.activations import layer_measurements
from nnviz_report.sections.anchors import Anchors
from nnviz_report.sections.gradients import param_measurements, param_stats
from nnviz_report.sections.summary import performance
from tests.fixtures.vit_models import IdleClassToken


def test_root_level_parameter_finding_names_the_parameter() -> None:
    torch.manual_seed(0)
    model = IdleClassToken().eval()
    x, y = torch.randn(12, 3, 32, 32), torch.arange(12) % 10
    result = run_capture(model, x, y, batch_size=12, device=torch.device("cpu"), showcase_positions=(0,))
    anchors = Anchors()
    perf = performance(result.logits, result.losses, y.numpy())
    params = param_measurements(result.params, anchors)
    inputs = CheckInputs(layer_measurements(result.layers, anchors), params, perf, tuple(str(c) for c in range(10)))
    findings = run_checks(inputs, Thresholds()).findings
    vanishing = [f for f in findings if f.check == "vanishing-gradient"]
    assert [f.layer for f in vanishing] == ["cls_token"]
    rows = {row.name: row.severity for row in param_stats(params, findings)}
    assert rows["cls_token"] == "warn" and rows["head.weight"] == "pass"
