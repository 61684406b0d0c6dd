"""Many replicas on paper: our radix tree per replica, the real routers' policies, and a clock.

Each replica is a `KVManager` with a `PrefixCache` over a pool with no K/V in it (only page ids and reference
counts), so a match, an admission, a publish and an LRU eviction are exactly the server's, page for page. A
replica runs steps like `Server`: it admits the requests waiting for it, first come first served, while their
uncached tokens fit one step's token budget and their pages can be had; every request admitted in a step
matches the tree as it was before the step (their own pages are published at its end, so two requests of one
step never share what neither has yet). A step lasts `Costs.step_s` plus `Costs.prefill_s_per_token` for each
token it computes; a request's first token comes at the end of its step, and it leaves the replica `decode_s`
later. A request holds its prompt's whole pages (the only ones a cache keeps; a server would hold the last,
part-full one too) during its step only, then the tree holds what it computed: a full pool evicts from the tree,
never preempts.

The router sees what sglang-router sees: each replica's load (assumed here: the requests it routed there that
have not finished) and, for cache-aware routing, an approximate tree of the prompts it has sent to each. Policies: the router's `cache_aware`, `round_robin`
and `power_of_two` (as sglang-router 0.3.2 implements them, quoted below), `least_load`, and
`consistent_hash` on the prompt's first tokens.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import re
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Sequence

from ..errors import WorkbookError
from ..kv_manager import Allocation, KVManager
from ..page_pool import PagePool, full_page_chunks, full_pages
from ..prefix_cache import PrefixCache
from ..providers import chained_keys
from .workload import ReplicaStats, p50_p99

# sglang-router's cache-aware thresholds at their defaults (sglang_router 0.3.2, router_args.py: cache_threshold
# 0.3, balance_abs_threshold 64, balance_rel_threshold 1.5; read 2026-12-06). What they mean, from the policy's
# own comment (sgl-project/sglang, sgl-router/src/policies/cache_aware.rs at 026f853, read 2026-12-06):
#   "A system is considered imbalanced if both conditions are met: 1. (max - min) > abs_threshold
#    2. max > rel_threshold * min" -- then it routes to the worker with the fewest requests in flight; else
#   "a. For each request, find the worker with the highest prefix match b. If match rate > cache_threshold:
#    Route to the worker with highest match ... c. If match rate <= cache_threshold: Route to the worker with
#    smallest tree size". Either way the request's text is inserted into the chosen worker's tree.
# Assumptions where the source leaves it open or differs from ours: the router's tree is kept in whole pages of
# token ids (sglang's holds characters), it forgets nothing within a run (sglang evicts every 60 s by size),
# and among several workers with the same longest match it takes the one it sent that prefix to last.
CACHE_AWARE = dict(cache_threshold=0.3, balance_abs_threshold=64, balance_rel_threshold=1.5)


def replica_cache(capacity_tokens: int, page_size: int) -> PrefixCache:
    """One replica's prefix cache: the radix tree over a pool of `capacity_tokens` rows, no K/V allocated."""
    return PrefixCache(PagePool.for_tokens(capacity_tokens, page_size))


@dataclass(frozen=True)
class Costs:
    """What a replica's time goes on. Defaults: our engine on the shipped `tiny` model, one CPU thread, on this
    2-core VM: 697 ms cold for a 2,048-token prompt (DESIGN.md), and 5.3 ms between one request's tokens alone,
    11.7 ms in a batch of 16 (`python -m workbook.bench serving`, data/benchmarks/)."""

    prefill_s_per_token: float = 0.34e-3
    step_s: float = 0.01  # a step's cost beyond its prefill: one decode pass over the batch
    decode_s: float = 0.03  # from a request's first token to its last: 3 more steps (4 new tokens)


@dataclass
class SimRequest:
    index: int
    ids: list[int]
    arrival: float
    replica: int = -1
    cached: int = 0
    ttft_s: float = 0.0
    allocation: Allocation | None = field(default=None, repr=False)  # its pages during its step


