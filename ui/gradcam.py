"""Classify's "Show Grad-CAM": the heatmap of the class each answer shows, over the same photo, and its enlargement."""

from __future__ import annotations

import streamlit as st

HELP = (
    "Grad-CAM: the parts of the photo that raised the score of the class shown most, from the last "
    "convolutional layer of each model's base (red = most; an ensemble's through its first model). "
    "Coarse by nature: a 160 px MobileNetV2 sees a 5 x 5 grid."
)
THUMB_PX = 220  # beside a model's answer: large enough to see where it looked, small enough to keep the rows level


def gradcam_toggle() -> bool:
    return st.toggle("Show Grad-CAM", key="cls_gradcam", help=HELP)


def gradcam_caption(cam) -> str:
    return f"Grad-CAM for {cam.explained} ({cam.layer})"


@st.dialog("Grad-CAM", width="large")
def _enlarged(title: str, overlay, caption: str) -> None:
    """The overlay at the dialog's full width (a modal: closing it leaves the answers as they were)."""
    st.markdown(f"**{title}**")
    st.image(overlay, caption=caption, width="stretch")


def show_gradcam(container, answer, key: str, title: str = "") -> None:
    """The overlay of an `inference.Answer` made with Grad-CAM in `container` (one line when its model cannot be
    explained), with an Enlarge button opening it at full width; `key` tells the buttons of a page apart."""
    cam = answer.gradcam
    if cam is None:
        if answer.gradcam_problem:  # a model this studio did not save
            container.warning(answer.gradcam_problem)
        return
    container.image(cam.overlay, caption=gradcam_caption(cam), width=THUMB_PX)
    if container.button("Enlarge", key=f"cam_{key}", icon=":material/zoom_in:", help="Open this Grad-CAM at full width"):
        _enlarged(title or f"{answer.label}", cam.overlay, gradcam_caption(cam))
