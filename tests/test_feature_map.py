"""The feature map on a tiny dataset: one point per image, the cache reused, a run's errors ringed, before/after, the CLI."""

import json

import numpy as np
import pytest

from engine import cli
from engine.insight.analysis import load_predictions
from engine.insight.projection import pca_2d, pool
from engine.training import feature_map as fm
from tests.conftest import make_split_dataset, tiny_config


def _map(cfg, data, tmp, **kw):
    return fm.feature_map(cfg, data, runs_dir=tmp / "runs", cache_dir=tmp / "cache", **kw)


def test_one_point_per_image_from_the_cache_a_run_would_fill(tiny_dataset, tmp_path):
    from engine.training.approaches import prepare_data
    from engine.training.features import FeatureCache

    data = prepare_data(str(tiny_dataset))
    cfg = tiny_config("feature_extraction", tiny_dataset)
    first = _map(cfg, data, tmp_path)
    files = data.splits["train"].files + data.splits["validation"].files
    assert [p["file"] for p in first["points"]] == files and first["total"] == first["shown"] == 24
    assert [p["split"] for p in first["points"]] == ["train"] * 16 + ["validation"] * 8
    assert first["subsampled"] is False and first["note"] == "PCA of all 24 images" and first["run"] is None
    assert first["feature_cache"]["misses"] == 2  # the base ran once per split ...
    again = _map(cfg, data, tmp_path)
    assert again["feature_cache"]["misses"] == 0 and again["feature_cache"]["hits"] == 2  # ... and never again
    base = again["maps"][0]
    assert (base["x"], base["y"]) == (first["maps"][0]["x"], first["maps"][0]["y"])
    # the projection is PCA of the pooled cached arrays, under the keys a run of this config uses
    from engine.training.feature_map import _context

    ctx = _context(cfg, data, "float32", None, tmp_path / "cache", lambda e: None, lambda: False)
    cached = np.concatenate(
        [pool(FeatureCache(tmp_path / "cache").load(ctx.plan.plain(s, "").keys[""])) for s in ("train", "validation")]
    )
    expected = pca_2d(cached)
    assert np.column_stack([base["x"], base["y"]]) == pytest.approx(expected.coords, abs=1e-4)
    assert base["explained_variance"] == pytest.approx(expected.explained_variance_ratio, abs=1e-4)
    assert base["separation"]["nearest_centroid_accuracy"] == 1.0  # two flat colours: apart even through random weights


def test_a_large_set_is_a_stated_stratified_subsample(tmp_path):
    from engine.training.approaches import prepare_data

    root = make_split_dataset(tmp_path / "big", counts={"train": 20, "validation": 10})
    data = prepare_data(str(root))
    doc = _map(tiny_config("feature_extraction", root), data, tmp_path, limit=15)
    assert doc["shown"] == 15 and doc["total"] == 60 and doc["subsampled"] is True
    assert doc["note"].startswith("PCA of 15 of 60 images (subsample")
    counts = {
        (s, c): sum(p["split"] == s and p["class"] == c for p in doc["points"])
        for s in ("train", "validation")
        for c in ("cats", "dogs")
    }
    # each (split, class) keeps its share of 15: 5, 5, 2.5, 2.5; the one point left over goes to the first half-share
    assert counts == {("train", "cats"): 5, ("train", "dogs"): 5, ("validation", "cats"): 3, ("validation", "dogs"): 2}
    assert len(doc["maps"][0]["x"]) == 15
    pytest.importorskip("sklearn", reason="t-SNE is scikit-learn's (requirements.txt)")
    tsne = _map(tiny_config("feature_extraction", root), data, tmp_path, limit=15, method="tsne")
    assert tsne["note"].startswith("t-SNE of 15 of 60 images (subsample") and tsne["method"] == "tsne"
    assert tsne["points"] == doc["points"] and tsne["maps"][0]["explained_variance"] is None and len(tsne["maps"][0]["x"]) == 15


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """One tiny fine-tuning run (1 + 1 epochs, VGG16 32 px, random weights) the run tests share."""
    from engine.training.approaches import RUNNERS, prepare_data

    tmp = tmp_path_factory.mktemp("fm")
    root = make_split_dataset(tmp / "tiny")
    data = prepare_data(str(root))
    result = RUNNERS["fine_tuning"](tiny_config("fine_tuning", root), data, runs_dir=tmp / "runs", cache_dir=tmp / "cache")
    assert result.state == "finished"
    return tmp, data, result.id


