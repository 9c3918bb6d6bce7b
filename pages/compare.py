import pandas as pd
import streamlit as st

from engine import charts
from pages import shared
from ui.access import require_token

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

st.title("Compare")
listing = shared.run_store().list()
for bad in listing.damaged:
    st.warning(f"Run folder {bad.id} is damaged and left out: {bad.reason}")
for r in listing.runs:
    if r.state == "interrupted":
        st.caption(f"{r.id}: {r.summary()['message']}")
runs = [r for r in listing.runs if r.history.get("loss")]
if not runs:
    st.info("No trained runs yet. Train an approach on one of the approach pages; runs from earlier sessions appear here too.")
    st.stop()

data_path = st.session_state.get("data_path", "")
latest: dict[str, str] = {}
for r in runs:  # newest first: keep the latest per approach on the current dataset
    if r.config.get("data", {}).get("path") == data_path:
        latest.setdefault(r.config.get("approach"), r.id)
labels = {r.id: f"{charts.APPROACH_TITLES.get(r.config.get('approach'), '?')} · {r.config['backbone']['name']} · {r.id}" for r in runs}
chosen = st.multiselect("Runs", [r.id for r in runs], default=list(latest.values()), format_func=labels.get, key="cmp_runs")
picked = [r for r in runs if r.id in chosen]
if not picked:
    st.stop()


def row(r):
    h, m = r.history, r.metrics
    val, test = m.get("validation") or {}, m.get("test") or {}
    return {
        "run": r.id, "approach": charts.APPROACH_TITLES.get(r.config.get("approach")), "state": r.state,
        "backbone": r.config["backbone"]["name"], "image size": r.config.get("resolved", {}).get("image_size"),
        "precision": r.config.get("resolved", {}).get("precision", "float32"),  # runs before the setting computed in float32
        "epochs": len(h["loss"]), "best val acc": max(h["val_accuracy"]), "final val acc": h["val_accuracy"][-1],
        "test acc": test.get("accuracy"), "val loss": val.get("loss"), "wall time (s)": m.get("wall_seconds"),
        "trainable params": m.get("trainable_params"), "total params": m.get("total_params"),
        "train–val gap": h["accuracy"][-1] - h["val_accuracy"][-1],
    }


table = pd.DataFrame([row(r) for r in picked])
st.dataframe(table, hide_index=True)
st.download_button("Download CSV", table.to_csv(index=False).encode(), "comparison.csv", "text/csv")
series = [{"label": f"{charts.APPROACH_TITLES.get(r.config.get('approach'))} ({r.id[-6:]})", "approach": r.config.get("approach"), "history": r.history} for r in picked]
c1, c2 = st.columns(2)
c1.plotly_chart(charts.curves_figure(series, "accuracy"))
c2.plotly_chart(charts.curves_figure(series, "loss"))
points = [{"label": s["label"], "approach": s["approach"], "wall_seconds": t["wall time (s)"] or 0,
           "accuracy": t["test acc"] if t["test acc"] is not None else t["final val acc"]} for s, t in zip(series, table.to_dict("records"))]
st.plotly_chart(charts.accuracy_vs_time_figure(points))
