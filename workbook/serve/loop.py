"""One thread owns the `Server`: it takes submissions and cancellations from a queue, steps, and hands
each request's new text to the asyncio side of the endpoint.

No other thread ever touches the server, its pool or its prefix cache. Handlers talk to it only by
`call` (a function run in the owner thread between steps, answered through a future); the owner
talks back through each request's `Stream`, an asyncio queue filled with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

from ..errors import WorkbookError
from ..server import Server, ServerRequest
from .metrics import Metrics
from .protocol import Counts
from .text import TextStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop" (end of text or a stop sequence) or "length" (max_tokens reached)
    counts: Counts


@dataclass(frozen=True)
class Failed:
    error: Exception


class Stream:
    """The asyncio side of one request: the events the owner thread sends it, in order."""

    def __init__(self):
        self._loop = asyncio.get_running_loop()
        self.events: asyncio.Queue = asyncio.Queue()

    def put(self, event) -> None:
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            pass


@dataclass(eq=False)
class _Live:
    """A request the owner thread is following."""

    request: ServerRequest
    stream: Stream
    text: TextStream
    seen: int = 0  # output tokens already handled


class ServerLoop:
    """Steps one `Server` in its own thread while any request is waiting or running; idle, it sleeps on its queue."""

    def __init__(self, server: Server, metrics: Metrics):
        self.server, self.metrics = server, metrics
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._live: dict[int, _Live] = {}
        self._thread = threading.Thread(target=self._run, name="workbook-serve-steps", daemon=True)

    def start(self) -> None:
        self.metrics.pool(self.server)
        self._thread.start()

    def stop(self) -> None:
        """Finish the current step, fail what is still live, and end the thread."""
        self._commands.put(None)
        self._thread.join()

    def call(self, fn: Callable[[Server], object]) -> Future:
        """Run `fn(server)` in the owner thread, between steps; the future holds its result or its exception."""
        future: Future = Future()
        self._commands.put((fn, future))
        return future

    def submit(self, ids: list[int], settings: dict, stop: list[str], stream: Stream) -> Future:
        """Queue a request in the server; the future holds its id, or the error that refused it."""
        return self.call(lambda server: self._start(ids, settings, stop, stream))

    def cancel(self, request_id: int) -> Future:
        """The client has gone: drop the request if it is still live, giving its pages back."""
        return self.call(lambda server: self._cancel(request_id))

    # ----- the owner thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while self._take_commands(block=not (self.server.waiting or self.server.running)):
            if self.server.waiting or self.server.running:
                self._step()
        for rid in list(self._live):
            self._end(rid, Failed(WorkbookError("The server is shutting down.")), "failed")

    def _take_commands(self, block: bool) -> bool:
        """Run every queued command (waiting for one if `block`); False once asked to stop."""
        try:
            command = self._commands.get(block=block)
        except queue.Empty:
            return True
        while command is not None:
            fn, future = command
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(self.server))
                except Exception as error:  # handed to the caller, who turns it into an HTTP error
                    future.set_exception(error)
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                self.metrics.pool(self.server)
                return True
        return False

    def _start(self, ids: list[int], settings: dict, stop: list[str], stream: Stream) -> int:
        server = self.server
        text = TextStream(server.tokenizer, stop, getattr(server.tokenizer, "eos_token_id", None))
        rid = server.submit(ids, **settings)
        self._live[rid] = _Live(server.waiting[-1], stream, text)  # the Request just queued (the server appends it)
        return rid

    def _cancel(self, rid: int) -> None:
        live = self._live.pop(rid, None)
        if live is None:
            return  # it had ended already
        if self.server.results.pop(rid, None) is None:
            self.server.cancel(rid)
        self.metrics.ended("cancelled", self._counts(live.request))

    def _step(self) -> None:
        try:
            self.server.step()
        except WorkbookError as error:  # the server dropped a request its pool can never hold
            self._fail_dropped(error)
        except Exception as error:  # a fault in a step must not leave every client waiting: fail them, go on
            log.exception("A server step failed; the live requests are failed and dropped.")
            self._fail_all(error)
        self.metrics.pool(self.server)
        for rid, live in list(self._live.items()):
            self._follow(rid, live)

    def _follow(self, rid: int, live: _Live) -> None:
        """Send a live request's new text; end it when the server finished it or a stop sequence appeared."""
        request = live.request
        if len(request.output) == live.seen:
            return
        self.metrics.tokens_chosen(request, live.seen)
        live.seen = len(request.output)
        delta = live.text.feed(request.output)
        finished = self.server.results.pop(rid, None) is not None
        if not finished and not live.text.stopped:
            if delta:
                live.stream.put(Delta(delta))
            return
        if not finished:
            self.server.cancel(rid)  # a stop sequence ended it early: give its pages back now
        delta += live.text.rest(request.output)
        if delta:
            live.stream.put(Delta(delta))
        length = not live.text.stopped and request.output[-1] not in request.stops
        self._end(rid, Finished("length" if length else "stop", self._counts(request)), "length" if length else "stop")

    def _fail_dropped(self, error: WorkbookError) -> None:
        server = self.server
        for rid, live in list(self._live.items()):
            if live.request not in server.waiting and live.request not in server.running and rid not in server.results:
                self._end(rid, Failed(error), "failed")

    def _fail_all(self, error: Exception) -> None:
        for rid, live in list(self._live.items()):
            if live.request in self.server.waiting or live.request in self.server.running:
                self.server.cancel(rid)
            self.server.results.pop(rid, None)
            self._end(rid, Failed(error), "failed")

    def _end(self, rid: int, event, outcome: str) -> None:
        live = self._live.pop(rid)
        self.metrics.ended(outcome, self._counts(live.request))
        live.stream.put(event)

    @staticmethod
    def _counts(request: ServerRequest) -> Counts:
        cached = request.usage.cache_read_tokens if request.usage else 0
        return Counts(len(request.prompt_ids), len(request.output), cached)
