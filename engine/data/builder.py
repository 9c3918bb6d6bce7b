"""Datasets made image by image (the dashboard's "Make a dataset", `python -m engine dataset`).

A made dataset is an ordinary flat image folder, `DATASETS/NAME/<class>/*`, split by the engine's
seeded split like any other, so every page and command reads it unchanged. Each image passes the one
decoder's checks (engine/data/images.check_image) before it is written, and is written atomically
(temp file + rename), so a refused or interrupted upload (a full disk included) leaves no file behind.
A dataset or class name is kept as typed (Unicode letters welcome, surrounding spaces trimmed) or
refused with the reason (`check_name`): never changed into another name, so `café` and `caf` stay two
classes. A file's name is its safe stem plus a short content hash: the same photo added twice is stored
once, and two photos called `image.jpg` (every phone camera's name) both stay. Adding or removing an image changes the
split's content fingerprint (engine/data/pixels.fingerprint_files), so exactly the cache entries of
that split are recomputed; nothing here touches the feature cache. The builder sees only real folders
and regular files, never symlinks: a link planted in a class is not counted, shown, zipped or removed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import tempfile
import time
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine import settings
from engine.data.images import check_image
from engine.data.layout import DatasetError
from engine.data.reads import MAX_IMAGE_BYTES, FileRefused, read_regular_file

DATASETS_ENV = settings.DATASETS_DIR
SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp", "TIFF": ".tif"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_NAME = 64  # characters of a dataset or class name (a folder name on every file system)
MAX_NAME_BYTES = 255  # bytes of a folder name in UTF-8 (ext4, APFS, NTFS all stop near here)
# Names Windows keeps for devices, with or without an extension ("nul.txt" opens the null device there).
RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", *(f"{d}{i}" for d in ("COM", "LPT") for i in "123456789¹²³")}
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # can make one name look like another
_UNSAFE_STEM = re.compile(r"[^\w .-]+")  # an upload's file stem: letters and digits of any script, space, dot, dash
_TEMP_PREFIX = ".upload-"
_ZIP_EPOCH = 315619200  # 1980-01-02: zip timestamps cannot be older


@dataclass
class Added:
    """What one `add_images` call did: the files written, the duplicates skipped, the refusals with their reasons."""

    saved: list[str] = field(default_factory=list)  # file names written in the class folder
    duplicates: list[str] = field(default_factory=list)  # upload names whose content the class already holds
    refused: list[tuple[str, str]] = field(default_factory=list)  # (upload name, one-line reason)


def write_atomically(target: Path, data: bytes) -> None:
    """A temp file in the class folder, then a rename: readers (a scan, a running job) see the whole image or none.

    Any OSError (a full disk, a read-only folder) removes the temp file and becomes one DatasetError line.
    (engine/store/runs has the same for run files; `data` may not import `store`, which imports `data`.)"""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX, suffix=".tmp")
    except OSError as exc:
        raise DatasetError(f"{target.parent}: cannot write there ({_why(exc)})") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DatasetError(f"{target}: cannot write it ({_why(exc)}); nothing partial was left") from None
        raise


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{exc.strerror or 'no space left'}: free some space and add it again"
    return exc.strerror or str(exc)


def datasets_dir() -> Path:
    """Where made datasets live: $TLS_DATASETS_DIR, else ./data (inside the default allowed roots once it exists)."""
    return settings.datasets_dir()


def name_problem(name: str) -> str:
    """Why `name` (already trimmed) cannot name a dataset or class folder; '' when it can, exactly as it is."""
    if not name:
        return "is empty; type a name such as 'cats'"
    if "/" in name or "\\" in name:
        return "holds a path separator (/ or \\); a name is one folder, e.g. 'cats'"
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in _BIDI), None)
    if bad is not None:
        return f"holds the control character {bad!r}; type the name without it"
    if name in (".", ".."):
        return "is not a name ('.' and '..' mean folders); type a name such as 'cats'"
    if name.startswith("."):
        return "starts with a dot, which hides the folder; start it with a letter or digit"
    if name.split(".")[0].rstrip(" ").upper() in RESERVED:
        return f"is a device name Windows reserves ({name.split('.')[0].rstrip(' ').upper()}); choose another name"
    if name[-1] in ". ":
        return "ends with a dot or space, which Windows drops; remove it"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters; use at most {MAX_NAME}"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"is {len(name.encode('utf-8'))} bytes in UTF-8; use at most {MAX_NAME_BYTES}"
    return ""


def check_name(name: str, what: str) -> str:
    """A dataset or class name as typed (surrounding whitespace trimmed, Unicode in its composed form, NFC), or a
    DatasetError with the reason: never changed into another name, so two names never merge into one folder."""
    kept = unicodedata.normalize("NFC", (name or "").strip())
    problem = name_problem(kept)
    if problem:
        raise DatasetError(f"{what} {name!r}: {problem}")
    return kept


def _make_folder(folder: Path, what: str, link_ok: bool = True) -> None:
    """mkdir -p with one-line refusals: a file where the folder should be, a link (for classes), no permission."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DatasetError(f"{what}: {folder} is a file, not a folder") from None
    except NotADirectoryError:
        raise DatasetError(f"{what}: part of {folder} is a file, not a folder") from None
    except OSError as exc:
        raise DatasetError(f"{what}: cannot make {folder} ({_why(exc)})") from None
    if not link_ok and folder.is_symlink():
        raise DatasetError(f"{what}: {folder} is a link; a class is a folder of its own")


