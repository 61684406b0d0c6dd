"""Provider caching as it really bills: a sequence of requests replayed against one provider's documented rules.

`workbook.pricing` prices one request from token counts. Here a request is what you send: content
blocks in the provider's render order (Anthropic renders tools, then system, then messages), some
marked as cache breakpoints, arriving at a time. A `ProviderCache` keeps one provider's cache
between requests and bills each request the way that provider's caching page says. Each rule below
sits beside the sentence of the page it implements (stored copies read on 2026-12-06); where a page leaves
a rule open, a named constant says what this simulator assumes, and the bill's `why` says so when
the assumption decides the bill.

- Anthropic (explicit): a breakpoint is a `Block` with `cache_control` ("5m" or "1h"), at most 4 a
  request, 1-hour ones before 5-minute ones; `options={"cache_control": ttl}` is the automatic mode,
  one more breakpoint on the last block. Each breakpoint looks for a live cached prefix at its own
  block and the positions before it, 20 in all; the longest found is read (A), then 1-hour writes
  run to the last 1-hour breakpoint (B) and 5-minute writes to the last breakpoint (C). A prefix
  under the model's minimum is not cached. A read renews the entry's own lifetime for free. An entry
  can be read only once the response that wrote it has begun (`first_token_s` later). Changing
  `tool_choice`, `thinking`, `effort` or the number of image blocks invalidates the messages part; web search,
  citations and speed invalidate system and messages; a tool definition, everything after it.
- OpenAI (automatic): the longest live cached prefix is read, counted from 1,024 tokens in steps of
  128; writes cost plain input. `prompt_cache_retention` takes the values the model's sheet lists
  (its default first): in memory, a prefix lives until `OPENAI_IN_MEMORY_IDLE_S` idle; "24h", until
  24 hours idle. Requests reach a cache by a route, the first 256 tokens plus
  `options["prompt_cache_key"]`. Not modelled: overflow to other machines above about 15 requests
  a minute per key, per-model minimums above 1,024, and eviction under load, so real hit rates can
  be lower.
- Google: implicit caching (the default) reads the longest prefix ending at a block boundary that an
  earlier request sent within `implicit_ttl_s`, at the cached price, with no write or storage charge;
  the docs promise no saving, so a hit happens with probability `implicit_hit_rate` (1.0 unless you
  set it). Hits at other boundaries than blocks are not modelled. An explicit cache is the prefix up
  to the last block with `cache_control`, whose value is its TTL: the request that creates it pays
  its tokens once at the input price to create it (cache writes) and again at the cached price to
  use it (cache reads), plus storage for the whole TTL; `options={"ttl_s": seconds}` sets the expiry
  to that many seconds from now, later or sooner, and the storage follows.

Every request's prices come from `PriceSheet.for_prompt`: a request past the context window is
refused, one past a long-context threshold bills wholly at that tier.

Prefixes are keyed by a chained hash of their blocks (or of 128-token chunks for OpenAI), as the
providers' own caches key them, so thousands of requests replay in well under a second.
Standard library only, like `pricing`.
"""

from __future__ import annotations

import json
import operator
import random
from dataclasses import dataclass, replace
from itertools import accumulate
from numbers import Real
from typing import Literal, Mapping, Sequence

from .checks import check_whole
from .errors import WorkbookError
from .pricing import PER_MILLION, PriceSheet, Usage, cacheable_tokens, get_sheet

Ttl = Literal["5m", "1h"]
Part = Literal["tools", "system", "messages"]
BlockType = Literal["text", "image", "tool_use", "tool_result"]
PARTS: tuple[str, ...] = ("tools", "system", "messages")  # Anthropic's render order
BLOCK_TYPES: tuple[str, ...] = ("text", "image", "tool_use", "tool_result")

