"""Accuracy and loss curves side by side, with a log-scale loss and smoothing (as TensorBoard offers)."""

from __future__ import annotations

import streamlit as st

from engine.insight import charts


def curve_pair(series: list[dict], key: str) -> None:
    """Two charts (accuracy, loss) for `series`; the controls are kept per page in session state."""
    c0, c1 = st.columns(2)
    log_loss = c0.toggle("Log-scale loss", key=f"{key}_logloss")
    smoothing = c1.slider(
        "Smoothing",
        0.0,
        0.95,
        step=0.05,
        key=f"{key}_smooth",
        help="Exponential moving average of each curve (raw points stay faint), as in TensorBoard.",
    )
    left, right = st.columns(2)
    left.plotly_chart(charts.curves_figure(series, "accuracy", smoothing=smoothing), key=f"acc_{key}")
    right.plotly_chart(charts.curves_figure(series, "loss", smoothing=smoothing, log_y=log_loss), key=f"loss_{key}")
