"""nnviz_report benchmarks: ratios measured side by side in one run, and where the time goes.

    make bench                       # installs the bench extra, then runs this with the defaults
    .venv/bin/python benchmarks/run.py [--data DIR] [--repeats N] [--only SECTIONS] [--json FILE]

Sections (all by default; --only takes a comma-separated subset):
  process  whole report processes ÷ bare processes (import torch, read the images, one forward+backward):
           torchvision resnet18 at 100 images (full report; html+json), resnet20 JSON at 1000 images,
           torchvision densenet121 at 20 images; with the report's own per-stage times; --device cuda
           runs both sides on the GPU
  capture  capture of every statistic ÷ a bare forward+backward (resnet20, 1000 images, batch 100)
  memory   peak RSS of a whole report run with --per-class 500 ÷ --per-class 10 (fresh processes)
  depth    total time resnet56 ÷ resnet20 against the ratio of their layer counts, per stage
  html     report.html size for resnet20 and torchvision:resnet50
  peers    our artefacts against TensorBoard, torchview, WeightWatcher and pytorch-grad-cam
  probes   calibration and corruption probes ÷ the capture pass (resnet20, 100 images, batch 100)
  profile  cProfile of one capture pass: the top operations by own time (not part of the default)

Times are wall-clock medians of interleaved repeats (A B B A …), so a change in machine load falls
on both sides of a ratio; on a busy machine absolute times mean little, the ratios still hold.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import ROOT, cifar_test_split, fmt_mb, fmt_s, interleaved, machine, median, resnet20_spec  # noqa: E402
from torch import nn  # noqa: E402

SECTIONS = ("process", "capture", "probes", "memory", "depth", "html", "peers")
BATCH = 100
TARGETS = {
    "capture": 1.3,
    "probes": 0.5,
    "memory": 1.15,
    "depth_tolerance": 0.20,
    "html_resnet20_mb": 3.0,
    "html_resnet50_mb": 8.0,
    "peer": 0.5,
}
CHILD = Path(__file__).resolve().parent / "_pipeline_child.py"
BARE_CHILD = Path(__file__).resolve().parent / "_bare_child.py"
CAPTURE_CHILD = Path(__file__).resolve().parent / "_capture_child.py"
THREADS: int | None = None  # --threads, passed on to the report runs
DEVICE = "cpu"  # --device, for the whole processes of the process section


def log(text: str = "") -> None:
    print(text, flush=True)


# ---- 0. whole processes ----------------------------------------------------------------------------

# (what, model, --per-class, formats, target): each report process against a bare process over the same
# model and images; issue 16's targets.
PROCESS_CASES = (
    ("full report ÷ bare process (torchvision resnet18, 100 images)", "torchvision:resnet18", 10,
     "html,pdf,json,md", 2.5),
    ("html+json ÷ bare process (torchvision resnet18, 100 images)", "torchvision:resnet18", 10, "html,json", 1.6),
    ("JSON report ÷ bare process (resnet20, 1000 images)", None, 100, "json", 2.0),
    ("full report ÷ bare process (torchvision densenet121, 20 images)", "torchvision:densenet121", 2,
     "html,pdf,json,md", 3.0),
)


def child_wall(script: Path, options: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Wall time of a fresh Python process from launch to exit, and the JSON line it printed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), json.dumps(options)], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"benchmarks: {script.name} {options.get('model')} failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def bench_process(data: Path, work: Path, repeats: int) -> dict[str, Any]:
    log(f"[process] whole processes, each fresh, on {DEVICE}; report ÷ bare process over the same model and "
        f"images; {repeats} rounds, alternating")
    results = []
    for what, model, per_class, formats, target in PROCESS_CASES:
        spec = model or resnet20_spec()
        base = {"model": spec, "data": str(data), "per_class": per_class, "threads": THREADS, "device": DEVICE}
        report = {**base, "formats": formats, "out_dir": str(work / f"process-{len(results)}")}
        walls: dict[str, list[float]] = {"bare": [], "report": []}
        runs: list[dict[str, Any]] = []
        for r in range(repeats):
            for side in ("bare", "report") if r % 2 == 0 else ("report", "bare"):
                wall, found = child_wall(BARE_CHILD if side == "bare" else CHILD, base if side == "bare" else report)
                walls[side].append(wall)
                if side == "report":
                    runs.append({**found, "wall_s": wall})
        ratio = median(walls["report"]) / median(walls["bare"])
        typical = sorted(runs, key=lambda run: run["wall_s"])[len(runs) // 2]
        log(f"  {what}: report {fmt_s(median(walls['report']))}, bare {fmt_s(median(walls['bare']))}, "
            f"ratio {ratio:.2f} (target ≤ {target}) {verdict(ratio, target)}")
        log("    stages of the median report run: import " + fmt_s(typical["import_s"]) + ", "
            + ", ".join(f"{stage} {fmt_s(seconds)}" for stage, seconds in typical["stages"].items()))
        results.append({"what": what, "device": DEVICE, "model": spec, "per_class": per_class, "formats": formats,
                        "target": target,
                        "bare_s": walls["bare"], "report_s": walls["report"], "ratio": ratio,
                        "met": ratio <= target, "stages": typical["stages"], "import_s": typical["import_s"]})
    return {"cases": results}


def verdict(value: float, target: float) -> str:
    """MET, or MISSED with the distance to the target in absolute and relative terms."""
    if value <= target:
        return "MET"
    return f"MISSED by {value - target:.2f} ({(value / target - 1) * 100:.0f} % over)"


# ---- 1. capture overhead ---------------------------------------------------------------------------

def load_inputs(data: Path, per_class: int, spec: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from nnviz_report.data import load_sample, normalise
    from nnviz_report.models import load_model

    sample = load_sample(str(data), per_class=per_class)
    return load_model(spec).module, normalise(sample.images), sample.labels


def bare_pass(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """What the capture does minus the statistics: eval mode, the same batches, the same loss."""
    model.eval()
    for p in model.parameters():
        p.grad = None
        p.requires_grad_(True)
    count = len(x)
    for start in range(0, count, BATCH):
        logits = model(x[start:start + BATCH])
        losses = nn.functional.cross_entropy(logits.float(), y[start:start + BATCH], reduction="none")
        (losses.sum() / count).backward()
        logits.detach().numpy()
        losses.detach().double().numpy()
    for p in model.parameters():
        p.grad = None


def capture_pass(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    from nnviz_report.capture import choose_showcase, run_capture

    run_capture(model, x, y, batch_size=BATCH, device=torch.device("cpu"), showcase_positions=choose_showcase(y, 4))


def bench_capture(data: Path, repeats: int) -> dict[str, Any]:
    spec = resnet20_spec()
    log(f"[capture] {spec}, 1000 images, batch {BATCH}, eval mode, mean cross-entropy; {repeats} rounds, "
        f"each a fresh process: the bare pass, then the capture (see _capture_child.py)")
    times: dict[str, list[float]] = {"bare": [], "capture": []}
    for _ in range(repeats):
        _wall, found = child_wall(CAPTURE_CHILD, {"model": spec, "data": str(data), "per_class": 100,
                                                  "threads": THREADS})
        times["bare"].append(found["bare_s"])
        times["capture"].append(found["capture_s"])
    ratio = median(times["capture"]) / median(times["bare"])
    pairs = [c / b for c, b in zip(times["capture"], times["bare"], strict=True)]
    for name, label in (("bare", "bare forward+backward"), ("capture", "capture, all stats")):
        runs = ", ".join(fmt_s(t) for t in times[name])
        log(f"  {label:<22} {fmt_s(median(times[name]))}   (runs: {runs})")
    log(f"  ratio {ratio:.2f}  (per round: {', '.join(f'{r:.2f}' for r in pairs)}; target ≤ {TARGETS['capture']})")
    return {"model": spec, "images": 1000, "bare_s": times["bare"], "capture_s": times["capture"], "ratio": ratio,
            "round_ratios": pairs, "met": ratio <= TARGETS["capture"]}


def bench_probes(data: Path, repeats: int) -> dict[str, Any]:
    """The probe stage of a report against the capture pass it follows, on the same 100 images:
    the design's corrupted images, their forward passes and every number of the section (the
    target, #20: ≤ 0.5 × capture); its three figures (reliability diagram, accuracy chart,
    thumbnail row) are drawn by figures/ and timed apart, beside the capture's own figures."""
    from nnviz_report.capture import choose_showcase, run_capture
    from nnviz_report.corruptions import BY_NAME, THUMBNAIL_SEVERITY
    from nnviz_report.data import load_sample, normalise
    from nnviz_report.figures.robustness import corruption_accuracy_figure, reliability_figure
    from nnviz_report.models import load_model
    from nnviz_report.probes import assign_cells, run_probes
    from nnviz_report.sections.robustness import calibration_stats, corruption_result, thumbnails
    from nnviz_report.stats.calibration import softmax

    spec = resnet20_spec()
    sample = load_sample(str(data), per_class=10)
    model = load_model(spec).module
    x, y = normalise(sample.images), sample.labels
    labels = y.numpy()
    kept: dict[str, Any] = {}

    def capture() -> None:
        kept["clean"] = run_capture(model, x, y, batch_size=BATCH, device=torch.device("cpu"),
                                    showcase_positions=choose_showcase(y, 4)).logits

    def probes() -> None:
        cells = assign_cells(y.tolist())
        runs = run_probes(model, sample.images, sample.indices, cells, batch_size=BATCH,
                          device=torch.device("cpu"), seed=0)
        clean_right = softmax(kept["clean"]).argmax(axis=1) == labels
        kept["calibration"] = calibration_stats(kept["clean"], labels, seed=0)
        kept["results"] = [corruption_result(run, labels, clean_right) for run in runs]
        kept["evaluations"] = sum(len(c.positions) for c in cells)

    def figures() -> None:
        cal = kept["calibration"]
        reliability_figure(cal.reliability, cal.ece)
        corruption_accuracy_figure(kept["results"], cal.accuracy)
        thumbnails(sample.images[0].numpy(), int(sample.indices[0]), [BY_NAME[r.corruption] for r in kept["results"]
                                                                       if r.severity == THUMBNAIL_SEVERITY],
                   THUMBNAIL_SEVERITY, seed=0)

    capture()  # warm-up, and the clean logits the probes' numbers need
    probes()
    figures()
    log(f"[probes] {spec}, {len(x)} images ({kept['evaluations']} corrupted evaluations), batch {BATCH}; "
        f"{repeats} rounds")
    times = interleaved({"capture": capture, "probes": probes, "figures": figures}, repeats)
    ratio = median(times["probes"]) / median(times["capture"])
    with_figures = (median(times["probes"]) + median(times["figures"])) / median(times["capture"])
    for name, label in (("capture", "capture"), ("probes", "probes (corrupt, forward, numbers)"),
                        ("figures", "probes' three figures")):
        log(f"  {label:<36} {fmt_s(median(times[name]))}   (runs: {', '.join(fmt_s(t) for t in times[name])})")
    log(f"  ratio {ratio:.2f} (target ≤ {TARGETS['probes']}) {verdict(ratio, TARGETS['probes'])}; "
        f"with the probes' figures {with_figures:.2f}")
    return {"model": spec, "images": len(x), "evaluations": kept["evaluations"], "capture_s": times["capture"],
            "probes_s": times["probes"], "figures_s": times["figures"], "ratio": ratio,
            "ratio_with_figures": with_figures, "met": ratio <= TARGETS["probes"]}


