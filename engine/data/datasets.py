"""Image-folder datasets: scan and validate a folder, split it, load it with tf.data.

Two layouts are accepted:
  * split layout: DATA/{train,validation[,test]}/<class>/*  (the lecture's); `val`/`valid`
    also name the validation split. It applies only when those folders hold class folders.
  * flat layout:  DATA/<class>/*  -> split reproducibly (stratified, seeded); classes may
    be called `train`, `val` or `test` when their images sit directly inside.

Every file is judged and decoded by `engine.data.images`, the one decoder, so `scan`, training
and inference agree on what is an image. `scan_dataset` never raises on a bad image: it
lists it in `bad_files` with a reason, and every later step uses only the usable files. It
does raise `DatasetError` (with a message that names the folder and what to do) when the
layout itself is unusable.
"""

from __future__ import annotations

from engine.errors import StudioError

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.data import images
from engine.data.image_checks import ImageChecks

SPLIT_ALIASES = {"train": "train", "validation": "validation", "val": "validation", "valid": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx"}
IMBALANCE_RATIO = 1.5  # largest / smallest class count above which we warn


class DatasetError(StudioError, ValueError):
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


def _encloses(outer: str, inner: str) -> bool:
    """True when the real path `outer` is `inner` itself or one of its ancestors."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _is_dir(entry: os.DirEntry | Path) -> bool:
    try:
        return entry.is_dir()  # follows symlinks; a broken link is not a folder
    except OSError:
        return False


def _sub_folders(folder: Path, notes: list[str]) -> list[Path]:
    """Sub-folders of `folder` (symlinks followed), sorted, minus OS junk and hidden folders.

    A link to `folder` itself or one of its ancestors (e.g. `ln -s . all`) is left out with a
    note: it would turn the whole dataset into one more class, or loop forever.
    """
    here = os.path.realpath(folder)
    out = []
    for p in sorted(folder.iterdir()):
        if p.name.lower() in JUNK_DIRS or p.name.startswith(".") or not _is_dir(p):
            continue
        real = os.path.realpath(p)
        if _encloses(real, here):
            notes.append(f"ignored {p}: a link to {real}, the folder holding it or one of its parents")
            continue
        out.append(p)
    return out


def _list_images(folder: Path, notes: list[str]) -> list[Path]:
    """Every entry under `folder` that is not a folder (recursively), minus OS junk, sorted.

    Symlinked files and folders are followed (datasets built from links are common). A folder
    seen before on this walk, or enclosing the one being walked (a link loop), is skipped
    with a note. Non-regular files (FIFOs, devices) are listed too: `scan` reports them as
    bad without opening them.
    """
    out: list[Path] = []
    visited = {os.path.realpath(folder)}
    stack = [folder]
    while stack:  # an explicit stack: no recursion limit on deep trees
        current = stack.pop()
        here = os.path.realpath(current)
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            notes.append(f"ignored {current}: cannot list it ({exc.strerror or exc})")
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            p = Path(entry.path)
            if _is_junk(p) or entry.name.lower() in JUNK_DIRS:
                continue
            if not _is_dir(entry):
                out.append(p)
                continue
            real = os.path.realpath(p)
            if real in visited or _encloses(real, here):
                notes.append(f"ignored {p}: a link to {real}, a folder already read (a link loop or a second link to it)")
                continue
            visited.add(real)
            stack.append(p)
    return sorted(out)


def _holds_class_folders(folder: Path) -> bool:
    """True when `folder` has a sub-folder with a file in it: a split of class folders, not a class."""
    for sub in _sub_folders(folder, []):
        for _, dirnames, filenames in os.walk(sub):
            dirnames[:] = [d for d in dirnames if d.lower() not in JUNK_DIRS and not d.startswith(".")]
            if any(not _is_junk(Path(f)) for f in filenames):
                return True
    return False


def _split_layout_dirs(root: Path, notes: list[str]) -> dict[str, Path]:
    """The split folders of a split layout, or {} for a flat layout.

    A folder named like a split (train, val, test, ...) counts as one only when it holds
    class sub-folders with files: flat datasets whose classes happen to be called `val` or
    `test` (images directly inside) stay flat.
    """
    found: dict[str, Path] = {}
    loose: list[Path] = []
    for child in _sub_folders(root, notes):
        split = SPLIT_ALIASES.get(child.name.lower())
        if not split:
            continue
        if not _holds_class_folders(child):
            loose.append(child)
            continue
        if split in found:
            raise DatasetError(f"{root}: both {found[split].name}/ and {child.name}/ look like the {split} split; keep one")
        found[split] = child
    if found:
        notes.extend(f"ignored {d}: named like a split but holds no class folders" for d in loose)
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


def scan_dataset(path: str | os.PathLike, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 42,
                 checks_dir: str | os.PathLike | None = None) -> DatasetReport:
    """Scans a dataset folder: layout, classes, usable files per split, bad files, statistics.

    With `checks_dir` (the feature cache folder), what the decoder said of each file is
    remembered there and reused while the file is unchanged (engine/data/image_checks.py).

    Raises:
        DatasetError: the folder is missing, has fewer than two classes, or its splits
            disagree on the class names.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: folder not found; give the path of a folder with one sub-folder per class")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; unzip it first or give the folder that holds the class folders")

    notes: list[str] = []  # links and folders left out, reported as warnings
    split_dirs = _split_layout_dirs(root, notes)
    raw: dict[str, dict[str, list[Path]]] = {}
    if split_dirs:
        if "train" not in split_dirs or "validation" not in split_dirs:
            have = ", ".join(sorted(split_dirs))
            raise DatasetError(f"{root}: found split folder(s) {have} but need both train/ and validation/ (test/ is optional)")
        layout = "split"
        for split, d in split_dirs.items():
            raw[split] = {c.name: _list_images(c, notes) for c in _sub_folders(d, notes)}
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
        raw["all"] = {c.name: _list_images(c, notes) for c in _sub_folders(root, notes)}

    classes = sorted(next(iter(raw.values())).keys())
    if len(classes) < 2:
        raise DatasetError(f"{root}: found {len(classes)} class folder(s) {classes}; need at least 2 (one sub-folder per class)")

    checked = _check_images([p for by_class in raw.values() for cls in classes for p in by_class.get(cls, [])], checks_dir)
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
    report.warnings = notes + _warnings(report)
    return report


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


