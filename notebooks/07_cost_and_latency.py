# ---
# jupyter:
#   jupytext:
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
# # Lesson 7: cost and latency, measured and priced
#
# The earlier lessons showed *that* a cache saves work. This one asks *how much*: in milliseconds on your
# own machine, and in dollars at real providers' prices. Every chart here is drawn from numbers the
# workbook measures while you run it, from benchmark tables recorded on other machines, or from the
# dated price sheets in `data/pricing.json`. Every number in the text is computed, or asserted beside it.
#
# By the end of this lesson you will be able to:
#
# - measure time to first token (TTFT) cold and cached, and decode speed with and without a KV cache,
#   on your own machine, and read the recorded tables of other machines;
# - weigh a provider's cache-write premium against its read discount, and say after how many reuses
#   caching pays;
# - predict what happens to the bill when requests arrive further apart than the cache's lifetime, its **TTL**
#   (time to live), and why
#   requests on a timer and requests at random behave differently;
# - account for minimum cacheable lengths and for the hourly storage of an explicit cache;
# - price a day of your own traffic with a cost calculator that replays it against a provider's caching rules,
#   and see which cliff (minimum length, 128-token steps, expiry) your bill falls off;
# - recompute the worked examples of the articles this workbook grew from, and spot the wrong ones.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(7)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import math
import random
import statistics
import time
from dataclasses import replace

import plotly.graph_objects as go
import torch

import workbook
from workbook import Engine, Usage, cost, load_price_sheets
from workbook.bench.prefix import CORPUS, corpus_ids, measure_prefix
from workbook.exercises.lesson7 import (SEED_CLAIMED_PER_DAY_USD, SEED_CLAIMED_PER_YEAR_USD, SEED_PROMPT_TOKENS,
                                        SEED_REQUESTS_PER_DAY, check_seed_yearly_cost, check_storage_break_even,
                                        check_ttl_choice, seed_implied_input_price)
from workbook.lessons.calculator import Traffic, arrivals_text, estimate_day, lifetime_break_even, lifetimes, replay
from workbook.pricing import (TTL_MINUTES, break_even_reuses, cacheable_tokens, expected_request_cost,
                              explicit_cache_hourly_cost, hit_probability, hits_with_ttl, repeat_costs,
                              storage_break_even_rate, storage_cost, traffic_cost)
from workbook.providers import Block, Request, simulate
from workbook.timing import Stopwatch, device_name, load_results
from workbook.widgets import CostCalculatorView
from workbook.widgets.style import PROVENANCE_COLOURS, WITH_CACHE, WITHOUT_CACHE

lesson_start = time.perf_counter()
model = workbook.load_model(workbook.default_model())
tokenizer = workbook.load_tokenizer(workbook.default_model())
DEVICE = device_name(model.device)
sheets = load_price_sheets()
PRICES_CHECKED = max(s.checked for s in sheets.values())
print(f"{workbook.default_model()}: {model.num_parameters() / 1e6:.1f}M parameters on {DEVICE}")

# %% [markdown]
# ## 1. Measured here: time to first token, cold and cached
#
# The prefix benchmark (`python -m workbook.bench prefix`) times a one-token request on an *n*-token
# prefix plus a fresh 16-token suffix, twice: on an engine with no cache (cold) and on one whose prefix
# cache already holds the prefix (hit). We run its `measure_prefix` here on a few short prefixes, with
# few repeats so the lesson stays quick; the full benchmark goes further.

# %%
LENGTHS = [64, 256, 512]
SUFFIX, REPEATS = 16, 3
text_ids = corpus_ids(tokenizer, CORPUS.read_text(encoding="utf-8"), max(LENGTHS) + SUFFIX * 8)
measured = [measure_prefix(model, tokenizer, None, text_ids, n, suffix=SUFFIX, repeats=REPEATS, warmup=1) for n in LENGTHS]
for row in measured:
    print(f"prefix {row.prefix_tokens:4}: cold {row.cold_s * 1e3:7.1f} ms, hit {row.hit_s * 1e3:6.1f} ms ({row.speedup:4.1f}x)")

# %% [markdown]
# Timings are never asserted (your machine is busy with other things), but the *work* is. A hit must
# load the whole prefix, and compute only the suffix:

# %%
n = LENGTHS[-1]
check = Engine(model, tokenizer, workbook.PrefixCache(workbook.PagePool.for_tokens(2048, 16)))
check.generate(text_ids[:n] + text_ids[n:n + 16], max_new_tokens=1)
hit = check.generate(text_ids[:n] + text_ids[n + 16:n + 32], max_new_tokens=1)
assert hit.usage.cache_read_tokens == n and hit.provenance.count("computed") == 16

figure = go.Figure()
figure.add_scatter(x=LENGTHS, y=[r.cold_s * 1e3 for r in measured], name="cold: every token computed", mode="lines+markers",
                   line={"color": PROVENANCE_COLOURS["computed"]})
figure.add_scatter(x=LENGTHS, y=[r.hit_s * 1e3 for r in measured], name=f"hit: prefix loaded, {SUFFIX} tokens computed",
                   mode="lines+markers", line={"color": PROVENANCE_COLOURS["loaded"]})
figure.update_layout(title=f"Time to first token, measured on {DEVICE}<br><sup>median of {REPEATS} runs, "
                           f"{workbook.default_model()}</sup>", xaxis_title="prefix length (tokens)",
                     yaxis_title="TTFT (ms)")
figure.show()

