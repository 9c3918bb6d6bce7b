"""The models of a run around its base: the frozen part as a compiled function, trainable stages, the saved pipeline.

Every stage trains a *top* model on features at a cut of the base: the frozen part below the
cut runs once per image and view (context.py caches what it yields), and epochs only run
what is trainable. The estimate's calibration builds the same pieces with a `StageBuilder`
of its own, so it times exactly what a run trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras

from engine.config import RunConfig
from engine.data.augmentation import build_augmentation
from engine.models import modeling, optimizers
from engine.training import distribute

STEPS_PER_EXECUTION = 10  # train steps per call into TensorFlow: fewer host round trips


def phase_loss(num_classes: int, label_smoothing: float = 0.0):
    """The cross-entropy a stage trains with: binary (one sigmoid) for 2 classes, else categorical over sparse labels.

    With `label_smoothing` > 0 the targets become (1 - s) on the true class plus s / classes everywhere (binary:
    Keras' BinaryCrossentropy, which smooths towards 0.5); Keras' sparse cross-entropy has no smoothing, so the labels
    are one-hot encoded inside `SmoothedSparseCrossentropy`. 0 keeps Keras' own losses by name, as before."""
    if num_classes == 2:
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing) if label_smoothing else "binary_crossentropy"
    return SmoothedSparseCrossentropy(num_classes, label_smoothing) if label_smoothing else "sparse_categorical_crossentropy"


