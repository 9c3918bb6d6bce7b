"""A run's planned parts (engine/training/timeline.py): every pass, view, epoch, scoring and saving, in the run's order."""

from __future__ import annotations

from conftest import tiny_config

from engine.training.approaches import prepare_data
from engine.training.features import FeatureCache
from engine.training.plan import RunPlan
from engine.training.timeline import planned_parts


def _parts(cfg, data, cache):
    return planned_parts(RunPlan.for_data(cfg, data, 32, "w", "float32"), data, cache)


def test_a_frozen_run_with_three_views_plans_each_view_each_epoch_scoring_and_saving(tiny_dataset, tmp_path):
    data = prepare_data(str(tiny_dataset))
    parts, build_s = _parts(
        tiny_config("frozen", tiny_dataset, backbone="mobilenet_v2", epochs=3, views=3), data, FeatureCache(tmp_path / "cache")
    )
    assert [p.key for p in parts] == [
        "pass:train view 1/3",
        "pass:train view 2/3",
        "pass:train view 3/3",
        "pass:validation",
        "epoch:1",
        "epoch:2",
        "epoch:3",
        "pass:test",
        "scoring",
        "saving",
    ]
    assert [p.kind for p in parts] == ["view"] * 3 + ["plain", "epoch1", "epoch1", "epoch1", "plain", "scoring", "saving"]
    assert all(p.prior_s > 0 for p in parts) and build_s > 0  # no calibration stored: the row's speed and rough constants
    assert all(p.setup_s > 0 for p in parts[:5])  # each view traces its augmentation, validation the plain pass, epoch 1 the step
    assert parts[5].setup_s == parts[6].setup_s == 0  # later epochs: the train step is traced once
    long, _ = _parts(
        tiny_config("frozen", tiny_dataset, backbone="mobilenet_v2", epochs=8, views=3), data, FeatureCache(tmp_path / "c")
    )
    epochs = [p for p in long if p.key.startswith("epoch:")]
    assert len({p.prior_s for p in epochs}) == 1  # steps and validation alike; checkpoints are pieces of their own
    assert epochs[0].save_s > epochs[1].save_s == epochs[7].save_s > 0  # the run's first save pays one-off costs
    assert epochs[0].setup_s > 0 == epochs[1].setup_s  # epoch 1 makes the training stream and traces the step
    assert 0 < parts[7].setup_s < parts[3].setup_s  # the test pass decodes its images; the plain pass was traced by validation


def test_fine_tuning_numbers_its_epochs_across_both_phases_and_skips_what_the_cache_holds(tiny_dataset, tmp_path):
    data = prepare_data(str(tiny_dataset))
    cfg = tiny_config("fine_tuning", tiny_dataset, backbone="mobilenet_v2", epochs=2, fine_tune_epochs=2, views=2)
    cfg.fit.find_learning_rate = True
    cache = FeatureCache(tmp_path / "cache")
    parts, _ = _parts(cfg, data, cache)
    assert [(p.key, p.kind) for p in parts] == [
        ("pass:train view 1/2", "view"),
        ("pass:train view 2/2", "view"),
        ("finder", "finder"),
        ("pass:validation", "plain"),
        ("epoch:1", "epoch1"),
        ("epoch:2", "epoch1"),
        ("epoch:3", "epoch2"),
        ("epoch:4", "epoch2"),
        ("pass:test", "plain"),
        ("scoring", "scoring"),
        ("saving", "saving"),
    ]
    assert [p.key for p in parts if p.setup_s] == [
        "pass:train view 1/2",
        "pass:train view 2/2",
        "pass:validation",
        "epoch:1",
        "epoch:3",
        "pass:test",
    ]
    plan = RunPlan.for_data(cfg, data, 32, "w", "float32")
    for p in plan.views("", plan.fine_tune_cut):  # both views in the cache already (a frozen run made them)
        for key in p.keys.values():
            cache.path(key).parent.mkdir(parents=True, exist_ok=True)
            cache.path(key).write_bytes(b"")
    assert [p.key for p in _parts(cfg, data, cache)[0]][:2] == ["finder", "pass:validation"]


def test_without_a_calibration_the_heads_work_is_sized_from_the_bases_features(tiny_dataset, tmp_path):
    """Flat constants put the sample's epoch at 3 s where it took 0.55: without a calibration, a head's step is its
    arithmetic on the base's feature shape (flatten: every value; avg pooling: the channels)."""
    data = prepare_data(str(tiny_dataset))

    def epoch_s(pooling: str, shape: tuple) -> float:
        cfg = tiny_config("frozen", tiny_dataset, backbone="mobilenet_v2", epochs=2)
        cfg.head.pooling, cfg.head.dense_units = pooling, 256
        plan = RunPlan.for_data(cfg, data, 32, "w", "float32")
        parts, _ = planned_parts(plan, data, FeatureCache(tmp_path / pooling), shape_of=lambda cut: shape)
        return next(p.prior_s for p in parts if p.key == "epoch:2")

    big, small = epoch_s("flatten", (3, 3, 1280)), epoch_s("avg", (3, 3, 1280))
    assert big > small > 0 and epoch_s("flatten", (6, 6, 1280)) > big  # 4x the values: a longer step