# %% [markdown]
# Cold TTFT grows with the prefix, because every prefix token passes through every layer. The hit's
# TTFT stays nearly flat: reading cached rows is cheap, and the 16 new tokens cost the same whatever came before
# them (apart from attending to a longer history, which is small at these lengths).
#
# Providers quote the same effect as a percentage: OpenAI's prompt caching guide says caching "can reduce
# latency by up to 80%" (read 2026-12-06). Theirs is measured over a network, on prompts of 1,024 tokens and
# more; ours, on this machine:

# %%
cut = 1 - measured[-1].hit_s / measured[-1].cold_s
print(f"At {LENGTHS[-1]} prefix tokens the hit cut TTFT by {cut:.0%} here (median of {REPEATS} runs): "
      f"{'within' if cut <= 0.8 else 'beyond'} OpenAI's 'up to 80%'. A provider's TTFT also holds the network and the "
      "queue, which no cache shortens, so its percentage is smaller than the compute alone would give.")

# %% [markdown]
# ## 2. Measured here: decode speed with and without a KV cache
#
# Lesson 3 counted the rows. Here is the clock: greedy decoding of 8 tokens after a prompt, once with
# the engine's KV cache and once recomputing the whole sequence for every new token. The first token is
# the prefill in both cases, so decode speed counts the 7 tokens after it.

# %%
NEW = 8


def decode_with_cache(prompt):
    result = Engine(model, tokenizer).generate(prompt, max_new_tokens=NEW, stop_at_eos=False)
    return result.output_ids, sum(result.timings.token_times_s)


def decode_without_cache(prompt):
    ids = list(prompt)
    with Stopwatch(model.device) as clock:
        for _ in range(NEW):
            logits = model(torch.tensor([ids], device=model.device), last_only=True)[0, -1]
            ids.append(int(logits.argmax()))
            clock.lap()
    return ids[len(prompt):], sum(clock.laps[1:])  # lap 0 is the prefill


decode = {}
for n in (64, 192):
    prompt = text_ids[:n]
    runs = {"with KV cache": [decode_with_cache(prompt) for _ in range(3)],
            "without": [decode_without_cache(prompt) for _ in range(2)]}  # slow by design: two runs will do
    assert runs["with KV cache"][0][0] == runs["without"][0][0]  # the cache changes the speed, not the tokens
    decode[n] = {how: (NEW - 1) / statistics.median(s for _, s in r) for how, r in runs.items()}
    print(f"prompt {n:3}: " + ", ".join(f"{how} {tps:6.1f} tokens/s" for how, tps in decode[n].items()))

figure = go.Figure()
for how, colour in (("with KV cache", WITH_CACHE), ("without", WITHOUT_CACHE)):
    figure.add_bar(x=[f"{n}-token prompt" for n in decode], y=[decode[n][how] for n in decode], name=how,
                   marker_color=colour)
figure.update_layout(title=f"Greedy decode speed, measured on {DEVICE}<br><sup>{NEW - 1} tokens after the first, "
                           "median of 2 or 3 runs</sup>", yaxis_title="tokens per second", barmode="group")
figure.show()

# %% [markdown]
# Without a cache each step is a prefill of the whole sequence so far, so the longer the prompt, the
# slower every token. With the cache a step processes one token, and the prompt's length hardly matters.
#
# ## 3. Recorded on other machines
#
# The benchmark commands save their tables to `data/benchmarks/<device>.json`, with the device's name,
# so you can compare your laptop with the machines they were recorded on. A fresh clone may not have
# any yet; then this section says so and moves on.

# %%
recorded = load_results()


def recorded_sections(name):
    """(device name, results) of every recorded benchmark file that has this section."""
    return [(f["sections"][name]["device_name"], f["sections"][name]["results"])
            for f in recorded.values() if name in f.get("sections", {})]


print(f"{len(recorded)} benchmark file(s): {', '.join(recorded) or 'none'}")
if not recorded_sections("prefix"):
    print("No recorded prefix benchmark yet. Record one with `python -m workbook.bench prefix` "
          "(it writes data/benchmarks/<your device>.json), then run this cell again.")
for device, results in recorded_sections("prefix"):
    rows = results["ttft"]
    x = [r["prefix_tokens"] for r in rows]
    figure = go.Figure()
    for key, label, line in (("cold_s", "workbook, cold", {"color": PROVENANCE_COLOURS["computed"]}),
                             ("hit_s", "workbook, cached prefix", {"color": PROVENANCE_COLOURS["loaded"]}),
                             ("hf_cold_s", "transformers, cold", {"color": PROVENANCE_COLOURS["computed"], "dash": "dot"}),
                             ("hf_hit_s", "transformers, reused DynamicCache",
                              {"color": PROVENANCE_COLOURS["loaded"], "dash": "dot"})):
        if all(r.get(key) is not None for r in rows):
            figure.add_scatter(x=x, y=[r[key] * 1e3 for r in rows], name=label, mode="lines+markers", line=line)
    figure.update_layout(title=f"Recorded TTFT vs prefix length on {device}<br><sup>{results['model']}, "
                               f"median of {results['repeats']} runs, {rows[0]['suffix_tokens']}-token suffix</sup>",
                         xaxis_title="prefix length (tokens)", yaxis_title="TTFT (ms)", xaxis_type="log", yaxis_type="log")
    figure.show()

# %% [markdown]
# Speculative decoding (lesson 6) has its own recorded table: the speedup over target-only decoding for
# each number of drafted tokens *k*, beside the speedup that the acceptance rate α and the draft's
# relative cost c predict.

# %%
if not recorded_sections("speculative"):
    print("No recorded speculative-decoding benchmark yet. Record one with `python -m workbook.bench speculative`.")
