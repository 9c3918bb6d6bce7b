"""The run lifecycle: one approach from a config to a stored run, as named steps.

build the base (or load a finished frozen run's) -> plan -> record the config -> open the run
folder and its status -> the approach's body trains -> score once on validation and test ->
save model.keras -> final metrics. Every step writes what it learned into the run store
(engine/store/runs.py), the only channel back to the dashboard.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.config import RunConfig, validate
from engine.errors import StudioError, user_error_inside
from engine.insight import evaluation
from engine.insight.analysis import PREDICTIONS_FILE, predictions_payload
from engine.models import backbones, modeling
from engine.models.precision import dtype_policy, resolve_precision
from engine.store.record import RunRecord
from engine.store.run_clock import RunClock
from engine.store.runs import RunSaveError, RunStore, atomic_write_json
from engine.store.status import StatusTracker
from engine.training import distribute
from engine.training.budget import budget_sentence
from engine.training.context import RunContext
from engine.training.estimate import CHECKPOINTS_PER_PHASE
from engine.training.features import FeatureCache
from engine.training.fit import FitOutcome, History, Progress, StopCheck, TrainingStopped, never_stop, no_progress
from engine.training.plan import RunPlan
from engine.training.prepared import PreparedData
from engine.training.stages import Stage, StageBuilder
from engine.training.streams import feature_dataset
from engine.training.tensorboard_logs import run_log_dir, write_hyperparameters
from engine.training.timeline import planned_parts


@dataclass
class RunResult:
    """What a finished (or stopped/failed) run returns; `to_report()` is the CLI's JSON object."""

    id: str
    approach: str
    run_dir: str  # "" on a non-chief worker of a multi-worker job: only the chief stores runs
    state: str
    message: str
    config: dict
    history: dict
    metrics: dict

    @property
    def record(self) -> RunRecord:
        """The run as every reader sees it (engine/store/record.py)."""
        return RunRecord(self.id, Path(self.run_dir) if self.run_dir else None, self.config, self.history, self.metrics)

    def to_report(self) -> dict:
        r, m = self.record, self.metrics
        resolved = r.resolved
        return {
            "id": self.id,
            "approach": self.approach,
            "state": self.state,
            "message": self.message,
            "backbone": r.backbone,
            "weights": self.config["backbone"]["weights"],
            "image_size": r.image_size,
            "classes": r.classes,
            "views": resolved.get("views"),
            "precision": resolved.get("precision"),
            "distribute": resolved.get("distribute", "none"),
            "replicas": resolved.get("replicas", 1),
            "global_batch": resolved.get("global_batch", self.config["fit"]["batch_size"]),
            "epochs_run": r.epochs_run,
            "epochs_total": r.epochs_total,
            "fine_tune_start_epoch": self.history.get("fine_tune_start_epoch"),
            "history": {k: self.history.get(k, []) for k in ("accuracy", "val_accuracy", "loss", "val_loss", "epoch_seconds")},
            "val_accuracy": r.accuracy("validation"),
            "val_loss": r.loss("validation"),
            "test_accuracy": r.accuracy("test"),
            "test_loss": r.loss("test"),
            "wall_seconds": r.wall_seconds,
            "images_per_second": m.get("images_per_second"),
            "timings": m.get("timings"),
            "trainable_params": m.get("trainable_params"),
            "non_trainable_params": m.get("non_trainable_params"),
            "total_params": m.get("total_params"),
            "feature_cache": m.get("feature_cache"),
            "data_path": m.get("data_path"),
            "run_dir": self.run_dir,
        }


@dataclass
class Trained:
    """What an approach body hands back to `execute`."""

    stage: Stage  # the stage that was trained last (and is scored)
    outcome: FitOutcome
    note: str = ""  # what a finished run's message says when nothing else does (e.g. a phase skipped)


Body = Callable[[RunContext], Trained]
BaseLoader = Callable[[RunStore], tuple[object, str, History]]


def execute(cfg: RunConfig, data: PreparedData, body: Body, **options) -> RunResult:
    """Runs one approach end to end and stores it.

    An approach only says *what* is trained (`body(ctx)`, returning a `Trained`); `execute`
    owns everything around it, as named steps: validation, seeding, building the base (fails
    fast on missing weights), the run folder, per-epoch persistence, stop/NaN handling,
    scoring the returned model once on validation and test, and saving it.

    Everything is built under the Keras dtype policy that `compute.precision` resolves to on
    this machine (engine/models/precision.py), and the previous policy is put back afterwards, so
    runs in one process (tests, `--approach all`) never inherit each other's.

    Args:
        options: progress, should_stop, runs_dir, cache_dir, run_id, base_loader, resolved_extra — see `_execute`.
    """
    validate(cfg)  # before resolving: an unknown precision gets the config's message, not Keras'
    resolved = resolve_precision(cfg.compute.precision)
    with dtype_policy(resolved):
        return _execute(cfg, data, body, precision=resolved, **options)


