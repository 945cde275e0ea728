"""Stage timing: the pipeline reports every stage it runs, with its duration, to listeners."""

from __future__ import annotations

import time
from pathlib import Path

from nnviz_report.config import OutputFormat
from nnviz_report.pipeline import generate_report
from nnviz_report.progress import STAGE_LISTENERS, Progress


def test_stages_are_contiguous_and_each_is_reported_once_it_ends() -> None:
    seen: list[tuple[str, float]] = []
    STAGE_LISTENERS.append(lambda label, seconds: seen.append((label, seconds)))
    try:
        progress = Progress(enabled=False)
        progress.stage("first")
        time.sleep(0.05)
        assert seen == []  # a stage is reported when it ends, not when it begins
        with progress.bar("second", total=2, unit="img") as advance:
            advance(2)
            time.sleep(0.02)
        progress.close()
        progress.close()  # nothing left under way: nothing more to report
    finally:
        STAGE_LISTENERS.pop()
    assert [label for label, _ in seen] == ["first", "second"]
    assert seen[0][1] >= 0.05 and seen[1][1] >= 0.02


def test_a_report_run_accounts_for_its_time_stage_by_stage(image_folder: Path, tmp_path: Path) -> None:
    stages: dict[str, float] = {}
    STAGE_LISTENERS.append(lambda label, seconds: stages.__setitem__(label, stages.get(label, 0.0) + seconds))
    start = time.perf_counter()
    try:
        generate_report(model="tests.fixtures.models:tiny_cnn", data=str(image_folder), per_class=2,
                        formats=(OutputFormat.HTML, OutputFormat.JSON, OutputFormat.MARKDOWN),
                        out_dir=tmp_path / "out", progress=False)
    finally:
        STAGE_LISTENERS.pop()
    total = time.perf_counter() - start
    assert list(stages) == ["loading data", "loading model", "weight statistics", "capture", "slices",
                            "robustness probes", "saliency", "figures", "statistics and checks", "flow diagram",
                            "tables", "rendering HTML", "rendering JSON", "rendering Markdown"]
    # Only the output-folder checks before the first stage and the final moves after the last are
    # outside every stage.
    assert sum(stages.values()) > 0.9 * total
