"""The one training loop every approach uses.

A hand-written epoch loop over `train_on_batch` rather than `model.fit`, because the
approaches feed the trainable top with features computed on the fly (frozen prefix of
the base applied to freshly augmented images) and because it makes the product's
contract explicit: a `progress(event)` call per batch and per epoch, a `should_stop()`
check between batches, a NaN guard, optional early stopping with best-weights restore,
and per-epoch wall time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

Progress = Callable[[dict], None]
StopCheck = Callable[[], bool]
METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def no_progress(event: dict) -> None:
    """Default progress sink: ignores events."""


def never_stop() -> bool:
    return False


@dataclass
class History:
    """Per-epoch curves across all phases; `phase_starts[k]` is the 1-based epoch phase k+1 starts at."""

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


def _finite(logs: dict) -> bool:
    return all(math.isfinite(float(v)) for v in logs.values())


def fit_top(
    model,
    train_batches: Callable[[int], Iterable[tuple[np.ndarray, np.ndarray]]],
    val_data: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    history: History,
    phase: int = 1,
    total_epochs: int | None = None,
    patience: int = 0,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
    on_epoch_end: Callable[[History], None] | None = None,
) -> FitOutcome:
    """Trains a compiled model for `epochs` epochs, appending to `history`.

    Args:
        model: a compiled Keras model (the trainable top).
        train_batches: `epoch -> iterable of (x, y)`; called once per epoch so it can
            reshuffle and re-augment.
        val_data: (features, labels) evaluated after every epoch.
        total_epochs: epochs across all phases, for progress events.
        patience: early stopping on val_loss; 0 = off. Best weights are restored.
        on_epoch_end: called with the history after each finished epoch (persisting it).

    Returns:
        FitOutcome. On a stop request or a NaN loss, the model keeps the weights of the
        last completed epoch.
    """
    total_epochs = total_epochs or (len(history) + epochs)
    best_loss, best_weights, best_epoch, waited = math.inf, None, None, 0
    outcome = FitOutcome(epochs_run=0)
    for e in range(epochs):
        epoch_no = len(history) + 1
        last_good = model.get_weights()
        t0 = time.perf_counter()
        seen, loss_sum, acc_sum = 0, 0.0, 0.0
        for b, (x, y) in enumerate(train_batches(epoch_no), start=1):
            # Keras 3 resets metrics on every train_on_batch, so the epoch mean is ours to keep.
            logs = model.train_on_batch(x, y, return_dict=True)
            n = len(y)
            seen, loss_sum, acc_sum = seen + n, loss_sum + logs["loss"] * n, acc_sum + logs["accuracy"] * n
            if not _finite(logs):
                model.set_weights(last_good)
                outcome.failed = (
                    f"training diverged: loss became {logs.get('loss')} at epoch {epoch_no}, batch {b}; "
                    "lower the learning rate and try again"
                )
                return outcome
            progress({"type": "batch", "phase": phase, "epoch": epoch_no, "batch": b})
            if should_stop():
                model.set_weights(last_good)
                outcome.stopped = True
                return outcome
        val = model.evaluate(val_data[0], val_data[1], batch_size=max(batch_size, 64), verbose=0, return_dict=True)
        seconds = time.perf_counter() - t0
        epoch_logs = {"loss": loss_sum / max(seen, 1), "accuracy": acc_sum / max(seen, 1), "val_loss": val["loss"], "val_accuracy": val["accuracy"]}
        if not _finite(epoch_logs):
            model.set_weights(last_good)
            outcome.failed = f"training diverged: validation loss is {val['loss']} after epoch {epoch_no}; lower the learning rate"
            return outcome
        history.append(epoch_logs, seconds, phase)
        outcome.epochs_run += 1
        if on_epoch_end:
            on_epoch_end(history)
        progress({"type": "epoch", "phase": phase, "epoch": epoch_no, "epochs_total": total_epochs, "seconds": seconds, "logs": epoch_logs})
        if patience > 0:
            if epoch_logs["val_loss"] < best_loss - 1e-6:
                best_loss, best_weights, best_epoch, waited = epoch_logs["val_loss"], model.get_weights(), e + 1, 0
            else:
                waited += 1
                if waited >= patience:
                    outcome.early_stopped = True
                    break
    if patience > 0 and best_weights is not None:
        model.set_weights(best_weights)
        outcome.best_epoch = best_epoch
    return outcome
