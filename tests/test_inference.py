"""engine/insight/inference.py: classify an upload or a file with a stored run, as the run's own model sees it."""

import os

import numpy as np
import pytest
from PIL import Image

from engine.training.approaches import RUNNERS, prepare_data
from engine.data.images import ImageDecodeError
from engine.insight.inference import classify_bytes, classify_file, load_run
from engine.store.runs import RunStore
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
    assert caution == ("low confidence (58% for the top class, under 75%): the photo may show none of cats, dogs, "
                       "or look unlike the training images")
    assert confidence_caution(np.array([0.5, 0.3, 0.2]), ["a", "b", "c"]).startswith("low confidence (50%")
