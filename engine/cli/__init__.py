"""`python -m engine ...`: scan a dataset, train approaches headless, list runs, classify, export, benchmark.

Progress goes to stderr (one line per epoch); results go to stdout or --report as JSON.
Bad input exits with status 2 and a one-line reason; a failed or diverged run exits with status 1.
Each subcommand's parser names its handler (`set_defaults(func=...)`): `train` (run, estimate), `finder` (lr-find),
`commands` (scan, presets, runs, predict, export, sample, import-zip), and the benchmark's own.
"""

from __future__ import annotations

import argparse
import sys

from engine.cli import commands, finder, train
from engine.cli.train import EXIT_FAILED, StopFlag, write_report
from engine.errors import StudioError

EXIT_BAD_INPUT = 2

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "StopFlag", "build_parser", "main", "write_report"]


def build_parser() -> argparse.ArgumentParser:
    from engine.training.bench import add_bench_arguments, cmd_bench

    p = argparse.ArgumentParser(prog="python -m engine", description="Transfer Learning Studio engine")
    sub = p.add_subparsers(dest="command", required=True)
    commands.add_parsers(sub)
    train.add_parsers(sub)
    finder.add_parser(sub)
    from engine.cli import feature_map as feature_map_cli  # `feature-map`: the 2-D map of the base's features

    feature_map_cli.add_parser(sub)
    from engine.cli import ensemble  # `ensemble`: an ensemble of runs and/or flip averaging, scored (engine/cli/ensemble.py)

    ensemble.add_parser(sub)
    from engine.cli import dataset  # `dataset add|list|zip`: datasets made image by image (engine/data/builder.py)

    dataset.add_parser(sub)
    bench = sub.add_parser("bench", help="measure speed and memory of each stage")
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StudioError as exc:  # bad input: one line. Anything else is a bug and keeps its traceback.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
