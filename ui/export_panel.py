"""Exports of a run's model in each format (engine/insight/export.py): build through the job runner, then download.

A format's zip is built when its Build button is clicked, by an export job (`JobRunner.submit_export`: `python -m engine
export` in its own process, queued like training, with a Stop; the TFLite converter's graphs and memory stay out of the
server). A fragment shows the job's line while it is queued or running; when it ends the zip's bytes are taken from the
store and its download button is offered, holding them: the first click downloads. (A deferred `data` callable was
built on the click, and the job panel's once-a-second rerun dropped its file meanwhile: "Failed to generate file".)
"""

from __future__ import annotations

import streamlit as st

from engine.errors import StudioError
from engine.insight.export import FORMAT_TITLES, FORMATS, calibration_problem
from ui import resources


def export_downloads(run_id: str, config: dict, key: str) -> None:
    """Per format: Build (an export job), its line while it builds, then its download button."""
    st.caption(
        "Download the model: each zip holds it with labels.json, a README and classify.py. Input: RGB "
        "pixels 0-255 at the run's size, preprocessing inside the model. Build a format first "
        "(seconds; TFLite int8 calibrates on training images: a minute or more), then download it."
    )
    int8_problem = calibration_problem(config)
    for col, fmt in zip(st.columns(len(FORMATS)), FORMATS):
        built_key = f"_export_{run_id}_{fmt}"
        refused = int8_problem if fmt == "tflite_int8" else ""
        if built_key not in st.session_state and col.button(
            f"Build {FORMAT_TITLES[fmt]}", key=f"{key}_build_{fmt}", disabled=bool(refused), help=refused or None
        ):
            try:
                st.session_state[built_key] = resources.job_runner().submit_export(run_id, fmt).id
            except StudioError as exc:
                col.error(str(exc))
        built = st.session_state.get(built_key)
        if isinstance(built, str):
            with col:
                _building(built_key, fmt)
        built = st.session_state.get(built_key)
        if isinstance(built, bytes):
            col.download_button(
                f"Download {FORMAT_TITLES[fmt]}",
                data=built,
                file_name=f"{run_id}-{fmt}.zip",
                mime="application/zip",
                key=f"{key}_export_{fmt}",
                on_click="ignore",
            )


@st.fragment(run_every=1.0)
def _building(built_key: str, fmt: str) -> None:
    """The export job's line, once a second; when it ends, its zip (or its error) and one rerun of the page."""
    runner, job_id = resources.job_runner(), st.session_state.get(built_key)
    job = runner.get(job_id) if isinstance(job_id, str) else None
    if job is None:
        st.session_state.pop(built_key, None)
        return
    if job.state in ("queued", "running"):
        st.caption(f"Building {FORMAT_TITLES[fmt]} … ({'waiting for the job before it' if job.state == 'queued' else 'running'})")
        return
    data = runner.take_export(job_id)
    if data is None:
        st.session_state.pop(built_key, None)
        why = runner.job_error(job_id) or ("stopped" if job.state == "cancelled" else runner.exit_description(job))
        st.error(f"{FORMAT_TITLES[fmt]} failed: {why}")
        return
    st.session_state[built_key] = data
    st.rerun()
