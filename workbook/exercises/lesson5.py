"""Lesson 5's "check yourself" exercises (what breaks a hit): each compares an answer with a reference computed by
the package and returns a `CheckResult`: right, wrong (with a hint), or not answered yet while the answer is still None.
"""

from __future__ import annotations

from ..prefix_cache import loadable_tokens
from ..pricing import PriceSheet, cacheable_tokens, get_sheet
from .verdict import CheckResult, check_number

# Exercise 1: a change at token 300 of a long (2,000-token) cached prompt, with pages of 64 tokens.
EDIT_AT, PAGE, LONG_PROMPT_TOKENS = 300, 64, 2_000
# Exercise 2: a static part of 2,000 tokens; a changed document alters token 1,500 (0-based). Section 5 of the lesson
# prints GPT-5.5's reads for a 1,300-token static part, so the exercise uses other numbers.
CHANGED_AT, OPENAI = 1_500, "openai/gpt-5.5"
# Exercise 3: a static part of exactly 1,024 tokens that ends with a space, sent as one string.
SEAM_STATIC_TOKENS = 1_024

HOW_MANY_TOKENS = "Replace None with a number of tokens."


def check_loaded_after_change(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: a long cached prompt changes first at token 300; pages hold 64 tokens. How many tokens are loaded?"""
    truth = loadable_tokens(EDIT_AT, LONG_PROMPT_TOKENS, PAGE)
    return check_number(
        answer, truth, exercise="check_loaded_after_change", how=HOW_MANY_TOKENS, unit="tokens", reveal=reveal,
        why=(f"{truth} tokens: {EDIT_AT // PAGE} whole pages. The page holding token {EDIT_AT} starts at {truth}, so "
             f"tokens {truth}..{EDIT_AT - 1}, unchanged, are computed again with it: {EDIT_AT - truth} rows lost to rounding."),
        hint="Not every unchanged token can be loaded: think about the unit in which the cache stores rows and hands "
             "them out.",
    )


def check_openai_cached_tokens(answer, sheet: PriceSheet | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: a 2,000-token static part changes at token 1,500. How many tokens does GPT-5.5 bill as cached?"""
    sheet = get_sheet(OPENAI) if sheet is None else sheet
    truth = cacheable_tokens(sheet, CHANGED_AT)
    return check_number(
        answer, truth, exercise="check_openai_cached_tokens", how=HOW_MANY_TOKENS, unit="tokens", reveal=reveal,
        why=(f"{truth:,}: the first {CHANGED_AT:,} tokens still match, which clears the {sheet.min_cacheable_tokens:,}-token "
             f"minimum, and hits are counted in steps of {sheet.cache_step}: {CHANGED_AT:,} // {sheet.cache_step} × "
             f"{sheet.cache_step} = {truth:,}."),
        hint=("Find how many tokens still match, then apply two rules: nothing under the minimum "
              "(`gpt.min_cacheable_tokens`) is cached, and above it hits are counted in whole steps "
              "(`gpt.cache_step`)."),
    )


def check_seam_cached_tokens(answer, sheet: PriceSheet | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: a 1,024-token static part ends with a space and each request is sent as one string; yesterday's
    request is cached and today's differs from it first in the date. How many tokens does GPT-5.5 bill as cached?"""
    sheet = get_sheet(OPENAI) if sheet is None else sheet
    truth = cacheable_tokens(sheet, SEAM_STATIC_TOKENS - 1)
    return check_number(
        answer, truth, exercise="check_seam_cached_tokens", how=HOW_MANY_TOKENS, unit="tokens", reveal=reveal,
        why=(f"{truth}: the trailing space merges with the date after it, so only {SEAM_STATIC_TOKENS - 1:,} "
             f"tokens match, one short of the {sheet.min_cacheable_tokens:,}-token minimum, and nothing is cached. "
             f"End the static part before the space (or send it as its own segment) and all {SEAM_STATIC_TOKENS:,} "
             "are cached."),
        hint=("Think of section 3's tokenization seam: with the whole prompt sent as one string, where does today's "
              "request first differ from yesterday's?"),
    )
