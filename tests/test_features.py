"""The on-disk feature cache: hit, miss, invalidation, and reuse across head settings."""

import numpy as np

from engine.approaches import RUNNERS, prepare_data
from engine.approaches import common
from engine.features import FeatureCache, feature_key
from tests.conftest import make_image, tiny_config


def _hm(result) -> tuple[int, int]:
    """(hits, misses) of a run's feature cache."""
    fc = result.metrics["feature_cache"]
    return fc["hits"], fc["misses"]


def test_cache_hit_and_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    calls = []
    key = feature_key(files="abc", cut="x")
    compute = lambda: (calls.append(1), np.ones((2, 3), np.float32))[1]  # noqa: E731
    a = cache.get_or_compute(key, compute, {})
    assert cache.get_or_compute(key, compute, {}) is a  # same run: served from memory
    fresh = FeatureCache(tmp_path)  # a later run: served from disk
    np.testing.assert_array_equal(fresh.get_or_compute(key, compute, {}), a)
    assert calls == [1] and (cache.misses, fresh.hits, fresh.misses) == (1, 1, 0)
    assert feature_key(files="abc", cut="x") == feature_key(cut="x", files="abc") != feature_key(files="abd", cut="x")


def test_damaged_entry_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    key = feature_key(k=1)
    cache.path(key).parent.mkdir(parents=True, exist_ok=True)
    cache.path(key).write_bytes(b"garbage")
    out = cache.get_or_compute(key, lambda: np.zeros(3, np.float32), {})
    assert out.shape == (3,) and cache.misses == 1


def test_second_run_with_other_head_never_touches_the_base(tiny_dataset, monkeypatch):
    data = prepare_data(str(tiny_dataset))
    first = RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), data)
    assert _hm(first) == (0, 3)

    def base_forbidden(*a, **k):
        raise AssertionError("the conv base ran although its features were cached")

    monkeypatch.setattr(common.RunContext, "pixels_to_features", base_forbidden)
    cfg = tiny_config("feature_extraction", tiny_dataset)
    cfg.head.dense_units, cfg.head.dropout, cfg.head.pooling = 64, 0.2, "avg"
    second = RUNNERS["feature_extraction"](cfg, data)
    assert second.state == "finished" and _hm(second) == (3, 0)


def test_changed_file_invalidates_only_its_split(tiny_dataset):
    data = prepare_data(str(tiny_dataset))
    RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), data)
    make_image(tiny_dataset / "train" / "cats" / "cats_0.png", (0, 0, 0), seed=99)  # content, size and mtime change
    again = RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), prepare_data(str(tiny_dataset)))
    assert _hm(again) == (2, 1)


def test_validation_features_shared_between_approaches(tiny_dataset):
    data = prepare_data(str(tiny_dataset))
    RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), data)
    frozen = RUNNERS["frozen"](tiny_config("frozen", tiny_dataset), data)
    # validation + test reused; the training set is seen through cached augmented views instead
    assert _hm(frozen) == (2, frozen.config["resolved"]["views"])
