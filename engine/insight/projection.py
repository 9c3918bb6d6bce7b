"""A 2-D map of image features: pooling, a seeded stratified subsample, PCA or t-SNE, how far apart the classes lie.

No TensorFlow, no Streamlit: engine/training/feature_map.py feeds it the cached features of the base,
ui/feature_map_view.py draws what it returns. PCA is NumPy, written out (the top two singular vectors, a
dozen lines); t-SNE is scikit-learn's (imported only when asked for), the one thing here a package does better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import StudioError

METHODS = ("pca", "tsne")
POOL_CHUNK = 256  # rows pooled at a time: a memory-mapped split is never read whole into float32


class ProjectionUnavailable(StudioError):
    """A projection whose package is not installed (t-SNE without scikit-learn)."""


@dataclass
class Projection:
    """The 2-D coordinates of n points and what the two axes keep of the data's variance."""

    coords: np.ndarray  # (n, 2) float64
    components: np.ndarray  # (2, d): the principal axes, in feature space
    explained_variance_ratio: np.ndarray  # (2,): share of the total variance along each axis


def pool(features) -> np.ndarray:
    """One float32 vector per image: spatial feature maps (n, h, w, c) averaged over h and w.

    The map shows the embedding a head with average pooling sees. Flattening a 5x5x1280 map instead
    would make a 32,000-dimensional SVD (slow) whose leading axes follow *where* in the frame a
    pattern fires rather than *what* it is."""
    n = len(features)
    if np.ndim(features) == 2:
        return np.asarray(features, dtype=np.float32)
    out = []
    for s in range(0, n, POOL_CHUNK):
        chunk = np.asarray(features[s : s + POOL_CHUNK], dtype=np.float32)
        out.append(chunk.reshape(len(chunk), -1, chunk.shape[-1]).mean(axis=1))
    return np.concatenate(out) if out else np.zeros((0, features.shape[-1]), np.float32)


def pca_2d(x) -> Projection:
    """The first two principal components of the rows of `x` (n, d): the top right singular vectors of the
    centred data, found by subspace iteration (`top_singular`), and the coordinates along them.

    Signs are fixed so each axis's largest-magnitude loading is positive: the same data always gives
    the same picture (an SVD may flip a singular vector between runs or libraries). Fewer than two
    informative directions (one point, or all points equal) leave the missing axes at 0."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    centred = x - x.mean(axis=0, keepdims=True) if n else x
    components = np.zeros((2, d))
    ratio = np.zeros(2)
    if n >= 2 and d >= 1:
        s, vt = top_singular(centred, 2)
        k = len(s)
        signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
        components[:k] = vt * np.where(signs == 0, 1.0, signs)[:, None]
        total = float((centred**2).sum())
        if total > 0:
            ratio[:k] = s**2 / total
        components[ratio == 0] = 0.0  # a direction that holds no variance is noise of the SVD, not an axis
    return Projection(centred @ components.T, components, ratio)


def top_singular(a: np.ndarray, k: int, extra: int = 10, iterations: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """The k largest singular values of `a` and their right singular vectors (k, d), as `np.linalg.svd` gives them.

    Why not `np.linalg.svd(a)` itself: measured on 2000 x 1280 MobileNetV2 features on this 2-core machine,
    LAPACK's full thin SVD took 36-42 s with its two threads competing with other processes (2.1 s on one
    thread), while this takes a fraction of a second. Subspace iteration (Halko, Martinsson & Tropp 2011,
    alg. 4.4) on k + `extra` directions uses only matrix products and QR of thin matrices; the Rayleigh-Ritz
    step is an SVD of a (k + extra) x d matrix. Each iteration shrinks the error by (s[k+extra] / s[i])^2;
    when k + extra covers min(n, d) the subspace is the whole range and the result is exact."""
    n, d = a.shape
    width = min(k + extra, n, d)
    rng = np.random.default_rng(0)  # a fixed start: the same data, the same answer
    q, _ = np.linalg.qr(a @ rng.standard_normal((d, width)))
    for _ in range(iterations if width < min(n, d) else 0):
        q, _ = np.linalg.qr(a.T @ q)
        q, _ = np.linalg.qr(a @ q)
    _, s, vt = np.linalg.svd(q.T @ a, full_matrices=False)
    return s[:k], vt[:k]


def tsne_2d(x, seed: int = 0) -> np.ndarray:
    """t-SNE coordinates (n, 2) of the rows of `x`, by scikit-learn (the one package the map adds, only for this).

    The rows are first projected on their top 50 principal axes (`top_singular`), as scikit-learn's guide
    advises: it keeps the neighbourhoods and makes the pairwise distances 25x cheaper for 1280-wide features.
    Seeded, and initialised from PCA, so the same points give the same picture. Unlike PCA, distances between
    clusters and the axes mean nothing: t-SNE shows who is near whom.

    Raises:
        ProjectionUnavailable: scikit-learn is not installed.
    """
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ProjectionUnavailable(
            "--method tsne: needs scikit-learn (pip install -r requirements.txt), or use --method pca"
        ) from None
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    centred = x - x.mean(axis=0, keepdims=True)
    s, vt = top_singular(centred, min(50, *centred.shape))
    reduced = centred @ vt.T
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))  # scikit-learn needs perplexity < n; 30 is its default
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced).astype(np.float64)


def align_signs(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`coords` with each axis flipped where it runs against the same axis of `reference` (same points).

    Two PCAs (before and after fine-tuning) are each correct up to the sign of an axis; flipping to
    agree with the first lets the eye follow a cluster from one map to the other."""
    out = np.array(coords, dtype=np.float64)
    for a in range(out.shape[1]):
        if float(np.dot(out[:, a], reference[:, a])) < 0:
            out[:, a] = -out[:, a]
    return out