# Anthropic: https://platform.claude.com/docs/en/build-with-claude/prompt-caching
# "By default, the cache has a 5-minute lifetime. The cache is refreshed for no additional cost each time the
# cached content is used." "The lifetime is measured from the start of the request that writes or reads the cache
# entry" (here: its `at_s`). The 1-hour lifetime is the other value of cache_control's ttl.
TTL_SECONDS: dict[str, float] = {"5m": 5 * 60.0, "1h": 60 * 60.0}
CACHE_CONTROLS = (None, *TTL_SECONDS)  # a block's cache_control: none, or one of the lifetimes
# "Each request can define up to 4 cache breakpoints"; automatic caching takes one of the 4 slots: "If 4 explicit
# block-level breakpoints already exist, the API returns a 400 error (no slots left for automatic caching)."
MAX_BREAKPOINTS = 4
# "The lookback window is 20 blocks. The system checks at most 20 positions per breakpoint, counting the breakpoint
# itself as the first. ... On the Claude API, a run of consecutive tool_use blocks counts as one position, and so
# does a run of consecutive tool_result blocks." (Earlier copies of the page said "approximately 20 blocks".)
LOOKBACK_BLOCKS = 20
# "For concurrent requests, note that a cache entry only becomes available after the first response begins."
# The page gives no time: this simulator assumes a response begins this long after its request is sent.
ASSUMED_FIRST_TOKEN_S = 1.0
# "the cache follows the hierarchy: tools → system → messages. Changes at each level invalidate that level and all
# subsequent levels." The invalidation table: web search, citations and speed "invalidate system and message
# caches"; "Changes to tool_choice parameter only affect message blocks"; "Adding/removing images anywhere in the
# prompt affects message blocks"; thinking "always invalidates message blocks; tool and system caches are also
# invalidated on models that render the configuration ahead of them", and effort has "the same model-specific
# effect" — the page names no such model, so this simulator assumes both invalidate the messages only. A tool
# definition is a block of the tools part. Not modelled: thinking blocks stripped from earlier turns (model-specific).
INVALIDATES: dict[str, Part] = {"web_search": "system", "citations": "system", "speed": "system",
                                "tool_choice": "messages", "thinking": "messages", "effort": "messages"}

# OpenAI: https://developers.openai.com/api/docs/guides/prompt-caching
# "When using the in-memory policy, cached prefixes generally remain active for 5 to 10 minutes of inactivity, up
# to a maximum of one hour." The guide does not say what the hour counts from; Azure's copy says "always removed
# within one hour of the cache's last use", which an idle timeout of minutes never reaches. Assumed: 5 minutes idle.
OPENAI_IN_MEMORY_IDLE_S = 5 * 60.0
# "Extended prompt cache retention keeps cached prefixes active for longer, up to a maximum of 24 hours."
OPENAI_24H_S = 24 * 60 * 60.0
# "Requests are routed to a machine based on a hash of the initial prefix of the prompt. The hash typically uses
# the first 256 tokens" (the 2025 guide; the current one says "the initial prompt prefix").
OPENAI_ROUTE_TOKENS = 256
RETENTION_S = {"in_memory": OPENAI_IN_MEMORY_IDLE_S, "24h": OPENAI_24H_S}

# Google: https://ai.google.dev/gemini-api/docs/caching
# Implicit caching: "send requests with similar prefix in a short amount of time". The page gives no lifetime:
# assumed, an implicit entry lives this long idle, renewed by each request that sends it.
GEMINI_IMPLICIT_IDLE_S = 5 * 60.0

OPTIONS = {"anthropic": {"cache_control", *INVALIDATES}, "openai": {"prompt_cache_key", "prompt_cache_retention"},
           "google": {"ttl_s"}}


@dataclass(frozen=True)
class Block:
    """One content block: text (tokenized on its own) or token ids; `cache_control` marks a breakpoint and its TTL.

    `part` and `type` matter to Anthropic's rules only: which part of the prompt the block renders in (tools,
    system or messages, in that order), and what kind of block it is (images and tool runs have rules of their own).
    """

    content: str | Sequence[int]
    cache_control: Ttl | None = None
    part: Part = "messages"
    type: BlockType = "text"


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

    usage: Usage  # a Gemini request that creates an explicit cache counts its tokens twice: written, then read
    cost_usd: float  # storage included
    why: str
    storage_usd: float = 0.0  # Google explicit caches: storage bought (or, when a TTL is cut, given back) by this request


