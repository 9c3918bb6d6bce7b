"""The feature map: a `feature-map` job through the runner, then the 2-D map(s) and the selected image.

Queued, watched and stopped like the learning-rate finder (ui/finder_view.py): the job is
`python -m engine feature-map ... --out runs/.feature-map/JOB.json` and that file is the only
channel back (JobRunner.tool_result). Plotly's hover cannot show an image, so clicking a point
selects it and its thumbnail, name and probabilities show beside the map.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from engine.config import RunConfig
from engine.data.images import preview_image
from ui import photo_actions, resources

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
SYMBOLS = {"train": "circle", "validation": "diamond"}
METHOD_LABELS = {"pca": "PCA (seconds; distances mean something)", "tsne": "t-SNE (slower; neighbourhoods only)"}


def feature_map_panel(cfg: RunConfig, key: str, run_id: str | None = None) -> None:
    """The button that queues the map of `cfg`'s base (of run `run_id` when given), its job's state, then the map."""
    state_key = f"{key}_job"
    what = "this run's base (and, for fine-tuning, the fine-tuned base beside it)" if run_id else "the chosen base"
    st.caption(
        f"A 2-D map of what {what} makes of every training and validation image, read from the feature cache "
        "(the base runs only when the cache is cold). Colour: true class; ◆ validation, ● training; a black ring: "
        "misclassified by the run. Click a point to see its image and probabilities."
    )
    method = st.radio("Projection", list(METHOD_LABELS), format_func=METHOD_LABELS.get, horizontal=True, key=f"{key}_method")
    if st.button("Draw the feature map", key=f"{key}_draw"):
        options = {"method": method, **({"run": run_id} if run_id else {})}
        st.session_state[state_key] = resources.job_runner().submit_tool("feature-map", cfg, options=options).id
    if state_key in st.session_state:
        _live(key, st.session_state[state_key])


def _live(key: str, job_id: str) -> None:
    """A fragment redraws the job's line every second while it is queued or running; its end reruns the page once,
    so the map (whose selection reruns the page) is drawn outside the fragment."""
    runner = resources.job_runner()
    job = runner.get(job_id)
    if job is None or job.state not in ("queued", "running"):
        _show(key, job_id)
        return

    @st.fragment(run_every=1.0)
    def live() -> None:
        if runner.get(job_id).state in ("queued", "running"):
            _show(key, job_id)
        else:
            st.rerun()

    live()


def _show(key: str, job_id: str) -> None:
    runner = resources.job_runner()
    job = runner.get(job_id)
    if job is None:  # the server restarted: its jobs are gone
        return
    if job.state in ("queued", "running"):
        lines = [l for l in runner.log_tail(job_id, lines=20).splitlines() if l.startswith("[feature-map]")]
        st.info(f"Feature map {job.state}: {lines[-1].removeprefix('[feature-map] ') if lines else 'starting'}")
        st.button("Stop the feature map", key=f"{job_id}_stop", on_click=runner.stop, args=(job_id,))
        return
    if job.state == "cancelled":
        st.caption("The feature map was cancelled before it started.")
        return
    doc = runner.tool_result(job_id)
    if not doc:
        st.error(f"The feature map failed: {runner.job_error(job_id) or runner.exit_description(job)}")
        return
    show_maps(doc, key, root=(job.config.get("data") or {}).get("path"))


def show_maps(doc: dict, key: str, root: str | None = None) -> None:
    """The map (before and after side by side for a fine-tuning run), then the selected point's image (a photo of
    the dataset at `root`, with its actions)."""
    maps = doc["maps"]
    selected = None
    for col, i in zip(st.columns(len(maps)), range(len(maps))):
        event = col.plotly_chart(
            map_figure(doc, i), width="stretch", key=f"{key}_map{i}", on_select="rerun", selection_mode="points"
        )
        selected = _picked(event) if _picked(event) is not None else selected
        sep = maps[i]["separation"]
        col.caption(
            f"Classes apart in this map: {_pct(sep['nearest_centroid_accuracy'])} of points nearest their own class's "
            f"mean, {_pct(sep['one_nn_accuracy'])} with a neighbour of their class (chance {_pct(sep['chance'])})."
        )
    if selected is not None:
        show_point(doc, selected, key, root)


def _picked(event) -> int | None:
    points = ((event or {}).get("selection") or {}).get("points") or []
    data = points[0].get("customdata") if points else None
    return int(data[0] if isinstance(data, (list, tuple)) else data) if data is not None else None


def _pct(v) -> str:
    return "–" if v is None else f"{v:.0%}"


def show_point(doc: dict, i: int, key: str = "fm", root: str | None = None) -> None:
    """The selected image: thumbnail, name, split, true class and, for a scored validation image, its probabilities;
    then its actions (ui/photo_actions: Relabel to …, Remove, Keep, Undo)."""
    p = doc["points"][i]
    c1, c2 = st.columns([1, 3])
    try:
        c1.image(preview_image(p["file"], 160), width=160)
    except Exception:  # the file moved or changed since the map: the rest still says what the point is
        c1.caption("(image no longer readable)")
    lines = [f"**{Path(p['file']).name}** · {p['split']} · true class **{p['class']}**"]
    if p["probabilities"] is not None:
        probs = ", ".join(f"{c} {v:.1%}" for c, v in zip(doc["classes"], p["probabilities"]))
        lines.append(f"{'Misclassified' if p['misclassified'] else 'Correct'}: {probs}")
    c2.markdown("  \n".join(lines))
    with c2:
        problem = photo_actions.notice(root, f"{key}_point")
        if Path(p["file"]).is_file() and str(Path(p["file"])) not in photo_actions.acted_on(root):
            photo_actions.action_row(p["file"], root, doc["classes"], f"{key}_point", problem)
        photo_actions.undo_button(root, f"{key}_point", problem)


def map_figure(doc: dict, index: int = 0) -> go.Figure:
    """One map: a trace per class (its colour), ◆ validation / ● training, misclassified points ringed in black,
    hover text with file name, split, true class and probabilities; `customdata` is the point's index in doc["points"]."""
    m, points, classes = doc["maps"][index], doc["points"], doc["classes"]
    fig = go.Figure()
    for c, name in enumerate(classes):
        idx = [i for i, p in enumerate(points) if p["label"] == c]
        fig.add_trace(
            go.Scatter(
                x=[m["x"][i] for i in idx],
                y=[m["y"][i] for i in idx],
                mode="markers",
                name=name,
                customdata=[[i] for i in idx],
                hovertext=[_hover(points[i], classes) for i in idx],
                hoverinfo="text",
                marker={
                    "color": PALETTE[c % len(PALETTE)],
                    "size": [9 if points[i]["misclassified"] else 6 for i in idx],
                    "symbol": [SYMBOLS.get(points[i]["split"], "circle") for i in idx],
                    "opacity": 0.8,
                    "line": {"color": "black", "width": [2 if points[i]["misclassified"] else 0 for i in idx]},
                },
            )
        )
    ev = m["explained_variance"]
    axes = [f"PC {a + 1} ({ev[a]:.0%} of variance)" for a in range(2)] if ev else ["t-SNE 1", "t-SNE 2"]
    title = f"{doc['note']}<br>{m['title']}"  # says "PCA of N of M images (subsample ...)" when it is one
    fig.update_layout(
        title={"text": title, "font": {"size": 13}},
        height=420,
        margin={"t": 40, "b": 40},
        legend_title="class",
        xaxis_title=axes[0],
        yaxis_title=axes[1],
    )
    return fig


def _hover(p: dict, classes: list[str]) -> str:
    text = f"{Path(p['file']).name}<br>{p['split']}, true class {p['class']}"
    if p["probabilities"] is not None:
        text += "<br>" + ", ".join(f"{c} {v:.1%}" for c, v in zip(classes, p["probabilities"]))
        text += "<br><b>misclassified</b>" if p["misclassified"] else ""
    return text
