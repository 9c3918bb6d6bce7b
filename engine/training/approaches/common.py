"""What the three approaches share: prepared data, the run lifecycle, cached features, fitting.

An approach module only says *what* is trained (its `_train(ctx)` body, returning a
`Trained`); `execute` owns everything around it — validation, seeding, building the base
(fails fast on missing weights), the run folder, per-epoch persistence, stop/NaN
handling, scoring the returned model once on validation and test, and saving it.

Every stage trains a *top* model on features at a cut of the base, and the frozen part
below the cut runs once per image and view (features.py): plain features for feature
extraction and for validation/test, K augmented views of the training set for frozen
training and fine-tuning. Epochs then only run what is trainable.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.models import backbones, modeling
from engine.data import datasets
from engine.training import distribute
from engine.insight import evaluation
from engine.insight.analysis import PREDICTIONS_FILE, predictions_payload
from engine.data.augmentation import build_augmentation
from engine.config import RunConfig, validate
from engine.data.datasets import DatasetReport, Split
from engine.errors import StudioError, user_error_inside
from engine.training.features import FeatureCache, extract_features, feature_key, read_rows, row_dataset
from engine.models.precision import dtype_policy, resolve_precision
from engine.store.runs import RunSaveError, RunStore, atomic_write_json
from engine.store.status import StatusTracker
from engine.training.tensorboard_logs import run_log_dir, write_hyperparameters
from engine.training.fit import FitOutcome, History, Progress, StopCheck, TrainingStopped, fit_phase, never_stop, no_progress

EXTRACT_BATCH = 32  # images per forward pass when caching features (throughput, not a hyper-parameter)
VAL_BATCH = 100  # features per step when validating the top (throughput only)
STEPS_PER_EXECUTION = 10  # train steps per call into TensorFlow: fewer host round trips


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
        """Decoded uint8 images of a split, kept for the run (augmented views need them K times)."""
        key = (split, image_size)
        if key not in self._images:
            self._images[key] = datasets.load_images(self.splits[split].files, image_size)
        return self._images[key]

    def pixel_bytes(self, split: str, image_size: int) -> int:
        """Bytes of the split's decoded pixels (uint8 N x S x S x 3): what holding it in RAM costs."""
        return len(self.splits[split]) * image_size * image_size * 3

    def pixel_batches(self, split: str, image_size: int, streamed: bool = False):
        """uint8 image batches of a split, in file order.

        In memory (the default), the split is decoded (all cores) before the base runs:
        decoding *while* the base runs was measured slower on a 2-core CPU, tf.data's decode
        threads pre-empting the convolution threads (VGG16 features at 0.63 of the raw
        forward rate, against 0.9+ when decoding first). `streamed` splits are too large
        for that: they are decoded from disk batch by batch, in parallel and prefetched.
        """
        if streamed and (split, image_size) not in self._images:
            return datasets.image_dataset(self.splits[split].files, image_size, EXTRACT_BATCH)
        arr = self.images(split, image_size)
        return (arr[s : s + EXTRACT_BATCH] for s in range(0, len(arr), EXTRACT_BATCH))


def prepare_data(path: str, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 42,
                 checks_dir: str | os.PathLike | None = None) -> PreparedData:
    """Scans a dataset folder and checks it can be trained on (raises DatasetError if not).

    `checks_dir`: where the decoder's verdict on each file is remembered (datasets.scan_dataset).
    """
    report = datasets.scan_dataset(path, fractions=fractions, seed=seed, checks_dir=checks_dir)
    datasets.require_trainable(report)
    splits = {s: sp for s in datasets.SPLITS if (sp := datasets.split_arrays(report, s)) is not None}
    return PreparedData(report, splits)


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
            "views": self.config["resolved"].get("views"),
            "precision": self.config["resolved"].get("precision"),
            "distribute": self.config["resolved"].get("distribute", "none"),
            "replicas": self.config["resolved"].get("replicas", 1),
            "global_batch": self.config["resolved"].get("global_batch", self.config["fit"]["batch_size"]),
            "epochs_run": len(self.history.get("loss", [])),
            "fine_tune_start_epoch": self.history.get("fine_tune_start_epoch"),
            "history": {k: self.history.get(k, []) for k in ("accuracy", "val_accuracy", "loss", "val_loss", "epoch_seconds")},
            "val_accuracy": (m.get("validation") or {}).get("accuracy"),
            "val_loss": (m.get("validation") or {}).get("loss"),
            "test_accuracy": (m.get("test") or {}).get("accuracy"),
            "test_loss": (m.get("test") or {}).get("loss"),
            "wall_seconds": m.get("wall_seconds"),
            "timings": m.get("timings"),
            "trainable_params": m.get("trainable_params"),
            "non_trainable_params": m.get("non_trainable_params"),
            "total_params": m.get("total_params"),
            "feature_cache": m.get("feature_cache"),
            "data_path": m.get("data_path"),
            "run_dir": self.run_dir,
        }


