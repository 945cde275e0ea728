"""What importing the pipeline costs: the plotting stack, the PDF stack and torchvision load only
when a figure, a PDF or a torchvision model needs them (each is a second or more of start-up)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_importing_the_pipeline_loads_no_plotting_pdf_or_torchvision_stack() -> None:
    code = ("import sys; import nnviz_report.pipeline; "
            "heavy = [m for m in ('seaborn', 'scipy', 'pandas', 'weasyprint', 'torchvision') if m in sys.modules]; "
            "assert not heavy, heavy")
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_torchvision_version_without_importing_it_is_its_own() -> None:
    code = ("import sys; from nnviz_report.pipeline import torchvision_version; "
            "read = torchvision_version(); assert 'torchvision' not in sys.modules; "
            "import torchvision; assert read == torchvision.__version__, (read, torchvision.__version__)")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
