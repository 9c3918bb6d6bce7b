"""The on-disk feature cache: hit, miss, invalidation, and reuse across head settings."""

import json

import numpy as np
import pytest

from engine.training import prepared, stages
from engine.training.approaches import RUNNERS, prepare_data
from engine.training.features import FeatureCache, FeatureCacheError, NpyWriter, feature_key, read_rows, row_dataset
from tests.conftest import make_image, tiny_config


def _hm(result) -> tuple[int, int]:
    """(hits, misses) of a run's feature cache."""
    fc = result.metrics["feature_cache"]
    return fc["hits"], fc["misses"]


def get_one(cache: FeatureCache, key: str, compute, meta: dict) -> np.ndarray:
    """One array through the cache (a pass with a single output)."""
    return cache.get_or_compute_many({"x": key}, "x", lambda: {"x": compute()}, meta)["x"]


def test_cache_hit_and_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    calls = []
    key = feature_key(files="abc", cut="x")
    compute = lambda: (calls.append(1), np.ones((2, 3), np.float32))[1]  # noqa: E731
    a = get_one(cache, key, compute, {})
    assert get_one(cache, key, compute, {}) is a  # same run: served from memory
    fresh = FeatureCache(tmp_path)  # a later run: served from disk
    np.testing.assert_array_equal(get_one(fresh, key, compute, {}), a)
    assert calls == [1] and (cache.misses, fresh.hits, fresh.misses) == (1, 1, 0)
    assert feature_key(files="abc", cut="x") == feature_key(cut="x", files="abc") != feature_key(files="abd", cut="x")


def test_damaged_entry_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    key = feature_key(k=1)
    cache.path(key).parent.mkdir(parents=True, exist_ok=True)
    cache.path(key).write_bytes(b"garbage")
    out = get_one(cache, key, lambda: np.zeros(3, np.float32), {})
    assert out.shape == (3,) and cache.misses == 1


def test_second_run_with_other_head_never_touches_the_base(tiny_dataset, monkeypatch):
    data = prepare_data(str(tiny_dataset))
    first = RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), data)
    assert _hm(first) == (0, 3)

    def base_forbidden(*a, **k):
        raise AssertionError("the conv base ran although its features were cached")

    monkeypatch.setattr(stages.StageBuilder, "pixels_to_features", base_forbidden)
    cfg = tiny_config("feature_extraction", tiny_dataset)
    cfg.head.dense_units, cfg.head.dropout, cfg.head.pooling = 64, 0.2, "avg"
    second = RUNNERS["feature_extraction"](cfg, data)
    assert second.state == "finished" and _hm(second) == (3, 0)
    assert first.metrics["feature_cache"]["reused_splits"] == []
    assert second.metrics["feature_cache"]["reused_splits"] == ["test", "train", "validation"]  # Compare: a cached rerun


@pytest.mark.slow
def test_changed_file_invalidates_only_its_split(tiny_dataset):
    data = prepare_data(str(tiny_dataset))
    RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), data)
    make_image(tiny_dataset / "train" / "cats" / "cats_0.png", (0, 0, 0), seed=99)  # content, size and mtime change
    again = RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), prepare_data(str(tiny_dataset)))
    assert _hm(again) == (2, 1)


@pytest.mark.slow
def test_validation_features_shared_between_approaches(tiny_dataset):
    data = prepare_data(str(tiny_dataset))
    RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_dataset), data)
    frozen = RUNNERS["frozen"](tiny_config("frozen", tiny_dataset), data)
    # validation + test reused; the training set is seen through cached augmented views instead
    assert _hm(frozen) == (2, frozen.config["resolved"]["views"])
    assert frozen.metrics["feature_cache"]["reused_splits"] == ["test", "validation"]  # its own views: not a cached rerun
    from ui.compare_extras import cache_note

    assert cache_note(frozen.metrics) == "partly cached (test, validation)"


# --- splits larger than memory: chunked entries, memory-mapped reads ----------------------


def test_npy_writer_writes_chunks_into_a_valid_npy_read_as_a_memmap(tmp_path):
    rows = np.random.default_rng(0).normal(size=(10, 3, 2)).astype(np.float32)
    w = NpyWriter(tmp_path / "a.npy", rows.shape)
    for s in range(0, 10, 4):  # chunks of 4, 4, 2
        w.append(rows[s : s + 4])
    assert not (tmp_path / "a.npy").exists()  # nothing visible until complete
    w.close()
    m = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert isinstance(m, np.memmap) and m.dtype == np.float16 and m.shape == (10, 3, 2)
    np.testing.assert_array_equal(m, rows.astype(np.float16))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]  # no temp file left


