"""Image-folder datasets: scan and validate a folder, split it, load it with tf.data.

Two layouts are accepted:
  * split layout: DATA/{train,validation[,test]}/<class>/*  (the lecture's)
  * flat layout:  DATA/<class>/*  -> split reproducibly (stratified, seeded)

`scan_dataset` never raises on a bad image: it lists it in `bad_files` with a reason, and
every later step uses only the usable files. It does raise `DatasetError` (with a message
that names the folder and what to do) when the layout itself is unusable.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import shutil
import stat
import statistics
import zipfile
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

SPLIT_ALIASES = {"train": "train", "validation": "validation", "val": "validation", "valid": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")
# Formats tf.io.decode_image reads; anything else is reported as unsupported.
DECODABLE_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP"}
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx"}
IMBALANCE_RATIO = 1.5  # largest / smallest class count above which we warn


class DatasetError(ValueError):
    """The dataset folder cannot be used as given; the message says why and what to do."""


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


def _is_junk(path: Path) -> bool:
    name = path.name.lower()
    return name in JUNK_NAMES or name.startswith("._") or name.startswith(".")


def _list_images(folder: Path) -> list[Path]:
    """Every regular file under `folder` (recursively), minus OS junk, sorted for reproducibility."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d.lower() not in JUNK_DIRS and not d.startswith("."))
        for name in filenames:
            p = Path(dirpath) / name
            if not _is_junk(p):
                out.append(p)
    return sorted(out)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.lower() not in JUNK_DIRS and not p.name.startswith("."))


def check_image(path: Path) -> tuple[tuple[int, int], str] | str:
    """Returns ((width, height), format) for a usable image, or the reason it is unusable."""
    try:
        with Image.open(path) as im:
            fmt = im.format or "?"
            size = im.size
            im.load()  # full decode: catches truncated files that a header check would pass
    except Exception as exc:  # PIL raises many types; all mean "cannot use this file"
        return f"not a readable image ({type(exc).__name__}: {exc})"
    if fmt not in DECODABLE_FORMATS:
        return f"unsupported format {fmt}; convert it to JPEG or PNG"
    if min(size) < 1:
        return "image has zero width or height"
    return size, fmt


