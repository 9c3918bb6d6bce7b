"""Compare's "Manage runs": delete runs from the store (the list is already filtered by dataset)."""

from __future__ import annotations

import streamlit as st

from engine.store.runs import RunStoreError
from ui import resources
from ui.run_labels import run_label


def manage_runs(runs: list) -> None:
    """An expander to delete chosen runs (their folders, model included), after a confirmation tick."""
    with st.expander("Manage runs"):
        doomed = st.multiselect(
            "Runs to delete",
            [r.id for r in runs if r.state != "running"],
            format_func={r.id: run_label(r) for r in runs}.get,
            key="cmp_delete",
        )
        sure = st.checkbox("Yes, delete these runs and their models", key="cmp_delete_sure")
        if st.button("Delete", key="cmp_delete_go", disabled=not (doomed and sure)):
            store = resources.run_store()
            for rid in doomed:
                try:
                    store.delete(rid)
                except RunStoreError as exc:
                    st.error(str(exc))
            for key in ("cmp_delete", "cmp_delete_sure", "cmp_runs"):
                st.session_state.pop(key, None)
            st.rerun()
