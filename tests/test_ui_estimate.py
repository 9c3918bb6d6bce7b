"""The estimate beside Train (ui/estimate_view.py): read from a stored calibration, measured by a queued job, never in the server."""

import pytest

from tests.test_app_pages import page, sample_dir, tiny_setup, wait_for  # noqa: F401  (sample_dir: autouse fixture)


@pytest.mark.slow  # runs one `estimate` job (a random base at 32 px measured in its own process)
def test_estimate_measures_the_machine_in_a_job_then_answers_from_the_stored_calibration(monkeypatch):
    from engine.training import estimate
    from ui import resources

    def never_in_the_server(*a, **k):
        raise AssertionError("the server measured the machine itself")

    monkeypatch.setattr(estimate, "build_random_base", never_in_the_server)  # the page's process must not fit a model
    at = tiny_setup(page("pages/feature_extraction.py"))
    at.button(key="feature_extraction_estimate").click().run()
    assert not at.exception, at.exception
    job = resources.job_runner().jobs()[-1]
    assert job.kind == "estimate" and any("Measuring this machine for the full estimate" in c.value for c in at.caption)
    # meanwhile a floor from the row's measured speed: the sample's images over the base, scaled to the run's size
    floor = next(c.value for c in at.caption if c.value.startswith("At least "))
    from engine.models.backbones import BACKBONES

    row = BACKBONES["vgg16"]  # tiny_setup's backbone
    speed = row.cpu_images_per_s * (row.default_size / 32) ** 2
    assert f"~{speed:.1f} images/s (vgg16's measured speed, scaled to 32 px)" in floor, floor
    at = wait_for(at, lambda a: any(c.value.startswith("Estimate on this machine") for c in a.caption))
    assert resources.job_runner().tool_result(job.id)["wall_s"] > 0
    at.button(key="feature_extraction_estimate").click().run()  # now instant, from the stored calibration, no new job
    assert resources.job_runner().jobs()[-1].id == job.id
    assert any(c.value.startswith("Estimate on this machine") for c in at.caption)
