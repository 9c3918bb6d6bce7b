"""Sweeps over one or two knobs: which knobs, typed values, the grid, suggestions, and the results read back.

No TensorFlow here: `run --sweep` (engine/cli/train.py) and the approach pages (ui/sweep_view.py)
share this. A knob is named as on the CLI (`learning-rate`, `dropout`, `fine-tune-learning-rate`)
or as its dotted field (`fit.learning_rate`); its values are checked against the knob's own
metadata (engine.config.field_problem), so a sweep can never queue a point that would not train.
Selection is on validation only: the picked point's test accuracy is reported, no other point's,
so the test split stays a score of one choice, not a second validation set.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
import zipfile

import numpy as np

from engine.config import BackboneConfig, ConfigError, RunConfig, field_problem, knobs

MAX_KNOBS = 2  # a heatmap has two axes; more knobs want a search, not a grid
MAX_VALUES = 12  # per knob
MAX_TRIALS = 48  # points x seeds: each is a job; more would occupy the runner for hours

_NOT_SWEPT = {"data", "compute"}  # splits and devices are not hyper-parameters: points would not be comparable
_NOT_SWEPT_FIELDS = {("fit", "seed")}  # seeds are `--seeds N`, averaged within a point
# What each approach trains with (the rest leaves every point the same): the pages offer these.
_HEAD = ("head.pooling", "head.dense_units", "head.dropout")
_FIT = ("fit.learning_rate", "fit.epochs", "fit.batch_size", "fit.optimizer", "fit.early_stopping_patience")
_AUG = (
    "augmentation.views",
    "augmentation.rotation",
    "augmentation.zoom",
    "augmentation.width_shift",
    "augmentation.height_shift",
    "augmentation.horizontal_flip",
    "augmentation.vertical_flip",
)
_RECIPE = ("fit.schedule", "fit.warmup_epochs", "fit.label_smoothing", "fit.weight_decay")  # weight decay: adamw only
RELEVANT = {
    "feature_extraction": _FIT + _HEAD + _RECIPE,
    "frozen": _FIT + _HEAD + _AUG + _RECIPE,
    "fine_tuning": ("fine_tune.learning_rate", "fine_tune.unfreeze_blocks", "fine_tune.epochs", "fine_tune.discriminative_rate")
    + _FIT
    + _HEAD
    + _AUG
    + _RECIPE,
}
_BACKBONE = ("backbone.alpha", "backbone.preprocessing", "backbone.image_size")  # any approach; the base runs per value


def sweepable() -> dict[str, dict]:
    """{dotted field: {"section", "name", "type", "flag", **metadata}} of every knob a sweep may vary."""
    out = {}
    for section, name, type_name, meta in knobs():
        if section in _NOT_SWEPT or (section, name) in _NOT_SWEPT_FIELDS:
            continue
        if type_name not in ("int", "float", "bool") and not meta.get("choices"):
            continue  # free text (weights path, from_run, backbone name) has no range to sweep
        flag = meta.get("flag") or name.replace("_", "-")
        out[f"{section}.{name}"] = {**meta, "section": section, "name": name, "type": type_name, "flag": flag}
    return out


def find_knob(name: str, approach: str, where: str = "--sweep") -> str:
    """The dotted field of `name` (a CLI flag name, with or without dashes, or `section.field`) for `approach`.

    Raises:
        ConfigError: no such sweepable knob, or one `approach` does not use (every point would be the same run).
    """
    table = sweepable()
    bare = name.strip().lstrip("-")
    dotted = bare if bare in table else next((d for d, k in table.items() if k["flag"] == bare), None)
    if dotted is None:
        shown = ", ".join(table[d]["flag"] for d in RELEVANT.get(approach, ()) if d in table)
        raise ConfigError(f"{where} {name}: not a knob a sweep can vary; choose one of {shown}")
    if dotted not in RELEVANT.get(approach, ()) and dotted not in _BACKBONE:
        raise ConfigError(f"{where} {name}: {approach} does not use {dotted}; every point would train the same run")
    return dotted


def parse_value(dotted: str, raw, where: str = "--sweep"):
    """One value of knob `dotted`, typed and checked against its metadata (a string from the CLI, or JSON's value)."""
    k = sweepable()[dotted]
    label = f"{where} {k['flag']}"
    try:
        value = _typed(k, raw)
    except (TypeError, ValueError):
        want = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(k["type"], "one of its choices")
        raise ConfigError(f"{label}: {raw!r} is not {want}") from None
    problem = field_problem(value, k)
    if problem:
        raise ConfigError(f"{label}: {problem}")
    return value


def _typed(k: dict, raw):
    if k["type"] == "bool":
        if isinstance(raw, bool):
            return raw
        words = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
        return words[str(raw).strip().lower()] if str(raw).strip().lower() in words else int("not a bool")
    if k["type"] == "int":
        number = float(raw) if not isinstance(raw, bool) else float("nan")
        if not number.is_integer() or abs(number) > 2**53:  # 1e300 is no count of anything: refused as typed
            raise ValueError(raw)
        return int(number)
    if k["type"] == "float":
        if isinstance(raw, bool):
            raise TypeError(raw)
        return float(raw)
    return str(raw).strip()


def parse_sweep(spec: str, approach: str) -> tuple[str, list]:
    """`KNOB=V1,V2,...` as (dotted field, typed values); ConfigError naming --sweep and what to do."""
    name, sep, values = spec.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ConfigError(f"--sweep {spec}: write KNOB=V1,V2,... (e.g. --sweep learning-rate=1e-4,1e-3)")
    dotted = find_knob(name, approach)
    parsed = [parse_value(dotted, v) for v in values.split(",") if v.strip()]
    flag = sweepable()[dotted]["flag"]
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"--sweep {flag}: a value is given twice; give each value once")
    if not 1 <= len(parsed) <= MAX_VALUES:
        raise ConfigError(f"--sweep {flag}: give 1 to {MAX_VALUES} values, got {len(parsed)}")
    return dotted, parsed


