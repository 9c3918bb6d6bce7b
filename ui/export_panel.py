"""Download buttons for a run's model in each export format (engine/insight/export.py).

The files are built when a button is clicked (Streamlit runs a callable `data` in a
worker thread), by `python -m engine export` in a child process: the TFLite converter's
graphs and memory then stay out of the server, as training jobs do.
"""

from __future__ import annotations

import functools
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
    """One download button per format for a run with a saved model."""
    st.caption("Download the model: each zip holds it with labels.json, a README and classify.py. Input: RGB "
               "pixels 0-255 at the run's size, preprocessing inside the model. Built when you click "
               "(TFLite int8 calibrates on training images: up to a minute or more).")
    int8_problem = calibration_problem(config)
    for col, fmt in zip(st.columns(len(FORMATS)), FORMATS):
        refused = int8_problem if fmt == "tflite_int8" else ""
        col.download_button(
            FORMAT_TITLES[fmt], data=functools.partial(export_zip_bytes, runs_dir, run_id, fmt),
            file_name=f"{run_id}-{fmt}.zip", mime="application/zip", key=f"{key}_export_{fmt}",
            disabled=bool(refused), help=refused or None, on_click="ignore",
        )
