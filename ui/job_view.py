"""The live job panel of an approach page and a run's results.

What the panel says comes from the run's own status (engine: status.json via
`JobRunner.progress`): what it is doing with counts, a measured ETA, elapsed time frozen when
the run ends, and "epoch k/N" with N the planned epochs (a run stopped after 1 of 3 reads
1/3). Only jobs on the current dataset are shown unless "All datasets" is ticked.
"""

from __future__ import annotations

import json
import time

import streamlit as st

from engine.insight import charts
from engine.store.job_logs import error_sentence
from engine.store.runs import FINAL_STATES, RunStoreError
from ui import resources
from ui.curves import curve_pair
from ui.dataset_source import dataset_name
from ui.run_analysis import accuracy_metric, show_run_analysis, train_again_button

try:
    from ui.export_panel import export_downloads
except ImportError:  # the export helper's panel (engine/insight/export.py) may land after this module
    export_downloads = None

FINAL = FINAL_STATES


def one_sentence(text: str) -> str:
    """The engine's one sentence for an error (job_logs.error_sentence), in the dashboard's words."""
    return error_sentence(text).replace("--weights PATH", "a Local file in the sidebar") or "the job ended unexpectedly"


def _planned(config: dict) -> int:
    """The epochs a job's config plans (engine/training/plan.planned_epochs), 0 for a config it cannot read."""
    from engine.config import ConfigError, RunConfig
    from engine.training.plan import planned_epochs

    try:
        return planned_epochs(RunConfig.from_dict(config))
    except (ConfigError, TypeError, AttributeError):
        return 0


