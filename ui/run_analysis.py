"""A finished run's "errors you can learn from" on its approach page, and its preset's published numbers."""

from __future__ import annotations

import streamlit as st

from engine.errors import StudioError
from engine.store.runs import RunStoreError
from engine.training.feature_map import run_config
from ui import analysis_view, presets_view, resources
from ui.feature_map_view import feature_map_panel


def show_run_analysis(metrics: dict, run_id: str | None) -> None:
    """Per-class report beside the confusion matrix, the highest-loss gallery, the preset's published numbers."""
    val, test = metrics.get("validation") or {}, metrics.get("test") or {}
    scored = test or val
    if scored.get("confusion_matrix"):
        analysis_view.show_class_report(scored, list(scored.get("per_class") or []))
    if not run_id or not scored:  # a failed run has nothing to analyse
        return
    store = resources.run_store()
    st.caption("Errors you can learn from")
    analysis_view.show_errors(store.root / run_id, key=f"err_{run_id}")
    try:
        record = store.load(run_id)
    except RunStoreError:
        return
    if record.state == "finished":
        # Open again after the rerun that ends the map's job (the page's layout changes then, which would close it).
        with st.expander("Feature map of this run", expanded=f"fm_{run_id}_job" in st.session_state):
            try:
                feature_map_panel(run_config(store, run_id), key=f"fm_{run_id}", run_id=run_id)
            except StudioError as exc:  # an old run's config that no longer validates: one sentence, not a traceback
                st.caption(f"No feature map: {exc}")
    preset = record.resolved.get("preset")
    if preset:
        presets_view.show_published(preset, record.approach or "",
                                    {"val_accuracy": val.get("accuracy"), "test_accuracy": test.get("accuracy")})
