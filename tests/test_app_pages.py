"""Pages driven through streamlit.testing with the shared sidebar: train through the job runner, compare, classify.

AppTest re-runs only the page script after the first run of an `st.navigation` app (the
entrypoint with the sidebar is skipped), so these tests render sidebar + page in one
harness script; navigation itself is covered by test_app.py and the browser test.
"""

import os
import re
import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ASSETS, ROOT


@pytest.fixture(autouse=True)
def sample_dir(tmp_path, monkeypatch):
    # Folder paths and weights files typed into the sidebar must lie inside these (engine/data/paths.py).
    monkeypatch.setenv("TLS_DATA_ROOTS", os.pathsep.join([str(tmp_path), str(ASSETS)]))
    monkeypatch.chdir(ROOT)


def page(path: str) -> AppTest:
    script = f"""
import runpy
from ui.sidebar import render_sidebar
render_sidebar()
runpy.run_path({str(ROOT / path)!r}, run_name="__main__")
"""
    return AppTest.from_string(script, default_timeout=120)


def tiny_setup(at: AppTest) -> AppTest:
    """Random weights, VGG16, 32 px: trains in seconds and needs no download."""
    at.run()
    at.sidebar.radio(key="sb_weights").set_value("none")
    at.sidebar.selectbox(key="sb_backbone").set_value("vgg16")
    at.run()
    at.sidebar.slider(key="sb_image_size").set_value(32)
    return at.run()


def wait_for(at: AppTest, done, timeout=240) -> AppTest:
    """Waits for the queued jobs' processes to end, then re-runs the page until `done` (the job panel's next poll)."""
    from ui import resources

    runner = resources.job_runner()
    for job in runner.active():  # blocking here, not re-rendering the page, leaves the CPU to the training process
        runner.wait(job.id, timeout=timeout)
    end = time.time() + timeout
    while time.time() < end:
        at.run()
        if done(at):
            return at
        time.sleep(0.2)
    raise AssertionError(f"timed out; progress: {[p.value for p in at.get('progress')]}")


def train(approach_page: str, key: str, extra=None) -> AppTest:
    at = tiny_setup(page(approach_page))
    assert not at.exception, at.exception
    at.number_input(key=f"{key}_epochs").set_value(2)
    at.number_input(key=f"{key}_lr").set_value(0.001)
    if extra:
        extra(at)
    at.button[0].click().run()  # the form's Train button
    assert not at.exception, at.exception
    return wait_for(at, lambda a: any(m.label == "Validation accuracy" for m in a.metric))


@pytest.mark.slow
def test_training_job_completes_and_appears_on_compare(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_TENSORBOARD_DIR", str(tmp_path / "tb"))
    at = train(
        "pages/feature_extraction.py", "feature_extraction", lambda a: a.checkbox(key="feature_extraction_tensorboard").check()
    )
    assert any("finished: epoch 2/2" in str(p.proto.text) for p in at.get("progress"))
    assert len(at.get("plotly_chart")) >= 2  # accuracy + loss curves (+ confusion matrix)

    cmp = tiny_setup(page("pages/compare.py"))
    assert not cmp.exception, cmp.exception
    table = cmp.dataframe[0].value
    assert list(table["approach"]) == ["Feature extraction"] and list(table["epochs"]) == [2]
    assert list(table["precision"]) == ["float32"]  # auto on a CPU
    from engine.store.runs import RunStore

    fit_rate = RunStore().load(table["run"][0]).metrics["images_per_second"]["fit"]
    assert fit_rate > 0 and list(table["images/s"]) == [f"{fit_rate:,.0f}"]  # the training throughput, not "—"
    # the "Write TensorBoard logs" box: the job logged into the server's folder, one sub-folder per run
    assert [p.name for p in (tmp_path / "tb").iterdir()] == list(table["run"])
    assert list((tmp_path / "tb" / table["run"][0] / "validation").glob("events.out.tfevents.*"))


@pytest.mark.real_data
def test_classify_a_real_photo(real_run, assets):
    """The session's real cats-vs-dogs model, copied into this test's run store, calls a cat photo a cat."""
    from tests.shared_runs import copy_run

    runs_dir, run_id = real_run
    copy_run(runs_dir, run_id, os.environ["TLS_RUNS_DIR"])
    at = page("pages/classify.py").run()
    assert not at.exception, at.exception
    photo = (assets / "photos" / "cat_720p.jpg").read_bytes()
    at.file_uploader(key="cls_upload").set_value(("cat_720p.jpg", photo, "image/jpeg")).run()
    assert not at.exception, at.exception
    metric = at.metric[0]
    assert metric.value == "cats"
    assert re.fullmatch(r"Feature extraction · \d+ ms", metric.label), metric.label  # inference time
    assert at.get("plotly_chart")


def _truncated_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (120, 90), (200, 60, 40)).save(buf, "JPEG")
    return buf.getvalue()[:400]


