"""Dashboard smoke tests with streamlit.testing (no browser): the router reaches every page, and each renders."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

PAGES = {
    "pages/data_overview.py": "Data overview",
    "pages/feature_extraction.py": "Feature extraction",
    "pages/frozen_training.py": "Frozen training",
    "pages/fine_tuning.py": "Fine-tuning",
    "pages/compare.py": "Compare",
    "pages/classify.py": "Classify",
}


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


@pytest.mark.parametrize("page", PAGES)
def test_page_switch_lands_on_that_page_and_it_renders(page):
    at = app().run()
    assert at.title[0].value.startswith("Data overview")  # the default page
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title[0].value.startswith(PAGES[page]), [t.value for t in at.title]
