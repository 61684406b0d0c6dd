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
# # Lesson 9: serving many users at once
#
# Until now every request ran alone. A real server runs dozens at once: in one forward pass it computes
# the new requests' prompts and one next token for every request already generating, and it keeps all of
# their K/V rows in one pool of fixed-size **pages**. Requests that share a system prompt point at the same
# pages instead of holding a copy each. This lesson runs our own batched server, `workbook.Server`, on the
# shipped model and measures what that buys, then asks how much memory all of this takes on a real model,
# and what storing the cache in fewer bits costs in quality.
#
# By the end of this lesson you will be able to:
#
# - explain why a batch of requests costs far less than the same requests one after another, and measure
#   throughput and per-request latency against batch size;
# - read a step-by-step timeline of static and continuous batching on the same arrivals;
# - count the pool pages requests use with and without a shared prefix, and say what happens at the pool's limit;
# - weigh time to first token against the gaps between tokens when long prompts are prefilled in chunks;
# - explain why speculative decoding helps less as the batch grows;
# - compute a real model's K/V bytes per token and per sequence from its `config.json`, and what
#   grouped-query attention, a quantised cache and a shorter context buy;
# - measure what an 8-, 4- and 2-bit cache does to the model's output;
# - recompute a published worked example and find where its steps disagree with each other.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(9)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import random
import time

import plotly.graph_objects as go
import torch

import workbook
from workbook import Engine, PagePool, PrefixCache, Server
from workbook.bench.serving import measure_decode, measure_mixed_load
from workbook.bench.speculative import lesson_prompts
from workbook.exercises.lesson9 import check_bytes_per_token, check_hardware_cost, check_shared_pages
from workbook.kv_memory import format_bytes, load_configs, multi_head_config
from workbook.lessons.serving import quantisation_rows, seed_003_recomputed, verify_cost
from workbook.timing import device_name
from workbook.widgets import KVMemoryView, PoolOccupancyView, ServingTimelineView

lesson_start = time.perf_counter()
torch.set_num_threads(1)  # one thread: steadier timings on a busy laptop (lesson 10 says why)
model = workbook.load_model(workbook.default_model())
tokenizer = workbook.load_tokenizer(workbook.default_model())
VOCAB = model.config.vocab_size
where = device_name(model.device)
print(f"{workbook.default_model()} on {where}, {torch.get_num_threads()} torch thread")

# %% [markdown]
# ## 1. One pass, many requests
#
# A decode step for one request reads every weight of the model to produce one token. A step for sixteen
# requests reads the same weights once and produces sixteen tokens: the weights are the same for everyone,
# only the activations and each request's own K/V rows differ. On a small model the fixed cost of a step
# (reading weights, launching kernels, Python) dominates, so adding requests is nearly free at first.
# Below, `concurrency` requests with 32-token prompts each generate 24 tokens side by side.
#
# *Predict first: sixteen requests at once — how many times the tokens per second of one?*

# %%
LEVELS = [1, 2, 4, 8, 16]
decode_rows = [measure_decode(model, tokenizer, c, prompt=32, new_tokens=24, vocab=VOCAB) for c in LEVELS]
single = decode_rows[0]["decode_tokens_per_s"]
for row in decode_rows:
    print(f"{row['concurrency']:3} requests: {row['decode_tokens_per_s']:7.0f} tokens/s "
          f"({row['decode_tokens_per_s'] / single:4.1f}x one), each waits {row['inter_token_ms_p50']:5.1f} ms per token")

figure = go.Figure()
figure.add_bar(x=[str(c) for c in LEVELS], y=[r["decode_tokens_per_s"] for r in decode_rows], name="tokens/s, all requests")
figure.add_scatter(x=[str(c) for c in LEVELS], y=[r["inter_token_ms_p50"] for r in decode_rows], yaxis="y2",
                   name="ms between one request's tokens", mode="lines+markers")
