"""The whole run's clock (engine/store/run_clock.py): planned parts re-timed by what the run measured (fake clock, no training)."""

import pytest

from engine.store.run_clock import MIN_LEFT_S, Part, RunClock
from engine.store.status import StatusTracker


def frozen_parts() -> list[Part]:
    """A frozen run with K = 3 views and 4 epochs, as engine/training/timeline.py plans it."""
    return (
        [Part(f"pass:train view {v}/3", "view", 10.0) for v in (1, 2, 3)]
        + [Part("pass:validation", "plain", 5.0)]
        + [Part("epoch:1", "first_epoch", 6.0)]
        + [Part(f"epoch:{e}", "epoch1", 4.0) for e in (2, 3, 4)]
        + [Part("pass:test", "plain", 5.0), Part("scoring", "scoring", 1.0), Part("saving", "saving", 2.0)]
    )


def test_a_part_slower_than_estimated_makes_the_rest_as_much_slower():
    clock = RunClock(frozen_parts())
    assert clock.seconds_left(0.0) == pytest.approx(61.0)  # the plan's estimates, before anything is measured
    clock.start("pass:train view 1/3", 0.0)
    clock.start("pass:train view 2/3", 18.0)  # view 1: 18 s where 10 were estimated, 1.8x
    # the two views left at view 1's pace (2 x 18 s; the one under way less its 0 s gone), the rest 1.8x too
    assert clock.seconds_left(18.0) == pytest.approx(1.8 * 51.0)
    clock.start("pass:train view 3/3", 36.0)
    clock.start("pass:validation", 54.0)
    clock.start("epoch:1", 58.0)  # a plain pass 0.8x its estimate (4 s of 5): plain parts are re-timed on their own
    per_kind, overall = clock.ratios(58.0)
    assert per_kind == {"view": pytest.approx(1.8), "plain": pytest.approx(0.8)}
    assert overall == pytest.approx(58.0 / 35.0)
    assert clock.seconds_left(58.0) == pytest.approx(overall * (6 + 12 + 1 + 2) + 0.8 * 5)


def test_the_part_under_way_counts_with_its_own_rate_and_never_reads_zero():
    clock = RunClock([Part("pass:train", "plain", 10.0), Part("saving", "saving", 2.0)])
    clock.start("pass:train", 0.0)
    # its rate says 20 s more after 10 s: 3x its estimate, so saving is foreseen 3x too
    assert clock.seconds_left(10.0, current_left=20.0) == pytest.approx(20.0 + 3 * 2.0)
    # foreseen from its first tenth only (first batches run slow): its own rest, the others as estimated
    assert clock.seconds_left(10.0, current_left=20.0, current_share=0.1) == pytest.approx(20.0 + 2.0)
    assert clock.seconds_left(8.0) == pytest.approx(2.0 + 2.0)  # no rate yet: its estimate less the time gone
    assert clock.seconds_left(30.0) == pytest.approx(
        0.2 * 30 + 2.0 * 36 / 10
    )  # past its estimate: a share of its time, the rest slower
    clock.start("saving", 30.0)
    assert clock.seconds_left(500.0) == pytest.approx(0.2 * 470)  # the last part, long past its estimate: still not "0 s"
    clock.end(501.0)
    assert clock.seconds_left(501.0) == MIN_LEFT_S > 0  # every part ended, the run not yet: the least, never 0


def test_parts_passed_over_cost_nothing_and_unknown_keys_change_nothing():
    clock = RunClock(frozen_parts())
    clock.start("pass:train view 1/3", 0.0)
    assert not clock.start("pass:nothing planned", 1.0)
    clock.start("epoch:1", 10.0)  # views 2-3 and validation were in the cache: never started, never counted
    assert clock.ratios(10.0)[0] == {"view": pytest.approx(1.0)}
    clock.start("scoring", 16.0)  # early stopping skipped epochs 2-4 and the test split was cached
    assert clock.seconds_left(16.0) == pytest.approx(1.0 + 2.0)  # scoring and saving, at the pace measured (1.0 overall)