def grid(axes: list[tuple[str, list]], seeds: int = 1) -> list[dict]:
    """Every point {dotted: value} of the cartesian product, the first knob outermost; checks the sweep's size.

    Raises:
        ConfigError: more than MAX_KNOBS knobs, one given twice, or more than MAX_TRIALS points x seeds.
    """
    names = [d for d, _ in axes]
    if not 1 <= len(names) <= MAX_KNOBS:
        raise ConfigError(f"--sweep: vary 1 or {MAX_KNOBS} knobs, got {len(names)} (a heatmap has two axes)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--sweep {sweepable()[names[0]]['flag']}: given twice; give its values in one --sweep")
    points = [dict(zip(names, combo)) for combo in itertools.product(*(values for _, values in axes))]
    if len(points) * seeds > MAX_TRIALS:
        raise ConfigError(
            f"--sweep: {len(points)} points x {seeds} seed(s) = {len(points) * seeds} runs, more than "
            f"{MAX_TRIALS}; give fewer values or seeds"
        )
    return points


def apply_point(cfg: RunConfig, point: dict) -> RunConfig:
    """A copy of `cfg` with the point's values set (a rate the sweep gives is trained at, never a finder's)."""
    out = RunConfig.from_dict(cfg.to_dict())
    for dotted, value in point.items():
        section, name = dotted.split(".")
        setattr(getattr(out, section), name, value)
    if "fit.learning_rate" in point:
        out.fit.find_learning_rate = False
    return out


