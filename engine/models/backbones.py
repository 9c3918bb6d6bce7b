"""Registry of pretrained conv bases: one row (`BackboneSpec`) holds everything about a backbone.

A row is the builder, its preprocessing (and whether the Keras model already includes it),
default / minimum / maximum size, the top-block cuts for fine-tuning, the Grad-CAM layer,
the widths (alpha) it has ImageNet weights for, Keras' weights file name(s) and a note for
the page — the way timm registers a model with its default config. Adding a backbone is
adding a row to `BACKBONES`; everything else (CLI choices, sidebar, planner, Grad-CAM,
weights lookup) reads it.

`top_block_cuts` lists, from the top down, the layer whose output feeds each top block:
unfreezing N blocks means training every layer after `top_block_cuts[N-1]`. The cut is
always a single tensor, so the base splits cleanly into a frozen prefix (cached) and a
trainable top.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine import settings
from engine.config import BackboneConfig, ConfigError
from engine.data.paths import keras_home
from engine.errors import StudioError


class WeightsUnavailable(StudioError, RuntimeError):
    """Pretrained weights could not be obtained; the message says which file and where to put it."""


PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the app's folder: its weights/ is searched for local files
WEIGHTS_DIR_ENV = settings.WEIGHTS_DIR
DOWNLOAD_HOST = ("storage.googleapis.com", 443)  # where keras.applications downloads ImageNet weights from
REACHABILITY_TIMEOUT_S = 2.0
MOBILENET_ROWS = (96, 128, 160, 192, 224)  # input sides MobileNet v1/v2 ship ImageNet files for


def _fixed(file_name: str) -> Callable[[float, int], str]:
    """Keras' one no-top ImageNet file of a backbone without widths or per-size files."""
    return lambda alpha, rows: file_name


def _mobilenet_v1_file(alpha: float, rows: int) -> str:
    rows = rows if rows in MOBILENET_ROWS[1:] else 224  # v1 has no 96 px file
    alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}.get(alpha, str(alpha))
    return f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5"


