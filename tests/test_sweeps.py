"""Sweeps (engine/insight/sweeps.py, sweep_charts.py): knobs, typed values, the grid, suggestions, results, charts."""

import json
import math

import pytest

from engine.config import ConfigError, default_config
from engine.errors import StudioError
from engine.insight import sweep_charts, sweeps
from engine.store.record import RunRecord


def test_a_knob_is_named_by_its_flag_or_its_field_and_its_values_are_typed():
    assert sweeps.parse_sweep("learning-rate=1e-5,1e-4,1e-3", "feature_extraction") == ("fit.learning_rate", [1e-5, 1e-4, 1e-3])
    assert sweeps.parse_sweep("--dense-units=128, 256.0", "frozen") == ("head.dense_units", [128, 256])
    assert sweeps.parse_sweep("head.pooling=avg,flatten", "feature_extraction") == ("head.pooling", ["avg", "flatten"])
    assert sweeps.parse_sweep("fine-tune-learning-rate=1e-6", "fine_tuning") == ("fine_tune.learning_rate", [1e-6])
    assert sweeps.parse_sweep("horizontal-flip=off,on", "frozen") == ("augmentation.horizontal_flip", [False, True])
    assert isinstance(sweeps.parse_sweep("epochs=5", "frozen")[1][0], int)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("dropout=0.2,1.5", "--sweep dropout: must be in [0, 0.95], got 1.5"),
        ("learning-rate=0", "--sweep learning-rate: must be > 0, got 0.0"),
        ("dense-units=3.5", "--sweep dense-units: '3.5' is not a whole number"),
        ("pooling=max", "--sweep pooling: must be one of flatten, avg, got 'max'"),
        ("dropout", "--sweep dropout: write KNOB=V1,V2,... (e.g. --sweep learning-rate=1e-4,1e-3)"),
        ("dropout=0.2,0.2", "--sweep dropout: a value is given twice; give each value once"),
        (
            "seed=1,2",
            "--sweep seed: not a knob a sweep can vary; choose one of learning-rate, epochs, batch-size, optimizer, "
            "early-stopping, pooling, dense-units, dropout, schedule, warmup-epochs, label-smoothing, weight-decay",
        ),
        (
            "fine-tune-epochs=1,2",
            "--sweep fine-tune-epochs: feature_extraction does not use fine_tune.epochs; every point would train the same run",
        ),
    ],
)
def test_a_bad_sweep_is_one_line_naming_the_flag(spec, message):
    with pytest.raises(ConfigError) as exc:
        sweeps.parse_sweep(spec, "feature_extraction")
    assert str(exc.value) == message


def test_the_grid_is_the_cartesian_product_first_knob_outermost_and_capped():
    axes = [("fit.learning_rate", [1e-5, 1e-4, 1e-3]), ("head.dropout", [0.2, 0.5])]
    points = sweeps.grid(axes)
    assert points == [{"fit.learning_rate": lr, "head.dropout": d} for lr in (1e-5, 1e-4, 1e-3) for d in (0.2, 0.5)]
    assert len(sweeps.grid(axes, seeds=8)) == 6  # 48 runs: the cap itself
    with pytest.raises(ConfigError, match=r"6 points x 9 seed\(s\) = 54 runs, more than 48"):
        sweeps.grid(axes, seeds=9)
    with pytest.raises(ConfigError, match="vary 1 or 2 knobs, got 3"):
        sweeps.grid(axes + [("head.dense_units", [16])])
    with pytest.raises(ConfigError, match="given twice"):
        sweeps.grid([axes[0], axes[0]])


def test_suggestions_are_log_spaced_for_rates_all_choices_and_in_range_otherwise():
    rates = sweeps.suggest("fit.learning_rate", 2e-5)
    assert rates == [2e-6, 2e-5, 2e-4] and all(math.isclose(b / a, 10) for a, b in zip(rates, rates[1:]))
    assert sweeps.suggest("fit.learning_rate", 1.0) == [0.01, 0.1, 1.0]  # never above the knob's max of 1
    assert sweeps.suggest("fit.optimizer", "adam") == ["rmsprop", "adam", "sgd", "adamw"]
    assert sweeps.suggest("fit.weight_decay", 1e-4) == [1e-5, 1e-4, 1e-3]
    assert sweeps.suggest("head.dropout", 0.5) == [0.3, 0.5, 0.7]
    assert sweeps.suggest("head.dropout", 0.9) == [0.5, 0.7, 0.9]  # 1.1 is out of [0, 0.95]: the other side instead
    assert sweeps.suggest("head.dense_units", 256) == [128, 256, 512]
    assert sweeps.suggest("fine_tune.unfreeze_blocks", 1) == [1, 2, 3]


