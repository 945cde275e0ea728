"""Progress on stderr: a bar for the capture pass, one line per later stage. Quiet when
disabled or when stderr is not a terminal (tqdm decides), so CI logs stay readable.

Every stage is also timed, shown or not: each ``stage``/``bar`` call ends the stage before it,
and ``done`` ends the last. Listeners in ``STAGE_LISTENERS`` receive ``(label, seconds)`` for each
stage that ends, so a harness learns where the time went from the pipeline itself, keyed by the
label the pipeline gives, and a renamed function cannot move time out of sight.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

STAGE_LISTENERS: list[Callable[[str, float], None]] = []


class Progress:
    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._current: tuple[str, float] | None = None  # (label, start) of the stage under way

    def stage(self, text: str) -> None:
        self._begin(text)
        if self.enabled:
            tqdm.write(f"nnviz-report: {text}…", file=sys.stderr)

    @contextmanager
    def bar(self, text: str, *, total: int, unit: str) -> Iterator[Callable[[int], None]]:
        self._begin(text)
        with tqdm(total=total, desc=f"nnviz-report: {text}", unit=unit, disable=not self.enabled,
                  file=sys.stderr, leave=False) as bar:
            yield bar.update

    def done(self, text: str) -> None:
        self._end()
        if self.enabled:
            tqdm.write(f"nnviz-report: {text}", file=sys.stderr)

    def _begin(self, label: str) -> None:
        self._end()
        self._current = (label, time.perf_counter())

    def _end(self) -> None:
        if self._current is None:
            return
        label, start = self._current
        self._current = None
        seconds = time.perf_counter() - start
        for listener in STAGE_LISTENERS:
            listener(label, seconds)