@dataclass
class Stage:
    """One trainable stage, owned in one place: the base cut at `split.cut`, its head and the top model.

    `top` = features at the cut -> [unfrozen top block of the base] -> head; it shares
    layers (and weights) with `split` and `head`, so training it trains the saved model.
    """

    split: modeling.SplitBase
    head: object
    top: object
    augmentation: object | None = None  # kept in the saved model (a no-op at inference)


@dataclass
class Trained:
    """What an approach body hands back to `execute`."""

    stage: Stage  # the stage that was trained last (and is scored)
    outcome: FitOutcome
    note: str = ""  # what a finished run's message says when nothing else does (e.g. a phase skipped)


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
    dist: distribute.Distribution = field(default_factory=lambda: distribute.resolve("none"))
    weights_id: str = ""
    precision: str = "float32"  # the resolved dtype policy the models were built under
    tensorboard_dir: str = ""  # DIR/<run id> for TensorBoard logs; "" = none
    timings: dict = field(default_factory=dict)  # seconds per stage, stored in metrics.json
    data_path: dict = field(default_factory=dict)  # split -> {"path": "in_memory" | "streamed", "pixel_mb", "held_mb"}, in metrics.json
    _fns: dict = field(default_factory=dict, repr=False)  # traced frozen-base functions, by cuts
    _full: dict = field(default_factory=dict, repr=False)  # id(stage) -> (stage, its saved model), built once
    best_val_loss: float = math.inf  # of the epochs this run trained; an epoch below it is checkpointed
    checkpoint_epoch: int = 0  # the epoch model.keras holds while training (0 = none yet)
    save_error: str = ""  # why writing into the run folder failed during training ("" = it did not)

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)

    def labels(self, split: str) -> np.ndarray:
        return self.data.splits[split].labels

    @property
    def global_batch(self) -> int:
        """Images per training step over all replicas: fit.batch_size is per replica."""
        return self.dist.global_batch(self.cfg.fit.batch_size)

    def _timed(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)

    def streamed(self, split_name: str, cut: str, cuts: tuple[str, ...], views: int = 1) -> bool:
        """Whether a split is too large to hold in RAM (over compute.in_memory_mb); decided on its first use in the run.

        Small splits take the fast path: decoded into RAM first, features and views held as
        arrays. Holding a split costs its decoded pixels, its `views` feature arrays at `cut`
        twice (the cache's array and the training stream's tensor copy) and, while a view
        is made, the by-product cuts once; that sum (float16) is compared, as pixels alone
        under-count it (MobileNetV2 at 224 px: one view's features are 0.83x the pixels, and
        K = 3 views held twice are 5x). A larger split is decoded from disk batch by batch
        and its features and views are written to the cache in chunks and read back
        memory-mapped, so memory stays bounded whatever its size. The choice is recorded per
        split for the run's metrics.
        """
        if split_name not in self.data_path:
            n = len(self.data.splits[split_name])
            pixels = self.data.pixel_bytes(split_name, self.image_size)
            per_image = {c: 2 * math.prod(self._feature_shape(c)) for c in cuts}  # float16 bytes
            held = pixels + n * (2 * views * per_image[cut] + sum(b for c, b in per_image.items() if c != cut))
            self.data_path[split_name] = {"path": "streamed" if held > self.cfg.compute.in_memory_mb * 2**20 else "in_memory",
                                          "pixel_mb": round(pixels / 2**20, 1), "held_mb": round(held / 2**20, 1)}
        return self.data_path[split_name]["path"] == "streamed"

    def _check_stop(self, event: dict) -> None:
        self.progress(event)
        if self.should_stop():
            raise TrainingStopped()

    # --- the frozen part, run once ----------------------------------------------------
    def pixels_to_features(self, cuts: tuple[str, ...], augmentation=None):
        """A compiled function uint8 pixels -> [augmentation] -> preprocess -> frozen base, out at each cut.

        A cut of "" means the base's output. One pass yields every requested cut, so the
        views cached for frozen training also hold the activations fine-tuning starts from.
        """
        import keras
        import tensorflow as tf

        memo_key = (cuts, id(augmentation))
        if augmentation is None and memo_key in self._fns:
            return self._fns[memo_key]  # one trace serves every split
        pre = modeling.BackbonePreprocess(self.cfg.backbone.name, self.cfg.backbone.preprocessing)
        outputs = [self.base.output if not c else self.base.get_layer(c).output for c in cuts]
        prefix = keras.Model(self.base.input, outputs, name="frozen_prefix")
        pixels = tf.TensorSpec((None, self.image_size, self.image_size, 3), tf.uint8)

        @tf.function(input_signature=[pixels])  # any batch size, one trace (the last batch is smaller)
        def fn(x):
            x = tf.cast(x, tf.float32)
            if augmentation is not None:
                x = augmentation(x, training=True)
            out = prefix(pre(x), training=False)  # BatchNorm in inference mode
            return tuple(out) if isinstance(out, (list, tuple)) else (out,)

        if augmentation is None:
            self._fns[memo_key] = fn
        return fn

    def _key_parts(self, split_name: str, cut: str, view: str) -> dict:
        b = self.cfg.backbone
        return dict(files=self.data.fingerprint(split_name), backbone=b.name, alpha=b.alpha, weights=self.weights_id,
                    image_size=self.image_size, preprocessing=b.preprocessing, cut=cut or "output", view=view,
                    # a base computing in 16 bits gives (slightly) other features; float32 keys stay as they were
                    **({"precision": self.precision} if self.precision != "float32" else {}))

    def _feature_shape(self, cut: str) -> tuple:
        t = self.base.output if not cut else self.base.get_layer(cut).output
        return tuple(t.shape[1:])

    def features(self, split_name: str, cut: str) -> np.ndarray:
        """Plain (un-augmented) features of one data split at `cut`, from the disk cache if possible.

        Validation and test features at the fine-tuning cut are made in the same pass and
        cached, so a later fine-tuning run finds them.
        """
        n = len(self.data.splits[split_name])
        extra = self.fine_tune_cut() if split_name != "train" else cut
        cuts = (cut,) if extra == cut else (cut, extra)
        keys = {c: feature_key(**self._key_parts(split_name, c, "plain")) for c in cuts}
        shapes = {c: (n, *self._feature_shape(c)) for c in cuts}
        streamed = self.streamed(split_name, cut, cuts)

        def compute(sinks: dict | None = None) -> dict | None:
            self.progress({"type": "status", "message": f"caching {split_name} features ({n} images) for this and later runs"})
            t0 = time.perf_counter()
            if not streamed:
                self.data.images(split_name, self.image_size)
            self._timed(f"decode_{split_name}", time.perf_counter() - t0)  # streamed: decoding overlaps the base
            fn = self.pixels_to_features(cuts)
            first: dict = {}
            arrays = extract_features(fn, self.data.pixel_batches(split_name, self.image_size, streamed), n, self._check_stop,
                                      split_name, first, sinks=[sinks[c] for c in cuts] if sinks else None)
            self._timed(f"features_{split_name}", time.perf_counter() - t0)  # decode + base
            self.timings[f"features_{split_name}_first_batch"] = {k: round(v, 3) for k, v in first.items()}
            return None if sinks else dict(zip(cuts, arrays))

        meta = {"split": split_name, "view": "plain", "files_count": n}
        if streamed:
            return self.cache.get_or_write_many(keys, cut, compute, meta, shapes)[cut]
        return self.cache.get_or_compute_many(keys, cut, compute, meta, shapes)[cut]

    def views(self, cut: str, extra_cut: str | None = None) -> list[np.ndarray]:
        """K augmented views of the training set through the frozen base, at `cut`.

        View v is the same every time (augmentation seeded by (seed, v), images in file
        order), so it is cached and reused by later runs. `extra_cut` is computed in the
        same pass and cached too (the frozen run stores what fine-tuning will start from).
        """
        a = self.cfg.augmentation
        k = a.views
        n = len(self.data.splits["train"])
        aug_id = {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name not in ("views",)}
        cuts = (cut,) if extra_cut is None or extra_cut == cut else (cut, extra_cut)
        streamed = self.streamed("train", cut, cuts, views=k)
        get = self.cache.get_or_write_many if streamed else self.cache.get_or_compute_many
        out = []
        for v in range(k):
            view = f"aug{v}:{self.cfg.fit.seed}:{feature_key(**aug_id)}"
            keys = {c: feature_key(**self._key_parts("train", c, view)) for c in cuts}
            shapes = {c: (n, *self._feature_shape(c)) for c in cuts}

            def compute(sinks: dict | None = None, v=v) -> dict | None:
                self.progress({"type": "status", "message": f"caching augmented view {v + 1}/{k} of the training images"})
                t0 = time.perf_counter()
                aug = build_augmentation(a, seed=self.cfg.fit.seed * 1000 + v)
                fn = self.pixels_to_features(cuts, aug)
                arrays = extract_features(fn, self.data.pixel_batches("train", self.image_size, streamed), n, self._check_stop,
                                          f"train view {v + 1}/{k}", sinks=[sinks[c] for c in cuts] if sinks else None)
                self._timed("views", time.perf_counter() - t0)
                return None if sinks else dict(zip(cuts, arrays))

            meta = {"split": "train", "view": view, "files_count": n}
            out.append(get(keys, cut, compute, meta, shapes)[cut])
        return out

    # --- fitting ------------------------------------------------------------------------
    def train_dataset(self, views: list[np.ndarray], labels: np.ndarray, phase: int, epochs: int):
        """The phase's tf.data stream, `epochs` epochs long: epoch i is view i mod K, in a seeded shuffle.

        In memory, all in the graph, no Python per batch: the views become tensors once (one
        copy) and each batch is a gather. A Python step in the stream (`from_generator`, or a
        `numpy_function` gathering from the NumPy arrays) was measured to stall 10-30 s when
        fit ends: the iterator's teardown holds the GIL while waiting for the tf.data thread
        that needs it. The stream also ends with the last epoch, so nothing is in flight then.

        Memory-mapped views (a streamed training split) cannot become tensors: each batch's
        rows are read from the cache file by a `numpy_function` (`read_rows`: file reads, rows in
        the same shuffled order as in memory, so both paths train on the same batches).
        TensorFlow has no in-graph random-access read (FixedLengthRecordDataset skips to an
        offset by reading up to it). With autotuning off and a stream that ends with the
        last epoch, fit was measured to end without a stall (README, "Datasets larger than memory").
        """
        import tensorflow as tf

        bs, seed, n, k = self.global_batch, self.cfg.fit.seed, len(labels), len(views)
        y = tf.constant(labels)
        if any(isinstance(v, np.memmap) for v in views):
            shape = tuple(views[0].shape[1:])
            dtype = np.result_type(*(v.dtype for v in views))  # one view may have stayed float32

            def rows(view, idx):
                return read_rows(views[int(view)], idx).astype(dtype, copy=False)

            def gather(view, idx):
                x = tf.numpy_function(rows, [view, idx], tf.as_dtype(dtype), stateful=False)
                return tf.ensure_shape(x, (None, *shape))
        else:
            xs = [tf.constant(v) for v in views]  # kept in the cache's dtype (float16 when exact enough)

            def gather(view, idx):
                return tf.switch_case(tf.cast(view, tf.int32), [lambda t=t: tf.gather(t, idx) for t in xs])

        def batch(view, idx):
            return tf.cast(gather(view, idx), tf.float32), tf.gather(y, idx)

        def epoch(e):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), phase * 1_000_003 + e]))
            return tf.data.Dataset.from_tensor_slices(order).batch(bs).map(lambda idx: batch(e % k, idx))

        return _without_autotune(tf.data.Dataset.range(epochs).flat_map(epoch).prefetch(2))

    def feature_dataset(self, x: np.ndarray, y: np.ndarray | None = None):
        """Batches of features as float32 (with their labels when `y` is given), in order: validation, scoring.

        Memory-mapped features (a streamed split) are read from their cache file in the graph;
        arrays in memory are sliced as they are (cast per batch, never copied whole to float32).
        """
        import tensorflow as tf

        xs = row_dataset(x) if isinstance(x, np.memmap) else tf.data.Dataset.from_tensor_slices(x)
        if y is None:
            return _without_autotune(xs.batch(VAL_BATCH).map(lambda a: tf.cast(a, tf.float32)))
        ds = tf.data.Dataset.zip((xs, tf.data.Dataset.from_tensor_slices(y))).batch(VAL_BATCH)
        return _without_autotune(ds.map(lambda a, b: (tf.cast(a, tf.float32), b)))

    def fit(self, stage: Stage, views: list[np.ndarray], *, epochs: int, phase: int, total_epochs: int) -> FitOutcome:
        """Trains `stage.top` with Keras fit on cached features, persisting history after every epoch."""
        val = self.feature_dataset(self.features("validation", stage.split.cut), self.labels("validation"))
        steps = math.ceil(len(self.labels("train")) / self.global_batch)

        def persist(history: History) -> None:
            try:  # history.json last: once it shows epoch k, the model and metrics of epoch k are on disk
                if history.val_loss[-1] < self.best_val_loss:
                    self.checkpoint(stage, len(history))
                self.store.write_metrics(self.run_dir, {
                    "state": "running", "phase": phase, "epoch": len(history), "epochs_total": total_epochs,
                    "checkpoint_epoch": self.checkpoint_epoch,
                })
                self.store.write_history(self.run_dir, history.to_dict())
            except RunSaveError as exc:  # e.g. a full disk: stop here, the run is saved as failed with the reason
                self.save_error = f"{exc} after epoch {len(history)}; free some disk space and train again"
                stage.top.stop_training = True

        t0 = time.perf_counter()
        train = self.train_dataset(views, self.labels("train"), phase, epochs)
        if self.dist.workers > 1:  # each worker takes its share of every global batch
            train, val = distribute.shard_by_data(train), distribute.shard_by_data(val)
        outcome = fit_phase(
            stage.top, train, val, steps_per_epoch=steps, epochs=epochs,
            history=self.history, phase=phase, total_epochs=total_epochs, patience=self.cfg.fit.early_stopping_patience,
            progress=self.progress, should_stop=self.should_stop, on_epoch_end=persist, num_classes=self.num_classes,
            tensorboard_dir=self.tensorboard_dir or None,
        )
        self._timed(f"fit_phase{phase}", time.perf_counter() - t0)
        if self.save_error and not outcome.failed:
            outcome.failed = self.save_error
        return outcome

    def checkpoint(self, stage: Stage, epoch: int) -> None:
        """Saves the full model of `epoch`, the best so far (lowest validation loss), into model.keras.

        So a killed run keeps a usable model. Only improved epochs, not every one: measured
        with MobileNetV2 at 150 px (cats_vs_dogs_small, lecture epochs, busy 2-core CPU) a
        save took 0.9-1.3 s against 2.8-8.2 s per epoch; 2/30, 5/20 and 3/30 epochs improved
        (feature extraction / frozen / fine-tuning), an overhead of 2-8 % where saving every
        epoch would cost 16-33 %. The best epoch is also the one worth keeping. The final
        save replaces it.
        """
        t = time.perf_counter()
        self.store.save_model(self.run_dir, self.full_model(stage))
        self.best_val_loss, self.checkpoint_epoch = self.history.val_loss[epoch - 1], epoch
        self._timed("checkpoints", time.perf_counter() - t)

    # --- model pieces -------------------------------------------------------------------
    # Built in the strategy's scope: the models (Keras captures the strategy when a model is
    # made), their variables, the optimizer and the metrics are mirrored on every replica.
    # The frozen-feature passes stay outside it: they train nothing and run once per image.
    def new_stage(self, cut: str, head=None, augmentation=None) -> Stage:
        """A stage at `cut` (""= whole base frozen) around `head` (a fresh one if None)."""
        with self.dist.scope():
            split = modeling.split_base(self.base, cut)
            if head is None:
                head = modeling.build_head(tuple(self.base.output.shape[1:]), self.num_classes, self.cfg.head)
            return Stage(split, head, modeling.build_top(split, head), augmentation)

    def compile(self, top, learning_rate: float) -> None:
        with self.dist.scope():
            modeling.compile_model(top, self.num_classes, self.cfg.fit.optimizer, learning_rate,
                                   steps_per_execution=self.steps_per_execution())

    def steps_per_execution(self) -> int:
        """Train steps per call into TensorFlow: the largest divisor of an epoch's steps up to STEPS_PER_EXECUTION.

        A divisor, because Keras runs whole calls: with 4 steps an epoch and 10 per call, each
        epoch's call would pull batches of the next epochs from the stream. One step per call
        under a tf.distribute strategy: Keras 3's multi-step loop (a tf.cond around the
        replicated step) fails there with "You must feed a value for placeholder tensor"
        (keras-team/keras#19246).
        """
        if self.dist.kind != "none":
            return 1
        steps = math.ceil(len(self.labels("train")) / self.global_batch)
        return max(d for d in range(1, STEPS_PER_EXECUTION + 1) if steps % d == 0)

    def full_model(self, stage: Stage):
        """The saved pipeline model around the current base and the stage's head.

        Built once per stage (it shares the trained layers, so it always holds their current
        weights): assembling it per checkpoint would add a node to the base at every call.
        """
        if id(stage) not in self._full:
            b = self.cfg.backbone
            with self.dist.scope():
                model = modeling.assemble_full_model(self.base, stage.head, b.name, b.preprocessing, self.image_size, stage.augmentation)
            self._full[id(stage)] = (stage, model)  # the stage is kept so its id is never reused
        return self._full[id(stage)][1]

    def augmentation(self):
        with self.dist.scope():  # its seed state is a variable of the saved model
            return build_augmentation(self.cfg.augmentation, seed=self.cfg.fit.seed)

    def fine_tune_cut(self) -> str:
        return backbones.get_spec(self.cfg.backbone.name).cut_for(self.cfg.fine_tune.unfreeze_blocks)


