"""The access gate in front of Streamlit's server: what reaches the app with and without the token,
the login, and the per-session upload bounds. Driven as ASGI calls; tests/test_serving.py starts the
real server and tests/test_browser.py logs in through it in Chromium."""

import asyncio
import html
from urllib.parse import urlencode, urljoin, urlsplit

import pytest

from engine import settings
from ui import access_gate
from ui.access_gate import COOKIE, LOGIN_PATH, PASS_HEADER, AccessGate, cookie_value, pass_mark

TOKEN = "s3cret-token-0123456789"
GOOD = f"{COOKIE}={cookie_value(TOKEN)}".encode()


class FakeApp:
    """Stands in for Streamlit: records what reached it and accepts it."""

    def __init__(self):
        self.seen = []

    async def __call__(self, scope, receive, send):
        self.seen.append(scope)
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"app"})


def call(gate, path="/", kind="http", method="GET", headers=(), query=b"", body=b""):
    """One request through the gate; returns (status or websocket verdict, headers dict, body)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": kind, "path": path, "query_string": query, "headers": list(headers)}
    if kind == "http":
        scope["method"] = method
    asyncio.run(gate(scope, receive, send))
    first = sent[0]
    if kind == "websocket":
        return first["type"], {}, b""
    return first["status"], {k.decode(): v.decode() for k, v in first["headers"]}, b"".join(m.get("body", b"") for m in sent[1:])


def gated(**kw):
    app = FakeApp()
    return AccessGate(app, token=TOKEN, uploads_held=kw.get("held", lambda s: (0, 0)), limits=kw.get("limits", (5, 1000))), app


def test_without_the_cookie_nothing_reaches_streamlit():
    gate, app = gated()
    assert call(gate, "/_stcore/stream", kind="websocket")[0] == "websocket.close"  # the handshake gets 403
    assert call(gate, "/_stcore/upload_file/sess/file", method="PUT", headers=[(b"content-length", b"3")])[0] == 403
    assert call(gate, "/_stcore/host-config")[0] == 403
    assert call(gate, "/static/js/main.js")[0] == 403
    status, headers, body = call(gate, "/compare")
    assert status == 401 and b"This dashboard needs its access token" in body and headers["content-type"].startswith("text/html")
    wrong = f"{COOKIE}={cookie_value(TOKEN + 'x')}".encode()
    assert call(gate, "/_stcore/stream", kind="websocket", headers=[(b"cookie", wrong)])[0] == "websocket.close"
    assert call(gate, "/_stcore/stream", kind="websocket", headers=[(b"cookie", b"\x00bad;;=")])[0] == "websocket.close"
    assert app.seen == []


def test_health_stays_open_for_probes():
    gate, app = gated()
    assert call(gate, "/_stcore/health")[0] == 200 and len(app.seen) == 1


def test_with_the_cookie_requests_pass_with_the_gate_mark_and_a_forged_mark_is_dropped():
    gate, app = gated()
    forged = (PASS_HEADER.encode(), b"forged")
    assert call(gate, "/_stcore/stream", kind="websocket", headers=[(b"cookie", GOOD), forged])[0] == "websocket.accept"
    marks = [v for k, v in app.seen[0]["headers"] if k == PASS_HEADER.encode()]
    assert marks == [pass_mark(TOKEN).encode()]
    # Without the cookie, the forged mark alone opens nothing either.
    assert call(gate, "/_stcore/stream", kind="websocket", headers=[forged])[0] == "websocket.close"


def test_token_in_the_url_sets_the_cookie_and_is_removed_from_the_address():
    gate, app = gated()
    status, headers, _ = call(gate, "/compare", query=f"token={TOKEN}&run=a".encode())
    assert status == 303 and headers["location"] == "/compare?run=a"
    assert headers["set-cookie"].startswith(f"{COOKIE}={cookie_value(TOKEN)}; Path=/; HttpOnly; SameSite=Strict")
    assert TOKEN not in headers["set-cookie"]  # the cookie is an HMAC, not the token
    status, headers, body = call(gate, "/compare", query=b"token=nope")
    assert status == 401 and access_gate.WRONG.encode() in body and "set-cookie" not in headers
    assert app.seen == []


def test_login_form_checks_the_token_and_only_redirects_on_this_server():
    gate, _ = gated()
    status, headers, _ = call(gate, LOGIN_PATH, method="POST", body=f"token={TOKEN}&next=/fine_tuning".encode())
    assert status == 303 and headers["location"] == "/fine_tuning" and "set-cookie" in headers
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        assert (
            call(gate, LOGIN_PATH, method="POST", body=urlencode({"token": TOKEN, "next": evil}).encode())[1]["location"] == "/"
        )
    status, headers, body = call(gate, LOGIN_PATH, method="POST", body=b"token=wrong&next=/")
    assert status == 401 and "set-cookie" not in headers and access_gate.WRONG.encode() in body
    assert call(gate, LOGIN_PATH, method="POST", body=b"token=" + b"a" * 5000)[0] == 401


def test_without_a_token_everything_passes_unmarked():
    app = FakeApp()
    gate = AccessGate(app, token="", uploads_held=lambda s: (0, 0), limits=(5, 1000))
    assert call(gate, "/_stcore/stream", kind="websocket", headers=[(PASS_HEADER.encode(), b"x")])[0] == "websocket.accept"
    assert all(k != PASS_HEADER.encode() for k, _ in app.seen[0]["headers"])


@pytest.mark.parametrize("token", ["", TOKEN])
def test_uploads_are_bounded_per_session_in_count_and_bytes(token):
    held = {"a": (4, 900), "b": (5, 10)}
    app = FakeApp()
    gate = AccessGate(app, token=token, uploads_held=lambda s: held.get(s, (0, 0)), limits=(5, 1000))
    cookie = [(b"cookie", GOOD)] if token else []

    def put(session, size):
        return call(
            gate, f"/_stcore/upload_file/{session}/f1", method="PUT", headers=cookie + [(b"content-length", str(size).encode())]
        )

    assert put("a", 100)[0] == 200  # 5 files, 1000 bytes: exactly at both bounds
    status, _, body = put("a", 101)
    assert status == 413 and b"TLS_UPLOAD_MAX_MB" in body
    status, _, body = put("b", 1)
    assert status == 413 and b"already holds 5 files (TLS_UPLOAD_MAX_FILES=5)" in body
    assert put("c", 1000)[0] == 200  # another session has its own budget
    assert call(gate, "/_stcore/upload_file/c/f", method="PUT", headers=cookie)[0] == 413  # no declared size
    assert len(app.seen) == 2


def test_upload_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TLS_UPLOAD_MAX_FILES", "7")
    monkeypatch.setenv("TLS_UPLOAD_MAX_MB", "1.5")
    assert access_gate.upload_limits() == (7, int(1.5 * 2**20))


def test_streamlit_uploads_held_reads_streamlits_own_store(monkeypatch):
    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    mgr.add_file("s1", UploadedFileRec("f1", "a.png", "image/png", b"x" * 10))
    mgr.add_file("s1", UploadedFileRec("f2", "b.png", "image/png", b"y" * 5))

    class FakeRuntime:
        uploaded_file_mgr = mgr

    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: FakeRuntime))
    assert access_gate.streamlit_uploads_held("s1") == (2, 15)
    assert access_gate.streamlit_uploads_held("other") == (0, 0)
    mgr.remove_session_files("s1")  # what Streamlit does when the session ends
    assert access_gate.streamlit_uploads_held("s1") == (0, 0)


# --- Redirects after a login: built, never copied ---------------------------------------------------

BASE = "http://studio.local:8501/"
C0_AND_SPACE = "".join(map(chr, range(0x21)))


def browser_goes_to(location: str) -> str:
    """Where a browser lands on this Location: the WHATWG parser drops tab/CR/LF anywhere, strips
    controls and spaces at the ends and reads backslashes as slashes in http URLs."""
    cleaned = location.strip(C0_AND_SPACE).translate({9: None, 10: None, 13: None}).replace("\\", "/")
    return urljoin(BASE, cleaned)


def assert_stays_here(status, headers):
    assert status == 303, status
    location = headers["location"]
    assert location.isascii() and location.isprintable() and " " not in location, location  # a plain header value
    landed = urlsplit(browser_goes_to(location))
    assert (landed.scheme, landed.netloc) == ("http", "studio.local:8501"), (location, landed)


# (next as the attacker writes it, where the login must send the browser: a path, or None for 400)
HOSTILE_NEXT = [
    ("//evil.example/x", "/"),
    ("///evil.example/x", "/"),
    ("/\\evil.example", "/"),
    ("\\\\evil.example", "/"),
    ("\\/evil.example", "/"),
    ("/\\/evil.example", "/"),
    (" //evil.example", "/"),  # a leading space: stripped by the browser, so this is "//evil.example"
    ("\u3000//evil.example", "/"),  # not a path at all
    ("https://evil.example/", "/"),
    ("http:evil.example", "/"),
    ("http:/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("evil.example", "/"),
    ("", "/"),
    ("/%09/evil.example/steal", "/%09/evil.example/steal"),  # escapes stay escapes: a path on this server
    ("/%0d%0a/evil.example", "/%0d%0a/evil.example"),
    ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
    ("/.//evil.example", "/.//evil.example"),
    ("/@evil.example", "/@evil.example"),
    ("/ /evil.example", "/%20/evil.example"),
    ("/caf\u00e9?x=\u00e9", "/caf%C3%A9?x=%C3%A9"),  # non-ASCII leaves as UTF-8 escapes: the header stays ASCII
    ("/compare#//evil.example", "/compare"),
    # Control characters are no link a browser sends (it escapes them): 400, nothing copied into a header.
    ("/\t/evil.example/steal", None),
    ("/\r\n/evil.example", None),
    ("/x\r\nSet-Cookie: tls_access=forged", None),
    ("\t//evil.example", None),
    ("\x00//evil.example", None),
    ("/\x0b/evil.example", None),
    ("/\x7f/evil.example", None),
]


def assert_answer(status, headers, body, expected):
    if expected is None:
        assert (status, body) == (400, access_gate.BAD_REQUEST) and "set-cookie" not in headers
        assert headers["content-type"].startswith("text/plain")
    else:
        assert_stays_here(status, headers)
        assert headers["location"] == expected and "set-cookie" in headers


@pytest.mark.parametrize("evil, expected", HOSTILE_NEXT)
def test_the_login_form_never_redirects_off_this_server(evil, expected):
    gate, app = gated()
    assert_answer(*call(gate, LOGIN_PATH, method="POST", body=urlencode({"token": TOKEN, "next": evil}).encode()), expected)
    assert app.seen == []


@pytest.mark.parametrize("evil, expected", [(e, x) for e, x in HOSTILE_NEXT if e.startswith(("/", "\\", " ", "\t"))])
def test_the_token_link_never_redirects_off_this_server(evil, expected):
    # The ASGI path is already percent-decoded: "GET //evil.example/x?token=..." arrives as this path.
    gate, app = gated()
    expected = expected and expected.split("#")[0]
    assert_answer(*call(gate, evil, query=urlencode({"token": TOKEN}).encode()), expected)
    assert app.seen == []


@pytest.mark.parametrize("evil", [e for e, _ in HOSTILE_NEXT])
def test_the_login_page_carries_only_a_built_target(evil):
    # "GET /%09/evil.example/steal" used to put "/\t/evil.example/steal" into the page's hidden field.
    gate, _ = gated()
    status, _, body = call(gate, evil)
    assert status == 401
    hidden = html.unescape(body.decode().split('name="next" value="')[1].split('"')[0])
    assert hidden == access_gate.safe_target(evil) and access_gate.safe_target(hidden) == hidden
    assert hidden.isascii() and hidden.isprintable()
    assert urlsplit(browser_goes_to(hidden)).netloc == "studio.local:8501"
    if evil.strip(C0_AND_SPACE).translate({9: None, 10: None, 13: None}).replace("\\", "/").startswith("//"):
        assert hidden == "/"


@pytest.mark.parametrize(
    "good, expected",
    [
        ("/compare?x=1", "/compare?x=1"),
        ("/fine_tuning", "/fine_tuning"),
        ("/classify?run=2024-01-01%2Fa&b=c", "/classify?run=2024-01-01%2Fa&b=c"),
        ("/compare?run=a b", "/compare?run=a%20b"),
        ("/", "/"),
    ],
)
def test_a_path_on_this_server_round_trips(good, expected):
    gate, _ = gated()
    status, headers, _ = call(gate, LOGIN_PATH, method="POST", body=urlencode({"token": TOKEN, "next": good}).encode())
    assert_stays_here(status, headers)
    assert headers["location"] == expected
    # The token link keeps the rest of the query, without the token.
    path, _, query = good.partition("?")
    status, headers, _ = call(gate, path, query=(query + "&" if query else "").encode() + urlencode({"token": TOKEN}).encode())
    assert_stays_here(status, headers)
    assert TOKEN not in headers["location"] and headers["location"].split("?")[0] == expected.split("?")[0]


def test_a_token_link_with_crlf_in_its_query_is_escaped_not_copied():
    gate, _ = gated()
    status, headers, _ = call(gate, "/compare", query=f"run=%0d%0aSet-Cookie:%20x&token={TOKEN}".encode())
    assert_stays_here(status, headers)
    assert headers["location"] == "/compare?run=%0D%0ASet-Cookie%3A+x"


def test_crlf_answers_400_without_an_exception_and_a_wrong_token_learns_nothing_more():
    gate, app = gated()
    for token in (TOKEN, "wrong"):
        status, headers, body = call(
            gate, LOGIN_PATH, method="POST", body=urlencode({"token": token, "next": "/\r\nX: y"}).encode()
        )
        assert (status, body) == (400, access_gate.BAD_REQUEST) and "set-cookie" not in headers
        assert call(gate, "/a\r\nX: y", query=f"token={token}".encode())[0] == 400
    assert app.seen == []


def test_a_header_value_with_controls_is_never_emitted():
    # The last guard, whatever builds a Location: a BadRequest (400), never h11's LocalProtocolError.
    with pytest.raises(access_gate.BadRequest):
        access_gate._header_value("/\r\nx")
    with pytest.raises(access_gate.BadRequest):
        access_gate._header_value("/caf\u00e9")
    assert access_gate._header_value("/compare?x=1") == b"/compare?x=1"


def test_headers_the_gate_cannot_read_answer_400():
    gate, app = gated()
    assert call(gate, "/", headers=[("cookie", "not bytes")])[0] == 400
    assert call(gate, "/", headers=[(b"cookie",)])[0] == 400
    assert call(gate, "/_stcore/stream", kind="websocket", headers=[(b"cookie", None)])[0] == "websocket.close"
    assert app.seen == []


def test_our_cookie_is_found_next_to_malformed_cookies_of_other_apps():
    # Cookies do not keep ports apart: another app on this host may set cookies SimpleCookie chokes on.
    gate, app = gated()
    junk = b'other="a\\"b; \x00weird; =; ' + GOOD + b"; last=1"
    assert call(gate, "/_stcore/stream", kind="websocket", headers=[(b"cookie", junk)])[0] == "websocket.accept"
    assert (
        call(gate, "/_stcore/stream", kind="websocket", headers=[(b"cookie", b"x=1"), (b"cookie", GOOD)])[0] == "websocket.accept"
    )
    assert len(app.seen) == 2


@pytest.mark.parametrize("weak", [" ", "short", "fifteen-chars-x", "sixteen chars!!!x", "a-long-token-with\ttab", "\u00a0" * 20])
def test_the_gate_refuses_to_be_built_with_a_weak_token(weak, monkeypatch):
    with pytest.raises(settings.SettingError):
        AccessGate(FakeApp(), token=weak, limits=(5, 1000))
    monkeypatch.setenv("TLS_ACCESS_TOKEN", weak)
    with pytest.raises(settings.SettingError):
        AccessGate(FakeApp(), limits=(5, 1000))  # the token from the environment, as serve.py builds it
    assert len("sixteen-chars-ok") == 16
    AccessGate(FakeApp(), token="sixteen-chars-ok", limits=(5, 1000))


def test_a_bearer_token_opens_the_web_api_and_nothing_else():
    gate, app = gated()
    bearer = (b"authorization", f"Bearer {TOKEN}".encode())
    assert call(gate, "/api/v1/runs", headers=[bearer])[0] == 200
    assert call(gate, "/api/v1/predict", method="POST", headers=[(b"authorization", f"bearer   {TOKEN} ".encode())])[0] == 200
    marks = [v for k, v in app.seen[0]["headers"] if k == PASS_HEADER.encode()]
    assert marks == [pass_mark(TOKEN).encode()]
    assert call(gate, "/api/v1/runs", headers=[(b"cookie", GOOD)])[0] == 200  # the browser's login works too
    # A Bearer header is no login for the dashboard, its websocket or its uploads.
    assert call(gate, "/compare", headers=[bearer])[0] == 401
    assert call(gate, "/_stcore/stream", kind="websocket", headers=[bearer])[0] == "websocket.close"
    assert call(gate, "/_stcore/upload_file/s/f", method="PUT", headers=[bearer, (b"content-length", b"3")])[0] == 403
    assert len(app.seen) == 3


@pytest.mark.parametrize(
    "auth",
    [
        b"",
        b"Bearer ",
        b"Bearer wrong-token-0123456789",
        ("Bearer " + TOKEN + "x").encode(),
        ("Basic " + TOKEN).encode(),
        TOKEN.encode(),
        b"Bearer \xff\xfe",
    ],
)
def test_without_the_right_bearer_token_the_api_answers_401_json_not_the_login_page(auth):
    gate, app = gated()
    headers = [(b"authorization", auth)] if auth else []
    for method in ("GET", "POST"):
        status, head, body = call(gate, "/api/v1/predict", method=method, headers=headers)
        assert status == 401 and head["content-type"] == "application/json" and head["www-authenticate"] == "Bearer"
        assert body == access_gate.API_REFUSAL
    assert app.seen == []


def test_the_bearer_token_is_compared_in_constant_time(monkeypatch):
    seen = []
    monkeypatch.setattr(access_gate.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or a == b)
    gate, _ = gated()
    assert call(gate, "/api/v1/runs", headers=[(b"authorization", b"Bearer guess")])[0] == 401
    assert (b"guess", TOKEN.encode()) in seen
