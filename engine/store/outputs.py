"""Files the CLI writes where the user said: never over what they did not name as output.

`predict --gradcam OUT.png` and `export --zip` write to paths a person types, where a slip (the
input photo's name, a folder, `/dev/full`, a file inside a run folder) used to overwrite or
create something they never meant to. Each target is checked before any work: it must be a new
file (or, with `--force`, an existing ordinary file) in an existing folder, not an input, not a
device or folder, and not inside the run store.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from engine.errors import StudioError


class OutputRefused(StudioError):
    """A named output path would overwrite or create something it must not; the message says which and why."""


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "a pipe or socket"
    return "a file"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def check_named(flag: str, given: str | os.PathLike) -> None:
    """The path as typed must not be an existing folder, device or pipe (`--gradcam FOLDER`, `/dev/full`)."""
    p = Path(given)
    if p.exists() and _kind(p) != "a file":
        raise OutputRefused(f"{flag} {given}: is {_kind(p)}; give the name of a new .png file")


def check_outside_store(flag: str, path: str | os.PathLike, run_store: str | os.PathLike) -> None:
    """Nothing a command exports or draws goes into the run store, whose folders readers trust."""
    if _inside(Path(path).resolve(), Path(run_store).resolve()):
        raise OutputRefused(f"{flag} {path}: is inside the run store {run_store}; write it somewhere else")


def check_target(flag: str, target: str | os.PathLike, *, inputs=(), run_store: str | os.PathLike | None = None,
                 force: bool = False) -> Path:
    """Returns `target` when it may be written; raises OutputRefused with one line otherwise."""
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        raise OutputRefused(f"{flag} {target}: folder {parent} does not exist")
    resolved = target.resolve()
    for src in inputs:
        if Path(src).resolve() == resolved:
            raise OutputRefused(f"{flag} {target}: is one of the input images; give a new file name")
    if run_store is not None:
        check_outside_store(flag, target, run_store)
    if target.exists() or target.is_symlink():
        kind = _kind(target) if target.exists() else "a link"
        if kind != "a file":
            raise OutputRefused(f"{flag} {target}: is {kind}; give the name of a new file")
        if not force:
            raise OutputRefused(f"{flag} {target}: already exists; choose a new name, or add --force to replace it")
    return target


def check_writable_folder(flag: str, folder: str | os.PathLike) -> None:
    """Proves a file can be made in `folder` (or, if it does not exist yet, in the nearest folder above
    it, where the run would create it) before any data preparation, so a read-only disk or a path that
    is a file fails in one line instead of after minutes of work. Creates nothing."""
    p = Path(folder).absolute()
    probe_in = p
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise OutputRefused(f"{flag} {folder}: {'is' if probe_in == p else f'lies under {probe_in}, which is'} "
                            f"{_kind(probe_in)}, not a folder; choose a folder you can write to")
    try:
        fd, probe = tempfile.mkstemp(dir=probe_in, prefix=".tls-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputRefused(f"{flag} {folder}: cannot write there ({exc.strerror or exc}); choose a folder you can write to") from None
