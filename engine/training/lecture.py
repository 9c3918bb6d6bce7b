"""The lecture's own pipeline, as literally as Keras 3 allows: the benchmark's baseline.

`ImageDataGenerator` with the lecture's arguments and `flow_from_directory`, a
`model.predict` per batch for feature extraction, a `Sequential` with the frozen base
inside trained by `fit` on the augmenting generator, then the top block unfrozen and
recompiled at 1e-5. Each stage is timed on a given number of steps (after one warm-up
step that pays for tracing), so `bench --quick` can extrapolate a whole epoch. A step's
cost is the median of the timed steps: on a shared machine one step slowed by another
tenant would otherwise move the whole extrapolated protocol (measured: one `--quick` run
read a fine-tuning step as 2.58 s where steps timed one by one took 1.43-1.61 s). Only the
benchmark uses this module; the product never does.
"""

from __future__ import annotations

import time

import keras
import numpy as np


def image_data_generator(**kwargs):
    """Keras 3 keeps ImageDataGenerator only in its legacy package (it needs scipy)."""
    try:
        from keras.preprocessing.image import ImageDataGenerator  # Keras 2 / tf.keras spelling
    except ImportError:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator
    return ImageDataGenerator(**kwargs)


def _flow(directory: str, size: int, augment: bool, seed: int):
    kw = dict(rescale=1 / 255)
    if augment:  # the lecture's augmentation, argument for argument
        kw.update(
            rotation_range=20,
            width_shift_range=0.1,
            height_shift_range=0.1,
            zoom_range=0.2,
            horizontal_flip=True,
            vertical_flip=True,
        )
    return image_data_generator(**kw).flow_from_directory(
        directory, target_size=(size, size), batch_size=20, class_mode="binary", seed=seed
    )


def time_feature_extraction(base, train_dir: str, size: int, batches: int, seed: int = 42) -> float:
    """Images per second of the lecture's extract_feature loop (generator + model.predict per batch)."""
    gen = _flow(train_dir, size, False, seed)
    x, _ = next(gen)
    base.predict(x, verbose=0)  # warm-up: tracing is not the lecture's steady state
    seconds = []
    for _ in range(batches):
        t0 = time.perf_counter()
        x, _ = next(gen)
        base.predict(x, verbose=0)
        seconds.append(time.perf_counter() - t0)
    return len(x) / float(np.median(seconds))  # every batch but a last partial one holds 20


def time_head_epoch(feature_shape: tuple, n_train: int, n_val: int) -> float:
    """Seconds of one epoch of the lecture's dense head on feature arrays (fit, batch 20, with validation)."""
    from keras import layers

    rng = np.random.default_rng(0)  # values do not change the cost; shapes do
    x = rng.random((n_train, *feature_shape), dtype=np.float32)
    xv = rng.random((n_val, *feature_shape), dtype=np.float32)
    y, yv = rng.integers(0, 2, n_train).astype("float32"), rng.integers(0, 2, n_val).astype("float32")
    model = keras.Sequential(
        [
            keras.Input(feature_shape),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.RMSprop(2e-5), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x[:40], y[:40], epochs=1, batch_size=20, validation_data=(xv[:40], yv[:40]), verbose=0)  # warm-up
    t0 = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=20, validation_data=(xv, yv), verbose=0)
    return time.perf_counter() - t0


class _StepTimes(keras.callbacks.Callback):
    """Each train or test step's wall time, end to end (Keras pulls the generator's next batch
    between two step ends, so the lecture's augmentation and decoding are in it)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._t0 = time.perf_counter()

    def _restart(self, logs=None):
        self._t0 = time.perf_counter()

    def _step_end(self, batch, logs=None):
        now = time.perf_counter()
        self.seconds.append(now - self._t0)
        self._t0 = now

    on_train_begin = on_test_begin = _restart
    on_train_batch_end = on_test_batch_end = _step_end


def _time_fit_steps(model, gen, steps: int) -> float:
    """Median seconds per training step of `model.fit` on the generator (after a one-step warm-up)."""
    model.fit(gen, steps_per_epoch=1, epochs=1, verbose=0)
    times = _StepTimes()
    model.fit(gen, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[times])
    return float(np.median(times.seconds))


def _time_eval_steps(model, gen, steps: int) -> float:
    """Median seconds per validation step of `model.evaluate` (after a one-step warm-up)."""
    model.evaluate(gen, steps=1, verbose=0)
    times = _StepTimes()
    model.evaluate(gen, steps=steps, verbose=0, callbacks=[times])
    return float(np.median(times.seconds))


def time_frozen_and_fine_tuning(
    base,
    top_block_layers: set[str],
    train_dir: str,
    val_dir: str,
    size: int,
    steps: int,
    train_steps_per_epoch: int,
    val_steps_per_epoch: int,
    seed: int = 42,
) -> dict:
    """Seconds per epoch of the lecture's frozen + augmentation model, then of its fine-tuning phase.

    An epoch is `train_steps_per_epoch` augmented batches of 20 plus `val_steps_per_epoch`
    validation batches (the lecture: 100 and 50), extrapolated from `steps` timed steps.
    """
    from keras import layers

    train, val = _flow(train_dir, size, True, seed), _flow(val_dir, size, False, seed)
    base.trainable = False
    model = keras.Sequential(
        [base, layers.Flatten(), layers.Dense(256, activation="relu"), layers.Dropout(0.6), layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer=keras.optimizers.RMSprop(2e-5), loss="binary_crossentropy", metrics=["accuracy"])
    step = _time_fit_steps(model, train, steps)
    val_step = _time_eval_steps(model, val, max(2, steps // 2))
    frozen = train_steps_per_epoch * step + val_steps_per_epoch * val_step

    base.trainable = True  # the lecture: unfreeze all, then freeze all but the top block
    for layer in base.layers:
        layer.trainable = layer.name in top_block_layers
    model.compile(optimizer=keras.optimizers.RMSprop(1e-5), loss="binary_crossentropy", metrics=["accuracy"])
    ft_step = _time_fit_steps(model, train, steps)
    fine = train_steps_per_epoch * ft_step + val_steps_per_epoch * val_step
    return {
        "frozen_epoch_s": frozen,
        "finetune_epoch_s": fine,
        "frozen_step_s": step,
        "finetune_step_s": ft_step,
        "val_step_s": val_step,
    }
