"""engine.distribute: strategy choice, TF_CONFIG, the chief; the same runs on two replicas.

The end-to-end tests run the CLI in subprocesses: logical CPU devices must be configured
before TensorFlow initialises, and a multi-worker job is one process per worker. Each
compares with a single-device run of the same data, seed and per-replica batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine import cli
from engine.config import ConfigError
from engine.store.runs import RunStore
from engine.training import distribute
from tests.conftest import ROOT, make_split_dataset

APPROACHES = ("feature_extraction", "frozen", "fine_tuning")
# Random VGG16 at 32 px on colour-coded classes: separable enough that every approach scores 1.0.
FLAGS = [
    "--backbone",
    "vgg16",
    "--weights",
    "none",
    "--image-size",
    "32",
    "--epochs",
    "2",
    "--fine-tune-epochs",
    "1",
    "--batch-size",
    "8",
    "--optimizer",
    "adam",
    "--learning-rate",
    "0.01",
    "--pooling",
    "avg",
    "--dense-units",
    "0",
    "--fine-tune-learning-rate",
    "0.0001",
    "--quiet",
]
TWO_CPUS = """
import sys
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


# --- TF_CONFIG and the chief --------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, says",
    [
        ("", "describing the workers"),
        ("{not json", "to be JSON"),
        ('{"cluster": {}}', "'cluster' listing 'worker'"),
        ('{"cluster": {"worker": ["a:1"]}}', "'task' of type"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task index 1 is not in"),
    ],
)
def test_bad_tf_config_is_one_line_naming_the_field(raw, says):
    with pytest.raises(ConfigError) as err:
        distribute.read_tf_config(raw)
    msg = str(err.value)
    assert msg.startswith("compute.distribute: 'multi_worker' needs TF_CONFIG") and says in msg and "\n" not in msg


@pytest.mark.parametrize(
    "task, has_chief, chief",
    [
        ({"type": "worker", "index": 0}, False, True),
        ({"type": "worker", "index": 1}, False, False),
        ({"type": "worker", "index": 0}, True, False),
        ({"type": "chief", "index": 0}, True, True),
    ],
)
def test_is_chief(task, has_chief, chief):
    cluster = {"worker": ["a:1", "b:1"], **({"chief": ["c:1"]} if has_chief else {})}
    assert distribute.is_chief({"cluster": cluster, "task": task}) is chief


def test_one_process_without_tf_config_is_its_own_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief() is True
    none = distribute.resolve("none")
    assert (none.kind, none.replicas, none.workers, none.chief, none.global_batch(20)) == ("none", 1, 1, True, 20)


