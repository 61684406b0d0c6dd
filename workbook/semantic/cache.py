"""A semantic cache: whole answers, served again when a new query means the same as a stored one.

A lookup first tries the exact text (no embedding needed), then the stored query with the highest
cosine similarity at or above `threshold` whose wording passes the verification stage (numbers,
negations, opposites and slot values must agree: see `verify.py`). Entries live in namespaces that
never see each other (one per tenant), expire after their TTL, and can be dropped by an event
("the refund policy changed") with `invalidate`. Search is brute force over a matrix of unit vectors:
one matrix-vector product per lookup (`python -m workbook.bench semantic` measures it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Real
from typing import Callable, Hashable

import numpy as np

from ..errors import EmptyInputError, WorkbookError
from .verify import disagreement

Verifier = Callable[[str, str], "str | None"]  # (incoming, cached) -> why they differ, or None

# What lesson 8 recommends for the bundled model with the verification stage: `tuning.recommended_threshold`,
# the loosest threshold that keeps wrong answers at or below 5% on the tuning pairs and on the first half of the
# replayed query log (a test re-derives it). Another embedding model needs its own. Loosen it only while you watch wrong answers.
DEFAULT_THRESHOLD = 0.70


@dataclass(frozen=True)
class Entry:
    query: str
    answer: str
    namespace: Hashable
    created_s: float
    expires_s: float  # math.inf when the entry has no TTL
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """What a lookup served: the stored query and answer, how similar the queries were, and the answer's age."""

    query: str
    answer: str
    similarity: float
    age_s: float
    exact: bool
    meta: dict


@dataclass(frozen=True)
class CacheStats:
    lookups: int
    hits: int
    exact_hits: int
    refused: int  # lookups where a stored query passed the threshold but the verification stage said no
    false_hits: int  # hits the caller reported as wrong answers (`report_false_hit`)
    entries: int
    bytes: int  # vectors plus the UTF-8 text of queries and answers

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0


class _Shelf:
    """One namespace: its entries, their unit vectors and expiry times (one row each), and an index of exact texts."""

    def __init__(self, dim: int):
        self.entries: list[Entry] = []
        self.vectors = np.zeros((16, dim), np.float32)  # grows by doubling; rows past len(entries) are unused
        self.expires = np.full(16, np.inf)
        self.exact: dict[str, int] = {}

    def add(self, entry: Entry, vector: np.ndarray) -> None:
        row = self.exact.get(entry.query)
        if row is None:  # a new question; the same question again replaces the old answer in its row
            row = len(self.entries)
            if row == len(self.vectors):
                self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors)])
                self.expires = np.concatenate([self.expires, np.full(row, np.inf)])
            self.exact[entry.query] = row
            self.entries.append(entry)
        self.entries[row] = entry
        self.vectors[row] = vector
        self.expires[row] = entry.expires_s

    def expire(self, now: float) -> None:
        """Drop the entries whose TTL has run out (a numpy check first: usually none have)."""
        if self.entries and self.expires[:len(self.entries)].min() <= now:
            self.keep(lambda e: e.expires_s > now)

    def keep(self, wanted: Callable[[Entry], bool]) -> int:
        """Drop the entries `wanted` says no to; return how many were dropped."""
        rows = [i for i, e in enumerate(self.entries) if wanted(e)]
        dropped = len(self.entries) - len(rows)
        if dropped:
            spare = max(16, len(rows))
            self.vectors = np.concatenate([self.vectors[rows], np.zeros((spare, self.vectors.shape[1]), np.float32)])
            self.expires = np.concatenate([self.expires[rows], np.full(spare, np.inf)])
            self.entries = [self.entries[i] for i in rows]
            self.exact = {e.query: i for i, e in enumerate(self.entries)}
        return dropped


