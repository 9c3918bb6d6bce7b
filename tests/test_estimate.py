"""Cost before you click (engine/training/estimate.py): calibration, cache reuse as a real run sees it, the CLI."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_config

from engine.training import estimate
from engine.training.approaches import RUNNERS, prepare_data


@pytest.fixture
def short_calibration(monkeypatch):
    """Fewer timed batches and steps: the test checks the plumbing, not the precision."""
    monkeypatch.setattr(estimate, "CAL_BATCHES", 1)
    monkeypatch.setattr(estimate, "CAL_STEPS", 4)


@pytest.mark.slow
def test_estimate_calibrates_once_and_foresees_the_cache_a_run_leaves(tiny_dataset, tmp_path, short_calibration, monkeypatch):
    cache = tmp_path / "cache"
    data = prepare_data(str(tiny_dataset))
    cfg = tiny_config("frozen", tiny_dataset, views=3)
    with pytest.raises(estimate.CalibrationMissing, match="run `python -m engine estimate` once"):
        estimate.estimate_run(cfg, data, cache, calibrate=False)
    before = estimate.estimate_run(cfg, data, cache)
    assert (
        before["reuse"] == "none" and before["wall_s"] > 0 and before["peak_memory_mb"] > 200
    )  # TensorFlow and a model at least
    assert [p["view"][:4] for p in before["passes"]] == ["aug0", "aug1", "aug2", "plai", "plai"]  # K = 3 views, validation, test
    table = json.loads((cache / estimate.CALIBRATION_FILE).read_text())
    decode = {k: v for k, v in table.items() if k.startswith("decode|")}
    table = {k: v for k, v in table.items() if k not in decode}
    assert len(decode) == 1 and next(iter(decode.values())) > 0  # the dataset's decode time, measured once
    assert len(table) == 1 and len(next(iter(table.values()))["heads"]) == 1
    entry = next(iter(table.values()))
    assert entry["forward_ips"] > 0 and entry["augmented_ips"] > 0 and entry["save_s"] > 0
    assert entry["resave_s"] > 0 and entry["stream_bytes_s"] > 1e6  # later saves, making a training stream
    head = next(iter(entry["heads"].values()))
    assert head["step_s"] > 0 and head["val_rows_s"] > 0 and head["eval_rows_s"] > 0  # fit's validation apart from scoring

    res = RUNNERS["frozen"](cfg, data, cache_dir=cache)
    assert res.state == "finished"
    after = estimate.estimate_run(cfg, data, cache, calibrate=False)  # the stored calibration suffices now
    assert after["reuse"] == "all" and "views" not in after["breakdown"] and after["wall_s"] < before["wall_s"]
    # fine-tuning from the same views: phase 1's passes are cached, phase 2 reads the by-products at its cut
    ft = estimate.estimate_run(tiny_config("fine_tuning", tiny_dataset, views=3), data, cache)
    assert ft["reuse"] == "all" and "fit_phase2" in ft["breakdown"]
    other_seed = tiny_config("frozen", tiny_dataset)
    other_seed.fit.seed = 7  # other views, other random init: nothing to reuse
    from engine.data import pixels

    decodes, real_load = [], pixels.load_images
    monkeypatch.setattr(pixels, "load_images", lambda *a, **k: (decodes.append(1), real_load(*a, **k))[1])
    first, second = (estimate.estimate_run(other_seed, data, cache, calibrate=False) for _ in range(2))
    assert first["reuse"] == "none" and first["breakdown"]["decode"] > 0
    # the dataset's decode time is measured once and remembered: every estimate of one run agrees
    # (the page's and the one `run` records), not two timings of the same 16 files
    assert decodes == [] and first["breakdown"] == second["breakdown"]


@pytest.mark.slow
def test_cli_estimate_prints_json_and_run_records_the_estimate(tiny_dataset, tmp_path, capsys, stand_in_calibration):
    from engine.cli import main

    args = [
        "--data",
        str(tiny_dataset),
        "--approach",
        "feature_extraction",
        "--backbone",
        "mobilenet_v2",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--cache-dir",
        str(tmp_path / "c"),
        "--runs-dir",
        str(tmp_path / "r"),
    ]
    assert main(["estimate", *args]) == 0
    est = json.loads(capsys.readouterr().out)
    assert est["approach"] == "feature_extraction" and est["reuse"] == "none"
    # 16 train images: 1 s tracing + 0.16 s; validation and test 8 each: 0.16 s; fit: 1 s + 2 steps x 10 ms + 8/1000 s + overhead
    assert est["breakdown"]["features"] == pytest.approx(1.32, abs=0.01)
    assert est["breakdown"]["fit_phase1"] == pytest.approx(1.0 + 0.02 + 0.008 + estimate.EPOCH_OVERHEAD_S + 0.5, abs=0.01)
    assert main(["run", *args, "--quiet"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    config = json.loads((tmp_path / "r" / run["id"] / "config.json").read_text())
    assert config["resolved"]["estimate_s"] == run["estimate_s"] and run["estimate_s"] > 0
    assert run["wall_seconds"] > 0  # what Compare sets the estimate against
    assert main(["estimate", *args[:2], "--approach", "all"]) == 2
    assert "one approach at a time" in capsys.readouterr().err


def test_the_calibration_key_holds_the_width_wherever_the_row_has_widths():
    from engine.config import default_config

    def key(name, alpha):
        cfg = default_config("feature_extraction")
        cfg.backbone.name, cfg.backbone.alpha = name, alpha
        return estimate.base_key(cfg, 96, "float32")

    assert key("mobilenet_v2", 0.35) != key("mobilenet_v2", 1.0)  # another width is another base: measured apart
    assert key("mobilenet", 0.5) != key("mobilenet", 1.0)
    assert key("resnet50", 0.35) == key("resnet50", 1.0)  # no widths: the setting is ignored by the builder


def test_the_floor_before_measuring_prices_the_uncached_passes_at_the_rows_speed(tiny_dataset, tmp_path):
    from engine.models import backbones

    cfg = tiny_config("feature_extraction", tiny_dataset)
    data = prepare_data(tiny_dataset)
    floor = estimate.forward_floor(cfg, data, tmp_path / "cache")
    spec = backbones.get_spec(cfg.backbone.name)
    size = backbones.image_size_for(cfg.backbone)
    assert floor["images"] == sum(len(s) for s in data.splits.values())  # nothing cached: every split once
    assert floor["images_per_s"] == pytest.approx(spec.cpu_images_per_s * (spec.default_size / size) ** 2, rel=1e-3)
    assert floor["floor_s"] == pytest.approx(floor["images"] / floor["images_per_s"], abs=0.06)  # rounded to 0.1 s