def test_a_point_is_applied_to_a_copy_and_a_swept_rate_is_trained_at():
    cfg = default_config("feature_extraction")
    cfg.fit.find_learning_rate = True
    out = sweeps.apply_point(cfg, {"fit.learning_rate": 1e-3, "head.dropout": 0.2})
    assert (out.fit.learning_rate, out.head.dropout, out.fit.find_learning_rate) == (1e-3, 0.2, False)
    assert (cfg.fit.learning_rate, cfg.head.dropout) == (2e-5, 0.5)
    assert sweeps.parse_point('{"learning-rate": 0.001, "head.dropout": 0.2}', "feature_extraction") == {
        "fit.learning_rate": 0.001,
        "head.dropout": 0.2,
    }
    with pytest.raises(ConfigError, match="--sweep-point dropout: must be in"):
        sweeps.parse_point('{"head.dropout": 2}', "feature_extraction")
    with pytest.raises(ConfigError, match="--sweep-point: not valid JSON"):
        sweeps.parse_point("{lr: 1}", "feature_extraction")


def record(run_id, point, val, test, seed=42, group="G", state="finished"):
    config = {
        "approach": "feature_extraction",
        "resolved": {"sweep_group": group, "sweep_point": point, "seed": seed, "dataset_root": "/d"},
    }
    metrics = {"state": state, "validation": {"accuracy": val}, "test": {"accuracy": test}}
    return RunRecord(run_id, None, config, {}, metrics)


def sweep_records():
    """A 2 x 2 sweep, two seeds per point; the point with the best test accuracy is not the best on validation."""
    rows = [
        ("a", 1e-4, 0.2, [0.80, 0.82], [0.99, 0.99]),
        ("b", 1e-4, 0.5, [0.90, 0.94], [0.85, 0.87]),
        ("c", 1e-3, 0.2, [0.70, 0.70], [0.60, 0.60]),
        ("d", 1e-3, 0.5, [0.88, 0.86], [0.81, 0.83]),
    ]
    out = []
    for name, lr, d, vals, tests in rows:
        for s, (v, t) in enumerate(zip(vals, tests)):
            out.append(record(f"r-{name}{s}", {"fit.learning_rate": lr, "head.dropout": d}, v, t, seed=42 + s))
    out.append(record("r-e0", {"fit.learning_rate": 1e-3, "head.dropout": 0.5}, None, None, state="failed"))
    out.append(record("a-other", {"head.dropout": 0.1}, 0.99, 0.99, group="H"))
    return out


def test_the_best_point_is_picked_on_validation_and_only_its_test_accuracy_is_read():
    summary = sweeps.summarize(sweep_records(), "G")
    assert summary["knobs"] == ["fit.learning_rate", "head.dropout"]
    assert summary["axes"] == {"fit.learning_rate": [1e-4, 1e-3], "head.dropout": [0.2, 0.5]}
    means = [(p["label"], round(p["mean"], 4), p["n"]) for p in summary["points"]]
    assert means == [
        ("learning-rate=0.0001, dropout=0.2", 0.81, 2),
        ("learning-rate=0.0001, dropout=0.5", 0.92, 2),
        ("learning-rate=0.001, dropout=0.2", 0.70, 2),
        ("learning-rate=0.001, dropout=0.5", 0.87, 2),
    ]
    assert summary["points"][1]["std"] == pytest.approx(math.sqrt(0.0008))  # sample std of 0.90, 0.94
    assert summary["best"] == 1  # 0.92 on validation, though point 0 scores 0.99 on test
    assert summary["picked_test_accuracy"] == pytest.approx(0.86) and summary["picked_test_n"] == 2
    assert "0.99" not in json.dumps(summary)  # no other point's test accuracy is carried anywhere
    assert len(summary["trials"]) == 9 and summary["trials"][-1]["val_accuracy"] is None  # the failed run: a trial, no score
    lines = sweeps.summary_lines(summary)
    assert lines[2].startswith("* learning-rate=0.0001, dropout=0.5") and "0.9200 ± 0.0283 (n=2)" in lines[2]
    assert lines[-1] == (
        "best on validation: learning-rate=0.0001, dropout=0.5 (0.9200); test accuracy of the picked point (scored once): 0.8600"
    )


