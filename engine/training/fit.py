"""Training on Keras' own `Model.fit`, plus the one callback the product needs.

Every approach trains a *top* model (the unfrozen part of the base plus the head) on
cached features, so a phase is one `fit` call over a `tf.data.Dataset`. Keras supplies
`EarlyStopping(restore_best_weights=True)` and `TerminateOnNaN`; `RunCallback` adds the
product's contract: a progress event per batch and per epoch, persisting the history
after every epoch, a cooperative stop checked at batch end, and — on a stop request or a
non-finite loss — putting back the weights of the last complete epoch, so a stopped or
diverged run keeps a usable model. Two phases (fine-tuning) share one `History` and pass
`initial_epoch`, so epochs are numbered across phases as in the lecture's curves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import keras

from engine.store.runs import CURVES
from engine.store.status import Progress

StopCheck = Callable[[], bool]
METRIC_KEYS = CURVES  # what Keras logs per epoch = the curves history.json keeps (store/runs.py)


def no_progress(event: dict) -> None:
    """Default progress sink: ignores events."""


def never_stop() -> bool:
    return False


@dataclass
class History:
    """Per-epoch curves across all phases; `phase[i]` is the phase (1 or 2) of epoch i+1."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    phase: list[int] = field(default_factory=list)

    def append(self, logs: dict, seconds: float, phase: int) -> None:
        for k in METRIC_KEYS:
            getattr(self, k).append(float(logs[k]))
        self.epoch_seconds.append(round(seconds, 3))
        self.phase.append(phase)

    def __len__(self) -> int:
        return len(self.loss)

    @property
    def fine_tune_start_epoch(self) -> int | None:
        """1-based epoch at which phase 2 (fine-tuning) begins, or None."""
        return self.phase.index(2) + 1 if 2 in self.phase else None

    def to_dict(self) -> dict:
        return {
            **{k: list(getattr(self, k)) for k in (*METRIC_KEYS, "epoch_seconds", "phase")},
            "fine_tune_start_epoch": self.fine_tune_start_epoch,
        }

    @classmethod
    def from_dict(cls, raw: dict) -> "History":
        h = cls()
        for k in (*METRIC_KEYS, "epoch_seconds", "phase"):
            setattr(h, k, list(raw.get(k, [])))
        if not h.phase:
            h.phase = [1] * len(h.loss)
        return h


@dataclass
class FitOutcome:
    epochs_run: int  # epochs completed in this phase
    stopped: bool = False  # the user asked to stop
    failed: str = ""  # why training was aborted (NaN), "" if not
    early_stopped: bool = False
    best_epoch: int | None = None  # 1-based, within this phase, when early stopping restored weights


class TrainingStopped(Exception):
    """Raised by approaches to unwind after a stop request; the run is saved as 'stopped'."""


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


class RunCallback(keras.callbacks.Callback):
    """Progress, per-epoch persistence, cooperative stop and last-good-epoch restore for one phase."""

    def __init__(
        self,
        history: History,
        outcome: FitOutcome,
        *,
        phase: int,
        total_epochs: int,
        steps_per_epoch: int,
        progress: Progress,
        should_stop: StopCheck,
        on_epoch_end: Callable[[History], None] | None,
        diverged_above: float = math.inf,
    ):
        super().__init__()
        self.diverged_above = diverged_above
        self.history, self.outcome, self.phase, self.total_epochs = history, outcome, phase, total_epochs
        self.steps_per_epoch, self.progress, self.should_stop, self.persist = steps_per_epoch, progress, should_stop, on_epoch_end
        self._last_good = None
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        # A copy of the weights at the last epoch boundary: what a stop or NaN falls back to.
        self._last_good = self.model.get_weights()
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        epoch_no = len(self.history) + 1
        loss = logs.get("loss")
        if not _finite(loss) or float(loss) > self.diverged_above:
            shown = (
                loss if not _finite(loss) else f"{float(loss):.3g} (over {self.diverged_above:.3g}, 100x the loss of guessing)"
            )
            self.outcome.failed = (
                f"training diverged: loss became {shown} at epoch {epoch_no}, batch {batch + 1}; "
                "lower the learning rate and try again"
            )
            self.model.stop_training = True
            return
        self.progress(
            {
                "type": "batch",
                "phase": self.phase,
                "epoch": epoch_no,
                "batch": batch + 1,
                "batches": self.steps_per_epoch,
                "epochs_total": self.total_epochs,
            }
        )
        if self.should_stop():
            self.outcome.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.outcome.stopped or self.outcome.failed:
            return  # an interrupted epoch is not recorded; on_train_end restores the last good one
        logs = dict(logs or {})
        epoch_no = len(self.history) + 1
        if not all(_finite(logs.get(k)) for k in METRIC_KEYS):
            self.outcome.failed = (
                f"training diverged: validation loss is {logs.get('val_loss')} after epoch {epoch_no}; lower the learning rate"
            )
            self.model.stop_training = True
            return
        seconds = time.perf_counter() - self._t0
        self.history.append(logs, seconds, self.phase)
        self.outcome.epochs_run += 1
        if self.persist:
            self.persist(self.history)
        self.progress(
            {
                "type": "epoch",
                "phase": self.phase,
                "epoch": epoch_no,
                "epochs_total": self.total_epochs,
                "seconds": seconds,
                "logs": {k: float(logs[k]) for k in METRIC_KEYS},
            }
        )

    def on_train_end(self, logs=None):
        if (self.outcome.stopped or self.outcome.failed) and self._last_good is not None:
            self.model.set_weights(self._last_good)


