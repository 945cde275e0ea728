"""Progress on stderr: a bar for the capture pass, one line per later stage. Quiet when
disabled or when stderr is not a terminal (tqdm decides), so CI logs stay readable.

Every stage and every batch also checks the interrupt flag (interrupts.py): a stage boundary is
where a signal whose KeyboardInterrupt was swallowed still stops the run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from . import interrupts


class Progress:
    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()

    def stage(self, text: str) -> None:
        interrupts.check()
        if self.enabled:
            tqdm.write(f"nnviz-report: {text}…", file=sys.stderr)

    @contextmanager
    def bar(self, text: str, *, total: int, unit: str) -> Iterator[Callable[[int], None]]:
        with tqdm(total=total, desc=f"nnviz-report: {text}", unit=unit, disable=not self.enabled,
                  file=sys.stderr, leave=False) as bar:
            def advance(count: int) -> None:
                interrupts.check()
                bar.update(count)

            yield advance

    def done(self, text: str) -> None:
        if self.enabled:
            tqdm.write(f"nnviz-report: {text}", file=sys.stderr)
