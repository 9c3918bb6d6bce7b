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


def fake_python(tmp_path) -> Path:
    """A `python` (no TensorFlow) whose lr-find jobs run until signalled and whose runs end at once."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\ncase "$*" in *lr-find*) exec sleep 120;; esac\nexit 0\n')
    fake.chmod(0o755)
    return fake


def until(check, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while not check():
        assert time.time() < end, "timed out"
        time.sleep(0.05)


def test_a_restarted_dashboard_adopts_a_live_tool_job_waits_for_it_and_can_stop_it(isolated_store, tiny_dataset, tmp_path):
    import json
    import signal

    fake, runs = fake_python(tmp_path), isolated_store / "runs"
    first = JobRunner(runs_dir=runs, python=str(fake))
    tool = first.submit_tool("lr-find", tiny_config("frozen", tiny_dataset))
    owner_file, config_file = runs / ".jobs" / f"{tool.id}.owner.json", runs / ".jobs" / f"{tool.id}.config.json"
    until(owner_file.exists)
    assert json.loads(config_file.read_text()) == tool.config  # the job's config lives in the store, not in /tmp
    owner = json.loads(owner_file.read_text())
    assert owner["kind"] == "lr-find" and owner["config"] == tool.config and first._current[1].pid == owner["pid"]

    restarted = JobRunner(runs_dir=runs, python=str(fake))  # a new server process's runner
    adopted = restarted.get(tool.id)
    assert (adopted.state, adopted.kind, adopted.approach) == ("running", "lr-find", "frozen")
    assert adopted.adopted_owner["pid"] == owner["pid"] and adopted.log_path == first.get(tool.id).log_path
    nxt = restarted.submit(tiny_config("feature_extraction", tiny_dataset))
    time.sleep(2.5)
    assert restarted.get(nxt.id).state == "queued"  # never a run beside a running finder
    assert restarted.stop(tool.id)
    assert first.wait(tool.id, timeout=30).returncode == -signal.SIGTERM  # the Stop reached the finder's process
    assert restarted.wait(nxt.id, timeout=60).state == "done"
    assert restarted.get(nxt.id).started >= restarted.get(tool.id).ended
    assert not list((runs / ".jobs").iterdir())  # each job's files went with it


def test_a_new_runner_sweeps_the_job_files_of_jobs_that_no_longer_live(isolated_store, tiny_dataset):
    import os
    import subprocess

    from engine.store import job_logs
    from tests.conftest import dead_pid

    runs = isolated_store / "runs"
    folder = runs / ".jobs"
    folder.mkdir(parents=True)
    cfg = tiny_config("frozen", tiny_dataset).to_dict()
    old = time.time() - 3600
    for name in ("gone-run.config.json", "live-tool.config.json"):  # a killed dashboard's, an hour old
        (folder / name).write_text("{}")
        os.utime(folder / name, (old, old))
    (folder / "starting.config.json").write_text("{}")  # another runner may be starting this job right now
    job_logs.write_owner(runs, "dead-tool", dead_pid(), kind="lr-find", approach="frozen", config=cfg, started=old, log="")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        assert (
            job_logs.write_owner(
                runs, "live-tool", sleeper.pid, kind="feature-map", approach="frozen", config=cfg, started=old, log=""
            )
            == folder / "live-tool.owner.json"
        )
        runner = JobRunner(runs_dir=runs)
        assert sorted(p.name for p in folder.iterdir()) == [
            "live-tool.config.json",
            "live-tool.owner.json",
            "starting.config.json",
        ]
        assert runner.get("live-tool").state == "running" and runner.get("live-tool").kind == "feature-map"
        assert runner.get("dead-tool") is None
    finally:
        sleeper.kill()
        sleeper.wait()
    until(lambda: runner.get("live-tool").state == "done")
    assert not (folder / "live-tool.owner.json").exists()


def test_a_job_whose_config_cannot_be_written_fails_with_one_sentence(isolated_store, tiny_dataset, tmp_path):
    runs = isolated_store / "runs"
    runs.mkdir()
    (runs / ".jobs").write_text("a file where the folder should be")
    runner = JobRunner(runs_dir=runs, python=str(fake_python(tmp_path)))
    job = runner.submit(tiny_config("frozen", tiny_dataset))
    assert runner.wait(job.id, timeout=30).returncode is None
    prog = runner.progress(job.id)
    assert prog["metrics"]["state"] == "failed" and prog["error"].startswith(
        f"cannot write the job's files into {runs / '.jobs'} ("
    )