def _execute(
    cfg: RunConfig,
    data: PreparedData,
    body: Body,
    *,
    precision: str,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
    runs_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    run_id: str | None = None,
    base_loader: BaseLoader | None = None,
    resolved_extra: dict | None = None,
) -> RunResult:
    """`execute` inside the dtype policy of `precision` (already resolved).

    `base_loader(store) -> (base, weights_id, history)` replaces building the base (fine-tuning
    from a finished frozen run); it runs before the run folder is created, so a bad
    `--from-run` leaves nothing behind. `resolved_extra` is stored in config.json's
    `resolved` section (a repeat group, the preset, the estimate made before the run).
    """
    began = time.time()  # status.json's start: building the base counts as the run's time
    validate(cfg)
    dist = distribute.resolve(cfg.compute.distribute)
    store = distribute.run_store(runs_dir, dist)  # only the chief writes the real run store
    image_size = backbones.image_size_for(cfg.backbone)
    base, weights_id, history = _build_base(cfg, dist, image_size, store, base_loader)
    plan = RunPlan.for_data(cfg, data, image_size, weights_id, precision)
    stored = _config_record(plan, data, dist, resolved_extra)
    run_dir = store.create(cfg.approach, stored, run_id)
    store.start_heartbeat(run_dir)  # pid + host + beat, so a killed run reads `interrupted`; ends with the final state
    epochs_before = len(history)  # phase-1 epochs of a continued frozen run, trained elsewhere
    planned = plan.epochs_total(epochs_before)  # recorded at the end too: `runs` shows 6/1000 for a stopped run
    # status.json: what the run is doing now, with counts and an ETA (engine/store/status.py); events still reach `progress`
    cache = FeatureCache(cache_dir)
    parts, _ = planned_parts(plan, data, cache, runs_dir, epochs_before, _shape_of(base))  # the whole-run ETA's parts
    run_clock = RunClock(parts, saves_per_phase=CHECKPOINTS_PER_PHASE)
    tracker = StatusTracker(
        lambda status: store.write_status(run_dir, status), progress, started=began, epochs_total=planned, run_clock=run_clock
    )
    tracker.start_ticking()  # the ETA moves on while a split decodes or a step traces (no events then)
    try:
        tensorboard_dir = _open_tensorboard(cfg, dist, store, run_dir, stored, planned, tracker)
        models = StageBuilder(cfg, base, image_size, len(data.classes), len(data.splits["train"]), dist)
        ctx = RunContext(
            plan, data, models, store, run_dir, cache, tracker, should_stop, history=history, tensorboard_dir=tensorboard_dir
        )
        if data.report.bad_files:
            tracker({"type": "status", "message": f"skipping {len(data.report.bad_files)} unreadable file(s)"})
        tracker({"type": "status", "message": budget_sentence(cfg, plan.sizes.get("train", 0))})
        t0 = time.perf_counter()
        trained, state, message = _train(ctx, body, tracker, planned, t0)
        metrics: dict = {"state": "running"}
        if trained is not None and len(ctx.history) > 0:
            state, message = _score_and_save(ctx, trained, state, message, metrics)
        metrics.update(
            state=state,
            message=message,
            wall_seconds=round(time.perf_counter() - t0, 3),
            epochs_run=len(ctx.history),
            epochs_total=planned,
            feature_cache=ctx.cache.stats(),
            timings=ctx.timings,
            data_path=ctx.data_path,
            images_per_second=_images_per_second(ctx, len(ctx.history) - epochs_before),
        )
        if ctx.finder:
            metrics["learning_rate_finder"] = ctx.finder  # the rate phase 1 trained at, and why (Compare shows it)
        if ctx.cache.warnings:
            metrics["warnings"] = list(ctx.cache.warnings)
        store.write_history(run_dir, ctx.history.to_dict())
        store.write_metrics(run_dir, metrics)
        tracker.finish(state, message)
    finally:
        tracker.stop_ticking()  # finish stopped it; not when a failure raised past it
    stored_at = str(run_dir) if dist.chief else ""  # a non-chief worker's folder is scratch, removed at exit
    return RunResult(run_dir.name, cfg.approach, stored_at, state, message, stored, ctx.history.to_dict(), metrics)


