"""Approach 3 — fine-tuning: approach 2, then unfreeze the top block(s) at a lower learning rate.

Phase 1 trains the head on the frozen base (or reuses a finished "frozen" run: `--approach
all` continues from the frozen run it has just trained). Phase 2 makes the layers above
the backbone's cut trainable — VGG16: block5_conv1..3, as in the lecture — keeps BatchNorm
layers frozen (inference mode), recompiles (a change to `trainable` only takes effect
after compile) at `fine_tune.learning_rate`, and trains again. Everything below the cut
stays frozen, so its activations for the K augmented views and for validation are cached
(the frozen run already stored them) and a phase-2 epoch runs only the unfrozen block(s)
and the head.
"""

from __future__ import annotations

from engine.config import ConfigError
from engine.models import modeling
from engine.store.runs import RunStore, RunStoreError
from engine.training.approaches.frozen import train_frozen_phase
from engine.training.context import RunContext
from engine.training.fit import History, never_stop, no_progress
from engine.training.lifecycle import RunResult, Trained, execute
from engine.training.prepared import PreparedData

PHASE_2_SKIPPED = "phase 2 skipped (fine-tuning epochs 0): this is the frozen phase only"


def phase_one_loader(cfg, data: PreparedData, image_size_of, holder: dict):
    """A `base_loader` for execute: a finished frozen run's base, weights identity and history.

    The run is checked (RunRecord.continue_problem: a finished frozen run of the same dataset,
    classes, backbone and size) before any run folder exists. Its head goes into `holder["head"]`.
    """

    def load(store: RunStore):
        run_id = cfg.fine_tune.from_run
        try:
            record = store.load(run_id)
        except RunStoreError as exc:  # unknown id, damaged folder
            raise ConfigError(f"fine_tune.from_run: {exc}") from None
        problem = record.continue_problem(
            dataset_root=data.report.root,
            classes=data.classes,
            backbone=cfg.backbone.name,
            image_size=image_size_of(cfg.backbone),
        )
        if problem:
            raise ConfigError(f"fine_tune.from_run: {problem}")
        model = store.load_model(run_id)
        holder["head"] = model.get_layer("head")
        base = next(l for l in model.layers if hasattr(l, "layers") and l.name not in ("head", "augmentation"))
        # The base was frozen in that run, so its weights are still those it was built with:
        # the same identity means the views it cached are found again.
        weights_id = record.resolved.get("weights_id") or f"run:{run_id}"
        return base, weights_id, History.from_dict(record.history)

    return load


def _train(ctx: RunContext, holder: dict) -> Trained:
    ft = ctx.cfg.fine_tune
    if ft.from_run:
        head = holder["head"]
        total = len(ctx.history) + ft.epochs
    else:
        total = ctx.cfg.fit.epochs + ft.epochs
        stage1, outcome = train_frozen_phase(ctx, ctx.cfg.fit.epochs, total_epochs=total)
        if outcome.stopped or outcome.failed or ft.epochs == 0:
            return Trained(stage1, outcome, note=PHASE_2_SKIPPED if ft.epochs == 0 else "")
        head = stage1.head

    stage2, views = phase_two_part(ctx, head)
    # recompile: new trainable set, lower learning rate; the unfrozen block at discriminative_rate x that rate
    block = stage2.split.top_part.trainable_variables if ft.discriminative_rate != 1.0 else ()
    ctx.models.compile(stage2.top, ft.learning_rate, epochs=ft.epochs, block_variables=block, block_rate=ft.discriminative_rate)
    block_lr = f" (the block at {ft.learning_rate * ft.discriminative_rate:g})" if block else ""
    ctx.progress(
        {
            "type": "status",
            "message": f"phase 2: unfroze layers above {ctx.plan.fine_tune_cut} at lr {ft.learning_rate:g}{block_lr}",
        }
    )
    outcome = ctx.fit(stage2, views, epochs=ft.epochs, phase=2, total_epochs=total)
    return Trained(stage2, outcome)


def phase_two_part(ctx: RunContext, head) -> tuple:
    """What phase 2 trains and on what: the top block above the cut, unfrozen, with phase 1's `head`, on the
    cached views at the cut (also the finder's). BatchNorm stays in inference mode (modeling.unfreeze_top)."""
    cut = ctx.plan.fine_tune_cut
    stage2 = ctx.models.new_stage(cut, head=head, augmentation=ctx.models.augmentation())
    modeling.unfreeze_top(ctx.models.base, stage2.split)
    return stage2, ctx.training_features(cut)


def run(config, data: PreparedData, progress=no_progress, should_stop=never_stop, **store) -> RunResult:
    """Trains approach 3. `store` takes runs_dir, cache_dir, run_id (see lifecycle.execute)."""
    from engine.models.backbones import image_size_for

    holder: dict = {}
    loader = phase_one_loader(config, data, image_size_for, holder) if config.fine_tune.from_run else None
    return execute(
        config, data, lambda ctx: _train(ctx, holder), progress=progress, should_stop=should_stop, base_loader=loader, **store
    )
