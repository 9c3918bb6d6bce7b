"""`python -m engine ...`: scan a dataset, train approaches headless, list runs, classify, export, benchmark.

Progress goes to stderr (one line per epoch); results go to stdout or --report as JSON.
Bad input exits with status 2 and a one-line reason; a failed or diverged run exits with status 1.
Before any command runs, every output it declared (`engine/store/outputs.add_output`) is claimed by the
output gate, and every number was read through its knob's metadata (`engine/cli/flags.Parser`, `number_type`).
A disk that fills up or turns read-only mid-command is one line too (exit 2), never a traceback.
Each subcommand's parser names its handler (`set_defaults(func=...)`): `train` (run, estimate), `finder` (lr-find),
`commands` (scan, presets, runs, predict, export, sample, import-zip), and the benchmark's own.
"""

from __future__ import annotations

import errno
import sys

from engine.cli import commands, finder, train
from engine.cli.flags import Parser
from engine.cli.train import EXIT_FAILED, StopFlag, write_report
from engine.errors import StudioError

EXIT_BAD_INPUT = 2

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "StopFlag", "build_parser", "main", "write_report"]


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)  # the machine's state, not a bug of ours


def build_parser() -> Parser:
    from engine.cli.flags import add_settings_flags
    from engine.store.outputs import add_output
    from engine.training.bench import BenchSettings, add_bench_arguments, cmd_bench

    p = Parser(prog="python -m engine", description="Transfer Learning Studio engine")
    sub = p.add_subparsers(dest="command", required=True)
    commands.add_parsers(sub)
    train.add_parsers(sub)
    finder.add_parser(sub)
    from engine.cli import feature_map as feature_map_cli  # `feature-map`: the 2-D map of the base's features

    feature_map_cli.add_parser(sub)
    from engine.cli import data_health  # `data-health`: label issues, duplicates/leaks, outliers (engine/cli/data_health.py)

    data_health.add_parser(sub)
    from engine.cli import ensemble  # `ensemble`: an ensemble of runs and/or flip averaging, scored (engine/cli/ensemble.py)

    ensemble.add_parser(sub)
    from engine.cli import dataset  # `dataset add|list|zip`: datasets made image by image (engine/data/builder.py)

    dataset.add_parser(sub)
    from engine.cli import job  # `job SPEC.json`: what the job runner starts (engine/store/jobs.py)

    job.add_parser(sub)
    bench = sub.add_parser("bench", help="measure speed and memory of each stage")
    add_bench_arguments(bench)
    add_settings_flags(bench, BenchSettings)
    add_output(bench, "--json", "--report", dest="json_path", metavar="FILE", help="also write the JSON here")
    bench.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None, error_file: str | None = None) -> int:
    """Runs one command; its exit status. A refusal is one line on stderr and, for a job (`error_file`, engine/cli/job.py),
    the same sentence in that file: the job runner reads it there instead of scraping the log."""
    from engine.store.outputs import claim_outputs

    try:
        args = build_parser().parse_args(argv)
        claim_outputs(args)  # the output gate: before any work, for every command
        return args.func(args)
    except SystemExit as exc:  # --help (a refused flag is a FlagRefused, below)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except StudioError as exc:  # bad input: one line. Anything else is a bug and keeps its traceback.
        return _refuse(str(exc), error_file)
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f"{exc.filename}: " if exc.filename else "writing the run store, the feature cache or an output: "
        return _refuse(
            f"{where}{exc.strerror or exc}; free some space (or choose a writable folder) and run it again", error_file
        )


def _refuse(sentence: str, error_file: str | None) -> int:
    print(f"error: {sentence}", file=sys.stderr)
    if error_file:
        from engine.store.runs import atomic_write_json

        try:
            atomic_write_json(error_file, {"error": sentence})
        except OSError:
            pass  # the log still holds the line
    return EXIT_BAD_INPUT
