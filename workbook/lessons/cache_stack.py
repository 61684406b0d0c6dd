"""Lesson 8's arrangements of caches and models, replayed on the day's queries and timed for real.

Seed 000 combines the two kinds of prompt cache with a small model:

- "model only": every query is a full request to the large model (the shipped `tiny`);
- "prefix cache": the same, but the engine reuses the system prompt's K/V rows (lesson 4);
- "semantic + prefix": a semantic cache first; only its misses reach the prefix-cached model;
- "semantic + small first": on a semantic miss the small model (`tiny-draft`) answers first; a check
  (its own confidence in its answer) decides whether to serve that or escalate to the large model,
  whose answers alone are cached, so the cache fills with the large model's answers.

Latency is measured on this machine. Dollars are what a provider would bill for the same requests
(`workbook.providers`): the small model priced as a provider's small model and the large one as its
large model, each call sent at the query's time to that model's own provider cache. In the arrangements
with a prefix cache the request marks a 5-minute breakpoint after the system prompt; the provider reads
it only when it is over that model's minimum length and still live, whatever our engine reused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ..engine import Engine
from ..errors import WorkbookError
from ..pricing import PriceSheet
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..providers import ProviderCache, Request, without_breakpoints
from ..semantic import SemanticCache
from ..semantic.querylog import LoggedQuery
from .provider_bills import chat_request
from .scenarios import DEFAULT_SYSTEM_PROMPT, chat

ARRANGEMENTS = ("model only", "prefix cache", "semantic + prefix", "semantic + small first")
MAX_NEW_TOKENS = 16
CONFIDENCE = 0.6  # the small model's answer is served when its tokens' mean probability reaches this


@dataclass(frozen=True)
class Step:
    """How one query was answered: by whom, how fast, at what price."""

    logged: LoggedQuery
    route: str  # "semantic hit", "small model", "large model" (after the small one was not sure), or "model"
    seconds: float
    usd: float
    wrong_hit: bool  # a semantic hit whose stored answer was for another intent


def call_request(tokenizer, system_prompt: str, query: str, *, at_s: float, output_tokens: int,
                 marked: bool) -> Request:
    """One model call as a provider receives it: the system prompt, then the query, sent at `at_s`. `marked` puts
    a 5-minute breakpoint after the system prompt, which is what an arrangement with a prefix cache asks for."""
    request = chat_request(tokenizer, chat(system_prompt, query), at_s=at_s, output_tokens=output_tokens)
    return request if marked else without_breakpoints(request)


def confidence(model, prompt_ids: list[int], output_ids: list[int]) -> float:
    """The mean probability the model gave each token of its own answer: a cheap check of how sure it was."""
    ids = torch.tensor([prompt_ids + output_ids], device=model.device)
    with torch.no_grad():
        probs = model(ids)[0, len(prompt_ids) - 1:-1].float().softmax(-1)
    chosen = probs.gather(1, torch.tensor(output_ids, device=model.device)[:, None])
    return float(chosen.mean())


class CacheStack:
    """One arrangement of caches and models; `answer` takes a logged query and returns its `Step`."""

    def __init__(self, arrangement: str, large, small, tokenizer, embedder, *, large_sheet: PriceSheet,
                 small_sheet: PriceSheet, system_prompt: str = DEFAULT_SYSTEM_PROMPT):
        if arrangement not in ARRANGEMENTS:
            raise WorkbookError(f"arrangement is one of {ARRANGEMENTS}, got {arrangement!r}.")
        self.arrangement = arrangement
        prefix = arrangement != "model only"
        self.large = Engine(large, tokenizer, PrefixCache(PagePool.for_tokens(8192)) if prefix else None)
        self.small = Engine(small, tokenizer, PrefixCache(PagePool.for_tokens(8192))) if arrangement == "semantic + small first" else None
        self.semantic = SemanticCache(embedder) if arrangement.startswith("semantic") else None
        self.tokenizer, self.system_prompt, self.prefix = tokenizer, system_prompt, prefix
        # Each model's provider keeps its own cache across the replay, as a real one would.
        self.providers = {size: ProviderCache(sheet.key, sheets={sheet.key: sheet})
                          for size, sheet in (("large", large_sheet), ("small", small_sheet))}

    def bill(self, size: str, logged: LoggedQuery, output_tokens: int) -> float:
        """What the `size` model's provider bills for this call (with a breakpoint if this arrangement prefix-caches)."""
        request = call_request(self.tokenizer, self.system_prompt, logged.query, at_s=logged.t_s,
                               output_tokens=output_tokens, marked=self.prefix)
        return self.providers[size].send(request).cost_usd

    def answer(self, logged: LoggedQuery) -> Step:
        start = time.perf_counter()
        hit = self.semantic.get(logged.query, now=logged.t_s) if self.semantic else None
        if hit is not None:
            return Step(logged, "semantic hit", time.perf_counter() - start, 0.0, hit.meta["intent"] != logged.intent)
        messages = chat(self.system_prompt, logged.query)
        route, calls = "model", []  # calls: (which model, tokens it wrote), billed once the clock has stopped
        if self.small is not None:
            draft = self.small.generate(messages, max_new_tokens=MAX_NEW_TOKENS)
            calls.append(("small", len(draft.output_ids)))
            sure = confidence(self.small.model, draft.prompt_ids, draft.output_ids) >= CONFIDENCE
            route = "small model" if sure else "large model"
        if route != "small model":
            result = self.large.generate(messages, max_new_tokens=MAX_NEW_TOKENS)
            calls.append(("large", len(result.output_ids)))
            if self.semantic is not None:
                self.semantic.put(logged.query, result.text, meta={"intent": logged.intent}, now=logged.t_s)
        seconds = time.perf_counter() - start
        usd = sum(self.bill(size, logged, output_tokens) for size, output_tokens in calls)
        return Step(logged, route, seconds, usd, False)


def run_stack(stack: CacheStack, log: Sequence[LoggedQuery]) -> list[Step]:
    return [stack.answer(logged) for logged in log]