def _mobilenet_v2_file(alpha: float, rows: int) -> str:
    rows = rows if rows in MOBILENET_ROWS else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def _mobilenet_v2_kernels(alpha: float) -> tuple[tuple, tuple]:
    """Two kernel shapes MobileNetV2's base has at width `alpha` (its stem, block 16's projection), no other width's."""

    def divisible(v: float) -> int:  # keras.applications.mobilenet_v2._make_divisible(v, 8)
        new = max(8, int(v + 4) // 8 * 8)
        return new + 8 if new < 0.9 * v else new

    return (3, 3, 3, divisible(32 * alpha)), (1, 1, 6 * divisible(int(160 * alpha)), divisible(int(320 * alpha)))


def _mobilenet_v1_kernels(alpha: float) -> tuple[tuple, tuple]:
    """Two kernel shapes MobileNet v1's base has at width `alpha` (its stem, conv_pw_13), no other width's."""
    return (3, 3, 3, int(32 * alpha)), (1, 1, int(1024 * alpha), int(1024 * alpha))


def _name_xception_adds(base) -> None:
    """Names Xception's residual adds block2_add .. block13_add (Keras leaves them add, add_1, ... numbered
    per process), so its top-block cuts are stable layer names. Adds hold no weights: files still load."""
    import keras

    adds = [layer for layer in base.layers if isinstance(layer, keras.layers.Add)]
    for block, layer in enumerate(adds, start=2):
        layer.name = f"block{block}_add"


@dataclass(frozen=True)
class BackboneSpec:
    """Everything about one backbone: one row of the registry."""

    name: str  # registry key (CLI --backbone, saved configs)
    title: str  # what the page shows
    builder_name: str  # the keras.applications function
    preprocess_name: str  # the keras.applications module whose preprocess_input fits the weights
    default_size: int  # input side when a run sets none
    top_block_cuts: tuple[str, ...]  # layer names, top block first (unfreeze_blocks 1..3)
    gradcam_layer: str  # the base's layer whose maps Grad-CAM weighs; "" = its last 4D layer (Keras numbers it)
    weights_file: Callable[[float, int], str]  # Keras' no-top ImageNet file name for (alpha, input side)
    includes_preprocessing: bool = False  # the Keras model normalises inside: the studio's own layer is the identity
    min_size: int = 32  # smallest input side the builder accepts
    max_size: int = 512  # largest input side accepted: ImageNet weights were trained at <= 384 px, and 512 px already needs 12x the memory of 150 px
    alphas: tuple[float, ...] = ()  # widths with ImageNet weights (1.0 first); () = no width multiplier
    builder_kwargs: tuple[tuple[str, object], ...] = ()  # extra keyword arguments of the builder
    post_build: Callable | None = None  # fixes a built base in place (stable layer names)
    note: str = ""  # one line for the page
    cpu_images_per_s: float = (
        0.0  # forward pass at default_size, random weights, batch 32, this project's 2-core CPU: `bench --backbones`
    )
    family: str = ""  # our documented local file name's stem, <family>_<alpha>_imagenet_no_top.weights.h5 ("" = name)
    width_kernels: Callable[[float], tuple] | None = None  # kernel shapes that tell a weights file's width (alpha) apart

    def cut_for(self, unfreeze_blocks: int) -> str:
        """The layer below the `unfreeze_blocks` top blocks (capped at the blocks this backbone lists)."""
        return self.top_block_cuts[min(max(unfreeze_blocks, 1), len(self.top_block_cuts)) - 1]

    @property
    def has_alpha(self) -> bool:
        return bool(self.alphas)

    def builder(self) -> Callable:
        from keras import applications

        return getattr(applications, self.builder_name)

    def preprocess_module(self):
        from keras import applications

        return getattr(applications, self.preprocess_name)

    def weights_files(self, alpha: float = 1.0) -> list[str]:
        """Keras' file names for this width: the exact size's first for MobileNets, one file otherwise."""
        names: list[str] = []
        for rows in (224, 192, 160, 128, 96):
            name = self.weights_file(float(alpha), rows)
            if name not in names:
                names.append(name)
        return names


_INCLUDED = (("include_preprocessing", True),)  # never applied twice: the studio's own layer is then the identity

BACKBONES: dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        BackboneSpec(
            "vgg16",
            "VGG16 (the lecture's)",
            "VGG16",
            "vgg16",
            150,
            ("block4_pool", "block3_pool", "block2_pool"),
            "block5_conv3",
            _fixed("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            note="The lecture's network: plain 3x3 convolutions, large and slow on CPU.",
            cpu_images_per_s=11.3,
        ),
        BackboneSpec(
            "mobilenet_v2",
            "MobileNetV2 (fast on CPU)",
            "MobileNetV2",
            "mobilenet_v2",
            160,
            ("block_15_add", "block_14_add", "block_13_project_BN"),
            "out_relu",
            _mobilenet_v2_file,
            alphas=(1.0, 0.75, 0.5, 0.35, 1.3, 1.4),
            width_kernels=_mobilenet_v2_kernels,
            note="Inverted residuals; the studio's default.",
            cpu_images_per_s=136,
        ),
        BackboneSpec(
            "mobilenet",
            "MobileNet v1",
            "MobileNet",
            "mobilenet",
            160,
            ("conv_pw_12_relu", "conv_pw_11_relu", "conv_pw_10_relu"),
            "conv_pw_13_relu",
            _mobilenet_v1_file,
            alphas=(1.0, 0.75, 0.5, 0.25),
            family="mobilenet_v1",
            width_kernels=_mobilenet_v1_kernels,
            note="Depthwise-separable convolutions, no residuals.",
            cpu_images_per_s=143,
        ),
        BackboneSpec(
            "resnet50",
            "ResNet50",
            "ResNet50",
            "resnet50",
            224,
            ("conv4_block6_out", "conv3_block4_out"),
            "conv5_block3_out",
            _fixed("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            note="Residual bottlenecks, caffe preprocessing.",
            cpu_images_per_s=15.4,
        ),
        BackboneSpec(
            "efficientnet_b0",
            "EfficientNetB0",
            "EfficientNetB0",
            "efficientnet",
            224,
            ("block6d_add", "block5c_add", "block4c_add"),
            "top_activation",
            _fixed("efficientnetb0_notop.h5"),
            includes_preprocessing=True,
            note="Compound-scaled MBConv; normalises inside its own graph.",
            cpu_images_per_s=33,
        ),
        BackboneSpec(
            "mobilenet_v3_small",
            "MobileNetV3Small",
            "MobileNetV3Small",
            "mobilenet_v3",
            224,
            ("expanded_conv_9_add", "expanded_conv_8_project_bn", "expanded_conv_7_add"),
            "",
            _fixed("weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
            includes_preprocessing=True,
            builder_kwargs=_INCLUDED,
            note="Smallest and fastest; rescales inside its own graph.",
            cpu_images_per_s=308,
        ),
        BackboneSpec(
            "mobilenet_v3_large",
            "MobileNetV3Large",
            "MobileNetV3Large",
            "mobilenet_v3",
            224,
            ("expanded_conv_13_add", "expanded_conv_12_project_bn", "expanded_conv_11_add"),
            "",
            _fixed("weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"),
            includes_preprocessing=True,
            builder_kwargs=_INCLUDED,
            note="MobileNetV2's successor: squeeze-excite, hard-swish.",
            cpu_images_per_s=91.4,
        ),
        BackboneSpec(
            "resnet50_v2",
            "ResNet50V2",
            "ResNet50V2",
            "resnet_v2",
            224,
            ("conv4_block6_out", "conv3_block4_out"),
            "post_relu",
            _fixed("resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            note="Pre-activation residuals, [-1, 1] inputs.",
            cpu_images_per_s=16.5,
        ),
        BackboneSpec(
            "densenet121",
            "DenseNet121",
            "DenseNet121",
            "densenet",
            224,
            ("pool4_pool", "pool3_pool", "pool2_pool"),
            "relu",
            _fixed("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            note="Dense connections: few parameters, many layers.",
            cpu_images_per_s=14.6,
        ),
        BackboneSpec(
            "efficientnet_v2_b0",
            "EfficientNetV2B0",
            "EfficientNetV2B0",
            "efficientnet_v2",
            224,
            ("block5e_add", "block4c_add", "block3b_add"),
            "top_activation",
            _fixed("efficientnetv2-b0_notop.h5"),
            includes_preprocessing=True,
            builder_kwargs=_INCLUDED,
            note="Fused-MBConv early stages; normalises inside.",
            cpu_images_per_s=56.5,
        ),
        BackboneSpec(
            "xception",
            "Xception",
            "Xception",
            "xception",
            299,
            ("block13_add", "block12_add", "block11_add"),
            "block14_sepconv2_act",
            _fixed("xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
            min_size=71,
            post_build=_name_xception_adds,
            note="Depthwise-separable Inception; 71 px at least.",
            cpu_images_per_s=5.62,
        ),
        BackboneSpec(
            "convnext_tiny",
            "ConvNeXtTiny",
            "ConvNeXtTiny",
            "convnext",
            224,
            ("convnext_tiny_downsampling_block_2", "convnext_tiny_downsampling_block_1", "convnext_tiny_downsampling_block_0"),
            "",
            _fixed("convnext_tiny_notop.h5"),
            includes_preprocessing=True,
            builder_kwargs=_INCLUDED,
            note="A modernised ResNet (LayerNorm, GELU); top block = last stage.",
            cpu_images_per_s=2.9,
        ),
        BackboneSpec(
            "efficientnet_v2_s",
            "EfficientNetV2S",
            "EfficientNetV2S",
            "efficientnet_v2",
            384,
            ("block5i_add", "block4f_add", "block3d_add"),
            "top_activation",
            _fixed("efficientnetv2-s_notop.h5"),
            includes_preprocessing=True,
            builder_kwargs=_INCLUDED,
            note="Accurate, heavy on CPU; trained at 384 px.",
            cpu_images_per_s=4.56,
        ),
    )
}

IDENTIFY_ALPHAS = {s.name: s.alphas for s in BACKBONES.values() if s.alphas}  # the widths Keras has ImageNet files for


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"backbone.name: unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}") from None


def image_size_for(cfg: BackboneConfig) -> int:
    """The input side for a run: the configured one, or the backbone's default; bounded by its min_size and max_size."""
    spec = get_spec(cfg.name)
    if cfg.image_size > spec.max_size:
        raise ConfigError(
            f"backbone.image_size: {cfg.image_size} px is above {spec.name}'s limit of {spec.max_size} px; choose a smaller size"
        )
    if 0 < cfg.image_size < spec.min_size:
        raise ConfigError(
            f"backbone.image_size: {cfg.image_size} px is below {spec.name}'s minimum of {spec.min_size} px; "
            f"choose {spec.min_size} px or more"
        )
    return cfg.image_size or spec.default_size


def preprocess(name: str, x, mode: str = "backbone"):
    """Applies the backbone's own preprocess_input (or the lecture's 1/255 preset) to float pixels in [0, 255]."""
    if isinstance(x, np.ndarray):
        x = x.astype("float32", copy=True)  # Keras' caffe-mode preprocessing edits numpy arrays in place
    if mode == "rescale":
        return x / 255.0
    spec = get_spec(name)
    if spec.includes_preprocessing:  # the Keras model normalises inside its own graph: never twice
        return x
    return spec.preprocess_module().preprocess_input(x)


def keras_cache_dir() -> Path:
    return keras_home() / "models"


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
    if not w:  # "Local file" with no path must never become random weights
        raise WeightsUnavailable(
            "backbone.weights: the local weights file path is empty; give a weights file, 'imagenet' or 'none'"
        )
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
        WeightsUnavailable: ImageNet weights could not be downloaded (offline) and no local
            file of them was found (see find_local_weights), or a local file does not fit; the
            message names the file Keras wanted, where to put it, and the `--weights PATH` /
            `none` alternatives.
    """
    spec = get_spec(cfg.name)
    weights = resolve_weights(cfg)
    try:
        return _build(spec, cfg.alpha, image_size, weights)
    except Exception as exc:
        if weights == "imagenet":
            local = find_local_weights(cfg.name, cfg.alpha, image_size)
            if local is None:
                raise WeightsUnavailable(_offline_message(cfg, image_size, exc)) from None
            weights = str(local)  # offline: the same ImageNet weights from $TLS_WEIGHTS_DIR / the cache / ./weights
            try:
                return _build(spec, cfg.alpha, image_size, weights)
            except Exception as local_exc:
                raise WeightsUnavailable(_wrong_file_message(spec, cfg.alpha, image_size, weights, local_exc)) from None
        if weights is not None:
            raise WeightsUnavailable(_wrong_file_message(spec, cfg.alpha, image_size, weights, exc)) from None
        raise


def _build(spec: BackboneSpec, alpha: float, image_size: int, weights):
    kwargs = dict(include_top=False, input_shape=(image_size, image_size, 3), weights=weights, **dict(spec.builder_kwargs))
    if spec.has_alpha:
        kwargs["alpha"] = alpha
    base = spec.builder()(**kwargs)
    if spec.post_build is not None:  # names only: a weights file (keyed by name or by order) loads either way
        spec.post_build(base)
    return base


def _wrong_file_message(spec: BackboneSpec, alpha: float, image_size: int, path: str, exc: Exception) -> str:
    """Why a local weights file does not load, in words: another network's file, or not a weights file at all.

    Keras only says e.g. "Layer 'block1_conv1' expected 2 variables"; trying the file on the
    other registered backbones (error path only) names the network it belongs to.
    """
    wanted = f"{spec.title} at {image_size} px" + (f" with alpha {alpha:g}" if spec.has_alpha else "")
    import h5py

    if not h5py.is_hdf5(path):
        return (
            f"could not load weights file {path}: it is not a Keras weights file (.weights.h5/.h5); "
            f"give a file saved from {spec.title} without its top, 'imagenet' or 'none'"
        )
    owner = identify_weights_file(path, exclude=(spec.name, alpha))
    holds = (
        f"this file holds weights of another network ({owner}"
        if owner
        else "this file holds weights of another network (or of another width"
    )
    return (
        f"could not load weights file {path} into {spec.title}: {holds}; it does not fit {wanted}). "
        f"Give a file saved from {spec.title} without its top (include_top=False), 'imagenet' or 'none'."
    )


def identify_weights_file(path: str, exclude: tuple[str, float] | None = None) -> str | None:
    """The registered backbone (and width) whose conv base loads `path`, e.g. 'MobileNetV2, alpha 1', or None.

    Tries each candidate at a small input size (the weights' shapes do not depend on it);
    for error messages only: it builds up to a dozen small models.
    """
    for spec in BACKBONES.values():
        for alpha in IDENTIFY_ALPHAS.get(spec.name, (1.0,)):
            if exclude == (spec.name, alpha) or (exclude and exclude[0] == spec.name and not spec.has_alpha):
                continue
            try:
                _build(spec, alpha, max(64, spec.min_size), path)
            except Exception:
                continue
            return spec.title.split(" (")[0] + (f", alpha {alpha:g}" if spec.has_alpha else "")
    return None


def imagenet_weights_filename(cfg: BackboneConfig, image_size: int) -> str:
    """The file Keras downloads for include_top=False ImageNet weights (as named in keras.applications)."""
    # MobileNets ship one file per (alpha, size); other sizes fall back to the 224 file (the row's weights_file).
    return get_spec(cfg.name).weights_file(cfg.alpha, image_size)


def cached_imagenet_weights(cfg: BackboneConfig, image_size: int) -> Path | None:
    """The ImageNet weights file in Keras' cache for this backbone and size, if already downloaded."""
    path = keras_cache_dir() / imagenet_weights_filename(cfg, image_size)
    return path if path.is_file() else None


def local_weights_names(name: str, alpha: float) -> list[str]:
    """File names a local ImageNet weights file for this backbone may have, in order of preference.

    Our documented naming first, `<family>_<alpha>_imagenet_no_top.weights.h5` (e.g.
    mobilenet_v2_1.0_imagenet_no_top.weights.h5, mobilenet_v1_0.75_imagenet_no_top.weights.h5;
    backbones without a width multiplier may leave the alpha out), then Keras' own file names
    (any input size: a no-top conv base's weights do not depend on it).
    """
    spec = get_spec(name)
    family = spec.family or name
    names = [f"{family}_{float(alpha)}_imagenet_no_top.weights.h5"]
    if not spec.has_alpha:
        names.append(f"{family}_imagenet_no_top.weights.h5")
    return names + [canonical for canonical in spec.weights_files(alpha) if canonical not in names]


def weights_search_dirs() -> list[Path]:
    """Where local weights files are looked for, in order: $TLS_WEIGHTS_DIR, Keras' cache, ./weights beside the app."""
    dirs = [settings.weights_dir()] if settings.weights_dir() else []
    return dirs + [keras_cache_dir(), PROJECT_ROOT / "weights"]


def find_local_weights(name: str, alpha: float, image_size: int) -> Path | None:
    """A weights file for this backbone found on this machine (see weights_search_dirs), or None.

    Keras' canonical file for exactly this input size comes first in each folder (it is what
    'imagenet' would load), then our documented name, then Keras' files of other sizes.
    """
    exact = imagenet_weights_filename(BackboneConfig(name=name, alpha=alpha), image_size)
    names = [exact] + [n for n in local_weights_names(name, alpha) if n != exact]
    for folder in weights_search_dirs():
        for file_name in names:
            path = folder / file_name
            if path.is_file():
                return path
    return None


_reachable: bool | None = None  # memoised per process: the check costs up to REACHABILITY_TIMEOUT_S


def download_host_reachable() -> bool:
    """Whether Keras' download host answers a TCP connection within REACHABILITY_TIMEOUT_S. Never downloads.

    Run in a thread joined with the timeout, since name resolution itself has no timeout.
    """
    global _reachable
    if _reachable is None:
        result: list[bool] = []

        def probe() -> None:
            try:
                socket.create_connection(DOWNLOAD_HOST, timeout=REACHABILITY_TIMEOUT_S).close()
                result.append(True)
            except OSError:
                result.append(False)

        worker = threading.Thread(target=probe, daemon=True)
        worker.start()
        worker.join(REACHABILITY_TIMEOUT_S)
        _reachable = bool(result and result[0])
    return _reachable


@dataclass(frozen=True)
class WeightsDefault:
    """What the weights setting should default to on this machine, and why (for the dashboard)."""

    value: str  # "imagenet", a path to a local weights file, or "" when there are none
    label: str  # one plain sentence for the UI
    problem: str = ""  # "" or one plain sentence saying what to do when no weights exist anywhere


def default_weights(name: str, alpha: float, image_size: int) -> WeightsDefault:
    """ImageNet when cached or downloadable; else a matching local file (offline-first); else a problem to show."""
    spec = get_spec(name)
    if cached_imagenet_weights(BackboneConfig(name=name, alpha=alpha), image_size) is not None:
        return WeightsDefault("imagenet", f"ImageNet weights for {spec.title}, already in Keras' cache.")
    if download_host_reachable():
        return WeightsDefault("imagenet", f"ImageNet weights for {spec.title}, downloaded by Keras on first use.")
    local = find_local_weights(name, alpha, image_size)
    if local is not None:
        return WeightsDefault(
            str(local), f"ImageNet weights for {spec.title} from the local file {local} (this machine is offline)."
        )
    wanted = local_weights_names(name, alpha)[0]
    return WeightsDefault(
        "",
        "No pretrained weights found.",
        (
            f"No ImageNet weights: this machine is offline and none were found in {WEIGHTS_DIR_ENV}, ~/.keras/models or ./weights. "
            f"Put a weights file there (e.g. {wanted}) or choose 'Local file'."
        ),
    )


def _offline_message(cfg: BackboneConfig, image_size: int, exc: Exception) -> str:
    fname = imagenet_weights_filename(cfg, image_size)
    reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:160]
    return (  # only when no local file of them exists (build_base loads one if it does)
        f"ImageNet weights for {cfg.name} could not be downloaded ({type(exc).__name__}: {reason}). "
        f"Keras wanted the file {fname}. Either connect to the internet once (Keras caches it), "
        f"or copy {fname} into {keras_cache_dir()}/ (or {local_weights_names(cfg.name, cfg.alpha)[0]} into ${WEIGHTS_DIR_ENV}), "
        "or pass a local weights file with --weights PATH (or --weights none to train from random initialisation)."
    )
