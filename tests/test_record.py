"""One record of a run (engine/store/record.py): the accessors every reader uses, and the continue-from-frozen rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.store.record import RunRecord

CONFIG = {
    "approach": "frozen",
    "backbone": {"name": "mobilenet_v2", "image_size": 0},
    "data": {"path": "given/path"},
    "fit": {"seed": 3},
    "resolved": {
        "dataset_root": "/data/pets",
        "classes": ["cats", "dogs"],
        "image_size": 150,
        "seed": 5,
        "estimate_s": 90.0,
        "repeat_group": "g1",
    },
}
METRICS = {
    "state": "finished",
    "epochs_total": 20,
    "validation": {"accuracy": 0.9, "loss": 0.3},
    "test": None,
    "wall_seconds": 100.0,
    "images_per_second": {"fit": 812.5, "features_train": 40.0},
}


def record(config=CONFIG, metrics=METRICS, history=None, rid="r1", path=Path("/nowhere")) -> RunRecord:
    return RunRecord(rid, path, config, history or {"loss": [0.5] * 20}, metrics)


def test_accessors_read_what_the_engine_resolved():
    r = record()
    assert (r.approach, r.backbone, r.dataset_root, r.classes, r.image_size) == (
        "frozen",
        "mobilenet_v2",
        "/data/pets",
        ["cats", "dogs"],
        150,
    )
    assert (r.seed, r.estimate_s, r.repeat_group, r.wall_seconds, r.images_per_second) == (5, 90.0, "g1", 100.0, 812.5)
    assert (r.epochs_run, r.epochs_total, r.state) == (20, 20, "finished")
    assert r.scored_accuracy == (0.9, "validation")  # no test split: validation, and it says so
    with_test = record(metrics={**METRICS, "test": {"accuracy": 0.95}})
    assert with_test.scored_accuracy == (0.95, "test") and with_test.accuracy("validation") == 0.9


def test_an_older_run_without_resolved_falls_back_to_what_was_given():
    r = record(config={k: v for k, v in CONFIG.items() if k != "resolved"}, metrics={"state": "stopped", "epochs_run": 2})
    assert (r.dataset_root, r.classes, r.image_size, r.seed, r.images_per_second) == ("given/path", [], None, 3, None)
    assert r.epochs_total == 2 and r.scored_accuracy == (None, "validation")


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, ""),
        ({"dataset_root": "/data/other"}, "another dataset or class list"),
        ({"classes": ["cats", "dogs", "birds"]}, "another dataset or class list"),
        ({"backbone": "vgg16"}, "another backbone or image size"),
        ({"image_size": 224}, "another backbone or image size"),
    ],
)
def test_fine_tuning_continues_only_a_finished_frozen_run_of_the_same_dataset_classes_backbone_and_size(change, reason):
    asked = {"dataset_root": "/data/pets", "classes": ["cats", "dogs"], "backbone": "mobilenet_v2", "image_size": 150, **change}
    problem = record().continue_problem(**asked)
    assert (reason in problem and problem) if reason else problem == ""


def test_a_run_that_is_not_a_finished_frozen_run_is_never_continued():
    same = {"dataset_root": "/data/pets", "classes": ["cats", "dogs"], "backbone": "mobilenet_v2", "image_size": 150}
    assert "is a finished fine_tuning run" in record(config={**CONFIG, "approach": "fine_tuning"}).continue_problem(**same)
    assert "is a stopped frozen run" in record(metrics={**METRICS, "state": "stopped"}).continue_problem(**same)
