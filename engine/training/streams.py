"""The tf.data streams a stage trains and is scored on, read from cached features (in RAM or memory-mapped)."""

from __future__ import annotations

import numpy as np

from engine.training.features import read_rows, row_dataset

VAL_BATCH = 100  # features per step when validating or scoring the top (throughput only)


def without_autotune(ds):
    """Turns tf.data's autotuning off: these streams are in-memory gathers with nothing to tune,
    and tearing down an autotuned iterator after fit was measured to stall ~12 s in about
    half the runs (waiting on tf.data's background thread)."""
    import tensorflow as tf

    opts = tf.data.Options()
    opts.autotune.enabled = False
    return ds.with_options(opts)


def train_dataset(views: list[np.ndarray], labels: np.ndarray, *, batch: int, seed: int, phase: int, epochs: int):
    """A phase's training stream, `epochs` epochs long: epoch i is view i mod K, in a seeded shuffle.

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
    last epoch, fit was measured to end without a stall (docs/data.md, "Datasets larger than memory").
    """
    import tensorflow as tf

    n, k = len(labels), len(views)
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

    def one_batch(view, idx):
        return tf.cast(gather(view, idx), tf.float32), tf.gather(y, idx)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), phase * 1_000_003 + e])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch).map(lambda idx: one_batch(e % k, idx))

    return without_autotune(tf.data.Dataset.range(epochs).flat_map(epoch).prefetch(2))


def feature_dataset(x: np.ndarray, y: np.ndarray | None = None):
    """Batches of features as float32 (with their labels when `y` is given), in order: validation, scoring.

    Memory-mapped features (a streamed split) are read from their cache file in the graph;
    arrays in memory are sliced as they are (cast per batch, never copied whole to float32).
    """
    import tensorflow as tf

    xs = row_dataset(x) if isinstance(x, np.memmap) else tf.data.Dataset.from_tensor_slices(x)
    if y is None:
        return without_autotune(xs.batch(VAL_BATCH).map(lambda a: tf.cast(a, tf.float32)))
    ds = tf.data.Dataset.zip((xs, tf.data.Dataset.from_tensor_slices(y))).batch(VAL_BATCH)
    return without_autotune(ds.map(lambda a, b: (tf.cast(a, tf.float32), b)))
