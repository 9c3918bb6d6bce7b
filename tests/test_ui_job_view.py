"""The live panel's words (ui/job_view.py): what a job does, with counts; elapsed frozen at the end; one-sentence errors."""

from types import SimpleNamespace

from ui.job_view import one_sentence, progress_line

CONFIG = {"approach": "feature_extraction", "fit": {"epochs": 3}, "data": {"path": "/d"}}


def job(state="running", started=1000.0, ended=None, config=CONFIG):
    return SimpleNamespace(state=state, started=started, ended=ended, config=config)


def test_caching_features_says_what_it_does_with_counts_and_a_measured_eta():
    status = {
        "stage": "caching features",
        "message": "caching validation features 400/1000",
        "done": 400,
        "total": 1000,
        "epoch": 0,
        "epochs_total": 3,
        "eta_s": 42.0,
    }
    fraction, text = progress_line(job(), {"status": status, "metrics": {"state": "running"}, "elapsed_s": 30.0}, now=1030.0)
    assert text == "running: caching validation features 400/1000 · elapsed 30s · ETA 42s"
    assert fraction == 0.4
    assert "epoch 0/" not in text and "ETA 0s" not in text


def test_no_eta_zero_before_anything_is_measured():
    _, text = progress_line(job(), {"status": {}, "metrics": {"state": "running"}, "elapsed_s": 5.0}, now=1005.0)
    assert text == "running: preparing; epoch 1/3 next · elapsed 5s · ETA after the first measured steps"


def test_training_bar_covers_the_whole_run():
    status = {
        "stage": "training",
        "message": "epoch 2/3, step 5/10",
        "epoch": 2,
        "epochs_total": 3,
        "step": 5,
        "steps_total": 10,
        "eta_s": 15.0,
    }
    prog = {"status": status, "metrics": {"state": "running"}, "history": {"loss": [1.0]}, "elapsed_s": 10.0}
    fraction, text = progress_line(job(), prog, now=1010.0)
    assert abs(fraction - 0.5) < 1e-9 and text.startswith("running: epoch 2/3, step 5/10 · elapsed 10s · ETA 15s")


def test_queued_job_shows_no_elapsed_time():
    fraction, text = progress_line(job(state="queued", started=None), {"elapsed_s": None}, now=1000.0)
    assert (fraction, text) == (0.0, "queued: waiting for the running job to finish")


def test_elapsed_is_frozen_when_the_run_finished():
    from engine.store.jobs import JobRunner

    ended = job(state="done", ended=1073.0)
    for now in (1100.0, 1500.0, 9000.0):  # polls long after the end read the same
        prog = {
            "metrics": {"state": "finished", "epochs_total": 3},
            "history": {"loss": [1, 2, 3]},
            "status": {},
            "elapsed_s": JobRunner.elapsed(ended, {}, now=now),
        }
        assert progress_line(ended, prog, now=now) == (1.0, "finished: epoch 3/3 · took 73s")


def test_a_stopped_run_reads_epochs_done_of_planned():
    prog = {
        "metrics": {"state": "stopped", "epochs_total": 3},
        "history": {"loss": [0.9]},
        "status": {"epochs_total": 3},
        "elapsed_s": 20.0,
    }
    fraction, text = progress_line(job(state="done", ended=1020.0), prog, now=2000.0)
    assert text == "stopped: epoch 1/3 · took 20s" and abs(fraction - 1 / 3) < 1e-9


def test_engine_errors_become_one_sentence_without_tensorflow_noise():
    log = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1732 cpu_feature_guard.cc:210] oneDNN custom operations are on.\n"
        "I0000 00:00:1732 cpu_feature_guard.cc:210] oneDNN custom operations are on.\n"
        "error: ImageNet weights for vgg16 could not be downloaded; pass a local weights file with --weights PATH"
    )
    sentence = one_sentence(log)
    assert "absl" not in sentence and "oneDNN" not in sentence and not sentence.startswith("error:")
    assert sentence.startswith("ImageNet weights for vgg16 could not be downloaded") and "a Local file in the sidebar" in sentence