@dataclass
class Entry:
    """A cached prefix: its length, when it was made and last used, when it can first be read and when it expires."""

    tokens: int
    created_s: float
    used_s: float
    expires_s: float
    ttl_s: float
    ready_s: float = 0.0

    def live(self, now: float) -> bool:
        return self.ready_s <= now <= self.expires_s

    def renew(self, now: float, ttl_s: float | None = None) -> None:
        """Used now: it lives `ttl_s` (its own lifetime unless given) from now."""
        self.ttl_s = self.ttl_s if ttl_s is None else ttl_s
        self.used_s, self.expires_s = now, now + self.ttl_s


class ProviderCache:
    """One provider's cache for one model, fed requests in time order; `send` bills one, `simulate` a list."""

    def __init__(self, model_key: str, tokenizer=None, *, implicit_hit_rate: float = 1.0, seed: int = 0,
                 sheets: dict[str, PriceSheet] | None = None, first_token_s: float = ASSUMED_FIRST_TOKEN_S,
                 implicit_ttl_s: float = GEMINI_IMPLICIT_IDLE_S):
        self.sheet = get_sheet(model_key, sheets)
        if not 0.0 <= implicit_hit_rate <= 1.0:
            raise WorkbookError(f"implicit_hit_rate is a probability between 0 and 1, not {implicit_hit_rate}.")
        for name, value in (("first_token_s", first_token_s), ("implicit_ttl_s", implicit_ttl_s)):
            if isinstance(value, bool) or not isinstance(value, Real) or value < 0:
                raise WorkbookError(f"{name} is a number of seconds, 0 or more, not {value!r}.")
        self.tokenizer, self.implicit_hit_rate = tokenizer, implicit_hit_rate
        self.first_token_s, self.implicit_ttl_s = first_token_s, implicit_ttl_s
        self.entries: dict[tuple, Entry] = {}
        self.last_s = 0.0
        self.last_settings: dict[str, str] | None = None  # Anthropic: the previous request's settings
        self._random = random.Random(seed)

    def send(self, request: Request) -> Bill:
        """Bill one request and update the cache. A refused request (a `WorkbookError`) changes nothing."""
        blocks, prices = self._checked(request)
        options = dict(request.options or {})
        rule = {"anthropic": self._anthropic, "openai": self._openai, "google": self._google}[self.sheet.provider]
        # Each rule checks everything it needs before it changes an entry, so a refusal leaves the cache as it was.
        usage, write_1h, storage_usd, why = rule(self.entries, request, blocks, options)
        self.last_s = request.at_s
        return Bill(usage, price(usage, write_1h, prices) + storage_usd, why, storage_usd)

    # ----- checks shared by every provider -------------------------------------------------------

    def _checked(self, request: Request) -> tuple[list[tuple[int, ...]], PriceSheet]:
        """Each block's token ids and the prices of the prompt's length (`PriceSheet.for_prompt`), once the request
        is known to be well formed (nothing is changed before this)."""
        if not isinstance(request, Request):
            raise WorkbookError(f"send() takes a Request(blocks, at_s, output_tokens, options), not {type(request).__name__}.")
        if not isinstance(request.at_s, Real) or request.at_s < 0:
            raise WorkbookError(f"at_s is seconds since the start of the replay, 0 or more, not {request.at_s!r}.")
        if request.at_s < self.last_s:
            raise WorkbookError(f"Requests must come in time order: at_s={request.at_s:g} is before the previous "
                                f"request's {self.last_s:g}.")
        check_whole("output_tokens", request.output_tokens, 0)
        unknown = set(request.options or {}) - OPTIONS[self.sheet.provider]
        if unknown:
            raise WorkbookError(f"{self.sheet.provider} requests take the options {sorted(OPTIONS[self.sheet.provider])}, "
                                f"not {sorted(unknown)}.")
        if not request.blocks:
            raise WorkbookError("A request needs at least one Block.")
        blocks = [self._ids(block) for block in request.blocks]
        parts = [PARTS.index(block.part) for block in request.blocks]
        if parts != sorted(parts):
            raise WorkbookError("Blocks come in render order: every tools block, then every system block, then the "
                                "messages.")
        total = sum(map(len, blocks))
        if total == 0:
            raise WorkbookError("The request has no tokens: every block is empty.")
        return blocks, self.sheet.for_prompt(total)  # refuses a prompt past the context window

    def _ids(self, block: Block) -> tuple[int, ...]:
        if not isinstance(block, Block):
            raise WorkbookError(f"A request's blocks are Block(content, cache_control), not {type(block).__name__}.")
        if block.cache_control not in CACHE_CONTROLS:
            raise WorkbookError(f"cache_control is None, '5m' or '1h', not {block.cache_control!r}.")
        if block.part not in PARTS or block.type not in BLOCK_TYPES:
            raise WorkbookError(f"A Block's part is one of {PARTS} and its type one of {BLOCK_TYPES}, not "
                                f"{block.part!r} and {block.type!r}.")
        if isinstance(block.content, str):
            if self.tokenizer is None:
                raise WorkbookError("A Block holds text, so pass a tokenizer (workbook.load_tokenizer(...)), or give "
                                    "the block's token ids instead.")
            return tuple(self.tokenizer.encode(block.content)) if block.content else ()
        try:
            return tuple(map(operator.index, block.content))  # whole numbers only, fast on long prompts
        except TypeError:
            raise WorkbookError("A Block's content is text or a list of token ids.") from None

    # ----- Anthropic -------------------------------------------------------------------------------

    def _anthropic(self, entries: dict, request: Request, blocks: list[tuple[int, ...]], options: dict):
        now, ends = request.at_s, list(accumulate(map(len, blocks)))
        marks = breakpoints(request.blocks, options.get("cache_control"))
        settings = anthropic_settings(request, options)
        keys = chained_keys(settings_mixed_in(request.blocks, blocks, settings))
        changed = self._settings_note(settings)
        self.last_settings = settings
        if not marks:
            return Usage(ends[-1], 0, 0, request.output_tokens), 0, 0.0, "no cache_control breakpoint: nothing is cached"
        read_at = None  # the block whose boundary ends the longest live prefix within the lookback (position A)
        for block, _ in marks:
            for j in lookback(request.blocks, block):
                entry = entries.get(keys[j])
                if entry is not None and entry.live(now):
                    read_at = j if read_at is None or ends[j] > ends[read_at] else read_at
                    break
        read = 0 if read_at is None else ends[read_at]
        why = [self._read_note(entries, keys, ends, read_at, marks, now)] + changed
        if read_at is not None:
            entries[keys[read_at]].renew(now)  # "refreshed for no additional cost each time the cached content is used"
        # "You'll be charged for: 1. Cache read tokens for A. 2. 1-hour cache write tokens for (B - A).
        # 3. 5-minute cache write tokens for (C - B)." Each breakpoint past A writes its own entry.
        written, write_1h, covered = 0, 0, read
        for block, ttl in marks:
            if ends[block] < self.sheet.min_cacheable_tokens:
                # "Shorter prompts cannot be cached, even if marked with cache_control. ... no error is returned."
                why.append(f"breakpoint at block {block} ends at token {ends[block]:,}, under the "
                           f"{self.sheet.min_cacheable_tokens:,}-token minimum: not cached")
                continue
            old = entries.get(keys[block])
            if old is not None and old.live(now):
                old.renew(now)  # read through this breakpoint: its own lifetime, whatever this breakpoint asks
            elif ends[block] > read:
                ready = now + self.first_token_s
                if old is None or old.expires_s < now:  # a pending entry, not yet readable, keeps its earlier start
                    entries[keys[block]] = Entry(ends[block], now, now, now + TTL_SECONDS[ttl], TTL_SECONDS[ttl], ready)
            if ends[block] > covered:
                written += ends[block] - covered
                write_1h += (ends[block] - covered) if ttl == "1h" else 0
                covered = ends[block]
        if written:
            why.append(f"wrote {written:,} tokens" + (f" ({write_1h:,} at the 1-hour price)" if write_1h else ""))
        return Usage(ends[-1] - read - written, written, read, request.output_tokens), write_1h, 0.0, "; ".join(why)

    def _read_note(self, entries: dict, keys: list, ends: list[int], read_at: int | None, marks: list,
                   now: float) -> str:
        last = marks[-1][0]
        if read_at is None:
            return "; ".join([f"no live prefix within {LOOKBACK_BLOCKS} positions of any breakpoint: a miss"]
                             + self._miss_notes(entries, keys, ends, last, now))
        entry = entries[keys[read_at]]
        n = last - read_at
        back = f", found {n} block{'s' if n > 1 else ''} back from the last breakpoint" if n else ""
        return (f"read {entry.tokens:,} tokens cached at block {read_at}{back}, last used "
                f"{duration(now - entry.used_s)} ago, lifetime renewed")

    def _miss_notes(self, entries: dict, keys: list, ends: list[int], last: int, now: float) -> list[str]:
        """Why a miss missed, where a cached prefix exists but the rules kept it from being read."""
        notes = []
        for j in range(last, -1, -1):
            entry = entries.get(keys[j])
            if entry is None or entry.expires_s < now:
                continue
            if entry.ready_s > now:
                notes.append(f"the entry for these {ends[j]:,} tokens was written {duration(now - entry.created_s)} "
                             f"ago and its response has not begun (assumed {ASSUMED_FIRST_TOKEN_S:g} s after sending): "
                             "Anthropic makes an entry readable only once the first response begins")
            else:
                notes.append(f"a live prefix of {ends[j]:,} tokens ends at block {j}, beyond the lookback of "
                             f"{LOOKBACK_BLOCKS} positions (this simulator counts each block as one, and each run of "
                             "tool_use or of tool_result blocks as one)")
            break
        return notes

    def _settings_note(self, settings: dict[str, str]) -> list[str]:
        """Which settings changed since the previous request, and which cached parts that invalidates."""
        if self.last_settings is None or settings == self.last_settings:
            return []
        changed = [name for name in settings if settings[name] != self.last_settings.get(name)]
        return [f"{name} changed since the previous request: Anthropic invalidates the cached "
                f"{'system and messages' if part == 'system' else 'messages'}"
                + (" (assumed: the messages only)" if name in ("thinking", "effort") else "")
                for name in changed for part in [INVALIDATES.get(name, "messages")]]

    # ----- OpenAI ----------------------------------------------------------------------------------

    def _openai(self, entries: dict, request: Request, blocks: list[tuple[int, ...]], options: dict):
        offered = retentions(self.sheet)
        retention = options.get("prompt_cache_retention", offered[0])
        if retention not in offered:
            # "Available values depend on the model"; "For gpt-5.5 and gpt-5.5-pro, only 24h is supported".
            raise WorkbookError(f"{self.sheet.name} takes prompt_cache_retention {' or '.join(map(repr, offered))}, "
                                f"not {retention!r}.")
        now, prompt = request.at_s, [t for block in blocks for t in block]
        route = (options.get("prompt_cache_key"), tuple(prompt[:OPENAI_ROUTE_TOKENS]))
        chunks = [prompt[i:i + self.sheet.cache_step] for i in range(0, len(prompt), self.sheet.cache_step)]
        keys = [(route, key) for key in chained_keys(chunks)]
        ends = list(accumulate(map(len, chunks)))
        live = 0  # a prefix is read from its head: the chunks live from the first one on
        while live < len(keys) and keys[live] in entries and entries[keys[live]].live(now):
            live += 1
        shared = ends[live - 1] if live else 0
        # "Cache hits occur in increments of 128 tokens", from "prompts that are 1,024 tokens or longer".
        read = cacheable_tokens(self.sheet, shared)
        idle = RETENTION_S[retention]
        for j, key in enumerate(keys):
            if ends[j] == len(prompt) and len(chunks[j]) < self.sheet.cache_step:
                break  # a partial last chunk is not cached
            entry = entries.get(key)
            if entry is not None and entry.live(now):
                entry.renew(now, max(entry.ttl_s, idle))
            else:
                entries[key] = Entry(ends[j], now, now, now + idle, idle)
        if len(prompt) < self.sheet.min_cacheable_tokens:
            why = f"the whole prompt ({len(prompt):,} tokens) is under the {self.sheet.min_cacheable_tokens:,}-token minimum"
        elif read:
            why = f"{shared:,} tokens match a prefix cached on this route; billed as {read:,} (1,024, then steps of 128)"
        elif shared:
            why = f"{shared:,} tokens match, under the {self.sheet.min_cacheable_tokens:,}-token minimum: nothing cached"
        else:
            why = (f"no live cached prefix on this route (first request, another prompt_cache_key, or more than "
                   f"{duration(idle)} idle with {retention} retention): a miss")
        return Usage(len(prompt) - read, 0, read, request.output_tokens), 0, 0.0, why

    # ----- Google ----------------------------------------------------------------------------------

    def _google(self, entries: dict, request: Request, blocks: list[tuple[int, ...]], options: dict):
        now, ends, keys = request.at_s, list(accumulate(map(len, blocks))), chained_keys(blocks)
        marked = [j for j, block in enumerate(request.blocks) if block.cache_control]
        if marked:
            return self._google_explicit(entries, request, ends, keys, marked[-1], options)
        if "ttl_s" in options:
            raise WorkbookError("ttl_s updates an explicit cache: mark its last block with cache_control first.")
        known = [j for j, key in enumerate(keys) if ("implicit", key) in entries and entries["implicit", key].live(now)]
        shared = ends[known[-1]] if known else 0
        lucky = self._random.random() < self.implicit_hit_rate
        read = cacheable_tokens(self.sheet, shared) if lucky else 0
        for j, key in enumerate(keys):
            entry = entries.get(("implicit", key))
            if entry is not None and entry.live(now):
                entry.renew(now)
            else:
                entries["implicit", key] = Entry(ends[j], now, now, now + self.implicit_ttl_s, self.implicit_ttl_s)
        if read:
            why = f"implicit cache: {read:,} tokens of an earlier request's prefix read at the cached price"
        elif shared and not lucky:
            why = (f"implicit cache: {shared:,} tokens could have hit, but implicit savings are not guaranteed "
                   f"(hit rate {self.implicit_hit_rate:g})")
        elif ends[-1] < self.sheet.min_cacheable_tokens:
            why = f"the whole prompt ({ends[-1]:,} tokens) is under the {self.sheet.min_cacheable_tokens:,}-token minimum"
        else:
            why = (f"implicit cache: no earlier request shares a long enough prefix within {duration(self.implicit_ttl_s)} "
                   "(an assumed lifetime: Google gives none)")
        return Usage(ends[-1] - read, 0, read, request.output_tokens), 0, 0.0, why

    def _google_explicit(self, entries: dict, request: Request, ends: list[int], keys: list, last: int, options: dict):
        now, tokens = request.at_s, ends[last]
        if tokens < self.sheet.min_cacheable_tokens:
            raise WorkbookError(f"An explicit cache needs at least {self.sheet.min_cacheable_tokens:,} tokens on "
                                f"{self.sheet.key}; the marked prefix has {tokens:,}. Cache more, or rely on implicit caching.")
        new_ttl = options.get("ttl_s")
        if new_ttl is not None and (isinstance(new_ttl, bool) or not isinstance(new_ttl, Real) or new_ttl <= 0):
            raise WorkbookError(f"ttl_s is a number of seconds above 0, not {new_ttl!r}.")
        entry = entries.get(("explicit", keys[last]))
        per_second = tokens / PER_MILLION * self.sheet.storage_per_mtok_hour / 3600
        rest = ends[-1] - tokens
        if entry is not None and entry.live(now):
            # An update sets the expiry from now, later or sooner; storage is billed for the time the cache is kept.
            moved_s = now + new_ttl - entry.expires_s if new_ttl is not None else 0.0
            entry.used_s, entry.expires_s = now, entry.expires_s + moved_s
            why = f"explicit cache of {tokens:,} tokens read" + (
                f"; TTL set to {duration(new_ttl)} from now, storage {'bought' if moved_s > 0 else 'given back'} "
                f"for {duration(abs(moved_s))}" if moved_s else "")
            return Usage(rest, 0, tokens, request.output_tokens), 0, per_second * moved_s, why
        ttl_s = new_ttl if new_ttl is not None else TTL_SECONDS[request.blocks[last].cache_control]
        entries["explicit", keys[last]] = Entry(tokens, now, now, now + ttl_s, ttl_s)
        # Creating the cache bills its tokens at the input price; this request then uses it, so they bill once more
        # at the cached price (the creation call and the request that uses the cache are two calls).
        why = (f"explicit cache of {tokens:,} tokens created (billed at the input price), then read by this request, "
               f"with {duration(ttl_s)} of storage" + (" after the last one expired" if entry is not None else ""))
        return Usage(rest, tokens, tokens, request.output_tokens), 0, per_second * ttl_s, why


