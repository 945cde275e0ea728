"""Regenerate example_reports/ from the shipped weights (``make examples``), and optionally the
screenshots in docs/screenshots/ from example_reports/resnet20/report.html.

    python scripts/make_examples.py                  # lenet, lenet-damaged, resnet20, compare-resnet20, history…
    python scripts/make_examples.py --screenshots    # and docs/screenshots/*.png
    python scripts/make_examples.py --only resnet20 --weights resnet20=/tmp/r20.pt -o /tmp/examples

The sample is the first 10 images of each class of the CIFAR-10 JPEG test split in
../shared/data/cifar10-jpg.tar.gz, extracted once into a cache folder. The reports are
deterministic: running this twice gives the same bytes, which tests/test_examples.py checks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
WEIGHTS = ROOT / "nnviz_report" / "weights"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nnviz_report"
PER_CLASS = 10
SIZE_BUDGET = 30 * 2**20  # all example reports together


@dataclass(frozen=True)
class Example:
    name: str  # folder under example_reports/
    model: str
    weights: Path  # the head's weights (the shipped ones)
    base_weights: Path | None = None  # set: a compare report
    damage: Callable[[Path, Path], Path] | None = None  # set: (shipped weights, folder) → a damaged checkpoint


DAMAGED_NAME = "lenet-damaged.pt"


def damaged_lenet(shipped: Path, folder: Path) -> Path:
    """The shipped LeNet damaged so that the example shows what findings look like: 10 of conv2's 16
    channels (62 % dead after relu2: fail) and 40 of fc1's 120 units (33 % dead after relu3: warn)
    get a bias of −1000, which no input can overcome; the classifier fc3 is scaled down 1000× (the
    predicted classes stay, the gradient dwarfs its weights: exploding gradient and gradient spread
    warn). Everything else is the shipped weights; the file's bytes are the same on every run."""
    import torch

    state = torch.load(shipped, weights_only=True)
    state["conv2.bias"][6:] = -1000.0
    state["fc1.bias"][80:] = -1000.0
    state["fc3.weight"] *= 1e-3
    state["fc3.bias"] *= 1e-3
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DAMAGED_NAME
    torch.save(state, path)
    return path


PRUNED_NAME = "resnet20-pruned.pt"
PRUNED_SHARE = 0.5


def pruned_resnet20(shipped: Path, folder: Path) -> Path:
    """The shipped ResNet-20 with global magnitude pruning: the 50 % of all convolution weights
    (every 4-D weight, shortcuts included) smallest in magnitude set to zero, the rest and every
    other tensor unchanged. The threshold is the median |w| over all of them (ties at it pruned
    too); the file's bytes are the same on every run."""
    import torch

    state = torch.load(shipped, weights_only=True)
    convs = [k for k, v in state.items() if k.endswith("weight") and v.dim() == 4]
    magnitudes = torch.cat([state[k].abs().reshape(-1) for k in convs])
    threshold = magnitudes.kthvalue(int(PRUNED_SHARE * magnitudes.numel())).values
    for k in convs:
        state[k] = torch.where(state[k].abs() <= threshold, torch.zeros_like(state[k]), state[k])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PRUNED_NAME
    torch.save(state, path)
    return path


# The history example: three releases of resnet20, oldest first, archived as releases/<version>/report.json
# in the cache (only the history goes into example_reports/).
HISTORY_EXAMPLE = "history-resnet20"
HISTORY_RELEASES = (("v1.0", "resnet20_early.pt"), ("v1.1", "resnet20.pt"), ("v1.2", PRUNED_NAME))

EXAMPLES = (
    Example("lenet", "lenet", WEIGHTS / "lenet.pt"),
    Example("lenet-damaged", "lenet", WEIGHTS / "lenet.pt", damage=damaged_lenet),
    Example("resnet20", "resnet20", WEIGHTS / "resnet20.pt"),
    Example("compare-resnet20", "resnet20", WEIGHTS / "resnet20.pt", base_weights=WEIGHTS / "resnet20_early.pt"),
)