def test_npy_writer_widens_to_float32_when_a_chunk_leaves_float16_range(tmp_path):
    """compact()'s rule, decided chunk by chunk: values >= 60000 (or not finite) keep the entry float32."""
    first, big = np.full((2, 3), 1.1, np.float32), np.full((1, 3), 70000.0, np.float32)
    w = NpyWriter(tmp_path / "b.npy", (3, 3))
    w.append(first)
    w.append(big)
    w.close()
    m = np.load(tmp_path / "b.npy", mmap_mode="r")
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m[:2], first.astype(np.float16).astype(np.float32))  # already stored rows keep float16 rounding
    np.testing.assert_array_equal(m[2:], big)
    assert [p.name for p in tmp_path.iterdir()] == ["b.npy"]


def test_npy_writer_refuses_a_short_array_and_leaves_nothing(tmp_path):
    w = NpyWriter(tmp_path / "c.npy", (4, 2))
    w.append(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="3 rows written, expected 4"):
        w.close()
    assert list(tmp_path.iterdir()) == []


def test_read_rows_and_row_dataset_read_a_memmapped_entry(tmp_path):
    x = np.arange(5 * 4, dtype=np.float16).reshape(5, 2, 2)
    np.save(tmp_path / "d.npy", x)
    m = np.load(tmp_path / "d.npy", mmap_mode="r")
    out = read_rows(m, [3, 0, 3])
    assert not isinstance(out, np.memmap)
    np.testing.assert_array_equal(out, x[[3, 0, 3]])
    rows = np.stack([r.numpy() for r in row_dataset(m)])
    np.testing.assert_array_equal(rows, x)


def test_get_or_write_many_miss_then_hit_returns_memmaps(tmp_path):
    cache = FeatureCache(tmp_path)
    keys = {"out": feature_key(k="out"), "cut": feature_key(k="cut")}
    shapes = {"out": (6, 2), "cut": (6, 3)}
    calls = []

    def write(sinks):
        calls.append(1)
        for s in range(0, 6, 4):
            n = min(4, 6 - s)
            sinks["out"].append(np.full((n, 2), s, np.float32))
            sinks["cut"].append(np.ones((n, 3), np.float32))

    got = cache.get_or_write_many(keys, "out", write, {"split": "train"}, shapes)
    assert isinstance(got["out"], np.memmap) and isinstance(got["cut"], np.memmap)
    np.testing.assert_array_equal(got["out"][:, 0], [0, 0, 0, 0, 4, 4])
    assert cache.misses == 1 and cache.bytes_written == (12 + 18) * 2  # float16
    assert json.loads((tmp_path / f"{keys['cut']}.json").read_text())["output"] == "cut"
    fresh = FeatureCache(tmp_path)
    again = fresh.get_or_write_many(keys, "out", write, {}, shapes)
    assert isinstance(again["out"], np.memmap) and calls == [1] and (fresh.hits, fresh.misses) == (1, 0)
    other_shape = FeatureCache(tmp_path).get_or_write_many(
        {"out": feature_key(k="out")}, "out", lambda s: s["out"].append(np.zeros((6, 5), np.float32)), {}, {"out": (6, 5)}
    )
    assert other_shape["out"].shape == (6, 5)  # a stored entry of another shape is recomputed, never trusted


def test_get_or_write_many_leaves_no_entry_when_stopped(tmp_path):
    cache = FeatureCache(tmp_path)

    def write(sinks):
        sinks["out"].append(np.zeros((2, 2), np.float32))
        raise KeyboardInterrupt  # a stop request mid-split

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_write_many({"out": "k"}, "out", write, {}, {"out": (4, 2)})
    assert list(tmp_path.iterdir()) == []


def test_get_or_write_many_names_the_folder_when_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = FeatureCache(blocker / "cache")
    with pytest.raises(FeatureCacheError, match=r"feature cache .*cannot write.*--cache-dir or TLS_CACHE_DIR"):
        cache.get_or_write_many({"out": "k"}, "out", lambda s: None, {}, {"out": (1, 1)})


