"""Pure Plotly builders for a sweep (engine/insight/sweeps.summarize): validation accuracy per point, every trial.

Two knobs: a heatmap of the mean validation accuracy, one cell per point, the best cell outlined.
One knob: a line with ± std error bars over the seeds, the best point starred (a log axis for rates).
Every trial: parallel coordinates, one line per run, coloured by its validation accuracy.
Test accuracy never appears here: selection is on validation only.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from engine.insight.sweeps import format_value, sweepable


def _name(dotted: str) -> str:
    return sweepable().get(dotted, {}).get("flag", dotted)


def _is_rate(dotted: str, values: list) -> bool:
    return dotted.endswith("learning_rate") and all(isinstance(v, (int, float)) and v > 0 for v in values)


def grid_figure(summary: dict) -> go.Figure:
    """The heatmap (two knobs) or the line with error bars (one knob) of mean validation accuracy."""
    return heatmap_figure(summary) if len(summary["knobs"]) == 2 else line_figure(summary)


def heatmap_figure(summary: dict) -> go.Figure:
    """Rows: the first knob's values, columns: the second's; a cell reads 'mean ± std (n)'; the best cell outlined."""
    ky, kx = summary["knobs"]
    ys, xs = summary["axes"][ky], summary["axes"][kx]
    z = [[None] * len(xs) for _ in ys]
    text = [[""] * len(xs) for _ in ys]
    for p in summary["points"]:
        i, j = ys.index(p["point"][ky]), xs.index(p["point"][kx])
        if p["mean"] is not None:
            z[i][j] = p["mean"]
            text[i][j] = f"{p['mean']:.3f} ± {p['std']:.3f} (n={p['n']})"
    xl, yl = [format_value(v) for v in xs], [format_value(v) for v in ys]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=xl,
            y=yl,
            text=text,
            texttemplate="%{text}",
            colorscale="Viridis",
            colorbar={"title": "val acc"},
            hovertemplate=f"{_name(kx)}=%{{x}}<br>{_name(ky)}=%{{y}}<br>%{{text}}<extra></extra>",
        )
    )
    if summary["best"] is not None:
        b = summary["points"][summary["best"]]["point"]
        j, i = xs.index(b[kx]), ys.index(b[ky])
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line={"color": "red", "width": 3})
    fig.update_layout(
        xaxis={"title": _name(kx), "type": "category"},
        yaxis={"title": _name(ky), "type": "category"},
        title="Validation accuracy (mean over seeds); best outlined",
        height=360,
        margin={"t": 40, "b": 40},
    )
    return fig


def line_figure(summary: dict) -> go.Figure:
    """Mean validation accuracy against the knob's values, ± std bars, the best point starred."""
    (k,) = summary["knobs"]
    scored = [p for p in summary["points"] if p["mean"] is not None]
    xs = [p["point"][k] for p in scored]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    shown = xs if numeric else [format_value(v) for v in xs]
    fig = go.Figure(
        go.Scatter(
            x=shown,
            y=[p["mean"] for p in scored],
            mode="lines+markers",
            name="validation accuracy",
            error_y={"type": "data", "array": [p["std"] for p in scored], "visible": True},
            text=[p["label"] for p in scored],
        )
    )
    if summary["best"] is not None:
        b = summary["points"][summary["best"]]
        x = b["point"][k] if numeric else format_value(b["point"][k])
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[b["mean"]],
                mode="markers",
                name="best (validation)",
                marker={"symbol": "star", "size": 16, "color": "red"},
            )
        )
    axis = {"title": _name(k), "type": "log" if _is_rate(k, xs) else ("linear" if numeric else "category")}
    tops = [p["mean"] + (p["std"] or 0) for p in scored] or [1.0]
    bottoms = [p["mean"] - (p["std"] or 0) for p in scored] or [0.0]
    pad = max(0.01, (max(tops) - min(bottoms)) * 0.1)
    yaxis = {"title": "validation accuracy", "range": [max(0.0, min(bottoms) - pad), min(1.0, max(tops) + pad)]}  # never past 1.0
    fig.update_layout(
        xaxis=axis, yaxis=yaxis, height=340, margin={"t": 40, "b": 40}, title="Validation accuracy, mean ± std over seeds"
    )
    return fig


def _dimension(dotted: str, values: list, order: list) -> dict:
    """A parallel-coordinates axis: log10 for rates, codes for choices, the numbers otherwise."""
    if _is_rate(dotted, order):
        ticks = [math.log10(v) for v in order]
        return {
            "label": f"{_name(dotted)} (log)",
            "values": [math.log10(v) for v in values],
            "tickvals": ticks,
            "ticktext": [format_value(v) for v in order],
        }
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in order):
        # Ticks at the sweep's own values, written as typed ("0.6", never ".6"; no 0.45 between two points).
        return {
            "label": _name(dotted),
            "values": list(values),
            "tickvals": list(order),
            "ticktext": [format_value(v) for v in order],
        }
    return {
        "label": _name(dotted),
        "values": [order.index(v) for v in values],
        "tickvals": list(range(len(order))),
        "ticktext": [format_value(v) for v in order],
    }


def parallel_figure(summary: dict) -> go.Figure:
    """Every finished trial as one line: the knobs' values, its seed, its validation accuracy (the colour too)."""
    trials = [t for t in summary["trials"] if t["val_accuracy"] is not None]
    dims = [_dimension(d, [t["point"][d] for t in trials], summary["axes"][d]) for d in summary["knobs"]]
    seeds = [t["seed"] if t["seed"] is not None else 0 for t in trials]
    if len(set(seeds)) > 1:
        dims.append(
            {"label": "seed", "values": seeds, "tickvals": sorted(set(seeds)), "ticktext": [str(v) for v in sorted(set(seeds))]}
        )
    acc = [t["val_accuracy"] for t in trials]
    dims.append({"label": "validation accuracy", "values": acc, "tickformat": ".3f"})
    # Axis names under the axes (labelside): above them they ran into the title ("oout" for dropout); margins wide
    # enough for the outer axes' names and ticks, and for the colour bar beside the last one.
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            labelside="bottom",
            labelfont={"size": 13},
            tickfont={"size": 11},
            line={
                "color": acc,
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": {"text": "val acc"}, "x": 1.06},
            },
        )
    )
    best = summary["points"][summary["best"]]["label"] if summary["best"] is not None else "none yet"
    fig.update_layout(
        title={"text": f"Every trial ({len(trials)}); best point on validation: {best}", "y": 0.97, "yanchor": "top"},
        height=400,
        margin={"t": 70, "b": 60, "l": 90, "r": 120},
    )
    return fig
