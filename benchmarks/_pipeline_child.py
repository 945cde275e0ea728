"""One whole report run in a fresh process, timed per stage by the pipeline itself.

Run by benchmarks/run.py as ``python benchmarks/_pipeline_child.py JSON_SETTINGS``; prints one JSON
line: total and per-stage wall times, the process's peak RSS, and the sizes of the files written.

The stage times come from ``nnviz_report.progress.STAGE_LISTENERS``: the pipeline's Progress
reports every stage it announces ("loading data", "capture", "figures", "saliency", "rendering PDF",
…) with its duration when the next one begins. Stages are contiguous, so every second of
``pipeline.run`` lands in a stage under the label the pipeline gives it; "other" is only what runs
before the first announcement and after the last (output-folder checks, the final moves). Nothing
here wraps pipeline functions by name, so renaming or splitting them cannot hide time.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import sys
import time
from pathlib import Path


def peak_rss_kib() -> int:
    """This process's peak resident memory: VmHWM, the high-water mark of its own address space.
    Not ``ru_maxrss``: Linux carries the parent's resident size at the fork over the exec into it,
    so a report run from a large harness process (after the capture section) showed the harness's
    946 MB for 100 images and for 5000 alike."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def main() -> None:
    options = json.loads(sys.argv[1])
    started = time.perf_counter()
    if options.get("threads"):
        import torch

        torch.set_num_threads(options["threads"])
    from nnviz_report import pipeline
    from nnviz_report.config import OutputFormat, ReportSettings
    from nnviz_report.progress import STAGE_LISTENERS

    imported = time.perf_counter() - started
    stages: dict[str, float] = {}
    STAGE_LISTENERS.append(lambda label, seconds: stages.__setitem__(label, stages.get(label, 0.0) + seconds))
    out_dir = Path(options["out_dir"])
    settings = ReportSettings(
        model=options["model"], data=options["data"], per_class=options["per_class"], out_dir=out_dir,
        formats=OutputFormat.parse_list(options.get("formats", "html,pdf,json,md")), progress=False,
        device=options.get("device", "cpu"),
    )
    start = time.perf_counter()
    result = pipeline.run(settings)
    total = time.perf_counter() - start
    stages["other"] = max(0.0, total - sum(stages.values()))
    sizes = {kind: path.stat().st_size for kind, path in result.paths.items()}
    peak_kb = peak_rss_kib()
    # The largest of the report's forked children (charts, PDF; nnviz_report.background), all reaped
    # by now; their pages are mostly the parent's, shared copy-on-write, but counted in full here.
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "total_s": total, "import_s": imported, "stages": stages,
        "peak_rss_bytes": peak_kb * 1024, "child_peak_rss_bytes": child_kb * 1024,
        "sizes": sizes, "samples": result.report.sample.count,
    }))


if __name__ == "__main__":
    main()
    # Ended the way the console script ends a report (nnviz_report.cli.console_main): atexit
    # handlers, flushed streams, no interpreter teardown. The bare process exits as a plain script.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    os._exit(0)
