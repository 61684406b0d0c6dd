# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 12: many replicas
#
# Everything so far ran on one server with one cache. Once traffic outgrows one server you run several
# copies of it, each a **replica** with its own GPU memory and so its own prefix cache, and a **router** in
# front decides which replica gets each request. A replica can only load a prefix that *it* computed. So the
# router now decides your hit rate: send a request where its prefix is, and it hits; send it anywhere else,
# and it computes the prefix again. Keeping requests where their prefix is has a name, cache **affinity**, and
# a price: the replica that holds a popular prefix gets more than its share of the work.
#
# By the end of this lesson you will be able to:
#
# - read a real fleet run (four of our servers behind sglang-router) per routing policy: hit rate, requests
#   per replica, time to first token;
# - reproduce it with a simulator whose replicas are our own radix tree, and check the simulator against it;
# - explain why round robin divides the hit rate of a reused prefix by the number of replicas, and count the
#   misses it adds;
# - state sglang-router's cache-aware rule, with its thresholds, and see when it overloads one replica and how
#   its balance rule gives that back;
# - estimate how many replicas a fleet can have before affinity to a hot prefix costs more than it saves;
# - run the cache doctor on the fleet's own request log, where the cached tokens come from a real cache,
#   and read the gap between them and the doctor's one-cache simulation.
#
# Starting four servers and a router takes a minute or more on a laptop, so the real runs were recorded
# (`data/fleet/`, with the commands that made them). Everything else runs here, on your CPU, in seconds.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import PROVENANCE_COLOURS, use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(12)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import json
import statistics
import time

import plotly.graph_objects as go

from workbook.doctor import diagnose, read_log
from workbook.exercises.lesson12 import (BUSIEST_LOAD, MISSES_CASE, check_balance_threshold, check_round_robin_misses,
                                         check_routing_loss)
from workbook.fleet.simulate import CACHE_AWARE, Costs, over_orders, simulate, tokenized
from workbook.fleet.workload import conversations, workload
from workbook.paths import DATA_DIR
from workbook.prefix_cache import loadable_tokens
from workbook.tokenizer import load_tokenizer

lesson_start = time.perf_counter()
FLEET = DATA_DIR / "fleet"
tokenizer = load_tokenizer("tiny")  # the replicas' tokenizer: the simulator must see the ids they saw

# %% [markdown]
# ## 1. A real fleet, recorded
#
# The command below started four `python -m workbook.serve` replicas of the shipped model on this machine's
# loopback, each with an 8,192-token prefix cache in pages of 16 tokens, then put **sglang-router** 0.3.2 (a
# real router, written in Rust, from PyPI) in front of them, once per policy. Through the router it sent 64
# chat requests with the `openai` client, in bursts of 8 sent at once: 4 tenants (shops), each with its own
# long system prompt, and many users asking short questions. Each answer's
# `usage.prompt_tokens_details.cached_tokens` says how many prompt tokens its replica loaded from its cache.
#
# ```bash
# python -m workbook.fleet --replicas 4 --router sglang --policy cache_aware round_robin power_of_two \
#     --tenants 4 --repeat 16 --requests 64 --burst 8 --json four_tenants.json --logs four_tenants
# ```
#
# Three policies: **round robin** sends request k to replica k mod 4; **power of two** draws two replicas at
# random and takes the one with fewer requests in flight; **cache-aware** keeps a tree of the prompts it has
# sent to each replica and sends a prompt where most of it went before (section 4 gives its exact rule).

# %%
real = {r["policy"]: r for r in json.loads((FLEET / "four_tenants.json").read_text())}
for policy, r in real.items():
    print(f"{policy:13} hit rate {r['hit_rate']:6.1%}   requests per replica "
          f"{'/'.join(str(x['requests']) for x in r['replicas'])}   TTFT p50 {r['ttft_p50_s'] * 1000:5.0f} ms")

figure = go.Figure()
for policy, r in real.items():
    figure.add_bar(x=[f"replica {i}" for i in range(len(r["replicas"]))], y=[x["requests"] for x in r["replicas"]],
                   name=f"{policy} ({r['hit_rate']:.1%} hit)")
figure.update_layout(title="Requests per replica, real run (4 tenants, 64 requests)", yaxis_title="requests",
                     height=340, barmode="group", legend=dict(orientation="h", y=-0.2))
figure.show()

