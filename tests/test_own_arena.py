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


def test_the_capture_and_the_probes_run_the_model_off_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnviz_report import probes
    from nnviz_report.capture import run_capture
    from nnviz_report.probes import assign_cells, run_probes
    from tests.fixtures.models import TinyCNN

    seen: set[threading.Thread] = set()
    model = TinyCNN().eval()
    model.register_forward_hook(lambda *_args: seen.add(threading.current_thread()))
    corrupt = probes.corrupt_batch  # the probes run a copy of the model (BatchNorm folded), without its hooks

    def corrupt_here(*args: object, **kwargs: object) -> object:
        seen.add(threading.current_thread())
        return corrupt(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(probes, "corrupt_batch", corrupt_here)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    run_capture(model, images, labels, batch_size=8, device=torch.device("cpu"), showcase_positions=(0,))
    run_probes(model, images, list(range(20)), assign_cells(labels.tolist()), batch_size=8,
               device=torch.device("cpu"), seed=0)
    assert seen and threading.current_thread() not in seen
    assert {thread.name for thread in seen} == {"nnviz-report-capture", "nnviz-report-probes"}


def test_uint8_pixels_are_normalised_batch_by_batch_to_the_same_numbers() -> None:
    from nnviz_report.capture import run_capture
    from nnviz_report.data import normalise
    from tests.fixtures.models import TinyCNN

    torch.manual_seed(0)
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    results = []
    for inputs in (images, normalise(images)):
        torch.manual_seed(1)
        model = TinyCNN()
        results.append(run_capture(model, inputs, labels, batch_size=8, device=torch.device("cpu"),
                                   showcase_positions=(0, 9)))
    from_pixels, from_floats = results
    assert (from_pixels.logits == from_floats.logits).all()
    for a, b in zip(from_pixels.layers, from_floats.layers, strict=True):
        assert a.activation == b.activation and a.gradient == b.gradient
        assert (a.showcase_maps is None) == (b.showcase_maps is None)
        assert a.showcase_maps is None or (a.showcase_maps == b.showcase_maps).all()


class _Resident:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import nnviz_report.own_arena as own_arena

        self.now = 100 * 2**20
        self.returned = 0
        monkeypatch.setattr(own_arena, "resident_bytes", lambda: self.now)
        monkeypatch.setattr(own_arena, "_return_free_memory", self._return)

    def _return(self) -> None:
        self.returned += 1


def test_the_bound_returns_free_pages_after_the_first_batch_and_past_the_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnviz_report.own_arena import ResidentBound

    resident = _Resident(monkeypatch)
    bound = ResidentBound(slack=16 * 2**20)
    bound.after_batch(last=False)  # the first batch: its mapped-then-heap blocks go back at once
    assert resident.returned == 1
    resident.now += 16 * 2**20  # within the slack of the first batch's size
    bound.after_batch(last=False)
    assert resident.returned == 1
    resident.now += 1  # past it
    bound.after_batch(last=False)
    assert resident.returned == 2 and bound.returns == 2
    resident.now += 64 * 2**20
    bound.after_batch(last=True)  # the pass's end returns everything anyway
    assert resident.returned == 2


def test_a_one_batch_pass_returns_nothing_between_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnviz_report.own_arena import ResidentBound

    resident = _Resident(monkeypatch)
    ResidentBound().after_batch(last=True)
    assert resident.returned == 0
