"""What the three approaches share: prepared data, the run lifecycle, features, batches.

An approach module only says *what* is trained (its `_train(ctx)` body); `execute` owns
everything around it — validation, seeding, building the base (fails fast on missing
weights), the run folder, per-epoch persistence, stop/NaN handling, scoring the returned
model once on validation and test, and saving it.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import backbones, datasets, evaluation, modeling
from ..augmentation import build_augmentation
from ..config import RunConfig, validate
from ..datasets import DatasetReport, Split
from ..features import FeatureCache, extract_features, feature_key
from ..runs import RunStore
from ..training import FitOutcome, History, Progress, StopCheck, TrainingStopped, fit_top, never_stop, no_progress


@dataclass
class PreparedData:
    """A scanned dataset with its splits and decoded images (memoised per image size)."""

    report: DatasetReport
    splits: dict[str, Split]
    _images: dict = field(default_factory=dict, repr=False)
    _fingerprints: dict = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        return self.report.classes

    def fingerprint(self, split: str) -> str:
        if split not in self._fingerprints:
            self._fingerprints[split] = datasets.fingerprint_files(self.splits[split].files)
        return self._fingerprints[split]

    def images(self, split: str, image_size: int) -> np.ndarray:
        key = (split, image_size)
        if key not in self._images:
            self._images[key] = datasets.load_images(self.splits[split].files, image_size)
        return self._images[key]


def prepare_data(path: str, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 42) -> PreparedData:
    """Scans a dataset folder and checks it can be trained on (raises DatasetError if not)."""
    report = datasets.scan_dataset(path, fractions=fractions, seed=seed)
    datasets.require_trainable(report)
    splits = {s: sp for s in datasets.SPLITS if (sp := datasets.split_arrays(report, s)) is not None}
    return PreparedData(report, splits)


@dataclass
class RunResult:
    """What a finished (or stopped/failed) run returns; `to_report()` is the CLI's JSON object."""

    id: str
    approach: str
    run_dir: str
    state: str
    message: str
    config: dict
    history: dict
    metrics: dict

    def to_report(self) -> dict:
        m = self.metrics
        return {
            "id": self.id,
            "approach": self.approach,
            "state": self.state,
            "message": self.message,
            "backbone": self.config["backbone"]["name"],
            "weights": self.config["backbone"]["weights"],
            "image_size": self.config["resolved"]["image_size"],
            "classes": self.config["resolved"]["classes"],
            "epochs_run": len(self.history.get("loss", [])),
            "fine_tune_start_epoch": self.history.get("fine_tune_start_epoch"),
            "history": {k: self.history.get(k, []) for k in ("accuracy", "val_accuracy", "loss", "val_loss", "epoch_seconds")},
            "val_accuracy": (m.get("validation") or {}).get("accuracy"),
            "val_loss": (m.get("validation") or {}).get("loss"),
            "test_accuracy": (m.get("test") or {}).get("accuracy"),
            "test_loss": (m.get("test") or {}).get("loss"),
            "wall_seconds": m.get("wall_seconds"),
            "trainable_params": m.get("trainable_params"),
            "non_trainable_params": m.get("non_trainable_params"),
            "total_params": m.get("total_params"),
            "feature_cache": m.get("feature_cache"),
            "run_dir": self.run_dir,
        }


@dataclass
class Trained:
    """What an approach body hands back to `execute`."""

    full_model: object | None  # the saved pipeline model; None if no epoch finished
    top: object  # the trainable top that was scored (features at `split.cut` -> probabilities)
    split: modeling.SplitBase
    outcome: FitOutcome