def test_the_panel_gives_one_bar_and_one_eta_for_the_whole_run():
    job = SimpleNamespace(state="running", started=1000.0, ended=None, config={"approach": "frozen", "fit": {"epochs": 20}})
    status = {
        "stage": "caching features",
        "message": "caching validation features 4/4",
        "done": 4,
        "total": 4,
        "eta_s": 0.0,
        "run_eta_s": 140.0,
        "run_fraction": 0.3,
        "epochs_total": 20,
    }
    fraction, text = progress_line(job, {"status": status, "metrics": {"state": "running"}, "elapsed_s": 95.0})
    assert text == "running: caching validation features 4/4 · elapsed 95s · about 2 min 20 s left"
    assert fraction == 0.3  # the whole run's share, not the stage's 4/4 with 20 epochs still to run
    # the ETA is as of its write: read 20 s later it says 20 s less, and never less than a second while running
    prog = {"status": {**status, "updated": 2000.0}, "metrics": {"state": "running"}, "elapsed_s": 95.0}
    assert progress_line(job, prog, now=2020.0)[1].endswith("about 2 min 0 s left")
    assert progress_line(job, prog, now=2500.0)[1].endswith("about 1 s left")


def test_an_early_stopped_run_ends_on_a_full_bar_and_a_stopped_one_where_it_stood():
    prog = {
        "metrics": {"state": "finished", "epochs_total": 10},
        "history": {"loss": [1, 2, 3, 4]},
        "status": {"run_fraction": 1.0},
        "elapsed_s": 40.0,
    }
    assert progress_line(job(state="done", ended=1040.0), prog, now=2000.0) == (1.0, "finished: epoch 4/10 · took 40s")
    prog = {
        "metrics": {"state": "stopped", "epochs_total": 10},
        "history": {"loss": [1]},
        "status": {"run_fraction": 0.62},
        "elapsed_s": 40.0,
    }
    assert progress_line(job(state="done", ended=1040.0), prog, now=2000.0)[0] == 0.62  # not back to 1/10


def test_an_ended_run_gives_one_time_the_same_as_its_results_with_start_up_apart():
    prog = {
        "metrics": {"state": "finished", "epochs_total": 3, "wall_seconds": 229.4},
        "history": {"loss": [1, 2, 3]},
        "status": {},
        "elapsed_s": 237.0,
    }
    assert progress_line(job(state="done", ended=1237.0), prog, now=2000.0) == (
        1.0,
        "finished: epoch 3/3 · took 229s (+8s start-up)",
    )


class HandOverRunner:
    """A runner whose running job ends, and hands over to the queued one, while its live panel is drawn."""

    def __init__(self):
        config = {"approach": "feature_extraction", "fit": {"epochs": 3}, "data": {"path": "/d"}}
        point = '{"fit.learning_rate": 0.0001, "head.dropout": 0.5}'
        self.first, self.second = (
            SimpleNamespace(
                id=f"run-{i}",
                kind="run",
                approach="feature_extraction",
                config=config,
                state=state,
                started=1000.0,
                ended=None,
                repeat_size=1,
                repeat_index=0,
                adopted_owner=None,
                options={"sweep_point": point},
            )
            for i, state in ((1, "running"), (2, "queued"))
        )

    def jobs(self):
        return [self.first, self.second]

    def active(self):
        return [j for j in self.jobs() if j.state in ("running", "queued")]

    def progress(self, job_id):
        if job_id == self.first.id and self.first.state == "running":  # the runner's thread moves on meanwhile
            self.first.state, self.first.ended, self.second.state = "done", 1060.0, "running"
        history = {"loss": [0.9, 0.5], "val_loss": [0.8, 0.6], "accuracy": [0.5, 0.7], "val_accuracy": [0.5, 0.6]}
        return {
            "history": history,
            "metrics": {"state": "stopped", "epochs_total": 3},
            "status": {"epochs_total": 3},
            "elapsed_s": 60.0,
        }

    def log_tail(self, job_id, lines=40):
        return ""

    def stop(self, job_id):
        return True


def test_a_job_that_ends_while_its_panel_is_drawn_is_drawn_once(monkeypatch, isolated_store):
    """Queued jobs handing over mid-draw once drew the ended job twice: StreamlitDuplicateElementKey (..._logloss)."""
    from streamlit.testing.v1 import AppTest

    from ui import resources

    runner = HandOverRunner()
    monkeypatch.setattr(resources, "job_runner", lambda: runner)
    at = AppTest.from_string("from ui.job_view import job_panel\njob_panel('feature_extraction')", default_timeout=60)
    at.session_state["feature_extraction_all_datasets"] = True
    at.run()
    assert not at.exception, at.exception
    assert [t.key for t in at.toggle] == ["feature_extraction_run-1_logloss"]  # drawn once, as the running job it was
    assert runner.second.state == "running"  # drawn as the snapshot had it: queued, with its sweep point
    assert "Queued 1/1: run run-2 · sweep point: learning rate 0.0001, dropout 0.5, starts when the job before it ends" in [
        c.value for c in at.caption
    ]
