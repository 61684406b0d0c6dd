"""Lesson 12's "check yourself" exercises (many replicas): each compares an answer with what the fleet simulator, the
router's own rule or the doctor computes, and returns a `CheckResult`: right, wrong (with a hint), or not answered
yet while the answer is None.
"""

from __future__ import annotations

from ..doctor import Report, diagnose
from ..fleet.simulate import CACHE_AWARE, CacheAware, simulate, tokenized
from ..fleet.workload import workload
from ..paths import DATA_DIR
from ..tokenizer import load_tokenizer
from .verdict import CheckResult, check_number

# Exercise 1: tenants whose requests come one at a time, spread by round robin over some replicas.
MISSES_CASE = dict(tenants=12, replicas=8, requests=480)
# Exercise 2: the busiest replica's requests in flight.
BUSIEST_LOAD = 150
# Exercise 3: the recorded real run whose reported cached tokens the doctor simulates.
ROUND_ROBIN_LOG = DATA_DIR / "fleet" / "four_tenants" / "round_robin.jsonl.xz"
GPT = "openai/gpt-5.5"


def check_round_robin_misses(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: how many of MISSES_CASE's requests compute their tenant's system prompt under round robin?"""
    case = MISSES_CASE
    bursts = tokenized(workload("exercise", tenants=case["tenants"], requests=case["requests"], burst=1),
                       load_tokenizer("tiny"))
    misses = simulate(bursts, case["replicas"], "round_robin").cached_tokens.count(0)
    return check_number(
        answer, misses, exercise="check_round_robin_misses", how="Replace None with a number of requests.",
        unit="requests", reveal=reveal,
        why=(f"{misses}: round robin sends every tenant's requests to every replica in turn, so each of the "
             f"{case['replicas']} replicas computes each of the {case['tenants']} system prompts once, "
             f"{case['tenants']} x {case['replicas']}. Cache-aware routing keeps a tenant on one replica: "
             f"{case['tenants']} misses."),
        hint=("A replica can only load a prefix it computed itself. How many replicas does one tenant's first "
              "request reach under round robin, once it has sent a few dozen?"))


def check_balance_threshold(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: the busiest replica has BUSIEST_LOAD requests in flight; what is the smallest load of the least
    loaded replica at which cache_aware still routes a prompt to the replica holding its prefix?"""
    truth = next(low for low in range(BUSIEST_LOAD + 1) if _follows_prefix(low))
    abs_, rel = CACHE_AWARE["balance_abs_threshold"], CACHE_AWARE["balance_rel_threshold"]
    return check_number(
        answer, truth, exercise="check_balance_threshold", how="Replace None with a number of requests.",
        unit="requests", reveal=reveal,
        why=(f"{truth}: the router balances by load only when both hold: {BUSIEST_LOAD} - min > {abs_} (min under "
             f"{BUSIEST_LOAD - abs_}) and {BUSIEST_LOAD} > {rel} x min (min under {BUSIEST_LOAD / rel:.0f}). From "
             f"min = {truth}, the first fails, so the prefix wins."),
        hint=("Imbalanced means both conditions at once: the gap over the absolute threshold and the busiest over "
              "the relative threshold times the least loaded. The prefix wins as soon as either one fails."))


def _follows_prefix(least: int) -> bool:
    """Whether cache_aware sends a prompt to the replica that holds its prefix (0, at BUSIEST_LOAD in flight) while
    the other has `least` in flight."""
    policy, prompt = CacheAware(2), [7] * 64 + [1]
    policy.choose(prompt, lambda r: 0)  # replica 0: the smallest tree, and now the prefix's holder
    return policy.choose(prompt[:-1] + [2], lambda r: (BUSIEST_LOAD, least)[r]) == 0


def check_routing_loss(answer, report: Report | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: how many cached tokens fewer than the doctor's one-cache simulation did the round-robin run
    report?"""
    report = diagnose(ROUND_ROBIN_LOG, provider=GPT) if report is None else report
    rows = report.reported_vs_simulated()
    reported, simulated = sum(r for _, r, _ in rows), sum(s for _, _, s in rows)
    return check_number(
        answer, simulated - reported, exercise="check_routing_loss", how="Replace None with a number of tokens.",
        unit="tokens", reveal=reveal,
        why=(f"{simulated - reported:,}: the simulation reads {simulated:,} tokens from one cache; the four "
             f"replicas reported {reported:,}. The doctor finds no cause in the text (every request is a new turn), "
             "so the difference is the routing: requests sent where their prefix was not."),
        hint="Subtract the replicas' reported total from the simulated total of the round-robin log.")
