"""Data health's maths: label issues, duplicates and leaks, outliers, from one vector per photo (no TensorFlow).

Label issues follow confident learning (Northcutt, Jiang and Chuang, 2021, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70): out-of-fold predicted probabilities from k seeded heads, one
threshold per class (the mean probability of that class over the photos labelled with it), the confident
joint (a photo counts for the class it clears the threshold of with the highest probability) and its
off-diagonal as the issues, with the photos whose most probable class is not their label, ranked by
self-confidence (the probability of the given label), lowest first.
cleanlab implements the same method; its 2.7.1 pins numpy~=1.22, which conflicts with this project's numpy 2,
so the few lines it needs are here. Duplicates are exact copies (equal content hashes) and near-copies
(cosine similarity of centred pooled features at least a threshold), grouped by union-find. Outliers are
photos whose mean cosine distance to their nearest neighbours is far above the usual (a robust z-score).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_FOLDS = 5
DEFAULT_SIMILARITY = 0.90  # near-copy threshold on centred cosine (tests/test_data_health.py: copies vs different photos)
OUTLIER_Z = 3.5  # robust z-score (median, 1.4826 x MAD) of the kNN distance above which a photo is an outlier
OUTLIER_NEIGHBOURS = 10  # k of the mean distance to the k nearest photos
LOGISTIC_C = 0.001  # the heads' inverse L2 strength: 1280 standardised features, a few hundred photos a fold; of
# 0.001-0.1 on two noisy real subsets, 0.001 ranked the flipped labels best and was the most accurate (0.91-0.94)
BLOCK = 1024  # rows of the similarity matrix computed at once


def standardize(x: np.ndarray) -> np.ndarray:
    """Each feature to mean 0 and standard deviation 1 (a constant feature stays 0)."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows centred on the mean row and scaled to length 1: a dot product is then a centred cosine similarity.

    Centring matters: pooled ReLU features are all positive, so any two photos have a raw cosine of 0.5-0.8."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def effective_folds(labels: np.ndarray, folds: int) -> int:
    """`folds`, or fewer when a class has fewer photos (each fold needs one of each); at least 2."""
    smallest = int(np.bincount(labels).min()) if len(labels) else 0
    return max(2, min(folds, smallest))