@keras.saving.register_keras_serializable(package="engine")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing on integer labels (one-hot encoded here)."""

    def __init__(self, num_classes: int, label_smoothing: float, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.label_smoothing = int(num_classes), float(label_smoothing)

    def call(self, y_true, y_pred):
        ops = keras.ops
        onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "label_smoothing": self.label_smoothing}


@dataclass
class Stage:
    """One trainable stage, owned in one place: the base cut at `split.cut`, its head and the top model.

    `top` = features at the cut -> [unfrozen top block of the base] -> head; it shares
    layers (and weights) with `split` and `head`, so training it trains the saved model.
    """

    split: modeling.SplitBase
    head: object
    top: object
    augmentation: object | None = None  # kept in the saved model (a no-op at inference)


@dataclass
class StageBuilder:
    """Builds a run's models around `base`.

    Models are built in the strategy's scope: Keras captures the strategy when a model is made,
    so their variables, the optimizer and the metrics are mirrored on every replica. The
    frozen-feature passes stay outside it: they train nothing and run once per image.
    """

    cfg: RunConfig
    base: object
    image_size: int
    num_classes: int
    train_size: int  # training images per epoch (steps_per_execution divides an epoch's steps)
    dist: distribute.Distribution = field(default_factory=lambda: distribute.resolve("none"))
    _fns: dict = field(default_factory=dict, repr=False)  # traced frozen-base functions, by cuts
    _full: dict = field(default_factory=dict, repr=False)  # id(stage) -> (stage, its saved model), built once

    @property
    def global_batch(self) -> int:
        """Images per training step over all replicas: fit.batch_size is per replica."""
        return self.dist.global_batch(self.cfg.fit.batch_size)

    def feature_shape(self, cut: str) -> tuple:
        """Shape of one image's features at `cut` ("" = the base's output)."""
        t = self.base.output if not cut else self.base.get_layer(cut).output
        return tuple(t.shape[1:])

    def pixels_to_features(self, cuts: tuple[str, ...], augmentation=None):
        """A compiled function uint8 pixels -> [augmentation] -> preprocess -> frozen base, out at each cut.

        A cut of "" means the base's output. One pass yields every requested cut, so the
        views cached for frozen training also hold the activations fine-tuning starts from.
        """
        import keras
        import tensorflow as tf

        memo_key = (cuts, id(augmentation))
        if augmentation is None and memo_key in self._fns:
            return self._fns[memo_key]  # one trace serves every split
        pre = modeling.BackbonePreprocess(self.cfg.backbone.name, self.cfg.backbone.preprocessing)
        outputs = [self.base.output if not c else self.base.get_layer(c).output for c in cuts]
        prefix = keras.Model(self.base.input, outputs, name="frozen_prefix")
        pixels = tf.TensorSpec((None, self.image_size, self.image_size, 3), tf.uint8)

        @tf.function(input_signature=[pixels])  # any batch size, one trace (the last batch is smaller)
        def fn(x):
            x = tf.cast(x, tf.float32)
            if augmentation is not None:
                x = augmentation(x, training=True)
            out = prefix(pre(x), training=False)  # BatchNorm in inference mode
            return tuple(out) if isinstance(out, (list, tuple)) else (out,)

        if augmentation is None:
            self._fns[memo_key] = fn
        return fn

    def new_stage(self, cut: str, head=None, augmentation=None) -> Stage:
        """A stage at `cut` (""= whole base frozen) around `head` (a fresh one if None)."""
        with self.dist.scope():
            split = modeling.split_base(self.base, cut)
            if head is None:
                head = modeling.build_head(tuple(self.base.output.shape[1:]), self.num_classes, self.cfg.head)
            return Stage(split, head, modeling.build_top(split, head), augmentation)

    def compile(
        self, top, learning_rate: float, *, epochs: int | None = None, block_variables=(), block_rate: float = 1.0
    ) -> None:
        """(Re)compiles `top` for a phase of `epochs` (default fit.epochs) with the run's recipe: fit.optimizer
        (AdamW with fit.weight_decay), `learning_rate` under fit.schedule over the phase's steps, the loss with
        fit.label_smoothing; `block_variables` train at `block_rate` x the rate (fine-tuning's discriminative rates).

        A recompile makes a new optimizer, so a schedule starts again at each phase."""
        f = self.cfg.fit
        rate = optimizers.schedule(
            f.schedule,
            learning_rate,
            self.phase_steps(f.epochs if epochs is None else epochs),
            warmup_steps=f.warmup_epochs * self.steps_per_epoch(),
        )
        with self.dist.scope():
            opt = optimizers.build(
                f.optimizer, rate, weight_decay=f.weight_decay, scaled_variables=block_variables, factor=block_rate
            )
            top.compile(
                optimizer=opt,
                loss=phase_loss(self.num_classes, f.label_smoothing),
                metrics=["accuracy"],
                steps_per_execution=self.steps_per_execution(),
            )

    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: one per global batch of the training split (the last batch may be smaller)."""
        return math.ceil(self.train_size / self.global_batch)

    def phase_steps(self, epochs: int) -> int:
        """Optimizer steps of a phase of `epochs` epochs: what a schedule spans."""
        return max(epochs, 1) * self.steps_per_epoch()

    def steps_per_execution(self) -> int:
        """Train steps per call into TensorFlow: the largest divisor of an epoch's steps up to STEPS_PER_EXECUTION.

        A divisor, because Keras runs whole calls: with 4 steps an epoch and 10 per call, each
        epoch's call would pull batches of the next epochs from the stream. One step per call
        under a tf.distribute strategy: Keras 3's multi-step loop (a tf.cond around the
        replicated step) fails there with "You must feed a value for placeholder tensor"
        (keras-team/keras#19246).
        """
        if self.dist.kind != "none":
            return 1
        steps = self.steps_per_epoch()
        return max(d for d in range(1, STEPS_PER_EXECUTION + 1) if steps % d == 0)

    def full_model(self, stage: Stage):
        """The saved pipeline model around the current base and the stage's head.

        Built once per stage (it shares the trained layers, so it always holds their current
        weights): assembling it per checkpoint would add a node to the base at every call.
        """
        if id(stage) not in self._full:
            b = self.cfg.backbone
            with self.dist.scope():
                model = modeling.assemble_full_model(
                    self.base, stage.head, b.name, b.preprocessing, self.image_size, stage.augmentation
                )
            self._full[id(stage)] = (stage, model)  # the stage is kept so its id is never reused
        return self._full[id(stage)][1]

    def augmentation(self):
        """The augmentation layers of the saved model (None when switched off), seeded by fit.seed."""
        with self.dist.scope():  # its seed state is a variable of the saved model
            return build_augmentation(self.cfg.augmentation, seed=self.cfg.fit.seed)
