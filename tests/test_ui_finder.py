"""The approach pages' learning-rate finder (ui/finder_view.py): a job through the runner, its chart, Use this rate."""

import pytest

from engine.store.jobs import Job, JobRunner
from tests.test_app_pages import page, sample_dir, tiny_setup, wait_for  # noqa: F401  (sample_dir: autouse fixture)


def test_a_finder_job_runs_lr_find_with_its_result_file_outside_the_run_folders(tmp_path):
    runner = JobRunner(runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    job = Job("lr-find-x", "frozen", {"data": {"path": "/data"}}, kind="lr-find")
    spec = runner.spec(job, "cfg.json")
    assert spec["command"] == "lr-find" and {k: spec["options"][k] for k in ("config", "data", "approach")} == {
        "config": "cfg.json",
        "data": "/data",
        "approach": "frozen",
    }
    assert spec["options"]["out"] == str(tmp_path / "runs" / ".lr-find" / "lr-find-x.json")  # a dot folder: never a run
    assert "run_id" not in spec["options"] and spec["options"]["cache_dir"] == str(tmp_path / "cache")
    from engine.cli.job import argv_for  # the CLI makes them flags from its own parser

    argv = argv_for(spec["command"], spec["options"])
    assert argv[:3] == ["lr-find", "--config", "cfg.json"] and argv[argv.index("--out") + 1] == spec["options"]["out"]
    assert runner.tool_result("lr-find-x") == {}  # nothing yet


def test_the_page_draws_the_charts_finder_figure():  # its curve, markers and axes: tests/test_charts.py
    from engine.insight import charts
    from ui import finder_view

    assert finder_view.finder_figure is charts.finder_figure


@pytest.mark.slow
def test_find_a_rate_then_use_it_on_the_form():
    from ui import resources

    at = tiny_setup(page("pages/feature_extraction.py"))
    at.button(key="feature_extraction_find_lr").click().run()
    assert not at.exception, at.exception
    job = resources.job_runner().jobs()[-1]
    assert job.kind == "lr-find" and job.config["backbone"]["image_size"] == 32
    at = wait_for(at, lambda a: any(m.label == "Suggested learning rate" for m in a.metric))
    result = resources.job_runner().tool_result(job.id)
    rate = float(f"{result['suggested']:.2g}")
    assert [m.value for m in at.metric if m.label == "Suggested learning rate"] == [f"{rate:g}"]
    assert result["applies_to"].startswith("fit.learning_rate") and len(at.get("plotly_chart")) >= 1
    assert not any("failed" in e.value for e in at.error)  # the job panel did not take the finder for a run
    at.button(key=f"{job.id}_use").click().run()
    assert at.number_input(key="feature_extraction_lr").value == pytest.approx(rate)


@pytest.mark.slow  # renders the fine-tuning page (a model summary)
def test_fine_tuning_needs_a_frozen_run_before_the_finder():
    at = tiny_setup(page("pages/fine_tuning.py"))
    assert at.button(key="fine_tuning_find_lr").disabled
    assert any("choose a finished frozen run to continue first" in c.value for c in at.caption)


def _finished_finder_job(cfg_dict: dict, approach: str) -> str:
    """A finder job that ended with a suggestion, as the runner keeps it (no process: the panel only reads it)."""
    import json
    import time

    from ui import resources

    runner = resources.job_runner()
    job = Job(
        f"lr-find-{approach}-{len(runner.jobs())}",
        approach,
        cfg_dict,
        state="done",
        kind="lr-find",
        ended=time.time(),
        returncode=0,
    )
    path = runner._tool_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "learning_rates": [1e-5, 1e-4, 1e-3],
                "losses": [1.0, 0.7, 3.0],
                "smoothed": [1.0, 0.8, 2.0],
                "valley": 1e-4,
                "steepest": 1e-4,
                "suggested": 3.5e-05,
                "rule": "valley",
                "applies_to": "fit.learning_rate",
                "ended": "ramp done",
                "seconds": 1.0,
                "feature_cache": {"misses": 0},
            }
        )
    )
    runner._jobs[job.id] = job
    return job.id


def test_a_finder_result_is_offered_only_on_the_dataset_backbone_and_size_it_was_found_on(tmp_path):
    import shutil

    from engine.config import RunConfig
    from engine.data.sample import ensure_sample_dataset
    from ui import resources

    at = tiny_setup(page("pages/feature_extraction.py"))  # the sample, VGG16, 32 px
    cfg = RunConfig.from_dict(
        {
            "approach": "feature_extraction",
            "data": {"path": at.session_state["data_path"]},
            "backbone": {"name": "vgg16", "image_size": 32, "weights": "none"},
        }
    )
    job_id = _finished_finder_job(cfg.to_dict(), "feature_extraction")
    at.session_state["feature_extraction_finder_jobs"] = [job_id]
    at.run()
    assert not at.exception, at.exception
    assert [m.value for m in at.metric if m.label == "Suggested learning rate"] == ["3.5e-05"]
    sample = at.session_state["data_path"].rstrip("/").split("/")[-1]
    assert any(c.value.startswith(f"Found on {sample} · vgg16 · 32 px, for fit.learning_rate") for c in at.caption)

    pets = shutil.copytree(ensure_sample_dataset(), tmp_path / "pets")  # dataset B
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    at.sidebar.text_input(key="sb_folder").input(str(pets)).run()
    assert not at.exception, at.exception
    assert at.session_state["data_path"] == str(pets)
    assert not [m for m in at.metric if m.label == "Suggested learning rate"]  # A's rate is not offered on B
    assert not [b for b in at.button if b.key == f"{job_id}_use"]
    assert any(
        c.value.startswith(f"The last rate was found on {sample} · vgg16 · 32 px, not on this setup (pets · vgg16 · 32 px)")
        for c in at.caption
    )

    at.sidebar.radio(key="sb_source").set_value("sample").run()  # back on A: offered again
    at.sidebar.slider(key="sb_image_size").set_value(48).run()  # ... but not at another size
    assert not [m for m in at.metric if m.label == "Suggested learning rate"]
    at.sidebar.slider(key="sb_image_size").set_value(32).run()
    assert [m.value for m in at.metric if m.label == "Suggested learning rate"] == ["3.5e-05"]
    assert resources.job_runner().get(job_id).state == "done"
