"""Grad-CAM: the heatmap's shape and range for every backbone, its math on a model whose answer is
known, saved runs of each kind, the overlay, `predict --gradcam`, Classify's toggle, the class it
explains being the one the answer shows (flips, ensembles), and (real assets) that a cats-vs-dogs
model looks at the cat."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import cli
from engine.config import BackboneConfig, HeadConfig
from engine.data import images
from engine.insight.explain import colorize, explain, gradcam, gradcam_paths, overlay
from engine.insight.inference import LoadedRun, Photo, answer, classify_file, load_run
from engine.models import backbones, modeling
from engine.models.pipeline import split_pipeline
from engine.store.runs import RunStore
from tests.conftest import ROOT
from tests.shared_runs import PHOTOS, copy_run, tiny_run, trained_run

LAST_CONV = {
    "vgg16": "block5_conv3",
    "mobilenet_v2": "out_relu",
    "mobilenet": "conv_pw_13_relu",
    "resnet50": "conv5_block3_out",
    "efficientnet_b0": "top_activation",
    "mobilenet_v3_small": "",
    "mobilenet_v3_large": "",
    "resnet50_v2": "post_relu",
    "densenet121": "relu",
    "efficientnet_v2_b0": "top_activation",
    "xception": "block14_sepconv2_act",
    "convnext_tiny": "",
    "efficientnet_v2_s": "top_activation",
}  # "": Keras numbers that last layer (activation_17, layer_normalization_3)
HEAVY = {"densenet121", "xception", "convnext_tiny", "efficientnet_v2_s", "resnet50_v2"}


def tiny_pipeline(backbone: str, num_classes: int = 2, size: int = 32):
    """The saved-model shape (pixels -> preprocess -> base -> head) with random weights."""
    base = backbones.build_base(BackboneConfig(name=backbone, weights="none"), size)
    head = modeling.build_head(tuple(base.output.shape[1:]), num_classes, HeadConfig(dense_units=8, dropout=0.5))
    return modeling.assemble_full_model(base, head, backbone, "backbone", size)


@pytest.mark.parametrize(
    "backbone", [pytest.param(b, marks=pytest.mark.slow) if b in HEAVY else b for b in sorted(backbones.BACKBONES)]
)
def test_heatmap_has_the_image_shape_and_values_in_0_1_for_every_backbone(backbone):
    assert set(LAST_CONV) == set(backbones.BACKBONES)  # a new backbone needs its expected layer here
    size = max(32, backbones.get_spec(backbone).min_size)
    model = tiny_pipeline(backbone, size=size)
    pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.float32)
    p = float(np.asarray(model(pixels))[0, 0])
    index = int(np.argmax([1 - p, p]))  # ties (random MobileNets output 0.5) go to class 0, as in Classify
    cam = gradcam(model, pixels, index)
    assert cam.heatmap.shape == (size, size) and cam.heatmap.dtype == np.float32
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0
    assert cam.layer == (LAST_CONV[backbone] or split_pipeline(model).base.layers[-1].name)
    # the class explained is the one asked for, and the probabilities are the model's own
    np.testing.assert_allclose(cam.probabilities, [1 - p, p], atol=1e-5)
    assert cam.class_index == index


def red_detector(nested: bool):
    """A model that calls an image "red" (class 1) the more red pixels it has: Grad-CAM must point at them."""
    import keras

    inp = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(
        1,
        1,
        activation="relu",
        name="redness",
        kernel_initializer=keras.initializers.Constant(np.array([1.0, -1.0, -1.0]).reshape(1, 1, 3, 1)),
    )
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
        tmp_path / "cam-cat.png",
        tmp_path / "cam-dog.png",
        tmp_path / "cam-cat-2.png",
    ]


# --- The class explained is the class shown (inference.answer) ------------------------------


def left_right_cam_model(size: int = 8, sign: float = 1.0):
    """A flat conv model that tells left from right, with Grad-CAMs that differ by class.

    Its 1x1 conv gives two maps, light (mean of RGB) and dark (255 - light); the sigmoid unit's
    logit is sign * 8 * (left light - right light) / (200 * half) + light / (200 * half)
    - dark / (310 * half) - 1 (sums over the pixels, half = pixels per half). On a photo bright
    (200) on the left and black on the right: logit sign * 8 - 1 plain, -sign * 8 - 1 flipped, so
    with sign 1 the plain image says dogs (sigmoid(7)) and the flip average cats (0.4996).
    Grad-CAM of dogs lights the bright half, of cats the dark half.
    """
    import keras

    half = size * size / 2
    inp = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="light_dark")
    out = keras.layers.Dense(1, activation="sigmoid", name="predictions")(keras.layers.Flatten()(conv(inp)))
    model = keras.Model(inp, out)
    conv.set_weights([np.array([[1 / 3, -1 / 3]] * 3, np.float32).reshape(1, 1, 3, 2), np.array([0, 255], np.float32)])
    k, light, dark = sign * 8 / (200 * half), 1 / (200 * half), 1 / (310 * half)
    w = np.zeros((size, size, 2), np.float32)
    w[:, : size // 2, 0], w[:, size // 2 :, 0], w[:, :, 1] = k + light, -k + light, -dark
    model.get_layer("predictions").set_weights([w.reshape(-1, 1), np.array([-1.0], np.float32)])
    return model


def left_right_run(run_id="lr", size=8, sign=1.0, val_accuracy=None) -> LoadedRun:
    return LoadedRun(run_id, left_right_cam_model(size, sign), ["cats", "dogs"], size, "frozen", "none", val_accuracy)


def bright_left_png(size=(16, 16)) -> bytes:
    img = Image.new("RGB", size, (0, 0, 0))
    img.paste((200, 200, 200), (0, 0, size[0] // 2, size[1]))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def cams_by_class(run, data: bytes, max_side: int = 1024) -> list[np.ndarray]:
    """`explain` of each class index for the photo: what the answer's heatmap must equal for the class it shows."""
    photo = Photo(data)
    return [explain(run, photo.pixels(run.image_size), photo.preview(max_side), i).heatmap for i in range(len(run.classes))]


