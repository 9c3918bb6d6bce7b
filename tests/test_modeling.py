import keras
import numpy as np
import pytest

from engine.config import BackboneConfig, HeadConfig
from engine.models import modeling
from engine.models.backbones import BACKBONES, build_base, preprocess


@pytest.fixture(scope="module")
def base():
    keras.utils.set_random_seed(1)
    return build_base(BackboneConfig(name="mobilenet_v2", weights="none"), 32)


@pytest.mark.parametrize("classes,units,act", [(2, 1, "sigmoid"), (3, 3, "softmax")])
def test_head_output_matches_class_count(classes, units, act):
    head = modeling.build_head((2, 2, 8), classes, HeadConfig(pooling="avg", dense_units=4, dropout=0.2))
    assert head.output_shape == (None, units)
    assert head.get_layer("predictions").activation.__name__ == act
    flat = modeling.build_head((2, 2, 8), 2, HeadConfig(pooling="flatten", dense_units=256, dropout=0.5))
    assert modeling.count_params(flat)["total_params"] == 32 * 256 + 256 + 257  # lecture-shaped head


def test_split_halves_compose_to_the_base(base):
    split = modeling.split_base(base, BACKBONES["mobilenet_v2"].top_block_cuts[0])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(split.top_part(split.prefix(x)), base(x), atol=1e-5)


def test_unfreeze_top_keeps_batchnorm_frozen(base):
    split = modeling.split_base(base, BACKBONES["mobilenet_v2"].top_block_cuts[0])
    modeling.unfreeze_top(base, split)
    top_names = {l.name for l in split.top_part.layers}
    trainable = {l.name for l in base.layers if l.trainable and l.weights}
    assert trainable and trainable <= top_names
    assert not any(isinstance(base.get_layer(n), keras.layers.BatchNormalization) for n in trainable)
    assert "Conv_1" in trainable and "block_16_project" in trainable and "block_15_project" not in trainable
    base.trainable = False


def test_full_model_applies_preprocessing_inside_and_round_trips(tmp_path, base):
    base.trainable = False
    head = modeling.build_head(tuple(base.output.shape[1:]), 3, HeadConfig(dense_units=8, dropout=0.0))
    full = modeling.assemble_full_model(base, head, "mobilenet_v2", "backbone", 32)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = head(base(preprocess("mobilenet_v2", x)))
    np.testing.assert_allclose(full(x), expected, atol=1e-5)
    full.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)
    assert loaded.get_layer("preprocess").get_config()["backbone"] == "mobilenet_v2"


@pytest.mark.parametrize("approach", ["feature_extraction", "fine_tuning"])
def test_counts_from_the_base_once_and_the_head_alone_equal_the_whole_models(approach):
    import dataclasses

    from engine.config import default_config

    cfg = default_config(approach)
    cfg.backbone = BackboneConfig(name="mobilenet_v2", weights="none", image_size=32)
    base_side = modeling.describe_base(cfg)
    size = 32
    base = build_base(dataclasses.replace(cfg.backbone), size)
    base.trainable = False
    if approach == "fine_tuning":
        modeling.unfreeze_top(base, modeling.split_base(base, "block_15_add"))
    for units in (256, 128, 0):
        cfg.head.dense_units = units
        head = modeling.build_head(tuple(base.output.shape[1:]), 3, cfg.head)
        whole = modeling.count_params(modeling.assemble_full_model(base, head, "mobilenet_v2", "backbone", size))
        assert modeling.describe_model(cfg, 3, base_side) == whole
