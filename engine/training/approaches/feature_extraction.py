"""Approach 1 — feature extraction: run the frozen base once, train a dense head on cached features.

As in the lecture, the conv base's output for every image is computed once and stored
as arrays (here: on disk, keyed by content, so the next run with other head settings
skips the base entirely). No augmentation: each image has exactly one feature map.
"""

from __future__ import annotations

from engine.training.context import RunContext
from engine.training.fit import never_stop, no_progress
from engine.training.lifecycle import RunResult, Trained, execute
from engine.training.prepared import PreparedData
from engine.training.stages import Stage


def trained_part(ctx: RunContext) -> tuple[Stage, list]:
    """What approach 1 trains and on what: a fresh head on the plain training features (also the finder's)."""
    ctx.models.base.trainable = False
    return ctx.models.new_stage(""), [ctx.features("train", "")]


def _train(ctx: RunContext) -> Trained:
    stage, features = trained_part(ctx)
    ctx.models.compile(stage.top, ctx.phase_one_rate(stage, features))
    epochs = ctx.cfg.fit.epochs
    outcome = ctx.fit(stage, features, epochs=epochs, phase=1, total_epochs=epochs)
    return Trained(stage, outcome)


def run(config, data: PreparedData, progress=no_progress, should_stop=never_stop, **store) -> RunResult:
    """Trains approach 1. `store` takes runs_dir, cache_dir, run_id (see lifecycle.execute)."""
    return execute(config, data, _train, progress=progress, should_stop=should_stop, **store)