# The section screenshots for the README: (example, file name, anchor to scroll to).
SCREENSHOTS = (
    ("lenet-damaged", "verdict-damaged", "top"), ("compare-resnet20", "verdict-compare", "top"),
    ("resnet20", "summary", "summary"), ("resnet20", "findings", "findings"), ("resnet20", "flow", "flow"),
    ("resnet20", "activations", "activations"), ("resnet20", "feature-maps", "feature-maps"),
    ("resnet20", "gradients", "gradients"), ("resnet20", "saliency", "saliency"), ("resnet20", "slices", "slices"),
    ("resnet20", "cka", "cka"), ("resnet20", "weights", "weights"), ("resnet20", "appendix", "appendix"),
    ("compare-resnet20", "compare", "compare"),
)
SCREENSHOT_BUDGET = 300 * 1024
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def cifar10_test_split(archive: Path = ARCHIVE, cache: Path = CACHE) -> Path:
    """The JPEG test split as an ImageFolder directory, extracted once into the cache."""
    target = cache / "cifar10-jpg"
    test = target / "test"
    if (test / "truck").is_dir():
        return test
    if not archive.exists():
        raise SystemExit(f"make_examples: the CIFAR-10 JPEG archive is not at {archive}")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("test/") or m.name == "test"]
        tar.extractall(target, members=members, filter="data")
    return test


def compare_available() -> bool:
    try:
        from nnviz_report.compare import run_compare  # noqa: F401
    except ImportError:
        return False
    return True


def make_example(example: Example, data: Path, out_root: Path, *, per_class: int = PER_CLASS,
                 weights: Path | None = None) -> Path | None:
    """Write one example report; None (with a message) when what it needs is not there."""
    from nnviz_report.cli import main

    head = weights or example.weights
    missing = [p for p in (head, example.base_weights) if p is not None and not p.exists()]
    if missing:
        names = ", ".join(str(p) for p in missing)
        print(f"make_examples: skipping {example.name}: {names} not found", file=sys.stderr)
        return None
    if example.damage is not None:
        weights = example.damage(head, CACHE / "damaged")
    out = out_root / example.name
    common = ["--quiet", "--model", example.model, "--data", str(data), "--per-class", str(per_class),
              "--format", "html,pdf,json,md", "-o", str(out)]
    # The shipped weights are the model's default: the examples are what `nnviz-report report
    # --model resnet20` gives, without a --weights option in their settings.
    own = [] if weights is None else ["--weights" if example.base_weights is None else "--head-weights", str(weights)]
    if example.base_weights is None:
        argv = ["report", *common, *own]
    else:
        if not compare_available():
            print(f"make_examples: skipping {example.name}: nnviz_report.compare is not there yet", file=sys.stderr)
            return None
        argv = ["compare", *common, *own, "--base-weights", str(example.base_weights)]
    print(f"make_examples: {example.name}: nnviz-report {argv[0]} --model {example.model} …", file=sys.stderr)
    code = main(argv)
    if code not in (0, 1):  # 1: findings (no --fail-on is given, so it does not happen)
        raise SystemExit(f"make_examples: {example.name} failed with exit code {code}")
    return out


def make_history_example(data: Path, out_root: Path, *, per_class: int = PER_CLASS) -> Path:
    """Archive one report.json per release (early checkpoint, final, pruned), then build their history."""
    from nnviz_report.cli import main

    releases = CACHE / HISTORY_EXAMPLE / "releases"
    pruned = pruned_resnet20(WEIGHTS / "resnet20.pt", CACHE / "pruned")
    archives = []
    for version, file in HISTORY_RELEASES:
        weights = pruned if file == PRUNED_NAME else WEIGHTS / file
        out = releases / version
        print(f"make_examples: {HISTORY_EXAMPLE}: release {version} ({file}) …", file=sys.stderr)
        code = main(["report", "--quiet", "--model", "resnet20", "--weights", str(weights), "--data", str(data),
                     "--per-class", str(per_class), "--format", "json", "-o", str(out)])
        if code not in (0, 1):
            raise SystemExit(f"make_examples: {HISTORY_EXAMPLE} release {version} failed with exit code {code}")
        archives.append(str(out / "report.json"))
    out = (out_root / HISTORY_EXAMPLE).absolute()
    print(f"make_examples: {HISTORY_EXAMPLE}: nnviz-report history …", file=sys.stderr)
    # From the archive's folder, so that the history names them releases/<version>/report.json, the
    # same on every machine, instead of this machine's cache path.
    with contextlib.chdir(releases.parent):
        code = main(["history", "--quiet", *(str(Path(a).relative_to(releases.parent)) for a in archives),
                     "--format", "html,pdf,json,md", "-o", str(out)])
    if code not in (0, 1):
        raise SystemExit(f"make_examples: {HISTORY_EXAMPLE} failed with exit code {code}")
    return out


