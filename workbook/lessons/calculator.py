"""Lesson 7's cost calculator: a day of traffic replayed against one provider's caching rules, then priced.

A `Traffic` is a prompt layout (a static part every request shares, a dynamic part that is new each
time, an answer), a number of requests a day, how they arrive, and the cache lifetime asked for.
`estimate_day` builds the requests from synthetic token ids (no tokenizer needed), replays them with
`workbook.providers.simulate`, prices the day with and without the cache, and names the cliffs a bill
falls off: a static part under the model's minimum, OpenAI's 128-token steps, a lifetime that expires
between requests. A busy day is too long to replay at every slider move, so only its first requests
are replayed and the rest of the day is priced at their average.

No widgets here: the view is `workbook.widgets.cost_calculator`.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Literal, Sequence

from ..checks import check_whole
from ..errors import WorkbookError
from ..pricing import PriceSheet, Usage, break_even_reuses, cacheable_tokens, cost, get_sheet
from ..providers import (ASSUMED_FIRST_TOKEN_S, GEMINI_IMPLICIT_IDLE_S, RETENTION_S, TTL_SECONDS, Bill, Block,
                         Request, duration, retentions, simulate)

SECONDS_PER_DAY = 24 * 60 * 60
Arrivals = Literal["fixed", "poisson", "bursty"]
ARRIVALS: dict[str, str] = {"fixed": "fixed gap", "poisson": "random (Poisson)", "bursty": "bursts"}
# The lifetimes each provider offers, with what they mean; the keys are what `Traffic.lifetime` takes.
# OpenAI's models each take some of theirs (`PriceSheet.retention`, the default first): see `lifetimes`.
LIFETIMES: dict[str, dict[str, str]] = {
    "anthropic": {"5m": "5 minutes, renewed by each read", "1h": "1 hour, renewed by each read"},
    "openai": {"in_memory": f"in memory: {duration(RETENTION_S['in_memory'])} idle (assumed; OpenAI says 5 to 10 minutes)",
               "24h": "24 hours idle (prompt_cache_retention)"},
    "google": {"implicit": f"implicit: no storage, hits not guaranteed, {duration(GEMINI_IMPLICIT_IDLE_S)} idle (assumed)",
               "1h": "explicit cache, 1-hour TTL", "5m": "explicit cache, 5-minute TTL"},
}
# How long each lifetime survives without a request.
IDLE_S: dict[str, float] = {**TTL_SECONDS, **RETENTION_S, "implicit": GEMINI_IMPLICIT_IDLE_S}
# Why a request can miss although it came soon after the previous one (OpenAI's reads always renew an entry).
SOON_MISSES = {"google": "an explicit cache's TTL runs out even while requests read it",
               "anthropic": f"they came before the response that wrote the prefix began (assumed "
                            f"{ASSUMED_FIRST_TOKEN_S:g} s after it was sent): an entry is readable only from then"}
BURST_SPACING_S = 30.0  # requests inside a burst, e.g. the turns of one chat session
MAX_REQUESTS = 2_000  # at most this many requests replayed after the day's first
MIN_REQUESTS = 20  # ...and at least this many, however long the prompt
TOKEN_BUDGET = 1_200_000  # prompt tokens replayed per estimate: the replay costs about linear time in them
DYNAMIC_IDS_FROM = 1_000_000  # synthetic ids of the dynamic parts start here, so they never repeat the static part's


class CalculatorError(WorkbookError):
    """A traffic description the calculator cannot price: a negative count, a lifetime the provider lacks."""


@dataclass(frozen=True)
class Traffic:
    """A day of requests that share one static prefix: layout, model and lifetime, and how requests arrive."""

    model_key: str = "anthropic/claude-sonnet-4-5"
    lifetime: str = "5m"
    static_tokens: int = 5_000
    dynamic_tokens: int = 100
    output_tokens: int = 300
    requests_per_day: int = 144
    arrivals: Arrivals = "fixed"
    burst_size: int = 4
    seed: int = 0

    @property
    def mean_gap_s(self) -> float:
        """Seconds between requests, on average over the day."""
        return SECONDS_PER_DAY / self.requests_per_day

    @property
    def burst_period_s(self) -> float:
        """Seconds from the start of one burst to the start of the next."""
        return self.mean_gap_s * self.burst_size

    @property
    def burst_spacing_s(self) -> float:
        """Seconds between the requests of a burst: BURST_SPACING_S, or less where a burst would run into the next."""
        return min(BURST_SPACING_S, self.mean_gap_s)


@dataclass(frozen=True)
class Cliff:
    """One rule that made (part of) the static prefix bill at the full price: "minimum", "step" or "expiry"."""

    kind: Literal["minimum", "step", "expiry"]
    message: str


@dataclass(frozen=True)
class DayEstimate:
    """A day of `traffic` priced with and without the cache, from the replayed requests' bills."""

    traffic: Traffic
    sheet: PriceSheet
    arrivals_s: list[float]  # of the replayed requests, the day's first one first
    bills: list[Bill]
    cached_usd: float  # storage included
    uncached_usd: float  # every input token at the plain input price
    storage_usd: float
    hits: float  # requests a day that read the prefix from the cache
    cached_token_share: float  # share of the day's input tokens billed as cache reads
    break_even: int | None  # `pricing.break_even_reuses` for this lifetime
    cliffs: list[Cliff]

    @property
    def saved_usd(self) -> float:
        return self.uncached_usd - self.cached_usd

    @property
    def saved_fraction(self) -> float:
        return self.saved_usd / self.uncached_usd

    @property
    def hit_rate(self) -> float:
        return self.hits / self.traffic.requests_per_day

    @property
    def reads_per_write(self) -> float | None:
        """Hits per request that had to (re)write the prefix; None when nothing can be cached."""
        misses = self.traffic.requests_per_day - self.hits
        if self.traffic.static_tokens < self.sheet.min_cacheable_tokens:
            return None
        return self.hits / misses

    @property
    def whole_day(self) -> bool:
        return len(self.bills) == self.traffic.requests_per_day

    def replay_note(self) -> str:
        """How the day was priced: the whole day replayed, or its first requests and an average for the rest."""
        t, n = self.traffic, len(self.bills)
        start = "The replay starts with an empty cache"
        if self.whole_day:
            return f"{start} and covers all {n:,} requests of the day."
        window = self.arrivals_s[-1] - self.arrivals_s[0]
        note = (f"{start} and covers the day's first {n:,} requests ({duration(window)}); the other "
                f"{t.requests_per_day - n:,} are priced at the average of the {n - 1:,} replayed after the first.")
        period = renewal_period_s(self.sheet, t.lifetime)
        if period is not None and window < period:
            later = math.ceil(SECONDS_PER_DAY / period) - 1
            extra = later * (self.bills[0].cost_usd - statistics.fmean(b.cost_usd for b in self.bills[1:]))
            note += (f" The prefix must be written again every {duration(period)}, and this window is shorter: the "
                     f"day's {later} later rewrites are not in it, and would add up to about ${extra:,.2f} "
                     f"({extra / self.cached_usd:.2%} of it).")
        return note


