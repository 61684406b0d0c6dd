"""Lesson 2's "check yourself" exercises (causal attention): each compares an answer with a worked reference."""

from __future__ import annotations

import math
from typing import Sequence

from .verdict import CheckResult, check_number, not_answered


def check_visible_pairs(n_tokens: int, answer) -> CheckResult:
    """How many (query, key) pairs does the causal mask allow for `n_tokens` tokens?"""
    expected = n_tokens * (n_tokens + 1) // 2
    why = (f"Query i sees keys 0..i, that is i + 1 of them, so the total is 1 + 2 + ... + {n_tokens} = "
           f"{n_tokens}·{n_tokens + 1}/2 = {expected}: just over half of the {n_tokens * n_tokens} cells.")
    return check_number(answer, expected, how="Set the answer to the number of ✓ cells in the mask.", why=why)


def check_attention_weights(scores: Sequence[float], query_position: int, answer, atol: float = 1e-3) -> CheckResult:
    """Attention weights of one query, given its raw scores against every key (masked keys included).

    The reference masks the keys after `query_position`, then takes the softmax of the rest.
    """
    if answer is None:
        return not_answered(f"Set the answer to a list of {len(scores)} weights.")
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
    if all(abs(g - e) <= atol for g, e in zip(given, expected)):
        return CheckResult(True, why)
    if any(g != 0 for g in given[query_position + 1:]):
        return CheckResult(False, "A query cannot attend to later keys: their weights must be 0. " + why)
    return CheckResult(False, why)


def check_rows_to_recompute(n_tokens_before: int, answer) -> CheckResult:
    """Appending one token to `n_tokens_before`: which rows (positions) of attention must be computed?"""
    if answer is None:
        return not_answered("Set the answer to a set of row positions, e.g. {0, 3}.")
    try:
        chosen = {int(x) for x in answer}
    except (TypeError, ValueError):
        return CheckResult(False, f"Give a set of row positions (whole numbers), not {answer!r}.")
    new = n_tokens_before
    why = (f"Only the new token's row, {{{new}}}. Rows 0..{new - 1} cannot see position {new} (the mask hides it), "
           "so their weights and outputs are exactly what they were: that is what a KV cache keeps.")
    return CheckResult(chosen == {new}, why)
