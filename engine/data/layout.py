"""Dataset folder layout: which entries are class folders, split folders and candidate image files.

Two layouts are accepted:
  * split layout: DATA/{train,validation[,test]}/<class>/*  (the lecture's); `val`/`valid`
    also name the validation split. It applies only when those folders hold class folders.
  * flat layout:  DATA/<class>/*  -> split later (engine/data/splits.py); classes may be
    called `train`, `val` or `test` when their images sit directly inside.

Symlinks are followed; links that loop, or point at a folder holding them, are left out with
a note. Whether a file is an image is not judged here: that is the scan's job
(engine/data/scan.py). `DatasetError` is raised when the layout itself is unusable.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import StudioError

SPLIT_ALIASES = {"train": "train", "validation": "validation", "val": "validation", "valid": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx"}


class DatasetError(StudioError, ValueError):
    """The dataset folder cannot be used as given; the message says why and what to do."""


def is_junk(path: Path) -> bool:
    """OS clutter (.DS_Store, Thumbs.db, AppleDouble `._x`) and hidden files."""
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


def sub_folders(folder: Path, notes: list[str]) -> list[Path]:
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


def list_images(folder: Path, notes: list[str]) -> list[Path]:
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
            if is_junk(p) or entry.name.lower() in JUNK_DIRS:
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
    for sub in sub_folders(folder, []):
        for _, dirnames, filenames in os.walk(sub):
            dirnames[:] = [d for d in dirnames if d.lower() not in JUNK_DIRS and not d.startswith(".")]
            if any(not is_junk(Path(f)) for f in filenames):
                return True
    return False


def split_layout_dirs(root: Path, notes: list[str]) -> dict[str, Path]:
    """The split folders of a split layout, or {} for a flat layout.

    A folder named like a split (train, val, test, ...) counts as one only when it holds
    class sub-folders with files: flat datasets whose classes happen to be called `val` or
    `test` (images directly inside) stay flat.
    """
    found: dict[str, Path] = {}
    loose: list[Path] = []
    for child in sub_folders(root, notes):
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


def _require_same_classes(split_dirs: dict[str, Path], raw: dict[str, dict[str, list[Path]]]) -> None:
    """Raises DatasetError unless every split has the class folders of train/."""
    reference = sorted(raw["train"])
    for split, by_class in raw.items():
        cls_names = sorted(by_class)
        if cls_names != reference:
            missing = sorted(set(reference) - set(cls_names))
            extra = sorted(set(cls_names) - set(reference))
            detail = "; ".join(x for x in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "") if x)
            raise DatasetError(
                f"{split_dirs[split]}: class folders differ from train/ ({detail}); every split needs the same class folders"
            )


def read_layout(root: Path, notes: list[str]) -> tuple[str, dict[str, dict[str, list[Path]]]]:
    """The layout ("split" or "flat") and the candidate files: split -> class -> paths.

    A flat layout has the one split "all". Links and folders left out are added to `notes`.

    Raises:
        DatasetError: split folders without both train/ and validation/, or splits whose
            class folders differ.
    """
    split_dirs = split_layout_dirs(root, notes)
    if not split_dirs:
        return "flat", {"all": {c.name: list_images(c, notes) for c in sub_folders(root, notes)}}
    if "train" not in split_dirs or "validation" not in split_dirs:
        have = ", ".join(sorted(split_dirs))
        raise DatasetError(f"{root}: found split folder(s) {have} but need both train/ and validation/ (test/ is optional)")
    raw = {split: {c.name: list_images(c, notes) for c in sub_folders(d, notes)} for split, d in split_dirs.items()}
    _require_same_classes(split_dirs, raw)
    return "split", raw
