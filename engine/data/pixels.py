"""Loading pixels for training and inference: arrays, a tf.data stream, single files, and content keys.

Every reader here goes through `engine.data.images.decode_image`, the one decoder, so training,
feature extraction, previews and inference see the same pixels. `fingerprint_files` keys the
feature cache on what the files hold.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engine.data import images

FINGERPRINT_SAMPLE = 64 * 1024  # bytes hashed from each end of every file


def decode_workers() -> int:
    """Threads for decoding: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fingerprint_files(files: list[str]) -> str:
    """Content key of a file list: path, size, mtime and a hash of each file's first and last 64 KB.

    Why the content sample: an edit that keeps the size and restores the mtime (some sync and
    copy tools do) would otherwise reuse features of the old pixels. Most photos are smaller
    than 128 KB, so this reads them whole; large ones cost two small reads.
    """
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}|".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(FINGERPRINT_SAMPLE))
            if st.st_size > 2 * FINGERPRINT_SAMPLE:
                fh.seek(-FINGERPRINT_SAMPLE, os.SEEK_END)
            h.update(fh.read(FINGERPRINT_SAMPLE))
        h.update(b"\n")
    return h.hexdigest()[:20]


def image_dataset(files: list[str], image_size: int, batch_size: int = 64):
    """A tf.data stream of uint8 (B, S, S, 3) batches decoded from `files` in parallel, in file order.

    Each file goes through `images.decode_image`, the decoder every other reader uses, called
    from tf.data's parallel map (Pillow releases the GIL while it decodes and resizes).
    Prefetching lets decoding of the next batches overlap the network's work on this one.
    A file that became unreadable since `scan` stops the stream with an error naming it.
    """
    import tensorflow as tf

    def decode(path: bytes) -> np.ndarray:
        return images.decode_image(os.fsdecode(path), image_size)

    def decode_op(path):
        pixels = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(pixels, (image_size, image_size, 3))

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(files), dtype=tf.string))
    ds = ds.map(decode_op, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_images(files: list[str], image_size: int) -> np.ndarray:
    """Decodes and resizes files on a thread pool; returns uint8 (N, S, S, 3) in file order.

    Decoded images are kept as uint8 in memory (150 px: 67 KB each) so the K augmented
    views pay for augmentation and the network, not for JPEG decoding K times. Threads
    straight into one preallocated array skip tf.data's per-element overhead (measured on
    the 3000 cats-vs-dogs photos at 150 px, 2 cores: see docs/results.md's decode numbers).

    Raises:
        images.ImageDecodeError: a file cannot be decoded (the message names it).
    """
    out = np.empty((len(files), image_size, image_size, 3), np.uint8)

    def fill(i: int) -> None:
        out[i] = images.decode_image(files[i], image_size)

    with ThreadPoolExecutor(max_workers=decode_workers()) as pool:
        for _ in pool.map(fill, range(len(files))):
            pass
    return out


def read_image_file(path: str, image_size: int) -> np.ndarray:
    """One image file as float32 (1, S, S, 3) in [0, 255], exactly as training loads it.

    Raises:
        images.ImageDecodeError: not a regular file or not readable (the message names it).
    """
    return images.decode_image(path, image_size)[None].astype(np.float32)


def image_bytes_to_array(data: bytes, image_size: int, name: str | None = None) -> np.ndarray:
    """Encoded image bytes as float32 (1, S, S, 3) in [0, 255], exactly as training loads files.

    Raises:
        images.ImageDecodeError: not a readable image; the message starts with `name` if given.
    """
    return images.decode_image(bytes(data), image_size, name=name)[None].astype(np.float32)
