"""Lesson 7's "check yourself" exercises (cost and latency): each compares an answer with a reference computed by
the package and returns a `CheckResult`: right, wrong (with a hint), or not answered yet while the answer is still None.
"""

from __future__ import annotations

from ..lessons.calculator import Traffic, estimate_day
from ..pricing import PER_MILLION, TTL_MINUTES, PriceSheet, Usage, get_sheet, storage_break_even_rate, traffic_cost
from .verdict import CheckResult, check_amount, judge

GEMINI = "google/gemini-2.5-pro"
# Exercise 2: a 5,000-token prefix plus a 100-token question and a 300-token answer, every 10 minutes all day.
TTL_SHEET, PREFIX, QUESTION, ANSWER, EVERY_MINUTES = "anthropic/claude-sonnet-4-5", 5_000, 100, 300, 10
# Exercise 3: seed 001's napkin math, which names no model or price; the exercise prices it at Claude Sonnet 4.5.
SEED_PROMPT_TOKENS, SEED_REQUESTS_PER_DAY, SEED_SHEET = 2_000, 100_000, "anthropic/claude-sonnet-4-5"
SEED_CLAIMED_PER_DAY_USD, SEED_CLAIMED_PER_YEAR_USD = 6, 2_160


def check_storage_break_even(answer, sheet: PriceSheet | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: how many requests per hour make a Gemini 2.5 Pro explicit cache pay for its storage?"""
    sheet = get_sheet(GEMINI) if sheet is None else sheet
    truth = storage_break_even_rate(sheet)
    return check_amount(
        answer, truth, exercise="check_storage_break_even", how="Replace None with a number of requests per hour.",
        what="requests per hour", rel_tol=0.01, reveal=reveal,
        why=(f"{truth:g} per hour: each cached token costs ${sheet.storage_per_mtok_hour:g}/M per hour to keep and saves "
             f"${sheet.input:g} - ${sheet.cache_read:g} = ${sheet.input - sheet.cache_read:g}/M on every request that "
             "reads it."),
        hint="Compare what one hour of storage costs with what one read saves, per token.")


def day_cost_with_ttl(ttl: str, sheet: PriceSheet) -> float:
    """Exercise 2's reference: a day of requests every EVERY_MINUTES minutes, billed by the provider simulator."""
    traffic = Traffic(model_key=sheet.key, lifetime=ttl, static_tokens=PREFIX, dynamic_tokens=QUESTION,
                      output_tokens=ANSWER, requests_per_day=24 * 60 // EVERY_MINUTES, arrivals="fixed")
    return estimate_day(traffic, sheets={sheet.key: sheet}).cached_usd


def check_ttl_choice(answer, sheet: PriceSheet | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: requests every 10 minutes at Claude Sonnet 4.5. Which lifetime is cheaper, "5m" or "1h"?"""
    if answer is not None and answer not in TTL_MINUTES:
        return CheckResult(False, f'Answer "5m" or "1h", not {answer!r}.')
    sheet = get_sheet(TTL_SHEET) if sheet is None else sheet
    day = {ttl: day_cost_with_ttl(ttl, sheet) for ttl in TTL_MINUTES}
    best = min(day, key=day.get)
    why = (f"A day costs ${day['5m']:.2f} with the 5-minute cache and ${day['1h']:.2f} with the 1-hour one. Every "
           f"{EVERY_MINUTES} minutes is too slow for a 5-minute lifetime: each request finds the prefix expired and "
           f"writes it again at {sheet.cache_write / sheet.input:g}x the input price, while the 1-hour cache pays "
           f"{sheet.cache_write_1h / sheet.input:g}x once and then reads at {sheet.cache_read / sheet.input:g}x.")
    return judge("check_ttl_choice", None if answer is None else answer == best, how='Set the answer to "5m" or "1h".',
                 worked=why, said="Not the cheaper one. ",
                 hint="Ask whether the cached prefix is still alive when the next request comes, and what each "
                      "request pays if it is not: a write costs more than a read, and more still for the long "
                      "lifetime.",
                 reveal=reveal)


def seed_yearly_cost(sheet: PriceSheet) -> float:
    """Exercise 3's reference: re-sending seed 001's system prompt uncached for a year."""
    return traffic_cost(Usage(input_tokens=SEED_PROMPT_TOKENS), sheet, SEED_REQUESTS_PER_DAY).per_year_usd


def seed_implied_input_price() -> float:
    """USD per million input tokens at which seed 001's "$6/day" would be right."""
    return SEED_CLAIMED_PER_DAY_USD / (SEED_PROMPT_TOKENS * SEED_REQUESTS_PER_DAY / PER_MILLION)


def check_seed_yearly_cost(answer, sheet: PriceSheet | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: what does seed 001's 2,000-token prompt, 100,000 times a day, really cost per year at Sonnet 4.5?"""
    sheet = get_sheet(SEED_SHEET) if sheet is None else sheet
    truth = seed_yearly_cost(sheet)
    return check_amount(
        answer, truth, exercise="check_seed_yearly_cost", how="Replace None with US dollars per year.",
        what="US dollars", said="${:,.0f}", rel_tol=0.005, reveal=reveal,
        why=(f"${truth:,.0f}: {SEED_PROMPT_TOKENS:,} × {SEED_REQUESTS_PER_DAY:,} = "
             f"{SEED_PROMPT_TOKENS * SEED_REQUESTS_PER_DAY / PER_MILLION:,.0f}M tokens a day × ${sheet.input:g}/M = "
             f"${truth / 365:,.0f} a day, × 365. The seed's ${SEED_CLAIMED_PER_DAY_USD} a day would need input at "
             f"${seed_implied_input_price():g} per million tokens."),
        hint="Count the tokens per day first, then price them per million.")
