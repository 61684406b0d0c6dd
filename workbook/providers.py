"""Provider caching as it really bills: a sequence of requests replayed against one provider's documented rules.

`workbook.pricing` prices one request from token counts. Here a request is what you send: content
blocks in the provider's render order (Anthropic renders tools, then system, then messages), some
marked as cache breakpoints, arriving at a time. A `ProviderCache` keeps one provider's cache
between requests and bills each request the way that provider's caching page says
(`data/pricing.json` cites each rule). What is modelled, per provider:

- Anthropic (explicit): a breakpoint is a `Block` with `cache_control` ("5m" or "1h"), at most 4 a
  request, 1-hour ones before 5-minute ones; `options={"cache_control": ttl}` is the automatic mode,
  a breakpoint on the last block. Each breakpoint looks for a live cached prefix ending at its own
  block and at the block boundaries before it, 20 boundaries in all (the lookback); the longest
  found is read, and everything from there to the last breakpoint is written, at the price of the
  breakpoint that covers it. A prefix shorter than the model's minimum is never cached and bills
  as plain input. Every read renews the entry's lifetime at no charge.
- OpenAI (automatic): the longest live cached prefix is read, counted from 1,024 tokens in steps of
  128; writes cost plain input. Entries live in memory until 5 minutes idle and at most an hour, or
  24 hours idle with `options={"prompt_cache_retention": "24h"}`. Requests reach a cache by a route,
  the first 256 tokens plus `options["prompt_cache_key"]`: requests with other keys never share hits.
  Not modelled: overflow to other machines above about 15 requests a minute per route, and
  eviction under load, so real hit rates can be lower.
- Google: implicit caching (the default) reads the longest prefix ending at a block boundary that an
  earlier request sent, at the cached price, with no write or storage charge; the docs promise no
  saving, so a hit happens with probability `implicit_hit_rate` (1.0 unless you set it). An explicit
  cache is the prefix up to the last block with `cache_control`, whose value is its TTL: creating
  it bills its tokens at the input price (as cache writes) plus storage for the whole TTL; while it
  lives later requests read it, and `options={"ttl_s": seconds}` on such a request moves its expiry
  to that many seconds from now, billing the extra storage.

Prefixes are keyed by a chained hash of their blocks (or of 128-token chunks for OpenAI), as the
providers' own caches key them, so thousands of requests replay in well under a second.
Standard library only, like `pricing`.
"""

from __future__ import annotations

import operator
import random
from dataclasses import dataclass, replace
from itertools import accumulate
from numbers import Integral, Real
from typing import Literal, Mapping, Sequence

from .errors import WorkbookError
from .pricing import PER_MILLION, PriceSheet, Usage, cacheable_tokens, get_sheet

Ttl = Literal["5m", "1h"]
TTL_SECONDS: dict[str, float] = {"5m": 5 * 60.0, "1h": 60 * 60.0}
MAX_BREAKPOINTS = 4  # Anthropic
LOOKBACK_BLOCKS = 20  # Anthropic checks a breakpoint's own boundary and the 19 before it
OPENAI_IDLE_S, OPENAI_MAX_S, OPENAI_24H_S = 5 * 60.0, 60 * 60.0, 24 * 60 * 60.0
OPENAI_ROUTE_TOKENS = 256  # requests are routed by a hash of about this many leading tokens
OPTIONS = {"anthropic": {"cache_control"}, "openai": {"prompt_cache_key", "prompt_cache_retention"},
           "google": {"ttl_s"}}


@dataclass(frozen=True)
class Block:
    """One content block: text (tokenized on its own) or token ids; `cache_control` marks a breakpoint and its TTL."""

    content: str | Sequence[int]
    cache_control: Ttl | None = None


@dataclass(frozen=True)
class Request:
    """What one API call sends: blocks in render order, when (seconds from the start), and how many tokens come back."""

    blocks: Sequence[Block]
    at_s: float = 0.0
    output_tokens: int = 0
    options: Mapping[str, object] | None = None