def price(usage: Usage, write_1h: int, sheet: PriceSheet) -> float:
    """USD of one request's usage at `sheet`'s prices, `write_1h` of its writes at the 1-hour price (the rest at the
    5-minute one). Not `pricing.cost`: a Gemini creating request counts its cached tokens twice (written and read)."""
    return (usage.input_tokens * sheet.input + (usage.cache_write_tokens - write_1h) * sheet.cache_write
            + write_1h * (sheet.cache_write_1h or 0.0) + usage.cache_read_tokens * sheet.cache_read
            + usage.output_tokens * sheet.output) / PER_MILLION


def simulate(model_key: str, requests: Sequence[Request], tokenizer=None, *, implicit_hit_rate: float = 1.0,
             seed: int = 0, sheets: dict[str, PriceSheet] | None = None, first_token_s: float = ASSUMED_FIRST_TOKEN_S,
             implicit_ttl_s: float = GEMINI_IMPLICIT_IDLE_S) -> list[Bill]:
    """Replay `requests` in order against a fresh cache of `model_key` (e.g. "anthropic/claude-sonnet-4-5")."""
    cache = ProviderCache(model_key, tokenizer, implicit_hit_rate=implicit_hit_rate, seed=seed, sheets=sheets,
                          first_token_s=first_token_s, implicit_ttl_s=implicit_ttl_s)
    return [cache.send(request) for request in requests]