class SemanticCache:
    """Stores answers by query; `get` serves one for a query that means the same.

    `embedder` turns text into unit vectors (default: `load_embedder()`); `verify` is the verification
    stage (default: `verify.disagreement`; None for a plain threshold cache); `clock` gives the time in
    seconds for TTLs (default: time.time).
    """

    def __init__(self, embedder=None, *, threshold: float = DEFAULT_THRESHOLD, verify: Verifier | None = disagreement,
                 clock: Callable[[], float] = time.time):
        if embedder is None:
            from .embedder import load_embedder
            embedder = load_embedder()
        self.embedder = embedder
        self.threshold = threshold
        self.verify = verify
        self.clock = clock
        self._shelves: dict[Hashable, _Shelf] = {}
        self._counts = dict(lookups=0, hits=0, exact_hits=0, refused=0, false_hits=0)

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, Real) or not -1.0 <= float(value) <= 1.0:
            raise WorkbookError(f"The threshold is a cosine similarity, between -1 and 1; got {value!r}.")
        self._threshold = float(value)

    def put(self, query: str, answer: str, *, namespace: Hashable = None, ttl_s: float | None = None,
            meta: dict | None = None, now: float | None = None) -> None:
        """Store `answer` for `query` in `namespace`, for `ttl_s` seconds (None: until invalidated)."""
        query = _checked_query(query)
        if not isinstance(answer, str):
            raise WorkbookError(f"A cached answer is text, got {type(answer).__name__}.")
        if ttl_s is not None and (isinstance(ttl_s, bool) or not isinstance(ttl_s, Real) or not ttl_s > 0):
            raise WorkbookError(f"ttl_s is a number of seconds above 0 (or None for no expiry), got {ttl_s!r}.")
        if meta is not None and not isinstance(meta, dict):
            raise WorkbookError(f"meta is a dict, got {type(meta).__name__}.")
        now = self.clock() if now is None else now
        vector = self.embedder(query)  # before anything is stored: a failing embedder leaves the cache as it was
        shelf = self._shelves.get(namespace) or self._shelves.setdefault(namespace, _Shelf(len(vector)))
        expires = math.inf if ttl_s is None else now + ttl_s
        shelf.add(Entry(query, answer, namespace, now, expires, dict(meta or {})), vector)

    def get(self, query: str, *, namespace: Hashable = None, now: float | None = None) -> Hit | None:
        """The answer stored for a query that means the same as `query` in `namespace`, or None (a miss)."""
        query = _checked_query(query)
        now = self.clock() if now is None else now
        self._counts["lookups"] += 1
        shelf = self._shelves.get(namespace)
        if shelf is None:
            return None
        shelf.expire(now)
        row = shelf.exact.get(query)
        if row is not None:
            return self._served(shelf.entries[row], 1.0, now, exact=True)
        if not shelf.entries:
            return None
        similarities = shelf.vectors[:len(shelf.entries)] @ self.embedder(query)
        above = np.flatnonzero(similarities >= self.threshold)
        refused = False
        for row in above[np.argsort(-similarities[above], kind="stable")]:
            entry = shelf.entries[row]
            if self.verify is None or self.verify(query, entry.query) is None:
                return self._served(entry, float(similarities[row]), now, exact=False)
            refused = True
        self._counts["refused"] += refused
        return None

    def _served(self, entry: Entry, similarity: float, now: float, *, exact: bool) -> Hit:
        self._counts["hits"] += 1
        self._counts["exact_hits"] += exact
        return Hit(entry.query, entry.answer, similarity, now - entry.created_s, exact, dict(entry.meta))

    def report_false_hit(self) -> None:
        """Count a served answer as wrong (a user complained, a reviewer said so): `stats().false_hits`."""
        self._counts["false_hits"] += 1

    def invalidate(self, predicate: Callable[[Entry], bool]) -> int:
        """Drop every entry for which `predicate(entry)` is true (event-based invalidation); return how many."""
        return sum(shelf.keep(lambda e: not predicate(e)) for shelf in self._shelves.values())

    def entries(self) -> list[Entry]:
        """Every stored entry, in every namespace (expired ones go at the next lookup in their namespace)."""
        return [e for shelf in self._shelves.values() for e in shelf.entries]

    def __len__(self) -> int:
        return sum(len(shelf.entries) for shelf in self._shelves.values())

    def stats(self) -> CacheStats:
        entries = self.entries()
        vector_bytes = sum(len(s.entries) * s.vectors.shape[1] * s.vectors.itemsize for s in self._shelves.values())
        text_bytes = sum(len(e.query.encode()) + len(e.answer.encode()) for e in entries)
        return CacheStats(**self._counts, entries=len(entries), bytes=vector_bytes + text_bytes)


def _checked_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise EmptyInputError(f"A query is non-empty text, got {query!r}.")
    return query.strip()
