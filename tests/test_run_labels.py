"""ui/run_labels.py: the one default-run rule (the best finished run) Compare and Classify share, and a sample's label."""

from types import SimpleNamespace

from ui.run_labels import best_finished_run, best_per_approach, run_label, sample_label


def run(rid, approach="frozen", state="finished", acc=0.9, max_per_class=0):
    return SimpleNamespace(
        id=rid,
        approach=approach,
        state=state,
        scored_accuracy=(acc, "validation"),
        config={"data": {"max_per_class": max_per_class}},
        classes=["cats", "dogs"],
        backbone="vgg16",
        image_size=96,
        dataset_root="/d/pets",
    )


def test_stopped_failed_and_running_runs_are_never_the_default():
    runs = [
        run("1-fe", "feature_extraction", acc=0.80),
        run("2-fe", "feature_extraction", state="stopped", acc=0.99),
        run("3-fr", acc=0.85),
        run("4-fr", state="failed", acc=0.97),
        run("5-ft", "fine_tuning", state="running", acc=0.98),
    ]
    assert best_per_approach(runs) == {"feature_extraction": "1-fe", "frozen": "3-fr"}  # no fine-tuning run has finished
    assert best_finished_run(runs) == "3-fr"  # the best of those, not the newest (5-ft) nor the highest (2-fe, stopped)
    assert best_finished_run([run("1", state="stopped"), run("2", state="interrupted")]) is None


def test_a_tie_goes_to_the_newer_run_and_a_run_without_accuracy_comes_last():
    assert (
        best_finished_run([run("20260101-a", acc=0.9), run("20260102-b", acc=0.9), run("20260103-c", acc=None)]) == "20260102-b"
    )


def test_a_sampled_run_says_its_bound_in_its_label():
    assert sample_label(run("1", max_per_class=50)) == "≤50/class" and sample_label(run("2")) == ""
    assert run_label(run("1", max_per_class=50)).startswith("pets · ≤50/class · cats, dogs · ")
    assert "/class" not in run_label(run("2"))
