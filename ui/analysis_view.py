"""Errors you can learn from, and repeats: renders engine/insight/analysis.py results (no logic of the engine).

Pages pass plain data: a run folder (its predictions.json) or a metrics dict, a dict of
runs for disagreements, RunRecords for repeat groups.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.insight import analysis


def show_errors(run_dir, key: str, k: int = 12) -> None:
    """Highest-loss images of a run's test (else validation) split, filterable by true/predicted class."""
    try:
        preds = analysis.load_predictions(run_dir)
    except analysis.AnalysisError as exc:
        st.info(str(exc))
        return
    any_class = "any"
    c1, c2, c3 = st.columns(3)
    true = c1.selectbox("True class", [any_class, *preds.classes], key=f"{key}_true")
    pred = c2.selectbox("Predicted class", [any_class, *preds.classes], key=f"{key}_pred")
    errors_only = c3.toggle("Mistakes only", value=True, key=f"{key}_errors")
    rows = analysis.highest_loss(preds, k, None if true == any_class else true, None if pred == any_class else pred, errors_only)
    st.caption(f"{preds.split} split: the {len(rows)} image(s) with the highest loss (least probability on the true class)")
    if not rows:
        st.write("No image matches.")
        return
    _image_grid(rows, 6, lambda row: f"{row['true']} → {row['predicted']} ("
                + ", ".join(f"{c} {p:.0%}" for c, p in row["probabilities"].items()) + ")")


def show_class_report(metrics_split: dict, classes: list[str]) -> None:
    """Per-class precision/recall/F1 and the most confused pairs, beside a confusion matrix."""
    cm = metrics_split.get("confusion_matrix")
    if not cm:
        return
    report = analysis.per_class_report(cm, classes)
    st.dataframe(pd.DataFrame(report).T.rename_axis("class").style.format(
        {"precision": "{:.3f}", "recall": "{:.3f}", "f1": "{:.3f}"}), width="stretch")
    pairs = analysis.most_confused(cm, classes)
    if pairs:
        st.caption("Most confused: " + "; ".join(f"{p['true']} taken for {p['predicted']} ×{p['count']}" for p in pairs[:5]))


def show_disagreements(runs: dict, k: int = 12) -> None:
    """Images on which the given runs ({label: run folder}) predict different classes."""
    try:
        preds = {label: analysis.load_predictions(path) for label, path in runs.items()}
        rows = analysis.disagreements(preds, k)
    except analysis.AnalysisError as exc:
        st.info(str(exc))
        return
    if not rows:
        st.write("The selected runs agree on every image.")
        return
    _image_grid(rows, 4, lambda row: f"true {row['true']} — "
                + "; ".join(f"{label}: {r['predicted']} {r['probability']:.0%}" for label, r in row["runs"].items()))


def show_repeat_groups(records, metric: str = "test_accuracy") -> list[dict]:
    """Mean ± std per repeat group with error bars, and which intervals overlap; returns the groups."""
    from engine.insight.charts import repeat_groups_figure

    groups = analysis.group_repeats(records, metric)
    repeated = [g for g in groups if g["n"] > 1]
    if not repeated:
        return groups
    shown = [{**g, "label": f"{_title(g)} ({g['n']} seeds)"} for g in repeated]
    fig = repeat_groups_figure(shown, metric)
    fig.update_layout(height=320, margin={"t": 20})
    st.plotly_chart(fig, width="stretch")
    for g in repeated:
        names = [_title(o) for o in repeated if o["group"] in g["overlaps"]]
        if len(repeated) == 1:  # single runs have no spread: an overlap with them says nothing
            verdict = "the only repeated group: repeat another approach to compare spreads"
        else:
            verdict = f"overlaps {', '.join(names)}: no clear winner" if names else "no overlap with the other repeated groups"
        st.caption(f"{_title(g)}: {g['mean']:.4f} ± {g['std']:.4f} over seeds {sorted(g['seeds'])} — {verdict}")
    return groups


def _title(group: dict) -> str:
    from engine.insight.charts import APPROACH_TITLES

    return APPROACH_TITLES.get(group["approach"], str(group["approach"]))


def _image_grid(rows: list[dict], width: int, caption) -> None:
    """Images of `rows` (each with a "path") in up to `width` columns, captioned by caption(row)."""
    cols = st.columns(min(len(rows), width))
    for i, row in enumerate(rows):
        col = cols[i % len(cols)]
        if Path(row["path"]).is_file():
            col.image(row["path"], caption=caption(row), width="stretch")
        else:  # the dataset moved or shrank since the run scored it: its stored predictions still say what they said
            col.caption(f"{row['path']}: no longer on disk — {caption(row)}")
