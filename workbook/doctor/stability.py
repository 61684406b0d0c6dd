"""A pytest helper for your own project: fail when a value that changes per request moves your prompt's static prefix.

    from workbook.doctor.stability import assert_prefix_stable

    def test_the_support_prompt_keeps_its_prefix():
        assert_prefix_stable(build_messages, {"now": ["09:00", "17:45"], "user": ["Ana", "Ben"]})

Three rules decide what is checked:

- **One key at a time.** The baseline is `render` with every key at its first value. Each key then takes
  each of its other values while every other key stays at its first: 1 + Σ(values − 1) renders, not every
  combination, so a failure names exactly the one key that moved the prefix.
- **The static prefix comes from the baseline.** By default it is everything before the last message (for
  a list of chat messages) or before the last line (for a string): the static region the doctor uses.
  `static_end` overrides it: a marker string (the prefix ends where the marker first appears, the marker
  not included) or a callable `static_end(text) -> int` giving the character where it ends.
- **Same text and same tokens.** Every render must start with the baseline's static prefix and, tokenized
  as one whole prompt, keep every token that ends inside it: a prefix cache matches token ids, so a value
  that merges with the last static word breaks a hit as surely as one written into the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any, Callable, Mapping, Sequence

from ..errors import WorkbookError
from ..tokenizer import first_divergence, shared_prefix_length
from .diagnosis import around

Prompt = str | list[dict]
StaticEnd = str | Callable[[str], int] | None


@dataclass(frozen=True)
class PrefixDivergence:
    """Where a render with one key changed first leaves the baseline's static prefix."""

    key: str
    baseline_value: Any
    value: Any
    char_at: int  # first character that differs between the two renders
    token_at: int  # first token that differs
    static_chars: int
    static_tokens: int
    rule: str  # how the static prefix was found, in words
    before: str  # the baseline around the divergence
    after: str  # the varied render around it

    def __str__(self) -> str:
        seam = self.char_at >= self.static_chars
        where = (f"its text is unchanged, but token {self.token_at} differs: the tokenizer merged the last static "
                 f"characters with what follows (the seam)" if seam else
                 f"first different character {self.char_at:,}, token {self.token_at:,}")
        fix = ("End the static prefix on a boundary the tokenizer keeps, such as a newline." if seam else
               f"Move what {self.key!r} changes after the static prefix, or end the prefix before it with static_end.")
        return (f"The static prefix ({self.rule}: {self.static_chars:,} characters, {self.static_tokens:,} tokens) "
                f"changed when only {self.key!r} changed, from {_short(self.baseline_value)} to {_short(self.value)}: "
                f"{where}.\n  baseline: {self.before!r}\n  {self.key}={_short(self.value)}: {self.after!r}\n{fix}")


def assert_prefix_stable(render: Callable[..., Prompt], vary: Mapping[str, Sequence], *, static_end: StaticEnd = None,
                         tokenizer=None) -> None:
    """Raise AssertionError naming the key, character and token if varying any one key changes the static prefix."""
    divergence = prefix_divergence(render, vary, static_end=static_end, tokenizer=tokenizer)
    if divergence is not None:
        raise AssertionError(str(divergence))


def prefix_divergence(render: Callable[..., Prompt], vary: Mapping[str, Sequence], *, static_end: StaticEnd = None,
                      tokenizer=None) -> PrefixDivergence | None:
    """The first render (in key order, then value order) whose static prefix differs from the baseline's, or None."""
    _check_vary(vary)
    tokenizer = _tokenizer(tokenizer)
    baseline_values = {key: values[0] for key, values in vary.items()}
    baseline_prompt = render(**baseline_values)
    baseline = _text(baseline_prompt, tokenizer)
    static_chars, rule = static_prefix_end(baseline_prompt, baseline, tokenizer, static_end)
    baseline_ids = tokenizer.encode(baseline)
    static_tokens = sum(1 for end in accumulate(map(len, tokenizer.token_texts(baseline_ids))) if end <= static_chars)
    for key, values in vary.items():
        for value in values[1:]:
            text = _text(render(**{**baseline_values, key: value}), tokenizer)
            char_at = first_divergence(baseline, text)
            if char_at is None:
                continue
            token_at = first_divergence(baseline_ids, tokenizer.encode(text))
            if char_at < static_chars or token_at < static_tokens:
                return PrefixDivergence(key, values[0], value, char_at, token_at, static_chars, static_tokens, rule,
                                  around(baseline, char_at), around(text, char_at))
    return None


def static_prefix_end(prompt: Prompt, text: str, tokenizer, static_end: StaticEnd = None) -> tuple[int, str]:
    """(the character where the static prefix of the rendered `text` ends, the rule that put it there, in words)."""
    if isinstance(static_end, str):
        end, rule = text.find(static_end), f"everything before {static_end!r}"
        if end < 0:
            raise WorkbookError(f"static_end marker {static_end!r} is not in the baseline render: "
                                "pass text it contains.")
    elif callable(static_end):
        end, rule = static_end(text), "the characters before static_end(text)"
        if not isinstance(end, int) or not 0 <= end <= len(text):
            raise WorkbookError(f"static_end(text) returned {end!r}; return a character index from 0 to {len(text)}.")
    elif static_end is not None:
        raise WorkbookError(f"static_end is a marker string or a callable, not {type(static_end).__name__}.")
    elif isinstance(prompt, str):
        end, rule = text.rstrip("\n").rfind("\n") + 1, "everything before the last line"
    else:
        end, rule = _before_last_message(prompt, text, tokenizer), "everything before the last message"
    if end == 0:
        raise WorkbookError(f"The static prefix ({rule}) is empty, so there is nothing to check: "
                            "pass static_end (a marker string or a callable) to say where it ends.")
    return end, rule


def _before_last_message(messages: list[dict], text: str, tokenizer) -> int:
    """Characters the conversation without its last message renders to, as far as they agree with the full render."""
    if len(messages) < 2:
        return 0
    earlier = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=False)
    return shared_prefix_length(earlier, text)


def _text(prompt: Prompt, tokenizer) -> str:
    """A render as text: a string as it is, chat messages through the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(m, dict) for m in prompt):
        return tokenizer.apply_chat_template(prompt)
    raise WorkbookError(f"render(...) must return a string or a non-empty list of chat messages, "
                        f"not {type(prompt).__name__}.")


def _check_vary(vary: Mapping[str, Sequence]) -> None:
    """Refuse a `vary` that would check nothing: no keys, or a key with fewer than two values."""
    if not isinstance(vary, Mapping) or not vary:
        raise WorkbookError('vary maps each render argument to the values it takes, e.g. {"now": ["09:00", "17:45"]}.')
    for key, values in vary.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) < 2:
            raise WorkbookError(f"vary[{key!r}] must be a list of at least two values; bind a fixed value in render.")


def _tokenizer(tokenizer):
    """The tokenizer to count with: the doctor's default, one loaded by name or path, or the object given."""
    if tokenizer is None or isinstance(tokenizer, str):
        from . import DEFAULT_TOKENIZER  # at call time: the package may re-export this module

        return _load(tokenizer or DEFAULT_TOKENIZER)
    return tokenizer


@lru_cache(maxsize=4)
def _load(name: str):
    from ..tokenizer import load_tokenizer

    return load_tokenizer(name)


def _short(value: Any, width: int = 40) -> str:
    """A value's repr, cut to `width` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 1] + "…"


__all__ = ["PrefixDivergence", "assert_prefix_stable", "prefix_divergence", "static_prefix_end"]
