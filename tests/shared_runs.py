"""Runs that many tests share, each trained once per pytest session (once for all xdist workers).

`tiny_run`: a fine-tuning run on tiny generated data with random weights (seconds).
`trained_run`: one real cats-vs-dogs model.

Feature extraction on MobileNetV2 (the ImageNet weights file from the assets) at 160 px with
a global-average-pooling head (small: quick to export and convert), on a linked subset of cats_vs_dogs_small (200 + 200 training, 100 + 100 validation
photos): about half a minute on 2 cores, and a linear-probe-quality model (the full set
reaches ~0.975 validation accuracy; the subset about the same).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path

from tests.conftest import ASSETS, make_split_dataset, require_assets, tiny_config

WEIGHTS = ASSETS / "weights" / "mobilenet_v2_1.0_imagenet_no_top.weights.h5"
PHOTOS = ASSETS / "photos"
SUBSET = {"train": 200, "validation": 100}  # photos per class
RUN_ID = "cats-dogs-fe"


def shared_root(tmp_path_factory) -> Path:
    """The session's temp folder; under pytest-xdist the folder all workers share (their own sit inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def exclusive(root: Path):
    """Holds a file lock on `root`, so one worker trains a shared run while the others wait for it."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def copy_run(runs_dir: Path, run_id: str, dest_runs_dir: Path) -> Path:
    """A copy of a shared run in a test's own run store, for a test that changes or deletes it."""
    dest = Path(dest_runs_dir) / run_id
    shutil.copytree(Path(runs_dir) / run_id, dest)
    return dest


def link_subset(dest: Path) -> Path:
    """dest/{train,validation}/{cats,dogs}/ with the first SUBSET[split] photos of each, as symlinks."""
    for split, n in SUBSET.items():
        for cls in ("cats", "dogs"):
            src = ASSETS / "cats_vs_dogs_small" / split / cls
            out = dest / split / cls
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted(src.iterdir())[:n]:
                os.symlink(f, out / f.name)
    return dest


def trained_run(tmp_path_factory) -> tuple[Path, str]:
    """(runs_dir, run id) of the shared model; trains it on first use in this session."""
    require_assets()
    root = shared_root(tmp_path_factory) / "real-cats-dogs"
    runs_dir = root / "runs"
    with exclusive(root):
        if not (runs_dir / RUN_ID / "model.keras").is_file():
            _train_real(root, runs_dir)
    return runs_dir, RUN_ID


def _train_real(root: Path, runs_dir: Path) -> None:
    from engine import cli

    data = link_subset(root / "data")
    rc = cli.main(
        [
            "run",
            "--data",
            str(data),
            "--approach",
            "feature_extraction",
            "--backbone",
            "mobilenet_v2",
            "--weights",
            str(WEIGHTS),
            "--image-size",
            "160",
            "--pooling",
            "avg",
            "--epochs",
            "8",
            "--runs-dir",
            str(runs_dir),
            "--cache-dir",
            str(root / "cache"),
            "--run-id",
            RUN_ID,
            "--report",
            str(root / "report.json"),
            "--quiet",
        ]
    )
    assert rc == 0
    report = json.loads((root / "report.json").read_text())["runs"][0]
    assert report["state"] == "finished" and report["val_accuracy"] >= 0.9, report


def tiny_run(tmp_path_factory) -> tuple[Path, str, Path]:
    """(runs_dir, run id, dataset) of a fine-tuning run (augmentation, unfrozen top block) on tiny data."""
    root = shared_root(tmp_path_factory) / "tiny-fine-tuning"
    done = root / "run_id.txt"
    with exclusive(root):
        if not done.is_file():
            from engine.training.approaches import RUNNERS, prepare_data

            data_dir = make_split_dataset(root / "tiny")
            result = RUNNERS["fine_tuning"](
                tiny_config("fine_tuning", data_dir, backbone="mobilenet_v2"),
                prepare_data(str(data_dir)),
                runs_dir=root / "runs",
                cache_dir=root / "cache",
            )
            assert result.state == "finished"
            done.write_text(result.id)
    return root / "runs", done.read_text(), root / "tiny"
