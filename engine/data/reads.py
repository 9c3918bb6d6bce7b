"""The one gate for every file a command reads: a regular file, bounded in size before it is read.

`read_regular_file` opens without blocking (O_NONBLOCK: a FIFO with no writer never hangs us), checks
the opened descriptor with fstat (so a file swapped for a pipe or device after a check cannot slip
through), refuses anything but a regular file and anything over the limit, and reads at most
limit + 1 bytes (a file growing while it is read is refused, never read to the end). Devices and
FIFOs are refused from a stat before they are opened at all: opening some devices has effects.

The decoder (engine/data/images.py) reads every image path through it with `MAX_IMAGE_BYTES`, and
refuses encoded bytes over the same limit; `dataset add` and `--config FILE` read through it too.
"""

from __future__ import annotations

import os
import stat

from engine.errors import StudioError

# An image file the decoder reads, in bytes: Pillow's pixel limit (89,478,485) as an uncompressed
# 32-bit TIFF or BMP is about 342 MiB; no photo comes near this, and a bigger file is not an image.
MAX_IMAGE_BYTES = 384 * 2**20
_CHUNK = 1 << 20
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a pipe"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(StudioError, ValueError):
    """A file a command will not read; `reason` says why ("is a pipe, not a regular file", ...), `name` which one."""

    def __init__(self, reason: str, name: str, kind: str = ""):
        self.reason, self.name, self.kind = reason, name, kind
        super().__init__(f"{name}: {reason}")


class NotRegularFile(FileRefused):
    """A pipe, device, socket or folder where a file was expected; `kind` names which ("a pipe")."""


def kind_of(mode: int) -> str:
    """What a stat mode is when it is not a regular file ("a pipe", "a device", "a folder", ...); '' for a file."""
    if stat.S_ISREG(mode):
        return ""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _check(st: os.stat_result, limit: int, name: str) -> None:
    kind = kind_of(st.st_mode)
    if kind:
        raise NotRegularFile(f"is {kind}, not a regular file", name, kind)
    if st.st_size > limit:
        raise FileRefused(f"is {st.st_size:,} bytes, over the limit of {limit:,} bytes", name)


def _open_checked(path, limit: int, name: str, follow_links: bool = True) -> int:
    """A descriptor of `path`, opened only when it is a regular file within `limit` (checked before and after opening)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        before = os.stat(path, follow_symlinks=follow_links)
        if not follow_links and stat.S_ISLNK(before.st_mode):
            raise FileRefused("is a link; only the files themselves are read", name)
        _check(before, limit, name)  # a FIFO or device is refused before it is opened at all
        fd = os.open(path, flags | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0)))
    except FileRefused:
        raise
    except OSError as exc:
        raise FileRefused(f"cannot read ({exc.strerror or exc})", name) from None
    try:
        _check(os.fstat(fd), limit, name)  # the descriptor itself: swapped files cannot slip through
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_file(path: str | os.PathLike, limit: int, name: str | None = None):
    """`path` opened for reading (binary), only when it is a regular file of at most `limit` bytes: for a reader that
    seeks (a zip), where `read_regular_file` would hold the whole file. Raises as `read_regular_file`."""
    name = name or os.fspath(path)
    fd = _open_checked(path, limit, name)
    os.set_blocking(fd, True)  # a regular file: blocking reads from here on, as `open` gives
    return os.fdopen(fd, "rb")


def read_regular_file(path: str | os.PathLike, limit: int, name: str | None = None, follow_links: bool = True) -> bytes:
    """The bytes of `path`, read only when it is a regular file of at most `limit` bytes.

    Args:
        path: the file (a symlink is followed unless `follow_links` is False, when it is refused).
        limit: the most bytes the file may hold.
        name: how messages name the file (default: the path).
        follow_links: False refuses a symlink itself (O_NOFOLLOW), as a zip of a folder's own files wants.

    Raises:
        NotRegularFile: a pipe, device, socket or folder (never opened when seen before opening).
        FileRefused: missing or unreadable (the system's reason), over `limit`, a link when not followed.
    """
    name = name or os.fspath(path)
    fd = _open_checked(path, limit, name, follow_links)
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FileRefused(f"cannot read ({exc.strerror or exc})", name) from None
    finally:
        os.close(fd)
    if size > limit:
        raise FileRefused(f"grew past the limit of {limit:,} bytes while being read", name)
    return b"".join(chunks)
