"""The approach form's heading (ui/form_origin.py): lecture defaults only while they are, else who changed what."""

import pytest

from tests.test_app_pages import page, sample_dir, tiny_setup  # noqa: F401  (sample_dir: autouse fixture)
from tests.test_ui_finder import _finished_finder_job
from tests.test_ui_sweep import stored_sweep


def heading(at) -> str:
    return next(h.value for h in at.subheader if h.value.startswith("Hyper-parameters"))


@pytest.mark.slow  # renders the page about ten times (a model summary each)
def test_the_heading_names_the_finder_a_sweep_or_the_user_once_values_change(tmp_path):
    from engine.config import RunConfig

    at = tiny_setup(page("pages/feature_extraction.py"))
    assert heading(at) == "Hyper-parameters (lecture defaults)"
    at.number_input(key="feature_extraction_epochs").set_value(3).run()
    assert heading(at) == "Hyper-parameters (changed by you)"
    at.number_input(key="feature_extraction_epochs").set_value(30).run()  # back to the default: nothing changed
    assert heading(at) == "Hyper-parameters (lecture defaults)"

    cfg = RunConfig.from_dict(
        {
            "approach": "feature_extraction",
            "data": {"path": at.session_state["data_path"]},
            "backbone": {"name": "vgg16", "image_size": 32, "weights": "none"},
        }
    )
    job_id = _finished_finder_job(cfg.to_dict(), "feature_extraction")
    at.session_state["feature_extraction_finder_jobs"] = [job_id]
    at.run()
    at.button(key=f"{job_id}_use").click().run()
    assert at.number_input(key="feature_extraction_lr").value == pytest.approx(3.5e-05)
    assert heading(at) == "Hyper-parameters (changed: learning rate from the finder)"

    stored_sweep(tmp_path / "runs", at.session_state["data_path"])
    at.run()
    at.button(key="feature_extraction_sweep_apply").click().run()  # the sweep's rate replaces the finder's
    assert heading(at) == "Hyper-parameters (changed: from sweep 20260101-000000-sweep-feature_extraction)"
    at.number_input(key="feature_extraction_bs").set_value(8).run()
    assert heading(at) == "Hyper-parameters (changed: from sweep 20260101-000000-sweep-feature_extraction; by you)"
    at.number_input(key="feature_extraction_lr").set_value(0.002).run()  # the sweep's rate edited: the user's now
    at.slider(key="feature_extraction_drop").set_value(0.5).run()
    assert heading(at) == "Hyper-parameters (changed by you)"

    at.selectbox(key="feature_extraction_preset").set_value("best_cpu").run()  # a preset re-primes the form
    assert heading(at) == "Hyper-parameters (preset: best_cpu)"
