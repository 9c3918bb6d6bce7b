"""A dataset ready for a run: scanned, checked, split, with its decoded images memoised per size."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from engine.data.layout import SPLITS
from engine.data.pixels import fingerprint_files, image_dataset, load_images
from engine.data.report import DatasetReport, require_trainable
from engine.data.scan import scan_dataset
from engine.data.splits import Split, limit_per_class, split_arrays
from engine.training.plan import EXTRACT_BATCH


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
            self._fingerprints[split] = fingerprint_files(self.splits[split].files)
        return self._fingerprints[split]

    def images(self, split: str, image_size: int) -> np.ndarray:
        """Decoded uint8 images of a split, kept for the run (augmented views need them K times)."""
        key = (split, image_size)
        if key not in self._images:
            self._images[key] = load_images(self.splits[split].files, image_size)
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
            return image_dataset(self.splits[split].files, image_size, EXTRACT_BATCH)
        arr = self.images(split, image_size)
        return (arr[s : s + EXTRACT_BATCH] for s in range(0, len(arr), EXTRACT_BATCH))


def prepare_data(
    path: str,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 42,
    checks_dir: str | os.PathLike | None = None,
    max_per_class: int = 0,
) -> PreparedData:
    """Scans a dataset folder and checks it can be trained on (raises DatasetError if not).

    `checks_dir`: where the decoder's verdict on each file is remembered (engine/data/scan.py).
    `max_per_class`: at most this many photos per class, drawn with `seed` (data/splits.limit_per_class; 0 = all),
    here so that runs, estimates, the finder, the feature map and data health all see the same sample.
    """
    report = scan_dataset(path, fractions=fractions, seed=seed, checks_dir=checks_dir)
    if max_per_class > 0:
        report = limit_per_class(report, max_per_class, seed)
    require_trainable(report)  # N below the splits' count leaves a class without validation photos: said, not trained
    splits = {s: sp for s in SPLITS if (sp := split_arrays(report, s)) is not None}
    return PreparedData(report, splits)
