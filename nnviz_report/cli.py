"""``nnviz-report``: the command line.

Exit codes are a contract: 0 every requested file written and no finding at --fail-on; 1 every
file written, with findings at --fail-on; 2 bad input or usage (one line: what is wrong, what to
do); 3 internal error (one line; the traceback only with --debug or NNVIZ_DEBUG=1); 130 SIGINT;
143 SIGTERM. A model's own code that calls sys.exit() or raises KeyboardInterrupt by itself is
bad input, never a pass: only a received signal reads as an interruption."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__, interrupts
from .config import FAIL_ON_CHOICES, OutputFormat, ReportSettings, Severity
from .errors import NNVizError, one_line

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


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
        "--gradcam-layer", metavar="NAME", help="layer for Grad-CAM (default: last conv with ≥ 4×4 output)"
    )
    parser.add_argument("--graph-direction", choices=["TB", "LR"], default="TB")
    parser.add_argument("--graph-fold", choices=["auto", "always", "never"], default="auto")
    parser.add_argument(
        "--graph-depth", type=int, default=2, metavar="N", help="container depth grouped in the flow diagram"
    )
    parser.add_argument(
        "--template-dir", type=Path, metavar="DIR", help="templates that override the built-in ones file by file"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error (also NNVIZ_DEBUG=1)")


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
    debug = bool(getattr(args, "debug", False)) or os.environ.get("NNVIZ_DEBUG", "") not in ("", "0")
    with interrupts.handled():
        try:
            return _run_command(args)
        except BaseException as exc:  # every outcome becomes an exit code here, and only here
            return _exit_code_for_failure(exc, debug)


def _run_command(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.command == "compare":
        from .compare import run_compare

        result = run_compare(settings, base_weights=args.base_weights, base_json=args.base_json)
    else:
        from .pipeline import run

        result = run(settings)
    return result.exit_code


def _exit_code_for_failure(exc: BaseException, debug: bool) -> int:
    signum = interrupts.received()
    if signum is not None:
        # Whatever the signal's KeyboardInterrupt became on its way up (some libraries wrap it),
        # the run was interrupted; the staging folder is gone and nothing was published.
        what = "interrupted" if signum == signal.SIGINT else "terminated"
        print(f"nnviz-report: {what}; no files were written", file=sys.stderr)
        return interrupts.exit_code(signum)
    if debug and not isinstance(exc, SystemExit):
        traceback.print_exception(exc)
    if isinstance(exc, NNVizError):
        _error(str(exc))
        return EXIT_BAD_INPUT
    if isinstance(exc, SystemExit):
        # Nothing in nnviz_report calls sys.exit during a run: this came from the user's code
        # (the factory's import, the factory, forward), and a model that exits is not a pass.
        _error(f"the model's code called sys.exit({one_line(exc.code, 80)}) (or raised SystemExit) while "
               "nnviz_report ran it; a model must return logits, not end the process")
        return EXIT_BAD_INPUT
    if isinstance(exc, KeyboardInterrupt):
        _error("the model's code raised KeyboardInterrupt by itself (no signal was received); "
               "a model must not raise it")
        return EXIT_BAD_INPUT
    if not isinstance(exc, Exception):
        raise exc  # GeneratorExit and the like are not ours to judge
    print(f"nnviz-report: internal error: {type(exc).__name__}: {one_line(exc, 300)} — rerun with --debug "
          "and report it", file=sys.stderr)
    return EXIT_INTERNAL


def _error(message: str) -> None:
    print(f"nnviz-report: error: {one_line(message)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
