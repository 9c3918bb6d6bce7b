"""Cost before you click: a run's wall time and peak memory on this machine, and what the feature cache saves.

From a short calibration measured once per (backbone, width, image size, precision, machine)
and stored beside the feature cache (`calibration.json`): the frozen base's forward rate
on plain and augmented batches, its one-time tracing, the time to save the full model and
the process's peak memory; and once per head (cut, pooling, units, batch, optimizer,
classes) a training step and an evaluation rate on random features. Nothing is trained.
The calibration runs the engine's own pieces (stages.StageBuilder: the frozen-prefix
function, new_stage, compile, the saved pipeline), with random weights: speed does not
depend on their values.

Which passes a run makes, under which cache keys, and whether a split is held in RAM or
streamed come from the run's own planner (plan.RunPlan), file content included, without
computing anything.
The estimated `wall_s` is what metrics.json's `wall_seconds` measures (from the run's start,
after the base is built, to its end); `startup_s` adds building the base. Early stopping
is not foreseen: the estimate assumes every epoch runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.config import AugmentationConfig, RunConfig, validate
from engine.errors import StudioError
from engine.models import backbones
from engine.training.features import FeatureCache
from engine.training.plan import EXTRACT_BATCH, RunPlan, fine_tune_cut
from engine.training.stages import StageBuilder
from engine.training.streams import feature_dataset, train_dataset

CALIBRATION_FILE = "calibration.json"
CAL_BATCHES = 4  # timed forward batches after the traced first one
CAL_STEPS = 20  # timed head training steps
STREAM_CAL_BYTES = 64 * 2**20  # cached features made into a training stream, timed
EPOCH_OVERHEAD_S = 0.05  # per epoch: our callback's JSON writes, progress, heartbeat (measured ~20-60 ms)
CHECKPOINTS_PER_PHASE = 4  # epochs that lower val_loss and are saved (measured 2-5 per lecture phase)


class CalibrationMissing(StudioError):
    """No stored calibration for this setup and calibrating was not allowed."""


def _machine() -> str:
    return f"{platform.node()}|{os.cpu_count()}"


def _calibration_path(cache_dir) -> Path:
    return FeatureCache(cache_dir).root / CALIBRATION_FILE


def calibration_stamp(cache_dir) -> float:
    """When this machine's calibrations last changed (0 when none): a cache key for readers of `estimate_run`."""
    try:
        return _calibration_path(cache_dir).stat().st_mtime
    except OSError:
        return 0.0


