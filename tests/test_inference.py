"""engine/insight/inference.py: classify an upload or a file with a stored run, as the run's own model sees it;
`answer`, the one answer per photo (decoded once, flips and runs averaged)."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from engine.data.images import ImageDecodeError
from engine.insight.inference import classify_bytes, classify_file, load_run
from engine.store.runs import RunStore
from engine.training.approaches import RUNNERS, prepare_data
from tests.conftest import make_split_dataset, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run store, result, dataset): a VGG16 feature-extraction run on colour-coded tiny data, trained once for this module."""
    root = tmp_path_factory.mktemp("inference")
    data_dir = make_split_dataset(root / "tiny")
    cfg = tiny_config("feature_extraction", data_dir, backbone="vgg16", epochs=10, learning_rate=3e-3)
    result = RUNNERS["feature_extraction"](cfg, prepare_data(str(data_dir)), runs_dir=root / "runs", cache_dir=root / "cache")
    assert result.state == "finished" and result.metrics["test"]["accuracy"] == 1.0, result.metrics["test"]
    return RunStore(root / "runs"), result, data_dir


def pixels(path, size: int) -> np.ndarray:
    """The decoder's path written out by hand: RGB, bilinear resize, float32 (a batch of one)."""
    img = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, np.float32)[None]


def test_classify_names_the_right_class_with_the_models_own_probability(trained):
    store, result, data_dir = trained
    run = load_run(store, result.id)
    assert run.classes == ["cats", "dogs"] and run.image_size == 32
    for cls in ("cats", "dogs"):
        path = data_dir / "test" / cls / f"{cls}_1.png"
        out = classify_bytes(run, path.read_bytes())
        assert out["predicted"] == cls  # the model scores 1.0 on the test split
        p_dog = float(np.asarray(run.model(pixels(path, 32)))[0, 0])  # sigmoid: probability of the second class
        assert out["probabilities"]["dogs"] == pytest.approx(p_dog, abs=1e-5)
        assert out["probabilities"]["cats"] == pytest.approx(1 - p_dog, abs=1e-5)
        assert 0 < out["seconds"] < 30


def test_classify_agrees_with_the_test_scoring(trained):
    store, result, data_dir = trained
    run = load_run(store, result.id)
    probabilities = result.metrics["test"]
    wrong = {m["path"] for m in probabilities["misclassified"]}
    for cls in ("cats", "dogs"):
        for f in sorted((data_dir / "test" / cls).iterdir()):
            pred = classify_bytes(run, f.read_bytes())["predicted"]
            assert (pred != cls) == (str(f) in wrong)


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["cat.bmp", "cat_720p.jpg"])
def test_real_cat_photos_of_any_format_are_cats(real_run, assets, name):
    runs_dir, run_id = real_run
    out = classify_bytes(load_run(RunStore(runs_dir), run_id), (assets / "photos" / name).read_bytes())
    assert out["predicted"] == "cats" and out["probabilities"]["cats"] > 0.8, out


def test_non_image_is_a_clear_error(trained):
    store, result, _ = trained
    run = load_run(store, result.id)
    with pytest.raises(ImageDecodeError, match="^note.txt: not a readable image.*use a JPEG, PNG, BMP, GIF, WebP or TIFF file"):
        classify_bytes(run, b"this is text", name="note.txt")


def test_files_tensorflow_could_not_decode_are_classified(trained, tmp_path):
    store, result, _ = trained
    run = load_run(store, result.id)
    frames = [Image.new("RGB", (40, 30), c) for c in ((200, 60, 40), (40, 80, 200))]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:])
    Image.new("1", (40, 30), 1).save(tmp_path / "onebit.bmp")
    for name in ("anim.webp", "onebit.bmp"):
        by_path, by_bytes = classify_file(run, str(tmp_path / name)), classify_bytes(run, (tmp_path / name).read_bytes())
        assert by_path["probabilities"] == pytest.approx(by_bytes["probabilities"])
    # an animation is classified by its first frame (red: a cat)
    assert classify_file(run, str(tmp_path / "anim.webp"))["predicted"] == "cats"


