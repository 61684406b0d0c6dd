"""Serving many requests at once: continuous batching over one paged KV pool.

Every step is one forward pass over every running request: the new requests' prompt tokens
(in chunks of at most `prefill_chunk`, as Sarathi-Serve does, when chunking is on) and one
decode token for each request already generating. Requests join and leave between steps, so a
short request never waits for a long one to finish (continuous batching, as in Orca, vLLM and
nano-vllm). Each running request keeps its K/V rows in pages of the shared pool; one that hits
the prefix cache lists the cached pages in its block table instead of computing or copying them.

When a step needs more pages than the pool can give, even after evicting cold cached prefixes,
the most recently admitted request is preempted: its pages are released and it goes back to the
front of the queue, to be recomputed later (with prefix hits where its pages are still cached).
Its output is unchanged, because the recomputed rows are the same rows.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Hashable

import torch

from .errors import WorkbookError
from .model import check_request, check_whole, request_rows
from .page_pool import PagePool
from .paged_attention import BatchSlice, PagedBatch
from .prefix_cache import CacheBudgetError, Node, PrefixCache
from .pricing import Usage
from .request import GenerationResult, Prompt, Timings, prompt_ids
from .sampling import check_sampling, choose_token, make_generator
from .timing import resolve_device, synchronizer

DEFAULT_PAGE_SIZE = 16  # tokens per page when the server makes its own pool (no prefix cache given)


@dataclass(eq=False)
class Request:
    """A request inside the server: what it asked for, where its rows are, and what it has produced."""

    id: int
    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    tenant: Hashable
    eos: int | None
    generator: torch.Generator | None
    submitted_at: float
    output: list[int] = field(default_factory=list)
    block_table: list[int] = field(default_factory=list)  # pool pages of its rows, in order
    computed: int = 0  # rows of prompt + output already in the pool
    node: Node | None = None  # the prefix-cache node it holds locked
    in_tree: bool = False  # its prompt's full pages were offered to the prefix cache since it was admitted
    usage: Usage | None = None  # billed once, when the prompt is first computed
    provenance: list[str] = field(default_factory=list)
    first_token_logits: torch.Tensor | None = None
    token_at: list[float] = field(default_factory=list)  # when each output token was chosen
    cache_write_s: float = 0.0
    preemptions: int = 0

    @property
    def tokens(self) -> list[int]:
        return self.prompt_ids + self.output

    @property
    def pending(self) -> int:
        """Tokens whose rows are not in the pool yet: the prompt's rest, or the last chosen token."""
        return len(self.prompt_ids) + len(self.output) - self.computed

    @property
    def finished(self) -> bool:
        return len(self.output) >= self.max_new_tokens or (bool(self.output) and self.output[-1] == self.eos)


@dataclass(frozen=True)
class StepSnapshot:
    """What one step did, for plots and tests."""

    step: int
    prefill: dict[int, int]  # request id -> prompt (or recomputed) tokens processed in this step
    decode: tuple[int, ...]  # requests that fed back one generated token
    waiting: tuple[int, ...]  # still queued after the step
    preempted: tuple[int, ...]  # sent back to the queue in this step
    finished: tuple[int, ...]
    tokens: int  # tokens in this step's forward pass
    pages_in_use: int
    pages_shared: int  # pages listed by more than one holder (requests, the prefix cache)
    seconds: float


