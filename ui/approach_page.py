"""The common shape of the three approach pages: explain, summarise, form, train, live panel."""

from __future__ import annotations

import streamlit as st

from engine.config import validate
from engine.errors import StudioError
from engine.store.jobs import DuplicateJob
from engine.training.budget import budget_sentence
from ui import estimate_view, resources
from ui.dataset_source import current_report, dataset_name
from ui.distribution import distribution_fields
from ui.finder_view import finder_panel
from ui.form_fields import fit_fields, form_problems, head_fields, take_phase_one
from ui.form_origin import changed_fields, form_note, values_of
from ui.job_view import job_panel
from ui.preset_form import preset_choice, preset_config, seeds_field
from ui.sidebar import base_config, weights_problem
from ui.sweep_view import FORM_KEYS, sweep_panel
from ui.tensorboard_logs import tensorboard_fields

BUSY_POLL_S = 1.0  # seconds between job-panel redraws while a job is queued or running
IDLE_POLL_S = 5.0  # ... and while none is


def live_job_panel(approach: str) -> None:
    """The job panel, redrawn by a timer: every BUSY_POLL_S while a job is queued or running, else every IDLE_POLL_S.

    Each poll redraws the panel (curves, results) in the server and the browser, so an idle page
    polls slowly and leaves the CPU to training; a job queued in another tab still appears.
    """
    busy = bool(resources.job_runner().active())

    @st.fragment(run_every=BUSY_POLL_S if busy else IDLE_POLL_S)
    def live() -> None:
        job_panel(approach)
        if busy != bool(resources.job_runner().active()):
            st.rerun()  # a job started elsewhere or the last one ended: the whole page once more, at the other pace

    live()


def _param_counts(cfg, num_classes: int) -> None:
    try:
        counts = resources.model_summary(cfg.to_json(), num_classes)
        c = st.columns(3)
        c[0].metric("Total params", f"{counts['total_params']:,}")
        c[1].metric("Trainable params", f"{counts['trainable_params']:,}")
        c[2].metric("Non-trainable params", f"{counts['non_trainable_params']:,}")
    except Exception as exc:  # a bad setting must not take the page down
        st.warning(f"Could not build the model summary: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


def _continued_run(approach: str, cfg, report):
    """The finished frozen run (RunRecord) fine-tuning continues, None when phase 1 trains here, or the run is gone or
    belongs to another dataset, backbone or size (the engine's one rule; the page's selector then drops it)."""
    from engine.models.backbones import image_size_for

    run_id = st.session_state.get("fine_tuning_from_run") if approach == "fine_tuning" else ""
    if not run_id:
        return None
    try:
        run = resources.run_store().load(run_id)
    except StudioError:
        return None
    problem = run.continue_problem(
        dataset_root=report.root, classes=report.classes, backbone=cfg.backbone.name, image_size=image_size_for(cfg.backbone)
    )
    return None if problem else run


def phase_two_only(run, cfg) -> str:
    """'Phase 1 is done (12 epochs, 47 s, in run X); this trains phase 2 only: 10 epochs at 1e-05.'"""
    wall = run.wall_seconds
    spent = f", {wall:.0f} s" if wall else ""
    ft = cfg.fine_tune
    rate = f"{ft.learning_rate:g}" + (
        f" (the unfrozen block at {ft.learning_rate * ft.discriminative_rate:g})" if ft.discriminative_rate != 1.0 else ""
    )
    return (
        f"Phase 1 is done ({run.epochs_run} epochs{spent}, in run {run.id}); this trains phase 2 only: "
        f"{ft.epochs} epoch{'s' if ft.epochs != 1 else ''} at {rate}."
    )


def approach_page(approach: str, title: str, explanation: str, extra_fields=None) -> None:
    st.title(title)
    st.markdown(explanation)
    report = current_report()
    if report is None:
        return
    st.caption(f"Dataset: **{dataset_name()}** · {len(report.classes)} classes ({', '.join(report.classes[:8])})")
    preset = preset_choice(approach)  # before the form: choosing one re-primes its fields at once
    cfg = preset_config(approach, preset, base_config(approach))
    baseline = preset_config(approach, preset, base_config(approach))  # what the heading calls defaults; cfg follows the form
    blocked = weights_problem()
    # Not an st.form: each change reruns the page, so the parameter counts and the fields that depend on
    # others (fine-tuning's phase 1) follow the form as it is edited, not only after Train.
    with st.container(border=True):
        heading = st.empty()  # filled once the fields are read: it says whether they are still the defaults
        phase_one = _continued_run(approach, cfg, report)
        if phase_one is not None:
            take_phase_one(baseline, phase_one)  # the run's phase 1 is no change of the user's
            st.caption(
                f"Phase 1 comes from frozen run {phase_one.id}: its epochs, learning rate and head below are that "
                "run's (choose “Train phase 1 here” below to set your own)."
            )
        fit_fields(cfg, approach, phase_one=phase_one)
        distribution_fields(cfg, approach)  # only when more than one device is visible
        head_fields(cfg, approach, phase_one=phase_one)
        if extra_fields:
            extra_fields(cfg, approach)
        if phase_one is not None:
            st.markdown(phase_two_only(phase_one, cfg))
        tensorboard_fields(cfg, approach)
        seeds = seeds_field(approach)
        keys = {d: k.format(a=approach) for d, k in FORM_KEYS.items()}
        heading.subheader(f"Hyper-parameters ({form_note(changed_fields(cfg, baseline), keys, values_of(cfg), preset)})")
        problems = form_problems(cfg)
        if not problems:  # beside the fields they follow, above Train
            _param_counts(cfg, len(report.classes))
            st.caption(budget_sentence(cfg, sum(report.counts.get("train", {}).values())))
        b1, b2 = st.columns(2)
        submitted = b1.button("Train", type="primary", disabled=bool(blocked), help=blocked or None, key=f"{approach}_train")
        estimate = b2.button(
            "Estimate time and memory",
            key=f"{approach}_estimate",
            help="Measures this machine once per backbone and size (a job of tens of seconds), then is instant.",
        )
    if blocked:
        st.error(f"Train is disabled: {blocked}")
    for problem in problems:
        st.error(problem)
    if approach == "fine_tuning" and cfg.fine_tune.epochs == 0:
        st.warning("Fine-tuning epochs is 0: only phase 1 (frozen base) will train, and nothing is unfrozen.")
    if not problems and estimate:
        estimate_view.show_estimate(cfg, resources.job_runner(), f"{approach}_estimate_job")
    else:
        estimate_view.show_measured_estimate(resources.job_runner(), f"{approach}_estimate_job")
    if submitted and not blocked and not problems:
        try:
            resources.job_runner().submit(validate(cfg), preset=preset, seeds=seeds)
            st.toast(
                "Training job queued"
                if seeds == 1
                else f"{seeds} training jobs queued (seeds {cfg.fit.seed}–{cfg.fit.seed + seeds - 1})"
            )
        except DuplicateJob as exc:  # a double click, or Train again on an unchanged form
            st.warning(f"Not queued again: {exc}.")
        except ValueError as exc:  # ConfigError: the field and what to do
            st.error(str(exc))

    live_job_panel(approach)  # right under Train: the progress line is in view after a click, not below the fold
    st.toggle(
        "Show jobs of all datasets", key=f"{approach}_all_datasets", help="Off: only jobs on the dataset chosen in the sidebar."
    )
    finder_panel(approach, cfg, blocked or "; ".join(problems))
    sweep_panel(approach, cfg, preset, blocked or "; ".join(problems))
