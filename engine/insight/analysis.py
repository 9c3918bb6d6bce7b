"""Errors you can learn from, and honest comparison: reads runs' stored predictions and metrics.

Every scored run keeps `predictions.json` (per image of validation and test: file, true
label, class probabilities; written by training/lifecycle.py). From it: the images with the
highest loss in either error direction, the most confused class pairs, per-class
precision/recall/F1, and the images on which several runs disagree. Repeats of one setup
over several seeds (`run --seeds N`) are grouped into mean ± standard deviation.
Pure functions on plain data (no TensorFlow, no Streamlit).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import StudioError
from engine.store.record import RunRecord

PREDICTIONS_FILE = "predictions.json"
EPS = 1e-7  # probability floor for the log loss, as in evaluation.score_predictions


class AnalysisError(StudioError):
    """A run cannot be analysed (no stored predictions, no scored split); the message says what to do."""


@dataclass
class SplitPredictions:
    """One scored split of one run: per image, its file, true class index and class probabilities."""

    split: str
    classes: list[str]
    files: list[str]
    labels: np.ndarray  # (N,) int
    probabilities: np.ndarray  # (N, C) float

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def losses(self) -> np.ndarray:
        """Per-image cross-entropy: -log p(true class)."""
        p = self.probabilities[np.arange(len(self.labels)), self.labels]
        return -np.log(np.clip(p, EPS, 1.0))

    def confusion_matrix(self) -> list[list[int]]:
        c = len(self.classes)
        cm = np.zeros((c, c), dtype=np.int64)
        np.add.at(cm, (self.labels, self.predicted), 1)
        return cm.tolist()


def predictions_payload(split_scores: dict[str, tuple[list[str], np.ndarray, np.ndarray]], classes: list[str]) -> dict:
    """The JSON object stored as predictions.json: {"classes", "splits": {split: {files, labels, probabilities}}}.

    `split_scores` maps a split name to (files, integer labels, (N, C) probabilities).
    Probabilities are rounded to 6 digits: enough to rank losses, a few dozen bytes per image.
    """
    return {
        "classes": list(classes),
        "splits": {
            name: {
                "files": [str(f) for f in files],
                "labels": [int(v) for v in np.asarray(labels).reshape(-1)],
                "probabilities": np.round(np.asarray(probs, dtype=np.float64), 6).tolist(),
            }
            for name, (files, labels, probs) in split_scores.items()
        },
    }


def load_predictions(run_dir: str | Path, split: str | None = None) -> SplitPredictions:
    """A run's stored predictions for `split`, or by default its test split (else validation).

    Raises AnalysisError when the run has none (trained before predictions were stored, or
    stopped before scoring).
    """
    path = Path(run_dir) / PREDICTIONS_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise AnalysisError(
            f"{path}: no stored predictions (run stopped before scoring, or trained by an older version); train it again"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise AnalysisError(f"{path}: unreadable ({exc}); train the run again") from None
    splits = raw.get("splits") or {}
    name = split or ("test" if "test" in splits else "validation")
    if name not in splits:
        raise AnalysisError(f"{path}: no predictions for split {name!r}; stored: {', '.join(splits) or 'none'}")
    s = splits[name]
    classes = list(raw["classes"])
    probs = np.asarray(s["probabilities"], dtype=np.float64).reshape(-1, len(classes))
    return SplitPredictions(name, classes, list(s["files"]), np.asarray(s["labels"], dtype=np.int64), probs)


def _row(preds: SplitPredictions, i: int, losses: np.ndarray) -> dict:
    return {
        "path": preds.files[i],
        "true": preds.classes[preds.labels[i]],
        "predicted": preds.classes[preds.predicted[i]],
        "loss": round(float(losses[i]), 6),
        "probabilities": {c: round(float(preds.probabilities[i, j]), 6) for j, c in enumerate(preds.classes)},
    }


def highest_loss(
    preds: SplitPredictions,
    k: int = 12,
    true_class: str | None = None,
    predicted_class: str | None = None,
    errors_only: bool = True,
) -> list[dict]:
    """The `k` images with the highest loss, highest first, optionally only those of one true and/or predicted class.

    Each row: path, true, predicted, loss, probabilities (per class). With `errors_only`
    (default) correctly classified images are left out.
    """
    for name, value in (("true_class", true_class), ("predicted_class", predicted_class)):
        if value is not None and value not in preds.classes:
            raise AnalysisError(f"{name}: unknown class {value!r}; choose one of {', '.join(preds.classes)}")
    losses = preds.losses
    keep = np.ones(len(losses), dtype=bool)
    if errors_only:
        keep &= preds.predicted != preds.labels
    if true_class is not None:
        keep &= preds.labels == preds.classes.index(true_class)
    if predicted_class is not None:
        keep &= preds.predicted == preds.classes.index(predicted_class)
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(-losses[idx], kind="stable")][:k]
    return [_row(preds, int(i), losses) for i in idx]


def most_confused(confusion_matrix, classes: list[str], min_count: int = 1) -> list[dict]:
    """Off-diagonal cells of a confusion matrix (rows = true), largest first: [{true, predicted, count}]."""
    cm = np.asarray(confusion_matrix, dtype=np.int64)
    pairs = [
        {"true": classes[i], "predicted": classes[j], "count": int(cm[i, j])}
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j and cm[i, j] >= min_count
    ]
    return sorted(pairs, key=lambda r: -r["count"])


def per_class_report(confusion_matrix, classes: list[str]) -> dict[str, dict]:
    """Per class: precision, recall, F1 (0 where undefined) and support, from a confusion matrix (rows = true)."""
    cm = np.asarray(confusion_matrix, dtype=np.int64)
    out = {}
    for i, name in enumerate(classes):
        tp, predicted, actual = int(cm[i, i]), int(cm[:, i].sum()), int(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    return out


def disagreements(runs: dict[str, SplitPredictions], k: int | None = None) -> list[dict]:
    """Images of the same split on which the given runs do not all predict the same class.

    `runs` maps a run id (or label) to its predictions; images are matched by file path
    (runs on the same dataset and split share them). Rows: path, true, and per run its
    predicted class and probability of that class; sorted with the images most runs get
    wrong first. Raises AnalysisError when fewer than two runs or the runs share no image.
    """
    if len(runs) < 2:
        raise AnalysisError("disagreements: choose at least two runs")
    items = list(runs.items())
    classes = items[0][1].classes
    for rid, p in items[1:]:
        if p.classes != classes:
            raise AnalysisError(
                f"disagreements: run {rid} has classes {p.classes}, not {classes}; compare runs on the same dataset"
            )
    index = [{f: i for i, f in enumerate(p.files)} for _, p in items]
    common = [f for f in items[0][1].files if all(f in ix for ix in index[1:])]
    if not common:
        raise AnalysisError("disagreements: the runs share no scored image; compare runs on the same dataset and split")
    rows = []
    for f in common:
        picks = {rid: int(p.predicted[ix[f]]) for (rid, p), ix in zip(items, index)}
        if len(set(picks.values())) < 2:
            continue
        true = int(items[0][1].labels[index[0][f]])
        rows.append(
            {
                "path": f,
                "true": classes[true],
                "wrong": sum(v != true for v in picks.values()),
                "runs": {
                    rid: {"predicted": classes[v], "probability": round(float(p.probabilities[ix[f], v]), 6)}
                    for ((rid, p), ix), v in zip(zip(items, index), picks.values())
                },
            }
        )
    rows.sort(key=lambda r: -r["wrong"])
    return rows[:k] if k else rows


# --- honest comparison: repeats over seeds ---------------------------------------------------
def _metric(metrics: dict, name: str) -> float | None:
    """`val_accuracy` / `test_accuracy` / `wall_seconds` from a metrics.json dict."""
    if name == "val_accuracy":
        return (metrics.get("validation") or {}).get("accuracy")
    if name == "test_accuracy":
        return (metrics.get("test") or {}).get("accuracy")
    return metrics.get(name)


def group_repeats(records, metric: str = "test_accuracy") -> list[dict]:
    """Groups runs by their `resolved.repeat_group` (a run without one is its own group).

    `records`: RunRecord-like objects (with .id, .config, .metrics) or dicts with those keys.
    Returns one dict per group, in first-seen order: group, approach, run_ids, seeds, values,
    n, mean, std (sample standard deviation, 0 for n = 1), low/high (mean ∓ std), and
    `overlaps`: ids of the other groups whose mean ± std interval overlaps this one's. Runs
    whose metric is missing (stopped, failed, no test split) are left out.
    """
    groups: dict[str, dict] = {}
    for r in records:
        if isinstance(r, dict):
            r = RunRecord(r["id"], None, r["config"], {}, r["metrics"])
        value = _metric(r.metrics, metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        gid = r.repeat_group or r.id
        g = groups.setdefault(gid, {"group": gid, "approach": r.approach, "run_ids": [], "seeds": [], "values": []})
        g["run_ids"].append(r.id)
        g["seeds"].append(r.seed)
        g["values"].append(float(value))
    out = list(groups.values())
    for g in out:
        v = np.asarray(g["values"])
        g["n"] = len(v)
        g["mean"] = float(v.mean())
        g["std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        g["low"], g["high"] = g["mean"] - g["std"], g["mean"] + g["std"]
        g["metric"] = metric
    for g in out:
        g["overlaps"] = [o["group"] for o in out if o is not g and intervals_overlap(g, o)]
    return out


def intervals_overlap(a: dict, b: dict) -> bool:
    """Whether two groups' mean ± std intervals overlap (then neither is shown to be better)."""
    return a["mean"] - a["std"] <= b["mean"] + b["std"] and b["mean"] - b["std"] <= a["mean"] + a["std"]
