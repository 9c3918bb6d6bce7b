"""What an approach body works with: the run's plan, models, cached features and views, and fitting.

The frozen part of the base runs once per image and view: plain features for feature
extraction and for validation/test, K augmented views of the training set for frozen
training and fine-tuning, each under the cache key the plan (plan.py) gives it. Epochs then
only run what is trainable (stages.py), on streams of those arrays (streams.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.augmentation import build_augmentation
from engine.models import modeling
from engine.store.runs import RunSaveError, RunStore, atomic_write_json
from engine.training import distribute
from engine.training.features import FeatureCache, extract_features
from engine.training.fit import FitOutcome, History, Progress, StopCheck, TrainingStopped, balanced_class_weight, fit_phase
from engine.training.plan import Pass, RunPlan
from engine.training.prepared import PreparedData
from engine.training.stages import Stage, StageBuilder
from engine.training.streams import feature_dataset, train_dataset


@dataclass
class RunContext:
    """Everything an approach body needs; built by lifecycle.execute."""

    plan: RunPlan
    data: PreparedData
    models: StageBuilder
    store: RunStore
    run_dir: Path
    cache: FeatureCache
    progress: Progress
    should_stop: StopCheck
    history: History = field(default_factory=History)
    tensorboard_dir: str = ""  # DIR/<run id> for TensorBoard logs; "" = none
    timings: dict = field(default_factory=dict)  # seconds per stage, stored in metrics.json
    data_path: dict = field(
        default_factory=dict
    )  # split -> {"path": "in_memory" | "streamed", "pixel_mb", "held_mb"}, in metrics.json
    best_val_loss: float = math.inf  # of the epochs this run trained; an epoch below it is checkpointed
    checkpoint_epoch: int = 0  # the epoch model.keras holds while training (0 = none yet)
    checkpoint_digest: tuple = ()  # (id of the saved model object, modeling.weights_digest) of that checkpoint
    save_error: str = ""  # why writing into the run folder failed during training ("" = it did not)
    finder: dict = field(default_factory=dict)  # the learning-rate finder's pick when fit.find_learning_rate (metrics.json)

    @property
    def cfg(self):
        return self.plan.cfg

    @property
    def dist(self) -> distribute.Distribution:
        return self.models.dist

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)

    def labels(self, split: str) -> np.ndarray:
        return self.data.splits[split].labels

    def timed(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)

    def streamed(self, split: str, cut: str, cuts: tuple[str, ...], views: int = 1) -> bool:
        """Whether a split is too large to hold in RAM (plan.data_path), decided on its first use in the run.

        Small splits take the fast path: decoded into RAM first, features and views held as
        arrays. A larger split is decoded from disk batch by batch and its features and views
        are written to the cache in chunks and read back memory-mapped, so memory stays
        bounded whatever its size. The choice is recorded per split for the run's metrics.
        """
        if split not in self.data_path:
            self.data_path[split] = self.plan.data_path(split, cut, cuts, self.models.feature_shape, views)
        return self.data_path[split]["path"] == "streamed"

    def _check_stop(self, event: dict) -> None:
        self.progress(event)
        if self.should_stop():
            raise TrainingStopped()

    # --- the frozen part, run once ----------------------------------------------------
    def _cached(self, p: Pass, cut: str, streamed: bool, compute) -> np.ndarray:
        """The array of pass `p` at `cut`, from the cache or made by `compute` (all of p's cuts in one go)."""
        n = self.plan.sizes[p.split]
        shapes = {c: (n, *self.models.feature_shape(c)) for c in p.cuts}
        meta = {"split": p.split, "view": p.view, "files_count": n}
        get = self.cache.get_or_write_many if streamed else self.cache.get_or_compute_many
        return get(p.keys, cut, compute, meta, shapes)[cut]

    def _extract(self, p: Pass, fn, streamed: bool, label: str, sinks: dict | None, first: dict | None = None) -> dict | None:
        batches = self.data.pixel_batches(p.split, self.plan.image_size, streamed)
        arrays = extract_features(
            fn,
            batches,
            self.plan.sizes[p.split],
            self._check_stop,
            label,
            first,
            sinks=[sinks[c] for c in p.cuts] if sinks else None,
        )
        return None if sinks else dict(zip(p.cuts, arrays))

    def features(self, split: str, cut: str) -> np.ndarray:
        """Plain (un-augmented) features of one data split at `cut`, from the disk cache if possible."""
        p = self.plan.plain(split, cut)
        streamed = self.streamed(split, cut, p.cuts)

        def compute(sinks: dict | None = None) -> dict | None:
            self.progress(
                {
                    "type": "status",
                    "message": f"caching {split} features ({self.plan.sizes[split]} images) for this and later runs",
                    "part": f"pass:{split}",
                }
            )  # the whole-run clock's part (engine/training/timeline.py names it alike)
            t0 = time.perf_counter()
            if not streamed:
                self.data.images(split, self.plan.image_size)
            self.timed(f"decode_{split}", time.perf_counter() - t0)  # streamed: decoding overlaps the base
            first: dict = {}
            out = self._extract(p, self.models.pixels_to_features(p.cuts), streamed, split, sinks, first)
            self.timed(f"features_{split}", time.perf_counter() - t0)  # decode + base
            self.timings[f"features_{split}_first_batch"] = {k: round(v, 3) for k, v in first.items()}
            return out

        return self._cached(p, cut, streamed, compute)

    def views(self, cut: str, extra_cut: str | None = None) -> list[np.ndarray]:
        """K augmented views of the training set through the frozen base, at `cut`.

        View v is the same every time (augmentation seeded by (seed, v), images in file
        order), so it is cached and reused by later runs. `extra_cut` is computed in the
        same pass and cached too (the frozen run stores what fine-tuning will start from).
        """
        passes = self.plan.views(cut, extra_cut)
        k = len(passes)
        streamed = self.streamed("train", cut, passes[0].cuts, views=k)
        out = []
        for v, p in enumerate(passes):

            def compute(sinks: dict | None = None, v=v, p=p) -> dict | None:
                self.progress(
                    {
                        "type": "status",
                        "message": f"caching augmented view {v + 1}/{k} of the training images",
                        "part": f"pass:train view {v + 1}/{k}",
                    }
                )
                t0 = time.perf_counter()
                aug = build_augmentation(self.cfg.augmentation, seed=self.cfg.fit.seed * 1000 + v)
                result = self._extract(p, self.models.pixels_to_features(p.cuts, aug), streamed, f"train view {v + 1}/{k}", sinks)
                self.timed("views", time.perf_counter() - t0)
                return result

            out.append(self._cached(p, cut, streamed, compute))
        return out

    def training_features(self, cut: str, extra_cut: str | None = None) -> list[np.ndarray]:
        """What a phase at `cut` trains on (plan.training_passes): the K views when augmenting, else the plain features."""
        return self.views(cut, extra_cut) if self.plan.augmented else [self.features("train", cut)]

    # --- fitting ------------------------------------------------------------------------
    def phase_one_rate(self, stage: Stage, views: list[np.ndarray]) -> float:
        """Phase 1's learning rate: `fit.learning_rate`, or with `fit.find_learning_rate` the finder's suggestion for
        `stage` on `views` (a ramp of about 100 steps on the cached arrays; the stage keeps its initial weights), kept
        in `finder` for metrics.json and lr_finder.json. A ramp too short to read (a stop) leaves the rate as set."""
        rate = self.cfg.fit.learning_rate
        if not self.cfg.fit.find_learning_rate:
            return rate
        from engine.training.lr_range import RULES, ramp_stage

        t0 = time.perf_counter()
        self.progress({"type": "status", "message": "learning-rate finder: starting its ramp", "part": "finder"})
        result = ramp_stage(self, stage, views)
        self.timed("lr_finder", time.perf_counter() - t0)
        if self.run_dir.name:  # the curve beside the run, for its page (a finder outside a run has no folder)
            atomic_write_json(self.run_dir / "lr_finder.json", result.to_dict())
        found = result.suggested
        self.finder = {
            "suggested": found,
            "rule": result.rule,
            "used": found or rate,
            "ended": result.ended,
            "steps": len(result.learning_rates),
            "seconds": result.seconds,
        }
        how = f"the finder's suggestion ({RULES[result.rule]})" if found else "as set: the finder's ramp was too short to read"
        self.progress({"type": "status", "message": f"learning rate {found or rate:.2g}: {how}; {result.ended}"})
        return found or rate

    def fit(self, stage: Stage, views: list[np.ndarray], *, epochs: int, phase: int, total_epochs: int) -> FitOutcome:
        """Trains `stage.top` with Keras fit on cached features, persisting history after every epoch."""
        val = feature_dataset(self.features("validation", stage.split.cut), self.labels("validation"))
        steps = math.ceil(len(self.labels("train")) / self.models.global_batch)
        first = len(self.history) + 1  # its first epoch, tracing the train step before its first batch, starts now
        self.progress(
            {
                "type": "stage",
                "stage": "training",
                "message": f"epoch {first}/{total_epochs}: preparing the training step",
                "part": f"epoch:{first}",
            }
        )
        t0 = time.perf_counter()
        train = train_dataset(
            views, self.labels("train"), batch=self.models.global_batch, seed=self.cfg.fit.seed, phase=phase, epochs=epochs
        )
        if self.dist.workers > 1:  # each worker takes its share of every global batch
            train, val = distribute.shard_by_data(train), distribute.shard_by_data(val)
        outcome = fit_phase(
            stage.top,
            train,
            val,
            steps_per_epoch=steps,
            epochs=epochs,
            history=self.history,
            phase=phase,
            total_epochs=total_epochs,
            patience=self.cfg.fit.early_stopping_patience,
            progress=self.progress,
            should_stop=self.should_stop,
            on_epoch_end=lambda h: self._persist(stage, h, phase, total_epochs),
            num_classes=self.num_classes,
            tensorboard_dir=self.tensorboard_dir or None,
            class_weight=self.class_weight(),
        )
        self.timed(f"fit_phase{phase}", time.perf_counter() - t0)
        if self.save_error and not outcome.failed:
            outcome.failed = self.save_error
        return outcome

    def class_weight(self) -> dict[int, float] | None:
        """Keras' class_weight for this run's fit.class_weight: None, or "balanced" from the training split's labels."""
        if self.cfg.fit.class_weight != "balanced":
            return None
        return balanced_class_weight(self.labels("train"), self.num_classes)

    def holds_final(self, full) -> bool:
        """Whether model.keras already holds exactly `full` as it is now (its last checkpoint, untouched since)."""
        return bool(self.checkpoint_digest) and self.checkpoint_digest == (id(full), modeling.weights_digest(full))

    def _persist(self, stage: Stage, history: History, phase: int, total_epochs: int) -> None:
        """After each epoch: the checkpoint if it improved, metrics, then history.json last (once it shows
        epoch k, the model and metrics of epoch k are on disk)."""
        try:
            if history.val_loss[-1] < self.best_val_loss:
                self.checkpoint(stage, len(history))
            self.store.write_metrics(
                self.run_dir,
                {
                    "state": "running",
                    "phase": phase,
                    "epoch": len(history),
                    "epochs_total": total_epochs,
                    "checkpoint_epoch": self.checkpoint_epoch,
                },
            )
            self.store.write_history(self.run_dir, history.to_dict())
        except RunSaveError as exc:  # e.g. a full disk: stop here, the run is saved as failed with the reason
            self.save_error = f"{exc} after epoch {len(history)}; free some disk space and train again"
            stage.top.stop_training = True

    def checkpoint(self, stage: Stage, epoch: int) -> None:
        """Saves the full model of `epoch`, the best so far (lowest validation loss), into model.keras.

        So a killed run keeps a usable model. Only improved epochs, not every one: measured
        with MobileNetV2 at 150 px (cats_vs_dogs_small, lecture epochs, busy 2-core CPU) a
        save took 0.9-1.3 s against 2.8-8.2 s per epoch; 2/30, 5/20 and 3/30 epochs improved
        (feature extraction / frozen / fine-tuning), an overhead of 2-8 % where saving every
        epoch would cost 16-33 %. The best epoch is also the one worth keeping. The final
        save replaces it, unless the run ends with these very weights (`holds_final`).
        """
        t = time.perf_counter()
        full = self.models.full_model(stage)
        self.store.save_model(self.run_dir, full)
        self.best_val_loss, self.checkpoint_epoch = self.history.val_loss[epoch - 1], epoch
        self.checkpoint_digest = (id(full), modeling.weights_digest(full))
        seconds = time.perf_counter() - t
        self.timed("checkpoints", seconds)
        self.progress({"type": "checkpoint", "epoch": epoch, "seconds": round(seconds, 3)})  # the run clock's save piece
