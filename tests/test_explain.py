"""Grad-CAM: the heatmap's shape and range for every backbone, its math on a model whose answer is
known, saved runs of each kind, the overlay, `predict --gradcam`, Classify's toggle, and (real
assets) that a cats-vs-dogs model looks at the cat."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.models import backbones, modeling
from engine import cli
from engine.config import BackboneConfig, HeadConfig
from engine.insight.explain import colorize, explain_image, gradcam, gradcam_paths, overlay
from engine.insight.inference import classify_file, load_run
from engine.store.runs import RunStore
from tests.conftest import ROOT
from tests.shared_runs import PHOTOS, copy_run, tiny_run, trained_run

LAST_CONV = {"vgg16": "block5_conv3", "mobilenet_v2": "out_relu", "mobilenet": "conv_pw_13_relu",
             "resnet50": "conv5_block3_out", "efficientnet_b0": "top_activation"}


def tiny_pipeline(backbone: str, num_classes: int = 2, size: int = 32):
    """The saved-model shape (pixels -> preprocess -> base -> head) with random weights."""
    base = backbones.build_base(BackboneConfig(name=backbone, weights="none"), size)
    head = modeling.build_head(tuple(base.output.shape[1:]), num_classes, HeadConfig(dense_units=8, dropout=0.5))
    return modeling.assemble_full_model(base, head, backbone, "backbone", size)


@pytest.mark.parametrize("backbone", sorted(backbones.BACKBONES))
def test_heatmap_has_the_image_shape_and_values_in_0_1_for_every_backbone(backbone):
    assert set(LAST_CONV) == set(backbones.BACKBONES)  # a new backbone needs its expected layer here
    model = tiny_pipeline(backbone)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)).astype(np.float32)
    cam = gradcam(model, pixels)
    assert cam.heatmap.shape == (32, 32) and cam.heatmap.dtype == np.float32
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0
    assert cam.layer == LAST_CONV[backbone]
    # the class explained is the predicted one, and the probabilities are the model's own
    p = float(np.asarray(model(pixels))[0, 0])
    np.testing.assert_allclose(cam.probabilities, [1 - p, p], atol=1e-5)
    assert cam.class_index == int(np.argmax([1 - p, p]))  # ties (random MobileNets output 0.5) go to class 0, as in Classify


def red_detector(nested: bool):
    """A model that calls an image "red" (class 1) the more red pixels it has: Grad-CAM must point at them."""
    import keras

    inp = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="redness",
                               kernel_initializer=keras.initializers.Constant(np.array([1.0, -1.0, -1.0]).reshape(1, 1, 3, 1)))
    if not nested:
        x = keras.layers.GlobalAveragePooling2D()(conv(keras.layers.Rescaling(1 / 255)(inp)))
        out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones", name="predictions")(x)
        return keras.Model(inp, out)
    base = keras.Model(inp, conv(inp), name="red_base")
    head = modeling.build_head((32, 32, 1), 2, HeadConfig(pooling="avg", dense_units=0, dropout=0.0))
    head.get_layer("predictions").set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    return modeling.assemble_full_model(base, head, "mobilenet_v2", "rescale", 32)


@pytest.mark.parametrize("nested", [True, False], ids=["nested base", "flat model"])
def test_heatmap_points_at_the_evidence(nested):
    img = np.full((1, 32, 32, 3), 90, np.float32)
    img[0, 4:12, 20:28] = (230, 20, 20)  # a red square, top right
    model = red_detector(nested)
    cam = gradcam(model, img, class_index=1)
    inside = np.zeros((32, 32), bool)
    inside[4:12, 20:28] = True
    assert cam.layer == "redness"
    assert cam.heatmap[inside].mean() > 0.9 and cam.heatmap[~inside].mean() < 0.2
    # the other class's evidence is the absence of red: the ReLU leaves nothing on the square
    assert gradcam(model, img, class_index=0).heatmap[inside].mean() < 0.1


def test_multiclass_explains_the_class_asked_for():
    model = tiny_pipeline("vgg16", num_classes=3)
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    probs = np.asarray(model(pixels[None].astype(np.float32)))[0]
    assert gradcam(model, pixels).class_index == int(np.argmax(probs))
    cam = gradcam(model, pixels, class_index=2)
    assert cam.class_index == 2 and cam.heatmap.shape == (32, 32)
    np.testing.assert_allclose(cam.probabilities, probs, atol=1e-5)


def test_colour_map_and_overlay():
    ramp = colorize(np.array([[0.0, 0.5, 1.0]]))
    assert ramp.dtype == np.uint8 and ramp.shape == (1, 3, 3)
    assert ramp[0, 0, 2] > 120 and ramp[0, 0, 0] == 0  # 0: blue
    assert ramp[0, 2, 0] > 120 and ramp[0, 2, 2] == 0  # 1: red
    photo = np.full((30, 50, 3), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    out = overlay(photo, heat)
    assert out.shape == (30, 50, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] > out[29, 49, 0]  # hot corner redder than the cold one
    np.testing.assert_array_equal(overlay(photo, heat, alpha=0.0), photo)


def test_gradcam_paths_one_png_per_image(tmp_path):
    assert gradcam_paths(tmp_path / "cam.png", ["a/cat.jpg"]) == [tmp_path / "cam.png"]
    assert gradcam_paths(tmp_path / "cam", ["x.jpg"]) == [tmp_path / "cam.png"]
    assert gradcam_paths(tmp_path / "cam.png", ["a/cat.jpg", "b/dog.bmp", "c/cat.png"]) == [
        tmp_path / "cam-cat.png", tmp_path / "cam-dog.png", tmp_path / "cam-cat-2.png"]


# --- Saved runs (tiny, random weights) -------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A fine-tuning run (augmentation, unfrozen top block) on tiny data: (runs_dir, run id, dataset)."""
    return tiny_run(tmp_path_factory)


