"""The output gate: every file a command writes where the user said goes through here, before any work.

A command declares its output flags with `add_output` (`--out`, `--report`, `--gradcam`, `export --out`,
`dataset zip OUT`, ...); `cli.main` calls `claim_outputs(args)` before the command runs, so a command added
later is gated on arrival, and tests/test_cli_outputs.py derives its cases from the same declarations.

A target is refused, in one line (`OutputRefused`, exit 2), when it:
- is a folder, a link, a device, a pipe or a socket (opening a FIFO for writing waits for a reader; writing
  "to" /dev/full as root would replace the device node);
- lies inside a run folder, the run store, the feature cache, the datasets folder, a dataset folder (the
  command's --data, or any folder holding train/ and validation/) — readers trust those files;
- is one of the command's own input files (even with --force), or exists (unless --force);
- has no parent folder, or a parent nobody can write in.
Only the run store's own folder of the command (`RUNS/.<command>/`, where the job runner asks a tool job to
answer and an export job to build) is open inside the store, to that command alone.

Writes go to a temp file beside the target and are renamed over it, so readers see the old file or the whole
new one; any OSError (a full disk, a read-only file system) removes the temp file and says one line
(`OutputFailed`, exit 2): nothing partial is left.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine import settings
from engine.config import dumps
from engine.data.reads import kind_of
from engine.errors import StudioError

OUTPUTS_KEY = "_outputs"  # the argparse default under which a parser keeps its OutputFlags
RUN_MARKERS = ("history.json", "metrics.json", "status.json", "heartbeat.json", "model.keras")  # beside config.json


class OutputRefused(StudioError):
    """A named output path would overwrite or create something it must not; the message says which and why."""


class OutputFailed(StudioError):
    """Writing a claimed output failed (a full disk, a read-only file system); nothing partial was left."""


@dataclass(frozen=True)
class OutputFlag:
    """One output a command writes: the flag as the user types it, where argparse keeps its value, and how."""

    flag: str  # "--out", or a positional's metavar ("OUT")
    dest: str  # args.<dest> holds the typed path
    kind: str = "file"  # "file", or "folder" (a new or empty folder the command fills: export --out)
    # several targets from one value (predict --gradcam OUT.png -> OUT-<image>.png), or none (export --zip unset)
    targets: Callable[[argparse.Namespace, str], list[str]] | None = None
    # a folder output that may already hold what the command makes (`sample DIR` reuses a finished sample)
    reuse: Callable[[Path], bool] | None = None


def add_output(
    parser: argparse.ArgumentParser,
    *names: str,
    kind: str = "file",
    targets: Callable[[argparse.Namespace, str], list[str]] | None = None,
    reuse: Callable[[Path], bool] | None = None,
    **kw,
) -> None:
    """Adds an output argument (or, with no names, declares one derived from another flag's value through
    `targets`; kw["dest"] names that flag's dest) and, for a file, a `--force` flag when the parser has none."""
    if names:
        action = parser.add_argument(*names, **kw)
        flag, dest = (names[0] if names[0].startswith("-") else (action.metavar or action.dest)), action.dest
    else:
        flag, dest = kw["flag"], kw["dest"]
    parser.set_defaults(**{OUTPUTS_KEY: (*(parser.get_default(OUTPUTS_KEY) or ()), OutputFlag(flag, dest, kind, targets, reuse))})
    if kind == "file" and not any("--force" in a.option_strings for a in parser._actions):
        parser.add_argument(
            "--force", action="store_true", help="outputs may replace existing files (never an input, a folder or a device)"
        )


def output_flags(args: argparse.Namespace) -> tuple[OutputFlag, ...]:
    return tuple(getattr(args, OUTPUTS_KEY, None) or ())


@dataclass(frozen=True)
class Output:
    """A claimed target: checked before the work, written whole or not at all."""

    flag: str
    path: Path

    @contextlib.contextmanager
    def writing(self) -> Iterator[Path]:
        """A temp path beside the target for a writer that needs a file name (a zip, a PNG); renamed on success."""
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            os.fchmod(fd, 0o666 & ~_umask())  # what `open` would have made (mkstemp's are private: 0600)
            os.close(fd)
            yield Path(tmp)
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            raise OutputFailed(
                f"{self.flag} {self.path}: could not write it ({exc.strerror or exc}); nothing was written"
            ) from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def write_bytes(self, data: bytes) -> Path:
        with self.writing() as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        return self.path

    def write_json(self, obj) -> Path:
        """JSON with no NaN or Infinity (engine.config.dumps): other tools read these files."""
        return self.write_bytes((dumps(obj, indent=2) + "\n").encode())


def _umask() -> int:
    mask = os.umask(0o022)  # reading it means setting it; set back at once (the CLI is one thread here)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str:
    """What an lstat mode names: "a file", "a link", or the read gate's words ("a folder", "a device", "a pipe", ...)."""
    return "a link" if stat.S_ISLNK(mode) else kind_of(mode) or "a file"


def _resolved(value) -> Path | None:
    try:
        return Path(value).expanduser().resolve()
    except (OSError, RuntimeError, ValueError, TypeError):
        return None


@dataclass
class Protected:
    """Folders no output may go into, from the settings and the command's own flags."""

    stores: list[Path]  # run stores (their tool-result folders `.<command>/` excepted for that command)
    caches: list[Path]
    datasets: list[Path]  # the datasets folder(s) and the command's --data
    command: str = ""

    @classmethod
    def of(cls, args: argparse.Namespace) -> Protected:
        def paths(*values) -> list[Path]:
            return [p for p in (_resolved(v) for v in values if v) if p is not None]

        data = getattr(args, "data", None)
        data = data if isinstance(data, str) and data != "sample" else None
        return cls(
            paths(settings.runs_dir(), getattr(args, "runs_dir", None)),
            paths(settings.cache_dir(), getattr(args, "cache_dir", None)),
            paths(settings.datasets_dir(), getattr(args, "datasets_dir", None), data),
            str(getattr(args, "command", "") or ""),
        )

    def problem(self, target: Path) -> str:
        """What protected place `target` (resolved) lies in, or ''."""
        parent = target.parent
        for store in self.stores:
            if self.command and target.is_relative_to(store / f".{self.command}") and target != store / f".{self.command}":
                return ""  # the job runner's result for this very command (a tool's JSON, an export's folder and zip)
            if target.is_relative_to(store):
                return f"is inside the run store {store}, whose folders readers trust"
        for cache in self.caches:
            if target.is_relative_to(cache):
                return f"is inside the feature cache {cache}"
        for folder in self.datasets:
            if target.is_relative_to(folder):
                return f"is inside the dataset folder {folder}"
        for folder in (parent, *parent.parents):
            if (folder / "config.json").is_file() and any((folder / m).exists() for m in RUN_MARKERS):
                return f"is inside the run folder {folder}"
            if (folder / "train").is_dir() and (folder / "validation").is_dir():
                return f"is inside the dataset folder {folder}"
        return ""


def _inputs(args: argparse.Namespace, skip: set[str]) -> set[Path]:
    """Every file the command line names elsewhere (images, a config, a zip): never an output's target."""
    found = set()
    for dest, value in vars(args).items():
        if dest in skip or dest == OUTPUTS_KEY:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, str) and v:
                p = _resolved(v)
                if p is not None and p.is_file():
                    found.add(p)
    return found


