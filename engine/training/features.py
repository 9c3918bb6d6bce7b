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

Splits larger than memory (`compute.in_memory_mb`) never exist as one array: their
entries are written chunk by chunk as the base produces them (`NpyWriter`: a plain .npy
under a temp name, renamed when complete) and come back memory-mapped. Training reads
their rows with `read_rows` (file reads, not through the map: pages touched through a map
count toward the process's resident memory until it is unmapped) and validation with
`row_dataset` (read in the graph). A failed write cannot degrade to "kept in memory"
there, so it is a `FeatureCacheError` naming the folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from engine import settings
from engine.errors import StudioError
from engine.store.runs import atomic_write_bytes
from engine.store.status import Progress

FLOAT16_SAFE_MAX = 60000.0  # float16 tops out at 65504; larger activations stay float32
DEFAULT_BUDGET_GB = settings.DEFAULT_CACHE_GB  # default size budget of the cache folder, in GiB
STALE_TEMP_SECONDS = 24 * 3600  # a temp file untouched this long belongs to a writer that died


def default_cache_dir() -> Path:
    return settings.cache_dir()


def default_budget_bytes() -> int:
    return settings.cache_budget_bytes()


def feature_key(**parts) -> str:
    """Stable hash of the keyword parts (order-independent)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class FeatureCacheError(StudioError):
    """A feature cache entry that must live on disk (a split over compute.in_memory_mb) could not be written."""


def fits_float16(array: np.ndarray) -> bool:
    """Every value finite and comfortably inside float16's range (so storing it as float16 is exact enough)."""
    return bool(array.size) and bool(np.isfinite(array).all()) and float(np.abs(array).max()) < FLOAT16_SAFE_MAX


def compact(array: np.ndarray) -> np.ndarray:
    """float16 when every value fits comfortably, else float32: halves memory and disk for features."""
    array = np.asarray(array)
    if array.dtype == np.float16:
        return array
    if fits_float16(array):
        return array.astype(np.float16)
    return array.astype(np.float32)


class NpyWriter:
    """Writes one .npy array of a known shape chunk by chunk (rows in order), atomically.

    The rows go to a temp file in the target folder, which `close()` renames into place once
    every row is there, so a reader sees the whole array or nothing. Storage follows
    `compact`'s rule, decided incrementally: float16 while every chunk fits; the first chunk
    that does not rewrites the rows so far as float32 and the rest follow in float32 (those
    rows keep their float16 rounding, which the rule accepts for values in range).
    """

    def __init__(self, path: str | os.PathLike, shape: tuple):
        self.path = Path(path)
        self.shape = tuple(int(d) for d in shape)
        self.rows = 0
        self.dtype = np.dtype(np.float16)
        self._fh, self._tmp, self._offset = self._open(self.dtype)

    def _open(self, dtype: np.dtype):
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        fh = os.fdopen(fd, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(fh, header)
        return fh, Path(tmp), fh.tell()

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def append(self, chunk) -> None:
        chunk = np.asarray(chunk)
        if chunk.shape[1:] != self.shape[1:] or self.rows + len(chunk) > self.shape[0]:
            raise ValueError(f"{self.path.name}: chunk {chunk.shape} does not fit rows {self.rows}.. of {self.shape}")
        if self.dtype == np.float16 and chunk.dtype != np.float16 and len(chunk) and not fits_float16(chunk):
            self._widen()
        self._fh.write(memoryview(np.ascontiguousarray(chunk, dtype=self.dtype)).cast("B"))
        self.rows += len(chunk)

    def _widen(self) -> None:
        """Rewrites the rows written so far as float32; later chunks are stored as float32."""
        old_tmp, old_offset = self._tmp, self._offset
        self._fh.close()
        self.dtype = np.dtype(np.float32)
        self._fh, self._tmp, self._offset = self._open(self.dtype)
        row_items = math.prod(self.shape[1:])
        step = max(1, (64 << 20) // max(row_items * 2, 1))  # ~64 MB of float16 rows at a time
        for start in range(0, self.rows, step):
            count = min(step, self.rows - start) * row_items
            part = np.fromfile(old_tmp, np.float16, count=count, offset=old_offset + start * row_items * 2)
            self._fh.write(memoryview(part.astype(np.float32)).cast("B"))
        old_tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Checks every row was written, makes the data durable and renames the file into place."""
        if self.rows != self.shape[0]:
            self.discard()
            raise ValueError(f"{self.path.name}: {self.rows} rows written, expected {self.shape[0]}")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        """Drops an incomplete entry (a stopped run, a failure): nothing half-written is left."""
        try:
            self._fh.close()
        except OSError:
            pass
        self._tmp.unlink(missing_ok=True)


def read_rows(array: np.ndarray, rows) -> np.ndarray:
    """array[rows] (rows: 1-D indices), read from the file when `array` is memory-mapped.

    Reading through the map would leave every page touched resident in this process (an
    epoch over a large view would count its whole file towards the process's memory);
    a file read copies the rows and leaves the file's pages to the OS's page cache.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not isinstance(array, np.memmap):
        return np.asarray(array[rows])
    out = np.empty((len(rows), *array.shape[1:]), array.dtype)
    row_bytes = out[0].nbytes if len(rows) else 0
    try:
        fh = open(array.filename, "rb", buffering=0)
    except FileNotFoundError:
        raise FeatureCacheError(
            f"the feature cache file {array.filename} is gone (was the cache folder deleted during "
            "the run?); train again to rebuild it"
        ) from None
    with fh:
        for j, i in enumerate(rows):
            view, got = memoryview(out[j]).cast("B"), 0
            fh.seek(array.offset + int(i) * row_bytes)
            while got < row_bytes:
                n = fh.readinto(view[got:])
                if not n:
                    raise OSError(f"{array.filename}: short read at row {int(i)}; the cache entry changed while in use")
                got += n
    return out


def row_dataset(array: np.memmap):
    """A tf.data stream of a memory-mapped .npy array's rows, in order, read in the graph.

    No Python per element (nothing to hold the GIL when an iterator is torn down) and no
    pages of the map touched: TensorFlow reads the file itself, from the data offset on.
    """
    import tensorflow as tf

    shape = tuple(array.shape[1:])
    row_bytes = math.prod(shape) * array.dtype.itemsize
    dtype = tf.as_dtype(array.dtype)
    ds = tf.data.FixedLengthRecordDataset(
        str(array.filename), row_bytes, header_bytes=array.offset, buffer_size=max(row_bytes, 1 << 20)
    )
    ds = ds.map(lambda record: tf.reshape(tf.io.decode_raw(record, dtype), shape))
    return ds.apply(tf.data.experimental.assert_cardinality(len(array)))  # Keras knows where an epoch ends


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
        self.reused: set[str] = set()  # splits whose arrays came from the cache (meta["split"]): "train" = training inputs
        self.warnings: list[str] = []
        self._memory: dict[str, np.ndarray] = {}  # this run's arrays: a second use costs no disk read

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def stats(self) -> dict:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "evicted": self.evicted,
            "reused_splits": sorted(self.reused),
        }

    def load(self, key: str, shape: tuple | None = None, mmap: bool = False) -> np.ndarray | None:
        """The stored array (memory-mapped read-only if `mmap`), or None when absent, damaged or of another shape."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            array = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
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
        """Removes least-recently-used entries until the folder fits the budget (never one in `keep`).

        Also removes temp files older than a day: what a killed writer left (a streamed
        split's can be gigabytes); a live writer touches its file with every chunk.
        """
        now = time.time()
        for tmp in self.root.glob(".*.tmp"):
            try:
                if now - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                    tmp.unlink()
            except OSError:
                pass
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

    def get_or_compute_many(
        self,
        keys: dict[str, str],
        primary: str,
        compute: Callable[[], dict[str, np.ndarray]],
        meta: dict,
        shapes: dict[str, tuple] | None = None,
    ) -> dict[str, np.ndarray]:
        """The arrays one pass of the frozen base makes (e.g. two cuts of one view): from memory, disk, or `compute()`.

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
            self.reused.add(meta.get("split", "?"))
            self._memory[key] = array
            return {primary: array}
        self.misses += 1
        arrays = {name: compact(a) for name, a in compute().items()}
        for name, k in keys.items():
            self.save(k, arrays[name], {**meta, "output": name})
        self._memory[key] = arrays[primary]
        return arrays

    def get_or_write_many(
        self,
        keys: dict[str, str],
        primary: str,
        write: Callable[[dict[str, NpyWriter]], None],
        meta: dict,
        shapes: dict[str, tuple],
    ) -> dict[str, np.ndarray]:
        """`get_or_compute_many` for arrays larger than memory: written in chunks, returned memory-mapped.

        On a miss, `write(sinks)` appends the rows of each output to `sinks[name]` (an
        `NpyWriter` of `shapes[name]`) as they are computed; each finished file is renamed
        into place and mapped. An exception in `write` (a stop request) leaves no entry.

        Raises:
            FeatureCacheError: the folder cannot be written (these arrays have nowhere else to go).
        """
        key = keys[primary]
        if key in self._memory:
            return {primary: self._memory[key]}
        array = self.load(key, shapes[primary], mmap=True)
        if array is not None and all(self.path(k).exists() for n, k in keys.items() if n != primary):
            self.hits += 1
            self.reused.add(meta.get("split", "?"))
            self._memory[key] = array
            return {primary: array}
        self.misses += 1
        sinks: dict[str, NpyWriter] = {}
        try:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                for name, k in keys.items():
                    sinks[name] = NpyWriter(self.path(k), shapes[name])
                write(sinks)
                for name, k in keys.items():
                    sinks[name].close()
                    self.bytes_written += sinks[name].nbytes
                    atomic_write_bytes(
                        self.root / f"{k}.json", json.dumps({**meta, "output": name}, indent=2, default=str).encode()
                    )
            except OSError as exc:
                raise FeatureCacheError(
                    f"feature cache {self.root}: cannot write ({exc.strerror or exc}); this split is larger than "
                    "compute.in_memory_mb, so its features must go to disk: free space there or choose another "
                    "folder (--cache-dir or TLS_CACHE_DIR)"
                ) from None
        except BaseException:
            for sink in sinks.values():
                sink.discard()
            raise
        self.evict(keep=set(self._memory) | set(keys.values()))
        arrays = {name: np.load(self.path(k), mmap_mode="r", allow_pickle=False) for name, k in keys.items()}
        self._memory[key] = arrays[primary]
        return arrays


def extract_features(
    fn,
    batches: Iterable,
    total: int,
    progress: Progress | None = None,
    label: str = "",
    first_batch: dict | None = None,
    sinks: list[NpyWriter] | None = None,
) -> list[np.ndarray] | None:
    """Passes batches of uint8 pixels through `fn` (pixels -> tuple of feature tensors).

    Returns one array per output of `fn`, in compact dtype; or, given `sinks` (one
    `NpyWriter` per output), appends each batch's rows to them and returns None, so no
    more than a batch is held. `batches` may be a tf.data dataset that decodes files in
    parallel while the base runs on the previous batch. `first_batch`, if given, receives
    the seconds and images of the first batch (which also pays for tracing), so a
    steady-state rate can be told apart from the one-time cost.
    """
    outs: list[list[np.ndarray]] | None = None
    done = 0
    t0 = time.perf_counter()
    for batch in batches:
        result = fn(batch)
        result = result if isinstance(result, (tuple, list)) else (result,)
        if outs is None:
            outs = [[] for _ in result]
        for i, (acc, r) in enumerate(zip(outs, result)):
            if sinks is not None:
                sinks[i].append(np.asarray(r, dtype=np.float32))
            else:
                acc.append(compact(np.asarray(r, dtype=np.float32)))
        if outs is not None and done == 0 and first_batch is not None:
            first_batch.update(seconds=time.perf_counter() - t0, images=int(result[0].shape[0]))
        done += int(result[0].shape[0])
        if progress:
            progress({"type": "features", "split": label, "done": min(done, total), "total": total})
    if outs is None:
        raise ValueError(f"no images to extract features from ({label})")
    return None if sinks is not None else [np.concatenate(acc, axis=0) for acc in outs]
