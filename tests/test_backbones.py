import keras
import numpy as np
import pytest

from engine.config import BackboneConfig, HeadConfig
from engine.models import backbones
from engine.models.backbones import BACKBONES, WeightsUnavailable, build_base, preprocess

HEAVY = {"resnet50", "resnet50_v2", "densenet121", "xception", "convnext_tiny", "efficientnet_v2_s"}  # > ~10 s each here


def registry_params():
    """Every row of the registry; the heavy ones `slow` (the quick loop keeps the light ones)."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in BACKBONES]


def contract_size(spec) -> int:
    return max(64, spec.min_size)


def by_hand(spec, x):
    """The preprocessing the weights expect, applied outside the model: nothing when the Keras model holds it."""
    return x.copy() if spec.includes_preprocessing else spec.preprocess_module().preprocess_input(x.copy())


def _stats(model):
    return [
        np.array(v)
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in (layer.moving_mean, layer.moving_variance)
    ]


@pytest.mark.parametrize("name", registry_params())
def test_backbone_row_contract(name, tmp_path):
    """One row, its whole contract: builds, features, cuts, fine-tuning, preprocessing once, Grad-CAM."""
    from engine.insight.explain import gradcam
    from engine.models import modeling
    from engine.models.pipeline import gradcam_layer

    spec = BACKBONES[name]
    size = contract_size(spec)
    assert spec.min_size <= spec.default_size <= spec.max_size and 1 <= len(spec.top_block_cuts) <= 3
    keras.utils.set_random_seed(0)
    base = build_base(BackboneConfig(name=name, weights="none"), size)
    assert base.input_shape == (None, size, size, 3)
    out = base.output.shape
    assert len(out) == 4 and out[1] == out[2] >= 1 and out[3] >= 8, out  # a feature map
    pixels = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    x = by_hand(spec, pixels)
    features = np.asarray(base(x, training=False))
    for cut in spec.top_block_cuts:  # each cut exists and splits the base into two halves that compose to it
        split = modeling.split_base(base, cut)
        assert split.top_part.layers, cut
        np.testing.assert_allclose(split.top_part(split.prefix(x)), features, rtol=1e-4, atol=1e-4)
    # fine-tuning unfreezes exactly the cut's layers (BatchNorm excluded) ...
    split = modeling.split_base(base, spec.cut_for(1))
    base.trainable = False
    modeling.unfreeze_top(base, split)
    top_names = {l.name for l in split.top_part.layers}
    trainable = {l.name for l in base.layers if l.trainable and l.trainable_weights}
    expected = {
        l.name for l in base.layers if l.name in top_names and l.weights and not isinstance(l, keras.layers.BatchNormalization)
    }
    assert trainable and trainable == expected
    # ... and the trainable top in training mode keeps every norm in inference mode: the same outputs, the
    # BatchNorm statistics as they were (LayerNorm has none: it computes the same in both modes). The trained
    # block's dropouts (EfficientNet's stochastic depth) are on in training, by design (modeling.build_top):
    # switched off here, they are no norm.
    head = modeling.build_head(tuple(out[1:]), 3, HeadConfig(dense_units=8, dropout=0.0))
    top = modeling.build_top(split, head)
    for layer in base.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    before, cut_features = _stats(base), np.asarray(split.prefix(x))
    np.testing.assert_allclose(top(cut_features, training=True), top(cut_features, training=False), rtol=1e-5, atol=1e-6)
    for a, b in zip(before, _stats(base)):
        np.testing.assert_array_equal(a, b)
    base.trainable = False
    # the saved pipeline holds the preprocessing exactly once: raw 0-255 pixels in, as the base on x by hand
    holds = [l for l in base.layers[:4] if isinstance(l, (keras.layers.Rescaling, keras.layers.Normalization))]
    assert bool(holds) == spec.includes_preprocessing, [l.name for l in base.layers[:4]]
    full = modeling.assemble_full_model(base, head, name, "backbone", size)
    full.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(loaded(pixels), np.asarray(head(base(x))), rtol=1e-4, atol=1e-5)
    # the Grad-CAM layer: the row's, in the saved model, with a heatmap over the photo
    layer = gradcam_layer(base, name)
    assert layer.name == (spec.gradcam_layer or layer.name) and len(layer.output.shape) == 4
    cam = gradcam(loaded, pixels[:1], 0)
    assert cam.layer == layer.name and cam.heatmap.shape == (size, size)
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0


def test_a_size_under_the_minimum_is_refused_in_one_line(monkeypatch):
    import dataclasses

    from engine.config import ConfigError

    monkeypatch.setitem(BACKBONES, "vgg16", dataclasses.replace(BACKBONES["vgg16"], min_size=71))
    with pytest.raises(ConfigError) as info:
        backbones.image_size_for(BackboneConfig(name="vgg16", image_size=64))
    assert str(info.value) == "backbone.image_size: 64 px is below vgg16's minimum of 71 px; choose 71 px or more"
    assert backbones.image_size_for(BackboneConfig(name="vgg16", image_size=71)) == 71
    assert backbones.image_size_for(BackboneConfig(name="vgg16")) == 150


def test_every_row_names_its_weights_files_and_widths():
    for spec in BACKBONES.values():
        files = spec.weights_files()
        assert files and all(f.endswith(".h5") for f in files), spec.name
        assert backbones.local_weights_names(spec.name, 1.0)[-len(files) :] == files
        assert spec.has_alpha == (spec.name in backbones.IDENTIFY_ALPHAS)
        assert spec.cpu_images_per_s > 0 and spec.note, spec.name
    assert BACKBONES["mobilenet"].weights_files(0.75)[0] == "mobilenet_7_5_224_tf_no_top.h5"


def test_vgg16_top_block_is_block5_convs():
    from engine.models.modeling import split_base

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


@pytest.mark.slow
def test_wrong_local_weights_file_is_explained(tmp_path):
    other = keras.applications.MobileNet(input_shape=(64, 64, 3), include_top=False, weights=None, alpha=0.25)
    path = tmp_path / "v1.weights.h5"
    other.save_weights(path)
    with pytest.raises(WeightsUnavailable, match="could not load weights file .*v1.weights.h5 into MobileNetV2") as info:
        build_base(BackboneConfig(name="mobilenet_v2", weights=str(path)), 64)
    assert "this file holds weights of another network" in str(info.value)


def test_another_networks_weights_are_named_not_keras_variable_counts(tmp_path):
    other = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    path = tmp_path / "v2.weights.h5"
    other.save_weights(path)
    with pytest.raises(WeightsUnavailable) as info:
        build_base(BackboneConfig(name="vgg16", weights=str(path)), 32)
    msg = str(info.value)
    assert "this file holds weights of another network (MobileNetV2, alpha 1; it does not fit VGG16" in msg
    assert "expected" not in msg and "variables" not in msg and "\n" not in msg


def test_a_file_that_is_no_weights_file_says_so(tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("not hdf5")
    with pytest.raises(WeightsUnavailable, match="it is not a Keras weights file"):
        build_base(BackboneConfig(name="mobilenet_v2", weights=str(path)), 32)


@pytest.mark.parametrize("weights", ["", "   "])
def test_an_empty_local_path_never_trains_random_weights(weights):
    with pytest.raises(WeightsUnavailable, match="backbone.weights: the local weights file path is empty"):
        backbones.resolve_weights(BackboneConfig(weights=weights))


def test_find_local_weights_searches_env_keras_cache_then_app_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(backbones, "PROJECT_ROOT", tmp_path / "app")
    env_dir, app_dir = tmp_path / "w", tmp_path / "app" / "weights"
    env_dir.mkdir()
    app_dir.mkdir(parents=True)
    monkeypatch.setenv("TLS_WEIGHTS_DIR", str(env_dir))
    assert backbones.find_local_weights("mobilenet_v2", 1.0, 160) is None
    (app_dir / "mobilenet_v1_0.75_imagenet_no_top.weights.h5").write_bytes(b"x")  # our documented naming
    assert backbones.find_local_weights("mobilenet", 0.75, 128) == app_dir / "mobilenet_v1_0.75_imagenet_no_top.weights.h5"
    assert backbones.find_local_weights("mobilenet", 1.0, 128) is None  # another width does not match
    cache = backbones.keras_cache_dir()
    cache.mkdir(parents=True)
    keras_name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"  # Keras' canonical name
    (cache / keras_name).write_bytes(b"x")
    assert backbones.find_local_weights("mobilenet_v2", 1.0, 160) == cache / keras_name
    (env_dir / "mobilenet_v2_1.0_imagenet_no_top.weights.h5").write_bytes(b"x")
    assert backbones.find_local_weights("mobilenet_v2", 1.0, 160) == env_dir / "mobilenet_v2_1.0_imagenet_no_top.weights.h5"
    (env_dir / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    assert backbones.find_local_weights("vgg16", 1.0, 150) == env_dir / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.mark.real_data
def test_the_real_assets_weights_are_found_and_load(assets, tmp_path, monkeypatch):
    from engine.data.images import decode_image

    source = assets / "weights" / "mobilenet_v2_1.0_imagenet_no_top.weights.h5"
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / source.name).symlink_to(source)
    monkeypatch.setenv("TLS_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setattr(backbones, "download_host_reachable", lambda: False)
    found = backbones.find_local_weights("mobilenet_v2", 1.0, 96)
    assert found == tmp_path / "w" / source.name
    default = backbones.default_weights("mobilenet_v2", 1.0, 96)
    assert default.value == str(found) and default.problem == "" and "offline" in default.label
    base = build_base(BackboneConfig(name="mobilenet_v2", weights=default.value), 96)
    # ImageNet features of a known photo, measured once with this file: random weights give ~1e-12 everywhere
    x = decode_image(assets / "photos" / "cat.bmp", 96)[None].astype("float32")
    features = np.asarray(base(preprocess("mobilenet_v2", x), training=False))
    assert features.shape == (1, 3, 3, 1280)
    assert float(features.mean()) == pytest.approx(0.71310, abs=1e-3)
    np.testing.assert_allclose(features.mean(axis=(0, 1, 2))[:3], [0.03062, 0.67907, 0.64103], atol=1e-3)


def test_default_weights_online_offline_and_nowhere(tmp_path, monkeypatch):
    monkeypatch.setattr(backbones, "PROJECT_ROOT", tmp_path / "app")
    monkeypatch.delenv("TLS_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(backbones, "download_host_reachable", lambda: True)
    online = backbones.default_weights("mobilenet_v2", 1.0, 160)
    assert online.value == "imagenet" and online.problem == ""
    monkeypatch.setattr(backbones, "download_host_reachable", lambda: False)
    nowhere = backbones.default_weights("vgg16", 1.0, 150)
    assert nowhere.value == ""
    assert nowhere.problem.startswith("No ImageNet weights: this machine is offline and none were found in TLS_WEIGHTS_DIR")
    assert "'Local file'" in nowhere.problem and "\n" not in nowhere.problem
    cache = backbones.keras_cache_dir()
    cache.mkdir(parents=True)
    (cache / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    assert backbones.default_weights("vgg16", 1.0, 150).value == "imagenet"  # cached: works offline


def test_reachability_is_checked_once_with_a_short_timeout(monkeypatch):
    calls = []

    def refuse(address, timeout):
        calls.append(timeout)
        raise OSError("offline")

    monkeypatch.setattr(backbones, "_reachable", None)
    monkeypatch.setattr(backbones.socket, "create_connection", refuse)
    assert backbones.download_host_reachable() is False and backbones.download_host_reachable() is False
    assert calls == [backbones.REACHABILITY_TIMEOUT_S] and backbones.REACHABILITY_TIMEOUT_S <= 2


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
    assert "\n" not in msg and "mobilenet_v2_1.0_imagenet_no_top.weights.h5 into $TLS_WEIGHTS_DIR" in msg


def test_offline_imagenet_loads_the_matching_local_file(monkeypatch, tmp_path):
    import numpy as np
    from keras.src.utils import file_utils

    def offline(*a, **k):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    saved = build_base(BackboneConfig(name="mobilenet_v2", weights="none"), 96)
    saved.save_weights(tmp_path / "mobilenet_v2_1.0_imagenet_no_top.weights.h5")  # stands in for the real ImageNet file
    monkeypatch.setenv("TLS_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(file_utils, "get_file", offline)
    base = build_base(BackboneConfig(name="mobilenet_v2", weights="imagenet"), 96)
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), saved.get_weights()))
    (tmp_path / "mobilenet_v2_1.0_imagenet_no_top.weights.h5").write_bytes(b"x")  # a broken file there is named
    with pytest.raises(
        WeightsUnavailable, match="could not load weights file .*mobilenet_v2_1.0_imagenet_no_top.weights.h5: it is not"
    ):
        build_base(BackboneConfig(name="mobilenet_v2", weights="imagenet"), 96)


def test_a_row_with_widths_tells_them_apart_by_kernel_shapes_its_base_really_has():
    for spec in BACKBONES.values():
        assert bool(spec.width_kernels) == spec.has_alpha, spec.name  # sweeps check a weights file's width by them
        for alpha in spec.alphas[:1] + spec.alphas[-3:-2]:  # 1.0 and one other width per row
            base = build_base(BackboneConfig(name=spec.name, alpha=alpha, weights="none"), 96)
            kernels = {tuple(w.shape) for w in base.weights if len(w.shape) == 4}
            assert set(spec.width_kernels(alpha)) <= kernels, (spec.name, alpha)
            others = [a for a in spec.alphas if a != alpha]
            assert all(not set(spec.width_kernels(a)) <= kernels for a in others), (spec.name, alpha)
