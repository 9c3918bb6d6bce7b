"""Exports of a run's model in each format (engine/insight/export.py): build, then download.

A format's zip is built when its Build button is clicked, with a status line while it builds,
by `python -m engine export` in a child process (the TFLite converter's graphs and memory stay
out of the server, as training jobs do). Only then is its download button offered, holding the
bytes: the first click downloads. (A deferred `data` callable was built on the click, and the
job panel's once-a-second rerun dropped its file meanwhile: "Failed to generate file".)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import streamlit as st

from engine.insight.export import FORMAT_TITLES, FORMATS, calibration_problem

EXPORT_TIMEOUT_S = 900  # an int8 conversion of VGG16 at 224 px takes minutes on 2 cores
ROOT = Path(__file__).resolve().parents[1]  # the engine package's folder, for `python -m engine`


def export_zip_bytes(runs_dir: str, run_id: str, fmt: str) -> bytes:
    """The zipped export folder of one run and format, built by the CLI in a child process.

    Raises:
        RuntimeError: the export failed; the message is the CLI's last line (e.g. `error: ...`).
    """
    with tempfile.TemporaryDirectory(prefix="tls-export-") as tmp:
        out = Path(tmp) / f"{run_id}-{fmt}"
        proc = subprocess.run(
            [sys.executable, "-m", "engine", "export", run_id, "--format", fmt, "--out", str(out), "--zip",
             "--runs-dir", str(Path(runs_dir).resolve())],  # absolute: the child runs in the project folder
            cwd=ROOT, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S,
        )
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"export exited with status {proc.returncode}")
        return out.with_name(out.name + ".zip").read_bytes()


def export_downloads(runs_dir: str, run_id: str, config: dict, key: str) -> None:
    """Per format: Build (then a status line while it builds), then its download button."""
    st.caption("Download the model: each zip holds it with labels.json, a README and classify.py. Input: RGB "
               "pixels 0-255 at the run's size, preprocessing inside the model. Build a format first "
               "(seconds; TFLite int8 calibrates on training images: a minute or more), then download it.")
    int8_problem = calibration_problem(config)
    for col, fmt in zip(st.columns(len(FORMATS)), FORMATS):
        built_key = f"_export_{run_id}_{fmt}"
        refused = int8_problem if fmt == "tflite_int8" else ""
        if built_key not in st.session_state and col.button(
                f"Build {FORMAT_TITLES[fmt]}", key=f"{key}_build_{fmt}", disabled=bool(refused), help=refused or None):
            with col.status(f"Building {FORMAT_TITLES[fmt]} …") as status:
                try:
                    st.session_state[built_key] = export_zip_bytes(runs_dir, run_id, fmt)
                    status.update(label=f"{FORMAT_TITLES[fmt]} built", state="complete")
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    status.update(label=f"{FORMAT_TITLES[fmt]} failed", state="error")
                    col.error(str(exc).removeprefix("error: "))
        built = st.session_state.get(built_key)
        if isinstance(built, bytes):
            col.download_button(f"Download {FORMAT_TITLES[fmt]}", data=built, file_name=f"{run_id}-{fmt}.zip",
                                mime="application/zip", key=f"{key}_export_{fmt}", on_click="ignore")