def make_datasets_dir(root: Path | None = None) -> Path:
    """The datasets folder, made when missing; a file in its place (or no permission) is one DatasetError line."""
    root = Path(root or datasets_dir())
    _make_folder(root, f"datasets folder (--datasets-dir or ${DATASETS_ENV})")
    return root


def dataset_path(name: str, root: Path | None = None) -> Path:
    return Path(root or datasets_dir()) / check_name(name, "dataset name")


def create_dataset(name: str, classes: list[str], root: Path | None = None) -> Path:
    """Makes NAME/ with one folder per class (existing ones kept: reopening a dataset extends it).
    Every name is checked before any folder is made."""
    root = Path(root or datasets_dir())
    path = dataset_path(name, root)
    names = [check_name(c, "class name") for c in classes]
    make_datasets_dir(root)
    _make_folder(path, f"dataset {path.name!r}")
    for c in names:
        _make_folder(path / c, f"class {c!r}", link_ok=False)
    return path


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def class_names(path: Path) -> list[str]:
    """The class folders of a made dataset: real folders (not links), not hidden."""
    if not Path(path).is_dir():
        return []
    return sorted(d.name for d in Path(path).iterdir() if not d.name.startswith(".") and _real_dir(d))


def images_of(path: Path, cls: str) -> list[Path]:
    """The images of a class: regular files (not links, not hidden) with an image suffix."""
    folder = Path(path) / cls
    if not _real_dir(folder):
        return []
    with os.scandir(folder) as entries:
        return sorted(
            folder / e.name
            for e in entries
            if e.is_file(follow_symlinks=False) and not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
        )


def counts(path: Path) -> dict[str, int]:
    """Images per class folder, in class order."""
    return {c: len(images_of(path, c)) for c in class_names(path)}


def list_datasets(root: Path | None = None) -> list[dict]:
    """Every dataset folder under the datasets folder: name, path, images per class."""
    root = Path(root or datasets_dir())
    if root.exists() and not root.is_dir():
        raise DatasetError(f"datasets folder (--datasets-dir or ${DATASETS_ENV}): {root} is a file, not a folder")
    if not root.is_dir():
        return []
    return [
        {"name": d.name, "path": str(d), "classes": counts(d)}
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    ]


def upload_stem(upload_name: str) -> str:
    """An uploaded file's stem as part of a stored name: letters and digits of any script, space, dot, dash."""
    stem = unicodedata.normalize("NFC", Path(upload_name.replace("\\", "/")).stem)
    return _UNSAFE_STEM.sub("_", stem)[:40].strip(" ._") or "image"


