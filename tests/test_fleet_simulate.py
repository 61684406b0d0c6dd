"""`workbook.fleet.simulate`: each policy as its source describes it, each replica our own radix tree, and the
simulator against the real 4-replica runs recorded under data/fleet/ (sglang-router 0.3.2 in front of four
`python -m workbook.serve` replicas; `data/fleet/README.md` has the commands)."""

from __future__ import annotations

import json
import lzma
import statistics

import pytest

from workbook.errors import WorkbookError
from workbook.fleet import workload
from workbook.fleet.workload import conversations
from workbook.fleet.simulate import (CACHE_AWARE, POLICIES, CacheAware, ConsistentHash, Costs, LeastLoad, PowerOfTwo,
                                     Replica, SimRequest, over_orders, replica_cache, simulate, tokenized)
from workbook.paths import DATA_DIR
from workbook.prefix_cache import loadable_tokens
from workbook.tokenizer import load_tokenizer

FLEET = DATA_DIR / "fleet"
RECORDED = {"four_tenants": dict(tenants=4, repeat=16), "sixteen_tenants": dict(tenants=16, repeat=4)}


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny")


def prompt(tenant: int, user: int, page: int = 16, system_pages: int = 4) -> list[int]:
    """A tenant's `system_pages` whole pages, then a user's few tokens."""
    return [1000 + tenant] * (page * system_pages) + [user, user + 1, user + 2]


def loads_of(values):
    return lambda r: values[r]


def test_tokenized_is_what_the_server_renders(tok):
    bursts = workload("x", tenants=3, requests=12, burst=4)
    assert tokenized(bursts, tok) == [[tok.encode_chat(m) for m in burst] for burst in bursts]


def test_a_replica_is_our_radix_tree_page_for_page():
    replica = Replica(replica_cache(4096, 16), 2048, Costs())
    a, b = prompt(0, 1), prompt(0, 50)
    for i, ids in enumerate((a, b)):
        replica.waiting.append(SimRequest(i, ids, arrival=float(i)))
        replica.advance(float(i))
    shared = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    assert [r.cached for r in replica.served] == [0, loadable_tokens(shared, len(b), 16)]
    assert replica.cache.pool.pages_in_use == len(replica.cache.held_pages())  # no request holds a page: no leak
    replica.kv.check()  # its pages went through its KV manager: every count is the holders', none is live
    assert not replica.kv.live


def test_a_request_whose_pages_cannot_be_had_waits_for_the_next_step():
    """As the server does: each prompt holds its 4 whole pages during its step, and the pool has 6."""
    bursts, costs = [[prompt(0, 1), prompt(1, 1)]], Costs()
    roomy = simulate(bursts, 1, "round_robin", spacing_s=0)
    tight = simulate(bursts, 1, "round_robin", spacing_s=0, capacity_tokens=96)
    alone = costs.step_s + len(prompt(0, 1)) * costs.prefill_s_per_token
    both = costs.step_s + 2 * (alone - costs.step_s)  # one step computes both prompts
    assert roomy.seconds == pytest.approx(both + costs.decode_s) and roomy.ttft_p99_s == pytest.approx(both)
    assert tight.seconds == pytest.approx(2 * alone + costs.decode_s)  # two steps, one after the other
    assert tight.requests == 2 and tight.replicas[0].pages_in_use <= 6


def test_requests_of_one_step_do_not_see_each_others_pages():
    together = simulate([[prompt(0, 1), prompt(0, 50)]], 1, "round_robin", spacing_s=0)
    apart = simulate([[prompt(0, 1), prompt(0, 50)]], 1, "round_robin", spacing_s=0.001)
    assert together.cached_tokens == [0, 0]  # admitted in one step, both computed the shared prefix
    assert apart.cached_tokens[1] > 0  # the first ran alone; the second, a step later, reads its pages


def test_a_small_cache_evicts_least_recently_used_prefixes():
    bursts = [[prompt(t, 1)] for t in range(3)] + [[prompt(0, 9)]]
    roomy = simulate(bursts, 1, "round_robin", capacity_tokens=4096)
    tight = simulate(bursts, 1, "round_robin", capacity_tokens=128)  # two prompts' pages: tenant 0 is evicted
    assert roomy.cached_tokens[-1] == 64 and tight.cached_tokens[-1] == 0
    assert tight.replicas[0].pages_in_use <= 128 // 16


