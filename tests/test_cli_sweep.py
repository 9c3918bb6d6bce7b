"""`run --sweep` and `run --sweep-group G --sweep-point JSON` (engine/cli/train.py): the grid, its records, its cache reuse."""

import json
import subprocess

import pytest

from engine import cli
from engine.store.runs import RunStore
from tests.conftest import ROOT

TINY = [
    "--approach",
    "feature_extraction",
    "--backbone",
    "vgg16",
    "--weights",
    "none",
    "--image-size",
    "32",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--dense-units",
    "16",
    "--quiet",
]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sweep", "dropout=0.2,1.5"], "error: --sweep dropout: must be in [0, 0.95], got 1.5"),
        (
            ["--sweep", "learning-rate=1e-3", "--sweep", "dropout=0.2", "--sweep", "epochs=1"],
            "error: --sweep: vary 1 or 2 knobs, got 3 (a heatmap has two axes)",
        ),
        (
            ["--sweep", "dropout=0.2", "--run-id", "x"],
            "error: --sweep: one --approach at a time, without --run-id (each point is a run of its own)",
        ),
        (
            ["--sweep-group", "G"],
            "error: --sweep-group and --sweep-point: give both (the group and the point's values) or neither",
        ),
        (
            ["--sweep", "image-size=16,32"],
            "error: --sweep image-size=16: backbone.image_size: must be 0 (default) or >= 32, got 16",
        ),
    ],
)
def test_a_bad_sweep_is_refused_before_any_work(tiny_dataset, tmp_path, capsys, extra, message):
    runs = tmp_path / "r"
    assert cli.main(["run", "--data", str(tiny_dataset), *TINY, "--runs-dir", str(runs), *extra]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.slow  # trains three tiny runs (a few seconds each)
def test_a_sweep_trains_each_point_once_on_one_feature_cache_and_records_it(tiny_dataset, tmp_path, capsys):
    runs, report = tmp_path / "r", tmp_path / "report.json"
    rc = cli.main(
        [
            "run",
            "--data",
            str(tiny_dataset),
            *TINY,
            "--runs-dir",
            str(runs),
            "--cache-dir",
            str(tmp_path / "c"),
            "--report",
            str(report),
            "--sweep",
            "learning-rate=1e-3,1e-2",
            "--sweep",
            "dropout=0.3",
        ]
    )
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
    rc = cli.main(
        [
            "run",
            "--data",
            str(tiny_dataset),
            *TINY,
            "--runs-dir",
            str(runs),
            "--cache-dir",
            str(tmp_path / "c"),
            "--report",
            str(tmp_path / "point.json"),
            "--sweep-group",
            group,
            "--sweep-point",
            '{"dropout": 0.6, "learning-rate": 0.001}',
        ]
    )
    (one,) = json.loads((tmp_path / "point.json").read_text())["runs"]  # a new report: an existing one is never overwritten
    assert rc == 0 and one["sweep_group"] == group and one["sweep_point"] == {"head.dropout": 0.6, "fit.learning_rate": 0.001}
    assert RunStore(runs).load(one["id"]).config["head"]["dropout"] == 0.6 and one["feature_cache"]["misses"] == 0


def test_every_points_weights_are_checked_before_the_first_trains(tiny_dataset, tmp_path, capsys):
    from tests.test_sweeps import MOBILENET_V2_ALPHA_1, weights_file

    runs, path = tmp_path / "r", weights_file(tmp_path / "v2.weights.h5", MOBILENET_V2_ALPHA_1)
    args = ["run", "--data", str(tiny_dataset), *TINY, "--runs-dir", str(runs), "--backbone", "mobilenet_v2", "--weights", path]
    assert cli.main([*args, "--sweep", "alpha=1.0,0.35"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --sweep alpha=0.35: weights file {path} does not fit MobileNetV2 with alpha 0.35: it holds MobileNetV2 "
        "weights of alpha 1; give a file saved from MobileNetV2 at alpha 0.35 without its top, 'imagenet' or 'none'"
    )
    assert not runs.exists()  # point 1 never trained


@pytest.mark.parametrize("report", [False, True])
def test_a_failed_point_is_recorded_and_the_summary_still_written_exit_1(tiny_dataset, tmp_path, capsys, monkeypatch, report):
    """The training itself is stubbed: what is checked is the sweep around it (no TensorFlow)."""
    import re
    import warnings
    from types import SimpleNamespace

    from engine.cli import train
    from engine.errors import StudioError
    from engine.store.record import RunRecord

    def fake_train(args, cfg, data, extra, stop):
        warnings.warn("Skipping nested container: Keras' own noise", UserWarning)
        if cfg.head.dropout == 0.5:
            raise StudioError("the disk is full")
        if cfg.head.dropout == 0.6:
            raise RuntimeError("a bug")
        rec = RunRecord(
            f"run-{cfg.head.dropout}",
            None,
            {"approach": cfg.approach, "resolved": {**extra, "seed": cfg.fit.seed}},
            {},
            {"state": "finished", "validation": {"accuracy": 0.75}},
        )
        row = {"id": rec.id, "state": "finished", "val_accuracy": 0.75, "feature_cache": {"misses": 0}, **extra}
        return SimpleNamespace(id=rec.id, state="finished", record=rec), row

    monkeypatch.setattr(train, "_train_one", fake_train)
    monkeypatch.setattr(train, "_prepare", lambda args, configs: None)
    out = tmp_path / "report.json"
    rc = cli.main(
        [
            "run",
            "--data",
            str(tiny_dataset),
            *TINY,
            "--runs-dir",
            str(tmp_path / "r"),
            "--sweep",
            "dropout=0.2,0.5,0.6",
            *(["--report", str(out)] if report else []),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    doc = json.loads(out.read_text() if report else captured.out)
    assert [(r["state"], r["sweep_point"]) for r in doc["runs"]] == [
        ("finished", {"head.dropout": 0.2}),
        ("failed", {"head.dropout": 0.5}),
        ("failed", {"head.dropout": 0.6}),
    ]
    assert doc["runs"][1]["message"] == "the disk is full" and doc["runs"][2]["message"] == "RuntimeError: a bug"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}-sweep-feature_extraction", doc["sweep"]["group"])
    assert doc["sweep"]["best"] == 0 and [p["n"] for p in doc["sweep"]["points"]] == [1, 0, 0]
    err = captured.err
    assert "[feature_extraction dropout=0.5] failed: the disk is full" in err
    assert "Traceback (most recent call last)" in err and "RuntimeError: a bug" in err  # a bug keeps its traceback
    assert "  dropout=0.6" in err and "best on validation: dropout=0.2 (0.7500)" in err  # the table, every point
    assert "Skipping nested container" not in err  # Keras' warnings stay off stderr


def run_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os
    import sys

    full = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**full, **(env or {})}, capture_output=True, text=True, timeout=300
    )


def test_a_bad_runs_dir_is_refused_before_tensorflow_is_imported(tiny_dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["run", "--data", str(tiny_dataset), *TINY, "--runs-dir", str(blocker / "runs"), "--sweep", "dropout=0.2,0.3"]
    done = run_python(
        "import atexit, sys\n"
        "atexit.register(lambda: print('tensorflow imported:', 'tensorflow' in sys.modules, file=sys.stderr))\n"
        f"from engine.cli import main\nsys.exit(main({argv!r}))"
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[-1] == "tensorflow imported: False", done.stderr
    assert lines[-2].startswith(f"error: --runs-dir {blocker / 'runs'}: ")


@pytest.mark.slow  # imports TensorFlow in a fresh process (seconds)
def test_tensorflows_start_up_lines_never_reach_stderr(tiny_dataset, tmp_path):
    """oneDNN on (as on AVX-512 machines) prints through absl, whatever TF_CPP_MIN_LOG_LEVEL says."""
    argv = ["run", "--data", str(tiny_dataset), *TINY, "--runs-dir", str(tmp_path / "r"), "--distribute", "mirrored"]
    done = run_python(f"import sys\nfrom engine.cli import main\nsys.exit(main({argv!r}))", env={"TF_ENABLE_ONEDNN_OPTS": "1"})
    for noise in ("absl", "oneDNN", "cpu_feature_guard", "I0000"):
        assert noise not in done.stderr, done.stderr
    if done.returncode == 2:  # one CPU, no GPU: the refusal is the only line
        assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith("error: compute.distribute: ")


def test_start_up_lines_are_dropped_while_other_lines_pass_at_once(capfd):
    import os

    from engine import quiet_fd2

    def noisy():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796616842.979843    9367 port.cc:153] oneDNN custom operations are on. You may see\n")
        os.write(
            2,
            b"I0000 00:00:1796616843.237316    9367 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
            b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with flags.\n",
        )
        os.write(2, b"E0000 00:00:1796616843.2 9367 cuda.cc:1] a real error\nsomething else\n")
        return 7

    assert quiet_fd2(noisy) == 7
    assert capfd.readouterr().err == "E0000 00:00:1796616843.2 9367 cuda.cc:1] a real error\nsomething else\n"
