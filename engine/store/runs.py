"""The run store: one folder per run with config.json, history.json, metrics.json, model.keras.

Writes are atomic (temp file in the same folder, then rename), so a crash or a reader
polling mid-write never sees half a file. history.json and metrics.json are rewritten
after every epoch, which makes the store the channel a dashboard or job runner reads
progress from; model.keras is checkpointed during training, so a killed run keeps a model.

What readers show is `RunRecord.summary()` (CLI `runs`, job runner, pages), with two
states no process writes: `interrupted` — recorded as running, but its process is gone
(heartbeat.py decides) — and `damaged` — a folder whose files cannot be read or lack what
readers need; `list()` reports those with the reason instead of failing.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from engine import settings
from engine.config import dumps
from engine.errors import StudioError
from engine.store import heartbeat
from engine.store.record import DamagedRun, RunListing, RunRecord

STATES = ("running", "finished", "stopped", "failed")  # what a training process writes
# a run in one of these does no more work: what a process ends in, and the two only readers see (module docstring)
FINAL_STATES = (*(s for s in STATES if s != "running"), "interrupted", "damaged")
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")  # per-epoch lists in history.json
MODEL_MEMBERS = ("config.json", "model.weights.h5")  # what a loadable .keras archive holds
STATUS_FILE = "status.json"  # live progress (engine/store/status.py), rewritten while the run works


def default_runs_dir() -> Path:
    return settings.runs_dir()


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
    """Never a bare NaN or Infinity (not JSON; other tools read these files): a diverged loss is written as null."""
    atomic_write_bytes(path, dumps(obj, indent=2, sort_keys=True).encode())


class RunStoreError(StudioError, ValueError):
    """A run id or run folder cannot be used as given; the message says which and why."""


class RunNotFound(RunStoreError):
    """No run folder with that id (or no model.keras in it)."""


class RunDamaged(RunStoreError):
    """A run folder whose files cannot be read, or lack what readers need."""

    def __init__(self, run_id: str, reason: str):
        super().__init__(f"run {run_id!r} is damaged: {reason}")
        self.run_id, self.reason = run_id, reason


class RunSaveError(RunStoreError):
    """Writing into a run folder failed (full disk, permissions): the message names the file and why."""


RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,100}")


def check_run_id(run_id: str) -> str:
    """Returns run_id if it names a folder directly under the run store, else raises RunStoreError.

    Why: ids become folder names; `../x` or an absolute id would read or write outside the store.
    """
    if not RUN_ID_PATTERN.fullmatch(run_id or "") or run_id in (".", ".."):
        raise RunStoreError(f"run id {run_id!r}: use 1-100 letters, digits, '.', '_' or '-' (no path separators)")
    return run_id


def new_run_id(approach: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{approach}-{secrets.token_hex(3)}"


def _is_number_list(value) -> bool:
    return isinstance(value, list) and all(_is_number(v) for v in value)


def record_problem(config: dict, history: dict, metrics: dict) -> str:
    """'' if readers can use a run's JSON files, else what is wrong (for the `damaged` reason)."""
    if not isinstance(config.get("approach"), str):
        return "config.json lacks 'approach'"
    backbone = config.get("backbone")
    if not (isinstance(backbone, dict) and isinstance(backbone.get("name"), str)):
        return "config.json lacks 'backbone.name'"
    resolved = config.get("resolved")
    if not isinstance(resolved, dict):
        return "config.json lacks 'resolved' (the classes and image size the model was trained with)"
    classes = resolved.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        return "config.json lacks 'resolved.classes' (a list of class names)"
    if len(classes) < 2 or len(set(classes)) != len(classes):
        return f"config.json: 'resolved.classes' must name two or more different classes (it names {classes!r:.80})"
    if not (isinstance(resolved.get("image_size"), int) and resolved["image_size"] > 0):
        return "config.json lacks 'resolved.image_size' (a positive integer)"
    if metrics.get("state") not in STATES:
        return f"metrics.json has no valid 'state' (got {metrics.get('state')!r}; expected one of {', '.join(STATES)})"
    for key in CURVES:
        if key in history and not _is_number_list(history[key]):
            return f"history.json: '{key}' is not a list of numbers"
    problem = metrics_problem(metrics)
    if problem:
        return problem
    epochs = len(history.get("loss", []))
    uneven = [k for k in CURVES if len(history.get(k, [])) != epochs]
    if uneven:
        return (
            f"history.json: {', '.join(uneven)} {'has' if len(uneven) == 1 else 'have'} not one value per epoch ({epochs} losses)"
        )
    return ""


