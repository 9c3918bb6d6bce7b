"""The run store: one folder per run with config.json, history.json, metrics.json, model.keras.

Writes are atomic (temp file in the same folder, then rename), so a crash or a reader
polling mid-write never sees half a file. history.json and metrics.json are rewritten
after every epoch, which makes the store the channel a dashboard or job runner reads
progress from. A damaged folder is reported by `list_runs` and skipped, never fatal.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATES = ("running", "finished", "stopped", "failed")


def default_runs_dir() -> Path:
    return Path(os.environ.get("TLS_RUNS_DIR", "runs"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes via a temp file in the same folder + os.replace, so readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def new_run_id(approach: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{approach}-{secrets.token_hex(3)}"


@dataclass
class RunRecord:
    """A run folder as read back from disk."""

    id: str
    path: Path
    config: dict
    history: dict
    metrics: dict

    @property
    def state(self) -> str:
        return self.metrics.get("state", "unknown")

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"


@dataclass
class DamagedRun:
    id: str
    path: Path
    reason: str


@dataclass
class RunListing:
    runs: list[RunRecord] = field(default_factory=list)
    damaged: list[DamagedRun] = field(default_factory=list)


class RunStore:
    """Reads and writes run folders under one root directory."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_runs_dir()

    def create(self, approach: str, config: dict, run_id: str | None = None) -> Path:
        run_id = run_id or new_run_id(approach)
        path = self.root / run_id
        if path.exists():
            raise FileExistsError(f"run folder already exists: {path}")
        path.mkdir(parents=True)
        atomic_write_json(path / "config.json", config)
        atomic_write_json(path / "history.json", {})
        atomic_write_json(path / "metrics.json", {"state": "running", "started": time.time()})
        return path

    def write_history(self, run_dir: Path, history: dict) -> None:
        atomic_write_json(Path(run_dir) / "history.json", history)

    def write_metrics(self, run_dir: Path, metrics: dict) -> None:
        atomic_write_json(Path(run_dir) / "metrics.json", metrics)

    def save_model(self, run_dir: Path, model) -> None:
        """Saves to a temp .keras file in the run folder, then renames it into place."""
        run_dir = Path(run_dir)
        tmp = run_dir / f".model.{secrets.token_hex(4)}.keras"
        try:
            model.save(tmp)
            os.replace(tmp, run_dir / "model.keras")
        finally:
            tmp.unlink(missing_ok=True)

    def load(self, run_id: str) -> RunRecord:
        """Reads one run. Raises FileNotFoundError (unknown id) or ValueError (damaged folder)."""
        path = self.root / run_id
        if not path.is_dir():
            raise FileNotFoundError(f"no run {run_id!r} in {self.root}")
        parts = {}
        for name in ("config", "history", "metrics"):
            f = path / f"{name}.json"
            try:
                parts[name] = json.loads(f.read_text())
            except FileNotFoundError:
                raise ValueError(f"{f.name} is missing") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{f.name} is not valid JSON ({exc})") from None
            if not isinstance(parts[name], dict):
                raise ValueError(f"{f.name} does not hold a JSON object")
        return RunRecord(run_id, path, parts["config"], parts["history"], parts["metrics"])

    def list(self) -> RunListing:
        """All runs, newest first; damaged folders are listed separately with a reason."""
        listing = RunListing()
        if not self.root.is_dir():
            return listing
        for path in sorted((p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True):
            try:
                listing.runs.append(self.load(path.name))
            except ValueError as exc:
                listing.damaged.append(DamagedRun(path.name, path, str(exc)))
        return listing

    def delete(self, run_id: str) -> None:
        path = self.root / run_id
        if not path.is_dir():
            raise FileNotFoundError(f"no run {run_id!r} in {self.root}")
        shutil.rmtree(path)

    def load_model(self, run_id: str):
        import keras

        from . import modeling  # noqa: F401  (registers BackbonePreprocess for deserialisation)

        path = self.root / run_id / "model.keras"
        if not path.exists():
            raise FileNotFoundError(f"run {run_id!r} has no model.keras (it may have stopped before its first epoch)")
        return keras.saving.load_model(path, compile=False)
