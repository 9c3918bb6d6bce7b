"""The three approaches end to end on tiny generated data with random weights."""

import json

import numpy as np
import pytest

from engine.store.runs import RunStore
from engine.training.approaches import RUNNERS, prepare_data
from tests.conftest import make_split_dataset, tiny_config

APPROACHES = ["feature_extraction", "frozen", "fine_tuning"]


@pytest.fixture
def data(tiny_dataset):
    return prepare_data(str(tiny_dataset))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run of each approach on one tiny dataset, trained once for this module (read only).

    Fine-tuning continues from the frozen run (its phase 1 is that run's epoch), so the module
    trains three models, not four; tests that need their own run train it themselves."""
    root = tmp_path_factory.mktemp("approaches")
    data_dir = make_split_dataset(root / "tiny")
    data = prepare_data(str(data_dir))
    store = RunStore(root / "runs")
    out = {"data": data, "store": store, "events": {}}
    for approach in APPROACHES:
        cfg = tiny_config(approach, data_dir, backbone="mobilenet_v2")  # the default backbone, end to end
        if approach == "fine_tuning":
            cfg.fine_tune.from_run = out["frozen"].id
        events = out["events"][approach] = []
        out[approach] = RUNNERS[approach](cfg, data, progress=events.append, runs_dir=store.root, cache_dir=root / "cache")
    return out


def scored_accuracy(run_dir, split: str) -> float:
    """Accuracy recomputed from predictions.json (every image's probabilities): what the report must say."""
    preds = json.loads((run_dir / "predictions.json").read_text())["splits"][split]
    guessed = np.argmax(np.asarray(preds["probabilities"]), axis=1)
    return float((guessed == np.asarray(preds["labels"])).mean())


@pytest.mark.parametrize("approach", APPROACHES)
def test_run_stores_everything_and_reports(approach, trained):
    result, data = trained[approach], trained["data"]
    rep = result.to_report()
    assert rep["state"] == "finished" and rep["approach"] == approach
    assert rep["epochs_run"] == len(rep["history"]["val_accuracy"]) == (2 if approach == "fine_tuning" else 1)
    assert rep["image_size"] == 32 and rep["backbone"] == "mobilenet_v2" and rep["classes"] == ["cats", "dogs"]
    assert 0 < rep["trainable_params"] < rep["total_params"]
    assert rep["wall_seconds"] > 0
    run_dir = trained["store"].root / rep["id"]
    assert str(run_dir) == rep["run_dir"]
    assert {p.name for p in run_dir.iterdir()} == {
        "config.json",
        "history.json",
        "metrics.json",
        "model.keras",
        "heartbeat.json",
        "status.json",
        "predictions.json",
    }
    assert (
        json.loads((run_dir / "predictions.json").read_text())["splits"]["test"]["labels"] == data.splits["test"].labels.tolist()
    )
    # throughput per stage this run ran: 16 training images x the 1 epoch trained here (fine-tuning's phase 1 was the frozen run's)
    timings, rates = result.metrics["timings"], result.metrics["images_per_second"]
    fit_s = sum(v for k, v in timings.items() if k.startswith("fit_phase"))
    assert rates["fit"] == pytest.approx(16 / fit_s, rel=0.01, abs=0.05)  # stored to 0.1 image/s
    assert rates["scoring"] == pytest.approx(16 / timings["scoring"], rel=0.01, abs=0.05)  # 8 validation + 8 test images
    if approach == "feature_extraction":
        assert rates["features_train"] == pytest.approx(16 / timings["features_train"], rel=0.01, abs=0.05)
    # the reported accuracies are the scored model's, split by split (not swapped, not the last epoch's)
    assert rep["val_accuracy"] == pytest.approx(scored_accuracy(run_dir, "validation"))
    assert rep["test_accuracy"] == pytest.approx(scored_accuracy(run_dir, "test"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["state"] == "finished" and metrics["test"]["accuracy"] == rep["test_accuracy"]
    assert metrics["test"]["num_images"] == 8 and len(metrics["test"]["confusion_matrix"]) == 2
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 8
    assert len(metrics["test"]["misclassified"]) == round(8 * (1 - rep["test_accuracy"]))
    assert all(m["path"].endswith(".png") for m in metrics["test"]["misclassified"])
    assert json.loads((run_dir / "config.json").read_text())["resolved"]["classes"] == ["cats", "dogs"]
    first_epoch = 2 if approach == "fine_tuning" else 1  # fine-tuning's epoch 1 is the frozen run's
    assert [e["epoch"] for e in trained["events"][approach] if e["type"] == "epoch"] == list(
        range(first_epoch, rep["epochs_run"] + 1)
    )
    json.dumps(rep)


def test_fine_tuning_history_marks_phase_two_and_trains_more_params(trained):
    fr, ft = trained["frozen"].to_report(), trained["fine_tuning"].to_report()
    assert ft["fine_tune_start_epoch"] == 2 and ft["epochs_run"] == 2
    assert ft["trainable_params"] > fr["trainable_params"]
    assert ft["total_params"] == fr["total_params"]


@pytest.mark.slow
def test_multiclass_uses_softmax(tiny_multiclass):
    data = prepare_data(str(tiny_multiclass))
    # 20 epochs of 3 steps (18 images, batch 8): 8 epochs used to pass only because each call into
    # TensorFlow ran 10 steps, past the epoch's end, training far more than 8 epochs' worth.
    res = RUNNERS["feature_extraction"](
        tiny_config("feature_extraction", tiny_multiclass, backbone="vgg16", epochs=20, learning_rate=3e-3), data
    )
    store = RunStore()
    model = store.load_model(res.id)
    assert model.output_shape == (None, 3)
    assert len(res.metrics["test"]["confusion_matrix"]) == 3
    assert (
        res.metrics["validation"]["accuracy"] > 0.5
    )  # colour-coded classes: learnable from random VGG16 features (random MobileNets collapse to ~0)


def test_returned_model_reproduces_reported_test_metrics(trained):
    """The stored full model (pixels in) gives the same test predictions the run was scored with."""
    res, data = trained["fine_tuning"], trained["data"]
    model = trained["store"].load_model(res.id)
    test = data.splits["test"]
    probs = model.predict(data.images("test", 32).astype("float32"), verbose=0)[:, 0]
    acc = float(((probs >= 0.5).astype(int) == test.labels).mean())
    assert acc == pytest.approx(res.metrics["test"]["accuracy"])


@pytest.mark.slow
def test_stop_request_keeps_finished_epochs(data):
    calls = {"epochs": 0}

    def progress(e):
        if e["type"] == "epoch":
            calls["epochs"] += 1

    res = RUNNERS["frozen"](
        tiny_config("frozen", data.report.root, epochs=5), data, progress=progress, should_stop=lambda: calls["epochs"] >= 2
    )
    assert res.state == "stopped" and "kept the epochs" in res.message
    assert len(res.history["loss"]) == 2
    assert (RunStore().load(res.id).path / "model.keras").exists()
    assert RunStore().load(res.id).state == "stopped"


def test_stop_before_first_epoch_saves_a_stopped_run_without_model(data):
    res = RUNNERS["feature_extraction"](tiny_config("feature_extraction", data.report.root), data, should_stop=lambda: True)
    assert res.state == "stopped" and res.history["loss"] == []
    assert not (RunStore().load(res.id).path / "model.keras").exists()


def test_fine_tuning_from_a_finished_frozen_run(trained):
    fr, ft, data = trained["frozen"], trained["fine_tuning"], trained["data"]
    assert ft.state == "finished"
    assert ft.history["loss"][:1] == fr.history["loss"] and ft.history["fine_tune_start_epoch"] == 2
    bad = tiny_config("fine_tuning", data.report.root)
    bad.fine_tune.from_run = ft.id
    with pytest.raises(ValueError, match="give a finished 'frozen' run"):
        RUNNERS["fine_tuning"](bad, data, runs_dir=trained["store"].root)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backbone", ["mobilenet", "resnet50", "efficientnet_b0"]
)  # MobileNetV2: `trained`; VGG16: the streamed test
def test_every_backbone_family_fine_tunes(backbone, data):
    res = RUNNERS["fine_tuning"](tiny_config("fine_tuning", data.report.root, backbone=backbone), data)
    assert res.state == "finished" and len(res.history["loss"]) == 2


@pytest.mark.slow
def test_same_seed_same_result(trained, tmp_path):
    a, data = trained["frozen"], trained["data"]
    b = RUNNERS["frozen"](
        tiny_config("frozen", data.report.root, backbone="mobilenet_v2"), data, cache_dir=tmp_path / "own-cache"
    )  # its own views
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-5)
    assert b.metrics["validation"]["loss"] == pytest.approx(a.metrics["validation"]["loss"], rel=1e-5)


@pytest.mark.slow
def test_each_epoch_trains_on_its_own_batches(data):
    """16 images at batch 8 is 2 steps an epoch: a call into TensorFlow must not run on into the next epochs' batches."""
    res = RUNNERS["feature_extraction"](tiny_config("feature_extraction", data.report.root, epochs=3), data)
    assert res.state == "finished" and len(res.history["loss"]) == 3
    assert all(loss > 0 for loss in res.history["loss"])  # an epoch left without batches logs a loss of 0


@pytest.mark.slow
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


@pytest.mark.slow
def test_early_stopping_scores_and_saves_the_best_epoch(data):
    """Adam at 0.05 on VGG16 features: val_loss bottoms out at epoch 16, patience 2 stops at 18 and restores 16."""
    cfg = tiny_config("feature_extraction", data.report.root, backbone="vgg16", epochs=30, learning_rate=0.05)
    cfg.fit.optimizer, cfg.fit.early_stopping_patience = "adam", 2
    res = RUNNERS["feature_extraction"](cfg, data)
    val_loss = res.history["val_loss"]
    best = int(np.argmin(val_loss))
    assert res.state == "finished" and len(val_loss) == best + 3 < 30  # stopped two epochs after the best
    assert res.message == f"early stopping restored the best epoch ({best + 1} of its phase)"
    assert abs(val_loss[-1] - val_loss[best]) > 1e-3  # so scoring the last epoch's weights would show
    assert res.metrics["validation"]["loss"] == pytest.approx(val_loss[best], rel=1e-4)
    model = RunStore().load_model(res.id)  # the saved model is the best epoch's too
    p = model.predict(data.images("validation", 32).astype("float32"), verbose=0)[:, 0].astype("float64")
    y = data.splits["validation"].labels
    saved_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert saved_loss == pytest.approx(val_loss[best], rel=1e-3)


def test_an_unexpected_error_fails_the_run_with_its_traceback_and_is_raised(data, monkeypatch):
    from engine.training import context

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("a bug in fit")

    monkeypatch.setattr(context.RunContext, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="a bug in fit"):  # a bug is never hidden as a failed run
        RUNNERS["feature_extraction"](tiny_config("feature_extraction", data.report.root), data)
    [record] = RunStore().list().runs
    assert record.state == "failed" and record.metrics["message"] == "RuntimeError: a bug in fit"
    assert record.metrics["traceback"].startswith("Traceback") and "in broken_fit" in record.metrics["traceback"]
    status = json.loads((record.path / "status.json").read_text())
    assert status["stage"] == "failed" and status["finished"]
    assert not (record.path / "model.keras").exists()


@pytest.mark.slow
def test_a_cache_folder_deleted_during_a_streamed_run_fails_it_in_one_sentence(tiny_dataset, isolated_store):
    import shutil

    from engine.errors import StudioError

    cache = isolated_store / "doomed-cache"

    def delete_cache_after_epoch_1(event):
        if event["type"] == "epoch" and event["epoch"] == 1:
            shutil.rmtree(cache)

    cfg = tiny_config("frozen", tiny_dataset, epochs=3)
    cfg.compute.in_memory_mb = 0  # every split streamed from the cache files
    with pytest.raises(
        StudioError, match=r"is gone \(was the cache folder deleted during the run\?\); train again to rebuild it"
    ):
        RUNNERS["frozen"](cfg, prepare_data(str(tiny_dataset)), progress=delete_cache_after_epoch_1, cache_dir=cache)
    [record] = RunStore().list().runs
    assert record.state == "failed" and "\n" not in record.metrics["message"] and "is gone" in record.metrics["message"]
    assert record.metrics["epochs_run"] == 1 and record.metrics["traceback"].startswith("Traceback")


def test_an_image_spoiled_after_its_scan_fails_a_streamed_run_naming_it(tiny_dataset, isolated_store, capsys):
    import os

    from engine import cli

    cache = isolated_store / "cache"
    from engine.data.scan import scan_dataset

    scan_dataset(str(tiny_dataset), checks_dir=cache)  # as the dashboard's scan does: each file's check remembered
    victim = tiny_dataset / "train" / "cats" / "cats_3.png"
    st = victim.stat()
    with open(victim, "r+b") as fh:  # zeroed in place: same size, inode and mtime, so the remembered check still matches
        fh.write(b"\0" * st.st_size)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    rc = cli.main(
        [
            "run",
            "--data",
            str(tiny_dataset),
            "--approach",
            "feature_extraction",
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--in-memory-mb",
            "0",
            "--cache-dir",
            str(cache),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {victim}: not a readable image"), err
    [record] = RunStore().list().runs
    assert record.state == "failed" and record.metrics["message"] == err[0][len("error: ") :]