def estimate_day(traffic: Traffic, *, sheets: dict[str, PriceSheet] | None = None, max_requests: int = MAX_REQUESTS,
                 token_budget: int = TOKEN_BUDGET) -> DayEstimate:
    """Replay the start of a day of `traffic` with `providers.simulate` and price the whole day, cached and not."""
    sheet = get_sheet(traffic.model_key, sheets)
    check_traffic(traffic, sheet)
    times, bills = replay(traffic, replay_count(traffic, max_requests, token_budget), sheets=sheets)
    rpd = traffic.requests_per_day
    prompt = traffic.static_tokens + traffic.dynamic_tokens
    plain = cost(Usage(input_tokens=prompt, output_tokens=traffic.output_tokens), sheet)
    return DayEstimate(
        traffic=traffic, sheet=sheet, arrivals_s=times, bills=bills,
        cached_usd=per_day([b.cost_usd for b in bills], rpd), uncached_usd=rpd * plain,
        storage_usd=per_day([b.storage_usd for b in bills], rpd),
        hits=per_day([float(is_hit(b)) for b in bills], rpd),
        cached_token_share=per_day([b.usage.cache_read_tokens for b in bills], rpd) / (rpd * prompt),
        break_even=lifetime_break_even(sheet, traffic.lifetime),
        cliffs=find_cliffs(traffic, sheet, times, bills))


