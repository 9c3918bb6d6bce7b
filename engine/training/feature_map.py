"""The feature map: a 2-D PCA of what the base makes of every training and validation image.

For the data overview it maps the base's plain (un-augmented) features of a config (backbone,
weights, size), read from the feature cache exactly as a run reads them (a `RunContext` without
a run folder, as the learning-rate finder builds it): the keys are a run's own, so a warm cache
never runs the base and a cold one leaves what the next run of these settings needs. For a
finished run (`run_id`) it maps the same base features with the run's misclassified validation
images and their probabilities (its predictions.json); for a fine-tuning run it also maps the
*fine-tuned* base (taken from its model.keras) on the same images, "before" and "after", each
its own PCA, the second's axes flipped to agree with the first. The fine-tuned features are kept
beside the run (`feature_map.npz`), so a second look is instant.

Lives in `training` because it runs the base; the projection itself is pure NumPy
(engine/insight/projection.py). Imported by the CLI's parser: no Keras at module level.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import RunConfig, knob, validate
from engine.errors import StudioError
from engine.insight.projection import METHODS, align_signs, pca_2d, pool, separation, subsample, tsne_2d
from engine.store.runs import RunStore, RunStoreError, atomic_write_bytes

# Imported by the CLI's parser, so nothing here imports Keras at module level (engine/training/fit.py does):
# the progress callback and the stop check default to doing nothing, as in lr_finder.py.
Progress = Callable[[dict], None]
StopCheck = Callable[[], bool]


def no_progress(event: dict) -> None:
    pass


def never_stop() -> bool:
    return False


DEFAULT_LIMIT = 2000  # points drawn at most: PCA of 2000 vectors takes well under a second; a scatter of more hides itself


@dataclass
class MapSettings:
    """`feature-map`'s own knobs; its flags are made from their metadata (engine/cli/flags.add_settings_flags)."""

    limit: int = knob(
        DEFAULT_LIMIT,
        "map at most this many images, a stratified seeded subsample",
        min=10,
        max=100_000,
        integer=True,
        message="must be between {min:g} (a map of fewer shows nothing) and {max:g}, got {value}",
        metavar="N",
    )
    method: str = knob(
        "pca",
        "pca (NumPy, default: distances and axes mean something) or tsne (scikit-learn: "
        "neighbourhoods only; seconds to a minute for 2000 points)",
        choices=METHODS,
    )


MAP_SPLITS = ("train", "validation")
AFTER_FILE = "feature_map.npz"  # the fine-tuned base's pooled features, beside the run


class FeatureMapError(StudioError):
    """A run whose feature map cannot be drawn (unknown, unfinished, unscored); the message says what to do."""


def run_config(store: RunStore, run_id: str) -> RunConfig:
    """The config a finished run trained with, for mapping its features (raises FeatureMapError otherwise)."""
    try:
        record = store.load(run_id)
    except RunStoreError as exc:
        raise FeatureMapError(f"--run {run_id}: {exc}") from None
    if record.state != "finished":
        raise FeatureMapError(f"--run {run_id}: the run is {record.state}; a feature map needs a finished run")
    raw = {k: v for k, v in record.config.items() if k != "resolved"}
    raw.setdefault("data", {})["path"] = record.dataset_root or raw.get("data", {}).get("path", "")
    return RunConfig.from_dict(raw)


def feature_map(
    cfg: RunConfig,
    data,
    *,
    run_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    method: str = "pca",
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
    runs_dir=None,
    cache_dir=None,
) -> dict:
    """The map of `data` (a PreparedData) through `cfg`'s base, and with `run_id` that run's errors (and, for
    fine-tuning, the fine-tuned base's map). Raises TrainingStopped when `should_stop` says so."""
    from engine.models.precision import dtype_policy, resolve_precision

    validate(cfg)
    if limit < 10:
        raise FeatureMapError(f"--limit: at least 10 points (a map of fewer shows nothing), got {limit}")
    if method not in METHODS:
        raise FeatureMapError(f"--method: one of {', '.join(METHODS)}, got {method!r}")
    resolved = resolve_precision(cfg.compute.precision)
    with dtype_policy(resolved):
        return _map(cfg, data, resolved, run_id, limit, method, progress, should_stop, RunStore(runs_dir), cache_dir)


