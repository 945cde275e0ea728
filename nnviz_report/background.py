"""Work that uses no torch, done in a forked child process while this one goes on.

A report's figures are matplotlib and numpy, and most of them wait for nothing but plain arrays:
the weight charts need only the weights, so they can be drawn while the capture runs the model;
the PDF needs only the finished report, and WeasyPrint can be imported long before. Threads would
not help (matplotlib and WeasyPrint hold the GIL; a side thread measurably slowed the capture), a
second process does: on two cores the weight charts of torchvision resnet18 (about 1.5 s) disappear
behind the capture and the probes.

The child is forked, so it starts at once with everything already imported and computed, and hands
back its result pickled through a pipe. It must not run torch operations: torch's OpenMP thread
pool does not survive a fork. Callers therefore give it numpy arrays only.

A CUDA device is no reason to stay in one process: the child never calls torch, so it never
touches the CUDA context it cannot use, just as DataLoader's forked workers beside a model on the
GPU do not.

Nothing depends on the child: when forking is not possible or not worth it (one core, not Linux),
when the child fails in any way, or dies, its work is done again here, in this
process, so an error surfaces exactly as it would without a child, with its own message and exit
code. Its work must be deterministic, which the report's is: the bytes are the same either way
(tests/test_background.py checks both routes). ``NNVIZ_SERIAL=1`` turns the children off.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
A = TypeVar("A")


def forking_pays() -> bool:
    """Whether a second process can run beside this one: Linux (fork is safe for numpy and
    matplotlib there; macOS's system libraries are not fork-safe), two usable cores or more, and
    not turned off by NNVIZ_SERIAL=1."""
    if os.environ.get("NNVIZ_SERIAL", "") not in ("", "0"):
        return False
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    return len(os.sched_getaffinity(0)) >= 2


class BackgroundJob(Generic[T]):
    """``work()`` started in a forked child; ``result()`` is its return value, computed here
    instead when the child could not deliver it. Use it as a context manager, so that a child whose
    result is never asked for (an error or an interrupt in between) is stopped."""

    _takes_input = False  # WarmJob: the child reads its argument from a second pipe

    def __init__(self, work: Callable[[], T], *, fork: bool = True) -> None:
        self._work = work
        self._pid: int | None = None
        self._reader: int | None = None
        self._input: int | None = None  # WarmJob: where its argument goes
        self.ran_in_child = False  # for the tests and the benchmark: where the result came from
        if fork and forking_pays():
            self._fork()

    @property
    def forked(self) -> bool:
        """Whether a child is running this job (and not yet collected)."""
        return self._pid is not None

    def __enter__(self) -> BackgroundJob[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cancel()

    def _fork(self) -> None:
        reader, writer = os.pipe()
        inputs = os.pipe() if self._takes_input else None
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking a process with threads (torch's pool, the progress
            # line): the child here touches neither, see the module's docstring.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            status = 1
            try:
                os.close(reader)
                if inputs is not None:
                    os.close(inputs[1])
                # An interrupt is the parent's to handle; the child just ends (the parent stops it).
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                # The parent's warnings and progress go to its terminal; a child that wrote there
                # could also wait forever on a stream lock another thread of the parent held.
                warnings.simplefilter("ignore")
                torch = sys.modules.get("torch")
                if torch is not None:
                    # A torch operation the work did run after all then stays on this thread:
                    # an OpenMP team of the parent's would not exist here.
                    torch.set_num_threads(1)
                payload = pickle.dumps(self._in_child(inputs[0] if inputs else None), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(writer, "wb") as out:
                    out.write(payload)
                status = 0
            finally:
                # No atexit handlers, no flushing of the parent's buffered output: that is the parent's.
                os._exit(status)
        os.close(writer)
        if inputs is not None:
            os.close(inputs[0])
            self._input = inputs[1]
        self._pid, self._reader = pid, reader

    def _in_child(self, _input: int | None) -> T:
        return self._work()

    def result(self) -> T:
        if self._pid is not None:
            delivered = self._collect()
            if delivered is not None:
                self.ran_in_child = True
                return delivered[0]
        return self._work()

    def _collect(self) -> tuple[T] | None:
        """The child's result, or None when it failed, died or sent something unreadable."""
        assert self._pid is not None and self._reader is not None
        chunks = []
        with os.fdopen(self._reader, "rb") as stream:
            self._reader = None
            while chunk := stream.read(1 << 20):
                chunks.append(chunk)
        _pid, status = os.waitpid(self._pid, 0)
        self._pid = None
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return None
        try:
            return (pickle.loads(b"".join(chunks)),)
        except Exception:  # a truncated or unreadable payload: do the work here instead
            return None

    def cancel(self) -> None:
        """Stop a child whose result was not collected, and reap it."""
        for fd in (self._reader, self._input):
            if fd is not None:
                os.close(fd)
        self._reader = self._input = None
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            self._pid = None


class WarmJob(BackgroundJob[T], Generic[A, T]):
    """``work(argument)`` in a child forked long before the argument exists: the child runs
    ``warm_up()`` at once (imports, say), then waits for the argument ``send(argument)`` hands
    it; ``result()`` collects what it made of it, or does the work here, like BackgroundJob's,
    when the child cannot deliver. The PDF renderer starts this way while the model loads, so that
    importing WeasyPrint (half a second) is off the report's critical path."""

    _takes_input = True

    def __init__(self, work: Callable[[A], T], *, warm_up: Callable[[], object], fork: bool = True) -> None:
        self._work_on = work
        self._warm_up = warm_up
        self._argument: A | None = None
        super().__init__(lambda: work(self._argument), fork=fork)  # type: ignore[arg-type]

    def _in_child(self, argument_fd: int | None) -> T:
        self._warm_up()
        assert argument_fd is not None
        with os.fdopen(argument_fd, "rb") as stream:
            argument = pickle.load(stream)
        return self._work_on(argument)

    def send(self, argument: A) -> None:
        """Hand the child its argument (``result()`` then collects what it made of it)."""
        self._argument = argument
        if self._input is not None:
            try:
                with os.fdopen(self._input, "wb") as stream:
                    self._input = None
                    pickle.dump(argument, stream, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # the child is gone (a broken pipe), or pickle refuses the argument
                self.cancel()
