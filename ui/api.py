"""The model as a web API, on the dashboard's own server and behind its access gate (serve.py).

`GET /api/v1/runs`: the finished runs. `POST /api/v1/predict?run=ID[&run=ID2…][&tta=1]` with an image
(multipart field `image`, or the raw body): `engine.insight.inference.answer`, Classify's and `predict`'s
one answer. The gate lets a request in with its cookie or `Authorization: Bearer <token>` (no token set: all).

An image is bounded as an upload is (`TLS_UPLOAD_MAX_MB`, the gate's bound, and MAX_IMAGE_BYTES): 413
before more is read. The model work runs in worker threads, `max_concurrent` at once, so the event loop
keeps serving the dashboard; loaded runs stay in a small LRU cache. What the user can fix (a StudioError)
is a 4xx with {"error": one sentence}; anything else a 500 with a generic sentence (traceback: server log).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import OrderedDict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine import settings
from engine.data.reads import MAX_IMAGE_BYTES
from engine.errors import StudioError

PREFIX = "/api/v1"
CACHED_RUNS = 4  # loaded models kept per process
MAX_CONCURRENT = 2  # predictions computed at once (2 CPU cores); the rest wait their turn
MAX_RUNS = 8  # runs in one ensemble request
FORM_OVERHEAD = 64 * 1024  # a multipart body's boundaries and part headers, on top of the image
log = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal: the HTTP status and one sentence for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class RunCache:
    """At most `size` loaded runs, least recently used dropped first; keyed by folder and model file, so a
    run saved again (or a run store elsewhere) is loaded afresh. Thread-safe; one look-up or load at a time."""

    def __init__(self, size: int = CACHED_RUNS):
        self.size, self._runs, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, store, run_id: str):
        from engine.insight.inference import load_run

        record = store.load(run_id)  # RunNotFound, or RunStoreError for a bad id or damaged folder
        if record.state != "finished":
            raise ApiError(409, f"run {run_id} is {record.state}, not finished; only a finished run answers")
        if not record.model_path.is_file():
            raise ApiError(409, f"run {run_id} has no saved model")
        key = (str(record.path.resolve()), record.model_path.stat().st_mtime_ns)
        with self._lock:
            if key not in self._runs:
                self._runs[key] = load_run(store, run_id)
                while len(self._runs) > self.size:
                    self._runs.popitem(last=False)
            self._runs.move_to_end(key)
            return self._runs[key]


class Api:
    """The routes' state: the run cache and the bound on concurrent predictions."""

    def __init__(self, max_concurrent: int = MAX_CONCURRENT, cache_size: int = CACHED_RUNS, max_bytes: int | None = None):
        self.max_concurrent, self.cache, self.max_bytes = max_concurrent, RunCache(cache_size), max_bytes
        self._slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # one semaphore per event loop

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/runs", self.runs, methods=["GET"]),
            Route(f"{PREFIX}/predict", self.predict, methods=["POST"]),
            Route(f"{PREFIX}/openapi.json", self.openapi, methods=["GET"]),
        ]

    def byte_limit(self) -> int:
        return self.max_bytes if self.max_bytes is not None else min(MAX_IMAGE_BYTES, settings.upload_limits()[1])

    def _slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        return self._slots.setdefault(loop, asyncio.Semaphore(self.max_concurrent))

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    async def runs(self, request: Request) -> JSONResponse:
        return await _answering(run_in_threadpool(list_runs))

    async def predict(self, request: Request) -> JSONResponse:
        async def work():
            ids, tta = _query(request)
            data = await self._image(request)
            async with self._slot():
                return await run_in_threadpool(self._answer, ids, data, tta)

        return await _answering(work())

    def _answer(self, ids: list[str], data: bytes, tta: bool) -> dict:
        from engine.insight.inference import answer
        from engine.store.runs import RunStore

        store = RunStore(settings.runs_dir_override())
        runs = [self.cache.get(store, rid) for rid in ids]
        got = answer(runs, data, tta=tta, name="the image")
        return {
            "label": got.label,
            "probabilities": got.probabilities,
            "runs": got.runs,
            "ms": round(got.ms, 2),
            "tta": got.tta,
            "caution": got.caution,
        }

    async def _image(self, request: Request) -> bytes:
        limit = self.byte_limit()
        too_big = ApiError(413, f"the image is over {limit / 2**20:.1f} MB, this server's bound for one upload")
        multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
        cap, size = limit + (FORM_OVERHEAD if multipart else 0), request.headers.get("content-length", "")
        if size.isdigit() and int(size) > cap:
            raise too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise too_big
        data = await _form_image(request, bytes(body)) if multipart else bytes(body)
        if not data:
            raise ApiError(400, "no image: send one as the multipart field 'image' or as the request body")
        if len(data) > limit:
            raise too_big
        return data