class Replica:
    """One server: its K/V manager and prefix cache, the requests waiting for it, and when it is next free."""

    def __init__(self, cache: PrefixCache, max_batch_tokens: int, costs: Costs):
        self.cache, self.max_batch_tokens, self.costs = cache, max_batch_tokens, costs
        self.kv = KVManager.of(cache.pool, cache)
        self.waiting: deque[SimRequest] = deque()
        self.leaving: deque[float] = deque()  # when each admitted request leaves, in order
        self.free_at = 0.0
        self.done_at = 0.0  # when its last admitted request leaves
        self.served: list[SimRequest] = []

    def load(self, now: float) -> int:
        """Requests routed here and not yet finished at `now`: what the router counts."""
        self.advance(now)
        while self.leaving and self.leaving[0] <= now:
            self.leaving.popleft()
        return len(self.waiting) + len(self.leaving)

    def advance(self, now: float) -> None:
        """Run every step that starts by `now`."""
        while self.waiting and max(self.free_at, self.waiting[0].arrival) <= now:
            self._step()

    def _step(self) -> None:
        start, budget, step = max(self.free_at, self.waiting[0].arrival), self.max_batch_tokens, []
        while self.waiting and self.waiting[0].arrival <= start:
            request = self.waiting[0]
            if len(request.ids) > budget and step:  # only then can its cached part decide whether it fits
                if len(request.ids) - self.kv.cached_tokens(request.ids) > budget:
                    break
            # The first request of a step always gets its pages: no other holds any, and it fits the pool.
            request.allocation = self.kv.admit(request.ids, self._rows(request), owner=request.index)
            if request.allocation is None:  # the pool is held by this step's requests: it waits for the next
                break
            self.waiting.popleft()
            request.cached = request.allocation.cached
            budget -= len(request.ids) - request.cached
            step.append(request)
        computed = sum(len(r.ids) - r.cached for r in step)
        self.free_at = start + self.costs.step_s + computed * self.costs.prefill_s_per_token
        for request in step:  # computed: its whole pages join the tree by reference, and it lets go of them
            self.kv.publish(request.allocation, request.ids[:self._rows(request)])
            self.kv.free(request.allocation)
            request.allocation = None
            request.ttft_s = self.free_at - request.arrival
            self.leaving.append(self.free_at + self.costs.decode_s)
        self.done_at = self.free_at + self.costs.decode_s
        self.served += step

    def _rows(self, request: SimRequest) -> int:
        """The rows of the request's prompt in whole pages: what it holds during its step."""
        size = self.cache.pool.page_size
        return full_pages(len(request.ids), size) * size

    def stats(self, name: str) -> ReplicaStats:
        return ReplicaStats(name, len(self.served), sum(len(r.ids) for r in self.served),
                            sum(r.cached for r in self.served), self.cache.pool.pages_in_use)


# ----- routing policies: each chooses a replica for a prompt, given every replica's load ----------------------

class RoundRobin:
    """Replica 0, 1, ..., N - 1, then 0 again, whatever the prompt."""

    def __init__(self, n: int, **_):
        self.n, self.turn = n, -1

    def choose(self, ids, loads) -> int:
        self.turn = (self.turn + 1) % self.n
        return self.turn


class LeastLoad:
    """The replica with the fewest requests in flight (the first of them on a tie)."""

    def __init__(self, n: int, **_):
        self.n = n

    def choose(self, ids, loads) -> int:
        return min(range(self.n), key=loads)


class PowerOfTwo:
    """sglang-router's power_of_two (sgl-project/sglang, sgl-router/src/policies/power_of_two.rs at 00b01f9, read
    2026-12-06): two workers drawn
    at random, "if worker1.load() <= worker2.load()" the first, else the second."""

    def __init__(self, n: int, seed: int = 0, **_):
        self.n, self.rng = n, random.Random(seed)

    def choose(self, ids, loads) -> int:
        a, b = self.rng.sample(range(self.n), 2) if self.n > 1 else (0, 0)
        return a if loads(a) <= loads(b) else b


class ConsistentHash:
    """A hash ring (`points` per replica) keyed by the prompt's first `key_tokens` tokens: one prefix, one
    replica, and adding a replica moves only about 1/N of the prefixes."""

    def __init__(self, n: int, key_tokens: int = 64, points: int = 100, **_):
        ring = sorted((_hash(f"{r}:{p}"), r) for r in range(n) for p in range(points))
        self.hashes, self.owners, self.key_tokens = [h for h, _ in ring], [r for _, r in ring], key_tokens

    def choose(self, ids, loads) -> int:
        at = bisect.bisect(self.hashes, _hash(" ".join(map(str, ids[:self.key_tokens]))))
        return self.owners[at % len(self.owners)]


