"""Splits: a flat dataset's seeded, stratified train/validation/test split, and one split's files and labels.

Labels are indices into the report's sorted class list, so every reader agrees on them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np

from engine.data.layout import SPLITS
from engine.data.report import DatasetReport


def stratified_split(
    files_by_class: dict[str, list[str]], fractions: tuple[float, float, float], seed: int
) -> dict[str, dict[str, list[str]]]:
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


def sample_per_class(files: dict[str, dict[str, list[str]]], max_per_class: int, seed: int) -> dict[str, dict[str, list[str]]]:
    """At most `max_per_class` files of each class over all splits (0 = all), drawn with `seed`: a first try on a big folder.

    Drawn after the split, per split and class, in the splits' proportions (each split with photos keeps one first while N
    allows), so a sampled run's validation and test photos are some of the full run's: the same seed gives the same
    photos, on any machine, and another seed others."""
    if max_per_class <= 0:
        return files
    out: dict[str, dict[str, list[str]]] = {split: {} for split in files}
    classes = sorted({cls for by_class in files.values() for cls in by_class})
    for cls in classes:
        have = {split: sorted(by_class.get(cls, [])) for split, by_class in files.items()}
        keep = _shares(max_per_class, {split: len(fs) for split, fs in have.items()})
        for split, fs in have.items():
            if cls in files[split]:
                out[split][cls] = sorted(random.Random(f"{seed}:{split}:{cls}").sample(fs, keep[split]))
    return out


def _shares(limit: int, sizes: dict[str, int]) -> dict[str, int]:
    """How many files each split keeps of one class: all when the class has at most `limit`, else `limit` in proportion."""
    total = sum(sizes.values())
    if total <= limit:
        return dict(sizes)
    share = {s: limit * n / total for s, n in sizes.items()}
    least = {s: int(n > 0 and limit >= sum(1 for m in sizes.values() if m)) for s, n in sizes.items()}  # a class needs validation
    keep = {s: max(least[s], int(share[s])) for s in sizes}
    while sum(keep.values()) > limit:  # the floor of one each overshot: take from the split furthest above its share
        s = max((s for s in sizes if keep[s] > least[s]), key=lambda s: (keep[s] - share[s], _order(s)))
        keep[s] -= 1
    while sum(keep.values()) < limit:  # largest remainder: the split furthest below its share gets the next photo
        s = max((s for s in sizes if keep[s] < sizes[s]), key=lambda s: (share[s] - keep[s], -_order(s)))
        keep[s] += 1
    return keep


def _order(split: str) -> int:
    """Ties go to train, then validation (it picks the best epoch), then test."""
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


def limit_per_class(report: DatasetReport, max_per_class: int, seed: int) -> DatasetReport:
    """`report` with at most `max_per_class` usable files per class (`sample_per_class`), and a warning saying so."""
    if max_per_class <= 0:
        return report
    files = sample_per_class(report.files, max_per_class, seed)
    kept, total = (sum(len(fs) for by_class in f.values() for fs in by_class.values()) for f in (files, report.files))
    said = f"a sample: at most {max_per_class} photos per class (seed {seed}), {kept} of {total} usable images"
    return replace(report, files=files, warnings=[*report.warnings, said])


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