def as_sent_to(provider: str, request: Request) -> Request:
    """`request` as sent to `provider`: breakpoints are Anthropic's. OpenAI caches automatically and Google
    implicitly, so their requests carry none (on Google a marker would buy an explicit, stored cache)."""
    return request if provider == "anthropic" else without_breakpoints(request)


def without_breakpoints(request: Request) -> Request:
    """`request` with no block marked `cache_control`."""
    return replace(request, blocks=[replace(block, cache_control=None) for block in request.blocks])


def retentions(sheet: PriceSheet) -> tuple[str, ...]:
    """The `prompt_cache_retention` values an OpenAI model takes, its default first (in memory where the sheet is silent)."""
    return sheet.retention or ("in_memory",)


def breakpoints(blocks: Sequence[Block], automatic: Ttl | None) -> list[tuple[int, Ttl]]:
    """Anthropic's breakpoints as (block index, TTL), checked: at most 4, and no 1-hour one after a 5-minute one."""
    marks = [(j, block.cache_control) for j, block in enumerate(blocks) if block.cache_control]
    if automatic is not None:
        if automatic not in TTL_SECONDS:
            raise WorkbookError(f"The automatic cache_control is '5m' or '1h', not {automatic!r}.")
        last = len(blocks) - 1
        if marks and marks[-1][0] == last and marks[-1][1] != automatic:
            # "If the last block has an explicit cache_control with a different TTL, the API returns a 400 error."
            raise WorkbookError(f"The last block's cache_control ({marks[-1][1]!r}) and the automatic one "
                                f"({automatic!r}) differ: the API answers 400. Give them the same TTL, or drop one.")
        if not marks or marks[-1][0] != last:  # "with the same TTL, automatic caching is a no-op"
            marks.append((last, automatic))
    if len(marks) > MAX_BREAKPOINTS:
        raise WorkbookError(f"A request may hold at most {MAX_BREAKPOINTS} cache_control breakpoints (the automatic one "
                            f"included); this one has {len(marks)}. Keep the ones that end stable parts (tools, system, "
                            "the latest turns).")
    ttls = [ttl for _, ttl in marks]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m"):]:
        # "Cache entries with longer TTL must appear before shorter TTLs".
        raise WorkbookError("A 1-hour breakpoint cannot come after a 5-minute one: put longer lifetimes first.")
    return marks


