"""A finished run's "errors you can learn from" on its approach page, its preset's published numbers, and Train again."""

from __future__ import annotations

import streamlit as st

from engine.config import RunConfig
from engine.errors import StudioError
from engine.insight import intervals
from engine.store.runs import RunStoreError
from engine.training.feature_map import run_config
from ui import analysis_view, presets_view, resources
from ui.feature_map_view import feature_map_panel

COUNT_HELP = "photos right / photos scored, and the 95 % Wilson interval: where the accuracy on many more such photos would lie"


def accuracy_metric(container, label: str, split: dict | None, missing: str | None = None) -> None:
    """A split's accuracy as a bare `st.metric` ("1.000": what readers and the browser test read), its count and 95 %
    interval in a caption under it ("4/4, 95 % 0.51–1.00"); "—" with `missing` as help when the split was not scored."""
    split = split or {}
    acc = split.get("accuracy")
    container.metric(label, f"{acc:.3f}" if acc is not None else "—", help=None if acc is not None else missing)
    note = intervals.count_note(acc, intervals.scored_count(split))
    if note:
        container.caption(note, help=COUNT_HELP)


def show_run_analysis(metrics: dict, run_id: str | None) -> None:
    """The confusion matrix (a clicked cell shows its photos), the per-class report, the highest-loss gallery,
    the preset's published numbers; photos with their actions on the run's dataset."""
    val, test = metrics.get("validation") or {}, metrics.get("test") or {}
    scored = test or val
    store = resources.run_store()
    try:
        record = store.load(run_id) if run_id else None
    except RunStoreError:
        record = None
    root = record.dataset_root if record is not None else None
    if scored.get("confusion_matrix") and scored.get("per_class"):
        analysis_view.confusion_cells(scored, store.root / run_id if run_id else None, f"cm_{run_id}", root)
        st.caption("Confusion matrix on the " + ("test split." if test else "validation split (there is no test split)."))
    if scored.get("confusion_matrix"):
        analysis_view.show_class_report(scored, list(scored.get("per_class") or []))
    if not run_id or not scored:  # a failed run has nothing to analyse
        return
    st.caption("Errors you can learn from")
    analysis_view.show_errors(store.root / run_id, key=f"err_{run_id}", root=root)
    if record is None:
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
        presets_view.show_published(
            preset, record.approach or "", {"val_accuracy": val.get("accuracy"), "test_accuracy": test.get("accuracy")}
        )


def train_again_button(run_id: str) -> None:
    """**Train again with the same settings**: the finished run's config (less what it resolved) queued as a new run,
    e.g. after relabelling or removing photos of its dataset."""
    try:
        record = resources.run_store().load(run_id)
    except RunStoreError:
        return
    if record.state != "finished":
        return
    if st.button(
        "Train again with the same settings",
        key=f"again_{run_id}",
        help="Queues a new run with this run's settings on its dataset as it is now",
    ):
        try:
            cfg = RunConfig.from_dict({k: v for k, v in record.config.items() if k != "resolved"})
            job = resources.job_runner().submit(cfg, preset=record.resolved.get("preset") or None)
        except StudioError as exc:  # a duplicate in the queue, or a config that no longer validates: one sentence
            st.warning(f"Not queued: {exc}")
            return
        st.success(f"Queued as run {job.id}: its progress shows above when it starts.")
