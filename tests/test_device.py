"""--device cuda: the settings that make a GPU run give the same bytes twice and full float32
numbers. Checked here without a GPU (torch reports one); the runs on an H200 that motivated them
are in docs/performance.md."""

from __future__ import annotations

import os

import pytest
import torch

from nnviz_report import pipeline


@pytest.fixture
def restored_backend_flags():
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
     torch.backends.cuda.matmul.allow_tf32) = saved[:4]
    torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])
    if saved[6] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[6]


def test_cuda_runs_deterministic_float32(monkeypatch, restored_backend_flags) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = torch.backends.cudnn.allow_tf32 = True
    torch.use_deterministic_algorithms(False)

    assert pipeline.resolve_device("cuda:0") == torch.device("cuda:0")

    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_cpu_runs_leave_the_cuda_settings_alone(restored_backend_flags) -> None:
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    assert pipeline.resolve_device("cpu") == torch.device("cpu")
    assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