figure.update_layout(title=f"Decoding side by side, measured on {where}", xaxis_title="requests running at once",
                     yaxis_title="tokens/s (all requests)", yaxis2=dict(title="ms per token", overlaying="y", side="right"),
                     height=380, legend=dict(orientation="h", y=-0.25))
figure.show()

# %%
best = decode_rows[-1]
gain = best["decode_tokens_per_s"] / single
slower = best["inter_token_ms_p50"] / decode_rows[0]["inter_token_ms_p50"]
assert gain > 2, "a batch of 16 should produce well over twice the tokens per second of one request"
print(f"Sixteen requests together produced {gain:.1f}x the tokens per second of one, while each request "
      f"waited {slower:.1f}x as long for each of its tokens. Batching stops helping when a step's time grows in "
      f"proportion to the batch: then the pass is doing arithmetic, not waiting on weights or launches. Here "
      f"the step time grew {slower:.1f}x for a {best['concurrency']}x batch.")

# %% [markdown]
# ### Real chats, one batch
#
# The same server runs a real model. Four people ask SmolLM2-135M-Instruct (lesson 4 served it; `make setup`
# installed it) a question at the same moment; the server answers all four side by side, one forward pass
# per step for the whole batch.

# %%
real_model = workbook.load_model("smollm2-135m-instruct")
real_tokenizer = workbook.load_tokenizer("smollm2-135m-instruct")
real_server = Server(real_model, real_tokenizer, max_running=4)
REAL_QUESTIONS = ["Name three primary colours.", "How many days are in a leap year?", "What do bees make?",
                  "Give me a synonym for happy."]
asked = {real_server.submit([{"role": "user", "content": q}], max_new_tokens=24): q for q in REAL_QUESTIONS}
real_steps = 0
while real_server.step() is not None:
    real_steps += 1
answers = real_server.run_until_done()
for request_id, question in asked.items():
    print(f"{question!r}\n  -> {answers[request_id].text!r}")
one_by_one = sum(len(answers[i].output_ids) for i in asked)  # one pass per token, one request at a time
first_id = next(iter(asked))
real_alone = Engine(real_model, real_tokenizer).generate([{"role": "user", "content": asked[first_id]}], max_new_tokens=24)
assert real_alone.output_ids == answers[first_id].output_ids  # batching changed no token of this answer
assert real_steps < one_by_one
print(f"{len(asked)} chats in {real_steps} forward passes; one at a time they would have taken {one_by_one} "
      f"(batched: {real_steps / one_by_one:.0%} of the passes).")

# %% [markdown]
# Real answers, if not always right ones: a model of 135M parameters is small. The first answer is the one the
# model gives alone, token for token (checked above): sharing a pass with others changes no token.
#
# ## 2. Static and continuous batching, step by step
#
# Eight requests arrive over the first few steps; some want 4 tokens, some 20. **Static batching** takes
# a batch, runs it until *every* request in it has finished, then takes the next: a 4-token request that
# arrives just after a batch starts waits for the longest request of that batch. **Continuous batching**
# (Orca, vLLM, SGLang, and `workbook.Server`) lets requests join and leave between steps. Each row below is
# a request, each column a step; a cell says whether the request was prefilling, decoding, waiting or done.
#
# *Predict first: on the same arrivals, which finishes everything in fewer steps, and by how many?*

# %%
rng = random.Random(4)
TRACE = [(arrival, [rng.randrange(6, VOCAB) for _ in range(rng.randint(8, 40))], new)
         for arrival, new in [(0, 20), (0, 4), (1, 4), (2, 20), (3, 4), (5, 12), (6, 4), (8, 4)]]
timeline_view = ServingTimelineView(model, tokenizer, TRACE, mode="continuous", max_running=4)
timeline_view.widget

# %% [markdown]
# Click **Step** to move one forward pass, or switch between *static* and *continuous* and **Run to end**.
# Below, two more copies run both modes to the end, so the numbers are there whatever you clicked:

# %%
runs = {}
for mode in ("static", "continuous"):
    driven = ServingTimelineView(model, tokenizer, TRACE, mode=mode, max_running=4)
    driven.run_to_end()
    runs[mode] = driven.state
    print(f"{mode:>10}: {driven.state.steps} steps, {driven.state.mean_batch:.1f} requests per step on average")
assert runs["continuous"].steps < runs["static"].steps
assert runs["continuous"].mean_batch > runs["static"].mean_batch
print(f"Continuous batching finished the same work in {runs['static'].steps - runs['continuous'].steps} fewer steps, "
      "because a finished request's place is filled at the next step instead of at the end of its batch.")

# %% [markdown]
# ## 3. One copy of the system prompt
#
# Each running request has a **page table**: the pool pages holding its rows, in order (vLLM calls pages
# *blocks* and this a *block table*). When a request's
# prompt starts with a prefix the cache already holds, its page table simply lists the cached pages (a
# reference count on each page goes up; nothing is copied), and the request gets fresh pages only for its
# own tokens. Below, requests share a 256-token system prompt (16 pages of 16 tokens) and add 8 tokens of
# their own; each square is a page, coloured by who holds it.
#
# *Predict first: sixteen requests, with and without sharing — how many pages each way?*

# %%
SYSTEM = [rng.randrange(6, VOCAB) for _ in range(256)]
pool_view = PoolOccupancyView(model, tokenizer, capacity_tokens=8192)
pool_view.run(SYSTEM, n_requests=4, suffix_tokens=8, max_new_tokens=4, share=True)
pool_view.widget

# %%
memory = {}
for n in (1, 4, 16):
    for share in (True, False):
        counter = PoolOccupancyView(model, tokenizer, capacity_tokens=8192)
        counter.run(SYSTEM, n_requests=n, suffix_tokens=8, max_new_tokens=4, share=share)
        memory[n, share] = counter.state.counts.in_use
    print(f"{n:2} requests: {memory[n, True]:4} pages with sharing, {memory[n, False]:4} without")
prefix_pages = len(SYSTEM) // 16
assert memory[16, True] == prefix_pages + 16 * (memory[1, True] - prefix_pages)  # one prefix, then their own pages
assert memory[16, False] == 16 * memory[1, False]
print(f"With sharing, sixteen requests hold the system prompt's {prefix_pages} pages once: "
      f"{memory[16, True]} pages in all, {memory[16, False] / memory[16, True]:.1f}x fewer than without.")

# %% [markdown]
# **At the pool's limit.** Memory runs out in two stages. First the cache evicts prefixes nobody is using
# (least recently used first). When even that is not enough for the running requests' next rows, the server
# **preempts** the request it admitted last: its pages are released, it goes back to the front of the queue,
# and later it is recomputed (with a prefix hit where its pages are still cached). Its output does not
# change, because the recomputed rows are the same rows. A pool of 640 tokens (40 pages), one cold prefix
# cached from earlier, then twelve requests on the system prompt:

# %%
small = PrefixCache(PagePool.for_tokens(640, 16))
busy = Server(model, tokenizer, small, max_running=12)
busy.submit([rng.randrange(6, VOCAB) for _ in range(200)], max_new_tokens=1)  # a prefix nobody asks for again
busy.run_until_done()
cold_pages = small.tree_pages()
busy_ids = [busy.submit(SYSTEM[:128] + [100 + i] * 8, max_new_tokens=24, stop_at_eos=False) for i in range(12)]
steps = []
while (snapshot := busy.step()) is not None:
    steps.append(snapshot)
busy_results = busy.run_until_done()
preempted = sorted({rid for s in steps for rid in s.preempted})
evictions = small.stats().evictions
print(f"The cold prefix's {cold_pages} pages were evicted ({evictions} eviction{'s' * (evictions != 1)}); "
      f"then requests {preempted} were preempted {sum(len(s.preempted) for s in steps)} times in {len(steps)} steps.")