def _shape_of(base):
    """cut ("" = the output) -> one image's feature shape in `base`."""
    return lambda cut: tuple((base.get_layer(cut).output if cut else base.output).shape[1:])


def _build_base(cfg: RunConfig, dist, image_size: int, store: RunStore, base_loader: BaseLoader | None):
    """(base, weights identity, history before this run): built, or a finished frozen run's (base_loader)."""
    import keras

    keras.utils.set_random_seed(cfg.fit.seed)
    with dist.scope():  # the base's variables are mirrored too: fine-tuning trains its top block
        if base_loader is not None:
            return base_loader(store)
        base = backbones.build_base(cfg.backbone, image_size)  # fails here, before any work, if weights are missing
        return base, backbones.weights_identity(cfg.backbone, cfg.fit.seed), History()


def _config_record(plan: RunPlan, data: PreparedData, dist, extra: dict | None) -> dict:
    """config.json: the config as given and, under `resolved`, what it became on this dataset and machine."""
    cfg = plan.cfg
    stored = cfg.to_dict()
    stored["resolved"] = {
        "image_size": plan.image_size,
        "classes": data.classes,
        "num_classes": len(data.classes),
        "dataset_root": data.report.root,
        "layout": data.report.layout,
        "split_sizes": dict(plan.sizes),
        "skipped_bad_files": len(data.report.bad_files),
        "weights_id": plan.weights_id,
        "precision": plan.precision,  # what `auto` became here: float32 on CPUs
        "views": cfg.augmentation.views if plan.augmented else 1,
        "distribute": dist.kind,
        "replicas": dist.replicas,
        "global_batch": dist.global_batch(cfg.fit.batch_size),
        "seed": cfg.fit.seed,
        **(extra or {}),  # e.g. repeat_group (run --seeds), preset, estimate_s (engine/training/estimate.py)
    }
    return stored


def _open_tensorboard(cfg: RunConfig, dist, store: RunStore, run_dir: Path, stored: dict, planned: int, tracker) -> str:
    """DIR/<run id> with the run's hyper-parameters written, or "" without --tensorboard (or on a non-chief worker).

    A folder TensorBoard cannot write ends the run as failed, with one line, before any training."""
    if not (cfg.compute.tensorboard and dist.chief):  # like the run store: one writer per job
        return ""
    tensorboard_dir = str(run_log_dir(cfg.compute.tensorboard, run_dir.name))
    try:
        write_hyperparameters(tensorboard_dir, stored, run_dir.name)
    except Exception as exc:  # TensorFlow's own file errors (PermissionDenied, ...) are no OSError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        message = f"--tensorboard {cfg.compute.tensorboard}: cannot write the logs ({first}); choose a folder you can write to"
        store.write_metrics(run_dir, {"state": "failed", "message": message, "epochs_run": 0, "epochs_total": planned})
        tracker.finish("failed", message)  # the run never reads `running` (then `interrupted`)
        raise StudioError(message) from None
    return tensorboard_dir


def _train(ctx: RunContext, body: Body, tracker: StatusTracker, planned: int, t0: float) -> tuple[Trained | None, str, str]:
    """(what the body trained, state, message). An exception ends the run as failed, with its traceback in
    metrics.json, and is raised again: one line for what a user can fix, the traceback for a bug."""
    try:
        trained = body(ctx)
    except TrainingStopped:
        return None, "stopped", "stopped by request before the first epoch finished"
    except Exception as exc:
        user_error = user_error_inside(exc) or _cache_file_gone(exc, ctx.cache.root)
        message = str(user_error) if user_error else f"{type(exc).__name__}: {exc}"
        ctx.store.write_metrics(
            ctx.run_dir,
            {
                "state": "failed",
                "message": message,
                "traceback": traceback.format_exc(),
                "wall_seconds": round(time.perf_counter() - t0, 3),
                "epochs_run": len(ctx.history),
                "epochs_total": planned,
            },
        )
        tracker.finish("failed", message)
        if user_error:  # one line and exit 2 in the CLI; the traceback stays in metrics.json
            raise user_error from None
        raise
    outcome = trained.outcome
    state = "stopped" if outcome.stopped else "failed" if outcome.failed else "finished"
    message = outcome.failed or ("stopped by request; kept the epochs already done" if outcome.stopped else "")
    if outcome.early_stopped and state == "finished":
        message = f"early stopping restored the best epoch ({outcome.best_epoch} of its phase)"
    if trained.note and state == "finished":
        message = f"{message}; {trained.note}" if message else trained.note
    return trained, state, message


