"""What the form's values are: the lecture defaults, a preset, or changed — by the finder, a sweep or the user.

The heading of an approach form says it, so "lecture defaults" never stands over values that Use this rate or
Apply best moved. A button that fills a field records where the value came from (`ui.forms.set_field(origin=)`);
a field that differs from the defaults without such a record, or no longer holds the recorded value, was the user's.
"""

from __future__ import annotations

import streamlit as st

from engine.config import RunConfig
from ui.forms import ORIGIN

HYPER = ("fit", "head", "augmentation", "fine_tune")  # the form's sections; data, backbone and compute are the sidebar's
NOT_HYPER = {"fit.seed", "fine_tune.from_run"}  # the sidebar's seed, fine-tuning's choice of phase 1 (said beside it)


def changed_fields(cfg: RunConfig, baseline: RunConfig) -> list[str]:
    """The dotted names of the form's values that differ from `baseline` (the lecture defaults or the preset)."""
    now, then = cfg.to_dict(), baseline.to_dict()
    return [f"{s}.{k}" for s in HYPER for k, v in now[s].items() if f"{s}.{k}" not in NOT_HYPER and then[s].get(k) != v]


def form_note(changed: list[str], field_keys: dict[str, str], values: dict[str, object], preset: str | None) -> str:
    """'lecture defaults', 'preset: best_cpu', 'changed: learning rate from the finder', 'changed: from sweep G; by you', ...

    `field_keys` maps a dotted name to its form key (where `set_field` recorded an origin), `values` a dotted name to
    its value now; an origin counts only while its field still holds the value it set.
    """
    base = f"preset: {preset}" if preset else "lecture defaults"
    origins, by_you = [], False
    for dotted in changed:
        recorded = st.session_state.get(ORIGIN + field_keys.get(dotted, ""))
        if recorded and recorded[1] == values.get(dotted):
            origins += [recorded[0]] if recorded[0] not in origins else []
        else:
            by_you = True
    if not origins and not by_you:
        return base
    changed_by = "changed by you" if not origins else "changed: " + "; ".join(origins + (["by you"] if by_you else []))
    return f"{base}, {changed_by}" if preset else changed_by


def values_of(cfg: RunConfig) -> dict[str, object]:
    """Every form value by dotted name."""
    d = cfg.to_dict()
    return {f"{s}.{k}": v for s in HYPER for k, v in d[s].items()}
