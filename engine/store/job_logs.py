"""A job's files: its stderr log (where it lives, what a standby printed before the job came, the one sentence a
page shows) and what the job runner keeps in the run store's hidden `.jobs` folder (the job's config, a tool
job's owner record), swept when their job no longer lives."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

from engine.store import heartbeat

JOBS_FOLDER = ".jobs"  # in the run store: a dot folder, never listed as a run
STARTING_S = 60.0  # a config younger than this may be read right now by a job another runner starts: never swept

_NOISE = re.compile(
    r"absl|oneDNN|TF_ENABLE_ONEDNN|cuda|tensorflow/|^\s*(I|W|E)\d{4} |^WARNING: All log|Traceback|^\s+File ", re.I
)


def error_sentence(text: str, *, from_log: bool = False) -> str:
    """The one sentence a page shows for a run's error (the rest belongs in the log).

    The CLI's last `error: ...` line, else the last line that is neither TensorFlow's log noise
    nor a traceback frame. From a whole log (`from_log`) only an `error:` line or the end of a
    traceback qualifies (a log's last line is usually progress); '' when nothing does.
    """
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: ") :]
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


# --- the runner's files in the run store ------------------------------------------------------
def path(runs_root: Path, job_id: str, what: str) -> Path:
    """`RUNS/.jobs/JOB.<what>.json`: what is `config` (the RunConfig the job's process reads), `spec` (its command and
    options, engine/cli/job.py), `error` (the sentence its process refused with) or `owner` (a tool job's liveness)."""
    return Path(runs_root) / JOBS_FOLDER / f"{job_id}.{what}.json"


def write(target: Path, doc: dict) -> str:
    """Writes `doc` as JSON (temp file + rename); '' or the one sentence why it could not."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, allow_nan=False))
        os.replace(tmp, target)
        return ""
    except (OSError, ValueError) as exc:
        return f"cannot write the job's files into {target.parent} ({getattr(exc, 'strerror', None) or exc}); make the run store writable"


def read_error(target: Path) -> str:
    """The sentence a job's process refused with (`cli.main` writes it for a job), '' when it wrote none."""
    doc = _read_json(target)
    return doc.get("error", "") if isinstance(doc.get("error"), str) else ""


def remove(*paths: Path | None) -> None:
    """Removes the job's files; one that is already gone (or cannot be) is no error: the next runner sweeps it."""
    for target in paths:
        try:
            if target is not None:
                target.unlink(missing_ok=True)
        except OSError:
            pass


def write_owner(runs_root: Path, job_id: str, pid: int | None, **job) -> Path | None:
    """A tool job's liveness record: its process's pid, host, boot and start time (heartbeat.identity, as a
    run's heartbeat.json holds), with `job` (kind, approach, config, started, log). None when not written."""
    if not isinstance(pid, int):
        return None
    stat = heartbeat._proc_stat(pid)
    target = path(runs_root, job_id, "owner")
    owner = {**heartbeat.identity(), "pid": pid, "process_start": stat[1] if stat else None, **job}
    return None if write(target, owner) else target  # unwritten: a restarted dashboard won't see it; the job runs on


def live_owners(runs_root: Path) -> list[tuple[str, dict]]:
    """(job id, owner record) of every tool job whose process still lives on this machine."""
    out = []
    for owner_path in sorted((Path(runs_root) / JOBS_FOLDER).glob("*.owner.json")):
        owner = _read_json(owner_path)
        if isinstance(owner.get("config"), dict) and isinstance(owner.get("pid"), int) and heartbeat.live_local_pid(owner):
            out.append((owner_path.name.split(".")[0], owner))
    return out


def sweep(runs_root: Path, keep: set[str]) -> int:
    """Removes the runner's files of jobs not in `keep` (what a killed dashboard left); a config written in the
    last STARTING_S seconds stays (another runner may be starting its job). Returns how many went."""
    gone, now = 0, time.time()
    for leftover in (Path(runs_root) / JOBS_FOLDER).glob("*.json"):
        if leftover.name.split(".")[0] in keep:
            continue
        try:
            if leftover.name.endswith(".config.json") and now - leftover.stat().st_mtime < STARTING_S:
                continue
            leftover.unlink()
            gone += 1
        except OSError:
            pass
    return gone


def _read_json(source: Path) -> dict:
    try:
        doc = json.loads(source.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
