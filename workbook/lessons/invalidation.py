"""Rows an edit invalidated: prompt rows a cache held for the unedited prompt but that had to be computed again.

Lesson 4's broken prefix and lesson 5's prompt lab both colour these rows "invalidated", so the
learner sees what the edit cost, not just what was computed.
"""

from __future__ import annotations

from ..prefix_cache import loadable_tokens
from ..tokenizer import shared_prefix_length


def reusable_length(cached_ids: list[int], ids: list[int], page_size: int) -> int:
    """How many leading tokens of `ids` a cache holding `cached_ids` could serve (the page rule applied)."""
    return loadable_tokens(shared_prefix_length(cached_ids, ids), len(ids), page_size)


def mark_invalidated(provenance: list[str], reusable: int) -> list[str]:
    """Rows computed although they lie in the first `reusable` tokens, which the cache could have served, become
    "invalidated"."""
    return ["invalidated" if p == "computed" and i < reusable else p for i, p in enumerate(provenance)]
