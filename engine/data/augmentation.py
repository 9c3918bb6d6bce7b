"""The lecture's ImageDataGenerator augmentation rebuilt from Keras 3 `Random*` layers."""

from __future__ import annotations

import numpy as np

from engine.config import AugmentationConfig


def augments(cfg: AugmentationConfig) -> bool:
    """Whether the config changes images at all (switched on, and some flip, rotation, shift or zoom set)."""
    return cfg.enabled and (
        cfg.horizontal_flip
        or cfg.vertical_flip
        or cfg.rotation > 0
        or cfg.width_shift > 0
        or cfg.height_shift > 0
        or cfg.zoom > 0
    )


def build_augmentation(cfg: AugmentationConfig, seed: int = 42):
    """A Sequential of Random* layers matching the config, or None when nothing is switched on.

    fill_mode="nearest" matches ImageDataGenerator's default, so shifted/rotated borders
    repeat edge pixels instead of turning black. The layers are no-ops at inference.
    """
    import keras
    from keras import layers

    if not augments(cfg):
        return None
    steps = []
    flips = {(True, True): "horizontal_and_vertical", (True, False): "horizontal", (False, True): "vertical"}
    mode = flips.get((cfg.horizontal_flip, cfg.vertical_flip))
    if mode:
        steps.append(layers.RandomFlip(mode, seed=seed))
    if cfg.rotation > 0:
        steps.append(layers.RandomRotation(cfg.rotation / 360.0, fill_mode="nearest", seed=seed + 1))
    if cfg.width_shift > 0 or cfg.height_shift > 0:
        steps.append(layers.RandomTranslation(cfg.height_shift, cfg.width_shift, fill_mode="nearest", seed=seed + 2))
    if cfg.zoom > 0:
        steps.append(layers.RandomZoom(cfg.zoom, fill_mode="nearest", seed=seed + 3))
    return keras.Sequential(steps, name="augmentation")


def preview_augmentation(image: np.ndarray, cfg: AugmentationConfig, count: int = 8, seed: int = 0) -> np.ndarray:
    """The same image under `count` random draws of the augmentation: uint8 (count, H, W, 3)."""
    aug = build_augmentation(cfg, seed=seed)
    batch = np.repeat(image[None].astype("float32"), count, axis=0)
    if aug is None:
        return batch.astype(np.uint8)
    out = np.asarray(aug(batch, training=True))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
