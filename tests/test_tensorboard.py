"""TensorBoard logs: per-epoch scalars across phases, only kept epochs, the run's hyper-parameters, readable by TensorBoard."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine import cli
from engine.training.fit import History, fit_phase
from engine.training.tensorboard_logs import flatten_config
from tests.conftest import import_or_missing, make_split_dataset


def read_events(folder: Path) -> dict[str, dict[int, object]]:
    """tag -> {step: value} over every event file in `folder` (not sub-folders), via TensorFlow's reader."""
    out: dict[str, dict[int, object]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                value = tf.make_ndarray(v.tensor) if v.HasField("tensor") else v.simple_value
                out.setdefault(v.tag, {})[event.step] = value
    return out


def _problem(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("float32")


def _model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    m.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    return m


def _data(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat(), tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


def test_fit_phase_logs_every_epoch_numbered_across_phases(tmp_path):
    x, y = _problem()
    model, h = _model(), History()
    for phase, epochs in ((1, 2), (2, 1)):
        train, val = _data(x, y)
        fit_phase(
            model,
            train,
            val,
            steps_per_epoch=4,
            epochs=epochs,
            history=h,
            phase=phase,
            total_epochs=3,
            tensorboard_dir=str(tmp_path / "tb"),
        )
    train_tags, val_tags = read_events(tmp_path / "tb" / "train"), read_events(tmp_path / "tb" / "validation")
    for tags, prefix in ((train_tags, ""), (val_tags, "val_")):
        for metric in ("loss", "accuracy"):
            logged = tags[f"epoch_{metric}"]
            assert sorted(logged) == [0, 1, 2]  # Keras' 0-based epochs, phase 2 continuing at 2
            np.testing.assert_allclose([float(logged[s]) for s in range(3)], getattr(h, prefix + metric), rtol=1e-6)


def test_an_epoch_cut_short_by_stop_is_not_logged(tmp_path):
    x, y = _problem()
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 6  # 4 batches an epoch: stop during epoch 2

    train, val = _data(x, y)
    h = History()
    out = fit_phase(
        _model(),
        train,
        val,
        steps_per_epoch=4,
        epochs=5,
        history=h,
        should_stop=should_stop,
        tensorboard_dir=str(tmp_path / "tb"),
    )
    assert out.stopped and len(h) == 1
    assert sorted(read_events(tmp_path / "tb" / "train")["epoch_loss"]) == [0]


def test_flatten_config_gives_scalars_only():
    flat = flatten_config(
        {"fit": {"epochs": 3, "learning_rate": 1e-3}, "resolved": {"classes": ["a", "b"], "x": None}, "approach": "frozen"}
    )
    assert flat == {
        "fit.epochs": 3,
        "fit.learning_rate": 1e-3,
        "resolved.classes": '["a", "b"]',
        "resolved.x": "",
        "approach": "frozen",
    }


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """`run --tensorboard DIR` of feature extraction on tiny data, once for this module: (report row, log folder, dataset)."""
    root = tmp_path_factory.mktemp("tb-run")
    data = make_split_dataset(root / "tiny")
    report = root / "report.json"
    rc = cli.main(
        [
            "run",
            "--data",
            str(data),
            "--approach",
            "feature_extraction",
            "--backbone",
            "vgg16",
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs",
            "2",
            "--learning-rate",
            "0.001",
            "--run-id",
            "fe-tb",
            "--tensorboard",
            str(root / "tb"),
            "--runs-dir",
            str(root / "r"),
            "--report",
            str(report),
            "--quiet",
        ]
    )
    assert rc == 0
    return json.loads(report.read_text())["runs"][0], root / "tb", data


@pytest.mark.slow
def test_run_with_tensorboard_flag_writes_scalars_and_hyperparameters(logged_run):
    run, tb, tiny_dataset = logged_run
    log_dir = tb / run["id"]
    assert sorted(p.name for p in log_dir.iterdir() if p.is_dir()) == ["train", "validation"]
    train, val = read_events(log_dir / "train"), read_events(log_dir / "validation")
    assert sorted(train["epoch_loss"]) == sorted(train["epoch_accuracy"]) == [0, 1]
    assert sorted(val["epoch_loss"]) == sorted(val["epoch_accuracy"]) == [0, 1]
    np.testing.assert_allclose([float(val["epoch_accuracy"][s]) for s in (0, 1)], run["history"]["val_accuracy"], rtol=1e-6)
    root = read_events(log_dir)
    table = root["config"][0].item().decode()
    assert (
        "| fit.epochs | 2 |" in table
        and "| resolved.precision | float32 |" in table
        and f"| data.path | {tiny_dataset} |" in table
    )
    if "_hparams_/session_start_info" not in root:
        import_or_missing("tensorboard", "the HParams summary is written only when the tensorboard package is installed")
        pytest.fail("tensorboard is installed but no HParams summary was written")


@pytest.mark.slow
def test_tensorboards_own_reader_loads_the_run(logged_run):
    import_or_missing("tensorboard", "TensorBoard itself is not installed (pip install -r requirements.txt)")
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer().AddRunsFromDirectory(str(logged_run[1]))
    mux.Reload()
    assert set(mux.Runs()) == {"fe-tb", "fe-tb/train", "fe-tb/validation"}
    steps = [e.step for e in mux.Tensors("fe-tb/validation", "epoch_accuracy")]
    assert steps == [0, 1]
    assert "_hparams_/session_start_info" in mux.PluginRunToTagToContent("hparams").get("fe-tb", {})


def test_logs_that_cannot_be_written_fail_the_run_in_one_sentence(tiny_dataset, tmp_path, monkeypatch):
    import tensorflow as tf

    from engine.errors import StudioError
    from engine.store.runs import RunStore
    from engine.training import lifecycle
    from engine.training.approaches import RUNNERS, prepare_data
    from tests.conftest import tiny_config

    def denied(*args, **kwargs):  # what a folder turned read-only after the CLI's check gives (root ignores chmod)
        raise tf.errors.PermissionDeniedError(None, None, f"{tmp_path / 'tb'}; Permission denied")

    monkeypatch.setattr(lifecycle, "write_hyperparameters", denied)
    cfg = tiny_config("feature_extraction", tiny_dataset)
    cfg.compute.tensorboard = str(tmp_path / "tb")
    with pytest.raises(
        StudioError,
        match=r"^--tensorboard .*/tb: cannot write the logs \(.*Permission denied\); choose a folder you can write to$",
    ):
        RUNNERS["feature_extraction"](cfg, prepare_data(str(tiny_dataset)))
    [record] = RunStore().list().runs
    assert record.state == "failed" and record.metrics["message"].startswith("--tensorboard ")
