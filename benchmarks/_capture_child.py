"""One round of the capture benchmark in a fresh process: the bare forward+backward first, under
glibc's allocator as a plain script gets it, then the capture, each after a warm-up batch. Prints
one JSON line {"bare_s", "capture_s"}.

A process of its own per round, the bare pass first: the allocator's state is part of what is
measured, and a bare pass run after a capture in the same process inherited it (once the capture
fixed glibc's mmap threshold for the rest of its process, a bare pass after it took 4.0 s instead
of 3.2–3.5 for resnet20 at 1000 images, which flattered the ratio). The capture now runs on a
thread of its own (nnviz_report.own_arena), with an arena of its own.

Run by benchmarks/run.py as ``python benchmarks/_capture_child.py JSON_SETTINGS``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    options = json.loads(sys.argv[1])
    import torch

    if options.get("threads"):
        torch.set_num_threads(options["threads"])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import BATCH, bare_pass, capture_pass, load_inputs

    model, x, y = load_inputs(Path(options["data"]), options["per_class"], options["model"])
    timings = {}
    for name, run in (("bare_s", bare_pass), ("capture_s", capture_pass)):
        run(model, x[:BATCH], y[:BATCH])  # warm-up: kernels, lazy imports, the allocator's first blocks
        start = time.perf_counter()
        run(model, x, y)
        timings[name] = time.perf_counter() - start
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
