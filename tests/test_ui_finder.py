"""The approach pages' learning-rate finder (ui/finder_view.py): a job through the runner, its chart, Use this rate."""

import math

import pytest

from engine.store.jobs import Job, JobRunner
from tests.test_app_pages import page, sample_dir, tiny_setup, wait_for  # noqa: F401  (sample_dir: autouse fixture)
from ui.finder_view import finder_figure


def test_a_finder_job_runs_lr_find_with_its_result_file_outside_the_run_folders(tmp_path):
    runner = JobRunner(runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    job = Job("lr-find-x", "frozen", {"data": {"path": "/data"}}, kind="lr-find")
    spec = runner.spec(job, "cfg.json")
    assert spec["command"] == "lr-find" and {k: spec["options"][k] for k in ("config", "data", "approach")} == {
        "config": "cfg.json", "data": "/data", "approach": "frozen"}
    assert spec["options"]["out"] == str(tmp_path / "runs" / ".lr-find" / "lr-find-x.json")  # a dot folder: never a run
    assert "run_id" not in spec["options"] and spec["options"]["cache_dir"] == str(tmp_path / "cache")
    from engine.cli.job import argv_for  # the CLI makes them flags from its own parser

    argv = argv_for(spec["command"], spec["options"])
    assert argv[:3] == ["lr-find", "--config", "cfg.json"] and argv[argv.index("--out") + 1] == spec["options"]["out"]
    assert runner.tool_result("lr-find-x") == {}  # nothing yet


def test_the_chart_marks_both_rules_on_a_log_axis_and_keeps_the_blow_up_off_the_scale():
    result = {"learning_rates": [1e-5, 1e-4, 1e-3, 1e-2], "losses": [1.0, 0.8, 0.5, 9.0], "smoothed": [1.0, 0.9, 0.7, 30.0],
              "valley": 1e-4, "steepest": 1e-3}
    fig = finder_figure(result)
    assert fig.layout.xaxis.type == "log" and [t.name for t in fig.data] == ["loss of each step", "smoothed loss"]
    assert [s.x0 for s in fig.layout.shapes] == [1e-4, 1e-3]
    assert math.isclose(fig.layout.yaxis.range[1], 4 * 0.7 * 1.05)  # 4x the lowest smoothed loss, not 30


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
