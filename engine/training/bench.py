"""`python -m engine bench`: the lecture's pipeline against ours against the raw forward pass, as JSON.

Speed and memory targets live here, not in timed tests. Everything runs in one process
on the same data, so the ratios are fair on a noisy machine:

1. **raw** — the backbone's compiled forward pass on a preloaded batch: the ceiling.
2. **lecture** — `engine.lecture`: ImageDataGenerator, `predict` per batch, `fit` on the
   augmenting generator with the base inside, then the top block unfrozen.
3. **ours** — the engine's own approaches, run as users run them (feature extraction, a
   frozen run, fine-tuning continued from it), with their per-stage timings.

Epoch times are measured on a subset (`--quick`: a few batches; otherwise the whole
dataset) and scaled to the dataset's size. `protocol_s` is the lecture's protocol —
feature extraction 30 epochs, frozen + augmentation 20, fine-tuning 30 + 30 — priced from
the measured rates and the documented image passes: for the lecture every epoch re-runs
the base on every image; for ours the base runs once per image and augmented view
(K views), then epochs only run the trainable part, and fine-tuning's phase 1 is the
frozen run (`run --approach all`).

`peak_rss_mb` is the whole process's peak resident memory; `ours.peak_rss_mb` is that of
the engine's runs alone (the lecture's head holds its feature arrays in RAM). With
`--in-memory-mb` ours holds or streams each split as `run` would (docs/data.md, "Datasets
larger than memory").
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass

from engine.config import dumps, knob

LECTURE_EPOCHS = {"feature_extraction": 30, "frozen": 20, "fine_tuning_phase1": 30, "fine_tuning_phase2": 30}
MEASURED_EPOCHS = 5  # ours, per phase: the first traces, the median of the other 4 is the epoch time
HEAD_EPOCH_IMAGES = (2000, 1000)  # train, validation: the most the lecture's head epoch is timed on (then scaled)


@dataclass
class BenchSettings:
    """The benchmark's numbers; its flags are made from these knobs (engine/cli/flags.add_settings_flags)."""

    image_size: int = knob(0, "square input side; 0 = the backbone's default", min=0, max=1024, integer=True, metavar="PX")
    views: int = knob(0, "K augmented views for ours; 0 = the product's default", min=0, max=100, integer=True, metavar="K")
    raw_seconds: float | None = knob(
        None,
        "how long the raw forward pass is timed (6 with --quick, else 20; at least 64 images either way)",
        min=0.05,
        max=3600.0,
        metavar="S",
    )
    in_memory_mb: int | None = knob(
        None,
        "ours: hold a split's decoded pixels in RAM up to MB, stream larger ones (unset: the product's)",
        min=0,
        max=10_000_000,
        integer=True,
        metavar="MB",
    )


def add_bench_arguments(p) -> None:
    """The benchmark's own flags; its numbers (`BenchSettings`) and `--json FILE` are added by the CLI's parser."""
    p.add_argument("--data", default="sample", help="dataset folder (split layout: train/ and validation/), or 'sample'")
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--weights", default="none", help="imagenet | none | PATH (speed does not depend on the values)")
    p.add_argument("--quick", action="store_true", help="time a few batches of each stage and extrapolate (< 5 min)")
    p.add_argument(
        "--backbones",
        metavar="all|NAME,NAME",
        default="",
        help="instead: time every (or the named) backbone's forward pass at its default size, random weights "
        "(docs/results.md's table; --raw-seconds per backbone)",
    )


def _peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB (since the last `_reset_peak_rss`, where that works)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak_rss() -> bool:
    """Restarts the peak from the current resident memory (Linux: /proc/self/clear_refs), so the
    next peak is of what runs from now on. False where the system does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def raw_seconds(args) -> float:
    """The raw forward pass's timing window: --raw-seconds, else 6 s with --quick and 20 s without."""
    if args.raw_seconds is not None:
        return args.raw_seconds
    return 6.0 if args.quick else 20.0


