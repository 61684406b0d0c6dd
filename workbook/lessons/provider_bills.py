"""This engine's bill beside the provider's: the same requests through `Engine` + `PrefixCache` and `simulate`.

Our prefix cache loads whole pages of any shared prefix, wherever the prompts part. A provider bills
by its own rules: Anthropic reads only at cache_control breakpoints (and the block boundaries in
each one's lookback) and writes everything after a change up to the breakpoint again, at 1.25x;
OpenAI counts hits from 1,024 tokens in steps of 128; Google reads implicitly, and `workbook.providers`
assumes at block boundaries (Google does not say where). Lessons 4 and 5 put both bills side by side,
so where the two differ is a number, not a footnote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from ..engine import Engine, GenerationResult
from ..errors import WorkbookError
from ..page_pool import PagePool, full_page_chunks
from ..prefix_cache import PrefixCache
from ..pricing import PriceSheet, Usage, cost, get_sheet
from ..providers import Bill, Block, Request, as_sent_to, chained_keys, simulate

# Seconds between two requests that lessons replay side by side: well inside every provider's 5-minute
# lifetime, so the bills differ by caching rules only, never by an entry that expired.
WARM_GAP_S = 60.0


def careful_request(static, dynamic, *, at_s: float = 0.0, output_tokens: int = 0) -> Request:
    """A templated prompt as a careful engineer sends it: the static part as one block ending in a 5-minute
    breakpoint, the dynamic part as another. Each part is text or token ids."""
    return Request([Block(static, "5m"), Block(dynamic)], at_s, output_tokens)


def chat_request(tokenizer, messages: Sequence[dict], *, at_s: float = 0.0, output_tokens: int = 0) -> Request:
    """Chat messages as a `careful_request`: the rendered system turn is the static part, the rest the dynamic part."""
    ids = tokenizer.encode_chat(list(messages))
    system = tokenizer.encode_chat(list(messages[:1]), add_generation_prompt=False)
    if ids[:len(system)] != system:
        raise WorkbookError("This chat template renders the first message differently when more follow, so the "
                            "prompt has no static part to mark. Send the parts with careful_request instead.")
    return careful_request(system, ids[len(system):], at_s=at_s, output_tokens=output_tokens)


def provider_bills(sheet: PriceSheet, requests: Sequence[Request], tokenizer=None) -> list[Bill]:
    """What `sheet`'s provider bills for `requests`, replayed in order on an empty cache."""
    sent = [as_sent_to(sheet.provider, request) for request in requests]
    return simulate(sheet.key, sent, tokenizer, sheets={sheet.key: sheet})


@dataclass(frozen=True)
class SideBySide:
    """One request billed twice at one price sheet: as this engine's prefix cache served it, and as the provider
    would."""

    sheet: PriceSheet
    engine: Usage  # pages loaded are reads, new full pages writes, the rest plain input
    provider: Bill

    @property
    def engine_usd(self) -> float:
        return cost(self.engine, self.sheet)

    @property
    def provider_usd(self) -> float:
        return self.provider.cost_usd

    @property
    def no_cache_usd(self) -> float:
        """The same request with nothing cached: every prompt token at the input price."""
        usage = self.provider.usage
        return cost(Usage(input_tokens=usage.total_input_tokens, output_tokens=usage.output_tokens), self.sheet)

    def explain(self) -> str:
        """One sentence from the numbers: what this engine loaded, what the provider would read and write, and why."""
        e, p, sheet = self.engine, self.provider.usage, self.sheet
        return (f"This engine loaded {e.cache_read_tokens:,} of the {e.total_input_tokens:,} prompt tokens from its "
                f"cache; {sheet.name} would read {p.cache_read_tokens:,}, write {p.cache_write_tokens:,} and bill "
                f"{p.input_tokens:,} as plain input: {self.provider.why}.")


@dataclass
class BothBills:
    """Requests replayed through a fresh engine and through each provider: the engine's runs, both bills per request."""

    results: list[GenerationResult]
    bills: dict[str, list[SideBySide]]  # model key -> one per request

    def engine_usd(self, model_key: str) -> float:
        """This engine's usage over every request, at `model_key`'s prices."""
        return sum(b.engine_usd for b in self.bills[model_key])

    def provider_usd(self, model_key: str) -> float:
        """What `model_key`'s provider bills for every request."""
        return sum(b.provider_usd for b in self.bills[model_key])


def bill_both(model, tokenizer, requests: Sequence[Request], model_keys: Sequence[str], *, page_size: int = 16,
              sheets: dict[str, PriceSheet] | None = None) -> BothBills:
    """Send `requests` through a fresh `Engine` + `PrefixCache` and through each provider's simulator.

    The engine sees each request's blocks as segments (tokenized one by one, like the simulator does)
    and generates one token; its usage is billed with the request's `output_tokens`, so the two bills
    differ only in how the prompt is billed. The cache holds every page, so nothing is evicted.
    """
    plain = Engine(model, tokenizer)
    prompts = [plain.prompt_ids([block.content for block in request.blocks]) for request in requests]
    capacity = page_size * (1 + distinct_pages(prompts, page_size))
    engine = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(capacity, page_size)))
    results = [engine.generate(ids, max_new_tokens=1) for ids in prompts]
    usages = [replace(result.usage, output_tokens=request.output_tokens) for result, request in zip(results, requests)]
    bills = {}
    for key in model_keys:
        sheet = get_sheet(key, sheets)
        bills[key] = [SideBySide(sheet, usage, bill)
                      for usage, bill in zip(usages, provider_bills(sheet, requests, tokenizer))]
    return BothBills(results, bills)


def distinct_pages(prompts: Sequence[Sequence[int]], page_size: int) -> int:
    """How many pages a prefix cache needs to hold every full page of `prompts` at once (shared prefixes once)."""
    keys = set()
    for ids in prompts:
        keys.update(chained_keys(full_page_chunks(ids, page_size)))
    return len(keys)
