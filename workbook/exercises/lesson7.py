"""Lesson 7's "check yourself" exercises (cost and latency): each compares an answer with a reference computed by
the package and returns a `CheckResult`: right, wrong (with a hint), or not answered yet while the answer is still None.
"""

from __future__ import annotations

from ..lessons.calculator import Traffic, estimate_day
from ..pricing import PER_MILLION, TTL_MINUTES, PriceSheet, Usage, get_sheet, storage_break_even_rate, traffic_cost
from .verdict import CheckResult, check_amount, judge

# Each exercise asks the reasoning of a section on numbers the lesson does not print: lesson 7 works out Gemini 2.5
# Pro's storage break-even, requests 10 and 30 minutes apart, and seed 001's prompt at Claude Sonnet 4.5.
# Exercise 1: the storage break-even of a Gemini 2.5 Flash explicit cache.
GEMINI = "google/gemini-2.5-flash"
# Exercise 2: a 5,000-token prefix plus a 100-token question and a 300-token answer, every 4 minutes all day.
TTL_SHEET, PREFIX, QUESTION, ANSWER, EVERY_MINUTES = "anthropic/claude-sonnet-4-5", 5_000, 100, 300, 4
# Exercise 3: seed 001's napkin math, which names no model or price; the exercise prices it at Claude Haiku 4.5.
SEED_PROMPT_TOKENS, SEED_REQUESTS_PER_DAY, SEED_SHEET = 2_000, 100_000, "anthropic/claude-haiku-4-5"
SEED_CLAIMED_PER_DAY_USD, SEED_CLAIMED_PER_YEAR_USD = 6, 2_160


def check_storage_break_even(answer, sheet: PriceSheet | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: at how many reads per hour does a Gemini 2.5 Flash explicit cache pay for its storage?"""
    sheet = get_sheet(GEMINI) if sheet is None else sheet
    truth = storage_break_even_rate(sheet)
    return check_amount(
        answer, truth, exercise="check_storage_break_even", how="Replace None with a number of reads per hour.",
        what="reads per hour", rel_tol=0.01, reveal=reveal,
        why=(f"{truth:.2f} per hour: each cached token costs ${sheet.storage_per_mtok_hour:g}/M per hour to keep and "
             f"saves ${sheet.input:g} - ${sheet.cache_read:g} = ${sheet.input - sheet.cache_read:g}/M on every request "
             f"that reads it, so {sheet.storage_per_mtok_hour:g} / {sheet.input - sheet.cache_read:g}. The rate need not "
             "be a whole number: with fewer reads an hour storage costs more than the reads save, with more it pays."),
        hint="Compare what one hour of storage costs with what one read saves, per token; the break-even rate need "
             "not be a whole number.")


def day_cost_with_ttl(ttl: str, sheet: PriceSheet) -> float:
    """Exercise 2's reference: a day of requests every EVERY_MINUTES minutes, billed by the provider simulator."""
    traffic = Traffic(model_key=sheet.key, lifetime=ttl, static_tokens=PREFIX, dynamic_tokens=QUESTION,
                      output_tokens=ANSWER, requests_per_day=24 * 60 // EVERY_MINUTES, arrivals="fixed")
    return estimate_day(traffic, sheets={sheet.key: sheet}).cached_usd


def check_ttl_choice(answer, sheet: PriceSheet | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: requests every 4 minutes at Claude Sonnet 4.5. Which lifetime is cheaper, "5m" or "1h"?"""
    if answer is not None and answer not in TTL_MINUTES:
        return CheckResult(False, f'Answer "5m" or "1h", not {answer!r}.')
    sheet = get_sheet(TTL_SHEET) if sheet is None else sheet
    day = {ttl: day_cost_with_ttl(ttl, sheet) for ttl in TTL_MINUTES}
    best = min(day, key=day.get)
    survives = {ttl: EVERY_MINUTES <= minutes for ttl, minutes in TTL_MINUTES.items()}
    if all(survives.values()):
        reason = (f"A request every {EVERY_MINUTES} minutes finds the prefix alive with either lifetime, and each read "
                  f"renews it, so both write once and then read at {sheet.cache_read / sheet.input:g}x the input price. "
                  f"The one write is all that differs: {sheet.cache_write / sheet.input:g}x for 5 minutes, "
                  f"{sheet.cache_write_1h / sheet.input:g}x for 1 hour. The longer lifetime pays only when some gap "
                  "outlasts the shorter one.")
    else:
        reason = (f"Every {EVERY_MINUTES} minutes is too slow for a 5-minute lifetime: each request finds the prefix "
                  f"expired and writes it again at {sheet.cache_write / sheet.input:g}x the input price, while the "
                  f"1-hour cache pays {sheet.cache_write_1h / sheet.input:g}x once and then reads at "
                  f"{sheet.cache_read / sheet.input:g}x.")
    why = (f"A day costs ${day['5m']:.2f} with the 5-minute cache and ${day['1h']:.2f} with the 1-hour one. {reason}")
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
    """Exercise 3: what does seed 001's 2,000-token prompt, 100,000 times a day, really cost per year at Haiku 4.5?"""
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