def subset(data, train_per_class: int, val_per_class: int):
    """The first files of each class in train and validation (no test): a smaller PreparedData."""
    import numpy as np

    from engine.data.splits import Split
    from engine.training.prepared import PreparedData

    splits = {}
    for name, per in (("train", train_per_class), ("validation", val_per_class)):
        sp = data.splits[name]
        keep = [i for c in range(len(data.classes)) for i in np.flatnonzero(sp.labels == c)[:per]]
        splits[name] = Split([sp.files[i] for i in keep], sp.labels[keep])
    return PreparedData(data.report, splits)


def steady_epoch_seconds(history: dict, phase: int) -> float:
    """The median epoch time of a phase, its first epoch (which traces the step) left out.

    The median, like the lecture's per-step median (engine/training/lecture.py): one epoch slowed by
    another tenant of a shared machine must not move the extrapolated protocol.
    """
    import numpy as np

    seconds = [s for s, p in zip(history["epoch_seconds"], history["phase"]) if p == phase]
    return float(np.median(seconds[1:] or seconds))


def measure_ours(data, args, views: int, tmp: str) -> dict:
    """Runs the three approaches on `data` as a user would and reads their per-stage timings."""
    import keras

    from engine.config import default_config
    from engine.training.approaches import RUNNERS

    n_train, n_val = len(data.splits["train"]), len(data.splits["validation"])

    def cfg_for(approach):
        cfg = default_config(approach)
        cfg.data.path = data.report.root
        cfg.backbone.name, cfg.backbone.weights, cfg.backbone.image_size = args.backbone, args.weights, args.image_size
        cfg.fit.epochs, cfg.fine_tune.epochs, cfg.augmentation.views = MEASURED_EPOCHS, MEASURED_EPOCHS, views
        if args.in_memory_mb is not None:
            cfg.compute.in_memory_mb = args.in_memory_mb
        return cfg

    store = dict(runs_dir=f"{tmp}/runs", cache_dir=f"{tmp}/cache")
    out: dict = {"views": views, "measured_on": {"train": n_train, "validation": n_val}}
    keras.backend.clear_session()
    fe = RUNNERS["feature_extraction"](cfg_for("feature_extraction"), data, **store)
    t = fe.metrics["timings"]
    # Decode + base per image, in steady state like the raw forward rate: only the one-time
    # tracing (what the first batch took beyond a steady batch) is left out.
    seconds = 0.0
    for split, n in (("train", n_train), ("validation", n_val)):
        first, total, decode = t[f"features_{split}_first_batch"], t[f"features_{split}"], t[f"decode_{split}"]
        steady_batch = (total - decode - first["seconds"]) / max(n - first["images"], 1) * first["images"]
        seconds += total - max(first["seconds"] - steady_batch, 0.0)
    out["fe_images_per_s"] = (n_train + n_val) / seconds
    out["fe_images_per_s_with_tracing"] = (n_train + n_val) / (t["features_train"] + t["features_validation"])
    out["fe_epoch_s_measured"] = steady_epoch_seconds(fe.history, phase=1)
    out["data_path"] = fe.metrics["data_path"]  # in memory or streamed, per split (compute.in_memory_mb)
    _log(f"ours: feature extraction {out['fe_images_per_s']:.1f} images/s")
    keras.backend.clear_session()
    fr = RUNNERS["frozen"](cfg_for("frozen"), data, **store)
    t = fr.metrics["timings"]
    out["view_images_per_s"] = views * n_train / t["views"]  # tracing included: once per view, amortised over N images
    out["frozen_epoch_s_measured"] = steady_epoch_seconds(fr.history, phase=1)
    _log(f"ours: augmented views {out['view_images_per_s']:.1f} images/s")
    keras.backend.clear_session()
    ft_cfg = cfg_for("fine_tuning")
    ft_cfg.fine_tune.from_run = fr.id
    ft = RUNNERS["fine_tuning"](ft_cfg, data, **store)
    out["finetune_epoch_s_measured"] = steady_epoch_seconds(ft.history, phase=2)
    out["fine_tuning_cache"] = ft.metrics["feature_cache"]
    _log(f"ours: fine-tuning epoch {out['finetune_epoch_s_measured']:.2f}s on {n_train} images")
    return out


