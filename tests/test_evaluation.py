import numpy as np
import pytest

from engine.insight.evaluation import class_probabilities, roc_auc, score_predictions


def test_sigmoid_output_becomes_two_columns():
    p = class_probabilities(np.array([[0.2], [0.9]]), 2)
    np.testing.assert_allclose(p, [[0.8, 0.2], [0.1, 0.9]])


def test_scores_confusion_precision_recall_and_mistakes():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 2, 2])
    m = score_predictions(probs, labels, ["a", "b", "c"], ["f0", "f1", "f2", "f3"])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert m["per_class"]["b"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert m["per_class"]["c"]["recall"] == 0.5
    assert m["misclassified"] == [{"path": "f2", "true": "c", "predicted": "b", "probabilities": {"a": 0.1, "b": 0.8, "c": 0.1}}]
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.7, 0.1, 0.8])))
    assert m["roc_auc"] is None


def test_roc_auc_known_values():
    # Pairs (positive, negative), counted by hand: 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4 ordered right
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75, abs=1e-4)
    # A tie counts half: 0.6>0.2, 0.6=0.6 (0.5), 0.9>0.2, 0.9>0.6 -> 3.5 / 4
    assert roc_auc(np.array([0.2, 0.6, 0.6, 0.9]), np.array([0, 0, 1, 1])) == pytest.approx(0.875, abs=1e-4)
    # Scores 2e-4 apart are still ranked, not lumped into one tie (which would read 0.5): .50025>.50005,
    # .50025<.50045, .50065>both -> 3 of 4
    assert roc_auc(np.array([0.50005, 0.50025, 0.50045, 0.50065]), np.array([0, 1, 0, 1])) == pytest.approx(0.75, abs=1e-4)
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5, abs=1e-4)
    assert roc_auc(np.array([0.5, 0.6]), np.array([1, 1])) is None
    assert roc_auc(np.array([]), np.array([])) is None


def test_binary_scores_carry_the_roc_auc_of_the_positive_class():
    probs = class_probabilities(np.array([0.1, 0.4, 0.35, 0.8]), 2)
    m = score_predictions(probs, np.array([0, 0, 1, 1]), ["cats", "dogs"])
    assert isinstance(m["roc_auc"], float) and m["roc_auc"] == pytest.approx(0.75, abs=1e-4)
