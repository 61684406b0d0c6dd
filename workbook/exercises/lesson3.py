"""Lesson 3's "check yourself" exercises (the KV cache): each compares an answer with a worked reference."""

from __future__ import annotations

from ..counting import kv_bytes_per_token, rows_computed
from .verdict import CheckResult, check_number


def check_kv_bytes_per_token(answer, *, num_layers: int, num_kv_heads: int, head_dim: int,
                             bytes_per_value: int, reveal: bool = False) -> CheckResult:
    """Bytes of KV cache per token for a model of the given shape."""
    expected = kv_bytes_per_token(num_layers, num_kv_heads, head_dim, bytes_per_value)
    why = (f"2 (K and V) × {num_layers} layers × {num_kv_heads} KV heads × {head_dim} numbers × "
           f"{bytes_per_value} bytes = {expected:,} bytes ({expected / 1024:g} KiB) per token.")
    return check_number(
        answer, expected, exercise="check_kv_bytes_per_token", how="Set the answer to a whole number of bytes.",
        why=why, hint="List what one token leaves behind: a key and a value vector, in every layer, for every KV "
                      "head (not every query head), each of head_dim numbers. Multiply the counts, then by the "
                      "bytes per number.",
        variant=(num_layers, num_kv_heads, head_dim, bytes_per_value), reveal=reveal)


def check_rows_computed(answer, *, prompt_tokens: int, new_tokens: int, cached: bool,
                        reveal: bool = False) -> CheckResult:
    """Token rows of K/V computed to generate `new_tokens` after `prompt_tokens`, with or without a cache."""
    expected = rows_computed(prompt_tokens, new_tokens, cached)
    if cached:
        hint = ("With a cache no row is ever computed twice. Which tokens does the generation need a row for at "
                "all?")
        why = (f"The first pass computes the {prompt_tokens:,} prompt rows; each of the other {new_tokens - 1:,} "
               f"passes computes one: {prompt_tokens:,} + {new_tokens - 1:,} = {expected:,}.")
    else:
        hint = ("Without a cache every pass computes the rows of everything it sees: the prompt plus the tokens "
                "generated so far. Add up the passes.")
        why = (f"Pass k recomputes all {prompt_tokens:,} + k rows, for k = 0..{new_tokens - 1:,}: "
               f"{new_tokens:,} × {prompt_tokens:,} + {new_tokens:,}·{new_tokens - 1:,}/2 = {expected:,}.")
    return check_number(answer, expected, exercise="check_rows_computed",
                        how="Set the answer to a whole number of rows.", why=why, hint=hint,
                        variant=(prompt_tokens, new_tokens, cached), reveal=reveal)
