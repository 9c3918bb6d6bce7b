"""`python -m engine`: the contract the dashboard, benchmarks and acceptance checks use."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import cli
from tests.conftest import ROOT, make_image


def run_cli(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def test_scan_json(tiny_dataset, capsys):
    (tiny_dataset / "train" / "dogs" / "broken.jpg").write_text("nope")
    (tiny_dataset / "train" / "dogs" / ".DS_Store").write_text("junk")
    assert cli.main(["scan", str(tiny_dataset), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == ["cats", "dogs"]
    assert out["splits"]["train"] == {"cats": 8, "dogs": 8}
    assert out["bad_files"] == [
        {"path": str(tiny_dataset / "train" / "dogs" / "broken.jpg"), "reason": out["bad_files"][0]["reason"]}
    ]
    assert "not a readable image" in out["bad_files"][0]["reason"]


@pytest.mark.slow
def test_run_all_writes_report_and_progress(tiny_dataset, tmp_path, capsys, monkeypatch):
    report = tmp_path / "report.json"
    writes, real_write = [], cli.write_report

    def full_disk_once(path, results):  # the first report write fails (a full disk): no approach may be lost to it
        writes.append(len(results))
        return real_write(tmp_path, results) if len(writes) == 1 else real_write(path, results)  # a folder: a real OSError

    monkeypatch.setattr(cli.train, "write_report", full_disk_once)
    rc = cli.main(
        [
            "run",
            "--data",
            str(tiny_dataset),
            "--approach",
            "all",
            "--backbone",
            "vgg16",
            "--views",
            "1",
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
            "--runs-dir",
            str(tmp_path / "r"),
            "--report",
            str(report),
        ]
    )
    stderr = capsys.readouterr().err
    assert writes == [1, 2, 3]
    assert rc == 2 and stderr.strip().splitlines()[-1] == (
        f"error: --report {tmp_path}: could not write it (Is a directory); nothing was written; the runs are stored (see `python -m engine runs`)"
    )
    runs = json.loads(report.read_text())["runs"]
    assert [r["approach"] for r in runs] == ["feature_extraction", "frozen", "fine_tuning"]
    keys = {
        "id",
        "approach",
        "backbone",
        "image_size",
        "epochs_run",
        "history",
        "val_accuracy",
        "test_accuracy",
        "wall_seconds",
        "trainable_params",
        "total_params",
        "run_dir",
    }
    for r in runs:
        assert keys <= set(r) and Path(r["run_dir"]).is_dir() and r["image_size"] == 32
        assert set(r["history"]) >= {"accuracy", "val_accuracy", "loss", "val_loss"}
        run_dir = Path(r["run_dir"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert (r["val_accuracy"], r["test_accuracy"]) == (metrics["validation"]["accuracy"], metrics["test"]["accuracy"])
        assert r["test_accuracy"] == pytest.approx(1 - len(metrics["test"]["misclassified"]) / 8)  # 8 test images
    # fine-tuning continues from the frozen run just trained: its phase 1 is that run's 2 epochs,
    # and every array it needs (views and validation/test at the cut) was cached by the runs before it
    assert [r["epochs_run"] for r in runs] == [2, 2, 3]
    assert runs[2]["history"]["loss"][:2] == runs[1]["history"]["loss"]
    assert runs[2]["feature_cache"]["misses"] == 0 and runs[2]["feature_cache"]["hits"] > 0
    epoch_lines = [l for l in stderr.splitlines() if "] epoch " in l]
    assert len(epoch_lines) == 5 and "[fine_tuning] epoch 3/3 (fine-tune)" in epoch_lines[-1]
    assert cli.main(["runs", "--runs-dir", str(tmp_path / "r"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 3


@pytest.mark.slow
def test_no_test_split_gives_null_test_accuracy(tmp_path, capsys):
    from tests.conftest import make_split_dataset

    data = make_split_dataset(tmp_path / "nt", counts={"train": 4, "validation": 2})
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
            "1",
            "--quiet",
        ]
    )
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["test_accuracy"] is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "/nonexistent/data"], "error: /nonexistent/data: folder not found"),
        (["--epochs", "0"], "error: argument --epochs: must be >= 1, got 0"),
        (["--weights", "/nope/w.h5"], "error: weights file not found: /nope/w.h5"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_dataset, capsys, args, message):
    base = ["run", "--data", str(tiny_dataset), "--approach", "frozen", "--image-size", "32"]
    rc = cli.main(base + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(message)


def _bad_config(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"fit": {"epochs": "ten"}}))
    return cfg


@pytest.mark.parametrize(
    "extra,message",
    [
        (lambda t: ["--config", str(_bad_config(t))], '--config {t}/cfg.json: fit.epochs: expected a whole number, got "ten"'),
        (lambda t: ["--config", str(t / "missing.json")], "--config {t}/missing.json: cannot read"),
        (lambda t: ["--run-id", "../x"], "run id '../x': use 1-100 letters"),
        (lambda t: ["--run-id", "/tmp/abs"], "run id '/tmp/abs': use 1-100 letters"),
        (lambda t: ["--run-id", "taken"], "--run-id taken: a run with that id already exists"),
        (
            lambda t: ["--report", str(t / "no-such-dir" / "r.json")],
            "--report {t}/no-such-dir/r.json: folder {t}/no-such-dir does not exist",
        ),
        (lambda t: ["--image-size", "5000"], "backbone.image_size: 5000 px is above mobilenet_v2's limit of 512 px"),
        (lambda t: ["--report", "/dev/full"], "--report /dev/full: is a device; give the name of a new file"),
        (
            lambda t: os.mkfifo(t / "fifo") or ["--report", str(t / "fifo")],
            "--report {t}/fifo: is a pipe; give the name of a new file",
        ),
        (
            lambda t: (t / "afile").write_text("x") and ["--runs-dir", str(t / "afile")],
            "--runs-dir {t}/afile: is a file, not a folder; choose a folder you can write to",
        ),
        (lambda t: ["--runs-dir", "/proc/tls-runs"], "--runs-dir /proc/tls-runs: cannot write there (No such file or directory)"),
        (
            lambda t: (t / "afile").write_text("x") and ["--tensorboard", str(t / "afile")],
            "--tensorboard {t}/afile: is a file, not a folder; choose a folder you can write to",
        ),
    ],
)
def test_cli_bad_input_is_refused_before_any_run_folder(tiny_dataset, tmp_path, capsys, extra, message):
    runs = tmp_path / "runs"
    (runs / "taken").mkdir(parents=True)
    rc = cli.main(
        [
            "run",
            "--data",
            str(tiny_dataset),
            "--approach",
            "frozen",
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--runs-dir",
            str(runs),
            *extra(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: " + message.format(t=tmp_path)), err
    assert [p.name for p in runs.iterdir()] == ["taken"]  # nothing trained, nothing written
    assert not (tmp_path.parent / "x").exists()


def test_bugs_are_not_hidden_as_bad_input(monkeypatch):
    """Only StudioError means "bad input"; any other exception keeps its traceback."""
    monkeypatch.setattr(cli.commands, "cmd_scan", lambda args: int("not a number"))
    with pytest.raises(ValueError, match="invalid literal"):
        cli.main(["scan", "somewhere"])


def test_offline_imagenet_fails_fast_with_actionable_message(tiny_dataset, capsys, monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", lambda *a, **k: (_ for _ in ()).throw(OSError("no network")))
    rc = cli.main(
        [
            "run",
            "--data",
            str(tiny_dataset),
            "--approach",
            "all",
            "--weights",
            "imagenet",
            "--image-size",
            "150",
            "--runs-dir",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in err and "--weights PATH" in err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # nothing started


def test_predict_classifies_files(tiny_ft_run, tmp_path, capsys):
    from engine.insight.inference import classify_file, load_run
    from engine.store.runs import RunStore

    runs_dir, run_id, data_dir = tiny_ft_run
    shared = ["--run", run_id, "--runs-dir", str(runs_dir)]
    img = data_dir / "test" / "cats" / "cats_0.png"
    assert cli.main(["predict", *shared, "--json", str(img)]) == 0
    pred = json.loads(capsys.readouterr().out)["predictions"][0]
    expected = classify_file(load_run(RunStore(runs_dir), run_id), str(img))  # the engine's own answer for this file
    assert pred["image"] == str(img) and pred["predicted"] == expected["predicted"]
    assert pred["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    assert cli.main(["predict", *shared, str(img)]) == 0  # without --json: a line per image
    assert capsys.readouterr().out == f"{img}  {pred['predicted']}  {pred['probabilities'][pred['predicted']]:.1%}\n"
    junk = tmp_path / "junk.jpg"
    junk.write_text("hello")
    assert cli.main(["predict", *shared, str(junk)]) == 2
    assert "junk.jpg: not a readable image" in capsys.readouterr().err


def test_predict_answers_each_broken_file_with_exit_2_and_one_line(tiny_dataset, tmp_path):
    """Files are checked before the run is loaded: no model is needed, and TensorFlow prints nothing."""
    data = (tiny_dataset / "test" / "cats" / "cats_0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    os.mkfifo(tmp_path / "pipe.png")
    broken = {"cut.png": "not a readable image (", "pipe.png": "not a regular file", "gone.png": "cannot read (No such file"}
    for name, reason in broken.items():
        path = tmp_path / name
        proc = run_cli("predict", "--run", "fe1", str(path), env={"TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith(f"error: {path}: {reason}") and proc.stderr.count("\n") == 1, proc.stderr


def test_scan_reports_a_fifo_instead_of_hanging(tiny_dataset, capsys):
    os.mkfifo(tiny_dataset / "train" / "cats" / "pipe.jpg")
    (tiny_dataset / "everything").symlink_to(".")
    assert cli.main(["scan", str(tiny_dataset), "--json"]) == 0  # a hang would trip pytest-timeout
    out = json.loads(capsys.readouterr().out)
    assert out["bad_files"] == [{"path": str(tiny_dataset / "train" / "cats" / "pipe.jpg"), "reason": "not a regular file"}]
    assert out["splits"]["train"] == {"cats": 8, "dogs": 8}


@pytest.mark.slow
def test_bench_compares_lecture_ours_and_raw(tiny_dataset, tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    assert (
        cli.main(
            [
                "bench",
                "--data",
                str(tiny_dataset),
                "--backbone",
                "vgg16",
                "--weights",
                "none",
                "--image-size",
                "32",
                "--quick",
                "--raw-seconds",
                "0.2",
                "--views",
                "2",
                "--in-memory-mb",
                "0",
                "--json",
                str(out_file),
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out == json.loads(out_file.read_text())
    assert out["image_size"] == 32 and out["train_images"] == 16 and out["views"] == 2 and out["peak_rss_mb"] > 0
    # ours took the path `run --in-memory-mb 0` takes, and its own peak memory is reported next to the process's
    assert {p["path"] for p in out["ours"]["data_path"].values()} == {"streamed"}
    assert 0 < out["ours"]["peak_rss_mb"] <= out["peak_rss_mb"]
    assert out["raw_forward_images_per_s"] > 0
    for side in ("lecture", "ours"):
        for key in ("fe_images_per_s", "frozen_epoch_s", "finetune_epoch_s", "protocol_s"):
            assert out[side][key] > 0, (side, key)
    assert set(out["ratios"]) == {"fe", "frozen_epoch", "finetune_epoch", "protocol"}
    assert out["ratios"]["protocol"] == pytest.approx(out["lecture"]["protocol_s"] / out["ours"]["protocol_s"], rel=0.01)
    # ours' fine-tuning continued from the frozen run and found every array it needed in the cache
    assert out["ours"]["fine_tuning_cache"]["misses"] == 0


def test_bench_needs_the_split_layout(tmp_path, capsys):
    flat = tmp_path / "flat"
    for cls, colour in (("a", (200, 0, 0)), ("b", (0, 0, 200))):
        for k in range(4):
            make_image(flat / cls / f"{k}.png", colour, seed=k)
    assert cli.main(["bench", "--data", str(flat), "--quick"]) == 2
    assert "split layout" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_during_training_leaves_an_interrupted_run_with_a_loadable_model(tiny_dataset, tmp_path, capsys):
    import signal

    import keras
    import numpy as np

    from engine.models import modeling  # noqa: F401  (registers the preprocessing layer for loading)

    runs_dir = tmp_path / "r"
    common = [
        "--data",
        str(tiny_dataset),
        "--backbone",
        "vgg16",
        "--views",
        "1",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--runs-dir",
        str(runs_dir),
        "--quiet",
    ]
    assert cli.main(["run", "--approach", "feature_extraction", "--epochs", "1", "--run-id", "done", *common]) == 0
    capsys.readouterr()
    proc = _start_long_run(tiny_dataset, runs_dir, "killed")
    history = runs_dir / "killed" / "history.json"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

    assert cli.main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    killed = rows["killed"]
    epochs = len(json.loads(history.read_text())["loss"])
    assert killed["state"] == "interrupted" and killed["epochs_run"] == epochs >= 1 and killed["model"] is True
    assert killed["message"].startswith(f"{epochs} of 500 epoch(s) done; its process (pid {proc.pid} on ")
    assert "model.keras holds epoch " in killed["message"]
    assert rows["done"]["state"] == "finished" and rows["done"]["epochs_run"] == 1 and rows["done"]["model"] is True
    model = keras.saving.load_model(runs_dir / "killed" / "model.keras", compile=False)
    assert np.asarray(model(np.zeros((1, 32, 32, 3), np.float32))).shape == (1, 1)
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    text = capsys.readouterr().out
    assert any(line.startswith("killed  interrupted") and f"epochs {epochs}/500" in line for line in text.splitlines()), text
    img = tiny_dataset / "test" / "cats" / "cats_0.png"
    assert cli.main(["predict", "--run", "killed", "--runs-dir", str(runs_dir), str(img)]) == 0  # its checkpoint classifies


def test_damaged_run_folders_are_listed_and_predict_says_so_in_one_line(tiny_dataset, tmp_path, capsys):
    from tests.conftest import write_run

    runs_dir = tmp_path / "r"
    write_run(runs_dir, "empty", config={})
    (runs_dir / "empty" / "config.json").write_text("{}")
    cut = write_run(runs_dir, "cut")
    (cut / "model.keras").write_bytes(b"PK\x03\x04" + bytes(200))  # a truncated archive
    write_run(runs_dir, "fine")
    assert cli.main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    states = {r["id"]: (r["state"], r["message"]) for r in out["runs"]}
    assert states["empty"] == ("damaged", "config.json lacks 'approach'")
    assert states["cut"][0] == "damaged" and states["cut"][1].startswith("model.keras is unreadable (truncated")
    assert states["fine"] == ("finished", "")
    assert {d["id"] for d in out["damaged"]} == {"empty", "cut"}
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    assert "empty  damaged      config.json lacks 'approach'" in capsys.readouterr().out
    img = str(tiny_dataset / "test" / "cats" / "cats_0.png")
    for run_id, says in (("empty", "config.json lacks 'approach'"), ("cut", "model.keras is unreadable (truncated")):
        assert cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), img]) == 2  # a bug would raise instead
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            len(err) == 1 and err[-1].startswith(f"error: run '{run_id}' is damaged: {says}") and "File not found" not in err[-1]
        )


def test_bench_epoch_time_is_the_median_of_a_phase_without_its_first_epoch():
    from engine.training.bench import steady_epoch_seconds

    history = {"epoch_seconds": [9.0, 1.0, 30.0, 4.0, 5.0, 60.0], "phase": [1, 1, 1, 2, 2, 2]}
    assert steady_epoch_seconds(history, phase=1) == 15.5  # 1.0 and 30.0: the traced 9.0 left out
    assert steady_epoch_seconds(history, phase=2) == 32.5
    assert steady_epoch_seconds({"epoch_seconds": [7.0], "phase": [1]}, phase=1) == 7.0  # one epoch: all there is


# --- behaviour that had no test: exit status 1, Ctrl-C, the sample, scan's plain text ---------


def test_a_diverged_run_is_stored_as_failed_and_exits_1(tiny_dataset, tmp_path, capsys):
    """RMSprop at 1.0 (the largest rate the config accepts) explodes the lecture-sized head's loss."""
    report = tmp_path / "report.json"
    rc = cli.main(
        [
            "run",
            "--data",
            str(tiny_dataset),
            "--approach",
            "feature_extraction",
            "--backbone",
            "vgg16",
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs",
            "3",
            "--learning-rate",
            "1.0",
            "--dense-units",
            "256",
            "--batch-size",
            "8",
            "--runs-dir",
            str(tmp_path / "r"),
            "--report",
            str(report),
            "--quiet",
        ]
    )
    assert rc == cli.EXIT_FAILED == 1
    run = json.loads(report.read_text())["runs"][0]
    assert run["state"] == "failed"
    metrics = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
    assert "training diverged" in metrics["message"] and "lower the learning rate" in metrics["message"]
    assert "] failed: " in capsys.readouterr().err


