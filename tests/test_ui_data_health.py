"""Data health on the data overview (ui/data_health_view.py): the job, the lists, and acting on a photo through the page."""

from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import make_split_dataset
from tests.test_app_pages import page, sample_dir  # noqa: F401  (sample_dir: autouse fixture, the allowed roots)


def health_doc(root) -> dict:
    """What a data-health job answers (engine/training/data_health.py), about photos of `root`."""
    p = lambda rel: str(root / rel)  # noqa: E731
    return {
        "label_issues": [
            {"path": p("train/cats/cats_1.png"), "split": "train", "given": "cats", "suggested": "dogs", "score": 0.1},
            {"path": p("validation/dogs/dogs_2.png"), "split": "validation", "given": "dogs", "suggested": "cats", "score": 0.2},
        ],
        "duplicates": [
            {
                "paths": [p("train/dogs/dogs_0.png"), p("validation/dogs/dogs_0.png")],
                "splits": ["train", "validation"],
                "similarity": 1.0,
                "exact": True,
                "leak": True,
            },
            {
                "paths": [p("train/cats/cats_3.png"), p("train/cats/cats_4.png")],
                "splits": ["train", "train"],
                "similarity": 0.95,
                "exact": False,
                "leak": False,
            },
        ],
        "outliers": [
            {"path": p("test/cats/cats_2.png"), "split": "test", "score": 5.0},
            {"path": p("train/cats/cats_3.png"), "split": "train", "score": 4.0},
        ],  # also a copy: two rows
        "summary": {"photos": 32, "label_issues": 2, "duplicate_groups": 2, "leaks": 1, "outliers": 1},
    }


def health_app(doc: dict, root) -> AppTest:
    return AppTest.from_string(
        f"from ui.data_health_view import show_health\nshow_health({doc!r}, {str(root)!r}, ['cats', 'dogs'], 'dh')"
    ).run()


def buttons(at, suffix: str) -> list:
    return [b for b in at.button if b.key.endswith(suffix)]


def test_leaks_come_first_then_labels_copies_and_outliers(tmp_path):
    root = make_split_dataset(tmp_path / "tiny")
    at = health_app(health_doc(root), root)
    assert not at.exception, at.exception
    titles = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")]
    assert titles == [
        "Leaks: the same photo in more than one split (1)",
        "Likely wrong labels (2)",
        "Duplicates (1)",
        "Outliers (2)",
    ]
    assert any("labelled **cats** → probably **dogs** (probability of its label 0.10)" in m.value for m in at.markdown)
    assert "validation · dogs · dogs_0.png" in [c.value for c in at.caption]  # the leak's copies side by side
    assert len(at.get("image")) == 8  # a thumbnail per photo, through the one decoder
    assert len(buttons(at, "_relabel")) == len(buttons(at, "_remove")) == len(buttons(at, "_keep")) == 8
    issue = next(s for s in at.selectbox if s.key == buttons(at, "_relabel")[2].key.replace("_relabel", "_to"))
    assert (issue.options, issue.value) == (["dogs"], "dogs")  # the other classes, the suggested one chosen


def test_relabel_moves_the_photo_out_of_the_list_and_undo_brings_it_back(tmp_path):
    root = make_split_dataset(tmp_path / "tiny")
    photo = root / "train" / "cats" / "cats_1.png"
    at = health_app(health_doc(root), root)
    first_issue = buttons(at, "_relabel")[2]  # the leak's two copies come first
    first_issue.click().run()
    assert not at.exception, at.exception
    assert not photo.exists() and (root / "train" / "dogs" / "cats_1.png").is_file()
    assert [s.value for s in at.success] == ["Relabelled cats_1.png to dogs: the dataset changed: train again to see the effect."]
    assert "Likely wrong labels (1)" in " ".join(m.value for m in at.markdown)  # it left the list at once
    undo = [b for b in at.button if b.key == "dh_undo"]
    assert [b.label for b in undo] == ["Undo: relabelled cats_1.png to dogs"]
    undo[0].click().run()
    assert photo.is_file() and not (root / "train" / "dogs" / "cats_1.png").exists()
    assert [s.value for s in at.success] == [
        "Undid: relabelled cats_1.png to dogs; the dataset changed: train again to see the effect."
    ]
    assert "Likely wrong labels (2)" in " ".join(m.value for m in at.markdown)