# %%
gain = real["cache_aware"]["hit_rate"] - real["round_robin"]["hit_rate"]
busiest = max(x["requests"] for x in real["cache_aware"]["replicas"])
even = real["cache_aware"]["requests"] / len(real["cache_aware"]["replicas"])
assert gain > 0.1 and busiest > even
print(f"Cache-aware routing read {gain:.1%} more of the prompt tokens from cache than round robin did, and "
      f"paid for it in balance: its busiest replica served {busiest} requests, {busiest / even:.2f}x an even "
      f"share of {even:.0f}. Power of two hit like round robin ({real['power_of_two']['hit_rate']:.1%}): it "
      f"looks at load, not at prefixes, and on a fleet this lightly loaded its two random draws decide.")

# %% [markdown]
# (TTFT here was measured by a client on a 2-core machine that ran five processes at once; compare hit rates
# and balance, not milliseconds.)
#
# ## 2. The same run, simulated
#
# To ask "what about 64 replicas?" we cannot start 64 servers. `workbook.fleet.simulate` replays the same
# requests on paper. Each simulated replica is a real `PrefixCache`, the radix tree of lesson 4, over a pool
# that holds no K/V rows, only page numbers: its matches, inserts and LRU evictions are the server's, page for
# page. A replica runs steps like the server of lesson 9: it admits waiting requests while their uncached
# tokens fit one step, and requests admitted in the same step do not see each other's pages. The router
# applies the real router's rules to the same numbers it would see.
#
# First, the simulator must see the same token ids as the replicas. The log of the real run holds each
# request's `prompt_tokens`, as its replica counted them:

# %%
bursts = {policy: tokenized(workload(policy, tenants=4, repeat=16), tokenizer) for policy in real}
logged = [record.reported_input for record in read_log(FLEET / "four_tenants" / "cache_aware.jsonl.xz")]
assert logged == [len(ids) for burst in bursts["cache_aware"] for ids in burst]
print(f"{len(logged)} requests, {sum(logged):,} prompt tokens: the same count as the replicas', request by request")
simulated = {policy: simulate(bursts[policy], 4, policy) for policy in real}
for policy, r in real.items():
    s = simulated[policy]
    print(f"{policy:13} real {r['hit_rate']:6.1%}   simulated {s.hit_rate:6.1%}   "
          f"requests per replica real {sorted(x['requests'] for x in r['replicas'])}, "
          f"simulated {sorted(x.requests for x in s.replicas)}")
    assert abs(s.hit_rate - r["hit_rate"]) < 0.01

# %% [markdown]
# A router forwards the eight requests of a burst in whatever order they reach it, which no client sees. With
# fewer, shorter prompts (16 tenants of 318 tokens: two requests of a burst often share a replica and a step)
# that order matters, so the simulator is run over 10 orders and the real run is compared with their average:

# %%
real16 = {r["policy"]: r for r in json.loads((FLEET / "sixteen_tenants.json").read_text())}
for policy, r in real16.items():
    runs = over_orders(tokenized(workload(policy, tenants=16, repeat=4), tokenizer), 4, policy, orders=10)
    rates = [run.hit_rate for run in runs]
    print(f"{policy:13} real {r['hit_rate']:6.1%}   simulated {statistics.mean(rates):6.1%} on average "
          f"({min(rates):.1%} to {max(rates):.1%} over 10 orders)")
    assert abs(statistics.mean(rates) - r["hit_rate"]) < 0.04

# %% [markdown]
# ## 3. Why round robin divides the hit rate
#
# A replica can only load what it computed. Take a chat: each turn sends the whole conversation so far, so
# the prefix it can reuse is the user's *previous* request, on whichever replica that went to. If the router
# ignores prefixes (round robin, or power of two on an idle fleet, which is a coin toss), the next turn lands
# on that replica with probability 1/N: the hit on the previous turn is divided by N. Each older turn is one more
# chance, also 1/N and shorter, so a chat with a few turns behind it falls a little slower than 1/N, and as 1/N
# once N is well past its number of turns. Sixteen users, six turns each:

# %%
chats = [[request] for burst in tokenized(conversations("chat"), tokenizer) for request in burst]
REPLICAS = [1, 2, 4, 8, 16]
by_policy = {p: [simulate(chats, n, p).hit_rate for n in REPLICAS] for p in ("power_of_two", "cache_aware")}


def expected_random_hit(requests: list[list[int]], n: int) -> float:
    """Routing at random over n replicas: each earlier turn of the same user sits on this request's replica with
    probability 1/n; the request loads the latest one that does (the page rule as the server applies it)."""
    by_user, cached = {}, 0.0
    for ids in requests:
        user = tuple(ids[:24])  # a user's chat starts with their own system prompt
        earlier = by_user.setdefault(user, [])
        for back, before in enumerate(reversed(earlier)):
            cached += (1 / n) * (1 - 1 / n) ** back * loadable_tokens(len(before), len(ids), 16)
        earlier.append(ids)
    return cached / sum(len(ids) for ids in requests)