def check_traffic(traffic: Traffic, sheet: PriceSheet) -> None:
    """Raise a `CalculatorError` that says what to change, before anything is replayed."""
    for name in ("static_tokens", "dynamic_tokens", "output_tokens", "requests_per_day", "burst_size"):
        value = getattr(traffic, name)
        least = 1 if name in ("requests_per_day", "burst_size") else 0
        check_whole(name, value, least, CalculatorError)
    if traffic.static_tokens + traffic.dynamic_tokens == 0:
        raise CalculatorError("The prompt is empty: give the static or the dynamic part some tokens.")
    if traffic.arrivals not in ARRIVALS:
        raise CalculatorError(f"arrivals is one of {list(ARRIVALS)}, not {traffic.arrivals!r}.")
    offered = lifetimes(sheet)
    if traffic.lifetime not in offered:
        raise CalculatorError(f"{sheet.name} ({sheet.provider}) offers the lifetimes {list(offered)}, "
                              f"not {traffic.lifetime!r}.")


def lifetimes(sheet: PriceSheet) -> dict[str, str]:
    """The lifetimes `sheet`'s model offers, its default first, each with what it means."""
    offered = LIFETIMES[sheet.provider]
    if sheet.provider == "openai":
        return {key: offered[key] for key in retentions(sheet)}
    return offered


def replay(traffic: Traffic, count: int, *,
           sheets: dict[str, PriceSheet] | None = None) -> tuple[list[float], list[Bill]]:
    """Arrival times and bills of the first `count` requests of `traffic` (more than a day's run into the next days)."""
    sheet = get_sheet(traffic.model_key, sheets)
    check_traffic(traffic, sheet)
    times = arrival_times(traffic, count)
    return times, simulate(sheet.key, build_requests(traffic, sheet, times), sheets=sheets)