for device, results in recorded_sections("speculative"):
    ours = sorted((r for r in results["draft_model"] if r["method"].startswith("speculative k=")), key=lambda r: r["k"])
    figure = go.Figure()
    figure.add_scatter(x=[r["k"] for r in ours], y=[r["speedup"] for r in ours], name="measured", mode="lines+markers")
    figure.add_scatter(x=[r["k"] for r in ours], y=[r["predicted_speedup"] for r in ours], mode="lines+markers",
                       name="predicted: (1 − α^(k+1)) / ((1 − α)(kc + 1))", line={"dash": "dot"})
    figure.add_hline(y=1.0, line={"color": "grey"}, annotation_text="target alone")
    figure.update_layout(title=f"Speculative decoding speedup vs k on {device}<br><sup>target {results['target']}, "
                               f"draft {results['draft']}, c = {results['cost_ratio_c']:.2f}</sup>",
                         xaxis_title="drafted tokens per step (k)", yaxis_title="speedup over the target alone")
    figure.show()

# %% [markdown]
# ## 4. Provider economics
#
# The rest of the lesson needs no clock: only token counts and the price sheets. Each sheet records its
# source page and the day it was checked; prices change, so treat the numbers as examples and the
# *rules* as the lesson.
#
# ### Write premium against read discount
#
# A provider can charge for a cache entry twice: when it is written, and every time it is read. Below,
# both as multiples of the plain input price.

# %%
names = [s.name for s in sheets.values()]
figure = go.Figure()
figure.add_bar(x=names, y=[s.cache_write / s.input for s in sheets.values()], name="write (5-minute or default)")
figure.add_bar(x=names, y=[(s.cache_write_1h or math.nan) / s.input for s in sheets.values()], name="write, 1-hour TTL")
figure.add_bar(x=names, y=[s.cache_read / s.input for s in sheets.values()], name="read")
figure.add_hline(y=1.0, line={"color": "grey"}, annotation_text="plain input")
figure.update_layout(title=f"Cache prices as multiples of the input price<br><sup>price sheets checked {PRICES_CHECKED}</sup>",
                     barmode="group", yaxis_title="× input price")
figure.show()

# %% [markdown]
# Anthropic charges 1.25× (or 2× for a one-hour lifetime) to write and 0.1× to read; OpenAI and Google
# charge nothing extra to write, for the models on our sheet
# ([OpenAI's guide](https://developers.openai.com/api/docs/guides/prompt-caching) says models from GPT-5.6 on
# bill cache writes). So how many reads pay back one write? Per cached token, one write plus
# *k* reads must cost no more than *k* + 1 plain sends: write + k·read ≤ (1 + k)·input.
# `break_even_reuses` solves that; `repeat_costs` checks it by pricing whole runs of requests.

# %%
print(f"{'model':24}{'5-minute':>9}{'1-hour':>8}{'with 1 h of storage':>21}")
for sheet in sheets.values():
    k = break_even_reuses(sheet)
    k_1h = break_even_reuses(sheet, ttl="1h") if sheet.cache_write_1h else None
    k_stored = break_even_reuses(sheet, storage_hours=1) if sheet.storage_per_mtok_hour else None
    print(f"{sheet.name:24}{k:>9}{'' if k_1h is None else k_1h:>8}{'' if k_stored is None else k_stored:>21}")
    # k reads after the write (k + 1 requests) cost no more than no cache; one read fewer would cost more.
    assert repeat_costs(sheet, 5_000, 5_000, k + 1).saved_usd >= -1e-12
    if k > 0:
        assert repeat_costs(sheet, 5_000, 5_000, k).saved_usd < 0
assert break_even_reuses(sheets["anthropic/claude-sonnet-4-5"]) == 1
assert break_even_reuses(sheets["anthropic/claude-sonnet-4-5"], ttl="1h") == 2
for sheet in sheets.values():  # the multiples of the input price that the text below the chart gives
    if sheet.provider == "anthropic":
        assert [round(p / sheet.input, 6) for p in (sheet.cache_write, sheet.cache_write_1h, sheet.cache_read)] == [1.25, 2, 0.1]
    else:
        assert sheet.cache_write == sheet.input

# %% [markdown]
# One read pays back Anthropic's 5-minute write and two pay back the one-hour write. Where a write
# costs the plain input price, caching can never lose, so the break-even is zero reads.
#
# That is the formula. The provider simulator (`workbook.providers.simulate`) bills real request sequences
# by each provider's rules, and agrees: for every model and every lifetime it offers, one write and *k* reads,
# a minute apart, cost no more than *k* + 1 uncached requests, and one read fewer costs more.
# (`workbook.lessons.calculator` builds the requests: a 5,000-token prefix shared by all of them.)

# %%
checked = 0
for sheet in sheets.values():
    plain = cost(Usage(input_tokens=5_000), sheet)
    for lifetime in lifetimes(sheet):
        k = lifetime_break_even(sheet, lifetime)
        traffic = Traffic(sheet.key, lifetime, static_tokens=5_000, dynamic_tokens=0, output_tokens=0,
                          requests_per_day=24 * 60)
        billed = [bill.cost_usd for bill in replay(traffic, k + 1, sheets=sheets)[1]]
        assert sum(billed) <= (k + 1) * plain + 1e-12
        if k > 0:
            assert sum(billed[:k]) > k * plain
        checked += 1
print(f"simulator and break_even_reuses agree on all {checked} model and lifetime pairs")

# %% [markdown]
# ### When requests arrive slower than the TTL
#
# A cache entry lives for its TTL, and each hit renews it (Anthropic: 5 minutes, or 1 hour at the higher
# write price). If the next request comes later than that, it finds nothing, pays for a fresh write and
# starts the clock again. `hits_with_ttl` replays a list of arrival times:

# %%
print(hits_with_ttl([0, 3, 7, 13, 18], ttl_minutes=5))  # gaps of 3, 4, 6, 5 minutes
assert hits_with_ttl([0, 3, 7, 13, 18], ttl_minutes=5) == [False, True, True, False, True]

# %% [markdown]
# OpenAI sells no lifetime: keeping a prefix for minutes or for a day costs the same. The request's
# `prompt_cache_retention` says how long an idle prefix is kept
# ([OpenAI's guide](https://developers.openai.com/api/docs/guides/prompt-caching)):
#
# - `"in_memory"`: "cached prefixes generally remain active for 5 to 10 minutes of inactivity, up to a maximum of
#   one hour". The simulator assumes 5 minutes idle, renewed by every read, like Anthropic's 5-minute entry.
# - `"24h"`: "Extended prompt cache retention keeps cached prefixes active for longer, up to a maximum of 24 hours".
#
# The values a model accepts depend on the model ("For gpt-5.5 and gpt-5.5-pro, only 24h is supported"). Where a
# model takes both, organisations without Zero Data Retention get `"24h"` by default. The price does not change:
# "Prompt cache pricing is the same for both retention policies"
# ([Azure's copy of the page](https://learn.microsoft.com/azure/foundry/openai/how-to/prompt-caching)). So at OpenAI
# the longer lifetime is free, and the choice that the rest of this section prices for Anthropic does not arise.
# Each model on our sheet, its default first, and two requests 10 minutes apart at GPT-5.4:

# %%
for sheet in sheets.values():
    if sheet.provider == "openai":
        print(f"{sheet.name:13} " + "; ".join(f"{key}: {meaning}" for key, meaning in lifetimes(sheet).items()))
assert sheets["openai/gpt-5.5"].retention == ("24h",) and sheets["openai/gpt-5.4-mini"].retention == ("in_memory",)
gpt54 = sheets["openai/gpt-5.4"]
read_after = {}
for retention in lifetimes(gpt54):
    pair = Traffic(gpt54.key, retention, requests_per_day=144)  # a 5,000-token static part, a request every 10 minutes
    _, (first_bill, second_bill) = replay(pair, 2, sheets=sheets)
    read_after[retention] = second_bill.usage.cache_read_tokens
    print(f"{gpt54.name}, {retention}, {arrivals_text(pair)}: the second request reads {read_after[retention]:,} "
          "cached tokens")
assert read_after == {"24h": 4_992, "in_memory": 0}  # 4,992: 5,000 rounded down to OpenAI's 128-token steps

# %% [markdown]
# With requests arriving at random, on average *g* minutes apart, the gap before a request is
# exponential, so a request hits with probability 1 − exp(−TTL / g). A quick simulation agrees:

# %%
rng = random.Random(0)
for gap in (2, 5, 20):
    arrivals, t = [], 0.0
    for _ in range(20_000):
        t += rng.expovariate(1 / gap)
        arrivals.append(t)
    simulated = sum(hits_with_ttl(arrivals, 5)) / (len(arrivals) - 1)
    print(f"mean gap {gap:2} min: simulated {simulated:.3f}, formula {hit_probability(gap, 5):.3f}")
    assert abs(simulated - hit_probability(gap, 5)) < 0.01

# %% [markdown]
# Now the bill: a 5,000-token system prompt, a 100-token question and a 300-token answer at Claude Sonnet
# 4.5, as the average gap between requests grows.

# %%
sonnet = sheets["anthropic/claude-sonnet-4-5"]
PREFIX, QUESTION, ANSWER = 5_000, 100, 300
no_cache = cost(Usage(input_tokens=PREFIX + QUESTION, output_tokens=ANSWER), sonnet)
gaps = [0.5 * 1.25 ** i for i in range(34)]  # 0.5 to about 800 minutes


def per_request(gap, ttl):
    return expected_request_cost(sonnet, PREFIX + QUESTION, PREFIX, ANSWER, hit_probability(gap, TTL_MINUTES[ttl]), ttl=ttl)


figure = go.Figure()
for ttl in TTL_MINUTES:
    figure.add_scatter(x=gaps, y=[1000 * per_request(g, ttl) for g in gaps], name=f"cached, {ttl} TTL")
figure.add_scatter(x=gaps, y=[1000 * no_cache] * len(gaps), name="no cache", line={"dash": "dot", "color": "grey"})
figure.update_layout(title=f"Expected cost per 1,000 requests vs time between requests<br><sup>{sonnet.name}, "
                           f"{PREFIX:,}-token prefix, random arrivals; prices checked {sonnet.checked}</sup>",
                     xaxis_title="average minutes between requests", yaxis_title="USD per 1,000 requests",
                     xaxis_type="log")
figure.show()

# The 5-minute cache stops paying when p·hit + (1 − p)·miss = no cache, i.e. p* = (miss − none) / (miss − hit).
hit_usd, miss_usd = per_request(1e-9, "5m"), per_request(1e9, "5m")
p_star = (miss_usd - no_cache) / (miss_usd - hit_usd)
gap_star = -TTL_MINUTES["5m"] / math.log(1 - p_star)
print(f"hit ${hit_usd:.5f}, miss ${miss_usd:.5f}, no cache ${no_cache:.5f} per request")
print(f"the 5-minute cache saves money only while requests come less than {gap_star:.1f} minutes apart on average")
assert per_request(1, "5m") < no_cache < per_request(30, "5m")
assert per_request(30, "1h") < no_cache
assert max(per_request(1, "5m"), per_request(1, "1h")) < 1.05 * hit_usd
assert min(per_request(240, "5m"), per_request(240, "1h")) > no_cache  # hours apart: a write almost every time

