"""How sure an accuracy is: its count of photos and a 95 % Wilson score interval, and when one run is clearly best.

An accuracy of 1.000 on 4 test photos and one on 1 000 say very different things; every table and chart that
shows an accuracy shows `1.000 (4/4, 95 % 0.51–1.00)`. The Wilson interval (not the normal approximation,
which gives 1.00–1.00 for 4/4) comes from SciPy's `binomtest`, imported when first needed.
Pure functions on plain data (a split's metrics dict as metrics.json stores it).
"""

from __future__ import annotations

import math

CONFIDENCE = 0.95  # the level of every interval shown ("95 %")


def wilson(correct: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of `correct` successes in `n` trials; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def scored_count(split: dict | None) -> int | None:
    """How many photos a split's metrics were scored on: `num_images`, else the confusion matrix's sum, else the
    per-class supports' sum (runs recorded before `num_images`); None when none of them is there."""
    split = split or {}
    n = split.get("num_images")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return n
    matrix = split.get("confusion_matrix")
    if isinstance(matrix, list) and matrix:
        try:
            total = int(sum(sum(int(v) for v in row) for row in matrix))
        except (TypeError, ValueError):
            total = 0
        if total > 0:
            return total
    per_class = split.get("per_class")
    if isinstance(per_class, dict) and per_class:
        try:
            total = int(sum(int(c.get("support", 0)) for c in per_class.values()))
        except (TypeError, ValueError, AttributeError):
            total = 0
        if total > 0:
            return total
    return None


def accuracy_interval(accuracy: float | None, n: int | None) -> tuple[int, float, float] | None:
    """(correct, low, high) for an accuracy scored on n photos; None when either is unknown or not finite."""
    if accuracy is None or n is None or n <= 0 or not math.isfinite(accuracy):
        return None
    correct = int(round(accuracy * n))  # accuracy = correct / n, stored as a float
    low, high = wilson(correct, n)
    return correct, low, high


def count_note(accuracy: float | None, n: int | None) -> str:
    """'4/4, 95 % 0.51–1.00': the count and the interval, for beside a bare number (a metric); '' when unknown."""
    ci = accuracy_interval(accuracy, n)
    if ci is None:
        return ""
    correct, low, high = ci
    return f"{correct}/{n}, 95 % {low:.2f}–{high:.2f}"


def accuracy_text(accuracy: float | None, n: int | None) -> str:
    """'1.000 (4/4, 95 % 0.51–1.00)' for a table cell; '1.000' when the count is unknown; '—' without an accuracy."""
    if accuracy is None or not math.isfinite(accuracy):
        return "—"
    note = count_note(accuracy, n)
    return f"{accuracy:.3f} ({note})" if note else f"{accuracy:.3f}"


def split_accuracy_text(split: dict | None) -> str:
    """`accuracy_text` of a split's metrics (metrics.json's "validation" or "test")."""
    split = split or {}
    return accuracy_text(split.get("accuracy"), scored_count(split))


def clear_best(scores: list[tuple[float | None, int | None]]) -> int | None:
    """The index of the one score that is clearly best, else None.

    Clearly best: its 95 % Wilson interval lies wholly above every other score's (no overlap). Not overlapping is a
    conservative test (two 95 % intervals that just touch differ at about p < 0.01); it needs no per-photo
    predictions, so it holds for runs on different photos too. A score without a count has no interval and never
    wins; fewer than two scores have no best.
    """
    if len(scores) < 2:
        return None
    intervals = [accuracy_interval(a, n) for a, n in scores]
    if any(ci is None for ci in intervals):
        return None
    top = max(range(len(scores)), key=lambda i: scores[i][0])
    low = intervals[top][1]
    if all(low > ci[2] for i, ci in enumerate(intervals) if i != top):
        return top
    return None


def no_clear_best(counts: list[int | None], split: str = "") -> str:
    """'no clear best on 4 test photos' (or '4–30' when the runs scored different numbers of photos)."""
    known = sorted({n for n in counts if n})
    if not known:
        return "no clear best: the photos each run was scored on are not recorded"
    many = f"{known[0]}" if len(known) == 1 else f"{known[0]}–{known[-1]}"
    what = f"{split} photos" if split else "photos"
    return f"no clear best on {many} {what}"
