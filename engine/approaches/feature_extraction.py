"""Approach 1 — feature extraction: run the frozen base once, train a dense head on cached features.

As in the lecture, the conv base's output for every image is computed once and stored
as arrays (here: on disk, keyed by content, so the next run with other head settings
skips the base entirely). No augmentation: each image has exactly one feature map.
"""

from __future__ import annotations

from .. import modeling
from ..training import no_progress, never_stop
from .common import PreparedData, RunContext, RunResult, Trained, execute


def _train(ctx: RunContext) -> Trained:
    ctx.base.trainable = False
    split = modeling.split_base(ctx.base, "")
    x_train = ctx.features("train", split)
    head = ctx.new_head()
    top = modeling.build_top(split, head)
    ctx.compile(top, ctx.cfg.fit.learning_rate)
    epochs = ctx.cfg.fit.epochs
    outcome = ctx.fit(top, ctx.cached_batches(x_train, ctx.labels("train")), split, epochs=epochs, phase=1, total_epochs=epochs)
    full = ctx.full_model(head)
    return Trained(full, top, split, outcome)


def run(config, data: PreparedData, progress=no_progress, should_stop=never_stop, **store) -> RunResult:
    """Trains approach 1. `store` takes runs_dir, cache_dir, run_id (see common.execute)."""
    return execute(config, data, _train, progress=progress, should_stop=should_stop, **store)
