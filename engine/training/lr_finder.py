"""The learning-rate finder: the loss over an exponential ramp of the learning rate, and a suggested rate.

Leslie Smith's range test, as fastai's `lr_find` runs it: starting from the weights a run of
these settings would start from, one optimizer step per rate, the rate growing evenly on a log
scale from `start_lr` to `end_lr`, stopping once the loss blows up. It trains what the approach
trains, on what the approach's epochs read from the feature cache: the head on the plain
features (feature extraction), the head on the K augmented views (frozen), the unfrozen top
block on the views at the cut (fine-tuning, continuing a finished frozen run). So on a warm
cache the base never runs and the ramp takes seconds; on a cold one it caches exactly what a
run of these settings would, so the run that follows starts warm.

The ramp and its rules live in engine/training/lr_range.py (a run's own ramp uses them too).
"""

from __future__ import annotations

import time
from pathlib import Path

from engine.config import ConfigError, RunConfig, validate
from engine.training.lr_range import FinderResult, FinderSettings, Progress, StopCheck, _never_stop, _no_progress, ramp_stage


def find_learning_rate(
    cfg: RunConfig,
    data,
    settings: FinderSettings | None = None,
    *,
    progress: Progress = _no_progress,
    should_stop: StopCheck = _never_stop,
    runs_dir=None,
    cache_dir=None,
) -> FinderResult:
    """Runs the range test for `cfg.approach` on `data` (a PreparedData). Fine-tuning needs `fine_tune.from_run`:
    its phase 2 starts from that finished frozen run's head, as the run would.

    Raises:
        ConfigError: bad settings, or fine-tuning without a frozen run to continue.
    """
    from engine.models.precision import dtype_policy, resolve_precision

    settings = settings or FinderSettings()
    settings.check()
    validate(cfg)
    if cfg.approach == "fine_tuning" and not cfg.fine_tune.from_run:
        raise ConfigError(
            "fine_tune.from_run: the finder ramps fine-tuning's phase 2, which starts from a trained head; "
            "give a finished frozen run (--from-run RUN), or find the frozen approach's rate first"
        )
    resolved = resolve_precision(cfg.compute.precision)
    with dtype_policy(resolved):
        return _find(cfg, data, settings, resolved, progress, should_stop, runs_dir, cache_dir)


def _find(cfg, data, settings, precision, progress, should_stop, runs_dir, cache_dir) -> FinderResult:
    import keras

    from engine.models import backbones
    from engine.store.runs import RunStore
    from engine.training import distribute
    from engine.training.approaches import feature_extraction, fine_tuning, frozen
    from engine.training.approaches.fine_tuning import phase_one_loader
    from engine.training.context import RunContext
    from engine.training.features import FeatureCache
    from engine.training.plan import RunPlan
    from engine.training.stages import StageBuilder

    t0 = time.perf_counter()
    dist = distribute.resolve("none")  # a ramp of a hundred small steps: one device
    store = RunStore(runs_dir)
    image_size = backbones.image_size_for(cfg.backbone)
    keras.utils.set_random_seed(cfg.fit.seed)  # as lifecycle's base build: the run's own initial weights follow
    holder: dict = {}
    if cfg.approach == "fine_tuning":
        base, weights_id, _ = phase_one_loader(cfg, data, backbones.image_size_for, holder)(store)
    else:
        base, weights_id = backbones.build_base(cfg.backbone, image_size), backbones.weights_identity(cfg.backbone, cfg.fit.seed)
    plan = RunPlan.for_data(cfg, data, image_size, weights_id, precision)
    models = StageBuilder(cfg, base, image_size, len(data.classes), len(data.splits["train"]), dist)
    ctx = RunContext(plan, data, models, store, Path(), FeatureCache(cache_dir), progress, should_stop)
    # The approaches' own "what is trained, on what": the finder cannot drift from the runs it advises.
    if cfg.approach == "feature_extraction":
        stage, arrays = feature_extraction.trained_part(ctx)
    elif cfg.approach == "frozen":
        stage, arrays = frozen.trained_part(ctx)
    else:
        stage, arrays = fine_tuning.phase_two_part(ctx, holder["head"])
    return ramp_stage(ctx, stage, arrays, settings, t0)