@dataclass
class RunContext:
    """Everything an approach body needs; built by `execute`."""

    cfg: RunConfig
    data: PreparedData
    base: object
    image_size: int
    store: RunStore
    run_dir: Path
    cache: FeatureCache
    progress: Progress
    should_stop: StopCheck
    history: History = field(default_factory=History)
    weights_id: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)

    def labels(self, split: str) -> np.ndarray:
        return self.data.splits[split].labels

    def pixels_to_features(self, split: modeling.SplitBase, augmentation=None):
        """A compiled function uint8/float pixels -> [augmentation] -> preprocess -> frozen prefix."""
        import tensorflow as tf

        pre = modeling.BackbonePreprocess(self.cfg.backbone.name, self.cfg.backbone.preprocessing)
        prefix = split.prefix

        @tf.function(reduce_retracing=True)
        def fn(x):
            x = tf.cast(x, tf.float32)
            if augmentation is not None:
                x = augmentation(x, training=True)
            return prefix(pre(x), training=False)  # BatchNorm in inference mode

        return fn

    def features(self, split_name: str, split: modeling.SplitBase) -> np.ndarray:
        """Plain (un-augmented) features of one data split at the cut, from the disk cache if possible."""
        b = self.cfg.backbone
        parts = dict(
            files=self.data.fingerprint(split_name), backbone=b.name, alpha=b.alpha, weights=self.weights_id,
            image_size=self.image_size, preprocessing=b.preprocessing, cut=split.cut or "output", view="plain",
        )
        key = feature_key(**parts)

        def compute() -> np.ndarray:
            self.progress({"type": "status", "message": f"computing {split_name} features at {split.cut or 'the base output'} (cached for later runs)"})
            fn = self.pixels_to_features(split)
            images = self.data.images(split_name, self.image_size)

            def report(event: dict) -> None:
                self.progress(event)
                if self.should_stop():
                    raise TrainingStopped()

            return extract_features(fn, images, batch_size=32, progress=report, label=split_name)

        return self.cache.get_or_compute(key, compute, meta={**parts, "split": split_name, "files_count": len(self.data.splits[split_name])})

    def cached_batches(self, feats: np.ndarray, labels: np.ndarray) -> Callable[[int], object]:
        """Per-epoch seeded shuffles of precomputed features."""
        bs, seed = self.cfg.fit.batch_size, self.cfg.fit.seed

        def batches(epoch: int):
            order = np.random.default_rng([seed, epoch]).permutation(len(feats))
            for s in range(0, len(order), bs):
                idx = order[s : s + bs]
                yield feats[idx], labels[idx]

        return batches

    def augmented_batches(self, fn) -> Callable[[int], object]:
        """Per-epoch seeded shuffles of training images, passed through `fn` (augment + frozen prefix)."""
        images, labels = self.data.images("train", self.image_size), self.labels("train")
        bs, seed = self.cfg.fit.batch_size, self.cfg.fit.seed

        def batches(epoch: int):
            order = np.random.default_rng([seed, epoch]).permutation(len(images))
            for s in range(0, len(order), bs):
                idx = np.sort(order[s : s + bs])
                yield fn(images[idx]).numpy(), labels[idx]

        return batches

    def fit(self, top, batches, split: modeling.SplitBase, *, epochs: int, phase: int, total_epochs: int) -> FitOutcome:
        """Runs the shared training loop, persisting history after every epoch."""
        val = (self.features("validation", split), self.labels("validation"))

        def persist(history: History) -> None:
            self.store.write_history(self.run_dir, history.to_dict())
            self.store.write_metrics(self.run_dir, {
                "state": "running", "phase": phase, "epoch": len(history), "epochs_total": total_epochs,
            })

        return fit_top(
            top, batches, val, epochs=epochs, batch_size=self.cfg.fit.batch_size, history=self.history, phase=phase,
            total_epochs=total_epochs, patience=self.cfg.fit.early_stopping_patience, progress=self.progress,
            should_stop=self.should_stop, on_epoch_end=persist,
        )

    def new_head(self):
        """A fresh head on top of the base's output feature map."""
        return modeling.build_head(tuple(self.base.output.shape[1:]), self.num_classes, self.cfg.head)

    def compile(self, top, learning_rate: float) -> None:
        modeling.compile_model(top, self.num_classes, self.cfg.fit.optimizer, learning_rate)

    def full_model(self, head, augmentation=None):
        """The saved pipeline model around the current base and `head`."""
        b = self.cfg.backbone
        return modeling.assemble_full_model(self.base, head, b.name, b.preprocessing, self.image_size, augmentation)

    def augmentation(self):
        return build_augmentation(self.cfg.augmentation, seed=self.cfg.fit.seed)