def lookback(blocks: Sequence[Block], breakpoint: int) -> list[int]:
    """The block boundaries a breakpoint checks, nearest first: its own, then up to 19 earlier positions, where a run
    of consecutive tool_use blocks, or of tool_result blocks, is one position (ending at the run's last block)."""
    positions = [breakpoint]
    for j in range(breakpoint - 1, -1, -1):
        if len(positions) == LOOKBACK_BLOCKS:
            break
        in_run = blocks[j].type in ("tool_use", "tool_result") and blocks[j + 1].type == blocks[j].type
        if not in_run:
            positions.append(j)
    return positions


def anthropic_settings(request: Request, options: dict) -> dict[str, str]:
    """The request settings that invalidate cached parts, each as comparable text (images counted)."""
    settings = {}
    for name in INVALIDATES:
        if name not in options:
            settings[name] = "null"  # json.dumps(None): left at the default, as most requests leave them
            continue
        try:
            settings[name] = json.dumps(options[name], sort_keys=True)
        except TypeError:
            raise WorkbookError(f"The option {name!r} is JSON, as in the API's request body, not "
                                f"{options.get(name)!r}.") from None
    settings["images"] = str(sum(block.type == "image" for block in request.blocks))
    return settings


# Each part with the parts rendered after it: the parts a change at its level invalidates.
FROM = {part: PARTS[k:] for k, part in enumerate(PARTS)}
# The settings that invalidate each part (and, for the messages, the number of images), as `INVALIDATES` says.
MIXED_IN = {level: tuple(name for name, part in INVALIDATES.items() if part == level)
            + (("images",) if level == "messages" else ()) for level in ("system", "messages")}


def settings_mixed_in(blocks: Sequence[Block], ids: Sequence[Sequence[int]], settings: dict[str, str]) -> list[tuple]:
    """Each block's ids, with the settings that invalidate a part mixed into that part's first block (or the first
    block after it), so that a changed setting changes every key from there on, as the hierarchy says. A mixed block
    is the pair (settings, its ids): its ids are not copied."""
    parts = list(ids)
    for level, names in MIXED_IN.items():
        first = next((j for j, block in enumerate(blocks) if block.part in FROM[level]), None)
        if first is not None:
            parts[first] = (("settings", tuple(settings[name] for name in names)), tuple(parts[first]))
    return parts


def chained_keys(parts: Sequence[Sequence]) -> list[int]:
    """A key per prefix ending after each part: each key hashes the previous key with the part's tokens."""
    keys, key = [], 0
    for part in parts:
        key = hash((key, tuple(part)))
        keys.append(key)
    return keys


def duration(seconds: float) -> str:
    """A short human duration: 45s, 4m50s, 2h05m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
