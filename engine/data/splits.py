"""Splits: a flat dataset's seeded, stratified train/validation/test split, and one split's files and labels.

Labels are indices into the report's sorted class list, so every reader agrees on them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from engine.data.layout import SPLITS
from engine.data.report import DatasetReport


def stratified_split(files_by_class: dict[str, list[str]], fractions: tuple[float, float, float], seed: int) -> dict[str, dict[str, list[str]]]:
    """Splits each class's files into train/validation/test with a seeded shuffle.

    Per class, so every split keeps the class proportions; rounding puts leftovers in train.
    Each class with >= 3 files gets at least one validation image (and one test image when
    the test fraction is > 0).
    """
    _, val_f, test_f = fractions
    out: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for cls, files in files_by_class.items():
        shuffled = sorted(files)
        random.Random(f"{seed}:{cls}").shuffle(shuffled)
        n = len(shuffled)
        n_val = max(1 if n >= 3 else 0, round(n * val_f))
        n_test = max(1 if (n >= 3 and test_f > 0) else 0, round(n * test_f))
        out["validation"][cls] = sorted(shuffled[:n_val])
        out["test"][cls] = sorted(shuffled[n_val : n_val + n_test])
        out["train"][cls] = sorted(shuffled[n_val + n_test :])
    if not any(out["test"].values()):
        del out["test"]
    return out


@dataclass
class Split:
    """Files and integer labels (index into the sorted class list) of one split."""

    files: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.files)


def split_arrays(report: DatasetReport, split: str) -> Split | None:
    """The files and labels of one split in a stable order, or None if the split is absent."""
    by_class = report.files.get(split)
    if not by_class or not any(by_class.values()):
        return None
    files, labels = [], []
    for idx, cls in enumerate(report.classes):
        for f in by_class.get(cls, []):
            files.append(f)
            labels.append(idx)
    return Split(files, np.asarray(labels, dtype=np.int32))
