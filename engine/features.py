"""Run the frozen prefix of a base once per image and cache the feature arrays on disk.

The key is a content hash of everything the features depend on: the file list (paths,
sizes, mtimes), backbone, weights identity, image size, preprocessing, cut layer and the
view (plain images; augmented views are not cached). A second run with other head
hyper-parameters, or the validation pass of another approach, reuses the arrays and never
touches the base.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .runs import atomic_write_bytes

Progress = Callable[[dict], None]


def default_cache_dir() -> Path:
    return Path(os.environ.get("TLS_CACHE_DIR", Path.home() / ".cache" / "transfer-learning-studio" / "features"))


def feature_key(**parts) -> str:
    """Stable hash of the keyword parts (order-independent)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class FeatureCache:
    """A folder of `<key>.npy` arrays with a JSON sidecar describing what produced them."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self.hits = 0  # keys found on disk
        self.misses = 0  # keys computed
        self._memory: dict[str, np.ndarray] = {}  # this run's arrays: a second use costs no disk read

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def load(self, key: str) -> np.ndarray | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged cache entry is recomputed, never trusted

    def save(self, key: str, array: np.ndarray, meta: dict) -> None:
        import io

        self.root.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        atomic_write_bytes(self.path(key), buf.getvalue())
        atomic_write_bytes(self.root / f"{key}.json", json.dumps(meta, indent=2, default=str).encode())

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray], meta: dict) -> np.ndarray:
        if key in self._memory:
            return self._memory[key]
        array = self.load(key)
        if array is not None:
            self.hits += 1
        else:
            self.misses += 1
            array = compute()
            self.save(key, array, meta)
        self._memory[key] = array
        return array


def extract_features(prefix_fn, images: np.ndarray, batch_size: int = 32, progress: Progress | None = None, label: str = "") -> np.ndarray:
    """Passes uint8 images through `prefix_fn` (pixels -> features) in batches; returns float32 features."""
    out = []
    n = len(images)
    for start in range(0, n, batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        out.append(np.asarray(prefix_fn(batch), dtype=np.float32))
        if progress:
            progress({"type": "features", "split": label, "done": min(start + batch_size, n), "total": n})
    return np.concatenate(out, axis=0)