def _without_autotune(ds):
    """Turns tf.data's autotuning off: these streams are in-memory gathers with nothing to tune,
    and tearing down an autotuned iterator after fit was measured to stall ~12 s in about
    half the runs (waiting on tf.data's background thread)."""
    import tensorflow as tf

    opts = tf.data.Options()
    opts.autotune.enabled = False
    return ds.with_options(opts)


def train_frozen_phase(ctx: RunContext, epochs: int, total_epochs: int) -> tuple[Stage, FitOutcome]:
    """Approach 2 and phase 1 of approach 3: whole base frozen, K cached augmented views, head trained.

    With augmentation switched off there is one view: the plain training features.
    """
    ctx.base.trainable = False
    aug = ctx.augmentation()
    stage = ctx.new_stage("", augmentation=aug)
    ctx.compile(stage.top, ctx.cfg.fit.learning_rate)
    if aug is None:
        views = [ctx.features("train", "")]
    else:
        views = ctx.views("", extra_cut=ctx.fine_tune_cut())
    outcome = ctx.fit(stage, views, epochs=epochs, phase=1, total_epochs=total_epochs)
    return stage, outcome


def _images_per_second(ctx: RunContext, epochs_trained: int) -> dict:
    """Throughput per stage this process ran: frozen passes per split, training epochs, scoring (Compare shows `fit`)."""
    t, sizes, out = ctx.timings, {s: len(sp) for s, sp in ctx.data.splits.items()}, {}
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
        return StudioError(f"a feature cache file in {cache_root} is gone (was the cache folder deleted during the run?); "
                           "train again to rebuild it")
    return None


