"""Pure Plotly figure builders: engine data in, `go.Figure` out (no Streamlit here)."""

from __future__ import annotations

import plotly.graph_objects as go

APPROACH_COLOURS = {"feature_extraction": "#1f77b4", "frozen": "#ff7f0e", "fine_tuning": "#2ca02c"}
APPROACH_TITLES = {"feature_extraction": "Feature extraction", "frozen": "Frozen + augmentation", "fine_tuning": "Fine-tuning"}


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, margin=dict(l=40, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def curves_figure(series: list[dict], metric: str = "accuracy") -> go.Figure:
    """Train (dashed) vs validation (solid) curves for one or more runs.

    Each item of `series`: {"label", "approach", "history"}; a dotted vertical line marks where
    fine-tuning's phase 2 starts.
    """
    fig = go.Figure()
    for s in series:
        h, colour = s["history"], APPROACH_COLOURS.get(s.get("approach"), None)
        epochs = list(range(1, len(h.get(metric, [])) + 1))
        fig.add_trace(go.Scatter(x=epochs, y=h.get(metric, []), mode="lines+markers", name=f"{s['label']} train",
                                 line=dict(color=colour, dash="dash")))
        fig.add_trace(go.Scatter(x=epochs, y=h.get(f"val_{metric}", []), mode="lines+markers", name=f"{s['label']} validation",
                                 line=dict(color=colour)))
        start = h.get("fine_tune_start_epoch")
        if start:
            fig.add_vline(x=start - 0.5, line_dash="dot", line_color=colour or "grey", annotation_text="fine-tuning starts")
    return _layout(fig, metric.capitalize(), "epoch", metric)


def class_counts_figure(counts: dict[str, dict[str, int]]) -> go.Figure:
    """Grouped bars: images per class, one group per split."""
    fig = go.Figure()
    for split, by_class in counts.items():
        fig.add_trace(go.Bar(name=split, x=list(by_class), y=list(by_class.values())))
    fig.update_layout(barmode="group")
    return _layout(fig, "Images per class and split", "class", "images")


def image_size_figure(sizes: list[tuple[int, int]]) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=[w for w, _ in sizes], name="width", opacity=0.7))
    fig.add_trace(go.Histogram(x=[h for _, h in sizes], name="height", opacity=0.7))
    fig.update_layout(barmode="overlay")
    return _layout(fig, "Image width and height", "pixels", "images")


def confusion_figure(matrix: list[list[int]], classes: list[str]) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues", text=matrix, texttemplate="%{text}", showscale=False))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Confusion matrix (rows: true, columns: predicted)", "predicted", "true")


def probabilities_figure(probabilities: dict[str, float], title: str) -> go.Figure:
    classes = list(probabilities)
    fig = go.Figure(go.Bar(x=[probabilities[c] for c in classes], y=classes, orientation="h", text=[f"{probabilities[c]:.1%}" for c in classes]))
    fig.update_xaxes(range=[0, 1])
    return _layout(fig, title, "probability", "class")


def accuracy_vs_time_figure(rows: list[dict]) -> go.Figure:
    """Bars per run: test (or validation) accuracy on the left axis, wall time on the right."""
    labels = [r["label"] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[r["accuracy"] for r in rows], name="accuracy", offsetgroup=0,
                         marker_color=[APPROACH_COLOURS.get(r.get("approach"), "#888") for r in rows],
                         text=[f"{r['accuracy']:.3f}" for r in rows], textposition="outside"))
    fig.add_trace(go.Bar(x=labels, y=[r["wall_seconds"] for r in rows], name="wall time (s)", offsetgroup=1, yaxis="y2",
                         marker_color="#bbbbbb", text=[f"{r['wall_seconds']:.0f}s" for r in rows], textposition="outside"))
    fig.update_layout(yaxis=dict(title="accuracy", range=[0, 1.1]), yaxis2=dict(title="wall time (s)", overlaying="y", side="right"), barmode="group")
    return _layout(fig, "Test accuracy vs training time", "run", "accuracy")
