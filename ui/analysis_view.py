"""Errors you can learn from, and repeats: renders engine/insight/analysis.py results (no logic of the engine).

Pages pass plain data: a run folder (its predictions.json) or a metrics dict, a dict of
runs for disagreements, RunRecords for repeat groups.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.data.images import preview_image
from engine.insight import analysis, intervals
from engine.insight.charts import confusion_figure
from ui import photo_actions


def show_errors(run_dir, key: str, k: int = 12, root: str | None = None) -> None:
    """Highest-loss images of a run's test (else validation) split, filterable by true/predicted class;
    each photo of the dataset at `root` with its actions (ui/photo_actions)."""
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
    gallery(rows, preds.classes, key, root)


def gallery(rows: list[dict], classes: list[str], key: str, root: str | None) -> None:
    """Rows of highest_loss as photos with their actions; photos acted on since the run scored them left out."""
    problem = photo_actions.notice(root, key)
    acted = photo_actions.acted_on(root)
    left = [r for r in rows if str(Path(r["path"])) not in acted]
    if len(left) < len(rows):
        st.caption(
            f"{len(rows) - len(left)} photo(s) acted on since this run scored them are left out: train again to score the change."
        )
    photo_actions.undo_button(root, key, problem)
    _image_grid(
        left,
        3,
        lambda row: (
            f"{row['true']} → {row['predicted']} (" + ", ".join(f"{c} {p:.0%}" for c, p in row["probabilities"].items()) + ")"
        ),
        (root, classes, key, problem),
    )


def confusion_cells(scored: dict, run_dir, key: str, root: str | None) -> None:
    """The confusion matrix; a clicked cell shows its photos (true row, predicted column), each with its actions."""
    classes = list(scored["per_class"])
    event = st.plotly_chart(
        clickable_confusion(scored["confusion_matrix"], classes), key=key, on_select="rerun", selection_mode="points"
    )
    cell = picked_cell(event)
    if cell is None:
        st.caption("Click a cell to see its photos.")
        return
    true, pred = classes[cell[0]], classes[cell[1]]
    try:
        preds = analysis.load_predictions(run_dir)
        rows = analysis.highest_loss(preds, 12, true, pred, errors_only=False)
    except analysis.AnalysisError as exc:
        st.info(str(exc))
        return
    st.markdown(
        f"**True {true}, predicted {pred}**: {len(rows)} photo(s)"
        + (" (the 12 with the highest loss)" if len(rows) == 12 else "")
    )
    if rows:
        gallery(rows, preds.classes, f"{key}_cell", root)


def clickable_confusion(matrix: list[list[int]], classes: list[str]):
    """charts.confusion_figure with an invisible point on each cell (a heatmap cannot be selected; a point can)."""
    fig = confusion_figure(matrix, classes)
    cells = [(i, j) for i in range(len(classes)) for j in range(len(classes))]
    fig.add_scatter(
        x=[classes[j] for _, j in cells],
        y=[classes[i] for i, _ in cells],
        customdata=[[i, j] for i, j in cells],
        mode="markers",
        marker={"size": 40, "opacity": 0, "symbol": "square"},
        showlegend=False,
        hovertemplate="true %{y}, predicted %{x}: click for its photos<extra></extra>",
    )
    fig.update_layout(hoverdistance=-1)  # a click anywhere in a cell selects its point (Chromium: else only near its centre)
    return fig


def picked_cell(event) -> tuple[int, int] | None:
    """(true index, predicted index) of the clicked cell, None when none is."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    data = points[0].get("customdata") if points else None
    return (int(data[0]), int(data[1])) if isinstance(data, (list, tuple)) and len(data) == 2 else None


def show_class_report(metrics_split: dict, classes: list[str]) -> None:
    """Per-class precision/recall/F1 and the most confused pairs, beside a confusion matrix."""
    cm = metrics_split.get("confusion_matrix")
    if not cm:
        return
    st.dataframe(
        class_report_table(cm, classes).style.format({"precision": "{:.3f}", "recall": "{:.3f}", "f1": "{:.3f}"}), width="stretch"
    )
    pairs = analysis.most_confused(cm, classes)
    if pairs:
        st.caption("Most confused: " + "; ".join(f"{p['true']} taken for {p['predicted']} ×{p['count']}" for p in pairs[:5]))


def class_report_table(confusion_matrix, classes: list[str]) -> pd.DataFrame:
    """One row per class: precision, recall, F1 and support, the support a whole number of photos (a frame built from
    the report's transpose made every column float: "12.000000")."""
    report = analysis.per_class_report(confusion_matrix, classes)
    return pd.DataFrame.from_dict(report, orient="index").astype({"support": "int64"}).rename_axis("class")


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
    _image_grid(
        rows,
        4,
        lambda row: (
            f"true {row['true']} — "
            + "; ".join(f"{label}: {r['predicted']} {r['probability']:.0%}" for label, r in row["runs"].items())
        ),
    )


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
        st.caption(
            f"{_title(g)}: {g['mean']:.4f} ± {g['std']:.4f} over seeds {sorted(g['seeds'])}"
            f"{_photos(records, g, metric)} — {verdict}"
        )
    return groups


def _photos(records, group: dict, metric: str) -> str:
    """', each on 40 photos': how many photos each seed's accuracy was scored on ('' when not recorded)."""
    split = "test" if metric.startswith("test") else "validation"
    counts = sorted(
        {
            intervals.scored_count(r.metrics.get(split))
            for r in records
            if getattr(r, "id", None) in group["run_ids"] and isinstance(getattr(r, "metrics", None), dict)
        }
        - {None}
    )
    if not counts:
        return ""
    return f", each on {counts[0]} photos" if len(counts) == 1 else f", on {counts[0]}–{counts[-1]} photos"


def _title(group: dict) -> str:
    from engine.insight.charts import APPROACH_TITLES

    return APPROACH_TITLES.get(group["approach"], str(group["approach"]))


def _image_grid(rows: list[dict], width: int, caption, actions: tuple | None = None) -> None:
    """Images of `rows` (each with a "path") in up to `width` columns, captioned by caption(row);
    with `actions` (root, classes, place key, problem) each photo's action row under it."""
    if not rows:
        return
    cols = st.columns(min(len(rows), width))
    for i, row in enumerate(rows):
        col = cols[i % len(cols)]
        if Path(row["path"]).is_file():
            try:
                col.image(preview_image(row["path"], 320), caption=caption(row), width="stretch")  # the one decoder
            except Exception:  # changed since the run: its caption still says what the run said
                col.caption(f"{Path(row['path']).name}: no longer readable — {caption(row)}")
                continue
            if actions:
                with col:
                    photo_actions.action_row(row["path"], actions[0], actions[1], actions[2], actions[3])
        else:  # the dataset moved or shrank since the run scored it: its stored predictions still say what they said
            col.caption(f"{row['path']}: no longer on disk — {caption(row)}")