def out_of_fold_probabilities(
    x: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = DEFAULT_FOLDS, seed: int = 0
) -> np.ndarray:
    """(n, n_classes) probabilities of each photo from a logistic-regression head that never saw it
    (stratified, seeded k-fold; features standardised on each fold's training part)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=int)
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((len(labels), n_classes))
    k = effective_folds(labels, folds)
    for fit_idx, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, labels):
        mean, sd = x[fit_idx].mean(axis=0), x[fit_idx].std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        head = LogisticRegression(C=LOGISTIC_C, max_iter=2000, random_state=seed)
        head.fit((x[fit_idx] - mean) / sd, labels[fit_idx])
        p = head.predict_proba((x[held] - mean) / sd)
        out[np.ix_(held, head.classes_)] = p  # a class absent from a fold's training part keeps 0
    return out


@dataclass
class LabelIssues:
    """Confident learning's answer: the photos (indices, most suspicious first), the class each confidently belongs to,
    the self-confidence score of each, and the confident joint (given x suggested counts)."""

    indices: np.ndarray
    suggested: np.ndarray
    scores: np.ndarray
    confident_joint: np.ndarray


def find_label_issues(probs: np.ndarray, labels: np.ndarray) -> LabelIssues:
    """Confident learning (Northcutt et al., 2021, section 3.1): per-class thresholds t_j = mean p_j over the photos
    labelled j; a photo's confident class is the argmax of p over the classes j with p_j >= t_j; the photos whose
    confident class differs from their label (the confident joint's off-diagonal) are issues. So are the photos
    whose most probable class is not their label (cleanlab's `filter_by="predicted_neq_given"`): with an accurate
    head t_j is near 1, and the joint alone missed a quarter of the flipped labels of a real test set
    (tests/test_data_health.py). All are ranked by self-confidence p[given], lowest first (cleanlab's
    `return_indices_ranked_by="self_confidence"`); `suggested` is the confident class, else the most probable."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    n, k = probs.shape
    thresholds = np.array([probs[labels == j, j].mean() if np.any(labels == j) else 1.0 for j in range(k)])
    above = probs >= thresholds[None, :] - 1e-12
    confident = np.where(above.any(axis=1), np.where(above, probs, -1.0).argmax(axis=1), -1)
    joint = np.zeros((k, k), dtype=int)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    top = probs.argmax(axis=1)
    issue = (counted & (confident != labels)) | (top != labels)
    suggested = np.where(counted & (confident != labels), confident, top)
    self_conf = probs[np.arange(n), labels]
    idx = np.flatnonzero(issue)
    idx = idx[np.lexsort((idx, self_conf[idx]))]  # lowest self-confidence first; ties by position (stable)
    return LabelIssues(idx, suggested[idx], self_conf[idx], joint)


class UnionFind:
    """Disjoint sets over 0..n-1 (path halving, union by size)."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


@dataclass
class DuplicateGroup:
    """Photos (indices, sorted) that are copies of each other: `similarity` the lowest similarity of the links that
    joined them (1.0 for byte-identical files), `exact` when all share one content hash."""

    members: list[int]
    similarity: float
    exact: bool


def near_pairs(unit: np.ndarray, threshold: float):
    """(i, j, similarity) for every i < j whose rows of `unit` (unit_rows) have a dot product >= threshold,
    computed a block of rows at a time (never the whole n x n matrix)."""
    n = len(unit)
    for s in range(0, n, BLOCK):
        sims = unit[s : s + BLOCK] @ unit.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows, cols):
            i = s + int(r)
            if int(c) > i:
                yield i, int(c), float(sims[r, c])


def duplicate_groups(unit: np.ndarray, hashes: list[str], threshold: float = DEFAULT_SIMILARITY) -> list[DuplicateGroup]:
    """Groups of exact copies (equal `hashes`) and near-copies (centred cosine >= `threshold`), joined transitively."""
    n = len(unit)
    uf = UnionFind(n)
    link_sim: dict[tuple[int, int], float] = {}
    first: dict[str, int] = {}
    for i, h in enumerate(hashes):
        if h in first:
            uf.union(first[h], i)
            link_sim[(first[h], i)] = 1.0
        else:
            first[h] = i
    for i, j, s in near_pairs(unit, threshold):
        uf.union(i, j)
        link_sim.setdefault((i, j), min(s, 1.0))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(uf.find(i), []).append(i)
    out = []
    for members in (m for m in groups.values() if len(m) > 1):
        inside = set(members)
        sims = [s for (i, j), s in link_sim.items() if i in inside and j in inside]
        exact = len({hashes[i] for i in members}) == 1
        out.append(DuplicateGroup(sorted(members), 1.0 if exact else float(min(sims)), exact))
    return out


def outlier_scores(unit: np.ndarray, k: int = OUTLIER_NEIGHBOURS) -> np.ndarray:
    """Mean cosine distance of each photo to its k nearest other photos (0 = among copies, up to 2): a photo unlike
    any other, whatever its label. (The distance to the nearest class mean, tried first, says little after centring:
    with two classes the two means point apart and every photo off their axis scores about 1.)"""
    n = len(unit)
    k = max(1, min(k, n - 1))
    out = np.zeros(n)
    for s in range(0, n, BLOCK):
        sims = unit[s : s + BLOCK] @ unit.T
        sims[np.arange(len(sims)), np.arange(s, s + len(sims))] = -np.inf  # not itself
        out[s : s + BLOCK] = 1.0 - np.sort(sims, axis=1)[:, -k:].mean(axis=1)
    return out


def outlier_cut(scores: np.ndarray, z: float = OUTLIER_Z) -> float:
    """The score above which a photo is an outlier: median + z x 1.4826 x MAD (robust to the outliers themselves)."""
    med = float(np.median(scores))
    mad = float(np.median(np.abs(scores - med))) * 1.4826
    return med + z * (mad if mad > 0 else float(np.std(scores)) or 1e-12)


LABELLED_SPLITS = ("train", "validation")  # label issues: the photos a run learns from and picks its epoch on


def health_report(
    features: np.ndarray,
    labels: np.ndarray,
    splits: list[str],
    paths: list[str],
    hashes: list[str],
    classes: list[str],
    *,
    folds: int = DEFAULT_FOLDS,
    similarity: float = DEFAULT_SIMILARITY,
    seed: int = 0,
    exclude: set[str] | frozenset = frozenset(),
) -> dict:
    """Label issues (train and validation photos), duplicates (every split; leaks first) and outliers, each most
    suspicious first. `exclude`: paths a user kept ("not an issue"): never proposed again (a duplicate
    group is proposed while two of its photos are not kept). A group spanning splits (train with validation or
    test, or validation with test) is a leak.

    One row of `features` (pooled, (n, d)), `labels`, `splits`, `paths` and `hashes` per photo."""
    labels = np.asarray(labels, dtype=int)
    split_arr = np.asarray(splits)
    unit = unit_rows(features)
    k = len(classes)
    labelled = np.flatnonzero(np.isin(split_arr, LABELLED_SPLITS))
    issues: list[dict] = []
    used_folds = 0
    if len(labelled) and len(np.unique(labels[labelled])) > 1:
        used_folds = effective_folds(labels[labelled], folds)
        probs = out_of_fold_probabilities(features[labelled], labels[labelled], k, used_folds, seed)
        found = find_label_issues(probs, labels[labelled])
        for i, sug, score in zip(found.indices, found.suggested, found.scores):
            row = int(labelled[i])
            if paths[row] not in exclude:
                issues.append(
                    {
                        "path": paths[row],
                        "split": splits[row],
                        "given": classes[labels[row]],
                        "suggested": classes[int(sug)],
                        "score": round(float(score), 5),
                    }
                )
    dups = []
    for g in duplicate_groups(unit, hashes, similarity):
        if sum(paths[i] not in exclude for i in g.members) < 2:
            continue
        in_splits = [splits[i] for i in g.members]
        leak = len(set(in_splits)) > 1  # train with validation or test, or validation with test: a score not held out
        dups.append(
            {
                "paths": [paths[i] for i in g.members],
                "splits": in_splits,
                "similarity": round(g.similarity, 5),
                "exact": g.exact,
                "leak": leak,
            }
        )
    dups.sort(key=lambda d: (not d["leak"], not d["exact"], -d["similarity"], d["paths"][0]))
    scores = outlier_scores(unit)
    cut = outlier_cut(scores)
    order = np.argsort(-scores, kind="stable")
    outliers = [
        {"path": paths[i], "split": splits[i], "score": round(float(scores[i]), 5)}
        for i in order
        if scores[i] > cut and paths[i] not in exclude
    ]
    return {
        "label_issues": issues,
        "duplicates": dups,
        "outliers": outliers,
        "summary": {
            "photos": len(paths),
            "labelled_photos": int(len(labelled)),
            "label_issues": len(issues),
            "duplicate_groups": len(dups),
            "leaks": sum(d["leak"] for d in dups),
            "exact_groups": sum(d["exact"] for d in dups),
            "outliers": len(outliers),
            "excluded": len(set(paths) & set(exclude)),
            "folds": used_folds,
            "similarity_threshold": similarity,
            "outlier_cut": round(cut, 5),
            "outlier_neighbours": OUTLIER_NEIGHBOURS,
        },
    }