def replay_count(traffic: Traffic, max_requests: int = MAX_REQUESTS, token_budget: int = TOKEN_BUDGET) -> int:
    """How many of the day's requests to replay: the first, then as many as the budgets allow (whole bursts)."""
    prompt = traffic.static_tokens + traffic.dynamic_tokens
    after_first = min(max_requests, max(MIN_REQUESTS, token_budget // max(prompt, 1)))
    if traffic.arrivals == "bursty":  # whole bursts, so burst starts are neither over- nor under-counted
        after_first = max(traffic.burst_size, after_first - after_first % traffic.burst_size)
    return min(traffic.requests_per_day, 1 + after_first)


def arrival_times(traffic: Traffic, count: int) -> list[float]:
    """Seconds from the day's start of its first `count` requests; the random ones come from `traffic.seed`."""
    gap = traffic.mean_gap_s
    if traffic.arrivals == "fixed":
        return [i * gap for i in range(count)]
    if traffic.arrivals == "poisson":
        rng, times, now = random.Random(traffic.seed), [], 0.0
        for _ in range(count):
            times.append(now)
            now += rng.expovariate(1 / gap)
        return times
    size = traffic.burst_size
    return [(i // size) * traffic.burst_period_s + (i % size) * traffic.burst_spacing_s for i in range(count)]


def arrivals_text(traffic: Traffic) -> str:
    """The arrival pattern in words."""
    gap = duration(traffic.mean_gap_s)
    if traffic.arrivals == "fixed":
        return f"one request every {gap}"
    if traffic.arrivals == "poisson":
        return f"at random, {gap} apart on average"
    return (f"bursts of {traffic.burst_size} requests {duration(traffic.burst_spacing_s)} apart, one burst every "
            f"{duration(traffic.burst_period_s)}")


def build_requests(traffic: Traffic, sheet: PriceSheet, times: Sequence[float]) -> list[Request]:
    """One request per arrival: the shared static block (marked where the provider needs it), then fresh ids."""
    static, d = list(range(traffic.static_tokens)), traffic.dynamic_tokens
    explicit = sheet.provider == "anthropic" or (sheet.provider == "google" and traffic.lifetime != "implicit")
    mark = traffic.lifetime if explicit else None
    # OpenAI: always say which retention, since a model's default may be the other one (GPT-5.4 defaults to "24h").
    options = {"prompt_cache_retention": traffic.lifetime} if sheet.provider == "openai" else None
    first = DYNAMIC_IDS_FROM
    return [Request([Block(static, mark), Block(list(range(first + i * d, first + (i + 1) * d)))], at_s=at,
                    output_tokens=traffic.output_tokens, options=options)
            for i, at in enumerate(times)]


def is_hit(bill: Bill) -> bool:
    """The request found the static prefix cached: it read it and wrote nothing (a Gemini explicit cache's
    creating request writes the prefix, then reads it)."""
    return bill.usage.cache_read_tokens > 0 and bill.usage.cache_write_tokens == 0


def per_day(values: Sequence[float], requests_per_day: int) -> float:
    """A day's total of a per-request amount: the sum when the whole day was replayed, else the first
    request's plus the average of the rest for every later request of the day."""
    if len(values) == requests_per_day:
        return float(sum(values))
    return values[0] + (requests_per_day - 1) * statistics.fmean(values[1:])


def lifetime_break_even(sheet: PriceSheet, lifetime: str) -> int | None:
    """`break_even_reuses` for a lifetime: Anthropic's write price, a Google explicit cache's storage."""
    if sheet.provider == "anthropic":
        return break_even_reuses(sheet, ttl=lifetime)
    if sheet.provider == "google" and lifetime in TTL_SECONDS:
        return break_even_reuses(sheet, storage_hours=TTL_SECONDS[lifetime] / 3600)
    return break_even_reuses(sheet)


def renewal_period_s(sheet: PriceSheet, lifetime: str) -> float | None:
    """How often a busy stream still has to write the prefix again (an age limit), or None if never."""
    if sheet.provider == "google" and lifetime in TTL_SECONDS:
        return TTL_SECONDS[lifetime]
    return None


def find_cliffs(traffic: Traffic, sheet: PriceSheet, times: list[float], bills: list[Bill]) -> list[Cliff]:
    """The rules that made static tokens bill at the full price, each with its numbers."""
    static, least, step = traffic.static_tokens, sheet.min_cacheable_tokens, sheet.cache_step
    if static < least:
        return [Cliff("minimum", f"The static part has {static:,} tokens, under {sheet.name}'s minimum of {least:,}: "
                                 f"nothing is cached and every request pays the full input price. {least - static:,} "
                                 "more static tokens would cross the line.")]
    found = []
    if static % step:
        found.append(Cliff("step", f"{sheet.name} counts cached tokens in steps of {step}: "
                                   f"{cacheable_tokens(sheet, static):,} of the {static:,} static tokens can be read "
                                   "from the cache, and the last "
                                   f"{static % step} pay the full price on every request."))
    expiry = expiry_cliff(traffic, sheet, times, bills)
    return found + ([expiry] if expiry else [])


def expiry_cliff(traffic: Traffic, sheet: PriceSheet, times: list[float], bills: list[Bill]) -> Cliff | None:
    """Requests after the first that found no cached prefix, and why: a long gap, or a rule in `SOON_MISSES`."""
    idle = IDLE_S[traffic.lifetime]
    missed = [i > 0 and not is_hit(bill) for i, bill in enumerate(bills)]
    if not any(missed):
        return None
    rpd = traffic.requests_per_day
    long_gap = [float(miss and times[i] - times[i - 1] > idle) for i, miss in enumerate(missed)]
    soon = [float(miss) - gap for miss, gap in zip(missed, long_gap)]
    gaps, soon_misses = per_day(long_gap, rpd), per_day(soon, rpd)
    why = []
    if gaps:
        between = f" (bursts start {duration(traffic.burst_period_s)} apart)" if traffic.arrivals == "bursty" else ""
        why.append(f"{gaps:,.0f} came more than {duration(idle)} after the previous request{between}")
    if soon_misses:
        why.append(f"{soon_misses:,.0f} because {SOON_MISSES[sheet.provider]}")
    return Cliff("expiry", f"{gaps + soon_misses:,.0f} of the day's {rpd:,} requests find no cached prefix and pay "
                           f"for it in full again: {'; '.join(why)}.")
