"""Approach 2 — frozen base + data augmentation, head trained on augmented images.

The pretrained base sits inside the saved model, frozen (`trainable=False`) and called
with `training=False`. Because the frozen base is a pure function of its input, K
augmented views of the training set go through it once (cached on disk, reused by
later runs with other head settings) and the epochs cycle through them: epoch i trains
on view i mod K. `augmentation.views = epochs` gives every epoch its own view, as the
lecture's generator does; the default K is the measured trade-off (README).
Validation images are not augmented, so their features are computed once and cached.
"""

from __future__ import annotations

from engine.training.fit import no_progress, never_stop
from engine.training.approaches.common import PreparedData, RunContext, RunResult, Trained, execute, train_frozen_phase


def _train(ctx: RunContext) -> Trained:
    epochs = ctx.cfg.fit.epochs
    stage, outcome = train_frozen_phase(ctx, epochs, total_epochs=epochs)
    return Trained(stage, outcome)


def run(config, data: PreparedData, progress=no_progress, should_stop=never_stop, **store) -> RunResult:
    """Trains approach 2. `store` takes runs_dir, cache_dir, run_id (see common.execute)."""
    return execute(config, data, _train, progress=progress, should_stop=should_stop, **store)
