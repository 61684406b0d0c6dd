"""Provider price sheets and napkin math: what a request costs, cold and cached, and over time.

Prices live in `data/pricing.json` (dated, each with its source page); this module reads them
and turns token counts into dollars. It applies each provider's caching rules to real token
counts, so a lesson can show that a 12-token toy prompt is never cached by a real API, that
OpenAI counts hits in 128-token steps, and that an Anthropic write costs more than a miss.
Over time, a cache entry lives for a TTL that each hit renews, and an explicit (Gemini-style)
cache costs storage every hour it is kept.

Standard library only: no torch, no widgets, so it imports anywhere in a blink.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal, Sequence

from .checks import check_whole
from .errors import WorkbookError

PER_MILLION = 1_000_000
DAYS_PER_YEAR = 365
DEFAULT_PRICING_PATH = Path(__file__).resolve().parent.parent / "data" / "pricing.json"

Ttl = Literal["5m", "1h"]
PRICE_FIELDS = ("input", "cache_read", "cache_write", "cache_write_1h", "output")


@dataclass(frozen=True)
class LongContext:
    """A long-context tier: once a request's input passes `above_tokens`, the whole request bills at these
    prices (USD per million tokens), its cached reads and writes included. None keeps the base price."""

    above_tokens: int
    input: float
    cache_read: float
    cache_write: float
    output: float
    cache_write_1h: float | None = None
    source: str = ""


@dataclass(frozen=True)
class PriceSheet:
    """One model's prices, in USD per million tokens, plus the caching rules that shape a bill.

    `cache_write` is what a token costs the first time it goes into the cache (Anthropic's
    5-minute write; the plain input price where writes carry no premium); `cache_write_1h` is
    Anthropic's 1-hour write. `cache_step` is the granularity of a hit: OpenAI reports cached
    tokens in 128-token steps, others to the token. `storage_per_mtok_hour` is Gemini's charge
    for keeping an explicit cache alive (0 where the provider does not bill storage).
    `context_window` is the most input tokens a request may send (None: not recorded); `long_context`
    the tier a longer request bills at (`for_prompt` applies both). `retention` lists the OpenAI
    `prompt_cache_retention` values the model accepts, its default first (empty elsewhere).
    """

    provider: str
    model: str
    input: float
    cache_read: float
    cache_write: float
    output: float
    min_cacheable_tokens: int
    source: str
    checked: str
    cache_write_1h: float | None = None
    cache_step: int = 1
    storage_per_mtok_hour: float = 0.0
    context_window: int | None = None
    long_context: LongContext | None = None
    retention: tuple[str, ...] = ()
    name: str = ""
    page_date: str | None = None
    notes: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """The id `load_price_sheets` files this sheet under, e.g. "openai/gpt-5.5"."""
        return f"{self.provider}/{self.model}"

    def write_price(self, ttl: Ttl = "5m") -> float:
        """USD per million tokens for a cache write with this lifetime."""
        if ttl == "5m":
            return self.cache_write
        if ttl == "1h":
            if self.cache_write_1h is None:
                raise WorkbookError(
                    f"{self.key} has no 1-hour cache write price. Use ttl='5m', or a model whose sheet lists "
                    "cache_write_1h (the Anthropic models do)."
                )
            return self.cache_write_1h
        raise WorkbookError(f"ttl must be '5m' or '1h', not {ttl!r}.")

    def for_prompt(self, prompt_tokens: int) -> PriceSheet:
        """The sheet that bills one request of `prompt_tokens` input tokens (uncached, written and read):
        refused past the context window, the long-context tier's prices past its threshold, else this one."""
        if self.context_window is not None and prompt_tokens > self.context_window:
            raise WorkbookError(f"{self.name}'s context window holds {self.context_window:,} input tokens; this request "
                                f"has {prompt_tokens:,}, which the API refuses. Shorten the prompt.")
        tier = self.long_context
        if tier is None or prompt_tokens <= tier.above_tokens:
            return self
        return replace(self, long_context=None, **{name: getattr(tier, name) for name in PRICE_FIELDS
                                                   if getattr(tier, name) is not None})


