"""What training budget a run will get, in optimizer steps, said before it starts.

A budget of epochs means ten times fewer optimizer steps on a dataset ten times smaller: the
`best_cpu` preset's former 15 epochs were 1,500 steps on 2,000 images and about 200 on 245,
where the head had not yet learned (0.81 validation accuracy against 0.94 with more steps).
So a preset states a generous epoch cap with early stopping on validation loss (the best epoch
restored) and, where it says so, the learning-rate finder's rate; this module puts that into
one sentence for the page (above Train) and the CLI (the run's first status line).
"""

from __future__ import annotations

import math

from engine.config import RunConfig

FEW_STEPS = 300  # fewer optimizer steps than this rarely train a head from scratch (measured: 195 steps, 0.81)


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    return max(1, math.ceil(train_images / max(1, batch_size)))


def _phase(epochs: int, steps: int, patience: int, rate: str) -> str:
    stop = f", stopping after {patience} epochs without a lower validation loss (the best epoch kept)" if patience else ""
    return f"up to {epochs} epochs × {steps} steps = {epochs * steps:,} optimizer steps at {rate}{stop}"


def budget_sentence(cfg: RunConfig, train_images: int) -> str:
    """'Budget: up to 100 epochs × 13 steps = 1,300 optimizer steps at the finder's rate, …' for `cfg` on
    `train_images` training images (what the page shows above Train and the run prints first)."""
    f, ft = cfg.fit, cfg.fine_tune
    steps = steps_per_epoch(train_images, f.batch_size)
    rate = (
        "the learning-rate finder's rate (found first, about 100 steps)"
        if f.find_learning_rate
        else f"learning rate {f.learning_rate:g}"
    )
    continuing = cfg.approach == "fine_tuning" and bool(ft.from_run)
    parts = [] if continuing else [_phase(f.epochs, steps, f.early_stopping_patience, rate)]
    if cfg.approach == "fine_tuning" and ft.epochs:
        parts.append(
            "then fine-tuning " + _phase(ft.epochs, steps, f.early_stopping_patience, f"learning rate {ft.learning_rate:g}")
        )
    text = (
        f"Budget on {train_images:,} training images (batch {f.batch_size}): "
        + "; ".join(parts or ["phase 1 from the frozen run"])
        + "."
    )
    if not continuing and f.epochs * steps < FEW_STEPS:
        text += (
            f" That is under {FEW_STEPS} optimizer steps: a small dataset needs more epochs (or early stopping with a "
            "generous cap) to train the head."
        )
    return text
