"""The model's passes on a thread of their own, so that their memory comes from an allocator arena
of their own.

A forward+backward allocates and frees the same activation-sized blocks every batch. glibc serves
them best from its heap (its default: the mmap threshold rises to the largest block freed); the
earlier way, a fixed mmap threshold for the whole process, kept memory flat but mapped every
activation afresh (1.1 million page faults for 1000 resnet20 images, a third of the capture's
cost). From the heap, two things make resident memory grow with the number of batches although
nothing is kept: the blocks land between long-lived allocations of the rest of the run, which
pin them, and batch after batch they drift into new places (the heap of a 5000-image capture
settled at twice its first batch's size). glibc gives each thread that allocates its own arena:
here the pass's blocks are apart from the rest of the run, and :class:`ResidentBound` returns the
free pages of the drift to the system whenever resident memory passes its first batch's
(docs/performance.md has the measurements).

Interrupts: a signal is delivered to the main thread, which waits here. It asks the pass to stop
(:func:`stop_requested`, checked by the pass at every layer and batch), waits until the pass has
unwound through its own ``finally`` blocks (the model's state restored), and re-raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch

T = TypeVar("T")
P = ParamSpec("P")

_LOCAL = threading.local()
_START_GRACE_S = 5.0


def stop_requested() -> bool:
    """Whether the thread that waits for this pass has been interrupted (False outside a pass)."""
    stop: threading.Event | None = getattr(_LOCAL, "stop", None)
    return stop is not None and stop.is_set()


def check_stop() -> None:
    """Raise KeyboardInterrupt in the pass once its waiting thread has been interrupted."""
    if stop_requested():
        raise KeyboardInterrupt


def on_own_thread(name: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A pass function that runs on a thread of its own (:func:`run_in_own_arena`) when called."""

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(function)
        def on_thread(*args: P.args, **kwargs: P.kwargs) -> T:
            return run_in_own_arena(lambda: function(*args, **kwargs), name=name)

        return on_thread

    return decorate


def run_in_own_arena(work: Callable[[], T], *, name: str = "nnviz-report-model") -> T:
    """``work()`` on a new thread, with this thread's autograd mode; its result, or its exception
    re-raised here. Inside a pass already on such a thread, ``work()`` runs where it is."""
    if getattr(_LOCAL, "stop", None) is not None:
        return work()
    began, stop, done = threading.Event(), threading.Event(), threading.Event()
    outcome: list[tuple[bool, object]] = []
    grad_enabled = torch.is_grad_enabled()

    def body() -> None:
        began.set()
        _LOCAL.stop = stop
        try:
            with torch.set_grad_enabled(grad_enabled):
                outcome.append((True, work()))
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome.append((False, exc))
        finally:
            _LOCAL.stop = None
            _return_free_memory()
            done.set()

    # Waited for on an Event, not Thread.join: on Python 3.11 a KeyboardInterrupt inside join()
    # can leave the thread marked as stopped while it still runs (bpo-45274's fix).
    try:
        threading.Thread(target=body, name=name, daemon=True).start()
        done.wait()
    except BaseException:
        stop.set()
        # An interrupt inside start() may come before or after the thread exists; one that exists
        # says so at once.
        if began.wait(_START_GRACE_S):
            _wait_through_interrupts(done)
        raise
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value.with_traceback(value.__traceback__)
    return value  # type: ignore[return-value]


def _wait_through_interrupts(done: threading.Event) -> None:
    """Wait for the pass to unwind, whatever further signals arrive (without the CLI's handlers
    each Ctrl-C raises again): leaving earlier would hand back a model still being restored."""
    while not done.is_set():
        with contextlib.suppress(BaseException):
            done.wait()


class ResidentBound:
    """Resident memory of a pass held near its first batch's. After the first batch (whose blocks
    were partly mapped, partly from the heap, while glibc's threshold rose) the free pages go back
    at once; after a later batch only when resident memory is above the first batch's by more than
    ``slack``, which a settled heap rarely is: each return costs the next batch page faults. After
    the last batch nothing is returned here (the pass's end returns it all): a one-batch pass pays
    no faults for it."""

    def __init__(self, slack: int = 16 * 2**20) -> None:
        self.slack = slack
        self.bound: int | None = None
        self.returns = 0

    def after_batch(self, *, last: bool) -> None:
        if last:
            return
        resident = resident_bytes()
        if resident is None:
            return
        if self.bound is None:
            self.bound = resident + self.slack
        elif resident <= self.bound:
            return
        self.returns += 1
        _return_free_memory()


def resident_bytes() -> int | None:
    """This process's resident memory (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _return_free_memory() -> None:
    """Every arena's free pages back to the system (glibc's malloc_trim walks them all): when a pass
    ends, so that what it freed no longer counts in resident memory while the rest of the run goes
    on, and when ResidentBound finds the pass's heap drifting."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