def cmd_bench(args) -> int:
    import keras

    from engine.config import BackboneConfig, default_config
    from engine.data.layout import DatasetError
    from engine.data.sample import resolve_data_path
    from engine.models.backbones import build_base, get_spec, image_size_for
    from engine.training import lecture
    from engine.training.approaches import prepare_data
    from engine.training.bench_backbones import run_backbone_bench

    if args.backbones:
        return _report(args, run_backbone_bench(args.backbones, raw_seconds(args)))
    started = time.perf_counter()
    load_before = os.getloadavg()
    path = resolve_data_path(args.data)
    data = prepare_data(path)
    if data.report.layout != "split":
        raise DatasetError(f"{path}: the benchmark needs the lecture's split layout (train/ and validation/ with class folders)")
    views = args.views or default_config("frozen").augmentation.views
    backbone_cfg = BackboneConfig(name=args.backbone, weights=args.weights, image_size=args.image_size)
    size = image_size_for(backbone_cfg)
    n_train, n_val = len(data.splits["train"]), len(data.splits["validation"])
    root = data.report.root
    out: dict = {
        "data": path,
        "backbone": args.backbone,
        "weights": args.weights,
        "image_size": size,
        "quick": args.quick,
        "train_images": n_train,
        "val_images": n_val,
        "views": views,
    }
    spec = get_spec(args.backbone)

    # 1. raw forward pass
    base = build_base(backbone_cfg, size)
    sample_images = subset(data, 16, 16).images("validation", size)  # 32 images are timed; decoding more costs memory
    from engine.training.bench_backbones import raw_forward_rate

    out["raw_forward_images_per_s"] = raw_forward_rate(base, args.backbone, sample_images, raw_seconds(args))
    _log(f"raw forward {out['raw_forward_images_per_s']:.1f} images/s")

    # 2. the lecture's pipeline (flow_from_directory prints to stdout, which is the JSON's)
    with contextlib.redirect_stdout(sys.stderr):
        lec = _measure_lecture(lecture, base, spec, root, size, n_train, n_val, args.quick)
    out["lecture"] = lec
    del base
    keras.backend.clear_session()

    # 3. ours, as users run it (on a subset with the same train:validation proportions when --quick)
    peak_before_ours, ours = _measure_ours_scaled(data, args, views, n_train, n_val)
    out["ours"] = ours
    out["ratios"] = {
        "fe": ours["fe_images_per_s"] / lec["fe_images_per_s"],
        "frozen_epoch": lec["frozen_epoch_s"] / ours["frozen_epoch_s"],
        "finetune_epoch": lec["finetune_epoch_s"] / ours["finetune_epoch_s"],
        "protocol": lec["protocol_s"] / ours["protocol_s"],
    }
    out["fe_vs_raw"] = ours["fe_images_per_s"] / out["raw_forward_images_per_s"]
    out["peak_rss_mb"] = max(peak_before_ours, _peak_rss_mb())  # the whole process
    out["bench_seconds"] = time.perf_counter() - started
    out["load_average"] = {"start": load_before[0], "end": os.getloadavg()[0]}  # > cores: something else was running
    return _report(args, _rounded(out))


def _report(args, out: dict) -> int:
    """Prints the JSON and writes it to --json (claimed before any work by the output gate, cli.main)."""
    from engine.store.outputs import output_of

    text = dumps(out, indent=2)
    print(text)
    report = output_of(args, "--json")
    if report:
        report.write_bytes(text.encode())
    return 0