def _split_layout_dirs(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in _class_dirs(root):
        split = SPLIT_ALIASES.get(child.name.lower())
        if split:
            if split in found:
                raise DatasetError(f"{root}: both {found[split].name}/ and {child.name}/ look like the {split} split; keep one")
            found[split] = child
    return found


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


def scan_dataset(path: str | os.PathLike, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 42) -> DatasetReport:
    """Scans a dataset folder: layout, classes, usable files per split, bad files, statistics.

    Raises:
        DatasetError: the folder is missing, has fewer than two classes, or its splits
            disagree on the class names.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: folder not found; give the path of a folder with one sub-folder per class")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; unzip it first or give the folder that holds the class folders")

    split_dirs = _split_layout_dirs(root)
    raw: dict[str, dict[str, list[Path]]] = {}
    if split_dirs:
        if "train" not in split_dirs or "validation" not in split_dirs:
            have = ", ".join(sorted(split_dirs))
            raise DatasetError(f"{root}: found split folder(s) {have} but need both train/ and validation/ (test/ is optional)")
        layout = "split"
        for split, d in split_dirs.items():
            raw[split] = {c.name: _list_images(c) for c in _class_dirs(d)}
        names = {s: sorted(v) for s, v in raw.items()}
        reference = names["train"]
        for split, cls_names in names.items():
            if cls_names != reference:
                missing = sorted(set(reference) - set(cls_names))
                extra = sorted(set(cls_names) - set(reference))
                detail = "; ".join(x for x in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "") if x)
                raise DatasetError(f"{split_dirs[split]}: class folders differ from train/ ({detail}); every split needs the same class folders")
    else:
        layout = "flat"
        raw["all"] = {c.name: _list_images(c) for c in _class_dirs(root)}

    classes = sorted(next(iter(raw.values())).keys())
    if len(classes) < 2:
        raise DatasetError(f"{root}: found {len(classes)} class folder(s) {classes}; need at least 2 (one sub-folder per class)")

    bad: list[BadFile] = []
    formats: Counter[str] = Counter()
    sizes: list[tuple[int, int]] = []
    usable: dict[str, dict[str, list[str]]] = {}
    for split, by_class in raw.items():
        usable[split] = {}
        for cls in classes:
            keep = []
            for p in by_class.get(cls, []):
                result = check_image(p)
                if isinstance(result, str):
                    bad.append(BadFile(str(p), result))
                    continue
                size, fmt = result
                formats[fmt] += 1
                sizes.append(size)
                keep.append(str(p))
            usable[split][cls] = keep

    if layout == "flat":
        files = stratified_split(usable["all"], fractions, seed)
    else:
        files = usable

    report = DatasetReport(
        root=str(root), layout=layout, classes=classes, files=files, bad_files=bad, formats=dict(formats), sizes=sizes
    )
    if sizes:
        ws, hs = [s[0] for s in sizes], [s[1] for s in sizes]
        report.size_stats = {
            "width": {"min": min(ws), "median": int(statistics.median(ws)), "max": max(ws)},
            "height": {"min": min(hs), "median": int(statistics.median(hs)), "max": max(hs)},
        }
    report.warnings = _warnings(report)
    return report


def _warnings(report: DatasetReport) -> list[str]:
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
            raise DatasetError(f"{report.root}: the {split} split has no usable images of class(es) {', '.join(empty)}; add some or fix the bad files listed by `scan`")


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


def fingerprint_files(files: list[str]) -> str:
    """Content key of a file list: paths, sizes and mtimes (a changed file changes the key)."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def decode_and_resize(data, image_size: int):
    """Decodes encoded image bytes to an RGB float32 tensor of (image_size, image_size, 3) in [0, 255].

    Shared by training and inference so both see identical pixels. Bilinear resize with
    antialiasing (the image is squashed to a square, as Keras' own loaders do).
    """
    import tensorflow as tf

    img = tf.io.decode_image(data, channels=3, expand_animations=False)
    img = tf.image.resize(img, (image_size, image_size), method="bilinear", antialias=True)
    return tf.clip_by_value(img, 0.0, 255.0)


def image_dataset(files: list[str], image_size: int, batch_size: int = 64):
    """A tf.data stream of uint8 (B, S, S, 3) batches decoded from `files` in parallel, in file order.

    Prefetching lets decoding of the next batches overlap the network's work on this one.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.map(lambda p: tf.cast(tf.round(decode_and_resize(tf.io.read_file(p), image_size)), tf.uint8),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_images(files: list[str], image_size: int, batch_size: int = 64) -> np.ndarray:
    """Decodes and resizes files with a parallel tf.data pipeline; returns uint8 (N, S, S, 3).

    Decoded images are kept as uint8 in memory (150 px: 67 KB each) so the K augmented
    views pay for augmentation and the network, not for JPEG decoding K times.
    """
    if not files:
        return np.zeros((0, image_size, image_size, 3), np.uint8)
    return np.concatenate([b.numpy() for b in image_dataset(files, image_size, batch_size)], axis=0)


def read_image_file(path: str, image_size: int) -> np.ndarray:
    """One image file as float32 (1, S, S, 3) in [0, 255], exactly as training loads it."""
    with open(path, "rb") as fh:
        return image_bytes_to_array(fh.read(), image_size)


def image_bytes_to_array(data: bytes, image_size: int) -> np.ndarray:
    """Encoded image bytes (any format PIL reads) as float32 (1, S, S, 3) in [0, 255].

    Formats tf.io cannot decode (TIFF, …) are converted to PNG with PIL first.
    """
    import io

    import tensorflow as tf

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            if fmt not in DECODABLE_FORMATS:
                buf = io.BytesIO()
                im.convert("RGB").save(buf, "PNG")
                data = buf.getvalue()
    except Exception as exc:
        raise DatasetError(f"not a readable image ({type(exc).__name__}); upload a JPEG, PNG, BMP or WebP file") from exc
    arr = decode_and_resize(tf.constant(data), image_size)
    return np.round(arr.numpy())[None].astype(np.float32)


# --- Importing a zip (the dashboard's upload, `python -m engine import-zip`) ---------------

ZIP_LIMIT_ENV = {"max_bytes": "TLS_ZIP_MAX_BYTES", "max_files": "TLS_ZIP_MAX_FILES", "max_ratio": "TLS_ZIP_MAX_RATIO"}
RATIO_FLOOR = 1 << 20  # entries (and totals) under 1 MiB may compress any amount: small text files do, harmlessly
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ZipLimits:
    """What an uploaded zip may unpack to: checked on the headers first, then on the bytes written."""

    max_bytes: int = 2 << 30  # bytes, total uncompressed (2 GiB)
    max_files: int = 50_000  # entries, folders included
    max_ratio: float = 100.0  # uncompressed / compressed, per entry and overall; images barely compress

    @classmethod
    def from_env(cls) -> ZipLimits:
        """Defaults, overridden by TLS_ZIP_MAX_BYTES / TLS_ZIP_MAX_FILES / TLS_ZIP_MAX_RATIO."""
        values = {}
        for name, var in ZIP_LIMIT_ENV.items():
            raw = os.environ.get(var, "").strip()
            if not raw:
                continue
            try:
                value = float(raw) if name == "max_ratio" else int(raw)
            except ValueError:
                value = 0
            if not value > 0:  # also refuses nan
                raise DatasetError(f"{var}={raw!r} is not a positive number; fix or unset it")
            values[name] = value
        return cls(**values)


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{int(n):,} bytes"


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why one entry must not be unpacked, or None. Uses the raw name: zipfile already cut it at NUL."""
    name = info.orig_filename
    mode = info.external_attr >> 16  # Unix mode bits, when the zip was made on Unix
    if not name or "\0" in name:
        return "has an empty or NUL-containing name"
    if "\\" in name:
        return "uses backslashes (Windows paths can climb out of the folder)"
    if name.startswith("/") or _DRIVE.match(name):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "climbs out of the folder with '..'"
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file or folder"
    if info.flag_bits & 0x1:
        return "is encrypted; upload an unencrypted zip"
    return None


def _check_entries(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """Every entry is checked before anything is written, so a bad zip leaves nothing behind."""
    for info in infos:
        problem = _entry_problem(info)
        if problem:
            raise DatasetError(f"zip entry {info.orig_filename!r} {problem}; refusing to unpack the zip")
    if len(infos) > limits.max_files:
        raise DatasetError(f"the zip holds {len(infos):,} entries, over the limit of {limits.max_files:,}; set {ZIP_LIMIT_ENV['max_files']} to raise it")
    total, packed = sum(i.file_size for i in infos), sum(i.compress_size for i in infos)
    if total > limits.max_bytes:
        raise DatasetError(f"the zip unpacks to {_size(total)}, over the limit of {_size(limits.max_bytes)}; set {ZIP_LIMIT_ENV['max_bytes']} (bytes) to raise it")
    ratios = [(f"entry {i.filename!r}", i.file_size, i.compress_size) for i in infos] + [("as a whole", total, packed)]
    for label, size, csize in ratios:
        if size > RATIO_FLOOR and size > limits.max_ratio * max(csize, 1):
            raise DatasetError(
                f"the zip {label} expands {size / max(csize, 1):,.0f}x, over the limit of {limits.max_ratio:g}x "
                f"(a zip bomb?); set {ZIP_LIMIT_ENV['max_ratio']} to raise it"
            )


def _extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dest: Path, limits: ZipLimits) -> None:
    base = dest.resolve()
    written = 0
    for info in infos:
        target = base.joinpath(*(p for p in info.filename.split("/") if p not in ("", ".")))
        if not target.resolve().is_relative_to(base):  # belt and braces after _entry_problem
            raise DatasetError(f"zip entry {info.filename!r} points outside the folder; refusing to unpack the zip")
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)  # counted, not trusted: headers can understate sizes
                    if written > limits.max_bytes:
                        raise DatasetError(
                            f"the zip unpacks to more than {_size(limits.max_bytes)} although its headers say less; "
                            f"set {ZIP_LIMIT_ENV['max_bytes']} (bytes) to raise the limit"
                        )
                    out.write(chunk)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error) as exc:
            raise DatasetError(f"zip entry {info.filename!r} cannot be unpacked ({type(exc).__name__}: {exc}); re-create the zip") from None
        except OSError as exc:
            raise DatasetError(f"cannot write zip entry {info.filename!r} into {dest} ({exc.strerror or exc}); free disk space or re-create the zip") from None