@pytest.mark.slow
def test_streamed_split_second_run_never_touches_the_base(tiny_dataset, monkeypatch):
    """in_memory_mb=0: every split streams; a cached (memory-mapped) entry is served without the base or decoding."""

    def streamed_config(approach):
        cfg = tiny_config(approach, tiny_dataset)
        cfg.compute.in_memory_mb = 0
        return cfg

    data = prepare_data(str(tiny_dataset))
    first = RUNNERS["frozen"](streamed_config("frozen"), data)
    assert first.state == "finished" and _hm(first) == (0, 2 + first.config["resolved"]["views"])
    assert {s: p["path"] for s, p in first.metrics["data_path"].items()} == {
        "train": "streamed",
        "validation": "streamed",
        "test": "streamed",
    }
    assert not data._images  # no split was ever decoded whole into memory

    def base_forbidden(*a, **k):
        raise AssertionError("the conv base ran although its features were cached")

    monkeypatch.setattr(stages.StageBuilder, "pixels_to_features", base_forbidden)
    monkeypatch.setattr(prepared.PreparedData, "pixel_batches", base_forbidden)
    cfg = streamed_config("frozen")
    cfg.head.dense_units, cfg.head.dropout = 64, 0.2
    second = RUNNERS["frozen"](cfg, data)
    assert second.state == "finished" and _hm(second) == (2 + second.config["resolved"]["views"], 0)


def test_streamed_entries_count_towards_the_budget_and_dead_writers_temps_are_swept(tmp_path):
    import os
    import time

    cache = FeatureCache(tmp_path, max_bytes=300)  # room for one 6 x 8 float16 entry (96 bytes + 128 of header)
    write = lambda sinks: sinks["out"].append(np.ones((6, 8), np.float32))  # noqa: E731
    stale, live = tmp_path / ".deadbeef.npy.abc.tmp", tmp_path / ".cafe.npy.def.tmp"
    for p in (stale, live):
        p.write_bytes(b"half a split")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    cache.get_or_write_many({"out": "first"}, "out", write, {}, {"out": (6, 8)})
    assert not stale.exists() and live.exists()  # a writer that died long ago; one that may still be writing
    os.utime(cache.path("first"), (old, old))  # least recently used
    FeatureCache(tmp_path, max_bytes=300).get_or_write_many({"out": "second"}, "out", write, {}, {"out": (6, 8)})
    assert not cache.path("first").exists() and cache.path("second").exists()


# --- the size budget on the in-memory path, and where it comes from --------------------------


def test_in_memory_entries_are_evicted_least_recently_used_first_but_never_this_runs(tmp_path):
    import os
    import time

    ones = lambda: np.ones((6, 8), np.float32)  # noqa: E731  (96 bytes as float16 + 128 of header)
    first = FeatureCache(tmp_path, max_bytes=300)  # room for one entry
    get_one(first, "first", ones, {})
    old = time.time() - 3600
    os.utime(first.path("first"), (old, old))  # least recently used
    later = FeatureCache(tmp_path, max_bytes=300)
    get_one(later, "second", ones, {})
    assert not first.path("first").exists() and not (tmp_path / "first.json").exists()  # the sidecar goes with it
    assert later.path("second").exists() and later.evicted == 1
    tight = FeatureCache(tmp_path, max_bytes=0)  # over budget at once: still keeps what this run holds
    get_one(tight, "a", ones, {})
    get_one(tight, "b", ones, {})
    assert tight.path("a").exists() and tight.path("b").exists() and not tight.path("second").exists()


@pytest.mark.parametrize("raw,gib,warns", [("", 20.0, False), ("0.5", 0.5, False), ("2", 2.0, False), ("lots", 20.0, True)])
def test_cache_budget_comes_from_tls_cache_max_gb(monkeypatch, capsys, tmp_path, raw, gib, warns):
    from engine.training.features import DEFAULT_BUDGET_GB

    monkeypatch.setenv("TLS_CACHE_MAX_GB", raw)
    assert FeatureCache(tmp_path).max_bytes == int(gib * 1024**3) and DEFAULT_BUDGET_GB == 20.0
    err = capsys.readouterr().err
    assert ("warning: TLS_CACHE_MAX_GB='lots' is not a number; using 20.0 GB" in err) == warns
