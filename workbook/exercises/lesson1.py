"""Lesson 1's "check yourself" exercises (tokens): each compares an answer with a worked reference."""

from __future__ import annotations

from ..tokenizer import first_divergence, shared_prefix_length
from .verdict import CheckResult, check_letters, check_number


def check_reusable_tokens(tokenizer, cached_prompt: str, new_prompt: str, answer, *,
                          reveal: bool = False) -> CheckResult:
    """How many tokens at the start of `new_prompt` could be loaded from the cache of `cached_prompt`?

    An ideal token-level prefix cache reuses every token before the first difference. (A real one reuses whole
    pages only and always computes the last prompt token: lesson 4.)
    """
    ids_cached, ids_new = tokenizer.encode(cached_prompt), tokenizer.encode(new_prompt)
    split = first_divergence(ids_cached, ids_new)
    reusable = shared_prefix_length(ids_cached, ids_new)
    if split is None:
        why = (f"The two prompts are the same {len(ids_new)} tokens, so an ideal token-level cache reuses all of "
               "them. (Lesson 4 adds a real cache's two rules: whole pages only, and the last token always computed.)")
    elif split == len(ids_new):
        why = f"The new prompt ({len(ids_new)} tokens) is a prefix of the cached one, so all of it can be reused."
    elif split == len(ids_cached):
        why = (f"The new prompt starts with the whole cached prompt ({split} tokens) and then goes on: those "
               f"{split} tokens can be reused and the {len(ids_new) - split} after them must be computed.")
    else:
        a, b = tokenizer.token_texts([ids_cached[split], ids_new[split]])
        why = (f"The first {split} tokens are identical; token {split} is {a!r} in the cached prompt but {b!r} in "
               f"the new one, so from there on ({len(ids_new) - split} tokens) everything must be computed.")
    return check_number(
        answer, reusable, exercise="check_reusable_tokens", how="Set the answer to a whole number of tokens.", why=why,
        hint="Reuse stops at the first token id that differs, even if the text after it is the same again. Encode "
             "both prompts and find where their ids part ways (`workbook.first_divergence`).",
        variant=(cached_prompt, new_prompt), reveal=reveal)


# Each option: what changes between two requests, whether it changes the prompt's token ids, and why.
CACHE_BREAKERS: dict[str, tuple[str, bool, str]] = {
    "a": ("raising the temperature from 0.2 to 0.9", False,
          "temperature only reshapes the final probabilities, after the work done for every prompt token"),
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


def check_cache_breakers(answer, *, reveal: bool = False) -> CheckResult:
    """Which changes in `CACHE_BREAKERS` stop a cached prompt prefix from matching? Answer a set of letters."""
    return check_letters(answer, CACHE_BREAKERS, exercise="check_cache_breakers",
                         how='Set the answer to a set of letters, e.g. {"a", "c"}.',
                         yes="breaks the prefix", no="keeps the prefix",
                         right="Only changes to the prompt's text change its tokens:", hint=_breakers_hint,
                         reveal=reveal)


def _breakers_hint(chosen: set[str], breakers: set[str]) -> str:
    """How many breakers were left out and how many chosen letters break nothing, without naming them."""
    missed, extra = len(breakers - chosen), len(chosen - breakers)
    hint = []
    if missed:
        hint.append(f"you left out {missed} change{'s' if missed > 1 else ''} that break{'' if missed > 1 else 's'} "
                    "the prefix")
    if extra:
        hint.append(f"{extra} of your letters do{'' if extra > 1 else 'es'} not change a single token id")
    return ("; ".join(hint).capitalize() + ". Only what changes the prompt's text can change its ids: try encoding "
            "each version and comparing them.")
