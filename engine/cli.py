"""`python -m engine ...`: scan a dataset, train approaches headless, list runs, classify, export, benchmark.

Progress goes to stderr (one line per epoch); results go to stdout or --report as JSON.
Bad input exits with status 2 and a one-line reason; a diverged run exits with status 1.
SIGINT/SIGTERM stop training cooperatively: the finished epochs are kept and saved.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from engine import config as cfgmod
from engine.training import distribute
from engine.models.backbones import BACKBONES, image_size_for
from engine.config import APPROACHES, ConfigError, RunConfig, default_config
from engine.data.layout import DatasetError
from engine.data.scan import scan_dataset
from engine.errors import StudioError
from engine.data.sample import resolve_data_path

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class StopFlag:
    """Set by SIGINT/SIGTERM; training checks it between batches.

    Every later signal waits for the first one's save: a double click on the dashboard's Stop (one
    SIGTERM each) or an impatient second Ctrl-C used to interrupt the save and leave the run
    `interrupted`. Only SIGKILL abandons a run at once (it then reads `interrupted`).
    """

    def __init__(self) -> None:
        self.set = False

    def __call__(self) -> bool:
        return self.set

    def install(self) -> None:
        def handler(signum, frame):
            if self.set:
                print("already stopping: the run is being saved (kill -9 abandons it)", file=sys.stderr, flush=True)
                return
            self.set = True
            print("stop requested: finishing the current batch and saving the run ...", file=sys.stderr, flush=True)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """What `run` and `estimate` share: the dataset, the approach and every config flag."""
    p.add_argument("--data", required=True, help="dataset folder, or 'sample' for the built-in sample")
    p.add_argument("--approach", required=True, choices=(*APPROACHES, "all"))
    p.add_argument("--config", help="JSON file with a RunConfig (flags below override it)")
    p.add_argument("--preset", help="start from a published setup (see `python -m engine presets`); flags override it")
    p.add_argument("--backbone", choices=sorted(BACKBONES))
    p.add_argument("--weights", help="imagenet | none | PATH to a weights file (default imagenet)")
    p.add_argument("--alpha", type=float, help="MobileNet width multiplier")
    p.add_argument("--image-size", type=int, help="square input size in pixels (default: the backbone's)")
    p.add_argument("--preprocessing", choices=_choices("backbone", "preprocessing"), help="'rescale' = the lecture's 1/255 preset")
    p.add_argument("--epochs", type=int, help="training epochs (phase 1 for fine-tuning)")
    p.add_argument("--fine-tune-epochs", type=int, help="phase-2 epochs of fine-tuning")
    p.add_argument("--fine-tune-learning-rate", type=float)
    p.add_argument("--unfreeze-blocks", type=int, help="top blocks of the base to unfreeze in phase 2")
    p.add_argument("--from-run", help="fine-tuning: use this finished frozen run as phase 1")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--optimizer", choices=_choices("fit", "optimizer"))
    p.add_argument("--pooling", choices=_choices("head", "pooling"))
    p.add_argument("--dense-units", type=int)
    p.add_argument("--dropout", type=float)
    p.add_argument("--no-augmentation", action="store_true", help="switch augmentation off")
    p.add_argument("--views", type=int, metavar="K",
                   help="augmented views of the training set cached once; epochs cycle through them (K = epochs: the lecture exactly)")
    p.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without val_loss gain")
    p.add_argument("--seed", type=int)
    p.add_argument("--split", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="flat layout fractions")
    p.add_argument("--distribute", choices=_choices("compute", "distribute"), help="mirrored = all local GPUs; multi_worker = machines in $TF_CONFIG")
    p.add_argument("--precision", choices=_choices("compute", "precision"), help="auto = float32 on CPU, mixed precision on capable GPUs")
    p.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs under DIR/<run id>")
    p.add_argument("--in-memory-mb", type=int, metavar="MB", help="hold a split in RAM while its decoded pixels + cached features fit in MB; larger splits stream from disk")
    p.add_argument("--runs-dir", help="run store folder (default: $TLS_RUNS_DIR or ./runs)")
    p.add_argument("--cache-dir", help="feature cache folder (default: $TLS_CACHE_DIR or ~/.cache/...)")


def _choices(section: str, name: str) -> tuple:
    """A flag's choices from the config field's metadata (engine/config.py), as the dashboard's widgets get them."""
    return cfgmod.field_meta(section, name)["choices"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine", description="Transfer Learning Studio engine")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("scan", help="check a dataset folder: classes, counts, sizes, bad files")
    s.add_argument("data", help="dataset folder, or 'sample' for the built-in sample")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")

    r = sub.add_parser("run", help="train one approach or all three and store the runs")
    add_run_arguments(r)
    r.add_argument("--run-id", help="folder name for the run (single approach only)")
    r.add_argument("--report", help="write {'runs': [...]} JSON here")
    r.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    r.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="repeat each approach with seeds SEED, SEED+1, ... (same data split) and group the runs")
    r.add_argument("--repeat-group", help="record the run as repeat --repeat-index of this group (the dashboard queues "
                   "one job per seed; the split still comes from --seed)")
    r.add_argument("--repeat-index", type=int, default=0, help="with --repeat-group: train with seed SEED + this")

    es = sub.add_parser("estimate", help="predict wall time and peak memory of a run (same options as run), as JSON")
    add_run_arguments(es)
    es.add_argument("--no-calibrate", action="store_true", help="only use a stored calibration; never measure one")

    pz = sub.add_parser("presets", help="list the presets (published setups) with their published accuracy")
    pz.add_argument("--json", action="store_true")

    ls = sub.add_parser("runs", help="list stored runs")
    ls.add_argument("--runs-dir")
    ls.add_argument("--json", action="store_true")

    pr = sub.add_parser("predict", help="classify image files with a stored run")
    pr.add_argument("--run", required=True, help="run id")
    pr.add_argument("--runs-dir")
    pr.add_argument("--json", action="store_true", help="print one JSON object instead of a line per image")
    pr.add_argument("--gradcam", metavar="OUT.png",
                    help="write the Grad-CAM overlay of each image: OUT.png for one image, OUT-<image name>.png for several")
    pr.add_argument("--force", action="store_true", help="--gradcam may replace existing files (never an input image)")
    pr.add_argument("images", nargs="+")

    from engine.insight.export import FORMATS

    ex = sub.add_parser("export", help="export a stored run's model: .keras, SavedModel, TFLite float32 or int8")
    ex.add_argument("run", help="run id")
    ex.add_argument("--format", required=True, choices=FORMATS)
    ex.add_argument("--out", required=True, metavar="FOLDER",
                    help="a new (or empty) folder for the model, labels.json, README.md and classify.py")
    ex.add_argument("--zip", action="store_true", help="also write FOLDER.zip (what the dashboard's download holds)")
    ex.add_argument("--force", action="store_true", help="--zip may replace an existing FOLDER.zip")
    ex.add_argument("--calibration-images", type=int, default=100, metavar="N",
                    help="tflite_int8: training images used to calibrate the quantisation (default 100)")
    ex.add_argument("--runs-dir")

    sp = sub.add_parser("sample", help="create the built-in sample dataset and print its path")
    sp.add_argument("dir", nargs="?", help="where to create it (default: $TLS_SAMPLE_DIR or ~/.cache/...)")

    iz = sub.add_parser("import-zip", help="unpack a dataset zip safely (bounded, no path tricks) and print the dataset root")
    iz.add_argument("zip", help="the .zip file")
    iz.add_argument("dest", help="a new or empty folder to unpack into")

    from engine.training.bench import add_bench_arguments

    add_bench_arguments(sub.add_parser("bench", help="measure speed and memory of each stage"))
    return p


