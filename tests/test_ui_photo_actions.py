"""The per-photo actions (ui/photo_actions.py) where photos are shown: the error gallery, a confusion-matrix cell,
the feature map's clicked point; Train again with the same settings; Compare's note on runs that saw other photos."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

from streamlit.testing.v1 import AppTest

from tests.conftest import make_split_dataset, tiny_config, write_run
from tests.test_app_pages import sample_dir  # noqa: F401  (autouse: the allowed roots)
from ui.analysis_view import clickable_confusion, picked_cell


def scored_run(root: Path, run_id: str = "frozen-1", split: str = "test") -> Path:
    """A finished run of `root` (no model) whose predictions.json holds `split`'s photos, every cat taken for a dog."""
    cfg = {
        **tiny_config("frozen", root).to_dict(),
        "resolved": {"classes": ["cats", "dogs"], "image_size": 32, "dataset_root": str(root)},
    }
    run_dir = write_run(Path(os.environ["TLS_RUNS_DIR"]), run_id, config=cfg)
    files = sorted(str(p) for p in (root / split).rglob("*.png"))
    labels = [0 if "/cats/" in f else 1 for f in files]
    probs = [[0.2, 0.8] for _ in files]
    (run_dir / "predictions.json").write_text(
        json.dumps({"classes": ["cats", "dogs"], "splits": {split: {"files": files, "labels": labels, "probabilities": probs}}})
    )
    return run_dir


def by_suffix(at, suffix: str) -> list:
    return [b for b in at.button if b.key.endswith(suffix)]


def test_each_confusion_cell_is_a_point_that_names_its_cell():
    fig = clickable_confusion([[3, 1], [0, 4]], ["cats", "dogs"])
    cells = fig.data[1]
    assert [list(c) for c in cells.customdata] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert (list(cells.x), list(cells.y)) == (["cats", "dogs", "cats", "dogs"], ["cats", "cats", "dogs", "dogs"])
    assert cells.marker.opacity == 0 and fig.layout.hoverdistance == -1  # a click anywhere in a cell (tried in Chromium)
    assert picked_cell({"selection": {"points": [{"customdata": [1, 0]}]}}) == (1, 0)
    assert picked_cell({"selection": {"points": []}}) is None and picked_cell(None) is None


def test_the_error_gallery_acts_on_a_photo_and_leaves_it_out(tmp_path):
    root = make_split_dataset(tmp_path / "tiny")
    run_dir = scored_run(root)
    at = AppTest.from_string(
        f"from ui.analysis_view import show_errors\nshow_errors({str(run_dir)!r}, 'err', root={str(root)!r})"
    ).run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 4 and len(by_suffix(at, "_remove")) == 4  # the four misclassified cats
    by_suffix(at, "_remove")[0].click().run()
    assert len([p for p in (root / "test" / "cats").glob("*.png")]) == 3
    assert any("Removed cats_" in s.value and "train again" in s.value for s in at.success)
    assert len(at.get("image")) == 3
    assert any(c.value.startswith("1 photo(s) acted on since this run scored them are left out") for c in at.caption)
    at.button(key="err_undo").click().run()
    assert len(list((root / "test" / "cats").glob("*.png"))) == 4 and len(at.get("image")) == 4


def test_a_clicked_confusion_cell_shows_its_photos_with_their_actions(tmp_path):
    root = make_split_dataset(tmp_path / "tiny")
    run_dir = scored_run(root)
    metrics = {"test": {"accuracy": 0.5, "confusion_matrix": [[0, 4], [0, 4]], "per_class": {"cats": {}, "dogs": {}}}}
    script = f"""
import streamlit as st
from ui import analysis_view
real = st.plotly_chart
st.plotly_chart = lambda *a, **k: (real(*a, **k), {{"selection": {{"points": [{{"customdata": [0, 1]}}]}}}})[1]  # cats taken for dogs
try:
    analysis_view.confusion_cells({metrics["test"]!r}, {str(run_dir)!r}, "cm_x", {str(root)!r})
finally:
    st.plotly_chart = real
"""
    at = AppTest.from_string(script).run()
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown][0] == "**True cats, predicted dogs**: 4 photo(s)"
    assert len(at.get("image")) == 4
    relabel = by_suffix(at, "_relabel")[0]
    assert relabel.key.startswith("cm_x_cell_")
    relabel.click().run()
    assert len(list((root / "test" / "dogs").glob("cats_*.png"))) == 1