class Server:
    """Runs many requests at once on one model, with continuous batching over a paged KV pool.

    The pool is the prefix cache's when one is given (cached prefixes and running requests share
    it, as in vLLM and SGLang), else a private one of `pool_tokens` rows (default: the model's
    context) holding rows as `kv_dtype` (None: the model's dtype; see `workbook.kv_quant`).
    `max_running` caps the requests in a step, `max_batch_tokens` the tokens in a step;
    `prefill_chunk` (None: off) splits long prompts into chunks of at most that many tokens.
    Without chunking a prompt is computed in one step; one longer than `max_batch_tokens` runs
    in a step of its own.
    """

    def __init__(self, model, tokenizer, prefix_cache: PrefixCache | None = None, max_running: int = 32,
                 max_batch_tokens: int = 2048, prefill_chunk: int | None = None, *, pool_tokens: int | None = None,
                 kv_dtype: str | None = None):
        check_whole("max_running", max_running, 1)
        check_whole("max_batch_tokens", max_batch_tokens, 1)
        if prefill_chunk is not None:
            check_whole("prefill_chunk", prefill_chunk, 1)
        if prefix_cache is None:
            rows = model.config.max_position_embeddings if pool_tokens is None else pool_tokens
            check_whole("pool_tokens", rows, DEFAULT_PAGE_SIZE)
            self.pool = PagePool(DEFAULT_PAGE_SIZE, rows // DEFAULT_PAGE_SIZE, kv_dtype)
        else:
            self.pool = prefix_cache.pool
        self.pool.bind(model)
        self.model, self.tokenizer, self.prefix_cache = model, tokenizer, prefix_cache
        self.max_running, self.max_batch_tokens, self.prefill_chunk = max_running, max_batch_tokens, prefill_chunk
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []  # in the order they were admitted
        self.results: dict[int, GenerationResult] = {}  # finished and not yet collected by run_until_done
        self.steps = 0
        self._ids = itertools.count()
        self._sync = synchronizer(resolve_device(model.device))

    # ----- the public interface -------------------------------------------------------------------

    def submit(self, prompt: Prompt, max_new_tokens: int = 32, temperature: float = 0.0, top_p: float = 1.0,
               seed: int | None = None, tenant: Hashable = None, stop_at_eos: bool = True) -> int:
        """Queue a request and return its id. Everything is checked first: a refused request changes nothing."""
        check_sampling(temperature, top_p)
        ids = check_request(self.model, prompt_ids(self.tokenizer, prompt), max_new_tokens)
        pages = self.pool.pages_for_rows(request_rows(len(ids), max_new_tokens))
        if pages > self.pool.num_pages:
            raise CacheBudgetError(
                f"This request needs {pages} pages of {self.pool.page_size} tokens for its prompt and new tokens, "
                f"but the whole KV pool holds {self.pool.num_pages}. Raise capacity_tokens (or pool_tokens), "
                "shorten the prompt, or ask for fewer new tokens.")
        request = Request(next(self._ids), ids, max_new_tokens, temperature, top_p, tenant,
                          getattr(self.tokenizer, "eos_token_id", None) if stop_at_eos else None,
                          make_generator(seed, self.model.device), self._now())
        self.waiting.append(request)
        return request.id

    def step(self) -> StepSnapshot | None:
        """One forward pass over every request that can run now; None once nothing is waiting or running."""
        if not self.waiting and not self.running:
            return None
        start = self._now()
        preempted: list[Request] = []
        plan = self._schedule_running(preempted)
        if not preempted:
            plan += self._admit(self.max_batch_tokens - sum(n for _, n in plan), alone=not plan)
        decode = tuple(r.id for r, _ in plan if r.output and r.pending == 1)
        finished = self._advance(plan, self.model.forward_paged(self._batch(plan))) if plan else []
        self.steps += 1
        return StepSnapshot(
            step=self.steps, prefill={r.id: n for r, n in plan if r.id not in decode}, decode=decode,
            waiting=tuple(r.id for r in self.waiting), preempted=tuple(r.id for r in preempted),
            finished=tuple(finished), tokens=sum(n for _, n in plan), pages_in_use=self.pool.pages_in_use,
            pages_shared=self.pool.pages_shared, seconds=self._now() - start)

    def run_until_done(self) -> dict[int, GenerationResult]:
        """Step until every request has finished; return (and hand over) the results not collected yet."""
        while self.step() is not None:
            pass
        done, self.results = self.results, {}
        return done

    def cancel(self, request_id: int) -> None:
        """Drop a waiting or running request; a running one gives its pages back."""
        for request in self.waiting:
            if request.id == request_id:
                self.waiting.remove(request)
                return
        for request in self.running:
            if request.id == request_id:
                self._release(request)
                return
        raise WorkbookError(f"Request {request_id} is not waiting or running (finished, cancelled, or never submitted).")

    @property
    def pages_in_use(self) -> int:
        return self.pool.pages_in_use

    def page_holders(self) -> dict[int, list]:
        """Who holds each page in use, for a picture of the pool: request ids, and "cache" for the prefix cache's tree."""
        holders: dict[int, list] = {}
        if self.prefix_cache:
            for page in self.prefix_cache.held_pages():
                holders.setdefault(page, []).append("cache")
        for request in self.running:
            for page in request.block_table:
                holders.setdefault(page, []).append(request.id)
        return holders

    # ----- scheduling -----------------------------------------------------------------------------

    def _schedule_running(self, preempted: list[Request]) -> list[tuple[Request, int]]:
        """Tokens for each running request, oldest first; preempt the newest when pages run out."""
        plan, budget = [], self.max_batch_tokens
        for request in list(self.running):
            if request not in self.running or budget == 0:
                continue
            n = min(request.pending, budget, self.prefill_chunk or request.pending)
            while not self._reserve(request, request.computed + n):
                victim = self.running[-1]  # the most recently admitted
                self._preempt(victim)
                preempted.append(victim)
                if victim is request:
                    break
            else:
                plan.append((request, n))
                budget -= n
        return plan

    def _admit(self, budget: int, alone: bool) -> list[tuple[Request, int]]:
        """Move queued requests into the batch, first come first served, while tokens, slots and pages allow."""
        plan = []
        while self.waiting and len(self.running) < self.max_running and budget > 0:
            request = self.waiting[0]
            cache = self.prefix_cache
            match = cache.match(request.tokens, request.tenant, record=False) if cache else None
            past = match.length if match else 0
            pending = len(request.tokens) - past
            n = min(pending, budget, self.prefill_chunk or pending)
            if n < pending and self.prefill_chunk is None:
                if not (alone and not plan):
                    break
                n = pending  # a prompt longer than a step's budget runs in a step of its own
            if cache:
                cache.lock(match.node)  # the matched pages must not be evicted to make room for the rest
            if not self._fits(len(match.pages) if match else 0, past + n):
                if cache:
                    cache.unlock(match.node)
                if not plan and not self.running:
                    self.waiting.popleft()
                    raise CacheBudgetError(
                        f"Request {request.id} cannot get the pages it needs even with nothing else running: "
                        f"{self.pool.num_pages - self._available()} of the pool's {self.pool.num_pages} pages are "
                        "held (locked prefixes). It was dropped; unlock them or raise capacity_tokens.")
                break
            self.waiting.popleft()
            if cache:
                match = cache.match(request.tokens, request.tenant)  # now it counts, in the statistics and for LRU
                self.pool.retain(match.pages)
                request.node, request.block_table = match.node, list(match.pages)
            request.computed = past
            if request.usage is None:
                request.provenance = ["loaded"] * past + ["computed"] * (len(request.prompt_ids) - past)
            self._reserve(request, past + n)
            self.running.append(request)
            plan.append((request, n))
            budget -= n
        return plan

    def _available(self) -> int:
        """Pages that could be handed out now: free ones, and those of cached prefixes nobody holds."""
        return len(self.pool.free_pages) + (self.prefix_cache.evictable_pages() if self.prefix_cache else 0)

    def _fits(self, pages_held: int, rows: int) -> bool:
        return self.pool.pages_for_rows(rows) - pages_held <= self._available()

    def _reserve(self, request: Request, rows: int) -> bool:
        """Give `request` pages for its first `rows` rows, evicting cold prefixes if needed; False if they cannot be had."""
        need = self.pool.pages_for_rows(rows) - len(request.block_table)
        if need <= 0:
            return True
        if need > self._available():
            return False
        if self.prefix_cache:
            self.prefix_cache.make_room(need)
        request.block_table += self.pool.allocate(need)
        return True

    def _preempt(self, request: Request) -> None:
        """Take a running request's pages back and queue it first, to be recomputed later."""
        self._release(request)
        request.computed, request.in_tree = 0, False
        request.preemptions += 1
        self.waiting.appendleft(request)

    def _release(self, request: Request) -> None:
        """A request leaves the batch: its pages lose a holder and its cached prefix is unlocked."""
        self.pool.release(request.block_table)
        if self.prefix_cache:
            self.prefix_cache.unlock(request.node)
        request.block_table, request.node = [], None
        self.running.remove(request)

    # ----- running a step -------------------------------------------------------------------------

    def _batch(self, plan: list[tuple[Request, int]]) -> PagedBatch:
        slices = [BatchSlice(r.block_table, r.computed, r.tokens[r.computed:r.computed + n]) for r, n in plan]
        return PagedBatch(self.pool, slices, self.model.config.sliding_window)

    def _advance(self, plan: list[tuple[Request, int]], logits: torch.Tensor) -> list[int]:
        """Count the rows computed, choose a token for every request that reached its end, finish the done ones."""
        chose = []
        for (request, n), row in zip(plan, logits):
            request.computed += n
            if request.pending == 0:
                if not request.output:
                    request.first_token_logits = row.clone()
                request.output.append(choose_token(row, request.temperature, request.top_p, request.generator))
                chose.append(request)
        now = self._now()
        for request in chose:
            request.token_at.append(now)
        for request, _ in plan:
            if not request.in_tree and request.computed >= len(request.prompt_ids):
                self._offer_prompt(request)
        finished = [r for r, _ in plan if r.finished and r in self.running]
        for request in finished:
            self._release(request)
            self.results[request.id] = self._result(request)
        return [r.id for r in finished]

    def _offer_prompt(self, request: Request) -> None:
        """The prompt is computed: bill it (the first time), and add its full pages to the prefix cache by reference."""
        start, written = self._now(), 0
        if self.prefix_cache:
            written, node = self.prefix_cache.insert_pages(request.prompt_ids, request.block_table, request.tenant)
            self.prefix_cache.lock(node)  # hold the deepest node now, so its pages (ours too) are not evicted
            self.prefix_cache.unlock(request.node)
            request.node = node
        request.in_tree = True
        if request.usage is None:
            loaded = request.provenance.count("loaded")
            request.usage = Usage(input_tokens=len(request.prompt_ids) - loaded - written, cache_write_tokens=written,
                                  cache_read_tokens=loaded)
            request.cache_write_s = self._now() - start

    def _result(self, request: Request) -> GenerationResult:
        times = [request.submitted_at] + request.token_at
        usage = Usage(request.usage.input_tokens, request.usage.cache_write_tokens, request.usage.cache_read_tokens,
                      output_tokens=len(request.output))
        return GenerationResult(
            prompt_ids=request.prompt_ids, output_ids=request.output, text=self.tokenizer.decode(request.output),
            provenance=request.provenance, usage=usage,
            timings=Timings(times[1] - times[0], request.cache_write_s, [b - a for a, b in zip(times[1:], times[2:])]),
            first_token_logits=request.first_token_logits, preemptions=request.preemptions)

    def _now(self) -> float:
        """The time, once the device has finished what was queued."""
        self._sync()
        return time.perf_counter()
