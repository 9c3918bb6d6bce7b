"""`python -m engine feature-map`: the 2-D map of the base's features (engine/training/feature_map.py) as JSON."""

from __future__ import annotations

import sys

from engine.cli.flags import add_run_arguments, add_settings_flags, build_config, read_config_file
from engine.cli.train import StopFlag, print_progress
from engine.config import ConfigError, dumps
from engine.data.sample import resolve_data_path
from engine.store.outputs import add_output, output_of
from engine.training.feature_map import MapSettings


def add_parser(sub) -> None:
    p = sub.add_parser("feature-map", help="a 2-D map (PCA) of the base's cached features of every training and validation image")
    add_run_arguments(p)
    p.add_argument(
        "--run",
        metavar="RUN_ID",
        help="map this finished run: its config's base, its misclassified validation "
        "images, and for fine-tuning the fine-tuned base beside the pretrained one (its config replaces the run options)",
    )
    add_settings_flags(p, MapSettings)  # --limit, --method
    p.add_argument("--json", action="store_true", help="print the whole map (points, projections) as JSON")
    add_output(
        p,
        "--out",
        metavar="FILE",
        help="also write that JSON to FILE (written whole or not at all: the dashboard's jobs read it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_feature_map)


def pass_progress(label: str, quiet: bool):
    """Status lines as `run` prints them, and the base's passes at every quarter (the job panel shows the last line);
    `feature-map` and `data-health` print the same way under their own label."""
    if quiet:
        return lambda e: None
    status = print_progress(label)

    def progress(event: dict) -> None:
        if event["type"] == "features":
            done, total = event["done"], event["total"]
            if done == total or done * 4 // total != (done - 1) * 4 // total:  # not every batch: a line at each quarter
                print(f"[{label}] {event['split']}: {done}/{total} images through the base", file=sys.stderr, flush=True)
        else:
            status(event)

    return progress


def cmd_feature_map(args) -> int:
    from engine.store.runs import RunStore
    from engine.training.approaches import prepare_data
    from engine.training.feature_map import feature_map, run_config
    from engine.training.features import default_cache_dir
    from engine.training.fit import TrainingStopped

    if args.approach == "all":
        raise ConfigError("--approach: a feature map follows one config (feature_extraction, frozen or fine_tuning)")
    out = output_of(args, "--out")  # claimed before any work by the output gate (cli.main)
    if args.run:
        cfg = run_config(RunStore(args.runs_dir), args.run)  # the run's own settings, not the flags'
    else:
        args.data = resolve_data_path(args.data)
        cfg = build_config(args.approach, args, read_config_file(args.config) if args.config else None)
    d = cfg.data
    data = prepare_data(
        d.path,
        (d.train_fraction, d.val_fraction, d.test_fraction),
        cfg.fit.seed,
        checks_dir=args.cache_dir or default_cache_dir(),
        max_per_class=d.max_per_class,
    )
    stop = StopFlag()
    stop.install()
    try:
        doc = feature_map(
            cfg,
            data,
            run_id=args.run,
            limit=args.limit,
            method=args.method,
            progress=pass_progress("feature-map", args.quiet),
            should_stop=stop,
            runs_dir=args.runs_dir,
            cache_dir=args.cache_dir,
        )
    except TrainingStopped:
        print("[feature-map] stopped by request", file=sys.stderr)
        return 1
    if out:
        out.write_json(doc)
    if args.json:
        print(dumps(doc, indent=2))
    else:
        for m in doc["maps"]:
            sep = m["separation"]
            kept = f"axes keep {sum(m['explained_variance']):.1%} of the variance; " if m["explained_variance"] else ""
            print(
                f"{m['name']}: {doc['note']}; {kept}classes apart: "
                f"nearest class mean {sep['nearest_centroid_accuracy']}, 1-NN {sep['one_nn_accuracy']} (chance {sep['chance']})"
            )
        print(f"{doc['seconds']:.1f} s, feature cache misses {doc['feature_cache'].get('misses', 0)}")
    print(f"[feature-map] {doc['note']}", file=sys.stderr)
    return 0