def _start_long_run(tiny_dataset, runs_dir, run_id):
    """A `python -m engine run` that would take minutes, once it has finished its first epoch."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "run",
            "--data",
            str(tiny_dataset),
            "--approach",
            "frozen",
            "--backbone",
            "vgg16",
            "--views",
            "1",
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs",
            "500",
            "--batch-size",
            "2",
            "--run-id",
            run_id,
            "--runs-dir",
            str(runs_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    history = runs_dir / run_id / "history.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and json.loads(history.read_text() or "{}").get("loss"):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no epoch finished: {proc.communicate()[1][-2000:]}")


@pytest.mark.slow
def test_ctrl_c_and_repeated_sigterms_stop_after_the_batch_keep_the_epochs_and_exit_0(tiny_dataset, tmp_path, capsys):
    import signal

    runs_dir = tmp_path / "r"
    proc = _start_long_run(tiny_dataset, runs_dir, "ctrl-c")
    proc.send_signal(signal.SIGINT)
    for _ in range(3):  # a double (triple) click on the dashboard's Stop: the save is never cut short
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "stop requested: finishing the current batch and saving the run" in err and "Traceback" not in err
    assert "already stopping: the run is being saved (kill -9 abandons it)" in err
    run = json.loads(out)["runs"][0]
    assert run["state"] == "stopped" and 1 <= run["epochs_run"] < 500
    assert (runs_dir / "ctrl-c" / "model.keras").is_file()
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0  # the listing shows done/planned epochs
    assert f"stopped      epochs {run['epochs_run']}/500 " in capsys.readouterr().out


def test_a_second_signal_waits_for_the_first_ones_save():
    import signal

    stop = cli.StopFlag()
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        stop.install()
        assert not stop()
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        assert stop()
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # no KeyboardInterrupt
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        assert stop()
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


@pytest.mark.slow
def test_sample_subcommand_and_data_sample(tmp_path, capsys, monkeypatch):
    target = tmp_path / "my-sample"
    assert cli.main(["sample", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    classes = ["circle", "square", "triangle"]
    counts = {
        split: sorted((c, len(list((target / split / c).iterdir()))) for c in classes)
        for split in ("train", "validation", "test")
    }
    assert counts == {
        "train": [(c, 60) for c in classes],
        "validation": [(c, 20) for c in classes],
        "test": [(c, 20) for c in classes],
    }
    monkeypatch.setenv("TLS_SAMPLE_DIR", str(target))  # `--data sample` / `scan sample` mean this folder
    assert cli.main(["scan", "sample", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["root"] == str(target) and report["classes"] == classes and report["num_images"] == 300
    rc = cli.main(
        [
            "run",
            "--data",
            "sample",
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
            "--runs-dir",
            str(tmp_path / "r"),
            "--quiet",
        ]
    )
    assert rc == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert run["classes"] == classes and run["state"] == "finished"
    config = json.loads((Path(run["run_dir"]) / "config.json").read_text())
    assert config["data"]["path"] == str(target) and sum(config["resolved"]["split_sizes"].values()) == 300


def test_scan_plain_text_names_counts_sizes_and_bad_files(tmp_path, capsys):
    from tests.conftest import make_split_dataset

    data = make_split_dataset(tmp_path / "d", counts={"train": 3, "validation": 2})
    (data / "train" / "cats" / "broken.png").write_text("nope")
    assert cli.main(["scan", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{data}  (split layout, 2 classes, 10 usable images)"
    assert "  train       cats: 3  dogs: 3" in lines and "  validation  cats: 2  dogs: 2" in lines
    assert "  size        width 40/40/40  height 32/32/32 (min/median/max)" in lines
    assert "  formats     PNG 10" in lines
    assert any(l.startswith(f"  bad file    {data / 'train' / 'cats' / 'broken.png'}: not a readable image") for l in lines)


def test_places_that_cannot_hold_a_sample_or_a_run_store_are_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert cli.main(["sample", str(tmp_path / "afile" / "sample")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: DIR {tmp_path / 'afile' / 'sample'}: cannot be used (Not a directory); choose another name"
    ]  # the output gate
    assert cli.main(["runs", "--runs-dir", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --runs-dir {tmp_path / 'afile'}: is a file, not a run store folder"
    ]
