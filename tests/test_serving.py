"""Serving: localhost bind and XSRF in the config, app.sh's refusal, the access-token gate,
and typed paths confined to the allowed roots in the sidebar."""

import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request

import pytest
from streamlit.testing.v1 import AppTest

from engine import settings
from tests.conftest import ROOT
from tests.test_app_pages import page
from ui import access, access_gate
from ui.access_gate import pass_mark

TOKEN = "s3cret-token-0123456789"
WEAK = [" ", "short", "fifteen-chars-x", "sixteen chars!!!x", "a-long-token-with\ttab"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url, proc, log):
    for _ in range(120):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("streamlit did not start:\n" + log.read_text()[-3000:])


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


@pytest.mark.parametrize("args", [[], ["--server.address", "0.0.0.0"]])
@pytest.mark.parametrize("token", WEAK)
def test_app_sh_refuses_a_weak_token_wherever_it_serves(token, args):
    proc = subprocess.run(
        ["bash", "scripts/app.sh", *args],
        cwd=ROOT,
        env={**os.environ, "TLS_ACCESS_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("app.sh: refusing to serve: TLS_ACCESS_TOKEN ")
    assert "16" in proc.stderr and not proc.stdout  # refused before set-up or Streamlit ran


def test_serve_py_refuses_a_weak_token_before_serving(tmp_path):
    """`streamlit run serve.py` for real: Streamlit finds `app` without running serve.py, then uvicorn imports
    it; the refusal there must end the process (exit 2, one line), not leave a server up."""
    for token in (" ", "short"):
        port = free_port()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "serve.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
            ],
            cwd=ROOT,
            env={**os.environ, "TLS_ACCESS_TOKEN": token, "TLS_RUNS_DIR": str(tmp_path / "runs")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert proc.stderr.count("\n") == 1, proc.stderr[-3000:]
        assert proc.stderr.startswith("serve.py: refusing to serve: TLS_ACCESS_TOKEN ")
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def test_without_the_env_var_there_is_no_gate():
    at = app().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Data overview"


def test_with_a_token_but_no_gate_in_front_the_app_shows_only_why(monkeypatch):
    # `streamlit run app.py` with a token: the server would take messages from anyone, so nothing renders.
    monkeypatch.setenv("TLS_ACCESS_TOKEN", TOKEN)
    at = app().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [access.UNGATED]
    assert not at.title and not at.sidebar.radio  # neither a page nor the sidebar rendered


def test_a_page_url_on_a_fresh_server_is_gated_too(monkeypatch):
    # Before app.py has ever called st.navigation, Streamlit serves pages/*.py on their own.
    monkeypatch.setenv("TLS_ACCESS_TOKEN", TOKEN)
    at = app()
    at.switch_page(str(ROOT / "pages" / "compare.py")).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [access.UNGATED] and not at.title


@pytest.mark.parametrize("weak", [" ", "short"])
def test_with_a_weak_token_the_app_says_so_and_renders_nothing(weak, monkeypatch):
    monkeypatch.setenv("TLS_ACCESS_TOKEN", weak)
    at = app().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [settings.token_problem(weak) + "; restart the dashboard with a stronger one."]
    assert not at.title and not at.sidebar.radio


def test_the_script_trusts_only_the_gates_own_mark():
    assert access.behind_gate({"x-tls-gate": pass_mark(TOKEN)}, TOKEN)
    assert not access.behind_gate({"x-tls-gate": pass_mark(TOKEN + "x")}, TOKEN)
    assert not access.behind_gate({}, TOKEN) and not access.behind_gate(None, TOKEN)


@pytest.mark.slow
def test_the_served_app_refuses_every_door_without_the_token(tmp_path):
    """serve.py for real: a websocket or upload without the login cookie never reaches Streamlit."""
    import asyncio

    import websockets

    port = free_port()
    env = {**os.environ, "TLS_ACCESS_TOKEN": TOKEN, "TLS_RUNS_DIR": str(tmp_path / "runs"), "TLS_UPLOAD_MAX_MB": "0.001"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc, tmp_path / "server.log")

        def status(path, method="GET", data=None, cookie=""):
            req = urllib.request.Request(url + path, method=method, data=data, headers={"Cookie": cookie} if cookie else {})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        async def stream(cookie):
            try:
                async with websockets.connect(
                    f"ws://127.0.0.1:{port}/_stcore/stream",
                    subprotocols=["streamlit"],
                    additional_headers={"Cookie": cookie} if cookie else {},
                ):
                    return "open"
            except websockets.InvalidStatus as e:
                return e.response.status_code

        assert asyncio.run(stream("")) == 403  # no session: no clear_cache, no file_urls_request, nothing
        assert status("/_stcore/upload_file/s/f", "PUT", b"x" * 10)[0] == 403
        code, body = status("/")
        assert code == 401 and b"needs its access token" in body
        good = f"{access_gate.COOKIE}={access_gate.cookie_value(TOKEN)}"
        assert asyncio.run(stream(good)) == "open"
        assert status("/_stcore/host-config", cookie=good)[0] == 200
        code, body = status("/_stcore/upload_file/s/f", "PUT", b"x" * 2000, cookie=good)
        assert code == 413 and b"TLS_UPLOAD_MAX_MB" in body  # over the session's bound, refused before Streamlit

        # Hostile login targets through the real server (h11 once raised on a CR/LF in a Location).
        def raw(request: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(request)
                return sock.recv(65536)

        def post(next_path: str) -> bytes:
            form = urllib.parse.urlencode({"token": TOKEN, "next": next_path}).encode()
            return raw(
                b"POST " + access_gate.LOGIN_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                + str(len(form)).encode()
                + b"\r\n\r\n"
                + form
            )

        assert post("/\r\nSet-Cookie: x=1").startswith(b"HTTP/1.1 400 ")
        assert b"\r\nlocation: /\r\n" in post("/\\evil.example/steal").lower()
        token_link = f"GET //evil.example/x?token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        assert b"\r\nlocation: /\r\n" in raw(token_link).lower()
        crlf_link = f"GET /%0d%0aX:%20y?token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        assert raw(crlf_link).startswith(b"HTTP/1.1 400 ")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log and "LocalProtocolError" not in log, log[-3000:]


def test_folder_path_outside_the_allowed_roots_is_refused_and_not_scanned(monkeypatch, tmp_path):
    monkeypatch.setenv("TLS_DATA_ROOTS", str(tmp_path))  # as when served with a token: only the allowed roots
    at = page("pages/data_overview.py")
    at.query_params["source"] = "Folder path"
    at.query_params["folder"] = "/etc"  # a shared link must not get around it either
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.error[0].value.startswith("Folder path /etc is outside the allowed folders (")
    assert at.sidebar.error[0].value.endswith("add the folder to TLS_DATA_ROOTS when starting it")
    assert at.session_state["data_path"] == ""
    assert at.warning[0].value.startswith("No dataset is active: Folder path /etc is outside")  # said in the main pane too


def test_on_localhost_any_readable_folder_is_scanned(tiny_dataset, monkeypatch):
    monkeypatch.delenv("TLS_DATA_ROOTS", raising=False)
    monkeypatch.delenv("TLS_ACCESS_TOKEN", raising=False)
    at = page("pages/data_overview.py").run()
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    at.sidebar.text_input(key="sb_folder").input(str(tiny_dataset)).run()
    assert not at.exception and not at.sidebar.error, at.sidebar.error
    assert at.session_state["data_path"] == str(tiny_dataset.resolve())


def test_a_missing_folder_is_said_in_the_main_pane(tmp_path, monkeypatch):
    monkeypatch.delenv("TLS_DATA_ROOTS", raising=False)
    at = page("pages/data_overview.py").run()
    at.sidebar.radio(key="sb_source").set_value("folder").run()
    at.sidebar.text_input(key="sb_folder").input(str(tmp_path / "nowhere")).run()
    assert not at.exception, at.exception
    shown = [e.value for e in at.error] + [w.value for w in at.warning]
    assert any(str(tmp_path / "nowhere") in text for text in shown), shown


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


def test_a_clear_cache_message_cannot_take_the_job_runner(isolated_store):
    # What a `clear_cache` back-message does on the server: both caches cleared for every session.
    import streamlit as st

    from ui import resources

    runner = resources.job_runner()
    st.cache_resource.clear()
    st.cache_data.clear()
    assert resources.job_runner() is runner  # its queue and the running job's Stop survive