def test_remove_and_keep_take_photos_out_and_settle_a_leak(tmp_path):
    root = make_split_dataset(tmp_path / "tiny")
    at = health_app(health_doc(root), root)
    buttons(at, "_remove")[1].click().run()  # the leak's validation copy
    assert not (root / "validation" / "dogs" / "dogs_0.png").exists()
    assert "Leaks: the same photo in more than one split (0)" in " ".join(m.value for m in at.markdown)  # one copy left: settled
    buttons(at, "_keep")[-2].click().run()  # the first outlier: not an issue
    assert (root / "test" / "cats" / "cats_2.png").is_file()
    assert [s.value for s in at.success] == ["Kept cats_2.png: it is not proposed again."]
    assert "Outliers (1)" in " ".join(m.value for m in at.markdown)
    buttons(at, "_remove")[-1].click().run()  # the second, which is also one of two copies: both lists let it go
    assert "Outliers (0)" in " ".join(m.value for m in at.markdown) and "Duplicates (0)" in " ".join(m.value for m in at.markdown)


def test_a_dataset_that_may_not_change_disables_the_actions_and_says_why_once():
    from engine.data.sample import ensure_sample_dataset

    root = ensure_sample_dataset()
    files = sorted((root / "train").rglob("*.png"))[:2]
    doc = {
        "label_issues": [
            {"path": str(f), "split": "train", "given": f.parent.name, "suggested": "x", "score": 0.1} for f in files
        ],
        "duplicates": [],
        "outliers": [],
        "summary": {},
    }
    at = health_app(doc, root)
    assert not at.exception, at.exception
    reasons = [c.value for c in at.caption if c.value.startswith("Relabel, Remove and Keep are off here")]
    assert len(reasons) == 1 and "sample" in reasons[0].lower()
    assert all(b.disabled for b in at.button) and len(at.button) == 6


class StandInRunner:
    """The job runner's tool-job API: the job runs until the test sets `state` to "done", then answers `doc`."""

    def __init__(self, doc):
        self.doc, self.submitted, self.state = doc, [], "running"

    def submit_tool(self, command, cfg, options=None):
        self.submitted.append((command, cfg))
        return SimpleNamespace(id="data-health-1")

    def get(self, job_id):
        return SimpleNamespace(id=job_id, state=self.state)

    def log_tail(self, job_id, lines=5):
        return "[data-health] train: 8/16 images through the base"

    def tool_result(self, job_id):
        return self.doc

    def job_error(self, job_id):
        return ""

    def stop(self, job_id):
        return True

    def active(self):
        return []


@pytest.mark.slow
def test_the_data_overview_queues_a_data_health_job_and_shows_its_lists(tmp_path, monkeypatch):
    from ui import resources

    root = make_split_dataset(tmp_path / "tiny")
    runner = StandInRunner(health_doc(root))
    monkeypatch.setattr(resources, "job_runner", lambda: runner)
    at = page("pages/data_overview.py").run()
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    at.sidebar.text_input(key="sb_folder").set_value(str(root)).run()
    at.button(key="dh_check").click().run()
    assert not at.exception, at.exception
    ((command, cfg),) = runner.submitted
    assert command == "data-health" and cfg.data.path == str(root)
    assert any(i.value == "Data health running: train: 8/16 images through the base" for i in at.info)
    runner.state = "done"
    at.run()  # the job ended: the lists
    assert "Likely wrong labels (2)" in " ".join(m.value for m in at.markdown)
    buttons(at, "_relabel")[2].click().run()
    assert (root / "train" / "dogs" / "cats_1.png").is_file()
    assert any("the dataset changed" in s.value for s in at.success)
    at.button(key="dh_undo").click().run()  # the real round trip: the file moves back
    assert (root / "train" / "cats" / "cats_1.png").is_file() and not (root / "train" / "dogs" / "cats_1.png").exists()
    assert any(s.value.startswith("Undid: relabelled cats_1.png to dogs") for s in at.success)
    buttons(at, "_remove")[0].click().run()  # the leak's training copy
    assert any(c.value.startswith(f"{root} ·") and "31 usable images" in c.value for c in at.caption)  # the scan re-ran


@pytest.mark.slow
def test_a_real_data_health_job_lists_its_findings_on_the_page(tmp_path):
    from tests.test_app_pages import tiny_setup, wait_for
    from ui import resources

    root = make_split_dataset(tmp_path / "tiny")
    at = page("pages/data_overview.py").run()
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    at.sidebar.text_input(key="sb_folder").set_value(str(root)).run()
    at = tiny_setup(at)
    at.button(key="dh_check").click().run()
    assert not at.exception, at.exception
    job = resources.job_runner().jobs()[-1]
    assert job.kind == "data-health" and job.config["data"]["path"] == str(root)
    at = wait_for(at, lambda a: any(c.value.startswith("Checked 32 photos") for c in a.caption))
    doc = resources.job_runner().tool_result(job.id)
    assert sum(m.value.startswith("**Leaks") for m in at.markdown) == 1
    groups = [g for leak in (True, False) for g in [d for d in doc["duplicates"] if d["leak"] == leak][:8]]
    shown = min(len(doc["label_issues"]), 8) + min(len(doc["outliers"]), 8) + sum(len(g["paths"]) for g in groups)
    assert shown and len(buttons(at, "_remove")) == shown  # every listed photo has its actions