def _map(cfg, data, precision, run_id, limit, method, progress, should_stop, store, cache_dir) -> dict:
    t0 = time.perf_counter()
    ctx = _context(cfg, data, precision, store, cache_dir, progress, should_stop)
    splits = [s for s in MAP_SPLITS if s in data.splits]
    files = [f for s in splits for f in data.splits[s].files]
    split_of = np.array([s for s in splits for _ in data.splits[s].files])
    labels = np.concatenate([data.splits[s].labels for s in splits]).astype(int)
    idx = subsample(np.unique(split_of, return_inverse=True)[1] * len(data.classes) + labels, limit, cfg.fit.seed)
    before = np.concatenate([pool(ctx.features(s, "")) for s in splits])[idx]
    points = _points([files[i] for i in idx], split_of[idx], labels[idx], data.classes, store, run_id)
    approach = store.load(run_id).approach if run_id else None
    fine_tuned = approach == "fine_tuning"  # a map of the base it changed beside the base it started from
    maps = [_projected(method, "before" if fine_tuned else "base", _base_title(cfg), before, labels[idx], progress)]
    if fine_tuned:
        after = _after_features(cfg, store, run_id, [p["file"] for p in points], ctx.plan.image_size, progress, should_stop)
        maps.append(
            _projected(method, "after", "the fine-tuned base (this run)", after, labels[idx], progress, reference=maps[0])
        )
    total, shown, name = len(files), len(idx), "PCA" if method == "pca" else "t-SNE"
    return {
        "classes": list(data.classes),
        "dataset_root": data.report.root,
        "backbone": cfg.backbone.name,
        "weights": cfg.backbone.weights,
        "image_size": ctx.plan.image_size,
        "run": run_id,
        "approach": approach,
        "method": method,
        "total": total,
        "shown": shown,
        "subsampled": shown < total,
        "note": f"{name} of {shown} of {total} images (subsample, stratified by split and class, seed {cfg.fit.seed})"
        if shown < total
        else f"{name} of all {total} images",
        "separation": maps[0]["separation"],
        "maps": maps,
        "points": points,
        "feature_cache": ctx.cache.stats(),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _context(cfg, data, precision, store, cache_dir, progress, should_stop):
    """A RunContext without a run folder over `cfg`'s freshly built base: `features` reads (or fills) the cache
    under the very keys a run of `cfg` uses (the same base, weights identity, size, cut "" and view)."""
    import keras

    from engine.models import backbones
    from engine.training.context import RunContext
    from engine.training.features import FeatureCache
    from engine.training.plan import RunPlan
    from engine.training.stages import StageBuilder

    image_size = backbones.image_size_for(cfg.backbone)
    keras.utils.set_random_seed(cfg.fit.seed)  # random weights (weights=none) come out as the run's
    base = backbones.build_base(cfg.backbone, image_size)
    plan = RunPlan.for_data(cfg, data, image_size, backbones.weights_identity(cfg.backbone, cfg.fit.seed), precision)
    models = StageBuilder(cfg, base, image_size, len(data.classes), len(data.splits["train"]))
    return RunContext(plan, data, models, store, Path(), FeatureCache(cache_dir), progress, should_stop)


def _base_title(cfg: RunConfig) -> str:
    w = cfg.backbone.weights
    kind = (
        "random weights" if w.lower() == "none" else "ImageNet weights" if w.lower() == "imagenet" else f"weights {Path(w).name}"
    )
    return f"the pretrained base ({cfg.backbone.name}, {kind})"


def _projected(
    method: str, name: str, title: str, x: np.ndarray, labels: np.ndarray, progress, reference: dict | None = None
) -> dict:
    """One map's coordinates and numbers. `explained_variance` is PCA's (None for t-SNE, whose axes hold no variance)."""
    if method == "tsne":
        progress({"type": "status", "message": f"t-SNE of {len(x)} points (seconds to a minute for 2000, with the CPU)"})
        coords, ratio = tsne_2d(x), None
    else:
        proj = pca_2d(x)
        coords, ratio = proj.coords, [round(float(v), 4) for v in proj.explained_variance_ratio]
        if reference is not None:
            coords = align_signs(coords, np.column_stack([reference["x"], reference["y"]]))
    return {
        "name": name,
        "title": title,
        "explained_variance": ratio,
        "separation": separation(coords, labels),
        "dimensions": int(x.shape[1]),
        "x": [round(float(v), 5) for v in coords[:, 0]],
        "y": [round(float(v), 5) for v in coords[:, 1]],
    }


def _points(files, split_of, labels, classes, store: RunStore, run_id: str | None) -> list[dict]:
    """One entry per mapped image; with a run, its validation images' stored probabilities and whether the run
    got them wrong (training images were never scored: their probabilities stay None)."""
    scored: dict = {}
    if run_id:
        from engine.insight.analysis import load_predictions

        preds = load_predictions(store.root / run_id, "validation")
        scored = {f: (int(t), p) for f, t, p in zip(preds.files, preds.labels, preds.probabilities)}
    out = []
    for f, s, y in zip(files, split_of, labels):
        hit = scored.get(f) if s == "validation" else None
        out.append(
            {
                "file": f,
                "split": str(s),
                "label": int(y),
                "class": classes[int(y)],
                "misclassified": bool(hit is not None and int(np.argmax(hit[1])) != hit[0]),
                "probabilities": [round(float(v), 4) for v in hit[1]] if hit is not None else None,
            }
        )
    return out


def _after_features(cfg, store: RunStore, run_id: str, files: list[str], image_size: int, progress, should_stop) -> np.ndarray:
    """Pooled features of `files` through the run's fine-tuned base, from feature_map.npz where it holds them
    (the same model.keras, the same files), else computed (only the missing ones) and added to it."""
    run_dir = store.root / run_id
    stamp = _model_stamp(run_dir / "model.keras")
    known = _read_after(run_dir / AFTER_FILE, stamp)
    missing = [f for f in files if f not in known]
    if missing:
        progress({"type": "status", "message": f"the fine-tuned base on {len(missing)} images (kept in {AFTER_FILE})"})
        known.update(zip(missing, _fine_tuned_pass(cfg, store, run_id, missing, image_size, progress, should_stop)))
        _write_after(run_dir / AFTER_FILE, stamp, known)
    return np.stack([known[f] for f in files])


def _fine_tuned_pass(cfg, store, run_id, files, image_size, progress, should_stop) -> np.ndarray:
    """The saved model's own base (engine/models/pipeline.py) behind the backbone's preprocessing, on `files`."""
    from engine.data.pixels import load_images
    from engine.models.pipeline import split_pipeline
    from engine.training.features import extract_features
    from engine.training.fit import TrainingStopped
    from engine.training.plan import EXTRACT_BATCH
    from engine.training.stages import StageBuilder

    base = split_pipeline(store.load_model(run_id)).base
    if base is None:
        raise FeatureMapError(f"--run {run_id}: its model.keras has no nested base to take the fine-tuned features from")
    fn = StageBuilder(cfg, base, image_size, 2, len(files)).pixels_to_features(("",))

    def check(event: dict) -> None:
        progress(event)
        if should_stop():
            raise TrainingStopped()

    out = []
    for s in range(0, len(files), 256):  # decoded a few hundred at a time: a large subsample never sits in RAM whole
        pixels = load_images(files[s : s + 256], image_size)
        batches = (pixels[b : b + EXTRACT_BATCH] for b in range(0, len(pixels), EXTRACT_BATCH))
        out.append(pool(extract_features(fn, batches, len(pixels), check, "fine-tuned base")[0]))
    return np.concatenate(out)


def _model_stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _read_after(path: Path, stamp: str) -> dict:
    """file -> pooled vector from feature_map.npz, {} when absent, unreadable or of another model.keras."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["stamp"]) != stamp:
                return {}
            return dict(zip((str(f) for f in z["files"]), np.asarray(z["features"], np.float32)))
    except (OSError, KeyError, ValueError):
        return {}


def _write_after(path: Path, stamp: str, known: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, stamp=np.array(stamp), files=np.array(list(known)), features=np.stack(list(known.values())))
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:  # a read-only run store: the map still shows, the next look computes it again
        pass
