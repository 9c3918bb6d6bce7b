import json
import os

import pytest

from engine import runs
from engine.runs import RunStore, RunStoreError, atomic_write_json


def test_create_then_load_and_list(tmp_path):
    store = RunStore(tmp_path / "r")
    path = store.create("frozen", {"approach": "frozen"}, run_id="a-frozen")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "history.json", "metrics.json"]
    rec = store.load("a-frozen")
    assert rec.state == "running" and rec.config["approach"] == "frozen"
    store.write_metrics(path, {"state": "finished"})
    assert [r.id for r in store.list().runs] == ["a-frozen"]
    assert store.load("a-frozen").state == "finished"
    with pytest.raises(FileExistsError):
        store.create("frozen", {}, run_id="a-frozen")


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
    store.create("frozen", {}, run_id="2-good")
    bad = store.create("frozen", {}, run_id="1-bad")
    (bad / "metrics.json").write_text("{ half a fil")
    missing = store.create("frozen", {}, run_id="0-missing")
    (missing / "history.json").unlink()
    listing = store.list()
    assert [r.id for r in listing.runs] == ["2-good"]
    reasons = {d.id: d.reason for d in listing.damaged}
    assert "metrics.json is not valid JSON" in reasons["1-bad"]
    assert "history.json is missing" in reasons["0-missing"]


def test_delete_and_unknown(tmp_path):
    store = RunStore(tmp_path / "r")
    store.create("frozen", {}, run_id="x")
    store.delete("x")
    assert store.list().runs == []
    with pytest.raises(FileNotFoundError, match="no run 'x'"):
        store.load("x")
    with pytest.raises(FileNotFoundError):
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