def add_images(path: Path, cls: str, files: Iterable[tuple[str, bytes]]) -> Added:
    """Checks each (upload name, bytes) with the decoder and writes the readable ones into path/cls atomically.

    `files` may be a generator (the CLI reads one file at a time). Raises DatasetError when a write fails
    (a full disk): the images saved before it stay, nothing partial is left."""
    folder = Path(path) / check_name(cls, "class name")
    _make_folder(folder, f"class {folder.name!r}", link_ok=False)
    held = {p.stem.rsplit("-", 1)[-1] for p in images_of(path, folder.name)}  # content hashes already stored
    out = Added()
    for upload_name, data in files:
        info = check_image(data, name=upload_name)
        if isinstance(info, str):  # the decoder's one-line reason: nothing is written
            out.refused.append((upload_name, info))
            continue
        digest = hashlib.sha256(data).hexdigest()[:10]
        target = folder / f"{upload_stem(upload_name)}-{digest}{SUFFIXES.get(info.format, '.img')}"
        if digest in held or os.path.lexists(target):  # never written over anything
            out.duplicates.append(upload_name)
            continue
        try:
            write_atomically(target, data)
        except DatasetError as exc:
            saved = f"; {len(out.saved)} image(s) saved before it" if out.saved else ""
            raise DatasetError(f"{exc}{saved}") from None
        held.add(digest)
        out.saved.append(target.name)
    return out


def _class_folder(path: Path, cls: str) -> Path:
    """The folder of an existing class (one `class_names` lists), else a DatasetError naming the classes there."""
    if cls not in class_names(path):
        raise DatasetError(
            f"class {cls!r}: no such class in {Path(path).name} (its classes: {', '.join(class_names(path)) or 'none'})"
        )
    return Path(path) / cls


def remove_image(path: Path, cls: str, file_name: str) -> None:
    """Deletes one image of a class; the name must be one of the images that class lists."""
    target = _class_folder(path, cls) / Path(file_name).name
    if target not in images_of(path, cls):
        raise DatasetError(f"{cls}/{file_name}: no such image in {path}")
    target.unlink()


def rename_class(path: Path, old: str, new: str) -> str:
    folder = _class_folder(path, old)
    new_name = check_name(new, "class name")
    if new_name == old:
        return old
    if os.path.lexists(Path(path) / new_name):
        raise DatasetError(f"class {new_name!r} already exists in {Path(path).name}; choose another name")
    try:
        folder.rename(Path(path) / new_name)
    except OSError as exc:
        raise DatasetError(f"class {old!r}: cannot rename it to {new_name!r} ({_why(exc)})") from None
    return new_name


def remove_class(path: Path, cls: str) -> None:
    """Removes a class folder and its images; refused, with nothing removed, when it holds anything else."""
    folder = _class_folder(path, cls)
    images = images_of(path, cls)
    temps = [p for p in folder.iterdir() if p.name.startswith(_TEMP_PREFIX) and p.name.endswith(".tmp") and not p.is_symlink()]
    others = sorted(p.name for p in folder.iterdir() if p not in images and p not in temps)
    if others:
        raise DatasetError(
            f"class {cls!r} also holds {len(others)} file(s) that are not its images ({', '.join(others[:3])}); "
            "move them out first: nothing was removed"
        )
    for p in images + temps:
        p.unlink()
    folder.rmdir()


def zip_bytes(path: Path) -> bytes:
    """The dataset as a zip of NAME/<class>/<image> (what `import-zip` and any image-folder tool read).

    Only regular files are zipped, read through the read gate without following links: a symlink planted
    in a class (to /etc/passwd, to another dataset) is never followed, even if swapped in after the listing."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # JPEGs do not compress: storing is as small and faster
        for cls in class_names(path):
            for img in images_of(path, cls):
                try:
                    data = read_regular_file(img, MAX_IMAGE_BYTES, follow_links=False)
                    mtime = max(img.lstat().st_mtime, _ZIP_EPOCH)
                except (FileRefused, OSError):  # removed or swapped since the listing: not part of the dataset
                    continue
                member = zipfile.ZipInfo(f"{path.name}/{cls}/{img.name}", time.localtime(mtime)[:6])
                member.external_attr = 0o644 << 16
                zf.writestr(member, data)
    return buf.getvalue()