def test_sweep_groups_list_each_group_once_newest_first():
    groups = sweeps.sweep_groups(sweep_records() + [record("z-plain", {}, 0.5, 0.5, group=None)])
    assert [(g["group"], g["runs"], g["knobs"]) for g in groups] == [
        ("G", 9, ["fit.learning_rate", "head.dropout"]),
        ("H", 1, ["head.dropout"]),
    ]  # a-other < r-e0: G is newer


def test_the_heatmap_holds_each_points_mean_and_outlines_the_best():
    fig = sweep_charts.grid_figure(sweeps.summarize(sweep_records(), "G"))
    heat = fig.data[0]
    assert list(heat.y) == ["0.0001", "0.001"] and list(heat.x) == ["0.2", "0.5"]
    assert [[round(v, 4) for v in row] for row in heat.z] == [[0.81, 0.92], [0.70, 0.87]]
    (box,) = fig.layout.shapes
    assert (box.x0, box.x1, box.y0, box.y1) == (0.5, 1.5, -0.5, 0.5)  # column dropout=0.5, row 1e-4


def test_one_knob_is_a_line_with_error_bars_on_a_log_axis_and_the_best_starred():
    recs = [
        record(f"r{i}{s}", {"fit.learning_rate": lr}, v, 0.5, seed=s)
        for i, (lr, vals) in enumerate([(1e-4, [0.8, 0.9]), (1e-3, [0.95, 0.93]), (1e-2, [0.5, 0.6])])
        for s, v in enumerate(vals)
    ]
    fig = sweep_charts.grid_figure(sweeps.summarize(recs, "G"))
    line, star = fig.data
    assert list(line.x) == [1e-4, 1e-3, 1e-2] and [round(y, 3) for y in line.y] == [0.85, 0.94, 0.55]
    assert [round(e, 4) for e in line.error_y.array] == [
        round(math.sqrt(0.005), 4),
        round(math.sqrt(0.0002), 4),
        round(math.sqrt(0.005), 4),
    ]
    assert fig.layout.xaxis.type == "log" and (star.name, list(star.x), round(star.y[0], 3)) == (
        "best (validation)",
        [1e-3],
        0.94,
    )


def test_parallel_coordinates_show_every_finished_trial():
    fig = sweep_charts.parallel_figure(sweeps.summarize(sweep_records(), "G"))
    dims = {d.label: d for d in fig.data[0].dimensions}
    assert list(dims) == ["learning-rate (log)", "dropout", "seed", "validation accuracy"]
    assert list(dims["learning-rate (log)"].values) == [-4.0] * 4 + [-3.0] * 4  # the failed trial left out
    assert list(dims["validation accuracy"].values) == [0.80, 0.82, 0.90, 0.94, 0.70, 0.70, 0.88, 0.86]
    assert "best point on validation: learning-rate=0.0001, dropout=0.5" in fig.layout.title.text


def test_two_sweeps_started_in_the_same_second_get_different_groups(monkeypatch):
    monkeypatch.setattr(sweeps.time, "strftime", lambda fmt: "20260101-120000")  # one second for both
    a, b = sweeps.new_group_id("frozen"), sweeps.new_group_id("frozen")
    assert a != b and a.startswith("20260101-120000-") and a.endswith("-sweep-frozen")


def test_a_diverged_point_scores_no_nan():
    runs = [record("r1", {"head.dropout": 0.2}, 0.8, 0.7), record("r2", {"head.dropout": 0.5}, float("nan"), None)]
    summary = sweeps.summarize(runs, "G")
    assert [p["mean"] for p in summary["points"]] == [0.8, None] and summary["best"] == 0
    json.dumps(summary, allow_nan=False)  # the report never holds NaN


def weights_file(path, kernels: dict) -> str:
    """An HDF5 file holding arrays of these shapes (what a weights file's shapes look like to the check)."""
    import h5py

    with h5py.File(path, "w") as fh:
        for name, shape in kernels.items():
            fh.create_dataset(name, shape=shape, dtype="float32")
    return str(path)


MOBILENET_V2_ALPHA_1 = {
    "layers/conv2d/vars/0": (3, 3, 3, 32),
    "layers/conv2d_1/vars/0": (1, 1, 32, 16),
    "layers/conv2d_33/vars/0": (1, 1, 960, 320),
    "layers/depthwise_conv2d/vars/0": (3, 3, 32, 1),
}


