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
    rows = [{"label": "FE", "approach": "feature_extraction", "accuracy": 0.934, "wall_seconds": 146.0},
            {"label": "FT", "approach": "fine_tuning", "accuracy": 0.963, "wall_seconds": 1511.0, "best": True}]
    fig = charts.accuracy_vs_time_figure(rows, "Validation accuracy")
    assert [t.type for t in fig.data] == ["scatter"]
    assert list(fig.data[0].y) == [0.934, 0.963] and list(fig.data[0].x) == [146.0, 1511.0]
    assert list(fig.data[0].marker.symbol) == ["circle", "star"]
    low, high = fig.layout.yaxis.range
    assert 0.85 < low < 0.934 and 0.963 < high <= 1.0  # not from 0: the difference is visible
    assert fig.layout.title.text == "Validation accuracy vs training time"


def test_curves_have_whole_epoch_ticks_log_loss_and_smoothing():
    h = {"loss": [1.0, 0.5, 0.8, 0.2], "val_loss": [1.1, 0.6, 0.7, 0.3]}
    fig = charts.curves_figure([{"label": "FE", "approach": "feature_extraction", "history": h}], "loss", smoothing=0.6, log_y=True)
    assert fig.layout.xaxis.tickformat == "d" and fig.layout.xaxis.dtick == 1
    assert fig.layout.yaxis.type == "log"
    smoothed = [t for t in fig.data if t.name == "FE train"][0]
    assert list(smoothed.y)[0] == 1.0 and 0.5 < list(smoothed.y)[2] < 0.8  # the moving average, not the raw points


def test_repeat_groups_are_drawn_on_an_axis_that_shows_their_spread():
    from engine.insight.charts import repeat_groups_figure

    groups = [{"label": "Frozen (3 seeds)", "approach": "frozen", "mean": 0.9713, "std": 0.0014, "values": [0.970, 0.9713, 0.9726]},
              {"label": "Fine-tuning (3 seeds)", "approach": "fine_tuning", "mean": 0.9750, "std": 0.0020, "values": [0.973, 0.975, 0.977]}]
    fig = repeat_groups_figure(groups, "val_accuracy")
    lo, hi = fig.layout.yaxis.range
    assert lo <= 0.9699 and hi >= 0.9771 and hi - lo < 0.02  # the ±0.0014 bar is a visible part of the axis, not of 0-1
    means = [t for t in fig.data if t.error_y and t.error_y.array is not None]
    assert [list(t.error_y.array) for t in means] == [[0.0014], [0.002]]
    assert [len(t.y) for t in fig.data if t not in means] == [3, 3]  # each seed's value is drawn too


def test_accuracy_vs_time_labels_are_never_clipped():
    from engine.insight.charts import accuracy_vs_time_figure

    fig = accuracy_vs_time_figure([{"label": "Feature extraction (572b33)", "approach": "feature_extraction", "accuracy": 0.97,
                                    "wall_seconds": 100}, {"label": "Fine-tuning (1a2b3c)", "approach": "fine_tuning",
                                                           "accuracy": 0.98, "wall_seconds": 600}])
    assert fig.data[0].cliponaxis is False
    x0, x1 = fig.layout.xaxis.range
    assert x0 < 100 - 100 and x1 > 600 + 100  # room beside the first and last dots for their centred labels