def test_the_feature_map_point_has_the_actions(tmp_path):
    root = make_split_dataset(tmp_path / "tiny")
    photo = root / "validation" / "dogs" / "dogs_1.png"
    doc = {
        "classes": ["cats", "dogs"],
        "points": [
            {
                "file": str(photo),
                "split": "validation",
                "label": 1,
                "class": "dogs",
                "misclassified": True,
                "probabilities": [0.7, 0.3],
            }
        ],
    }
    at = AppTest.from_string(f"from ui.feature_map_view import show_point\nshow_point({doc!r}, 0, 'fm', {str(root)!r})").run()
    assert not at.exception, at.exception
    assert [s.options for s in at.selectbox] == [["cats"]]
    by_suffix(at, "_relabel")[0].click().run()
    assert not photo.exists() and (root / "validation" / "cats" / "dogs_1.png").is_file()
    assert at.button(key="fm_point_undo").label == "Undo: relabelled dogs_1.png to cats"
    assert not by_suffix(at, "_relabel")  # the point's photo moved: nothing left to act on
    at.button(key="fm_point_undo").click().run()
    assert photo.is_file()


def test_the_sample_dataset_disables_the_gallery_actions(tmp_path):
    from engine.data.sample import ensure_sample_dataset

    root = ensure_sample_dataset()
    run_dir = scored_run(root)
    preds = json.loads((run_dir / "predictions.json").read_text())
    test = preds["splits"]["test"]
    test["labels"], test["probabilities"] = [1 for _ in test["files"]], [[0.9, 0.1] for _ in test["files"]]  # all wrong
    (run_dir / "predictions.json").write_text(json.dumps(preds))
    at = AppTest.from_string(
        f"from ui.analysis_view import show_errors\nshow_errors({str(run_dir)!r}, 'err', root={str(root)!r})"
    ).run()
    assert not at.exception, at.exception
    assert [c.value for c in at.caption if c.value.startswith("Relabel, Remove and Keep are off here")]
    assert by_suffix(at, "_remove") and all(b.disabled for b in by_suffix(at, "_remove"))


def test_train_again_queues_the_runs_config_without_what_it_resolved(tmp_path, monkeypatch):
    from engine.config import RunConfig
    from ui import resources

    root = make_split_dataset(tmp_path / "tiny")
    run_dir = scored_run(root)
    queued = []
    monkeypatch.setattr(
        resources,
        "job_runner",
        lambda: SimpleNamespace(submit=lambda cfg, preset=None: queued.append((cfg, preset)) or SimpleNamespace(id="frozen-2")),
    )
    at = AppTest.from_string("from ui.run_analysis import train_again_button\ntrain_again_button('frozen-1')").run()
    at.button(key="again_frozen-1").click().run()
    assert not at.exception, at.exception
    ((cfg, preset),) = queued
    stored = json.loads((run_dir / "config.json").read_text())
    assert cfg.to_dict() == RunConfig.from_dict({k: v for k, v in stored.items() if k != "resolved"}).to_dict() and preset is None
    assert cfg.data.path == str(root)
    assert [s.value for s in at.success] == ["Queued as run frozen-2: its progress shows above when it starts."]


def test_compare_says_when_two_runs_of_a_dataset_saw_different_photos(tmp_path):
    import time

    from engine.data import curation
    from ui.compare_extras import split_changes

    root = make_split_dataset(tmp_path / "tiny")
    runs = Path(os.environ["TLS_RUNS_DIR"])
    scored_run(root, "frozen-a", split="validation")
    curation.relabel(root, [str(root / "validation" / "cats" / "cats_1.png")], "dogs")
    curation.remove(root, [str(root / "validation" / "dogs" / "dogs_0.png"), str(root / "validation" / "dogs" / "dogs_1.png")])
    curation.relabel(root, [str(root / "train" / "cats" / "cats_0.png")], "dogs")  # train: not in predictions, in the history
    scored_run(root, "frozen-b", split="validation")
    assert split_changes(runs, "frozen-a", "frozen-a") == []
    assert split_changes(runs, "frozen-a", "frozen-b") == [
        "validation changed: 3 photos differ, so their scores are not on the same photos"
    ]
    now = time.time()
    for run_id, start in (("frozen-a", now - 60), ("frozen-b", now + 60)):
        (runs / run_id / "heartbeat.json").write_text(json.dumps({"started": start, "heartbeat": start}))
    at = AppTest.from_string(
        "from ui import resources\nfrom ui.compare_extras import show_photo_changes\n"
        "show_photo_changes(resources.run_store().list().runs)"
    ).run()
    assert not at.exception, at.exception
    (note,) = [w.value for w in at.warning]
    assert note == (
        "Frozen + augmentation (…ozen-a) and Frozen + augmentation (…ozen-b) saw different photos: validation "
        "changed: 3 photos differ, so their scores are not on the same photos. Between their starts: relabelled "
        "cats_1.png to dogs, removed 2 photos, relabelled cats_0.png to dogs."
    )