def point(name="mobilenet_v2", alpha=1.0, weights="none", size=32):
    cfg = default_config("feature_extraction")
    cfg.data.path = "/d"
    cfg.backbone.name, cfg.backbone.alpha, cfg.backbone.weights, cfg.backbone.image_size = name, alpha, weights, size
    return cfg


@pytest.fixture
def no_model(monkeypatch):
    """The checks read files and settings only: building a base (seconds) fails the test."""
    from engine.models import backbones

    def built(*a, **k):
        raise AssertionError("a model was built")

    monkeypatch.setattr(backbones, "_build", built)
    monkeypatch.setattr(backbones, "build_base", built)


def test_a_weights_file_of_another_width_is_refused_from_its_shapes(tmp_path, no_model):
    path = weights_file(tmp_path / "v2.weights.h5", MOBILENET_V2_ALPHA_1)
    sweeps.check_point(point(alpha=1.0, weights=path))  # its own width: fine
    sweeps.check_point(point(name="vgg16", weights=path))  # no width to judge by: left to Keras
    with pytest.raises(StudioError) as exc:
        sweeps.check_point(point(alpha=0.35, weights=path))
    assert str(exc.value) == (
        f"weights file {path} does not fit MobileNetV2 with alpha 0.35: it holds MobileNetV2 weights "
        f"of alpha 1; give a file saved from MobileNetV2 at alpha 0.35 without its top, 'imagenet' or 'none'"
    )
    odd = weights_file(tmp_path / "other.h5", {"dense/kernel": (10, 2)})  # shapes it cannot place: not refused
    sweeps.check_point(point(alpha=0.35, weights=odd))
    text = tmp_path / "notes.weights.h5"
    text.write_text("not a weights file")
    with pytest.raises(StudioError, match="it is not a Keras weights file"):
        sweeps.check_point(point(weights=str(text)))
    import zipfile

    with zipfile.ZipFile(tmp_path / "base.keras", "w") as zf:  # a whole saved model: Keras reads its weights itself
        zf.writestr("model.weights.h5", b"")
    sweeps.check_point(point(alpha=0.35, weights=str(tmp_path / "base.keras")))
    with pytest.raises(StudioError, match="weights file not found: "):
        sweeps.check_point(point(weights=str(tmp_path / "missing.weights.h5")))


@pytest.mark.real_data
def test_the_real_mobilenet_files_fit_their_own_width_only(assets, no_model):
    v2 = str(assets / "weights" / "mobilenet_v2_1.0_imagenet_no_top.weights.h5")
    v1 = str(assets / "weights" / "mobilenet_v1_0.75_imagenet_no_top.weights.h5")
    sweeps.check_point(point(alpha=1.0, weights=v2))
    sweeps.check_point(point(name="mobilenet", alpha=0.75, weights=v1))
    for cfg in (
        point(alpha=0.5, weights=v2),
        point(alpha=1.3, weights=v2),
        point(name="mobilenet", alpha=1.0, weights=v1),
        point(name="mobilenet", alpha=0.75, weights=v2),
    ):
        with pytest.raises(StudioError, match="does not fit"):
            sweeps.check_point(cfg)


def test_imagenet_weights_must_exist_for_the_width_and_be_cached_or_downloadable(monkeypatch, no_model):
    from engine.models import backbones

    with pytest.raises(
        ConfigError,
        match=r"backbone.alpha: ImageNet weights of MobileNetV2 \(fast on CPU\) exist for alpha "
        r"0.35, 0.5, 0.75, 1, 1.3, 1.4 only, not 0.6",
    ):
        sweeps.check_point(point(alpha=0.6, weights="imagenet"))
    monkeypatch.setattr(backbones, "download_host_reachable", lambda: False)
    with pytest.raises(backbones.WeightsUnavailable, match="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_96_no_top.h5"):
        sweeps.check_point(point(alpha=0.5, weights="imagenet", size=96))
    cached = backbones.keras_cache_dir() / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_96_no_top.h5"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"")
    sweeps.check_point(point(alpha=0.5, weights="imagenet", size=96))  # in Keras' cache: no download needed
    monkeypatch.setattr(backbones, "download_host_reachable", lambda: True)
    sweeps.check_point(point(alpha=0.5, weights="imagenet", size=128))


def test_the_size_limit_is_per_backbone(no_model):
    with pytest.raises(ConfigError, match="above vgg16's limit of 512 px"):
        sweeps.check_point(point(name="vgg16", size=600))
