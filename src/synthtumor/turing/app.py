"""The reader web app: ``create_app(study_dir)`` returns a FastAPI app serving one study.

What is served: the page (index.html, app.js, style.css from the package), the number of cases
and slices, each reader's case order and own answers, and slice PNGs addressed by random case
id and slice number. Nothing is read from the study folder by a path built from a request:
case ids and slice numbers are checked against the manifest first. ``key.json`` is never read.
Every response carries the same fixed headers (no file dates, no ETags), so headers are equal
for real and synthetic cases.

Only requests addressed to the names the server was bound to are answered (the Host header is
checked: a page on another site cannot reach the study through DNS rebinding), request bodies
are capped at ``MAX_BODY`` bytes before they are parsed, and error responses never repeat what
the client sent.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synthtumor.turing.store import AnswerStore
from synthtumor.turing.study import (
    ANSWERS,
    DATABASE,
    MAX_NAME,
    Study,
    clean_reader_name,
    load_study,
    reader_order,
)

_SLICE = re.compile(r"^[0-9]{1,4}$")
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'",
}


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_ANY = ("0.0.0.0", "::")
MAX_BODY = 4096  # bytes; the largest valid body (a 160-character name) is under 1 KB
_FIELDS = ("name", "answer")


def allowed_hosts(bind: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Host-header names accepted by a server bound to address ``bind``.

    A loopback bind answers to every loopback name; a bind to every interface (0.0.0.0, ::)
    to the loopback names and this computer's name; any other bind to that name. ``extra``
    adds names readers use to reach the server (a DNS name, another address).
    """
    names = [bind, *extra]
    if bind in LOCAL_HOSTS or bind in _ANY:
        names += LOCAL_HOSTS
    if bind in _ANY:
        names += [socket.gethostname(), socket.getfqdn()]
    out: list[str] = []
    for name in names:
        name = name.strip().lower().strip("[]")
        try:
            forms = [f"[{name}]"] if ipaddress.ip_address(name).version == 6 else [name]
        except ValueError:
            forms = [name]
        out += [f for f in forms if f and f not in out]
    return tuple(out)


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes, read no further.

    The body is read (at most ``limit`` + 1 bytes) before the app sees the request, so a
    declared Content-Length and a chunked stream are both bounded.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await _too_large(scope, send, self.limit)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nothing to answer
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await _too_large(scope, send, self.limit)
                return
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    await JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413,
                       headers={"Connection": "close"})(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


class ReaderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=4 * MAX_NAME)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Literal["real", "synthetic", "unsure"]


def _static(name: str) -> bytes:
    return (files("synthtumor.turing") / "static" / name).read_bytes()


def create_app(study_dir: str | Path, hosts: Sequence[str] | None = None) -> FastAPI:
    """A FastAPI app for the study in ``study_dir`` (InputError if it is not a study).

    Answers go to ``answers.sqlite`` in the study folder (created on first use). ``hosts``:
    the Host-header names answered (default: ``allowed_hosts("127.0.0.1")``, the loopback
    names); a request naming any other host gets 400.
    """
    study = load_study(study_dir)
    store = AnswerStore(study.folder / DATABASE)
    pages = {name: _static(name) for name in ("index.html", *_STATIC)}
    app = FastAPI(title="synthtumor reader study", docs_url=None, redoc_url=None,
                  openapi_url=None)
    _add_guards(app, hosts)
    _add_page_routes(app, pages)
    _add_api_routes(app, study, store)
    return app


def _add_guards(app: FastAPI, hosts: Sequence[str] | None) -> None:
    """Host check, body cap, fixed headers, and error responses that never echo the input."""
    # added first = innermost: the host is checked before the body is read
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(TrustedHostMiddleware, www_redirect=False,
                       allowed_hosts=list(allowed_hosts("127.0.0.1") if hosts is None else hosts))

    @app.middleware("http")
    async def fixed_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers.update(_HEADERS)
        if "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default repeats the input; name only our own fields and pydantic's message
        first = exc.errors()[0] if exc.errors() else {}
        field = next((x for x in first.get("loc", ()) if x in _FIELDS), "body")
        return JSONResponse({"detail": f"{field}: {first.get('msg', 'invalid')}"},
                            status_code=422)


def _add_page_routes(app: FastAPI, pages: dict[str, bytes]) -> None:
    """The page itself: index.html and its static files, from memory."""

    @app.get("/", response_class=HTMLResponse)
    def index() -> Response:
        return Response(pages["index.html"], media_type="text/html; charset=utf-8")

    @app.get("/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC:
            raise HTTPException(404, "not found")
        return Response(pages[name], media_type=f"{_STATIC[name]}; charset=utf-8")


def _add_api_routes(app: FastAPI, study: Study, store: AnswerStore) -> None:
    """The JSON API (study, readers, answers) and the slice PNGs, checked against the manifest."""
    known = frozenset(study.case_ids)

    def reader_name(name: str) -> str:
        try:
            clean = clean_reader_name(name)
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        if not store.has_reader(clean):
            raise HTTPException(404, "unknown reader")
        return clean

    def progress(name: str) -> dict[str, object]:
        order = reader_order(study, name)
        done = store.answers(name).get(name, {})
        nxt = next((i for i, c in enumerate(order) if c not in done), None)
        return {"reader": name, "order": order, "answers": {c: done[c] for c in order if c in done},
                "answered": len(done), "total": len(order), "next": nxt}

    @app.get("/api/study")
    def study_info() -> dict[str, object]:
        return {"cases": len(study.case_ids), "slices": study.view.slices,
                "pixels": study.view.pixels, "fov_mm": study.view.fov_mm,
                "window_hu": list(study.view.window_hu), "answers": list(ANSWERS)}

    @app.post("/api/readers")
    def start(body: ReaderIn) -> dict[str, object]:
        try:
            name = clean_reader_name(body.name)
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        store.add_reader(name)
        return progress(name)

    @app.get("/api/readers/{name}")
    def resume(name: str) -> dict[str, object]:
        return progress(reader_name(name))

    @app.put("/api/readers/{name}/answers/{case_id}")
    def answer(name: str, case_id: str, body: AnswerIn) -> dict[str, object]:
        reader = reader_name(name)
        if case_id not in known:
            raise HTTPException(404, "unknown case")
        store.save(reader, case_id, body.answer)
        done = store.answers(reader).get(reader, {})
        return {"answered": len(done), "total": len(known)}

    @app.get("/api/cases/{case_id}/slices/{k}")
    def slice_png(case_id: str, k: str) -> Response:
        # k as text and checked here: an int parameter would answer 422 and echo the input
        if case_id not in known or not _SLICE.match(k) or int(k) >= study.view.slices:
            raise HTTPException(404, "not found")
        data = study.slice_path(case_id, int(k)).read_bytes()
        return Response(data, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})
