"""status.json: what a run is doing now (stage, counts, epochs), an ETA from measured times, a frozen end."""

import pytest

from engine.store.runs import RunStore
from engine.store.status import StatusTracker, elapsed_seconds
from tests.conftest import tiny_config


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def tracker(epochs_total=3):
    clock, writes = Clock(), []
    return StatusTracker(writes.append, None, started=clock.t, epochs_total=epochs_total, clock=clock), clock, writes


def test_feature_caching_says_what_with_counts_and_a_rate_eta():
    t, clock, writes = tracker()
    t({"type": "status", "message": "caching validation features (1000 images) for this and later runs"})
    assert writes[-1]["stage"] == "caching features"  # while its images are decoded; a stage change is written at once
    clock.t += 10
    t({"type": "features", "split": "validation", "done": 100, "total": 1000})
    assert writes[-1]["eta_s"] is None  # nothing measured yet: the first batch only starts the clock
    clock.t += 3
    t({"type": "features", "split": "validation", "done": 400, "total": 1000})
    s = writes[-1]
    assert s["message"] == "caching validation features 400/1000" and (s["done"], s["total"]) == (400, 1000)
    assert s["eta_s"] == pytest.approx(6.0)  # 100 images/s measured, 600 left
    t({"type": "status", "message": "caching test features (500 images) for this and later runs"})
    assert (writes[-1]["done"], writes[-1]["total"], writes[-1]["eta_s"]) == (0, 0, None)  # not the last pass's counts
    clock.t += 1
    t({"type": "features", "split": "train view 2/3", "done": 100, "total": 1000})
    assert writes[-1]["stage"] == "caching augmented views"
    assert writes[-1]["message"] == "caching augmented view 2/3 of the training images 100/1000"


def test_training_eta_from_measured_epochs_first_epoch_left_out():
    t, clock, writes = tracker(epochs_total=4)
    t({"type": "batch", "phase": 1, "epoch": 1, "batch": 1, "batches": 10, "epochs_total": 4})
    assert writes[-1]["eta_s"] is None  # one step: nothing measured yet (never "ETA 0s")
    clock.t += 2
    t({"type": "batch", "phase": 1, "epoch": 1, "batch": 5, "batches": 10, "epochs_total": 4})
    s = writes[-1]
    assert s["stage"] == "training" and s["message"] == "epoch 1/4, step 5/10" and (s["step"], s["steps_total"]) == (5, 10)
    # 4 steps in 2 s = 0.5 s a step: 5 steps left in epoch 1 (2.5 s) + 3 epochs of 10 steps (15 s)
    assert s["eta_s"] == pytest.approx(17.5)
    t({"type": "epoch", "phase": 1, "epoch": 1, "epochs_total": 4, "seconds": 30.0})  # tracing makes epoch 1 slow
    assert writes[-1]["eta_s"] == pytest.approx(90.0) and writes[-1]["epoch"] == 1
    t({"type": "batch", "phase": 1, "epoch": 2, "batch": 1, "batches": 10, "epochs_total": 4})
    clock.t += 4.5
    t({"type": "batch", "phase": 1, "epoch": 2, "batch": 10, "batches": 10, "epochs_total": 4})
    assert writes[-1]["eta_s"] == pytest.approx(10.0)  # epoch 2's measured steps (5 s/epoch) stand in, not epoch 1's 30 s
    t({"type": "epoch", "phase": 1, "epoch": 2, "epochs_total": 4, "seconds": 10.0})
    assert writes[-1]["eta_s"] == pytest.approx(20.0)  # 2 epochs left at 10 s: the first epoch is not in the mean


def test_writes_are_throttled_but_stage_changes_and_epochs_are_not():
    t, clock, writes = tracker()
    n = len(writes)
    for i in range(1, 50):
        clock.t += 0.01
        t({"type": "batch", "phase": 1, "epoch": 1, "batch": i, "batches": 50})
    assert len(writes) - n == 1  # the stage change only: 0.49 s passed
    t({"type": "epoch", "phase": 1, "epoch": 1, "epochs_total": 3, "seconds": 0.5})
    assert len(writes) - n == 2