def test_before_any_part_is_measured_the_estimates_stand():
    clock = RunClock([Part("pass:train", "plain", 10.0, setup_s=2.0), Part("saving", "saving", 1.0)])
    clock.start("pass:train", 0.0)
    assert clock.seconds_left(0.5) == pytest.approx(12.5)  # its setup under way: the plan less the time gone


def test_a_setup_is_timed_apart_from_the_counted_work():
    """A calibration's one-off tracing says little of a run's: setups (tracing, decoding) are their own kind."""
    clock = RunClock(
        [
            Part("pass:train view 1/2", "view", 10.0, setup_s=20.0),
            Part("pass:train view 2/2", "view", 10.0, setup_s=20.0),
            Part("epoch:1", "epoch1", 4.0, setup_s=5.0),
        ]
    )
    clock.start("pass:train view 1/2", 0.0)
    clock.begin_body(2.0)  # its first batch after 2 s of the 20 estimated: tracing 0.1x
    clock.start("pass:train view 2/2", 22.0)  # its 2000 images in 20 s of the 10 estimated: 2x
    per_kind, _ = clock.ratios(22.0)
    assert per_kind == {"setup": pytest.approx(0.1), "view": pytest.approx(2.0)}
    # view 2: its setup at 0.1x and its images at 2x; epoch 1: its tracing at 0.1x and its steps at the overall 22/30
    assert clock.seconds_left(22.0) == pytest.approx(2.0 + 20.0 + 0.5 + 4.0 * 22 / 30)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_status_json_has_one_whole_run_eta_and_one_bar_from_0_to_1_once():
    """Fake stage timings: views and epochs 1.5x slower than planned; the ETA follows, the bar only goes up."""
    parts = (
        [Part(f"pass:train view {v}/2", "view", 10.0) for v in (1, 2)]
        + [Part("pass:validation", "plain", 4.0)]
        + [
            Part("epoch:1", "first_epoch", 4.0),
            Part("epoch:2", "epoch1", 2.0),
            Part("scoring", "scoring", 1.0),
            Part("saving", "saving", 1.0),
        ]
    )
    clock, writes = Clock(), []
    t = StatusTracker(writes.append, None, started=clock.t, epochs_total=2, clock=clock, run_clock=RunClock(parts))
    assert writes[-1]["run_eta_s"] == pytest.approx(32.0) and writes[-1]["run_fraction"] == 0.0

    def step(seconds, event):
        clock.t += seconds
        t(event)
        return writes[-1]

    step(0, {"type": "status", "message": "caching augmented view 1/2 of the training images", "part": "pass:train view 1/2"})
    step(5, {"type": "features", "split": "train view 1/2", "done": 50, "total": 200})
    s = step(5, {"type": "features", "split": "train view 1/2", "done": 100, "total": 200})
    assert s["eta_s"] == pytest.approx(10.0)  # 50 images in 5 s, 100 left
    assert s["run_eta_s"] == pytest.approx(10.0 + 22.0 * 2.0)  # view 1 foresees 20 s of its 10: the rest twice as long too
    s = step(5, {"type": "status", "message": "caching augmented view 2/2 of the training images", "part": "pass:train view 2/2"})
    assert s["run_eta_s"] == pytest.approx(15.0 + 12.0 * 1.5)  # view 1 took 15 s (1.5x): view 2 as long, the rest 1.5x
    fractions = [s["run_fraction"]]
    for seconds, event in [
        (15, {"type": "status", "message": "caching validation features (40 images)", "part": "pass:validation"}),
        (6, {"type": "stage", "stage": "training", "message": "epoch 1/2: preparing", "part": "epoch:1"}),
        (3, {"type": "batch", "phase": 1, "epoch": 1, "batch": 1, "batches": 4}),
        (3, {"type": "epoch", "phase": 1, "epoch": 1, "epochs_total": 2, "seconds": 6.0}),
        (0, {"type": "batch", "phase": 1, "epoch": 2, "batch": 1, "batches": 4}),
        (1, {"type": "batch", "phase": 1, "epoch": 2, "batch": 3, "batches": 4}),
        (1, {"type": "epoch", "phase": 1, "epoch": 2, "epochs_total": 2, "seconds": 3.0}),
        (0, {"type": "stage", "stage": "scoring", "message": "scoring"}),
        (1.5, {"type": "stage", "stage": "saving", "message": "saving model.keras"}),
        (30, {"type": "stage", "stage": "saving", "message": "saving model.keras"}),
    ]:
        s = step(seconds, event)
        fractions.append(s["run_fraction"])
        assert s["run_eta_s"] >= 1.0  # never "0 s" while work remains
    assert s["run_eta_s"] == pytest.approx(0.2 * 30)  # saving long past its estimate: a share of the time it took
    assert fractions == sorted(fractions) and fractions[-1] < 1.0  # only up, and not full before the run ended
    t.finish("finished")
    assert writes[-1]["run_fraction"] == 1.0 and writes[-1]["run_eta_s"] is None


