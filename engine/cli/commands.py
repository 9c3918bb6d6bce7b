"""The commands that read, classify, export or prepare: scan, presets, runs, predict, export, sample, import-zip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.config import ConfigError, dumps
from engine.data.layout import DatasetError
from engine.data.sample import resolve_data_path
from engine.data.scan import scan_dataset
from engine.store.outputs import add_output, output_of, outputs_of


def add_parsers(sub) -> None:
    s = sub.add_parser("scan", help="check a dataset folder: classes, counts, sizes, bad files")
    s.add_argument("data", help="dataset folder, or 'sample' for the built-in sample")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    s.set_defaults(func=cmd_scan)

    pz = sub.add_parser("presets", help="list the presets (published setups) with their published accuracy")
    pz.add_argument("--json", action="store_true")
    pz.set_defaults(func=cmd_presets)

    ls = sub.add_parser("runs", help="list stored runs")
    ls.add_argument("--runs-dir")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs)

    pr = sub.add_parser("predict", help="classify image files with a stored run (or an ensemble of runs)")
    pr.add_argument(
        "--run",
        required=True,
        action="append",
        help="run id; give it several times for an ensemble (the runs' probabilities averaged)",
    )
    pr.add_argument("--weighted", action="store_true", help="ensemble: weigh each run by its validation accuracy")
    pr.add_argument("--tta", action="store_true", help="average each image with its horizontal flip")
    pr.add_argument("--runs-dir")
    pr.add_argument("--json", action="store_true", help="print one JSON object instead of a line per image")
    add_output(
        pr,
        "--gradcam",
        metavar="OUT.png",
        targets=_gradcam_targets,
        help="write the Grad-CAM overlay of each image: OUT.png for one image, OUT-<image name>.png for several",
    )
    pr.add_argument("images", nargs="+")
    pr.set_defaults(func=cmd_predict)

    _add_export_parser(sub)

    sp = sub.add_parser("sample", help="create the built-in sample dataset and print its path")
    add_output(
        sp,
        "dir",
        kind="folder",
        nargs="?",
        metavar="DIR",
        reuse=lambda folder: (folder / ".complete").is_file(),
        help="a new (or empty) folder to create it in, or one holding it already (default: $TLS_SAMPLE_DIR or ~/.cache/...)",
    )
    sp.set_defaults(func=cmd_sample)

    iz = sub.add_parser("import-zip", help="unpack a dataset zip safely (bounded, no path tricks) and print the dataset root")
    iz.add_argument("zip", help="the .zip file")
    add_output(iz, "dest", kind="folder", metavar="DEST", help="a new or empty folder to unpack into")
    iz.set_defaults(func=cmd_import_zip)


def _gradcam_targets(args, out: str) -> list[str]:
    """Every file `predict --gradcam OUT.png` will write, claimed by the output gate before the model loads."""
    from engine.insight.explain import gradcam_paths

    return [str(p) for p in gradcam_paths(out, args.images)]


def _add_export_parser(sub) -> None:
    from engine.cli.flags import add_settings_flags
    from engine.insight.export import FORMATS, ExportSettings

    ex = sub.add_parser("export", help="export a stored run's model: .keras, SavedModel, TFLite float32 or int8")
    ex.add_argument("run", help="run id")
    ex.add_argument("--format", required=True, choices=FORMATS)
    add_output(
        ex,
        "--out",
        kind="folder",
        required=True,
        metavar="FOLDER",
        help="a new (or empty) folder for the model, labels.json, README.md and classify.py",
    )
    ex.add_argument("--zip", action="store_true", help="also write FOLDER.zip (what the dashboard's download holds)")
    add_output(ex, flag="--zip", dest="out", targets=lambda args, out: [str(Path(out)) + ".zip"] if args.zip else [])
    add_settings_flags(ex, ExportSettings)  # --calibration-images
    ex.add_argument("--runs-dir")
    ex.set_defaults(func=cmd_export)


def cmd_scan(args) -> int:
    report = scan_dataset(resolve_data_path(args.data))
    if args.json:
        print(dumps(report.to_dict(), indent=2))
        return 0
    d = report.to_dict()
    print(f"{d['root']}  ({d['layout']} layout, {len(d['classes'])} classes, {d['num_images']} usable images)")
    for split, counts in d["splits"].items():
        print(f"  {split:<11} " + "  ".join(f"{c}: {n}" for c, n in counts.items()))
    if d["image_size"]:
        w, h = d["image_size"]["width"], d["image_size"]["height"]
        print(
            f"  size        width {w['min']}/{w['median']}/{w['max']}  height {h['min']}/{h['median']}/{h['max']} (min/median/max)"
        )
    print("  formats     " + ", ".join(f"{k} {v}" for k, v in sorted(d["formats"].items())))
    for b in d["bad_files"]:
        print(f"  bad file    {b['path']}: {b['reason']}")
    for w in d["warnings"]:
        print(f"  warning     {w}")
    return 0


def cmd_presets(args) -> int:
    from engine.insight.presets import PRESETS

    if args.json:
        print(dumps({"presets": [p.to_dict() for p in PRESETS.values()]}, indent=2))
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
        print(dumps({"runs": rows, "damaged": damaged}, indent=2))
        return 0
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    for row in rows:
        if row["state"] == "damaged":
            print(f"{row['id']}  damaged      {row['message']}")
            continue
        epochs = f"{row['epochs_run']}/{row['epochs_total']}" if row["epochs_total"] else str(row["epochs_run"])
        print(
            f"{row['id']}  {row['state']:<11}  epochs {epochs:<7}  val {fmt(row['val_accuracy'])}  test {fmt(row['test_accuracy'])}"
            + (f"  ({row['message']})" if row["state"] in ("interrupted", "failed") and row["message"] else "")
        )
    return 0


def cmd_predict(args) -> int:
    from engine.insight.inference import check_files, load_run, predict_files
    from engine.store.runs import RunStore

    # A file the decoder cannot read (missing, FIFO, truncated, ...) raises ImageDecodeError,
    # a StudioError: exit 2 and one line naming it, before TensorFlow loads and logs.
    check_files(args.images)
    store = RunStore(args.runs_dir)
    if len(set(args.run)) < len(args.run):
        raise ConfigError("--run: a run is given twice; give each run of the ensemble once")
    if args.gradcam and len(args.run) > 1:
        raise ConfigError("--gradcam: explains one model; give one --run (or leave out --gradcam)")
    heatmaps = outputs_of(args, "--gradcam")  # claimed before any work by the output gate (cli.main)
    runs = [load_run(store, rid) for rid in args.run]
    # One answer per image (engine/insight/inference.answer), as Classify's: the photo decoded once,
    # Grad-CAM of the class printed; each overlay written before the next image is read.
    from engine.insight.explain import save_png
    from engine.models.pipeline import PipelineError

    out = []
    answers = predict_files(runs, args.images, weighted=args.weighted, tta=args.tta, gradcam=bool(args.gradcam))
    for i, (path, answer) in enumerate(zip(args.images, answers)):
        row = {"image": path, **answer.row()}
        if args.gradcam:
            if answer.gradcam is None:  # a model this studio did not save: one line, as before
                raise PipelineError(answer.gradcam_problem)
            with heatmaps[i].writing() as tmp:  # the output gate's temp file, renamed when whole
                save_png(answer.gradcam.overlay, tmp)
            row["gradcam"] = str(heatmaps[i].path)
            row["gradcam_layer"] = answer.gradcam.layer
        out.append(row)
    if args.json:
        print(json.dumps({"predictions": out}, indent=2))
        return 0
    how = [f"ensemble of {len(runs)} runs" + (", weighted" if args.weighted else "")] if len(runs) > 1 else []
    how = f"  ({'; '.join(how + ['with flips'] * args.tta)})" if how or args.tta else ""
    for row in out:
        p = row["probabilities"][row["predicted"]]
        print(f"{row['image']}  {row['predicted']}  {p:.1%}" + how + (f"  Grad-CAM -> {row['gradcam']}" if args.gradcam else ""))
    return 0


def cmd_export(args) -> int:
    from engine.insight.export import export_run
    from engine.store.runs import RunStore

    def progress(message: str) -> None:
        print(f"[export] {message}", file=sys.stderr, flush=True)

    from engine.insight.export import zip_folder

    store = RunStore(args.runs_dir)
    folder, zipped = output_of(args, "--out"), output_of(args, "--zip")  # claimed before any work (cli.main)
    result = export_run(store, args.run, args.format, folder.path, calibration_count=args.calibration_images, progress=progress)
    if zipped:
        with zipped.writing() as tmp:
            zip_folder(result.folder, tmp)
        result.zip_path = zipped.path
    print(dumps(result.to_dict(), indent=2))
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