def claim(
    flag: str,
    value: str,
    *,
    kind: str = "file",
    force: bool = False,
    protected: Protected | None = None,
    inputs: set[Path] = frozenset(),
    reuse: Callable[[Path], bool] | None = None,
) -> Output:
    """Checks one target; returns it claimed, or raises OutputRefused with one line. Creates nothing."""
    shown = f"{flag} {value}"
    if kind == "name":  # only what the typed path is now (predict --gradcam DIR would write DIR.png beside it)
        what = _kind(os.lstat(value).st_mode) if os.path.lexists(value) else "a file"
        if what != "a file":
            raise OutputRefused(f"{shown}: is {what}; give the name of a new file")
        return Output(flag, Path(value))
    if not str(value).strip():
        raise OutputRefused(f"{flag}: is empty; give the name of a new {'folder' if kind == 'folder' else 'file'}")
    path = Path(value).expanduser()
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputRefused(f"{shown}: cannot be used ({exc.strerror or exc}); choose another name") from None
    what = _kind(mode) if mode is not None else ""
    if kind == "folder":
        if mode is not None and not (what == "a folder" and (not any(path.iterdir()) or (reuse is not None and reuse(path)))):
            raise OutputRefused(
                f"{shown}: {'is a folder that is not empty' if what == 'a folder' else f'is {what}'}; "
                "give a new (or empty) folder"
            )
    elif mode is not None and what != "a file":
        raise OutputRefused(f"{shown}: is {what}; give the name of a new file")
    parent = _resolved(path.parent)
    if parent is None or not parent.is_dir():
        raise OutputRefused(f"{shown}: folder {path.parent} does not exist; create it first or choose another place")
    target = parent / path.name
    place = (protected or Protected([], [], [])).problem(target)
    if place:
        raise OutputRefused(f"{shown}: {place}; write it somewhere else")
    if target in inputs:
        raise OutputRefused(f"{shown}: is one of this command's inputs; give a new file name")
    if kind == "file" and mode is not None and not force:
        raise OutputRefused(f"{shown}: already exists; choose a new name, or add --force to replace it")
    _probe(shown, parent)
    return Output(flag, target)


