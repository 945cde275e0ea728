"""Work in a forked child (background.py): its result comes back intact, any failure of the child
falls back to doing the work here, a child whose result is not wanted is stopped, and a report is
the same byte for byte with and without children."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from nnviz_report import background
from nnviz_report.background import BackgroundJob, WarmJob
from nnviz_report.config import OutputFormat
from nnviz_report.pipeline import generate_report

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="children are forked on Linux only")


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children even on a one-core machine: these tests are about the mechanism, not its payoff."""
    monkeypatch.delenv("NNVIZ_SERIAL", raising=False)
    monkeypatch.setattr(background, "forking_pays", lambda: True)


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_result_comes_from_the_child_and_is_intact(forking: None) -> None:
    parent = os.getpid()
    big = bytes(range(256)) * 40_000  # 10 MB: far beyond a pipe's buffer

    with BackgroundJob(lambda: (os.getpid(), big)) as job:
        child_pid = job._pid
        worker, payload = job.result()
    assert job.ran_in_child and worker != parent and worker == child_pid
    assert payload == big
    assert _gone(worker)  # reaped, no zombie left


def test_a_failing_child_falls_back_to_the_work_done_here(forking: None) -> None:
    parent = os.getpid()

    def work() -> str:
        if os.getpid() != parent:
            raise RuntimeError("only in the child")
        return "done here"

    with BackgroundJob(work) as job:
        assert job.result() == "done here"
    assert not job.ran_in_child


def test_a_child_that_dies_falls_back_to_the_work_done_here(forking: None) -> None:
    parent = os.getpid()

    def work() -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return 42

    with BackgroundJob(work) as job:
        assert job.result() == 42
    assert not job.ran_in_child


def test_an_error_of_the_work_surfaces_as_itself(forking: None) -> None:
    def work() -> None:
        raise ValueError("bad weights")

    with pytest.raises(ValueError, match="bad weights"), BackgroundJob(work) as job:
        job.result()


def test_a_child_whose_result_is_not_wanted_is_stopped(forking: None) -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), BackgroundJob(lambda: time.sleep(60)) as job:
        pid = job._pid
        assert pid is not None
        raise KeyboardInterrupt
    assert _gone(pid)
    assert time.monotonic() - started < 10


def test_a_warm_job_warms_up_before_its_argument_exists(forking: None, tmp_path: Path) -> None:
    marker = tmp_path / "warmed"
    parent = os.getpid()

    def warm_up() -> None:
        marker.write_text(str(os.getpid()))

    with WarmJob(lambda argument: (os.getpid(), argument * 2), warm_up=warm_up) as job:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:  # warmed before anything is sent
            time.sleep(0.01)
        assert marker.exists()
        job.send([1, 2])
        worker, doubled = job.result()
    assert job.ran_in_child and worker == int(marker.read_text()) != parent
    assert doubled == [1, 2, 1, 2]


def test_a_warm_job_whose_child_is_gone_or_whose_argument_cannot_travel_works_here(forking: None) -> None:
    parent = os.getpid()

    def dies() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with WarmJob(lambda argument: (os.getpid(), argument), warm_up=dies) as job:
        time.sleep(0.2)
        job.send("x" * 1_000_000)  # more than a pipe holds, to a child that is gone: no error
        assert job.result() == (parent, "x" * 1_000_000)
    assert not job.ran_in_child

    unpicklable = lambda: None  # noqa: E731 - a lambda is what pickle refuses
    with WarmJob(lambda argument: os.getpid(), warm_up=lambda: None) as job:
        job.send(unpicklable)
        assert job.result() == parent


def test_no_child_when_turned_off_or_on_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNVIZ_SERIAL", "1")
    assert not background.forking_pays()
    monkeypatch.delenv("NNVIZ_SERIAL")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert not background.forking_pays()
    with BackgroundJob(os.getpid) as job:
        assert job._pid is None
        assert job.result() == os.getpid()


def test_a_report_is_the_same_with_and_without_children(forking: None, image_folder: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    jobs: list[BackgroundJob[object]] = []
    original_init = BackgroundJob.__init__

    def recorded_init(self: BackgroundJob[object], *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        jobs.append(self)

    monkeypatch.setattr(BackgroundJob, "__init__", recorded_init)
    formats = (OutputFormat.HTML, OutputFormat.PDF, OutputFormat.JSON, OutputFormat.MARKDOWN)
    options = dict(model="tests.fixtures.models:tiny_cnn", data=str(image_folder), per_class=2, formats=formats,
                   progress=False)
    forked = generate_report(out_dir=tmp_path / "forked", **options)
    # the PDF renderer started first, the weight charts, the summary, activation and gradient charts
    # (since the capture), the robustness charts (the PDF's cold job stays unforked)
    assert [job.ran_in_child for job in jobs] == [True, True, True, True, False]

    jobs.clear()
    monkeypatch.setenv("NNVIZ_SERIAL", "1")
    monkeypatch.setattr(background, "forking_pays", lambda: False)
    serial = generate_report(out_dir=tmp_path / "serial", **options)
    assert len(jobs) == 5 and not any(job.ran_in_child for job in jobs)

    for kind, path in forked.paths.items():
        assert path.read_bytes() == serial.paths[kind].read_bytes(), kind