def test_broken_files_are_one_line_errors_naming_them(trained, tmp_path):
    store, result, data_dir = trained
    run = load_run(store, result.id)
    data = (data_dir / "test" / "cats" / "cats_0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    os.mkfifo(tmp_path / "pipe.jpg")
    for name, reason in (("cut.png", "not a readable image"), ("pipe.jpg", "not a regular file"), ("gone.jpg", "cannot read")):
        with pytest.raises(ImageDecodeError, match=rf"^{tmp_path / name}: {reason}") as err:
            classify_file(run, str(tmp_path / name))
        assert "\n" not in str(err.value)


def test_an_unsure_answer_carries_a_caution_a_sure_one_none():
    import numpy as np

    from engine.insight.inference import confidence_caution

    assert confidence_caution(np.array([0.97, 0.03]), ["cats", "dogs"]) == ""
    caution = confidence_caution(np.array([0.58, 0.42]), ["cats", "dogs"])
    assert caution == (
        "low confidence (58% for the top class, under 75%): the photo may show none of cats, dogs, "
        "or look unlike the training images"
    )
    assert confidence_caution(np.array([0.5, 0.3, 0.2]), ["a", "b", "c"]).startswith("low confidence (50%")


class LeftRight:
    """A stand-in model whose answer depends on left and right: sigmoid of (left half's mean - right half's) / 50."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, training=False):
        self.batches.append(len(x))
        w = x.shape[2] // 2
        return 1 / (1 + np.exp(-(x[:, :, :w].mean(axis=(1, 2, 3)) - x[:, :, w:].mean(axis=(1, 2, 3))) / 50))[:, None]


def stand_in(run_id="lr", classes=("cats", "dogs"), val_accuracy=None):
    from engine.insight.inference import LoadedRun

    return LoadedRun(run_id, LeftRight(), list(classes), 8, "frozen", "none", val_accuracy)


def test_flip_averaging_is_the_mean_of_the_image_and_its_mirror_in_one_call():
    from engine.insight.inference import predict_probabilities

    run = stand_in()
    img = np.zeros((1, 8, 8, 3), np.float32)
    img[:, :, :4] = 200.0  # bright left half: P(dogs) = sigmoid(4); mirrored: sigmoid(-4)
    plain, mirrored = predict_probabilities(run, img)[0], predict_probabilities(run, img[:, :, ::-1])[0]
    assert plain[1] == pytest.approx(1 / (1 + np.exp(-4))) and mirrored[1] == pytest.approx(1 / (1 + np.exp(4)))
    run.model.batches.clear()
    both = predict_probabilities(run, np.concatenate([img, img * 0.5]), tta=True)
    assert run.model.batches == [4]  # the two images and their two flips: one call
    assert both[0] == pytest.approx((plain + mirrored) / 2) and both[0] == pytest.approx([0.5, 0.5])
    assert both[1] == pytest.approx([0.5, 0.5])


class Fixed:
    """A stand-in model that answers P(dogs) = p for every image (whatever its size)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, x, training=False):
        return np.full((len(x), 1), self.p)


def fixed_run(run_id: str, p: float, size: int = 8, val_accuracy=None, classes=("cats", "dogs")):
    from engine.insight.inference import LoadedRun

    return LoadedRun(run_id, Fixed(p), list(classes), size, "frozen", "none", val_accuracy)