def test_checkpoints_are_timed_apart_and_a_phase_expects_its_saves_less_those_made():
    """An epoch saves only when it improved (most of a phase's first epochs, few of its last): an epoch's own pace
    leaves its save out, and a phase expects `saves_per_phase` saves less those made, one per epoch at most."""
    parts = [Part(f"epoch:{e}", "epoch1", 1.0, save_s=0.5) for e in range(1, 7)] + [Part("saving", "saving", 0.5)]
    clock = RunClock(parts, saves_per_phase=2)
    assert clock.seconds_left(0.0) == pytest.approx(6 * 1.0 + 2 * 0.5 + 0.5)  # two of the six epochs save
    clock.start("epoch:1", 0.0)
    clock.saved(1.0)  # epoch 1 improved: its save took 1 s (2x) ...
    clock.start("epoch:2", 2.0)  # ... of its 2 s: its steps took 1 s, as planned
    per_kind, _ = clock.ratios(2.0)
    assert per_kind == {"save": pytest.approx(2.0), "epoch1": pytest.approx(1.0)}
    # five epochs at 1 s, the one save left at 2x, saving at the overall pace: 2 s measured of 1.5 planned
    assert clock.seconds_left(2.0) == pytest.approx(5 * 1.0 + 1 * 1.0 + 0.5 * 2.0 / 1.5)
    clock.saved(1.0)
    clock.start("epoch:3", 4.0)  # both saves made: the epochs left save nothing more
    assert clock.seconds_left(4.0) == pytest.approx(4 * 1.0 + 0.5 * 4.0 / 3.0)


def test_status_json_is_rewritten_between_events_while_a_part_runs_without_any(monkeypatch):
    """Decoding a split or tracing a step sends no event for seconds: the ETA still moves on, then stops at the end."""
    import threading
    import time

    from engine.store import status as status_module

    monkeypatch.setattr(status_module, "TICK_S", 0.02)
    clock, writes, wrote = Clock(), [], threading.Event()

    def write(s):
        writes.append(s)
        wrote.set()

    t = StatusTracker(write, None, started=clock.t, clock=clock, run_clock=RunClock([Part("pass:validation", "plain", 10.0)]))
    t({"type": "status", "message": "caching validation features (1000 images)", "part": "pass:validation"})
    first = writes[-1]["run_eta_s"]
    t.start_ticking()
    wrote.clear()
    clock.t += 4.0  # four seconds without an event
    assert wrote.wait(5.0)
    assert writes[-1]["run_eta_s"] == pytest.approx(first - 4.0) and writes[-1]["updated"] == clock.t
    t.finish("finished")
    ended = len(writes)
    clock.t += 1.0
    time.sleep(0.2)  # ten ticks' time
    assert len(writes) == ended and writes[-1]["stage"] == "finished"  # nothing written after the end


def test_a_tick_never_takes_an_events_turn_to_be_written():
    """Events are written at most every THROTTLE_S; a tick's write just before must not swallow a pass's counts
    (a tiny run's validation counts came 0.3 s after a tick and never reached status.json)."""
    clock, writes = Clock(), []
    t = StatusTracker(
        writes.append, None, started=clock.t, clock=clock, run_clock=RunClock([Part("pass:validation", "plain", 1.0)])
    )
    t({"type": "status", "message": "caching validation features (8 images)", "part": "pass:validation"})
    clock.t += 1.0
    t.flush(clock.t, tick=True)
    clock.t += 0.3
    t({"type": "features", "split": "validation", "done": 8, "total": 8})
    assert writes[-1]["done"] == writes[-1]["total"] == 8
