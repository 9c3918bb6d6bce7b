"""Datasets made image by image (the dashboard's "Make a dataset", `python -m engine dataset`).

A made dataset is an ordinary flat image folder, `DATASETS/NAME/<class>/*`, split by the engine's
seeded split like any other, so every page and command reads it unchanged. Each image passes the one
decoder's checks (engine/data/images.check_image) before it is written, and is written atomically
(temp file + rename), so a refused or interrupted upload leaves no file behind. A file's name is its
safe stem plus a short content hash: the same photo added twice is stored once, and two photos
called `image.jpg` (every phone camera's name) both stay. Adding or removing an image changes the
split's content fingerprint (engine/data/pixels.fingerprint_files), so exactly the cache entries of
that split are recomputed; nothing here touches the feature cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from engine import settings
from engine.data.images import check_image
from engine.data.layout import DatasetError

DATASETS_ENV = settings.DATASETS_DIR
SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp", "TIFF": ".tif"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_NAME = 64  # characters of a dataset or class name (a folder name on every file system)
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass
class Added:
    """What one `add_images` call did: the files written, the duplicates skipped, the refusals with their reasons."""

    saved: list[str] = field(default_factory=list)  # file names written in the class folder
    duplicates: list[str] = field(default_factory=list)  # upload names whose content the class already holds
    refused: list[tuple[str, str]] = field(default_factory=list)  # (upload name, one-line reason)


def write_atomically(target: Path, data: bytes) -> None:
    """A temp file in the class folder, then a rename: readers (a scan, a running job) see the whole image or none.
    (engine/store/runs has the same for run files; `data` may not import `store`, which imports `data`.)"""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def datasets_dir() -> Path:
    """Where made datasets live: $TLS_DATASETS_DIR, else ./data (inside the default allowed roots once it exists)."""
    return settings.datasets_dir()


def safe_name(name: str, what: str) -> str:
    """A dataset or class name as a folder name: letters, digits, space, dot, dash, underscore; else DatasetError."""
    cleaned = _UNSAFE.sub("_", (name or "").strip()).strip(" ._")[:MAX_NAME]
    if not cleaned or set(cleaned) <= {"_"}:
        raise DatasetError(f"{what} {name!r}: use letters or digits (e.g. 'cats'); the name becomes a folder name")
    return cleaned


def dataset_path(name: str, root: Path | None = None) -> Path:
    return (root or datasets_dir()) / safe_name(name, "dataset name")


def create_dataset(name: str, classes: list[str], root: Path | None = None) -> Path:
    """Makes NAME/ with one folder per class (existing ones kept: reopening a dataset extends it)."""
    path = dataset_path(name, root)
    for c in classes:
        (path / safe_name(c, "class name")).mkdir(parents=True, exist_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def class_names(path: Path) -> list[str]:
    return sorted(d.name for d in Path(path).iterdir() if d.is_dir() and not d.name.startswith(".")) if Path(path).is_dir() else []


def images_of(path: Path, cls: str) -> list[Path]:
    folder = Path(path) / cls
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def counts(path: Path) -> dict[str, int]:
    """Images per class folder, in class order."""
    return {c: len(images_of(path, c)) for c in class_names(path)}


def list_datasets(root: Path | None = None) -> list[dict]:
    """Every dataset folder under the datasets folder: name, path, images per class."""
    root = root or datasets_dir()
    if not root.is_dir():
        return []
    return [{"name": d.name, "path": str(d), "classes": counts(d)} for d in sorted(root.iterdir())
            if d.is_dir() and not d.name.startswith(".")]


def add_images(path: Path, cls: str, files: list[tuple[str, bytes]]) -> Added:
    """Checks each (upload name, bytes) with the decoder and writes the readable ones into path/cls atomically."""
    folder = Path(path) / safe_name(cls, "class name")
    folder.mkdir(parents=True, exist_ok=True)
    held = {p.stem.rsplit("-", 1)[-1] for p in images_of(path, folder.name)}  # content hashes already stored
    out = Added()
    for upload_name, data in files:
        info = check_image(data, name=upload_name)
        if isinstance(info, str):  # the decoder's one-line reason: nothing is written
            out.refused.append((upload_name, info))
            continue
        digest = hashlib.sha256(data).hexdigest()[:10]
        if digest in held:
            out.duplicates.append(upload_name)
            continue
        stem = _UNSAFE.sub("_", Path(upload_name).stem)[:40].strip(" ._") or "image"
        target = folder / f"{stem}-{digest}{SUFFIXES.get(info.format, Path(upload_name).suffix.lower() or '.img')}"
        write_atomically(target, data)
        held.add(digest)
        out.saved.append(target.name)
    return out


def remove_image(path: Path, cls: str, file_name: str) -> None:
    """Deletes one image of a class; the name must be a plain file name inside that class folder."""
    target = Path(path) / safe_name(cls, "class name") / Path(file_name).name
    if not target.is_file():
        raise DatasetError(f"{cls}/{file_name}: no such image in {path}")
    target.unlink()


def rename_class(path: Path, old: str, new: str) -> str:
    new_name = safe_name(new, "class name")
    if (Path(path) / new_name).exists():
        raise DatasetError(f"class {new_name!r} already exists in {Path(path).name}; choose another name")
    (Path(path) / old).rename(Path(path) / new_name)
    return new_name


def remove_class(path: Path, cls: str) -> None:
    folder = Path(path) / safe_name(cls, "class name")
    for p in folder.iterdir() if folder.is_dir() else ():
        p.unlink()
    folder.rmdir() if folder.is_dir() else None


def zip_bytes(path: Path) -> bytes:
    """The dataset as a zip of NAME/<class>/<image> (what `import-zip` and any image-folder tool read)."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # JPEGs do not compress: storing is as small and faster
        for cls in class_names(path):
            for img in images_of(path, cls):
                zf.write(img, f"{path.name}/{cls}/{img.name}")
    return buf.getvalue()
