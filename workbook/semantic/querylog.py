"""A day of the support bot's questions (data/semantic/query_log.csv), replayed through a cache.

Every logged query carries the intent a person labelled it with, so a replay knows whether each
answer a cache served was right: the stored query's intent must be the new query's. Queries labelled
`other` are one-offs; no answer but their own is right for them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence


from ..errors import EmptyInputError
from ..paths import DATA_DIR
from ..pricing import PriceSheet, Usage, cost
from .cache import Hit

LOG_FILE = DATA_DIR / "semantic" / "query_log.csv"
INTENTS_FILE = DATA_DIR / "semantic" / "intents.json"
ONE_OFF = "other"  # the intent of a query no other query shares


@dataclass(frozen=True)
class LoggedQuery:
    t_s: int  # seconds since the start of the day
    user: str
    intent: str
    query: str


@dataclass(frozen=True)
class Intent:
    answer: str  # the bot's answer
    policy: str | None  # the policy document the answer quotes, if any: what event-based invalidation keys on


def load_query_log(path=LOG_FILE) -> list[LoggedQuery]:
    with open(path, newline="", encoding="utf-8") as f:
        return [LoggedQuery(int(r["t_s"]), r["user"], r["intent"], r["query"]) for r in csv.DictReader(f)]


def load_intents(path=INTENTS_FILE) -> dict[str, Intent]:
    return {name: Intent(**entry) for name, entry in json.loads(open(path, encoding="utf-8").read()).items()}


def answer_for(logged: LoggedQuery, intents: dict[str, Intent]) -> tuple[str, dict]:
    """What the bot answers a query, and the meta a cache stores beside it (its intent and policy)."""
    if logged.intent in intents:
        intent = intents[logged.intent]
        return intent.answer, {"intent": logged.intent, "policy": intent.policy}
    # A one-off question gets an answer of its own, right for no other query.
    return f"(an answer written for: {logged.query})", {"intent": f"{ONE_OFF}:{logged.query}", "policy": None}


class ExactCache:
    """The cache most teams build before a semantic one: a dictionary keyed by the query's exact text."""

    def __init__(self):
        self._answers: dict[tuple[Hashable, str], tuple[str, float, dict]] = {}

    def put(self, query: str, answer: str, *, namespace: Hashable = None, meta: dict | None = None,
            now: float = 0.0) -> None:
        self._answers[namespace, query.strip()] = (answer, now, dict(meta or {}))

    def get(self, query: str, *, namespace: Hashable = None, now: float = 0.0) -> Hit | None:
        found = self._answers.get((namespace, query.strip()))
        return None if found is None else Hit(query.strip(), found[0], 1.0, now - found[1], True, found[2])


@dataclass(frozen=True)
class Served:
    """One replayed query: where its answer came from and, for a hit, whether it was the right answer."""

    logged: LoggedQuery
    hit: Hit | None

    @property
    def source(self) -> str:
        return "model" if self.hit is None else "exact" if self.hit.exact else "semantic"

    @property
    def wrong(self) -> bool:
        return self.hit is not None and self.hit.meta.get("intent") != self.logged.intent


def replay(log: Iterable[LoggedQuery], cache, intents: dict[str, Intent], *, ttl_s: float | None = None) -> list[Served]:
    """Send each query to `cache`; on a miss the bot answers and the answer is stored (cache-aside), for `ttl_s`
    seconds if given (a `SemanticCache` takes a TTL; an `ExactCache` keeps answers for ever)."""
    lifetime = {} if ttl_s is None else {"ttl_s": ttl_s}
    out = []
    for logged in log:
        hit = cache.get(logged.query, now=logged.t_s)
        if hit is None:
            answer, meta = answer_for(logged, intents)
            cache.put(logged.query, answer, meta=meta, now=logged.t_s, **lifetime)
        out.append(Served(logged, hit))
    return out


@dataclass(frozen=True)
class ReplayCost:
    queries: int
    hits: int
    wrong: int
    usd_without_cache: float
    usd_with_cache: float

    @property
    def saved_usd(self) -> float:
        return self.usd_without_cache - self.usd_with_cache


def replay_cost(served: Sequence[Served], sheet: PriceSheet, count_tokens, prompt_tokens: int,
                intents: dict[str, Intent]) -> ReplayCost:
    """Dollars for the replayed queries at `sheet`'s prices: every query a model call, or only the misses.

    A call reads `prompt_tokens` of instructions plus the query and writes the answer; `count_tokens`
    counts text. A hit costs an embedding and a lookup, which this leaves out (cents per million queries).
    """
    def call_usd(logged: LoggedQuery) -> float:
        usage = Usage(input_tokens=prompt_tokens + count_tokens(logged.query),
                      output_tokens=count_tokens(answer_for(logged, intents)[0]))
        return cost(usage, sheet)

    prices = [call_usd(s.logged) for s in served]
    return ReplayCost(len(served), sum(s.hit is not None for s in served), sum(s.wrong for s in served),
                      sum(prices), sum(p for p, s in zip(prices, served) if s.hit is None))


def achievable_hit_rate(queries: Sequence[str], embedder, threshold: float) -> float:
    """Measure before you build: the share of queries an unbounded cache would hit at `threshold`.

    A query counts if its exact text, or any earlier query at cosine `threshold` or more, came before it.
    It says nothing about whether those hits are right answers: that is what the labelled pairs are for.
    """
    queries = [q.strip() for q in queries]
    if not queries:
        raise EmptyInputError("No queries to measure.")
    vectors = embedder(queries)
    similarity = vectors @ vectors.T
    seen, hits = set(), 0
    for i, query in enumerate(queries):
        hits += query in seen or (i > 0 and similarity[i, :i].max() >= threshold)  # earlier queries only
        seen.add(query)
    return hits / len(queries)