def test_explain_a_saved_fine_tuned_run(tiny_runs):
    runs_dir, run_id, data_dir = tiny_runs
    run = load_run(RunStore(runs_dir), run_id)
    photo = data_dir / "test" / "cats" / "cats_0.png"  # 40 x 32 px
    cam = explain_image(run, photo)
    assert cam.heatmap.shape == (32, 40) and cam.overlay.shape == (32, 40, 3) and cam.overlay.dtype == np.uint8
    assert cam.layer == "out_relu"
    classified = classify_file(run, str(photo))
    assert cam.predicted == cam.explained == classified["predicted"]
    for cls, p in classified["probabilities"].items():
        assert cam.probabilities[cls] == pytest.approx(p, abs=1e-5)  # the same model, the same answer


def test_predict_writes_one_gradcam_png_per_image(tiny_runs, tmp_path, capsys):
    runs_dir, run_id, data_dir = tiny_runs
    images = [str(data_dir / "test" / c / f"{c}_0.png") for c in ("cats", "dogs")]
    assert cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--json", "--gradcam", str(tmp_path / "cam.png"), *images]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    assert [r["gradcam"] for r in rows] == [str(tmp_path / "cam-cats_0.png"), str(tmp_path / "cam-dogs_0.png")]
    for r in rows:
        with Image.open(r["gradcam"]) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (40, 32)
    # one image: exactly the path given; the plain output names it
    assert cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--gradcam", str(tmp_path / "one.png"), images[0]]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(images[0]) and out.endswith(f"Grad-CAM -> {tmp_path / 'one.png'}") and (tmp_path / "one.png").is_file()


def test_predict_gradcam_into_a_missing_folder_is_one_line(tiny_runs, tmp_path, capsys):
    runs_dir, run_id, data_dir = tiny_runs
    img = str(data_dir / "test" / "cats" / "cats_0.png")
    assert cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--gradcam", str(tmp_path / "no" / "cam.png"), img]) == 2
    assert capsys.readouterr().err.strip() == f"error: --gradcam {tmp_path / 'no' / 'cam.png'}: folder {tmp_path / 'no'} does not exist"


