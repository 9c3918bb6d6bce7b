"""TensorBoard logs of a run (`compute.tensorboard`): the curves by Keras' own callback, plus the hyper-parameters.

Layout, as Keras and TensorBoard expect it: DIR/<run id>/train and DIR/<run id>/validation
hold the per-epoch scalars (`epoch_loss`, `epoch_accuracy`, `epoch_learning_rate`), written
by `keras.callbacks.TensorBoard`; DIR/<run id> itself holds the run's configuration, as a
text table (always) and for the HParams dashboard (when the `tensorboard` package is
installed), so `tensorboard --logdir DIR` shows these runs next to any other Keras work.
Two phases (fine-tuning) write to the same folders with epochs numbered across phases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import keras


def run_log_dir(root: str | Path, run_id: str) -> Path:
    """DIR/<run id>: one TensorBoard "run" per stored run."""
    return Path(root).expanduser() / run_id


def flatten_config(config: dict, prefix: str = "") -> dict[str, bool | int | float | str]:
    """{"fit": {"epochs": 3}} -> {"fit.epochs": 3}; lists and None become text (HParams takes scalars only)."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value) if value is not None else ""
    return flat


def write_hyperparameters(log_dir: str | Path, config: dict, run_id: str) -> None:
    """Writes the run's configuration (the stored config.json, `resolved` included) at step 0."""
    import tensorflow as tf

    flat = flatten_config(config)
    table = "| setting | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in sorted(flat.items()))
    writer = tf.summary.create_file_writer(str(log_dir))
    try:
        with writer.as_default():
            tf.summary.text("config", table, step=0)
            try:
                from tensorboard.plugins.hparams import api as hp
            except ImportError:  # TensorFlow 2.21 no longer installs TensorBoard; the text table still shows them
                hp = None
            if hp is not None:
                hp.hparams(flat, trial_id=run_id)
    finally:
        writer.close()


class KeptEpochsTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, skipping an epoch the run does not keep.

    Keras still calls `on_epoch_end` for an epoch cut short by Stop or ended by a
    non-finite loss; the run's history drops it (and puts back the last good weights), so
    the logs drop it too. `discarded()` says whether the current epoch was dropped.
    """

    def __init__(self, log_dir: str | Path, discarded: Callable[[], bool]):
        super().__init__(log_dir=str(log_dir), write_graph=False)  # scalars only: no graph trace per phase
        self._discarded = discarded

    def on_epoch_end(self, epoch, logs=None):
        if not self._discarded():
            super().on_epoch_end(epoch, logs)
