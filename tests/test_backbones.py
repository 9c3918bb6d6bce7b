import keras
import numpy as np
import pytest

from engine import backbones
from engine.backbones import BACKBONES, WeightsUnavailable, build_base, preprocess
from engine.config import BackboneConfig


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_builds_without_weights_and_cut_layers_exist(name):
    size = 32
    base = build_base(BackboneConfig(name=name, weights="none", alpha=1.0), size)
    assert base.input_shape == (None, size, size, 3)
    names = {l.name for l in base.layers}
    for cut in BACKBONES[name].top_block_cuts:
        assert cut in names, f"{name}: {cut} missing"


def test_vgg16_top_block_is_block5_convs():
    from engine.modeling import split_base

    base = build_base(BackboneConfig(name="vgg16", weights="none"), 48)
    top = split_base(base, BACKBONES["vgg16"].top_block_cuts[0]).top_part
    assert [l.name for l in top.layers if l.weights] == ["block5_conv1", "block5_conv2", "block5_conv3"]


def test_each_backbone_has_its_own_preprocessing():
    x = np.full((1, 2, 2, 3), 255.0, "float32")
    assert np.allclose(preprocess("mobilenet_v2", x), 1.0)  # [-1, 1]
    vgg = np.asarray(preprocess("vgg16", x))
    assert np.allclose(vgg[0, 0, 0], [255 - 103.939, 255 - 116.779, 255 - 123.68], atol=1e-3)  # caffe: BGR, mean-centred
    assert np.allclose(preprocess("mobilenet_v2", x, mode="rescale"), 1.0)
    assert np.allclose(preprocess("efficientnet_b0", x), 255.0)  # EfficientNet rescales inside its own graph


def test_default_sizes():
    assert backbones.image_size_for(BackboneConfig(name="vgg16")) == 150
    assert backbones.image_size_for(BackboneConfig(name="resnet50", image_size=96)) == 96


def test_missing_local_weights_file(tmp_path):
    with pytest.raises(WeightsUnavailable, match="weights file not found: .*nope.h5"):
        build_base(BackboneConfig(weights=str(tmp_path / "nope.h5")), 64)


def test_wrong_local_weights_file_is_explained(tmp_path):
    other = keras.applications.MobileNet(input_shape=(64, 64, 3), include_top=False, weights=None, alpha=0.25)
    path = tmp_path / "v1.weights.h5"
    other.save_weights(path)
    with pytest.raises(WeightsUnavailable, match="could not load weights file .*v1.weights.h5 into MobileNetV2"):
        build_base(BackboneConfig(name="mobilenet_v2", weights=str(path)), 64)


def test_offline_imagenet_names_the_file_and_alternatives(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*a, **k):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)  # as if offline, whatever is cached
    with pytest.raises(WeightsUnavailable) as info:
        build_base(BackboneConfig(name="mobilenet_v2", weights="imagenet"), 160)
    msg = str(info.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5" in msg
    assert str(backbones.keras_cache_dir()) in msg and "--weights PATH" in msg and "--weights none" in msg
