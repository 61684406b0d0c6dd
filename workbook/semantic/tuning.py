"""Choosing the threshold: start strict, loosen while the wrong answers stay rare.

The labelled pairs test one kind of wrong answer: a near miss with close wording. Real traffic has
another: a query of a *related* intent ("when will my order arrive?" against "if I order today,
when will it arrive?") that no pair contains. So the recommended threshold must pass two checks on
tuning material: the tuning pairs' near misses, and the first half of the day's query log replayed
through the cache (`split_day`). The held-out pairs and the second half of the day are never looked at
here: they are what the chosen threshold is judged on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import WorkbookError
from ..pricing import PriceSheet
from .cache import SemanticCache
from .pairs import GRID, PairScores, load_pairs
from .querylog import LoggedQuery, load_intents, load_query_log, replay, replay_cost
from .verify import disagreement

MAX_WRONG = 0.05  # the share of wrong answers the recommended threshold may serve, on each check


def loosest_threshold(is_safe: Callable[[float], bool], thresholds: Sequence[float] = GRID) -> float:
    """Walk down from the strictest threshold; return the last one `is_safe` accepts before the first it refuses."""
    chosen = None
    for threshold in sorted(thresholds, reverse=True):
        if not is_safe(float(threshold)):
            break
        chosen = float(threshold)
    if chosen is None:
        raise WorkbookError("Even the strictest threshold fails the check.")
    return chosen


def split_day(log: Sequence[LoggedQuery]) -> tuple[list[LoggedQuery], list[LoggedQuery]]:
    """The day's queries in two halves, in time order: the first tunes the threshold, the second judges it."""
    half = len(log) // 2
    return list(log[:half]), list(log[half:])


def wrong_share(embedder, threshold: float, verify=disagreement, log=None, intents=None) -> float:
    """The share of the answers a cache serves on the replayed query log that belong to another intent."""
    served = replay(load_query_log() if log is None else log, SemanticCache(embedder, threshold=threshold,
                    verify=verify), load_intents() if intents is None else intents)
    hits = [s for s in served if s.hit is not None]
    return sum(s.wrong for s in hits) / len(hits) if hits else 0.0


def recommended_threshold(embedder, verify=disagreement, max_wrong: float = MAX_WRONG) -> float:
    """The loosest threshold at which at most `max_wrong` of the tuning near misses, and of the answers served
    on the first half of the replayed day, are wrong. Lesson 8 derives it; `cache.DEFAULT_THRESHOLD` is its value
    for the bundled model."""
    tune = PairScores(load_pairs("tune"), embedder, verify)
    log, intents = split_day(load_query_log())[0], load_intents()
    return loosest_threshold(lambda t: tune.rates(t).false_hits <= max_wrong
                             and wrong_share(embedder, t, verify, log, intents) <= max_wrong)


@dataclass(frozen=True)
class ThresholdOutcome:
    """The replayed log at one threshold: answers served, how many were wrong, and the dollars the hits saved."""

    threshold: float
    hits: int
    wrong: int
    saved_usd: float

    def net_usd(self, usd_per_wrong: float) -> float:
        """What the cache is worth once each wrong answer is charged at `usd_per_wrong` (a refund, a ticket, a lost sale)."""
        return self.saved_usd - self.wrong * usd_per_wrong


def outcomes(embedder, thresholds: Sequence[float], sheet: PriceSheet, count_tokens, prompt_tokens: int,
             verify=disagreement) -> list[ThresholdOutcome]:
    """The replayed log at each threshold, priced at `sheet` (see `querylog.replay_cost`)."""
    log, intents = load_query_log(), load_intents()
    out = []
    for threshold in thresholds:
        served = replay(log, SemanticCache(embedder, threshold=threshold, verify=verify), intents)
        priced = replay_cost(served, sheet, count_tokens, prompt_tokens, intents)
        out.append(ThresholdOutcome(float(threshold), priced.hits, priced.wrong, priced.saved_usd))
    return out