def take_screenshots(examples: Path, target: Path, *, width: int = 1280, height: int = 900) -> list[Path]:
    """One screenshot per section, scrolled to its anchor, as small palette PNGs (the verdict ones at
    the top of the page: the first screen a reader sees)."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    target.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, color_scheme="light",
                                    reduced_motion="reduce")
            loaded = None
            for example, name, anchor in SCREENSHOTS:
                html = examples / example / "report.html"
                if not html.exists():
                    print(f"make_examples: {html} is not there; no {name}.png", file=sys.stderr)
                    continue
                if loaded != html:
                    page.goto(html.resolve().as_uri(), wait_until="load")
                    loaded = html
                if not page.evaluate("id => !!document.getElementById(id)", anchor):
                    print(f"make_examples: no #{anchor} in {html}; no {name}.png", file=sys.stderr)
                    continue
                page.evaluate("() => document.fonts.ready")
                scroll = "id => document.getElementById(id).scrollIntoView({block: 'start'})"
                page.evaluate(scroll, anchor)
                page.wait_for_timeout(200)
                # Again: the first page's layout can still move while its images decode, which
                # shifted the first screenshot by a few pixels from one run to the next.
                page.evaluate(scroll, anchor)
                page.wait_for_timeout(100)
                raw = target / f".{name}.raw.png"
                page.screenshot(path=str(raw))
                path = target / f"{name}.png"
                shrink_png(raw, path, Image)
                raw.unlink()
                written.append(path)
        finally:
            browser.close()
    return written


def shrink_png(source: Path, target: Path, image_module) -> None:  # noqa: ANN001
    """A 256-colour palette PNG, halved in size if it is still over the budget."""
    image = image_module.open(source).convert("RGB")
    while True:
        image.quantize(colors=256, method=image_module.Quantize.MEDIANCUT, dither=image_module.Dither.NONE).save(
            target, optimize=True)
        if target.stat().st_size <= SCREENSHOT_BUDGET or image.width <= 640:
            return
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), image_module.Resampling.LANCZOS)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "example_reports", help="default: example_reports/")
    parser.add_argument("--data", type=Path, help="an ImageFolder test split (default: extracted from the archive)")
    parser.add_argument("--only", action="append", choices=[*(e.name for e in EXAMPLES), HISTORY_EXAMPLE],
                        help="this example only")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=FILE",
                        help="use FILE instead of the shipped weights of MODEL (for trying the script out)")
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--screenshots", action="store_true",
                        help="also write docs/screenshots/*.png from the resnet20 and compare examples")
    parser.add_argument("--screenshots-only", action="store_true", help="only the screenshots, from existing reports")
    parser.add_argument("--screenshot-dir", type=Path, default=ROOT / "docs" / "screenshots")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {}
    for item in args.weights:
        model, sep, file = item.partition("=")
        if not sep:
            raise SystemExit(f"make_examples: --weights {item!r} is not MODEL=FILE")
        overrides[model] = Path(file)
    if not args.screenshots_only:
        data = args.data or cifar10_test_split()
        for example in EXAMPLES:
            if args.only and example.name not in args.only:
                continue
            make_example(example, data, args.out, per_class=args.per_class, weights=overrides.get(example.model))
        if not args.only or HISTORY_EXAMPLE in args.only:
            make_history_example(data, args.out, per_class=args.per_class)
        total = folder_size(args.out) if args.out.exists() else 0
        print(f"make_examples: {args.out} holds {total / 2**20:.1f} MB", file=sys.stderr)
        if total > SIZE_BUDGET:
            raise SystemExit(f"make_examples: the examples take {total / 2**20:.1f} MB, over the 30 MB budget")
    if args.screenshots or args.screenshots_only:
        for path in take_screenshots(args.out, args.screenshot_dir):
            print(f"make_examples: {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
