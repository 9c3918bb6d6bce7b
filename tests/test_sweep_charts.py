"""Sweep charts (engine/insight/sweep_charts.py) read plainly: accuracy axes end at 1.0, parallel axes named in full."""

from engine.insight import sweep_charts, sweeps
from tests.test_sweeps import record, sweep_records


def test_the_line_of_a_sweep_never_reads_past_1():
    recs = [
        record(f"r{i}{s}", {"head.dropout": d}, v, None, seed=s)
        for i, (d, vals) in enumerate([(0.2, [0.9, 1.0]), (0.5, [1.0, 1.0])])
        for s, v in enumerate(vals)
    ]
    fig = sweep_charts.grid_figure(sweeps.summarize(recs, "G"))
    low, high = fig.layout.yaxis.range
    assert high == 1.0 and low < 0.9  # mean 0.95 ± 0.07 drew the axis up to 1.5 before


def test_parallel_axes_have_whole_names_ticks_at_the_swept_values_and_room_for_the_title():
    fig = sweep_charts.parallel_figure(sweeps.summarize(sweep_records(), "G"))
    par = fig.data[0]
    dims = {d.label: d for d in par.dimensions}
    assert list(dims["dropout"].ticktext) == ["0.2", "0.5"] and list(dims["dropout"].tickvals) == [0.2, 0.5]
    assert list(dims["seed"].ticktext) == ["42", "43"]
    assert dims["validation accuracy"].tickformat == ".3f"
    assert par.labelside == "bottom"  # names under the axes: the title above cannot cover them
    assert fig.layout.margin.l >= 80 and fig.layout.margin.r >= 100 and fig.layout.margin.b >= 50
