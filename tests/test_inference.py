import numpy as np
import pytest

from engine.approaches import RUNNERS, prepare_data
from engine.datasets import DatasetError
from engine.inference import classify_bytes, load_run
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
    with pytest.raises(DatasetError, match="not a readable image.*upload a JPEG, PNG, BMP or WebP"):
        classify_bytes(run, b"this is text")