@pytest.mark.parametrize("name,data", [("notes.jpg", b"this is not an image"), ("cut.jpg", _truncated_jpeg())])
def test_classify_rejects_a_broken_image_with_a_clear_message(name, data, tiny_ft_run):
    from tests.shared_runs import copy_run

    runs_dir, run_id, _ = tiny_ft_run
    copy_run(runs_dir, run_id, os.environ["TLS_RUNS_DIR"])
    at = page("pages/classify.py").run()
    at.file_uploader(key="cls_upload").set_value((name, data, "image/jpeg")).run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith(f"{name}: not a readable image")


def test_classify_explains_the_class_each_answer_shows():
    """With flips the model's plain argmax (dogs) is not the answer (cats): the Grad-CAM is of cats; the ensemble's
    column explains the ensemble's class."""
    from pathlib import Path

    from tests.test_explain import bright_left_png, write_left_right_cam_runs

    write_left_right_cam_runs(Path(os.environ["TLS_RUNS_DIR"]))
    at = page("pages/classify.py").run()
    at.multiselect(key="cls_runs").set_value(["a"]).run()
    at.toggle(key="cls_gradcam").set_value(True).run()
    at.file_uploader(key="cls_upload").set_value([("half.png", bright_left_png(), "image/png")]).run()
    assert not at.exception, at.exception

    assert [m.value for m in at.metric] == ["dogs"] and cam_captions(at) == ["Grad-CAM for dogs (light_dark)"]
    at.toggle(key="cls_tta").set_value(True).run()
    assert [m.value for m in at.metric] == ["cats"] and cam_captions(at) == ["Grad-CAM for cats (light_dark)"]
    at.toggle(key="cls_tta").set_value(False).run()
    at.multiselect(key="cls_runs").set_value(["a", "b"]).run()
    at.toggle(key="cls_ens").set_value(True).run()
    assert not at.exception, at.exception
    # a: dogs, b: cats, the ensemble (its own last column, explained through a): cats
    assert [m.value for m in at.metric] == ["dogs", "cats", "cats"]
    assert sorted(cam_captions(at)) == ["Grad-CAM for cats (light_dark)"] * 2 + ["Grad-CAM for dogs (light_dark)"]


def cam_captions(at: AppTest) -> list[str]:
    """The Grad-CAM captions on the page."""
    return re.findall(r'caption: "(Grad-CAM for [^"]+)"', "\n".join(str(e.proto) for e in at.get("image")))


def test_offline_imagenet_is_explained_at_the_top_of_the_sidebar_and_blocks_train(monkeypatch):
    from ui import resources, sidebar

    monkeypatch.setattr(resources, "internet_available", lambda: False)
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")  # nothing cached
    monkeypatch.delenv("TLS_WEIGHTS_DIR", raising=False)  # and no local weights anywhere
    resources.online.clear()
    sidebar.weights_default.clear()
    try:
        at = page("pages/feature_extraction.py").run()
        assert not at.exception, at.exception
        warning = at.sidebar.warning[0].value  # the first element of the sidebar: above the fold
        assert warning.startswith("No ImageNet weights: this machine is offline and none were found in TLS_WEIGHTS_DIR"), warning
        assert "'Local file'" in warning and "absl" not in warning
        assert at.button[0].disabled  # Train
        assert any(e.value == "Train is disabled: " + warning for e in at.error)
        at.sidebar.radio(key="sb_source").set_value("catsdogs").run()
        assert any("cats-and-dogs sample cannot be downloaded" in w.value for w in at.sidebar.warning)
        assert not at.exception
    finally:
        resources.online.clear()
        sidebar.weights_default.clear()


def test_the_size_slider_spans_the_chosen_backbones_own_range():
    at = page("pages/data_overview.py")
    at.run()
    at.sidebar.slider(key="sb_image_size").set_value(40).run()
    at.sidebar.selectbox(key="sb_backbone").set_value("xception").run()  # its minimum is 71 px
    assert not at.exception, at.exception
    slider = at.sidebar.slider(key="sb_image_size")
    assert (slider.min, slider.max, slider.value) == (71, 512, 71)  # the kept 40 px moved into Xception's range
    at.sidebar.selectbox(key="sb_backbone").set_value("efficientnet_v2_s").run()
    at.sidebar.slider(key="sb_image_size").set_value(384).run()  # its default, above the old fixed 320 px limit
    assert at.sidebar.slider(key="sb_image_size").value == 384 and not at.exception


