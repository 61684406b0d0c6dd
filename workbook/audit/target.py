"""What the audit probes: a deployment of our engine, seen from outside as `send(prompt, party) -> seconds`.

A deployment decides whose requests may share cached prefixes (its isolation: the salt mixed into each
cache key) and which mitigations hide the timing of a hit. The audit only ever calls `send`, so the same
procedure runs against anything with that shape, a real endpoint on your own machine included.

Padding really waits: a padded deployment holds every response, hit or miss, until one deadline for its
prompt length, set well above a miss's time, so the caller sees the deadline plus the machine's own
wake-up noise whatever the cache did. (Padding only hits, to a copy of some earlier miss time, would leak:
an attacker who logs their own misses spots the copies.) The random delay is added to the time the caller
sees instead of slept: a caller cannot tell the two apart, and the lesson stays fast.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..engine import Engine
from ..errors import WorkbookError
from ..page_pool import PagePool
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

    min_cached_tokens: int = 0  # prompts shorter than this are never cached (OpenAI caches from 1,024 tokens)
    pad_to_deadline: bool = False  # hold every response until PAD_FACTOR x a cold request's median time (really waiting)
    jitter_s: float = 0.0  # add a uniform random delay in [0, jitter_s)
    page_size: int = 16  # the prefix cache's page: coarser pages make each guessable step bigger

    def __post_init__(self):
        if self.min_cached_tokens < 0 or self.jitter_s < 0 or self.page_size < 1:
            raise WorkbookError("min_cached_tokens and jitter_s cannot be negative, and a page holds at least 1 token.")


PAD_FACTOR = 2  # a padded response waits until this many times the median cold time of its prompt length
CALIBRATION_RUNS = 5  # cold requests timed, once per prompt length, to set that deadline


class Deployment:
    """Our engine behind an isolation policy and mitigations; `send` is all an attacker gets to call."""

    def __init__(self, model, tokenizer, isolation: str = "global", mitigations: Mitigations = Mitigations(), *,
                 capacity_tokens: int = 65_536, seed: int = 0):
        if isolation not in ISOLATIONS:
            raise WorkbookError(f"isolation is one of {list(ISOLATIONS)}, got {isolation!r}.")
        self.isolation, self.mitigations = isolation, mitigations
        self.engine = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(capacity_tokens, mitigations.page_size)))
        self.uncached = Engine(model, tokenizer)  # for prompts below the minimum length, and to set deadlines
        self._rng = random.Random(seed)
        self._deadline_s: dict[int, float] = {}  # prompt length -> how long a padded response takes at least
        self.overruns = 0  # padded responses that took longer than their deadline, so went out late: unhidden

    def send(self, ids: Sequence[int], party: Party) -> float:
        """Run a one-token request for `party`; return the time to first token the caller would see."""
        ids = list(ids)
        m = self.mitigations
        if len(ids) < m.min_cached_tokens:
            seconds = self.uncached.generate(ids, max_new_tokens=1).timings.ttft_s
        else:
            seconds = self.engine.generate(ids, max_new_tokens=1,
                                           tenant=ISOLATIONS[self.isolation](party)).timings.ttft_s
        if m.pad_to_deadline:
            deadline = self.deadline_s(len(ids))
            self.overruns += seconds > deadline
            seconds = hold_until(deadline, seconds)
        return seconds + (self._rng.uniform(0, m.jitter_s) if m.jitter_s else 0.0)

    def deadline_s(self, length: int) -> float:
        """A padded response's deadline for prompts of `length` tokens: PAD_FACTOR x the median of CALIBRATION_RUNS
        cold requests of that length, timed on the uncached engine the first time the length is seen."""
        if length not in self._deadline_s:
            cold = [self.uncached.generate([0] * length, max_new_tokens=1).timings.ttft_s
                    for _ in range(CALIBRATION_RUNS)]
            self._deadline_s[length] = PAD_FACTOR * statistics.median(cold)
        return self._deadline_s[length]


def hold_until(deadline_s: float, seconds: float) -> float:
    """Hold a response that took `seconds` until `deadline_s` by really sleeping; return the time the caller sees.

    One that already took longer goes out at once: the deadline cannot hide it, so it must sit above nearly every miss.
    """
    if seconds >= deadline_s:
        return seconds
    start = time.perf_counter()
    time.sleep(deadline_s - seconds)
    return seconds + (time.perf_counter() - start)
