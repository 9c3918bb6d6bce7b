"""Classify's "Show Grad-CAM": the heatmap of each selected model over the same photo."""

from __future__ import annotations

import streamlit as st

from engine.insight.explain import explain_image
from engine.models.pipeline import PipelineError

HELP = ("Grad-CAM: the parts of the photo that raised the score of the predicted class most, from the last "
        "convolutional layer of each model's base (red = most). Coarse by nature: a 160 px MobileNetV2 "
        "sees a 5 x 5 grid.")


def gradcam_toggle() -> bool:
    return st.toggle("Show Grad-CAM", key="cls_gradcam", help=HELP)


def show_gradcam(container, run, data: bytes, name: str | None) -> None:
    """The overlay for one loaded run, under its prediction (a one-line warning if it cannot be made)."""
    try:
        cam = explain_image(run, data, name=name, max_side=512)
    except PipelineError as exc:  # a model this studio did not save
        container.warning(str(exc))
        return
    container.image(cam.overlay, caption=f"Grad-CAM for {cam.explained} ({cam.layer})")
