"""Lesson 4's "check yourself" exercises (prefix caching): each compares an answer with a worked reference."""

from __future__ import annotations

from ..prefix_cache import loadable_tokens
from ..pricing import PriceSheet, Usage, cost, get_sheet
from .verdict import CheckResult, check_amount, check_number, judge

# Exercise 1: the same prompt sent twice.
SAME_PROMPT_TOKENS, PAGE_SIZE = 128, 16

# Exercise 2: a daily date stamp inside a long system prompt, priced at one provider.
BREAK_SHEET = "anthropic/claude-sonnet-4-5"
SYSTEM_TOKENS, QUESTION_TOKENS, OUTPUT_TOKENS = 5_000, 50, 200

# Exercise 3: the parts of a RAG assistant's prompt, and which of them change between requests. A user's follow-up
# questions reuse the documents retrieved for the first one (seed 000's case for prefix caching in RAG: "the same set
# of retrieved documents appears in multiple follow-up questions"), so the documents change less often than the message.
STATIC_PARTS = {"instructions", "tool definitions", "examples"}
DYNAMIC_PARTS = ["today's date", "retrieved documents", "user message"]  # least to most often changing


def check_loadable_tokens(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: a 128-token prompt is sent twice with 16-token pages; how many tokens does the second load?"""
    truth = loadable_tokens(SAME_PROMPT_TOKENS, SAME_PROMPT_TOKENS, PAGE_SIZE)
    return check_number(
        answer, truth, exercise="check_loadable_tokens", how="Replace None with a number of tokens.", unit="tokens",
        why=(f"{truth} tokens: the last prompt token is always computed, because its logits choose the first new "
             "token, and that drops the whole last page."),
        hint=("Identical prompts, yet not every token can be loaded. Re-read what request 2 still computed in "
              "section 2, and why."),
        reveal=reveal,
    )


def break_penalty_usd(sheet: PriceSheet) -> float:
    """Exercise 2's answer: how much more a request costs when its cached system prompt was broken than on a hit."""
    broken = Usage(input_tokens=QUESTION_TOKENS, cache_write_tokens=SYSTEM_TOKENS, output_tokens=OUTPUT_TOKENS)
    hit = Usage(input_tokens=QUESTION_TOKENS, cache_read_tokens=SYSTEM_TOKENS, output_tokens=OUTPUT_TOKENS)
    return cost(broken, sheet) - cost(hit, sheet)


def check_break_penalty(answer_usd, sheet: PriceSheet | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: dollars a broken prefix adds to one request, compared with a cache hit (to a millionth of a cent)."""
    sheet = get_sheet(BREAK_SHEET) if sheet is None else sheet
    truth = break_penalty_usd(sheet)
    return check_amount(
        answer_usd, truth, exercise="check_break_penalty", how="Replace None with a number of US dollars.",
        what="US dollars, e.g. 0.01", said="${:.6f}", abs_tol=1e-8,
        why=(f"${truth:.6f} per request: the system prompt is written at ${sheet.cache_write:g}/M instead of read at "
             f"${sheet.cache_read:g}/M. The question and the output cost the same either way."),
        hint=("Only the system prompt's tokens are billed differently: written (broken) versus read (hit). "
              "Prices are per million tokens."), reveal=reveal)


def check_prompt_order(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: order the prompt's parts so that as much as possible stays a reusable prefix."""
    parts = STATIC_PARTS | set(DYNAMIC_PARTS)
    if answer is not None and (not isinstance(answer, (list, tuple)) or sorted(answer) != sorted(parts)):
        return CheckResult(False, f"Give a list that holds each of these once: {', '.join(sorted(parts))}.")
    correct, hint = None, ""
    if answer is not None:
        answer = list(answer)
        static_first = all(answer.index(s) < answer.index(d) for s in STATIC_PARTS for d in DYNAMIC_PARTS)
        correct = static_first and [p for p in answer if p in DYNAMIC_PARTS] == DYNAMIC_PARTS
        hint = ("The parts that never change are right. Among the rest, ask how often each one changes." if static_first
                else "Something that changes between requests comes before something that never does: every token "
                     "after it is recomputed on every request.")
    return judge("check_prompt_order", correct, how="Replace None with a list of the parts, first to last.",
                 worked="Everything that never changes comes first; then the date (the same all day), the retrieved "
                        "documents (the same for a user's follow-up questions) and the user's message (new every "
                        "request), last.", hint=hint, reveal=reveal)