def _empty_folder(folder: Path, remove: bool) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if remove:
        folder.rmdir()


def import_zip(zip_source: str | os.PathLike | bytes | BinaryIO, dest: str | os.PathLike, limits: ZipLimits | None = None) -> Path:
    """Unpacks a dataset zip into `dest` after checking every entry; returns the dataset root.

    Nothing is written until all entries pass: no absolute paths, `..`, drive letters,
    backslashes, symlinks or special files; entry count, total size and compression ratio
    within `limits`. While writing, the bytes actually produced are counted as well.

    Args:
        zip_source: a path, the zip's bytes, or a binary file object (e.g. an upload).
        dest: a new or empty folder to unpack into.
        limits: the bounds; default ZipLimits.from_env().

    Returns:
        The single top-level folder when the zip holds just one (OS junk such as __MACOSX/
        ignored), else `dest`.

    Raises:
        DatasetError: not a zip, a refused entry or a limit exceeded (the message names the
            env var that raises it), or `dest` not empty. `dest` is then left empty, and
            removed if this call created it.
    """
    limits = limits or ZipLimits.from_env()
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DatasetError(f"{dest}: not an empty folder; give a new or empty folder to unpack the zip into")
    if isinstance(zip_source, (bytes, bytearray)):
        zip_source = io.BytesIO(zip_source)
    try:
        zf = zipfile.ZipFile(zip_source)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise DatasetError(f"not a zip file ({exc}); upload a .zip of DATA/<class>/ folders") from None
    except OSError as exc:
        raise DatasetError(f"cannot read the zip ({exc.strerror or exc})") from None
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zf:
            infos = zf.infolist()
            _check_entries(infos, limits)
            _extract(zf, infos, dest, limits)
    except BaseException:
        _empty_folder(dest, remove=created)
        raise
    entries = [p for p in dest.iterdir() if p.name.lower() not in JUNK_DIRS and not _is_junk(p)]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
