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
