"""A training process started before its job: TensorFlow and Keras already imported when it comes.

Why: importing TensorFlow and Keras takes ≈3 s of this 2-core CPU, a tenth of a second try
whose frozen work is all cached (≈30 s). The dashboard's job runner (engine/store/jobs.py, warm
start) keeps one standby waiting while it is idle; a job hands it one line on stdin,
`{"argv": [...], "log": PATH}`. The standby points its stderr at the job's log and runs
exactly what `python -m engine ARGV...` runs, then exits. So it is still one process per
job, with the run store as the only channel back, only started earlier. An empty line or
EOF (the runner went away) ends it quietly.

Run as `python -m engine.standby`; nothing else uses it.
"""

from __future__ import annotations

import json
import os
import sys


def preload() -> None:
    """What every job imports first: the seconds a standby saves."""
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    from engine import cli  # noqa: F401
    from engine.training.approaches import RUNNERS  # noqa: F401  (modeling, features, training, ...)


def run_job(line: str) -> int:
    """Runs the job a runner handed over: stderr to its log, then the CLI with its arguments."""
    spec = json.loads(line)
    fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)  # TensorFlow's C++ logging writes to fd 2 as well as Python's sys.stderr
    os.close(fd)
    from engine.cli import main

    return main([str(a) for a in spec["argv"]])


def main() -> int:
    preload()
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    return run_job(line)


if __name__ == "__main__":
    sys.exit(main())
