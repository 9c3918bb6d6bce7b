"""Runs the Grad-CAM and export tests share, each trained once per pytest session.

`tiny_run`: a fine-tuning run on tiny generated data with random weights (seconds).
`trained_run`: one real cats-vs-dogs model.

Feature extraction on MobileNetV2 (the ImageNet weights file from the assets) at 160 px with
a global-average-pooling head (small: quick to export and convert), on a linked subset of cats_vs_dogs_small (200 + 200 training, 100 + 100 validation
photos): about half a minute on 2 cores, and a linear-probe-quality model (the full set
reaches ~0.975 validation accuracy; the subset about the same).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ASSETS, make_split_dataset, tiny_config

WEIGHTS = ASSETS / "weights" / "mobilenet_v2_1.0_imagenet_no_top.weights.h5"
PHOTOS = ASSETS / "photos"
SUBSET = {"train": 200, "validation": 100}  # photos per class
RUN_ID = "cats-dogs-fe"


def require_assets() -> None:
    """Skips the calling test when the real assets are not there (a user's clone has none)."""
    if not (ASSETS / "cats_vs_dogs_small").is_dir() or not WEIGHTS.is_file() or not PHOTOS.is_dir():
        pytest.skip(f"real assets not found at {ASSETS} (set TLS_ASSETS to run real-data tests)")


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
    root = tmp_path_factory.getbasetemp() / "real-cats-dogs"
    runs_dir = root / "runs"
    if (runs_dir / RUN_ID / "model.keras").is_file():
        return runs_dir, RUN_ID
    from engine import cli

    data = link_subset(root / "data")
    rc = cli.main(["run", "--data", str(data), "--approach", "feature_extraction", "--backbone", "mobilenet_v2",
                   "--weights", str(WEIGHTS), "--image-size", "160", "--pooling", "avg", "--epochs", "3", "--runs-dir", str(runs_dir),
                   "--cache-dir", str(root / "cache"), "--run-id", RUN_ID, "--report", str(root / "report.json"), "--quiet"])
    assert rc == 0
    report = json.loads((root / "report.json").read_text())["runs"][0]
    assert report["state"] == "finished" and report["val_accuracy"] >= 0.9, report
    return runs_dir, RUN_ID


def tiny_run(tmp_path_factory) -> tuple[Path, str, Path]:
    """(runs_dir, run id, dataset) of a fine-tuning run (augmentation, unfrozen top block) on tiny data."""
    root = tmp_path_factory.getbasetemp() / "tiny-fine-tuning"
    done = root / "run_id.txt"
    if done.is_file():
        return root / "runs", done.read_text(), root / "tiny"
    from engine.approaches import RUNNERS, prepare_data

    data_dir = make_split_dataset(root / "tiny")
    result = RUNNERS["fine_tuning"](tiny_config("fine_tuning", data_dir), prepare_data(str(data_dir)),
                                    runs_dir=root / "runs", cache_dir=root / "cache")
    assert result.state == "finished"
    done.write_text(result.id)
    return root / "runs", result.id, data_dir