@dataclass(frozen=True)
class Usage:
    """Token counts of one request (or a sum of requests), split the way providers bill them.

    `input_tokens` is uncached input only; cache writes and reads are counted apart, so the
    four fields never overlap and each one has its own price.
    """

    input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens"):
            value = getattr(self, name)
            if type(value) is int and value >= 0:
                continue  # a plain count, as every bill the simulator makes holds: nothing more to check
            check_whole(f"Usage.{name}", value, 0)
            # numpy integers count too, but are stored as plain ints so the Usage prints and serialises cleanly.
            object.__setattr__(self, name, int(value))

    @property
    def total_input_tokens(self) -> int:
        """Every prompt token, however it was billed: uncached + written + read."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.output_tokens + other.output_tokens,
        )

    def __radd__(self, other: object) -> Usage:
        # Lets sum(list_of_usages) start from its default 0.
        if other == 0:
            return self
        return NotImplemented


# ---------------------------------------------------------------------------------------------
# Loading the sheets


def load_price_sheets(path: str | Path | None = None) -> dict[str, PriceSheet]:
    """Read `data/pricing.json` (or `path`) into {"provider/model": PriceSheet}."""
    path = DEFAULT_PRICING_PATH if path is None else Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkbookError(f"No price sheet file at {path}. Pass the path of a pricing.json, or restore data/pricing.json.") from None
    except json.JSONDecodeError as exc:
        raise WorkbookError(f"{path} is not valid JSON ({exc}). Fix the file; `python -m json.tool` shows where.") from None

    providers = data.get("providers")
    if not isinstance(providers, dict) or not providers:
        raise WorkbookError(f"{path} has no 'providers' table. See data/pricing.json for the expected layout.")

    sheets: dict[str, PriceSheet] = {}
    for provider, listing in providers.items():
        rules = listing.get("rules", {})
        for model, entry in listing.get("models", {}).items():
            where = f"{path.name}: providers.{provider}.models.{model}"
            try:
                sheet = PriceSheet(
                    provider=provider,
                    model=model,
                    name=entry.get("name", model),
                    input=float(entry["input"]),
                    cache_read=float(entry["cache_read"]),
                    cache_write=float(entry["cache_write"]),
                    cache_write_1h=None if entry.get("cache_write_1h") is None else float(entry["cache_write_1h"]),
                    output=float(entry["output"]),
                    min_cacheable_tokens=_number_of_tokens(entry, rules, "min_cacheable_tokens"),
                    cache_step=_number_of_tokens(entry, rules, "cache_step", default=1),
                    storage_per_mtok_hour=float(entry.get("storage_per_mtok_hour", 0.0)),
                    context_window=entry.get("context_window"),
                    long_context=_long_context(entry.get("long_context")),
                    retention=tuple(entry.get("prompt_cache_retention", ())),
                    source=entry["source"],
                    checked=entry["checked"],
                    page_date=entry.get("page_date"),
                    notes=entry.get("notes", ""),
                )
            except KeyError as exc:
                raise WorkbookError(f"{where} is missing {exc.args[0]!r}. Every model needs input, cache_read, cache_write, output, source and checked.") from None
            except (TypeError, ValueError) as exc:
                raise WorkbookError(f"{where} has a value that is not a number: {exc}.") from None
            _check_sheet(sheet, where)
            sheets[sheet.key] = sheet
    return sheets


def _number_of_tokens(entry: dict, rules: dict, name: str, default: int | None = None) -> int:
    """A token count from the model entry, else from the provider's rules, else `default`."""
    value = entry.get(name, rules.get(name, default))
    if isinstance(value, bool) or not isinstance(value, int):
        # A provider rule written as prose ("per model") means each model must carry its own number.
        raise KeyError(name)
    return value


def _long_context(tier: dict | None) -> LongContext | None:
    """A model entry's "long_context" table as a `LongContext` (prices as numbers)."""
    if tier is None:
        return None
    prices = {name: float(tier[name]) for name in PRICE_FIELDS if tier.get(name) is not None}
    return LongContext(above_tokens=int(tier["above_tokens"]), source=tier.get("source", ""), **prices)


