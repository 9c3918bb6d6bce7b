"""Ensembles of finished runs: their per-image probabilities averaged, scored on validation and, once, on test.

Built from what each run stored (`predictions.json`, engine/insight/analysis.py): no model is
loaded, so Compare and `python -m engine ensemble` answer at once. The runs must be of one
dataset with the same classes (same order) and exactly the same files in each split, else a
StudioError names the run that differs and why.

Weighting rule (one, used by Compare, `ensemble`, `predict --weighted` and Classify): each run
weighs its recorded validation accuracy (metrics.json, what Compare shows), the weights
normalised to sum to 1; unweighted, every run weighs 1/N. The weights are chosen on validation,
so a weighted ensemble's validation score is slightly optimistic; test is never used to choose
anything: it is scored once, only when every run has test predictions, and labelled as such.

Pure NumPy on plain data (no TensorFlow at import; TTA's re-scoring, `inference.flip_averaged`, is passed in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from engine.errors import StudioError
from engine.insight.analysis import PREDICTIONS_FILE, AnalysisError, SplitPredictions, load_predictions

SPLITS = ("validation", "test")


class EnsembleError(StudioError):
    """The chosen runs cannot form an ensemble (other dataset, classes or files); the message names the run."""


@dataclass
class Member:
    """One run of an ensemble: its id, recorded validation accuracy and per-split predictions."""

    id: str
    dataset: str
    val_accuracy: float | None
    splits: dict[str, SplitPredictions]  # validation always; test when the run has a test split


@dataclass
class EnsembleScore:
    """Each member's and the ensemble's accuracy and loss per split; test is None when not every member has one."""

    members: list[str]
    weights: list[float]
    weighted: bool
    tta: bool
    splits: dict[str, dict | None] = field(default_factory=dict)  # split -> {"members": {id: score}, "ensemble": score}
    test_note: str = ""

    def to_dict(self) -> dict:
        return {
            "members": self.members,
            "weights": dict(zip(self.members, self.weights)),
            "weighted": self.weighted,
            "tta": self.tta,
            "splits": self.splits,
            "test_scored_once": self.splits.get("test") is not None,
            "test_note": self.test_note,
        }


def _stored_splits(run_dir) -> list[str]:
    try:
        return list((json.loads((run_dir / PREDICTIONS_FILE).read_text()).get("splits") or {}))
    except (OSError, ValueError, AttributeError):
        return []  # load_predictions below says what is wrong with the file


def run_problem(record) -> str:
    """'' when a run can be a member (it ended and scored its model: finished, or stopped by the user), else why not."""
    if record.state not in ("finished", "stopped"):
        return f"run {record.id} is {record.state}; an ensemble takes runs that ended and were scored (finished or stopped)"
    if not (record.path / PREDICTIONS_FILE).is_file():
        if record.state == "stopped" and record.accuracy("validation") is None:
            return (
                f"run {record.id} was stopped before it was scored, so it has no stored predictions; "
                "train it again (a run stopped now is scored on the epochs it kept)"
            )
        return f"run {record.id} has no stored predictions (trained by an older version); train it again"
    return ""


def load_member(record) -> Member:
    """A run's stored predictions (RunRecord-like: .id, .path, .state, .dataset_root, .accuracy()).

    Raises EnsembleError (the run cannot be a member) or AnalysisError (unreadable predictions).
    """
    problem = run_problem(record)
    if problem:
        raise EnsembleError(problem)
    splits = {"validation": load_predictions(record.path, "validation")}
    if "test" in _stored_splits(record.path):
        splits["test"] = load_predictions(record.path, "test")
    return Member(record.id, record.dataset_root, record.accuracy("validation"), splits)


def _aligned(first: Member, other: Member, split: str) -> SplitPredictions:
    """`other`'s predictions of `split` in `first`'s file order; EnsembleError when the files or labels differ."""
    a, b = first.splits[split], other.splits[split]
    if set(a.files) != set(b.files) or len(a.files) != len(b.files):
        extra = sorted(set(b.files) ^ set(a.files))
        example = f", e.g. {extra[0]} in only one of them" if extra else ""
        raise EnsembleError(
            f"run {other.id}: its {split} split holds other files than run {first.id}'s "
            f"({len(b.files)} vs {len(a.files)} images{example}); choose runs trained with the same split "
            "(same dataset, seed and split settings)"
        )
    index = {f: i for i, f in enumerate(b.files)}
    order = np.asarray([index[f] for f in a.files], dtype=np.int64)
    if not np.array_equal(b.labels[order], a.labels):
        raise EnsembleError(
            f"run {other.id}: its {split} labels differ from run {first.id}'s for the same files; "
            "the dataset changed between the runs: train them again"
        )
    return replace(b, files=list(a.files), labels=a.labels, probabilities=b.probabilities[order])


def check_members(members: list[Member]) -> list[Member]:
    """The members with every split in the first member's file order; EnsembleError naming the run that differs."""
    if not members:
        raise EnsembleError("--run: choose at least one run")
    first = members[0]
    out = [first]
    for m in members[1:]:
        if m.id in [o.id for o in out]:
            raise EnsembleError(f"run {m.id}: chosen twice; choose each run once")
        if m.dataset != first.dataset:
            raise EnsembleError(
                f"run {m.id}: trained on {m.dataset or 'an unknown dataset'}, not on {first.dataset} "
                f"(run {first.id}); an ensemble needs runs of one dataset"
            )
        classes, want = m.splits["validation"].classes, first.splits["validation"].classes
        if classes != want:
            raise EnsembleError(
                f"run {m.id}: classes {', '.join(classes)} differ from run {first.id}'s "
                f"({', '.join(want)}); an ensemble needs the same classes in the same order"
            )
        splits = {s: _aligned(first, m, s) for s in SPLITS if s in m.splits and s in first.splits}
        out.append(replace(m, splits={**m.splits, **splits}))
    return out


