"""Acting on a dataset's files, safely: relabel, remove (to a trash), keep, and undo the last action.

What data health proposes (a likely wrong label, a near-duplicate, an outlier) the user settles here:
  * `relabel` moves files to class CLS of the same split (ROOT/<split>/<CLS>/x, or ROOT/<CLS>/x when flat);
  * `remove` moves files into the trash, ROOT/.tls-curation/trash/<action>/<their path>: never deleted;
  * `keep` marks files "not an issue" (`kept`), so data health does not propose them again;
  * `undo` reverts the last action not yet undone (files back byte for byte: a rename keeps content and mtime,
    so the feature cache's keys, path + size + mtime + content, hit again).
The log (ROOT/.tls-curation/log.jsonl, one JSON object per line) is the history. The folder is hidden: the scan
skips dot folders (engine/data/layout.py), so neither the log nor the trash is ever taken for a class or an image.

Every check runs before the first move (all or nothing): the dataset must be editable (`check_editable`), each
file a regular file (not a link, not a folder) inside the dataset root, in a class folder, and not hidden.
A file already named like the moved one at the target is never written over: the moved file gets a suffix
(`x-2.png`), recorded in the log so undo puts the original name back. Each move is one `os.rename` within the
dataset (atomic on one file system); a move that fails puts back the moves made before it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from engine.data import paths
from engine.data.builder import check_name
from engine.data.layout import JUNK_DIRS, DatasetError, split_layout_dirs
from engine.data.reads import FileRefused, read_regular_file
from engine.data.sample import default_sample_dir

FOLDER = ".tls-curation"  # hidden: the scan never reads it
LOG = "log.jsonl"
TRASH = "trash"
MAX_LOG_BYTES = 64 * 2**20  # a log past this is not one the studio wrote
UPLOAD_PREFIX = "tls-upload-"  # ui/uploads.PREFIX (the engine may not import ui; a test holds them equal)
KINDS = ("relabel", "remove", "keep")


class CurationRefused(DatasetError):
    """An action refused before any file moved; the message names the file or folder and why."""


# --- where a dataset may be edited ---------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def check_editable(root: str | os.PathLike) -> None:
    """Refuses, in one line with the reason, a folder whose files must not be changed.

    The built-in sample (rebuilt on demand), a zip unpacked from an upload (deleted with the session), and,
    when typed paths are confined (served with a token or TLS_DATA_ROOTS set), a folder outside the allowed
    roots. A made dataset (engine/data/builder) and any local folder on localhost are editable.
    """
    given = Path(root).expanduser()
    real = given.resolve()
    if _inside(real, default_sample_dir().expanduser().resolve()):
        raise CurationRefused(f"{given}: the built-in sample is rebuilt on demand; copy it to make your own")
    tmp = Path(tempfile.gettempdir()).resolve()
    if real.is_relative_to(tmp) and real != tmp and real.relative_to(tmp).parts[0].startswith(UPLOAD_PREFIX):
        raise CurationRefused(
            f"{given}: unpacked from an upload: it is deleted when the session ends; download, unzip and use it as a folder"
        )
    paths.confine(str(given), "Dataset folder")  # PathNotAllowed (one line) outside the allowed roots when confined
    if not given.is_dir():
        raise CurationRefused(f"{given}: not a dataset folder (missing, or not a folder)")


# --- the log ---------------------------------------------------------------------------------------------


def _folder(root: Path) -> Path:
    return root / FOLDER


def _read_log(root: Path) -> list[dict]:
    """The log's entries in order; [] without one. Read through the read gate (a regular file, bounded)."""
    log = _folder(root) / LOG
    if not os.path.lexists(log):
        return []
    try:
        raw = read_regular_file(log, MAX_LOG_BYTES, follow_links=False)
    except FileRefused as exc:
        raise DatasetError(f"curation log {exc}") from None
    entries = []
    for n, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str) or not isinstance(entry.get("files", []), list):
            raise DatasetError(f"curation log {log}: line {n} is damaged; move the file away to start a new history")
        entries.append(entry)
    return entries


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _make_dir(path: Path, what: str) -> None:
    """mkdir (parents too) refusing a link or a file in the way: a trash or class folder is a folder of its own."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CurationRefused(f"{what} {path}: cannot make it ({exc.strerror or exc})") from None
    if not _real_dir(path):
        raise CurationRefused(f"{what} {path}: is a link or not a folder; move it away first")


@contextmanager
def _locked(root: Path):
    """One editor at a time per dataset (a second process waits): the log and the moves stay in step."""
    _make_dir(_folder(root), "curation folder")
    try:
        fd = os.open(_folder(root) / "lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise CurationRefused(f"{_folder(root) / 'lock'}: cannot open it ({exc.strerror or exc})") from None
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory lock; one editor is the usual case
            pass
        yield
    finally:
        os.close(fd)


def _append(root: Path, entry: dict) -> None:
    """One line appended (O_APPEND) and flushed to disk; an OSError is one line."""
    line = (json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n").encode()
    try:
        fd = os.open(_folder(root) / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DatasetError(f"curation log in {_folder(root)}: cannot write it ({exc.strerror or exc})") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- which files ----------------------------------------------------------------------------------------


def _root(root: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(root).expanduser()))


def _abs(root: Path, rel: str) -> str:
    return str(root / Path(rel))


def _locate(root: Path, real_root: Path, split_dirs: set[str], f: str) -> tuple[str, str]:
    """(relative posix path, problem): where `f` lies in the dataset, or why it cannot be acted on ('' = fine)."""
    p = Path(os.path.abspath(Path(f).expanduser()))
    try:
        st = os.lstat(p)
    except OSError:
        return "", "no such file"
    if stat.S_ISLNK(st.st_mode):
        return "", "is a link; act on the file itself"
    if stat.S_ISDIR(st.st_mode):
        return "", "is a folder; name its files"
    if not stat.S_ISREG(st.st_mode):
        return "", "is not a regular file"
    real = Path(os.path.realpath(p))
    if not real.is_relative_to(real_root):
        return "", f"lies outside the dataset {root}"
    parts = real.relative_to(real_root).parts
    if any(part.startswith(".") or part.lower() in JUNK_DIRS for part in parts):
        return "", "is hidden or OS clutter; not part of the dataset"
    need = 3 if split_dirs else 2
    if len(parts) < need or (split_dirs and parts[0] not in split_dirs):
        where = "a class folder of a split (ROOT/<split>/<class>/)" if split_dirs else "a class folder (ROOT/<class>/)"
        return "", f"is not in {where}"
    return "/".join(parts), ""


def _files(root: Path, files: list[str]) -> list[str]:
    """Relative paths of `files`, each checked, duplicates once; CurationRefused naming every refused one."""
    if not files:
        raise CurationRefused("no files given")
    real_root = Path(os.path.realpath(root))
    split_dirs = {p.name for p in split_layout_dirs(real_root, []).values()}
    out, problems = [], []
    for f in files:
        rel, problem = _locate(root, real_root, split_dirs, str(f))
        if problem:
            problems.append(f"{f}: {problem}")
        elif rel not in out:
            out.append(rel)
    if problems:
        more = f" ({len(problems)} files refused)" if len(problems) > 1 else ""
        raise CurationRefused("; ".join(problems) + more + "; nothing was moved")
    return out


def _class_root(rel: str, split: bool) -> tuple[str, ...]:
    """The folder above the class folder: (split,) or () for a flat layout."""
    return tuple(rel.split("/")[:1]) if split else ()


def _free_name(folder: Path, name: str, taken: set[Path]) -> Path:
    """folder/name, or folder/stem-2.ext, -3, ... when that exists or another file of this action goes there."""
    stem, suffix = os.path.splitext(name)
    target, n = folder / name, 1
    while os.path.lexists(target) or target in taken:
        n += 1
        target = folder / f"{stem}-{n}{suffix}"
    return target


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


# --- moving ---------------------------------------------------------------------------------------------


def _move_all(root: Path, moves: list[tuple[str, str]]) -> None:
    """Renames each (from, to) in order; on an OSError the moves made are put back and one line is raised."""
    done: list[tuple[Path, Path]] = []
    for src, dst in moves:
        a, b = root / src, root / dst
        try:
            if os.path.lexists(b):  # appeared since the checks: never written over
                raise FileExistsError(17, "a file of that name appeared there")
            os.rename(a, b)
        except OSError as exc:
            for x, y in reversed(done):
                os.rename(y, x)
            raise DatasetError(f"{a}: cannot move it to {b} ({exc.strerror or exc}); nothing was moved") from None
        done.append((a, b))


def _log_moves(root: Path, entry: dict, moves: list[tuple[str, str]]) -> None:
    """The moves, then their log line; a log that cannot be written puts the files back."""
    _move_all(root, moves)
    try:
        _append(root, entry)
    except DatasetError:
        for src, dst in reversed(moves):
            os.rename(root / dst, root / src)
        raise


def _next_id(entries: list[dict]) -> int:
    return max((int(e.get("id", 0)) for e in entries), default=0) + 1


def _result(root: Path, entry: dict) -> dict:
    """A log entry with absolute paths, as the functions return it."""
    out = {k: v for k, v in entry.items() if k != "files"}
    out["root"] = str(root)
    out["files"] = [
        {"from": _abs(root, m["from"]), "to": _abs(root, m["to"]) if m.get("to") else None} for m in entry.get("files", [])
    ]
    return out


def relabel(root: str | os.PathLike, files: list[str], cls: str) -> dict:
    """Moves `files` into class `cls` (existing or new) of their own split; files already there stay put.

    Returns:
        {"kind": "relabel", "id", "time", "class", "root", "files": [{"from", "to"} absolute], "unchanged": [...]}
        (no log line when nothing moved: id is None).

    Raises:
        CurationRefused / PathNotAllowed: not editable, a bad class name, a refused file; nothing moved.
    """
    root = _root(root)
    check_editable(root)
    cls = check_name(cls, "class name")
    with _locked(root):
        rels = _files(root, files)
        split = bool(split_layout_dirs(Path(os.path.realpath(root)), []))
        moves, unchanged, made, taken = [], [], [], set()
        for rel in rels:
            above = _class_root(rel, split)
            if rel.split("/")[len(above)] == cls:
                unchanged.append(_abs(root, rel))
                continue
            folder = root.joinpath(*above, cls)
            if os.path.lexists(folder) and not _real_dir(folder):
                raise CurationRefused(f"class {cls!r}: {folder} is a link or a file, not a class folder; nothing was moved")
            target = _free_name(folder, Path(rel).name, taken)
            taken.add(target)
            moves.append((rel, _rel(root, target)))
        for folder in sorted({(root / dst).parent for _, dst in moves}):
            if not os.path.lexists(folder):
                _make_dir(folder, f"class {cls!r}")
                made.append(_rel(root, folder))
        entry = {
            "id": None,
            "time": _now(),
            "kind": "relabel",
            "class": cls,
            "files": [{"from": s, "to": d} for s, d in moves],
            "made": made,
        }
        if moves:
            entry["id"] = _next_id(_read_log(root))
            try:
                _log_moves(root, entry, moves)
            except DatasetError:
                _remove_empty(root, made)
                raise
    return {**_result(root, entry), "unchanged": unchanged}


def remove(root: str | os.PathLike, files: list[str]) -> dict:
    """Moves `files` into the trash (ROOT/.tls-curation/trash/<id>/<their path>); never deletes. Undo puts them back.

    Returns:
        {"kind": "remove", "id", "time", "root", "files": [{"from", "to"} absolute]}.
    """
    root = _root(root)
    check_editable(root)
    with _locked(root):
        rels = _files(root, files)
        action = _next_id(_read_log(root))
        trash = f"{FOLDER}/{TRASH}/{action}"
        moves = [(rel, f"{trash}/{rel}") for rel in rels]
        for folder in sorted({(root / dst).parent for _, dst in moves}):
            _make_dir(folder, "trash folder")
        entry = {"id": action, "time": _now(), "kind": "remove", "files": [{"from": s, "to": d} for s, d in moves]}
        try:
            _log_moves(root, entry, moves)
        except DatasetError:
            _remove_empty(root, [trash], below=True)
            raise
    return _result(root, entry)


def keep(root: str | os.PathLike, files: list[str]) -> dict:
    """Marks `files` "Keep (not an issue)": nothing moves; `kept` lists them for data health."""
    root = _root(root)
    check_editable(root)
    with _locked(root):
        rels = _files(root, files)
        entry = {"id": _next_id(_read_log(root)), "time": _now(), "kind": "keep", "files": [{"from": r, "to": r} for r in rels]}
        _append(root, entry)
    return _result(root, entry)


def _remove_empty(root: Path, folders: list[str], below: bool = False) -> None:
    """Removes each folder (deepest first with `below`: every empty folder under it too) if it is empty."""
    for rel in folders:
        top = root / rel
        inner = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True) if below else [top]
        for d in inner:
            try:
                d.rmdir()
            except OSError:  # not empty, or gone: left as it is
                pass


def _undone(entries: list[dict]) -> set[int]:
    return {e.get("of") for e in entries if e.get("kind") == "undo"}


def undo(root: str | os.PathLike) -> dict:
    """Reverts the last relabel, remove or keep not yet undone; files go back to their own names and folders.

    Returns:
        {"kind": "undo", "id", "time", "of": <the reverted action's kind>, "of_id", "root", "files": [{"from", "to"}]}.

    Raises:
        CurationRefused: nothing to undo, or a file to put back is missing or its place is taken (nothing moved).
    """
    root = _root(root)
    check_editable(root)
    with _locked(root):
        entries = _read_log(root)
        gone = _undone(entries)
        last = next((e for e in reversed(entries) if e.get("kind") in KINDS and e.get("id") not in gone), None)
        if last is None:
            raise CurationRefused(f"{root}: nothing to undo")
        moves = [] if last["kind"] == "keep" else [(m["to"], m["from"]) for m in last["files"]]
        for src, dst in moves:
            if not (root / src).is_file() or (root / src).is_symlink():
                raise CurationRefused(
                    f"{root / src}: missing or not a file any more; cannot undo the {last['kind']} of {last['time']}"
                )
            if os.path.lexists(root / dst):
                raise CurationRefused(
                    f"{root / dst}: a file of that name is there now; move it away to undo the {last['kind']} of {last['time']}"
                )
        real_root = Path(os.path.realpath(root))
        for folder in sorted({(root / dst).parent for _, dst in moves}):
            _make_dir(folder, "class folder")
            if not Path(os.path.realpath(folder)).is_relative_to(real_root):  # a folder swapped for a link since
                raise CurationRefused(
                    f"{folder}: leads outside the dataset now; cannot undo the {last['kind']} of {last['time']}"
                )
        entry = {
            "id": _next_id(entries),
            "time": _now(),
            "kind": "undo",
            "of": last["id"],
            "undid": last["kind"],
            "files": [{"from": s, "to": d} for s, d in moves],
        }
        _log_moves(root, entry, moves)
        if last["kind"] == "relabel":
            _remove_empty(root, list(reversed(last.get("made", []))))
        elif last["kind"] == "remove":
            _remove_empty(root, [f"{FOLDER}/{TRASH}/{last['id']}"], below=True)
    return _result(root, entry)


def history(root: str | os.PathLike) -> list[dict]:
    """Every logged action in order (undos too), with absolute paths and `undone` on the reverted ones."""
    root = _root(root)
    entries = _read_log(root)
    gone = _undone(entries)
    return [{**_result(root, e), "undone": e.get("id") in gone} for e in entries]


def kept(root: str | os.PathLike) -> set[str]:
    """Absolute paths (os.path.abspath of the root, joined) the user marked "Keep (not an issue)", as they lie now.

    A kept file that is later relabeled or removed is no longer kept (its label changed: judge it again);
    an undone keep is forgotten.
    """
    root = _root(root)
    entries = _read_log(root)
    gone = _undone(entries)
    out: set[str] = set()
    for e in entries:
        if e.get("id") in gone or e.get("kind") not in KINDS:
            continue
        for m in e.get("files", []):
            if e["kind"] == "keep":
                out.add(m["from"])
            else:
                out.discard(m["from"])
    return {_abs(root, r) for r in out}
