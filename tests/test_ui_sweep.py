"""The approach pages' sweep (ui/sweep_view.py): queue one job per point, read a sweep's results, Apply best."""

import json

import pytest

from engine.store.jobs import JobRunner
from tests.conftest import write_run
from tests.test_app_pages import page, sample_dir, tiny_setup  # noqa: F401  (sample_dir: autouse fixture)

SWEEP_CELLS = {(1e-4, 0.2): (0.70, 0.99), (1e-4, 0.5): (0.80, 0.98), (1e-3, 0.2): (0.85, 0.97), (1e-3, 0.5): (0.90, 0.75)}


def stored_sweep(runs_dir, dataset: str, first: int = 0, last: int = 4) -> None:
    """A finished 2 x 2 sweep (lr x dropout, one seed) on `dataset`: best on validation lr 1e-3, dropout 0.5 (test 0.75).
    `first`/`last`: only those points' runs (the others not started yet)."""
    for i, ((lr, d), (val, test)) in list(enumerate(SWEEP_CELLS.items()))[first:last]:
        config = {
            "approach": "feature_extraction",
            "backbone": {"name": "vgg16"},
            "data": {"path": dataset},
            "fit": {"learning_rate": lr},
            "head": {"dropout": d},
            "resolved": {
                "classes": ["circles", "squares", "triangles"],
                "image_size": 32,
                "dataset_root": dataset,
                "sweep_group": "20260101-000000-sweep-feature_extraction",
                "seed": 42,
                "sweep_point": {"fit.learning_rate": lr, "head.dropout": d},
            },
        }
        path = write_run(runs_dir, f"20260101-00000{i}-feature_extraction-aaaaa{i}", config=config)
        metrics = {"state": "finished", "epochs_run": 2, "validation": {"accuracy": val}, "test": {"accuracy": test}}
        (path / "metrics.json").write_text(json.dumps(metrics))