def _probe(shown: str, folder: Path) -> None:
    """A file can be made in `folder` (a read-only disk or a folder of another user fails here, before the work)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tls-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputRefused(f"{shown}: cannot write there ({exc.strerror or exc}); choose a folder you can write to") from None


def claim_outputs(args: argparse.Namespace) -> dict[str, list[Output]]:
    """Claims every output the parsed command declared (none given: none claimed); {flag: [Output, ...]}.

    Kept on `args` (`outputs_of`), so a command reads what was checked instead of checking again."""
    claimed: dict[str, list[Output]] = getattr(args, "claimed_outputs", None) or {}
    if claimed:
        return claimed
    protected = Protected.of(args)
    declared = output_flags(args)
    inputs = _inputs(args, {o.dest for o in declared})
    seen: set[Path] = set()
    for out in declared:
        value = getattr(args, out.dest, None)
        if value is None:
            continue
        values = [value]
        if out.targets:  # the files made from the typed value; the value itself must not name a folder or device either
            claim(out.flag, value, kind="name", protected=protected)
            values = out.targets(args, value)
        for v in values:
            o = claim(
                out.flag,
                v,
                kind=out.kind,
                force=bool(getattr(args, "force", False)),
                protected=protected,
                inputs=inputs,
                reuse=out.reuse,
            )
            if o.path in seen:
                raise OutputRefused(f"{out.flag} {v}: two outputs of this command would be the same file; give each its own name")
            seen.add(o.path)
            claimed.setdefault(out.flag, []).append(o)
    args.claimed_outputs = claimed
    return claimed


def outputs_of(args: argparse.Namespace, flag: str) -> list[Output]:
    """The claimed targets of one output flag ([] when not given); claims them if main() did not (a direct call)."""
    return claim_outputs(args).get(flag, [])


def output_of(args: argparse.Namespace, flag: str) -> Output | None:
    found = outputs_of(args, flag)
    return found[0] if found else None


def check_writable_folder(flag: str, folder: str | os.PathLike) -> None:
    """Proves a file can be made in `folder` (or, if it does not exist yet, in the nearest folder above
    it, where the run would create it) before any data preparation, so a read-only disk or a path that
    is a file fails in one line instead of after minutes of work. Creates nothing."""
    p = Path(folder).absolute()
    probe_in = p
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise OutputRefused(
            f"{flag} {folder}: {'is' if probe_in == p else f'lies under {probe_in}, which is'} "
            f"{_kind(probe_in.stat().st_mode)}, not a folder; choose a folder you can write to"
        )
    _probe(f"{flag} {folder}", probe_in)
