"""Results that say what they belong to (AppTest): Compare and Classify on the sidebar's dataset,
Compare's honest table and chart, the Data overview's plain words."""

import json
import os
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, make_split_dataset


@pytest.fixture(autouse=True)
def sample_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_DATA_ROOTS", str(tmp_path))
    monkeypatch.chdir(ROOT)


def page(path: str) -> AppTest:
    return AppTest.from_string(
        f"""
import runpy
from ui.sidebar import render_sidebar
render_sidebar()
runpy.run_path({str(ROOT / path)!r}, run_name="__main__")
""",
        default_timeout=120,
    )


def saved_run(run_id: str, dataset: str, *, state="finished", epochs=3, val=0.9, size=96, wall=100.0, estimate_s=None):
    """A run folder on `dataset` with validation results only (no test split), as a training process leaves it."""
    path = Path(os.environ["TLS_RUNS_DIR"]) / run_id
    path.mkdir(parents=True)
    approach = run_id.split("-")[2]
    config = {
        "approach": approach,
        "backbone": {"name": "mobilenet_v2"},
        "data": {"path": dataset},
        "resolved": {"classes": ["circle", "square", "triangle"], "image_size": size, "dataset_root": dataset},
    }
    if estimate_s is not None:
        config["resolved"]["estimate_s"] = estimate_s
    curve = [0.5 + 0.1 * i for i in range(epochs)]
    history = {"loss": curve, "accuracy": curve, "val_loss": curve, "val_accuracy": curve[:-1] + [val]}
    metrics = {
        "state": state,
        "epochs_run": epochs,
        "epochs_total": 3,
        "wall_seconds": wall,
        "trainable_params": 1234567,
        "total_params": 2345678,
        "validation": {"accuracy": val, "loss": 0.3},
    }
    for name, obj in (("config", config), ("history", history), ("metrics", metrics)):
        (path / f"{name}.json").write_text(json.dumps(obj))


def test_compare_picks_the_best_finished_run_per_approach_on_this_dataset(tmp_path):
    from engine.data.sample import ensure_sample_dataset

    here = str(ensure_sample_dataset())
    saved_run("20260101-000001-feature_extraction-aaaaaa", here, val=0.934, size=96, wall=1234.0)
    saved_run("20260101-000002-feature_extraction-bbbbbb", here, state="stopped", epochs=1, val=0.95)
    saved_run("20260101-000003-frozen-cccccc", here, val=0.963, size=160)
    saved_run("20260101-000004-frozen-dddddd", str(tmp_path / "other"), val=0.99)
    at = page("pages/compare.py").run()
    assert not at.exception, at.exception
    runs = at.multiselect(key="cmp_runs")
    assert not any("dddddd" in o for o in runs.options)  # another dataset's run, until asked
    assert sorted(runs.value) == ["20260101-000001-feature_extraction-aaaaaa", "20260101-000003-frozen-cccccc"]
    table = at.dataframe[0].value
    assert "test acc" not in table.columns and list(table["validation acc"]) == ["0.963", "0.934"]
    assert list(table["best"]) == ["", ""] and list(table["dataset"]) == ["sample", "sample"]  # no counts recorded: no ★
    assert any(c.value.startswith("No ★: not every run recorded how many photos") for c in at.caption)
    assert list(table["trainable params"]) == ["1,234,567", "1,234,567"] and "1,234" in list(table["wall time (s)"])
    assert "None" not in table.astype(str).to_string()
    assert any("different image sizes (96 px, 160 px)" in w.value for w in at.warning)
    assert any("**validation** accuracy" in i.value for i in at.info)
    chart = at.get("plotly_chart")[-1].proto.spec
    assert "Validation accuracy vs training time" in chart
    at.toggle(key="cmp_all").set_value(True).run()
    assert any(o.startswith("other · ") and o.endswith("dddddd") for o in at.multiselect(key="cmp_runs").options)


