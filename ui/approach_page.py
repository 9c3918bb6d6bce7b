"""The common shape of the three approach pages: explain, summarise, form, train, live panel."""

from __future__ import annotations

import streamlit as st

from engine.config import validate
from ui import resources
from ui.dataset_source import current_report, dataset_name
from ui.distribution import distribution_fields
from ui.forms import fit_fields, form_problems, head_fields
from ui.job_view import job_panel
from ui.sidebar import base_config, weights_problem
from ui.tensorboard_logs import tensorboard_fields


def _param_counts(cfg, num_classes: int) -> None:
    try:
        counts = resources.model_summary(cfg.to_json(), num_classes)
        c = st.columns(3)
        c[0].metric("Total params", f"{counts['total_params']:,}")
        c[1].metric("Trainable params", f"{counts['trainable_params']:,}")
        c[2].metric("Non-trainable params", f"{counts['non_trainable_params']:,}")
    except Exception as exc:  # a bad setting must not take the page down
        st.warning(f"Could not build the model summary: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


def approach_page(approach: str, title: str, explanation: str, extra_fields=None) -> None:
    st.title(title)
    st.markdown(explanation)
    report = current_report()
    if report is None:
        return
    st.caption(f"Dataset: **{dataset_name()}** · {len(report.classes)} classes ({', '.join(report.classes[:8])})")
    cfg = base_config(approach)
    blocked = weights_problem()
    with st.form(f"{approach}_form"):
        st.subheader("Hyper-parameters (lecture defaults)")
        fit_fields(cfg, approach)
        distribution_fields(cfg, approach)  # only when more than one device is visible
        head_fields(cfg, approach)
        if extra_fields:
            extra_fields(cfg, approach)
        tensorboard_fields(cfg, approach)
        submitted = st.form_submit_button("Train", type="primary", disabled=bool(blocked), help=blocked or None)
    if blocked:
        st.error(f"Train is disabled: {blocked}")
    problems = form_problems(cfg)
    for problem in problems:
        st.error(problem)
    if approach == "fine_tuning" and cfg.fine_tune.epochs == 0:
        st.warning("Fine-tuning epochs is 0: only phase 1 (frozen base) will train, and nothing is unfrozen.")
    if not problems:
        _param_counts(cfg, len(report.classes))
    if submitted and not blocked and not problems:
        try:
            resources.job_runner().submit(validate(cfg))
            st.toast("Training job queued")
        except ValueError as exc:  # ConfigError: the field and what to do
            st.error(str(exc))
    st.toggle("Show jobs of all datasets", key=f"{approach}_all_datasets",
              help="Off: only jobs on the dataset chosen in the sidebar.")

    @st.fragment(run_every=1.0)
    def live() -> None:
        job_panel(approach)

    live()
