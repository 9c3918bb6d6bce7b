"""`data-health` as the dashboard runs it: a tool job through the job runner, its report read back with tool_result."""

import pytest

from engine.store.jobs import JobRunner
from tests.conftest import tiny_config


@pytest.mark.slow
def test_a_data_health_job_answers_with_its_report(isolated_store, tiny_dataset):
    runner = JobRunner(runs_dir=isolated_store / "runs", cache_dir=isolated_store / "cache")
    job = runner.submit_tool("data-health", tiny_config("frozen", tiny_dataset))  # the approach's base and size; the head is ours
    done = runner.wait(job.id, timeout=300)
    assert done.state == "done", runner.log_tail(job.id, lines=20)
    doc = runner.tool_result(job.id)
    assert list(doc) == ["label_issues", "duplicates", "outliers", "summary"]
    s = doc["summary"]
    assert (s["photos"], s["backbone"], s["image_size"], s["folds"]) == (32, "vgg16", 32, 5)
    assert s["dataset_root"] == str(tiny_dataset.resolve()) and s["feature_cache"]["misses"] == 3
    assert (isolated_store / "runs" / ".data-health" / f"{job.id}.json").exists()