def weights_for(ids: list[str], val_accuracies: list[float | None], weighted: bool) -> list[float]:
    """1/N each, or (weighted) each run's validation accuracy over their sum; EnsembleError when one is missing."""
    if not weighted:
        return [1.0 / len(ids)] * len(ids)
    for rid, acc in zip(ids, val_accuracies):
        if acc is None or not np.isfinite(acc) or acc < 0:
            raise EnsembleError(f"run {rid}: no recorded validation accuracy to weigh it by; leave out --weighted or the run")
    total = float(sum(val_accuracies))
    if total <= 0:
        raise EnsembleError("--weighted: every run scored 0 on validation; leave out --weighted")
    return [float(a) / total for a in val_accuracies]


def average(preds: list[SplitPredictions], weights: list[float]) -> SplitPredictions:
    """The weighted mean of aligned predictions' probabilities (same files, labels and classes)."""
    stacked = np.stack([p.probabilities for p in preds])  # (members, N, C)
    probs = np.tensordot(np.asarray(weights, dtype=np.float64), stacked, axes=1)
    return replace(preds[0], probabilities=probs)


def score(preds: SplitPredictions) -> dict:
    """Accuracy and mean cross-entropy (evaluation.score_predictions' rule, without its Keras-backed ROC AUC)."""
    n = len(preds.labels)
    acc = float((preds.predicted == preds.labels).mean()) if n else float("nan")
    loss = float(preds.losses.mean()) if n else float("nan")
    return {"accuracy": acc, "loss": loss, "num_images": n}


def score_ensemble(members: list[Member], weighted: bool = False, tta: bool = False) -> EnsembleScore:
    """Scores each member and the (weighted) average on validation, and on test when every member has test predictions."""
    members = check_members(members)
    ids = [m.id for m in members]
    weights = weights_for(ids, [m.val_accuracy for m in members], weighted)
    result = EnsembleScore(ids, weights, weighted, tta)
    for split in SPLITS:
        missing = [m.id for m in members if split not in m.splits]
        if missing:
            result.splits[split] = None
            if split == "test":
                result.test_note = (
                    f"not scored: run {missing[0]} has no test split"
                    if len(missing) < len(members)
                    else "not scored: the dataset has no test split (validation only)"
                )
            continue
        preds = [m.splits[split] for m in members]
        result.splits[split] = {
            "members": {m.id: score(p) for m, p in zip(members, preds)},
            "ensemble": score(average(preds, weights)),
        }
    if result.splits.get("test") is not None:
        result.test_note = "scored once: never used to choose runs or weights"
    return result


def ensemble_problem(records) -> str:
    """'' when these runs may form an ensemble by what their records say (cheap: no predictions read), else why not."""
    if len(records) < 2:
        return "choose two or more runs"
    first = records[0]
    for r in records:
        problem = run_problem(r)
        if problem:
            return problem
        if r.dataset_root != first.dataset_root or r.classes != first.classes:
            return f"run {r.id} is of another dataset or class list than run {first.id}"
    return ""


def ensemble_of_runs(records, weighted: bool = False, *, rescore=None) -> EnsembleScore:
    """`score_ensemble` from the runs' stored predictions; with `rescore` (inference.flip_averaged bound to the runs'
    store: a member with its images classified again with their flips) first applied to each member, as
    `python -m engine ensemble --tta` does. Raises EnsembleError or AnalysisError (one line)."""
    try:
        members = check_members([load_member(r) for r in records])  # every refusal before a model loads
    except AnalysisError as exc:
        raise EnsembleError(str(exc)) from None
    if rescore is not None:
        members = [rescore(m) for m in members]
    return score_ensemble(members, weighted, rescore is not None)