@dataclass(frozen=True)
class Bill:
    """What the provider bills for one request, and which rule decided it."""

    usage: Usage
    cost_usd: float  # storage included
    why: str
    storage_usd: float = 0.0  # Google explicit caches: storage bought by this request


@dataclass
class Entry:
    """A cached prefix: its length, when it was made and last used, and when it expires."""

    tokens: int
    created_s: float
    used_s: float
    expires_s: float
    ttl_s: float


class ProviderCache:
    """One provider's cache for one model, fed requests in time order; `send` bills one, `simulate` a list."""

    def __init__(self, model_key: str, tokenizer=None, *, implicit_hit_rate: float = 1.0, seed: int = 0,
                 sheets: dict[str, PriceSheet] | None = None):
        self.sheet = get_sheet(model_key, sheets)
        if not 0.0 <= implicit_hit_rate <= 1.0:
            raise WorkbookError(f"implicit_hit_rate is a probability between 0 and 1, not {implicit_hit_rate}.")
        self.tokenizer, self.implicit_hit_rate = tokenizer, implicit_hit_rate
        self.entries: dict[tuple, Entry] = {}
        self.last_s = 0.0
        self._random = random.Random(seed)

    def send(self, request: Request) -> Bill:
        """Bill one request and update the cache. A refused request (a `WorkbookError`) changes nothing."""
        blocks = self._checked(request)
        options = dict(request.options or {})
        rule = {"anthropic": self._anthropic, "openai": self._openai, "google": self._google}[self.sheet.provider]
        # Each rule checks everything it needs before it changes an entry, so a refusal leaves the cache as it was.
        usage, write_1h, storage_usd, why = rule(self.entries, request, blocks, options)
        self.last_s = request.at_s
        return Bill(usage, self._price(usage, write_1h) + storage_usd, why, storage_usd)

    # ----- checks shared by every provider -------------------------------------------------------

    def _checked(self, request: Request) -> list[list[int]]:
        """Each block's token ids, once the request is known to be well formed (nothing is changed before this)."""
        if not isinstance(request, Request):
            raise WorkbookError(f"send() takes a Request(blocks, at_s, output_tokens, options), not {type(request).__name__}.")
        if not isinstance(request.at_s, Real) or request.at_s < 0:
            raise WorkbookError(f"at_s is seconds since the start of the replay, 0 or more, not {request.at_s!r}.")
        if request.at_s < self.last_s:
            raise WorkbookError(f"Requests must come in time order: at_s={request.at_s:g} is before the previous "
                                f"request's {self.last_s:g}.")
        if isinstance(request.output_tokens, bool) or not isinstance(request.output_tokens, Integral) \
                or request.output_tokens < 0:
            raise WorkbookError(f"output_tokens must be a whole number >= 0, not {request.output_tokens!r}.")
        unknown = set(request.options or {}) - OPTIONS[self.sheet.provider]
        if unknown:
            raise WorkbookError(f"{self.sheet.provider} requests take the options {sorted(OPTIONS[self.sheet.provider])}, "
                                f"not {sorted(unknown)}.")
        if not request.blocks:
            raise WorkbookError("A request needs at least one Block.")
        blocks = [self._ids(block) for block in request.blocks]
        total = sum(map(len, blocks))
        if total == 0:
            raise WorkbookError("The request has no tokens: every block is empty.")
        if self.sheet.priced_up_to_tokens is not None and total > self.sheet.priced_up_to_tokens:
            raise WorkbookError(f"{self.sheet.key}'s prices cover prompts of up to {self.sheet.priced_up_to_tokens:,} "
                                f"tokens; this one has {total:,}, billed at a long-context tier the sheet does not record.")
        return blocks

    def _ids(self, block: Block) -> list[int]:
        if not isinstance(block, Block):
            raise WorkbookError(f"A request's blocks are Block(content, cache_control), not {type(block).__name__}.")
        if block.cache_control not in (None, *TTL_SECONDS):
            raise WorkbookError(f"cache_control is None, '5m' or '1h', not {block.cache_control!r}.")
        if isinstance(block.content, str):
            if self.tokenizer is None:
                raise WorkbookError("A Block holds text, so pass a tokenizer (workbook.load_tokenizer(...)), or give "
                                    "the block's token ids instead.")
            return self.tokenizer.encode(block.content) if block.content else []
        try:
            return list(map(operator.index, block.content))  # whole numbers only, fast on long prompts
        except TypeError:
            raise WorkbookError("A Block's content is text or a list of token ids.") from None

    def _price(self, usage: Usage, write_1h: int) -> float:
        """USD of a usage whose writes include `write_1h` tokens at the 1-hour price (the rest at the 5-minute one)."""
        s = self.sheet
        return (usage.input_tokens * s.input + (usage.cache_write_tokens - write_1h) * s.cache_write
                + write_1h * (s.cache_write_1h or 0.0) + usage.cache_read_tokens * s.cache_read
                + usage.output_tokens * s.output) / PER_MILLION

    # ----- Anthropic -------------------------------------------------------------------------------

    def _anthropic(self, entries: dict, request: Request, blocks: list[list[int]], options: dict):
        now, ends, keys = request.at_s, list(accumulate(map(len, blocks))), chained_keys(blocks)
        marks = breakpoints(request.blocks, options.get("cache_control"))
        if not marks:
            return Usage(ends[-1], 0, 0, request.output_tokens), 0, 0.0, "no cache_control breakpoint: nothing is cached"
        read_at = None  # the block whose boundary ends the longest live prefix within the lookback
        for block, _ in marks:
            for j in range(block, max(block - LOOKBACK_BLOCKS, -1), -1):
                entry = entries.get(keys[j])
                if entry is not None and entry.expires_s >= now:
                    read_at = j if read_at is None or ends[j] > ends[read_at] else read_at
                    break
        read = 0 if read_at is None else ends[read_at]
        why = [self._read_note(entries, keys, read_at, marks, now)]
        if read_at is not None:
            hit = entries[keys[read_at]]
            hit.used_s, hit.expires_s = now, now + hit.ttl_s  # a read renews the lifetime for free
        written, write_1h, covered = 0, 0, read
        for block, ttl in marks:
            if ends[block] < self.sheet.min_cacheable_tokens:
                why.append(f"breakpoint at block {block} ends at token {ends[block]:,}, under the "
                           f"{self.sheet.min_cacheable_tokens:,}-token minimum: not cached")
                continue
            ttl_s, old = TTL_SECONDS[ttl], entries.get(keys[block])
            if old is not None and old.expires_s >= now:  # already cached: renewed, never shortened
                old.used_s, old.expires_s = now, max(old.expires_s, now + ttl_s)
            else:
                entries[keys[block]] = Entry(ends[block], now, now, now + ttl_s, ttl_s)
            if ends[block] > covered:
                written += ends[block] - covered
                write_1h += (ends[block] - covered) if ttl == "1h" else 0
                covered = ends[block]
        if written:
            why.append(f"wrote {written:,} tokens" + (f" ({write_1h:,} at the 1-hour price)" if write_1h else ""))
        return Usage(ends[-1] - read - written, written, read, request.output_tokens), write_1h, 0.0, "; ".join(why)

    def _read_note(self, entries: dict, keys: list, read_at: int | None, marks: list, now: float) -> str:
        if read_at is None:
            return f"no live prefix at any breakpoint or the {LOOKBACK_BLOCKS - 1} block boundaries before it: a miss"
        entry, last = entries[keys[read_at]], marks[-1][0]
        n = last - read_at
        back = f", found {n} block{'s' if n > 1 else ''} back from the last breakpoint" if n else ""
        return (f"read {entry.tokens:,} tokens cached at block {read_at}{back}, last used "
                f"{duration(now - entry.used_s)} ago, lifetime renewed")

    # ----- OpenAI ----------------------------------------------------------------------------------

    def _openai(self, entries: dict, request: Request, blocks: list[list[int]], options: dict):
        retention = options.get("prompt_cache_retention", "in_memory")
        if retention not in ("in_memory", "24h"):
            raise WorkbookError(f'prompt_cache_retention is "in_memory" or "24h", not {retention!r}.')
        now, prompt = request.at_s, [t for block in blocks for t in block]
        route = (options.get("prompt_cache_key"), tuple(prompt[:OPENAI_ROUTE_TOKENS]))
        chunks = [prompt[i:i + self.sheet.cache_step] for i in range(0, len(prompt), self.sheet.cache_step)]
        keys = [(route, key) for key in chained_keys(chunks)]
        ends = list(accumulate(map(len, chunks)))
        live = [j for j, key in enumerate(keys) if key in entries and openai_live(entries[key], now)]
        shared = ends[live[-1]] if live else 0
        read = cacheable_tokens(self.sheet, shared)
        idle = OPENAI_24H_S if retention == "24h" else OPENAI_IDLE_S
        for j, key in enumerate(keys):
            if ends[j] == len(prompt) and len(chunks[j]) < self.sheet.cache_step:
                break  # a partial last chunk is not cached
            entry = entries.get(key)
            if entry is not None and openai_live(entry, now):
                entry.used_s, entry.ttl_s = now, max(entry.ttl_s, idle)
            else:
                entries[key] = Entry(ends[j], now, now, now + idle, idle)
        if len(prompt) < self.sheet.min_cacheable_tokens:
            why = f"the whole prompt ({len(prompt):,} tokens) is under the {self.sheet.min_cacheable_tokens:,}-token minimum"
        elif read:
            why = f"{shared:,} tokens match a prefix cached on this route; billed as {read:,} (1,024, then steps of 128)"
        elif shared:
            why = f"{shared:,} tokens match, under the {self.sheet.min_cacheable_tokens:,}-token minimum: nothing cached"
        else:
            why = "no live cached prefix on this route (first request, another prompt_cache_key, or expired): a miss"
        return Usage(len(prompt) - read, 0, read, request.output_tokens), 0, 0.0, why

    # ----- Google ----------------------------------------------------------------------------------

    def _google(self, entries: dict, request: Request, blocks: list[list[int]], options: dict):
        now, ends, keys = request.at_s, list(accumulate(map(len, blocks))), chained_keys(blocks)
        marked = [j for j, block in enumerate(request.blocks) if block.cache_control]
        if marked:
            return self._google_explicit(entries, request, ends, keys, marked[-1], options)
        if "ttl_s" in options:
            raise WorkbookError("ttl_s updates an explicit cache: mark its last block with cache_control first.")
        known = [j for j, key in enumerate(keys) if ("implicit", key) in entries]
        shared = ends[known[-1]] if known else 0
        lucky = self._random.random() < self.implicit_hit_rate
        read = cacheable_tokens(self.sheet, shared) if lucky else 0
        for j, key in enumerate(keys):
            entries.setdefault(("implicit", key), Entry(ends[j], now, now, float("inf"), float("inf")))
        if read:
            why = f"implicit cache: {read:,} tokens of an earlier request's prefix read at the cached price"
        elif shared and not lucky:
            why = (f"implicit cache: {shared:,} tokens could have hit, but implicit savings are not guaranteed "
                   f"(hit rate {self.implicit_hit_rate:g})")
        elif ends[-1] < self.sheet.min_cacheable_tokens:
            why = f"the whole prompt ({ends[-1]:,} tokens) is under the {self.sheet.min_cacheable_tokens:,}-token minimum"
        else:
            why = "implicit cache: no earlier request shares a long enough prefix"
        return Usage(ends[-1] - read, 0, read, request.output_tokens), 0, 0.0, why

    def _google_explicit(self, entries: dict, request: Request, ends: list[int], keys: list, last: int, options: dict):
        now, tokens = request.at_s, ends[last]
        if tokens < self.sheet.min_cacheable_tokens:
            raise WorkbookError(f"An explicit cache needs at least {self.sheet.min_cacheable_tokens:,} tokens on "
                                f"{self.sheet.key}; the marked prefix has {tokens:,}. Cache more, or rely on implicit caching.")
        ttl_s = TTL_SECONDS[request.blocks[last].cache_control]
        new_ttl = options.get("ttl_s")
        if new_ttl is not None and (not isinstance(new_ttl, Real) or new_ttl <= 0):
            raise WorkbookError(f"ttl_s is a number of seconds above 0, not {new_ttl!r}.")
        entry = entries.get(("explicit", keys[last]))
        per_hour = tokens / PER_MILLION * self.sheet.storage_per_mtok_hour
        if entry is not None and entry.expires_s >= now:
            extra_s = max(0.0, now + new_ttl - entry.expires_s) if new_ttl is not None else 0.0
            entry.used_s, entry.expires_s = now, entry.expires_s + extra_s
            why = f"explicit cache of {tokens:,} tokens read" + (
                f"; TTL moved to {duration(entry.expires_s - now)} from now" if extra_s else "")
            return (Usage(ends[-1] - tokens, 0, tokens, request.output_tokens), 0, per_hour * extra_s / 3600, why)
        ttl_s = new_ttl if new_ttl is not None else ttl_s
        entries[("explicit", keys[last])] = Entry(tokens, now, now, now + ttl_s, ttl_s)
        why = (f"explicit cache of {tokens:,} tokens created (billed at the input price) with {duration(ttl_s)} "
               "of storage" + (" after the last one expired" if entry is not None else ""))
        return Usage(ends[-1] - tokens, tokens, 0, request.output_tokens), 0, per_hour * ttl_s / 3600, why


