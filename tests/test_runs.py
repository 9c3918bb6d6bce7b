import errno
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from engine.store import heartbeat, runs
from engine.store.runs import RunDamaged, RunNotFound, RunSaveError, RunStore, RunStoreError, atomic_write_json
from tests.conftest import dead_pid, tiny_config, write_run

# The least a run's config.json holds for readers (listing, Compare, Classify, predict).
CONFIG = {"approach": "frozen", "backbone": {"name": "mobilenet_v2"}, "resolved": {"classes": ["cats", "dogs"], "image_size": 32}}


def test_create_then_load_and_list(tmp_path):
    store = RunStore(tmp_path / "r")
    path = store.create("frozen", CONFIG, run_id="a-frozen")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "history.json", "metrics.json"]
    rec = store.load("a-frozen")
    assert rec.state == "running" and rec.config["approach"] == "frozen"
    store.write_metrics(path, {"state": "finished"})
    assert [r.id for r in store.list().runs] == ["a-frozen"]
    assert store.load("a-frozen").state == "finished"
    with pytest.raises(RunStoreError, match="already exists"):
        store.create("frozen", CONFIG, run_id="a-frozen")


def test_atomic_write_leaves_old_file_when_serialisation_fails(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": object()})
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["x.json"]  # no temp files left behind


def test_atomic_write_uses_rename(tmp_path, monkeypatch):
    calls = []
    real = os.replace
    monkeypatch.setattr(runs.os, "replace", lambda a, b: (calls.append((a, b)), real(a, b)))
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert len(calls) == 1 and str(calls[0][1]).endswith("m.json") and str(calls[0][0]).endswith(".tmp")


def test_damaged_folder_reported_and_skipped(tmp_path):
    store = RunStore(tmp_path / "r")
    store.create("frozen", CONFIG, run_id="2-good")
    bad = store.create("frozen", CONFIG, run_id="1-bad")
    (bad / "metrics.json").write_text("{ half a fil")
    missing = store.create("frozen", CONFIG, run_id="0-missing")
    (missing / "history.json").unlink()
    listing = store.list()
    assert [r.id for r in listing.runs] == ["2-good"]
    reasons = {d.id: d.reason for d in listing.damaged}
    assert "metrics.json is not valid JSON" in reasons["1-bad"]
    assert "history.json is missing" in reasons["0-missing"]


def test_delete_and_unknown(tmp_path):
    store = RunStore(tmp_path / "r")
    store.create("frozen", CONFIG, run_id="x")
    store.delete("x")
    assert store.list().runs == []
    with pytest.raises(RunNotFound, match="no run 'x'"):
        store.load("x")
    with pytest.raises(RunNotFound):
        store.load_model("x")


def test_missing_store_lists_nothing(tmp_path):
    assert RunStore(tmp_path / "nowhere").list().runs == []


@pytest.mark.parametrize("bad", ["../x", "/abs/path", "a/b", "..", "x" * 101, "naïve"])
def test_run_ids_never_leave_the_store(tmp_path, bad):
    store = RunStore(tmp_path / "runs")
    with pytest.raises(RunStoreError, match="use 1-100 letters"):
        store.create("frozen", {}, bad)
    with pytest.raises(RunStoreError):
        store.load(bad)
    assert not (tmp_path / "x").exists() and not (tmp_path / "runs").exists()


# --- damaged folders: listed with the reason, never a crash -----------------------------------


@pytest.mark.parametrize(
    "config,reason",
    [
        ({}, "config.json lacks 'approach'"),
        ({"approach": "frozen", "backbone": {}}, "config.json lacks 'backbone.name'"),
        ({**CONFIG, "resolved": None}, "config.json lacks 'resolved'"),
        ({**CONFIG, "resolved": {"image_size": 32}}, "config.json lacks 'resolved.classes'"),
        ({**CONFIG, "resolved": {"classes": ["a", "b"], "image_size": "big"}}, "config.json lacks 'resolved.image_size'"),
        (
            {**CONFIG, "resolved": {"classes": ["a"], "image_size": 32}},
            "config.json: 'resolved.classes' must name two or more different classes",
        ),
        (
            {**CONFIG, "resolved": {"classes": ["a", "a"], "image_size": 32}},
            "config.json: 'resolved.classes' must name two or more different classes",
        ),
    ],
)
def test_incomplete_config_is_listed_as_damaged(tmp_path, config, reason):
    store = RunStore(tmp_path / "r")
    write_run(store.root, "broken", config=config)
    write_run(store.root, "good")
    listing = store.list()
    assert [r.id for r in listing.runs] == ["good"]
    assert [(d.id, d.reason) for d in listing.damaged] == [("broken", listing.damaged[0].reason)]
    assert listing.damaged[0].reason.startswith(reason)
    assert [(s["id"], s["state"]) for s in listing.summaries()] == [("good", "finished"), ("broken", "damaged")]
    assert listing.summaries()[1]["message"] == listing.damaged[0].reason
    with pytest.raises(RunDamaged, match=f"run 'broken' is damaged: {reason}"):
        store.load("broken")


def test_uneven_history_and_unknown_state_are_damaged(tmp_path):
    store = RunStore(tmp_path / "r")
    uneven = write_run(store.root, "uneven", epochs=3)
    (uneven / "history.json").write_text(
        json.dumps({"loss": [1.0, 0.9], "accuracy": [0.5], "val_loss": [1, 1], "val_accuracy": [0, 0]})
    )
    odd = write_run(store.root, "odd")
    (odd / "metrics.json").write_text(json.dumps({"state": "exploded"}))
    reasons = {d.id: d.reason for d in store.list().damaged}
    assert reasons["uneven"] == "history.json: accuracy has not one value per epoch (2 losses)"
    assert reasons["odd"].startswith("metrics.json has no valid 'state' (got 'exploded'")


@pytest.mark.parametrize(
    "file,content,reason",
    [
        (
            "metrics.json",
            {"state": "finished", "validation": "high"},
            "metrics.json: 'validation' is not an object (it is 'high')",
        ),
        (
            "metrics.json",
            {"state": "finished", "validation": {"accuracy": "high"}},
            "metrics.json: 'validation.accuracy' is not a number (it is 'high')",
        ),
        (
            "metrics.json",
            {"state": "finished", "epochs_total": [3]},
            "metrics.json: 'epochs_total' is not a number (it is '[3]')",
        ),
        ("metrics.json", {"state": "finished", "message": 42}, "metrics.json: 'message' is not text"),
        (
            "metrics.json",
            {"state": "finished", "test": {"confusion_matrix": [[1, "x"]]}},
            "metrics.json: 'test.confusion_matrix' is not a table of numbers",
        ),
        ("metrics.json", {"state": "finished", "test": {"per_class": ["a"]}}, "metrics.json: 'test.per_class' is not an object"),
        (
            "metrics.json",
            {"state": "finished", "feature_cache": {"hits": "many"}},
            "metrics.json: 'feature_cache' holds a value that is not a number",
        ),
        ("metrics.json", "[" * 100_000 + "]" * 100_000, "metrics.json is nested too deeply to be a run's record"),
        ("heartbeat.json", {"pid": 2**70, "host": "h"}, f"heartbeat.json: 'pid' is not a process id (it is '{2**70}')"),
        ("heartbeat.json", {"pid": True}, "heartbeat.json: 'pid' is not a process id (it is 'True')"),
        ("heartbeat.json", {"pid": 5, "heartbeat": "now"}, "heartbeat.json: 'heartbeat' is not a time (it is 'now')"),
    ],
)
def test_odd_but_parseable_files_are_damaged_and_hide_no_other_run(tmp_path, capsys, file, content, reason):
    from engine import cli

    store = RunStore(tmp_path / "r")
    odd = write_run(store.root, "odd", state="running")
    write_run(store.root, "good")
    (odd / file).write_text(content if isinstance(content, str) else json.dumps(content))
    assert cli.main(["runs", "--runs-dir", str(store.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("odd  damaged") and lines[0].endswith(reason)
    assert lines[1].startswith("good  finished") and len(lines) == 2
    assert cli.main(["runs", "--runs-dir", str(store.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["damaged"] == [{"id": "odd", "reason": reason}]


def _tiny_model():
    import keras

    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Dense(1)(inp))


def test_a_model_whose_outputs_do_not_match_the_classes_is_damaged(tmp_path):
    store = RunStore(tmp_path / "r")
    path = store.create("frozen", {**CONFIG, "resolved": {"classes": ["a", "b", "c"], "image_size": 32}}, run_id="three")
    store.save_model(path, _tiny_model())  # one sigmoid-style unit: a two-class model
    with pytest.raises(RunDamaged, match="model.keras has 1 output\\(s\\) but config.json names 3 classes"):
        store.load_model("three")


def test_truncated_model_is_damaged_not_file_not_found(tmp_path):
    store = RunStore(tmp_path / "r")
    path = write_run(store.root, "cut")
    store.save_model(path, _tiny_model())
    assert store.load_model("cut") is not None
    data = (path / "model.keras").read_bytes()
    (path / "model.keras").write_bytes(data[: len(data) // 2])  # a kill during a non-atomic copy
    reason = store.list().damaged[0].reason
    assert reason.startswith("model.keras is unreadable (truncated or not a Keras file")
    with pytest.raises(RunDamaged) as exc:
        store.load_model("cut")
    assert "model.keras is unreadable" in str(exc.value) and "File not found" not in str(exc.value)


# --- saving: atomic, and a failed write is an error that names the file ----------------------


def test_a_failed_model_write_keeps_the_previous_model(tmp_path):
    store = RunStore(tmp_path / "r")
    path = write_run(store.root, "r1")
    store.save_model(path, _tiny_model())
    before = (path / "model.keras").read_bytes()

    class FullDisk:
        def save(self, target):
            with open(target, "wb") as fh:
                fh.write(b"PK half an archive")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(RunSaveError, match=r"could not write model.keras in .*r1 \(No space left on device\)"):
        store.save_model(path, FullDisk())
    assert (path / "model.keras").read_bytes() == before
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "history.json", "metrics.json", "model.keras"]


# --- liveness: a run whose process died reads `interrupted` ----------------------------------


def _owner(**changes) -> dict:
    return {**heartbeat.identity(), "heartbeat": time.time(), **changes}


def test_running_run_of_a_dead_process_reads_interrupted(tmp_path):
    store = RunStore(tmp_path / "r")
    write_run(store.root, "alive", state="running", epochs=3, owner=_owner())  # this very process
    write_run(store.root, "killed", state="running", epochs=3, owner=_owner(pid=dead_pid()))
    write_run(store.root, "reused", state="running", epochs=1, owner=_owner(process_start="1"))  # our pid, another process
    runs_ = {r.id: r for r in store.list().runs}
    assert runs_["alive"].state == "running" and runs_["alive"].summary()["message"] == ""
    for rid in ("killed", "reused"):
        assert runs_[rid].recorded_state == "running" and runs_[rid].state == "interrupted"
    s = runs_["killed"].summary()
    assert s["state"] == "interrupted" and s["epochs_run"] == 3
    assert s["message"].startswith("3 of 10 epoch(s) done; its process (pid ")
    assert s["message"].endswith("ended without recording a final state; no model was saved")


def test_another_hosts_run_is_judged_by_its_heartbeat(tmp_path):
    store = RunStore(tmp_path / "r")
    write_run(store.root, "fresh", state="running", owner={"pid": 1, "host": "gpu-box", "heartbeat": time.time() - 30})
    write_run(store.root, "stale", state="running", owner={"pid": 1, "host": "gpu-box", "heartbeat": time.time() - 3600})
    legacy = write_run(store.root, "legacy", state="running")  # written before heartbeats: file times stand in
    old = time.time() - 3600
    for f in legacy.iterdir():
        os.utime(f, (old, old))
    runs_ = {r.id: r for r in store.list().runs}
    assert runs_["fresh"].state == "running"
    assert runs_["stale"].state == "interrupted" and "no heartbeat from gpu-box for 60 min" in runs_["stale"].summary()["message"]
    assert runs_["legacy"].state == "interrupted"
    assert socket.gethostname() != "gpu-box"


def test_heartbeat_is_written_refreshed_and_ends_with_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_EVERY_S", 0.05)
    store = RunStore(tmp_path / "r")
    path = store.create("frozen", CONFIG, run_id="hb")
    beat = store.start_heartbeat(path)
    first = json.loads((path / "heartbeat.json").read_text())
    assert first["pid"] == os.getpid() and first["host"] == socket.gethostname()
    time.sleep(0.3)
    assert json.loads((path / "heartbeat.json").read_text())["heartbeat"] > first["heartbeat"]
    assert store.load("hb").state == "running"
    store.write_metrics(path, {"state": "finished"})  # the final state ends the heartbeat
    assert not beat.running and store.load("hb").state == "finished"

    gone = store.create("frozen", CONFIG, run_id="gone")
    beat = store.start_heartbeat(gone)
    store.delete("gone")
    time.sleep(0.3)
    assert not beat.running and not gone.exists()  # a beat never brings a deleted run back


# --- during training: checkpoints, and save errors fail the run with the reason ---------------


@pytest.mark.slow
def test_improved_epochs_are_checkpointed_as_a_loadable_full_model(tiny_dataset, monkeypatch):
    from engine.training.approaches import RUNNERS, prepare_data

    saves = []
    real_save = RunStore.save_model

    def spy(store, run_dir, model):
        real_save(store, run_dir, model)
        history = json.loads((run_dir / "history.json").read_text())
        saves.append(len(history.get("loss", [])))  # epochs on disk when the model was written
        assert store.load_model(run_dir.name).input_shape == (None, 32, 32, 3)  # pixels in: the full model

    monkeypatch.setattr(RunStore, "save_model", spy)
    result = RUNNERS["frozen"](tiny_config("frozen", tiny_dataset, epochs=4), prepare_data(str(tiny_dataset)))
    val_loss = result.history["val_loss"]
    improved = [i for i, v in enumerate(val_loss) if v < min(val_loss[:i], default=float("inf"))]
    # each checkpoint is written before that epoch's history; then the final save, unless the last
    # epoch was the last checkpoint (model.keras already holds those weights)
    assert saves == improved + ([] if improved[-1] == 3 else [4]) and result.metrics["timings"]["checkpoints"] > 0
    assert_model_file_gives_the_scored_probabilities(result)


def assert_model_file_gives_the_scored_probabilities(result) -> None:
    """model.keras, run on the validation images, gives the probabilities the run scored (predictions.json)."""
    from engine.data.pixels import load_images

    scored = json.loads((Path(result.run_dir) / "predictions.json").read_text())["splits"]["validation"]
    model = RunStore().load_model(result.id)
    probs = np.asarray(model.predict(load_images(scored["files"], 32), verbose=0)).reshape(-1)
    assert probs == pytest.approx(np.asarray(scored["probabilities"])[:, 1], abs=1e-4)


@pytest.mark.slow
def test_a_run_that_ends_off_its_last_checkpoint_saves_its_final_weights(tiny_dataset, monkeypatch):
    from engine.training import context
    from engine.training.approaches import RUNNERS, prepare_data

    saves = []
    real_save = RunStore.save_model
    monkeypatch.setattr(RunStore, "save_model", lambda store, run_dir, model: (saves.append(1), real_save(store, run_dir, model)))
    real_checkpoint = context.RunContext.checkpoint
    monkeypatch.setattr(
        context.RunContext,
        "checkpoint",  # only epoch 1 is checkpointed: epoch 2 ends elsewhere
        lambda ctx, stage, epoch: real_checkpoint(ctx, stage, epoch) if epoch == 1 else None,
    )
    result = RUNNERS["frozen"](tiny_config("frozen", tiny_dataset, epochs=2), prepare_data(str(tiny_dataset)))
    assert result.state == "finished" and len(saves) == 2  # epoch 1's checkpoint, then the final weights
    assert_model_file_gives_the_scored_probabilities(result)


@pytest.mark.slow
@pytest.mark.parametrize("when", ["checkpoint", "final save"])
def test_a_save_error_fails_the_run_with_the_reason_and_keeps_the_epochs(tiny_dataset, monkeypatch, when):
    import keras

    from engine.training import context
    from engine.training.approaches import RUNNERS, prepare_data

    def full_disk(model, path, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(keras.Model, "save", full_disk)
    if when == "final save":
        monkeypatch.setattr(context.RunContext, "checkpoint", lambda ctx, stage, epoch: None)
    result = RUNNERS["frozen"](tiny_config("frozen", tiny_dataset, epochs=3), prepare_data(str(tiny_dataset)))
    epochs = 1 if when == "checkpoint" else 3  # a failed checkpoint stops training at once
    assert result.state == "failed"
    assert "could not write model.keras" in result.message and "(No space left on device)" in result.message
    assert "free some disk space" in result.message
    rec = RunStore().load(result.id)
    assert rec.state == "failed" and rec.summary()["message"] == result.message
    assert rec.epochs_run == epochs and not rec.model_path.exists()
    assert not [p for p in rec.path.iterdir() if p.name.startswith(".")]  # no temp files left
