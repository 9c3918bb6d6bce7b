"""Compare's honest parts: cost beside accuracy, repeats as mean ± std, where the runs disagree."""

from __future__ import annotations

import streamlit as st

from ui import analysis_view, estimate_view, resources
from ui.run_labels import approach_title


def cache_note(metrics: dict) -> str:
    """'cached rerun' when the run's training inputs came from the cache (its time is not a from-scratch cost);
    'partly cached (validation)' when only other splits did; 'from scratch' when it computed everything."""
    stats = metrics.get("feature_cache")
    if not isinstance(stats, dict):
        return "—"
    reused = stats.get("reused_splits")
    if reused is None:  # runs recorded before the splits were: only the count is known
        return "cached rerun" if stats.get("hits") else "from scratch"
    if "train" in reused:
        return "cached rerun"
    return f"partly cached ({', '.join(reused)})" if reused else "from scratch"


def images_per_second(r) -> str:
    """Training throughput (images through the trainable part per second, all epochs of this run)."""
    value = r.images_per_second
    return f"{value:,.0f}" if isinstance(value, (int, float)) and value > 0 else "—"


def wall_time(r, runs: list) -> str:
    """The run's wall time; fine-tuning that continued a frozen run adds that run's time as its phase 1."""
    if r.wall_seconds is None:
        return "—"
    source = (r.config.get("fine_tune") or {}).get("from_run") if r.approach == "fine_tuning" else ""
    if not source:
        return f"{r.wall_seconds:,.0f}"
    first = next((o for o in runs if o.id == source), None)
    if first is None or first.wall_seconds is None:
        return f"{r.wall_seconds:,.0f} + phase 1 in run {source}"
    return f"{r.wall_seconds + first.wall_seconds:,.0f} ({r.wall_seconds:,.0f} + {first.wall_seconds:,.0f} phase 1, run …{source[-6:]})"


def cost_columns(r) -> dict:
    """Cost beside accuracy: images/s when measured, cache use, the estimate's error."""
    return {"images/s": images_per_second(r), "feature cache": cache_note(r.metrics),
            "estimate vs actual": estimate_view.estimate_error(r) or "—"}


def show_repeats(runs: list, metric: str) -> None:
    """Repeat groups (runs trained with seeds N, N+1, ...): mean ± std with error bars and overlap."""
    if not any(r.repeat_group for r in runs):
        st.caption("No repeated runs yet: use “Repeat with N seeds” on an approach page (CLI: `--seeds 3`) "
                   "to see mean ± std instead of one seed's number.")
        return
    st.subheader("Repeats over seeds")
    analysis_view.show_repeat_groups(runs, metric)


def show_disagreements(picked: list) -> None:
    """Images where the picked runs predict different classes (only runs on the same split agree to compare)."""
    if len(picked) < 2:
        return
    with st.expander("Images where the selected runs disagree"):
        root = resources.run_store().root
        labels = {f"{approach_title(r)} ({r.id[-6:]})": root / r.id for r in picked}
        analysis_view.show_disagreements(labels)