def _epochs_total(cfg: RunConfig, epochs_before: int) -> int:
    """Epochs the run will train, both phases together for fine-tuning (after a reused phase 1's)."""
    if cfg.approach != "fine_tuning":
        return cfg.fit.epochs
    return epochs_before + cfg.fine_tune.epochs if cfg.fine_tune.from_run else cfg.fit.epochs + cfg.fine_tune.epochs


def _score(ctx: RunContext, stage: Stage) -> dict:
    """Scores the returned model on validation and (once, at the end) on test."""
    out, scored = {}, {}
    for split_name in ("validation", "test"):
        if split_name not in ctx.data.splits:
            out[split_name] = None
            continue
        feats = ctx.feature_dataset(ctx.features(split_name, stage.split.cut))
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


def execute(cfg: RunConfig, data: PreparedData, body: Callable[[RunContext], Trained], **options) -> RunResult:
    """Runs one approach end to end and stores it. See the module docstring.

    Everything is built under the Keras dtype policy that `compute.precision` resolves to on
    this machine (engine/models/precision.py), and the previous policy is put back afterwards, so
    runs in one process (tests, `--approach all`) never inherit each other's.

    Args:
        options: progress, should_stop, runs_dir, cache_dir, run_id, base_loader — see `_execute`.
    """
    validate(cfg)  # before resolving: an unknown precision gets the config's message, not Keras'
    resolved = resolve_precision(cfg.compute.precision)
    with dtype_policy(resolved):
        return _execute(cfg, data, body, precision=resolved, **options)


