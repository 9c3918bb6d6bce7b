"""A run's parts in the order it does them, each with a first-guess duration: what the whole-run ETA re-times.

From the plan (plan.py): the feature passes the cache lacks (each augmented view its own part), the
finder's ramp, the validation pass, each epoch of each phase, the test pass, scoring and saving. The
first guess of each is this machine's stored calibration (estimate.py: forward rates and tracing of
the base, a head's step and evaluation rates, the save time, decoding per image); without one, the
backbone row's measured speed and the rough constants below. The run's clock
(engine/store/run_clock.py) then re-times the rest by what the run itself measured.
"""

from __future__ import annotations

import math

from engine.errors import StudioError
from engine.models import backbones
from engine.store.run_clock import Part
from engine.training.features import FeatureCache
from engine.training.plan import Pass, RunPlan

# Without a stored calibration: first guesses, corrected as soon as the run has measured a part. From a
# calibration of mobilenet_v2 at 96 px (2-core CPU): passes traced their function for 0.8-0.9 s before their first
# batch, augmented passes ran 1.33x slower than plain ones, decoding took 0.8 ms an image, the first save 0.6 s and
# the next ones 0.4 s, making a training stream 230 MB/s. (Earlier guesses of 2-3 s tracing, 2x for augmenting and
# 1 s a save said +111 % on the sample's first run.)
FALLBACK_BASE = {
    "build_s": 5.0,
    "forward_first_s": 0.8,
    "augmented_first_s": 1.0,
    "save_s": 0.6,
    "resave_s": 0.45,
    "stream_bytes_s": 2.3e8,
}
FALLBACK_HEAD = {"step_s": 0.02, "fit_first_s": 2.5, "eval_rows_s": 1000.0}  # a fine-tuning cut's (the block's cost unknown)
# The head alone (dense layers on the cached features), without a calibration: its arithmetic at this rate. Measured
# here (mobilenet_v2 96 px, flatten 11520 -> 256, batch 20): 0.0045 s a step, 79 GFLOP/s; 1000 validation rows 0.09 s.
HEAD_FLOPS_S = 8e10  # multiply-adds x 2 per second, forward and backward alike
HEAD_STEP_OVERHEAD_S = 0.001  # per step: Keras' own work around the arithmetic
HEAD_PASS_OVERHEAD_S = 0.05  # per validation pass in fit
SCORING_PASS_OVERHEAD_S = 0.25  # per scoring pass (predict): 0.36 s for 1000 rows where the arithmetic is 0.07
FALLBACK_DECODE_S = 0.001  # seconds per image
AUGMENTED_SLOWDOWN = 1.33  # augmented passes against plain ones, without a calibration
FINDER_STEPS = 100  # the finder's ramp, about (lr_range's default)


def planned_parts(
    plan: RunPlan, data, cache: FeatureCache, runs_dir=None, epochs_before: int = 0, shape_of=None
) -> tuple[list[Part], float]:
    """(the run's parts in order with their first-guess seconds, the first guess of building the base).

    `shape_of` (cut -> one image's feature shape, the built base's) sizes the head's work when no calibration is stored.
    """
    from engine.training.estimate import epoch_seconds, resave_s

    cal, decode_s = _calibration(plan, data, cache, runs_dir)
    if shape_of is not None and "shapes" not in cal:
        cal = {**cal, "shapes": {c: list(shape_of(c)) for c in {"", plan.fine_tune_cut}}}
    cfg, n = plan.cfg, plan.sizes
    parts: list[Part] = []
    seen: set[str] = set()
    decoded: set[str] = set()
    traced = {"plain": False}

    def add_pass(p: Pass, label: str) -> None:
        keys = set(p.keys.values())
        if keys <= seen or all(cache.path(k).exists() for k in keys):
            seen.update(keys)
            return  # made earlier in this run or found in the cache: costs nothing
        seen.update(keys)
        setup = 0.0 if p.split in decoded else n[p.split] * decode_s  # decoded before its first batch
        decoded.add(p.split)
        if p.view == "plain":
            setup += 0.0 if traced["plain"] else cal["forward_first_s"]
            traced["plain"] = True
            body = n[p.split] / cal["forward_ips"]
        else:  # each view traces its own augmentation function
            setup += cal["augmented_first_s"]
            body = n[p.split] / cal["augmented_ips"]
        parts.append(Part(f"pass:{label}", "plain" if p.view == "plain" else "view", round(body, 3), round(setup, 3)))

    epoch = epochs_before
    last_cut = ""
    for phase, cut, epochs in plan.phases():
        head = _head(cal, cfg, cut, len(data.classes), plan.sizes["validation"])
        stream_s = _stream_s(plan, cal, cut, phase)
        for label, p in _training_passes(plan, phase):
            add_pass(p, label)
        if phase == 1 and cfg.fit.find_learning_rate:
            parts.append(Part("finder", "finder", round(head["fit_first_s"] + FINDER_STEPS * head["step_s"], 3)))
        add_pass(plan.plain("validation", cut), "validation")
        epoch_s = epoch_seconds(cfg, n, head)
        for i in range(epochs):
            epoch += 1  # the first traces the train step before its first batch: its setup. Saves: run_clock.py, SAVE
            save = cal["save_s"] if epoch == 1 else resave_s(cal)  # the run's first save pays one-off costs
            setup = head["fit_first_s"] + stream_s if i == 0 else 0.0  # the first makes the stream and traces the step
            parts.append(Part(f"epoch:{epoch}", f"epoch{phase}", round(epoch_s, 3), round(setup, 3), save))
        last_cut = cut
    if "test" in n:
        add_pass(plan.plain("test", last_cut), "test")
    last = _head(cal, cfg, last_cut, len(data.classes), plan.sizes["validation"])
    parts.append(Part("scoring", "scoring", round(sum(n.get(s, 0) for s in ("validation", "test")) / last["eval_rows_s"], 3)))
    parts.append(Part("saving", "saving", resave_s(cal)))
    return parts, cal["build_s"]


