"""Lesson 2's "check yourself" exercises (causal attention): each compares an answer with a worked reference."""

from __future__ import annotations

import math
from typing import Sequence

from .verdict import CheckResult, check_number, judge


def check_visible_pairs(n_tokens: int, answer, *, reveal: bool = False) -> CheckResult:
    """How many (query, key) pairs does the causal mask allow for `n_tokens` tokens?"""
    expected = n_tokens * (n_tokens + 1) // 2
    why = (f"Query i sees keys 0..i, that is i + 1 of them, so the total is 1 + 2 + ... + {n_tokens} = "
           f"{n_tokens}·{n_tokens + 1}/2 = {expected}: just over half of the {n_tokens * n_tokens} cells.")
    return check_number(answer, expected, exercise="check_visible_pairs",
                        how="Set the answer to the number of ✓ cells in the mask.", why=why,
                        hint="The mask lets a query see itself and the keys before it, never a later one. Picture "
                             "where the ✓ cells sit in the square.", variant=n_tokens, reveal=reveal)


def check_attention_weights(scores: Sequence[float], query_position: int, answer, atol: float = 1e-3, *,
                            reveal: bool = False) -> CheckResult:
    """Attention weights of one query, given its raw scores against every key (masked keys included).

    The reference masks the keys after `query_position`, then takes the softmax of the rest.
    """
    given = None
    if answer is not None:
        try:
            given = [float(x) for x in answer]
        except (TypeError, ValueError):
            return CheckResult(False, f"Give a list of {len(scores)} numbers, not {answer!r}.")
        if len(given) != len(scores):
            return CheckResult(False, f"There is one weight per key: {len(scores)} numbers, not {len(given)}.")
    visible = scores[: query_position + 1]
    top = max(visible)  # subtracting the largest score keeps exp() from overflowing; the result is the same
    exps = [math.exp(s - top) for s in visible]
    expected = [e / sum(exps) for e in exps] + [0.0] * (len(scores) - len(visible))
    shown = "[" + ", ".join(f"{w:.3f}" for w in expected) + "]"
    why = (f"Keys after position {query_position} are masked, so their weight is exactly 0; the visible scores "
           f"become exp(score) / sum of exp(visible scores): {shown}, which adds up to 1.")
    if given is not None and any(g != 0 for g in given[query_position + 1:]):
        hint = "A query cannot attend to later keys: their weights must be 0."
    else:
        hint = "Mask first, then softmax: only the visible scores share the weight, so those weights add up to 1."
    correct = None if given is None else all(abs(g - e) <= atol for g, e in zip(given, expected))
    return judge("check_attention_weights", correct, how=f"Set the answer to a list of {len(scores)} weights.",
                 worked=why, hint=hint, reveal=reveal, variant=(tuple(scores), query_position))


def check_rows_to_recompute(n_tokens_before: int, answer, *, reveal: bool = False) -> CheckResult:
    """Appending one token to `n_tokens_before`: which rows (positions) of attention must be computed?"""
    chosen = None
    if answer is not None:
        try:
            chosen = {int(x) for x in answer}
        except (TypeError, ValueError):
            return CheckResult(False, f"Give a set of row positions (whole numbers), not {answer!r}.")
    new = n_tokens_before
    why = (f"Only the new token's row, {{{new}}}. Rows 0..{new - 1} cannot see position {new} (the mask hides it), "
           "so their weights and outputs are exactly what they were: that is what a KV cache keeps.")
    return judge("check_rows_to_recompute", None if chosen is None else chosen == {new},
                 how="Set the answer to a set of row positions, e.g. {0, 3}.", worked=why,
                 hint="A row changes only if something it can see changes. Which rows can see the new position?",
                 reveal=reveal, variant=n_tokens_before)