def png_bytes(size=(12, 10), left=(200, 200, 200), right=(0, 0, 0)) -> bytes:
    """A PNG whose left half is `left` and right half `right`."""
    img = Image.new("RGB", size, right)
    img.paste(left, (0, 0, size[0] // 2, size[1]))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_an_ensemble_answer_averages_the_runs_and_refuses_other_classes():
    from engine.insight.ensemble import EnsembleError
    from engine.insight.inference import answer

    a, b = fixed_run("a", 0.2, val_accuracy=0.5), fixed_run("b", 0.7, size=16, val_accuracy=1.0)
    data = png_bytes()
    plain = answer([a, b], data)
    assert plain.probabilities == pytest.approx({"cats": 0.55, "dogs": 0.45}) and plain.label == "cats"
    assert plain.runs == ["a", "b"] and plain.weights == {"a": 0.5, "b": 0.5} and not plain.weighted
    assert [(m.runs, m.label) for m in plain.members] == [(["a"], "cats"), (["b"], "dogs")]  # each run's own answer too
    weighted = answer([a, b], data, weighted=True)  # weights 1/3, 2/3 (validation 0.5, 1.0): b's answer wins
    assert weighted.weights == pytest.approx({"a": 1 / 3, "b": 2 / 3}) and weighted.weighted
    assert weighted.probabilities == pytest.approx({"cats": 1.4 / 3, "dogs": 1.6 / 3}) and weighted.label == "dogs"
    row = weighted.row()  # predict's row, as before answer()
    assert row["run"] == "ensemble" and row["predicted"] == "dogs" and row["members"] == ["a", "b"]
    assert [r["probabilities"]["dogs"] for r in row["runs"]] == pytest.approx([0.2, 0.7]) and row["seconds"] > 0
    out = json.loads(json.dumps(weighted.to_dict(), allow_nan=False))  # JSON-safe, plain numbers
    assert out["label"] == "dogs" and out["runs"] == ["a", "b"] and out["gradcam"] is None and out["ms"] > 0
    assert all(type(p) is float for p in weighted.probabilities.values())
    with pytest.raises(EnsembleError, match=r"^run c: classes dogs, cats differ from run a's \(cats, dogs\); an ensemble needs"):
        answer([a, fixed_run("c", 0.5, classes=("dogs", "cats"))], data)
    with pytest.raises(EnsembleError, match="^run d: no recorded validation accuracy"):
        answer([a, fixed_run("d", 0.5)], data, weighted=True)


def test_a_model_answering_nan_is_one_line_naming_the_run():
    from engine.insight.inference import InferenceError, answer

    with pytest.raises(InferenceError, match=r"^run broken: its model answered \[nan, nan\] for this photo"):
        answer(fixed_run("broken", float("nan")), png_bytes())


def test_the_photo_is_decoded_once_per_answer_at_every_size(monkeypatch, tmp_path):
    """Two runs at 8 and 16 px, with flips: one decode; each size's pixels are the decoder's own."""
    from engine.data import images
    from engine.insight.inference import Photo, answer

    data = png_bytes((37, 23))
    (tmp_path / "p.png").write_bytes(data)
    want = {s: images.decode_image(data, s) for s in (8, 16)}
    preview = images.preview_image(data, 20)
    calls = []
    real = images.open_rgb
    monkeypatch.setattr(images, "open_rgb", lambda *a, **k: calls.append(a) or real(*a, **k))
    runs = [fixed_run("a", 0.3, size=8), fixed_run("b", 0.6, size=16)]
    for source in (data, str(tmp_path / "p.png")):
        calls.clear()
        answer(runs, source, tta=True)
        assert len(calls) == 1, calls
    calls.clear()
    photo = Photo(data)
    for s in (8, 16):
        np.testing.assert_array_equal(photo.pixels(s), want[s])
    np.testing.assert_array_equal(photo.preview(20), preview)
    answer(runs, photo)  # a photo already decoded is not decoded again
    assert len(calls) == 1


def test_a_file_and_its_bytes_get_the_same_answer(tmp_path):
    from engine.insight.inference import answer

    data = png_bytes((30, 20), left=(40, 200, 90))
    (tmp_path / "x.png").write_bytes(data)
    run = stand_in()
    by_file, by_bytes = answer(run, str(tmp_path / "x.png"), tta=True), answer(run, data, tta=True)
    assert by_file.label == by_bytes.label and by_file.probabilities == by_bytes.probabilities
    with pytest.raises(ImageDecodeError, match="^up.png: not a readable image"):
        answer(run, b"no image", name="up.png")


def test_stored_run_flip_average_equals_the_mean_of_both_single_predictions(trained):
    from engine.insight.inference import probabilities_for_files

    store, result, data_dir = trained
    run = load_run(store, result.id)
    path = data_dir / "test" / "dogs" / "dogs_2.png"
    img = pixels(path, 32)
    single = [float(np.asarray(run.model(x))[0, 0]) for x in (img, img[:, :, ::-1].copy())]
    assert abs(single[0] - single[1]) > 1e-4  # the model tells left from right: the test can see a wrong average
    out = classify_file(run, str(path), tta=True)
    assert out["tta"] and out["probabilities"]["dogs"] == pytest.approx(sum(single) / 2, abs=1e-5)
    files = [str(p) for p in sorted((data_dir / "test" / "dogs").iterdir())]
    by_files = probabilities_for_files(run, files, tta=True, batch_size=3)  # batches of 3, 1: the order kept
    each = [classify_file(run, f, tta=True)["probabilities"]["dogs"] for f in files]
    assert by_files[:, 1] == pytest.approx(each, abs=1e-5)
    from engine.insight.analysis import load_predictions

    stored = load_predictions(
        store.root / result.id, "validation"
    )  # what `ensemble --tta` re-reads: the same images, same answers
    assert probabilities_for_files(run, stored.files) == pytest.approx(stored.probabilities, abs=1e-4)
