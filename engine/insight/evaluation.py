"""Scores predictions: accuracy, loss, confusion matrix, per-class precision/recall, ROC AUC, mistakes."""

from __future__ import annotations

import numpy as np


def class_probabilities(raw: np.ndarray, num_classes: int) -> np.ndarray:
    """Model outputs as (N, num_classes) probabilities; a sigmoid unit p becomes [1 - p, p]."""
    raw = np.asarray(raw, dtype=np.float64)
    if num_classes == 2:
        p = raw.reshape(-1)
        return np.stack([1.0 - p, p], axis=1)
    return raw


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank statistic (ties averaged); None if one class is absent."""
    pos = positives.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def score_predictions(probs: np.ndarray, labels: np.ndarray, classes: list[str], files: list[str] | None = None, max_mistakes: int = 200) -> dict:
    """Metrics for one split from (N, C) class probabilities and integer labels.

    Returns a JSON-ready dict: accuracy, loss (cross-entropy), confusion_matrix (rows =
    true class, columns = predicted, in `classes` order), per_class precision/recall/support,
    roc_auc (binary only) and misclassified files with their probabilities.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n, c = probs.shape
    pred = probs.argmax(axis=1)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(n), labels], eps, 1.0)))) if n else float("nan")
    cm = np.zeros((c, c), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    per_class = {}
    for i, name in enumerate(classes):
        tp = int(cm[i, i])
        predicted, actual = int(cm[:, i].sum()), int(cm[i, :].sum())
        per_class[name] = {
            "precision": tp / predicted if predicted else 0.0,
            "recall": tp / actual if actual else 0.0,
            "support": actual,
        }
    mistakes = []
    if files is not None:
        for idx in np.flatnonzero(pred != labels)[:max_mistakes]:
            mistakes.append({
                "path": files[idx],
                "true": classes[labels[idx]],
                "predicted": classes[pred[idx]],
                "probabilities": {name: round(float(probs[idx, j]), 6) for j, name in enumerate(classes)},
            })
    return {
        "num_images": int(n),
        "accuracy": float((pred == labels).mean()) if n else float("nan"),
        "loss": loss,
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
        "roc_auc": roc_auc(probs[:, 1], labels == 1) if c == 2 else None,
        "misclassified": mistakes,
    }