def new_group_id(approach: str) -> str:
    """A sweep's group id: the second it started and a random suffix (two sweeps started in one second stay apart)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}-sweep-{approach}"


# --- what a point would fail on, known before any point trains ------------------------------------
def check_point(cfg: RunConfig) -> None:
    """Raises the StudioError a point's run would fail on before training, checked without training or building a
    model: the config's own checks, the backbone's image-size limit, and the weights for this backbone, width and
    size (engine/models/backbones.py): a local file that exists, is a weights file and fits the width (its shapes
    read from the file), or ImageNet weights that exist for this width and are in Keras' cache or downloadable."""
    from engine.config import validate
    from engine.models import backbones

    validate(cfg)
    size = backbones.image_size_for(cfg.backbone)  # the size limit is per backbone
    weights = backbones.resolve_weights(cfg.backbone)  # an empty path, a missing file
    if weights == "imagenet":
        _check_imagenet(cfg.backbone, size)
    elif weights is not None:
        problem = weights_file_problem(cfg.backbone, weights)
        if problem:
            raise backbones.WeightsUnavailable(problem)


def _check_imagenet(b: BackboneConfig, size: int) -> None:
    from engine.models import backbones

    spec = backbones.get_spec(b.name)
    published = backbones.IDENTIFY_ALPHAS.get(b.name, ()) if spec.has_alpha else ()  # the widths Keras has ImageNet files for
    if published and not any(math.isclose(b.alpha, a) for a in published):
        shown = ", ".join(f"{a:g}" for a in sorted(published))
        raise ConfigError(
            f"backbone.alpha: ImageNet weights of {spec.title} exist for alpha {shown} only, not {b.alpha:g}; "
            "choose one of those, a weights file or 'none'"
        )
    if backbones.cached_imagenet_weights(b, size) is None and not backbones.download_host_reachable():
        offline = OSError(f"{backbones.DOWNLOAD_HOST[0]} does not answer and the file is not in Keras' cache")
        raise backbones.WeightsUnavailable(backbones._offline_message(b, size, offline))


def _width_signature(name: str, alpha: float) -> tuple | None:
    """The row's kernel shapes that tell its widths apart (backbones.BackboneSpec.width_kernels); None without widths."""
    from engine.models import backbones

    kernels = backbones.get_spec(name).width_kernels
    return kernels(alpha) if kernels else None


def weights_file_problem(b: BackboneConfig, path: str) -> str:
    """Why Keras would not load the weights file `path` into backbone `b` ('' when it may): not an HDF5 file, or
    (MobileNets) the shapes of another width. Reads only the file's array shapes; builds no model. A file whose
    shapes it cannot place is left to Keras (a wrong refusal would be worse than a late one)."""
    import h5py

    from engine.models import backbones

    spec = backbones.get_spec(b.name)
    if zipfile.is_zipfile(path):
        return ""  # a whole `.keras` file: Keras loads its weights too, and says itself when they do not fit
    if not h5py.is_hdf5(path):
        return (
            f"could not load weights file {path}: it is not a Keras weights file (.weights.h5/.h5); "
            f"give a file saved from {spec.title} without its top, 'imagenet' or 'none'"
        )
    wanted = _width_signature(b.name, b.alpha)
    if wanted is None:
        return ""
    kernels: set[tuple] = set()
    try:
        with h5py.File(path, "r") as fh:
            fh.visititems(lambda _, obj: kernels.add(tuple(int(n) for n in obj.shape)) if getattr(obj, "ndim", 0) == 4 else None)
    except (OSError, RuntimeError, ValueError):
        return ""  # Keras' own load says what is wrong
    if not any(k[:3] == (3, 3, 3) for k in kernels) or set(wanted) <= kernels:
        return ""  # no conv stem to judge by, or both shapes of this width are there
    fits = [a for a in backbones.IDENTIFY_ALPHAS.get(b.name, ()) if set(_width_signature(b.name, a)) <= kernels]
    net = spec.title.split(" (")[0]
    holds = f"it holds {net} weights of alpha {fits[0]:g}" if fits else "its shapes are of another network or width"
    return (
        f"weights file {path} does not fit {net} with alpha {b.alpha:g}: {holds}; "
        f"give a file saved from {net} at alpha {b.alpha:g} without its top, 'imagenet' or 'none'"
    )


