"""Model pieces shared by the three approaches: preprocessing layer, head, split, assembly.

Every approach trains a *top* model (the unfrozen part of the base, if any, plus the head)
on the output of a *frozen prefix* of the base. The saved model is always the full
pipeline — input pixels -> [augmentation] -> preprocess_input -> base -> head — so the
classify page and the CLI reuse exactly the training-time preprocessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers

from engine.config import HeadConfig
from engine.models import backbones


@keras.saving.register_keras_serializable(package="engine")
class BackbonePreprocess(layers.Layer):
    """The backbone's own preprocess_input as a layer, so it is saved inside the model."""

    def __init__(self, backbone: str, mode: str = "backbone", **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.mode = mode

    def call(self, x):
        return backbones.preprocess(self.backbone, keras.ops.cast(x, "float32"), self.mode)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone, "mode": self.mode}


def num_outputs(num_classes: int) -> int:
    """Binary problems use one sigmoid unit; more classes use softmax."""
    return 1 if num_classes == 2 else num_classes


def loss_name(num_classes: int) -> str:
    return "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"


def build_head(input_shape: tuple[int, ...], num_classes: int, cfg: HeadConfig) -> keras.Model:
    """Flatten/GAP -> Dense(relu) -> Dropout -> Dense(sigmoid|softmax), as in the lecture."""
    inp = keras.Input(shape=input_shape, name="features")
    x = layers.Flatten(name="flatten")(inp) if cfg.pooling == "flatten" else layers.GlobalAveragePooling2D(name="avg_pool")(inp)
    if cfg.dense_units > 0:
        x = layers.Dense(cfg.dense_units, activation="relu", name="dense")(x)
    if cfg.dropout > 0:
        x = layers.Dropout(cfg.dropout, name="dropout")(x)
    act = "sigmoid" if num_classes == 2 else "softmax"
    # float32 whatever the dtype policy: under mixed precision the probabilities, and so the
    # cross-entropy and its gradient, would otherwise be computed in 16 bits (saturating near 0 and 1).
    out = layers.Dense(num_outputs(num_classes), activation=act, dtype="float32", name="predictions")(x)
    return keras.Model(inp, out, name="head")


def make_optimizer(name: str, learning_rate: float):
    """Keras' optimizers; RMSprop and Adam run TensorFlow's fused update kernels (engine.models.optimizers),
    or Keras' own with a warning when a Keras upgrade removed an internal those rely on."""
    from engine.models import optimizers

    return optimizers.build(name, learning_rate)  # sgd: momentum 0.9; adamw (the finder's ramp): no decay


def weights_digest(model: keras.Model) -> str:
    """A digest of every variable of `model`: weights, BatchNorm statistics, augmentation seed states.

    Equal digests of one model object mean a save would write the same weights again (a VGG16
    save moves 59 MB: 0.75 s here), so a run that ends on its last checkpoint skips the final save.
    """
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for v in model.variables:
        digest.update(v.path.encode())
        digest.update(keras.ops.convert_to_numpy(v.value).tobytes())
    return digest.hexdigest()


