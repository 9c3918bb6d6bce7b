"""ui/run_analysis.py: a finished run's accuracy metric keeps a bare number and says its count and interval beside it."""

from streamlit.testing.v1 import AppTest


def _metrics(split: dict | None, missing=None):
    def script(split, missing):
        import streamlit as st

        from ui.run_analysis import accuracy_metric

        accuracy_metric(st.container(), "Test accuracy", split, missing)

    return AppTest.from_function(script, args=(split, missing), default_timeout=120).run()  # the first import is slow


def test_the_metric_is_a_bare_number_and_its_count_and_interval_stand_under_it():
    at = _metrics({"accuracy": 1.0, "num_images": 4})
    assert not at.exception, at.exception
    assert at.metric[0].value == "1.000"  # what the browser test reads with [01]\.\d{3}
    assert [c.value for c in at.caption] == ["4/4, 95 % 0.51–1.00"]
    old = _metrics({"accuracy": 0.5, "confusion_matrix": [[1, 1], [1, 1]]})  # recorded before num_images
    assert [c.value for c in old.caption] == ["2/4, 95 % 0.15–0.85"]


def test_a_split_that_was_not_scored_is_a_dash_with_the_reason():
    at = _metrics(None, "this dataset has no test split")
    assert at.metric[0].value == "—" and at.metric[0].help == "this dataset has no test split" and not at.caption