def _measure_ours_scaled(data, args, views: int, n_train: int, n_val: int) -> tuple[float, dict]:
    """(peak RSS before, our measurements) with epoch times scaled to the whole dataset and the lecture's protocol priced."""
    E = LECTURE_EPOCHS
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            per_class = max(1, min(150, n_train // len(data.classes)))
            measured = subset(data, per_class, max(1, round(per_class * n_val / n_train)))
        else:
            measured = data
        # The lecture's part holds its head's feature arrays in RAM (up to HEAD_EPOCH_IMAGES); ours gets its own
        # peak, measured from a reset high-water mark (it includes whatever the lecture's part left allocated).
        peak_before_ours = _peak_rss_mb()
        reset = _reset_peak_rss()
        ours = measure_ours(measured, args, views, tmp)
        ours["peak_rss_mb"] = _peak_rss_mb() if reset else None
    scale = n_train / ours["measured_on"]["train"]  # an epoch's cost grows with the number of images it passes
    for k in ("fe", "frozen", "finetune"):
        ours[f"{k}_epoch_s"] = ours[f"{k}_epoch_s_measured"] * scale
    ours["protocol_s"] = (
        (n_train + n_val) / ours["fe_images_per_s"]
        + E["feature_extraction"] * ours["fe_epoch_s"]
        + views * n_train / ours["view_images_per_s"]
        + E["frozen"] * ours["frozen_epoch_s"]
        + E["fine_tuning_phase2"] * ours["finetune_epoch_s"]
    )
    return peak_before_ours, ours


def _measure_lecture(lecture, base, spec, root: str, size: int, n_train: int, n_val: int, quick: bool) -> dict:
    """Times each stage of the lecture's pipeline and prices its protocol."""
    lec: dict = {}
    steps = 8 if quick else 25
    train_dir, val_dir = f"{root}/{_split_dir(root, 'train')}", f"{root}/{_split_dir(root, 'validation')}"
    lec["fe_images_per_s"] = lecture.time_feature_extraction(base, train_dir, size, batches=steps * 2)
    _log(f"lecture: feature extraction {lec['fe_images_per_s']:.1f} images/s")
    # The lecture's head trains on feature arrays in RAM; past HEAD_EPOCH_IMAGES they would not fit (20,000
    # MobileNetV2 maps at 224 px: 5 GB), so a larger epoch is timed on that many and scaled.
    m_train, m_val = min(n_train, HEAD_EPOCH_IMAGES[0]), min(n_val, HEAD_EPOCH_IMAGES[1])
    lec["fe_epoch_s"] = (
        lecture.time_head_epoch(tuple(base.output.shape[1:]), m_train, m_val) * (n_train + n_val) / (m_train + m_val)
    )
    names = [l.name for l in base.layers]
    top_block = set(names[names.index(spec.top_block_cuts[0]) + 1 :])
    lec.update(
        lecture.time_frozen_and_fine_tuning(
            base,
            top_block,
            train_dir,
            val_dir,
            size,
            steps=steps,
            train_steps_per_epoch=-(-n_train // 20),
            val_steps_per_epoch=-(-n_val // 20),
        )
    )
    _log(f"lecture: frozen epoch {lec['frozen_epoch_s']:.1f}s, fine-tuning epoch {lec['finetune_epoch_s']:.1f}s")
    E = LECTURE_EPOCHS
    lec["protocol_s"] = (
        (n_train + n_val) / lec["fe_images_per_s"]
        + E["feature_extraction"] * lec["fe_epoch_s"]
        + (E["frozen"] + E["fine_tuning_phase1"]) * lec["frozen_epoch_s"]
        + E["fine_tuning_phase2"] * lec["finetune_epoch_s"]
    )
    return lec


def _split_dir(root: str, split: str) -> str:
    """The folder name the dataset uses for a split (validation may be val/ or valid/)."""
    from engine.data.layout import SPLIT_ALIASES

    for name in sorted(os.listdir(root)):
        if SPLIT_ALIASES.get(name.lower()) == split and os.path.isdir(os.path.join(root, name)):
            return name
    return split


def _rounded(obj):
    if isinstance(obj, float):
        return round(obj, 3)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj
