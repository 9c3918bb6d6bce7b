"""ui/api.py: the model as a web API behind the access gate. Driven as ASGI calls on the gate around a
Starlette app of the API's routes (no Streamlit); one slow test goes through the real server (serve.py)."""

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid

import pytest
from PIL import Image
from starlette.applications import Starlette

from engine import cli
from tests.conftest import ROOT, write_run
from tests.shared_runs import copy_run
from ui.access_gate import COOKIE, AccessGate, cookie_value
from ui.api import Api

TOKEN = "s3cret-token-0123456789"


def server(token=TOKEN, **kw):
    """The gate around the API's routes, as serve.py puts them on Streamlit's server."""
    return AccessGate(Starlette(routes=Api(**kw).routes()), token=token, uploads_held=lambda s: (0, 0), limits=(5, 10**9))


async def acall(app, path, method="GET", headers=(), query=b"", body=b""):
    sent = []
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]

    async def receive():
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
        "http_version": "1.1",
    }
    await app(scope, receive, send)
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], head, json.loads(payload) if "json" in head.get("content-type", "") else payload


def call(app, path, **kw):
    return asyncio.run(acall(app, path, **kw))


BEARER = ("authorization", f"Bearer {TOKEN}")


def png(colour=(200, 60, 40), size=(40, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def multipart(field: str, data: bytes, name="photo.png") -> tuple[tuple, bytes]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return ("content-type", f"multipart/form-data; boundary={boundary}"), body


@pytest.fixture
def store(tiny_ft_run, monkeypatch):
    runs_dir, run_id, data_dir = tiny_ft_run
    monkeypatch.setenv("TLS_RUNS_DIR", str(runs_dir))
    return runs_dir, run_id, data_dir


def test_without_a_token_or_with_a_wrong_one_the_api_answers_401_json(store):
    app = server()
    for headers in (
        (),
        (("authorization", "Bearer wrong-token-0123456789"),),
        (("authorization", f"Basic {TOKEN}"),),
        (("cookie", f"{COOKIE}=forged"),),
    ):
        status, head, body = call(app, "/api/v1/runs", headers=headers)
        assert status == 401 and head["www-authenticate"] == "Bearer" and "Bearer" in body["error"], headers
        status, _, body = call(
            app, "/api/v1/predict", method="POST", headers=headers, query=f"run={store[1]}".encode(), body=png()
        )
        assert status == 401 and set(body) == {"error"}


def test_a_bearer_token_or_the_login_cookie_opens_the_api_and_lists_finished_runs(store):
    app = server()
    for auth in (BEARER, ("authorization", f"bearer  {TOKEN} "), ("cookie", f"other=1; {COOKIE}={cookie_value(TOKEN)}")):
        status, _, body = call(app, "/api/v1/runs", headers=[auth])
        assert status == 200, body
        (run,) = body["runs"]
        assert run["id"] == store[1] and run["approach"] == "fine_tuning" and run["backbone"] == "mobilenet_v2"
        assert run["image_size"] == 32 and run["classes"] == ["cats", "dogs"] and run["split"] == "test"
        assert 0.0 <= run["accuracy"] <= 1.0
    # Without a token set (localhost), no auth, as for the dashboard.
    assert call(server(token=""), "/api/v1/runs")[0] == 200
    status, _, spec = call(app, "/api/v1/openapi.json", headers=[BEARER])
    assert status == 200 and "/api/v1/predict" in spec["paths"]


def test_predict_equals_the_cli_predict_answer(store, capsys):
    runs_dir, run_id, data_dir = store
    app = server()
    for tta in (False, True):
        img = data_dir / "test" / "dogs" / "dogs_0.png"
        assert cli.main(["predict", "--run", run_id, "--runs-dir", str(runs_dir), "--json", *["--tta"] * tta, str(img)]) == 0
        expected = json.loads(capsys.readouterr().out)["predictions"][0]
        query = f"run={run_id}" + "&tta=1" * tta
        raw = call(app, "/api/v1/predict", method="POST", headers=[BEARER], query=query.encode(), body=img.read_bytes())
        form_header, body = multipart("image", img.read_bytes())
        form = call(app, "/api/v1/predict", method="POST", headers=[BEARER, form_header], query=query.encode(), body=body)
        for status, _, got in (raw, form):
            assert status == 200, got
            assert got["label"] == expected["predicted"] and got["runs"] == [run_id] and got["tta"] is tta and got["ms"] > 0
            assert got["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)


def test_bad_input_is_a_4xx_with_one_sentence_never_a_traceback(store, tmp_path, monkeypatch):
    runs_dir, run_id, _ = store
    app = server(max_bytes=2000)
    cases = {
        "not an image": (400, f"run={run_id}", b"just some text, not a photo", ()),
        "no image": (400, f"run={run_id}", b"", ()),
        "no run": (400, "", png(), ()),
        "unknown run": (404, "run=no-such-run", png(), ()),
        "bad run id": (400, "run=..", png(), ()),
        "bad tta": (400, f"run={run_id}&tta=maybe", png(), ()),
        "too big": (413, f"run={run_id}", b"x" * 2001, ()),
        "too big, declared": (413, f"run={run_id}", png(), (("content-length", "999999"),)),
        "form without image": (400, f"run={run_id}", *reversed(multipart("photo", png()))),
        "broken form": (400, f"run={run_id}", b"--x\r\ngarbage", (("content-type", "multipart/form-data; boundary=x"),)),
    }
    for what, (expected, query, body, extra) in cases.items():
        extra = (extra,) if extra and isinstance(extra[0], str) else extra
        status, head, got = call(app, "/api/v1/predict", method="POST", headers=[BEARER, *extra], query=query.encode(), body=body)
        assert status == expected and head["content-type"] == "application/json", (what, status, got)
        assert set(got) == {"error"} and "\n" not in got["error"] and "Traceback" not in got["error"], (what, got)
        assert str(runs_dir) not in got["error"] and str(runs_dir.resolve()) not in got["error"], (what, got)  # no folder told
    # A run that is not finished, or finished without a model, is no answer either.
    mine = tmp_path / "mine"
    copy_run(runs_dir, run_id, mine)
    write_run(mine, "0-failed", state="failed")
    write_run(mine, "1-no-model")
    monkeypatch.setenv("TLS_RUNS_DIR", str(mine))
    assert [r["id"] for r in call(app, "/api/v1/runs", headers=[BEARER])[2]["runs"]] == [run_id]
    for rid in ("0-failed", "1-no-model"):
        status, _, got = call(app, "/api/v1/predict", method="POST", headers=[BEARER], query=f"run={rid}".encode(), body=png())
        assert status == 409 and rid in got["error"], got


def test_a_bug_is_a_generic_500_and_the_traceback_stays_in_the_log(store, monkeypatch, caplog):
    app = server()
    monkeypatch.setattr(Api, "_answer", lambda self, *a: 1 / 0)
    status, _, got = call(app, "/api/v1/predict", method="POST", headers=[BEARER], query=f"run={store[1]}".encode(), body=png())
    assert status == 500 and set(got) == {"error"} and "ZeroDivision" not in got["error"]
    assert "ZeroDivisionError" in caplog.text


def test_twenty_concurrent_requests_are_all_answered_at_most_two_models_at_once(store, monkeypatch):
    run_id = store[1]
    api = Api(max_concurrent=2)
    app = AccessGate(Starlette(routes=api.routes()), token=TOKEN, uploads_held=lambda s: (0, 0), limits=(5, 10**9))
    busy, peak, lock = [0], [0], threading.Lock()
    real = Api._answer

    def counted(self, *a):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        try:
            return real(self, *a)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(Api, "_answer", counted)
    colours = [(200, 60, 40), (40, 80, 200)]

    async def many():
        return await asyncio.gather(
            *[
                acall(
                    app,
                    "/api/v1/predict",
                    method="POST",
                    headers=[BEARER],
                    query=f"run={run_id}".encode(),
                    body=png(colours[i % 2]),
                )
                for i in range(20)
            ]
        )

    answers = asyncio.run(many())
    assert all(status == 200 for status, _, _ in answers), answers
    assert 1 <= peak[0] <= 2 and len(api.cache._runs) == 1  # loaded once, kept
    # Threads, each with its own event loop (as test clients run), are all answered too.
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                call(app, "/api/v1/predict", method="POST", headers=[BEARER], query=f"run={run_id}".encode(), body=png())[0]
            )
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [200] * 4


@pytest.mark.slow
def test_the_real_server_answers_predict_with_a_bearer_token(store, tmp_path):
    from tests.test_serving import free_port, wait_for_health

    runs_dir, run_id, data_dir = store
    port = free_port()
    env = {**os.environ, "TLS_ACCESS_TOKEN": TOKEN, "TLS_RUNS_DIR": str(runs_dir)}
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
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
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
    )
    url = f"http://127.0.0.1:{port}/api/v1/predict?run={run_id}"
    img = (data_dir / "test" / "cats" / "cats_0.png").read_bytes()
    try:
        wait_for_health(f"http://127.0.0.1:{port}", proc, log)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, data=img, method="POST"), timeout=30)
        assert refused.value.code == 401 and "error" in json.loads(refused.value.read())
        request = urllib.request.Request(
            url, data=img, method="POST", headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream"}
        )
        got = json.loads(urllib.request.urlopen(request, timeout=120).read())
        assert got["runs"] == [run_id] and set(got["probabilities"]) == {"cats", "dogs"}, got
        assert got["label"] == max(got["probabilities"], key=got["probabilities"].get)
    finally:
        proc.kill()
        proc.wait()