def test_finish_freezes_elapsed():
    t, clock, writes = tracker()
    clock.t += 72
    t.finish("finished")
    s = writes[-1]
    assert s["stage"] == "finished" and s["finished"] == clock.t and s["eta_s"] is None
    assert elapsed_seconds(s, now=clock.t + 500) == pytest.approx(72)
    assert elapsed_seconds({}, now=0) is None


@pytest.mark.slow
def test_a_run_writes_status_json_through_its_stages(tiny_dataset, isolated_store, monkeypatch):
    from engine.training.approaches import RUNNERS, prepare_data

    seen: list[dict] = []
    original = RunStore.write_status

    def record(self, run_dir, status):
        seen.append(dict(status))
        original(self, run_dir, status)

    monkeypatch.setattr(RunStore, "write_status", record)
    from engine.store.run_clock import RunClock

    planned, started, saves = [], [], []  # the whole-run clock's parts, those the run's events started, its checkpoints
    original_init, original_start, original_saved = RunClock.__init__, RunClock.start, RunClock.saved

    def plan(self, parts, **kwargs):
        planned.extend(p.key for p in parts)
        original_init(self, parts, **kwargs)

    def saved(self, seconds):
        saves.append((self.current.key, seconds))
        original_saved(self, seconds)

    def start(self, key, now):
        began = original_start(self, key, now)
        if began:
            started.append(key)
        return began

    monkeypatch.setattr(RunClock, "__init__", plan)
    monkeypatch.setattr(RunClock, "start", start)
    monkeypatch.setattr(RunClock, "saved", saved)
    cfg = tiny_config("fine_tuning", tiny_dataset, backbone="mobilenet_v2", epochs=2, fine_tune_epochs=1)
    result = RUNNERS["fine_tuning"](
        cfg, prepare_data(str(tiny_dataset)), runs_dir=isolated_store / "runs", cache_dir=isolated_store / "cache"
    )
    stages = [s["stage"] for s in seen]
    assert stages[0] == "starting" and stages[-1] == "finished"
    for stage in ("caching features", "caching augmented views", "training", "scoring", "saving"):
        assert stage in stages, stages
    caching = [s for s in seen if s["stage"] == "caching features" and s["total"]]
    assert caching and all(s["done"] <= s["total"] == 8 for s in caching)  # 4 validation images per class
    assert any(s["message"].startswith("caching validation features ") for s in caching)
    assert {s["epochs_total"] for s in seen if s["stage"] == "training"} == {3}  # both phases together
    after_first = [s for s in seen if s["stage"] == "training" and s["message"] == "epoch 1/3 done"]
    assert after_first and after_first[0]["eta_s"] is not None
    assert (
        started
        == planned
        == ["pass:train view 1/1", "pass:validation", "epoch:1", "epoch:2", "epoch:3", "pass:test", "scoring", "saving"]
    )  # every planned part is named by the run's own events, in order
    assert saves and saves[0][0] == "epoch:1" and all(k.startswith("epoch:") and s > 0 for k, s in saves)  # each checkpoint
    running = [s for s in seen if s["stage"] not in ("finished", "stopped", "failed")]
    assert all(s["run_eta_s"] >= 1.0 for s in running)  # never "0 s" while work remains
    fractions = [s["run_fraction"] for s in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and max(fractions[:-1]) < 1.0  # one bar, 0 -> 1 once
    final = RunStore.read_status(result.run_dir)
    assert final["stage"] == "finished" and final["finished"] >= final["started"] and final["epoch"] == 3
    assert RunStore.read_status(isolated_store / "nowhere") == {}


def test_without_a_run_clock_no_whole_run_eta_is_claimed():
    t, clock, writes = tracker()
    t({"type": "features", "split": "train", "done": 10, "total": 100})
    assert writes[-1]["run_eta_s"] is None and writes[-1]["run_fraction"] == 0.0  # the planned parts: tests/test_run_clock.py
    t.finish("finished")
    assert writes[-1]["run_fraction"] == 1.0
    stopped = tracker()[0]
    stopped.status["run_fraction"] = 0.4
    stopped.finish("stopped")
    assert stopped.status["run_fraction"] == 0.4  # where its bar stood, not full
