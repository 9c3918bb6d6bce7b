"""Measures the whole-run ETA against the truth: runs `python -m engine run ARGS`, reads its status.json every
half second, and prints, from the moment it ends, each sample's elapsed time, the ETA it showed and the time
that was really left, with the error. The issue's bar (31): from a quarter of the wall time on, every ETA
within 20 % of the time left (`--from`, `--within`), each ETA held to the time left from its `updated` time and
the last second left out (no ETA is within 20 % of it). Exit 0 when met, 1 when not.

    python scripts/eta_check.py -- --data DATA --backbone mobilenet_v2 --weights FILE --image-size 96 \
        --approach frozen --epochs 6 --views 3

The run's own `--runs-dir` and `--cache-dir` are a fresh temporary folder unless given (a fresh cache makes every
feature pass run, as a first run does); `--calibration FILE` copies a stored calibration.json into that cache first,
so the ETA starts from this machine's measured rates.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sample_run(
    run_args: list[str], work: Path, every_s: float = 0.5
) -> tuple[list[tuple[float, float | None, float, str]], float]:
    """([(elapsed, run_eta_s, run_fraction, message)], wall seconds) of one run."""
    runs = Path(run_args[run_args.index("--runs-dir") + 1]) if "--runs-dir" in run_args else work / "runs"
    cmd = [sys.executable, "-m", "engine", "run", *run_args]
    if "--runs-dir" not in run_args:
        cmd += ["--runs-dir", str(runs)]
    if "--cache-dir" not in run_args:
        cmd += ["--cache-dir", str(work / "cache")]
    log = work / "stderr.log"  # a file, not a pipe: a full pipe would stall the run
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
    samples = []
    while proc.poll() is None:
        time.sleep(every_s)
        for status in runs.glob("*/status.json"):  # a fresh runs folder: this run's only
            try:
                s = json.loads(status.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # being replaced
            # status.json's ETA is as of its `updated` time: the truth it is held to is the time left from then
            samples.append((float(s["updated"]), s.get("run_eta_s"), s.get("run_fraction") or 0.0, s.get("message", "")))
    if proc.returncode != 0:
        sys.exit(f"the run failed (exit {proc.returncode}):\n{log.read_text()[-2000:]}")
    final = json.loads(next(runs.glob("*/status.json")).read_text())  # the run's own start and end, not the process's
    began, ended = float(final["started"]), float(final.get("finished") or time.time())
    unique = {sample[0]: sample for sample in samples}  # a write read twice is one sample
    return [(t - began, eta, f, m) for t, (_, eta, f, m) in sorted(unique.items()) if t <= ended], ended - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=Path, help="a calibration.json to copy into the run's fresh cache")
    parser.add_argument("--from", dest="start", type=float, default=0.25, help="share of the wall time the bar starts at")
    parser.add_argument("--within", type=float, default=0.20, help="largest relative error allowed from then on")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then `python -m engine run`'s arguments")
    args = parser.parse_args(argv)
    run_args = [a for a in args.run_args if a != "--"]
    with tempfile.TemporaryDirectory(prefix="tls-eta-") as tmp:
        work = Path(tmp)
        if args.calibration and "--cache-dir" not in run_args:
            (work / "cache").mkdir()
            shutil.copy(args.calibration, work / "cache" / "calibration.json")
        samples, wall = sample_run(run_args, work)
    worst, rows = 0.0, []
    for elapsed, eta, fraction, message in samples:
        if eta is None:
            continue
        left = wall - elapsed
        error = (eta - left) / left if left > 0 else 0.0
        counted = elapsed >= args.start * wall and left >= 1.0  # the last second: no ETA can be 20 % of it
        if counted:
            worst = max(worst, abs(error))
        rows.append(f"{elapsed:6.1f} {eta:7.1f} {left:7.1f} {error:+7.0%} {fraction:5.2f} {'*' if counted else ' '} {message}")
    print(f"{'elapsed':>6} {'eta':>7} {'left':>7} {'error':>7} {'bar':>5}   message  (* counted)")
    print("\n".join(rows[:: max(len(rows) // 60, 1)]))
    verdict = "met" if worst <= args.within else "NOT met"
    print(f"wall {wall:.1f} s; worst error from {args.start:.0%} of the run on: {worst:.0%} ({verdict}, bar {args.within:.0%})")
    return 0 if worst <= args.within else 1


if __name__ == "__main__":
    sys.exit(main())
