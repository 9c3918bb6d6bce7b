"""Run the frozen part of a base once per (image, view) and cache the arrays on disk.

The frozen prefix of a base is a pure function of its input (BatchNorm in inference
mode), so its output is computed once and reused: the plain features of every split
(feature extraction, the validation pass of every approach) and K augmented *views* of
the training set (frozen training cycles through them instead of re-running the base
every epoch; fine-tuning caches the activations at its cut the same way).

The key is a hash of everything the array depends on: the file list (paths, sizes,
mtimes), backbone, weights identity, image size, preprocessing, cut layer and the view
(plain, or augmentation settings + seed + view index). Entries are stored as float16
when that is exact enough (values well inside float16's range; relative error ~5e-4,
below what a trained head can tell apart), checked against the expected shape on load,
kept under a size budget (`TLS_CACHE_MAX_GB`) by least-recently-used eviction, and a
failed write only means "not cached" — it never fails the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .runs import atomic_write_bytes
from .status import Progress
FLOAT16_SAFE_MAX = 60000.0  # float16 tops out at 65504; larger activations stay float32
DEFAULT_BUDGET_GB = 20.0  # default size budget of the cache folder, in GiB


def default_cache_dir() -> Path:
    return Path(os.environ.get("TLS_CACHE_DIR", Path.home() / ".cache" / "transfer-learning-studio" / "features"))


def default_budget_bytes() -> int:
    raw = os.environ.get("TLS_CACHE_MAX_GB", "")
    try:
        gb = float(raw) if raw else DEFAULT_BUDGET_GB
    except ValueError:
        print(f"warning: TLS_CACHE_MAX_GB={raw!r} is not a number; using {DEFAULT_BUDGET_GB} GB", file=sys.stderr)
        gb = DEFAULT_BUDGET_GB
    return int(gb * 1024**3)


def feature_key(**parts) -> str:
    """Stable hash of the keyword parts (order-independent)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def compact(array: np.ndarray) -> np.ndarray:
    """float16 when every value fits comfortably, else float32: halves memory and disk for features."""
    array = np.asarray(array)
    if array.dtype == np.float16:
        return array
    if array.size and np.isfinite(array).all() and float(np.abs(array).max()) < FLOAT16_SAFE_MAX:
        return array.astype(np.float16)
    return array.astype(np.float32)


class FeatureCache:
    """A folder of `<key>.npy` arrays with a JSON sidecar describing what produced them."""

    def __init__(self, root: str | os.PathLike | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self.max_bytes = default_budget_bytes() if max_bytes is None else max_bytes
        self.hits = 0  # keys found on disk
        self.misses = 0  # keys computed
        self.bytes_read = 0
        self.bytes_written = 0
        self.evicted = 0  # entries removed to stay under the budget
        self.warnings: list[str] = []
        self._memory: dict[str, np.ndarray] = {}  # this run's arrays: a second use costs no disk read

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "bytes_read": self.bytes_read,
                "bytes_written": self.bytes_written, "evicted": self.evicted}

    def load(self, key: str, shape: tuple | None = None) -> np.ndarray | None:
        """The stored array, or None when absent, damaged or of another shape than expected."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            array = np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged cache entry is recomputed, never trusted
        if shape is not None and tuple(array.shape) != tuple(shape):
            return None
        try:
            os.utime(p)  # mark as recently used for LRU eviction
        except OSError:
            pass
        self.bytes_read += array.nbytes
        return array

    def save(self, key: str, array: np.ndarray, meta: dict) -> None:
        """Writes atomically; a failure (disk full, read-only) degrades to 'not cached' with a warning."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            atomic_write_bytes(self.path(key), buf.getvalue())
            atomic_write_bytes(self.root / f"{key}.json", json.dumps(meta, indent=2, default=str).encode())
            self.bytes_written += array.nbytes
        except OSError as exc:
            msg = f"feature cache not written ({exc.strerror or exc}); features will be recomputed next time"
            if msg not in self.warnings:
                self.warnings.append(msg)
                print(f"warning: {msg}", file=sys.stderr)
            return
        self.evict(keep=set(self._memory) | {key})

    def evict(self, keep: set[str] = frozenset()) -> None:
        """Removes least-recently-used entries until the folder fits the budget (never one in `keep`)."""
        try:
            entries = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("*.npy")]
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, p in sorted(entries):
            if total <= self.max_bytes:
                break
            if p.stem in keep:
                continue
            for q in (p, p.with_suffix(".json")):
                try:
                    q.unlink()
                except OSError:
                    pass
            total -= size
            self.evicted += 1

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray], meta: dict, shape: tuple | None = None) -> np.ndarray:
        if key in self._memory:
            return self._memory[key]
        array = self.load(key, shape)
        if array is not None:
            self.hits += 1
        else:
            self.misses += 1
            array = compact(compute())
            self.save(key, array, meta)
        self._memory[key] = array
        return array

    def get_or_compute_many(self, keys: dict[str, str], primary: str, compute: Callable[[], dict[str, np.ndarray]], meta: dict,
                            shapes: dict[str, tuple] | None = None) -> dict[str, np.ndarray]:
        """Like get_or_compute for several arrays made by one pass (e.g. two cuts of one view).

        `keys` maps an output name to its cache key; `keys[primary]` is the array wanted now,
        the others are by-products stored for later runs. When the primary array or any
        by-product is missing, `compute()` makes all of them in one pass and each is stored.
        Returns a dict holding at least `primary`.
        """
        shapes = shapes or {}
        key = keys[primary]
        if key in self._memory:
            return {primary: self._memory[key]}
        array = self.load(key, shapes.get(primary))
        others_present = all(self.path(k).exists() for n, k in keys.items() if n != primary)
        if array is not None and others_present:
            self.hits += 1
            self._memory[key] = array
            return {primary: array}
        self.misses += 1
        arrays = {name: compact(a) for name, a in compute().items()}
        for name, k in keys.items():
            self.save(k, arrays[name], {**meta, "output": name})
        self._memory[key] = arrays[primary]
        return arrays


def extract_features(fn, batches: Iterable, total: int, progress: Progress | None = None, label: str = "",
                     first_batch: dict | None = None) -> list[np.ndarray]:
    """Passes batches of uint8 pixels through `fn` (pixels -> tuple of feature tensors).

    Returns one array per output of `fn`, in compact dtype. `batches` may be a tf.data
    dataset that decodes files in parallel while the base runs on the previous batch.
    `first_batch`, if given, receives the seconds and images of the first batch (which
    also pays for tracing), so a steady-state rate can be told apart from the one-time cost.
    """
    import time

    outs: list[list[np.ndarray]] | None = None
    done = 0
    t0 = time.perf_counter()
    for batch in batches:
        result = fn(batch)
        result = result if isinstance(result, (tuple, list)) else (result,)
        if outs is None:
            outs = [[] for _ in result]
        for acc, r in zip(outs, result):
            acc.append(compact(np.asarray(r, dtype=np.float32)))
        if outs is not None and done == 0 and first_batch is not None:
            first_batch.update(seconds=time.perf_counter() - t0, images=int(result[0].shape[0]))
        done += int(result[0].shape[0])
        if progress:
            progress({"type": "features", "split": label, "done": min(done, total), "total": total})
    if outs is None:
        raise ValueError(f"no images to extract features from ({label})")
    return [np.concatenate(acc, axis=0) for acc in outs]
