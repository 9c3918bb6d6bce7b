"""`run --sweep` and `run --sweep-group G --sweep-point JSON` (engine/cli/train.py): the grid, its records, its cache reuse."""

import json

import pytest

from engine import cli
from engine.store.runs import RunStore

TINY = ["--approach", "feature_extraction", "--backbone", "vgg16", "--weights", "none", "--image-size", "32",
        "--epochs", "1", "--batch-size", "8", "--dense-units", "16", "--quiet"]


@pytest.mark.parametrize("extra, message", [
    (["--sweep", "dropout=0.2,1.5"], "error: --sweep dropout: must be in [0, 0.95], got 1.5"),
    (["--sweep", "learning-rate=1e-3", "--sweep", "dropout=0.2", "--sweep", "epochs=1"], "error: --sweep: vary 1 or 2 knobs, got 3 (a heatmap has two axes)"),
    (["--sweep", "dropout=0.2", "--run-id", "x"], "error: --sweep: one --approach at a time, without --run-id (each point is a run of its own)"),
    (["--sweep-group", "G"], "error: --sweep-group and --sweep-point: give both (the group and the point's values) or neither"),
    (["--sweep", "image-size=16,32"], "error: --sweep image-size=16: backbone.image_size: must be 0 (default) or >= 32, got 16"),
])
def test_a_bad_sweep_is_refused_before_any_work(tiny_dataset, tmp_path, capsys, extra, message):
    runs = tmp_path / "r"
    assert cli.main(["run", "--data", str(tiny_dataset), *TINY, "--runs-dir", str(runs), *extra]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.slow  # trains three tiny runs (a few seconds each)
def test_a_sweep_trains_each_point_once_on_one_feature_cache_and_records_it(tiny_dataset, tmp_path, capsys):
    runs, report = tmp_path / "r", tmp_path / "report.json"
    rc = cli.main(["run", "--data", str(tiny_dataset), *TINY, "--runs-dir", str(runs), "--cache-dir", str(tmp_path / "c"),
                   "--report", str(report), "--sweep", "learning-rate=1e-3,1e-2", "--sweep", "dropout=0.3"])
    assert rc == 0
    doc = json.loads(report.read_text())
    points = [r["sweep_point"] for r in doc["runs"]]
    assert points == [{"fit.learning_rate": 1e-3, "head.dropout": 0.3}, {"fit.learning_rate": 1e-2, "head.dropout": 0.3}]
    assert len({r["sweep_group"] for r in doc["runs"]}) == 1
    # The base ran once: the first point computed each split (train, validation, test), the second read all three.
    assert [r["feature_cache"]["misses"] for r in doc["runs"]] == [3, 0] == doc["sweep"]["feature_cache_misses"]
    assert doc["runs"][1]["feature_cache"]["hits"] == 3
    stored = {r.id: r for r in RunStore(runs).list().runs}
    for rep in doc["runs"]:
        r = stored[rep["id"]]
        assert (r.sweep_group, r.sweep_point) == (rep["sweep_group"], rep["sweep_point"])
        assert (r.config["fit"]["learning_rate"], r.config["head"]["dropout"]) == (rep["sweep_point"]["fit.learning_rate"], 0.3)
    vals = [r["val_accuracy"] for r in doc["runs"]]
    assert doc["sweep"]["best"] == vals.index(max(vals))
    err = capsys.readouterr().err
    assert "best on validation: learning-rate=" in err and "test accuracy of the picked point (scored once): " in err

    # The dashboard's job: one point of a group, its value applied and recorded, the cache still warm.
    group = doc["runs"][0]["sweep_group"]
    rc = cli.main(["run", "--data", str(tiny_dataset), *TINY, "--runs-dir", str(runs), "--cache-dir", str(tmp_path / "c"),
                   "--report", str(report), "--sweep-group", group, "--sweep-point", '{"dropout": 0.6, "learning-rate": 0.001}'])
    (one,) = json.loads(report.read_text())["runs"]
    assert rc == 0 and one["sweep_group"] == group and one["sweep_point"] == {"head.dropout": 0.6, "fit.learning_rate": 0.001}
    assert RunStore(runs).load(one["id"]).config["head"]["dropout"] == 0.6 and one["feature_cache"]["misses"] == 0
