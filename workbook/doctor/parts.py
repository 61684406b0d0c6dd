"""A logged request rendered as the provider renders it: parts in order, each a piece of text with its kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PartKind = Literal["tools", "system", "message", "prompt"]


@dataclass(frozen=True)
class Part:
    """One piece of a rendered request: the tool list (as JSON text), the system prompt, one message, or a whole
    prompt from a log of rendered prompts. `role` is the message's role; `cache_control` an Anthropic breakpoint."""

    kind: PartKind
    text: str
    role: str = ""
    cache_control: str | None = None


def full_text(parts: list[Part]) -> str:
    """The request's text, parts joined in order (the doctor measures character positions in this)."""
    return "".join(part.text for part in parts)


def part_at(parts: list[Part], char: int) -> tuple[int, int]:
    """(index of the part holding character `char` of `full_text(parts)`, offset inside that part)."""
    start = 0
    for i, part in enumerate(parts):
        if char < start + len(part.text):
            return i, char - start
        start += len(part.text)
    return len(parts) - 1, len(parts[-1].text) if parts else 0
