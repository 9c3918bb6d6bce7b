"""`run` and `estimate`: train approaches headless (progress on stderr, a JSON report) or foresee their cost.

SIGINT/SIGTERM stop training cooperatively: the finished epochs are kept and saved. A failed
or diverged run exits with status 1; bad input with status 2 and one line (engine/cli/__init__.py).

A sweep (`--sweep`) checks every point before the first trains (bad input: status 2, nothing
trained). A point that then fails or diverges is recorded as failed and the sweep goes on; its
summary (the table on stderr, `sweep` in the JSON on stdout or --report) is written all the
same, and the exit status is 1. Keras' and TensorFlow's Python warnings stay off stderr during
a sweep: it prints the studio's progress lines and results only.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from engine.cli.flags import add_run_arguments, add_settings_flags, build_config, read_config_file
from engine.config import APPROACHES, ConfigError, RunConfig, dumps, knob
from engine.data.sample import resolve_data_path
from engine.errors import StudioError
from engine.store.outputs import Output, OutputFailed, add_output, output_of
from engine.training import distribute

EXIT_FAILED = 1


def add_parsers(sub) -> None:
    r = sub.add_parser("run", help="train one approach or all three and store the runs")
    add_run_arguments(r)
    r.add_argument("--run-id", help="folder name for the run (single approach only)")
    add_output(r, "--report", metavar="FILE", help="write {'runs': [...]} JSON here (after each run, whole or not at all)")
    r.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_settings_flags(r, RepeatSettings)
    r.add_argument(
        "--repeat-group",
        help="record the run as repeat --repeat-index of this group (the dashboard queues "
        "one job per seed; the split still comes from --seed)",
    )
    r.add_argument(
        "--sweep",
        action="append",
        metavar="KNOB=V1,V2,...",
        help="train one run per value (a knob's flag name or section.field, e.g. learning-rate=1e-4,1e-3); "
        "twice for a grid of two knobs; with --seeds N each point N times; best point picked on validation. "
        "Every point is checked before the first trains; a point that fails or diverges is recorded "
        "and the sweep goes on: its summary is still written, and the exit status is 1",
    )
    r.add_argument("--sweep-group", help="record the run as a point of this sweep (the dashboard queues one job per point)")
    r.add_argument(
        "--sweep-point", metavar="JSON", help="with --sweep-group: the point's values, e.g. '{\"fit.learning_rate\": 0.001}'"
    )
    r.set_defaults(func=cmd_run)
    es = sub.add_parser("estimate", help="predict wall time and peak memory of a run (same options as run), as JSON")
    add_run_arguments(es)
    es.add_argument("--no-calibrate", action="store_true", help="only use a stored calibration; never measure one")
    add_output(es, "--out", metavar="FILE", help="also write that JSON to FILE (the dashboard's estimate job reads it)")
    es.set_defaults(func=cmd_estimate)


@dataclass
class RepeatSettings:
    """`run`'s repeats: flags from these knobs (engine/cli/flags.add_settings_flags)."""

    seeds: int = knob(
        1,
        "repeat each approach with seeds SEED, SEED+1, ... (same data split) and group the runs",
        min=1,
        max=20,
        integer=True,
        metavar="N",
    )  # 1-20
    repeat_index: int = knob(0, "with --repeat-group: train with seed SEED + this", min=0, max=19, integer=True)  # 0-19


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


def write_report(target: Output | str, results: list, sweep: dict | None = None) -> str:
    """Writes the report (claimed by the output gate) after each run and a sweep's summary at its end;
    '' or the one-line reason it failed: a report that cannot be written must not cost the other runs."""
    target = target if isinstance(target, Output) else Output("--report", Path(target))
    try:
        target.write_json({"runs": results, **({"sweep": sweep} if sweep else {})})
        return ""
    except OutputFailed as exc:
        return f"{exc}; the runs are stored (see `python -m engine runs`)"


