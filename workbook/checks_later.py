""""Check yourself" exercises of lessons 5 (what breaks a hit) and 7 (cost and latency).

Each check compares an answer with a reference computed by the package and returns a
`CheckResult`: right, wrong (with a hint), or not answered yet while the answer is still None.
"""

from __future__ import annotations

from numbers import Integral, Real

from .checks import CheckResult
from .costs import TTL_MINUTES, hits_with_ttl, storage_break_even_rate
from .pricing import PriceSheet, Usage, cacheable_tokens, cost, get_sheet, provider_usage, traffic_cost

# ----- lesson 5 -------------------------------------------------------------------------------------

# Exercise 1: a change inside a long cached prompt, with pages of 64 tokens.
EDIT_AT, PAGE = 300, 64
# Exercise 2: a static part of 1,300 tokens; a changed document alters token 1,100 (0-based).
CHANGED_AT, OPENAI = 1_100, "openai/gpt-5.5"
# Exercise 3: a static part of exactly 1,024 tokens that ends with a space, sent as one string.
SEAM_STATIC_TOKENS = 1_024


def _not_answered(how: str) -> CheckResult:
    return CheckResult(None, f"Not answered yet: {how} Then run this cell again.")


def _whole(answer) -> int | None:
    """The answer as an int if it is a whole number (3 or 3.0), else None."""
    if isinstance(answer, bool) or not isinstance(answer, Real):
        return None
    return int(answer) if isinstance(answer, Integral) or float(answer).is_integer() else None


def _tokens_check(answer, truth: int, why: str, hint: str) -> CheckResult:
    if answer is None:
        return _not_answered("replace None with a number of tokens.")
    value = _whole(answer)
    if value is None:
        return CheckResult(False, f"Give a whole number of tokens, not {answer!r}.")
    return CheckResult(True, why) if value == truth else CheckResult(False, f"You said {value:,}. {hint}")


def loaded_after_change(changed_at: int, page_size: int) -> int:
    """Tokens a paged prefix cache can still load when token `changed_at` (0-based) is the first that differs."""
    return changed_at // page_size * page_size


def check_loaded_after_change(answer) -> CheckResult:
    """Exercise 1: a long cached prompt changes first at token 300; pages hold 64 tokens. How many tokens are loaded?"""
    truth = loaded_after_change(EDIT_AT, PAGE)
    return _tokens_check(
        answer, truth,
        f"{truth} tokens: {EDIT_AT // PAGE} whole pages. The page holding token {EDIT_AT} starts at {truth}, so "
        f"tokens {truth}..{EDIT_AT - 1}, unchanged, are computed again with it: {EDIT_AT - truth} rows lost to rounding.",
        "Tokens 0..299 are unchanged, but the cache only hands out whole pages. Which page holds token 300?",
    )


def check_openai_cached_tokens(answer, sheet: PriceSheet | None = None) -> CheckResult:
    """Exercise 2: a 1,300-token static part changes at token 1,100. How many tokens does GPT-5.5 bill as cached?"""
    sheet = get_sheet(OPENAI) if sheet is None else sheet
    truth = cacheable_tokens(sheet, CHANGED_AT)
    return _tokens_check(
        answer, truth,
        f"{truth:,}: the first {CHANGED_AT:,} tokens still match, which clears the {sheet.min_cacheable_tokens:,}-token "
        f"minimum, and hits are counted in steps of {sheet.cache_step}: {CHANGED_AT:,} // {sheet.cache_step} × "
        f"{sheet.cache_step} = {truth:,}.",
        f"Two rules: nothing under {sheet.min_cacheable_tokens:,} tokens is cached, and above it hits come in "
        f"steps of {sheet.cache_step} tokens.",
    )


def check_seam_cached_tokens(answer, sheet: PriceSheet | None = None) -> CheckResult:
    """Exercise 3: a 1,024-token static part ends with a space and each request is sent as one string. Cached tokens at GPT-5.5?"""
    sheet = get_sheet(OPENAI) if sheet is None else sheet
    truth = cacheable_tokens(sheet, SEAM_STATIC_TOKENS - 1)
    return _tokens_check(
        answer, truth,
        f"{truth}: the trailing space merges with the first word after it, so only {SEAM_STATIC_TOKENS - 1:,} "
        f"tokens match, one short of the {sheet.min_cacheable_tokens:,}-token minimum, and nothing is cached. "
        "End the static part before the space (or send it as its own segment) and all 1,024 are cached.",
        "Tokenize 'date: ' on its own and 'date: 15 Mar' as one string: is the space still its own token? "
        "Then apply the provider's minimum.",
    )


# ----- lesson 7 -------------------------------------------------------------------------------------

GEMINI = "google/gemini-2.5-pro"
# Exercise 2: a 5,000-token prefix plus a 100-token question and a 300-token answer, every 10 minutes all day.
TTL_SHEET, PREFIX, QUESTION, ANSWER, EVERY_MINUTES = "anthropic/claude-sonnet-4-5", 5_000, 100, 300, 10
# Exercise 3: seed 001's napkin math.
SEED_PROMPT_TOKENS, SEED_REQUESTS_PER_DAY, SEED_SHEET = 2_000, 100_000, "anthropic/claude-sonnet-4-5"


def check_storage_break_even(answer, sheet: PriceSheet | None = None) -> CheckResult:
    """Exercise 1: how many requests per hour make a Gemini 2.5 Pro explicit cache pay for its storage?"""
    if answer is None:
        return _not_answered("replace None with a number of requests per hour.")
    if isinstance(answer, bool) or not isinstance(answer, Real):
        return CheckResult(False, f"Give a number of requests per hour, not {answer!r}.")
    sheet = get_sheet(GEMINI) if sheet is None else sheet
    truth = storage_break_even_rate(sheet)
    why = (f"{truth:g} per hour: each cached token costs ${sheet.storage_per_mtok_hour:g}/M per hour to keep and saves "
           f"${sheet.input:g} - ${sheet.cache_read:g} = ${sheet.input - sheet.cache_read:g}/M on every request that reads it.")
    if abs(answer - truth) <= 0.01 * truth:
        return CheckResult(True, why)
    return CheckResult(False, f"You said {answer:g}. Compare what one hour of storage costs with what one read saves, per token.")


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
        return _not_answered('set the answer to "5m" or "1h".')
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
    if answer is None:
        return _not_answered("replace None with US dollars per year.")
    if isinstance(answer, bool) or not isinstance(answer, Real):
        return CheckResult(False, f"Give a number of US dollars, not {answer!r}.")
    sheet = get_sheet(SEED_SHEET) if sheet is None else sheet
    truth = seed_yearly_cost(sheet)
    why = (f"${truth:,.0f}: {SEED_PROMPT_TOKENS:,} × {SEED_REQUESTS_PER_DAY:,} = {SEED_PROMPT_TOKENS * SEED_REQUESTS_PER_DAY / 1e6:,.0f}M "
           f"tokens a day × ${sheet.input:g}/M = ${truth / 365:,.0f} a day, × 365. The seed's $6 a day is 100 times too small.")
    if abs(answer - truth) <= 0.005 * truth:
        return CheckResult(True, why)
    return CheckResult(False, f"You said ${answer:,.0f}. Count the tokens per day first, then price them per million.")
