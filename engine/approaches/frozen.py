"""Approach 2 — frozen base + data augmentation, trained end to end.

The pretrained base sits inside the model, frozen (`trainable=False`) and called with
`training=False`; every epoch sees freshly augmented images, so the base runs on every
batch — slower than approach 1 but the head learns from far more varied inputs.
Validation images are not augmented, so their features are computed once and cached.
"""

from __future__ import annotations

from ..training import no_progress, never_stop
from .common import PreparedData, RunContext, RunResult, Trained, execute, train_frozen_phase


def _train(ctx: RunContext) -> Trained:
    epochs = ctx.cfg.fit.epochs
    split, head, top, aug, outcome = train_frozen_phase(ctx, epochs, total_epochs=epochs)
    full = ctx.full_model(head, aug)
    return Trained(full, top, split, outcome)


def run(config, data: PreparedData, progress=no_progress, should_stop=never_stop, **store) -> RunResult:
    """Trains approach 2. `store` takes runs_dir, cache_dir, run_id (see common.execute)."""
    return execute(config, data, _train, progress=progress, should_stop=should_stop, **store)
