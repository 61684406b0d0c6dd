""""Check yourself" exercises: each function compares a learner's answer with a worked reference.

Every check returns a `CheckResult` that says right, wrong, or not answered yet (the answer is
still `None`), with an explanation either way, so a notebook cell never fails on an exercise.
The counting functions at the top (`forward_flops`, `kv_bytes_per_token`, `rows_computed`) are
the references the checks use; the lessons and widgets use them too, so there is one formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Sequence

from .tokenizer import first_divergence

# ----- counting work and memory (the reference answers) -------------------------------------


@dataclass(frozen=True)
class FlopCount:
    """Floating-point operations of one forward pass, one multiply-add counted as 2."""

    weights: int  # every token times every weight matrix: 2 FLOPs per weight per token
    attention: int  # q·k scores plus weights·v: 4 · head_dim FLOPs per head, per (query, visible key) pair

    @property
    def total(self) -> int:
        return self.weights + self.attention


def weight_matmul_params(config) -> int:
    """Weights a token is multiplied by on its way through the model (a `ModelConfig`).

    The embedding is a table lookup, not a product, so it is left out; the output head
    (hidden -> vocabulary) is counted separately by `forward_flops`.
    """
    d, heads, kv_heads, hd = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    attention = d * heads * hd + 2 * d * kv_heads * hd + heads * hd * d  # q, k and v, o
    mlp = (3 if config.family == "llama" else 2) * d * config.intermediate_size  # SwiGLU has gate, up, down
    return config.num_layers * (attention + mlp)


def forward_flops(config, n_new: int, n_past: int = 0, *, all_logits: bool = False) -> FlopCount:
    """Matrix-product FLOPs of one forward pass over `n_new` tokens that follow `n_past` cached ones.

    Weights: 2 FLOPs per weight per new token. Attention: the query at position p sees p + 1
    keys (fewer with a sliding window); each visible key costs 2·head_dim for the score and
    2·head_dim for mixing its value, per head and layer. Elementwise work (norms, softmax,
    RoPE, activations) is small next to this and left out. The output head runs for the last
    position only, as in generation, unless `all_logits`.
    """
    if n_new < 0 or n_past < 0:
        raise ValueError(f"Token counts must be >= 0, got n_new={n_new}, n_past={n_past}.")
    window = config.sliding_window
    visible_keys = sum(p + 1 if window is None else min(p + 1, window) for p in range(n_past, n_past + n_new))
    head_positions = n_new if all_logits else min(n_new, 1)
    weights = 2 * n_new * weight_matmul_params(config) + 2 * head_positions * config.hidden_size * config.vocab_size
    attention = 4 * config.num_layers * config.num_heads * config.head_dim * visible_keys
    return FlopCount(weights=weights, attention=attention)


def kv_bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int, bytes_per_value: int) -> int:
    """Bytes of KV cache one token occupies: a K and a V vector per KV head, in every layer."""
    return 2 * num_layers * num_kv_heads * head_dim * bytes_per_value


def rows_computed(prompt_tokens: int, new_tokens: int, cached: bool) -> int:
    """Token rows of K/V computed to generate `new_tokens` after a prompt (each row spans every layer).

    Generating n tokens takes n forward passes; pass k (from 0) sees prompt_tokens + k tokens.
    Without a cache each pass recomputes all of them; with one, the first pass computes the
    prompt and each later pass only the one token it adds.
    """
    if new_tokens < 1:
        return 0
    if cached:
        return prompt_tokens + new_tokens - 1
    return new_tokens * prompt_tokens + new_tokens * (new_tokens - 1) // 2


# ----- the result every check returns ---------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer: correct is True, False, or None when nothing was answered yet."""

    correct: bool | None
    message: str

    def __bool__(self) -> bool:
        return bool(self.correct)

    def __repr__(self) -> str:
        mark = {True: "✅ Right.", False: "❌ Not quite.", None: "✏️ Not answered yet."}[self.correct]
        return f"{mark} {self.message}"

    __str__ = __repr__


