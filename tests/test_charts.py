from engine import charts


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


def test_accuracy_vs_time_bars_use_two_axes():
    rows = [{"label": "FE", "approach": "feature_extraction", "accuracy": 0.98, "wall_seconds": 146.0},
            {"label": "FT", "approach": "fine_tuning", "accuracy": 0.97, "wall_seconds": 1511.0}]
    fig = charts.accuracy_vs_time_figure(rows)
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert list(fig.data[0].y) == [0.98, 0.97] and list(fig.data[1].y) == [146.0, 1511.0] and fig.data[1].yaxis == "y2"
