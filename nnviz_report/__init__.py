"""nnviz_report: a static report of what happens inside a PyTorch image classifier."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = ["NNVizError", "OutputFormat", "ReportResult", "ReportSettings", "Severity", "__version__", "generate_report"]

if TYPE_CHECKING:
    from .config import OutputFormat, ReportSettings, Severity
    from .errors import NNVizError
    from .pipeline import ReportResult, generate_report

_LAZY = {
    "OutputFormat": "config", "ReportSettings": "config", "Severity": "config", "NNVizError": "errors",
    "ReportResult": "pipeline", "generate_report": "pipeline",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import nnviz_report.render...` does not pull in torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'nnviz_report' has no attribute {name!r}")
