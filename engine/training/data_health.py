"""Data health: mislabelled photos, duplicates and leaks, outliers of a dataset, from the feature cache.

The base's plain features of every split (test included when there is one) are read exactly as a run reads them,
through a `RunContext` without a run folder (engine/training/feature_map._context: the same keys, so a warm cache
never runs the base and a cold one leaves what the next run of these settings needs); each photo's bytes are
hashed (sha256, through the read gate) for exact copies. The maths (k-fold heads, confident learning, groups,
outliers) is engine/insight/data_health.py. Imported by the CLI's parser: no Keras at module level.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from engine.config import RunConfig, knob, validate
from engine.insight.data_health import DEFAULT_FOLDS, DEFAULT_SIMILARITY, health_report
from engine.insight.projection import pool
from engine.store.runs import RunStore
from engine.training.feature_map import Progress, StopCheck, _context, never_stop, no_progress

HEALTH_SPLITS = ("train", "validation", "test")


@dataclass
class HealthSettings:
    """`data-health`'s own knobs; its flags are made from their metadata (engine/cli/flags.add_settings_flags)."""

    folds: int = knob(
        DEFAULT_FOLDS,
        "k of the k-fold heads whose held-out probabilities rank label issues (fewer when a class has fewer photos)",
        min=2,
        max=20,
        integer=True,
        metavar="K",
    )
    similarity: float = knob(
        DEFAULT_SIMILARITY,
        "near-copy threshold: centred cosine similarity of the base's pooled "
        "features at or above which two photos are grouped as copies",
        min=0.5,
        max=1.0,
        metavar="T",
    )


def file_hashes(files: list[str], progress: Progress = no_progress) -> list[str]:
    """sha256 of each file's bytes (read through the read gate, bounded like the decoder)."""
    from engine.data.reads import MAX_IMAGE_BYTES, read_regular_file

    progress({"type": "status", "message": f"hashing {len(files)} files for exact copies"})
    return [hashlib.sha256(read_regular_file(f, MAX_IMAGE_BYTES)).hexdigest() for f in files]


def data_health(
    cfg: RunConfig,
    data,
    *,
    folds: int = DEFAULT_FOLDS,
    similarity: float = DEFAULT_SIMILARITY,
    exclude: set[str] | frozenset = frozenset(),
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
    runs_dir=None,
    cache_dir=None,
) -> dict:
    """Label issues, duplicates/leaks and outliers of `data` (a PreparedData) through `cfg`'s base (backbone,
    weights, size; the head is data health's own k-fold logistic regression). `exclude`: absolute paths a user
    kept, never proposed again. Raises TrainingStopped when `should_stop` says so."""
    from engine.models.precision import dtype_policy, resolve_precision

    validate(cfg)
    t0 = time.perf_counter()
    resolved = resolve_precision(cfg.compute.precision)
    with dtype_policy(resolved):
        ctx = _context(cfg, data, resolved, RunStore(runs_dir), cache_dir, progress, should_stop)
        splits = [s for s in HEALTH_SPLITS if s in data.splits]
        features = np.concatenate([pool(ctx.features(s, "")) for s in splits])
    files = [os.path.abspath(f) for s in splits for f in data.splits[s].files]  # as curation.kept names them
    split_of = [s for s in splits for _ in data.splits[s].files]
    labels = np.concatenate([data.splits[s].labels for s in splits]).astype(int)
    hashes = file_hashes(files, progress)
    progress({"type": "status", "message": f"{folds}-fold heads, duplicates and outliers of {len(files)} photos"})
    doc = health_report(
        features,
        labels,
        split_of,
        files,
        hashes,
        list(data.classes),
        folds=folds,
        similarity=similarity,
        seed=cfg.fit.seed,
        exclude=set(exclude),
    )
    doc["summary"].update(
        {
            "seconds": round(time.perf_counter() - t0, 3),
            "feature_cache": ctx.cache.stats(),
            "dataset_root": os.path.abspath(data.report.root),
            "backbone": cfg.backbone.name,
            "weights": cfg.backbone.weights,
            "image_size": ctx.plan.image_size,
            "classes": list(data.classes),
            "splits": splits,
        }
    )
    return doc
