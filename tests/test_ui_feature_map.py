"""The feature map's view (ui/feature_map_view.py): the figure's values, the selected point, the job on the data overview."""

import json

import pytest

from tests.test_app_pages import page, sample_dir, tiny_setup, wait_for  # noqa: F401  (sample_dir: autouse fixture)
from ui.feature_map_view import _picked, map_figure

DOC = {
    "classes": ["cats", "dogs"],
    "note": "PCA of 3 of 30 images (subsample, stratified by split and class, seed 42)",
    "subsampled": True,
    "points": [
        {
            "file": "/d/train/cats/a.png",
            "split": "train",
            "label": 0,
            "class": "cats",
            "misclassified": False,
            "probabilities": None,
        },
        {
            "file": "/d/validation/dogs/b.png",
            "split": "validation",
            "label": 1,
            "class": "dogs",
            "misclassified": True,
            "probabilities": [0.75, 0.25],
        },
        {
            "file": "/d/validation/cats/c.png",
            "split": "validation",
            "label": 0,
            "class": "cats",
            "misclassified": False,
            "probabilities": [0.9, 0.1],
        },
    ],
    "maps": [
        {
            "name": "before",
            "title": "the pretrained base",
            "explained_variance": [0.5, 0.25],
            "x": [1.0, 2.0, 3.0],
            "y": [-1.0, 0.0, 1.0],
            "separation": {},
        }
    ],
}


def test_one_trace_per_class_with_errors_ringed_and_the_subsample_said():
    fig = map_figure(DOC)
    cats, dogs = fig.data
    assert (cats.name, list(cats.x), list(cats.y), [c[0] for c in cats.customdata]) == ("cats", [1.0, 3.0], [-1.0, 1.0], [0, 2])
    assert (dogs.name, list(dogs.x), [c[0] for c in dogs.customdata]) == ("dogs", [2.0], [1])
    assert list(cats.marker.line.width) == [0, 0] and list(dogs.marker.line.width) == [2]  # the misclassified dog is ringed
    assert list(cats.marker.symbol) == ["circle", "diamond"]  # training ●, validation ◆
    assert dogs.hovertext[0] == "b.png<br>validation, true class dogs<br>cats 75.0%, dogs 25.0%<br><b>misclassified</b>"
    assert cats.hovertext[0] == "a.png<br>train, true class cats"
    assert fig.layout.title.text.startswith("PCA of 3 of 30 images (subsample")
    assert fig.layout.xaxis.title.text == "PC 1 (50% of variance)" and fig.layout.yaxis.title.text == "PC 2 (25% of variance)"


def test_a_t_sne_map_names_its_axes_without_variance():
    doc = {**DOC, "maps": [{**DOC["maps"][0], "explained_variance": None}]}
    fig = map_figure(doc)
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("t-SNE 1", "t-SNE 2")


def test_a_selected_point_is_read_from_its_customdata():
    assert _picked({"selection": {"points": [{"customdata": [7], "x": 1.0}]}}) == 7
    assert _picked({"selection": {"points": []}}) is None and _picked(None) is None


@pytest.mark.slow
def test_the_data_overview_draws_the_map_through_a_job():
    from ui import resources

    at = tiny_setup(page("pages/data_overview.py"))
    at.button(key="data_feature_map_draw").click().run()
    assert not at.exception, at.exception
    job = resources.job_runner().jobs()[-1]
    assert job.kind == "feature-map" and job.config["backbone"]["image_size"] == 32
    at = wait_for(at, lambda a: any("Classes apart in this map" in c.value for c in a.caption))
    doc = resources.job_runner().tool_result(job.id)
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    drawn = sum(len(t["x"]) for t in spec["data"])
    assert drawn == doc["shown"] == len(doc["points"]) and doc["total"] >= doc["shown"]
    assert [t["name"] for t in spec["data"]] == doc["classes"]


def test_a_finished_run_offers_its_map_as_a_feature_map_job_of_that_run(tmp_path):
    import os

    from streamlit.testing.v1 import AppTest

    from engine.store.jobs import Job, JobRunner
    from tests.conftest import write_run

    write_run(tmp_path / "runs", "frozen-1")  # TLS_RUNS_DIR (conftest's isolated_store)
    assert os.environ["TLS_RUNS_DIR"] == str(tmp_path / "runs")
    metrics = {"validation": {"accuracy": 0.5}}
    at = AppTest.from_string(f"from ui.run_analysis import show_run_analysis\nshow_run_analysis({metrics!r}, 'frozen-1')").run()
    assert not at.exception, at.exception
    assert [e.label for e in at.expander] == ["Feature map of this run"] and at.button(
        key="fm_frozen-1_draw"
    ).label == "Draw the feature map"
    runner = JobRunner(runs_dir=tmp_path / "runs")
    spec = runner.spec(
        Job("feature-map-x", "frozen", {"data": {"path": "/d"}}, kind="feature-map", options={"run": "frozen-1"}), "c.json"
    )
    assert spec["command"] == "feature-map" and spec["options"]["run"] == "frozen-1"
    at.radio(key="fm_frozen-1_method").set_value("tsne").run()
    at.button(key="fm_frozen-1_draw").click().run()  # queues (its process fails at once: this run has no model)
    from ui import resources

    job = resources.job_runner().jobs()[-1]
    assert job.kind == "feature-map" and job.options == {"method": "tsne", "run": "frozen-1"}
    resources.job_runner().stop(job.id)
    assert spec["options"]["out"] == str(tmp_path / "runs" / ".feature-map" / "feature-map-x.json")