# %% [markdown]
# ### Fixed gaps versus random gaps
#
# The curve above is for requests that arrive *at random* (a Poisson stream): the gaps vary, so some are
# short even when the average is long, and those requests hit. Requests sent on a timer (a cron job, a
# polling agent) are different: every gap is the same, so either every request finds the entry alive or none
# does. Here the provider simulator bills a week of each kind of traffic, with the same prompt as above.

# %%
def replayed_week(arrivals, every_minutes, ttl):
    """(USD per day, share of requests that read the cache) over a week of traffic, billed by the simulator."""
    traffic = Traffic(sonnet.key, ttl, PREFIX, QUESTION, ANSWER, requests_per_day=24 * 60 // every_minutes,
                      arrivals=arrivals)
    _, bills = replay(traffic, 7 * traffic.requests_per_day, sheets=sheets)
    return sum(b.cost_usd for b in bills) / 7, sum(b.usage.cache_read_tokens > 0 for b in bills) / len(bills)


print(f"{'mean gap':>9}{'arrivals':>10}{'5m: hits':>10}{'$/day':>8}{'1h: hits':>10}{'$/day':>8}{'no cache $/day':>16}")
week = {}
for every in (10, 30):
    for arrivals in ("fixed", "poisson"):
        week[every, arrivals] = {ttl: replayed_week(arrivals, every, ttl) for ttl in TTL_MINUTES}
        (day_5m, hits_5m), (day_1h, hits_1h) = week[every, arrivals]["5m"], week[every, arrivals]["1h"]
        print(f"{every:>5} min{arrivals:>10}{hits_5m:>10.0%}{day_5m:>8.2f}{hits_1h:>10.0%}{day_1h:>8.2f}"
              f"{no_cache * 24 * 60 / every:>16.2f}")

for every in (10, 30):
    none_day = no_cache * 24 * 60 / every
    timer, random_ = week[every, "fixed"]["5m"], week[every, "poisson"]["5m"]
    assert timer[1] == 0 and timer[0] > none_day  # on a timer the 5-minute entry is always gone
    assert abs(random_[1] - hit_probability(every, TTL_MINUTES["5m"])) < 0.03  # at random: the formula's share
    assert abs(random_[0] / (24 * 60 / every) - per_request(every, "5m")) < 0.03 * per_request(every, "5m")
    assert (random_[0] < none_day) == (every < gap_star)  # and it pays while the mean gap is under the break-even
    assert max(week[every, a]["1h"][0] for a in ("fixed", "poisson")) < none_day
every, ttl_minutes = 10, TTL_MINUTES["5m"]
timer, random_, none_day = week[every, "fixed"]["5m"], week[every, "poisson"]["5m"], no_cache * 24 * 60 / every
assert random_[0] < none_day < timer[0]
print(f"\nOn a {every}-minute timer the {ttl_minutes:g}-minute entry is always gone: {timer[1]:.0%} hits, "
      f"${timer[0]:.2f} a day against ${none_day:.2f} without a cache.")
print(f"At random, {every} minutes apart on average, {random_[1]:.0%} of requests still hit (the formula says "
      f"{hit_probability(every, ttl_minutes):.0%}), and the day costs ${random_[0]:.2f}: less than no cache.")
print(f"Random arrivals keep the 5-minute cache paying up to an average gap of {gap_star:.1f} minutes; on a timer it "
      f"stops paying as soon as the gap passes {TTL_MINUTES['5m']:g} minutes.")

# %% [markdown]
# Three regimes, then. With a request every minute or two, both lifetimes almost always hit and cost about
# the read price. With requests on a timer further apart than 5 minutes, the 5-minute entry never survives:
# every request pays the write premium and nothing comes back, while the 1-hour entry, dearer to write,
# keeps being read. Random traffic loses its hits gradually instead: the 5-minute cache still pays at an
# average gap of 10 minutes, and stops paying at the break-even gap printed above. With requests hours apart,
# every request misses either way, and "caching" costs more than not caching.
#
# So why offer the cheaper, shorter lifetime at all? For traffic that comes in bursts. A chat session of
# four quick requests followed by a long silence writes once per burst whichever TTL you pick, and then
# the smaller premium wins. `estimate_day` replays a day of such traffic through the simulator:

# %%
bursts = Traffic(sonnet.key, "5m", PREFIX, QUESTION, ANSWER, requests_per_day=32, arrivals="bursty", burst_size=4)
steady = Traffic(sonnet.key, "5m", PREFIX, QUESTION, ANSWER, requests_per_day=144, arrivals="fixed")
days = {}
for name, traffic in (("bursts", bursts), ("steady", steady)):
    days[name] = {ttl: estimate_day(replace(traffic, lifetime=ttl), sheets=sheets) for ttl in TTL_MINUTES}
    print(f"{name} ({arrivals_text(traffic)}): 5m TTL ${days[name]['5m'].cached_usd:.2f}, "
          f"1h TTL ${days[name]['1h'].cached_usd:.2f}, no cache ${days[name]['5m'].uncached_usd:.2f} a day")
    for ttl, day in days[name].items():  # the simulator hits where `hits_with_ttl` says, from arrival times alone
        assert day.whole_day and day.hits == sum(hits_with_ttl([t / 60 for t in day.arrivals_s], TTL_MINUTES[ttl]))
assert days["bursts"]["5m"].cached_usd < days["bursts"]["1h"].cached_usd
assert days["steady"]["1h"].cached_usd < days["steady"]["5m"].cached_usd