alone = Engine(model, tokenizer)
assert small.stats().evictions >= 1 and preempted
assert all(busy_results[rid].output_ids == alone.generate(SYSTEM[:128] + [100 + i] * 8, max_new_tokens=24,
                                                           stop_at_eos=False).output_ids for i, rid in enumerate(busy_ids))
assert busy.pages_in_use == small.tree_pages()  # every request gave its pages back: no leak
print("Every request, preempted or not, gave exactly the tokens it gives alone.")

# %% [markdown]
# ## 4. First token or steady tokens: chunked prefill
#
# A long prompt arriving in the middle of a chat is computed in one step unless told otherwise, and that
# step is long: every chat that is decoding waits for it, and their next token comes late. **Chunked
# prefill** (Sarathi-Serve) computes a long prompt a slice at a time, beside the decodes, so no step is
# very long; the long prompt's own first token comes later. (The paper is Agrawal et al., "Taming
# Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve", OSDI 2024; seed 003 cites it under
# another title.) Short chats are decoding while 512-token
# prompts arrive every 8 steps; the same arrivals run with whole prefills and with 128-token chunks.

# %%
mixed = {label: measure_mixed_load(model, tokenizer, chunk, VOCAB, long=512) for label, chunk in
         (("whole prompts", None), ("128-token chunks", 128))}
for label, row in mixed.items():
    print(f"{label:>17}: chats' worst token gap {row['inter_token_ms_max']:6.1f} ms (p50 {row['inter_token_ms_p50']:5.1f}); "
          f"long prompts' first token p50 {row['ttft_long_ms_p50']:6.1f} ms")
whole, chunked = mixed["whole prompts"], mixed["128-token chunks"]
assert whole["requests"] == chunked["requests"]  # the same arrivals, all served
steadier = chunked["inter_token_ms_max"] < whole["inter_token_ms_max"]
print(f"Here chunking {'cut' if steadier else 'did not cut'} the chats' worst gap "
      f"({whole['inter_token_ms_max']:.0f} → {chunked['inter_token_ms_max']:.0f} ms) and moved the long prompts' "
      f"first token from {whole['ttft_long_ms_p50']:.0f} to {chunked['ttft_long_ms_p50']:.0f} ms. "
      + ("That is Sarathi-Serve's trade: steady tokens for a later first one." if steadier else
         "Where a whole prompt is as cheap as a decode step (a GPU running a small model), chunks only add steps."))

# %% [markdown]
# ## 5. Speculative decoding under load
#
# Lesson 6's speedup rested on one fact: checking k guesses in one pass costs about as much as computing
# one token, because a one-token pass is bound by reading weights, not by arithmetic. In a batch, a step
# already does arithmetic for many requests per weight read, so the k+1 tokens of every request start to
# cost their share. Below, one pass over 5 new tokens (k = 4) for each request in a batch, against a pass
# over 1 token for the same batch:

# %%
verify = {batch: verify_cost(model, batch, k=4) for batch in (1, 4, 16)}
for batch, ratio in verify.items():
    print(f"batch {batch:2}: checking 4 guesses costs {ratio:.2f} one-token passes")
assert verify[1] < 5, "at batch 1, five tokens in one pass must cost less than five passes"
rising = verify[16] > verify[1]
print(f"At batch 1 the check cost {verify[1]:.2f} passes; at batch 16, {verify[16]:.2f}. "
      + ("The check gets dearer as the batch grows, so speculation's gain shrinks under load." if rising else
         "On this machine the pass is still bound by fixed costs at batch 16, so the check has not got dearer yet."))

