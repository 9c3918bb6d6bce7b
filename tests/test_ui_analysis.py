"""Issue 9 through the pages: the error gallery, presets in the form, repeats and cached reruns on Compare."""

import contextlib
import io
import json
import os

import pytest
from streamlit.testing.v1 import AppTest

from engine import cli
from tests.conftest import make_split_dataset
from tests.shared_runs import copy_run
from tests.test_app_pages import page, sample_dir, tiny_setup, wait_for  # noqa: F401 (sample_dir: autouse fixture)


def run_tiny(data, runs_dir, cache_dir, *extra) -> list[dict]:
    """`python -m engine run` of feature extraction on tiny data (in this process); its report's runs."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(
            [
                "run",
                "--data",
                str(data),
                "--approach",
                "feature_extraction",
                "--weights",
                "none",
                "--backbone",
                "vgg16",
                "--image-size",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--quiet",
                "--runs-dir",
                str(runs_dir),
                "--cache-dir",
                str(cache_dir),
                *extra,
            ]
        )
    assert rc == 0
    return json.loads(out.getvalue())["runs"]


@pytest.fixture(scope="module")
def trained_group(tmp_path_factory):
    """`run --seeds 2` on tiny data, once for this module: (runs dir, cache dir, dataset, the two runs)."""
    root = tmp_path_factory.mktemp("two-seeds")
    data = make_split_dataset(root / "tiny")
    return root / "runs", root / "cache", data, run_tiny(data, root / "runs", root / "cache", "--seeds", "2")


@pytest.fixture
def two_seed_runs(trained_group):
    """The module's repeat group, copied into this test's run store (tests change them)."""
    runs_dir = trained_group[0]
    runs = []
    for run in trained_group[3]:
        copy = copy_run(runs_dir, run["id"], os.environ["TLS_RUNS_DIR"])
        runs.append({**run, "run_dir": str(copy)})
    return runs


def captions_of_images(at: AppTest) -> list[str]:
    return [c for el in at.get("image") for c in el.captions]


@pytest.mark.slow
def test_error_gallery_shows_both_directions_and_filters(two_seed_runs):
    run_dir = two_seed_runs[0]["run_dir"]
    path = os.path.join(run_dir, "predictions.json")
    preds = json.load(open(path))
    test = preds["splits"]["test"]  # make one image of each class wrong, whatever the tiny model learnt
    first = {label: test["labels"].index(label) for label in (0, 1)}
    test["probabilities"] = [
        [0.1, 0.9] if i == first[0] else [0.8, 0.2] if i == first[1] else ([0.7, 0.3] if lab == 0 else [0.3, 0.7])
        for i, lab in enumerate(test["labels"])
    ]
    json.dump(preds, open(path, "w"))
    run_id = os.path.basename(run_dir)
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    script = f"""
import json
from ui.run_analysis import show_run_analysis
show_run_analysis(json.loads({json.dumps(json.dumps(metrics))}), {run_id!r})
"""
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception, at.exception
    shown = captions_of_images(at)
    assert len(shown) == 2 and shown[0].startswith("cats → dogs (cats 10%, dogs 90%)") and shown[1].startswith("dogs → cats")
    assert list(at.dataframe[0].value.index) == ["cats", "dogs"]  # per-class precision / recall / F1
    at.selectbox(key=f"err_{run_id}_true").set_value("dogs").run()
    assert [c.split(" (")[0] for c in captions_of_images(at)] == ["dogs → cats"]


@pytest.mark.slow
def test_compare_shows_repeat_mean_std_and_marks_cached_rerun(two_seed_runs, trained_group):
    _, cache_dir, data, _ = trained_group
    # seed 42 again: random weights are keyed by seed, so this run reads the first seed's cached features
    rerun = run_tiny(data, os.environ["TLS_RUNS_DIR"], cache_dir)[0]
    cmp = page("pages/compare.py")
    cmp.run()
    cmp.toggle(key="cmp_all").set_value(True).run()
    cmp.multiselect(key="cmp_runs").set_value([r["id"] for r in [*two_seed_runs, rerun]]).run()
    assert not cmp.exception, cmp.exception
    table = cmp.dataframe[0].value
    assert dict(zip(table["run"], table["feature cache"])) == {
        two_seed_runs[0]["id"]: "from scratch",
        two_seed_runs[1]["id"]: "from scratch",
        rerun["id"]: "cached rerun",
    }
    accs = [r["test_accuracy"] for r in two_seed_runs]
    mean = sum(accs) / 2
    std = abs(accs[0] - accs[1]) / 2**0.5  # sample std of two values
    line = next(c.value for c in cmp.caption if "over seeds" in c.value)
    assert line.startswith(f"Feature extraction: {mean:.4f} ± {std:.4f} over seeds [42, 43]")
    assert len(cmp.get("plotly_chart")) >= 4  # curves, accuracy vs time, the repeats' error bars
    assert any("is not the cost from scratch" in c.value for c in cmp.caption)


@pytest.mark.slow
def test_preset_changes_the_form_and_the_job_carries_it():
    at = tiny_setup(page("pages/feature_extraction.py"))
    at.selectbox(key="feature_extraction_preset").set_value("lecture").run()
    assert not at.exception, at.exception
    assert at.number_input(key="feature_extraction_epochs").value == 30
    assert at.number_input(key="feature_extraction_lr").value == pytest.approx(2e-5)
    assert at.number_input(key="feature_extraction_bs").value == 20
    assert at.select_slider(key="feature_extraction_units").value == 256
    assert (at.sidebar.selectbox(key="sb_backbone").value, at.sidebar.slider(key="sb_image_size").value) == ("vgg16", 150)
    # fields changed afterwards win; the run is small again
    at.sidebar.slider(key="sb_image_size").set_value(32).run()
    at.number_input(key="feature_extraction_epochs").set_value(1)
    at.button[0].click().run()
    assert not at.exception, at.exception
    from ui import resources

    job = resources.job_runner().jobs()[-1]
    assert job.options == {"preset": "lecture"} and job.config["fit"]["epochs"] == 1
    at = wait_for(at, lambda a: any(m.label == "Validation accuracy" for m in a.metric))
    config = json.load(open(os.path.join(os.environ["TLS_RUNS_DIR"], job.id, "config.json")))
    assert config["resolved"]["preset"] == "lecture" and config["fit"]["learning_rate"] == pytest.approx(2e-5)
    assert config["fit"]["epochs"] == 1 and config["backbone"]["image_size"] == 32
    assert any(m.label == "published val accuracy" for m in at.metric)


def test_the_class_report_counts_support_in_whole_photos():
    from ui.analysis_view import class_report_table

    table = class_report_table([[3, 1], [0, 2]], ["cats", "dogs"])
    assert str(table["support"].dtype) == "int64" and list(table["support"]) == [4, 2]
    assert table.loc["dogs", "precision"] == 2 / 3 and list(table.index) == ["cats", "dogs"]


def test_repeat_groups_say_how_many_photos_each_seed_was_scored_on():
    def script():
        from pathlib import Path

        from engine.store.record import RunRecord
        from ui.analysis_view import show_repeat_groups

        def rec(rid, approach, seed, acc):
            config = {"approach": approach, "resolved": {"repeat_group": f"g-{approach}", "seed": seed}}
            return RunRecord(rid, Path("/r"), config, {}, {"test": {"accuracy": acc, "num_images": 40}})

        show_repeat_groups(
            [
                rec("a", "frozen", 42, 0.9),
                rec("b", "frozen", 43, 0.95),
                rec("c", "fine_tuning", 42, 0.8),
                rec("d", "fine_tuning", 43, 0.85),
            ],
            "test_accuracy",
        )

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(script, default_timeout=120).run()
    assert not at.exception, at.exception
    lines = [c.value for c in at.caption]
    assert lines[0].startswith("Frozen + augmentation: 0.9250 ± 0.0354 over seeds [42, 43], each on 40 photos — ")
