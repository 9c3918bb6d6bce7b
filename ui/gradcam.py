"""Classify's "Show Grad-CAM": the heatmap of the class each answer shows, over the same photo."""

from __future__ import annotations

import streamlit as st

HELP = ("Grad-CAM: the parts of the photo that raised the score of the class shown most, from the last "
        "convolutional layer of each model's base (red = most; an ensemble's through its first model). "
        "Coarse by nature: a 160 px MobileNetV2 sees a 5 x 5 grid.")


def gradcam_toggle() -> bool:
    return st.toggle("Show Grad-CAM", key="cls_gradcam", help=HELP)


def show_gradcam(container, answer) -> None:
    """The overlay of an `inference.Answer` made with Grad-CAM, under it (one line when its model cannot be explained)."""
    cam = answer.gradcam
    if cam is None:
        if answer.gradcam_problem:  # a model this studio did not save
            container.warning(answer.gradcam_problem)
        return
    container.image(cam.overlay, caption=f"Grad-CAM for {cam.explained} ({cam.layer})")