async def _form_image(request: Request, body: bytes) -> bytes:
    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=4)
    except Exception as exc:  # Starlette's HTTPException(400), or python-multipart's own error outside an app
        raise ApiError(400, f"the multipart form cannot be read ({getattr(exc, 'detail', None) or type(exc).__name__})") from None
    part = form.get("image", b"")
    data = await part.read() if hasattr(part, "read") else part.encode() if isinstance(part, str) else part
    await form.close()
    return data


def _query(request: Request) -> tuple[list[str], bool]:
    ids = request.query_params.getlist("run")
    if not ids:
        raise ApiError(400, "no run: name one with ?run=ID (GET /api/v1/runs lists them)")
    if len(ids) > MAX_RUNS or len(set(ids)) < len(ids):
        raise ApiError(400, f"give each run once, at most {MAX_RUNS} runs")
    if (tta := request.query_params.get("tta", "0").lower()) not in ("0", "1", "true", "false", ""):
        raise ApiError(400, "tta must be 1 or 0")
    return ids, tta in ("1", "true")


def list_runs() -> dict:
    from engine.store.runs import RunStore

    out = []
    for r in RunStore(settings.runs_dir_override()).list().runs:
        if r.state == "finished" and r.model_path.is_file():
            accuracy, split = r.scored_accuracy
            out.append(
                {
                    "id": r.id,
                    "approach": r.approach,
                    "backbone": r.backbone,
                    "image_size": r.image_size,
                    "classes": r.classes,
                    "accuracy": accuracy,
                    "split": split,
                }
            )
    return {"runs": out}


async def _answering(work) -> JSONResponse:
    """The work's dict as JSON, or its refusal as {"error": ...} with a 4xx; a bug is a logged 500."""
    try:
        return JSONResponse(await work)
    except ApiError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    except StudioError as exc:
        from engine.store.runs import RunNotFound, RunStore

        sentence = (str(exc).splitlines() or [type(exc).__name__])[0]
        root = str(RunStore(settings.runs_dir_override()).root)  # a caller learns no folder of this machine
        return JSONResponse(
            {"error": sentence.replace(f" in {root}", "").replace(root, "the run store")},
            status_code=404 if isinstance(exc, RunNotFound) else 400,
        )
    except Exception:
        log.exception("web API: request failed")
        return JSONResponse({"error": "the server failed to answer this request; its log says why"}, status_code=500)


OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Transfer Learning Studio", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        f"{PREFIX}/runs": {
            "get": {
                "summary": "Finished runs: id, approach, backbone, image_size, classes, accuracy, split",
                "responses": {"200": {"description": '{"runs": [...]}'}},
            }
        },
        f"{PREFIX}/predict": {
            "post": {
                "summary": "Classify one image with a run, or an ensemble of runs of the same classes",
                "parameters": [
                    {"name": "run", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "tta", "in": "query", "schema": {"type": "integer", "enum": [0, 1]}},
                ],
                "requestBody": {
                    "content": {
                        "application/octet-stream": {},
                        "multipart/form-data": {
                            "schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}
                        },
                    }
                },
                "responses": {
                    "200": {"description": '{"label", "probabilities": {class: p}, "runs", "ms", "tta", "caution"}'},
                    "4XX": {"description": '{"error": one sentence}'},
                },
            }
        },
    },
}


def api_routes(**kw) -> list[Route]:
    """The API's routes for `st.App(routes=...)` (serve.py); keyword arguments go to `Api`."""
    return Api(**kw).routes()