# %% [markdown]
# Pick the lifetime from the shape of your traffic: the 5-minute one for short bursts, the 1-hour one
# for a steady trickle whose gaps outlast five minutes, none at all for requests hours apart.
#
# ### The minimum cacheable length
#
# Under a provider's minimum nothing is cached, and OpenAI counts hits in steps of 128 tokens above it.
# Here is what each provider would bill as cached for a shared prefix of a given length:

# %%
picked = [sheets[k] for k in ("openai/gpt-5.5", "anthropic/claude-sonnet-4-5", "google/gemini-2.5-pro",
                              "anthropic/claude-opus-4-6")]
lengths = list(range(0, 5_001, 8))
figure = go.Figure()
for sheet in picked:
    figure.add_scatter(x=lengths, y=[cacheable_tokens(sheet, n) for n in lengths], name=sheet.name, line_shape="hv")
figure.update_layout(title=f"Tokens billed as cached vs shared prefix length<br><sup>price sheets checked {PRICES_CHECKED}</sup>",
                     xaxis_title="shared prefix (tokens)", yaxis_title="billed as cached (tokens)")
figure.show()
assert [cacheable_tokens(picked[0], n) for n in (1_023, 1_024, 1_151, 1_152)] == [0, 1_024, 1_024, 1_152]
assert cacheable_tokens(picked[1], 1_023) == 0 and cacheable_tokens(picked[1], 1_025) == 1_025
assert cacheable_tokens(picked[2], 2_047) == 0 and cacheable_tokens(picked[3], 4_095) == 0

# %% [markdown]
# ### Explicit caches and storage
#
# Google's explicit caches are objects you create and keep alive for a TTL you choose, and they bill
# storage for every hour they live, read or not. They pay off when reads are frequent enough for the
# read discount to cover the storage: storage ≤ reads per hour × (input − read price), per token.

# %%
pro = sheets["google/gemini-2.5-pro"]
CACHED = 100_000
rates = [r / 2 for r in range(0, 25)]
hourly = [explicit_cache_hourly_cost(pro, CACHED, r) for r in rates]
break_even_rate = storage_break_even_rate(pro)
figure = go.Figure()
figure.add_scatter(x=rates, y=[c for c, _ in hourly], name="explicit cache: storage + reads")
figure.add_scatter(x=rates, y=[p for _, p in hourly], name="no cache: full input price every time")
figure.add_vline(x=break_even_rate, line={"dash": "dot"}, annotation_text=f"{break_even_rate:g} requests/hour")
figure.update_layout(title=f"Cost per hour of a {CACHED:,}-token context<br><sup>{pro.name}, storage "
                           f"${pro.storage_per_mtok_hour}/M tokens/hour, checked {pro.checked}</sup>",
                     xaxis_title="requests per hour", yaxis_title="USD per hour (the cached context only)")
figure.show()
print(f"one hour of storage for {CACHED:,} tokens: ${storage_cost(pro, CACHED, 1):.2f}; break-even {break_even_rate:g} requests/hour")
first_hour = break_even_reuses(pro, storage_hours=1)
print(f"The first hour needs {first_hour} reads after the request that creates the cache: that request pays for the "
      f"context twice, once at the input price to create the cache and once at the cached price to use it.")
assert break_even_rate == 4 and first_hour == 5
assert storage_break_even_rate(sonnet) is None  # Anthropic bills no storage: the write premium pays for the lifetime

# %% [markdown]
# ### Your own traffic: the cost calculator
#
# Put it together for a prompt of your own. Set the static part (sent identically by every request: system
# prompt, tools, documents), the dynamic part (new every time: the question, the date), the answer's length,
# how many requests a day and how they arrive, then the provider, model and cache lifetime. Each change
# replays the day through `workbook.providers.simulate` and shows what a day costs with and without the
# cache, the hit rate the replay achieved, after how many reads a write pays back (`break_even_reuses`) and
# which cliffs the bill fell off. A busy day is too long to replay at every change: the calculator replays
# its first requests (at most a few thousand) and prices the rest at their average, and says so.

# %%
calculator = CostCalculatorView(price_sheets=sheets)
calculator.widget

# %% [markdown]
# Things to try: shrink the static part below 1,024 tokens; switch to OpenAI and set it to 1,100; choose bursts
# with a 5-minute lifetime, then a 1-hour one. Each shows one cliff, which the calculator names. Here are the
# three, found by the same function the view calls:

# %%
cliff_cases = {
    "minimum": Traffic(sonnet.key, "5m", static_tokens=1_000, requests_per_day=1_440),
    "step": Traffic("openai/gpt-5.5", "24h", static_tokens=1_100, requests_per_day=1_440),
    "expiry": Traffic(sonnet.key, "5m", requests_per_day=32, arrivals="bursty", burst_size=4),
}
for kind, traffic in cliff_cases.items():
    day = estimate_day(traffic, sheets=sheets)
    assert [c.kind for c in day.cliffs] == [kind]
    print(f"{day.sheet.name}, {traffic.static_tokens:,} static tokens, {arrivals_text(traffic)}: "
          f"${day.cached_usd:.2f} a day cached, ${day.uncached_usd:.2f} not, {day.hit_rate:.0%} hits.")
    print(f"  {day.cliffs[0].message}")
print(f"\nThe calculator's first answer took {calculator.state.latency_s * 1e3:.0f} ms on this machine "
      "(`python -m workbook.bench widgets` times a change).")

