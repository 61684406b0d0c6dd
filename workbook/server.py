"""Serving many requests at once: continuous batching over one paged KV pool.

Every step is one forward pass over every running request: the new requests' prompt tokens
(in chunks of at most `prefill_chunk`, as Sarathi-Serve does, when chunking is on) and one
decode token for each request already generating (a speculative request: its pending token and
the k drafts it verifies, scored in the same pass). Requests join and leave between steps, so a
short request never waits for a long one to finish (continuous batching, as in Orca, vLLM and
nano-vllm). Each running request keeps its K/V rows in pages of the shared pool; one that hits
the prefix cache lists the cached pages in its page table instead of computing or copying them.
Every page is admitted, grown, published, rolled back and freed through one `KVManager`; the
server keeps only its queues, the token budget, chunking and the preemption order.

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
from typing import TYPE_CHECKING, Hashable

import torch

from .checks import check_whole
from .errors import CacheBudgetError, WorkbookError
from .kv_manager import Allocation, KVManager
from .page_pool import PagePool
from .paged_attention import BatchSlice, PagedBatch
from .prefix_cache import PrefixCache
from .pricing import Usage
from .request import GenerationResult, Prompt, Timings, check_request, prompt_ids, request_rows
from .sampling import SamplingParams, choose_token, make_generator, sampling_params
from .timing import resolve_device, synchronizer

if TYPE_CHECKING:
    from .speculative import Speculation, SpeculativeRun

DEFAULT_PAGE_SIZE = 16  # tokens per page when the server makes its own pool (no prefix cache given)


@dataclass(eq=False)
class ServerRequest:
    """A request inside the server: what it asked for, the K/V pages it holds, and what it has produced."""

    id: int
    prompt_ids: list[int]
    params: SamplingParams
    tenant: Hashable
    stops: frozenset[int]  # token ids that end it (the stopping token is kept)
    generator: torch.Generator | None
    submitted_at: float
    output: list[int] = field(default_factory=list)
    allocation: Allocation | None = None  # its pages while it runs (None while it waits)
    computed: int = 0  # rows of prompt + output already in the pool
    published: bool = False  # its prompt's full pages were offered to the prefix cache since it was admitted
    usage: Usage | None = None  # billed once, when the prompt is first computed
    provenance: list[str] = field(default_factory=list)
    first_token_logits: torch.Tensor | None = None
    token_at: list[float] = field(default_factory=list)  # when each output token was chosen
    cache_write_s: float = 0.0
    preemptions: int = 0
    speculation: SpeculativeRun | None = None  # its drafter and trace, for a speculative request
    drafts: list[int] | None = None  # the guesses this step verifies (None: not at a verify step)

    @property
    def tokens(self) -> list[int]:
        return self.prompt_ids + self.output

    @property
    def pending(self) -> int:
        """Tokens whose rows are not in the pool yet: the prompt's rest, or the last chosen token."""
        return len(self.prompt_ids) + len(self.output) - self.computed

    @property
    def finished(self) -> bool:
        return len(self.output) >= self.params.max_new_tokens or self.stopped

    @property
    def stopped(self) -> bool:
        """It ended on a stop token (the end of sequence included)."""
        return bool(self.output) and self.output[-1] in self.stops

    @property
    def at_verify(self) -> bool:
        """A speculative request whose only pending token is its last: its next step verifies drafts after it."""
        return self.speculation is not None and self.pending == 1

    def to_prefill(self, computed: int) -> int:
        """Tokens to compute before it chooses: all pending ones, or all but the last for a speculative request."""
        return len(self.tokens) - computed - (self.speculation is not None)


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
    it, as in vLLM and SGLang; size it where the cache is built), else a private one of
    `pool_tokens` rows (default: the model's context) holding rows as `kv_dtype` (None: the
    model's dtype; see `workbook.kv_quant`). Every page goes through one `KVManager` (`self.kv`).
    `max_running` caps the requests in a step, `max_batch_tokens` the tokens in a step;
    `prefill_chunk` (None: off) splits long prompts into chunks of at most that many tokens.
    Without chunking a prompt is computed in one step; one longer than `max_batch_tokens` runs
    in a step of its own. A request may carry a `Speculation` (a drafter and k): it then
    verifies k drafts per step, in the same batches as the others. `tokenizer` may be None for a
    server fed token ids only; its results then carry no text.
    """

    def __init__(self, model, tokenizer, prefix_cache: PrefixCache | None = None, max_running: int = 32,
                 max_batch_tokens: int = 2048, prefill_chunk: int | None = None, *, pool_tokens: int | None = None,
                 kv_dtype: str | None = None):
        check_whole("max_running", max_running, 1)
        check_whole("max_batch_tokens", max_batch_tokens, 1)
        if prefill_chunk is not None:
            check_whole("prefill_chunk", prefill_chunk, 1)
        pool = self._pool(model, prefix_cache, pool_tokens, kv_dtype)
        pool.bind(model)
        self.kv = KVManager.of(pool, prefix_cache)  # shared with every other server on this pool
        self.pool, self.model, self.tokenizer, self.prefix_cache = pool, model, tokenizer, prefix_cache
        self.max_running, self.max_batch_tokens, self.prefill_chunk = max_running, max_batch_tokens, prefill_chunk
        self.waiting: deque[ServerRequest] = deque()
        self.running: list[ServerRequest] = []  # in the order they were admitted
        self.results: dict[int, GenerationResult] = {}  # finished and not yet collected by run_until_done
        self.steps = 0
        self._ids = itertools.count()
        self._sync = synchronizer(resolve_device(model.device))

    @staticmethod
    def _pool(model, prefix_cache: PrefixCache | None, pool_tokens: int | None, kv_dtype: str | None) -> PagePool:
        """The prefix cache's pool, or a private one; refuses settings that a given cache's pool would override."""
        if prefix_cache is None:
            rows = model.config.max_position_embeddings if pool_tokens is None else pool_tokens
            return PagePool.for_tokens(rows, DEFAULT_PAGE_SIZE, kv_dtype)
        if pool_tokens is not None or kv_dtype is not None:
            raise WorkbookError("With a prefix cache the server runs on the cache's KV pool, so pool_tokens and kv_dtype "
                                "are set where that pool is built: PrefixCache(PagePool.for_tokens(tokens, page_size, "
                                "kv_dtype)). Leave them out here.")
        return prefix_cache.pool

    # ----- the public interface -------------------------------------------------------------------

    def submit(self, prompt: Prompt, params: SamplingParams | None = None, *, tenant: Hashable = None,
               speculation: Speculation | None = None, **settings) -> int:
        """Queue a request and return its id. Everything is checked first: a refused request changes nothing.

        Sampling settings come as a `SamplingParams` or by name (max_new_tokens=16, temperature=0.8, ...);
        `speculation` (a `workbook.speculative.Speculation`) makes it a speculative request.
        """
        params = sampling_params(params, settings)
        ids = check_request(self.model, prompt_ids(self.tokenizer, prompt), params)
        return self._enqueue(ids, params, tenant, speculation)

    def step(self) -> StepSnapshot | None:
        """One forward pass over every request that can run now; None once nothing is waiting or running."""
        if not self.waiting and not self.running:
            return None
        start = self._now()
        preempted: list[ServerRequest] = []
        plan = self._schedule_running(preempted)
        if not preempted:
            plan += self._admit(self.max_batch_tokens - sum(n for _, n in plan), alone=not plan)
        # Drafts are asked for once the step's pages are settled, so a preemption never wastes (or redraws) them.
        plan = [(r, 1 + self._draft(r, n - 1) if r.at_verify else n) for r, n in plan]
        decode = tuple(r.id for r, _ in plan if r.output and r.pending == 1)
        finished = []
        if plan:
            forward_start = self._now()
            logits = self.model.forward_paged(self._batch(plan))
            finished = self._advance(plan, logits, self._now() - forward_start)
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
        return self.kv.page_holders()

    # ----- scheduling -----------------------------------------------------------------------------

    def _enqueue(self, ids: list[int], params: SamplingParams, tenant: Hashable,
                 speculation: Speculation | None = None) -> int:
        """Queue a request whose prompt and settings are already checked; refuse one the whole pool cannot hold."""
        rows = request_rows(len(ids), params.max_new_tokens)
        if speculation is not None and not callable(getattr(speculation, "start", None)):
            raise WorkbookError("speculation must be a workbook.speculative.Speculation(draft, k=...), "
                                f"not {type(speculation).__name__}.")
        pages = self.pool.pages_for_rows(rows)
        if pages > self.pool.num_pages:
            raise CacheBudgetError(
                f"This request needs {pages} pages of {self.pool.page_size} tokens for its prompt and new tokens, "
                f"but the whole KV pool holds {self.pool.num_pages}. Raise the pool's capacity_tokens (PagePool.for_tokens, "
                "or pool_tokens without a prefix cache), shorten the prompt, or ask for fewer new tokens.")
        run = speculation.start(self.model, rows) if speculation is not None else None  # checks its drafter first
        request = ServerRequest(next(self._ids), ids, params, tenant,
                                params.stops(getattr(self.tokenizer, "eos_token_id", None)),
                                make_generator(params.seed, self.model.device), self._now(), speculation=run)
        self.waiting.append(request)
        return request.id

    def _schedule_running(self, preempted: list[ServerRequest]) -> list[tuple[ServerRequest, int]]:
        """Tokens for each running request, oldest first; preempt the newest when pages run out."""
        plan, budget = [], self.max_batch_tokens
        for request in list(self.running):
            if request not in self.running or budget == 0:
                continue
            n = self._verify_tokens(request, budget) if request.at_verify else \
                min(request.to_prefill(request.computed), budget, self.prefill_chunk or request.pending)
            while not self.kv.grow(request.allocation, request.computed + n):
                victim = self.running[-1]  # the most recently admitted
                self._preempt(victim)
                preempted.append(victim)
                if victim is request:
                    break
            else:
                plan.append((request, n))
                budget -= n
        return plan

    def _admit(self, budget: int, alone: bool) -> list[tuple[ServerRequest, int]]:
        """Move queued requests into the batch, first come first served, while tokens, slots and pages allow."""
        plan = []
        while self.waiting and len(self.running) < self.max_running and budget > 0:
            request = self.waiting[0]
            past = self.kv.cached_tokens(request.tokens, request.tenant)
            pending = request.to_prefill(past)
            n = min(pending, budget, self.prefill_chunk or pending)
            if n < pending and self.prefill_chunk is None:
                if not (alone and not plan):
                    break
                n = pending  # a prompt longer than a step's budget runs in a step of its own
            if pending == 0:  # a speculative request whose prompt but its last token is cached: it verifies at once
                n = self._verify_tokens(request, budget)
            request.allocation = self.kv.admit(request.tokens, past + n, request.tenant, owner=request.id)
            if request.allocation is None:
                if not plan and not self.running:
                    self.waiting.popleft()
                    raise CacheBudgetError(
                        f"Request {request.id} cannot get the pages it needs even with nothing else running: "
                        f"{self.pool.num_pages - self.kv.available()} of the pool's {self.pool.num_pages} pages are "
                        "held (locked prefixes). It was dropped; unlock them or give the pool more tokens.")
                break
            self.waiting.popleft()
            request.computed = past
            if request.usage is None:
                request.provenance = ["loaded"] * past + ["computed"] * (len(request.prompt_ids) - past)
            self.running.append(request)
            plan.append((request, n))
            budget -= n
        return plan

    def _verify_tokens(self, request: ServerRequest, budget: int) -> int:
        """Rows to reserve for a verify step: the pending token and up to k drafts, within the budget and max_new_tokens."""
        room = request.params.max_new_tokens - len(request.output) - 1
        return 1 + max(0, min(request.speculation.k, room, budget - 1))

    def _draft(self, request: ServerRequest, room: int) -> int:
        """Ask the request's drafter for at most `room` guesses to verify in this step; how many it gave."""
        request.drafts = request.speculation.propose(request.tokens, room, request.params, request.generator)
        return len(request.drafts)

    def _preempt(self, request: ServerRequest) -> None:
        """Take a running request's pages back and queue it first, to be recomputed later."""
        self._release(request)
        request.computed, request.published = 0, False
        request.preemptions += 1
        self.waiting.appendleft(request)

    def _release(self, request: ServerRequest) -> None:
        """A request leaves the batch: its pages go back through the manager."""
        self.kv.free(request.allocation)
        request.allocation = None
        self.running.remove(request)

    # ----- running a step -------------------------------------------------------------------------

    def _batch(self, plan: list[tuple[ServerRequest, int]]) -> PagedBatch:
        slices = [BatchSlice(r.allocation.page_table, r.computed, (r.tokens + (r.drafts or []))[r.computed:r.computed + n],
                             scored=n if r.drafts is not None else 1) for r, n in plan]
        return PagedBatch(self.pool, slices, self.model.config.sliding_window)

    def _advance(self, plan: list[tuple[ServerRequest, int]], logits: torch.Tensor, forward_s: float) -> list[int]:
        """Count the rows computed, choose (or verify) tokens for every request that reached its end, finish the done ones."""
        chose, offset = [], 0
        for request, n in plan:
            scored = n if request.drafts is not None else 1
            rows, offset = logits[offset:offset + scored], offset + scored
            if request.speculation is not None:
                request.speculation.target_forwards += 1
                request.speculation.seconds["verify" if request.drafts is not None else "prefill"] += forward_s
            if request.drafts is not None:
                chose.append((request, self._accept(request, n, rows)))
                continue
            request.computed += n
            if request.pending == 0:
                if not request.output:
                    request.first_token_logits = rows[0].clone()
                p = request.params
                request.output.append(choose_token(rows[0], p.temperature, p.top_p, request.generator, p.top_k))
                chose.append((request, 1))
        now = self._now()
        for request, count in chose:
            request.token_at += [now] * count
        for request, _ in plan:
            if not request.published and request.computed >= len(request.prompt_ids):
                self._publish_prompt(request)
        finished = [r for r, _ in plan if r.finished and r in self.running]
        for request in finished:
            self._release(request)
            self.results[request.id] = self._result(request)
        return [r.id for r in finished]

    def _accept(self, request: ServerRequest, n: int, rows: torch.Tensor) -> int:
        """Verify a speculative step from its logits [n, vocab]: keep what passed, roll the rest back; tokens added."""
        if not request.output:
            request.first_token_logits = rows[0].clone()
        new, keep = request.speculation.verify(rows, request.computed + n, request.params, request.generator)
        request.computed, request.drafts = keep, None
        self.kv.truncate(request.allocation, keep)
        stop = next((i for i, t in enumerate(new) if t in request.stops), None)
        request.output += new if stop is None else new[:stop + 1]  # tokens after a stop are never returned
        return len(new) if stop is None else stop + 1

    def _publish_prompt(self, request: ServerRequest) -> None:
        """The prompt is computed: bill it (the first time), and offer its full pages to the prefix cache by reference."""
        start = self._now()
        written = self.kv.publish(request.allocation, request.prompt_ids)
        request.published = True
        if request.usage is None:
            loaded = request.provenance.count("loaded")
            request.usage = Usage(input_tokens=len(request.prompt_ids) - loaded - written, cache_write_tokens=written,
                                  cache_read_tokens=loaded)
            request.cache_write_s = self._now() - start

    def _result(self, request: ServerRequest) -> GenerationResult:
        times = [request.submitted_at] + request.token_at
        usage = Usage(request.usage.input_tokens, request.usage.cache_write_tokens, request.usage.cache_read_tokens,
                      output_tokens=len(request.output))
        run = request.speculation
        return GenerationResult(
            prompt_ids=request.prompt_ids, output_ids=request.output,
            text=self.tokenizer.decode(request.output) if self.tokenizer is not None else "",
            provenance=request.provenance, usage=usage,
            timings=Timings(times[1] - times[0], request.cache_write_s, [b - a for a, b in zip(times[1:], times[2:])]),
            first_token_logits=request.first_token_logits, preemptions=request.preemptions,
            finish_reason="stop" if request.stopped else "length",
            speculation=run.trace(len(request.output)) if run is not None else None)

    def _now(self) -> float:
        """The time, once the device has finished what was queued."""
        self._sync()
        return time.perf_counter()