def parse_point(text: str, approach: str) -> dict:
    """--sweep-point's JSON object {dotted or flag: value}, typed and checked, with dotted keys."""
    import json

    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--sweep-point: not valid JSON ({exc.msg}); give an object like '{{\"fit.learning_rate\": 0.001}}'"
        ) from None
    if not isinstance(raw, dict) or not 1 <= len(raw) <= MAX_KNOBS:
        raise ConfigError(f"--sweep-point: give a JSON object of 1 or {MAX_KNOBS} knobs and their values")
    point = {}
    for name, value in raw.items():
        dotted = find_knob(str(name), approach, "--sweep-point")
        point[dotted] = parse_value(dotted, value, "--sweep-point")
    return point


def suggest(dotted: str, current, n: int = 3) -> list:
    """Values to try for a knob: log-spaced around the current rate, all choices, else spread in its range around `current`."""
    k = sweepable()[dotted]
    if k.get("choices"):
        return list(k["choices"])
    if k["type"] == "bool":
        return [False, True]
    lo, hi = k.get("min"), k.get("max")
    if (
        dotted.endswith("learning_rate") or dotted == "fit.weight_decay"
    ):  # rates and decays matter by their order of magnitude: x10 steps
        values = [_nice(float(current) * 10.0**j) for j in _outward(n)]
    elif k["type"] == "int" and lo is not None and hi is not None and hi - lo + 1 <= max(n, 5):
        values = list(range(int(lo), int(hi) + 1))  # a small range (unfrozen blocks): every value
    elif k["type"] == "int":  # widths, epochs, views: halve and double (from 1 when the current value is 0)
        values = [int(round(max(float(current), 1.0) * 2**e)) for e in np.linspace(-1, 1, n)]
    else:  # fractions and degrees: steps of a fifth of the range, the current value first, then either side
        span = (hi - lo) if lo is not None and hi is not None else abs(float(current)) or 1.0
        d = _nice(0.2 * span)
        values = [round(float(current) + d * j, 6) for j in _outward(n)]
    kept = []
    for v in values:
        if not field_problem(v, k) and v not in kept and len(kept) < n:
            kept.append(v)
    return sorted(kept) if not k.get("choices") else kept


