"""Shared fixtures: tiny generated datasets, isolated run/cache folders, the optional real assets.

A user's clone has no ../shared/assets and may have no Chromium: tests that need them skip with
the reason. CI sets TLS_REQUIRE_ASSETS=1 (.ci/run), and then the same reason is a failure:
nothing that should run in CI is skipped silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# One TensorFlow thread per test process: the suite runs on three xdist workers on a 2-core machine,
# and tiny models spend more in thread hand-offs than they gain (a 63-test subset: 125 s -> 99 s).
# Set before anything imports TensorFlow; training processes the tests start inherit it.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("TLS_ASSETS", ROOT.parent / "shared" / "assets"))
REQUIRE_ASSETS = os.environ.get("TLS_REQUIRE_ASSETS", "") == "1"
COLOURS = {"cats": (200, 60, 40), "dogs": (40, 80, 200), "birds": (60, 190, 70)}


def make_image(path: Path, colour, size=(40, 32), seed=0, fmt=None) -> None:
    """Writes a noisy image dominated by `colour` (so classes are learnable)."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.asarray(colour)[None, None, :] + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, fmt)


def make_split_dataset(root: Path, classes=("cats", "dogs"), counts=None) -> Path:
    counts = counts or {"train": 8, "validation": 4, "test": 4}
    i = 0
    for split, n in counts.items():
        for cls in classes:
            for k in range(n):
                make_image(root / split / cls / f"{cls}_{k}.png", COLOURS[cls], seed=i)
                i += 1
    return root


def missing(reason: str):
    """Skips the calling test for `reason` (a user's clone), or fails it under TLS_REQUIRE_ASSETS=1 (CI)."""
    if REQUIRE_ASSETS:
        pytest.fail(f"{reason} [TLS_REQUIRE_ASSETS=1: required here]", pytrace=False)
    pytest.skip(reason)


