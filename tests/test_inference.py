import os

import numpy as np
import pytest

from engine.approaches import RUNNERS, prepare_data
from PIL import Image

from engine.images import ImageDecodeError
from engine.inference import classify_bytes, classify_file, load_run
from engine.runs import RunStore
from tests.conftest import tiny_config


@pytest.fixture
def trained_run(tiny_dataset):
    data = prepare_data(str(tiny_dataset))
    cfg = tiny_config("feature_extraction", tiny_dataset, backbone="vgg16", epochs=10, learning_rate=3e-3)
    return RUNNERS["feature_extraction"](cfg, data)


def test_classify_uses_the_runs_classes_and_size(trained_run, tiny_dataset):
    run = load_run(RunStore(), trained_run.id)
    assert run.classes == ["cats", "dogs"] and run.image_size == 32
    out = classify_bytes(run, (tiny_dataset / "test" / "dogs" / "dogs_1.png").read_bytes())
    assert out["predicted"] in ("cats", "dogs") and out["seconds"] >= 0
    assert sum(out["probabilities"].values()) == pytest.approx(1.0)


def test_classify_agrees_with_the_test_scoring(trained_run, tiny_dataset):
    run = load_run(RunStore(), trained_run.id)
    test = trained_run.metrics["test"]
    wrong = {m["path"] for m in test["misclassified"]}
    for cls in ("cats", "dogs"):
        for f in sorted((tiny_dataset / "test" / cls).iterdir()):
            pred = classify_bytes(run, f.read_bytes())["predicted"]
            assert (pred != cls) == (str(f) in wrong)


def test_real_photos_of_any_format(trained_run, assets):
    run = load_run(RunStore(), trained_run.id)
    for name in ("cat.bmp", "cat_720p.jpg", "pets.jpg"):
        out = classify_bytes(run, (assets / "photos" / name).read_bytes())
        assert np.isclose(sum(out["probabilities"].values()), 1.0)


def test_non_image_is_a_clear_error(trained_run):
    run = load_run(RunStore(), trained_run.id)
    with pytest.raises(ImageDecodeError, match="^note.txt: not a readable image.*use a JPEG, PNG, BMP, GIF, WebP or TIFF file"):
        classify_bytes(run, b"this is text", name="note.txt")


def test_files_tensorflow_could_not_decode_are_classified(trained_run, tmp_path):
    run = load_run(RunStore(), trained_run.id)
    frames = [Image.new("RGB", (40, 30), c) for c in ((200, 60, 40), (40, 80, 200))]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:])
    Image.new("1", (40, 30), 1).save(tmp_path / "onebit.bmp")
    for name in ("anim.webp", "onebit.bmp"):
        by_path, by_bytes = classify_file(run, str(tmp_path / name)), classify_bytes(run, (tmp_path / name).read_bytes())
        assert by_path["probabilities"] == pytest.approx(by_bytes["probabilities"])


def test_broken_files_are_one_line_errors_naming_them(trained_run, tmp_path, tiny_dataset):
    run = load_run(RunStore(), trained_run.id)
    data = (tiny_dataset / "test" / "cats" / "cats_0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    os.mkfifo(tmp_path / "pipe.jpg")
    for name, reason in (("cut.png", "not a readable image"), ("pipe.jpg", "not a regular file"), ("gone.jpg", "cannot read")):
        with pytest.raises(ImageDecodeError, match=rf"^{tmp_path / name}: {reason}") as err:
            classify_file(run, str(tmp_path / name))
        assert "\n" not in str(err.value)