def balanced_class_weight(labels, num_classes: int) -> dict[int, float]:
    """scikit-learn's "balanced" weights of a training split: n_samples / (n_classes * count_c) per class present.

    `n_classes` counts the classes the labels hold (as `compute_class_weight("balanced", classes=np.unique(y), y)`);
    a class of `num_classes` with no training image gets 1.0 (it never occurs in a batch, Keras still wants a key)."""
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    present = int((counts > 0).sum())
    return {c: float(len(labels) / (present * n)) if n else 1.0 for c, n in enumerate(counts.tolist())}


def fit_phase(
    model,
    train_ds,
    val_ds,
    *,
    steps_per_epoch: int,
    epochs: int,
    history: History,
    phase: int = 1,
    total_epochs: int | None = None,
    patience: int = 0,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
    on_epoch_end: Callable[[History], None] | None = None,
    num_classes: int | None = None,
    tensorboard_dir: str | None = None,
    class_weight: dict[int, float] | None = None,
) -> FitOutcome:
    """Trains a compiled model for `epochs` more epochs with `Model.fit`, appending to `history`.

    Args:
        model: a compiled Keras model (the trainable top).
        train_ds: a `tf.data.Dataset` of (x, y) batches that yields at least
            `steps_per_epoch * epochs` batches (it may repeat forever); epoch k of the
            phase consumes the next `steps_per_epoch` batches.
        val_ds: a finite dataset of (x, y) batches evaluated after every epoch.
        total_epochs: epochs across all phases, for progress events.
        patience: early stopping on val_loss (Keras' EarlyStopping); 0 = off. Best weights are restored.
        on_epoch_end: called with the history after each finished epoch (persisting it).
        num_classes: when given, a mean cross-entropy above 100x that of guessing (ln C) counts as
            divergence: a finite but exploding loss, which NaN checks alone miss.
        tensorboard_dir: when given, Keras' TensorBoard callback writes the epoch scalars
            there (train/ and validation/), numbered across phases like the history.
        class_weight: {class index: weight} for Keras' `fit(class_weight=...)` (fit.class_weight "balanced":
            `balanced_class_weight`); None = every class weighs 1.

    Returns:
        FitOutcome. On a stop request or a NaN loss the model keeps the weights of the
        last completed epoch.
    """
    initial = len(history)
    total_epochs = total_epochs or (initial + epochs)
    outcome = FitOutcome(epochs_run=0)
    ours = RunCallback(
        history,
        outcome,
        phase=phase,
        total_epochs=total_epochs,
        steps_per_epoch=steps_per_epoch,
        progress=progress,
        should_stop=should_stop,
        on_epoch_end=on_epoch_end,
        diverged_above=100 * math.log(max(num_classes, 2)) if num_classes else math.inf,
    )
    callbacks: list = [keras.callbacks.TerminateOnNaN()]
    early = None
    if patience > 0:
        early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True, min_delta=1e-6)
        callbacks.append(early)
    callbacks.append(ours)  # after EarlyStopping, so its restore on stop/NaN wins over EarlyStopping's
    if tensorboard_dir:
        from engine.training.tensorboard_logs import KeptEpochsTensorBoard

        # After ours: by its on_epoch_end, ours has judged the epoch (stopped, NaN) and the log follows.
        callbacks.append(KeptEpochsTensorBoard(tensorboard_dir, lambda: outcome.stopped or bool(outcome.failed)))
    model.fit(
        train_ds,
        validation_data=val_ds,
        steps_per_epoch=steps_per_epoch,
        initial_epoch=initial,
        epochs=initial + epochs,
        callbacks=callbacks,
        shuffle=False,
        verbose=0,
        class_weight=class_weight,
    )  # the stream is shuffled per epoch already
    _note_early_stopping(early, outcome, initial)
    return outcome


def _note_early_stopping(early, outcome: FitOutcome, initial: int) -> None:
    """Whether Keras' EarlyStopping ended the phase and which epoch of the phase it restored."""
    if early is not None and not (outcome.stopped or outcome.failed):
        outcome.early_stopped = early.stopped_epoch > 0
        if early.best_weights is not None:
            outcome.best_epoch = early.best_epoch - initial + 1