def subsample(labels, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `limit` items, each label keeping its share (largest remainder, at least one
    where the limit allows), drawn with a seeded generator: the same labels, limit and seed give the same
    points every time, so a map can be compared with the next one. All indices when there are few enough."""
    labels = np.asarray(labels)
    n = len(labels)
    if limit <= 0 or n <= limit:
        return np.arange(n)
    values, counts = np.unique(labels, return_counts=True)
    exact = counts * limit / n
    quota = np.floor(exact).astype(int)
    if limit >= len(values):
        quota = np.maximum(quota, 1)
    for i in np.argsort(-(exact - np.floor(exact)), kind="stable"):  # hand out what is left by largest remainder
        if quota.sum() >= limit:
            break
        if quota[i] < counts[i]:
            quota[i] += 1
    while quota.sum() > limit:  # the at-least-one rule overshot: take back from the largest
        quota[int(np.argmax(quota))] -= 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == v), size=int(q), replace=False) for v, q in zip(values, quota) if q > 0]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)


def separation(coords, labels) -> dict:
    """How far apart the classes lie in the 2-D map itself (what the eye sees), three numbers:

    - `nearest_centroid_accuracy`: share of points closer to their own class's mean than to any other's;
    - `one_nn_accuracy`: leave-one-out 1-nearest-neighbour accuracy;
    - `chance`: the share of the largest class, what either number is worth with no structure at all.
    """
    coords, labels = np.asarray(coords, dtype=np.float64), np.asarray(labels)
    values = np.unique(labels)
    if len(labels) < 2 or len(values) < 2:
        return {"nearest_centroid_accuracy": None, "one_nn_accuracy": None, "chance": 1.0 if len(labels) else None}
    centroids = np.stack([coords[labels == v].mean(axis=0) for v in values])
    nearest = values[((coords[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(axis=1)]
    hits = 0
    for s in range(0, len(coords), 512):  # 512 x n distances at a time
        d = ((coords[s : s + 512, None, :] - coords[None]) ** 2).sum(-1)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf  # leave the point itself out
        hits += int((labels[d.argmin(axis=1)] == labels[s : s + 512]).sum())
    chance = float(np.unique(labels, return_counts=True)[1].max() / len(labels))
    return {
        "nearest_centroid_accuracy": round(float((nearest == labels).mean()), 4),
        "one_nn_accuracy": round(hits / len(labels), 4),
        "chance": round(chance, 4),
    }