# %% [markdown]
# ## 6. K/V memory at real scale
#
# Our model is tiny. A real one's cache is not. Every token keeps a key and a value in every layer for every
# **K/V head** (grouped-query attention shares one K/V head among several query heads), each `head_dim`
# numbers. `workbook.kv_memory(config, context_tokens)` does the arithmetic from a model's `config.json`;
# the configs in `data/configs/` are copied from each model's published file, with its source.
#
# DeepSeek-V2-Lite saves memory another way, **multi-head latent attention** (MLA, from the DeepSeek-V2
# paper, arXiv:2405.04434): each layer caches one compressed vector per token, plus a small key that carries
# the position, and every head rebuilds its own K and V from that vector when attention reads it. Its cache
# therefore does not grow with the number of heads at all.
#
# Two choices make the table below agree with the calculator under it:
#
# - **One length per model, never beyond what it can read.** Each sequence is `CONTEXT` tokens, or the
#   model's `max_position_embeddings` (the longest context it was made for) where that is shorter.
# - **GPU memory in GiB** (2³⁰ bytes). NVIDIA names its cards in round "GB", but for these cards the memory
#   is that number in GiB: in Modal's `nvidia-smi` readings, an A100 80GB has 81,920 MiB, exactly 80 GiB,
#   and an H100 80GB has 81,559 MiB, a little under
#   ([Modal, "Why does an NVIDIA H100 80GB card offer 85.52 GB?"](https://thundergolfer.com/blog/nvidia-gpu-memory-capacity)).
#   So "80 GB" below is 80 GiB.

# %%
configs = load_configs()
CONTEXT = 8192
llama8 = workbook.kv_memory(configs["llama-3-8b"], CONTEXT)
assert llama8.bytes_per_token == 2 * 32 * 8 * 128 * 2 == 128 * 1024  # 128 KiB per token in 16 bits
assert llama8.per_sequence_bytes == 2 ** 30  # so exactly 1 GiB for one 8,192-token sequence
mha = workbook.kv_memory(configs["llama-2-7b"], 1)
assert mha.bytes_per_token == 4 * llama8.bytes_per_token  # 32 K/V heads against Llama 3's 8
GPU_GIB = 80
GPU = GPU_GIB * 2 ** 30
assert 81_920 * 2 ** 20 == GPU  # the A100 80GB's reading in MiB, from the source above
print(f"{GPU_GIB} GiB is {GPU:,} bytes, {GPU / (GPU_GIB * 10 ** 9) - 1:.1%} more than {GPU_GIB}·10⁹. "
      f"Sequences that fit in it beside the model's 16-bit weights:\n")
print(f"{'model':32} {'per token':>10} {'context':>8} {'per sequence':>13} {'sequences':>10}")
for key, config in configs.items():
    context = min(CONTEXT, config["max_position_embeddings"])
    m = workbook.kv_memory(config, context)
    print(f"{config['model']:32} {format_bytes(m.bytes_per_token):>10} {context:>8,} "
          f"{format_bytes(m.per_sequence_bytes):>13} {m.sequences_that_fit(GPU):>10,}")

lite = configs["deepseek-v2-lite"]
lite_per_head = workbook.kv_memory(multi_head_config(lite), 1).bytes_per_token
lite_mla = workbook.kv_memory(lite, 1).bytes_per_token
print(f"\nDeepSeek-V2-Lite's MLA keeps {format_bytes(lite_mla)} per token where a K and a V per head would take "
      f"{format_bytes(lite_per_head)}: {lite_per_head / lite_mla:.1f}x less.")
mistral = configs["mistral-7b"]
window = mistral["sliding_window"]
assert window < CONTEXT <= mistral["max_position_embeddings"]
per_token = workbook.kv_memory(mistral, 1).bytes_per_token
print(f"Mistral 7B v0.1 attends only to the last {window:,} tokens (its sliding window), so a server that keeps them "
      f"in a rolling buffer (the Mistral 7B paper, arXiv:2310.06825, section 2) needs {format_bytes(per_token * window)} "
      f"per sequence, not {format_bytes(per_token * CONTEXT)}. The table and the calculator count every token, as a "
      "full cache does.")