# %% [markdown]
# ### Pre-warming, for a launch
#
# Seed 000 advises to "pre-warm your cache" when you can predict the traffic, such as a product launch. With a
# provider's prefix cache, what a pre-warm buys is a burst's first second. Anthropic says a cache entry is
# available only once the first response has begun (the simulator assumes a first token 1 s after sending,
# `ASSUMED_FIRST_TOKEN_S`, and says so in its bills), so requests that arrive together all miss and all pay the
# write. One request sent a minute before the launch pays the write once; the burst then reads:

# %%
STATIC, BURST = 4_000, 20  # a 4,000-token system prompt; 20 users in the launch's first half second
launch = [Request([Block(list(range(STATIC)), cache_control="5m"), Block([50_000 + i])], at_s=60.0 + i * 0.025)
          for i in range(BURST)]
warm_up = Request([Block(list(range(STATIC)), cache_control="5m")], at_s=0.0, output_tokens=1)
cold_bills = simulate(sonnet.key, launch, sheets=sheets)
warm_bills = simulate(sonnet.key, [warm_up, *launch], sheets=sheets)
cold_usd, warm_usd = (sum(bill.cost_usd for bill in bills) for bills in (cold_bills, warm_bills))
assert all(bill.usage.cache_read_tokens == 0 for bill in cold_bills)  # nobody's response had begun yet
assert all(bill.usage.cache_read_tokens == STATIC for bill in warm_bills[1:])
print(f"{BURST} requests in the launch's first half second at {sonnet.name}: ${cold_usd:.4f} cold (each writes the "
      f"{STATIC:,} tokens), ${warm_usd:.4f} pre-warmed (one write, then {BURST} reads), the pre-warm included.")

# %% [markdown]
# ## 5. The seed articles' worked examples, recomputed
#
# The articles this workbook grew from include some napkin math. Checking it is a good exercise: most of
# it holds, and some of it does not.

# %%
gpt55 = sheets["openai/gpt-5.5"]

# Seed 002: a Codex session at GPT-5.5 prices ($5 input, $0.50 cached, $30 output per million).
codex = Usage(input_tokens=615_643, cache_read_tokens=7_505_280, output_tokens=31_771)
with_cache = cost(codex, gpt55)
without = cost(Usage(input_tokens=codex.total_input_tokens, output_tokens=codex.output_tokens), gpt55)
assert round(with_cache, 2) == 7.78                      # the article's $7.78: right
assert round(without, 2) == 41.56                        # the article's $41.55: a cent off (it added rounded rows)
assert round(without - with_cache, 2) == 33.77 and round(1 - with_cache / without, 2) == 0.81  # saved $33.77, 81%: right

# Seed 002's toy demo: 12 tokens cold, then 8 loaded + 4 computed, "per 1M repeats: $60 cold, $24 cached, saving $36".
toy_cold = cost(Usage(input_tokens=12), gpt55) * 1e6
toy_hit = cost(Usage(input_tokens=4, cache_read_tokens=8), gpt55) * 1e6
assert (round(toy_cold), round(toy_hit), round(toy_cold - toy_hit)) == (60, 24, 36)  # right
assert cacheable_tokens(gpt55, 8) == 0  # ...but no provider would cache 8 tokens

# Seed 002, quoting an independent test: "I intentionally modified the cached prefix by appending content, expecting a
# cache miss. Instead: 1,920 tokens cached. The system cached the longest matching substring, not just exact prefixes."
# Replay it: a prompt of 2,000 tokens (the article gives no length), the same prompt with content appended, then the
# same 2,000 tokens after one new token at the front, which a substring cache would find.
base = list(range(2_000))  # token ids
sent = {"first": base, "appended": base + list(range(50_000, 50_300)), "new first token": [99_999] + base}
bills = simulate(gpt55.key, [Request([Block(ids)], at_s=60.0 * i) for i, ids in enumerate(sent.values())], sheets=sheets)
mcginnis = {name: bill.usage.cache_read_tokens for name, bill in zip(sent, bills)}
assert mcginnis == {"first": 0, "appended": 1_920, "new first token": 0}
assert 1_920 == 15 * gpt55.cache_step  # the longest cached prefix, rounded down to OpenAI's 128-token steps
assert cacheable_tokens(gpt55, 1_920) == cacheable_tokens(gpt55, 2_047) == 1_920 < cacheable_tokens(gpt55, 2_048)

# Seed 001: "a 2,000-token system prompt and 100,000 requests/day" cost "$6/day ($2,160/year)". It names no price.
tokens_a_day = SEED_PROMPT_TOKENS * SEED_REQUESTS_PER_DAY
implied = seed_implied_input_price()  # USD per million input tokens that would make "$6/day" true
assert math.isclose(implied * tokens_a_day / 1e6, SEED_CLAIMED_PER_DAY_USD)
cheapest = min(sheets.values(), key=lambda s: s.input)
assert implied < cheapest.input  # no model on our sheets charges that little for plain input
assert SEED_CLAIMED_PER_YEAR_USD / SEED_CLAIMED_PER_DAY_USD == 360  # and its year has 360 days
# Its code example calls a Claude Sonnet model, so price it at Claude Sonnet 4.5's input price.
daily = traffic_cost(Usage(input_tokens=SEED_PROMPT_TOKENS), sonnet, requests_per_day=SEED_REQUESTS_PER_DAY)
assert round(daily.per_day_usd / SEED_CLAIMED_PER_DAY_USD) == 100 and round(sonnet.input / implied) == 100

# Seed 001: the first call "pays for 50,000 cache_creation_input_tokens (full price)"; later calls read "at 10% price".
assert cost(Usage(cache_write_tokens=50_000), sonnet) == 1.25 * cost(Usage(input_tokens=50_000), sonnet)  # 25% above full
assert round(cost(Usage(cache_read_tokens=50_000), sonnet) / cost(Usage(input_tokens=50_000), sonnet), 6) == 0.1  # right