def test_sidebar_settings_round_trip_through_the_url():
    at = page("pages/data_overview.py")
    at.query_params["weights"] = "None (random)"  # a link made before the option keys still works
    at.query_params["image_size"] = "64"
    at.query_params["backbone"] = "not-a-backbone"
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.radio(key="sb_weights").value == "none"
    assert at.sidebar.slider(key="sb_image_size").value == 64
    assert at.sidebar.selectbox(key="sb_backbone").value == "mobilenet_v2"  # invalid value ignored
    at.sidebar.selectbox(key="sb_backbone").set_value("vgg16").run()
    assert at.query_params["backbone"] == ["vgg16"] or at.query_params["backbone"] == "vgg16"


@pytest.mark.slow
def test_fine_tuning_continues_from_a_finished_frozen_run():
    from engine.data.sample import ensure_sample_dataset
    from engine.training.approaches import RUNNERS, prepare_data
    from tests.conftest import tiny_config

    data_dir = ensure_sample_dataset()
    frozen = RUNNERS["frozen"](tiny_config("frozen", data_dir, backbone="vgg16", epochs=2), prepare_data(str(data_dir)))
    at = tiny_setup(page("pages/fine_tuning.py"))
    assert not at.exception, at.exception
    choice = at.selectbox(key="fine_tuning_from_run")
    assert any(o.startswith(f"Continue from frozen run {frozen.id}") for o in choice.options), choice.options
    choice.set_value(frozen.id)
    at.number_input(key="fine_tuning_ftep").set_value(1)
    at.button[0].click().run()
    assert not at.exception, at.exception
    at = wait_for(at, lambda a: any(m.label == "Validation accuracy" for m in a.metric))
    # phase 1 is the frozen run's two epochs; only the one fine-tuning epoch was trained
    assert any("finished: epoch 3/3" in str(p.proto.text) for p in at.get("progress"))


def test_damaged_and_interrupted_runs_are_named_on_compare_and_classify():
    from pathlib import Path

    from engine.store import heartbeat
    from tests.conftest import dead_pid, write_run

    runs_dir = Path(os.environ["TLS_RUNS_DIR"])
    write_run(runs_dir, "3-empty", config={})
    cut = write_run(runs_dir, "2-cut")
    (cut / "model.keras").write_bytes(b"PK\x03\x04" + bytes(200))  # truncated
    write_run(
        runs_dir,
        "1-killed",
        state="running",
        epochs=3,
        owner={**heartbeat.identity(), "pid": dead_pid(), "heartbeat": time.time()},
    )

    cmp = page("pages/compare.py").run()
    assert not cmp.exception, cmp.exception
    warnings = [w.value for w in cmp.warning]
    assert "Run folder 3-empty is damaged and left out: config.json lacks 'approach'" in warnings
    assert any(w.startswith("Run folder 2-cut is damaged and left out: model.keras is unreadable") for w in warnings)
    assert any("1-killed: 3 of 10 epoch(s) done; its process" in c.value for c in cmp.caption)
    cmp.toggle(key="cmp_all").set_value(True).run()  # hand-written runs belong to no dataset in the sidebar
    cmp.multiselect(key="cmp_runs").set_value(["1-killed"]).run()
    assert not cmp.exception, cmp.exception
    row = cmp.dataframe[0].value.iloc[0]
    assert row["state"] == "interrupted" and row["epochs"] == 3

    cls = page("pages/classify.py").run()
    assert not cls.exception, cls.exception
    warnings = [w.value for w in cls.warning]
    assert "Run folder 3-empty is damaged and left out: config.json lacks 'approach'" in warnings
    assert any(w.startswith("Run folder 2-cut is damaged and left out: model.keras is unreadable") for w in warnings)
    assert "No trained model yet" in cls.info[0].value  # the killed run saved no model


def test_the_sidebar_sample_knob_is_remembered_and_shared_in_the_link():
    at = page("pages/data_overview.py")
    at.run()
    at.sidebar.number_input(key="sb_max_per_class").set_value(50).run()
    assert not at.exception, at.exception
    assert at.query_params["max_per_class"] in (["50"], "50")  # a refresh or a shared link keeps it
    again = page("pages/data_overview.py")  # a fresh session opened from that link
    again.query_params["max_per_class"] = "50"
    again.run()
    assert again.sidebar.number_input(key="sb_max_per_class").value == 50
