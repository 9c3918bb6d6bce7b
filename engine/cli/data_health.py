"""`python -m engine data-health`: mislabelled photos, duplicates/leaks and outliers (engine/training/data_health.py)."""

from __future__ import annotations

import sys

from engine.cli.feature_map import pass_progress
from engine.cli.flags import add_run_arguments, add_settings_flags, build_config, read_config_file, settings_from
from engine.cli.train import StopFlag
from engine.config import ConfigError, dumps
from engine.data.sample import resolve_data_path
from engine.store.outputs import add_output, output_of
from engine.training.data_health import HealthSettings

SHOWN = 10  # rows of each list in the text output


def add_parser(sub) -> None:
    p = sub.add_parser(
        "data-health",
        help="mislabelled photos, duplicates and train/validation leaks, outliers, "
        "from the base's cached features and k-fold heads",
    )
    add_run_arguments(p)
    for action in p._actions:  # the base and size come from an approach's config; any one will do here
        if action.dest == "approach":
            action.required, action.default = False, "feature_extraction"
    add_settings_flags(p, HealthSettings)  # --folds, --similarity
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    add_output(
        p,
        "--out",
        metavar="FILE",
        help="also write that JSON to FILE (written whole or not at all: the dashboard's jobs read it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_data_health)


def kept_paths(root: str) -> set[str]:
    """The photos a user marked "Keep (not an issue)" (engine/data/curation.py), none before that module exists."""
    try:
        from engine.data.curation import kept
    except ImportError:
        return set()
    return set(kept(root))


def cmd_data_health(args) -> int:
    from engine.training.approaches import prepare_data
    from engine.training.data_health import data_health
    from engine.training.features import default_cache_dir
    from engine.training.fit import TrainingStopped

    if args.approach == "all":
        raise ConfigError("--approach: data health follows one config (feature_extraction, frozen or fine_tuning)")
    out = output_of(args, "--out")  # claimed before any work by the output gate (cli.main)
    args.data = resolve_data_path(args.data)
    cfg = build_config(args.approach, args, read_config_file(args.config) if args.config else None)
    settings = settings_from(args, HealthSettings)
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
        doc = data_health(
            cfg,
            data,
            folds=settings.folds,
            similarity=settings.similarity,
            exclude=kept_paths(data.report.root),
            progress=pass_progress("data-health", args.quiet),
            should_stop=stop,
            runs_dir=args.runs_dir,
            cache_dir=args.cache_dir,
        )
    except TrainingStopped:
        print("[data-health] stopped by request", file=sys.stderr)
        return 1
    if out:
        out.write_json(doc)
    if args.json:
        print(dumps(doc, indent=2))
    else:
        print(text_report(doc))
    s = doc["summary"]
    print(
        f"[data-health] {s['label_issues']} label issues, {s['duplicate_groups']} duplicate groups ({s['leaks']} leaks), "
        f"{s['outliers']} outliers in {s['photos']} photos",
        file=sys.stderr,
    )
    return 0


def text_report(doc: dict) -> str:
    """The top rows of each list and the counts, most suspicious first."""
    s = doc["summary"]
    lines = [
        f"Label issues: {s['label_issues']} of {s['labelled_photos']} training and validation photos "
        f"({s['folds']}-fold heads, lowest probability of the given label first)"
    ]
    lines += [
        f"  {i['score']:.3f}  {i['split']}/{i['given']} -> {i['suggested']}?  {i['path']}" for i in doc["label_issues"][:SHOWN]
    ]
    lines.append(
        f"Duplicates: {s['duplicate_groups']} groups, {s['leaks']} across splits (leaks), "
        f"{s['exact_groups']} exact (near-copy threshold {s['similarity_threshold']:g})"
    )
    for d in doc["duplicates"][:SHOWN]:
        kind = "leak, " if d["leak"] else ""
        kind += "exact" if d["exact"] else f"similarity {d['similarity']:.3f}"
        lines.append(f"  [{kind}] " + "  ".join(f"{sp}:{p}" for sp, p in zip(d["splits"], d["paths"])))
    lines.append(
        f"Outliers: {s['outliers']} (mean cosine distance to the {s['outlier_neighbours']} nearest photos above {s['outlier_cut']:.3f})"
    )
    lines += [f"  {o['score']:.3f}  {o['split']}  {o['path']}" for o in doc["outliers"][:SHOWN]]
    lines.append(
        f"{s['seconds']:.1f} s, feature cache hits {s['feature_cache'].get('hits', 0)}, "
        f"misses {s['feature_cache'].get('misses', 0)}; {s['backbone']} at {s['image_size']} px"
    )
    return "\n".join(lines)