calculator = KVMemoryView()
assert (calculator.state.gpu_gib, calculator.state.context_tokens) == (GPU_GIB, CONTEXT)
assert calculator.state.sequences == llama8.sequences_that_fit(GPU)  # the calculator below agrees with the table

# %%
calculator.widget

# %% [markdown]
# ## 7. A quantised cache, measured
#
# Storing K/V in fewer bits lets more sequences fit. Our pool can keep rows as `int8`, `int4` or `int2`
# (each row of each head on its own grid between its minimum and maximum) or as 8-bit floats (`fp8`), and
# turns them back into float32 when attention reads them. Seed 003 says "INT8 usually has negligible
# quality impact, INT4 small but measurable, INT2 noticeable degradation". The seed means quantising the
# model's *weights*; here we test its claim on another object, the K/V cache, with the weights left in
# float32. Each format runs against float32 rows on three lesson prompts, 64 greedy tokens each.
#
# How to read the table: for the first generated token, **max |Δ logit|** is the largest change in any
# token's score, and **KL (nats)** is the Kullback–Leibler divergence Σ p·ln(p/q), where p is float32's
# next-token probabilities and q the quantised run's: zero when the two agree, and larger the more
# probability moves to other tokens. Both are the worst of the three prompts.

# %%
prompts = lesson_prompts(tokenizer)[:3]
quant = quantisation_rows(model, tokenizer, prompts, new_tokens=64)
full_page = PagePool.for_tokens(1024, 16)
full_page.bind(model)
print(f"{'format':>6} {'bytes/page':>10} {'of float32':>10} {'max |Δ logit|':>14} {'KL (nats)':>10} {'same tokens':>12}")
for r in quant:
    print(f"{r.kind:>6} {r.bytes_per_page:>10,} {r.bytes_per_page / full_page.bytes_per_page():>10.0%} "
          f"{r.max_abs_logit_change:>14.3f} {r.kl:>10.5f} {r.agreement:>12.0%}")
by_kind = {r.kind: r for r in quant}
assert by_kind["int8"].max_abs_logit_change < by_kind["int4"].max_abs_logit_change < by_kind["int2"].max_abs_logit_change
assert by_kind["int2"].bytes_per_page < by_kind["int4"].bytes_per_page < by_kind["int8"].bytes_per_page
assert by_kind["int8"].kl < by_kind["int4"].kl < by_kind["int2"].kl
print(f"int8 kept {by_kind['int8'].agreement:.0%} of the greedy tokens, int4 {by_kind['int4'].agreement:.0%}, "
      f"int2 {by_kind['int2'].agreement:.0%} (tokens matching float32 before the first difference). The seed's order "
      f"holds here: int8's KL divergence is {by_kind['int4'].kl / by_kind['int8'].kl:.0f}x smaller than int4's, which "
      f"is {by_kind['int2'].kl / by_kind['int4'].kl:.0f}x smaller than int2's. fp8 keeps 3 bits of mantissa per "
      f"number where int8 has 256 levels per row, and drifted {'more' if by_kind['fp8'].kl > by_kind['int8'].kl else 'less'} "
      "than int8 here.")

# %% [markdown]
# A greedy output that differs from float32's at some token then continues differently, so "same tokens"
# counts only up to the first difference. Seed 003's table says inference optimization has "No quality
# impact (same model, same outputs)". That holds for the exact ones (a prefix hit, below; speculative
# decoding, lesson 6), not for the lossy ones: a quantised cache is the same model, and the KL column
# above is how far its outputs moved. A quantised pool must still reuse exactly: a hit reads the very
# rows a cold run on the same pool computed and stored.