def print_progress(label: str):
    def progress(event: dict) -> None:
        if event["type"] == "epoch":
            lg = event["logs"]
            phase = " (fine-tune)" if event["phase"] == 2 else ""
            print(
                f"[{label}] epoch {event['epoch']}/{event['epochs_total']}{phase}  loss {lg['loss']:.4f}  acc {lg['accuracy']:.4f}"
                f"  val_loss {lg['val_loss']:.4f}  val_acc {lg['val_accuracy']:.4f}  {event['seconds']:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        elif event["type"] == "status":
            print(f"[{label}] {event['message']}", file=sys.stderr, flush=True)

    return progress


def cmd_run(args) -> int:
    configs = _run_configs(args)
    plan = (
        sweep_plan(args, configs[0])
        if args.sweep or args.sweep_group
        else repeat_plan(configs, args.seeds, getattr(args, "preset", None))
    )  # every point checked before any work
    data = _prepare(args, configs)
    stop = StopFlag()
    stop.install()
    results, records, status, report_error = [], [], 0, ""
    report = output_of(args, "--report")  # claimed before any work (engine/store/outputs.py)
    frozen_runs: dict[int, str] = {}  # with --approach all, fine-tuning continues from the frozen run of its repeat
    for cfg, repeat, extra in plan:
        if stop():
            break
        if args.repeat_group:  # one repeat of a group queued job by job (engine/store/jobs.py)
            cfg.fit.seed += args.repeat_index
            extra = {**extra, "repeat_group": args.repeat_group, "repeat_index": args.repeat_index}
        if cfg.approach == "fine_tuning" and repeat in frozen_runs and not cfg.fine_tune.from_run:
            cfg.fine_tune.from_run = frozen_runs[repeat]
        result, rep = (_sweep_point if args.sweep else _train_one)(args, cfg, data, extra, stop)
        results.append(rep)
        records.append(result.record)
        if cfg.approach == "frozen" and result.state == "finished":
            frozen_runs[repeat] = result.id
        if report:
            report_error = write_report(report, results) or report_error  # the other approaches still run
        if result.state == "failed":
            status = EXIT_FAILED
    doc = {"runs": results}
    if args.sweep and records:
        doc["sweep"] = report_sweep(records, results)
        if report:
            report_error = write_report(report, results, doc["sweep"]) or report_error
    if not report:
        print(dumps(doc, indent=2))
    if report_error:
        raise ConfigError(report_error)
    return status


def sweep_plan(args, cfg: RunConfig) -> list[tuple[RunConfig, int, dict]]:
    """(config, repeat index, resolved extras) per run of a sweep: each point (`--sweep`, a grid) `--seeds` times,
    or the one point of `--sweep-group G --sweep-point JSON` (the dashboard's job). Each config is checked here,
    before any work (validate_point: whatever it would fail on without training), and a point that would not
    train names --sweep and the value."""
    from engine.insight import sweeps

    if args.sweep and args.sweep_group:
        raise ConfigError("--sweep-group: only without --sweep (it records one point the dashboard queued)")
    if bool(args.sweep_group) != bool(args.sweep_point):
        raise ConfigError("--sweep-group and --sweep-point: give both (the group and the point's values) or neither")
    if args.sweep:
        points = sweeps.grid([sweeps.parse_sweep(spec, cfg.approach) for spec in args.sweep], args.seeds)
        group = sweeps.new_group_id(cfg.approach)
    else:
        points, group = [sweeps.parse_point(args.sweep_point, cfg.approach)], args.sweep_group
    plan = []
    for point in points:
        c = sweeps.apply_point(cfg, point)
        try:
            validate_point(c)
        except StudioError as exc:
            raise ConfigError(f"--sweep {sweeps.point_label(point)}: {exc}") from None
        seeds = 1 if args.sweep_group else args.seeds  # the dashboard queues a point's seeds as a repeat group itself
        for c2, i, extra in repeat_plan([c], seeds, getattr(args, "preset", None)):
            plan.append((c2, i, {**extra, "sweep_group": group, "sweep_point": point}))
    return plan


def validate_point(cfg: RunConfig) -> None:
    """Raises what the point's run would fail on before training: its config, the backbone's size limit, its
    weights for this backbone, width and size (engine/insight/sweeps.check_point; no model built)."""
    from engine.insight.sweeps import check_point

    check_point(cfg)


def _sweep_point(args, cfg: RunConfig, data, extra: dict, stop) -> tuple:
    """`_train_one` for a point of `run --sweep`: Keras' and TensorFlow's Python warnings and log lines kept off
    stderr (the engine's own warnings still shown); a point that raises is recorded as failed (a StudioError
    in one line, anything else with its traceback) and the sweep goes on to its summary."""
    from types import SimpleNamespace

    from engine.insight.sweeps import point_label
    from engine.store.record import RunRecord

    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl", "h5py")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("default", module=r"engine\.")  # e.g. engine/models/optimizers' fallback notice
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            return _train_one(args, cfg, data, extra, stop)
        except StudioError as exc:
            message = str(exc)
        except Exception as exc:  # a bug: its traceback, then the other points
            traceback.print_exc()
            message = f"{type(exc).__name__}: {exc}"
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
    print(f"[{cfg.approach} {point_label(extra['sweep_point'])}] failed: {message}", file=sys.stderr, flush=True)
    config = {**cfg.to_dict(), "resolved": {"seed": cfg.fit.seed, **extra}}
    record = RunRecord("", None, config, {}, {"state": "failed", "message": message})
    rep = {
        "id": None,
        "approach": cfg.approach,
        "state": "failed",
        "message": message,
        "val_accuracy": None,
        "test_accuracy": None,
        "feature_cache": None,
        "run_dir": "",
        "seed": cfg.fit.seed,
        **{k: v for k, v in extra.items() if k in ("repeat_group", "preset", "sweep_group", "sweep_point")},
    }
    return SimpleNamespace(id="", state="failed", record=record), rep


def report_sweep(records: list, results: list[dict]) -> dict:
    """Prints the sweep's table (stderr) and returns it for the JSON report: the best point on validation only."""
    from engine.insight import sweeps

    summary = sweeps.summarize(records, records[0].sweep_group)
    for line in sweeps.summary_lines(summary):
        print(line, file=sys.stderr, flush=True)
    misses = [(r.get("feature_cache") or {}).get("misses") for r in results]
    print(f"feature cache misses per run, in order: {misses}", file=sys.stderr, flush=True)
    summary["feature_cache_misses"] = misses
    return summary


def _run_configs(args) -> list[RunConfig]:
    """One config per approach to run, after checking every flag that spans them (before any work)."""
    base_cfg = read_config_file(args.config) if args.config else None
    approaches = list(APPROACHES) if args.approach == "all" else [args.approach]
    if args.run_id and len(approaches) > 1:
        raise ConfigError("--run-id: only with a single --approach")
    if args.sweep and (len(approaches) > 1 or args.run_id):
        raise ConfigError("--sweep: one --approach at a time, without --run-id (each point is a run of its own)")
    if args.run_id and args.seeds > 1:
        raise ConfigError("--run-id: only with --seeds 1 (each repeat is a run of its own)")
    args.data = resolve_data_path(args.data)
    return [build_config(a, args, base_cfg) for a in approaches]


def _prepare(args, configs: list[RunConfig]):
    """Checks the stores and the strategy, then scans and splits the dataset (once for every approach)."""
    from engine.store.outputs import check_writable_folder
    from engine.store.runs import RunStore, RunStoreError, check_run_id
    from engine.training.features import default_cache_dir

    check_writable_folder("--runs-dir", RunStore(args.runs_dir).root)  # before TensorFlow is imported (seconds)
    if configs[0].compute.tensorboard:
        check_writable_folder("--tensorboard", configs[0].compute.tensorboard)
    # The strategy first: MultiWorkerMirroredStrategy must exist before TensorFlow runs
    # anything, and a missing TF_CONFIG or nothing to mirror over fails here, before any work.
    dist = distribute.resolve(configs[0].compute.distribute)
    if args.run_id and dist.chief:  # other workers store nothing (and may see the chief's new folder)
        if (RunStore(args.runs_dir).root / check_run_id(args.run_id)).exists():
            raise RunStoreError(f"--run-id {args.run_id}: a run with that id already exists; choose another")
    from engine.training.approaches import prepare_data  # imports TensorFlow

    d = configs[0].data
    data = prepare_data(
        d.path,
        (d.train_fraction, d.val_fraction, d.test_fraction),
        configs[0].fit.seed,
        checks_dir=args.cache_dir or default_cache_dir(),
        max_per_class=d.max_per_class,
    )
    if data.report.bad_files:
        print(f"skipping {len(data.report.bad_files)} unreadable file(s); see `python -m engine scan {d.path}`", file=sys.stderr)
    if d.max_per_class > 0:
        print(data.report.warnings[-1], file=sys.stderr)  # "a sample: at most N photos per class …"
    return data


def _train_one(args, cfg: RunConfig, data, extra: dict, stop) -> tuple:
    """Trains one approach; (its RunResult, its report row). One line on stderr says how it ended."""
    import keras

    from engine.insight.sweeps import point_label
    from engine.training.approaches import RUNNERS

    label = cfg.approach + (f" {point_label(extra['sweep_point'])}" if extra.get("sweep_point") else "")  # which point
    extra = {**extra, **recorded_estimate(cfg, data, args.cache_dir, args.runs_dir)}
    keras.backend.clear_session()  # safe here: the CLI runs one approach at a time in one thread
    t0 = time.perf_counter()
    result = RUNNERS[cfg.approach](
        cfg,
        data,
        progress=(lambda e: None) if args.quiet else print_progress(label),
        should_stop=stop,
        runs_dir=args.runs_dir,
        cache_dir=args.cache_dir,
        run_id=args.run_id,
        resolved_extra=extra,
    )
    rep = result.to_report()
    rep.update(
        {k: v for k, v in extra.items() if k in ("repeat_group", "preset", "estimate_s", "sweep_group", "sweep_point")},
        seed=cfg.fit.seed,
    )
    acc = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(
        f"[{label}] {result.state}: val_acc {acc(rep['val_accuracy'])}  test_acc {acc(rep['test_accuracy'])}  "
        f"{time.perf_counter() - t0:.1f}s  -> {result.run_dir or 'not stored here: the chief worker stores the run'}"
        + (f"  ({result.message})" if result.message else ""),
        file=sys.stderr,
        flush=True,
    )
    return result, rep


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
    data = prepare_data(d.path, (d.train_fraction, d.val_fraction, d.test_fraction), cfg.fit.seed, max_per_class=d.max_per_class)
    est = estimate_run(cfg, data, args.cache_dir, calibrate=not args.no_calibrate, runs_dir=args.runs_dir)
    out = output_of(args, "--out")  # claimed before any work (cli.main)
    if out:
        out.write_json(est)
    print(dumps(est, indent=2))
    return 0
