"""Data health: the maths on synthetic features (no TensorFlow), the feature pass and CLI on a tiny dataset, and the
acceptance test on real photos (flipped labels found, exact copies grouped, train/validation near-copies as leaks)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.insight import data_health as dh


# ---- the maths, on synthetic feature arrays -------------------------------------------------------------------

def _blobs(n_per_class=60, d=20, k=2, seed=0, gap=4.0):
    """Well-separated Gaussian classes: features and labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, gap, (k, d))
    x = np.concatenate([centres[j] + rng.normal(0, 1, (n_per_class, d)) for j in range(k)])
    y = np.repeat(np.arange(k), n_per_class)
    return x, y


def test_flipped_labels_rank_first_by_self_confidence():
    pytest.importorskip("sklearn")
    x, y = _blobs(k=3)
    flipped = np.array([3, 70, 130, 150])
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + 1) % 3
    probs = dh.out_of_fold_probabilities(x, noisy, 3, folds=5, seed=1)
    assert probs.shape == (180, 3) and np.allclose(probs.sum(axis=1), 1)
    found = dh.find_label_issues(probs, noisy)
    assert sorted(found.indices[:4]) == sorted(flipped)  # exactly the flipped ones, first
    assert list(found.suggested[:4]) == [int(y[i]) for i in found.indices[:4]]  # their true class suggested
    assert np.all(np.diff(found.scores) >= 0)  # lowest self-confidence first
    assert found.scores[0] == pytest.approx(probs[found.indices[0], noisy[found.indices[0]]])
    # the confident joint counts each photo once, under its given label (rows) and confident class (columns)
    joint = found.confident_joint
    assert joint.sum() <= 180 and joint.sum() - np.trace(joint) == 4 and joint[1, 0] == 1  # photo 3: given 1, truly 0


def test_confident_joint_uses_per_class_thresholds():
    # class 1's photos get p1 of 0.25-0.3 only (an under-confident head): an argmax (a 0.5 cut) calls them all
    # issues; confident learning's threshold for class 1 is its own mean p1 (0.225), so only the photo that clears
    # class 0's threshold (0.93) is suspect; one that clears neither is not counted at all
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.9, 0.1], [0.7, 0.3], [0.7, 0.3], [0.75, 0.25], [0.95, 0.05]])
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    assert list(np.flatnonzero(probs.argmax(axis=1) != labels)) == [3, 4, 5, 6]
    found = dh.find_label_issues(probs, labels)
    assert list(found.indices) == [6] and list(found.suggested) == [0] and list(found.scores) == [0.05]
    assert found.confident_joint.tolist() == [[2, 0], [1, 3]]  # photo 2 (p0 0.9 < 0.93, p1 0.1 < 0.225) uncounted


def test_duplicate_groups_join_exact_and_near_copies_transitively():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (8, 64))
    x[1] = x[0] + rng.normal(0, 0.05, 64)  # near-copy of 0
    x[2] = x[1] + rng.normal(0, 0.05, 64)  # near-copy of 1: one group 0-1-2
    hashes = [f"h{i}" for i in range(8)]
    hashes[5] = hashes[6] = "same"  # byte-identical files (their features may differ: a decoder's jitter)
    groups = dh.duplicate_groups(dh.unit_rows(x), hashes, threshold=0.95)
    by_members = {tuple(g.members): g for g in groups}
    assert set(by_members) == {(0, 1, 2), (5, 6)}
    assert by_members[(5, 6)].exact and by_members[(5, 6)].similarity == 1.0
    assert not by_members[(0, 1, 2)].exact and 0.95 <= by_members[(0, 1, 2)].similarity < 1.0
    assert dh.duplicate_groups(dh.unit_rows(x), [f"h{i}" for i in range(8)], threshold=0.9999) == []


def test_near_pairs_in_blocks_equal_the_whole_matrix(monkeypatch):
    rng = np.random.default_rng(3)
    u = dh.unit_rows(rng.normal(0, 1, (50, 4)))
    whole = {(i, j) for i in range(50) for j in range(i + 1, 50) if u[i] @ u[j] >= 0.8}
    monkeypatch.setattr(dh, "BLOCK", 7)
    assert {(i, j) for i, j, _ in dh.near_pairs(u, 0.8)} == whole and whole


def test_outliers_are_far_from_every_class_mean():
    x, y = _blobs(n_per_class=50, d=10, k=2, seed=2)
    rng = np.random.default_rng(5)
    x[7] = rng.normal(0, 12, 10)  # a photo of neither class
    scores = dh.outlier_scores(dh.unit_rows(x), y, 2)
    assert int(np.argmax(scores)) == 7 and scores[7] > dh.outlier_cut(scores)
    assert (scores > dh.outlier_cut(scores)).sum() <= 3


def _report(x, y, splits, hashes=None, **kw):
    paths = [f"/d/{s}/{i}.jpg" for i, s in enumerate(splits)]
    return paths, dh.health_report(x, y, splits, paths, hashes or [str(i) for i in range(len(y))], ["cats", "dogs"], **kw)


def test_report_shape_leaks_first_and_kept_photos_not_proposed_again():
    pytest.importorskip("sklearn")
    x, y = _blobs(n_per_class=40, d=64, k=2, seed=4, gap=1.5)
    splits = ["train"] * 30 + ["validation"] * 10 + ["train"] * 30 + ["validation"] * 10
    y[3] = 1  # a flipped training label
    x[75] = x[12] + 1e-3  # a copy of a training photo in validation: a leak
    hashes = [str(i) for i in range(80)]
    hashes[20] = hashes[21] = "same"  # an exact copy inside train
    paths, doc = _report(x, y, splits, hashes, folds=5, similarity=0.97, seed=0)
    assert list(doc) == ["label_issues", "duplicates", "outliers", "summary"]
    top = doc["label_issues"][0]
    assert top == {"path": paths[3], "split": "train", "given": "dogs", "suggested": "cats", "score": top["score"]}
    assert 0 <= top["score"] < 0.5
    dups = doc["duplicates"]
    assert dups[0] == {"paths": [paths[12], paths[75]], "splits": ["train", "validation"], "similarity": dups[0]["similarity"],
                       "exact": False, "leak": True}
    assert dups[0]["similarity"] > 0.999 and len(dups) == 2
    assert {"paths": [paths[20], paths[21]], "splits": ["train", "train"], "similarity": 1.0, "exact": True,
            "leak": False} in dups
    s = doc["summary"]
    assert s["folds"] == 5 and s["similarity_threshold"] == 0.97 and s["leaks"] == 1 and s["exact_groups"] == 1
    assert s["label_issues"] == len(doc["label_issues"]) and s["photos"] == 80
    kept = {paths[3], paths[75]}
    _, again = _report(x, y, splits, hashes, folds=5, similarity=0.97, seed=0, exclude=kept)
    assert paths[3] not in [i["path"] for i in again["label_issues"]]
    assert all(paths[75] not in d["paths"] for d in again["duplicates"]) and again["summary"]["leaks"] == 0
    assert again["summary"]["excluded"] == 2
    assert json.loads(json.dumps(doc)) == doc  # plain JSON: no NumPy scalars
