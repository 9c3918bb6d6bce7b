"""Background training jobs: one worker, a visible queue, cooperative stop.

Each job is a subprocess of the engine's own CLI (`python -m engine run --config ...
--run-id ID`), so the dashboard, the CLI and the benchmark share one code path, TensorFlow's
memory is returned when a job ends, and a crash in a job cannot take the server down. The
run store, written after every epoch, is the only channel back: `progress(job)` reads the
run's history.json / metrics.json. Stop sends SIGTERM, which the CLI turns into "finish the
batch, keep the finished epochs, save the run as stopped". A job whose process died without
recording its end (SIGKILL, out of memory) reads `interrupted`, with the epochs it finished
and the model checkpointed so far, as it does everywhere else (RunRecord.summary()).

What the runner keeps beside the run store, in its hidden `.jobs` folder: a job's config
(`JOB.config.json`, what its process reads at start; removed when the job ends) and, for a
tool job (which has no run folder and so no heartbeat.json), `JOB.owner.json`: the process's
pid, host, boot and start time, as engine/store/heartbeat.py records for runs, with the job's
command and config. So a new runner (the dashboard restarted mid-job) adopts a live tool job
as it adopts a live run: shown running, waited for, stoppable. Files a killed dashboard left
behind are swept when the next runner starts, unless their job still lives.

With `warm_start` (the dashboard's runner) the process of the next job is started while the
runner is idle and waits with TensorFlow already imported (engine/standby.py): a try then
starts ≈3 s sooner. It is the same CLI run in the same kind of process, only started early.

The runner holds no Streamlit objects and is safe to share between sessions/tabs (one
instance per server process, e.g. via st.cache_resource).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import RunConfig, validate
from engine.errors import StudioError
from engine.store import heartbeat, job_logs
from engine.store.job_logs import error_sentence, log_dir, prepend_log
from engine.store.runs import RunDamaged, RunNotFound, RunStore, new_run_id
from engine.store.status import elapsed_seconds

ENGINE_ROOT = Path(__file__).resolve().parents[2]
LOG_LINES = 200  # of stderr kept in progress()["log"], for the page's log expander


class DuplicateJob(StudioError):
    """The same settings are already queued or running; the message names that job."""


@dataclass
class Job:
    id: str  # also the run id / run folder name
    approach: str
    config: dict
    state: str = "queued"  # queued -> running -> done | cancelled
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    log_path: str = ""
    options: dict = field(
        default_factory=dict
    )  # more of the command's options by argparse dest: preset, repeat_group, sweep_point, ...
    preset: str | None = None  # the preset named at submit
    repeat_index: int = 0  # with repeat_size > 1: this job trains seed + repeat_index
    repeat_size: int = 1  # how many seeds were queued together (a repeat group)
    adopted_owner: dict | None = None  # heartbeat.json of a run started before this runner (see _adopt_live_runs)
    kind: str = "run"  # "run" (a run folder, the id is its name), a tool command ("lr-find", ...: tool_result) or "export"
    error: str = ""  # the one sentence the job's process refused with (its spec's error file), '' if none

    def to_dict(self) -> dict:
        return {
            k: getattr(self, k) for k in ("id", "approach", "state", "submitted", "started", "ended", "returncode", "log_path")
        }


class JobRunner:
    """Runs submitted configs one at a time in subprocesses; the rest wait in FIFO order."""

    def __init__(
        self,
        runs_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        python: str = sys.executable,
        warm_start: bool = False,
    ):
        self.store = RunStore(runs_dir)
        self.cache_dir = str(cache_dir) if cache_dir else None
        self.python = python
        self.warm_start = warm_start  # keep a standby process (TensorFlow imported) for the next job
        self._standby: subprocess.Popen | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._queue: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._current: tuple[Job, subprocess.Popen] | None = None
        self._stop_requested: set[str] = set()
        self._wake = threading.Event()
        self._adopt_live_runs()
        self._thread = threading.Thread(target=self._work, name="tls-job-runner", daemon=True)
        self._thread.start()
        if warm_start:
            self._standby = self._spawn_standby()

    # --- public API -------------------------------------------------------------------
    def submit(self, cfg: RunConfig, preset: str | None = None, seeds: int = 1, options: dict | None = None) -> Job:
        """Validates and queues a run; returns the Job (its id is the future run id).

        `preset` is recorded with the run (`--preset NAME`; the config already holds its values
        and the user's changes). `seeds` > 1 queues one job per seed (seed, seed+1, ...) sharing a
        repeat group, as `run --seeds N` does (which refuses --run-id); each job keeps its own run id, so each has a live
        panel and a Stop. `options` are more of `run`'s options (by argparse dest) every job of the group gets (a sweep's
        point: sweep_group, sweep_point). Returns the first job.
        """
        validate(cfg)
        if not 1 <= seeds <= 20:
            raise ValueError(f"seeds: must be between 1 and 20, got {seeds}")
        twin = self.duplicate_of(cfg, preset, seeds)
        if twin is not None:  # a double click on Train, or Train again on an unchanged form
            raise DuplicateJob(
                f"the same settings are already {twin.state} as job {twin.id}; "
                "change a setting to train another, or Stop that job first"
            )
        extra = {**({"preset": preset} if preset else {}), **(options or {})}
        group = f"{new_run_id(cfg.approach)}-x{seeds}" if seeds > 1 else None
        jobs = []
        for i in range(seeds):  # the CLI trains repeat i with seed + i on the split of the base seed
            repeat = {"repeat_group": group, "repeat_index": i} if group else {}
            jobs.append(
                Job(
                    new_run_id(cfg.approach),
                    cfg.approach,
                    cfg.to_dict(),
                    options={**extra, **repeat},
                    preset=preset or None,
                    repeat_index=i,
                    repeat_size=seeds,
                )
            )
        with self._lock:
            for job in jobs:
                self._jobs[job.id] = job
                self._queue.append(job)
        self._wake.set()
        return jobs[0]

    def submit_tool(self, command: str, cfg: RunConfig, options: dict | None = None) -> Job:
        """Queues `python -m engine COMMAND` with `cfg`'s run options, `options` (by argparse dest) and `--out` its result
        file (`lr-find`, `feature-map`, `estimate`, `data-health`: commands that answer with one JSON file); read it with
        tool_result(job id)."""
        job = Job(
            f"{command}-{new_run_id(cfg.approach)}",
            cfg.approach,
            validate(cfg).to_dict(),
            kind=command,
            options=dict(options or {}),
        )
        return self._enqueue(job)

    def submit_export(self, run_id: str, fmt: str) -> Job:
        """Queues `python -m engine export RUN --format FMT --zip` into the store's `.export/` (the TFLite converter's graphs
        and memory stay out of the server, as training does); take the zip with take_export(job id) once it has ended."""
        record = self.store.load(run_id)  # an unknown or damaged run: one line now, not a failed job later
        job = Job(
            f"export-{fmt}-{new_run_id(str(record.approach))}",
            str(record.approach),
            {},
            kind="export",
            options={"run": run_id, "format": fmt, "zip": True},
        )
        return self._enqueue(job)

    def take_export(self, job_id: str) -> bytes | None:
        """The zip an export job wrote (its folder and zip then removed from the store), None while it runs or if it failed."""
        job = self.get(job_id)
        if job is None or job.state != "done":
            return None
        folder = self._export_folder(job)
        zipped = folder.with_name(folder.name + ".zip")
        try:
            data = zipped.read_bytes()
        except OSError:
            return None
        shutil.rmtree(folder.parent, ignore_errors=True)  # the job's own folder: the export and its zip
        return data

    def _enqueue(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job)
        self._wake.set()
        return job

    def tool_result(self, job_id: str) -> dict:
        """What a tool job wrote (its command's JSON), {} before it ends or when it failed."""
        job = self.get(job_id)
        paths = [self._tool_path(job)] if job else list(self.store.root.glob(f".*/{job_id}.json"))  # a job of an earlier runner
        try:
            return json.loads(paths[0].read_text()) if paths else {}
        except (OSError, ValueError):
            return {}

    def _tool_path(self, job: Job) -> Path:
        return self.store.root / f".{job.kind}" / f"{job.id}.json"  # a dot folder: the run listing skips it

    def _export_folder(self, job: Job) -> Path:
        """`.export/JOB/<run>-<format>`: the folder name is what the zip holds, the job's folder keeps jobs apart."""
        return self.store.root / ".export" / job.id / f"{job.options['run']}-{job.options['format']}"

    def duplicate_of(self, cfg: RunConfig, preset: str | None = None, seeds: int = 1) -> Job | None:
        """A queued or running job with exactly these settings (config, preset, number of seeds), if any."""
        wanted = cfg.to_dict()
        return next(
            (
                j
                for j in self.active()
                if j.kind == "run" and j.config == wanted and j.preset == (preset or None) and j.repeat_size == seeds
            ),
            None,
        )

    def stop(self, job_id: str) -> bool:
        """Cancels a queued job, or asks a running one to stop after its current batch."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.state == "queued":
                self._queue.remove(job)
                job.state, job.ended = "cancelled", time.time()
                return True
            if job.state == "running" and self._current and self._current[0].id == job_id:
                self._stop_requested.add(job_id)
                self._current[1].send_signal(signal.SIGTERM)
                return True
            if job.state == "running" and job.adopted_owner is not None:
                pid = heartbeat.live_local_pid(job.adopted_owner)  # checked again: never signal a reused pid
                if pid is not None:
                    self._stop_requested.add(job_id)
                    os.kill(pid, signal.SIGTERM)
                    return True
        return False

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.submitted)

    def active(self) -> list[Job]:
        """Running first, then queued in order."""
        return [j for j in self.jobs() if j.state == "running"] + [j for j in self.jobs() if j.state == "queued"]

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def progress(self, job_id: str) -> dict:
        """The job's state plus what its run folder says so far (history, epoch, metrics).

        metrics["state"] and ["message"] are what the run store's summary says (so a dead
        process reads `interrupted`, a broken folder `damaged`), refined by what only the
        runner knows: a stop clicked before training started, the exit signal, the log.

        Keys: job, history, metrics, status (the run's status.json: stage, message, counts,
        eta_s; {} before it exists), elapsed_s (None while queued; frozen once it ended),
        error (one sentence for a failed/interrupted/damaged run, else '') and log (the
        stderr tail, TensorFlow's lines included: for an expander, never the headline).
        """
        job = self.get(job_id)
        out: dict = {"job": job.to_dict() if job else None, "history": {}, "metrics": {}, "status": {}}
        out["status"] = self.store.read_status(self.store.root / job_id) if job is None or job.state != "queued" else {}
        try:
            rec = self.store.load(job_id)
            summary = rec.summary()
            out["history"] = rec.history
            out["metrics"] = {**rec.metrics, "state": summary["state"], "message": summary["message"]}
        except RunNotFound:
            pass  # not started yet, or ended before creating its run folder
        except RunDamaged as exc:
            out["metrics"] = {"state": "damaged", "message": exc.reason}
        state = out["metrics"].get("state")
        if job and job.state == "done" and state in (None, "running", "interrupted"):
            # The process ended without writing its final state.
            if state is None and job_id in self._stop_requested:
                out["metrics"] = {"state": "stopped", "message": "stopped before training started"}
            elif state is None:
                reason = self.job_error(job_id)
                how = self.exit_description(job)
                out["metrics"] = {
                    "state": "failed",
                    "message": reason or f"the job ended unexpectedly ({how or 'no exit status'}); see its log",
                }
            else:  # killed (SIGKILL, out of memory) or crashed after the run folder was made
                how = self.exit_description(job)
                message = out["metrics"].get("message") or "the training process ended without recording a final state"
                out["metrics"] = {**out["metrics"], "state": "interrupted", "message": message + (f" ({how})" if how else "")}
        final = out["metrics"].get("state")
        out["error"] = error_sentence(out["metrics"].get("message", "")) if final in ("failed", "interrupted", "damaged") else ""
        out["log"] = self.log_tail(job_id, lines=LOG_LINES)
        out["elapsed_s"] = self.elapsed(job, out["status"])
        return out

    def job_error(self, job_id: str) -> str:
        """Why an ended job failed, in one sentence: what its process refused with (the spec's error file), else the end
        of a traceback in its log (a bug), else ''."""
        job = self.get(job_id)
        return (job.error if job else "") or error_sentence(self.log_text(job_id), from_log=True)

    @staticmethod
    def elapsed(job: Job | None, status: dict, now: float | None = None) -> float | None:
        """Seconds the job has run: None while queued (or cancelled before it ran); frozen once it ended.

        Counted from when the runner started the process (status.json's start when the runner
        does not know the job), to the end status.json recorded, else the process's end, else now.
        """
        if job is not None and job.started is None:
            return None
        return elapsed_seconds(status, started=job.started if job else None, ended=job.ended if job else None, now=now)

    @staticmethod
    def exit_description(job: Job) -> str:
        """'killed by SIGKILL' / 'exit status 1' for an ended job, '' if unknown."""
        rc = job.returncode
        if rc is None:
            return ""
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exit status {rc}"

    def log_text(self, job_id: str) -> str:
        """The job's whole stderr log (TensorFlow's own lines included), '' if none."""
        job = self.get(job_id)
        if not job or not job.log_path or not Path(job.log_path).exists():
            return ""
        return Path(job.log_path).read_text(errors="replace")

    def log_tail(self, job_id: str, lines: int = 5) -> str:
        return "\n".join(self.log_text(job_id).strip().splitlines()[-lines:])

    def wait(self, job_id: str, timeout: float = 600) -> Job:
        """Blocks until the job is done or cancelled (for tests and scripts)."""
        end = time.time() + timeout
        while time.time() < end:
            job = self.get(job_id)
            if job and job.state in ("done", "cancelled"):
                return job
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} still {self.get(job_id).state} after {timeout}s")

    def close(self) -> None:
        """Ends the waiting standby process, if any, and starts no other (running and queued jobs are left alone)."""
        with self._lock:
            self._closed = True
            standby, self._standby = self._standby, None
        if standby is not None:
            _end_standby(standby)

    def _adopt_live_runs(self) -> None:
        """Runs of this store whose training process still lives on this machine, though no runner of
        this process started them (the dashboard was restarted mid-job), become running jobs: shown
        with their progress and a Stop (a signal to their pid), and the queue waits for them, so one
        job at a time holds across a restart. Tool jobs likewise, by their owner files; then the
        job files of jobs that no longer live are swept."""
        for rec in self.store.list().runs:
            if rec.recorded_state != "running" or heartbeat.live_local_pid(rec.owner) is None:
                continue
            started = rec.owner.get("started")
            self._jobs[rec.id] = Job(
                rec.id,
                str(rec.config.get("approach")),
                rec.config,
                state="running",
                started=started if isinstance(started, (int, float)) else time.time(),
                adopted_owner=rec.owner,
            )
        for job_id, owner in job_logs.live_owners(self.store.root):
            started = owner.get("started")
            self._jobs[job_id] = Job(
                job_id,
                str(owner.get("approach")),
                owner["config"],
                state="running",
                started=started if isinstance(started, (int, float)) else time.time(),
                log_path=str(owner.get("log") or ""),
                adopted_owner=owner,
                kind=str(owner.get("kind") or "tool"),
            )
        job_logs.sweep(self.store.root, keep=set(self._jobs))

    def _adopted_running(self) -> bool:
        """True while an adopted job's process lives; those that ended are marked done."""
        alive = False
        with self._lock:
            for job in self._jobs.values():
                if job.adopted_owner is None or job.state != "running":
                    continue
                if heartbeat.live_local_pid(job.adopted_owner) is None:
                    job.state, job.ended = "done", time.time()
                    if job.kind != "run":
                        job_logs.remove(job_logs.path(self.store.root, job.id, "owner"))
                else:
                    alive = True
        return alive

    # --- worker -----------------------------------------------------------------------
    def spec(self, job: Job, config_path: str | os.PathLike) -> dict:
        """The job as a typed spec: its command and options by argparse dest (engine/cli/job.py makes them the command's
        flags from its own parser), and where its process writes the sentence it refuses with."""
        store = str(self.store.root)
        if job.kind == "export":  # into the store's own `.export/`: the output gate opens only that folder to `export`
            options = {**job.options, "out": str(self._export_folder(job)), "runs_dir": store}
        else:
            options = {
                "config": str(config_path),
                "data": job.config["data"]["path"],
                "approach": job.approach,
                "runs_dir": store,
                **({"cache_dir": self.cache_dir} if self.cache_dir else {}),
                **({"run_id": job.id, "quiet": True} if job.kind == "run" else {"out": str(self._tool_path(job))}),
                **job.options,
            }
        return {"command": job.kind, "options": options, "error_file": str(job_logs.path(self.store.root, job.id, "error"))}

    @staticmethod
    def _env() -> dict:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}

    def _spawn_standby(self) -> subprocess.Popen | None:
        """A process that imports TensorFlow now and waits for a job; what it prints before the job
        (or a crash while importing) goes to a log of its own, prepended to its job's log at the end."""
        log_path = log_dir() / f"standby-{os.getpid()}-{time.monotonic_ns()}.log"
        try:
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    [self.python, "-m", "engine.standby"],
                    cwd=ENGINE_ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env=self._env(),
                    text=True,
                )
        except OSError:
            return None  # jobs start cold, as without warm start
        proc.log_path = str(log_path)  # type: ignore[attr-defined]
        return proc

    def _start(self, job: Job, spec_path: str, log) -> subprocess.Popen:
        """The job's process, `python -m engine job SPEC`: the waiting standby given the job, else a fresh CLI process."""
        argv = ["job", spec_path]
        with self._lock:
            standby, self._standby = self._standby, None
        if standby is not None and standby.poll() is None:
            try:
                standby.stdin.write(json.dumps({"argv": argv, "log": job.log_path}) + "\n")
                standby.stdin.close()
                return standby
            except OSError:  # it died meanwhile (broken pipe): start cold
                _end_standby(standby)
        elif standby is not None:
            _end_standby(standby)
        return subprocess.Popen(
            [self.python, "-m", "engine", *argv], cwd=ENGINE_ROOT, stdout=subprocess.DEVNULL, stderr=log, env=self._env()
        )

    def _work(self) -> None:
        while True:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            while not self._adopted_running():
                with self._lock:
                    if not self._queue:
                        break
                    job = self._queue.popleft()
                    job.state, job.started = "running", time.time()
                self._run(job)

    def _run(self, job: Job) -> None:
        job.log_path = str(log_dir() / f"{job.id}.log")
        files = {
            what: job_logs.path(self.store.root, job.id, what) for what in ("config", "spec", "error")
        }  # a killed server's: swept later
        owner_path = None
        rc, proc = None, None
        try:
            with open(job.log_path, "w") as log:
                if job.kind not in ("run", "export"):  # the output gate takes only an existing folder (the store's `.<command>/`)
                    self._tool_path(job).parent.mkdir(parents=True, exist_ok=True)
                elif job.kind == "export":
                    self._export_folder(job).parent.mkdir(parents=True, exist_ok=True)  # the job's own folder in `.export/`
                problem = job_logs.write(files["config"], job.config) or job_logs.write(
                    files["spec"], self.spec(job, files["config"])
                )
                if problem:  # the job's one sentence, where progress() reads it
                    job.error = problem
                    log.write(f"error: {problem}\n")
                    return
                proc = self._start(job, str(files["spec"]), log)
                if job.kind != "run":  # a run's own heartbeat.json says whether it lives
                    owner_path = job_logs.write_owner(
                        self.store.root,
                        job.id,
                        getattr(proc, "pid", None),
                        kind=job.kind,
                        approach=job.approach,
                        config=job.config,
                        started=job.started,
                        log=job.log_path,
                    )
                with self._lock:
                    self._current = (job, proc)
                    if job.id in self._stop_requested:  # stop clicked between pop and start
                        proc.send_signal(signal.SIGTERM)
                rc = proc.wait()
                job.error = job_logs.read_error(files["error"])
        finally:
            job_logs.remove(*files.values(), owner_path)
            if getattr(proc, "log_path", None):  # a standby's own output came first: keep it in the job's log
                prepend_log(proc.log_path, job.log_path)
            # The next job's standby, started before the job reads as done (so a caller that waited for
            # it finds the spare there) and outside the lock (forking takes a moment).
            spare = self._spawn_standby() if self.warm_start and not self._closed else None
            with self._lock:
                self._current = None
                job.state, job.ended, job.returncode = "done", time.time(), rc
                if spare is not None and self._standby is None and not self._closed:
                    self._standby, spare = spare, None
            if spare is not None:  # the runner closed meanwhile
                _end_standby(spare)


def _end_standby(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if getattr(proc, "log_path", None):
        Path(proc.log_path).unlink(missing_ok=True)