def _score_and_save(ctx: RunContext, trained: Trained, state: str, message: str, metrics: dict) -> tuple[str, str]:
    """Scores the trained stage into `metrics`, counts its parameters and saves model.keras; (state, message)
    after saving (a failed save fails the run, saying which epoch model.keras still holds)."""
    t = time.perf_counter()
    # A stop (SIGTERM, the dashboard's Stop) ends training, not the run: the epochs it kept are scored, and their
    # predictions.json stored, like a finished run's (Compare, the error analysis and ensembles read them). So
    # scoring does not check the stop request, though it may first have to run the base over the test split.
    should_stop, ctx.should_stop = ctx.should_stop, never_stop
    try:
        metrics.update(_score(ctx, trained.stage))
    finally:
        ctx.should_stop = should_stop
    ctx.timed("scoring", time.perf_counter() - t)
    full = ctx.models.full_model(trained.stage)
    metrics.update(modeling.count_params(full))
    t = time.perf_counter()
    if ctx.holds_final(full):  # the run ended on its last checkpoint (usually the best epoch is the last)
        ctx.progress({"type": "stage", "stage": "saving", "message": f"model.keras already holds epoch {ctx.checkpoint_epoch}"})
        ctx.timed("saving", time.perf_counter() - t)
        return state, message
    ctx.progress({"type": "stage", "stage": "saving", "message": "saving model.keras"})
    try:
        ctx.store.save_model(ctx.run_dir, full)
    except RunSaveError as exc:  # model.keras keeps the last checkpoint, if any
        if state != "failed":
            kept = f"model.keras holds epoch {ctx.checkpoint_epoch}" if ctx.checkpoint_epoch else "no model was saved"
            state, message = "failed", f"{exc}; free some disk space and train again ({kept})"
    ctx.timed("saving", time.perf_counter() - t)
    return state, message


def _score(ctx: RunContext, stage: Stage) -> dict:
    """Scores the returned model on validation and (once, at the end) on test."""
    out, scored = {}, {}
    splits = [s for s in ("validation", "test") if s in ctx.data.splits]
    arrays = {s: ctx.features(s, stage.split.cut) for s in splits}  # a test pass first: its own part of the run's clock
    said = "validation and test" if "test" in splits else "validation (no test split)"
    ctx.progress({"type": "stage", "stage": "scoring", "message": f"scoring the model on {said}"})
    for split_name in ("validation", "test"):
        if split_name not in arrays:
            out[split_name] = None
            continue
        feats = feature_dataset(arrays[split_name])
        if ctx.dist.workers > 1:  # Keras gathers every worker's share back in order
            feats = distribute.shard_by_data(feats)
        raw = stage.top.predict(feats, verbose=0)
        probs = evaluation.class_probabilities(raw, ctx.num_classes)
        sp = ctx.data.splits[split_name]
        out[split_name] = evaluation.score_predictions(probs, sp.labels, ctx.data.classes, sp.files)
        scored[split_name] = (sp.files, sp.labels, probs)
    # Every image's probabilities, for the error analysis (engine/insight/analysis.py): metrics keep only a sample of mistakes
    try:
        atomic_write_json(ctx.run_dir / PREDICTIONS_FILE, predictions_payload(scored, ctx.data.classes))
    except OSError as exc:  # an extra for analysis: the run and its metrics stand without it
        ctx.cache.warnings.append(f"could not write {PREDICTIONS_FILE} ({exc.strerror or exc})")
    return out


def _images_per_second(ctx: RunContext, epochs_trained: int) -> dict:
    """Throughput per stage this process ran: frozen passes per split, training epochs, scoring (Compare shows `fit`)."""
    t, sizes, out = ctx.timings, ctx.plan.sizes, {}
    for split, n in sizes.items():
        if t.get(f"features_{split}", 0) > 0:
            out[f"features_{split}"] = round(n / t[f"features_{split}"], 1)
    fit_s = sum(v for k, v in t.items() if k.startswith("fit_phase"))
    if fit_s > 0 and epochs_trained > 0:
        out["fit"] = round(sizes.get("train", 0) * epochs_trained / fit_s, 1)
    scored = sizes.get("validation", 0) + sizes.get("test", 0)
    if t.get("scoring", 0) > 0 and scored:
        out["scoring"] = round(scored / t["scoring"], 1)
    return out


def _cache_file_gone(exc: BaseException, cache_root: Path) -> StudioError | None:
    """A feature cache file TensorFlow itself was reading (a streamed split) deleted during the run."""
    if type(exc).__name__ == "NotFoundError" and str(cache_root) in str(exc):
        return StudioError(
            f"a feature cache file in {cache_root} is gone (was the cache folder deleted during the run?); "
            "train again to rebuild it"
        )
    return None
