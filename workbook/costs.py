"""Lesson 7's cache economics over time: lifetimes (TTL) that expire between requests, and explicit-cache storage.

`workbook.pricing` prices one request or a run of identical ones. Here time enters: a cache
entry lives for a TTL that each hit renews, so whether a request hits depends on how long ago
the previous one came; an explicit (Gemini-style) cache costs storage every hour it is kept.
Standard library only, like `pricing`.
"""

from __future__ import annotations

import math
from typing import Sequence

from .errors import WorkbookError
from .pricing import PriceSheet, Ttl, cost, provider_usage

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
    return hit_share * cost(hit, sheet, ttl=ttl) + (1.0 - hit_share) * cost(miss, sheet, ttl=ttl)


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
