"""One record of a run, read back from its folder: typed accessors every reader uses.

The CLI's report and `runs` listing, Compare, Classify, the job view and the engine itself
(continuing from a frozen run) read a run through these accessors, never by digging into
config.json's `resolved` section or metrics.json by hand, so a field renamed in the store is
renamed here once. `continue_problem` is the one rule for which frozen run fine-tuning may
continue from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.store import heartbeat


@dataclass
class RunRecord:
    """A run folder as read back from disk (or a run just finished, before anyone reads it back)."""

    id: str
    path: Path
    config: dict
    history: dict
    metrics: dict
    owner: dict = field(default_factory=dict)  # heartbeat.json (pid, host, last beat); {} for older runs

    # --- what was asked and what it resolved to -----------------------------------------
    @property
    def resolved(self) -> dict:
        """What the engine decided for this run on its dataset and machine (config.json's `resolved`)."""
        return self.config.get("resolved") or {}

    @property
    def approach(self) -> str | None:
        return self.config.get("approach")

    @property
    def backbone(self) -> str | None:
        return (self.config.get("backbone") or {}).get("name")

    @property
    def dataset_root(self) -> str:
        """The dataset folder the run trained on (as resolved; the path as given for older runs), '' if unknown."""
        return self.resolved.get("dataset_root") or (self.config.get("data") or {}).get("path") or ""

    @property
    def classes(self) -> list[str]:
        return list(self.resolved.get("classes") or [])

    @property
    def image_size(self) -> int | None:
        return self.resolved.get("image_size") or (self.config.get("backbone") or {}).get("image_size") or None

    @property
    def seed(self) -> int | None:
        return self.resolved.get("seed", (self.config.get("fit") or {}).get("seed"))

    @property
    def estimate_s(self) -> float | None:
        """The wall time estimated before the run started (engine/training/estimate.py), if one was made."""
        return self.resolved.get("estimate_s")

    @property
    def repeat_group(self) -> str | None:
        return self.resolved.get("repeat_group")

    @property
    def sweep_group(self) -> str | None:
        """The sweep this run is a point of (`run --sweep` or the page's sweep), None otherwise."""
        group = self.resolved.get("sweep_group")
        return group if isinstance(group, str) and group else None

    @property
    def sweep_point(self) -> dict:
        """The point's values as {dotted field: value} ({} when the run is no sweep's); a hand-edited value that is
        no number, text or flag is left out, so readers can group and sort points without a crash."""
        point = self.resolved.get("sweep_point")
        if not isinstance(point, dict):
            return {}
        return {k: v for k, v in point.items() if isinstance(k, str) and isinstance(v, (str, int, float, bool))}

    # --- state ----------------------------------------------------------------------------
    @property
    def recorded_state(self) -> str:
        """The state the training process wrote."""
        return self.metrics.get("state", "unknown")

    @property
    def interruption(self) -> str:
        """Why a run recorded as running no longer runs ('' if it does, or if it ended and said so)."""
        if self.recorded_state != "running" or self.path is None:
            return ""
        return heartbeat.why_gone(self.owner, fallback_beat=self._last_write())

    @property
    def state(self) -> str:
        """The recorded state, or `interrupted` when the process died before recording its end."""
        return "interrupted" if self.interruption else self.recorded_state

    # --- progress and results -------------------------------------------------------------
    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", []))

    @property
    def epochs_total(self) -> int | None:
        """The epochs the run planned (both phases for fine-tuning); a stopped run reads 6 of 1000."""
        m = self.metrics
        return m.get("epochs_total", m.get("epochs_run"))

    def accuracy(self, split: str) -> float | None:
        """Accuracy on "validation" or "test" (None when not scored, or the split does not exist)."""
        return (self.metrics.get(split) or {}).get("accuracy")

    def loss(self, split: str) -> float | None:
        return (self.metrics.get(split) or {}).get("loss")

    @property
    def scored_accuracy(self) -> tuple[float | None, str]:
        """(accuracy, "test" | "validation"): the held-out test when the run has one, else validation."""
        test = self.accuracy("test")
        return (test, "test") if test is not None else (self.accuracy("validation"), "validation")

    @property
    def wall_seconds(self) -> float | None:
        """The run's own time, from after the base was built to its end (metrics.json)."""
        return self.metrics.get("wall_seconds")

    @property
    def images_per_second(self) -> float | None:
        """Training throughput: training images per second over the epochs this run trained."""
        return (self.metrics.get("images_per_second") or {}).get("fit")

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    def _last_write(self) -> float | None:
        times = [f.stat().st_mtime for f in (self.path / "metrics.json", self.path / "history.json") if f.exists()]
        return max(times) if times else None

    def continue_problem(self, *, dataset_root: str, classes: list[str], backbone: str, image_size: int) -> str:
        """'' when fine-tuning on this dataset may continue from this run, else why not (one sentence).

        The one rule, used by the Fine-tuning page (which runs it offers) and by the engine
        (which runs it accepts): a finished frozen run of the same dataset, classes, backbone and size.
        """
        if self.approach != "frozen" or self.state != "finished":
            return f"run {self.id} is a {self.state} {self.approach} run; give a finished 'frozen' run"
        if self.dataset_root != dataset_root or self.classes != list(classes):
            return f"run {self.id} was trained on another dataset or class list; start phase 1 afresh"
        if self.backbone != backbone or self.image_size != image_size:
            return f"run {self.id} used another backbone or image size; start phase 1 afresh"
        return ""

    def summary(self) -> dict:
        """What every reader shows for a run: the CLI `runs` listing, the job runner, the pages."""
        why = self.interruption
        message = self.metrics.get("message", "")
        if why:
            n, total = self.epochs_run, self.metrics.get("epochs_total")
            done = f"{n} of {total}" if total else str(n)
            if not self.model_path.exists():
                kept = "no model was saved"
            elif self.metrics.get("checkpoint_epoch"):
                kept = f"model.keras holds epoch {self.metrics['checkpoint_epoch']} (its lowest validation loss)"
            else:
                kept = "model.keras holds its last checkpoint"
            message = f"{done} epoch(s) done; {why}; {kept}"
        return {
            "id": self.id,
            "approach": self.approach,
            "backbone": self.backbone,
            "state": "interrupted" if why else self.recorded_state,
            "message": message,
            "epochs_run": self.epochs_run,
            "epochs_total": self.epochs_total,
            "val_accuracy": self.accuracy("validation"),
            "test_accuracy": self.accuracy("test"),
            "model": self.model_path.exists(),
        }


@dataclass
class DamagedRun:
    id: str
    path: Path
    reason: str

    def summary(self) -> dict:
        """The same keys as RunRecord.summary(), with state `damaged` and the reason as message."""
        return {
            "id": self.id,
            "approach": None,
            "backbone": None,
            "state": "damaged",
            "message": self.reason,
            "epochs_run": None,
            "epochs_total": None,
            "val_accuracy": None,
            "test_accuracy": None,
            "model": None,
        }


@dataclass
class RunListing:
    runs: list[RunRecord] = field(default_factory=list)
    damaged: list[DamagedRun] = field(default_factory=list)

    def summaries(self) -> list[dict]:
        """Every folder, readable or damaged, newest (largest id) first."""
        return sorted([r.summary() for r in self.runs] + [d.summary() for d in self.damaged], key=lambda s: s["id"], reverse=True)