def test_data_overview_speaks_plainly_about_sizes_bad_files_and_a_missing_test_split(tmp_path):
    root = make_split_dataset(tmp_path / "plain", counts={"train": 3, "validation": 2})
    (root / "train" / "cats" / "notes.png").write_bytes(b"not an image")
    at = page("pages/data_overview.py")
    at.query_params["source"] = "folder"
    at.query_params["folder"] = str(root)
    at.run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "All 10 images are " in text and "×" in text  # not a one-bar histogram
    assert not any("bad_files" in w.value for w in at.warning)
    assert any("no test split" in i.value for i in at.info)
    assert any("Start here" in m.value for m in at.markdown)  # nothing trained yet: the landing says what to do first


def _quick_model(data_dir):
    from engine.training.approaches import RUNNERS, prepare_data
    from tests.conftest import tiny_config

    cfg = tiny_config("feature_extraction", data_dir, backbone="vgg16")
    return RUNNERS["feature_extraction"](cfg, prepare_data(str(data_dir)))


@pytest.mark.slow
def test_classify_labels_name_the_dataset_and_classify_several_photos(tmp_path):
    import io

    from PIL import Image

    from engine.data.sample import ensure_sample_dataset

    run = _quick_model(ensure_sample_dataset())
    at = page("pages/classify.py").run()
    assert not at.exception, at.exception
    models = at.multiselect(key="cls_runs")
    assert models.value == [run.id]  # the newest model of the sidebar's dataset
    label = models.options[0]
    assert label.startswith("sample · circle, square, triangle · Feature extraction · vgg16 · ") and label.endswith(run.id)
    photos = []
    for name, colour in (("a.png", (200, 30, 30)), ("b.png", (30, 30, 200))):
        buf = io.BytesIO()
        Image.new("RGB", (40, 40), colour).save(buf, "PNG")
        photos.append((name, buf.getvalue(), "image/png"))
    at.file_uploader(key="cls_upload").set_value(photos).run()
    assert not at.exception, at.exception
    assert len(at.metric) == 2  # one prediction per photo
    knows = [c.value for c in at.caption if c.value.startswith("This model only knows")]
    assert knows == ["This model only knows circle, square, triangle: it answers with one of them for any photo."] * 2


def test_an_approach_page_shows_only_jobs_of_the_sidebar_dataset(tmp_path):
    """A job on another dataset (e.g. cats-vs-dogs) is not shown on the built-in sample's page unless asked."""
    from engine.store.jobs import Job
    from ui import resources

    at = page("pages/feature_extraction.py")
    at.query_params["weights"] = "none"
    at.run()
    runner = resources.job_runner()
    other = Job(
        "20260101-000009-feature_extraction-eeeeee",
        "feature_extraction",
        {"approach": "feature_extraction", "data": {"path": str(tmp_path / "cats_vs_dogs_small")}, "fit": {"epochs": 3}},
        state="done",
        started=1000.0,
        ended=1072.0,
    )
    with runner._lock:  # a finished job of this server process, without training one
        runner._jobs[other.id] = other
    at.run()
    assert not at.exception, at.exception
    assert not at.get("progress") and not any("cats_vs_dogs_small" in c.value for c in at.caption)
    at.toggle(key="feature_extraction_all_datasets").set_value(True).run()
    assert any(c.value.startswith("Dataset: **cats_vs_dogs_small** · run 20260101-000009") for c in at.caption)


def test_compare_deletes_the_chosen_runs_after_the_confirmation_tick():
    from engine.data.sample import ensure_sample_dataset

    here = str(ensure_sample_dataset())
    saved_run("20260101-000001-feature_extraction-aaaaaa", here, val=0.93)
    saved_run("20260101-000002-frozen-bbbbbb", here, val=0.95)
    runs_dir = Path(os.environ["TLS_RUNS_DIR"])
    at = page("pages/compare.py").run()
    assert not at.exception, at.exception
    at.multiselect(key="cmp_delete").set_value(["20260101-000001-feature_extraction-aaaaaa"]).run()
    assert at.button(key="cmp_delete_go").disabled  # not without the tick
    at.checkbox(key="cmp_delete_sure").check().run()
    at.button(key="cmp_delete_go").click().run()
    assert not at.exception, at.exception
    assert sorted(p.name for p in runs_dir.iterdir()) == ["20260101-000002-frozen-bbbbbb"]
    assert list(at.dataframe[0].value["run"]) == ["20260101-000002-frozen-bbbbbb"]
    assert at.multiselect(key="cmp_delete").value == [] and not at.checkbox(key="cmp_delete_sure").value


