"""The background job runner: subprocess of the CLI, one at a time, queue, cooperative stop."""

import os
import tempfile
import time
from pathlib import Path

import pytest

from engine.store.jobs import JobRunner
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow  # every test here starts training processes


@pytest.fixture
def runner(isolated_store):
    return JobRunner(runs_dir=isolated_store / "runs", cache_dir=isolated_store / "cache")


def test_jobs_run_one_at_a_time_in_fifo_order_land_in_the_store_and_seeds_share_a_group(runner, tiny_dataset):
    # One submission of two seeds (as the Repeat control does) plus a third job, cancelled while queued.
    cfg = tiny_config("feature_extraction", tiny_dataset, backbone="mobilenet_v2", epochs=2)
    cfg.fit.learning_rate = 0.5  # not the preset's: the config's values win, the preset only names the runs
    runner.submit(cfg, preset="lecture", seeds=2)
    c = runner.submit(tiny_config("feature_extraction", tiny_dataset, epochs=1))
    time.sleep(0.5)
    a, b = runner.jobs()[:2]
    assert [j.state for j in (a, b, runner.get(c.id))] == ["running", "queued", "queued"]
    assert [j.id for j in runner.active()] == [a.id, b.id, c.id]
    queued = runner.progress(b.id)
    assert queued["elapsed_s"] is None and queued["status"] == {}  # waiting: no time counted, never negative
    assert runner.stop(c.id) and runner.get(c.id).state == "cancelled"
    assert runner.wait(b.id, timeout=300).returncode == 0
    assert runner.get(a.id).ended <= runner.get(b.id).started  # never two at once
    assert runner.get(c.id).started is None  # the cancelled job never ran

    prog = runner.progress(a.id)  # what the subprocess left in the store
    assert prog["metrics"]["state"] == "finished" and len(prog["history"]["loss"]) == 2
    assert runner.store.load(a.id).model_path.exists()
    status = prog["status"]
    assert status["stage"] == "finished" and status["epoch"] == 2 and status["epochs_total"] == 2 and status["finished"]
    assert prog["error"] == "" and prog["elapsed_s"] > 0
    time.sleep(1.2)
    assert runner.progress(a.id)["elapsed_s"] == prog["elapsed_s"]  # frozen once the job ended

    configs = [runner.store.load(j.id).config for j in (a, b)]
    assert [c["fit"]["seed"] for c in configs] == [cfg.fit.seed, cfg.fit.seed + 1]
    groups = {c["resolved"]["repeat_group"] for c in configs}
    assert len(groups) == 1 and [c["resolved"]["repeat_index"] for c in configs] == [0, 1]
    assert all(c["resolved"]["preset"] == "lecture" and c["fit"]["learning_rate"] == 0.5 for c in configs)


def stop_after_epochs(runner, job_id: str, epochs: int) -> dict:
    """Waits until the job has finished `epochs` epochs, clicks Stop, waits for the end; its progress."""
    deadline = time.time() + 240
    while time.time() < deadline and len(runner.progress(job_id)["history"].get("loss", [])) < epochs:
        time.sleep(0.3)
    assert runner.stop(job_id)
    runner.wait(job_id, timeout=120)
    return runner.progress(job_id)


def test_a_restarted_dashboard_adopts_the_running_job_waits_for_it_and_can_stop_it(runner, tiny_dataset):
    import json

    job = runner.submit(tiny_config("feature_extraction", tiny_dataset, epochs=200))
    deadline = time.time() + 240
    while time.time() < deadline and not runner.progress(job.id)["history"].get("loss"):
        time.sleep(0.2)
    owner = json.loads((runner.store.root / job.id / "heartbeat.json").read_text())
    restarted = JobRunner(runs_dir=runner.store.root, cache_dir=runner.cache_dir)  # a new server process's runner
    adopted = restarted.get(job.id)
    assert adopted.state == "running" and adopted.adopted_owner["pid"] == owner["pid"]
    assert [j.id for j in restarted.active()] == [job.id]
    nxt = restarted.submit(tiny_config("feature_extraction", tiny_dataset, epochs=1))
    time.sleep(2.5)
    assert restarted.get(nxt.id).state == "queued"  # one job at a time holds across the restart
    prog = stop_after_epochs(restarted, job.id, 2)
    assert prog["metrics"]["state"] == "stopped" and 2 <= len(prog["history"]["loss"]) < 200  # Stop keeps the epochs
    assert restarted.store.load(job.id).model_path.exists()
    assert restarted.wait(nxt.id, timeout=300).state == "done"
    assert restarted.get(nxt.id).started >= restarted.get(job.id).ended
    assert restarted.progress(nxt.id)["metrics"]["state"] == "finished"
    assert runner.wait(job.id, timeout=60).returncode == 0  # the first runner saw its process end cleanly