_METRIC_NUMBERS = (
    "epoch",
    "phase",
    "epochs_run",
    "epochs_total",
    "checkpoint_epoch",
    "wall_seconds",
    "trainable_params",
    "non_trainable_params",
    "total_params",
)
_METRIC_OBJECTS = ("validation", "test", "timings", "feature_cache", "data_path", "images_per_second")
_SCORES = ("accuracy", "loss", "roc_auc")
PID_MAX = 2**22  # Linux's PID_MAX_LIMIT: a larger "pid" is no process id


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def metrics_problem(metrics: dict) -> str:
    """'' if every field of metrics.json that readers show has the type they expect, else which one does not."""
    if not isinstance(metrics.get("message", ""), str):
        return "metrics.json: 'message' is not text"
    for key in _METRIC_NUMBERS:
        if metrics.get(key) is not None and not _is_number(metrics[key]):
            return f"metrics.json: '{key}' is not a number (it is {str(metrics[key])[:40]!r})"
    for key in _METRIC_OBJECTS:
        if metrics.get(key) is not None and not isinstance(metrics[key], dict):
            return f"metrics.json: '{key}' is not an object (it is {str(metrics[key])[:40]!r})"
    for split in ("validation", "test"):
        scored = metrics.get(split) or {}
        for key in _SCORES:
            value = scored.get(key)
            if value is not None and not _is_number(value):
                return f"metrics.json: '{split}.{key}' is not a number (it is {str(value)[:40]!r})"
        matrix = scored.get("confusion_matrix")
        if matrix is not None and not (isinstance(matrix, list) and all(_is_number_list(row) for row in matrix)):
            return f"metrics.json: '{split}.confusion_matrix' is not a table of numbers"
        if scored.get("per_class") is not None and not isinstance(scored["per_class"], dict):
            return f"metrics.json: '{split}.per_class' is not an object"
    cache = dict(metrics.get("feature_cache") or {})
    reused = cache.pop("reused_splits", [])
    if any(not _is_number(v) for v in cache.values()):
        return "metrics.json: 'feature_cache' holds a value that is not a number"
    if not (isinstance(reused, list) and all(isinstance(s, str) for s in reused)):
        return "metrics.json: 'feature_cache.reused_splits' is not a list of split names"
    return ""


def owner_problem(owner: dict) -> str:
    """'' if heartbeat.json can be judged (pid a process id, times numbers), else what is wrong."""
    pid = owner.get("pid")
    if pid is not None and not (isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= PID_MAX):
        return f"heartbeat.json: 'pid' is not a process id (it is {str(pid)[:40]!r})"
    for key in ("heartbeat", "started"):
        if owner.get(key) is not None and not _is_number(owner[key]):
            return f"heartbeat.json: '{key}' is not a time (it is {str(owner[key])[:40]!r})"
    return ""


