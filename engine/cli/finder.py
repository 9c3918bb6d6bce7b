"""`python -m engine lr-find`: the learning-rate finder (engine/training/lr_finder.py) on the command line."""

from __future__ import annotations

import sys

from engine.cli.flags import add_run_arguments, add_settings_flags, build_config, read_config_file, settings_from
from engine.cli.train import StopFlag, print_progress
from engine.config import ConfigError, dumps
from engine.data.sample import resolve_data_path
from engine.store.outputs import add_output, output_of
from engine.training.lr_range import RULES, FinderSettings


def add_parser(sub) -> None:
    p = sub.add_parser("lr-find", help="suggest a learning rate: the loss over a learning-rate ramp, on cached features")
    add_run_arguments(p)
    add_settings_flags(p, FinderSettings)  # --start-lr, --end-lr, --steps, --rule: ranges from the knobs
    p.add_argument("--json", action="store_true", help="print the whole curve and both rules' rates as JSON")
    add_output(
        p,
        "--out",
        metavar="FILE",
        help="also write that JSON to FILE (written whole or not at all: the dashboard's jobs read it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_lr_find)


def cmd_lr_find(args) -> int:
    from engine.models import backbones
    from engine.training.approaches import prepare_data
    from engine.training.features import default_cache_dir
    from engine.training.lr_finder import find_learning_rate

    if args.approach == "all":
        raise ConfigError("--approach: the finder ramps one approach (feature_extraction, frozen or fine_tuning)")
    settings = settings_from(args, FinderSettings)
    settings.check()  # start < end: before the dataset is read
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
    result = find_learning_rate(
        cfg,
        data,
        settings,
        progress=(lambda e: None) if args.quiet else print_progress("lr-find"),
        should_stop=stop,
        runs_dir=args.runs_dir,
        cache_dir=args.cache_dir,
    )
    field = (
        "fine_tune.learning_rate (--fine-tune-learning-rate)"
        if cfg.approach == "fine_tuning"
        else "fit.learning_rate (--learning-rate)"
    )
    # What the rate is for, so Compare can show it beside the runs that trained at it (engine/insight/rates.py).
    doc = {
        **result.to_dict(),
        "applies_to": field,
        "dataset_root": data.report.root,
        "backbone": cfg.backbone.name,
        "image_size": backbones.image_size_for(cfg.backbone),
        "optimizer": cfg.fit.optimizer,
    }
    out = output_of(args, "--out")  # claimed before any work by the output gate
    if out:
        out.write_json(doc)
    if args.json:
        print(dumps(doc, indent=2))
    elif result.suggested is None:
        print(f"no suggestion: only {len(result.losses)} step(s) ran ({result.ended}); widen --start-lr/--end-lr or add --steps")
    else:
        print(
            f"suggested learning rate: {result.suggested:.2g} ({RULES[result.rule]}) for {field}; "
            f"valley {result.valley:.2g}, steepest {result.steepest:.2g}; {len(result.losses)} steps, {result.ended}, "
            f"{result.seconds:.1f} s, feature cache misses {result.feature_cache.get('misses', 0)}"
        )
    print(f"[lr-find] {result.ended}", file=sys.stderr)
    return 0 if result.suggested is not None else 1
