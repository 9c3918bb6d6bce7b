"""What a dataset scan found (`DatasetReport`), the warnings it raises, and whether it can be trained on.

Plain data, JSON-serialisable via `DatasetReport.to_dict`; built by `scan_dataset`
(engine/data/scan.py) and read by the split (engine/data/splits.py), training and the pages.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from engine.data.layout import DatasetError

IMBALANCE_RATIO = 1.5  # largest / smallest class count above which we warn


@dataclass
class BadFile:
    path: str
    reason: str


@dataclass
class DatasetReport:
    """What `scan_dataset` found. Plain data, JSON-serialisable via `to_dict`."""

    root: str
    layout: str  # "split" or "flat"
    classes: list[str]
    files: dict[str, dict[str, list[str]]]  # split -> class -> usable file paths (sorted)
    bad_files: list[BadFile] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    size_stats: dict[str, dict[str, int]] = field(default_factory=dict)  # width/height -> min/median/max
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of every usable image
    warnings: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return {s: {c: len(fs) for c, fs in by_class.items()} for s, by_class in self.files.items()}

    @property
    def num_images(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "layout": self.layout,
            "classes": self.classes,
            "splits": self.counts,
            "num_images": self.num_images,
            "bad_files": [asdict(b) for b in self.bad_files],
            "formats": self.formats,
            "image_size": self.size_stats,
            "warnings": self.warnings,
        }


def size_stats(sizes: list[tuple[int, int]]) -> dict[str, dict[str, int]]:
    """Min / median / max of the widths and heights, or {} when there are no images."""
    if not sizes:
        return {}
    ws, hs = [s[0] for s in sizes], [s[1] for s in sizes]
    return {
        "width": {"min": min(ws), "median": int(statistics.median(ws)), "max": max(ws)},
        "height": {"min": min(hs), "median": int(statistics.median(hs)), "max": max(hs)},
    }


def report_warnings(report: DatasetReport) -> list[str]:
    """Empty classes per split, class imbalance in train, and a count of the bad files."""
    out = []
    train = report.counts.get("train", {})
    for split, counts in report.counts.items():
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            out.append(f"{split}: no usable images for class(es) {', '.join(empty)}")
    if train and min(train.values()) > 0:
        hi, lo = max(train.values()), min(train.values())
        if hi / lo > IMBALANCE_RATIO:
            big = max(train, key=train.get)
            small = min(train, key=train.get)
            out.append(
                f"class imbalance: train has {hi} '{big}' but only {lo} '{small}' images ({hi / lo:.1f}x); "
                "accuracy can look good by predicting the majority class, check the confusion matrix"
            )
    if report.bad_files:
        out.append(f"{len(report.bad_files)} unreadable or unsupported file(s) will be skipped (listed in bad_files)")
    return out


def require_trainable(report: DatasetReport) -> None:
    """Raises DatasetError unless train and validation have images of every class."""
    for split in ("train", "validation"):
        counts = report.counts.get(split, {})
        empty = [c for c in report.classes if counts.get(c, 0) == 0]
        if empty:
            raise DatasetError(
                f"{report.root}: the {split} split has no usable images of class(es) {', '.join(empty)}; "
                "add some or fix the bad files listed by `scan`"
            )
