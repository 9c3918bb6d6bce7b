"""The three approaches end to end on tiny generated data with random weights."""

import json

import numpy as np
import pytest

from engine.approaches import RUNNERS, prepare_data
from engine.runs import RunStore
from tests.conftest import tiny_config

APPROACHES = ["feature_extraction", "frozen", "fine_tuning"]


@pytest.fixture
def data(tiny_dataset):
    return prepare_data(str(tiny_dataset))


@pytest.mark.parametrize("approach", APPROACHES)
def test_run_stores_everything_and_reports(approach, data, isolated_store):
    cfg = tiny_config(approach, data.report.root)
    events = []
    result = RUNNERS[approach](cfg, data, progress=events.append)
    rep = result.to_report()
    assert rep["state"] == "finished" and rep["approach"] == approach
    expected_epochs = 2 if approach == "fine_tuning" else 1
    assert rep["epochs_run"] == expected_epochs and len(rep["history"]["val_accuracy"]) == expected_epochs
    assert rep["image_size"] == 32 and rep["backbone"] == "mobilenet_v2" and rep["classes"] == ["cats", "dogs"]
    assert 0.0 <= rep["val_accuracy"] <= 1.0 and 0.0 <= rep["test_accuracy"] <= 1.0
    assert 0 < rep["trainable_params"] < rep["total_params"]
    assert rep["wall_seconds"] > 0
    run_dir = isolated_store / "runs" / rep["id"]
    assert str(run_dir) == rep["run_dir"]
    assert {p.name for p in run_dir.iterdir()} == {"config.json", "history.json", "metrics.json", "model.keras", "heartbeat.json",
                                                 "status.json", "predictions.json"}
    assert json.loads((run_dir / "predictions.json").read_text())["splits"]["test"]["labels"] == data.splits["test"].labels.tolist()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["state"] == "finished"
    assert metrics["test"]["num_images"] == 8 and len(metrics["test"]["confusion_matrix"]) == 2
    assert all(m["path"].endswith(".png") for m in metrics["test"]["misclassified"])
    assert json.loads((run_dir / "config.json").read_text())["resolved"]["classes"] == ["cats", "dogs"]
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == list(range(1, expected_epochs + 1))
    json.dumps(rep)


def test_fine_tuning_history_marks_phase_two_and_trains_more_params(data):
    fr = RUNNERS["frozen"](tiny_config("frozen", data.report.root), data).to_report()
    ft = RUNNERS["fine_tuning"](tiny_config("fine_tuning", data.report.root, epochs=2, fine_tune_epochs=2), data).to_report()
    assert ft["fine_tune_start_epoch"] == 3 and ft["epochs_run"] == 4
    assert ft["trainable_params"] > fr["trainable_params"]
    assert ft["total_params"] == fr["total_params"]


def test_multiclass_uses_softmax(tiny_multiclass):
    data = prepare_data(str(tiny_multiclass))
    # 20 epochs of 3 steps (18 images, batch 8): 8 epochs used to pass only because each call into
    # TensorFlow ran 10 steps, past the epoch's end, training far more than 8 epochs' worth.
    res = RUNNERS["feature_extraction"](tiny_config("feature_extraction", tiny_multiclass, backbone="vgg16", epochs=20, learning_rate=3e-3), data)
    store = RunStore()
    model = store.load_model(res.id)
    assert model.output_shape == (None, 3)
    assert len(res.metrics["test"]["confusion_matrix"]) == 3
    assert res.metrics["validation"]["accuracy"] > 0.5  # colour-coded classes: learnable from random VGG16 features (random MobileNets collapse to ~0)


def test_returned_model_reproduces_reported_test_metrics(data):
    """The stored full model (pixels in) gives the same test predictions the run was scored with."""
    res = RUNNERS["fine_tuning"](tiny_config("fine_tuning", data.report.root), data)
    model = RunStore().load_model(res.id)
    test = data.splits["test"]
    probs = model.predict(data.images("test", 32).astype("float32"), verbose=0)[:, 0]
    acc = float(((probs >= 0.5).astype(int) == test.labels).mean())
    assert acc == pytest.approx(res.metrics["test"]["accuracy"])


def test_stop_request_keeps_finished_epochs(data):
    calls = {"epochs": 0}

    def progress(e):
        if e["type"] == "epoch":
            calls["epochs"] += 1

    res = RUNNERS["frozen"](tiny_config("frozen", data.report.root, epochs=5), data, progress=progress, should_stop=lambda: calls["epochs"] >= 2)
    assert res.state == "stopped" and "kept the epochs" in res.message
    assert len(res.history["loss"]) == 2
    assert (RunStore().load(res.id).path / "model.keras").exists()
    assert RunStore().load(res.id).state == "stopped"


