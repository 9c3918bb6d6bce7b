"""A job's stderr log: where it lives, what a standby printed before the job came, and the one sentence a page shows."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

_NOISE = re.compile(r"absl|oneDNN|TF_ENABLE_ONEDNN|cuda|tensorflow/|^\s*(I|W|E)\d{4} |^WARNING: All log|Traceback|^\s+File ", re.I)


def error_sentence(text: str, *, from_log: bool = False) -> str:
    """The one sentence a page shows for a run's error (the rest belongs in the log).

    The CLI's last `error: ...` line, else the last line that is neither TensorFlow's log noise
    nor a traceback frame. From a whole log (`from_log`) only an `error:` line or the end of a
    traceback qualifies (a log's last line is usually progress); '' when nothing does.
    """
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    if from_log and not any(line.startswith("Traceback (most recent call last)") for line in lines):
        return ""
    human = [line for line in lines if not _NOISE.search(line)]
    return human[-1] if human else ""


def log_dir() -> Path:
    """The folder of every job's log (the system temp folder's tls-jobs)."""
    path = Path(tempfile.gettempdir()) / "tls-jobs"
    path.mkdir(exist_ok=True)
    return path


def prepend_log(standby_log: str, job_log: str) -> None:
    """The job's log, preceded by what its standby printed before the job came (then the standby's log goes)."""
    try:
        before = Path(standby_log).read_text(errors="replace")
        if before:
            after = Path(job_log).read_text(errors="replace") if Path(job_log).exists() else ""
            Path(job_log).write_text(before + after)
        Path(standby_log).unlink(missing_ok=True)
    except OSError:
        pass  # the log is for reading; the run's outcome is in the run store