def compile_model(
    model: keras.Model, num_classes: int, optimizer: str, learning_rate: float, steps_per_execution: int = 1
) -> None:
    """(Re)compiles; needed after every change of `trainable` for it to take effect."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=loss_name(num_classes),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


@dataclass
class SplitBase:
    """A base cut in two at `cut`: frozen `prefix` (pixels -> features) and trainable `top_part`."""

    cut: str  # layer name; "" means the whole base is the prefix
    prefix: keras.Model  # preprocessed pixels -> features at the cut
    top_part: keras.Model | None  # features at the cut -> base output; None when cut == ""


def split_base(base: keras.Model, cut: str) -> SplitBase:
    """Splits the base at a layer. Both halves share layers (and weights) with `base`."""
    if not cut:
        return SplitBase("", base, None)
    out = base.get_layer(cut).output
    return SplitBase(cut, keras.Model(base.input, out, name="frozen_prefix"), keras.Model(out, base.output, name="top_block"))


def unfreeze_top(base: keras.Model, split: SplitBase) -> None:
    """Makes the layers after the cut trainable, everything else frozen.

    BatchNormalization layers stay frozen: in Keras 3 a non-trainable BN layer runs in
    inference mode, so its moving mean/variance are neither used per batch nor updated —
    with small batches that would wreck the pretrained statistics.
    """
    base.trainable = True
    top_names = {l.name for l in split.top_part.layers} if split.top_part is not None else set()
    for layer in base.layers:
        layer.trainable = layer.name in top_names and not isinstance(layer, layers.BatchNormalization)


def build_top(split: SplitBase, head: keras.Model) -> keras.Model:
    """The trainable model: features at the cut -> [top block of the base] -> head."""
    feat_shape = tuple(split.prefix.output.shape[1:])
    inp = keras.Input(shape=feat_shape, name="cut_features")
    # No training=False here: Keras 3's fit passes training=True to every layer of the model it trains
    # whatever the call says. Norms stay in inference mode because they are frozen (unfreeze_top: a
    # non-trainable BatchNorm runs in inference mode; LayerNorm has no statistics); the trained block's own
    # dropouts (EfficientNet's stochastic depth) regularise it as in Keras' fine-tuning guide.
    x = inp if split.top_part is None else split.top_part(inp)
    return keras.Model(inp, head(x), name="trainable_top")


def assemble_full_model(
    base: keras.Model, head: keras.Model, backbone: str, preprocessing: str, image_size: int, augmentation=None
) -> keras.Model:
    """Pixels in [0, 255] -> [augmentation] -> preprocess_input -> base -> head: the saved model."""
    inp = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = inp
    if augmentation is not None:
        x = augmentation(x)
    x = BackbonePreprocess(backbone, preprocessing, name="preprocess")(x)
    x = base(x, training=False)  # BatchNorm in inference mode, always
    return keras.Model(inp, head(x), name=f"{backbone}_classifier")


def count_params(model: keras.Model) -> dict[str, int]:
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = sum(math.prod(w.shape) for w in model.weights)
    return {"trainable_params": trainable, "non_trainable_params": total - trainable, "total_params": total}


def describe_base(cfg) -> dict:
    """The base's side of the counts (built once per backbone, size and unfrozen blocks; random weights):
    its output shape and its trainable / non-trainable parameters as the approach trains it (fine-tuning:
    phase 2, top block(s) unfrozen, BatchNorm frozen)."""
    import dataclasses

    size = backbones.image_size_for(cfg.backbone)
    base = backbones.build_base(dataclasses.replace(cfg.backbone, weights="none"), size)
    base.trainable = False
    if cfg.approach == "fine_tuning":
        cut = backbones.get_spec(cfg.backbone.name).cut_for(cfg.fine_tune.unfreeze_blocks)
        unfreeze_top(base, split_base(base, cut))
    counts = count_params(base)
    return {
        "output_shape": list(base.output.shape[1:]),
        "trainable_params": counts["trainable_params"],
        "non_trainable_params": counts["non_trainable_params"],
        "unfrozen_layers": [layer.name for layer in base.layers if layer.trainable_weights],
    }  # fine-tuning's, BatchNorm excluded


def describe_model(cfg, num_classes: int, base_side: dict | None = None) -> dict[str, int]:
    """Parameter counts of the model an approach would train (like the lecture's model.summary()).

    The head is built alone on the base's output shape (milliseconds), so counts follow every
    change of the head's fields; `base_side` (describe_base) is the slow part, built once.
    Nothing is downloaded: counts do not depend on the weights.
    """
    base_side = base_side or describe_base(cfg)
    head = count_params(build_head(tuple(base_side["output_shape"]), num_classes, cfg.head))
    trainable = base_side["trainable_params"] + head["trainable_params"]
    frozen = base_side["non_trainable_params"] + head["non_trainable_params"]
    return {"trainable_params": trainable, "non_trainable_params": frozen, "total_params": trainable + frozen}