def _not_answered(how: str) -> CheckResult:
    return CheckResult(None, f"{how} Then run this cell again.")


def _whole_number(answer) -> int | None:
    """The answer as an int if it is a whole number (3 or 3.0), else None."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, Integral):
        return int(answer)
    if isinstance(answer, Real) and float(answer).is_integer():
        return int(answer)
    return None


def _check_number(answer, expected: int, how: str, why: str) -> CheckResult:
    if answer is None:
        return _not_answered(how)
    value = _whole_number(answer)
    if value is None:
        return CheckResult(False, f"Give a whole number, not {answer!r}.")
    if value == expected:
        return CheckResult(True, why)
    return CheckResult(False, f"You said {value:,}. {why}")


# ----- lesson 1: tokens -------------------------------------------------------------------------


def check_reusable_tokens(tokenizer, cached_prompt: str, new_prompt: str, answer) -> CheckResult:
    """How many tokens at the start of `new_prompt` could be loaded from the cache of `cached_prompt`?

    An ideal token-level prefix cache reuses every token before the first difference.
    """
    ids_cached, ids_new = tokenizer.encode(cached_prompt), tokenizer.encode(new_prompt)
    split = first_divergence(ids_cached, ids_new)
    reusable = len(ids_new) if split is None else split
    if split is None:
        why = f"The two prompts are the same {len(ids_new)} tokens, so all of them can be reused."
    elif split == len(ids_new):
        why = f"The new prompt ({len(ids_new)} tokens) is a prefix of the cached one, so all of it can be reused."
    elif split == len(ids_cached):
        why = (f"The new prompt starts with the whole cached prompt ({split} tokens) and then goes on: those "
               f"{split} tokens can be reused and the {len(ids_new) - split} after them must be computed.")
    else:
        a, b = tokenizer.token_texts([ids_cached[split], ids_new[split]])
        why = (f"The first {split} tokens are identical; token {split} is {a!r} in the cached prompt but {b!r} in "
               f"the new one, so from there on ({len(ids_new) - split} tokens) everything must be computed.")
    return _check_number(answer, reusable, "Set the answer to a whole number of tokens.", why)


# Each option: what changes between two requests, whether it changes the prompt's token ids, and why.
CACHE_BREAKERS: dict[str, tuple[str, bool, str]] = {
    "a": ("raising the temperature from 0.2 to 0.9", False,
          "temperature only reshapes the final probabilities, after every K/V row is computed"),
    "b": ("adding a space after the first sentence of the system prompt", True,
          "a space is a byte like any other: the tokens from that point on change"),
    "c": ("serialising the tool schema in the system prompt with its JSON keys in another order", True,
          "equal data, different text, different tokens"),
    "d": ("lowering top_p from 1.0 to 0.9", False, "top_p, like temperature, acts only on the last step"),
    "e": ("appending a new user question at the end", False,
          "everything before the new question is unchanged, so the prefix still matches"),
    "f": ("writing 'café' in the system prompt with a combining accent (NFD) instead of one character (NFC)", True,
          "the two look the same but are different bytes, so they tokenize differently"),
}


def check_cache_breakers(answer) -> CheckResult:
    """Which changes in `CACHE_BREAKERS` stop a cached prompt prefix from matching? Answer a set of letters."""
    if answer is None:
        return _not_answered('Set the answer to a set of letters, e.g. {"a", "c"}.')
    if isinstance(answer, str):  # a string like "b, c" counts as the letters in it
        chosen = {ch for ch in answer.lower() if ch.isalnum()}
    else:
        chosen = {str(x).strip().lower() for x in answer}
    unknown = chosen - CACHE_BREAKERS.keys()
    if unknown:
        return CheckResult(False, f"{', '.join(sorted(unknown))} is not an option; "
                                  f"choose from {', '.join(CACHE_BREAKERS)}.")
    breakers = {k for k, (_, breaks, _) in CACHE_BREAKERS.items() if breaks}
    lines = [f"  {k}) {'breaks' if breaks else 'keeps'} the prefix: {why}."
             for k, (_, breaks, why) in CACHE_BREAKERS.items()]
    if chosen == breakers:
        return CheckResult(True, "Only changes to the prompt's text change its tokens:\n" + "\n".join(lines))
    missed, extra = sorted(breakers - chosen), sorted(chosen - breakers)
    hint = []
    if missed:
        hint.append(f"you left out {', '.join(missed)}")
    if extra:
        hint.append(f"{', '.join(extra)} do{'es' if len(extra) == 1 else ''} not change a single token id")
    return CheckResult(False, "; ".join(hint).capitalize() + ". Try encoding each version and comparing the ids.")


# ----- lesson 2: causal attention -------------------------------------------------------------


def check_visible_pairs(n_tokens: int, answer) -> CheckResult:
    """How many (query, key) pairs does the causal mask allow for `n_tokens` tokens?"""
    expected = n_tokens * (n_tokens + 1) // 2
    why = (f"Query i sees keys 0..i, that is i + 1 of them, so the total is 1 + 2 + ... + {n_tokens} = "
           f"{n_tokens}·{n_tokens + 1}/2 = {expected}: just over half of the {n_tokens * n_tokens} cells.")
    return _check_number(answer, expected, "Set the answer to the number of ✓ cells in the mask.", why)


def check_attention_weights(scores: Sequence[float], query_position: int, answer, atol: float = 1e-3) -> CheckResult:
    """Attention weights of one query, given its raw scores against every key (masked keys included).

    The reference masks the keys after `query_position`, then takes the softmax of the rest.
    """
    if answer is None:
        return _not_answered(f"Set the answer to a list of {len(scores)} weights.")
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
        return _not_answered("Set the answer to a set of row positions, e.g. {0, 3}.")
    try:
        chosen = {int(x) for x in answer}
    except (TypeError, ValueError):
        return CheckResult(False, f"Give a set of row positions (whole numbers), not {answer!r}.")
    new = n_tokens_before
    why = (f"Only the new token's row, {{{new}}}. Rows 0..{new - 1} cannot see position {new} (the mask hides it), "
           "so their weights and outputs are exactly what they were: that is what a KV cache keeps.")
    return CheckResult(chosen == {new}, why)


# ----- lesson 3: the KV cache -----------------------------------------------------------------


def check_kv_bytes_per_token(answer, *, num_layers: int, num_kv_heads: int, head_dim: int,
                             bytes_per_value: int) -> CheckResult:
    """Bytes of KV cache per token for a model of the given shape."""
    expected = kv_bytes_per_token(num_layers, num_kv_heads, head_dim, bytes_per_value)
    why = (f"2 (K and V) × {num_layers} layers × {num_kv_heads} KV heads × {head_dim} numbers × "
           f"{bytes_per_value} bytes = {expected:,} bytes ({expected / 1024:g} KiB) per token.")
    return _check_number(answer, expected, "Set the answer to a whole number of bytes.", why)


def check_rows_computed(answer, *, prompt_tokens: int, new_tokens: int, cached: bool) -> CheckResult:
    """Token rows of K/V computed to generate `new_tokens` after `prompt_tokens`, with or without a cache."""
    expected = rows_computed(prompt_tokens, new_tokens, cached)
    if cached:
        why = (f"The first pass computes the {prompt_tokens:,} prompt rows; each of the other {new_tokens - 1:,} "
               f"passes computes one: {prompt_tokens:,} + {new_tokens - 1:,} = {expected:,}.")
    else:
        why = (f"Pass k recomputes all {prompt_tokens:,} + k rows, for k = 0..{new_tokens - 1:,}: "
               f"{new_tokens:,} × {prompt_tokens:,} + {new_tokens:,}·{new_tokens - 1:,}/2 = {expected:,}.")
    return _check_number(answer, expected, "Set the answer to a whole number of rows.", why)
