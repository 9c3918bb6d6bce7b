"""The server's front door: the access token and the per-session upload bounds, before Streamlit acts.

Why an ASGI middleware and not the page script: a page script runs only for `rerun_script`
messages. Every other message on `/_stcore/stream` (`clear_cache`, `file_urls_request`, …) and
the upload endpoint `PUT /_stcore/upload_file/…` are handled by Streamlit's server before (or
without) any script, so a check in the script cannot hold them. Streamlit 1.67 serves through
Starlette and lets `st.App(..., middleware=[...])` wrap it (`serve.py`); this class is that
wrapper.

With `TLS_ACCESS_TOKEN` set, only requests carrying the cookie this gate issues at login get
through (`/_stcore/health` excepted: it tells a probe "ok" and nothing else). A browser
without it gets a small login page; a websocket or any other request gets 403 before Streamlit
sees it. Login: `?token=…` on any URL, or the form. The cookie is an HMAC of the token, so it
dies with the token. Passed requests get the `x-tls-gate` header (any copy the client sent is
dropped first) so the page script can tell it is behind the gate (`ui/access.py`). A token shorter
than 16 characters or holding whitespace is refused: the gate will not be built with one.

The web API (`/api/…`, ui/api.py) takes the cookie or `Authorization: Bearer <token>` (compared in
constant time, as the cookie is); without either it answers 401 with {"error": …} and
`WWW-Authenticate: Bearer`, never the login page. A Bearer header on any other path is no login.

Redirects after a login are built, never copied (`safe_target`): the target is cleaned the way a
browser's URL parser cleans it (tab/CR/LF dropped, leading/trailing controls and spaces stripped,
backslashes read as slashes), accepted only as a path on this server, and re-emitted percent-encoded,
so a `Location` header is plain ASCII and never leaves this origin. A login request whose target holds
control characters, or whose request the gate cannot read, gets a plain 400.

Uploads, token or not: a session holds at most `TLS_UPLOAD_MAX_FILES` files and
`TLS_UPLOAD_MAX_MB` MB in Streamlit's upload store at once; a PUT over either bound is refused
with 413 and nothing is stored. Streamlit frees a session's files when the session ends
(`server.disconnectedSessionTTL` after its socket closes), which frees its budget too.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from engine import settings
from ui.redirects import BadRequest, _header_value, _refuse_controls, safe_target  # noqa: F401  (tests read them here)

TOKEN_ENV = settings.TOKEN
COOKIE = "tls_access"
LOGIN_PATH = "/_tls/login"
PASS_HEADER = "x-tls-gate"
OPEN_PATHS = frozenset({"/_stcore/health"})
API_PREFIX = "/api/"  # the web API (ui/api.py): a Bearer token is a login here
API_REFUSAL = b'{"error": "access token required: send Authorization: Bearer <token>"}'
UPLOAD_PATH = re.compile(r"^/_stcore/upload_file/(?P<session>[^/]+)/[^/]+$")
MAX_LOGIN_BODY = 4096  # a token and a path; anything longer is not a login
WRONG = "That access token is not right; ask whoever runs this dashboard for it."
BAD_REQUEST = b"Bad request: the address holds characters this server does not take."


def _mac(token: str, purpose: bytes) -> str:
    return hmac.new(token.encode(), purpose, hashlib.sha256).hexdigest()


def cookie_value(token: str) -> str:
    """What the login cookie holds: an HMAC of the token, never the token itself."""
    return _mac(token, b"tls-access-cookie")


def pass_mark(token: str) -> str:
    """The `x-tls-gate` header value on requests the gate let through (the script checks it)."""
    return _mac(token, b"tls-gate-pass")


def _same(given: str, expected: str) -> bool:
    # Constant-time: response timing must not reveal how much of a guess was right.
    return hmac.compare_digest(given.encode(), expected.encode())


def upload_limits() -> tuple[int, int]:
    """(files, bytes) one session may hold in Streamlit's upload store, from the environment."""
    return settings.upload_limits()


def streamlit_uploads_held(session_id: str) -> tuple[int, int]:
    """(files, bytes) Streamlit's upload store holds for one session right now."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return 0, 0
    # MemoryUploadedFileManager has no public per-session total; its dict is the truth (pinned 1.67).
    held = Runtime.instance().uploaded_file_mgr.file_storage.get(session_id, {})
    return len(held), sum(len(rec.data) for rec in list(held.values()))


def _login_page(next_path: str, error: str = "") -> bytes:
    note = (
        f'<p class="err">{html.escape(error)}</p>'
        if error
        else ("<p>This dashboard needs its access token: type it below or open the link with ?token=… .</p>")
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Transfer Learning Studio</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:4rem auto}}.err{{color:#b00}}
input{{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}}button{{margin-top:.6rem;font-size:1rem}}</style></head>
<body><h1>Transfer Learning Studio</h1>{note}
<form method="post" action="{LOGIN_PATH}"><input type="hidden" name="next" value="{html.escape(next_path)}">
<label>Access token <input type="password" name="token" autofocus autocomplete="current-password"></label>
<button type="submit">Open</button></form></body></html>""".encode()


class AccessGate:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware cannot see websockets)."""

    def __init__(
        self,
        app,
        token: str | None = None,
        uploads_held: Callable[[str], tuple[int, int]] | None = None,
        limits: tuple[int, int] | None = None,
    ) -> None:
        self.app = app
        self.token = settings.access_token() if token is None else token
        if self.token and settings.token_problem(self.token):
            raise settings.SettingError(settings.token_problem(self.token))
        self.uploads_held = uploads_held or streamlit_uploads_held
        self.limits = limits or upload_limits()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # lifespan
        try:
            headers = _request_headers(scope)
            logged_in = (
                not self.token
                or self._has_cookie(headers)
                or (scope["type"] == "http" and scope["path"].startswith(API_PREFIX) and self._has_bearer(headers))
            )
        except BadRequest:
            return await _bad_request(scope, send)
        scope = {**scope, "headers": headers}
        if not logged_in and scope["path"] not in OPEN_PATHS:
            try:
                return await self._refuse(scope, receive, send)
            except BadRequest:
                return await _bad_request(scope, send)
        if self.token:
            scope["headers"] = headers + [(PASS_HEADER.encode(), pass_mark(self.token).encode())]
        upload = UPLOAD_PATH.match(scope["path"]) if scope["type"] == "http" and scope.get("method") == "PUT" else None
        if upload:
            refusal = self._upload_refusal(upload["session"], headers)
            if refusal:
                return await _respond(send, 413, refusal.encode(), "text/plain; charset=utf-8")
        return await self.app(scope, receive, send)

    def _has_cookie(self, headers) -> bool:
        # Read by hand, not by SimpleCookie: one odd cookie from another app on the same host (cookies
        # do not keep ports apart) must not hide ours, and a malformed header is simply no login.
        expected = cookie_value(self.token)
        for k, v in headers:
            if k.lower() == b"cookie":
                for pair in v.decode("latin-1").split(";"):
                    name, _, value = pair.strip().partition("=")
                    if name == COOKIE and _same(value.strip().strip('"'), expected):
                        return True
        return False

    def _has_bearer(self, headers) -> bool:
        for k, v in headers:
            if k.lower() == b"authorization":
                scheme, _, given = v.decode("latin-1").strip().partition(" ")
                if scheme.lower() == "bearer" and _same(given.strip(), self.token):
                    return True
        return False

    def _upload_refusal(self, session_id: str, headers) -> str:
        max_files, max_bytes = self.limits
        size = next((v for k, v in headers if k.lower() == b"content-length"), b"")
        if not size.isdigit():
            return "Upload refused: no Content-Length; this server takes only uploads of a declared size."
        files, held = self.uploads_held(session_id)
        if files + 1 > max_files:
            return f"Upload refused: this session already holds {files} files (TLS_UPLOAD_MAX_FILES={max_files}); remove some or reload the page."
        if held + int(size) > max_bytes:
            return (
                f"Upload refused: this session would hold {(held + int(size)) / 2**20:.0f} MB "
                f"(TLS_UPLOAD_MAX_MB={max_bytes / 2**20:.0f}); remove some uploads or reload the page."
            )
        return ""

    async def _refuse(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            # Closing before accept makes the server answer the handshake with 403: no session is made.
            return await send({"type": "websocket.close", "code": 1008})
        path = scope["path"]
        if path.startswith(API_PREFIX):
            return await _respond(send, 401, API_REFUSAL, "application/json", [(b"www-authenticate", b"Bearer")])
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        query = dict(pairs)
        method = scope.get("method", "GET")
        if path == LOGIN_PATH and method == "POST":
            form = dict(parse_qsl((await _read_body(receive, MAX_LOGIN_BODY)).decode("utf-8", "replace")))
            next_path = form.get("next", "/")
            _refuse_controls(next_path)
            return await self._login(send, form.get("token", ""), safe_target(next_path))
        if "token" in query and method in ("GET", "HEAD"):
            _refuse_controls(path)
            rest = urlencode([(k, v) for k, v in pairs if k != "token"])
            # Keep the secret out of the address bar, history and shared links: redirect without it.
            return await self._login(send, query["token"], safe_target(path + ("?" + rest if rest else "")))
        if method in ("GET", "HEAD") and not path.startswith(("/_stcore/", "/static/", "/media/", "/component/")):
            return await _respond(send, 401, _login_page(safe_target(path)), "text/html; charset=utf-8")
        return await _respond(send, 403, b"Access token required: log in at / first.", "text/plain; charset=utf-8")

    async def _login(self, send, given: str, next_path: str) -> None:
        if not given or not _same(given, self.token):
            return await _respond(send, 401, _login_page(next_path, WRONG), "text/html; charset=utf-8")
        cookie = f"{COOKIE}={cookie_value(self.token)}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", _header_value(next_path)),
                    (b"set-cookie", cookie.encode()),
                    (b"content-length", b"0"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _request_headers(scope) -> list[tuple[bytes, bytes]]:
    """The request's headers less any client copy of the gate's mark; BadRequest when they are not header pairs."""
    try:
        pairs = [(k, v) for k, v in scope.get("headers", [])]
    except (TypeError, ValueError) as e:
        raise BadRequest("unreadable headers") from e
    if not all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in pairs):
        raise BadRequest("unreadable headers")
    return [(k, v) for k, v in pairs if k.lower() != PASS_HEADER.encode()]


async def _bad_request(scope, send) -> None:
    if scope["type"] == "websocket":
        return await send({"type": "websocket.close", "code": 1008})
    await _respond(send, 400, BAD_REQUEST, "text/plain; charset=utf-8")


async def _read_body(receive, limit: int) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return b""  # oversized: treated as an empty (wrong) login
        if not message.get("more_body"):
            return body


async def _respond(send, status: int, body: bytes, content_type: str, extra=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
