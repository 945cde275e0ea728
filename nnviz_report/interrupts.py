"""SIGINT and SIGTERM as a flag the pipeline checks, not only as an exception.

The first signal raises KeyboardInterrupt at once, so a long capture stops promptly, and also
sets a flag. The flag matters where the exception does not arrive: WeasyPrint catches every
BaseException around SVG drawing and user code may catch KeyboardInterrupt, after which the
run would go on and publish a report with a missing figure. The pipeline therefore calls
:func:`check` after each stage and after PDF rendering, and nothing is published once the flag
is set. The flag also tells a real Ctrl-C (exit 130) apart from a KeyboardInterrupt that the
user's model raised by itself (bad input, exit 2). Later signals only set the flag, so that
clean-up in ``finally`` blocks (staging folders, the model's state) is not cut short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_received: int | None = None
_deferring = 0


def received() -> int | None:
    """The first signal number received since :func:`handled` was entered, or None."""
    return _received


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even if something swallowed its exception."""
    if _received is not None:
        raise KeyboardInterrupt


def _handler(signum: int, _frame: FrameType | None) -> None:
    global _received
    first = _received is None
    if first:
        _received = signum
    if first and not _deferring:
        raise KeyboardInterrupt


@contextmanager
def handled() -> Iterator[None]:
    """Install the handlers for one command (main thread only; elsewhere nothing changes)."""
    global _received
    _received = None
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        # The flag belongs to this command: a later generate_report() in the same process must
        # not find it set.
        _received = None


@contextmanager
def deferred() -> Iterator[None]:
    """A signal inside this block only sets the flag: moving a finished report into place is
    not cut in half (the caller checks the flag before and after)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
