"""The bare process a report is measured against, in a fresh process: import torch, read the same
sample images, build the same model and run one forward+backward over the sample in the report's
batches (eval mode, mean cross-entropy), on the report's device. Prints one JSON line with its own timings.

Run by benchmarks/run.py as ``python benchmarks/_bare_child.py JSON_SETTINGS``.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    options = json.loads(sys.argv[1])
    started = time.perf_counter()
    import torch
    from torch import nn

    if options.get("threads"):
        torch.set_num_threads(options["threads"])
    from nnviz_report.data import load_sample, normalise
    from nnviz_report.models import load_model

    imported = time.perf_counter() - started
    device = torch.device(options.get("device", "cpu"))
    sample = load_sample(options["data"], per_class=options["per_class"])
    model = load_model(options["model"]).module.to(device)
    loaded = time.perf_counter() - started
    model.eval()
    x, y = normalise(sample.images), sample.labels
    batch = options.get("batch", 100)
    for start in range(0, len(x), batch):
        logits = model(x[start:start + batch].to(device))
        losses = nn.functional.cross_entropy(logits.float(), y[start:start + batch].to(device), reduction="none")
        (losses.sum() / len(x)).backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the work done, not only queued
    total = time.perf_counter() - started
    print(json.dumps({"import_s": imported, "load_s": loaded - imported, "forward_backward_s": total - loaded,
                      "total_s": total, "samples": len(x)}))


if __name__ == "__main__":
    main()