def _execute(
    cfg: RunConfig,
    data: PreparedData,
    body: Callable[[RunContext], Trained],
    *,
    precision: str,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
    runs_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    run_id: str | None = None,
    base_loader: Callable[[RunStore], tuple[object, str, History]] | None = None,
    resolved_extra: dict | None = None,
) -> RunResult:
    """`execute` inside the dtype policy of `precision` (already resolved).

    `base_loader(store) -> (base, weights_id, history)` replaces building the base (fine-tuning
    from a finished frozen run); it runs before the run folder is created, so a bad
    `--from-run` leaves nothing behind. `resolved_extra` is stored in config.json's
    `resolved` section (a repeat group, the preset, the estimate made before the run).
    """
    import keras

    began = time.time()  # status.json's start: building the base counts as the run's time
    validate(cfg)
    dist = distribute.resolve(cfg.compute.distribute)
    keras.utils.set_random_seed(cfg.fit.seed)
    image_size = backbones.image_size_for(cfg.backbone)
    store = distribute.run_store(runs_dir, dist)  # only the chief writes the real run store
    history = History()
    with dist.scope():  # the base's variables are mirrored too: fine-tuning trains its top block
        if base_loader is not None:
            base, weights_id, history = base_loader(store)
        else:
            base = backbones.build_base(cfg.backbone, image_size)  # fails here, before any work, if weights are missing
            weights_id = backbones.weights_identity(cfg.backbone, cfg.fit.seed)
    stored = cfg.to_dict()
    stored["resolved"] = {
        "image_size": image_size,
        "classes": data.classes,
        "num_classes": len(data.classes),
        "dataset_root": data.report.root,
        "layout": data.report.layout,
        "split_sizes": {s: len(sp) for s, sp in data.splits.items()},
        "skipped_bad_files": len(data.report.bad_files),
        "weights_id": weights_id,
        "precision": precision,  # what `auto` became here: float32 on CPUs
        "views": cfg.augmentation.views if cfg.approach != "feature_extraction" and cfg.augmentation.enabled else 1,
        "distribute": dist.kind,
        "replicas": dist.replicas,
        "global_batch": dist.global_batch(cfg.fit.batch_size),
        "seed": cfg.fit.seed,
        **(resolved_extra or {}),  # e.g. repeat_group (run --seeds), preset, estimate_s (engine/training/estimate.py)
    }
    run_dir = store.create(cfg.approach, stored, run_id)
    store.start_heartbeat(run_dir)  # pid + host + beat, so a killed run reads `interrupted`; ends with the final state
    # status.json: what the run is doing now, with counts and an ETA (engine/store/status.py); events still reach `progress`
    epochs_before = len(history)  # phase-1 epochs of a continued frozen run, trained elsewhere
    planned = _epochs_total(cfg, epochs_before)  # recorded at the end too: `runs` shows 6/1000 for a stopped run
    tracker = StatusTracker(lambda status: store.write_status(run_dir, status), progress, started=began,
                            epochs_total=planned)
    progress = tracker
    tensorboard_dir = ""
    if cfg.compute.tensorboard and dist.chief:  # like the run store: one writer per job
        tensorboard_dir = str(run_log_dir(cfg.compute.tensorboard, run_dir.name))
        try:
            write_hyperparameters(tensorboard_dir, stored, run_dir.name)
        except Exception as exc:  # TensorFlow's own file errors (PermissionDenied, ...) are no OSError
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            message = f"--tensorboard {cfg.compute.tensorboard}: cannot write the logs ({first}); choose a folder you can write to"
            store.write_metrics(run_dir, {"state": "failed", "message": message, "epochs_run": 0, "epochs_total": planned})
            tracker.finish("failed", message)  # the run never reads `running` (then `interrupted`)
            raise StudioError(message) from None
    ctx = RunContext(cfg, data, base, image_size, store, run_dir, FeatureCache(cache_dir), progress, should_stop,
                     history=history, weights_id=weights_id, dist=dist,
                     precision=precision, tensorboard_dir=tensorboard_dir)
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
        if trained.note and state == "finished":
            message = f"{message}; {trained.note}" if message else trained.note
    except TrainingStopped:
        state, message = "stopped", "stopped by request before the first epoch finished"
    except Exception as exc:
        user_error = user_error_inside(exc) or _cache_file_gone(exc, ctx.cache.root)
        message = str(user_error) if user_error else f"{type(exc).__name__}: {exc}"
        metrics.update(state="failed", message=message, traceback=traceback.format_exc(),
                       wall_seconds=round(time.perf_counter() - t0, 3), epochs_run=len(ctx.history), epochs_total=planned)
        store.write_metrics(run_dir, metrics)
        tracker.finish("failed", metrics["message"])
        if user_error:  # one line and exit 2 in the CLI; the traceback stays in metrics.json
            raise user_error from None
        raise
    if trained is not None and len(ctx.history) > 0:
        t = time.perf_counter()
        try:
            progress({"type": "stage", "stage": "scoring", "message": "scoring the model on validation and test"})
            metrics.update(_score(ctx, trained.stage))
        except TrainingStopped:
            pass
        ctx._timed("scoring", time.perf_counter() - t)
        full = ctx.full_model(trained.stage)
        metrics.update(modeling.count_params(full))
        t = time.perf_counter()
        progress({"type": "stage", "stage": "saving", "message": "saving model.keras"})
        try:
            store.save_model(run_dir, full)
        except RunSaveError as exc:  # model.keras keeps the last checkpoint, if any
            if state != "failed":
                kept = f"model.keras holds epoch {ctx.checkpoint_epoch}" if ctx.checkpoint_epoch else "no model was saved"
                state, message = "failed", f"{exc}; free some disk space and train again ({kept})"
        ctx._timed("saving", time.perf_counter() - t)
    metrics.update(
        state=state, message=message, wall_seconds=round(time.perf_counter() - t0, 3), epochs_run=len(ctx.history),
        epochs_total=planned, feature_cache=ctx.cache.stats(), timings=ctx.timings, data_path=ctx.data_path,
        images_per_second=_images_per_second(ctx, len(ctx.history) - epochs_before),
    )
    if ctx.cache.warnings:
        metrics["warnings"] = list(ctx.cache.warnings)
    store.write_history(run_dir, ctx.history.to_dict())
    store.write_metrics(run_dir, metrics)
    tracker.finish(state, message)
    stored_at = str(run_dir) if dist.chief else ""  # a non-chief worker's folder is scratch, removed at exit
    return RunResult(run_dir.name, cfg.approach, stored_at, state, message, stored, ctx.history.to_dict(), metrics)