def test_flip_averaging_that_changes_the_class_explains_the_class_shown():
    run, data = left_right_run(), bright_left_png()
    cams = cams_by_class(run, data)
    assert np.abs(cams[0] - cams[1]).max() > 0.5  # the two classes' heatmaps differ: a wrong class would show
    plain = answer(run, data, gradcam=True)
    assert plain.label == "dogs" and plain.probabilities["dogs"] > 0.99
    assert plain.gradcam.explained == "dogs" and plain.gradcam.class_index == 1
    np.testing.assert_allclose(plain.gradcam.heatmap, cams[1], atol=1e-6)
    flipped = answer(run, data, tta=True, gradcam=True)  # the model's argmax on the plain image is still dogs
    assert flipped.label == "cats" and flipped.probabilities["cats"] == pytest.approx(0.5, abs=0.01)
    assert flipped.gradcam.explained == "cats" and flipped.gradcam.class_index == 0 and flipped.gradcam.layer == "light_dark"
    np.testing.assert_allclose(flipped.gradcam.heatmap, cams[0], atol=1e-6)
    assert flipped.gradcam.heatmap[:, 8:].mean() > 0.9 and flipped.gradcam.heatmap[:, :8].mean() < 0.1  # the dark half
    assert flipped.to_dict()["gradcam"] == {"class": "cats", "layer": "light_dark", "run": "lr"}


def test_an_ensemble_explains_its_own_class_through_the_first_run():
    """Run a (8 px) says dogs, run b (16 px, mirrored weights) cats more surely: the ensemble says cats."""
    a, b = left_right_run("a", 8, 1.0), left_right_run("b", 16, -1.5)
    data = bright_left_png((32, 32))
    both = answer([a, b], data, gradcam=True)
    assert [m.label for m in both.members] == ["dogs", "cats"] and both.label == "cats"
    cams = cams_by_class(a, data)
    assert both.gradcam.run == "a" and both.gradcam.explained == "cats"
    np.testing.assert_allclose(both.gradcam.heatmap, cams[0], atol=1e-6)
    member_a, member_b = both.members  # each member is explained for the class it shows
    assert member_a.gradcam.explained == "dogs" and member_b.gradcam.explained == "cats" and member_b.gradcam.run == "b"
    np.testing.assert_allclose(member_a.gradcam.heatmap, cams[1], atol=1e-6)


