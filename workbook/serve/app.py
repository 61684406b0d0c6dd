"""The endpoint: a FastAPI app over one `Server` stepped by a `ServerLoop`, speaking OpenAI's wire format.

`POST /v1/chat/completions` and `/v1/completions` (whole or streamed as server-sent events),
`GET /v1/models`, `/health` and `/metrics`. Refused requests get OpenAI's error body
`{"error": {"message", "type", "param", "code"}}` and change nothing in the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from ..errors import ContextLengthError, WorkbookError
from ..model import load_model
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..request import prompt_ids
from ..server import Server
from ..tokenizer import load_tokenizer
from .loop import Delta, Failed, Finished, ServerLoop, Stream
from .metrics import Metrics
from .protocol import (DEFAULT_COMPLETION_MAX_TOKENS, ChatRequest, CompletionRequest, Reply, RequestError, Sampling)

MAX_BODY_BYTES = 1 << 20  # a request body over 1 MiB is refused with 413 before it is parsed
DEFAULT_PREFIX_CACHE_TOKENS = 16384
DEFAULT_PAGE_SIZE = 16


def load_server(model: str = "tiny", *, prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS,
                page_size: int = DEFAULT_PAGE_SIZE, device: str = "auto", max_running: int = 32,
                max_batch_tokens: int = 2048) -> Server:
    """A `Server` for `model` whose pool is a prefix cache of `prefix_cache_tokens` (0: no prefix cache)."""
    cache = PrefixCache(PagePool.for_tokens(prefix_cache_tokens, page_size)) if prefix_cache_tokens else None
    return Server(load_model(model, device=device), load_tokenizer(model), cache, max_running=max_running,
                  max_batch_tokens=max_batch_tokens)


def create_app(server: Server, model_name: str, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The endpoint over `server`, answering for the model id `model_name`. Its owner thread runs while the app does."""
    metrics = Metrics()
    loop = ServerLoop(server, metrics)

    @asynccontextmanager
    async def lifespan(app):
        loop.start()
        yield
        loop.stop()

    app = FastAPI(title="Prompt Cache Workbook: an OpenAI-compatible endpoint", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.loop, app.state.metrics = loop, metrics
    app.add_middleware(BodyLimit, limit=max_body_bytes, metrics=metrics)
    _error_handlers(app, metrics)
    started = int(time.time())

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": started,
                                            "owned_by": "workbook"}]}

    @app.get("/metrics")
    def metrics_text():
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest):
        _check_model(body, model_name)
        ids = prompt_ids(server.tokenizer, [m.plain() for m in body.messages])  # rendered with the chat template
        return await _answer(loop, Reply(chat=True, model=model_name), ids, body, _room_left(server, len(ids)))

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        _check_model(body, model_name)
        ids = prompt_ids(server.tokenizer, body.prompt)
        return await _answer(loop, Reply(chat=False, model=model_name), ids, body, DEFAULT_COMPLETION_MAX_TOKENS)

    return app


def _check_model(body: Sampling, model_name: str) -> None:
    if body.model != model_name:
        raise RequestError(f"The model `{body.model}` does not exist; this endpoint serves `{model_name}`.",
                           status=404, param="model", code="model_not_found")


def _room_left(server: Server, prompt_tokens: int) -> int:
    """New tokens a prompt leaves room for in the context and the pool (a chat's default `max_tokens`)."""
    rows = min(server.model.config.max_position_embeddings, server.pool.capacity_tokens)
    return max(rows - prompt_tokens + 1, 1)  # the last new token is never fed back, so it takes no row


async def _answer(loop: ServerLoop, reply: Reply, ids: list[int], body: Sampling, default_max_tokens: int):
    stream = Stream()
    rid = await asyncio.wrap_future(loop.submit(ids, body.settings(default_max_tokens), body.stop, stream))
    events = _events(loop, rid, stream)
    if body.stream:
        return StreamingResponse(_sse(reply, events, body.include_usage), media_type="text/event-stream")
    text = []
    async for event in events:
        if isinstance(event, Delta):
            text.append(event.text)
        elif isinstance(event, Finished):
            return reply.whole("".join(text), event.reason, event.counts)
        else:
            raise _failure(event)


async def _events(loop: ServerLoop, rid: int, stream: Stream):
    """A request's events until it ends; if the consumer goes away first (a closed stream), the request is cancelled."""
    ended = False
    try:
        while not ended:
            event = await stream.events.get()
            ended = not isinstance(event, Delta)
            yield event
    finally:
        if not ended:
            loop.cancel(rid)


async def _sse(reply: Reply, events, include_usage: bool):
    """Server-sent events in OpenAI's chunk shape, then `data: [DONE]`."""
    if reply.chat:
        yield _data(reply.chunk("", first=True))
    async for event in events:
        if isinstance(event, Delta):
            yield _data(reply.chunk(event.text))
        elif isinstance(event, Finished):
            yield _data(reply.chunk("", event.reason))
            if include_usage:
                yield _data(reply.usage_chunk(event.counts))
        else:
            yield _data(_failure(event).body())
    yield "data: [DONE]\n\n"


def _data(body: dict) -> str:
    return f"data: {json.dumps(body)}\n\n"


def _failure(event: Failed) -> RequestError:
    return RequestError(f"The request failed while running: {event.error}", status=500, type="server_error")


# ----- errors -------------------------------------------------------------------------------------

def _error_handlers(app: FastAPI, metrics: Metrics) -> None:
    def respond(error: RequestError) -> JSONResponse:
        metrics.rejected.labels(str(error.status)).inc()
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(RequestError)
    async def request_error(request, error: RequestError):
        return respond(error)

    @app.exception_handler(WorkbookError)
    async def workbook_error(request, error: WorkbookError):
        code = "context_length_exceeded" if isinstance(error, ContextLengthError) else None
        return respond(RequestError(str(error), code=code))

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request, error: RequestValidationError):
        return respond(_invalid(error.errors()[0]))

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):
        return respond(RequestError(str(error.detail), status=error.status_code))

    @app.exception_handler(Exception)
    async def fault(request, error: Exception):
        return respond(RequestError(f"The server failed: {error!r}", status=500, type="server_error"))


def _invalid(problem: dict) -> RequestError:
    """OpenAI's error for the first thing pydantic found wrong with a body."""
    param = ".".join(str(part) for part in problem["loc"][1:]) or None
    kind = problem["type"]
    if kind == "json_invalid":
        return RequestError(f"The body is not valid JSON: {problem.get('ctx', {}).get('error', problem['msg'])}.",
                            code="invalid_json")
    if kind == "extra_forbidden":
        return RequestError(f"Unsupported parameter: '{param}' is not supported by this endpoint.", param=param,
                            code="unsupported_parameter")
    if kind == "missing":
        return RequestError(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    return RequestError(f"Invalid value for '{param}': {problem['msg']}.", param=param, code="invalid_value")


class BodyLimit:
    """ASGI middleware: a body over `limit` bytes gets 413; reading stops at the chunk that passes the limit."""

    def __init__(self, app, limit: int, metrics: Metrics):
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = declared is not None and int(declared) > self.limit
        body, more = bytearray(), True
        while more and not too_big:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more, too_big = message.get("more_body", False), len(body) > self.limit
        if too_big:
            error = RequestError(f"The request body is over this endpoint's limit of {self.limit} bytes.",
                                 status=413, code="request_too_large")
            self.metrics.rejected.labels("413").inc()
            return await JSONResponse(error.body(), status_code=413)(scope, receive, send)
        return await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive):
    """A `receive` that gives the body already read, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replayed
