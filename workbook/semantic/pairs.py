"""The labelled query pairs (data/semantic/pairs.csv) and how a cache scores on them.

Each pair is a query already in the cache and a new one, labelled `same` (a paraphrase: the cached
answer serves it) or `near_miss` (close wording, different intent: the cached answer would be wrong).
A cache "hits" a pair when it would serve the cached answer to the new query. Two rates matter:
the share of paraphrases it hits (what it saves) and the share of near misses it hits (wrong answers).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from ..errors import WorkbookError
from ..paths import DATA_DIR
from .verify import disagreement

PAIRS_FILE = DATA_DIR / "semantic" / "pairs.csv"
SPLITS = ("tune", "heldout")
LABELS = ("same", "near_miss")
KINDS = ("paraphrase", "number", "negation", "opposite", "entity", "object")
GRID = np.round(np.arange(0.30, 1.0001, 0.01), 2)  # the thresholds a sweep tries


@dataclass(frozen=True)
class Pair:
    pair_id: str
    split: str
    label: str
    kind: str
    domain: str
    cached: str
    incoming: str

    @property
    def same(self) -> bool:
        return self.label == "same"


def load_pairs(split: str | None = None, path=PAIRS_FILE) -> list[Pair]:
    """The labelled pairs, all of them or one split ("tune" or "heldout")."""
    if split is not None and split not in SPLITS:
        raise WorkbookError(f"split is one of {SPLITS} or None, got {split!r}.")
    with open(path, newline="", encoding="utf-8") as f:
        pairs = [Pair(**row) for row in csv.DictReader(f)]
    for p in pairs:  # a file of your own pairs gets the same checks as the shipped one
        if p.split not in SPLITS or p.label not in LABELS or p.kind not in KINDS or not (p.cached and p.incoming):
            raise WorkbookError(f"Pair {p.pair_id} in {path}: split is one of {SPLITS}, label one of {LABELS}, kind "
                                f"one of {KINDS}, and both queries are non-empty; got {p}.")
    return [p for p in pairs if split is None or p.split == split]


@dataclass(frozen=True)
class Rates:
    threshold: float
    paraphrase_hits: float  # share of `same` pairs served: recall
    false_hits: float  # share of `near_miss` pairs served: wrong answers
    precision: float  # share of served pairs that were right (1.0 when nothing is served)
    served: int


class PairScores:
    """Similarities of every pair, and the verification stage's objection to each, computed once.

    `verify=None` scores a plain threshold cache. Any threshold can then be tried instantly, which is
    what lesson 8's slider does.
    """

    def __init__(self, pairs: Sequence[Pair], embedder, verify=disagreement):
        if not pairs:
            raise WorkbookError("No pairs to score.")
        self.pairs = list(pairs)
        self.verify = verify
        self.similarities = np.einsum("ij,ij->i", embedder([p.cached for p in pairs]),
                                      embedder([p.incoming for p in pairs]))
        self.objections = [None if verify is None else verify(p.incoming, p.cached) for p in pairs]
        self.accepted = np.array([o is None for o in self.objections])  # what the verification stage lets through

    @cached_property
    def same(self) -> np.ndarray:
        return np.array([p.same for p in self.pairs])

    def served(self, threshold: float) -> np.ndarray:
        """Which pairs the cache would serve at `threshold`: similar enough and not objected to."""
        return (self.similarities >= threshold) & self.accepted

    def rates(self, threshold: float) -> Rates:
        served = self.served(threshold)
        right, wrong = (served & self.same).sum(), (served & ~self.same).sum()
        return Rates(float(threshold), right / max(self.same.sum(), 1), wrong / max((~self.same).sum(), 1),
                     right / (right + wrong) if right + wrong else 1.0, int(served.sum()))

    def sweep(self, thresholds: Sequence[float] = GRID) -> list[Rates]:
        return [self.rates(t) for t in thresholds]

    def near_misses_served(self, threshold: float) -> list[tuple[Pair, float]]:
        """The near-miss pairs served at `threshold`, most similar first: the wrong answers a user would get."""
        served = self.served(threshold) & ~self.same
        rows = sorted(np.flatnonzero(served), key=lambda i: -self.similarities[i])
        return [(self.pairs[i], float(self.similarities[i])) for i in rows]