def _stream_s(plan: RunPlan, cal: dict, cut: str, phase: int) -> float:
    """Seconds to make a phase's training stream: its views (float16 in the cache) made tensors."""
    shape = cal.get("shapes", {}).get(cut)
    if not shape or "stream_bytes_s" not in cal:
        return 0.0  # a calibration stored before this was measured: fit_first_s alone
    views = len(_training_passes(plan, phase))
    return plan.sizes["train"] * math.prod(shape) * 2 * views / cal["stream_bytes_s"]


def _training_passes(plan: RunPlan, phase: int) -> list[tuple[str, Pass]]:
    """(event label, pass) of what a phase trains on, as context.py names them in its progress events."""
    if plan.cfg.approach == "feature_extraction":
        return [("train", plan.plain("train", ""))]
    passes = (
        plan.training_passes("", plan.fine_tune_cut if plan.augmented else None)
        if phase == 1
        else plan.training_passes(plan.fine_tune_cut)
    )
    if not plan.augmented:
        return [("train", passes[0])]
    return [(f"train view {v + 1}/{len(passes)}", p) for v, p in enumerate(passes)]


def _calibration(plan: RunPlan, data, cache: FeatureCache, runs_dir) -> tuple[dict, float]:
    """(this machine's stored calibration, or the first guesses above; seconds to decode an image)."""
    from engine.training.estimate import calibration, estimate_run

    cfg = plan.cfg
    try:
        cal = calibration(cfg, plan.image_size, plan.precision, cache.root, [], len(data.classes), calibrate=False)
    except StudioError:  # nothing stored for this setup: the row's speed and rough constants
        spec = backbones.get_spec(cfg.backbone.name)
        ips = max(spec.cpu_images_per_s, 1.0) * (spec.default_size / plan.image_size) ** 2
        return {**FALLBACK_BASE, "forward_ips": ips, "augmented_ips": ips / AUGMENTED_SLOWDOWN, "heads": {}}, FALLBACK_DECODE_S
    try:  # decoding is measured per dataset: the estimate's decode seconds over the images it decodes
        breakdown = estimate_run(cfg, data, cache.root, calibrate=False, runs_dir=runs_dir)["breakdown"]
    except StudioError:  # e.g. a head not measured yet
        return cal, FALLBACK_DECODE_S
    decoded = {p.split for p in plan.passes() if not all(cache.path(k).exists() for k in p.keys.values())}
    images = sum(plan.sizes[s] for s in decoded)
    return cal, breakdown.get("decode", 0.0) / images if images else FALLBACK_DECODE_S


def _head(cal: dict, cfg, cut: str, num_classes: int, val_rows: int) -> dict:
    """The calibration of the head training at `cut`, else the head's arithmetic (without a fine-tuning cut), else
    the first guesses. The flat constants put the sample's epoch at 3 s where it took 0.55."""
    from engine.training.estimate import head_key

    stored = cal.get("heads", {}).get(head_key(cfg, cut, num_classes))
    shape = cal.get("shapes", {}).get("")
    if stored or cut or not shape:
        return stored or FALLBACK_HEAD
    inputs = math.prod(shape) if cfg.head.pooling == "flatten" else shape[-1]
    units = cfg.head.dense_units
    flops = 2 * (inputs * units + units * num_classes if units else inputs * num_classes)  # one row, forward
    return {
        "step_s": HEAD_STEP_OVERHEAD_S + 3 * flops * cfg.fit.batch_size / HEAD_FLOPS_S,  # forward, backward: 3x
        "fit_first_s": 1.0,
        "eval_rows_s": 1.0 / (flops / HEAD_FLOPS_S + SCORING_PASS_OVERHEAD_S / max(val_rows, 1)),
        "val_rows_s": 1.0 / (flops / HEAD_FLOPS_S + HEAD_PASS_OVERHEAD_S / max(val_rows, 1)),
    }
