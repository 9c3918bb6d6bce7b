"""The feature map's projection: PCA against NumPy's SVD, pooling, the seeded stratified subsample, class separation."""

import numpy as np
import pytest

from engine.insight.projection import align_signs, pca_2d, pool, separation, subsample, top_singular, tsne_2d


@pytest.mark.parametrize("n, d", [(60, 7), (300, 80), (40, 500)])  # the whole range at once; subspace iteration; d > n
def test_pca_matches_numpys_svd_of_the_centred_data_with_the_sign_fixed(n, d):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)) @ np.diag(6.0 * 0.8 ** np.arange(d)) + 10  # a decaying spectrum, an offset the centring removes
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    p = pca_2d(x)
    for a in range(2):
        sign = np.sign(vt[a, np.abs(vt[a]).argmax()])  # the largest loading of each axis comes out positive
        assert p.components[a] == pytest.approx(sign * vt[a])
        assert p.coords[:, a] == pytest.approx(sign * u[:, a] * s[a])
        assert p.components[a, np.abs(p.components[a]).argmax()] > 0
    assert p.explained_variance_ratio == pytest.approx(s[:2] ** 2 / (s**2).sum())
    assert p.coords.mean(axis=0) == pytest.approx([0, 0], abs=1e-9)


def test_top_singular_values_and_vectors_are_numpys():
    a = np.random.default_rng(2).normal(size=(200, 90)) * (0.9 ** np.arange(90))
    s, vt = top_singular(a, 3)
    _, s_np, vt_np = np.linalg.svd(a, full_matrices=False)
    assert s == pytest.approx(s_np[:3], rel=1e-9)
    assert np.abs(vt @ vt_np[:3].T) == pytest.approx(np.eye(3), abs=1e-7)  # the same vectors, up to sign


def test_pca_is_the_same_picture_whichever_sign_the_data_comes_in():
    x = np.random.default_rng(1).normal(size=(30, 5))
    a, b = pca_2d(x), pca_2d(-x)  # negated data: the same axes up to sign, and the sign rule picks the same
    assert np.abs(a.components) == pytest.approx(np.abs(b.components))
    assert a.components == pytest.approx(b.components)


def test_pca_of_degenerate_data_leaves_missing_axes_at_zero():
    line = np.outer(np.arange(5.0), [1.0, 2.0, 0.0])  # one direction of variance
    p = pca_2d(line)
    assert p.explained_variance_ratio == pytest.approx([1.0, 0.0])
    assert p.coords[:, 1] == pytest.approx(np.zeros(5))
    assert p.components[1].tolist() == [0.0, 0.0, 0.0]  # no second axis, not an arbitrary one of the SVD's
    assert np.linalg.norm(p.coords[:, 0]) == pytest.approx(np.linalg.norm(line - line.mean(0)))
    assert pca_2d(np.ones((4, 3))).coords == pytest.approx(np.zeros((4, 2)))
    assert pca_2d(np.ones((1, 3))).coords.shape == (1, 2)


def test_pool_averages_spatial_maps_in_chunks():
    maps = np.arange(2 * 3 * 3 * 4, dtype=np.float16).reshape(2, 3, 3, 4)
    assert pool(maps) == pytest.approx(maps.astype(np.float32).mean(axis=(1, 2)))
    vectors = np.ones((3, 5))
    assert pool(vectors).dtype == np.float32 and pool(vectors).shape == (3, 5)


def test_align_signs_flips_an_axis_that_runs_against_the_reference():
    ref = np.array([[1.0, 1.0], [2.0, -1.0], [3.0, 0.5]])
    assert align_signs(ref * [[-1, 1]], ref) == pytest.approx(ref)


def test_subsample_keeps_each_class_share_and_is_seeded():
    labels = np.array([0] * 700 + [1] * 200 + [2] * 100)
    idx = subsample(labels, 100, seed=3)
    assert len(idx) == 100 and list(idx) == sorted(set(idx.tolist()))
    assert np.bincount(labels[idx]).tolist() == [70, 20, 10]
    assert subsample(labels, 100, seed=3).tolist() == idx.tolist()
    assert subsample(labels, 100, seed=4).tolist() != idx.tolist()
    assert subsample(labels, 5000).tolist() == list(range(1000))  # few enough: every point, in order


def test_subsample_keeps_a_rare_class_and_hands_out_remainders():
    labels = np.array([0] * 98 + [1] * 2)
    assert np.bincount(labels[subsample(labels, 10, seed=0)]).tolist() == [9, 1]  # 0.2 rounds up: the rare class stays
    labels = np.array([0] * 5 + [1] * 5 + [2] * 5)
    assert np.bincount(labels[subsample(labels, 7, seed=0)]).tolist() == [3, 2, 2]


def test_separation_counts_points_nearest_their_own_class():
    coords = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [0.5, 0.5]])
    labels = np.array([0, 0, 0, 1, 1, 1])  # the last one sits among class 0: it is nearer their mean, and it is the
    s = separation(coords, labels)  # nearest neighbour of all three of them (0.71 < 1), so 1-NN gets only the pair right
    assert s == {
        "nearest_centroid_accuracy": pytest.approx(5 / 6, abs=1e-4),
        "one_nn_accuracy": pytest.approx(2 / 6, abs=1e-4),
        "chance": 0.5,
    }
    assert separation(coords, np.zeros(6))["one_nn_accuracy"] is None


def test_tsne_keeps_two_blobs_apart_and_is_seeded():
    pytest.importorskip("sklearn", reason="t-SNE is scikit-learn's (requirements.txt)")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (15, 40)), rng.normal(6, 1, (15, 40))])
    labels = np.repeat([0, 1], 15)
    y = tsne_2d(x, seed=1)
    assert y.shape == (30, 2) and separation(y, labels)["one_nn_accuracy"] == 1.0
    assert tsne_2d(x, seed=1) == pytest.approx(y)  # the same points, the same picture


def test_tsne_without_scikit_learn_is_one_line_saying_what_to_do(monkeypatch):
    import sys

    from engine.insight.projection import ProjectionUnavailable

    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)  # as if not installed
    with pytest.raises(ProjectionUnavailable, match="--method tsne: needs scikit-learn"):
        tsne_2d(np.zeros((5, 3)))
