"""Lesson 7's "check yourself" exercises (cost and latency): each compares an answer with a reference computed by
the package and returns a `CheckResult`: right, wrong (with a hint), or not answered yet while the answer is still None.
"""

from __future__ import annotations

from ..pricing import (TTL_MINUTES, PriceSheet, Usage, cost, get_sheet, hits_with_ttl, provider_usage,
                       storage_break_even_rate, traffic_cost)
from .verdict import CheckResult, check_amount, not_answered

GEMINI = "google/gemini-2.5-pro"
# Exercise 2: a 5,000-token prefix plus a 100-token question and a 300-token answer, every 10 minutes all day.
TTL_SHEET, PREFIX, QUESTION, ANSWER, EVERY_MINUTES = "anthropic/claude-sonnet-4-5", 5_000, 100, 300, 10
# Exercise 3: seed 001's napkin math.
SEED_PROMPT_TOKENS, SEED_REQUESTS_PER_DAY, SEED_SHEET = 2_000, 100_000, "anthropic/claude-sonnet-4-5"


def check_storage_break_even(answer, sheet: PriceSheet | None = None) -> CheckResult:
    """Exercise 1: how many requests per hour make a Gemini 2.5 Pro explicit cache pay for its storage?"""
    sheet = get_sheet(GEMINI) if sheet is None else sheet
    truth = storage_break_even_rate(sheet)
    return check_amount(
        answer, truth, how="Replace None with a number of requests per hour.", what="requests per hour", rel_tol=0.01,
        why=(f"{truth:g} per hour: each cached token costs ${sheet.storage_per_mtok_hour:g}/M per hour to keep and saves "
             f"${sheet.input:g} - ${sheet.cache_read:g} = ${sheet.input - sheet.cache_read:g}/M on every request that "
             "reads it."),
        hint="Compare what one hour of storage costs with what one read saves, per token.")


def day_cost_with_ttl(ttl: str, sheet: PriceSheet) -> float:
    """Exercise 2's reference: a day of requests every EVERY_MINUTES minutes, with the prefix cached for `ttl`."""
    arrivals = [i * EVERY_MINUTES for i in range(24 * 60 // EVERY_MINUTES)]
    total = 0.0
    for hit in hits_with_ttl(arrivals, TTL_MINUTES[ttl]):
        usage = provider_usage(sheet, PREFIX + QUESTION, PREFIX, ANSWER, cache_hit=hit)
        total += cost(usage, sheet, ttl=ttl)
    return total


def check_ttl_choice(answer, sheet: PriceSheet | None = None) -> CheckResult:
    """Exercise 2: requests every 10 minutes at Claude Sonnet 4.5. Which lifetime is cheaper, "5m" or "1h"?"""
    if answer is None:
        return not_answered('Set the answer to "5m" or "1h".')
    if answer not in TTL_MINUTES:
        return CheckResult(False, f'Answer "5m" or "1h", not {answer!r}.')
    sheet = get_sheet(TTL_SHEET) if sheet is None else sheet
    day = {ttl: day_cost_with_ttl(ttl, sheet) for ttl in TTL_MINUTES}
    best = min(day, key=day.get)
    why = (f"A day costs ${day['5m']:.2f} with the 5-minute cache and ${day['1h']:.2f} with the 1-hour one. Every "
           f"{EVERY_MINUTES} minutes is too slow for a 5-minute lifetime: each request finds the prefix expired and "
           "writes it again at 1.25x, while the 1-hour cache pays 2x once and then reads at 0.1x.")
    return CheckResult(answer == best, why if answer == best else "Not the cheaper one. " + why)


def seed_yearly_cost(sheet: PriceSheet) -> float:
    """Exercise 3's reference: re-sending seed 001's system prompt uncached for a year."""
    return traffic_cost(Usage(input_tokens=SEED_PROMPT_TOKENS), sheet, SEED_REQUESTS_PER_DAY).per_year_usd


def check_seed_yearly_cost(answer, sheet: PriceSheet | None = None) -> CheckResult:
    """Exercise 3: what does seed 001's 2,000-token prompt, 100,000 times a day at $3/M, really cost per year?"""
    sheet = get_sheet(SEED_SHEET) if sheet is None else sheet
    truth = seed_yearly_cost(sheet)
    return check_amount(
        answer, truth, how="Replace None with US dollars per year.", what="US dollars", said="${:,.0f}", rel_tol=0.005,
        why=(f"${truth:,.0f}: {SEED_PROMPT_TOKENS:,} × {SEED_REQUESTS_PER_DAY:,} = "
             f"{SEED_PROMPT_TOKENS * SEED_REQUESTS_PER_DAY / 1e6:,.0f}M tokens a day × ${sheet.input:g}/M = "
             f"${truth / 365:,.0f} a day, × 365. The seed's $6 a day is 100 times too small."),
        hint="Count the tokens per day first, then price them per million.")
