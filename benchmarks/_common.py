"""Helpers shared by the benchmark sections: the data set, the models, and timing."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nnviz_report"


def cifar_test_split(explicit: str | None) -> Path:
    """The CIFAR-10 JPEG test split (ImageFolder layout, 1000 images per class): ``--data``, else the
    copy ``make report`` extracts into the cache, else the archive beside the checkout, extracted now."""
    if explicit:
        path = Path(explicit).expanduser()
        if not (path / "airplane").is_dir():
            sys.exit(f"benchmarks: --data {path} is not an ImageFolder directory with CIFAR-10 class folders")
        return path
    cached = cache_dir() / "cifar10-jpg" / "test"
    if (cached / "truck").is_dir():
        return cached
    if not ARCHIVE.exists():
        sys.exit(f"benchmarks: no CIFAR-10 JPEG test split in {cached} and no archive at {ARCHIVE}; pass --data DIR")
    print(f"extracting the test split of {ARCHIVE} into {cached.parent} …", flush=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(ARCHIVE) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("test/")]
        tar.extractall(cached.parent, members=members, filter="data")
    return cached


def resnet20_spec() -> str:
    """The built-in resnet20 with its shipped weights when the checkout has them; otherwise the same
    architecture freshly initialised (timings and sizes hardly depend on the weights' values)."""
    weights = ROOT / "nnviz_report" / "weights" / "resnet20.pt"
    return "resnet20" if weights.exists() else "nnviz_report.zoo:resnet20"


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Each function ``repeats`` times, alternating order every round (ABBA…) so a drift in machine
    load falls on both sides; returns the wall times per function."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(timed(fns[name]))
    return times


def machine() -> str:
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} logical CPUs, load average {load:.1f} at start"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def fmt_mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.2f} MB"
