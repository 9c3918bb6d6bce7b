"""Pure Plotly figure builders: engine data in, `go.Figure` out (no Streamlit here)."""

from __future__ import annotations

import math

import plotly.graph_objects as go

APPROACH_COLOURS = {"feature_extraction": "#1f77b4", "frozen": "#ff7f0e", "fine_tuning": "#2ca02c"}
APPROACH_TITLES = {"feature_extraction": "Feature extraction", "frozen": "Frozen + augmentation", "fine_tuning": "Fine-tuning"}


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title, xaxis_title=x, yaxis_title=y, margin=dict(l=40, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.2)
    )
    return fig


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the first points are not pulled to 0."""
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last, norm = last * weight + (1 - weight) * v, norm * weight + (1 - weight)
        out.append(last / norm if norm else v)
    return out


def curves_figure(series: list[dict], metric: str = "accuracy", smoothing: float = 0.0, log_y: bool = False) -> go.Figure:
    """Train (dashed) vs validation (solid) curves for one or more runs.

    Each item of `series`: {"label", "approach", "history"}; a dotted vertical line marks where
    fine-tuning's phase 2 starts. `smoothing` (0-0.99) draws the moving average over faint raw
    points; `log_y` puts the y axis on a log scale (useful for loss). Epoch ticks are whole numbers.
    """
    fig = go.Figure()
    most = 1
    for s in series:
        h, colour = s["history"], APPROACH_COLOURS.get(s.get("approach"), None)
        for name, dash, suffix in ((metric, "dash", "train"), (f"val_{metric}", None, "validation")):
            ys = h.get(name, [])
            epochs = list(range(1, len(ys) + 1))
            most = max(most, len(ys))
            if smoothing > 0 and ys:
                fig.add_trace(
                    go.Scatter(x=epochs, y=ys, mode="markers", showlegend=False, opacity=0.3, marker=dict(color=colour))
                )
                ys = smooth(ys, smoothing)
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=ys, mode="lines+markers", name=f"{s['label']} {suffix}", line=dict(color=colour, dash=dash)
                )
            )
        start = h.get("fine_tune_start_epoch")
        if start:
            fig.add_vline(x=start - 0.5, line_dash="dot", line_color=colour or "grey", annotation_text="fine-tuning starts")
    fig.update_xaxes(tickformat="d", dtick=max(1, round(most / 10)))  # epochs are whole numbers
    if log_y:
        fig.update_yaxes(type="log")
    if metric == "accuracy":  # autorange would pad past 1.0 when a curve reaches it
        fig.update_yaxes(autorangeoptions={"maxallowed": 1.0})
    return _layout(fig, metric.capitalize() + (" (log scale)" if log_y else ""), "epoch", metric)


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
    fig = go.Figure(
        go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues", text=matrix, texttemplate="%{text}", showscale=False)
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Confusion matrix (rows: true, columns: predicted)", "predicted", "true")


def probabilities_figure(probabilities: dict[str, float], title: str) -> go.Figure:
    classes = list(probabilities)
    fig = go.Figure(
        go.Bar(
            x=[probabilities[c] for c in classes], y=classes, orientation="h", text=[f"{probabilities[c]:.1%}" for c in classes]
        )
    )
    fig.update_xaxes(range=[0, 1])
    return _layout(fig, title, "probability", "class")


def accuracy_vs_time_figure(rows: list[dict], accuracy_label: str = "Test accuracy") -> go.Figure:
    """One dot per run: accuracy (y, zoomed to the runs' range so 0.934 vs 0.963 is visible, never past 1.0) vs the
    run's whole cost in wall time (x), with its 95 % interval as an error bar.

    Each row: {"label", "approach", "accuracy", "wall_seconds", "best" (optional bool), "low"/"high" (optional: the
    interval), "phase2_seconds" (optional: a fine-tuning that continued a frozen run; `wall_seconds` then holds both
    phases)}; the best run is drawn as a star; a continued run's own (phase 2) time is a hollow dot joined to its
    whole cost by a dotted line. `accuracy_label` says which split the accuracy is from.
    """
    accs = [r["accuracy"] for r in rows]
    lows = [r.get("low", r["accuracy"]) for r in rows]
    highs = [r.get("high", r["accuracy"]) for r in rows]
    fig = go.Figure()
    continued = [r for r in rows if r.get("phase2_seconds") is not None]
    for r in continued:  # drawn first: the whole-cost dot lies on top of its segment
        colour = APPROACH_COLOURS.get(r.get("approach"), "#888")
        fig.add_trace(
            go.Scatter(
                x=[r["phase2_seconds"], r["wall_seconds"]],
                y=[r["accuracy"]] * 2,
                mode="lines+markers",
                showlegend=False,
                line={"dash": "dot", "color": colour},
                marker={"symbol": ["circle-open", "circle"], "size": [10, 0], "color": colour},
                name=f"{r['label']} phase 2 only",
                cliponaxis=False,
                hovertemplate=f"{r['label']}<br>phase 2 only: %{{x:.0f}} s (continued a frozen run)<extra></extra>",
            )
        )
    hover = [r.get("hover") or f"accuracy {r['accuracy']:.3f}" for r in rows]
    fig.add_trace(
        go.Scatter(
            x=[r["wall_seconds"] for r in rows],
            y=accs,
            mode="markers+text",
            text=[r["label"] for r in rows],
            customdata=hover,
            textposition="top center",
            marker=dict(
                size=[18 if r.get("best") else 12 for r in rows],
                symbol=["star" if r.get("best") else "circle" for r in rows],
                color=[APPROACH_COLOURS.get(r.get("approach"), "#888") for r in rows],
            ),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[h - a for h, a in zip(highs, accs)],
                arrayminus=[a - lo for a, lo in zip(accs, lows)],
                thickness=1.5,
                width=6,
                color="rgba(80, 80, 80, 0.6)",
            ),
            hovertemplate="%{text}<br>%{customdata}<br>%{x:.0f} s (whole cost)<extra></extra>",
            showlegend=False,
            cliponaxis=False,
        )
    )  # labels may reach past the plot area instead of being cut ("ature extraction (…)")
    if accs:
        pad = max(0.01, (max(highs) - min(lows)) * 0.1)
        fig.update_yaxes(range=[max(0.0, min(lows) - pad), 1.0], tickformat=".3f")  # accuracy never reads past 1.0
    times = [r["wall_seconds"] for r in rows] + [r["phase2_seconds"] for r in continued]
    if times:  # room on both sides for the labels centred on the first and last dots
        span = max(times) - min(times) or max(times) or 1.0
        fig.update_xaxes(range=[min(times) - 0.25 * span, max(times) + 0.25 * span])
    note = " (◯ ⋯ a continued run's phase 2 alone)" if continued else ""
    fig = _layout(
        fig, f"{accuracy_label} vs training time{note}", "wall time, whole cost (s)", f"{accuracy_label.lower()} (95 % interval)"
    )
    fig.update_layout(margin={"l": 70, "r": 70})
    return fig


def repeat_groups_figure(groups: list[dict], metric_label: str) -> go.Figure:
    """Each repeat group's mean ± std (error bar) with its seeds' values as dots, on an axis zoomed to their spread.

    Each group: {"label", "approach", "mean", "std", "values"}. A 0-1 axis would hide a ±0.0014 bar.
    """
    fig = go.Figure()
    for g in groups:
        colour = APPROACH_COLOURS.get(g.get("approach"), "#888")
        fig.add_trace(
            go.Scatter(
                x=[g["label"]],
                y=[g["mean"]],
                mode="markers",
                marker=dict(size=14, color=colour, symbol="diamond"),
                error_y=dict(type="data", array=[g["std"]], thickness=2, width=12),
                name=g["label"],
                hovertemplate="%{x}<br>mean %{y:.4f}<extra></extra>",
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[g["label"]] * len(g["values"]),
                y=g["values"],
                mode="markers",
                name=f"{g['label']} seeds",
                marker=dict(size=7, color=colour, opacity=0.45),
                hovertemplate="seed value %{y:.4f}<extra></extra>",
                showlegend=False,
            )
        )
    lows = [min(g["mean"] - g["std"], *g["values"]) for g in groups]
    highs = [max(g["mean"] + g["std"], *g["values"]) for g in groups]
    if groups:
        pad = max((max(highs) - min(lows)) * 0.25, 0.002)
        top = max(highs) + pad
        if "accuracy" in metric_label:  # mean + std of accuracies near 1 would reach past it
            top = min(top, 1.0)
        fig.update_yaxes(range=[min(lows) - pad, top], tickformat=".3f")
    return _layout(fig, "", "", f"{metric_label} (mean ± std)")


def steepest_on_descent(lrs: list[float], smoothed: list[float], stored: float | None = None) -> float | None:
    """Where the smoothed loss falls fastest, looked for only before its minimum: past the minimum the loss blows up,
    and a noisy fall there (a diverged loss coming down again) is no rate to train at. `stored`, the finder's own
    steepest rate, is kept when it lies on the descent. The first tenth is skipped as lr_range.steepest_rate does."""
    finite = [(lr, v) for lr, v in zip(lrs, smoothed) if lr and lr > 0 and v is not None and math.isfinite(v)]
    if len(finite) < 5:
        return stored
    best = min(range(len(finite)), key=lambda i: finite[i][1])
    if stored is not None and stored <= finite[best][0]:
        return stored
    skip = len(finite) // 10
    part = finite[skip : best + 1]
    if len(part) < 2:
        return finite[best][0]
    slopes = [(b[1] - a[1]) / (math.log10(b[0]) - math.log10(a[0]) or 1e-12) for a, b in zip(part, part[1:])]
    return part[min(range(len(slopes)), key=slopes.__getitem__)][0]


def finder_figure(result: dict) -> go.Figure:
    """The learning-rate finder: each step's loss and the whole smoothed curve against the rate (log axis), the
    suggested rate and the steepest descent as labelled points on the curve, their labels on opposite sides.

    `result`: the finder's JSON (learning_rates, losses, smoothed, suggested, rule, steepest, valley). The y axis
    holds the whole smoothed curve; it is logarithmic when the curve spans more than a factor of 10 (a blow-up).
    """
    lrs, smoothed = list(result["learning_rates"]), list(result["smoothed"])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=lrs, y=result["losses"], mode="markers", name="loss of each step", marker={"size": 4, "opacity": 0.35})
    )
    fig.add_trace(go.Scatter(x=lrs, y=smoothed, mode="lines", name="smoothed loss"))
    rule = result.get("rule") or "valley"
    steepest = steepest_on_descent(lrs, smoothed, result.get("steepest"))
    # The suggestion's partner: the steepest descent, or the valley when the suggestion is the steepest rate.
    partner = ("valley", result.get("valley")) if rule == "steepest" else ("steepest descent", steepest)
    marks = [(f"suggested ({rule})", result.get("suggested"), "top right", "#d62728"), (*partner, "bottom left", "#7f7f7f")]
    for name, rate, position, colour in marks:
        if not rate or not lrs:
            continue
        i = min(range(len(lrs)), key=lambda j: abs(math.log10(lrs[j]) - math.log10(rate)))
        fig.add_trace(
            go.Scatter(
                x=[rate],
                y=[smoothed[i]],
                mode="markers+text",
                name=name,
                text=[f"{name} {rate:.2g}"],
                textposition=position,
                marker={"size": 11, "color": colour, "symbol": "diamond"},
                cliponaxis=False,
                showlegend=False,
            )
        )
        fig.add_vline(x=rate, line_dash="dot", line_color=colour, opacity=0.5)
    finite = [v for v in smoothed if v is not None and math.isfinite(v) and v > 0]
    yaxis = {"title": "training loss"}
    if finite and max(finite) > 10 * min(finite):
        yaxis.update(type="log", range=[math.log10(min(finite)) - 0.05, math.log10(max(finite)) + 0.05])
    elif finite:
        yaxis.update(range=[0, max(finite) * 1.08])
    fig.update_layout(xaxis={"type": "log", "title": "learning rate"}, yaxis=yaxis, height=320, margin={"t": 30, "b": 40})
    return fig
