"""Registry of pretrained conv bases: builder, own preprocess_input, default size, top blocks.

`top_block_cuts` lists, from the top down, the layer whose output feeds each top block:
unfreezing N blocks means training every layer after `top_block_cuts[N-1]`. The cut is
always a single tensor, so the base splits cleanly into a frozen prefix (cached) and a
trainable top.
"""

from __future__ import annotations

from .errors import StudioError

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .config import BackboneConfig, ConfigError


class WeightsUnavailable(StudioError, RuntimeError):
    """Pretrained weights could not be obtained; the message says which file and where to put it."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    title: str
    default_size: int
    top_block_cuts: tuple[str, ...]  # layer names, top block first
    max_size: int = 512  # largest input side accepted: ImageNet weights were trained at <= 224 px, and 512 px already needs 12x the memory of 150 px

    def builder(self) -> Callable:
        from keras import applications as A

        return {
            "vgg16": A.VGG16,
            "mobilenet_v2": A.MobileNetV2,
            "mobilenet": A.MobileNet,
            "resnet50": A.ResNet50,
            "efficientnet_b0": A.EfficientNetB0,
        }[self.name]

    def preprocess_module(self):
        from keras import applications as A

        return {
            "vgg16": A.vgg16,
            "mobilenet_v2": A.mobilenet_v2,
            "mobilenet": A.mobilenet,
            "resnet50": A.resnet50,
            "efficientnet_b0": A.efficientnet,
        }[self.name]


BACKBONES: dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        BackboneSpec("vgg16", "VGG16 (the lecture's)", 150, ("block4_pool", "block3_pool", "block2_pool")),
        BackboneSpec("mobilenet_v2", "MobileNetV2 (fast on CPU)", 160, ("block_15_add", "block_14_add", "block_13_project_BN")),
        BackboneSpec("mobilenet", "MobileNet v1", 160, ("conv_pw_12_relu", "conv_pw_11_relu", "conv_pw_10_relu")),
        BackboneSpec("resnet50", "ResNet50", 224, ("conv4_block6_out", "conv3_block4_out")),
        BackboneSpec("efficientnet_b0", "EfficientNetB0", 224, ("block6d_add", "block5c_add", "block4c_add")),
    )
}


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"backbone.name: unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}") from None


def image_size_for(cfg: BackboneConfig) -> int:
    """The input side for a run: the configured one, or the backbone's default; bounded by its max_size."""
    spec = get_spec(cfg.name)
    if cfg.image_size > spec.max_size:
        raise ConfigError(f"backbone.image_size: {cfg.image_size} px is above {spec.name}'s limit of {spec.max_size} px; choose a smaller size")
    return cfg.image_size or spec.default_size


def preprocess(name: str, x, mode: str = "backbone"):
    """Applies the backbone's own preprocess_input (or the lecture's 1/255 preset) to float pixels in [0, 255]."""
    if isinstance(x, np.ndarray):
        x = x.astype("float32", copy=True)  # Keras' caffe-mode preprocessing edits numpy arrays in place
    if mode == "rescale":
        return x / 255.0
    return get_spec(name).preprocess_module().preprocess_input(x)


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def weights_identity(cfg: BackboneConfig, seed: int) -> str:
    """What identifies the weights for cache keys: a file's path+size+mtime, 'imagenet', or the init seed."""
    w = cfg.weights
    if w.lower() == "none":
        return f"random-init-seed{seed}"
    if w.lower() == "imagenet":
        return "imagenet"
    st = os.stat(w)
    return f"{os.path.abspath(w)}|{st.st_size}|{st.st_mtime_ns}"


def resolve_weights(cfg: BackboneConfig) -> str | None:
    """Turns the weights setting into what Keras expects; checks local files before any work."""
    w = cfg.weights.strip()
    if w.lower() == "none":
        return None
    if w.lower() == "imagenet":
        return "imagenet"
    path = Path(w).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(
            f"weights file not found: {path}. Give an existing .weights.h5/.h5 file, 'imagenet' (download) or 'none'."
        )
    return str(path)


def build_base(cfg: BackboneConfig, image_size: int):
    """Builds the conv base (include_top=False) with the requested weights.

    Raises:
        WeightsUnavailable: ImageNet weights could not be downloaded (offline) or a local
            file does not fit; the message names the file Keras wanted, where to put it, and
            the `--weights PATH` / `none` alternatives.
    """
    spec = get_spec(cfg.name)
    weights = resolve_weights(cfg)
    kwargs = dict(include_top=False, input_shape=(image_size, image_size, 3), weights=weights)
    if cfg.name == "mobilenet":
        kwargs["alpha"] = cfg.alpha
    elif cfg.name == "mobilenet_v2":
        kwargs["alpha"] = cfg.alpha
    try:
        return spec.builder()(**kwargs)
    except Exception as exc:
        if weights == "imagenet":
            raise WeightsUnavailable(_offline_message(cfg, image_size, exc)) from None
        if weights is not None:
            raise WeightsUnavailable(
                f"could not load weights file {weights} into {spec.title} at {image_size} px "
                f"(alpha {cfg.alpha}): {type(exc).__name__}: {str(exc)[:300]}. "
                "Check that the file was saved for this backbone without its top (include_top=False)."
            ) from None
        raise


def imagenet_weights_filename(cfg: BackboneConfig, image_size: int) -> str:
    """The file Keras downloads for include_top=False ImageNet weights (as named in keras.applications)."""
    # MobileNets ship one file per (alpha, size); other sizes fall back to the 224 file.
    rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
    if cfg.name == "mobilenet_v2":
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(cfg.alpha)}_{rows}_no_top.h5"
    if cfg.name == "mobilenet":
        rows = rows if rows != 96 else 224
        alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}.get(cfg.alpha, str(cfg.alpha))
        return f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5"
    return {
        "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "efficientnet_b0": "efficientnetb0_notop.h5",
    }[cfg.name]


def cached_imagenet_weights(cfg: BackboneConfig, image_size: int) -> Path | None:
    """The ImageNet weights file in Keras' cache for this backbone and size, if already downloaded."""
    path = keras_cache_dir() / imagenet_weights_filename(cfg, image_size)
    return path if path.is_file() else None


def _offline_message(cfg: BackboneConfig, image_size: int, exc: Exception) -> str:
    fname = imagenet_weights_filename(cfg, image_size)
    return (
        f"ImageNet weights for {cfg.name} could not be downloaded ({type(exc).__name__}: {str(exc)[:160]}). "
        f"Keras wanted the file {fname}. Either connect to the internet once (Keras caches it), "
        f"or copy {fname} into {keras_cache_dir()}/ , or pass a local weights file with --weights PATH "
        "(or --weights none to train from random initialisation)."
    )
