"""The training forms' "Write TensorBoard logs" checkbox.

The folder is the server's (TLS_TENSORBOARD_DIR, default ./tensorboard), shown but not
typed: a text box would let any visitor make the server write wherever it may. Each run
logs to <folder>/<run id>, so one `tensorboard --logdir <folder>` shows them all.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine import settings
from engine.config import RunConfig

FOLDER_ENV = settings.TENSORBOARD_DIR


def tensorboard_folder() -> Path:
    """Where the dashboard's runs write TensorBoard logs (absolute: jobs run in another working directory)."""
    return settings.tensorboard_dir()


def tensorboard_fields(cfg: RunConfig, key: str) -> None:
    """Sets cfg.compute.tensorboard to the server's folder when the box is ticked, else leaves it off."""
    folder = tensorboard_folder()
    if st.checkbox(
        "Write TensorBoard logs",
        value=False,
        key=f"{key}_tensorboard",
        help=f"Per-epoch loss/accuracy and the run's settings, under {folder}/<run id>. "
        f"View them with: tensorboard --logdir {folder}  (the folder is set by {FOLDER_ENV}).",
    ):
        cfg.compute.tensorboard = str(folder)