@pytest.mark.slow
def test_a_fine_tuning_run_maps_before_and_after_on_the_same_images_with_its_errors(fine_tuned, monkeypatch):
    tmp, data, run_id = fine_tuned
    store = fm.RunStore(tmp / "runs")
    doc = _map(fm.run_config(store, run_id), data, tmp, run_id=run_id)
    assert doc["run"] == run_id and doc["approach"] == "fine_tuning" and [m["name"] for m in doc["maps"]] == ["before", "after"]
    assert doc["feature_cache"]["misses"] == 1  # the run cached validation's plain features; train's were views, made once here
    before, after = doc["maps"]
    assert len(before["x"]) == len(after["x"]) == len(doc["points"]) == 24
    assert after["x"] != before["x"]  # phase 2 trained the top block
    preds = load_predictions(tmp / "runs" / run_id, "validation")
    wrong = {f for f, y, p in zip(preds.files, preds.labels, preds.probabilities) if p.argmax() != y}
    val = [p for p in doc["points"] if p["split"] == "validation"]
    assert {p["file"] for p in val if p["misclassified"]} == wrong
    stored = dict(zip(preds.files, preds.probabilities))
    assert all(p["probabilities"] == pytest.approx(stored[p["file"]], abs=1e-4) for p in val)
    assert all(p["probabilities"] is None and not p["misclassified"] for p in doc["points"] if p["split"] == "train")
    assert (tmp / "runs" / run_id / fm.AFTER_FILE).exists()

    def never(*a, **k):
        raise AssertionError("the fine-tuned base ran again")

    monkeypatch.setattr(fm, "_fine_tuned_pass", never)  # a second look reads feature_map.npz
    again = _map(fm.run_config(store, run_id), data, tmp, run_id=run_id)
    assert again["maps"][1]["x"] == after["x"] and again["feature_cache"]["misses"] == 0


@pytest.mark.slow
def test_cli_writes_the_map_of_a_run_as_json(fine_tuned, capsys):
    tmp, data, run_id = fine_tuned
    out = tmp / "map.json"
    args = [
        "feature-map",
        "--data",
        data.report.root,
        "--approach",
        "fine_tuning",
        "--runs-dir",
        str(tmp / "runs"),
        "--cache-dir",
        str(tmp / "cache"),
        "--run",
        run_id,
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("before: PCA of all 24 images;") and lines[1].startswith("after: PCA of all 24 images;")
    assert lines[2].endswith("feature cache misses 0")
    doc = json.loads(out.read_text())
    assert doc["run"] == run_id and len(doc["points"]) == 24 and doc["separation"] == doc["maps"][0]["separation"]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--approach", "all"], "error: --approach: a feature map follows one config"),
        (["--approach", "frozen", "--limit", "5"], "error: argument --limit: must be between 10 (a map of fewer shows nothing)"),
        (["--approach", "frozen", "--run", "nope"], "error: --run nope: no run 'nope'"),
    ],
)
def test_cli_bad_requests_exit_2_with_one_line(tiny_dataset, tmp_path, capsys, args, says):
    assert (
        cli.main(["feature-map", "--data", str(tiny_dataset), "--weights", "none", "--runs-dir", str(tmp_path / "runs"), *args])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(says), err


def test_an_unfinished_run_is_refused_naming_its_state(tmp_path):
    from tests.conftest import write_run

    write_run(tmp_path / "runs", "fe-stopped", state="stopped")
    with pytest.raises(fm.FeatureMapError, match="--run fe-stopped: the run is stopped; a feature map needs a finished run"):
        fm.run_config(fm.RunStore(tmp_path / "runs"), "fe-stopped")