def test_one_decode_per_answer_with_gradcam(monkeypatch, tmp_path):
    real, calls = images.open_rgb, []
    monkeypatch.setattr(images, "open_rgb", lambda *a, **k: calls.append(a) or real(*a, **k))
    data = bright_left_png((40, 30))
    (tmp_path / "p.png").write_bytes(data)
    runs = [left_right_run("a", 8), left_right_run("b", 16, -1.5)]
    by_bytes = answer(runs, data, tta=True, gradcam=True)
    assert len(calls) == 1
    by_file = answer(runs, tmp_path / "p.png", tta=True, gradcam=True)
    assert len(calls) == 2
    assert by_file.probabilities == by_bytes.probabilities and by_file.label == by_bytes.label
    np.testing.assert_array_equal(by_file.gradcam.overlay, by_bytes.gradcam.overlay)
    assert by_bytes.gradcam.overlay.shape == (30, 40, 3)  # drawn on the photo, aspect kept


def write_left_right_cam_runs(runs_dir: Path) -> Path:
    """Stored runs "a" (8 px, says dogs for a bright left half, cats with flips) and "b" (16 px, cats), no training."""
    from tests.conftest import write_run

    for rid, size, sign, acc in (("a", 8, 1.0, 0.9), ("b", 16, -1.5, 0.6)):
        cfg = {
            "approach": "frozen",
            "backbone": {"name": "mobilenet_v2"},
            "data": {"path": ""},
            "resolved": {"classes": ["cats", "dogs"], "image_size": size},
        }
        path = write_run(runs_dir, rid, config=cfg)
        metrics = json.loads((path / "metrics.json").read_text())
        (path / "metrics.json").write_text(json.dumps({**metrics, "validation": {"accuracy": acc}}))
        left_right_cam_model(size, sign).save(path / "model.keras")
    return runs_dir


def test_predict_and_answer_agree(tmp_path, capsys):
    runs_dir = write_left_right_cam_runs(tmp_path / "runs")
    img = tmp_path / "photo.png"
    img.write_bytes(bright_left_png((24, 20)))
    store = RunStore(runs_dir)
    runs = [load_run(store, rid) for rid in ("a", "b")]
    flags = ["--runs-dir", str(runs_dir), "--json", str(img)]
    for args, kwargs in ((["--tta"], {"tta": True}), (["--weighted"], {"weighted": True}), ([], {})):
        assert cli.main(["predict", "--run", "a", "--run", "b", *args, *flags]) == 0
        row = json.loads(capsys.readouterr().out)["predictions"][0]
        want = answer(runs, img, **kwargs)
        assert row["predicted"] == want.label and row["probabilities"] == pytest.approx(want.probabilities, abs=1e-6)
        assert [r["probabilities"] for r in row["runs"]] == [pytest.approx(m.probabilities, abs=1e-6) for m in want.members]
    cam = tmp_path / "cam.png"
    assert cli.main(["predict", "--run", "a", "--tta", "--gradcam", str(cam), *flags]) == 0
    row = json.loads(capsys.readouterr().out)["predictions"][0]
    want = answer(runs[0], img, tta=True, gradcam=True)
    assert row["predicted"] == want.label == "cats" and row["probabilities"] == pytest.approx(want.probabilities, abs=1e-6)
    assert row["gradcam_layer"] == "light_dark" and want.gradcam.explained == "cats"
    with Image.open(cam) as im:  # the overlay of the class printed (cats), not of the model's plain argmax (dogs)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), want.gradcam.overlay)


# --- Saved runs (tiny, random weights) -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A fine-tuning run (augmentation, unfrozen top block) on tiny data: (runs_dir, run id, dataset)."""
    return tiny_run(tmp_path_factory)


def test_explain_a_saved_fine_tuned_run(tiny_runs):
    runs_dir, run_id, data_dir = tiny_runs
    run = load_run(RunStore(runs_dir), run_id)
    photo = data_dir / "test" / "cats" / "cats_0.png"  # 40 x 32 px
    shown = answer(run, photo, gradcam=True)
    cam = shown.gradcam
    assert cam.heatmap.shape == (32, 40) and cam.overlay.shape == (32, 40, 3) and cam.overlay.dtype == np.uint8
    assert cam.layer == "out_relu" and cam.run == run_id
    classified = classify_file(run, str(photo))
    assert shown.label == cam.explained == classified["predicted"]
    assert shown.probabilities == pytest.approx(classified["probabilities"], abs=1e-6)  # the same model, the same answer
    pixels = images.decode_image(photo, run.image_size)
    probs = gradcam(run.model, pixels, cam.class_index).probabilities  # and Grad-CAM's own forward pass agrees
    assert dict(zip(run.classes, probs)) == pytest.approx(shown.probabilities, abs=1e-5)


