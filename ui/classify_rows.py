"""Classify's answers to one photo, laid out for 1 to 4 models (or more): the photo, then one row per model.

A row is the model's answer (its approach and time as the header, a one-line caption, the full run label in the
header's help), its probabilities, and its Grad-CAM with an Enlarge button (ui/gradcam.py); the ensemble's answer
is one more row. Rows, not one column per model: with four models, columns cut headers and push charts out of line.
"""

from __future__ import annotations

import streamlit as st

from engine.insight import charts
from ui.ensemble_view import show_ensemble
from ui.gradcam import show_gradcam
from ui.run_labels import approach_title, run_label, sample_label

ROW = [2, 3, 2]  # answer · probabilities · Grad-CAM
CHART_PX = 90 + 28  # the probability chart's height: its margins plus a bar per class (below)


def short_caption(run) -> str:
    """One line under a model's answer: backbone, size, its scored accuracy, a sample's bound (the rest is in help)."""
    acc, split = run.scored_accuracy
    score = f"{'test' if split == 'test' else 'val'} acc {acc:.3f}" if acc is not None else "no accuracy"
    return " · ".join(p for p in (run.backbone or "?", f"{run.image_size} px", score, sample_label(run)) if p)


def _probabilities(col, probabilities: dict, label: str, key: str) -> None:
    fig = charts.probabilities_figure(probabilities, label)
    fig.update_layout(
        height=CHART_PX + 28 * len(probabilities), margin=dict(l=10, r=10, t=40, b=10), xaxis_title=None, yaxis_title=None
    )
    col.plotly_chart(fig, key=key)


def answer_rows(n: int, name: str, preview, answers: list[tuple], together: tuple | None, show_cam: bool) -> None:
    """Photo `n` (`name`, its preview), then a row per (run, `inference.Answer`); `together`: (the ensemble's answer
    or None, why none) when the ensemble was asked for."""
    st.divider()
    st.image(preview, caption=name, width=256)  # what the models see: oriented, RGB
    classes = {tuple(a.probabilities) for _, a in answers}
    if len(classes) == 1:  # said once, not under every model
        st.caption(
            f"These models only know {', '.join(next(iter(classes)))}: they answer with one of them for any photo."
            if len(answers) > 1
            else f"This model only knows {', '.join(next(iter(classes)))}: it answers with one of them for any photo."
        )
    for run, ans in answers:
        with st.container(border=True):
            left, mid, right = st.columns(ROW, vertical_alignment="top")
            left.metric(f"{approach_title(run)} · {ans.ms:.0f} ms", ans.label, help=run_label(run))
            left.caption(short_caption(run))
            if ans.caution:
                left.warning(ans.caution[0].upper() + ans.caution[1:] + ".")
            if len(classes) > 1:
                left.caption(f"Knows only {', '.join(ans.probabilities)}.")
            _probabilities(mid, ans.probabilities, ans.label, key=f"p_{n}_{run.id}")
            if show_cam:  # each model explains the class it shows
                show_gradcam(right, ans, key=f"{n}_{run.id}", title=f"{name}: {approach_title(run)} says {ans.label}")
    if together is not None:
        answer, problem = together
        with st.container(border=True):
            main, right = st.columns([ROW[0] + ROW[1], ROW[2]], vertical_alignment="top")
            show_ensemble(main, answer, problem, key=f"e_{n}")
            if show_cam and answer is not None:
                show_gradcam(right, answer, key=f"{n}_ensemble", title=f"{name}: the ensemble says {answer.label}")