def _read_calibrations(cache_dir) -> dict:
    try:
        return json.loads(_calibration_path(cache_dir).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_calibrations(cache_dir, table: dict) -> None:
    from engine.store.runs import atomic_write_json

    path = _calibration_path(cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, table)
    except OSError:
        pass  # an unwritable cache only means calibrating again next time


def base_key(cfg: RunConfig, image_size: int, precision: str) -> str:
    b = cfg.backbone
    alpha = b.alpha if backbones.get_spec(b.name).has_alpha else 1.0  # a width is part of the base only where the row has widths
    return f"{b.name}|{alpha}|{image_size}|{precision}|{_machine()}"


def head_key(cfg: RunConfig, cut: str, num_classes: int) -> str:
    h, f = cfg.head, cfg.fit
    return f"{cut or 'output'}|{h.pooling}|{h.dense_units}|{h.dropout > 0}|{f.batch_size}|{f.optimizer}|{num_classes}"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time_forward(fn, pixels) -> tuple[float, float]:
    """(first call seconds incl. tracing, images/s of the following calls)."""
    t = time.perf_counter()
    [o.numpy() for o in fn(pixels)]
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(CAL_BATCHES):
        [o.numpy() for o in fn(pixels)]
    return first, CAL_BATCHES * len(pixels) / (time.perf_counter() - t)


def build_random_base(cfg: RunConfig, image_size: int):
    """(base with random weights, seconds it took): the speed of a base does not depend on its weights."""
    t = time.perf_counter()
    base = backbones.build_base(dataclasses.replace(cfg.backbone, weights="none"), image_size)
    return base, time.perf_counter() - t


def calibrate_base(cfg: RunConfig, image_size: int, precision: str, base, build_s: float) -> dict:
    """Measures the frozen base: forward rates (plain, augmented), tracing, save time, memory."""
    from engine.data.augmentation import build_augmentation

    models = StageBuilder(cfg, base, image_size, num_classes=2, train_size=100)
    cut = fine_tune_cut(cfg)
    pixels = np.random.default_rng(0).integers(0, 256, (EXTRACT_BATCH, image_size, image_size, 3), dtype=np.uint8)
    first, ips = _time_forward(models.pixels_to_features(("", cut)), pixels)
    aug = build_augmentation(AugmentationConfig(), seed=0)
    first_aug, ips_aug = _time_forward(models.pixels_to_features(("", cut), aug), pixels)
    stage = models.new_stage("", augmentation=aug)
    with tempfile.TemporaryDirectory() as tmp:
        model = models.full_model(stage)
        t = time.perf_counter()  # the first save, one-time costs included, as a run's first checkpoint
        model.save(Path(tmp) / "m.keras")
        save_s = time.perf_counter() - t
        t = time.perf_counter()  # and the next ones (the sample's: 0.45 s each where the first took 0.65)
        model.save(Path(tmp) / "m.keras")
        resave_s = time.perf_counter() - t
    # A phase's training stream holds its cached views as tensors (streams.train_dataset): made before its first
    # step, 0.59 s for the sample's 3 views at 96 px (138 MB), the most of epoch 1's set-up. Timed on 64 MB.
    block = np.zeros((STREAM_CAL_BYTES // 2 // 1024, 1024), np.float16)
    t = time.perf_counter()
    train_dataset([block], np.zeros(len(block), np.int64), batch=32, seed=0, phase=1, epochs=1)
    stream_bytes_s = block.nbytes / max(time.perf_counter() - t, 1e-6)
    shapes = {"": list(base.output.shape[1:]), cut: list(base.get_layer(cut).output.shape[1:])}
    out = {
        "build_s": round(build_s, 3),
        "forward_ips": round(ips, 2),
        "forward_first_s": round(first, 3),
        "augmented_ips": round(ips_aug, 2),
        "augmented_first_s": round(first_aug, 3),
        "save_s": round(save_s, 3),
        "resave_s": round(resave_s, 3),
        "stream_bytes_s": round(stream_bytes_s),
        "rss_mb": round(_peak_rss_mb(), 1),
        "shapes": shapes,
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "heads": {},
    }
    return out


def calibrate_head(cfg: RunConfig, image_size: int, precision: str, cut: str, num_classes: int, base) -> dict:
    """Measures training the top at `cut` (the head, plus the unfrozen block for a fine-tuning cut)."""
    import keras

    from engine.models import modeling

    bs = cfg.fit.batch_size
    n = bs * CAL_STEPS
    models = StageBuilder(cfg, base, image_size, num_classes, train_size=n)
    stage = models.new_stage(cut)
    if cut:
        modeling.unfreeze_top(base, stage.split)
    models.compile(stage.top, cfg.fit.learning_rate)
    shape = tuple(stage.top.input.shape[1:])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, num_classes, n)
    epochs = 3
    # The run's own streams (the cached views as tensors, validation in order) and fit with validation: a fit on NumPy
    # arrays measured 0.0066 s a step where the run's epochs took 0.0045, and predict's rate (scoring) put validation
    # at 0.30 s per 1000 rows where fit's took 0.10 (mobilenet_v2 96 px head, this machine): epochs 1.4x too long.
    train = train_dataset([x], y, batch=bs, seed=0, phase=1, epochs=epochs)
    val = feature_dataset(x, y)
    times: list[float] = []
    tests: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.v = time.perf_counter()

        def on_test_end(self, logs=None):
            tests.append(time.perf_counter() - self.v)

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    t = time.perf_counter()
    stage.top.fit(train, validation_data=val, steps_per_epoch=CAL_STEPS, epochs=epochs, verbose=0, callbacks=[Timer()])
    outside = max(time.perf_counter() - t - sum(times), 0.0)  # before the first epoch and after the last: fit's own set-up
    best = min(range(1, epochs), key=lambda i: times[i])
    steady, val_s = times[best], tests[best]
    stage.top.predict(x[:100], batch_size=100, verbose=0)
    rows = np.concatenate([x] * 5)  # scoring's 1000s of rows: 400 read 2148 rows/s where scoring ran at 3700
    t = time.perf_counter()
    stage.top.predict(rows, batch_size=100, verbose=0)
    eval_rows = len(rows) / (time.perf_counter() - t)
    return {
        "step_s": round(max(steady - val_s, 0.0) / CAL_STEPS, 5),
        "fit_first_s": round(outside + max(times[0] - steady, 0.0), 3),  # fit's set-up, tracing the train and validation steps
        "eval_rows_s": round(eval_rows, 1),  # predict's rate: scoring
        "val_rows_s": round(n / max(val_s, 1e-6), 1),  # fit's validation pass, each epoch
    }


def resave_s(cal: dict) -> float:
    """Seconds of a save after the first (a calibration stored before it was measured apart: the first's)."""
    return cal.get("resave_s") or cal["save_s"]


def epoch_seconds(cfg: RunConfig, sizes: dict, head: dict) -> float:
    """One epoch of the head calibrated as `head`, its save apart: its steps, fit's validation pass, our callback."""
    return (
        math.ceil(sizes["train"] / cfg.fit.batch_size) * head["step_s"] + sizes["validation"] / val_rate(head) + EPOCH_OVERHEAD_S
    )


def val_rate(head: dict) -> float:
    """Rows per second of an epoch's validation pass (a calibration stored before it was measured apart: scoring's)."""
    return head.get("val_rows_s") or head["eval_rows_s"]


def calibration(
    cfg: RunConfig, image_size: int, precision: str, cache_dir, cuts: list[str], num_classes: int, calibrate: bool = True
) -> dict:
    """The stored calibration for this base and the heads at `cuts`, measuring what is missing (if allowed)."""
    table = _read_calibrations(cache_dir)
    key = base_key(cfg, image_size, precision)
    entry = table.get(key)
    missing = [c for c in cuts if entry is None or head_key(cfg, c, num_classes) not in entry["heads"]]
    if entry is not None and not missing:
        return entry
    if not calibrate:
        raise CalibrationMissing(
            f"no calibration yet for {key.split('|')[0]} at {image_size} px; run `python -m engine estimate` once"
        )
    import keras

    from engine.models.precision import dtype_policy

    with dtype_policy(precision):  # one base for every measurement: building it is the slow part
        base, build_s = build_random_base(cfg, image_size)
        if entry is None:
            entry = calibrate_base(cfg, image_size, precision, base, build_s)
        for c in sorted(missing):  # the whole-base head first: a fine-tuning cut unfreezes the top block
            entry["heads"][head_key(cfg, c, num_classes)] = calibrate_head(cfg, image_size, precision, c, num_classes, base)
    keras.backend.clear_session()
    table = _read_calibrations(cache_dir)  # another process may have added entries meanwhile
    table[key] = entry
    _write_calibrations(cache_dir, table)
    return entry


# --- what the run would compute ----------------------------------------------------------------
def _planned_passes(plan: RunPlan, cache_dir) -> list[tuple[object, bool]]:
    """(pass, whether the cache holds every array it makes) for each frozen-base pass the plan makes."""
    cache = FeatureCache(cache_dir)
    return [(p, all(cache.path(k).exists() for k in p.keys.values())) for p in plan.passes()]


def _weights_id(cfg: RunConfig, runs_dir) -> str:
    """The base's weights identity, as the run will key its cache: a continued frozen run's own."""
    if cfg.approach == "fine_tuning" and cfg.fine_tune.from_run:
        from engine.store.runs import RunStore

        return RunStore(runs_dir).load(cfg.fine_tune.from_run).resolved.get("weights_id", "")
    try:
        return backbones.weights_identity(cfg.backbone, cfg.fit.seed)
    except OSError:
        from engine.config import ConfigError

        raise ConfigError(f"backbone.weights: cannot read {cfg.backbone.weights}; give an existing weights file") from None


def _decode_seconds_per_image(data, image_size: int, cache_dir=None) -> float:
    """Decodes a few of the dataset's own files (sizes and formats vary by dataset), once per dataset and size.

    Remembered beside the calibration, so every estimate of a run agrees: the one the page shows
    when asked and the one `run` records at its start (two timings of 16 decodes differed by 4 %).
    """
    from engine.data.pixels import load_images

    key = f"decode|{data.fingerprint('train')}|{image_size}|{_machine()}"
    table = _read_calibrations(cache_dir)
    if isinstance(table.get(key), (int, float)):
        return float(table[key])
    files = data.splits["train"].files[:16]
    t = time.perf_counter()
    load_images(files, image_size)
    seconds = (time.perf_counter() - t) / max(len(files), 1)
    table = _read_calibrations(cache_dir)
    table[key] = round(seconds, 6)
    _write_calibrations(cache_dir, table)
    return seconds


def estimate_run(cfg: RunConfig, data, cache_dir=None, calibrate: bool = True, runs_dir=None) -> dict:
    """Wall time (s), peak memory (MB) and feature-cache reuse of running `cfg` on `data` here.

    Args:
        data: the PreparedData the run would use (same splits).
        calibrate: measure a missing calibration (tens of seconds, once); if False raise
            CalibrationMissing instead (the CLI's `run` records an estimate only when one is stored).
    Returns a JSON-ready dict: wall_s, startup_s, peak_memory_mb, reuse (all / partial / none),
    passes (per split and view: cached or computed), data_path (per split: in RAM or streamed),
    breakdown (seconds per stage), calibration.
    """
    from engine.models.precision import resolve_precision

    validate(cfg)
    image_size = backbones.image_size_for(cfg.backbone)
    precision = resolve_precision(cfg.compute.precision)
    plan = RunPlan.for_data(cfg, data, image_size, _weights_id(cfg, runs_dir), precision)
    num_classes = len(data.classes)
    cal = calibration(cfg, image_size, precision, cache_dir, sorted({cut for _, cut, _ in plan.phases()}), num_classes, calibrate)
    passes = _planned_passes(plan, cache_dir)
    breakdown, decoded = _breakdown(plan, cal, passes, data, cache_dir)
    cached = [c for _, c in passes]
    shape_of = lambda cut: tuple(cal["shapes"][cut])  # noqa: E731
    paths = {}
    for p, _ in passes:  # the first pass over a split decides its path, as in the run (context.RunContext.streamed)
        if p.split not in paths:
            views = cfg.augmentation.views if p.view != "plain" else 1
            paths[p.split] = plan.data_path(p.split, p.cuts[0], p.cuts, shape_of, views)["path"]
    return {
        "approach": cfg.approach,
        "backbone": cfg.backbone.name,
        "image_size": image_size,
        "precision": precision,
        "wall_s": round(sum(breakdown.values()), 1),
        "startup_s": round(cal["build_s"], 1),
        "peak_memory_mb": round(_peak_memory_mb(plan, cal, passes, decoded)),
        "reuse": "all" if all(cached) else "partial" if any(cached) else "none",
        "passes": [
            {
                "split": p.split,
                "view": p.view,
                "cuts": [c or "output" for c in p.cuts],
                "cached": c,
                "keys": list(p.keys.values()),
            }
            for p, c in passes
        ],
        "data_path": paths,
        "breakdown": {k: round(v, 2) for k, v in breakdown.items()},
        "assumes": "every epoch runs (no early stopping); this machine's current load",
        "calibration": {k: cal[k] for k in ("forward_ips", "augmented_ips", "save_s", "measured")},
    }


def forward_floor(cfg: RunConfig, data, cache_dir=None, runs_dir=None) -> dict:
    """A first guess before this machine is measured: the frozen base's passes alone, from the row's speed.

    The row's `cpu_images_per_s` (bench --backbones, at its default size) is scaled by pixel count to
    the run's size; the passes are the plan's (what the cache already holds is skipped). Epochs,
    decoding and saving come on top, so this is a floor: "at least", never the estimate itself.
    """
    from engine.models.precision import resolve_precision

    validate(cfg)
    spec = backbones.get_spec(cfg.backbone.name)
    image_size = backbones.image_size_for(cfg.backbone)
    precision = resolve_precision(cfg.compute.precision)
    plan = RunPlan.for_data(cfg, data, image_size, _weights_id(cfg, runs_dir), precision)
    images = sum(plan.sizes[p.split] for p, cached in _planned_passes(plan, cache_dir) if not cached)
    ips = spec.cpu_images_per_s * (spec.default_size / image_size) ** 2
    return {
        "backbone": spec.name,
        "image_size": image_size,
        "images": images,
        "images_per_s": round(ips, 1),
        "floor_s": round(images / ips, 1) if ips > 0 else None,
    }


def _breakdown(plan: RunPlan, cal: dict, passes: list, data, cache_dir=None) -> tuple[dict[str, float], set[str]]:
    """(seconds per stage, the splits decoded): decoding, the frozen passes not cached, each phase's epochs, scoring, saving."""
    n = plan.sizes
    decode_s = _decode_seconds_per_image(data, plan.image_size, cache_dir) if not all(c for _, c in passes) else 0.0
    breakdown: dict[str, float] = {}
    decoded: set[str] = set()
    traced_plain = False
    for p, cached in passes:
        if cached:
            continue
        if p.split not in decoded:
            breakdown["decode"] = breakdown.get("decode", 0.0) + n[p.split] * decode_s
            decoded.add(p.split)
        if p.view == "plain":
            first = 0.0 if traced_plain else cal["forward_first_s"]
            traced_plain = True
            breakdown["features"] = breakdown.get("features", 0.0) + first + n[p.split] / cal["forward_ips"]
        else:  # each view traces its own augmentation function
            breakdown["views"] = breakdown.get("views", 0.0) + cal["augmented_first_s"] + n[p.split] / cal["augmented_ips"]
    cfg, num_classes = plan.cfg, len(data.classes)
    phases = plan.phases()
    for phase, cut, epochs in phases:
        h = cal["heads"][head_key(cfg, cut, num_classes)]
        epoch_s = epoch_seconds(cfg, n, h)
        saves = min(epochs, CHECKPOINTS_PER_PHASE) * resave_s(cal) + (cal["save_s"] - resave_s(cal)) * (phase == phases[0][0])
        breakdown[f"fit_phase{phase}"] = h["fit_first_s"] + epochs * epoch_s + saves  # the run's first save pays one-off costs
    last = cal["heads"][head_key(cfg, phases[-1][1], num_classes)] if phases else {"eval_rows_s": 1e9}
    breakdown["scoring"] = sum(n.get(s, 0) for s in ("validation", "test")) / last["eval_rows_s"]
    breakdown["saving"] = resave_s(cal)
    return breakdown, decoded


def _peak_memory_mb(plan: RunPlan, cal: dict, passes: list, decoded: set[str]) -> float:
    """The process after building the base, the decoded splits, and the arrays held while training
    (views/features in float16: 2 bytes, and their tensor copy)."""
    n = plan.sizes
    feat_mb = sum(n[p.split] * math.prod(cal["shapes"][c]) * 2 / 2**20 for p, _ in passes for c in p.cuts)
    pixels_mb = sum(n[s] * plan.image_size * plan.image_size * 3 for s in decoded) / 2**20
    return cal["rss_mb"] + pixels_mb + 2 * feat_mb
