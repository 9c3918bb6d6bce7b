"""`python -m engine lr-find`: the learning-rate finder (engine/training/lr_finder.py) on the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.cli.flags import add_run_arguments, build_config, read_config_file
from engine.cli.train import StopFlag, print_progress
from engine.config import ConfigError
from engine.data.sample import resolve_data_path
from engine.training.lr_range import RULES, FinderSettings

DEFAULTS = FinderSettings()


def add_parser(sub) -> None:
    p = sub.add_parser("lr-find", help="suggest a learning rate: the loss over a learning-rate ramp, on cached features")
    add_run_arguments(p)
    p.add_argument("--start-lr", type=float, default=DEFAULTS.start_lr, help=f"first rate of the ramp (default {DEFAULTS.start_lr:g})")
    p.add_argument("--end-lr", type=float, default=DEFAULTS.end_lr, help=f"last rate (default {DEFAULTS.end_lr:g})")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps, help=f"one optimizer step per rate (default {DEFAULTS.steps})")
    p.add_argument("--rule", choices=list(RULES), default=DEFAULTS.rule,
                   help="which rate to suggest: valley (fastai's default) or steepest (descent of the smoothed loss)")
    p.add_argument("--json", action="store_true", help="print the whole curve and both rules' rates as JSON")
    p.add_argument("--out", metavar="FILE", help="also write that JSON to FILE (written whole or not at all: the dashboard's jobs read it)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_lr_find)


def cmd_lr_find(args) -> int:
    from engine.models import backbones
    from engine.training.approaches import prepare_data
    from engine.training.features import default_cache_dir
    from engine.training.lr_finder import find_learning_rate

    if args.approach == "all":
        raise ConfigError("--approach: the finder ramps one approach (feature_extraction, frozen or fine_tuning)")
    settings = FinderSettings(start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps, rule=args.rule)
    settings.check()  # before the dataset is read
    args.data = resolve_data_path(args.data)
    cfg = build_config(args.approach, args, read_config_file(args.config) if args.config else None)
    d = cfg.data
    data = prepare_data(d.path, (d.train_fraction, d.val_fraction, d.test_fraction), cfg.fit.seed,
                        checks_dir=args.cache_dir or default_cache_dir())
    stop = StopFlag()
    stop.install()
    result = find_learning_rate(cfg, data, settings, progress=(lambda e: None) if args.quiet else print_progress("lr-find"),
                                should_stop=stop, runs_dir=args.runs_dir, cache_dir=args.cache_dir)
    field = "fine_tune.learning_rate (--fine-tune-learning-rate)" if cfg.approach == "fine_tuning" else "fit.learning_rate (--learning-rate)"
    # What the rate is for, so Compare can show it beside the runs that trained at it (engine/insight/rates.py).
    doc = {**result.to_dict(), "applies_to": field, "dataset_root": data.report.root, "backbone": cfg.backbone.name,
           "image_size": backbones.image_size_for(cfg.backbone), "optimizer": cfg.fit.optimizer}
    if args.out:
        from engine.store.runs import atomic_write_json

        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(Path(args.out), doc)
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: cannot write there ({exc.strerror or exc}); choose a writable file") from None
    if args.json:
        print(json.dumps(doc, indent=2))
    elif result.suggested is None:
        print(f"no suggestion: only {len(result.losses)} step(s) ran ({result.ended}); widen --start-lr/--end-lr or add --steps")
    else:
        print(f"suggested learning rate: {result.suggested:.2g} ({RULES[result.rule]}) for {field}; "
              f"valley {result.valley:.2g}, steepest {result.steepest:.2g}; {len(result.losses)} steps, {result.ended}, "
              f"{result.seconds:.1f} s, feature cache misses {result.feature_cache.get('misses', 0)}")
    print(f"[lr-find] {result.ended}", file=sys.stderr)
    return 0 if result.suggested is not None else 1