def import_or_missing(module: str, reason: str):
    """`pytest.importorskip`, except that under TLS_REQUIRE_ASSETS=1 a missing module fails the test."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        missing(reason)


# Seconds each heavy file took in a whole run here (pytest --durations=0, summed per file). The
# suite runs a file per xdist worker (--dist loadfile --no-loadscope-reorder), longest first, so
# the last files to start are the short ones and the workers finish together (longest-processing-
# time-first scheduling). Unlisted files count as short; the numbers only need to keep their order.
HEAVY_FILES = {
    "test_approaches.py": 125,
    "test_browser.py": 150,
    "test_browser_dataset.py": 60,
    "test_cli.py": 115,
    "test_export.py": 105,
    "test_jobs.py": 90,
    "test_app_pages.py": 75,
    "test_distribute.py": 70,
    "test_real_data.py": 45,
    "test_ui_analysis.py": 35,
    "test_explain.py": 35,
    "test_ui_forms.py": 28,
    "test_runs.py": 25,
    "test_ui_results.py": 20,
    "test_features.py": 20,
    "test_analysis.py": 17,
    "test_backbones.py": 17,
    "test_app.py": 15,
    "test_precision.py": 15,
    "test_estimate.py": 13,
    "test_plan.py": 12,
    "test_tensorboard.py": 12,
    "test_lr_finder.py": 14,
    "test_serving.py": 11,
    "test_inference.py": 30,
    "test_status.py": 10,
    "test_ui_sweep.py": 35,
    "test_ui_feature_map.py": 18,
    "test_cli_sweep.py": 13,
    "test_feature_map.py": 12,
    "test_ui_ensemble.py": 14,
    "test_browser_health.py": 90,
    "test_data_health.py": 40,
    "test_ui_data_health.py": 25,
    "test_curation.py": 15,
    "test_ui_estimate.py": 30,
    "test_cli_outputs.py": 15,
}


def pytest_collection_modifyitems(config, items):
    """Orders files longest first (HEAVY_FILES), and checks markers.

    A test that reads the real assets must carry the `real_data` marker (so `-m "not real_data"` leaves it out).
    A test that needs the session's real model is also `slow`: training it takes a quarter of a minute.
    """
    items.sort(key=lambda item: -HEAVY_FILES.get(item.path.name, 0))  # stable: a file's tests keep their order
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        uses = fixtures & {"assets", "real_run"}
        if uses and item.get_closest_marker("real_data") is None:
            raise pytest.UsageError(f"{item.nodeid} uses {sorted(uses)} but has no @pytest.mark.real_data")
        if "real_run" in fixtures:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def session_sample_dir(tmp_path_factory) -> Path:
    """One folder for the built-in sample per test process: generated on first use, then reused by every test."""
    return tmp_path_factory.getbasetemp() / "shared-sample" / "sample"


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch, session_sample_dir):
    """Runs, feature cache and Keras' cache go to a temp folder; nothing touches ~/. The sample is shared (read only)."""
    monkeypatch.setenv("TLS_SAMPLE_DIR", str(session_sample_dir))
    monkeypatch.setenv("TLS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TLS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    # In-process app tests make a runner per run store; a standby process each would pile up
    # (each imports TensorFlow). The browser test's server and test_jobs turn it on.
    monkeypatch.setenv("TLS_WARM_START", "0")
    return tmp_path


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """Split layout, two colour-coded classes, 8/4/4 images per class."""
    return make_split_dataset(tmp_path / "tiny")


@pytest.fixture
def tiny_multiclass(tmp_path) -> Path:
    """Split layout, three classes, 6/3/3 images per class."""
    return make_split_dataset(tmp_path / "tri", ("birds", "cats", "dogs"), {"train": 6, "validation": 3, "test": 3})


@pytest.fixture
def assets() -> Path:
    """The real assets folder; skips the test when it is absent (a user's clone has none), fails it in CI."""
    require_assets()
    return ASSETS


@pytest.fixture(scope="session")
def real_run(tmp_path_factory) -> tuple[Path, str]:
    """(runs_dir, run id) of the session's one real cats-vs-dogs model (tests/shared_runs.py); read only."""
    from tests.shared_runs import trained_run

    return trained_run(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_ft_run(tmp_path_factory) -> tuple[Path, str, Path]:
    """(runs_dir, run id, dataset) of the session's tiny fine-tuning run (random weights); read only."""
    from tests.shared_runs import tiny_run

    return tiny_run(tmp_path_factory)


@pytest.fixture
def stand_in_calibration(monkeypatch):
    """A fixed calibration for engine/training/estimate.py (100 images/s forward, 10 ms a step): tests of what reads it, not of measuring."""
    from engine.training import estimate

    monkeypatch.setattr(estimate, "build_random_base", lambda cfg, size: (None, 0.5))
    monkeypatch.setattr(
        estimate,
        "calibrate_base",
        lambda cfg, size, precision, base, build_s: {
            "build_s": build_s,
            "forward_ips": 100.0,
            "forward_first_s": 1.0,
            "augmented_ips": 50.0,
            "augmented_first_s": 1.0,
            "save_s": 0.5,
            "rss_mb": 500.0,
            "shapes": {"": [1, 1, 1280], "block_15_add": [1, 1, 160]},
            "measured": "now",
            "heads": {},
        },
    )
    monkeypatch.setattr(estimate, "calibrate_head", lambda *a: {"step_s": 0.01, "fit_first_s": 1.0, "eval_rows_s": 1000.0})


def require_assets() -> None:
    """The photos, cats_vs_dogs_small and the MobileNetV2 weights file, or `missing` with what is absent."""
    weights = ASSETS / "weights" / "mobilenet_v2_1.0_imagenet_no_top.weights.h5"
    for path in (ASSETS / "cats_vs_dogs_small", ASSETS / "photos", weights):
        if not path.exists():
            missing(f"real assets not found: {path} (set TLS_ASSETS to the folder that holds them)")


def tiny_config(approach: str, data: Path, **overrides):
    """A fast config: VGG16 at 32 px (few layers: the quickest to build and trace), random weights, 1 epoch (+1 fine-tune), 1 augmented view."""
    from engine.config import default_config

    cfg = default_config(approach)
    cfg.data.path = str(data)
    cfg.backbone.name = overrides.pop("backbone", "vgg16")
    cfg.backbone.weights = "none"
    cfg.backbone.image_size = overrides.pop("image_size", 32)
    cfg.fit.epochs = overrides.pop("epochs", 1)
    cfg.fit.batch_size = 8
    cfg.fit.learning_rate = overrides.pop("learning_rate", 1e-3)
    cfg.fine_tune.epochs = overrides.pop("fine_tune_epochs", 1)
    cfg.head.dense_units = 16
    cfg.augmentation.views = overrides.pop("views", 1)  # one augmented pass of the base, not three: most tests train 1-2 epochs
    assert not overrides, overrides
    return cfg


def write_run(
    root: Path, run_id: str, *, state: str = "finished", epochs: int = 2, owner: dict | None = None, config: dict | None = None
) -> Path:
    """A run folder as a training process leaves it (no model): `epochs` epochs of history, `state`, an optional heartbeat."""
    import json

    path = root / run_id
    path.mkdir(parents=True)
    cfg = (
        config
        if config is not None
        else {
            "approach": "frozen",
            "backbone": {"name": "mobilenet_v2"},
            "data": {"path": ""},
            "resolved": {"classes": ["cats", "dogs"], "image_size": 32},
        }
    )
    curve = [0.5 + 0.1 * i for i in range(epochs)]
    history = {"loss": curve, "accuracy": curve, "val_loss": curve, "val_accuracy": curve}
    metrics = (
        {"state": state, "epoch": epochs, "epochs_total": 10} if state == "running" else {"state": state, "epochs_run": epochs}
    )
    for name, obj in (("config", cfg), ("history", history), ("metrics", metrics)):
        (path / f"{name}.json").write_text(json.dumps(obj))
    if owner is not None:
        (path / "heartbeat.json").write_text(json.dumps(owner))
    return path


def dead_pid() -> int:
    """The PID of a process that has just ended (and was reaped)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
