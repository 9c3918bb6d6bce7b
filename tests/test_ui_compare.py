"""Compare's numbers say how sure they are (AppTest): counts and 95 % intervals, a ★ only for a clear winner,
a continued fine-tuning plotted at its whole cost."""

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_ui_results import page


@pytest.fixture(autouse=True)
def sample_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_DATA_ROOTS", str(tmp_path))
    monkeypatch.chdir(ROOT)


def scored_run(run_id: str, dataset: str, *, test: float, n: int, val=0.9, wall=60.0, from_run: str = ""):
    """A finished run folder with validation and test scored on `n` photos each (num_images, as runs record it)."""
    path = Path(os.environ["TLS_RUNS_DIR"]) / run_id
    path.mkdir(parents=True)
    approach = run_id.split("-")[2]
    config = {
        "approach": approach,
        "backbone": {"name": "mobilenet_v2"},
        "data": {"path": dataset},
        "resolved": {"classes": ["circle", "square"], "image_size": 96, "dataset_root": dataset},
    }
    if from_run:
        config["fine_tune"] = {"from_run": from_run}
    history = {"loss": [0.6, 0.4], "accuracy": [0.7, 0.8], "val_loss": [0.6, 0.5], "val_accuracy": [0.5, val]}
    metrics = {
        "state": "finished",
        "epochs_run": 2,
        "epochs_total": 2,
        "wall_seconds": wall,
        "validation": {"accuracy": val, "loss": 0.3, "num_images": n},
        "test": {"accuracy": test, "loss": 0.3, "num_images": n},
    }
    for name, obj in (("config", config), ("history", history), ("metrics", metrics)):
        (path / f"{name}.json").write_text(json.dumps(obj))


def _sample() -> str:
    from engine.data.sample import ensure_sample_dataset

    return str(ensure_sample_dataset())


def test_four_test_photos_show_counts_and_intervals_and_no_star():
    here = _sample()
    scored_run("20260101-000001-feature_extraction-aaaaaa", here, test=1.0, n=4, val=0.75)
    scored_run("20260101-000002-frozen-bbbbbb", here, test=0.75, n=4, val=0.75)
    at = page("pages/compare.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["20260101-000001-feature_extraction-aaaaaa", "test acc"] == "1.000 (4/4, 95 % 0.51–1.00)"
    assert table.loc["20260101-000002-frozen-bbbbbb", "test acc"] == "0.750 (3/4, 95 % 0.30–0.95)"
    assert table.loc["20260101-000002-frozen-bbbbbb", "best val acc"] == "0.750 (3/4, 95 % 0.30–0.95)"
    assert list(table["best"]) == ["", ""]
    assert any(c.value.startswith("No clear best on 4 test photos") for c in at.caption)
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    dots = chart["data"][-1]
    bars = dict(zip(dots["y"], dots["error_y"]["arrayminus"]))  # the interval's lower arm under each dot
    assert bars == {1.0: pytest.approx(1.0 - 0.510, abs=1e-3), 0.75: pytest.approx(0.75 - 0.301, abs=1e-3)}
    assert chart["layout"]["yaxis"]["range"][1] == 1.0


def test_a_clear_winner_gets_the_star():
    here = _sample()
    scored_run("20260101-000001-feature_extraction-aaaaaa", here, test=0.75, n=400)
    scored_run("20260101-000002-frozen-bbbbbb", here, test=0.95, n=400)
    at = page("pages/compare.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("run")
    assert (
        table.loc["20260101-000002-frozen-bbbbbb", "best"] == "★"
        and table.loc["20260101-000001-feature_extraction-aaaaaa", "best"] == ""
    )
    assert any("clearly best" in c.value for c in at.caption)


def test_a_continued_fine_tuning_is_plotted_at_its_whole_cost():
    here = _sample()
    scored_run("20260101-000001-frozen-aaaaaa", here, test=0.8, n=40, wall=78.0)
    scored_run("20260101-000002-fine_tuning-bbbbbb", here, test=0.9, n=40, wall=47.0, from_run="20260101-000001-frozen-aaaaaa")
    at = page("pages/compare.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["20260101-000002-fine_tuning-bbbbbb", "wall time (s)"].startswith("125 (47 + 78 phase 1")
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    segment, dots = chart["data"][0], chart["data"][-1]
    assert sorted(dots["x"]) == [78.0, 125.0]  # the table's 125 s, not phase 2's 47 s
    assert segment["x"] == [47.0, 125.0] and segment["line"]["dash"] == "dot"


def test_the_star_rule_leaves_out_unscored_runs_and_needs_counts():
    from engine.store.record import RunRecord
    from ui.compare_extras import best_of

    def rec(rid, acc, n):
        split = {} if acc is None else {"accuracy": acc, **({"num_images": n} if n else {})}
        return RunRecord(rid, Path("/r"), {"approach": "frozen"}, {}, {"test": split})

    assert best_of([rec("a", 0.95, 400), rec("b", 0.75, 400), rec("c", None, None)], "test")[0] == "a"
    assert best_of([rec("a", 0.95, 400), rec("c", None, None)], "test") == (None, "")  # one scored run: no race
    assert best_of([rec("a", 0.95, 400), rec("b", 0.75, None)], "test")[1].startswith("No ★: not every run recorded")
    assert best_of([rec("a", 1.0, 4), rec("b", 0.75, 4)], "test")[1].startswith("No clear best on 4 test photos")