def test_stop_before_first_epoch_saves_a_stopped_run_without_model(data):
    res = RUNNERS["feature_extraction"](tiny_config("feature_extraction", data.report.root), data, should_stop=lambda: True)
    assert res.state == "stopped" and res.history["loss"] == []
    assert not (RunStore().load(res.id).path / "model.keras").exists()


def test_diverging_run_is_saved_as_failed_with_message(data):
    """The issue's case: RMSprop at 1.0 (the largest rate the config accepts) explodes the lecture-sized head's loss."""
    cfg = tiny_config("feature_extraction", data.report.root, backbone="vgg16", epochs=3, learning_rate=1.0)
    cfg.head.dense_units = 256
    res = RUNNERS["feature_extraction"](cfg, data)
    assert res.state == "failed" and "training diverged" in res.message and "lower the learning rate" in res.message


def test_fine_tuning_from_a_finished_frozen_run(data):
    fr = RUNNERS["frozen"](tiny_config("frozen", data.report.root, epochs=2), data)
    cfg = tiny_config("fine_tuning", data.report.root, fine_tune_epochs=1)
    cfg.fine_tune.from_run = fr.id
    ft = RUNNERS["fine_tuning"](cfg, data)
    assert ft.state == "finished"
    assert ft.history["loss"][:2] == fr.history["loss"] and ft.history["fine_tune_start_epoch"] == 3
    bad = tiny_config("fine_tuning", data.report.root)
    bad.fine_tune.from_run = ft.id
    with pytest.raises(ValueError, match="give a finished 'frozen' run"):
        RUNNERS["fine_tuning"](bad, data)


@pytest.mark.parametrize("backbone", ["vgg16", "mobilenet", "resnet50", "efficientnet_b0"])
def test_every_backbone_family_fine_tunes(backbone, data):
    res = RUNNERS["fine_tuning"](tiny_config("fine_tuning", data.report.root, backbone=backbone), data)
    assert res.state == "finished" and len(res.history["loss"]) == 2


def test_same_seed_same_result(data):
    a = RUNNERS["frozen"](tiny_config("frozen", data.report.root, epochs=2), data)
    b = RUNNERS["frozen"](tiny_config("frozen", data.report.root, epochs=2), data)
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-5)


def test_each_epoch_trains_on_its_own_batches(data):
    """16 images at batch 8 is 2 steps an epoch: a call into TensorFlow must not run on into the next epochs' batches."""
    res = RUNNERS["feature_extraction"](tiny_config("feature_extraction", data.report.root, epochs=3), data)
    assert res.state == "finished" and len(res.history["loss"]) == 3
    assert all(loss > 0 for loss in res.history["loss"])  # an epoch left without batches logs a loss of 0


@pytest.mark.parametrize("approach", APPROACHES)
def test_streamed_path_trains_like_the_in_memory_path(approach, tiny_dataset, isolated_store):
    """in_memory_mb=0 streams every split (decode from disk, chunked cache, memory-mapped reads): same batches, same model."""
    def run(in_memory_mb: int, data):
        cfg = tiny_config(approach, tiny_dataset, backbone="vgg16", epochs=4, learning_rate=1e-2)
        cfg.compute.in_memory_mb = in_memory_mb
        return RUNNERS[approach](cfg, data, cache_dir=isolated_store / f"cache{in_memory_mb}")

    held, streamed_data = run(1024, prepare_data(str(tiny_dataset))), prepare_data(str(tiny_dataset))
    streamed = run(0, streamed_data)
    assert {p["path"] for p in held.metrics["data_path"].values()} == {"in_memory"}
    assert {p["path"] for p in streamed.metrics["data_path"].values()} == {"streamed"}
    assert not streamed_data._images  # nothing decoded whole into memory
    assert streamed.to_report()["data_path"] == streamed.metrics["data_path"]
    np.testing.assert_allclose(streamed.history["loss"], held.history["loss"], rtol=1e-4)
    for split in ("validation", "test"):
        assert streamed.metrics[split]["accuracy"] == held.metrics[split]["accuracy"]
        assert streamed.metrics[split]["loss"] == pytest.approx(held.metrics[split]["loss"], rel=1e-4)
    assert held.metrics["validation"]["accuracy"] > 0.5  # learnable, so equal scores mean something
