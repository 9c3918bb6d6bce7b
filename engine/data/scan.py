"""Scanning a dataset folder: read its layout, judge every file with the decoder, build the report.

Every file is judged by `engine.data.images`, the one decoder, so `scan`, training and inference
agree on what is an image. `scan_dataset` never raises on a bad image: it lists it in
`bad_files` with a reason, and every later step uses only the usable files. It does raise
`DatasetError` (with a message that names the folder and what to do) when the layout itself
is unusable.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine.data import images
from engine.data.image_checks import ImageChecks
from engine.data.layout import DatasetError, read_layout
from engine.data.pixels import decode_workers
from engine.data.report import BadFile, DatasetReport, report_warnings, size_stats
from engine.data.splits import stratified_split


def scan_dataset(
    path: str | os.PathLike,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 42,
    checks_dir: str | os.PathLike | None = None,
) -> DatasetReport:
    """Scans a dataset folder: layout, classes, usable files per split, bad files, statistics.

    A flat layout is split with `stratified_split(fractions, seed)`. With `checks_dir` (the
    feature cache folder), what the decoder said of each file is remembered there and reused
    while the file is unchanged (engine/data/image_checks.py).

    Raises:
        DatasetError: the folder is missing, has fewer than two classes, or its splits
            disagree on the class names.
    """
    root = _dataset_root(path)
    notes: list[str] = []  # links and folders left out, reported as warnings
    layout, raw = read_layout(root, notes)
    classes = sorted(next(iter(raw.values())).keys())
    if len(classes) < 2:
        raise DatasetError(f"{root}: found {len(classes)} class folder(s) {classes}; need at least 2 (one sub-folder per class)")
    checked = _check_images([p for by_class in raw.values() for cls in classes for p in by_class.get(cls, [])], checks_dir)
    usable, bad, formats, sizes = _sort_files(raw, classes, checked)
    files = stratified_split(usable["all"], fractions, seed) if layout == "flat" else usable
    report = DatasetReport(
        root=str(root),
        layout=layout,
        classes=classes,
        files=files,
        bad_files=bad,
        formats=formats,
        size_stats=size_stats(sizes),
        sizes=sizes,
    )
    report.warnings = notes + report_warnings(report)
    return report


def _dataset_root(path: str | os.PathLike) -> Path:
    """The dataset folder, or DatasetError when it is missing or not a folder."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: folder not found; give the path of a folder with one sub-folder per class")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; unzip it first or give the folder that holds the class folders")
    return root


def _sort_files(raw: dict[str, dict[str, list[Path]]], classes: list[str], checked: dict[Path, images.ImageInfo | str]):
    """Splits the candidates into usable files (split -> class -> paths) and bad files; counts formats and sizes."""
    bad: list[BadFile] = []
    formats: Counter[str] = Counter()
    sizes: list[tuple[int, int]] = []
    usable: dict[str, dict[str, list[str]]] = {}
    for split, by_class in raw.items():
        usable[split] = {}
        for cls in classes:
            keep = []
            for p in by_class.get(cls, []):
                result = checked[p]
                if isinstance(result, str):
                    bad.append(BadFile(str(p), result))
                    continue
                formats[result.format] += 1
                sizes.append(result.size)
                keep.append(str(p))
            usable[split][cls] = keep
    return usable, bad, dict(formats), sizes


def _check_images(paths: list[Path], checks_dir: str | os.PathLike | None = None) -> dict[Path, images.ImageInfo | str]:
    """Runs the decoder over every file (in threads: Pillow releases the GIL while decoding).

    A file is usable only if the decoder that training and inference use reads it in full;
    a non-regular file (FIFO, socket, device) is refused by it without being opened. With
    `checks_dir`, unchanged files keep their earlier result and only the others are decoded.
    """
    checks = ImageChecks(checks_dir) if checks_dir else None
    results: dict[Path, images.ImageInfo | str] = {}
    todo = []
    for p in paths:
        known = checks.get(p) if checks else None
        if known is None:
            todo.append(p)
        else:
            results[p] = known
    with ThreadPoolExecutor(max_workers=decode_workers()) as pool:
        results.update(zip(todo, pool.map(images.check_image, todo)))
    if checks and todo:
        for p in todo:
            checks.put(p, results[p])
        checks.save()
    return results