def _check_sheet(sheet: PriceSheet, where: str) -> None:
    tiers = [sheet] + ([sheet.long_context] if sheet.long_context else [])
    prices = [getattr(t, name) for t in tiers for name in PRICE_FIELDS] + [sheet.storage_per_mtok_hour]
    if any(p is not None and p < 0 for p in prices):
        raise WorkbookError(f"{where} has a negative price. Prices are USD per million tokens and start at 0.")
    check_whole(f"{where}: min_cacheable_tokens", sheet.min_cacheable_tokens, 0)
    check_whole(f"{where}: cache_step", sheet.cache_step, 1)
    window, tier = sheet.context_window, sheet.long_context
    if window is not None:
        check_whole(f"{where}: context_window", window, 1)
    if tier is not None and window is not None and tier.above_tokens >= window:
        raise WorkbookError(f"{where}: the long-context tier starts past the context window; no request reaches it.")
    if not set(sheet.retention) <= {"in_memory", "24h"}:
        raise WorkbookError(f"{where}: prompt_cache_retention lists \"in_memory\" and \"24h\", not {list(sheet.retention)}.")


def get_sheet(model_id: str, sheets: dict[str, PriceSheet] | None = None) -> PriceSheet:
    """Look up one sheet by "provider/model" (a bare model name works when it is unambiguous)."""
    sheets = load_price_sheets() if sheets is None else sheets
    if model_id in sheets:
        return sheets[model_id]
    matches = [s for s in sheets.values() if s.model == model_id]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(sheets))
    if len(matches) > 1:
        raise WorkbookError(f"{model_id!r} is listed by several providers; say which, e.g. {matches[0].key!r}. Known: {known}.")
    raise WorkbookError(f"No price sheet for {model_id!r}. Known ids: {known}. Add the model to data/pricing.json to price it.")


# ---------------------------------------------------------------------------------------------
# Cost of a request


def cost(usage: Usage, sheet: PriceSheet, *, ttl: Ttl = "5m") -> float:
    """USD for `usage` at `sheet`'s base prices; `ttl` picks the write price (Anthropic's 5m or 1h).

    `usage` may be a sum of many requests, so no long-context tier applies here: `request_cost` prices one request."""
    if not isinstance(usage, Usage):
        raise WorkbookError(f"cost() needs a Usage, got {type(usage).__name__}. Build one with Usage(input_tokens=..., ...).")
    dollars_times_million = (
        usage.input_tokens * sheet.input
        + usage.cache_write_tokens * sheet.write_price(ttl)
        + usage.cache_read_tokens * sheet.cache_read
        + usage.output_tokens * sheet.output
    )
    return dollars_times_million / PER_MILLION


def request_cost(usage: Usage, sheet: PriceSheet, *, ttl: Ttl = "5m") -> float:
    """USD for one request's `usage`, at the long-context tier when its input passes the tier's threshold."""
    return cost(usage, sheet.for_prompt(usage.total_input_tokens), ttl=ttl)


