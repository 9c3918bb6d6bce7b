"""Which learning rate a run trained at and where it came from (engine/insight/rates.py), for Compare."""

import json

from engine.insight.rates import learning_rate_label, learning_rate_source, stored_finder_results

CONFIG = {
    "approach": "feature_extraction",
    "fit": {"learning_rate": 1.3e-05},
    "fine_tune": {"learning_rate": 1e-5},
    "backbone": {"name": "mobilenet_v2"},
    "resolved": {"dataset_root": "/data/cvd", "image_size": 150},
}
FINDER = {
    "approach": "feature_extraction",
    "suggested": 1.2987e-05,
    "rule": "valley",
    "dataset_root": "/data/cvd",
    "backbone": "mobilenet_v2",
    "image_size": 150,
}


def _store(tmp_path, *docs):
    folder = tmp_path / ".lr-find"
    folder.mkdir()
    for i, doc in enumerate(docs):
        (folder / f"lr-find-{i}.json").write_text(json.dumps(doc) if isinstance(doc, dict) else doc)
    return stored_finder_results(tmp_path)


def test_a_rate_applied_from_a_finder_names_that_finder(tmp_path):
    finders = _store(tmp_path, FINDER, "{half a file", {**FINDER, "suggested": None})
    assert [f["job"] for f in finders] == ["lr-find-0"]  # the damaged and the suggestion-less are left out
    source = learning_rate_source(CONFIG, {}, finders)
    assert source == {"rate": 1.3e-05, "source": "finder", "job": "lr-find-0", "rule": "valley"}
    assert learning_rate_label(source) == "1.3e-05 (finder: lr-find-0)"


def test_a_finder_on_other_settings_did_not_advise_the_run(tmp_path):
    for i, other in enumerate(
        ({"image_size": 224}, {"dataset_root": "/data/other"}, {"approach": "frozen"}, {"suggested": 1.4e-05})
    ):
        (tmp_path / str(i)).mkdir()
        finders = _store(tmp_path / str(i), {**FINDER, **other})
        assert learning_rate_source(CONFIG, {}, finders)["source"] == "set", other
    assert learning_rate_label(learning_rate_source(CONFIG, {}, [])) == "1.3e-05"


def test_a_rate_found_in_the_run_wins_and_fine_tuning_reads_phase_two():
    metrics = {"learning_rate_finder": {"suggested": 0.0028, "used": 0.0028, "rule": "valley"}}
    assert learning_rate_label(learning_rate_source(CONFIG, metrics, [])) == "0.0028 (finder, in the run)"
    ft = {**CONFIG, "approach": "fine_tuning"}
    assert learning_rate_source(ft, metrics, [])["rate"] == 1e-5  # the phase the run trained last
    assert learning_rate_label({"rate": None, "source": "set"}) == "—"
