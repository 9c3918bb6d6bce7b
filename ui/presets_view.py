"""Presets: a selector for the forms and the published numbers beside the user's result."""

from __future__ import annotations

import streamlit as st

from engine.insight.presets import PRESETS, apply_preset, published_for

NONE = "(none: the lecture defaults)"


def preset_selector(key: str, on_change=None, args: tuple = ()) -> str | None:
    """A selectbox of presets; returns the chosen name or None (`on_change(*args)` when the choice changes)."""
    names = [NONE, *PRESETS]
    choice = st.selectbox(
        "Preset",
        names,
        key=key,
        format_func=lambda n: n if n == NONE else PRESETS[n].title,
        help="Reproduce a published setup in one click; fields you change afterwards win.",
        on_change=on_change,
        args=args,
    )
    if choice == NONE:
        return None
    p = PRESETS[choice]
    st.caption(f"Source: {p.source}. {p.notes}")
    return choice


def apply_to(cfg, name: str | None):
    """The config with the preset applied (unchanged when name is None)."""
    return apply_preset(cfg, name) if name else cfg


def show_published(name: str | None, approach: str, result: dict) -> None:
    """The source's number next to the user's (result: val_accuracy / test_accuracy from the run report)."""
    if not name:
        return
    published = published_for(name, approach)
    if not published:
        st.caption(f"{PRESETS[name].title}: the source reports no number for this approach.")
        return
    cols = st.columns(len(published))
    for col, (metric, value) in zip(cols, published.items()):
        ours = result.get(metric)
        delta = None if ours is None else f"{ours - value:+.3f} yours vs published"
        col.metric(f"published {metric.replace('_', ' ')}", f"{value:.3f}", delta)