def cacheable_tokens(sheet: PriceSheet, reusable_prefix_tokens: int) -> int:
    """How many of a reusable prefix's tokens the provider would actually cache.

    Below the minimum nothing is cached (the request silently pays full price); above it,
    the count is rounded down to the provider's step (OpenAI: 1024, 1152, 1280, ...).
    """
    check_whole("reusable_prefix_tokens", reusable_prefix_tokens, 0)
    if reusable_prefix_tokens < max(sheet.min_cacheable_tokens, 1):
        return 0
    return (reusable_prefix_tokens // sheet.cache_step) * sheet.cache_step


def provider_usage(
    sheet: PriceSheet,
    prompt_tokens: int,
    reusable_prefix_tokens: int,
    output_tokens: int,
    *,
    cache_hit: bool = True,
) -> Usage:
    """The Usage a provider would bill for a request, from real token counts.

    `reusable_prefix_tokens` is the start of the prompt that an earlier request already sent
    (for Anthropic: the part up to your cache breakpoint). With `cache_hit=True` that prefix is
    in the cache and is read; with `cache_hit=False` this is the first request, which writes
    it (at the write premium, where the provider charges one). Provider rules applied: no
    caching below `min_cacheable_tokens`, hits counted in steps of `cache_step` tokens.
    """
    check_whole("prompt_tokens", prompt_tokens, 0)
    check_whole("reusable_prefix_tokens", reusable_prefix_tokens, 0)
    check_whole("output_tokens", output_tokens, 0)
    if reusable_prefix_tokens > prompt_tokens:
        raise WorkbookError(
            f"The reusable prefix ({reusable_prefix_tokens} tokens) cannot be longer than the prompt ({prompt_tokens} tokens). "
            "Pass the number of leading prompt tokens shared with an earlier request."
        )
    sheet.for_prompt(prompt_tokens)  # refuses a prompt past the context window
    cached = cacheable_tokens(sheet, reusable_prefix_tokens)
    if cache_hit:
        return Usage(input_tokens=prompt_tokens - cached, cache_read_tokens=cached, output_tokens=output_tokens)
    return Usage(input_tokens=prompt_tokens - cached, cache_write_tokens=cached, output_tokens=output_tokens)


# ---------------------------------------------------------------------------------------------
# Napkin math for lessons


@dataclass(frozen=True)
class RepeatCosts:
    """What `repeats` identical-prefix requests cost without a cache and with one."""

    repeats: int
    cold_usd: float  # every request pays full input price
    cached_usd: float  # the first request writes the prefix, every later one reads it

    @property
    def saved_usd(self) -> float:
        return self.cold_usd - self.cached_usd

    @property
    def saved_fraction(self) -> float:
        """Share of the cold bill that caching saves (negative when caching costs more)."""
        return self.saved_usd / self.cold_usd if self.cold_usd else 0.0


def repeat_costs(
    sheet: PriceSheet,
    prompt_tokens: int,
    cached_tokens: int,
    repeats: int,
    output_tokens: int = 0,
    *,
    ttl: Ttl = "5m",
) -> RepeatCosts:
    """Cost of sending a prompt `repeats` times, cold versus cached.

    `cached_tokens` is taken as given (napkin math, like the seed article's 12-token demo);
    use `provider_usage` when the provider's minimum and step should decide it.
    """
    check_whole("prompt_tokens", prompt_tokens, 0)
    check_whole("cached_tokens", cached_tokens, 0)
    check_whole("output_tokens", output_tokens, 0)
    check_whole("repeats", repeats, 1)
    if cached_tokens > prompt_tokens:
        raise WorkbookError(f"cached_tokens ({cached_tokens}) cannot exceed prompt_tokens ({prompt_tokens}).")
    uncached = prompt_tokens - cached_tokens
    cold = Usage(input_tokens=prompt_tokens, output_tokens=output_tokens)
    first = Usage(input_tokens=uncached, cache_write_tokens=cached_tokens, output_tokens=output_tokens)
    hit = Usage(input_tokens=uncached, cache_read_tokens=cached_tokens, output_tokens=output_tokens)
    cold_usd = repeats * request_cost(cold, sheet, ttl=ttl)
    cached_usd = request_cost(first, sheet, ttl=ttl) + (repeats - 1) * request_cost(hit, sheet, ttl=ttl)
    return RepeatCosts(repeats=repeats, cold_usd=cold_usd, cached_usd=cached_usd)


def break_even_reuses(sheet: PriceSheet, *, ttl: Ttl = "5m", storage_hours: float = 0.0) -> int | None:
    """Fewest cache reads after one write for caching to cost no more than not caching.

    Per cached token: write + k * read + storage <= (1 + k) * input, so
    k >= (write + storage - input) / (input - read). Anthropic's 5-minute write pays back after
    1 read, the 1-hour write after 2; a provider without a write premium pays back at once (0).
    `storage_hours` makes it a Gemini explicit cache: storage for that long, and one read more, since
    the cache is created by a call of its own and the request that created it then reads it
    (`workbook.providers` bills it so). None means it never pays back.
    """
    if storage_hours < 0:
        raise WorkbookError(f"storage_hours cannot be negative (got {storage_hours}).")
    # Exact decimal arithmetic, so a ratio that is exactly 4 does not round up to 5.
    base = Fraction(repr(sheet.input))
    read = Fraction(repr(sheet.cache_read))
    write = Fraction(repr(sheet.write_price(ttl)))
    storage = Fraction(repr(sheet.storage_per_mtok_hour)) * Fraction(repr(float(storage_hours)))
    if read >= base:
        return None
    creation_read = read if storage_hours else 0
    needed = (write + creation_read + storage - base) / (base - read)
    return max(0, math.ceil(needed))


@dataclass(frozen=True)
class TrafficCost:
    """A steady traffic level priced per request, per day and per year."""

    requests_per_day: float
    per_request_usd: float

    @property
    def per_day_usd(self) -> float:
        return self.per_request_usd * self.requests_per_day

    @property
    def per_year_usd(self) -> float:
        return self.per_day_usd * DAYS_PER_YEAR


def traffic_cost(usage: Usage, sheet: PriceSheet, requests_per_day: float, *, ttl: Ttl = "5m") -> TrafficCost:
    """Daily and yearly cost of `requests_per_day` requests that each bill like `usage` (365-day year)."""
    if requests_per_day < 0:
        raise WorkbookError(f"requests_per_day cannot be negative (got {requests_per_day}).")
    return TrafficCost(requests_per_day=requests_per_day, per_request_usd=request_cost(usage, sheet, ttl=ttl))


def storage_cost(sheet: PriceSheet, cached_tokens: int, hours: float) -> float:
    """USD to keep `cached_tokens` in an explicit cache for `hours` (Gemini bills this; 0 elsewhere)."""
    check_whole("cached_tokens", cached_tokens, 0)
    if hours < 0:
        raise WorkbookError(f"hours cannot be negative (got {hours}). Give the cache's lifetime (TTL) in hours.")
    return cached_tokens * sheet.storage_per_mtok_hour * hours / PER_MILLION


# ---------------------------------------------------------------------------------------------
# Over time: lifetimes (TTL) that expire between requests, and explicit-cache storage

TTL_MINUTES: dict[str, float] = {"5m": 5.0, "1h": 60.0}  # Anthropic's two lifetimes, renewed by every hit


def hits_with_ttl(arrival_minutes: Sequence[float], ttl_minutes: float) -> list[bool]:
    """For requests sharing one prefix, arriving at these times: which find it still cached.

    The first request writes the prefix; each later one hits if the previous request came at
    most `ttl_minutes` earlier (a hit renews the lifetime, a miss writes the prefix again).
    """
    if ttl_minutes <= 0:
        raise WorkbookError(f"ttl_minutes must be positive, not {ttl_minutes}.")
    times = list(arrival_minutes)
    if any(b < a for a, b in zip(times, times[1:])):
        raise WorkbookError("Arrival times must be in order, earliest first.")
    return [i > 0 and times[i] - times[i - 1] <= ttl_minutes for i in range(len(times))]


def hit_probability(mean_gap_minutes: float, ttl_minutes: float) -> float:
    """Share of requests that hit when requests arrive at random (a Poisson stream) this far apart on average.

    The gap to the previous request is exponential with this mean, so P(gap <= TTL) = 1 - exp(-TTL / mean).
    """
    if mean_gap_minutes <= 0 or ttl_minutes <= 0:
        raise WorkbookError("mean_gap_minutes and ttl_minutes must both be positive.")
    return 1.0 - math.exp(-ttl_minutes / mean_gap_minutes)


def expected_request_cost(sheet: PriceSheet, prompt_tokens: int, prefix_tokens: int, output_tokens: int,
                          hit_share: float, *, ttl: Ttl = "5m") -> float:
    """USD per request when a share `hit_share` of requests read the prefix and the rest write it again."""
    if not 0.0 <= hit_share <= 1.0:
        raise WorkbookError(f"hit_share is a fraction between 0 and 1, not {hit_share}.")
    hit = provider_usage(sheet, prompt_tokens, prefix_tokens, output_tokens, cache_hit=True)
    miss = provider_usage(sheet, prompt_tokens, prefix_tokens, output_tokens, cache_hit=False)
    return hit_share * request_cost(hit, sheet, ttl=ttl) + (1.0 - hit_share) * request_cost(miss, sheet, ttl=ttl)


def storage_break_even_rate(sheet: PriceSheet) -> float | None:
    """Requests per hour above which keeping an explicit cache alive is cheaper than re-sending its tokens.

    Per cached token and hour: storage <= rate * (input - cache_read). None when the provider bills
    no storage (there is nothing to pay back) or reads are not cheaper than input.
    """
    saving = sheet.input - sheet.cache_read
    if sheet.storage_per_mtok_hour == 0 or saving <= 0:
        return None
    return sheet.storage_per_mtok_hour / saving


def explicit_cache_hourly_cost(sheet: PriceSheet, cached_tokens: int, requests_per_hour: float) -> tuple[float, float]:
    """USD per hour for the cached part of the prompt: (kept in an explicit cache, re-sent as input every time)."""
    if requests_per_hour < 0:
        raise WorkbookError(f"requests_per_hour cannot be negative (got {requests_per_hour}).")
    per_token = cached_tokens / 1_000_000
    cached = per_token * (sheet.storage_per_mtok_hour + requests_per_hour * sheet.cache_read)
    return cached, per_token * requests_per_hour * sheet.input
