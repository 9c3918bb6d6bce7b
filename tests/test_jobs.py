"""The background job runner: subprocess of the CLI, one at a time, queue, cooperative stop."""

import time

import pytest

from engine.jobs import JobRunner
from tests.conftest import tiny_config


@pytest.fixture
def runner(isolated_store):
    return JobRunner(runs_dir=isolated_store / "runs", cache_dir=isolated_store / "cache")


def test_job_runs_in_a_subprocess_and_lands_in_the_store(runner, tiny_dataset):
    job = runner.submit(tiny_config("feature_extraction", tiny_dataset, epochs=2))
    assert runner.wait(job.id, timeout=300).returncode == 0
    prog = runner.progress(job.id)
    assert prog["metrics"]["state"] == "finished" and len(prog["history"]["loss"]) == 2
    assert runner.store.load(job.id).model_path.exists()


def test_one_at_a_time_queue_and_cancel(runner, tiny_dataset):
    a = runner.submit(tiny_config("frozen", tiny_dataset, epochs=2))
    b = runner.submit(tiny_config("frozen", tiny_dataset, epochs=1))
    c = runner.submit(tiny_config("frozen", tiny_dataset, epochs=1))
    time.sleep(0.5)
    states = {j.id: j.state for j in runner.jobs()}
    assert states[a.id] == "running" and states[b.id] == "queued" and states[c.id] == "queued"
    assert [j.id for j in runner.active()] == [a.id, b.id, c.id]
    assert runner.stop(c.id) and runner.get(c.id).state == "cancelled"
    runner.wait(b.id, timeout=300)
    assert runner.get(a.id).ended <= runner.get(b.id).started  # never two at once
    assert runner.progress(b.id)["metrics"]["state"] == "finished"


def test_stop_keeps_finished_epochs(runner, tiny_dataset):
    job = runner.submit(tiny_config("frozen", tiny_dataset, epochs=200))
    deadline = time.time() + 240
    while time.time() < deadline and len(runner.progress(job.id)["history"].get("loss", [])) < 2:
        time.sleep(0.3)
    assert runner.stop(job.id)
    runner.wait(job.id, timeout=120)
    prog = runner.progress(job.id)
    assert prog["metrics"]["state"] == "stopped"
    assert 2 <= len(prog["history"]["loss"]) < 200
    assert runner.store.load(job.id).model_path.exists()


def test_invalid_config_is_rejected_before_queueing(runner, tiny_dataset):
    cfg = tiny_config("frozen", tiny_dataset)
    cfg.fit.epochs = 0
    with pytest.raises(ValueError, match="fit.epochs"):
        runner.submit(cfg)
    assert runner.jobs() == []
