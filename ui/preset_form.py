"""The approach forms' preset selector, repeats and estimate: a preset re-primes the form.

Choosing a preset (outside the form, so it applies at once) sets the sidebar's backbone and
image size and drops the form's remembered values, so every field shows the preset's value;
fields changed afterwards win. The choice is remembered like a field (session and URL).
"""

from __future__ import annotations

import streamlit as st

from engine.config import default_config
from ui import presets_view
from ui.forms import KEEP, keep, remember

_KEPT = ("_all_datasets", "_preset")  # the approach's keys a preset leaves alone


def _form_keys(approach: str) -> list[str]:
    mine = (f"{approach}_", "aug_")
    return [k for k in st.session_state if str(k).removeprefix(KEEP).startswith(mine) and not str(k).endswith(_KEPT)]


def _switch(approach: str, key: str) -> None:
    """on_change: the sidebar's backbone/size from the preset; the form re-primes from the preset."""
    name = st.session_state.get(key)
    name = None if name == presets_view.NONE else name
    cfg = presets_view.apply_to(default_config(approach), name)
    if name:
        st.session_state["sb_backbone"] = cfg.backbone.name
        st.session_state["sb_image_size"] = int(cfg.backbone.image_size)
    for k in _form_keys(approach):
        st.session_state.pop(k, None)
    for q in [q for q in st.query_params if q.startswith((f"f_{approach}_", "f_aug_"))]:
        del st.query_params[q]


def preset_config(approach: str, name: str | None, cfg):
    """`cfg` (the sidebar's) with the preset applied, except the backbone and size: the sidebar shows
    the preset's once it is chosen (`_switch`), and a size changed there afterwards wins."""
    b = cfg.backbone
    chosen = (b.name, b.image_size, b.weights)
    cfg = presets_view.apply_to(cfg, name)
    cfg.backbone.name, cfg.backbone.image_size, cfg.backbone.weights = chosen
    return cfg


def preset_choice(approach: str) -> str | None:
    """The chosen preset's name (None: the lecture defaults), with its source line."""
    key = f"{approach}_preset"
    remember(key, presets_view.NONE)
    name = presets_view.preset_selector(key, on_change=_switch, args=(approach, key))
    keep(key, presets_view.NONE)
    return name


def seeds_field(approach: str) -> int:
    """'Repeat with N seeds' (inside the form): N runs with seed, seed+1, ... grouped on Compare."""
    from ui.forms import field

    return int(
        field(
            st.number_input,
            "Repeat with N seeds",
            f"{approach}_seeds",
            1,
            min_value=1,
            max_value=20,
            step=1,
            help="N runs with the sidebar's seed, seed+1, ... on the same split; Compare shows mean ± std.",
        )
    )