# %%
question = lesson_prompts(tokenizer)[0]
for kind in ("int8", "int4"):
    cold = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(1024, 16, kind))).generate(question, max_new_tokens=16)
    warm = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(1024, 16, kind)))
    warm.generate(question, max_new_tokens=1)
    hit = warm.generate(question, max_new_tokens=16)
    assert hit.cached_tokens > 0 and hit.output_ids == cold.output_ids
    assert (hit.first_token_logits - cold.first_token_logits).abs().max() <= 1e-4
    print(f"{kind}: a hit of {hit.cached_tokens} tokens gave the cold run's tokens exactly")

# %% [markdown]
# ## 8. Seed 003's worked example, recomputed
#
# The article starts from a 70B model "served naively" at \\$0.03 a request and 10 requests a second, then
# distils to 7B (\\$0.005, 40 a second, "on the same hardware"), quantises to INT4 (\\$0.002, 80 a second,
# "14GB to 4GB") and adds batching and paging (200 a second), and concludes "15x cost reduction and 20x
# throughput improvement". A server's bill per second is cost per request times requests per second:

# %%
steps_003 = seed_003_recomputed()
for s in steps_003:
    stated = "not given" if s.cost_per_request is None else f"${s.cost_per_request:.3f}"
    implied = "" if s.implied_dollars_per_s is None else f", so the hardware costs ${s.implied_dollars_per_s:.2f}/s"
    print(f"{s.step:36} {s.requests_per_s:4} req/s, {stated} a request{implied}; "
          f"on the starting point's hardware: ${s.cost_if_same_hardware:.4f}")
first, distilled, int4, batched = steps_003
assert abs(first.implied_dollars_per_s - 0.30) < 1e-9 and abs(distilled.implied_dollars_per_s - 0.20) < 1e-9
assert round(first.cost_per_request / int4.cost_per_request) == 15  # the "15x" stops at step 2
assert batched.requests_per_s / first.requests_per_s == 20  # the "20x" includes step 3
assert abs(first.cost_per_request / batched.cost_if_same_hardware - 20) < 1e-9
assert 7e9 * 2 / 1e9 == 14 and 7e9 * 0.5 / 1e9 == 3.5  # 16-bit and 4-bit weights of 7B parameters, in GB
print(f"On the same hardware the distilled model would cost ${distilled.cost_if_same_hardware:.4f} a request, not "
      f"${distilled.cost_per_request}: the stated figures imply hardware that gets cheaper at every step "
      f"(${first.implied_dollars_per_s:.2f}, ${distilled.implied_dollars_per_s:.2f}, "
      f"${int4.implied_dollars_per_s:.2f} a second). The \"15x\" is step 2's cost and ignores step 3; at a fixed "
      f"hardware price, 20x the throughput is 20x cheaper per request (${batched.cost_if_same_hardware:.4f}). "
      "The memory figures hold: 7B parameters are 14 GB in 16 bits and 3.5 GB in 4 bits, about 4 GB with overheads.")

# %% [markdown]
# ## Check yourself
#
# **Exercise 1.** A model (made up for this exercise) has 48 layers, 40 query heads, 8 K/V heads and a
# hidden size of 5,120. In 16 bits, how many KiB of K/V does one token take?

# %%
answer_1 = None
check_bytes_per_token(answer_1)

# %% [markdown]
# **Exercise 2.** Fourteen requests start from one cached 512-token system prompt, add 40 tokens of their own
# and each generate 24 tokens, with pages of 16 tokens. At most how many pool pages do they hold together?

# %%
answer_2 = None
check_shared_pages(answer_2)

# %% [markdown]
# **Exercise 3.** A vendor says its model costs \\$0.004 a request at 25 requests a second, and that after
# quantisation it costs \\$0.0012 a request at 70 requests a second "on the same hardware". What must the
# hardware cost per second for the second claim to be true (in dollars)? Does it fit the first claim?

# %%
answer_3 = None
check_hardware_cost(answer_3)

# %%
print(f"lesson ran in {time.perf_counter() - lesson_start:.1f} s")