def build_config(approach: str, args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The lecture defaults for `approach`, then --config or else --preset, then explicit flags.

    With --config the file holds every value, so --preset only names the run (the dashboard
    writes the form's config, the preset plus the user's changes, and passes the name)."""
    cfg = default_config(approach)
    if base is not None:
        raw = base.to_dict()
        raw["approach"] = approach
        cfg = RunConfig.from_dict(raw)
    if getattr(args, "preset", None):
        from engine.insight.presets import apply_preset, get_preset

        get_preset(args.preset)  # an unknown name is refused either way
        if base is None:  # a --config file already holds its values (the dashboard's: preset + the user's changes)
            apply_preset(cfg, args.preset)
    cfg.data.path = args.data
    sets = {
        ("backbone", "name"): args.backbone, ("backbone", "weights"): args.weights, ("backbone", "alpha"): args.alpha,
        ("backbone", "image_size"): args.image_size, ("backbone", "preprocessing"): args.preprocessing,
        ("fit", "epochs"): args.epochs, ("fit", "batch_size"): args.batch_size, ("fit", "learning_rate"): args.learning_rate,
        ("fit", "optimizer"): args.optimizer, ("fit", "early_stopping_patience"): args.early_stopping, ("fit", "seed"): args.seed,
        ("head", "pooling"): args.pooling, ("head", "dense_units"): args.dense_units, ("head", "dropout"): args.dropout,
        ("fine_tune", "epochs"): args.fine_tune_epochs, ("fine_tune", "learning_rate"): args.fine_tune_learning_rate,
        ("fine_tune", "unfreeze_blocks"): args.unfreeze_blocks, ("fine_tune", "from_run"): args.from_run,
        ("compute", "distribute"): args.distribute, ("compute", "precision"): args.precision,
        ("compute", "tensorboard"): args.tensorboard, ("compute", "in_memory_mb"): args.in_memory_mb,
    }
    for (section, name), value in sets.items():
        if value is not None:
            setattr(getattr(cfg, section), name, value)
    if args.no_augmentation:
        cfg.augmentation.enabled = False
    if args.views is not None:
        cfg.augmentation.views = args.views
    if args.split:
        cfg.data.train_fraction, cfg.data.val_fraction, cfg.data.test_fraction = args.split
    cfgmod.validate(cfg)
    image_size_for(cfg.backbone)  # the size limit is per backbone
    return cfg


def read_config_file(path: str) -> RunConfig:
    """--config FILE as a RunConfig; unreadable or malformed files are one-line ConfigErrors."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    try:
        return RunConfig.from_json(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ConfigError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None


def check_report_writable(path: str) -> None:
    """Fails before training, not after the run was stored, when --report cannot be written."""
    import stat

    target = Path(path)
    existed = target.exists()
    if existed and stat.S_ISFIFO(target.stat().st_mode):  # opening a pipe for writing waits for a reader: a hang
        raise ConfigError(f"--report {path}: is a pipe; give a file to write the report to")
    try:
        with open(target, "a"):
            pass
    except OSError as exc:
        raise ConfigError(f"--report {path}: cannot write there ({exc.strerror or exc}); choose a writable file") from None
    if not existed:
        target.unlink(missing_ok=True)
    elif not target.is_file():  # a device or pipe opens fine; /dev/full fails only on writing
        try:
            with open(target, "w") as fh:
                fh.write("\n")
        except OSError as exc:
            raise ConfigError(f"--report {path}: cannot write there ({exc.strerror or exc}); choose a writable file") from None


def write_report(path: str, results: list) -> str:
    """Writes the report after each run; '' or the one-line reason it failed (the runs are stored either way)."""
    try:
        Path(path).write_text(json.dumps({"runs": results}, indent=2))
        return ""
    except OSError as exc:
        return f"--report {path}: cannot write there ({exc.strerror or exc}); the runs are stored (see `python -m engine runs`)"


def print_progress(label: str):
    def progress(event: dict) -> None:
        if event["type"] == "epoch":
            lg = event["logs"]
            phase = " (fine-tune)" if event["phase"] == 2 else ""
            print(
                f"[{label}] epoch {event['epoch']}/{event['epochs_total']}{phase}  loss {lg['loss']:.4f}  acc {lg['accuracy']:.4f}"
                f"  val_loss {lg['val_loss']:.4f}  val_acc {lg['val_accuracy']:.4f}  {event['seconds']:.1f}s",
                file=sys.stderr, flush=True,
            )
        elif event["type"] == "status":
            print(f"[{label}] {event['message']}", file=sys.stderr, flush=True)

    return progress


def cmd_scan(args) -> int:
    report = scan_dataset(resolve_data_path(args.data))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    d = report.to_dict()
    print(f"{d['root']}  ({d['layout']} layout, {len(d['classes'])} classes, {d['num_images']} usable images)")
    for split, counts in d["splits"].items():
        print(f"  {split:<11} " + "  ".join(f"{c}: {n}" for c, n in counts.items()))
    if d["image_size"]:
        w, h = d["image_size"]["width"], d["image_size"]["height"]
        print(f"  size        width {w['min']}/{w['median']}/{w['max']}  height {h['min']}/{h['median']}/{h['max']} (min/median/max)")
    print("  formats     " + ", ".join(f"{k} {v}" for k, v in sorted(d["formats"].items())))
    for b in d["bad_files"]:
        print(f"  bad file    {b['path']}: {b['reason']}")
    for w in d["warnings"]:
        print(f"  warning     {w}")
    return 0


def cmd_run(args) -> int:
    import keras

    from engine.training.approaches import RUNNERS, prepare_data

    base_cfg = read_config_file(args.config) if args.config else None
    approaches = list(APPROACHES) if args.approach == "all" else [args.approach]
    if args.run_id and len(approaches) > 1:
        raise ConfigError("--run-id: only with a single --approach")
    if not 1 <= args.seeds <= 20:
        raise ConfigError(f"--seeds: must be between 1 and 20, got {args.seeds}")
    if args.run_id and args.seeds > 1:
        raise ConfigError("--run-id: only with --seeds 1 (each repeat is a run of its own)")
    if args.report:
        check_report_writable(args.report)
    args.data = resolve_data_path(args.data)
    configs = [build_config(a, args, base_cfg) for a in approaches]
    from engine.store.outputs import check_writable_folder
    from engine.store.runs import RunStore

    check_writable_folder("--runs-dir", RunStore(args.runs_dir).root)
    if configs[0].compute.tensorboard:
        check_writable_folder("--tensorboard", configs[0].compute.tensorboard)
    # The strategy first: MultiWorkerMirroredStrategy must exist before TensorFlow runs
    # anything, and a missing TF_CONFIG or nothing to mirror over fails here, before any work.
    dist = distribute.resolve(configs[0].compute.distribute)
    if args.run_id and dist.chief:  # other workers store nothing (and may see the chief's new folder)
        from engine.store.runs import RunStore, RunStoreError, check_run_id

        if (RunStore(args.runs_dir).root / check_run_id(args.run_id)).exists():
            raise RunStoreError(f"--run-id {args.run_id}: a run with that id already exists; choose another")
    d = configs[0].data
    from engine.training.features import default_cache_dir

    data = prepare_data(d.path, (d.train_fraction, d.val_fraction, d.test_fraction), configs[0].fit.seed,
                        checks_dir=args.cache_dir or default_cache_dir())
    if data.report.bad_files:
        print(f"skipping {len(data.report.bad_files)} unreadable file(s); see `python -m engine scan {d.path}`", file=sys.stderr)
    stop = StopFlag()
    stop.install()
    results, status, report_error = [], 0, ""
    frozen_runs: dict[int, str] = {}  # with --approach all, fine-tuning continues from the frozen run of its repeat
    for cfg, repeat, extra in repeat_plan(configs, args.seeds, getattr(args, "preset", None)):
        if stop():
            break
        if args.repeat_group:  # one repeat of a group queued job by job (engine/store/jobs.py)
            cfg.fit.seed += args.repeat_index
            extra = {**extra, "repeat_group": args.repeat_group, "repeat_index": args.repeat_index}
        if cfg.approach == "fine_tuning" and repeat in frozen_runs and not cfg.fine_tune.from_run:
            cfg.fine_tune.from_run = frozen_runs[repeat]
        extra = {**extra, **recorded_estimate(cfg, data, args.cache_dir, args.runs_dir)}
        keras.backend.clear_session()  # safe here: the CLI runs one approach at a time in one thread
        t0 = time.perf_counter()
        result = RUNNERS[cfg.approach](
            cfg, data, progress=(lambda e: None) if args.quiet else print_progress(cfg.approach), should_stop=stop,
            runs_dir=args.runs_dir, cache_dir=args.cache_dir, run_id=args.run_id, resolved_extra=extra,
        )
        rep = result.to_report()
        rep.update({k: v for k, v in extra.items() if k in ("repeat_group", "preset", "estimate_s")}, seed=cfg.fit.seed)
        results.append(rep)
        if cfg.approach == "frozen" and result.state == "finished":
            frozen_runs[repeat] = result.id
        if args.report:
            report_error = write_report(args.report, results) or report_error  # the other approaches still run
        acc = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
        print(
            f"[{cfg.approach}] {result.state}: val_acc {acc(rep['val_accuracy'])}  test_acc {acc(rep['test_accuracy'])}  "
            f"{time.perf_counter() - t0:.1f}s  -> {result.run_dir or 'not stored here: the chief worker stores the run'}"
            + (f"  ({result.message})" if result.message else ""),
            file=sys.stderr, flush=True,
        )
        if result.state == "failed":
            status = EXIT_FAILED
    if not args.report:
        print(json.dumps({"runs": results}, indent=2))
    if report_error:
        raise ConfigError(report_error)
    return status


def repeat_plan(configs: list[RunConfig], seeds: int, preset: str | None = None) -> list[tuple[RunConfig, int, dict]]:
    """(config, repeat index, resolved extras) per run: each approach `seeds` times with seed, seed+1, ...

    Only fit.seed changes (weights init, shuffling, augmented views); the data split was
    made once from the base seed by the caller, so every repeat sees the same images.
    Repeats of one approach share a `repeat_group` id (engine/analysis.group_repeats).
    """
    import secrets

    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    plan = []
    for i in range(seeds):
        for cfg in configs:
            c = RunConfig.from_dict(cfg.to_dict())
            c.fit.seed = cfg.fit.seed + i
            extra = {"repeat_group": f"{stamp}-{cfg.approach}", "repeat_index": i} if seeds > 1 else {}
            if preset:
                extra["preset"] = preset
            plan.append((c, i, extra))
    return plan


def recorded_estimate(cfg: RunConfig, data, cache_dir: str | None, runs_dir: str | None = None) -> dict:
    """{"estimate_s": ...} from a stored calibration (never measures one: training should not wait), else {}."""
    from engine.training.estimate import estimate_run

    try:
        est = estimate_run(cfg, data, cache_dir, calibrate=False, runs_dir=runs_dir)
    except StudioError:
        return {}
    return {"estimate_s": est["wall_s"]} if est.get("wall_s") is not None else {}


def cmd_estimate(args) -> int:
    from engine.training.approaches import prepare_data
    from engine.training.estimate import estimate_run

    base_cfg = read_config_file(args.config) if args.config else None
    if args.approach == "all":
        raise ConfigError("--approach: estimate one approach at a time (feature_extraction, frozen or fine_tuning)")
    args.data = resolve_data_path(args.data)
    cfg = build_config(args.approach, args, base_cfg)
    d = cfg.data
    data = prepare_data(d.path, (d.train_fraction, d.val_fraction, d.test_fraction), cfg.fit.seed)
    print(json.dumps(estimate_run(cfg, data, args.cache_dir, calibrate=not args.no_calibrate, runs_dir=args.runs_dir), indent=2))
    return 0


def cmd_presets(args) -> int:
    from engine.insight.presets import PRESETS

    if args.json:
        print(json.dumps({"presets": [p.to_dict() for p in PRESETS.values()]}, indent=2))
        return 0
    for p in PRESETS.values():
        pub = "  ".join(f"{a}: {', '.join(f'{k} {v:.3f}' for k, v in m.items())}" for a, m in p.published.items())
        print(f"{p.name:<12} {p.title}\n{'':<12} published: {pub or 'none'}\n{'':<12} source: {p.source}")
    return 0


def cmd_runs(args) -> int:
    from engine.store.runs import RunStore

    store = RunStore(args.runs_dir)
    if store.root.exists() and not store.root.is_dir():
        raise ConfigError(f"--runs-dir {store.root}: is a file, not a run store folder")
    listing = store.list()
    rows = listing.summaries()  # damaged folders too, with state "damaged" and the reason as message
    if args.json:
        damaged = [{"id": d.id, "reason": d.reason} for d in listing.damaged]
        print(json.dumps({"runs": rows, "damaged": damaged}, indent=2))
        return 0
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    for row in rows:
        if row["state"] == "damaged":
            print(f"{row['id']}  damaged      {row['message']}")
            continue
        epochs = f"{row['epochs_run']}/{row['epochs_total']}" if row["epochs_total"] else str(row["epochs_run"])
        print(f"{row['id']}  {row['state']:<11}  epochs {epochs:<7}  val {fmt(row['val_accuracy'])}  test {fmt(row['test_accuracy'])}"
              + (f"  ({row['message']})" if row["state"] in ("interrupted", "failed") and row["message"] else ""))
    return 0


def cmd_predict(args) -> int:
    from engine.insight.inference import check_files, classify_file, load_run
    from engine.store.runs import RunStore

    # A file the decoder cannot read (missing, FIFO, truncated, ...) raises ImageDecodeError,
    # a StudioError: exit 2 and one line naming it, before TensorFlow loads and logs.
    check_files(args.images)
    store = RunStore(args.runs_dir)
    if args.gradcam:
        from engine.insight.explain import gradcam_paths
        from engine.store.outputs import check_named, check_target

        check_named("--gradcam", args.gradcam)
        heatmaps = [check_target("--gradcam", p, inputs=args.images, run_store=store.root, force=args.force)
                    for p in gradcam_paths(args.gradcam, args.images)]
    run = load_run(store, args.run)
    out = [{"image": path, **classify_file(run, path)} for path in args.images]
    if args.gradcam:
        from engine.insight.explain import explain_image, save_png

        for row, target in zip(out, heatmaps):
            explained = explain_image(run, row["image"])
            row["gradcam"] = str(save_png(explained.overlay, target))
            row["gradcam_layer"] = explained.layer
    if args.json:
        print(json.dumps({"predictions": out}, indent=2))
        return 0
    for row in out:
        p = row["probabilities"][row["predicted"]]
        print(f"{row['image']}  {row['predicted']}  {p:.1%}" + (f"  Grad-CAM -> {row['gradcam']}" if args.gradcam else ""))
    return 0


def cmd_export(args) -> int:
    from engine.insight.export import export_run
    from engine.store.runs import RunStore

    def progress(message: str) -> None:
        print(f"[export] {message}", file=sys.stderr, flush=True)

    from engine.store.outputs import check_outside_store, check_target

    store = RunStore(args.runs_dir)
    check_outside_store("--out", args.out, store.root)
    if args.zip:
        out = Path(args.out)
        check_target("--zip", out.with_name(out.name + ".zip"), run_store=store.root, force=args.force)
    result = export_run(store, args.run, args.format, args.out, make_zip=args.zip,
                        calibration_count=args.calibration_images, progress=progress)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def cmd_sample(args) -> int:
    from engine.data.sample import ensure_sample_dataset

    print(ensure_sample_dataset(args.dir))
    return 0


def cmd_import_zip(args) -> int:
    from engine.data.zip_import import import_zip

    try:
        print(import_zip(args.zip, args.dest))
    except DatasetError as exc:
        raise DatasetError(f"{args.zip}: {exc}") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"scan": cmd_scan, "run": cmd_run, "runs": cmd_runs, "predict": cmd_predict, "sample": cmd_sample,
                "import-zip": cmd_import_zip, "export": cmd_export}
    if args.command == "bench":
        from engine.training.bench import cmd_bench

        handlers["bench"] = cmd_bench
    handlers.update(estimate=cmd_estimate, presets=cmd_presets)
    try:
        return handlers[args.command](args)
    except StudioError as exc:  # bad input: one line. Anything else is a bug and keeps its traceback.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
