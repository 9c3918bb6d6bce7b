"""How sure an accuracy is (engine/insight/intervals.py): Wilson intervals, counts of old runs, the clear-best rule."""

import pytest

from engine.insight import intervals


@pytest.mark.parametrize(
    "correct, n, low, high",
    [
        (4, 4, 0.510, 1.000),  # the 4-photo test split of a 30-photo dataset
        (0, 4, 0.000, 0.490),
        (27, 30, 0.744, 0.965),
        (50, 100, 0.404, 0.596),
    ],
)
def test_wilson_matches_known_values(correct, n, low, high):
    lo, hi = intervals.wilson(correct, n)
    assert lo == pytest.approx(low, abs=5e-4) and hi == pytest.approx(high, abs=5e-4)


def test_an_accuracy_reads_with_its_count_and_interval_and_without_when_the_count_is_unknown():
    assert intervals.accuracy_text(1.0, 4) == "1.000 (4/4, 95 % 0.51–1.00)"
    assert intervals.accuracy_text(0.9, 30) == "0.900 (27/30, 95 % 0.74–0.97)"
    assert intervals.accuracy_text(0.9, None) == "0.900"
    assert intervals.accuracy_text(None, 4) == "—"
    assert intervals.count_note(0.75, 4) == "3/4, 95 % 0.30–0.95"
    assert intervals.count_note(0.75, None) == ""


def test_the_count_of_an_old_run_comes_from_its_confusion_matrix_or_per_class_support():
    assert intervals.scored_count({"accuracy": 1.0, "num_images": 4}) == 4
    assert intervals.scored_count({"accuracy": 1.0, "confusion_matrix": [[2, 1], [0, 3]]}) == 6
    assert intervals.scored_count({"accuracy": 1.0, "per_class": {"a": {"support": 5}, "b": {"support": 2}}}) == 7
    assert intervals.scored_count({"accuracy": 1.0}) is None
    assert intervals.split_accuracy_text({"accuracy": 0.5, "confusion_matrix": [[1, 1], [1, 1]]}) == "0.500 (2/4, 95 % 0.15–0.85)"


def test_a_run_is_clearly_best_only_when_its_interval_lies_above_every_other():
    assert intervals.clear_best([(1.0, 4), (0.75, 4)]) is None  # 0.51–1.00 overlaps 0.30–0.95
    assert intervals.clear_best([(0.75, 400), (0.95, 400)]) == 1  # 0.93–0.97 above 0.71–0.79
    assert intervals.clear_best([(0.95, 400), (0.90, 400), (0.70, 10)]) is None  # 0.90 on 400 overlaps 0.95 on 400
    assert intervals.clear_best([(0.95, 400), (0.5, None)]) is None  # no count: no interval, no verdict
    assert intervals.clear_best([(0.95, 400)]) is None  # one run has no "best"
    assert intervals.no_clear_best([4, 4], "test") == "no clear best on 4 test photos"
    assert intervals.no_clear_best([4, 30]) == "no clear best on 4–30 photos"