formula = [expected_random_hit([r for [r] in chats], n) for n in REPLICAS]
figure = go.Figure()
figure.add_scatter(x=REPLICAS, y=by_policy["cache_aware"], name="cache-aware (simulated)", mode="lines+markers")
figure.add_scatter(x=REPLICAS, y=by_policy["power_of_two"], name="power of two, idle: at random (simulated)",
                   mode="lines+markers")
figure.add_scatter(x=REPLICAS, y=formula, name="at random: the formula", mode="lines", line=dict(dash="dot"))
figure.update_layout(title="A chat's hit rate against the number of replicas", xaxis_title="replicas",
                     xaxis_type="log", yaxis_title="hit rate (cached / prompt tokens)", yaxis_tickformat=".0%",
                     height=360, legend=dict(orientation="h", y=-0.25))
figure.show()

# %%
one, many = by_policy["power_of_two"][0], by_policy["power_of_two"][-1]
assert all(abs(s - f) < 0.06 for s, f in zip(by_policy["power_of_two"], formula))
assert min(by_policy["cache_aware"]) == max(by_policy["cache_aware"]) == one
assert REPLICAS[-1] / 4 < one / many < REPLICAS[-1]
print(f"On one replica the chats hit {one:.1%}; spread at random over {REPLICAS[-1]} they hit {many:.1%} "
      f"(the formula says {formula[-1]:.1%}), {one / many:.1f}x less: between N/4 and N, the older turns' "
      f"chances making up the difference. Cache-aware routing keeps each user on one replica and hits "
      f"{by_policy['cache_aware'][-1]:.1%} at every size.")

# %% [markdown]
# A prefix shared by many requests (a tenant's system prompt) loses less: round robin only adds misses, one
# per replica for each prefix, where affinity pays one per prefix. With R requests per prefix, the misses go
# from 1 in R to N in R. Exercise 1 counts them.
#
# There is a second loss, and it grows with the fleet: round robin makes **every** replica cache **every**
# prefix, so N caches hold N copies of the same prompts. With more tenants than one cache holds, each
# replica evicts what it needs next. Cache-aware routing splits the tenants between replicas, so the fleet
# holds N times as many distinct prefixes:

# %%
many_tenants = tokenized(workload("tenants", tenants=64, users=1000, requests=2000), tokenizer)
tenant_tokens = 64 * len(many_tenants[0][0])
fleet_rates = {p: simulate(many_tenants, 4, p).hit_rate for p in ("round_robin", "cache_aware")}
assert tenant_tokens > 8192 > tenant_tokens / 4 and fleet_rates["cache_aware"] > 2 * fleet_rates["round_robin"]
print(f"64 tenants' prompts are about {tenant_tokens:,} tokens: more than one replica's 8,192, less than four "
      f"replicas' worth. Round robin: {fleet_rates['round_robin']:.1%} (every replica evicts); cache-aware: "
      f"{fleet_rates['cache_aware']:.1%} (each holds its quarter).")

# %% [markdown]
# ## 4. What cache-aware routing gives back, and when it overloads a replica
#
# sglang-router's `cache_aware` policy, from its source (`sgl-router/src/policies/cache_aware.rs`, read
# 2026-12-06), with its defaults (`cache_threshold` 0.3, `balance_abs_threshold` 64,
# `balance_rel_threshold` 1.5):
#
# 1. The fleet is **imbalanced** when the busiest replica has more than 64 requests in flight over the least
#    loaded one *and* more than 1.5 times as many. Then the request goes to the least loaded replica.
# 2. Otherwise the router finds the replica whose tree matches the longest part of the prompt. Over 30% of
#    the prompt: that replica. Otherwise: the replica with the smallest tree, the one that has seen least.
# 3. Either way, the prompt joins the chosen replica's tree.
#
# So affinity wins until one replica runs more than 64 requests ahead of the least loaded one (and more than
# 1.5 times its load). When does that happen? When one prefix is
# **hot**: below, 30% of all requests belong to one tenant, and requests arrive at a steady rate, whether or
# not the fleet keeps up (an open load). Cache-aware routing sends the hot tenant to one replica, which must
# then serve 30% of the fleet's traffic alone. **Consistent hashing** on the prompt's first 64 tokens is
# affinity with no balance rule at all: each prefix always goes to one replica.

