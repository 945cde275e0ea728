"""One whole report run in a fresh process, timed per stage from outside the pipeline.

Run by benchmarks/run.py as ``python benchmarks/_pipeline_child.py JSON_SETTINGS``; prints one JSON
line: total and per-stage wall times, the process's peak RSS, and the sizes of the files written.

The stages are timed by wrapping, in this process only, the functions ``pipeline.py`` calls for
each stage (the pipeline itself is not changed): load_sample/load_model (load), capture_sample
(capture), statistics (statistics and checks), every ``*_section`` function plus weight_tensors and
showcase (figures and sections), render_html (HTML), render_pdf (PDF), render_json/render_markdown
(JSON+MD). Times are exclusive: a wrapped function called inside another counts once. Whatever
the wrappers do not cover (output-folder moves, the Report dataclass) is reported as "other".
"""

from __future__ import annotations

import functools
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGE_OF = {
    "load_sample": "load",
    "load_model": "load",
    "capture_sample": "capture",
    "statistics": "statistics",
    "weight_tensors": "figures",
    "showcase": "figures",
    "render_html": "HTML",
    "render_pdf": "PDF",
    "render_json": "JSON+MD",
    "render_markdown": "JSON+MD",
}
STAGES = ("load", "capture", "statistics", "figures", "HTML", "PDF", "JSON+MD")


class StageClock:
    def __init__(self) -> None:
        self.by_function: dict[str, float] = {}
        self._stack: list[list[float]] = []  # [start, time spent in nested wrapped calls]

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                inclusive = time.perf_counter() - frame[0]
                self.by_function[name] = self.by_function.get(name, 0.0) + inclusive - frame[1]
                if self._stack:
                    self._stack[-1][1] += inclusive

        return timed

    def stages(self) -> dict[str, float]:
        totals = dict.fromkeys(STAGES, 0.0)
        for name, seconds in self.by_function.items():
            totals[STAGE_OF.get(name, "figures")] += seconds
        return totals


def install(clock: StageClock) -> None:
    from nnviz_report import pipeline
    from nnviz_report.render import html, json_record, markdown, pdf

    for name in list(vars(pipeline)):
        if name in STAGE_OF or name.endswith("_section"):
            value = getattr(pipeline, name)
            if callable(value):
                setattr(pipeline, name, clock.wrap(name, value))
    # write_outputs imports these at call time, so wrapping the module attributes is enough.
    for module, name in ((html, "render_html"), (pdf, "render_pdf"), (json_record, "render_json"),
                         (markdown, "render_markdown")):
        setattr(module, name, clock.wrap(name, getattr(module, name)))


def main() -> None:
    options = json.loads(sys.argv[1])
    started = time.perf_counter()
    if options.get("threads"):
        import torch

        torch.set_num_threads(options["threads"])
    from nnviz_report import pipeline
    from nnviz_report.config import OutputFormat, ReportSettings

    imported = time.perf_counter() - started
    clock = StageClock()
    install(clock)
    out_dir = Path(options["out_dir"])
    settings = ReportSettings(
        model=options["model"], data=options["data"], per_class=options["per_class"], out_dir=out_dir,
        formats=OutputFormat.parse_list(options.get("formats", "html,pdf,json,md")), progress=False,
    )
    start = time.perf_counter()
    result = pipeline.run(settings)
    total = time.perf_counter() - start
    stages = clock.stages()
    stages["other"] = max(0.0, total - sum(stages.values()))
    sizes = {kind: path.stat().st_size for kind, path in result.paths.items()}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "total_s": total, "import_s": imported, "stages": stages, "functions": clock.by_function,
        "peak_rss_bytes": peak_kb * 1024, "sizes": sizes, "samples": result.report.sample.count,
    }))


if __name__ == "__main__":
    main()
