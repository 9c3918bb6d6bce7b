"""The job panel shows the truth of the queue (ui/job_view.py over engine/store/jobs.py): running on top with Stop,
queued jobs each with Cancel, a repeated Train refused, every state from the runner (AppTest, no real training)."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from engine.store.jobs import JobRunner
from tests.conftest import ROOT


class HeldProcess:
    """A training process that runs until it is signalled (what Stop sends), without TensorFlow."""

    def __init__(self) -> None:
        self.signalled = threading.Event()

    def send_signal(self, sig) -> None:
        assert sig == signal.SIGTERM
        self.signalled.set()

    def wait(self) -> int:
        self.signalled.wait(60)
        return -signal.SIGTERM


@pytest.fixture
def held_jobs(monkeypatch):
    """Jobs start as held processes; the list of them, in start order."""
    started: list[HeldProcess] = []

    def start(self, job, config_path, log):
        started.append(HeldProcess())
        return started[-1]

    monkeypatch.setattr(JobRunner, "_start", start)
    monkeypatch.setattr("engine.store.jobs.JobRunner.progress", JobRunner.progress)
    return started


def page() -> AppTest:
    at = AppTest.from_string(
        f"""
import runpy
from ui.sidebar import render_sidebar
render_sidebar()
runpy.run_path({str(ROOT / "pages/feature_extraction.py")!r}, run_name="__main__")
""",
        default_timeout=120,
    )
    at.query_params["weights"] = "none"
    return at


def until(check, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while not check():
        assert time.time() < end, "timed out"
        time.sleep(0.05)


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_seeds_double_train_cancel_and_stop_each_show_what_the_runner_has(held_jobs):
    from ui import resources

    at = page().run()
    assert not at.exception, at.exception
    at.number_input(key="feature_extraction_seeds").set_value(2)
    next(b for b in at.button if b.label == "Train").click().run()
    runner = resources.job_runner()
    first, second = runner.jobs()
    until(lambda: first.state == "running")
    at.run()
    assert not at.exception, at.exception
    assert any(c.startswith("Dataset: **") and first.id in c and "(seed 42, 1 of 2)" in c for c in captions(at))
    assert at.button(key=f"stop_{first.id}")  # the running job on top, with its Stop
    assert f"Queued 1/1 (seed 43, 2 of 2): run {second.id}, starts when the job before it ends" in captions(at)

    next(b for b in at.button if b.label == "Train").click().run()  # the same settings again: refused with a sentence
    assert len(runner.jobs()) == 2
    assert any(
        w.value.startswith(f"Not queued again: the same settings are already running as job {first.id}") for w in at.warning
    )

    at.button(key=f"cancel_{second.id}").click().run()
    assert second.state == "cancelled" and len(held_jobs) == 1  # it never starts
    assert f"cancelled (seed 43, 2 of 2): run {second.id} never started" in captions(at)

    at.button(key=f"stop_{first.id}").click().run()
    until(lambda: first.state == "done")
    at.run()
    assert not at.exception, at.exception
    bars = [p.proto.text for p in at.get("progress")]
    assert bars and bars[-1].startswith("stopped:"), bars  # never a panel stuck on "running"
    assert not any(b.key and b.key.startswith(("stop_", "cancel_")) for b in at.button)
    next(b for b in at.button if b.label == "Train").click().run()  # nothing queued or running now: trains again
    assert len(runner.jobs()) == 4  # both seeds again


@pytest.mark.parametrize(
    "before, after, pace, reruns",
    [
        ([], [], 5.0, 0),  # idle: a slow poll
        (["job"], ["job"], 1.0, 0),  # a job queued or running: every second
        (["job"], [], 1.0, 1),  # the last job ended during this poll: one whole-page redraw (which slows the poll)
        ([], ["job"], 5.0, 1),  # a job queued in another tab appeared: one whole-page redraw (which speeds it up)
    ],
)
def test_the_job_panel_polls_every_second_only_while_jobs_are_active(monkeypatch, before, after, pace, reruns):
    from ui import approach_page

    active = iter([before, after])
    monkeypatch.setattr(
        approach_page.resources, "job_runner", lambda: type("Runner", (), {"active": lambda self: next(active)})()
    )
    monkeypatch.setattr(approach_page, "job_panel", lambda approach: None)
    paces, rerun = [], []
    monkeypatch.setattr(approach_page.st, "fragment", lambda run_every: (paces.append(run_every), lambda fn: fn)[1])
    monkeypatch.setattr(approach_page.st, "rerun", lambda: rerun.append(1))
    approach_page.live_job_panel("frozen")
    assert paces == [pace] and len(rerun) == reruns


def test_a_finder_job_started_before_a_restart_is_shown_running_with_its_stop(isolated_store, tiny_dataset):
    import subprocess

    from engine.store import job_logs
    from tests.conftest import tiny_config

    finder = subprocess.Popen(["sleep", "60"])  # the finder's process, left running by a dashboard that was killed
    try:
        job_id = "lr-find-20260101-000000-feature_extraction-abcdef"
        job_logs.write_owner(
            isolated_store / "runs",
            job_id,
            finder.pid,
            kind="lr-find",
            approach="feature_extraction",
            config=tiny_config("feature_extraction", tiny_dataset).to_dict(),
            started=time.time(),
            log="",
        )
        at = page().run()  # the new server's runner adopts it
        assert not at.exception, at.exception
        assert any("Also in the queue: Feature extraction learning-rate finder (running)" in c for c in captions(at))
        stop = at.button(key=f"stop_{job_id}")
        assert stop.label == f"Stop the learning-rate finder job {job_id} (started before the dashboard restarted)"
        stop.click().run()
        assert finder.wait(timeout=10) == -signal.SIGTERM
    finally:
        finder.kill()
        finder.wait()