def _minutes(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def progress_line(job, prog: dict, now: float | None = None) -> tuple[float, str]:
    """(bar fraction, text) for a job: what it does, with counts; elapsed (frozen at the end); the whole run's ETA.

    The bar and the ETA are the whole run's (status.json's run_fraction and run_eta_s): one bar from 0 to 1 once,
    however many feature passes, views, phases and epochs the run has."""
    now = time.time() if now is None else now
    metrics, status = prog.get("metrics") or {}, prog.get("status") or {}
    done = len((prog.get("history") or {}).get("loss", []))
    total = status.get("epochs_total") or metrics.get("epochs_total") or _planned(job.config) or max(done, 1)
    state = "queued" if job.state == "queued" else metrics.get("state") or ("running" if job.state == "running" else job.state)
    if state == "queued":
        return 0.0, "queued: waiting for the running job to finish"  # no elapsed time before it starts
    if job.state == "cancelled":
        return 0.0, "cancelled: it never started"
    elapsed = max(0.0, float(prog.get("elapsed_s") or 0.0))  # the job runner's (status.elapsed_seconds), frozen at the end
    if state in FINAL:  # the run's own wall time, the figure its results and Compare show; start-up said apart
        wall = metrics.get("wall_seconds")
        took = f"took {elapsed:.0f}s"
        if isinstance(wall, (int, float)) and wall <= elapsed:
            took = f"took {wall:.0f}s" + (f" (+{elapsed - wall:.0f}s start-up)" if elapsed - wall >= 1 else "")
        # finished: a full bar, early stopping or not; else where the run's own bar stood when it ended
        share = 1.0 if state == "finished" else status.get("run_fraction") or done / total
        return min(max(float(share), 0.0), 1.0), f"{state}: epoch {done}/{total} · {took}"
    doing = status.get("message") or (f"epoch {done}/{total}" if done else f"preparing; epoch 1/{total} next")
    run_eta, updated = status.get("run_eta_s"), status.get("updated")
    if isinstance(run_eta, (int, float)) and run_eta > 0:  # the whole run, from its planned parts (engine/store/run_clock.py)
        if isinstance(updated, (int, float)):  # said as of its write (up to TICK_S old): less the time since, never 0
            run_eta = max(run_eta - max(now - updated, 0.0), 1.0)
        fraction = float(status.get("run_fraction") or 0.0)  # one bar for the whole run, 0 -> 1 once
        return min(max(fraction, 0.0), 1.0), f"running: {doing} · elapsed {elapsed:.0f}s · about {_minutes(run_eta)} left"
    # a status.json without the whole run's clock (written before it existed): the stage's own counts and ETA
    epoch, steps = status.get("epoch") or 0, status.get("steps_total") or 0
    if status.get("stage") == "training" and epoch:  # the whole run's share: finished epochs + this epoch's steps
        fraction = (epoch - 1 + (status.get("step") or 0) / steps if steps else epoch) / total
    elif status.get("total"):  # a counted stage, e.g. "caching validation features 400/1000"
        fraction = (status.get("done") or 0) / status["total"]
    else:
        fraction = done / total
    eta = status.get("eta_s")
    tail = f" · ETA {eta:.0f}s" if isinstance(eta, (int, float)) and eta > 0 else " · ETA after the first measured steps"
    return min(max(fraction, 0.0), 1.0), f"running: {doing} · elapsed {elapsed:.0f}s{tail}"


def _on_dataset(job) -> bool:
    return (job.config.get("data") or {}).get("path") == st.session_state.get("data_path", "")


TOOL_LABELS = {
    "run": "",
    "lr-find": " learning-rate finder",
    "feature-map": " feature map",
    "estimate": " estimate (measuring this machine)",
    "export": " export",
    "data-health": " data health",
}  # what a queued job does


def job_panel(approach: str) -> None:
    """This page's jobs as the job runner has them: running on top (progress, Stop), queued under it
    (each with Cancel), the last ended job with its results below. Nothing is remembered here."""
    runner = resources.job_runner()
    everything = st.session_state.get(f"{approach}_all_datasets", False)
    elsewhere = [j for j in runner.active() if j.approach != approach or j.kind != "run"]
    if elsewhere:
        st.caption(
            "Also in the queue: "
            + " → ".join(
                f"{charts.APPROACH_TITLES.get(j.approach, j.approach)}{TOOL_LABELS.get(j.kind, ' ' + j.kind)} ({j.state})"
                for j in elsewhere
            )
        )
    for j in (j for j in elsewhere if j.kind != "run" and j.adopted_owner is not None and j.state == "running"):
        st.button(
            f"Stop the{TOOL_LABELS.get(j.kind, ' ' + j.kind)} job {j.id} (started before the dashboard restarted)",
            key=f"stop_{j.id}",
            on_click=runner.stop,
            args=(j.id,),
        )  # its page lost it with the old session
    mine = [
        j for j in runner.jobs() if j.kind == "run" and j.approach == approach and (everything or _on_dataset(j))
    ]  # finder jobs: finder_view
    # One snapshot of the states: the runner's thread moves jobs on while this draws, and a job read as running
    # here and as done further down would be drawn twice, its widgets' keys with it (StreamlitDuplicateElementKey).
    state = {j.id: j.state for j in mine}
    for job in (j for j in mine if state[j.id] == "running"):
        _live_job(runner, job, approach)
    queued = [j for j in mine if state[j.id] == "queued"]
    for place, job in enumerate(queued, start=1):
        left, right = st.columns([5, 1])
        left.caption(
            f"Queued {place}/{len(queued)}{_seed_note(job)}: run {job.id}{_point_note(job)}, starts when the job before it ends"
        )
        right.button("Cancel", key=f"cancel_{job.id}", on_click=runner.stop, args=(job.id,))  # before the rerun draws
    ended = [j for j in mine if state[j.id] in ("done", "cancelled")]
    for job in [j for j in ended if state[j.id] == "cancelled"][-3:]:
        st.caption(f"cancelled{_seed_note(job)}: run {job.id}{_point_note(job)} never started")
    finished = [j for j in ended if state[j.id] == "done"]
    if finished:
        if len(mine) > len(ended):
            st.markdown("**Last ended job**")
        _ended_job(runner, finished[-1], approach)


def _point_note(job) -> str:
    """' · sweep point: learning rate 0.0001, dropout 0.5' for a sweep's job (its recorded --sweep-point), else ''."""
    from engine.insight.sweeps import format_value, sweepable

    try:
        point = json.loads((job.options or {}).get("sweep_point") or "{}")
    except (TypeError, ValueError):
        return ""
    if not isinstance(point, dict) or not point:
        return ""
    table = sweepable()

    def words(dotted: str) -> str:  # the knob as its flag reads, in words: fine-tune-learning-rate -> fine tune learning rate
        return (table[dotted]["flag"] if dotted in table else dotted.rsplit(".", 1)[-1]).replace("-", " ").replace("_", " ")

    return " · sweep point: " + ", ".join(f"{words(d)} {format_value(v)}" for d, v in point.items())


def _seed_note(job) -> str:
    seed = (job.config.get("fit") or {}).get("seed")
    return (
        f" (seed {seed + job.repeat_index}, {job.repeat_index + 1} of {job.repeat_size})"
        if job.repeat_size > 1 and seed is not None
        else ""
    )


def _live_job(runner, job, approach: str) -> None:
    """A running job: dataset, progress with its measured ETA, Stop, the curves so far."""
    prog = runner.progress(job.id)
    fraction, text = progress_line(job, prog)
    st.caption(f"Dataset: **{dataset_name((job.config.get('data') or {}).get('path', ''))}** · run {job.id}{_seed_note(job)}")
    st.progress(fraction, text=text)
    if text.split(":", 1)[0] not in FINAL:
        st.button("Stop", key=f"stop_{job.id}", on_click=runner.stop, args=(job.id,))
    hist = prog.get("history") or {}
    if hist.get("loss"):
        curve_pair(
            [{"label": charts.APPROACH_TITLES[approach], "approach": approach, "history": hist}], key=f"{approach}_{job.id}"
        )


def _ended_job(runner, job, approach: str) -> None:
    """An ended job: how it ended, its curves and results."""
    prog = runner.progress(job.id)
    fraction, text = progress_line(job, prog)
    st.caption(f"Dataset: **{dataset_name((job.config.get('data') or {}).get('path', ''))}** · run {job.id}{_seed_note(job)}")
    st.progress(fraction, text=text)
    hist, metrics = prog.get("history") or {}, prog.get("metrics") or {}
    if hist.get("loss"):
        curve_pair(
            [{"label": charts.APPROACH_TITLES[approach], "approach": approach, "history": hist}], key=f"{approach}_{job.id}"
        )
    state = text.split(":", 1)[0]
    if state in FINAL:
        render_results(metrics, state, job.id, error=prog.get("error"), log=prog.get("log") or runner.log_tail(job.id, 40))


def render_results(metrics: dict, state: str, run_id: str | None = None, error: str | None = None, log: str = "") -> None:
    if state == "failed":
        st.error(f"Training failed: {one_sentence(error or metrics.get('message', ''))}")
        if log:
            with st.expander("Log of the training process"):
                st.code(log, language=None)
    elif state in ("interrupted", "damaged"):
        st.warning(f"Run {state}: {metrics.get('message', '')}")
        if state == "damaged":
            return
    elif metrics.get("message"):
        st.info(metrics["message"])
    val, test = metrics.get("validation") or {}, metrics.get("test") or {}
    c = st.columns(4)
    accuracy_metric(c[0], "Validation accuracy", val)
    accuracy_metric(c[1], "Test accuracy", test, missing="this dataset has no test split")
    c[2].metric("Trainable params", f"{metrics.get('trainable_params', 0):,}")
    c[3].metric("Wall time", f"{metrics.get('wall_seconds', 0):.0f}s")
    if run_id and state == "finished":
        train_again_button(run_id)  # e.g. after acting on photos below
    show_run_analysis(metrics, run_id)  # confusion matrix (its cells' photos), per-class report, errors, published numbers
    record = _saved_run(run_id) if run_id else None
    if record is not None and export_downloads is not None:
        export_downloads(record.id, record.config, key=record.id)


def _saved_run(run_id: str):
    """The run's record when it has a saved model to export, else None."""
    try:
        record = resources.run_store().load(run_id)
    except RunStoreError:
        return None
    return record if record.model_path.exists() else None
