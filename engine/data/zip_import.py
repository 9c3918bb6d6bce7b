"""Importing a dataset zip (the dashboard's upload, `python -m engine import-zip`) with bounded, checked unpacking.

Every entry is checked before anything is written (no absolute paths, `..`, drive letters,
backslashes, symlinks, special files or encrypted entries; entry count, total size and
compression ratio within `ZipLimits`), and the bytes actually written are counted too. A
refused zip leaves the destination empty.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine import settings
from engine.data.layout import JUNK_DIRS, DatasetError, is_junk
from engine.data.reads import open_regular_file

ZIP_LIMIT_ENV = {"max_bytes": settings.ZIP_MAX_BYTES, "max_files": settings.ZIP_MAX_FILES, "max_ratio": settings.ZIP_MAX_RATIO}
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
        defaults = cls()
        try:
            return cls(
                **{
                    name: settings.positive_number(var, getattr(defaults, name), integer=name != "max_ratio")
                    for name, var in ZIP_LIMIT_ENV.items()
                }
            )
        except settings.SettingError as exc:
            raise DatasetError(str(exc)) from None


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
        raise DatasetError(
            f"the zip holds {len(infos):,} entries, over the limit of {limits.max_files:,}; set {ZIP_LIMIT_ENV['max_files']} to raise it"
        )
    total, packed = sum(i.file_size for i in infos), sum(i.compress_size for i in infos)
    if total > limits.max_bytes:
        raise DatasetError(
            f"the zip unpacks to {_size(total)}, over the limit of {_size(limits.max_bytes)}; set {ZIP_LIMIT_ENV['max_bytes']} (bytes) to raise it"
        )
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
            raise DatasetError(
                f"zip entry {info.filename!r} cannot be unpacked ({type(exc).__name__}: {exc}); re-create the zip"
            ) from None
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise DatasetError(
                f"zip entry {info.filename!r} clashes with another entry (a file and a folder of the same name); "
                "re-create the zip"
            ) from None
        except OSError as exc:
            raise DatasetError(
                f"cannot write zip entry {info.filename!r} into {dest} ({exc.strerror or exc}); free disk space or re-create the zip"
            ) from None


def _empty_folder(folder: Path, remove: bool) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if remove:
        folder.rmdir()


def import_zip(
    zip_source: str | os.PathLike | bytes | BinaryIO, dest: str | os.PathLike, limits: ZipLimits | None = None
) -> Path:
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
    if isinstance(zip_source, (str, os.PathLike)):  # through the read gate: a FIFO or /dev/zero is refused, never read
        with open_regular_file(zip_source, limits.max_bytes) as fh:
            return import_zip(fh, dest, limits)
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
        raise DatasetError(
            f"{dest}: cannot create that folder ({exc.strerror or exc}); give a new or empty folder you can write to"
        ) from None
    try:
        with zf:
            infos = zf.infolist()
            _check_entries(infos, limits)
            _extract(zf, infos, dest, limits)
    except BaseException:
        _empty_folder(dest, remove=created)
        raise
    entries = [p for p in dest.iterdir() if p.name.lower() not in JUNK_DIRS and not is_junk(p)]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
