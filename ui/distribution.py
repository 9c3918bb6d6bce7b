"""The training forms' "Distribution" choice, shown only where there is something to distribute over.

A job is one CLI process on this machine, so the dashboard offers `mirrored` (all local
GPUs) when it sees more than one device; several machines (`multi_worker`) are started
from the command line on every worker (docs/gpus.md). The batch size in the form is per
replica, and the global batch (per replica x replicas) is shown next to it.
"""

from __future__ import annotations

import streamlit as st

from engine.config import RunConfig
from engine.training.distribute import visible_device_count

CHOICES = {"none": "One device", "mirrored": "All local GPUs (mirrored)"}


def distribution_fields(cfg: RunConfig, key: str) -> None:
    """Sets cfg.compute.distribute from a radio when more than one device is visible; else leaves "none"."""
    devices = visible_device_count()  # read once per server process
    if devices < 2:
        return
    cfg.compute.distribute = st.radio(
        "Distribution",
        list(CHOICES),
        format_func=CHOICES.get,
        key=f"{key}_distribute",
        horizontal=True,
        help="Mirrored: one copy of the model per GPU, each global batch split between them, gradients averaged. "
        "Several machines: run `python -m engine run --distribute multi_worker` on each (see docs/gpus.md).",
    )
    replicas = devices if cfg.compute.distribute == "mirrored" else 1
    per = int(cfg.fit.batch_size)
    st.caption(f"Batch size is per replica: {per} per replica × {replicas} replica(s) = global batch {per * replicas}.")
