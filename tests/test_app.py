"""Dashboard smoke tests with streamlit.testing (no browser): every page renders on the built-in sample."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

PAGES = ["pages/data_overview.py", "pages/feature_extraction.py", "pages/frozen_training.py",
         "pages/fine_tuning.py", "pages/compare.py", "pages/classify.py"]


@pytest.fixture(autouse=True)
def sample_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_SAMPLE_DIR", str(tmp_path / "sample"))


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_exception(page):
    at = app().run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title, "page has no title"