def test_compare_shows_the_estimate_against_the_actual_time():
    from engine.data.sample import ensure_sample_dataset

    here = str(ensure_sample_dataset())
    saved_run("20260101-000001-feature_extraction-aaaaaa", here, wall=100.0, estimate_s=90.0)
    saved_run("20260101-000002-frozen-bbbbbb", here, wall=61.0)  # no estimate recorded
    at = page("pages/compare.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("run")
    assert (
        table.loc["20260101-000001-feature_extraction-aaaaaa", "estimate vs actual"]
        == "estimated 1 min 30 s, took 1 min 40 s (11% longer than estimated)"
    )
    assert table.loc["20260101-000002-frozen-bbbbbb", "estimate vs actual"] == "—"


def test_the_estimate_button_shows_time_memory_and_reuse_under_the_form(stand_in_calibration, tmp_path):
    import json

    from engine import cli
    from engine.cli.job import argv_for
    from ui import resources

    at = page("pages/feature_extraction.py")
    at.query_params["weights"] = "none"
    at.run()
    assert not at.exception, at.exception
    assert not any(c.value.startswith("Estimate on this machine") for c in at.caption)  # only when asked
    next(b for b in at.button if b.label == "Estimate time and memory").click().run()
    assert not at.exception, at.exception
    runner = resources.job_runner()
    (job,) = runner.jobs()  # not measured yet: a measuring job, never a measurement in the server
    assert job.kind == "estimate" and any(
        "Measuring this machine for the full estimate in the job queue" in c.value for c in at.caption
    )
    runner.stop(job.id)  # measured here instead, with the stand-in calibration, by the job's own command
    (tmp_path / "cfg.json").write_text(json.dumps(job.config))
    options = {k: v for k, v in runner.spec(job, tmp_path / "cfg.json")["options"].items() if k != "out"}
    assert cli.main(argv_for("estimate", options)) == 0
    next(b for b in at.button if b.label == "Estimate time and memory").click().run()
    assert not at.exception, at.exception
    line = next(c.value for c in at.caption if c.value.startswith("Estimate on this machine"))
    assert re.fullmatch(
        r"Estimate on this machine: about (\d+ min )?\d+ s \(\+\d+ s to build the base\), peak memory about "
        r"\d+\.\d GB; nothing cached yet: the base runs over every image\.",
        line,
    ), line
    assert [j.kind for j in runner.jobs()] == ["estimate"]  # estimating trains nothing


def test_compare_counts_a_continued_fine_tuning_with_its_phase_1():
    from engine.store.record import RunRecord
    from ui.compare_extras import cache_note, wall_time

    frozen = RunRecord("20260101-000001-frozen-aaaaaa", Path("/r"), {"approach": "frozen"}, {}, {"wall_seconds": 415.0})
    ft = RunRecord(
        "20260101-000002-fine_tuning-bbbbbb",
        Path("/r"),
        {"approach": "fine_tuning", "fine_tune": {"from_run": frozen.id}},
        {},
        {"wall_seconds": 601.0},
    )
    assert wall_time(ft, [frozen, ft]) == "1,016 (601 + 415 phase 1, run …aaaaaa)"
    assert wall_time(ft, [ft]) == f"601 + phase 1 in run {frozen.id}"  # that run was deleted
    assert wall_time(frozen, [frozen, ft]) == "415"
    assert (
        cache_note({"feature_cache": {"hits": 2, "misses": 3, "reused_splits": ["validation"]}}) == "partly cached (validation)"
    )
    assert cache_note({"feature_cache": {"hits": 4, "misses": 0, "reused_splits": ["train", "validation"]}}) == "cached rerun"