class CacheAware:
    """sglang-router's cache_aware (see CACHE_AWARE): its approximate tree is a map from each page-aligned
    prefix the router has sent to the replicas it sent it to."""

    def __init__(self, n: int, page_size: int = 16, cache_threshold: float = CACHE_AWARE["cache_threshold"],
                 balance_abs_threshold: int = CACHE_AWARE["balance_abs_threshold"],
                 balance_rel_threshold: float = CACHE_AWARE["balance_rel_threshold"], **_):
        self.n, self.page_size = n, page_size
        self.threshold, self.abs, self.rel = cache_threshold, balance_abs_threshold, balance_rel_threshold
        self.sent: dict[int, dict[int, int]] = {}  # prefix key -> {replica: when it was last sent there}
        self.tree_tokens = [0] * n
        self.clock = 0
        self.balanced_by_load = 0  # requests routed by load because the fleet was imbalanced

    def choose(self, ids, loads) -> int:
        keys = chained_keys(full_page_chunks(ids, self.page_size))
        now = [loads(r) for r in range(self.n)]
        if max(now) - min(now) > self.abs and max(now) > min(now) * self.rel:
            self.balanced_by_load += 1
            chosen = min(range(self.n), key=now.__getitem__)
        else:
            depth = next((d for d in range(len(keys), 0, -1) if keys[d - 1] in self.sent), 0)
            holders = self.sent.get(keys[depth - 1], {}) if depth else {}
            if holders and depth * self.page_size / len(ids) > self.threshold:
                chosen = max(holders, key=holders.get)
            else:
                chosen = min(range(self.n), key=self.tree_tokens.__getitem__)
        self._record(keys, chosen)
        return chosen

    def _record(self, keys: list[int], replica: int) -> None:
        self.clock += 1
        for key in keys:
            holders = self.sent.setdefault(key, {})
            if replica not in holders:
                self.tree_tokens[replica] += self.page_size
            holders[replica] = self.clock


ROUTING = dict(cache_aware=CacheAware, round_robin=RoundRobin, power_of_two=PowerOfTwo, least_load=LeastLoad,
               consistent_hash=ConsistentHash)
POLICIES = tuple(ROUTING)


def _hash(text: str) -> int:
    """A stable 64-bit hash (Python's own `hash` of a string changes from one process to the next)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


# ----- the run -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SimReport:
    """One policy over one fleet: the same fields as a real run's `PolicyReport`, plus where each request went."""

    policy: str
    requests: int
    hit_rate: float  # cached / prompt tokens over every request
    ttft_p50_s: float
    ttft_p99_s: float
    replicas: list[ReplicaStats]
    routed_to: list[int]  # each request's replica, in the order sent
    cached_tokens: list[int]  # each request's prompt tokens read from its replica's cache, in the order sent
    seconds: float  # simulated time from the first arrival to the last request's end
    balanced_by_load: int = 0  # cache_aware: requests it routed by load, not by prefix

    @property
    def busiest_share(self) -> float:
        """The busiest replica's requests over an even share (1.0: perfectly even)."""
        return max(r.requests for r in self.replicas) * len(self.replicas) / self.requests

    def to_dict(self) -> dict:
        return {**asdict(self), "replicas": [dict(asdict(r), hit_rate=r.hit_rate) for r in self.replicas]}

    def lines(self) -> list[str]:
        return [f"{self.policy} (simulated, {len(self.replicas)} replicas): {self.requests} requests, hit rate "
                f"{self.hit_rate:.1%}, TTFT p50 {self.ttft_p50_s * 1000:.0f} ms, p99 {self.ttft_p99_s * 1000:.0f} "
                f"ms, busiest replica {self.busiest_share:.2f}x an even share"]