@pytest.mark.parametrize("case", ["input", "input-other-spelling", "folder", "device", "run-folder", "existing"])
def test_predict_gradcam_never_overwrites_what_was_not_named_as_output(tiny_runs, tmp_path, capsys, case):
    runs_dir, run_id, data_dir = tiny_runs
    photo = tmp_path / "photo.png"
    photo.write_bytes((data_dir / "test" / "cats" / "cats_0.png").read_bytes())
    before = photo.read_bytes()
    (tmp_path / "old.png").write_bytes(b"keep me")
    target, why = {
        "input": (photo, "is one of the input images; give a new file name"),
        "input-other-spelling": (tmp_path / "." / "photo.png", "is one of the input images; give a new file name"),
        "folder": (tmp_path, "is a folder; give the name of a new .png file"),
        "device": ("/dev/full", "is a device; give the name of a new .png file"),
        "run-folder": (runs_dir / run_id / "model.png", f"is inside the run store {runs_dir}; write it somewhere else"),
        "existing": (tmp_path / "old.png", "already exists; choose a new name, or add --force to replace it"),
    }[case]
    listing = sorted(p.name for p in tmp_path.parent.iterdir()), sorted(p.name for p in (runs_dir / run_id).iterdir())
    device_png = Path("/dev/full.png").exists()  # the old code left one there on machines where it ran
    assert cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--gradcam", str(target), str(photo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --gradcam {target}: {why}"]
    assert photo.read_bytes() == before and (tmp_path / "old.png").read_bytes() == b"keep me"
    assert (sorted(p.name for p in tmp_path.parent.iterdir()), sorted(p.name for p in (runs_dir / run_id).iterdir())) == listing
    assert Path("/dev/full.png").exists() == device_png
    if case == "existing":  # named as output and --force: replaced by the overlay
        assert cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--gradcam", str(target), "--force", str(photo)]) == 0
        with Image.open(target) as im:
            assert im.format == "PNG"


@pytest.mark.slow
def test_classify_page_shows_gradcam_under_each_model(tiny_runs, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    shared_dir, run_id, data_dir = tiny_runs
    runs_dir = tmp_path / "runs"
    copy_run(shared_dir, run_id, runs_dir)  # the page's run store is this test's own
    monkeypatch.setenv("TLS_RUNS_DIR", str(runs_dir))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_string(f"""
import runpy
from ui.sidebar import render_sidebar
render_sidebar()
runpy.run_path({str(ROOT / "pages" / "classify.py")!r}, run_name="__main__")
""", default_timeout=120).run()
    assert not at.exception, at.exception
    photo = (data_dir / "test" / "cats" / "cats_0.png").read_bytes()
    at.file_uploader(key="cls_upload").set_value(("cats_0.png", photo, "image/png")).run()
    assert not [e for e in at.get("image") if "Grad-CAM" in str(e.proto)]  # off by default
    at.toggle(key="cls_gradcam").set_value(True).run()
    assert not at.exception, at.exception
    captions = [str(e.proto) for e in at.get("image") if "Grad-CAM" in str(e.proto)]
    assert len(captions) == 1 and f"Grad-CAM for {at.metric[0].value} (out_relu)" in captions[0]


# --- Real assets --------------------------------------------------------------------------

CAT_PHOTO = "cat.bmp"  # 512 x 341: a tabby cat sitting, facing the camera (a second, dark cat's tail at the right edge)
CAT_BOX = (45, 30, 370, 341)  # left, top, right, bottom in pixels: the tabby, ears to paws, as seen in the photo


@pytest.mark.slow
@pytest.mark.real_data
def test_cats_vs_dogs_gradcam_concentrates_on_the_cat(tmp_path_factory):
    runs_dir, run_id = trained_run(tmp_path_factory)
    run = load_run(RunStore(runs_dir), run_id)
    cam = explain_image(run, PHOTOS / CAT_PHOTO)
    assert cam.predicted == cam.explained == "cats"
    assert cam.heatmap.shape == (341, 512)
    inside = np.zeros(cam.heatmap.shape, bool)
    left, top, right, bottom = CAT_BOX
    inside[top:bottom, left:right] = True
    mass_in, mass_out = float(cam.heatmap[inside].sum()), float(cam.heatmap[~inside].sum())
    assert mass_in > mass_out, (mass_in, mass_out)
    # and denser on the cat than around it (the box covers 58 % of the photo, so mass alone is a weak test)
    assert cam.heatmap[inside].mean() > cam.heatmap[~inside].mean(), (cam.heatmap[inside].mean(), cam.heatmap[~inside].mean())