def profile_capture(data: Path) -> dict[str, Any]:
    model, x, y = load_inputs(data, 100, resnet20_spec())
    capture_pass(model, x[:BATCH], y[:BATCH])
    profiler = cProfile.Profile()
    profiler.runcall(capture_pass, model, x, y)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
    log("[profile] one capture pass over 1000 images, top operations by own time")
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    for line in lines[start:]:
        log("  " + line[:150])
    return {"profile": lines[start:]}


# ---- whole report runs in fresh processes -------------------------------------------------------------

def report_run(model: str, data: Path, per_class: int, out_dir: Path,
               formats: str = "html,pdf,json,md") -> dict[str, Any]:
    options = {"model": model, "data": str(data), "per_class": per_class, "out_dir": str(out_dir), "formats": formats,
               "threads": THREADS}
    done = subprocess.run([sys.executable, str(CHILD), json.dumps(options)], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmarks: the report run for {model} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_stages(runs: dict[str, dict[str, Any]]) -> None:
    names = list(runs)
    stages: list[str] = []
    for run in runs.values():  # the labels the pipeline reported, in order of first appearance
        stages += [stage for stage in run["stages"] if stage not in stages]
    log("  " + "stage".ljust(22) + "".join(n.rjust(16) for n in names))
    for stage in stages:
        log("  " + stage.ljust(22) + "".join(fmt_s(runs[n]["stages"].get(stage, 0.0)).rjust(16) for n in names))
    log("  " + "total".ljust(22) + "".join(fmt_s(runs[n]["total_s"]).rjust(16) for n in names))


def bench_memory(data: Path, work: Path) -> dict[str, Any]:
    spec = resnet20_spec()
    log(f"[memory] {spec}, whole report (html,pdf,json,md), each run in a fresh process")
    runs = {}
    for k in (10, 500):
        runs[f"per-class {k}"] = report_run(spec, data, k, work / f"memory-{k}")
        run = runs[f"per-class {k}"]
        log(f"  --per-class {k:<4} peak RSS {fmt_mb(run['peak_rss_bytes'])}"
            f" (largest child process {fmt_mb(run.get('child_peak_rss_bytes', 0))}, pages shared with it counted)"
            f"  ({run['samples']} images, {fmt_s(run['total_s'])})")
    ratio = runs["per-class 500"]["peak_rss_bytes"] / runs["per-class 10"]["peak_rss_bytes"]
    log(f"  ratio {ratio:.3f}  (target ≤ {TARGETS['memory']})")
    print_stages(runs)
    return {"model": spec, "runs": runs, "ratio": ratio, "met": ratio <= TARGETS["memory"]}


def layer_counts(spec: str) -> tuple[int, int]:
    """(leaf modules the capture hooks, Conv2d layers)."""
    from nnviz_report.capture import capturable_layers
    from nnviz_report.models import load_model

    module = load_model(spec).module
    return len(capturable_layers(module)), sum(isinstance(m, nn.Conv2d) for m in module.modules())


def bench_depth(data: Path, work: Path, repeats: int) -> dict[str, Any]:
    specs = {"resnet20": "nnviz_report.zoo:resnet20", "resnet56": "nnviz_report.zoo:resnet56"}
    log(f"[depth] whole report (html,pdf,json,md), --per-class 10, both freshly initialised; {repeats} rounds")
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
    for r in range(repeats):
        for name in specs if r % 2 == 0 else reversed(list(specs)):
            samples[name].append(report_run(specs[name], data, 10, work / f"depth-{name}"))
    runs = {}
    for name, found in samples.items():  # the run with the median total stands for the model
        runs[name] = sorted(found, key=lambda run: run["total_s"])[len(found) // 2]
    counts = {name: layer_counts(spec) for name, spec in specs.items()}
    leaf_ratio = counts["resnet56"][0] / counts["resnet20"][0]
    conv_ratio = counts["resnet56"][1] / counts["resnet20"][1]
    time_ratio = runs["resnet56"]["total_s"] / runs["resnet20"]["total_s"]
    relative = time_ratio / leaf_ratio
    log(f"  layers: leaf modules {counts['resnet20'][0]} → {counts['resnet56'][0]} (×{leaf_ratio:.2f}); "
        f"Conv2d {counts['resnet20'][1]} → {counts['resnet56'][1]} (×{conv_ratio:.2f})")
    log(f"  total time ×{time_ratio:.2f} = {relative:.2f} × the leaf-module ratio (target within ±20 %)")
    print_stages(runs)
    per_stage = {stage: runs["resnet56"]["stages"].get(stage, 0.0) / max(runs["resnet20"]["stages"][stage], 1e-9)
                 for stage in runs["resnet20"]["stages"]}
    log("  per-stage ratio resnet56 ÷ resnet20: " + ", ".join(f"{s} ×{v:.2f}" for s, v in per_stage.items()))
    return {"runs": runs, "all_totals": {n: [s["total_s"] for s in v] for n, v in samples.items()},
            "layers": counts, "leaf_ratio": leaf_ratio, "conv_ratio": conv_ratio, "time_ratio": time_ratio,
            "time_over_layers": relative, "per_stage_ratio": per_stage,
            "met": abs(relative - 1.0) <= TARGETS["depth_tolerance"]}


def html_contents(path: Path) -> dict[str, int]:
    """Bytes of the embedded images by kind, to show where the size goes."""
    import re

    text = path.read_text(encoding="utf-8")
    kinds: dict[str, int] = {"total": len(text.encode("utf-8"))}
    for match in re.finditer(r"data:image/([a-z+]+);base64,([A-Za-z0-9+/=]+)", text):
        kinds[match.group(1)] = kinds.get(match.group(1), 0) + len(match.group(2))
        kinds[f"{match.group(1)} count"] = kinds.get(f"{match.group(1)} count", 0) + 1
    kinds["inline svg"] = sum(len(m.group(0)) for m in re.finditer(r"<svg.*?</svg>", text, flags=re.S))
    return kinds


def bench_html(data: Path, work: Path, depth: dict[str, Any] | None) -> dict[str, Any]:
    log("[html] report.html size, --per-class 10")
    results = {}
    for name, spec, limit in (("resnet20", resnet20_spec(), TARGETS["html_resnet20_mb"]),
                              ("torchvision resnet50", "torchvision:resnet50", TARGETS["html_resnet50_mb"])):
        out = work / f"html-{name.replace(' ', '-')}"
        run = report_run(spec, data, 10, out, formats="html,json")
        contents = html_contents(out / "report.html")
        size = run["sizes"]["html"]
        results[name] = {"spec": spec, "bytes": size, "limit_mb": limit, "met": size <= limit * 1e6,
                         "contents": contents, "total_s": run["total_s"]}
        parts = ", ".join(f"{k} {fmt_mb(v)}" if "count" not in k else f"{k} {v}" for k, v in contents.items()
                          if k != "total")
        log(f"  {name:<22} {fmt_mb(size)}  (limit {limit:.0f} MB)  [{parts}]")
    return results


# ---- 5. peers ---------------------------------------------------------------------------------------

def bench_peers(data: Path, repeats: int) -> dict[str, Any]:
    import _peers

    from nnviz_report.models import load_model
    from nnviz_report.sections.saliency import default_gradcam_layer

    spec = resnet20_spec()
    model, x, y = load_inputs(data, 10, spec)  # the report's default sample: 100 images
    log(f"[peers] {spec}, {len(x)} images, {repeats} rounds each; ratio = ours ÷ peer (target ≤ {TARGETS['peer']})")
    results = []
    tensors = _peers.weights_and_gradients(model, x, y)
    results.append(_peers.histograms(tensors, repeats))
    results.append(_peers.flow(model, x[:2], repeats))
    results.append(_peers.spectra(model, repeats, spec))
    results.append(_peers.spectra(load_model("torchvision:resnet18").module, repeats, "torchvision resnet18"))
    from nnviz_report.capture import choose_showcase, run_capture

    capture = run_capture(model, x, y, batch_size=BATCH, device=torch.device("cpu"),
                          showcase_positions=choose_showcase(y, 4))
    layer = default_gradcam_layer(capture.layers)
    results.append(_peers.grad_cam(model, layer, x, y, repeats))
    for r in results:
        if "skipped" in r:
            log(f"  {r['name']}: skipped — {r['skipped']}")
            continue
        r["met"] = r["ratio"] <= TARGETS["peer"] and r.get("maps_match", True)
        log(f"  {r['name']}\n    ours {fmt_s(r['ours_s'])}, peer {fmt_s(r['peer_s'])}, ratio {r['ratio']:.2f}"
            f"  — {r['note']}")
    return {"model": spec, "comparisons": results}


# ---- main ---------------------------------------------------------------------------------------------

def summary(results: dict[str, Any]) -> None:
    log("\n== summary: every ratio against its target (issue 16) ==")
    rows: list[tuple[str, str, str, str]] = []

    def ratio_row(what: str, value: float, target: float, shown: str | None = None) -> None:
        rows.append((what, shown or f"{value:.2f}", f"≤ {target}", verdict(value, target)))

    for r in results.get("process", {}).get("cases", []):
        ratio_row(r["what"], r["ratio"], r["target"])
    if "capture" in results:
        r = results["capture"]
        ratio_row("capture ÷ bare forward+backward (resnet20, 1000 images)", r["ratio"], TARGETS["capture"])
    if "probes" in results:
        r = results["probes"]
        ratio_row("robustness probes ÷ capture (resnet20, 100 images)", r["ratio"], TARGETS["probes"])
        rows.append(("  the same with the probes' three figures", f"{r['ratio_with_figures']:.2f}", "",
                     "(not a target)"))
    if "memory" in results:
        r = results["memory"]
        ratio_row("peak RSS per-class 500 ÷ 10", r["ratio"], TARGETS["memory"], f"{r['ratio']:.3f}")
    if "depth" in results:
        r = results["depth"]
        off = abs(r["time_over_layers"] - 1.0)
        rows.append(("time resnet56 ÷ resnet20 over the layer ratio", f"{r['time_over_layers']:.2f}",
                     "1 ± 0.20", "MET" if r["met"] else f"MISSED by {off - TARGETS['depth_tolerance']:.2f}"))
    if "html" in results:
        for name, r in results["html"].items():
            ratio_row(f"report.html {name} (MB)", r["bytes"] / 1e6, r["limit_mb"], fmt_mb(r["bytes"]))
    if "peers" in results:
        for r in results["peers"]["comparisons"]:
            if "skipped" in r:
                rows.append((r["name"], "skipped", f"≤ {TARGETS['peer']}", r["skipped"][:40]))
            else:
                ratio_row(r["name"], r["ratio"], TARGETS["peer"])
                if not r.get("maps_match", True):
                    rows[-1] = (*rows[-1][:3], "MISSED: maps differ")
    for what, value, target, outcome in rows:
        log(f"  {what[:66]:<66} {value:>10}  {target:<9} {outcome}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="CIFAR-10 test split in ImageFolder layout (default: the cache, or the archive)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per timing (default 3)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {', '.join(SECTIONS)}, profile")
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument("--threads", type=int, help="torch intra-op threads, here and in the report runs "
                        "(default: torch's choice, one per core)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where the process section's report "
                        "and bare processes run the model (the other sections run on the CPU)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in (*SECTIONS, "profile")]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}")
    data = cifar_test_split(args.data)
    global THREADS, DEVICE
    THREADS, DEVICE = args.threads, args.device
    if DEVICE != "cpu" and not torch.cuda.is_available():
        parser.error(f"--device {DEVICE}: CUDA is not available here")
    if THREADS:
        torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    started = time.perf_counter()
    log(f"nnviz_report benchmarks — {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
        + (f"; process section on {DEVICE} ({torch.cuda.get_device_name(DEVICE)})" if DEVICE != "cpu" else ""))
    log(f"data: {data}\n")
    results: dict[str, Any] = {"machine": machine(), "torch": torch.__version__, "repeats": args.repeats,
                               "device": DEVICE}
    with tempfile.TemporaryDirectory(prefix="nnviz-bench-") as tmp:
        work = Path(tmp)
        if "process" in chosen:
            results["process"] = bench_process(data, work, args.repeats)
        if "capture" in chosen:
            results["capture"] = bench_capture(data, args.repeats)
        if "probes" in chosen:
            results["probes"] = bench_probes(data, args.repeats)
        if "profile" in chosen:
            results["profile"] = profile_capture(data)
        if "memory" in chosen:
            results["memory"] = bench_memory(data, work)
        if "depth" in chosen:
            results["depth"] = bench_depth(data, work, args.repeats)
        if "html" in chosen:
            results["html"] = bench_html(data, work, results.get("depth"))
        if "peers" in chosen:
            results["peers"] = bench_peers(data, args.repeats)
    results["wall_s"] = time.perf_counter() - started
    summary(results)
    log(f"\nbenchmarks took {fmt_s(results['wall_s'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
