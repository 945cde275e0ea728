"""``nnviz-report``: the command line.

Exit codes are a contract: 0 every requested file written and no finding at --fail-on; 1 every
file written, with findings at --fail-on; 2 bad input or usage (one line: what is wrong, what to
do); 3 internal error (one line; the traceback only with --debug or NNVIZ_DEBUG=1); 130 SIGINT;
143 SIGTERM. A model's own code that calls sys.exit() or raises KeyboardInterrupt by itself is
bad input, never a pass: only a received signal reads as an interruption.

torch and the pipeline are imported only once a command runs, so that ``--help`` and usage errors
answer at once and a run prints its first line before PyTorch has loaded (a couple of seconds)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import interrupts
from .config import FAIL_ON_CHOICES, OutputFormat, ReportSettings, Severity
from .errors import NNVizError, one_line
from .progress import Progress, write_closing
from .version import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

EXIT_CODES = """\
exit codes:
  0    done; no finding at or above --fail-on (or no --fail-on)
  1    done, the files are written, and a finding is at or above --fail-on
  2    bad input or usage (one line on stderr says what to do); nothing written
  3    internal error (a bug to report); nothing written
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM); nothing written
"""
README_POINTER = "More in the README: Quick start, Usage, CI (exit codes) and Bad input (every error message)."
REPORT_EXAMPLES = """\
examples (DATA: a folder with the ten CIFAR-10 class folders, e.g. the test/ folder of
../shared/data/cifar10-jpg.tar.gz; --data cifar10 downloads torchvision's copy instead):
  nnviz-report report --model lenet --data DATA --per-class 2 -o out/lenet
  nnviz-report report --model resnet20 --data DATA --fail-on fail -o out/resnet20
  nnviz-report report --model resnet20 --weights my-resnet20.pt --data DATA
  nnviz-report report --model torchvision:resnet18 --data DATA     (no --weights: random weights)
  nnviz-report report --model mypkg.models:build --weights net.pt --data DATA
  nnviz-report report --model torchscript:net.pt --data DATA
"""
RENDER_EXAMPLES = """\
examples (no model, no data, no PyTorch needed):
  nnviz-report render releases/1.4/report.json                 (report.html, .pdf, .md next to it)
  nnviz-report render releases/1.4/report.json -o out/1.4 --format html
"""
HISTORY_EXAMPLES = """\
examples (each report.json archived by `nnviz-report report ... --format json`, same --data and --per-class):
  nnviz-report history releases/v1.0/report.json releases/v1.1/report.json releases/v1.2/report.json -o history
  nnviz-report history releases/*/report.json --labels v1.0,v1.1,v1.2 --fail-on fail   (oldest first)
"""
COMPARE_EXAMPLES = """\
examples (DATA as for report):
  nnviz-report compare --model resnet20 --base-weights nnviz_report/weights/resnet20_early.pt --data DATA
  nnviz-report compare --model resnet20 --base-json release-1.2/report.json --head-weights new.pt --data DATA
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (where there is one worth showing); the epilog's
    line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" in text
            or not action.option_strings
            or any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))
        ):
            return text
        return f"{text} (default: %(default)s)"


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
        help="an ImageFolder directory with the ten CIFAR-10 class folders, or 'cifar10' for torchvision's "
        "test split (read from --data-root, downloaded there if missing)",
    )
    parser.add_argument(
        "--data-root", type=Path, metavar="DIR",
        help="where --data cifar10 finds or downloads torchvision's CIFAR-10 (default: ~/.cache/nnviz_report/cifar10)"
    )
    parser.add_argument(
        "--no-download", action="store_true", help="never download CIFAR-10 (fail if --data-root lacks it)"
    )
    parser.add_argument(
        "--per-class", type=int, default=10, metavar="K",
        help="images per class in the fixed sample: the first K of each class",
    )
    parser.add_argument(
        "--format", default="html,pdf,json,md", metavar="LIST", help="comma-separated, any of html,pdf,json,md"
    )
    parser.add_argument(
        "-o", "--out", type=Path, default=Path("nnviz-report"), metavar="OUT_DIR",
        help="output folder (created; its report files are replaced only when the new ones are complete)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=100, metavar="N", help="images per forward+backward pass")
    parser.add_argument(
        "--showcase", type=int, default=4, metavar="N", help="samples followed through the network (1 to 10)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for torch (random weights, saliency baselines)")
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
    parser.add_argument("--graph-direction", choices=["TB", "LR"], default="TB",
                        help="flow diagram top-to-bottom or left-to-right")
    parser.add_argument("--graph-fold", choices=["auto", "always", "never"], default="auto",
                        help="flow diagram: auto draws the first block of each kind in full and folds the rest; "
                             "always folds every block at --graph-depth; never folds")
    parser.add_argument(
        "--graph-depth", type=int, default=2, metavar="N", help="container depth grouped in the flow diagram"
    )
    parser.add_argument(
        "--template-dir", type=Path, metavar="DIR", help="templates that override the built-in ones file by file"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no closing summary on stderr (errors still shown)"
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error (also NNVIZ_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnviz-report",
        description="Static reports of what happens inside a PyTorch image classifier.",
        epilog=f"Run 'nnviz-report COMMAND --help' for a command's options and examples.\n\n{EXIT_CODES}\n"
        f"{README_POINTER}",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nnviz_report {__version__}")
    # Not required here: a bare `nnviz-report` gets the list of commands (main), not argparse's
    # "the following arguments are required: command".
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    report = commands.add_parser(
        "report", help="build a report for one model", description="Build a report for one model.",
        epilog=f"{REPORT_EXAMPLES}\n{EXIT_CODES}\n{README_POINTER}", formatter_class=_HelpFormatter,
    )
    _common_options(report)
    report.add_argument(
        "--weights", type=Path, metavar="FILE",
        help="state_dict or checkpoint file, read with weights_only=True (default: the built-in model's shipped "
        "weights; torchvision:NAME without --weights is randomly initialised)",
    )
    compare = commands.add_parser(
        "compare", help="compare two checkpoints of one model, or one against an archived report.json",
        description="Compare two checkpoints of one model, or one against an archived report.json.",
        epilog=f"{COMPARE_EXAMPLES}\n{EXIT_CODES}\n{README_POINTER}", formatter_class=_HelpFormatter,
    )
    _common_options(compare)
    compare.add_argument(
        "--head-weights", type=Path, metavar="FILE", help="the new checkpoint (default: the model's shipped weights)"
    )
    base = compare.add_mutually_exclusive_group(required=True)
    base.add_argument("--base-weights", type=Path, metavar="FILE", help="the old checkpoint")
    base.add_argument("--base-json", type=Path, metavar="FILE", help="an archived report.json of the old model")
    render = commands.add_parser(
        "render", help="rebuild a report from its archived report.json alone (no model, no data, no torch)",
        description="Rebuild a report from its archived report.json alone: no model, no data, no PyTorch. "
        "The HTML and Markdown are byte for byte those the same nnviz_report version wrote with that JSON.",
        epilog=f"{RENDER_EXAMPLES}\n{EXIT_CODES}\n{README_POINTER}", formatter_class=_HelpFormatter,
    )
    render.add_argument("archive", type=Path, metavar="ARCHIVE/report.json",
                        help="a report.json written by nnviz-report report or compare (or its folder)")
    render.add_argument("-o", "--out", type=Path, metavar="OUT_DIR",
                        help="output folder (default: the archive's own folder; files are replaced only when "
                        "the new ones are complete)")
    render.add_argument("--format", default="html,pdf,md", metavar="LIST",
                        help="comma-separated, any of html,pdf,json,md")
    render.add_argument(
        "--template-dir", type=Path, metavar="DIR", help="templates that override the built-in ones file by file"
    )
    render.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no closing summary on stderr (errors still shown)"
    )
    render.add_argument("--debug", action="store_true", help="print the traceback of an error (also NNVIZ_DEBUG=1)")
    _history_parser(commands)
    return parser


def _history_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    history = commands.add_parser(
        "history", help="a history over archived report.json files of one model (no torch, no model, no data)",
        description="A history over N archived report.json files of one model on one sample, oldest first: "
        "accuracy, checklist, McNemar, per-class accuracy and per-layer drift over releases.",
        epilog=f"{HISTORY_EXAMPLES}\n{EXIT_CODES}\n{README_POINTER}", formatter_class=_HelpFormatter,
    )
    history.add_argument("archives", nargs="+", type=Path, metavar="REPORT_JSON",
                         help="archived report.json files, oldest first (at least two)")
    history.add_argument("--labels", metavar="LIST",
                         help="release names, comma-separated, oldest first (default: each archive's folder name)")
    history.add_argument("--format", default="html,pdf,json,md", metavar="LIST",
                         help="comma-separated, any of html,pdf,json,md")
    history.add_argument("-o", "--out", type=Path, default=Path("nnviz-history"), metavar="OUT_DIR",
                         help="output folder for history.html, .pdf, .json, .md (replaced only when complete)")
    history.add_argument("--fail-on", choices=FAIL_ON_CHOICES,
                         help="exit 1 when the newest release regresses against the one before at this severity: "
                         "a new finding at it, or (fail) accuracy significantly lower by exact McNemar")
    history.add_argument("--config", type=Path, metavar="TOML", help="threshold overrides (compare_p_value)")
    history.add_argument("--template-dir", type=Path, metavar="DIR",
                         help="templates that override the built-in ones file by file")
    history.add_argument("-q", "--quiet", action="store_true", help="no progress and no closing summary on stderr")
    history.add_argument("--debug", action="store_true", help="print the traceback of an error (also NNVIZ_DEBUG=1)")


def command_list(parser: argparse.ArgumentParser) -> str:
    """What a bare `nnviz-report` prints: the commands with their one-line help."""
    lines = ["nnviz-report: no command given; choose one:"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                lines.append(f"  {choice.dest:<10} {choice.help}")
    lines.append("Run 'nnviz-report COMMAND --help' for its options and examples, 'nnviz-report --help' for more.")
    return "\n".join(lines)


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


def announce(args: argparse.Namespace, settings: ReportSettings) -> Progress:
    """The run's first line, printed before torch is imported (which takes seconds)."""
    progress = Progress(enabled=not args.quiet)
    data = settings.data if settings.data == "cifar10" else str(Path(settings.data).expanduser().absolute())
    progress.note(
        f"{args.command} {settings.model} on {data} ({settings.per_class} per class) "
        f"into {settings.out_dir.expanduser().absolute()}"
    )
    if settings.model.startswith("torchvision:") and settings.weights is None:
        progress.note(f"no --weights: {settings.model} keeps its random initial weights (seed {settings.seed})")
    progress.stage("loading PyTorch")
    return progress


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(command_list(parser), file=sys.stderr)
        return EXIT_BAD_INPUT
    debug = bool(getattr(args, "debug", False)) or os.environ.get("NNVIZ_DEBUG", "") not in ("", "0")
    with interrupts.handled():
        try:
            return _run_command(args)
        except BaseException as exc:  # every outcome becomes an exit code here, and only here
            return _exit_code_for_failure(exc, debug)


def _run_command(args: argparse.Namespace) -> int:
    if args.command == "render":
        return _run_render(args)
    if args.command == "history":
        return _run_history(args)
    settings = settings_from(args)
    with announce(args, settings) as progress:
        if args.command == "compare":
            from .compare import run_compare

            result = run_compare(settings, base_weights=args.base_weights, base_json=args.base_json,
                                 progress=progress)
        else:
            from .pipeline import run

            result = run(settings, progress=progress)
    write_closing(progress, result, fail_on=args.fail_on)
    return result.exit_code


def _run_render(args: argparse.Namespace) -> int:
    """No torch here or below: render draws from the archive alone (tests check sys.modules)."""
    from .render.archive import run_render

    formats = OutputFormat.parse_list(args.format)
    progress = Progress(enabled=not args.quiet)
    with progress:
        out = args.out.expanduser().absolute() if args.out is not None else "the archive's folder"
        progress.note(f"render {args.archive.expanduser().absolute()} into {out}")
        result = run_render(args.archive, out_dir=args.out, formats=formats, template_dir=args.template_dir,
                            progress=progress)
    write_closing(progress, result, fail_on=None)
    return result.exit_code


def _run_history(args: argparse.Namespace) -> int:
    from .history_command import closing_lines, run_history

    formats = OutputFormat.parse_list(args.format)
    with Progress(enabled=not args.quiet) as progress:
        progress.note(f"history of {len(args.archives)} archives into {args.out.expanduser().absolute()}")
        result = run_history(args.archives, labels=args.labels, out_dir=args.out, formats=formats,
                             fail_on=args.fail_on, config_file=args.config, template_dir=args.template_dir,
                             progress=progress)
        for line in closing_lines(result, fail_on=args.fail_on, elapsed=progress.elapsed()):
            progress.note(line)
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


def console_main() -> None:
    """The console script and ``python -m nnviz_report.cli``: :func:`main`, then the process ends
    without tearing the interpreter down. Freeing torch's, matplotlib's and pandas's state object
    by object took 1.3 s after a report was complete (resnet18, html+json: 14 % of the run), when
    every output file is already closed and in place. atexit handlers still run (a model's own
    included) and the streams are flushed; only the final module teardown is skipped."""
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not turn success into a traceback
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