def decode_workers() -> int:
    """Threads for decoding: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


FINGERPRINT_SAMPLE = 64 * 1024  # bytes hashed from each end of every file


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


def load_images(files: list[str], image_size: int, batch_size: int = 64) -> np.ndarray:
    """Decodes and resizes files on a thread pool; returns uint8 (N, S, S, 3) in file order.

    Decoded images are kept as uint8 in memory (150 px: 67 KB each) so the K augmented
    views pay for augmentation and the network, not for JPEG decoding K times. Threads
    straight into one preallocated array skip tf.data's per-element overhead (measured on
    the 3000 cats-vs-dogs photos at 150 px, 2 cores: see the README's decode numbers).
    `batch_size` is unused: kept so callers of the tf.data version keep working.

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
    seen: set[str] = set()
    for info in infos:  # a second copy would silently replace the first: which one the user meant is unknowable
        name = "/".join(p for p in info.filename.split("/") if p not in ("", "."))
        if name in seen and not info.is_dir():
            raise DatasetError(f"zip entry {info.filename!r} is in the zip twice; re-create the zip with one copy")
        seen.add(name)
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
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise DatasetError(f"zip entry {info.filename!r} clashes with another entry (a file and a folder of the same name); "
                               "re-create the zip") from None
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
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file (/etc/passwd/sub), in /proc, read-only, ...
        zf.close()
        raise DatasetError(f"{dest}: cannot create that folder ({exc.strerror or exc}); give a new or empty folder you can write to") from None
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
