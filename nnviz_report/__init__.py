"""nnviz_report: a static report of what happens inside a PyTorch image classifier."""

from __future__ import annotations

__version__ = "0.1.0"
