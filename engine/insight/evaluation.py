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


AUC_THRESHOLDS = 10_001  # evenly spaced over [0, 1]: two scores within one 1e-4 step count as a tie


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """Area under the ROC curve (keras.metrics.AUC, ties count half); None if one class is absent.

    With `AUC_THRESHOLDS` thresholds the trapezoidal sum matches the exact rank statistic to
    about 1e-4 (exactly, when no two scores of different classes fall between the same thresholds).
    """
    pos = np.asarray(positives).astype(bool).reshape(-1)
    if pos.all() or not pos.any():
        return None
    import keras

    auc = keras.metrics.AUC(num_thresholds=AUC_THRESHOLDS, curve="ROC", dtype="float32")
    auc.update_state(pos.astype(np.float32), np.asarray(scores, dtype=np.float32).reshape(-1))
    return float(auc.result())


def score_predictions(
    probs: np.ndarray, labels: np.ndarray, classes: list[str], files: list[str] | None = None, max_mistakes: int = 200
) -> dict:
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
            mistakes.append(
                {
                    "path": files[idx],
                    "true": classes[labels[idx]],
                    "predicted": classes[pred[idx]],
                    "probabilities": {name: round(float(probs[idx, j]), 6) for j, name in enumerate(classes)},
                }
            )
    return {
        "num_images": int(n),
        "accuracy": float((pred == labels).mean()) if n else float("nan"),
        "loss": loss,
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
        "roc_auc": roc_auc(probs[:, 1], labels == 1) if c == 2 else None,
        "misclassified": mistakes,
    }
