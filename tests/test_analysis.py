"""Errors you can learn from and repeat groups (engine/insight/analysis.py), on hand-made predictions and one tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_config

from engine.insight import analysis
from engine.insight.analysis import AnalysisError, SplitPredictions


@pytest.fixture
def preds() -> SplitPredictions:
    """Six images: two cats called dogs (one confidently), one dog called a cat, three right."""
    probs = np.array([[0.9, 0.1], [0.05, 0.95], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9]])
    return SplitPredictions("test", ["cats", "dogs"], [f"img{i}.jpg" for i in range(6)], np.array([0, 0, 0, 1, 1, 1]), probs)


def test_highest_loss_orders_errors_by_loss_with_probabilities(preds):
    rows = analysis.highest_loss(preds)
    assert [r["path"] for r in rows] == ["img1.jpg", "img3.jpg", "img2.jpg"]
    assert rows[0]["true"] == "cats" and rows[0]["predicted"] == "dogs"
    assert rows[0]["loss"] == pytest.approx(-np.log(0.05), abs=1e-6)
    assert rows[0]["probabilities"] == {"cats": 0.05, "dogs": 0.95}


def test_highest_loss_filters_by_true_and_predicted_class(preds):
    assert [r["path"] for r in analysis.highest_loss(preds, true_class="dogs")] == ["img3.jpg"]
    assert [r["path"] for r in analysis.highest_loss(preds, predicted_class="dogs", k=1)] == ["img1.jpg"]
    # with correct ones too: the least confident correct dog comes after the errors
    rows = analysis.highest_loss(preds, true_class="dogs", errors_only=False)
    assert [r["path"] for r in rows] == ["img3.jpg", "img4.jpg", "img5.jpg"]
    with pytest.raises(AnalysisError, match="true_class: unknown class 'birds'"):
        analysis.highest_loss(preds, true_class="birds")


def test_most_confused_and_per_class_report(preds):
    cm = preds.confusion_matrix()
    assert cm == [[1, 2], [1, 2]]
    assert analysis.most_confused(cm, preds.classes) == [
        {"true": "cats", "predicted": "dogs", "count": 2},
        {"true": "dogs", "predicted": "cats", "count": 1},
    ]
    rep = analysis.per_class_report(cm, preds.classes)
    assert rep["cats"]["precision"] == pytest.approx(0.5) and rep["cats"]["recall"] == pytest.approx(1 / 3)
    assert rep["cats"]["f1"] == pytest.approx(0.4) and rep["dogs"]["support"] == 3
    assert analysis.per_class_report([[0, 0], [0, 2]], ["a", "b"])["a"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def test_disagreements_between_runs(preds):
    other = SplitPredictions(
        "test", preds.classes, list(reversed(preds.files)), preds.labels[::-1].copy(), np.tile([0.8, 0.2], (6, 1))
    )  # says "cats" for every image, files in another order
    rows = analysis.disagreements({"a": preds, "b": other})
    assert {r["path"] for r in rows} == {"img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg"}
    assert rows[0]["wrong"] == 1 and rows[0]["runs"]["b"] == {"predicted": "cats", "probability": 0.8}
    with pytest.raises(AnalysisError, match="at least two runs"):
        analysis.disagreements({"a": preds})


def _record(rid, approach, group, seed, acc):
    return {
        "id": rid,
        "config": {"approach": approach, "fit": {"seed": seed}, "resolved": {"repeat_group": group, "seed": seed}},
        "metrics": {"test": {"accuracy": acc}},
    }


def test_group_repeats_mean_std_and_overlap():
    recs = [
        _record("a1", "frozen", "g1", 1, 0.90),
        _record("a2", "frozen", "g1", 2, 0.92),
        _record("a3", "frozen", "g1", 3, 0.94),
        _record("b1", "fine_tuning", "g2", 1, 0.93),
        _record("b2", "fine_tuning", "g2", 2, 0.95),
        _record("c1", "feature_extraction", None, 1, 0.99),
        {"id": "d", "config": {}, "metrics": {"test": None}},
    ]
    groups = {g["group"]: g for g in analysis.group_repeats(recs)}
    assert set(groups) == {"g1", "g2", "c1"}  # a run without a group is its own; one without the metric is left out
    g1 = groups["g1"]
    assert g1["n"] == 3 and g1["seeds"] == [1, 2, 3]
    assert g1["mean"] == pytest.approx(0.92) and g1["std"] == pytest.approx(0.02)
    assert g1["overlaps"] == ["g2"] and groups["c1"]["overlaps"] == [] and groups["c1"]["std"] == 0.0


@pytest.mark.slow
def test_a_scored_run_stores_every_image_probabilities(tiny_dataset):
    from engine.training.approaches import RUNNERS, prepare_data

    data = prepare_data(str(tiny_dataset))
    res = RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), data)
    stored = json.loads((analysis.Path(res.run_dir) / analysis.PREDICTIONS_FILE).read_text())
    assert set(stored["splits"]) == {"validation", "test"}
    p = analysis.load_predictions(res.run_dir)  # test by default
    assert p.split == "test" and len(p.files) == 8 and p.probabilities.shape == (8, 2)
    assert np.allclose(p.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert p.confusion_matrix() == res.metrics["test"]["confusion_matrix"]
    assert analysis.load_predictions(res.run_dir, "validation").split == "validation"
    with pytest.raises(AnalysisError, match="no stored predictions"):
        analysis.load_predictions(tiny_dataset)


@pytest.mark.slow
def test_cli_seeds_repeat_on_the_same_split_and_group(tmp_path, capsys):
    from conftest import make_image

    from engine.cli import main

    flat = tmp_path / "flat"  # flat layout: the split is drawn from the seed, and must not move between repeats
    for cls, colour in (("cats", (200, 60, 40)), ("dogs", (40, 80, 200))):
        for k in range(10):
            make_image(flat / cls / f"{cls}_{k}.png", colour, seed=k)
    runs = tmp_path / "r"
    assert (
        main(
            [
                "run",
                "--data",
                str(flat),
                "--approach",
                "feature_extraction",
                "--seeds",
                "2",
                "--backbone",
                "vgg16",
                "--weights",
                "none",
                "--image-size",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--split",
                "0.6",
                "0.2",
                "0.2",
                "--runs-dir",
                str(runs),
                "--cache-dir",
                str(tmp_path / "c"),
                "--quiet",
            ]
        )
        == 0
    )
    reps = json.loads(capsys.readouterr().out)["runs"]
    assert [r["seed"] for r in reps] == [42, 43] and reps[0]["repeat_group"] == reps[1]["repeat_group"]
    tests = [analysis.load_predictions(runs / r["id"]).files for r in reps]
    assert tests[0] == tests[1] and len(tests[0]) == 4
    from engine.store.runs import RunStore

    groups = analysis.group_repeats(RunStore(runs).list().runs)
    assert len(groups) == 1 and groups[0]["n"] == 2 and sorted(groups[0]["seeds"]) == [42, 43]
    assert main(["run", "--data", str(flat), "--approach", "frozen", "--seeds", "0"]) == 2
    assert "argument --seeds: must be >= 1, got 0" in capsys.readouterr().err
