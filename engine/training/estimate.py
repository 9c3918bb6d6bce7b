"""Cost before you click: a run's wall time and peak memory on this machine, and what the feature cache saves.

From a short calibration measured once per (backbone, width, image size, precision, machine)
and stored beside the feature cache (`calibration.json`): the frozen base's forward rate
on plain and augmented batches, its one-time tracing, the time to save the full model and
the process's peak memory; and once per head (cut, pooling, units, batch, optimizer,
classes) a training step and an evaluation rate on random features. Nothing is trained.
The calibration runs the engine's own pieces (RunContext.pixels_to_features, new_stage,
compile), with random weights: speed does not depend on their values.

Which cached features and views a run would reuse is decided from the same cache keys the
run builds (RunContext._key_parts), file content included, without computing anything.
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
from types import SimpleNamespace

import numpy as np

from engine.models import backbones
from engine.config import AugmentationConfig, BackboneConfig, RunConfig, validate
from engine.errors import StudioError
from engine.training.features import FeatureCache, feature_key

CALIBRATION_FILE = "calibration.json"
CAL_BATCH = 32  # = approaches.common.EXTRACT_BATCH: images per forward pass when caching features
CAL_BATCHES = 4  # timed forward batches after the traced first one
CAL_STEPS = 20  # timed head training steps
EPOCH_OVERHEAD_S = 0.05  # per epoch: our callback's JSON writes, progress, heartbeat (measured ~20-60 ms)
CHECKPOINTS_PER_PHASE = 4  # epochs that lower val_loss and are saved (measured 2-5 per lecture phase)
PROCESS_MB = 450  # Python + TensorFlow before any model (RSS of an idle `python -m engine run`)


class CalibrationMissing(StudioError):
    """No stored calibration for this setup and calibrating was not allowed."""


def _machine() -> str:
    return f"{platform.node()}|{os.cpu_count()}"


def _calibration_path(cache_dir) -> Path:
    return FeatureCache(cache_dir).root / CALIBRATION_FILE


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
    return f"{b.name}|{b.alpha if b.name == 'mobilenet' else 1.0}|{image_size}|{precision}|{_machine()}"


def head_key(cfg: RunConfig, cut: str, num_classes: int) -> str:
    h, f = cfg.head, cfg.fit
    return f"{cut or 'output'}|{h.pooling}|{h.dense_units}|{h.dropout > 0}|{f.batch_size}|{f.optimizer}|{num_classes}"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _context(cfg: RunConfig, base, image_size: int, num_classes: int, n_train: int, precision: str):
    """A RunContext around `base` with just what its model-building methods read (no dataset, no store)."""
    from engine.training.approaches.common import RunContext
    from engine.training.fit import never_stop, no_progress

    data = SimpleNamespace(classes=[str(i) for i in range(num_classes)],
                           splits={"train": SimpleNamespace(labels=np.zeros(n_train, dtype=np.int64))})
    return RunContext(cfg, data, base, image_size, None, None, None, no_progress, never_stop, precision=precision)


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

    ctx = _context(cfg, base, image_size, 2, 100, precision)
    cut = ctx.fine_tune_cut()
    pixels = np.random.default_rng(0).integers(0, 256, (CAL_BATCH, image_size, image_size, 3), dtype=np.uint8)
    first, ips = _time_forward(ctx.pixels_to_features(("", cut)), pixels)
    aug = build_augmentation(AugmentationConfig(), seed=0)
    first_aug, ips_aug = _time_forward(ctx.pixels_to_features(("", cut), aug), pixels)
    stage = ctx.new_stage("", augmentation=aug)
    with tempfile.TemporaryDirectory() as tmp:
        model = ctx.full_model(stage)
        t = time.perf_counter()  # the first save, one-time costs included, as a run's first checkpoint
        model.save(Path(tmp) / "m.keras")
        save_s = time.perf_counter() - t
    shapes = {"": list(base.output.shape[1:]), cut: list(base.get_layer(cut).output.shape[1:])}
    out = {"build_s": round(build_s, 3), "forward_ips": round(ips, 2), "forward_first_s": round(first, 3),
           "augmented_ips": round(ips_aug, 2), "augmented_first_s": round(first_aug, 3), "save_s": round(save_s, 3),
           "rss_mb": round(_peak_rss_mb(), 1), "shapes": shapes, "measured": time.strftime("%Y-%m-%d %H:%M:%S"), "heads": {}}
    return out


def calibrate_head(cfg: RunConfig, image_size: int, precision: str, cut: str, num_classes: int, base) -> dict:
    """Measures training the top at `cut` (the head, plus the unfrozen block for a fine-tuning cut)."""
    import keras

    from engine.models import modeling

    bs = cfg.fit.batch_size
    n = bs * CAL_STEPS
    ctx = _context(cfg, base, image_size, num_classes, n, precision)
    stage = ctx.new_stage(cut)
    if cut:
        modeling.unfreeze_top(base, stage.split)
    ctx.compile(stage.top, cfg.fit.learning_rate)
    shape = tuple(stage.top.input.shape[1:])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, num_classes, n)
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    stage.top.fit(x, y, batch_size=bs, epochs=3, shuffle=False, verbose=0, callbacks=[Timer()])
    steady = min(times[1:])
    stage.top.predict(x[:100], batch_size=100, verbose=0)
    t = time.perf_counter()
    stage.top.predict(x, batch_size=100, verbose=0)
    eval_rows = n / (time.perf_counter() - t)
    return {"step_s": round(steady / CAL_STEPS, 5), "fit_first_s": round(max(times[0] - steady, 0.0), 3),
            "eval_rows_s": round(eval_rows, 1)}


def calibration(cfg: RunConfig, image_size: int, precision: str, cache_dir, cuts: list[str], num_classes: int,
                calibrate: bool = True) -> dict:
    """The stored calibration for this base and the heads at `cuts`, measuring what is missing (if allowed)."""
    table = _read_calibrations(cache_dir)
    key = base_key(cfg, image_size, precision)
    entry = table.get(key)
    missing = [c for c in cuts if entry is None or head_key(cfg, c, num_classes) not in entry["heads"]]
    if entry is not None and not missing:
        return entry
    if not calibrate:
        raise CalibrationMissing(f"no calibration yet for {key.split('|')[0]} at {image_size} px; run `python -m engine estimate` once")
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
@dataclasses.dataclass
class Pass:
    """One pass of the frozen base over a split (one view), producing the arrays at `cuts`."""

    split: str
    cuts: tuple[str, ...]
    view: str  # "plain" or the augmented view's name
    keys: tuple[str, ...] = ()
    cached: bool = False


def _view_name(cfg: RunConfig, v: int) -> str:
    # As RunContext.views names view v (tests/test_estimate.py checks the keys agree with a real run's cache).
    a = cfg.augmentation
    aug_id = {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name not in ("views",)}
    return f"aug{v}:{cfg.fit.seed}:{feature_key(**aug_id)}"


def planned_passes(cfg: RunConfig, splits: list[str], ft_cut: str, from_run: bool) -> list[Pass]:
    """The frozen-base passes a run makes, in order, as the approaches request them (approaches/*.py)."""
    aug_on = cfg.augmentation.enabled and cfg.approach != "feature_extraction"

    def plain(split: str, cut: str) -> Pass:  # RunContext.features: val/test also keep the fine-tuning cut
        extra = ft_cut if split != "train" else cut
        return Pass(split, (cut,) if extra == cut else (cut, extra), "plain")

    def views(cut: str, extra: str | None) -> list[Pass]:
        cuts = (cut,) if extra is None or extra == cut else (cut, extra)
        return [Pass("train", cuts, _view_name(cfg, v)) for v in range(cfg.augmentation.views)]

    scored = [s for s in ("validation", "test") if s in splits]
    if cfg.approach == "feature_extraction":
        return [plain("train", ""), plain("validation", ""), *[plain(s, "") for s in scored]]
    phase1 = []
    if not (cfg.approach == "fine_tuning" and from_run):
        phase1 = (views("", ft_cut) if aug_on else [plain("train", "")]) + [plain("validation", "")]
    if cfg.approach == "frozen":
        return phase1 + [plain(s, "") for s in scored]
    phase2 = (views(ft_cut, None) if aug_on else [plain("train", ft_cut)]) + [plain("validation", ft_cut)]
    return phase1 + phase2 + [plain(s, ft_cut) for s in scored]


def _with_cache_state(cfg: RunConfig, data, passes: list[Pass], cache_dir, weights_id: str, image_size: int, precision: str) -> None:
    """Fills each pass's keys (built by RunContext._key_parts) and whether the cache holds them; drops
    passes whose arrays an earlier pass of the run made (the run holds those in memory or on disk)."""
    ctx = _context(cfg, None, image_size, len(data.classes), 1, precision)
    ctx.data, ctx.weights_id = data, weights_id
    cache = FeatureCache(cache_dir)
    made: set[str] = set()
    kept = []
    for p in passes:
        p.keys = tuple(feature_key(**ctx._key_parts(p.split, c, p.view)) for c in p.cuts)
        if all(k in made for k in p.keys):
            continue  # held in memory by this run already (validation features reused for scoring)
        p.cached = all(cache.path(k).exists() for k in p.keys)
        made.update(p.keys)
        kept.append(p)
    passes[:] = kept


def _decode_seconds_per_image(data, image_size: int) -> float:
    """Decodes a few of the dataset's own files (sizes and formats vary by dataset)."""
    from engine.data import datasets

    files = data.splits["train"].files[:16]
    t = time.perf_counter()
    datasets.load_images(files, image_size)
    return (time.perf_counter() - t) / max(len(files), 1)


def estimate_run(cfg: RunConfig, data, cache_dir=None, calibrate: bool = True, runs_dir=None) -> dict:
    """Wall time (s), peak memory (MB) and feature-cache reuse of running `cfg` on `data` here.

    Args:
        data: the PreparedData the run would use (same splits).
        calibrate: measure a missing calibration (tens of seconds, once); if False raise
            CalibrationMissing instead (the CLI's `run` records an estimate only when one is stored).
    Returns a JSON-ready dict: wall_s, startup_s, peak_memory_mb, reuse (all / partial / none),
    passes (per split and view: cached or computed), breakdown (seconds per stage), calibration.
    """
    from engine.models.precision import resolve_precision

    validate(cfg)
    image_size = backbones.image_size_for(cfg.backbone)
    precision = resolve_precision(cfg.compute.precision)
    ft_cut = _context(cfg, None, image_size, 2, 1, precision).fine_tune_cut()
    from_run = cfg.approach == "fine_tuning" and bool(cfg.fine_tune.from_run)
    if from_run:
        from engine.store.runs import RunStore

        weights_id = (RunStore(runs_dir).load(cfg.fine_tune.from_run).config.get("resolved") or {}).get("weights_id", "")
    else:
        try:
            weights_id = backbones.weights_identity(cfg.backbone, cfg.fit.seed)
        except OSError:
            from engine.config import ConfigError

            raise ConfigError(f"backbone.weights: cannot read {cfg.backbone.weights}; give an existing weights file") from None
    num_classes = len(data.classes)
    phases = []  # (cut, epochs)
    if cfg.approach != "fine_tuning" or not from_run:
        phases.append(("", cfg.fit.epochs))
    if cfg.approach == "fine_tuning" and cfg.fine_tune.epochs > 0:
        phases.append((ft_cut, cfg.fine_tune.epochs))
    cal = calibration(cfg, image_size, precision, cache_dir, sorted({c for c, _ in phases}), num_classes, calibrate)
    passes = planned_passes(cfg, list(data.splits), ft_cut, from_run)
    _with_cache_state(cfg, data, passes, cache_dir, weights_id, image_size, precision)

    n = {s: len(sp) for s, sp in data.splits.items()}
    decode_s = _decode_seconds_per_image(data, image_size) if not all(p.cached for p in passes) else 0.0
    breakdown: dict[str, float] = {}
    decoded: set[str] = set()
    traced_plain = False
    for p in passes:
        if p.cached:
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
    bs = cfg.fit.batch_size
    for i, (cut, epochs) in enumerate(phases, start=1):
        h = cal["heads"][head_key(cfg, cut, num_classes)]
        epoch_s = math.ceil(n["train"] / bs) * h["step_s"] + n["validation"] / h["eval_rows_s"] + EPOCH_OVERHEAD_S
        breakdown[f"fit_phase{i}"] = h["fit_first_s"] + epochs * epoch_s + min(epochs, CHECKPOINTS_PER_PHASE) * cal["save_s"]
    last = cal["heads"][head_key(cfg, phases[-1][0], num_classes)] if phases else {"eval_rows_s": 1e9}
    breakdown["scoring"] = sum(n.get(s, 0) for s in ("validation", "test")) / last["eval_rows_s"]
    breakdown["saving"] = cal["save_s"]
    wall = sum(breakdown.values())

    feat_mb = 0.0  # arrays held while training: views/features (float16 where exact: 2 bytes) and their tensor copy
    for p in passes:
        for c in p.cuts:
            feat_mb += n[p.split] * math.prod(cal["shapes"][c]) * 2 / 2**20
    pixels_mb = sum(n[s] * image_size * image_size * 3 for s in decoded) / 2**20
    peak = cal["rss_mb"] + pixels_mb + 2 * feat_mb
    cached = [p.cached for p in passes]
    return {
        "approach": cfg.approach, "backbone": cfg.backbone.name, "image_size": image_size, "precision": precision,
        "wall_s": round(wall, 1), "startup_s": round(cal["build_s"], 1), "peak_memory_mb": round(peak),
        "reuse": "all" if all(cached) else "partial" if any(cached) else "none",
        "passes": [{"split": p.split, "view": p.view, "cuts": [c or "output" for c in p.cuts], "cached": p.cached} for p in passes],
        "breakdown": {k: round(v, 2) for k, v in breakdown.items()},
        "assumes": "every epoch runs (no early stopping); this machine's current load",
        "calibration": {k: cal[k] for k in ("forward_ips", "augmented_ips", "save_s", "measured")},
    }