def simulate(bursts: Sequence[Sequence[Sequence[int]]], replicas: int, policy: str, *, page_size: int = 16,
             capacity_tokens: int = 8192, max_batch_tokens: int = 2048, interval_s: float | None = None,
             spacing_s: float = 0.001, costs: Costs = Costs(), seed: int = 0, **policy_settings) -> SimReport:
    """Route bursts of prompts (token ids) over `replicas` replicas with `policy`; what each replica served.

    `interval_s=None` sends each burst once the one before has finished, as `workbook.fleet.replay` does;
    a number sends burst b at b * interval_s whatever the fleet's state (an open load). Within a burst the
    requests leave `spacing_s` apart (the client sends them one after another), so an idle replica starts a
    step with the first one to arrive and takes the rest in its next. `policy_settings` go
    to the policy (`cache_threshold`, `balance_abs_threshold`, `balance_rel_threshold`; `key_tokens`).
    """
    if policy not in ROUTING:
        raise WorkbookError(f"Unknown policy {policy!r}; the simulator runs: {', '.join(POLICIES)}.")
    if replicas < 1:
        raise WorkbookError(f"A fleet has at least one replica, not {replicas}.")
    longest = max((len(ids) for burst in bursts for ids in burst), default=0)
    if not longest or longest > capacity_tokens:
        raise WorkbookError(f"Each replica's cache holds {capacity_tokens} tokens; give prompts (the longest here: "
                            f"{longest}) that fit, or raise capacity_tokens.")
    fleet = [Replica(replica_cache(capacity_tokens, page_size), max_batch_tokens, costs) for _ in range(replicas)]
    router = ROUTING[policy](replicas, page_size=page_size, seed=seed, **policy_settings)
    sent, now = [], 0.0
    for b, burst in enumerate(bursts):
        now = b * interval_s if interval_s is not None else now
        for k, ids in enumerate(burst):
            request = SimRequest(len(sent), list(ids), now + k * spacing_s)
            request.replica = router.choose(request.ids, lambda r: fleet[r].load(request.arrival))
            fleet[request.replica].waiting.append(request)
            sent.append(request)
        if interval_s is None:  # the next burst waits for this one's answers
            for replica in fleet:
                replica.advance(math.inf)
            now = max(replica.done_at for replica in fleet)
    for replica in fleet:
        replica.advance(math.inf)
    return _report(policy, sent, fleet, router)


def over_orders(bursts: Sequence[Sequence[Sequence[int]]], replicas: int, policy: str, *, orders: int = 20,
                **settings) -> list[SimReport]:
    """`simulate` `orders` times, each with every burst's requests in a random order of its own (and its own
    seed): a router forwards the requests of a burst as they reach it, in an order no client sees, so a real
    run is one draw from these."""
    runs = []
    for seed in range(orders):
        rng = random.Random(seed)
        runs.append(simulate([rng.sample(list(b), len(b)) for b in bursts], replicas, policy, seed=seed, **settings))
    return runs


def _report(policy: str, sent: list[SimRequest], fleet: list[Replica], router) -> SimReport:
    end = max(replica.done_at for replica in fleet)
    return SimReport(policy, len(sent), sum(r.cached for r in sent) / sum(len(r.ids) for r in sent),
                     *p50_p99([r.ttft_s for r in sent]), [replica.stats(f"replica-{i}") for i, replica in enumerate(fleet)], [r.replica for r in sent],
                     [r.cached for r in sent],
                     end - sent[0].arrival, getattr(router, "balanced_by_load", 0))


def tokenized(bursts: Sequence[Sequence[list[dict]]], tokenizer) -> list[list[list[int]]]:
    """A `workload`'s chats as the replicas see them: rendered with the model's chat template, as token ids.

    The same ids as `tokenizer.encode_chat`, faster: text never merges across a special token (`<|end|>`), so
    each run of text between special tokens is encoded once, however many chats repeat it (a system prompt).
    """
    specials = getattr(tokenizer, "special_tokens", None)
    if not specials:
        return [[tokenizer.encode_chat(messages) for messages in burst] for burst in bursts]
    splitter = re.compile("(" + "|".join(map(re.escape, sorted(specials, key=len, reverse=True))) + ")")
    memo: dict[str, list[int]] = {}

    def ids(messages: list[dict]) -> list[int]:
        out = []
        for chunk in splitter.split(tokenizer.apply_chat_template(messages)):
            if chunk not in memo:
                memo[chunk] = tokenizer.encode(chunk)
            out += memo[chunk]
        return out

    return [[ids(messages) for messages in burst] for burst in bursts]