def test_cli_refuses_multi_worker_without_tf_config_before_any_work(tiny_dataset, isolated_store, monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    rc = cli.main(["run", "--data", str(tiny_dataset), "--distribute", "multi_worker", "--approach", "all", *FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: compute.distribute: 'multi_worker' needs TF_CONFIG")
    assert not (isolated_store / "runs").exists()


def test_mirrored_with_one_cpu_is_a_config_error(tiny_dataset, capsys):
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU") or len(tf.config.list_logical_devices("CPU")) > 1:
        pytest.skip("this process has devices to mirror over")
    rc = cli.main(["run", "--data", str(tiny_dataset), "--distribute", "mirrored", "--approach", "all", *FLAGS])
    assert rc == 2 and "compute.distribute: 'mirrored' found no GPU and a single CPU device" in capsys.readouterr().err


def test_worker_store_writes_scratch_and_reads_the_shared_store(tmp_path):
    config = {
        "approach": "frozen",
        "backbone": {"name": "vgg16"},
        "data": {"path": ""},
        "resolved": {"classes": ["cats", "dogs"], "image_size": 32},
    }
    given = RunStore(tmp_path / "shared").create("frozen", config, "given-run")
    store = distribute.WorkerRunStore(tmp_path / "shared")
    try:
        mine = store.create("frozen", config, "mine")
        assert mine.parent == store.root and not (tmp_path / "shared" / "mine").exists()
        assert store.load("mine").path == mine and store.load("given-run").path == given
    finally:
        distribute.remove_scratch()
    assert not mine.exists()


# --- the same runs on two replicas ----------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two colour-coded classes, 16/8/8 images each."""
    return make_split_dataset(tmp_path_factory.mktemp("dist") / "data", counts={"train": 16, "validation": 8, "test": 8})


@pytest.fixture(scope="module")
def single_device(dataset, tmp_path_factory) -> dict:
    """The reference: --approach all on one device; its feature cache is shared by the distributed runs."""
    out = tmp_path_factory.mktemp("single")
    rc = cli.main(
        [
            "run",
            "--data",
            str(dataset),
            *FLAGS,
            "--approach",
            "all",
            "--runs-dir",
            str(out / "runs"),
            "--cache-dir",
            str(dataset.parent / "cache"),
            "--report",
            str(out / "report.json"),
        ]
    )
    assert rc == 0
    runs = {r["approach"]: r for r in json.loads((out / "report.json").read_text())["runs"]}
    assert all(runs[a]["test_accuracy"] >= 0.9 for a in APPROACHES), runs  # learnable, so a match means something
    return runs


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _assert_matches(runs: dict, reference: dict, kind: str, approaches=APPROACHES) -> None:
    assert set(runs) == set(approaches)
    for a in approaches:
        r, ref = runs[a], reference[a]
        assert r["state"] == "finished" and r["epochs_run"] == ref["epochs_run"]
        assert (r["distribute"], r["replicas"], r["global_batch"]) == (kind, 2, 16)
        assert abs(r["test_accuracy"] - ref["test_accuracy"]) <= 0.01, (a, r["test_accuracy"], ref["test_accuracy"])
        assert abs(r["val_accuracy"] - ref["val_accuracy"]) <= 0.01, (a, r["val_accuracy"], ref["val_accuracy"])


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_one_device(dataset, single_device, tmp_path):
    assert single_device["frozen"]["distribute"] == "none" and single_device["frozen"]["global_batch"] == 8
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            TWO_CPUS,
            "run",
            "--data",
            str(dataset),
            *FLAGS,
            "--approach",
            "all",
            "--distribute",
            "mirrored",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--cache-dir",
            str(dataset.parent / "cache"),
            "--report",
            str(report),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {r["approach"]: r for r in json.loads(report.read_text())["runs"]}
    _assert_matches(runs, single_device, "mirrored")
    stored = json.loads((tmp_path / "runs" / runs["frozen"]["id"] / "config.json").read_text())["resolved"]
    assert (stored["distribute"], stored["replicas"], stored["global_batch"]) == ("mirrored", 2, 16)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_localhost_match_one_device_and_only_the_chief_stores(dataset, single_device, tmp_path):
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        scratch = tmp_path / f"tmp{i}"
        scratch.mkdir()
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "engine",
                    "run",
                    "--data",
                    str(dataset),
                    *FLAGS,
                    "--approach",
                    "fine_tuning",
                    "--distribute",
                    "multi_worker",
                    "--runs-dir",
                    str(tmp_path / "runs"),
                    "--cache-dir",
                    str(dataset.parent / "cache"),
                    "--report",
                    str(tmp_path / f"w{i}.json"),
                ],
                env=_env(TF_CONFIG=tf_config, TMPDIR=str(scratch)),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:] for o in outs]
    chief, other = ({r["approach"]: r for r in json.loads((tmp_path / f"w{i}.json").read_text())["runs"]} for i in range(2))
    # Fine-tuning alone: its phase 1 trains a head on cached views (the frozen approach's path, and feature
    # extraction's but for plain features), its phase 2 the unfrozen block; mirrored above runs all three.
    _assert_matches(chief, single_device, "multi_worker", ("fine_tuning",))
    _assert_matches(other, single_device, "multi_worker", ("fine_tuning",))
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [chief["fine_tuning"]["id"]]  # one folder, the chief's
    assert other["fine_tuning"]["run_dir"] == ""
    assert not any((tmp_path / "tmp1").iterdir())  # the other worker's scratch store is gone
