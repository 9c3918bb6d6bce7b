import pandas as pd
import streamlit as st

from engine.insight import charts
from engine.insight.intervals import accuracy_text
from engine.insight.rates import learning_rate_label, learning_rate_source, stored_finder_results
from engine.insight.sweeps import point_label
from ui import resources
from ui.access import require_token
from ui.compare_extras import (
    accuracy_point,
    best_of,
    cost_columns,
    scored,
    show_disagreements,
    show_photo_changes,
    show_repeats,
    wall_time,
)
from ui.curves import curve_pair
from ui.dataset_source import dataset_name
from ui.ensemble_view import ensemble_section
from ui.run_labels import approach_title, best_per_approach, dataset_of, on_dataset, run_label
from ui.run_manager import manage_runs

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

st.title("Compare")
listing = resources.run_store().list()
for bad in listing.damaged:
    st.warning(f"Run folder {bad.id} is damaged and left out: {bad.reason}")
for r in listing.runs:
    if r.state == "interrupted":
        st.caption(f"{r.id}: {r.summary()['message']}")
runs = [r for r in listing.runs if r.history.get("loss")]
data_path = st.session_state.get("data_path", "")
everything = st.toggle("All datasets", key="cmp_all", help=f"Off: only runs on the sidebar's dataset ({dataset_name()}).")
if not everything:
    runs = [r for r in runs if on_dataset(r, data_path)]
if not runs:
    st.info(
        f"No trained runs on {dataset_name()} yet. Train an approach on one of the approach pages (runs from earlier "
        "sessions appear here too), or switch on “All datasets”."
    )
    st.stop()

best = best_per_approach(runs)
if not best:
    st.info("No run here has finished: choose runs below (stopped and failed runs are listed, never preselected).")
chosen = st.multiselect(
    "Runs (default: the best finished run of each approach)",
    [r.id for r in runs],
    default=[rid for rid in best.values()],
    format_func={r.id: run_label(r) for r in runs}.get,
    key="cmp_runs",
)
picked = [r for r in runs if r.id in chosen]
if not picked:
    st.stop()
with_test = all(r.scored_accuracy[1] == "test" for r in picked)
split = "Test" if with_test else "Validation"
best_id, verdict = best_of(picked, split.lower())  # a ★ only when the 95 % intervals say so
if not with_test:
    st.info("Not every run has a test split: accuracies below are **validation** accuracy (which also picked the best epoch).")
sizes = sorted({r.image_size for r in picked})
if len(sizes) > 1:
    st.warning(
        f"These runs used different image sizes ({', '.join(f'{s} px' for s in sizes)}): accuracy and time are not directly comparable."
    )
show_photo_changes(picked)  # runs of one dataset before and after photos were relabelled or removed


def fmt(value, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


finders = stored_finder_results(resources.run_store().root)  # which finder suggested the rate a run used


def row(r) -> dict:
    h, m = r.history, r.metrics
    return {
        "best": "★" if r.id == best_id else "",
        "approach": approach_title(r),
        "dataset": dataset_of(r),
        f"{split.lower()} acc": accuracy_text(*scored(r, split.lower())),
        "wall time (s)": wall_time(r, runs),
        "trainable params": fmt(m.get("trainable_params"), "{:,}"),
        **cost_columns(r),
        "total params": fmt(m.get("total_params"), "{:,}"),
        "learning rate": learning_rate_label(learning_rate_source(r.config, r.metrics, finders)),
        "sweep": f"{r.sweep_group} · {point_label(r.sweep_point)}" if r.sweep_group else "",  # which point of which sweep
        "epochs": r.epochs_run,
        "state": r.state,
        "backbone": r.backbone,
        "image size": r.image_size,
        "best val acc": accuracy_text(max(h["val_accuracy"]) if h.get("val_accuracy") else None, scored(r, "validation")[1]),
        "train–val gap": fmt(h["accuracy"][-1] - h["val_accuracy"][-1] if h.get("val_accuracy") else None, "{:+.3f}"),
        "precision": r.resolved.get("precision", "float32"),  # runs before the setting computed in float32
        "run": r.id,
    }


table = pd.DataFrame([row(r) for r in picked])
st.dataframe(
    table,
    hide_index=True,
    column_config={  # the long texts whole, not cut at the column's edge
        "estimate vs actual": st.column_config.TextColumn(width="large"),
        "wall time (s)": st.column_config.TextColumn(width="medium"),
        f"{split.lower()} acc": st.column_config.TextColumn(
            width="medium", help="accuracy (correct/photos, 95 % Wilson interval)"
        ),
    },
)
if verdict:
    st.caption(verdict)
st.download_button("Download CSV", table.to_csv(index=False).encode(), "comparison.csv", "text/csv")
ensemble_section(picked)  # the selected runs averaged, as its own row (one dataset, the same files)
series = [{"label": f"{approach_title(r)} ({r.id[-6:]})", "approach": r.approach, "history": r.history} for r in picked]
curve_pair(series, key="cmp")
points = [
    {"label": s["label"], "approach": s["approach"], "best": r.id == best_id, **accuracy_point(r, split.lower(), runs)}
    for s, r in zip(series, picked)
]
st.plotly_chart(charts.accuracy_vs_time_figure(points, f"{split} accuracy"))
if any(r["feature cache"] == "cached rerun" for r in table.to_dict("records")):
    st.caption("A “cached rerun” read features/views cached by an earlier run: its wall time is not the cost from scratch.")
show_repeats(runs, "test_accuracy" if with_test else "val_accuracy")
show_disagreements(picked)
manage_runs(runs)
