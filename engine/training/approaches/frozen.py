"""Approach 2 — frozen base + data augmentation, head trained on augmented images.

The pretrained base sits inside the saved model, frozen (`trainable=False`) and called
with `training=False`. Because the frozen base is a pure function of its input, K
augmented views of the training set go through it once (cached on disk, reused by
later runs with other head settings) and the epochs cycle through them: epoch i trains
on view i mod K. `augmentation.views = epochs` gives every epoch its own view, as the
lecture's generator does; the default K is the measured trade-off (docs/results.md).
Validation images are not augmented, so their features are computed once and cached.
"""

from __future__ import annotations

from engine.training.context import RunContext
from engine.training.fit import FitOutcome, never_stop, no_progress
from engine.training.lifecycle import RunResult, Trained, execute
from engine.training.prepared import PreparedData
from engine.training.stages import Stage


def train_frozen_phase(ctx: RunContext, epochs: int, total_epochs: int) -> tuple[Stage, FitOutcome]:
    """Approach 2 and phase 1 of approach 3: whole base frozen, K cached augmented views, head trained.

    With augmentation switched off there is one view: the plain training features. The views
    also keep fine-tuning's cut, made in the same pass, so a fine-tuning run starts from them.
    """
    stage, views = trained_part(ctx)
    ctx.models.compile(stage.top, ctx.phase_one_rate(stage, views))
    outcome = ctx.fit(stage, views, epochs=epochs, phase=1, total_epochs=total_epochs)
    return stage, outcome


def trained_part(ctx: RunContext) -> tuple[Stage, list]:
    """What approach 2 (and phase 1 of 3) trains and on what: a fresh head on the K cached views (also the finder's)."""
    ctx.models.base.trainable = False
    stage = ctx.models.new_stage("", augmentation=ctx.models.augmentation())
    return stage, ctx.training_features("", extra_cut=ctx.plan.fine_tune_cut)


def _train(ctx: RunContext) -> Trained:
    epochs = ctx.cfg.fit.epochs
    stage, outcome = train_frozen_phase(ctx, epochs, total_epochs=epochs)
    return Trained(stage, outcome)


def run(config, data: PreparedData, progress=no_progress, should_stop=never_stop, **store) -> RunResult:
    """Trains approach 2. `store` takes runs_dir, cache_dir, run_id (see lifecycle.execute)."""
    return execute(config, data, _train, progress=progress, should_stop=should_stop, **store)