# %%
HOT, PER_REPLICA_GAP_S = 0.3, 0.1  # the hot tenant's share; each replica gets a request every 0.1 s on average
SIZES = [4, 16, 64]
POLICIES = ["round_robin", "cache_aware", "consistent_hash"]
sweep = {}
for n in SIZES:
    requests = tokenized(workload(f"hot{n}", tenants=2 * n, users=1000, requests=40 * n, burst=1, hot=HOT), tokenizer)
    for policy in POLICIES:
        sweep[policy, n] = simulate(requests, n, policy, interval_s=PER_REPLICA_GAP_S / n)
for n in SIZES:
    print(f"{n:3} replicas: " + "   ".join(
        f"{p} hit {sweep[p, n].hit_rate:5.1%} p99 TTFT {sweep[p, n].ttft_p99_s * 1000:5.0f} ms" for p in POLICIES))

figure = go.Figure()
for policy in POLICIES:
    figure.add_scatter(x=SIZES, y=[sweep[policy, n].ttft_p99_s * 1000 for n in SIZES], name=policy,
                       mode="lines+markers")
figure.update_layout(title=f"p99 time to first token, one tenant sending {HOT:.0%} of the requests (simulated)",
                     xaxis_title="replicas (each offered the same load)", xaxis_type="log",
                     yaxis_title="ms", yaxis_type="log", height=360, legend=dict(orientation="h", y=-0.25))
figure.show()

# %%
big = SIZES[-1]
shorter = [n for n in SIZES if sweep["cache_aware", n].ttft_p99_s < sweep["round_robin", n].ttft_p99_s]
longer = [n for n in SIZES if n not in shorter]
assert shorter and longer and max(shorter) < min(longer)
pairs = ", ".join(f"{sweep['cache_aware', n].hit_rate:.0%} against {sweep['round_robin', n].hit_rate:.0%}"
                  for n in SIZES)
assert all(sweep["cache_aware", n].hit_rate > sweep["round_robin", n].hit_rate for n in SIZES)
print(f"Cache-aware routing hits more than round robin at every size ({pairs}). Its p99 first token is shorter "
      f"at {' and '.join(map(str, shorter))} replicas, where the hits are prefill not done, and longer at "
      f"{' and '.join(map(str, longer))}, where the hot replica's queue outgrows them.")
spilled = sweep["cache_aware", big].balanced_by_load
assert sweep["consistent_hash", big].ttft_p99_s > 3 * sweep["round_robin", big].ttft_p99_s
assert sweep["cache_aware", SIZES[0]].balanced_by_load == 0 < spilled
assert sweep["cache_aware", big].ttft_p99_s < sweep["consistent_hash", big].ttft_p99_s / 3
print(f"At {big} replicas the hot tenant's replica is offered {HOT * big:.0f}x an even share. Consistent "
      f"hashing keeps it there and its p99 first token takes {sweep['consistent_hash', big].ttft_p99_s:.1f} s. "
      f"Cache-aware routing does too until that replica runs {CACHE_AWARE['balance_abs_threshold']} requests "
      f"ahead; then it sent {spilled} of the {sweep['cache_aware', big].requests:,} requests by load, giving up "
      f"some hits ({sweep['cache_aware', big].hit_rate:.1%} against {sweep['consistent_hash', big].hit_rate:.1%}) "
      f"for a p99 of {sweep['cache_aware', big].ttft_p99_s * 1000:.0f} ms.")

# %% [markdown]
# ## 5. How many replicas before affinity costs more than it saves
#
# Affinity saves the hot tenant's prefill on every request after the first; it costs a queue once the hot
# tenant's requests arrive faster than one replica can serve them, even as hits. A hit still computes its own
# question and pays a step; the simulator's costs are our engine's on this model (one thread):

# %%
costs = Costs()
hot_requests = [ids for [ids] in tokenized(workload("hot64", tenants=128, users=1000, requests=200, burst=1,
                                                    hot=HOT), tokenizer)]
typical = statistics.median(len(ids) for ids in hot_requests)
shared = statistics.median(sweep["cache_aware", 4].cached_tokens)
hit_s = (typical - shared) * costs.prefill_s_per_token
per_replica_rate = 1 / PER_REPLICA_GAP_S
# One step of k hits lasts step_s + k * hit_s: at most 1 / hit_s hits a second, however large the batch.
most_hits = 1 / hit_s
crossover = most_hits / (HOT * per_replica_rate)
assert max(shorter) < crossover < min(longer)  # section 4's sweep turned between the same sizes
print(f"A hit computes about {typical - shared:.0f} of its {typical:.0f} tokens: {hit_s * 1000:.1f} ms of prefill, "
      f"so one replica serves at most {most_hits:.0f} hits a second. The hot tenant sends {HOT:.0%} of "
      f"{per_replica_rate:.0f} requests a second per replica. Past {crossover:.0f} replicas its one replica cannot "
      f"keep up even if every request hits: from there, affinity costs more than it saves, and only the "
      f"balance rule (or splitting the hot prefix over several replicas) keeps the tail short.")

