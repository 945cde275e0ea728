"""Progress on stderr, for a person at a terminal and for a CI log alike.

In a terminal: a line per stage with a clock that ticks while the stage runs (PDF rendering can
take a while and must not look hung), and a bar for the capture pass that advances per batch.
Elsewhere (CI logs, pipes, files): plain lines, each with the wall-clock time and the seconds
since the start, one per stage and a few during the capture, so a log shows where the time went.
Then one closing summary: status, accuracy, findings by severity, where the files are, and with
--fail-on which findings made the run exit 1.

Every stage and every batch also checks the interrupt flag (interrupts.py): a stage boundary is
where a signal whose KeyboardInterrupt was swallowed (WeasyPrint does) still stops the run.

Every stage is also timed, shown or not: each ``stage``/``bar`` call ends the stage before it, and
``close`` ends the last. Listeners in ``STAGE_LISTENERS`` receive ``(label, seconds)`` for each
stage that ends, so a harness learns where the time went from the pipeline itself, keyed by the
label the pipeline gives, and a renamed function cannot move time out of sight.

This module imports neither torch nor tqdm at import time: the CLI prints its first line through
it before the heavy imports, so the user sees the run start at once."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import interrupts
from .config import Severity

if TYPE_CHECKING:
    from .report_model import Finding, Report

PREFIX = "nnviz-report:"
# A CI log gets a capture line at most this often (and one at the end): alive, but not a flood.
LOG_INTERVAL_S = 10.0
# How often the terminal's stage clock is redrawn.
TICK_S = 0.5
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
LISTED_CAUSES = 5
STAGE_LISTENERS: list[Callable[[str, float], None]] = []


class Progress:
    """``stream`` defaults to stderr; ``terminal`` (default: ``stream.isatty()``) picks the form."""

    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None, terminal: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import sys

        self.enabled = enabled
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.terminal = self._isatty(self.stream) if terminal is None else terminal
        self._clock = clock
        self.started = clock()
        self._ticker: _Ticker | None = None
        self._timed: tuple[str, float] | None = None  # (label, start) of the stage under way

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):  # a closed or file-like stream without a terminal
            return False

    def elapsed(self) -> float:
        return self._clock() - self.started

    # -- lines ---------------------------------------------------------------------------------

    def _log_line(self, text: str) -> str:
        return f"{PREFIX} [{time.strftime('%H:%M:%S')} +{self.elapsed():.1f}s] {text}"

    def _write(self, line: str) -> None:
        # Layer names and paths come from the user's model and disk: an escape sequence or a
        # newline in one must not repaint the terminal or split a log line.
        line = _CONTROL.sub("?", line)
        if self.terminal:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)  # above any bar that is showing
        else:
            print(line, file=self.stream, flush=True)

    def stage(self, text: str) -> None:
        """A stage begins (and the one before it ends)."""
        interrupts.check()
        self._time_stage(text)
        if not self.enabled:
            return
        self._end_stage()
        if self.terminal:
            self._ticker = _Ticker(f"{PREFIX} {text}", self.stream)
        else:
            self._write(self._log_line(text))

    def note(self, text: str) -> None:
        """A line that is not a stage, e.g. the run's first line or the closing summary."""
        if not self.enabled:
            return
        self._end_stage()
        self._write(f"{PREFIX} {text}" if self.terminal else self._log_line(text))

    def done(self, text: str) -> None:
        self.note(text)

    def close(self) -> None:
        """Stops the stage clock, so that an error message is not drawn over by it."""
        self._time_stage(None)
        self._end_stage()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _time_stage(self, label: str | None) -> None:
        """Ends the timed stage under way (telling the listeners) and starts ``label``'s, if any."""
        now = self._clock()
        if self._timed is not None:
            ended, start = self._timed
            for listener in STAGE_LISTENERS:
                listener(ended, now - start)
        self._timed = None if label is None else (label, now)

    def _end_stage(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    # -- the capture bar -----------------------------------------------------------------------

    @contextmanager
    def bar(self, text: str, *, total: int, unit: str) -> Iterator[Callable[[int], None]]:
        """Yields ``advance(n)``; the caller calls it once per batch."""
        self._time_stage(text)
        if not self.enabled:
            yield lambda n: interrupts.check()
            return
        self._end_stage()
        if self.terminal:
            from tqdm import tqdm

            # mininterval=0: every batch redraws (tqdm would otherwise skip updates that come
            # faster than 0.1 s); leave=True: the finished bar stays as the stage's record.
            with tqdm(total=total, desc=f"{PREFIX} {text}", unit=unit, file=self.stream, leave=True,
                      mininterval=0, dynamic_ncols=True) as tqdm_bar:
                def advance_bar(n: int) -> None:
                    interrupts.check()
                    tqdm_bar.update(n)

                yield advance_bar
            return
        begun = self._clock()
        state = {"done": 0, "last": begun}
        self._write(self._log_line(f"{text}: 0/{total} {unit}"))

        def advance(n: int) -> None:
            interrupts.check()
            state["done"] += n
            now = self._clock()
            if now - state["last"] >= LOG_INTERVAL_S and state["done"] < total:
                state["last"] = now
                self._write(self._log_line(f"{text}: {state['done']}/{total} {unit}"))

        yield advance
        self._write(self._log_line(f"{text}: {state['done']}/{total} {unit} in {self._clock() - begun:.1f}s"))


class _Ticker:
    """A terminal line ``text… 3s`` redrawn every TICK_S by a daemon thread until stopped, then
    left in place with the stage's duration."""

    def __init__(self, text: str, stream: TextIO) -> None:
        from tqdm import tqdm

        self._text = text
        self._began = time.monotonic()
        self._bar = tqdm(total=None, desc=text, bar_format="{desc}… {elapsed_s:.0f}s", file=stream, leave=True,
                         dynamic_ncols=True)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nnviz-report-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(TICK_S):
            self._bar.refresh()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        # The line that stays: the stage and how long it took, no longer a running clock.
        self._bar.set_description_str(f"{self._text}: {time.monotonic() - self._began:.1f}s", refresh=False)
        self._bar.bar_format = "{desc}"
        self._bar.close()


# ---- the closing summary ---------------------------------------------------------------------

def gate_causes(findings: Sequence[Finding], fail_on: str | None) -> list[Finding]:
    """The findings at or above ``fail_on``: those that make the run exit 1 (the gate's own rule)."""
    if fail_on is None:
        return []
    return [f for f in findings if Severity.rank_of(f.severity) >= Severity(fail_on).rank]


def closing_lines(report: Report, paths: Mapping[str, Path], *, fail_on: str | None, exit_code: int,
                  elapsed: float) -> list[str]:
    """The run's summary, without the prefix: what a reader of a CI log needs from the last lines.
    Status and counts are the report's verdict, computed once; nothing is recounted here."""
    verdict, perf = report.verdict, report.performance
    correct = sum(1 for t, p in zip(perf.labels, perf.predictions, strict=True) if t == p)
    interval = perf.accuracy_interval
    found = f"{verdict.findings_fail} fail, {verdict.findings_warn} warn, {verdict.findings_info} info"
    folders = sorted({str(p.parent) for p in paths.values()})
    lines = [
        f"done in {elapsed:.1f}s: status {verdict.status.upper()} · accuracy {_pct(perf.accuracy)} "
        f"[95% {_pct(interval.low)}–{_pct(interval.high)}] ({correct}/{len(perf.labels)} images) · findings: {found}",
        f"files in {', '.join(folders)}: {', '.join(p.name for p in paths.values())}",
    ]
    causes = gate_causes(report.findings, fail_on)
    if fail_on is not None and exit_code == 1:
        listed = "; ".join(_describe(f) for f in causes[:LISTED_CAUSES])
        more = f"; and {len(causes) - LISTED_CAUSES} more" if len(causes) > LISTED_CAUSES else ""
        noun = "finding" if len(causes) == 1 else "findings"
        lines.append(f"exit 1: {len(causes)} {noun} at or above --fail-on {fail_on}: {listed}{more}")
    elif fail_on is not None:
        lines.append(f"exit {exit_code}: no finding at or above --fail-on {fail_on}")
    return lines


def _describe(finding: Finding) -> str:
    where = f" at {finding.layer}" if finding.layer else ""
    return f"{finding.severity} {finding.check}{where}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def write_closing(progress: Progress, result: Any, *, fail_on: str | None) -> None:
    """``result``: a pipeline ``ReportResult`` (report, paths, exit_code)."""
    for line in closing_lines(result.report, result.paths, fail_on=fail_on, exit_code=result.exit_code,
                              elapsed=progress.elapsed()):
        progress.note(line)
