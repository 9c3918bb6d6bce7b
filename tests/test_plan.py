"""The planner (engine/training/plan.py): what a run will compute, as the run itself computes it."""

from __future__ import annotations

import pytest
from conftest import tiny_config

from engine.training.approaches import RUNNERS, prepare_data
from engine.training.estimate import estimate_run
from engine.training.features import FeatureCache
from engine.training.plan import RunPlan, planned_epochs


def _plan(cfg, data):
    return RunPlan.for_data(cfg, data, 32, "w", "float32")


def test_each_approach_plans_its_passes_in_the_order_it_makes_them(tiny_dataset):
    data = prepare_data(str(tiny_dataset))
    fe = _plan(tiny_config("feature_extraction", tiny_dataset, backbone="mobilenet_v2"), data).passes()
    assert [(p.split, p.view) for p in fe] == [("train", "plain"), ("validation", "plain"), ("test", "plain")]
    assert fe[0].cuts == ("",) and fe[1].cuts == ("", "block_15_add")  # validation keeps fine-tuning's cut too
    ft_cfg = tiny_config("fine_tuning", tiny_dataset, backbone="mobilenet_v2")
    ft = _plan(ft_cfg, data).passes()
    k = ft_cfg.augmentation.views
    # phase 1's views and validation pass also make fine-tuning's cut: phase 2 and scoring read them, only test is new
    assert [(p.split, p.view[:3]) for p in ft] == [("train", "aug")] * k + [("validation", "pla"), ("test", "pla")]
    assert ft[0].cuts == ("", "block_15_add") and ft[k].cuts == ("", "block_15_add") and ft[-1].cuts == ("block_15_add",)
    ft_cfg.augmentation.rotation = ft_cfg.augmentation.zoom = ft_cfg.augmentation.width_shift = 0.0
    ft_cfg.augmentation.height_shift, ft_cfg.augmentation.horizontal_flip, ft_cfg.augmentation.vertical_flip = 0.0, False, False
    assert all(p.view == "plain" for p in _plan(ft_cfg, data).passes())  # switched on but changing nothing: plain features
    assert planned_epochs(ft_cfg) == ft_cfg.fit.epochs + ft_cfg.fine_tune.epochs
    ft_cfg.fine_tune.from_run = "some-frozen-run"
    assert planned_epochs(ft_cfg, epochs_before=7) == 7 + ft_cfg.fine_tune.epochs


@pytest.mark.slow
def test_the_estimate_plans_exactly_the_cache_keys_and_paths_a_real_run_writes(tiny_dataset, tmp_path, stand_in_calibration):
    data = prepare_data(str(tiny_dataset))
    cfg = tiny_config(
        "fine_tuning", tiny_dataset, backbone="mobilenet_v2"
    )  # the stand-in calibration's cuts; both phases: views at two cuts, plain features at two cuts
    cfg.compute.in_memory_mb = 0  # every split streamed from disk: the planner decides that too
    cache = tmp_path / "cache"
    est = estimate_run(cfg, data, cache)
    planned = {k for p in est["passes"] for k in p["keys"]}
    result = RUNNERS["fine_tuning"](cfg, data, cache_dir=cache, runs_dir=tmp_path / "runs")
    assert result.state == "finished"
    written = {p.stem for p in FeatureCache(cache).root.glob("*.npy")}
    assert planned == written and len(written) == 2 * cfg.augmentation.views + 2 + 1
    assert (
        est["data_path"]
        == {s: d["path"] for s, d in result.metrics["data_path"].items()}
        == {"train": "streamed", "validation": "streamed", "test": "streamed"}
    )
    assert estimate_run(cfg, data, cache)["reuse"] == "all"
