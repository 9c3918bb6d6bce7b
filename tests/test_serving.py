"""Serving: localhost bind and XSRF in the config, app.sh's refusal, the access-token gate,
and typed paths confined to the allowed roots in the sidebar."""

import os
import subprocess
import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.test_app_pages import page

TOKEN = "s3cret-token"
GATE = "This dashboard needs its access token: type it above or open the link with ?token=… ."


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("TLS_ACCESS_TOKEN", raising=False)
    monkeypatch.chdir(ROOT)


def test_config_binds_to_localhost_with_xsrf_and_no_developer_menu():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "localhost"
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["client"]["toolbarMode"] in ("viewer", "minimal")


@pytest.mark.parametrize("args", [["--server.address", "0.0.0.0"], ["--server.address=192.168.1.5"], ["--server.address", ""]])
def test_app_sh_refuses_a_network_address_without_a_token(args):
    env = {k: v for k, v in os.environ.items() if k != "TLS_ACCESS_TOKEN"}
    proc = subprocess.run(["bash", "scripts/app.sh", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "set TLS_ACCESS_TOKEN" in proc.stderr


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def test_without_the_env_var_there_is_no_gate():
    at = app().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Data overview"


def test_with_a_token_the_app_stops_until_it_is_given(monkeypatch):
    monkeypatch.setenv("TLS_ACCESS_TOKEN", TOKEN)
    at = app().run()
    assert not at.exception, at.exception
    assert [i.value for i in at.info] == [GATE]
    assert not at.title and not at.sidebar.radio  # neither a page nor the sidebar rendered

    at.text_input(key="_tls_access_box").input("wrong").run()
    assert "not right" in at.error[0].value and not at.title
    at.text_input(key="_tls_access_box").input(TOKEN).run()
    assert at.title[0].value == "Data overview" and at.sidebar.radio


def test_the_token_in_the_url_is_accepted_then_removed(monkeypatch):
    monkeypatch.setenv("TLS_ACCESS_TOKEN", TOKEN)
    at = app()
    at.query_params["token"] = TOKEN
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Data overview"
    assert "token" not in at.query_params  # not left in the address bar
    at.run()
    assert at.title[0].value == "Data overview"  # remembered for the session

    wrong = app()
    wrong.query_params["token"] = TOKEN + "x"
    wrong.run()
    assert "not right" in wrong.error[0].value and not wrong.title


def test_a_page_url_on_a_fresh_server_is_gated_too(monkeypatch):
    # Before app.py has ever called st.navigation, Streamlit serves pages/*.py on their own.
    monkeypatch.setenv("TLS_ACCESS_TOKEN", TOKEN)
    at = app()
    at.switch_page(str(ROOT / "pages" / "compare.py")).run()
    assert not at.exception, at.exception
    assert [i.value for i in at.info] == [GATE] and not at.title


def test_folder_path_outside_the_allowed_roots_is_refused_and_not_scanned(monkeypatch):
    monkeypatch.delenv("TLS_DATA_ROOTS", raising=False)
    at = page("pages/data_overview.py")
    at.query_params["source"] = "Folder path"
    at.query_params["folder"] = "/etc"  # a shared link must not get around it either
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.error[0].value.startswith("Folder path /etc is outside the allowed folders (")
    assert at.sidebar.error[0].value.endswith("; set TLS_DATA_ROOTS to allow it")
    assert at.session_state["data_path"] == ""
    assert at.info[0].value.startswith("Choose a dataset")  # no scan, no report of /etc


def test_folder_path_inside_an_allowed_root_is_scanned(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_DATA_ROOTS", str(tmp_path))
    at = page("pages/data_overview.py").run()
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    at.sidebar.text_input(key="sb_folder").input(str(tiny_dataset)).run()
    assert not at.exception, at.exception
    assert not at.sidebar.error
    assert at.caption[0].value.startswith(f"{tiny_dataset.resolve()} · split layout")


def test_a_weights_file_outside_the_roots_is_refused_and_not_trained(tmp_path, monkeypatch):
    from ui import resources

    monkeypatch.setenv("TLS_DATA_ROOTS", str(tmp_path))
    at = page("pages/feature_extraction.py")
    at.query_params["weights"] = "Local file"
    at.query_params["weights_path"] = "/etc/passwd"
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.error[0].value.startswith("Weights file /etc/passwd is outside the allowed folders")
    assert at.button[0].disabled  # Train, with the reason under the form
    assert any(e.value == "Train is disabled: " + at.sidebar.error[0].value for e in at.error)
    assert resources.job_runner().jobs() == []
