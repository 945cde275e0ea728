"""The model's passes run on a thread of their own (nnviz_report.own_arena): results and errors come
back as if they ran here, autograd's mode goes with them, and an interrupt of the waiting thread
stops the pass and waits for it to unwind before it is raised."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import torch

from nnviz_report import interrupts
from nnviz_report.own_arena import check_stop, run_in_own_arena, stop_requested


def test_the_work_runs_on_another_thread_and_its_result_comes_back() -> None:
    seen = []

    def work() -> int:
        seen.append(threading.current_thread())
        return 42

    assert run_in_own_arena(work, name="probe-thread") == 42
    assert seen[0] is not threading.current_thread()
    assert seen[0].name == "probe-thread"


def test_an_error_in_the_work_is_raised_here_with_its_type_and_message() -> None:
    def work() -> None:
        raise ValueError("bad layer")

    with pytest.raises(ValueError, match="bad layer"):
        run_in_own_arena(work)
    with pytest.raises(SystemExit):  # a model that calls sys.exit: the CLI maps it to bad input
        run_in_own_arena(lambda: exec("raise SystemExit(0)"))


@pytest.mark.parametrize("enabled", [True, False])
def test_autograd_mode_goes_with_the_work(enabled: bool) -> None:
    with torch.set_grad_enabled(enabled):
        assert run_in_own_arena(torch.is_grad_enabled) is enabled


def test_a_nested_call_runs_in_place() -> None:
    outer = []

    def work() -> bool:
        outer.append(threading.current_thread())
        return run_in_own_arena(lambda: threading.current_thread() is outer[0])

    assert run_in_own_arena(work) is True


def test_no_stop_is_requested_outside_an_interrupted_pass() -> None:
    assert not stop_requested()
    check_stop()  # raises nothing
    assert run_in_own_arena(stop_requested) is False


def test_an_interrupt_stops_the_pass_and_waits_for_it_to_unwind() -> None:
    """SIGINT reaches the main thread, which waits in run_in_own_arena; the pass sees the stop at its
    next check, runs its finally (where the model's state is restored) and only then is the
    KeyboardInterrupt raised here."""
    events: list[str] = []
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()

    def work() -> None:
        try:
            signal.pthread_kill(main, signal.SIGINT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                check_stop()
                time.sleep(0.01)
            events.append("never stopped")
        finally:
            time.sleep(0.2)  # a slow restore: the interrupt must still wait for it
            events.append("unwound")

    with interrupts.handled(), pytest.raises(KeyboardInterrupt):
        run_in_own_arena(work)
    assert events == ["unwound"]