def train_frozen_phase(ctx: RunContext, epochs: int, total_epochs: int) -> tuple[modeling.SplitBase, object, object, object, FitOutcome]:
    """Approach 2 and phase 1 of approach 3: whole base frozen, augmented images, head trained.

    Returns (split, head, top, augmentation, outcome).
    """
    ctx.base.trainable = False
    split = modeling.split_base(ctx.base, "")
    head = ctx.new_head()
    top = modeling.build_top(split, head)
    ctx.compile(top, ctx.cfg.fit.learning_rate)
    aug = ctx.augmentation()
    outcome = ctx.fit(top, ctx.augmented_batches(ctx.pixels_to_features(split, aug)), split, epochs=epochs, phase=1, total_epochs=total_epochs)
    return split, head, top, aug, outcome


def _score(ctx: RunContext, trained: Trained) -> dict:
    """Scores the returned model on validation and (once, at the end) on test."""
    out = {}
    for split_name in ("validation", "test"):
        if split_name not in ctx.data.splits:
            out[split_name] = None
            continue
        feats = ctx.features(split_name, trained.split)
        raw = trained.top.predict(feats, batch_size=64, verbose=0)
        probs = evaluation.class_probabilities(raw, ctx.num_classes)
        sp = ctx.data.splits[split_name]
        out[split_name] = evaluation.score_predictions(probs, sp.labels, ctx.data.classes, sp.files)
    return out


def execute(
    cfg: RunConfig,
    data: PreparedData,
    body: Callable[[RunContext], Trained],
    *,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
    runs_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Runs one approach end to end and stores it. See the module docstring."""
    import keras

    validate(cfg)
    keras.utils.set_random_seed(cfg.fit.seed)
    image_size = backbones.image_size_for(cfg.backbone)
    base = backbones.build_base(cfg.backbone, image_size)  # fails here, before any work, if weights are missing
    weights_id = backbones.weights_identity(cfg.backbone, cfg.fit.seed)
    store = RunStore(runs_dir)
    stored = cfg.to_dict()
    stored["resolved"] = {
        "image_size": image_size,
        "classes": data.classes,
        "num_classes": len(data.classes),
        "dataset_root": data.report.root,
        "layout": data.report.layout,
        "split_sizes": {s: len(sp) for s, sp in data.splits.items()},
        "skipped_bad_files": len(data.report.bad_files),
    }
    run_dir = store.create(cfg.approach, stored, run_id)
    ctx = RunContext(cfg, data, base, image_size, store, run_dir, FeatureCache(cache_dir), progress, should_stop, weights_id=weights_id)
    if data.report.bad_files:
        progress({"type": "status", "message": f"skipping {len(data.report.bad_files)} unreadable file(s)"})
    t0 = time.perf_counter()
    metrics: dict = {"state": "running"}
    trained: Trained | None = None
    try:
        trained = body(ctx)
        outcome = trained.outcome
        state = "stopped" if outcome.stopped else "failed" if outcome.failed else "finished"
        message = outcome.failed or ("stopped by request; kept the epochs already done" if outcome.stopped else "")
        if outcome.early_stopped and state == "finished":
            message = f"early stopping restored the best epoch ({outcome.best_epoch} of its phase)"
    except TrainingStopped:
        state, message = "stopped", "stopped by request before the first epoch finished"
    except Exception as exc:
        metrics.update(state="failed", message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(), wall_seconds=round(time.perf_counter() - t0, 3))
        store.write_metrics(run_dir, metrics)
        raise
    if trained is not None and trained.full_model is not None and len(ctx.history) > 0:
        try:
            metrics.update(_score(ctx, trained))
        except TrainingStopped:
            pass
        metrics.update(modeling.count_params(trained.full_model))
        store.save_model(run_dir, trained.full_model)
    metrics.update(
        state=state, message=message, wall_seconds=round(time.perf_counter() - t0, 3), epochs_run=len(ctx.history),
        feature_cache={"hits": ctx.cache.hits, "misses": ctx.cache.misses},
    )
    store.write_history(run_dir, ctx.history.to_dict())
    store.write_metrics(run_dir, metrics)
    return RunResult(run_dir.name, cfg.approach, str(run_dir), state, message, stored, ctx.history.to_dict(), metrics)
