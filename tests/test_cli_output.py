"""What a user reads: help with defaults, examples and exit codes; the command list of a bare
`nnviz-report`; hints for a factory that does not import; progress lines in a log and a bar in a
terminal; the closing summary, checked against report.json."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from nnviz_report import progress as progress_module
from nnviz_report.cli import main
from nnviz_report.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
TINY = "tests.fixtures.models:tiny_cnn"
LOG_LINE = re.compile(r"^nnviz-report: \[\d\d:\d\d:\d\d \+\d+\.\ds\] (.*)$")


def help_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    return capsys.readouterr().out


def test_report_help_shows_defaults_examples_exit_codes_and_readme(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one line per option
    text = help_text(["report", "--help"], capsys)
    options: dict[str, str] = {}  # "--seed SEED" → its help, which argparse may start on the next line
    for line in text.split("\n\n")[2].splitlines():  # the options block, after usage and description
        if line.startswith("  -"):
            key = line.split("  ")[1].strip()
            options[key] = line.strip()
        elif line.startswith("      "):
            options[key] += " " + line.strip()
    for option, default in [("-o OUT_DIR, --out OUT_DIR", "nnviz-report"), ("--seed SEED", "0"),
                            ("--batch-size N", "100"), ("--device DEVICE", "cpu"), ("--per-class K", "10"),
                            ("--format LIST", "html,pdf,json,md"), ("--showcase N", "4"),
                            ("--graph-direction {TB,LR}", "TB")]:
        assert options[option].endswith(f"(default: {default})"), option
    assert "(default: False)" not in text and "(default: None)" not in text  # flags and unset options stay bare
    assert "nnviz-report report --model lenet --data DATA --per-class 2 -o out/lenet" in text
    assert "randomly initialised" in text
    for code in ("0 ", "1 ", "2 ", "3 ", "130 ", "143 "):
        assert re.search(rf"^  {code}|; {code}terminated", text, re.MULTILINE), code
    assert "README" in text


def test_top_level_help_lists_commands_and_exit_codes(capsys) -> None:
    text = help_text(["--help"], capsys)
    assert re.search(r"^\s+report\s+build a report", text, re.MULTILINE)
    assert re.search(r"^\s+compare\s+compare two checkpoints", text, re.MULTILINE)
    assert "exit codes:" in text and "README" in text


def test_bare_command_lists_the_commands_and_exits_2(capsys) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "required" not in err
    assert re.search(r"^\s+report\s+build a report for one model$", err, re.MULTILINE)
    assert re.search(r"^\s+compare\s+compare two checkpoints", err, re.MULTILINE)
    assert "nnviz-report COMMAND --help" in err


# ---- factories that do not import ----------------------------------------------------------

def _error_for(model: str, image_folder: Path, tmp_path: Path, capsys) -> str:
    code = main(["report", "--quiet", "--model", model, "--data", str(image_folder), "--per-class", "2",
                 "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    return err


def test_missing_factory_module_says_install_or_pythonpath(image_folder: Path, tmp_path: Path, capsys) -> None:
    err = _error_for("no_such_pkg_xyz.models:build", image_folder, tmp_path, capsys)
    assert "cannot import 'no_such_pkg_xyz.models'" in err
    assert "is it installed in this Python" in err and "PYTHONPATH" in err


def test_factory_in_the_current_folder_says_pythonpath_dot(image_folder: Path, tmp_path: Path, capsys,
                                                          monkeypatch) -> None:
    # The `nnviz-report` console script does not put the current folder on sys.path.
    (tmp_path / "here_models_xyz.py").write_text("def build():\n    raise AssertionError\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    err = _error_for("here_models_xyz:build", image_folder, tmp_path, capsys)
    assert "here_models_xyz is in the current folder" in err and "PYTHONPATH=." in err


def test_factory_whose_dependency_is_missing_names_the_dependency(image_folder: Path, tmp_path: Path, capsys,
                                                                 monkeypatch) -> None:
    (tmp_path / "needs_dep_xyz.py").write_text("import not_installed_dep_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = _error_for("needs_dep_xyz:build", image_folder, tmp_path, capsys)
    assert "needs_dep_xyz needs 'not_installed_dep_xyz', which is not installed" in err


def test_factory_that_raises_on_import_points_at_the_traceback(image_folder: Path, tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    (tmp_path / "broken_xyz.py").write_text("raise ValueError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = _error_for("broken_xyz:build", image_folder, tmp_path, capsys)
    assert "broken on purpose" in err and "python -c 'import broken_xyz'" in err


# ---- progress ------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_are_timestamped_with_seconds_since_start() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(stream=stream, terminal=False, clock=clock)
    progress.stage("loading data")
    clock.now += 2.25
    progress.stage("loading model")
    lines = stream.getvalue().splitlines()
    assert [LOG_LINE.match(line).group(1) for line in lines] == ["loading data", "loading model"]  # type: ignore[union-attr]
    assert "+0.0s]" in lines[0] and "+2.2s]" in lines[1]


def test_log_capture_lines_stay_few_but_show_the_run_is_alive() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(stream=stream, terminal=False, clock=clock)
    with progress.bar("capture", total=1000, unit="img") as advance:
        for _ in range(10):  # ten batches of 100, 4 s each: a line at most every LOG_INTERVAL_S
            clock.now += 4.0
            advance(100)
    texts = [LOG_LINE.match(line).group(1) for line in stream.getvalue().splitlines()]  # type: ignore[union-attr]
    assert texts[0] == "capture: 0/1000 img"
    assert texts[-1] == "capture: 1000/1000 img in 40.0s"
    middle = texts[1:-1]
    assert middle == ["capture: 300/1000 img", "capture: 600/1000 img", "capture: 900/1000 img"]
    assert progress_module.LOG_INTERVAL_S == 10.0


def test_terminal_bar_redraws_at_every_batch() -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream, terminal=True)
    with progress.bar("capture", total=30, unit="img") as advance:
        for _ in range(3):
            advance(10)  # faster than tqdm's default 0.1 s redraw interval
    shown = stream.getvalue()
    for done in ("10/30", "20/30", "30/30"):
        assert done in shown


def test_terminal_stage_line_ends_with_its_duration() -> None:
    stream = io.StringIO()
    with Progress(stream=stream, terminal=True) as progress:
        progress.stage("rendering PDF")
        progress.stage("next")
    assert re.search(r"nnviz-report: rendering PDF: \d+\.\ds", stream.getvalue())
    assert re.search(r"nnviz-report: next: \d+\.\ds", stream.getvalue())  # closed by the context


def test_names_cannot_inject_escape_sequences_or_split_lines() -> None:
    stream = io.StringIO()
    Progress(stream=stream, terminal=False).note("fail dead-channels at body.\x1b[2Jx\nfake line")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("fail dead-channels at body.?[2Jx?fake line")


def test_disabled_progress_prints_nothing() -> None:
    stream = io.StringIO()
    progress = Progress(enabled=False, stream=stream, terminal=False)
    progress.stage("loading data")
    with progress.bar("capture", total=3, unit="img") as advance:
        advance(3)
    progress.note("done")
    assert stream.getvalue() == ""


# ---- the closing summary -------------------------------------------------------------------

def _expected_summary(record: dict) -> tuple[str, Counter]:
    labels, predictions = record["performance"]["labels"], record["performance"]["predictions"]
    correct = sum(int(t == p) for t, p in zip(labels, predictions, strict=True))
    # Wilson 95 % bounds in closed form, independent of the package's helper
    n, z = len(labels), 1.959963984540054
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    accuracy = (f"{100 * p:.1f}% [95% {100 * (centre - half):.1f}%–{100 * (centre + half):.1f}%] "
                f"({correct}/{n} images)")
    return accuracy, Counter(f["severity"] for f in record["findings"])


def test_closing_summary_in_process(image_folder: Path, trained_tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["report", "--model", TINY, "--weights", str(trained_tiny), "--data", str(image_folder),
                 "--per-class", "2", "--format", "json", "-o", str(out), "--fail-on", "fail"]) == 0
    err = capsys.readouterr().err
    record = json.loads((out / "report.json").read_text())
    accuracy, counts = _expected_summary(record)
    texts = [LOG_LINE.match(line).group(1) for line in err.splitlines()]  # type: ignore[union-attr]
    status = "FAIL" if counts["fail"] else "WARN" if counts["warn"] else "INFO" if counts["info"] else "PASS"
    assert re.fullmatch(rf"done in \d+\.\ds: status {status} · accuracy {re.escape(accuracy)} · "
                        rf"findings: {counts['fail']} fail, {counts['warn']} warn, {counts['info']} info", texts[-3])
    assert texts[-2] == f"files in {out}: report.json"
    assert texts[-1] == "exit 0: no finding at or above --fail-on fail"


def test_quiet_prints_nothing(image_folder: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", "-q", "--model", TINY, "--data", str(image_folder), "--per-class", "1", "--format",
                 "json", "-o", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_ci_log_has_stage_lines_and_names_the_findings_behind_exit_1(image_folder: Path, tmp_path: Path) -> None:
    """Through a real process with stderr to a pipe, as in CI: every line timestamped, the
    first before torch is loaded, and a closing summary that agrees with report.json."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "nnviz_report.cli", "report", "--model", "tests.fixtures.models:dead_relu_net",
         "--data", str(image_folder), "--per-class", "2", "--format", "json,md", "--fail-on", "warn", "-o", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), proc.stderr
    texts = [LOG_LINE.match(line).group(1) for line in lines]  # type: ignore[union-attr]
    assert texts[0] == f"report tests.fixtures.models:dead_relu_net on {image_folder} (2 per class) into {out}"
    assert texts[1] == "loading PyTorch"
    for stage in ("loading data", "loading model", "statistics and checks", "figures"):
        assert stage in texts
    assert any(t.startswith("capture: 20/20 img in ") for t in texts)

    record = json.loads((out / "report.json").read_text())
    accuracy, counts = _expected_summary(record)
    assert f"accuracy {accuracy}" in texts[-3]
    assert f"findings: {counts['fail']} fail, {counts['warn']} warn, {counts['info']} info" in texts[-3]
    assert texts[-2] == f"files in {out}: report.json, report.md"
    causes = [f for f in record["findings"] if f["severity"] in ("warn", "fail")]
    assert causes
    noun = "finding" if len(causes) == 1 else "findings"
    assert texts[-1].startswith(f"exit 1: {len(causes)} {noun} at or above --fail-on warn: ")
    for finding in causes[:5]:
        assert f"{finding['severity']} {finding['check']}" in texts[-1]
