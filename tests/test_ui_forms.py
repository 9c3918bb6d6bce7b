"""What a user sees on the training forms and the sidebar (AppTest): weights that cannot train, visible
range errors, values that survive a page switch and a refresh, one augmentation state for every page."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def offline_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_DATA_ROOTS", str(tmp_path))
    monkeypatch.chdir(ROOT)


def harness(first: str) -> AppTest:
    """Sidebar + the page named in session state `_page` (a page switch in the same session)."""
    script = f"""
import runpy
import streamlit as st
from ui.sidebar import render_sidebar
render_sidebar()
runpy.run_path(str({str(ROOT)!r}) + "/" + st.session_state.get("_page", {first!r}), run_name="__main__")
"""
    at = AppTest.from_string(script, default_timeout=120)
    at.session_state["_page"] = first
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.session_state["_page"] = page
    return at.run()


def browse(at: AppTest, page: str) -> AppTest:
    """A page switch as Chromium makes it: the new page's URL holds only what its own run writes (measured: the
    typed folder and the form's f_* parameters left the address), so nothing may rest on the old page's URL."""
    for name in list(at.query_params):
        del at.query_params[name]
    return goto(at, page)


def test_local_file_with_an_empty_path_disables_train_with_a_sentence():
    from ui.sidebar import NO_PATH

    at = harness("pages/feature_extraction.py")
    at.query_params["weights"] = "local"
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.error[0].value == NO_PATH  # at the top of the sidebar
    assert at.button[0].disabled  # Train: never random weights instead
    assert any(e.value == "Train is disabled: " + NO_PATH for e in at.error)


def test_out_of_range_values_name_the_field_and_range_and_start_nothing():
    from ui import resources

    at = harness("pages/feature_extraction.py")
    at.query_params["weights"] = "none"
    at.run()
    at.number_input(key="feature_extraction_epochs").set_value(0)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any(e.value.startswith("Epochs must be ") and " 1" in e.value and e.value.endswith("; it is 0.") for e in at.error)
    assert resources.job_runner().jobs() == []


def test_fine_tuning_with_zero_phase_two_epochs_is_warned():
    at = harness("pages/fine_tuning.py")
    at.query_params["weights"] = "none"
    at.run()
    at.number_input(key="fine_tuning_ftep").set_value(0)
    at.number_input(key="fine_tuning_epochs").set_value(0)  # keeps the test from training
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any(w.value.startswith("Fine-tuning epochs is 0: only phase 1") for w in at.warning)


def test_form_values_survive_a_page_switch_and_a_refresh():
    at = harness("pages/feature_extraction.py")
    at.query_params["weights"] = "none"
    at.run()
    at.number_input(key="feature_extraction_epochs").set_value(0)  # invalid: nothing trains
    at.number_input(key="feature_extraction_lr").set_value(0.005)
    at.button[0].click().run()
    goto(at, "pages/compare.py")
    goto(at, "pages/feature_extraction.py")
    assert not at.exception, at.exception
    assert at.number_input(key="feature_extraction_lr").value == 0.005
    assert at.number_input(key="feature_extraction_epochs").value == 0  # what the user typed, with its range error

    fresh = harness("pages/feature_extraction.py")  # a browser refresh: a new session with the same URL
    for k, v in at.query_params.items():
        fresh.query_params[k] = v[0] if isinstance(v, list) else v
    fresh.run()
    assert fresh.number_input(key="feature_extraction_lr").value == 0.005
    # a remembered value that cannot train is not brought back: the default, with a note saying so
    assert fresh.number_input(key="feature_extraction_epochs").value == 30
    assert any(c.value.startswith("⚠️ Epochs: the remembered value 0 ") for c in fresh.caption)


def test_the_data_overview_preview_and_the_training_form_share_augmentation():
    at = harness("pages/data_overview.py").run()
    assert not at.exception, at.exception
    assert at.checkbox(key="aug_vf").value is True  # the lecture's default
    at.checkbox(key="aug_vf").uncheck().run()
    goto(at, "pages/frozen_training.py")
    assert not at.exception, at.exception
    assert at.checkbox(key="aug_vf").value is False  # carried over to the form


def test_offline_default_is_a_local_weights_file_found_in_tls_weights_dir(tmp_path, monkeypatch):
    from engine.models import backbones
    from ui import sidebar

    folder = tmp_path / "weights"
    folder.mkdir()
    found = folder / backbones.local_weights_names("mobilenet_v2", 1.0)[0]
    found.write_bytes(b"weights")  # the sidebar only needs to find it
    monkeypatch.setenv("TLS_WEIGHTS_DIR", str(folder))
    monkeypatch.setattr(backbones, "download_host_reachable", lambda: False)
    sidebar.weights_default.clear()
    try:
        at = harness("pages/feature_extraction.py").run()
        assert not at.exception, at.exception
        assert at.sidebar.radio(key="sb_weights").value == "local"
        assert at.sidebar.text_input(key="sb_weights_path").value == str(found)
        assert not at.button[0].disabled and not at.sidebar.warning and not at.sidebar.error  # Train works offline
    finally:
        sidebar.weights_default.clear()


def test_no_weights_anywhere_disables_train_with_one_sentence_at_the_top(monkeypatch):
    from engine.models import backbones
    from ui import sidebar

    monkeypatch.delenv("TLS_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(backbones, "download_host_reachable", lambda: False)
    monkeypatch.setattr(backbones, "find_local_weights", lambda *a: None)
    sidebar.weights_default.clear()
    try:
        at = harness("pages/feature_extraction.py").run()
        assert not at.exception, at.exception
        problem = at.sidebar.warning[0].value
        assert problem.startswith("No ImageNet weights: this machine is offline") and problem.count(". ") <= 2
        assert at.button[0].disabled and any(e.value == "Train is disabled: " + problem for e in at.error)
    finally:
        sidebar.weights_default.clear()


def _augmentation_values(at: AppTest) -> dict:
    keys = ("aug_enabled", "aug_rot", "aug_ws", "aug_hs", "aug_zoom", "aug_hf", "aug_vf", "aug_views")
    return {k: at.session_state[k] for k in keys}


LECTURE_AUGMENTATION = {
    "aug_enabled": True,
    "aug_rot": 20,
    "aug_ws": 0.1,
    "aug_hs": 0.1,
    "aug_zoom": 0.2,
    "aug_hf": True,
    "aug_vf": True,
    "aug_views": 3,
}


def test_bad_folders_and_a_refused_zip_never_cost_the_frozen_form_its_values(tmp_path):
    at = harness("pages/data_overview.py").run()
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    for bad in ("/etc", str(tmp_path / "nowhere"), ""):
        at.sidebar.text_input(key="sb_folder").input(bad).run()
        assert not at.exception, at.exception
    not_a_zip = ("data.zip", b"this is no zip", "application/zip")
    at.sidebar.radio(key="sb_source").set_value("zip").run()
    at.file_uploader(key="sb_zip").set_value(not_a_zip).run()
    assert at.session_state["sb_zip_error"].startswith("data.zip: ")  # refused
    at.sidebar.radio(key="sb_source").set_value("sample").run()
    goto(at, "pages/frozen_training.py")
    assert not at.exception, at.exception
    assert _augmentation_values(at) == LECTURE_AUGMENTATION
    goto(at, "pages/data_overview.py")
    goto(at, "pages/fine_tuning.py")
    assert _augmentation_values(at) == LECTURE_AUGMENTATION


def test_a_remembered_value_that_cannot_train_falls_back_to_the_default_with_a_note():
    at = harness("pages/frozen_training.py")
    at.query_params["f_aug_views"] = "0"  # e.g. a link from an older version, or a hand-edited address
    at.query_params["f_aug_rot"] = "400"
    at.query_params["f_frozen_epochs"] = "0"
    at.run()
    assert not at.exception, at.exception
    assert (at.session_state["aug_views"], at.session_state["aug_rot"], at.session_state["frozen_epochs"]) == (3, 20, 20)
    notes = [c.value for c in at.caption if c.value.startswith("⚠️")]
    assert (
        "⚠️ Augmented views (K): the remembered value 0 must be a whole number in [1, 100], got 0; back to the default 3." in notes
    )
    assert any(n.startswith("⚠️ Rotation (°): the remembered value 400") for n in notes)
    assert any(n.startswith("⚠️ Epochs: the remembered value 0") for n in notes)
    assert not any(e.value.startswith("Augmented views (K) must be") for e in at.error)  # Train is not blocked by it


def test_parameter_counts_follow_the_form_as_it_changes():
    at = harness("pages/frozen_training.py")
    at.query_params["weights"] = "none"
    at.run()
    assert not at.exception, at.exception

    def trainable() -> int:
        return int(next(m.value for m in at.metric if m.label == "Trainable params").replace(",", ""))

    before = trainable()
    at.select_slider(key="frozen_units").set_value(128).run()  # no Train pressed
    assert not at.exception, at.exception
    after = trainable()
    flat = (before - after - 128 - 128 * 3) // 128  # Flatten -> Dense(units) -> Dense(3 classes): F*u + u + 3u + 3
    assert flat > 0 and flat % 1280 == 0  # MobileNetV2's 1280 channels times the feature map's cells
    assert (before, after) == (flat * 256 + 256 + 256 * 3 + 3, flat * 128 + 128 + 128 * 3 + 3)


def test_continuing_a_frozen_run_shows_its_own_phase_one_settings_and_the_budget_in_words(tmp_path):
    import json
    import os
    from pathlib import Path

    from engine.data.sample import ensure_sample_dataset
    from tests.test_ui_results import saved_run

    here = str(ensure_sample_dataset())
    at = harness("pages/fine_tuning.py")
    at.query_params["weights"] = "none"
    at.run()
    assert not at.exception, at.exception
    size = at.session_state["sb_image_size"]
    run_id = "20260101-000001-frozen-aaaaaa"
    saved_run(run_id, here, size=size, epochs=12, wall=47.0)  # a finished frozen run of this dataset, backbone and size
    config_path = Path(os.environ["TLS_RUNS_DIR"]) / run_id / "config.json"
    config = json.loads(config_path.read_text())
    config.update(fit={"epochs": 12, "learning_rate": 0.001}, head={"pooling": "avg", "dense_units": 128, "dropout": 0.3})
    config_path.write_text(json.dumps(config))
    at.run()
    assert any(
        c.value.startswith("Phase 2 trains ") and "block_16" in c.value and "BatchNorm layers stay frozen" in c.value
        for c in at.caption
    )
    assert not at.number_input(key="fine_tuning_epochs").disabled
    at.selectbox(key="fine_tuning_from_run").set_value(run_id).run()
    assert not at.exception, at.exception
    tag = f"fine_tuning_of_{run_id}"  # the run's recorded phase 1, not the form's 30 epochs / 2e-5
    assert at.number_input(key=f"{tag}_epochs").value == 12 and at.number_input(key=f"{tag}_epochs").disabled
    assert at.number_input(key=f"{tag}_lr").value == 0.001 and at.number_input(key=f"{tag}_lr").disabled
    assert at.radio(key=f"{tag}_pool").value == "avg" and at.select_slider(key=f"{tag}_units").value == 128
    assert at.slider(key=f"{tag}_drop").value == 0.3 and at.slider(key=f"{tag}_drop").disabled
    assert not at.number_input(key="fine_tuning_ftep").disabled  # phase 2 is still the user's
    assert any(c.value.startswith(f"Phase 1 comes from frozen run {run_id}") for c in at.caption)
    ftep, ftlr = at.number_input(key="fine_tuning_ftep").value, at.number_input(key="fine_tuning_ftlr").value
    assert f"Phase 1 is done (12 epochs, 47 s, in run {run_id}); this trains phase 2 only: {ftep} epochs at {ftlr:g}." in [
        m.value for m in at.markdown
    ]
    assert next(h.value for h in at.subheader if h.value.startswith("Hyper-parameters")) == "Hyper-parameters (lecture defaults)"
    at.selectbox(key="fine_tuning_from_run").set_value("").run()  # phase 1 here again: the form's own values
    assert at.number_input(key="fine_tuning_epochs").value == 30 and not at.number_input(key="fine_tuning_epochs").disabled


def test_best_cpu_finds_its_rate_and_the_page_says_the_budget_in_steps():
    from tests.test_app_pages import page, tiny_setup

    at = tiny_setup(page("pages/feature_extraction.py"))
    budget = lambda: next(c.value for c in at.caption if c.value.startswith("Budget on "))  # noqa: E731
    assert "learning rate 2e-05" in budget() and not at.checkbox(key="feature_extraction_findlr").value
    at.selectbox(key="feature_extraction_preset").set_value("best_cpu").run()
    assert at.checkbox(key="feature_extraction_findlr").value and at.number_input(key="feature_extraction_lr").disabled
    assert at.slider(key="feature_extraction_patience").value == 20  # the preset's patience, not the slider's 0
    assert "up to 100 epochs × " in budget() and "at the learning-rate finder's rate" in budget()
    assert "stopping after 20 epochs without a lower validation loss (the best epoch kept)" in budget()
    at.checkbox(key="feature_extraction_findlr").uncheck().run()
    assert not at.number_input(key="feature_extraction_lr").disabled and "finder" not in budget()


@pytest.mark.parametrize(
    "approach_page,key,extra",
    [
        ("pages/feature_extraction.py", "feature_extraction", {}),
        ("pages/frozen_training.py", "frozen", {"aug_views": 2}),
        ("pages/fine_tuning.py", "fine_tuning", {"fine_tuning_ftep": 4, "aug_views": 2}),
    ],
)
def test_form_values_survive_three_other_pages_and_a_source_switch_and_back(tmp_path, approach_page, key, extra):
    at = harness(approach_page)
    at.query_params["weights"] = "none"
    at.run()
    at.number_input(key=f"{key}_epochs").set_value(3).run()
    at.slider(key=f"{key}_drop").set_value(0.5 if key != "feature_extraction" else 0.3).run()
    for k, v in extra.items():
        at.number_input(key=k).set_value(v).run()
    for other in ("pages/compare.py", "pages/data_overview.py", "pages/classify.py"):
        browse(at, other)
        assert not at.exception, at.exception
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    at.sidebar.text_input(key="sb_folder").input(str(tmp_path)).run()
    at.sidebar.radio(key="sb_source").set_value("sample").run()
    browse(at, approach_page)
    assert not at.exception, at.exception
    assert at.number_input(key=f"{key}_epochs").value == 3
    assert at.slider(key=f"{key}_drop").value == (0.5 if key != "feature_extraction" else 0.3)
    assert {k: at.number_input(key=k).value for k in extra} == extra


def test_the_sidebar_keeps_the_typed_folder_and_the_made_dataset_name_across_source_switches_and_pages(tmp_path):
    at = harness("pages/compare.py").run()
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    at.sidebar.text_input(key="sb_folder").input(str(tmp_path / "photos")).run()
    at.sidebar.radio(key="sb_source").set_value("made").run()
    at.sidebar.text_input(key="sb_made").input("pets").run()
    at.sidebar.radio(key="sb_source").set_value("sample").run()  # draws neither field
    for key in ("sb_folder", "sb_made"):  # what Chromium's session has lost by now (AppTest keeps a widget's state longer)
        del at.session_state[key]
    browse(at, "pages/classify.py")
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    assert not at.exception, at.exception
    assert at.sidebar.text_input(key="sb_folder").value == str(tmp_path / "photos")
    at.sidebar.radio(key="sb_source").set_value("made").run()
    assert at.sidebar.text_input(key="sb_made").value == "pets"
    assert at.query_params["made"] == ["pets"] or at.query_params["made"] == "pets"  # and in the URL, for a refresh