def _outward(n: int) -> list[int]:
    """0, -1, 1, -2, 2, ...: steps from the current value, enough to find `n` in range near a limit."""
    return [(i + 1) // 2 * (-1) ** i for i in range(4 * n)]


def _nice(x: float) -> float:
    """`x` to one significant digit (1e-4, 3e-4, 0.2): values a person would type."""
    if x == 0:
        return 0.0
    return float(f"{x:.1g}")


def format_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def point_label(point: dict) -> str:
    """`learning-rate=0.001, dropout=0.2`: a point as the CLI's --sweep would name it."""
    table = sweepable()
    return ", ".join(f"{table[d]['flag'] if d in table else d}={format_value(v)}" for d, v in point.items())


# --- results: the runs of a sweep read back ----------------------------------------------------
def sweep_groups(records) -> list[dict]:
    """One entry per sweep group among `records` (RunRecord): group, approach, dataset_root, knobs, runs; newest first."""
    groups: dict[str, dict] = {}
    for r in records:
        if not r.sweep_group:
            continue
        g = groups.setdefault(
            r.sweep_group,
            {
                "group": r.sweep_group,
                "approach": r.approach,
                "dataset_root": r.dataset_root,
                "knobs": list(r.sweep_point),
                "runs": 0,
                "newest": "",
            },
        )
        g["runs"] += 1
        g["newest"] = max(g["newest"], r.id)
    return sorted(groups.values(), key=lambda g: g["newest"], reverse=True)


def _axis_order(dotted: str, values: list) -> list:
    k = sweepable().get(dotted, {})
    if k.get("choices"):
        return [c for c in k["choices"] if c in values]
    try:
        return sorted(set(values))
    except TypeError:  # a hand-edited record mixing text and numbers: the order seen
        return list(dict.fromkeys(values))


def summarize(records, group: str) -> dict:
    """The sweep `group` among `records`: its axes, every trial, each point's validation mean ± std, the best point.

    Returns {"group", "approach", "knobs", "axes" {dotted: ordered values}, "trials" [one per run: run_id, seed,
    state, point, val_accuracy], "points" [point, label, run_ids, values, n, mean, std; grid order], "best" (index
    into points or None), "picked_test_accuracy" (mean test accuracy of the best point's runs; None without a test
    split), "picked_test_n"}. Points are ranked by mean validation accuracy (a lower std breaks a tie, then grid
    order); no other point's test accuracy is read.
    """
    runs = [r for r in records if r.sweep_group == group]
    if not runs:
        raise ConfigError(f"sweep {group}: no runs recorded with this sweep group")
    knobs_ = list(runs[0].sweep_point)
    runs = [r for r in runs if set(r.sweep_point) == set(knobs_)]  # a hand-edited point of other knobs has no cell
    axes = {d: _axis_order(d, [r.sweep_point.get(d) for r in runs if d in r.sweep_point]) for d in knobs_}
    points: dict[tuple, dict] = {}
    trials = []
    for r in sorted(runs, key=lambda r: r.id):
        point = {d: r.sweep_point.get(d) for d in knobs_}
        val = r.accuracy("validation") if r.state == "finished" else None
        val = val if isinstance(val, (int, float)) and math.isfinite(val) else None  # the JSON stays finite
        trials.append({"run_id": r.id, "seed": r.seed, "state": r.state, "point": point, "val_accuracy": val})
        p = points.setdefault(tuple(point.items()), {"point": point, "label": point_label(point), "run_ids": [], "values": []})
        p["run_ids"].append(r.id)
        if val is not None:
            p["values"].append(float(val))
    ordered = sorted(points.values(), key=lambda p: [axes[d].index(p["point"][d]) for d in knobs_])
    for p in ordered:
        v = np.asarray(p["values"])
        p["n"] = len(v)
        p["mean"] = float(v.mean()) if len(v) else None
        p["std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    scored = [i for i, p in enumerate(ordered) if p["n"]]
    best = max(scored, key=lambda i: (ordered[i]["mean"], -ordered[i]["std"], -i)) if scored else None
    tests = (
        []
        if best is None
        else [t for t in (_test_accuracy(r) for r in runs if r.id in ordered[best]["run_ids"]) if t is not None]
    )
    return {
        "group": group,
        "approach": runs[0].approach,
        "knobs": knobs_,
        "axes": axes,
        "trials": trials,
        "points": ordered,
        "best": best,
        "picked_test_accuracy": float(np.mean(tests)) if tests else None,
        "picked_test_n": len(tests),
    }


def _test_accuracy(r) -> float | None:
    return r.accuracy("test") if r.state == "finished" else None


def summary_lines(summary: dict) -> list[str]:
    """The sweep as text lines (the CLI prints them): one per point, the best marked, the picked test accuracy labelled."""
    lines = [f"sweep {summary['group']} ({summary['approach']}): validation accuracy, mean ± std over seeds"]
    for i, p in enumerate(summary["points"]):
        shown = "n/a" if p["mean"] is None else f"{p['mean']:.4f} ± {p['std']:.4f} (n={p['n']})"
        lines.append(f"{'*' if i == summary['best'] else ' '} {p['label']:<40} {shown}")
    if summary["best"] is None:
        lines.append("no point finished: nothing to pick")
        return lines
    best = summary["points"][summary["best"]]
    test = summary["picked_test_accuracy"]
    lines.append(
        f"best on validation: {best['label']} ({best['mean']:.4f}); test accuracy of the picked point (scored once): "
        + ("n/a (no test split)" if test is None else f"{test:.4f}")
    )
    return lines