def simulate(model_key: str, requests: Sequence[Request], tokenizer=None, *, implicit_hit_rate: float = 1.0,
             seed: int = 0, sheets: dict[str, PriceSheet] | None = None) -> list[Bill]:
    """Replay `requests` in order against a fresh cache of `model_key` (e.g. "anthropic/claude-sonnet-4-5")."""
    cache = ProviderCache(model_key, tokenizer, implicit_hit_rate=implicit_hit_rate, seed=seed, sheets=sheets)
    return [cache.send(request) for request in requests]


def as_sent_to(provider: str, request: Request) -> Request:
    """`request` as sent to `provider`: breakpoints are Anthropic's. OpenAI caches automatically and Google
    implicitly, so their requests carry none (on Google a marker would buy an explicit, stored cache)."""
    if provider == "anthropic":
        return request
    return replace(request, blocks=[Block(block.content) for block in request.blocks])


def breakpoints(blocks: Sequence[Block], automatic: Ttl | None) -> list[tuple[int, Ttl]]:
    """Anthropic's breakpoints as (block index, TTL), checked: at most 4, and no 1-hour one after a 5-minute one."""
    marks = [(j, block.cache_control) for j, block in enumerate(blocks) if block.cache_control]
    if automatic is not None:
        if automatic not in TTL_SECONDS:
            raise WorkbookError(f"The automatic cache_control is '5m' or '1h', not {automatic!r}.")
        if not marks or marks[-1][0] != len(blocks) - 1:
            marks.append((len(blocks) - 1, automatic))
    if len(marks) > MAX_BREAKPOINTS:
        raise WorkbookError(f"A request may hold at most {MAX_BREAKPOINTS} cache_control breakpoints; this one has "
                            f"{len(marks)}. Keep the ones that end stable parts (tools, system, the latest turns).")
    ttls = [ttl for _, ttl in marks]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m"):]:
        raise WorkbookError("A 1-hour breakpoint cannot come after a 5-minute one: put longer lifetimes first.")
    return marks


def chained_keys(parts: Sequence[Sequence[int]]) -> list[int]:
    """A key per prefix ending after each part: each key hashes the previous key with the part's tokens."""
    keys, key = [], 0
    for part in parts:
        key = hash((key, tuple(part)))
        keys.append(key)
    return keys


def openai_live(entry: Entry, now: float) -> bool:
    """An in-memory entry lives until `ttl_s` idle (and at most an hour); a 24-hour one until 24 hours idle."""
    within_idle = now - entry.used_s <= entry.ttl_s
    return within_idle and (entry.ttl_s == OPENAI_24H_S or now - entry.created_s <= OPENAI_MAX_S)


def duration(seconds: float) -> str:
    """A short human duration: 45s, 4m50s, 2h05m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
