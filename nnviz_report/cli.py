"""``nnviz-report``: the command line. Exit 0 done, 1 findings at or above --fail-on, 2 bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import FAIL_ON_CHOICES, OutputFormat, ReportSettings, Severity
from .errors import NNVizError

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with one line instead of the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"nnviz-report: error: {message} (see --help)\n")


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="SPEC",
        help="lenet, resnet20, resnet56, torchvision:NAME, package.module:callable or torchscript:PATH",
    )
    parser.add_argument(
        "--data",
        default="cifar10",
        metavar="SPEC",
        help="'cifar10' (torchvision's test split) or an ImageFolder directory with the ten class folders",
    )
    parser.add_argument(
        "--data-root", type=Path, metavar="DIR", help="where torchvision's CIFAR-10 lives or is downloaded to"
    )
    parser.add_argument("--no-download", action="store_true", help="never download CIFAR-10")
    parser.add_argument(
        "--per-class", type=int, default=10, metavar="K", help="images per class in the fixed sample (default 10)"
    )
    parser.add_argument(
        "--format", default="html,pdf,json,md", metavar="LIST", help="any of html,pdf,json,md (default all)"
    )
    parser.add_argument("-o", "--out", type=Path, default=Path("nnviz-report"), metavar="OUT_DIR", help="output folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=100, metavar="N")
    parser.add_argument(
        "--showcase", type=int, default=4, metavar="N", help="samples followed through the network (default 4)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        help="exit 1 when a finding reaches this severity (the report is still written)",
    )
    parser.add_argument(
        "--min-accuracy", type=float, metavar="FRACTION", help="fail when accuracy on the sample is below this"
    )
    parser.add_argument("--config", type=Path, metavar="TOML", help="threshold overrides ([thresholds] table)")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow checkpoints that need full unpickling (can run code: only for files you trust)",
    )
    parser.add_argument(
        "--gradcam-layer", metavar="NAME",
        help="layer for Grad-CAM (default: last conv with ≥ 4×4 output; a transformer's last block's first norm)",
    )
    parser.add_argument("--graph-direction", choices=["TB", "LR"], default="TB")
    parser.add_argument("--graph-fold", choices=["auto", "always", "never"], default="auto",
                        help="flow diagram: auto draws the first block of each kind in full and folds the rest "
                             "(default); always folds every block at --graph-depth; never folds")
    parser.add_argument(
        "--graph-depth", type=int, default=2, metavar="N", help="container depth grouped in the flow diagram"
    )
    parser.add_argument(
        "--template-dir", type=Path, metavar="DIR", help="templates that override the built-in ones file by file"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnviz-report", description="Static reports of what happens inside a PyTorch image classifier."
    )
    parser.add_argument("--version", action="version", version=f"nnviz_report {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    report = commands.add_parser("report", help="build a report for one model")
    _common_options(report)
    report.add_argument(
        "--weights", type=Path, metavar="FILE", help="state_dict or checkpoint file (weights_only loading)"
    )
    compare = commands.add_parser(
        "compare", help="compare two checkpoints of one model, or one against an archived report.json"
    )
    _common_options(compare)
    compare.add_argument(
        "--head-weights", type=Path, metavar="FILE", help="the new checkpoint (default: the model's shipped weights)"
    )
    base = compare.add_mutually_exclusive_group(required=True)
    base.add_argument("--base-weights", type=Path, metavar="FILE", help="the old checkpoint")
    base.add_argument("--base-json", type=Path, metavar="FILE", help="an archived report.json of the old model")
    return parser


def settings_from(args: argparse.Namespace) -> ReportSettings:
    weights = getattr(args, "weights", None) or getattr(args, "head_weights", None)
    return ReportSettings(
        model=args.model,
        weights=weights,
        data=args.data,
        data_root=args.data_root,
        per_class=args.per_class,
        formats=OutputFormat.parse_list(args.format),
        out_dir=args.out,
        device=args.device,
        batch_size=args.batch_size,
        showcase=args.showcase,
        seed=args.seed,
        download=not args.no_download,
        trust_checkpoint=args.trust_checkpoint,
        fail_on=Severity(args.fail_on) if args.fail_on else None,
        min_accuracy=args.min_accuracy,
        config_file=args.config,
        gradcam_layer=args.gradcam_layer,
        graph_direction=args.graph_direction,
        graph_fold=args.graph_fold,
        graph_group_depth=args.graph_depth,
        template_dir=args.template_dir,
        progress=not args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        if args.command == "compare":
            from .compare import run_compare

            result = run_compare(settings, base_weights=args.base_weights, base_json=args.base_json)
        else:
            from .pipeline import run

            result = run(settings)
    except NNVizError as exc:
        print(f"nnviz-report: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("nnviz-report: interrupted; no files were written", file=sys.stderr)
        return 130
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