# Seed 004: "for stable prefixes, input costs dropped by about 10x" (a 4,000-token prefix, a 50-token question).
ratio = cost(Usage(input_tokens=4_050), sonnet) / cost(Usage(input_tokens=50, cache_read_tokens=4_000), sonnet)
assert 8 < ratio < 10  # 9x: "about 10x" is fair, and it can only approach 10x as the question shrinks

print(f"Codex session: ${with_cache:.4f} with the cache, ${without:.4f} without")
print(f"Seed 001: {tokens_a_day / 1e6:,.0f}M input tokens a day. ${SEED_CLAIMED_PER_DAY_USD} a day needs input at "
      f"${implied:.2f} per million; the cheapest plain input on our sheets is {cheapest.name}'s ${cheapest.input:g}. "
      f"At {sonnet.name}'s ${sonnet.input:g}/M it is ${daily.per_day_usd:,.0f} a day, ${daily.per_year_usd:,.0f} a year.")
print(f"Seed 004: a cached 4,000-token prefix makes the input {ratio:.1f}x cheaper")
print("Seed 002's append test, replayed at GPT-5.5: " + ", ".join(f"{name} {n:,} cached" for name, n in mcginnis.items()))

# %% [markdown]
# The verdicts: the Codex table is right up to a cent of rounding, and so is the toy demo (although no
# provider would cache a 12-token prompt). Seed 001 names no price, so its "\\$6/day" can only be checked by
# asking what price it implies: a hundredth of Claude Sonnet 4.5's input price, and less than any model on our
# sheets charges for plain input. At Claude Sonnet 4.5's price (its code calls an earlier Sonnet), the day
# costs 100 times as much. (Its yearly figure is 360 days of \\$6.) Its code comment that the first call pays
# "full price" misses Anthropic's write premium: the first call pays 1.25× for the cached part.
#
# The test that seed 002 quotes (Will McGinnis's) is right about its number and wrong about its reason. Appending content leaves the start of the
# prompt as it was, so the cached prefix is still a prefix of the new prompt, and OpenAI reads the longest one it
# holds, in 128-token steps: 1,920 tokens of a prompt of 1,920 to 2,047. That is the rule, not an exception to it:
# "Cache hits are only possible for exact prefix matches within a prompt"
# ([OpenAI's guide](https://developers.openai.com/api/docs/guides/prompt-caching)). "Exact prefix match" means an
# exact match of the prompt's start, not of the whole prompt. A substring cache would also have found the 2,000
# tokens after a new first token; OpenAI reads nothing there, and neither does the simulator.
#
# Always redo the multiplication, and ask which price a figure assumes, before you quote it.
#
# ## 6. Faster is also visible
#
# Section 1 measured cold and cached TTFT on the same prefix. The gap is not only a saving; it is also a
# signal. Anyone who can send requests and time them can tell whether a prefix was already in the cache,
# that is, whether someone sent it recently. That is why lesson 4's cache keeps a separate tree per
# tenant, and why providers say their caches are not shared between organisations.

# %%
longest = measured[-1]
threshold = (longest.cold_s + longest.hit_s) / 2
print(f"{longest.prefix_tokens}-token prefix: cold {longest.cold_s * 1e3:.1f} ms, hit {longest.hit_s * 1e3:.1f} ms. "
      f"A request answered in under {threshold * 1e3:.1f} ms most likely hit the cache.")

# %% [markdown]
# ## What to take away
#
# - A cached prefix cuts time to first token in proportion to its length; a KV cache keeps every decode
#   step cheap however long the text gets. Measure both on the machine you care about.
# - Caching pays after `break_even_reuses` reads: one for Anthropic's 5-minute write, two for its 1-hour
#   write, zero where writes cost the plain input price.
# - A lifetime shorter than *every* gap (requests on a timer) turns every write into waste; random traffic
#   loses hits gradually and pays until the average gap reaches the break-even. Pick the lifetime from the
#   shape of your traffic, and price it with the calculator, which bills what the provider would.
# - Below the minimum length nothing is cached; explicit caches add storage by the hour, which frequent
#   reads must pay back.
# - Redo the arithmetic of any figure you quote, including this workbook's.
#
# ## Check yourself
#
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** An explicit cache at Gemini 2.5 Flash, the cheaper model, is kept alive hour after hour. At how
# many reads per hour does the storage exactly pay for itself? The break-even rate need not be a whole number.
# (`sheets["google/gemini-2.5-flash"]` holds its prices.)

# %%
answer_1 = None
check_storage_break_even(answer_1)

# %% [markdown]
# **Exercise 2.** A 5,000-token system prompt, a 100-token question and a 300-token answer, one request
# every 4 minutes, all day, at Claude Sonnet 4.5. Which cache lifetime is cheaper, `"5m"` or `"1h"`?
# (Reason it out first; `estimate_day` can check you, on a `Traffic` like `steady` above.)

# %%
answer_2 = None
check_ttl_choice(answer_2)

# %% [markdown]
# **Exercise 3.** Seed 001 says a 2,000-token system prompt sent 100,000 times a day costs "\\$6/day
# (\\$2,160/year)", without naming a price. Section 5 priced it at Claude Sonnet 4.5. At Claude Haiku 4.5's input
# price (`sheets["anthropic/claude-haiku-4-5"].input`, dollars per million tokens), what does it really cost per
# year (365 days), in US dollars?

# %%
answer_3 = None
check_seed_yearly_cost(answer_3)

# %%
print(f"lesson ran in {time.perf_counter() - lesson_start:.1f} s")