def test_predict_writes_one_gradcam_png_per_image(tiny_runs, tmp_path, capsys):
    runs_dir, run_id, data_dir = tiny_runs
    images = [str(data_dir / "test" / c / f"{c}_0.png") for c in ("cats", "dogs")]
    assert (
        cli.main(
            ["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--json", "--gradcam", str(tmp_path / "cam.png"), *images]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["predictions"]
    assert [r["gradcam"] for r in rows] == [str(tmp_path / "cam-cats_0.png"), str(tmp_path / "cam-dogs_0.png")]
    for r in rows:
        with Image.open(r["gradcam"]) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (40, 32)
    # one image: exactly the path given; the plain output names it
    assert (
        cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--gradcam", str(tmp_path / "one.png"), images[0]])
        == 0
    )
    out = capsys.readouterr().out.strip()
    assert out.startswith(images[0]) and out.endswith(f"Grad-CAM -> {tmp_path / 'one.png'}") and (tmp_path / "one.png").is_file()


def test_predict_gradcam_into_a_missing_folder_is_one_line(tiny_runs, tmp_path, capsys):
    runs_dir, run_id, data_dir = tiny_runs
    img = str(data_dir / "test" / "cats" / "cats_0.png")
    assert (
        cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--gradcam", str(tmp_path / "no" / "cam.png"), img])
        == 2
    )
    assert (
        capsys.readouterr().err.strip()
        == f"error: --gradcam {tmp_path / 'no' / 'cam.png'}: folder {tmp_path / 'no'} does not exist; create it first or choose another place"
    )


@pytest.mark.parametrize("case", ["input", "input-other-spelling", "folder", "device", "run-folder", "existing"])
def test_predict_gradcam_never_overwrites_what_was_not_named_as_output(tiny_runs, tmp_path, capsys, case):
    runs_dir, run_id, data_dir = tiny_runs
    photo = tmp_path / "photo.png"
    photo.write_bytes((data_dir / "test" / "cats" / "cats_0.png").read_bytes())
    before = photo.read_bytes()
    (tmp_path / "old.png").write_bytes(b"keep me")
    target, why = {
        "input": (photo, "is one of this command's inputs; give a new file name"),
        "input-other-spelling": (tmp_path / "." / "photo.png", "is one of this command's inputs; give a new file name"),
        "folder": (tmp_path, "is a folder; give the name of a new file"),
        "device": ("/dev/full", "is a device; give the name of a new file"),
        "run-folder": (
            runs_dir / run_id / "model.png",
            f"is inside the run store {runs_dir}, whose folders readers trust; write it somewhere else",
        ),
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
        assert (
            cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--gradcam", str(target), "--force", str(photo)])
            == 0
        )
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
    at = AppTest.from_string(
        f"""
import runpy
from ui.sidebar import render_sidebar
render_sidebar()
runpy.run_path({str(ROOT / "pages" / "classify.py")!r}, run_name="__main__")
""",
        default_timeout=120,
    ).run()
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
    shown = answer(run, PHOTOS / CAT_PHOTO, gradcam=True)
    cam = shown.gradcam
    assert shown.label == cam.explained == "cats"
    assert cam.heatmap.shape == (341, 512)
    inside = np.zeros(cam.heatmap.shape, bool)
    left, top, right, bottom = CAT_BOX
    inside[top:bottom, left:right] = True
    mass_in, mass_out = float(cam.heatmap[inside].sum()), float(cam.heatmap[~inside].sum())
    assert mass_in > mass_out, (mass_in, mass_out)
    # and denser on the cat than around it (the box covers 58 % of the photo, so mass alone is a weak test)
    assert cam.heatmap[inside].mean() > cam.heatmap[~inside].mean(), (cam.heatmap[inside].mean(), cam.heatmap[~inside].mean())
