"""The collector: a FastAPI app that takes learners' records (`POST /records`), keeps them in a `Store`, and shows the
room (`GET /` the page, `GET /grid.json` what it draws, `GET /records` every record as it was sent)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from .catalogue import exercises
from .grid import grid
from .page import page
from .record import MAX_BODY_BYTES, BadRecordError, parse
from .store import Store


async def _body(request: Request) -> bytes:
    """The request's body, read no further than one byte past the limit (a huge body is refused, not held)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            break
    return bytes(body)


def create_app(store: Store) -> FastAPI:
    """The collector's web app over `store`. No interactive API docs: they would load their scripts from a CDN."""
    app = FastAPI(title="Prompt Cache Workbook: the room", docs_url=None, redoc_url=None, openapi_url=None)
    exercises()  # import every lesson's checks now, not while the first learner's record waits

    @app.post("/records", status_code=201)
    async def add_record(request: Request):
        try:
            record = parse(await _body(request))
        except BadRecordError as error:
            return JSONResponse({"detail": str(error)}, status_code=400)
        await run_in_threadpool(store.add, record)
        return record.model_dump()

    @app.get("/records")
    def records():
        return [record.model_dump() for record in store.records()]

    @app.get("/grid.json")
    def grid_json():
        return asdict(grid(store.records()))

    @app.get("/", response_class=HTMLResponse)
    def grid_page():
        return page()

    return app
