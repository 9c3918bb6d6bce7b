import pytest

from engine.insight import charts


def test_curves_have_train_and_validation_and_phase_marker():
    h = {"accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.55, 0.65, 0.75], "fine_tune_start_epoch": 3}
    fig = charts.curves_figure([{"label": "FT", "approach": "fine_tuning", "history": h}], "accuracy")
    assert [t.name for t in fig.data] == ["FT train", "FT validation"]
    assert list(fig.data[1].y) == [0.55, 0.65, 0.75]
    assert fig.layout.shapes[0].x0 == 2.5


def test_confusion_and_counts_and_probabilities():
    cm = charts.confusion_figure([[3, 1], [0, 4]], ["cats", "dogs"])
    assert cm.data[0].z == ((3, 1), (0, 4)) or [list(r) for r in cm.data[0].z] == [[3, 1], [0, 4]]
    counts = charts.class_counts_figure({"train": {"a": 2, "b": 3}, "validation": {"a": 1, "b": 1}})
    assert [t.name for t in counts.data] == ["train", "validation"]
    probs = charts.probabilities_figure({"cats": 0.9, "dogs": 0.1}, "run")
    assert list(probs.data[0].x) == [0.9, 0.1]


def test_accuracy_vs_time_is_a_zoomed_dot_plot_marking_the_best():
    rows = [
        {"label": "FE", "approach": "feature_extraction", "accuracy": 0.934, "wall_seconds": 146.0},
        {"label": "FT", "approach": "fine_tuning", "accuracy": 0.963, "wall_seconds": 1511.0, "best": True},
    ]
    fig = charts.accuracy_vs_time_figure(rows, "Validation accuracy")
    assert [t.type for t in fig.data] == ["scatter"]
    assert list(fig.data[0].y) == [0.934, 0.963] and list(fig.data[0].x) == [146.0, 1511.0]
    assert list(fig.data[0].marker.symbol) == ["circle", "star"]
    low, high = fig.layout.yaxis.range
    assert 0.85 < low < 0.934 and 0.963 < high <= 1.0  # not from 0: the difference is visible
    assert fig.layout.title.text == "Validation accuracy vs training time"


def test_curves_have_whole_epoch_ticks_log_loss_and_smoothing():
    h = {"loss": [1.0, 0.5, 0.8, 0.2], "val_loss": [1.1, 0.6, 0.7, 0.3]}
    fig = charts.curves_figure(
        [{"label": "FE", "approach": "feature_extraction", "history": h}], "loss", smoothing=0.6, log_y=True
    )
    assert fig.layout.xaxis.tickformat == "d" and fig.layout.xaxis.dtick == 1
    assert fig.layout.yaxis.type == "log"
    smoothed = [t for t in fig.data if t.name == "FE train"][0]
    assert list(smoothed.y)[0] == 1.0 and 0.5 < list(smoothed.y)[2] < 0.8  # the moving average, not the raw points


def test_repeat_groups_are_drawn_on_an_axis_that_shows_their_spread():
    from engine.insight.charts import repeat_groups_figure

    groups = [
        {"label": "Frozen (3 seeds)", "approach": "frozen", "mean": 0.9713, "std": 0.0014, "values": [0.970, 0.9713, 0.9726]},
        {
            "label": "Fine-tuning (3 seeds)",
            "approach": "fine_tuning",
            "mean": 0.9750,
            "std": 0.0020,
            "values": [0.973, 0.975, 0.977],
        },
    ]
    fig = repeat_groups_figure(groups, "val_accuracy")
    lo, hi = fig.layout.yaxis.range
    assert lo <= 0.9699 and hi >= 0.9771 and hi - lo < 0.02  # the ±0.0014 bar is a visible part of the axis, not of 0-1
    means = [t for t in fig.data if t.error_y and t.error_y.array is not None]
    assert [list(t.error_y.array) for t in means] == [[0.0014], [0.002]]
    assert [len(t.y) for t in fig.data if t not in means] == [3, 3]  # each seed's value is drawn too


def test_accuracy_vs_time_labels_are_never_clipped():
    from engine.insight.charts import accuracy_vs_time_figure

    fig = accuracy_vs_time_figure(
        [
            {"label": "Feature extraction (572b33)", "approach": "feature_extraction", "accuracy": 0.97, "wall_seconds": 100},
            {"label": "Fine-tuning (1a2b3c)", "approach": "fine_tuning", "accuracy": 0.98, "wall_seconds": 600},
        ]
    )
    assert fig.data[0].cliponaxis is False
    x0, x1 = fig.layout.xaxis.range
    assert x0 < 100 - 100 and x1 > 600 + 100  # room beside the first and last dots for their centred labels


def test_accuracy_vs_time_has_interval_bars_an_axis_ending_at_1_and_a_continued_run_at_its_whole_cost():
    rows = [
        {"label": "FE", "approach": "feature_extraction", "accuracy": 1.0, "low": 0.51, "high": 1.0, "wall_seconds": 30.0},
        {
            "label": "FT",
            "approach": "fine_tuning",
            "accuracy": 0.75,
            "low": 0.30,
            "high": 0.95,
            "wall_seconds": 125.0,
            "phase2_seconds": 47.0,
        },
    ]
    fig = charts.accuracy_vs_time_figure(rows, "Test accuracy")
    dots = fig.data[-1]
    assert list(dots.x) == [30.0, 125.0]  # the whole cost (47 + 78), as the table says
    assert list(dots.error_y.array) == [0.0, pytest.approx(0.20)] and list(dots.error_y.arrayminus) == [
        pytest.approx(0.49),
        pytest.approx(0.45),
    ]
    (segment,) = fig.data[:-1]  # the continued part: from its phase 2 alone to its whole cost
    assert list(segment.x) == [47.0, 125.0] and list(segment.y) == [0.75, 0.75] and segment.line.dash == "dot"
    assert fig.layout.yaxis.range[1] == 1.0 and fig.layout.yaxis.range[0] < 0.30
    assert fig.layout.xaxis.range[0] < 30.0 and fig.layout.xaxis.range[1] > 125.0


def test_accuracy_axes_never_read_past_1():
    h = {"accuracy": [0.9, 1.0], "val_accuracy": [0.95, 1.0]}
    fig = charts.curves_figure([{"label": "FE", "approach": "feature_extraction", "history": h}], "accuracy")
    assert fig.layout.yaxis.autorangeoptions.maxallowed == 1.0
    loss = charts.curves_figure([{"label": "FE", "approach": "feature_extraction", "history": {"loss": [2.0]}}], "loss")
    assert loss.layout.yaxis.autorangeoptions.maxallowed is None
    groups = [{"label": "FE", "approach": "frozen", "mean": 0.99, "std": 0.02, "values": [0.97, 1.0, 1.0]}]
    assert charts.repeat_groups_figure(groups, "test_accuracy").layout.yaxis.range[1] == 1.0


def _finder_result(rule="valley"):
    """A finder's curve: a descent to a minimum at 1e-2, then a blow-up whose noisy loss falls steeply once."""
    import numpy as np

    lrs = list(np.geomspace(1e-6, 1.0, 61))
    smoothed = [1.0 - 0.7 / (1 + np.exp(-(np.log10(lr) + 4) * 2)) for lr in lrs]  # falls fastest at 1e-4
    imin = 48  # 1e-2: then up to 40x, with one steep fall on the way
    for i in range(imin + 1, 61):
        smoothed[i] = smoothed[imin] * (1 + (i - imin) ** 2)
    smoothed[56] = smoothed[55] / 8
    return {
        "learning_rates": lrs,
        "losses": smoothed,
        "smoothed": smoothed,
        "suggested": 3e-5,
        "rule": rule,
        "steepest": lrs[56],
        "valley": 3e-5,
    }


def test_the_finder_chart_shows_the_whole_curve_and_steepest_before_the_minimum_apart_from_the_suggestion():
    result = _finder_result()
    fig = charts.finder_figure(result)
    marks = {t.name: t for t in fig.data if t.mode == "markers+text"}
    assert set(marks) == {"suggested (valley)", "steepest descent"}
    suggested, steepest = marks["suggested (valley)"].x[0], marks["steepest descent"].x[0]
    minimum = result["learning_rates"][48]
    assert steepest != suggested and steepest <= minimum  # never on the blow-up (the stored 56th step lies past it)
    assert 5e-5 < steepest < 2e-4  # where the descent is steepest
    assert marks["suggested (valley)"].textposition != marks["steepest descent"].textposition
    finite = [v for v in result["smoothed"]]
    assert fig.layout.yaxis.type == "log"  # a 40x blow-up: the whole curve on a log axis, nothing capped
    lo, hi = fig.layout.yaxis.range
    assert 10**lo <= min(finite) and 10**hi >= max(finite)


def test_the_finder_chart_keeps_a_steepest_rate_that_lies_on_the_descent():
    lrs = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    smoothed = [1.0, 0.9, 0.5, 0.4, 0.45, 0.6]
    fig = charts.finder_figure(
        {
            "learning_rates": lrs,
            "losses": smoothed,
            "smoothed": smoothed,
            "suggested": 1e-4,
            "rule": "valley",
            "steepest": 1e-4,
            "valley": 1e-4,
        }
    )
    assert fig.layout.yaxis.range == (0, pytest.approx(1.08)) or list(fig.layout.yaxis.range) == [0, pytest.approx(1.08)]
    marks = [t for t in fig.data if t.mode == "markers+text"]
    assert [t.x[0] for t in marks] == [1e-4, 1e-4] and marks[0].textposition != marks[1].textposition