def test_round_robin_divides_a_prefix_over_every_replica():
    bursts = [[prompt(0, u)] for u in range(40)]
    for n in (1, 4):
        report = simulate(bursts, n, "round_robin")
        assert [r.requests for r in report.replicas] == [40 // n] * n
        assert report.cached_tokens.count(0) == n  # each replica pays the tenant's first miss


def test_consistent_hash_keeps_a_prefix_on_one_replica_and_moves_few_when_one_is_added():
    keys = [[t] * 64 for t in range(2000)]
    before, after = ConsistentHash(16), ConsistentHash(17)
    moved = sum(before.choose(k, None) != after.choose(k, None) for k in keys) / len(keys)
    assert moved < 2 / 17  # about 1/17 of the prefixes move, not most of them (as hash mod N would)
    report = simulate([[prompt(t, u)] for u in range(5) for t in range(8)], 4, "consistent_hash")
    by_tenant = {}
    for i, replica in enumerate(report.routed_to):
        by_tenant.setdefault(i % 8, set()).add(replica)
    assert all(len(replicas) == 1 for replicas in by_tenant.values())


def test_least_load_and_power_of_two_pick_the_less_loaded():
    assert LeastLoad(4).choose([], loads_of([3, 1, 2, 1])) == 1
    policy, asked = PowerOfTwo(8, seed=3), []
    loads = [5, 0, 7, 2, 9, 1, 4, 3]
    for _ in range(50):
        asked.clear()
        chosen = policy.choose([], lambda r: asked.append(r) or loads[r])
        assert len(set(asked)) == 2 and chosen == min(asked, key=loads.__getitem__)


# sglang-router's cache_aware, from its comment (quoted at workbook.fleet.simulate.CACHE_AWARE): "If match rate >
# cache_threshold: Route to the worker with highest match"; "If match rate <= cache_threshold: Route to the worker
# with smallest tree size"; imbalanced when "(max - min) > abs_threshold" and "max > rel_threshold * min", then
# the least loaded worker.

def test_cache_aware_follows_a_prefix_it_has_sent():
    policy, idle = CacheAware(4), loads_of([0, 0, 0, 0])
    first = policy.choose(prompt(0, 1), idle)
    assert policy.choose(prompt(0, 2), idle) == first  # 64 of 67 tokens match: above 0.3
    assert policy.choose(prompt(1, 1), idle) != first  # no match: the replica with the smallest tree


def test_cache_aware_ignores_a_match_at_or_under_the_threshold():
    policy, idle = CacheAware(2), loads_of([0, 0])
    home = policy.choose([7] * 16 + [1] * 60, idle)  # 16 tokens shared of 76 below: 0.21 <= 0.3
    assert policy.choose([7] * 16 + [2] * 60, idle) != home  # the other replica: its tree is smaller


def test_cache_aware_balances_by_load_only_when_both_thresholds_are_passed():
    assert CACHE_AWARE == dict(cache_threshold=0.3, balance_abs_threshold=64, balance_rel_threshold=1.5)
    policy = CacheAware(2)
    home = policy.choose(prompt(0, 1), loads_of([0, 0]))
    other = 1 - home
    heavy = [0, 0]
    heavy[home], heavy[other] = 100, 70  # 30 apart: balanced, the prefix wins
    assert policy.choose(prompt(0, 2), loads_of(heavy)) == home
    heavy[home], heavy[other] = 300, 201  # 99 apart but 300 <= 1.5 * 201: balanced
    assert policy.choose(prompt(0, 3), loads_of(heavy)) == home
    heavy[home], heavy[other] = 100, 20  # 80 > 64 and 100 > 1.5 * 20: imbalanced, the least loaded
    assert policy.choose(prompt(0, 4), loads_of(heavy)) == other
    assert len(policy.sent[max(policy.sent, key=lambda k: len(policy.sent[k]))]) == 2  # "Even in imbalanced
    # mode, update the tree": the prefix is now recorded at both replicas
    assert policy.balanced_by_load == 1


def test_cache_aware_spills_a_hot_prefix_once_its_replica_is_overloaded():
    bursts = [[prompt(0, u)] for u in range(400)]  # one tenant, a request every millisecond: far over one replica
    report = simulate(bursts, 2, "cache_aware", interval_s=0.001)
    assert report.balanced_by_load > 0 and min(r.requests for r in report.replicas) > 0
    calm = simulate(bursts[:40], 2, "cache_aware")  # closed loop: one at a time, never imbalanced
    assert calm.balanced_by_load == 0 and sorted(r.requests for r in calm.replicas) == [0, 40]


def test_many_replicas_and_every_policy_run():
    bursts = [[prompt(t % 32, u) for u in range(8)] for t in range(64)]
    for policy in POLICIES:
        report = simulate(bursts, 256, policy)
        assert report.requests == 512 == sum(r.requests for r in report.replicas)
        assert sum(report.cached_tokens) == sum(r.cached_tokens for r in report.replicas)


def test_bad_settings_are_refused():
    with pytest.raises(WorkbookError, match="policy"):
        simulate([[prompt(0, 1)]], 2, "nginx")
    with pytest.raises(WorkbookError, match="replica"):
        simulate([[prompt(0, 1)]], 0, "round_robin")
    with pytest.raises(WorkbookError, match="capacity_tokens"):
        simulate([[prompt(0, 1)]], 2, "round_robin", capacity_tokens=32)


# ----- against the real runs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", RECORDED)
def test_the_simulator_matches_the_recorded_real_runs(name, tok):
    """Within 4 points of the real hit rate, averaged over the orders a router may forward a burst in."""
    for real in json.loads((FLEET / f"{name}.json").read_text()):
        bursts = tokenized(workload(real["policy"], **RECORDED[name]), tok)
        runs = over_orders(bursts, len(real["replicas"]), real["policy"], orders=10)
        assert abs(statistics.mean(r.hit_rate for r in runs) - real["hit_rate"]) < 0.04, real["policy"]
        assert all(r.requests == real["requests"] for r in runs)


def test_the_recorded_logs_hold_the_prompts_the_simulator_replays(tok):
    for policy in ("cache_aware", "round_robin", "power_of_two"):
        with lzma.open(FLEET / "four_tenants" / f"{policy}.jsonl.xz", "rt") as f:
            log = [json.loads(line) for line in f]
        bursts = workload(policy, **RECORDED["four_tenants"])
        assert [line["messages"] for line in log] == [m for burst in bursts for m in burst]
        ids = [i for burst in tokenized(bursts, tok) for i in burst]
        assert [line["usage"]["prompt_tokens"] for line in log] == [len(i) for i in ids]
    real = [line["usage"]["prompt_tokens_details"]["cached_tokens"] for line in log]
    assert sum(real) / sum(map(len, ids)) == pytest.approx(
        json.loads((FLEET / "four_tenants.json").read_text())[2]["hit_rate"])


def test_a_hot_tenant_takes_its_share_and_chats_grow_from_their_last_turn(tok):
    chats = [m for burst in workload("hot", tenants=8, requests=2000, burst=1, hot=0.3) for m in burst]
    share = sum("assistant of shop 0." in m[0]["content"] for m in chats) / len(chats)
    assert 0.3 < share < 0.3 + 0.7 / 8 + 0.05  # 30% to tenant 0, plus its even share of the rest
    bursts = tokenized(conversations("chat", users=3, turns=3), tok)
    last = {}
    for burst in bursts:
        for ids in burst:
            user = tuple(ids[:24])
            assert user not in last or ids[:len(last[user])] == last[user]  # the previous request is a prefix
            last[user] = ids
    assert len(last) == 3


def test_the_benchmark_times_each_policy_and_fleet_size(capsys):
    from workbook.bench.__main__ import main

    payload = main(["fleet-sim", "--requests", "200", "--replicas", "4", "16", "--policies", "round_robin",
                    "cache_aware", "--no-save"])
    assert [(r["replicas"], r["policy"]) for r in payload["runs"]] == [
        (4, "round_robin"), (4, "cache_aware"), (16, "round_robin"), (16, "cache_aware")]
    assert all(r["cpu_s"] > 0 and 0 <= r["hit_rate"] <= 1 for r in payload["runs"])
    assert "slowest replay" in capsys.readouterr().out