def test_invalid_config_is_rejected_before_queueing(runner, tiny_dataset):
    cfg = tiny_config("frozen", tiny_dataset)
    cfg.fit.epochs = 0
    with pytest.raises(ValueError, match="fit.epochs"):
        runner.submit(cfg)
    assert runner.jobs() == []


def test_a_killed_job_reads_interrupted_with_its_epochs_and_model(runner, tiny_dataset):
    import json
    import os
    import signal

    cfg = tiny_config("frozen", tiny_dataset, epochs=500)
    cfg.fit.batch_size = 1
    job = runner.submit(cfg)
    deadline = time.time() + 240
    while time.time() < deadline and not runner.progress(job.id)["history"].get("loss"):
        time.sleep(0.1)
    assert runner.progress(job.id)["metrics"]["state"] == "running"
    owner = json.loads((runner.store.root / job.id / "heartbeat.json").read_text())
    os.kill(owner["pid"], signal.SIGKILL)  # as the OOM killer or `kill -9` would
    assert runner.wait(job.id, timeout=60).returncode == -signal.SIGKILL
    prog = runner.progress(job.id)
    n = len(prog["history"]["loss"])
    assert prog["metrics"]["state"] == "interrupted" and n >= 1
    assert prog["metrics"]["message"].startswith(f"{n} of 500 epoch(s) done; its process (pid {owner['pid']} on ")
    assert prog["metrics"]["message"].endswith("(killed by SIGKILL)")
    assert runner.store.load_model(job.id).input_shape == (None, 32, 32, 3)


def test_warm_start_hands_each_job_to_a_waiting_process_with_its_log_and_its_stop(isolated_store, tiny_dataset, tmp_path):
    runner = JobRunner(runs_dir=isolated_store / "runs", cache_dir=isolated_store / "cache", warm_start=True)
    try:
        waiting = runner._standby
        assert waiting is not None and waiting.poll() is None  # started with the runner, before any job
        long = runner.submit(tiny_config("frozen", tiny_dataset, epochs=200))
        prog = stop_after_epochs(runner, long.id, 1)  # SIGTERM reaches the handed-over run
        assert prog["metrics"]["state"] == "stopped" and runner.get(long.id).returncode == 0
        assert waiting.poll() == 0  # the waiting process ran the job and ended: one process per job
        after = runner._standby
        assert after is not None and after is not waiting  # the next one waits while the runner is idle
        after.kill()  # a standby that died is not used: the next job starts cold
        after.wait()
        cfg = tiny_config("feature_extraction", tiny_dataset)
        cfg.backbone.weights = str(tmp_path / "missing.weights.h5")
        failed = runner.submit(cfg)
        assert runner.wait(failed.id, timeout=300).returncode == 2  # its own answer, not the dead standby's
        prog = runner.progress(failed.id)  # one sentence; the whole stderr kept apart in the job's own log
        assert prog["metrics"]["state"] == "failed"
        assert prog["error"].startswith("weights file not found: ") and "missing.weights.h5" in prog["error"]
        assert "\n" not in prog["error"] and "absl" not in prog["error"] and "oneDNN" not in prog["error"]
        assert prog["error"] in prog["log"]
    finally:
        runner.close()
    assert runner._standby is None


def test_what_a_standby_printed_before_its_job_reaches_the_job_log(isolated_store, tiny_dataset, tmp_path):
    fake = tmp_path / "python"  # a standby that fails while "importing", after saying why
    fake.write_text("#!/bin/sh\necho 'boom: the standby could not import tensorflow' >&2\nread line\nexit 3\n")
    fake.chmod(0o755)
    runner = JobRunner(runs_dir=isolated_store / "runs", cache_dir=isolated_store / "cache", python=str(fake), warm_start=True)
    try:
        job = runner.submit(tiny_config("feature_extraction", tiny_dataset, epochs=1))
        assert runner.wait(job.id, timeout=60).returncode == 3
        prog = runner.progress(job.id)
        assert prog["metrics"]["state"] == "failed" and "exit status 3" in prog["error"]
        assert "boom: the standby could not import tensorflow" in prog["log"]
    finally:
        runner.close()
    assert not list((Path(tempfile.gettempdir()) / "tls-jobs").glob(f"standby-{os.getpid()}-*.log"))  # none left behind
