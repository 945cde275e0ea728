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


def test_console_script_exit_keeps_code_streams_and_atexit(tmp_path: Path) -> None:
    """console_main skips the interpreter's teardown (os._exit) but not what a caller relies on:
    the exit code, the flushed error line, and atexit handlers (a model's own, say)."""
    marker = tmp_path / "atexit-ran"
    code = ("import atexit, sys; "
            f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran')); "
            f"sys.argv = ['nnviz-report', 'report', '--model', 'lenet', '--data', {str(tmp_path / 'missing')!r}, "
            f"'-o', {str(tmp_path / 'out')!r}]; "
            "from nnviz_report.cli import console_main; console_main(); print('not reached')")
    result = run_python(code)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("nnviz-report: error:") == 1, result.stderr
    assert "not reached" not in result.stdout
    assert marker.read_text() == "ran"


def test_a_report_on_a_built_in_model_loads_neither_the_compiler_nor_seaborn(image_folder: Path,
                                                                            tmp_path: Path) -> None:
    """torch._dynamo (over a second) was imported by the flow diagram's multiply-add counter (torch
    wraps every dispatch mode for the compiler); seaborn, with pandas and scipy (about a second), by
    the two heatmaps. The weight violins, the only seaborn figure left, are drawn in a child process
    (forced here, as on any machine with two cores), so the report's own process needs neither."""
    code = ("import sys; import nnviz_report.background as background; "
            "background.forking_pays = lambda: True; "
            "from nnviz_report.pipeline import generate_report; "
            "from nnviz_report.config import OutputFormat; "
            f"generate_report(model='lenet', data={str(image_folder)!r}, per_class=2, out_dir={str(tmp_path / 'o')!r}, "
            "formats=(OutputFormat.HTML, OutputFormat.JSON), progress=False); "
            "loaded = [m for m in ('torch._dynamo', 'seaborn', 'pandas') if m in sys.modules]; "
            "assert not loaded, loaded")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
