"""Real transfer learning on ../shared/assets (skipped when absent): real photos, real ImageNet weights."""

import os

import keras
import numpy as np
import pytest

from engine.config import default_config
from engine.store.runs import RunStore
from engine.training.approaches import RUNNERS, prepare_data

pytestmark = [pytest.mark.real_data, pytest.mark.slow]
WEIGHTS = "weights/mobilenet_v2_1.0_imagenet_no_top.weights.h5"


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """300 train / 200 validation images of cats_vs_dogs_small, linked (not copied) into a temp folder."""
    from tests.conftest import ASSETS, require_assets

    require_assets()
    src = ASSETS / "cats_vs_dogs_small"
    root = tmp_path_factory.mktemp("cvd_subset")
    for split, n in (("train", 150), ("validation", 100)):
        for cls in ("cats", "dogs"):
            (root / split / cls).mkdir(parents=True)
            for name in sorted(os.listdir(src / split / cls))[:n]:
                os.symlink(src / split / cls / name, root / split / cls / name)
    return root


def real_config(approach, subset, **fit):
    from tests.conftest import ASSETS

    cfg = default_config(approach)
    cfg.data.path = str(subset)
    cfg.backbone.name, cfg.backbone.weights, cfg.backbone.image_size = "mobilenet_v2", str(ASSETS / WEIGHTS), 128
    for k, v in fit.items():
        setattr(cfg.fit, k, v)
    return cfg


def test_feature_extraction_reaches_090(real_run):
    """The session's shared model (tests/shared_runs.py): MobileNetV2 features, 400 training photos."""
    runs_dir, run_id = real_run
    record = RunStore(runs_dir).load(run_id)
    assert record.state == "finished"
    assert record.metrics["validation"]["accuracy"] >= 0.90, record.history["val_accuracy"]


@pytest.mark.parametrize("photo", ["cat.bmp", "cat_720p.jpg"])
def test_classify_labels_real_cat_photos(real_run, assets, photo):
    from engine.insight.inference import classify_bytes, load_run

    runs_dir, run_id = real_run
    out = classify_bytes(load_run(RunStore(runs_dir), run_id), (assets / "photos" / photo).read_bytes())
    assert out["predicted"] == "cats", out


def test_fine_tuning_keeps_batchnorm_statistics_and_does_not_fall_below_its_start(subset):
    data = prepare_data(str(subset))
    frozen_cfg = real_config("frozen", subset, epochs=3)
    frozen_cfg.fine_tune.unfreeze_blocks = 2  # so the frozen run caches the activations this fine-tuning starts from
    frozen_cfg.augmentation.views = 1  # one augmented pass of the 300 photos (K=3: 600 more base passes, 8 s here)
    frozen = RUNNERS["frozen"](frozen_cfg, data)
    start = frozen.metrics["validation"]["accuracy"]
    assert start >= 0.85, frozen.history["val_accuracy"]

    cfg = real_config("fine_tuning", subset)
    cfg.fine_tune.from_run, cfg.fine_tune.epochs, cfg.fine_tune.unfreeze_blocks = frozen.id, 3, 2
    cfg.augmentation.views = 1  # the frozen run's views
    tuned = RUNNERS["fine_tuning"](cfg, data)
    assert tuned.state == "finished" and tuned.history["fine_tune_start_epoch"] == 4
    assert tuned.metrics["feature_cache"]["misses"] == 0, tuned.metrics["feature_cache"]  # the base never ran again
    assert tuned.metrics["validation"]["accuracy"] >= start - 0.02, (start, tuned.history["val_accuracy"])

    def base_of(run_id):
        model = RunStore().load_model(run_id)
        return next(l for l in model.layers if hasattr(l, "layers") and l.name not in ("head", "augmentation"))

    before, after = base_of(frozen.id), base_of(tuned.id)
    bn_layers = [
        l.name
        for l in after.layers
        if isinstance(l, keras.layers.BatchNormalization) and l.name.startswith(("block_15", "block_16", "Conv_1"))
    ]
    assert len(bn_layers) >= 6
    for name in bn_layers:  # the unfrozen blocks' BatchNorm statistics are untouched ...
        for a, b in zip(before.get_layer(name).non_trainable_weights, after.get_layer(name).non_trainable_weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # ... while their convolutions did train
    assert not np.allclose(np.asarray(before.get_layer("Conv_1").kernel), np.asarray(after.get_layer("Conv_1").kernel))
