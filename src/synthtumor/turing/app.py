"""The reader web app: ``create_app(study_dir)`` returns a FastAPI app serving one study.

What is served: the page (index.html, app.js, style.css from the package), the number of cases
and slices, each reader's case order and own answers, and slice PNGs addressed by random case
id and slice number. Nothing is read from the study folder by a path built from a request:
case ids and slice numbers are checked against the manifest first. ``key.json`` is never read.
Every response carries the same fixed headers (no file dates, no ETags), so headers are equal
for real and synthetic cases.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from synthtumor.turing.store import AnswerStore
from synthtumor.turing.study import (
    ANSWERS,
    DATABASE,
    MAX_NAME,
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


class ReaderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=4 * MAX_NAME)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Literal["real", "synthetic", "unsure"]


def _static(name: str) -> bytes:
    return (files("synthtumor.turing") / "static" / name).read_bytes()


def create_app(study_dir: str | Path) -> FastAPI:
    """A FastAPI app for the study in ``study_dir`` (InputError if it is not a study).

    Answers go to ``answers.sqlite`` in the study folder (created on first use).
    """
    study = load_study(study_dir)
    store = AnswerStore(study.folder / DATABASE)
    known = frozenset(study.case_ids)
    pages = {name: _static(name) for name in ("index.html", *_STATIC)}
    app = FastAPI(title="synthtumor reader study", docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.middleware("http")
    async def fixed_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers.update(_HEADERS)
        if "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

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

    @app.get("/", response_class=HTMLResponse)
    def index() -> Response:
        return Response(pages["index.html"], media_type="text/html; charset=utf-8")

    @app.get("/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC:
            raise HTTPException(404, "not found")
        return Response(pages[name], media_type=f"{_STATIC[name]}; charset=utf-8")

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

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    return app
