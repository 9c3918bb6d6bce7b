"""Approach 3 — fine-tuning: approach 2, then unfreeze the top block(s) at a lower learning rate.

Phase 1 trains the head on the frozen base (or reuses a finished "frozen" run). Phase 2
makes the layers above the backbone's cut trainable — VGG16: block5_conv1..3, as in the
lecture — keeps BatchNorm layers frozen (inference mode), recompiles (a change to
`trainable` only takes effect after compile) at `fine_tune.learning_rate`, and trains again.
Everything below the cut stays frozen, so its output for validation images is cached.
"""

from __future__ import annotations

from .. import backbones, modeling
from ..config import ConfigError
from ..training import History, no_progress, never_stop
from .common import PreparedData, RunContext, RunResult, Trained, execute, train_frozen_phase


def _phase_one_from_run(ctx: RunContext):
    """Loads a finished frozen run as phase 1: its base, head and history."""
    run_id = ctx.cfg.fine_tune.from_run
    record = ctx.store.load(run_id)
    cfg = record.config
    if cfg.get("approach") != "frozen" or record.state != "finished":
        raise ConfigError(f"fine_tune.from_run: run {run_id} is a {record.state} {cfg.get('approach')} run; give a finished 'frozen' run")
    mine = ctx.cfg
    same = (
        cfg["backbone"]["name"] == mine.backbone.name
        and cfg["resolved"]["image_size"] == ctx.image_size
        and cfg["resolved"]["classes"] == ctx.data.classes
    )
    if not same:
        raise ConfigError(f"fine_tune.from_run: run {run_id} used another backbone, image size or class list; start phase 1 afresh")
    model = ctx.store.load_model(run_id)
    head = model.get_layer("head")
    base = next(l for l in model.layers if hasattr(l, "layers") and l.name not in ("head", "augmentation"))
    ctx.base = base
    ctx.weights_id = f"run:{run_id}"
    ctx.history = History.from_dict(record.history)
    return head


def _train(ctx: RunContext) -> Trained:
    ft = ctx.cfg.fine_tune
    spec = backbones.get_spec(ctx.cfg.backbone.name)
    if ft.from_run:
        head = _phase_one_from_run(ctx)
        aug = ctx.augmentation()
        phase1_epochs = len(ctx.history)
        total = phase1_epochs + ft.epochs
    else:
        total = ctx.cfg.fit.epochs + ft.epochs
        split1, head, top1, aug, outcome = train_frozen_phase(ctx, ctx.cfg.fit.epochs, total_epochs=total)
        if outcome.stopped or outcome.failed or ft.epochs == 0:
            full = ctx.full_model(head, aug)
            return Trained(full, top1, split1, outcome)

    cut = spec.top_block_cuts[min(ft.unfreeze_blocks, len(spec.top_block_cuts)) - 1]
    split2 = modeling.split_base(ctx.base, cut)
    modeling.unfreeze_top(ctx.base, split2)
    top2 = modeling.build_top(split2, head)
    ctx.compile(top2, ft.learning_rate)  # recompile: new trainable set, lower learning rate
    ctx.progress({"type": "status", "message": f"phase 2: unfroze layers above {cut} at lr {ft.learning_rate:g}"})
    outcome = ctx.fit(top2, ctx.augmented_batches(ctx.pixels_to_features(split2, aug)), split2, epochs=ft.epochs, phase=2, total_epochs=total)
    full = ctx.full_model(head, aug)
    return Trained(full, top2, split2, outcome)


def run(config, data: PreparedData, progress=no_progress, should_stop=never_stop, **store) -> RunResult:
    """Trains approach 3. `store` takes runs_dir, cache_dir, run_id (see common.execute)."""
    return execute(config, data, _train, progress=progress, should_stop=should_stop, **store)
