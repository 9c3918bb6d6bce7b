"""pages/classify.py (AppTest): the default model by the one rule Compare follows too, a row per model with a short
caption, and each Grad-CAM enlargeable."""

import json
import os
import re
from pathlib import Path

from tests.test_app_pages import page, sample_dir  # noqa: F401 (sample_dir: autouse fixture)
from tests.test_explain import bright_left_png, write_left_right_cam_runs


def with_state(runs_dir: Path, rid: str, state: str, acc: float) -> None:
    """Rewrites run `rid`'s state and validation accuracy, as a stopped or failed training leaves them."""
    path = runs_dir / rid
    metrics = json.loads((path / "metrics.json").read_text())
    (path / "metrics.json").write_text(json.dumps({**metrics, "state": state, "validation": {"accuracy": acc}}))


def test_the_default_is_the_best_finished_run_never_a_newer_stopped_one():
    runs_dir = write_left_right_cam_runs(Path(os.environ["TLS_RUNS_DIR"]))
    with_state(runs_dir, "b", "stopped", 0.99)  # "b" is newer in the listing and scores higher, but it was stopped
    at = page("pages/classify.py")
    at.run()
    at.toggle(key="cls_all").set_value(True).run()  # hand-written runs belong to no sidebar dataset
    models = at.multiselect(key="cls_runs")
    assert not at.exception, at.exception
    assert models.label == "Models (default: the best finished run)" and models.value == ["a"]
    with_state(runs_dir, "a", "failed", 0.9)
    at = page("pages/classify.py").run()
    at.toggle(key="cls_all").set_value(True).run()
    assert at.multiselect(key="cls_runs").value == []
    assert any("never preselected" in i.value for i in at.info)


def test_a_row_per_model_with_a_short_caption_and_an_enlargeable_grad_cam():
    write_left_right_cam_runs(Path(os.environ["TLS_RUNS_DIR"]))
    at = page("pages/classify.py").run()
    at.toggle(key="cls_all").set_value(True).run()
    at.multiselect(key="cls_runs").set_value(["a", "b"]).run()
    at.toggle(key="cls_gradcam").set_value(True).run()
    at.file_uploader(key="cls_upload").set_value([("half.png", bright_left_png(), "image/png")]).run()
    assert not at.exception, at.exception
    assert [m.label for m in at.metric] == [
        f"Frozen + augmentation · {ms} ms" for ms in re.findall(r"(\d+) ms", " ".join(m.label for m in at.metric))
    ]  # the whole approach name, the time
    assert [m.help.endswith(rid) for m, rid in zip(at.metric, "ab")] == [True, True]  # the long label: in help
    short = [c.value for c in at.caption if c.value.startswith("mobilenet_v2")]
    assert short == ["mobilenet_v2 · 8 px · val acc 0.900", "mobilenet_v2 · 16 px · val acc 0.600"]
    knows = [c.value for c in at.caption if "only know" in c.value]
    assert knows == ["These models only know cats, dogs: they answer with one of them for any photo."]  # once, not per row
    assert len(at.columns) == 6  # a row per model, each: answer, probabilities, Grad-CAM
    assert len(at.get("image")) == 3  # the photo and a Grad-CAM per model
    at.button(key="cam_0_a").click().run()
    assert not at.exception, at.exception
    images = at.get("image")
    assert len(images) == 4 and "Grad-CAM for dogs" in str(images[-1].proto)  # the enlarged one, in its dialog
