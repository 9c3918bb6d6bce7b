"""A run's live status: what it is doing now, with counts and an ETA from measured times.

`StatusTracker` sits between the engine's progress events (features.extract_features per
batch, training.RunCallback per batch and epoch, the run's stage changes) and whoever else
listens (the CLI's progress lines), and keeps `status.json` in the run folder up to date:

    {"stage": "caching features" | "caching augmented views" | "training" | "scoring" |
              "saving" | "finished" | "stopped" | "failed", "message": "epoch 3/20",
     "done": 400, "total": 1000, "epoch": 3, "epochs_total": 20, "step": 12, "steps_total": 50,
     "started": unix time, "updated": unix time, "eta_s": float | null, "run_eta_s": float | null,
     "run_fraction": 0..1, "finished": unix time | null}

`eta_s` is the current stage's; `run_eta_s` the whole run's, from its planned parts
(engine/store/run_clock.py: every feature pass, view, epoch, scoring and saving, first guesses
re-timed by what the run measured so far), as of `updated`, at least 1 s while the run lasts; `run_fraction` the
share of the run done, elapsed / (elapsed + run_eta_s), never going back: the page's one bar.

It is separate from metrics.json (the run's recorded state and final results) so a reader
polling progress never races the final write. Written at most every THROTTLE_S seconds,
plus at every stage change and epoch end, so a fast run does not spend its time in fsync;
and, with `start_ticking`, every TICK_S seconds when no event came: decoding a split or tracing a
step sends none for seconds, and an ETA written before them would stand still while time passed
(measured: +28 % on the sample's 1.6 s validation decode, +51 % on epoch 1's 1.3 s of tracing).

The ETA comes from what this run measured: images per second so far while caching
features (for the current pass), seconds per epoch while training — the first epoch of a
phase (graph tracing) is left out of the mean once later epochs exist, and during the first
epoch the measured seconds per step stand in.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from engine.store.run_clock import RunClock
from engine.store.runs import STATES

Progress = Callable[[dict], None]  # an engine progress event sink (the one alias: training and features use it)
THROTTLE_S = 0.5
TICK_S = 0.5  # with start_ticking: the whole-run ETA re-written this often while no event comes
END_STAGES = tuple(s for s in STATES if s != "running")  # the states a training process ends in


class StatusTracker:
    """A progress sink that writes status.json (via `write`) and forwards every event to `forward`."""

    def __init__(
        self,
        write: Callable[[dict], None],
        forward: Progress | None = None,
        *,
        started: float | None = None,
        epochs_total: int = 0,
        clock: Callable[[], float] = time.time,
        run_clock: RunClock | None = None,
    ):
        self._write, self._forward, self._clock = write, forward, clock
        self._run_clock = run_clock  # the run's planned parts (whole-run ETA); None: no whole-run ETA claimed
        self._in_epoch_left: float | None = None  # the current epoch's rest at its measured step rate
        now = clock()
        self.status: dict = {
            "stage": "starting",
            "message": "building the model",
            "done": 0,
            "total": 0,
            "epoch": 0,
            "epochs_total": epochs_total,
            "step": 0,
            "steps_total": 0,
            "started": started or now,
            "updated": now,
            "eta_s": None,
            "run_eta_s": None,
            "run_fraction": 0.0,
            "finished": None,
        }
        self._last_write = 0.0  # an event's write (throttled to THROTTLE_S)
        self._last_any = 0.0  # any write, a tick's too: a tick is due TICK_S after it
        self._pass_start: tuple[str, float, int] | None = None  # (label, time, done) of the current feature pass
        self._epoch_seconds: dict[int, list[float]] = {}  # phase -> measured epoch durations
        self._epoch_start: float | None = None
        self._phase = 1
        self._lock = threading.RLock()  # events (the run's thread) and ticks (start_ticking's) take turns
        self._ticking: threading.Event | None = None
        self._update_run_eta(now)
        self.flush()

    # --- events -------------------------------------------------------------------------
    def __call__(self, event: dict) -> None:
        try:
            with self._lock:
                self._update(event)
        finally:
            if self._forward is not None:
                self._forward(event)

    def _update(self, event: dict) -> None:
        kind = event.get("type")
        s = self.status
        now = self._clock()
        force = False
        if kind == "features":
            label, done, total = str(event.get("split", "")), int(event["done"]), int(event["total"])
            views = label.startswith("train view")
            force = self._set_stage("caching augmented views" if views else "caching features")
            self._start_part(f"pass:{label}", now)
            if self._run_clock is not None:
                self._run_clock.begin_body(now)  # its first batch is done: tracing and decoding were its setup
            if self._pass_start is None or self._pass_start[0] != label or done < self._pass_start[2]:
                self._pass_start = (label, now, done)  # a new pass: its rate is measured from its first reported batch
            what = f"augmented {label.replace('train view', 'view')} of the training images" if views else f"{label} features"
            s.update(message=f"caching {what} {done}/{total}", done=done, total=total, eta_s=self._rate_eta(now, done, total))
        elif kind == "batch":
            force = self._set_stage("training")
            self._phase = int(event.get("phase", 1))
            step, steps = int(event["batch"]), int(event["batches"])
            self._start_part(f"epoch:{int(event['epoch'])}", now)
            if self._run_clock is not None:
                self._run_clock.begin_body(now)  # the first step is done: tracing the train step was the epoch's setup
            if self._epoch_start is None or step < self._epoch_start[1]:
                self._epoch_start = (now, step)  # the epoch's step rate is measured from its first reported step
            s.update(
                epoch=int(event["epoch"]),
                step=step,
                steps_total=steps,
                done=step,
                total=steps,
                message=self._epoch_message(int(event["epoch"]), step, steps),
            )
            if event.get("epochs_total"):
                s["epochs_total"] = int(event["epochs_total"])
            s["eta_s"] = self._training_eta(now, step, steps)
        elif kind == "epoch":
            self._set_stage("training")
            force = True  # an epoch's end is always written
            phase = int(event.get("phase", 1))
            self._epoch_seconds.setdefault(phase, []).append(float(event.get("seconds", 0.0)))
            self._epoch_start, self._in_epoch_left = None, None
            if self._run_clock is not None:
                self._run_clock.end(now)
            s.update(
                epoch=int(event["epoch"]),
                epochs_total=int(event.get("epochs_total") or s["epochs_total"]),
                step=s["steps_total"],
                done=s["steps_total"],
                total=s["steps_total"],
            )
            s["message"] = f"epoch {s['epoch']}/{s['epochs_total']} done"
            s["eta_s"] = self._training_eta(now, 0, 0)
        elif kind == "checkpoint":  # an improved epoch saved the model: a piece of its own for the run's clock
            if self._run_clock is not None:
                self._run_clock.saved(float(event.get("seconds") or 0.0))
        elif kind == "stage":
            force = self._set_stage(str(event["stage"]))
            self._start_part(str(event.get("part") or event["stage"]), now)
            if event.get("message"):
                s["message"] = str(event["message"])
        elif kind == "status" and event.get("message"):
            if event.get("part"):  # a part announced before its first counts (a pass decodes its images first)
                self._start_part(str(event["part"]), now)
            message = str(event["message"])
            if message.startswith("caching "):  # said before a pass starts (decoding its images first): already that stage
                self._set_stage("caching augmented views" if "augmented view" in message else "caching features")
                s.update(done=0, total=0, eta_s=None)  # a new pass: the previous one's counts no longer apply
                self._pass_start = None
                force = True
            s["message"] = message
        self._update_run_eta(now)
        if force or now - self._last_write >= THROTTLE_S:
            self.flush(now)

    def _set_stage(self, stage: str) -> bool:
        """Sets the stage; True when it changed (then status.json is written at once)."""
        s = self.status
        if s["stage"] == stage:
            return False
        s.update(stage=stage, done=0, total=0, eta_s=None)
        if stage != "training":
            s.update(step=0, steps_total=0)
        self._pass_start = None
        return True

    def _epoch_message(self, epoch: int, step: int, steps: int) -> str:
        total = self.status["epochs_total"]
        phase = " (fine-tuning)" if self._phase == 2 else ""
        return f"epoch {epoch}/{total}{phase}, step {step}/{steps}" if total else f"epoch {epoch}, step {step}/{steps}"

    # --- ETA ----------------------------------------------------------------------------
    def _rate_eta(self, now: float, done: int, total: int) -> float | None:
        """Seconds left in the current feature pass at the images/s measured in it so far."""
        if self._pass_start is None or done <= self._pass_start[2]:
            return None
        elapsed = now - self._pass_start[1]
        if elapsed <= 0:
            return None
        return round(max(total - done, 0) * elapsed / (done - self._pass_start[2]), 1)

    def _start_part(self, key: str, now: float) -> None:
        if self._run_clock is not None and self._run_clock.start(key, now):
            self._in_epoch_left = None

    def _update_run_eta(self, now: float) -> None:
        """run_eta_s from the run's clock (the part under way with its own measured rest), run_fraction from it."""
        if self._run_clock is None:
            return
        s = self.status
        part = self._run_clock.current
        current_left, share = None, 0.0
        if part is not None and part.key.startswith("pass:") and s["stage"].startswith("caching"):
            current_left, share = s.get("eta_s"), (s["done"] / s["total"] if s["total"] else 0.0)
        elif part is not None and part.key.startswith("epoch:"):
            current_left, share = self._in_epoch_left, (s["step"] / s["steps_total"] if s["steps_total"] else 0.0)
        left = self._run_clock.seconds_left(now, current_left, share)
        elapsed = max(now - s["started"], 0.0)
        s["run_eta_s"] = round(left, 1)
        if elapsed + left > 0:  # one bar, 0 -> 1 once: it never goes back when an estimate grows
            s["run_fraction"] = round(min(max(s["run_fraction"], elapsed / (elapsed + left)), 0.99), 4)

    def epoch_estimate(self) -> float | None:
        """Measured seconds per epoch of the current phase (its first epoch left out when later ones exist)."""
        times = self._epoch_seconds.get(self._phase) or []
        if len(times) > 1:
            times = times[1:]
        return sum(times) / len(times) if times else None

    def _training_eta(self, now: float, step: int, steps: int) -> float | None:
        """The rest of this epoch at its measured step rate, plus the epochs left at the measured epoch time.

        Until two epochs of the phase are measured (the first one includes graph tracing),
        the current epoch's step rate stands in for the epoch time.
        """
        s = self.status
        running = None  # seconds per epoch at the current epoch's measured step rate
        if step and steps and self._epoch_start is not None:
            t_start, step_start = self._epoch_start
            if step > step_start and now > t_start:
                running = (now - t_start) / (step - step_start) * steps
        measured = len(self._epoch_seconds.get(self._phase) or [])
        per_epoch = self.epoch_estimate() if measured >= 2 or running is None else running
        if per_epoch is None:
            return None
        in_epoch = running * (steps - step) / steps if running is not None else 0.0
        self._in_epoch_left = in_epoch if running is not None else None
        remaining = max(s["epochs_total"] - s["epoch"], 0)  # epochs after the current (or just finished) one
        return round(in_epoch + remaining * per_epoch, 1)

    # --- writing ------------------------------------------------------------------------
    def start_ticking(self) -> None:
        """Re-writes the whole-run ETA every TICK_S seconds between events, on a daemon thread, until `finish` or
        `stop_ticking` (a run that raises past `finish` stops it in lifecycle's `finally`)."""
        if self._run_clock is None or self._ticking is not None:
            return
        stop = self._ticking = threading.Event()

        def tick() -> None:
            while not stop.wait(TICK_S):
                with self._lock:
                    if stop.is_set() or self.status["finished"]:
                        return
                    now = self._clock()
                    if now - self._last_any >= TICK_S:
                        self._update_run_eta(now)
                        self.flush(now, tick=True)

        threading.Thread(target=tick, name="status-ticker", daemon=True).start()

    def stop_ticking(self) -> None:
        if self._ticking is not None:
            self._ticking.set()

    def finish(self, state: str, message: str = "") -> None:
        """Records the run's end (finished / stopped / failed): finished time set, ETA cleared."""
        self.stop_ticking()
        with self._lock:
            now = self._clock()
            if self._run_clock is not None:
                self._run_clock.end(now)  # the last part's time, for a reader of the clock
            self.status.update(stage=state, eta_s=None, run_eta_s=None, finished=now)
            if state == "finished":  # a full bar (early stopping included); a stopped or failed run's stays where it ended
                self.status["run_fraction"] = 1.0
            self.status["message"] = message or state
            self.flush(now)

    def flush(self, now: float | None = None, tick: bool = False) -> None:
        now = now or self._clock()
        self.status["updated"] = now
        self._last_any = now
        if not tick:  # a tick never takes an event's turn: a pass's counts came 0.3 s after one and went unwritten
            self._last_write = now
        try:
            self._write(dict(self.status))
        except OSError:
            pass  # progress is best effort: a full disk is reported by the run's own writes


def elapsed_seconds(
    status: dict, *, started: float | None = None, ended: float | None = None, now: float | None = None
) -> float | None:
    """Seconds a run has taken, frozen once it ended: the one elapsed-time rule (job runner, job panel, tests).

    From `started` (when the job runner started its process; else status.json's start) to
    status.json's end, else `ended` (when the process ended), else the last update of a
    status that reached an end stage, else now. None when it never started.
    """
    start = started if started is not None else status.get("started")
    if not isinstance(start, (int, float)):
        return None
    end = status.get("finished") or ended
    if end is None and status.get("stage") in END_STAGES:
        end = status.get("updated")
    return round(max(0.0, float(end or (now if now is not None else time.time())) - float(start)), 1)