@pytest.mark.slow  # renders the page eight times (a model summary each): about 12 CPU-seconds
def test_queue_a_sweep_then_read_its_results_and_apply_the_best(tmp_path, monkeypatch):
    queued = []
    monkeypatch.setattr(
        JobRunner, "submit", lambda self, cfg, preset=None, seeds=1, options=None: queued.append((cfg, seeds, dict(options)))
    )
    at = tiny_setup(page("pages/feature_extraction.py"))
    at.multiselect(key="feature_extraction_sweep_knobs").set_value(["fit.learning_rate", "head.dropout"]).run()
    assert at.text_input(key="feature_extraction_sweep_values_fit.learning_rate").value == "2e-06, 2e-05, 0.0002"  # from 2e-5
    assert at.text_input(key="feature_extraction_sweep_values_head.dropout").value == "0.3, 0.5, 0.7"
    at.text_input(key="feature_extraction_sweep_values_head.dropout").set_value("0.2, 0.5").run()
    at.number_input(key="feature_extraction_sweep_seeds").set_value(2).run()
    assert any(c.value == "6 point(s) × 2 seed(s) = 12 job(s)." for c in at.caption)
    at.button(key="feature_extraction_sweep_queue").click().run()
    assert not at.exception, at.exception
    assert [(c.fit.learning_rate, c.head.dropout, s) for c, s, _ in queued] == [
        (lr, d, 2) for lr in (2e-6, 2e-5, 2e-4) for d in (0.2, 0.5)
    ]
    groups = {a["sweep_group"] for _, _, a in queued}
    assert len(groups) == 1 and groups.pop().endswith("-sweep-feature_extraction")
    assert [json.loads(a["sweep_point"]) for _, _, a in queued][-1] == {"fit.learning_rate": 2e-4, "head.dropout": 0.5}

    stored_sweep(tmp_path / "runs", at.session_state["data_path"])
    at.run()
    assert at.selectbox(key="feature_extraction_sweep_shown").value == "20260101-000000-sweep-feature_extraction"
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heat = next(c for c in charts if c["data"][0]["type"] == "heatmap")["data"][0]
    assert heat["y"] == ["0.0001", "0.001"] and heat["z"] == [[0.70, 0.80], [0.85, 0.90]]
    par = next(c for c in charts if c["data"][0]["type"] == "parcoords")["data"][0]
    assert [d["label"] for d in par["dimensions"]] == ["learning-rate (log)", "dropout", "validation accuracy"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Best on validation"] == "0.900" and metrics["test accuracy of the picked point (scored once)"] == "0.750"
    at.button(key="feature_extraction_sweep_apply").click().run()
    assert at.number_input(key="feature_extraction_lr").value == pytest.approx(1e-3)
    assert at.slider(key="feature_extraction_drop").value == pytest.approx(0.5)


@pytest.mark.slow  # two tiny training jobs through the runner (CLI subprocesses)
def test_a_queued_sweep_trains_through_the_job_runner_and_its_best_point_fills_the_form():
    from tests.test_app_pages import wait_for
    from ui import resources

    at = tiny_setup(page("pages/feature_extraction.py"))
    at.number_input(key="feature_extraction_epochs").set_value(1).run()
    at.multiselect(key="feature_extraction_sweep_knobs").set_value(["fit.learning_rate"]).run()
    at.text_input(key="feature_extraction_sweep_values_fit.learning_rate").set_value("1e-3, 1e-2").run()
    at.button(key="feature_extraction_sweep_queue").click().run()
    assert not at.exception, at.exception
    at = wait_for(at, lambda a: any(m.label == "Best on validation" for m in a.metric))
    runs = resources.run_store().list().runs
    assert sorted(r.sweep_point["fit.learning_rate"] for r in runs) == [1e-3, 1e-2] and len({r.sweep_group for r in runs}) == 1
    assert sorted(r.metrics["feature_cache"]["misses"] for r in runs) == [0, 3]  # the job that ran second read every split
    best = max(
        runs, key=lambda r: (r.accuracy("validation"), -r.sweep_point["fit.learning_rate"])
    )  # ties: the first in grid order
    line = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "best (validation)" in c.proto.spec)
    assert line["data"][1]["x"] == [best.sweep_point["fit.learning_rate"]]
    at.button(key="feature_extraction_sweep_apply").click().run()
    assert at.number_input(key="feature_extraction_lr").value == pytest.approx(best.sweep_point["fit.learning_rate"])


def test_the_picker_counts_every_point_of_a_sweep_and_the_best_shows_once_the_last_point_ends(tmp_path):
    from engine.store.jobs import Job
    from ui import resources

    at = tiny_setup(page("pages/feature_extraction.py"))
    data = at.session_state["data_path"]
    stored_sweep(tmp_path / "runs", data, last=2)
    group = "20260101-000000-sweep-feature_extraction"
    runner = resources.job_runner()
    pending = [
        Job(
            f"20260101-00000{i}-feature_extraction-aaaaa{i}",
            "feature_extraction",
            {},
            options={"sweep_group": group, "sweep_point": json.dumps({"fit.learning_rate": lr, "head.dropout": d})},
        )
        for i, (lr, d) in list(enumerate(SWEEP_CELLS))[2:]
    ]
    for job in pending:  # queued in the runner's list only: its worker never starts them
        runner._jobs[job.id] = job
    at.run()
    assert not at.exception, at.exception
    shown = at.selectbox(key="feature_extraction_sweep_shown")
    assert shown.format_func(shown.value) == f"{group} · learning-rate, dropout · 4 points: 2 of 4 runs finished, 2 queued"
    assert [m.value for m in at.metric if m.label == "Best on validation"] == ["0.800"]  # the best so far

    for job in pending:
        job.state = "done"
    stored_sweep(tmp_path / "runs", data, first=2)
    at.run()
    shown = at.selectbox(key="feature_extraction_sweep_shown")
    assert shown.format_func(shown.value) == f"{group} · learning-rate, dropout · 4 points: 4 of 4 runs finished"
    assert [m.value for m in at.metric if m.label == "Best on validation"] == ["0.900"]
    assert not any(i.value.startswith("No point of this sweep") for i in at.info)
