"""An approach page's learning-rate finder: queue it as a job, watch it, read the curve, use the rate.

The finder runs as `python -m engine lr-find` through the job runner, like a training job (queued,
Stop, one at a time); its result file is the only channel back (JobRunner.tool_result).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import streamlit as st

from engine.config import RunConfig
from engine.training.lr_range import RULES
from ui import resources
from ui.forms import set_field

# The form field each approach's rate goes to (ui/form_fields.fit_fields, pages/fine_tuning.py).
RATE_FIELDS = {"feature_extraction": "feature_extraction_lr", "frozen": "frozen_lr", "fine_tuning": "fine_tuning_ftlr"}


def finder_panel(approach: str, cfg: RunConfig, blocked: str = "") -> None:
    """The finder's button, its job's state and, once it ended, the chart and **Use this rate**."""
    key = f"{approach}_finder_job"
    with st.expander("Learning-rate finder: which rate to train at", expanded=key in st.session_state):
        st.caption("A short ramp of the learning rate (1e-7 → 1, one step each, 100 steps) on what this approach trains, "
                   "read from the feature cache: seconds when the cache is warm. The suggestion follows fastai's valley rule.")
        why_not = blocked or ("choose a finished frozen run to continue first: phase 2 starts from its head"
                              if approach == "fine_tuning" and not cfg.fine_tune.from_run else "")
        if st.button("Find a learning rate", key=f"{approach}_find_lr", disabled=bool(why_not), help=why_not or None):
            st.session_state[key] = resources.job_runner().submit_tool("lr-find", cfg).id
        if why_not:
            st.caption(f"Finder unavailable: {why_not}.")
        if key in st.session_state:
            _finder_live(approach, st.session_state[key])


def _finder_live(approach: str, job_id: str) -> None:
    """While the job is queued or running, a fragment redraws its line every second; when it ends the whole
    page reruns once, so **Use this rate** sets a field the page draws afresh."""
    runner = resources.job_runner()
    job = runner.get(job_id)
    if job is None or job.state not in ("queued", "running"):
        _finder_job(approach, job_id)
        return

    @st.fragment(run_every=1.0)
    def live() -> None:
        if runner.get(job_id).state in ("queued", "running"):
            _finder_job(approach, job_id)
        else:
            st.rerun()

    live()


def _finder_job(approach: str, job_id: str) -> None:
    runner = resources.job_runner()
    job = runner.get(job_id)
    if job is None:  # the server restarted: its jobs are gone
        return
    if job.state in ("queued", "running"):
        lines = [l for l in runner.log_tail(job_id, lines=20).splitlines() if l.startswith("[lr-find]")]
        st.info(f"Learning-rate finder {job.state}: {lines[-1].removeprefix('[lr-find] ') if lines else 'starting'}")
        st.button("Stop the finder", key=f"{job_id}_stop", on_click=runner.stop, args=(job_id,))
        return
    if job.state == "cancelled":
        st.caption("The finder was cancelled before it started.")
        return
    result = runner.tool_result(job_id)
    if not result:
        st.error(f"The finder failed: {runner.job_error(job_id) or runner.exit_description(job)}")
        return
    if result.get("suggested") is None:
        st.warning(f"No suggestion: only {len(result['losses'])} step(s) ran ({result['ended']}).")
        return
    st.plotly_chart(finder_figure(result), width="stretch", key=f"{job_id}_chart")
    rate = float(f"{result['suggested']:.2g}")
    c1, c2 = st.columns([2, 3])
    c1.metric("Suggested learning rate", f"{rate:g}", help=f"{RULES[result['rule']]}; steepest descent at {result['steepest']:.2g}")
    c2.caption(f"For {result['applies_to']}. {len(result['losses'])} steps, {result['ended']}; "
               f"{result['seconds']:.1f} s, feature cache misses {result['feature_cache'].get('misses', 0)}.")
    c2.button("Use this rate", key=f"{job_id}_use", on_click=_use_rate, args=(RATE_FIELDS[approach], rate), type="primary")


def _use_rate(field_key: str, rate: float) -> None:
    """Sets the form's learning-rate field (ui/forms.set_field: the browser shows it at the rerun)."""
    set_field(field_key, rate)
    if not field_key.endswith("_ftlr"):  # a rate the user chose: the run trains at it, not at a new finder's
        set_field(field_key.removesuffix("_lr") + "_findlr", False)
    st.toast(f"Learning rate set to {rate:g}")


def finder_figure(result: dict) -> go.Figure:
    """Smoothed loss (and each step's) against the learning rate on a log axis, the suggested rate marked."""
    lrs = result["learning_rates"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=lrs, y=result["losses"], mode="markers", name="loss of each step", marker={"size": 4, "opacity": 0.35}))
    fig.add_trace(go.Scatter(x=lrs, y=result["smoothed"], mode="lines", name="smoothed loss"))
    for rule, dash in (("valley", "solid"), ("steepest", "dot")):
        rate = result.get(rule)
        if rate:
            fig.add_vline(x=rate, line_dash=dash, annotation_text=f"{rule} {rate:.2g}")
    finite = [v for v in result["smoothed"] if math.isfinite(v)]
    top = min(max(finite), 4 * min(finite)) if finite else None  # the blow-up would squash the useful part
    fig.update_layout(xaxis={"type": "log", "title": "learning rate"}, yaxis={"title": "training loss", "range": [0, top * 1.05] if top else None},
                      height=320, margin={"t": 30, "b": 40})
    return fig
