"""An approach page's learning-rate finder: queue it as a job, watch it, read the curve, use the rate.

The finder runs as `python -m engine lr-find` through the job runner, like a training job (queued,
Stop, one at a time); its result file is the only channel back (JobRunner.tool_result).
A result belongs to what it was found on (dataset, backbone, image size, width, approach, and for
fine-tuning the frozen run it continues): it is offered only while the sidebar and form match it.
"""

from __future__ import annotations

import os

import streamlit as st

from engine.config import BackboneConfig, RunConfig
from engine.insight.charts import finder_figure
from engine.models import backbones
from engine.training.lr_range import RULES
from ui import resources
from ui.dataset_source import dataset_name
from ui.forms import set_field

# The form field each approach's rate goes to (ui/form_fields.fit_fields, pages/fine_tuning.py).
RATE_FIELDS = {"feature_extraction": "feature_extraction_lr", "frozen": "frozen_lr", "fine_tuning": "fine_tuning_ftlr"}


def finder_scope(config: dict, approach: str) -> tuple:
    """What a finder result belongs to: (dataset folder, backbone, image size, width or None, approach, frozen run continued).

    `config` is a RunConfig as a dict (a job's recorded config, or the form's); the size is the one trained at
    (0 = the backbone's default resolved), the width only for backbones that have widths.
    """
    b = config.get("backbone") or {}
    name = str(b.get("name", ""))
    spec = backbones.BACKBONES.get(name)
    size = backbones.image_size_for(BackboneConfig(name=name, image_size=int(b.get("image_size") or 0))) if spec else 0
    width = float(b.get("alpha", 1.0)) if spec and spec.alphas else None
    path = str((config.get("data") or {}).get("path") or "")
    from_run = str((config.get("fine_tune") or {}).get("from_run") or "") if approach == "fine_tuning" else ""
    return (os.path.realpath(path) if path else "", name, size, width, approach, from_run)


def scope_label(scope: tuple) -> str:
    """'found on pets · mobilenet_v2 · 96 px' (· width 0.5, · continuing run X where they apply)."""
    path, name, size, width, _approach, from_run = scope
    parts = [dataset_name(path), name, f"{size} px"] + ([f"width {width:g}"] if width not in (None, 1.0) else [])
    return "found on " + " · ".join(parts) + (f" · continuing run {from_run}" if from_run else "")


def _jobs_key(approach: str) -> str:
    return f"{approach}_finder_jobs"  # this session's finder jobs of the approach, oldest first


def finder_panel(approach: str, cfg: RunConfig, blocked: str = "") -> None:
    """The finder's button, its job's state and, once it ended, the chart and **Use this rate** — only for a job
    found on what the sidebar and form now say (`finder_scope`); another setup's result is named, not offered."""
    key = _jobs_key(approach)
    runner = resources.job_runner()
    here = finder_scope(cfg.to_dict(), approach)
    mine = [j for j in (runner.get(i) for i in st.session_state.get(key, [])) if j is not None]
    matching = [j for j in mine if finder_scope(j.config, approach) == here]
    with st.expander("Learning-rate finder: which rate to train at", expanded=bool(matching)):
        st.caption(
            "A short ramp of the learning rate (1e-7 → 1, one step each, 100 steps) on what this approach trains, "
            "read from the feature cache: seconds when the cache is warm. The suggestion follows fastai's valley rule."
        )
        why_not = blocked or (
            "choose a finished frozen run to continue first: phase 2 starts from its head"
            if approach == "fine_tuning" and not cfg.fine_tune.from_run
            else ""
        )
        if st.button("Find a learning rate", key=f"{approach}_find_lr", disabled=bool(why_not), help=why_not or None):
            job = runner.submit_tool("lr-find", cfg)
            st.session_state[key] = [*st.session_state.get(key, []), job.id]
            matching.append(job)
        if why_not:
            st.caption(f"Finder unavailable: {why_not}.")
        if matching:
            _finder_live(approach, matching[-1].id)
        elif mine:  # found on another dataset, backbone, size or run: its rate would mislead here
            st.caption(
                f"The last rate was {scope_label(finder_scope(mine[-1].config, approach))}, not on this "
                f"setup ({scope_label(here).removeprefix('found on ')}): find one here."
            )


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
    c1.metric(
        "Suggested learning rate", f"{rate:g}", help=f"{RULES[result['rule']]}; steepest descent at {result['steepest']:.2g}"
    )
    scope = scope_label(finder_scope(job.config, approach))
    scope = scope[0].upper() + scope[1:]
    c2.caption(
        f"{scope}, for {result['applies_to']}. {len(result['losses'])} steps, {result['ended']}; "
        f"{result['seconds']:.1f} s, feature cache misses {result['feature_cache'].get('misses', 0)}."
    )
    c2.button("Use this rate", key=f"{job_id}_use", on_click=_use_rate, args=(RATE_FIELDS[approach], rate), type="primary")


def _use_rate(field_key: str, rate: float) -> None:
    """Sets the form's learning-rate field (ui/forms.set_field: the browser shows it at the rerun)."""
    set_field(field_key, rate, "learning rate from the finder")
    if not field_key.endswith("_ftlr"):  # a rate the user chose: the run trains at it, not at a new finder's
        set_field(field_key.removesuffix("_lr") + "_findlr", False, "learning rate from the finder")
    st.toast(f"Learning rate set to {rate:g}")
