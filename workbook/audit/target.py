"""What the audit probes: a deployment of our engine, seen from outside as `send(prompt, party) -> seconds`.

A deployment decides whose requests may share cached prefixes (its isolation: the salt mixed into each
cache key) and which mitigations hide the timing of a hit. The audit only ever calls `send`, so the same
procedure runs against anything with that shape, a real endpoint on your own machine included.

The delay-type mitigations (padding a hit up to a miss's time, a random delay) are added to the time the
caller sees rather than slept: an observer on the wire sees exactly the same, and the lesson stays fast.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from ..engine import Engine
from ..errors import WorkbookError
from ..prefix_cache import PrefixCache

Send = Callable[[Sequence[int], "Party"], float]  # (prompt ids, who sends it) -> seconds to the first token

# Whose requests share a cache key: everybody, everybody in one organisation, or each user alone.
ISOLATIONS = {
    "global": lambda party: None,  # one tree for everyone: no salt
    "per-org": lambda party: party.org,  # the tenant salts the key (vLLM's cache_salt, our `tenant`)
    "per-user": lambda party: (party.org, party.user),
}


@dataclass(frozen=True)
class Party:
    org: str
    user: str


@dataclass(frozen=True)
class Mitigations:
    """Defences a deployment can add on top of its isolation. The defaults add none."""

    min_cached_tokens: int = 0  # prompts shorter than this are never cached (providers use 1,024)
    pad_hits: bool = False  # report a hit as slow as a cold request of the same length (a time drawn from those seen)
    jitter_s: float = 0.0  # add a uniform random delay in [0, jitter_s)
    page_size: int = 16  # the prefix cache's page: coarser pages make each guessable step bigger

    def __post_init__(self):
        if self.min_cached_tokens < 0 or self.jitter_s < 0 or self.page_size < 1:
            raise WorkbookError("min_cached_tokens and jitter_s cannot be negative, and a page holds at least 1 token.")


RECENT_COLD = 8  # a padded hit borrows one of the last this-many cold times of its length


class Deployment:
    """Our engine behind an isolation policy and mitigations; `send` is all an attacker gets to call."""

    def __init__(self, model, tokenizer, isolation: str = "global", mitigations: Mitigations = Mitigations(), *,
                 capacity_tokens: int = 65_536, seed: int = 0):
        if isolation not in ISOLATIONS:
            raise WorkbookError(f"isolation is one of {list(ISOLATIONS)}, got {isolation!r}.")
        self.isolation, self.mitigations = isolation, mitigations
        self.engine = Engine(model, tokenizer, PrefixCache(mitigations.page_size, capacity_tokens))
        self.uncached = Engine(model, tokenizer)  # for prompts below the minimum length
        self._rng = random.Random(seed)
        self._cold_s: dict[int, deque[float]] = {}  # prompt length -> recent cold times: what a padded hit waits for

    def send(self, ids: Sequence[int], party: Party) -> float:
        """Run a one-token request for `party`; return the time to first token the caller would see."""
        ids = list(ids)
        m = self.mitigations
        if len(ids) < m.min_cached_tokens:
            seconds = self.uncached.generate(ids, max_new_tokens=1).timings.ttft_s
            self._note_cold(len(ids), seconds)
        else:
            result = self.engine.generate(ids, max_new_tokens=1, tenant=ISOLATIONS[self.isolation](party))
            seconds = result.timings.ttft_s
            if result.usage.cache_read_tokens == 0:
                self._note_cold(len(ids), seconds)
            elif m.pad_hits:
                seconds = max(seconds, self._cold_time(len(ids)))
        return seconds + (self._rng.uniform(0, m.jitter_s) if m.jitter_s else 0.0)

    def _note_cold(self, length: int, seconds: float) -> None:
        self._cold_s.setdefault(length, deque(maxlen=RECENT_COLD)).append(seconds)

    def _cold_time(self, length: int) -> float:
        """One of the last few cold times at this length (timed now on the uncached engine if none was seen), so
        padded hits are spread like the misses of the moment, even while the machine speeds up or slows down."""
        if length not in self._cold_s:
            self._note_cold(length, self.uncached.generate([0] * length, max_new_tokens=1).timings.ttft_s)
        return self._rng.choice(self._cold_s[length])