# %% [markdown]
# The same arithmetic holds for your fleet with your numbers: a hot prefix's request rate against what one
# replica serves when every request hits. On GPUs the hit is cheaper, and the crossover moves out; a prefix
# hot enough still reaches it.
#
# ## 6. The doctor on the fleet's own log
#
# Lesson 11's doctor read logs whose `usage` the provider simulator had written. The fleet's log is
# different: each request's `cached_tokens` came from the replica that served it, a real cache. The doctor
# reads it like any OpenAI log, diagnoses every request, and simulates what a provider with **one** cache
# would have read, under GPT-5.5's rules (a 1,024-token minimum, then steps of 128 tokens). Both logs below
# send the same kind of prompts; only the router's policy differs:

# %%
doctor = {p: diagnose(FLEET / "four_tenants" / f"{p}.jsonl.xz", provider="openai/gpt-5.5")
          for p in ("cache_aware", "round_robin")}
for policy, report in doctor.items():
    rows = report.reported_vs_simulated()
    reported, simulated_tokens = sum(r for _, r, _ in rows), sum(s for _, _, s in rows)
    print(f"{policy:12} causes {dict(report.diagnosis.causes)}   cached tokens reported by the replicas "
          f"{reported:,}, simulated as one cache {simulated_tokens:,}")
    assert set(report.diagnosis.causes) == {"new_turn"}  # nothing in the text breaks a prefix

# %%
figure = go.Figure()
for policy, report in doctor.items():
    rows = report.reported_vs_simulated()
    figure.add_bar(x=[line for line, _, _ in rows], y=[r for _, r, _ in rows], name=f"{policy}: reported",
                   marker_color=PROVENANCE_COLOURS["loaded"], opacity=1.0 if policy == "cache_aware" else 0.45)
figure.add_scatter(x=[line for line, _, _ in rows], y=[s for _, _, s in rows], name="one cache, simulated",
                   mode="lines", line=dict(color="#000000", dash="dot"))
figure.update_layout(title="Cached tokens per request: the replicas' own against the doctor's one cache",
                     xaxis_title="request (log line)", yaxis_title="cached tokens", height=360, barmode="group",
                     legend=dict(orientation="h", y=-0.25))
figure.show()

# %% [markdown]
# The doctor finds nothing wrong with the prompts: every request is a new turn under an unchanged system
# prompt. Under cache-aware routing the replicas reported *more* than the simulation, because they cache in
# pages of 16 tokens, where GPT-5.5 counts in steps of 128. Under round robin they reported less: requests
# went to replicas that had never seen their tenant. No cause in the text explains that gap; the router does.
# When your provider's reported cached tokens fall short of the doctor's simulation and the doctor names no
# cause, look at routing (at a provider: at how requests are spread, which `prompt_cache_key` influences).
#
# ## 7. Your own fleet
#
# The same command fronts servers on other machines: start `python -m workbook.serve --host 0.0.0.0` on
# each, then `python -m workbook.fleet --worker-urls http://HOST1:8000 http://HOST2:8000 --policy cache_aware
# round_robin`. The router starts here; the replicas are yours. The simulator answers "what if" for sizes you
# cannot start: `simulate(bursts, 256, "cache_aware", interval_s=...)` replays ten thousand requests over 256
# replicas in a few seconds.
#
# ## Check yourself
#
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** Twelve tenants send 480 requests, one at a time, tenants mixed at random, and round robin
# spreads them over eight replicas whose caches hold every prompt. How many requests compute their tenant's
# system prompt (a miss on it)?

# %%
print(MISSES_CASE)
answer_1 = None
check_round_robin_misses(answer_1)

# %% [markdown]
# **Exercise 2.** Under `cache_aware` with its default thresholds, the replica that holds a prompt's prefix
# has 150 requests in flight. What is the smallest number in flight on the least loaded replica at which the
# router still sends the prompt to its prefix?

# %%
assert BUSIEST_LOAD == 150
answer_2 = None
check_balance_threshold(answer_2)

# %% [markdown]
# **Exercise 3.** In section 6, how many cached tokens fewer than the doctor's one-cache simulation did the
# round-robin run report?

# %%
answer_3 = None
check_routing_loss(answer_3, doctor["round_robin"])

# %%
print(f"lesson ran in {time.perf_counter() - lesson_start:.1f} s")
