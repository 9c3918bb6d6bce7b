import numpy as np

from engine.config import AugmentationConfig
from engine.data.augmentation import build_augmentation, preview_augmentation


def test_disabled_or_all_zero_means_no_layer():
    assert build_augmentation(AugmentationConfig(enabled=False)) is None
    none = AugmentationConfig(rotation=0, width_shift=0, height_shift=0, zoom=0, horizontal_flip=False, vertical_flip=False)
    assert build_augmentation(none) is None


def test_lecture_settings_build_all_layers():
    aug = build_augmentation(AugmentationConfig())
    kinds = [type(l).__name__ for l in aug.layers]
    assert kinds == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]
    assert aug.layers[0].mode == "horizontal_and_vertical"
    assert aug.layers[1].factor == (-20 / 360, 20 / 360)


def test_preview_varies_and_inference_is_identity():
    img = np.random.default_rng(0).integers(0, 255, (24, 24, 3)).astype(np.uint8)
    views = preview_augmentation(img, AugmentationConfig(), count=6)
    assert views.shape == (6, 24, 24, 3) and views.dtype == np.uint8
    assert len({v.tobytes() for v in views}) > 1
    aug = build_augmentation(AugmentationConfig())
    out = np.asarray(aug(img[None].astype("float32"), training=False))
    np.testing.assert_array_equal(out[0], img)


def test_flip_only_is_exact_mirror():
    img = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    cfg = AugmentationConfig(rotation=0, width_shift=0, height_shift=0, zoom=0, vertical_flip=False)
    views = preview_augmentation(img, cfg, count=16)
    for v in views:
        assert np.array_equal(v, img) or np.array_equal(v, img[:, ::-1])