def model_problem(path: Path) -> str:
    """'' if `path` is a complete .keras archive, else why not. Reads only the zip directory (cheap)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"model.keras is unreadable (truncated or not a Keras file: {exc})"
    missing = [m for m in MODEL_MEMBERS if m not in names]
    return f"model.keras is incomplete (lacks {', '.join(missing)})" if missing else ""


class RunStore:
    """Reads and writes run folders under one root directory."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_runs_dir()
        self._beats: dict[Path, heartbeat.Heartbeat] = {}

    def create(self, approach: str, config: dict, run_id: str | None = None) -> Path:
        run_id = check_run_id(run_id) if run_id else new_run_id(approach)
        path = self.root / run_id
        exists = RunStoreError(f"run id {run_id!r}: a run folder with that id already exists in {self.root}; choose another")
        if path.exists():
            raise exists
        # Filled in a hidden folder, then renamed: a reader never sees a run folder missing its files.
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{run_id}.{secrets.token_hex(4)}.creating"
        staging.mkdir()
        try:
            atomic_write_json(staging / "config.json", config)
            atomic_write_json(staging / "history.json", {})
            atomic_write_json(staging / "metrics.json", {"state": "running", "started": time.time()})
            os.rename(staging, path)  # fails if a folder of that name appeared meanwhile (and is not empty)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if path.exists():
                raise exists from None
            raise
        return path

    def start_heartbeat(self, run_dir: Path) -> heartbeat.Heartbeat:
        """Records this process as the run's owner and keeps its heartbeat fresh until the run
        records a final state (`write_metrics`) or `stop_heartbeat`; see heartbeat.py."""
        beat = heartbeat.Heartbeat(run_dir).start()
        self._beats[Path(run_dir)] = beat
        return beat

    def stop_heartbeat(self, run_dir: Path) -> None:
        beat = self._beats.pop(Path(run_dir), None)
        if beat is not None:
            beat.stop()

    def _write(self, path: Path, write) -> None:
        try:
            write()
        except OSError as exc:  # a full disk, a read-only folder: the user can fix these
            raise RunSaveError(f"could not write {path.name} in {path.parent} ({exc.strerror or exc})") from exc

    def write_history(self, run_dir: Path, history: dict) -> None:
        path = Path(run_dir) / "history.json"
        self._write(path, lambda: atomic_write_json(path, history))

    def write_metrics(self, run_dir: Path, metrics: dict) -> None:
        """Writes metrics.json; a final state (not `running`) also ends the run's heartbeat."""
        path = Path(run_dir) / "metrics.json"
        self._write(path, lambda: atomic_write_json(path, metrics))
        if metrics.get("state") != "running":
            self.stop_heartbeat(run_dir)

    def write_status(self, run_dir: Path, status: dict) -> None:
        """Writes status.json: what the run is doing now (engine/store/status.py); separate from metrics.json."""
        atomic_write_json(Path(run_dir) / STATUS_FILE, status)

    @staticmethod
    def read_status(run_dir: str | os.PathLike) -> dict:
        """The run's status.json, or {} when absent or unreadable (older runs, a write in progress elsewhere)."""
        try:
            status = json.loads((Path(run_dir) / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return status if isinstance(status, dict) else {}

    def save_model(self, run_dir: Path, model) -> None:
        """Saves to a temp .keras file in the run folder, then renames it into place.

        So a kill or a full disk during the write leaves the previous model.keras (or none),
        never a truncated one. Raises RunSaveError when the write fails.
        """
        run_dir = Path(run_dir)
        tmp = run_dir / f".model.{secrets.token_hex(4)}.keras"
        try:
            self._write(run_dir / "model.keras", lambda: (model.save(tmp), os.replace(tmp, run_dir / "model.keras")))
        finally:
            tmp.unlink(missing_ok=True)

    def load(self, run_id: str) -> RunRecord:
        """Reads one run. Raises RunNotFound (unknown id) or RunStoreError (bad id, damaged folder)."""
        path = self.root / check_run_id(run_id)
        if not path.is_dir():
            raise RunNotFound(f"no run {run_id!r} in {self.root}")
        parts = {}
        for name in ("config", "history", "metrics"):
            f = path / f"{name}.json"
            try:
                parts[name] = json.loads(f.read_text())
            except FileNotFoundError:
                raise RunDamaged(run_id, f"{f.name} is missing") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RunDamaged(run_id, f"{f.name} is not valid JSON ({exc})") from None
            except RecursionError:
                raise RunDamaged(run_id, f"{f.name} is nested too deeply to be a run's record") from None
            except OSError as exc:
                raise RunDamaged(run_id, f"{f.name} cannot be read ({exc.strerror or exc})") from None
            if not isinstance(parts[name], dict):
                raise RunDamaged(run_id, f"{f.name} does not hold a JSON object")
        problem = record_problem(parts["config"], parts["history"], parts["metrics"])
        if not problem and (path / "model.keras").exists():
            problem = model_problem(path / "model.keras")
        owner = _read_owner(path)
        problem = problem or owner_problem(owner)
        if problem:
            raise RunDamaged(run_id, problem)
        return RunRecord(run_id, path, parts["config"], parts["history"], parts["metrics"], owner)

    def list(self) -> RunListing:
        """All runs, newest first; damaged folders are listed separately with a reason."""
        listing = RunListing()
        if not self.root.is_dir():
            return listing
        for path in sorted((p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True):
            try:
                listing.runs.append(self.load(path.name))
            except RunDamaged as exc:
                listing.damaged.append(DamagedRun(path.name, path, exc.reason))
            except RunStoreError as exc:  # a folder name that is no run id
                listing.damaged.append(DamagedRun(path.name, path, str(exc)))
        return listing

    def delete(self, run_id: str) -> None:
        path = self.root / check_run_id(run_id)
        if not path.is_dir():
            raise RunNotFound(f"no run {run_id!r} in {self.root}")
        shutil.rmtree(path)

    def load_model(self, run_id: str):
        """The run's full model. Raises RunNotFound (no model.keras) or RunDamaged (it cannot be loaded)."""
        import keras

        from engine.models import modeling  # noqa: F401  (registers BackbonePreprocess for deserialisation)

        path = self.root / check_run_id(run_id) / "model.keras"
        if not path.exists():
            raise RunNotFound(f"run {run_id!r} has no model.keras (it may have stopped before its first epoch)")
        problem = model_problem(path)  # Keras reports a truncated archive as "File not found"
        if problem:
            raise RunDamaged(run_id, problem)
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # a corrupt archive can fail anywhere in h5py or deserialisation
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise RunDamaged(run_id, f"model.keras cannot be loaded ({type(exc).__name__}: {first[:200]})") from exc
        classes = self.load(run_id).config["resolved"]["classes"]
        units = model.output_shape[-1]
        if units != (1 if len(classes) == 2 else len(classes)):  # one sigmoid unit for two classes, else softmax
            raise RunDamaged(run_id, f"model.keras has {units} output(s) but config.json names {len(classes)} classes")
        return model


def _read_owner(run_dir: Path) -> dict:
    """heartbeat.json, or {} (older runs, or unreadable: then liveness falls back to file times)."""
    try:
        owner = json.loads((run_dir / heartbeat.HEARTBEAT_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return owner if isinstance(owner, dict) else {}
