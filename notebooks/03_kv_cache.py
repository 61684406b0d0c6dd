# ---
# jupyter:
#   jupytext:
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
# # Lesson 3 · The KV cache: compute each row once
#
# A model writes its answer one token at a time, and every new token needs a full pass
# through the model. Lesson 2 showed that appending a token leaves every earlier row
# unchanged. So why compute those rows again on every pass? The **KV cache** keeps each
# layer's keys and values once they are computed, and each later pass computes only the new
# token's row.
#
# By the end of this lesson you will be able to:
#
# - generate text with and without a KV cache and prove that the model's outputs are the same;
# - count the work both ways, in K/V rows and in FLOPs, and measure the time of one decoding step:
#   it grows with the length without a cache and far more slowly with one (summed over a whole
#   generation, the work grows with the square of the length without a cache, linearly with one);
# - work out how many bytes of cache one token needs from a model's configuration, and check
#   it against the real tensors;
# - read a KV rows table: what is stored for each token in each layer, and whether a row was
#   computed or loaded.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(3)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import plotly.graph_objects as go
import torch
from IPython.display import display
from torch.utils.flop_counter import FlopCounterMode

import workbook
from workbook.counting import forward_flops, kv_bytes_per_token, rows_computed
from workbook.kv_memory import format_bytes, head_dim, kv_heads, load_configs
from workbook.exercises import lesson3
from workbook.timing import measure
from workbook.widgets.decode_stepper import DecodeStepper
from workbook.widgets.kv_rows import KVRowsTable
from workbook.widgets.style import WITH_CACHE, WITHOUT_CACHE

model_name = workbook.default_model()
tokenizer = workbook.load_tokenizer(model_name)
model = workbook.load_model(model_name)
cfg = model.config
print(f"model {model_name!r}: {model.num_parameters():,} parameters, {cfg.num_layers} layers, "
      f"{cfg.num_kv_heads} key/value heads of {cfg.head_dim} numbers, on {model.device}")

# %% [markdown]
# ## 1. Two ways to generate
#
# Both functions below generate greedily (always the most likely token). The first runs the
# whole sequence through the model on every step. The second makes a cache, sends the prompt
# once, and from then on sends only the newest token; the model appends that token's **K/V rows** (its
# key and value vectors, one row per layer and head) to the cache and lets it attend to all the rows
# already there.
#
# Two words for the two phases, used from here on: **prefill** is the first pass over the whole
# prompt, which computes a row for every prompt token at once and gives the first new token;
# **decode** is each later step, one new token at a time.

# %%
system = "You are a helpful assistant for an online shop. Answer briefly."


def chat_ids(question):
    """Token ids of a system prompt plus one user question, in the model's chat format if it has one."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    text = tokenizer.apply_chat_template(messages) if tokenizer.chat_templates else f"{system}\n{question}\n"
    return tokenizer.encode(text)


prompt_ids = chat_ids("How do I return a pair of shoes?")
new_tokens = 24


def generate_without_cache(ids, new_tokens):
    ids, step_logits = list(ids), []
    for _ in range(new_tokens):
        logits = model(torch.tensor([ids]), last_only=True)[0, -1]  # every row, every time
        step_logits.append(logits)
        ids.append(int(logits.argmax()))
    return ids, step_logits


def generate_with_cache(ids, new_tokens):
    ids, step_logits = list(ids), []
    cache = model.new_cache(len(ids) + new_tokens)
    todo = ids  # the first pass sends the whole prompt...
    for _ in range(new_tokens):
        logits = model(torch.tensor([todo]), cache=cache, last_only=True)[0, -1]
        step_logits.append(logits)
        ids.append(int(logits.argmax()))
        todo = ids[-1:]  # ...every later pass only the newest token
    return ids, step_logits, cache


ids_plain, logits_plain = generate_without_cache(prompt_ids, new_tokens)
ids_cached, logits_cached, cache = generate_with_cache(prompt_ids, new_tokens)

largest = max((a - b).abs().max().item() for a, b in zip(logits_plain, logits_cached))
assert ids_cached == ids_plain
assert largest < 1e-4
print(f"prompt: {len(prompt_ids)} tokens; the same {new_tokens} tokens generated both ways")
print(f"largest logit difference over all {new_tokens} steps: {largest:.1e}")
print(repr(tokenizer.decode(ids_cached[len(prompt_ids):])))

# %% [markdown]
# Same tokens, same logits up to float rounding (the largest difference is printed above, and
# the assert allows at most 10⁻⁴: the cached pass adds up the same numbers in a different order). The cache changes how much work is done, not what comes out.

# %% [markdown]
# ## 2. Counting the work
#
# **Rows.** Call one token's keys and values across all layers a *row*. Generating n tokens
# takes n passes, and pass k sees prompt + k tokens. Without a cache each pass computes all of
# them; with a cache the first pass computes the prompt and every later pass one row.
# `workbook.counting.rows_computed` has the formula; here it is checked against a step-by-step count.

# %%
p = len(prompt_ids)
per_step_without = [p + k for k in range(new_tokens)]
per_step_with = [p] + [1] * (new_tokens - 1)
assert sum(per_step_without) == rows_computed(p, new_tokens, cached=False)
assert sum(per_step_with) == rows_computed(p, new_tokens, cached=True) == cache.length == len(ids_cached) - 1
print(f"rows computed for {new_tokens} tokens: {sum(per_step_without):,} without a cache, {sum(per_step_with):,} with")

# %% [markdown]
# (The cache ends up holding one row fewer than the final sequence: the last token chosen has
# not been through the model yet. It would be, on the next step.)
#
# **FLOPs.** Most of the arithmetic in a forward pass is matrix products. Every new token is
# multiplied by every weight matrix, which costs 2 FLOPs (a multiply and an add) per weight.
# Attention adds, per layer and head, about 4 × head_dim FLOPs for each (query, visible key)
# pair: a dot product for the score and a weighted sum of the value. `workbook.counting.forward_flops`
# counts both. Rather than trust it, compare it with PyTorch's own FLOP counter on one cached
# step (the written-out attention, so the counter can see its matrix products):

# %%
with FlopCounterMode(display=False) as counter:
    model(torch.tensor([ids_cached[-1:]]), cache=cache, record_attention=[], last_only=True)
ours = forward_flops(cfg, n_new=1, n_past=cache.length - 1)
print(f"PyTorch counted {counter.get_total_flops():,} FLOPs; forward_flops says {ours.total:,} "
      f"({ours.weights:,} for weights, {ours.attention:,} for attention)")
assert counter.get_total_flops() == ours.total
cache.crop(cache.length - 1)  # undo that extra step

# %% [markdown]
# Now compare one decode step at growing lengths: without a cache the step processes all n
# tokens (and each of them attends to everything before it), with a cache it processes one.

# %%
lengths = [n for n in (64, 128, 256, 512) if n <= cfg.max_position_embeddings]
table = []
for n in lengths:
    without = forward_flops(cfg, n_new=n).total
    with_cache = forward_flops(cfg, n_new=1, n_past=n - 1).total
    table.append((n, without, with_cache))
    print(f"n = {n:4}: {without:>14,} FLOPs without a cache, {with_cache:>11,} with ({without / with_cache:,.0f}x)")

# %% [markdown]
# The two parts of that count grow differently. Per step, the weight FLOPs (and the rows computed)
# are proportional to the tokens processed: n without a cache, 1 with one. The attention FLOPs are
# proportional to the (query, key) pairs: about n²/2 without a cache, n with one. Summed over a whole
# generation of n tokens, weight FLOPs therefore grow as n² without a cache and as n with one, and
# attention FLOPs as n³ without and n² with. The chart shows both parts, summed step by step.

# %%
totals = {"weights, without": [], "weights, with": [], "attention, without": [], "attention, with": []}
for n in lengths:
    steps_without = [forward_flops(cfg, n_new=k) for k in range(1, n + 1)]
    steps_with = [forward_flops(cfg, n_new=1, n_past=k - 1) for k in range(1, n + 1)]
    totals["weights, without"].append(sum(f.weights for f in steps_without))
    totals["weights, with"].append(sum(f.weights for f in steps_with))
    totals["attention, without"].append(sum(f.attention for f in steps_without))
    totals["attention, with"].append(sum(f.attention for f in steps_with))
figure = go.Figure()
for name, values in totals.items():
    figure.add_scatter(x=lengths, y=values, name=name, mode="lines+markers",
                       line=dict(color=WITHOUT_CACHE if name.endswith("without") else WITH_CACHE,
                                 dash="solid" if name.endswith("without") else "dash"),
                       marker=dict(symbol="circle" if name.startswith("weights") else "diamond"))
figure.update_layout(title="FLOPs summed over a generation of n tokens", xaxis_title="n (tokens)",
                     yaxis_title="FLOPs", yaxis_type="log", xaxis_type="log", height=380)
figure.show()
# Doubling n: about 4x and 2x for the weights, about 8x and 4x for attention.
first, last = 0, len(lengths) - 1
growth = {name: values[last] / values[first] for name, values in totals.items()}
scale = lengths[last] / lengths[first]
assert scale ** 1.8 < growth["weights, without"] < scale ** 2.2 and scale ** 0.9 < growth["weights, with"] < scale ** 1.1
assert scale ** 2.7 < growth["attention, without"] < scale ** 3.3
assert scale ** 1.8 < growth["attention, with"] < scale ** 2.2

# %% [markdown]
#
# **Time.** FLOPs are a count; time is what you wait for. `workbook.timing.measure` runs a
# step a few times after a warm-up and reports the median; the bars on the chart reach from the
# fastest run to the slowest. No assertion here: timings depend on the machine and on what else
# it is doing.

# %%
times_without, times_with = [], []
long_ids = (prompt_ids * (max(lengths) // len(prompt_ids) + 1))[: max(lengths)]
for n in lengths:
    x = torch.tensor([long_ids[:n]])
    times_without.append(measure(lambda: model(x, last_only=True), warmup=1, repeats=3))
    filled = model.new_cache(n)
    model(x[:, :-1], cache=filled)  # n - 1 rows already cached
    last = x[:, -1:]

    def cached_step():
        model(last, cache=filled, last_only=True)
        filled.crop(n - 1)  # roll back, so every repeat measures the same step

    times_with.append(measure(cached_step, warmup=1, repeats=3))


def medians_ms(timings):
    return [t.median_s * 1e3 for t in timings]


def spread_ms(timings):
    """Error bars from each median down to the fastest run and up to the slowest."""
    return dict(symmetric=False, array=[(max(t.samples_s) - t.median_s) * 1e3 for t in timings],
                arrayminus=[(t.median_s - t.min_s) * 1e3 for t in timings])


figure = go.Figure()
figure.add_scatter(x=lengths, y=medians_ms(times_without), error_y=spread_ms(times_without),
                   name="without cache: all n tokens", line=dict(color=WITHOUT_CACHE), marker=dict(symbol="circle"))
figure.add_scatter(x=lengths, y=medians_ms(times_with), error_y=spread_ms(times_with), name="with KV cache: 1 token",
                   line=dict(color=WITH_CACHE, dash="dash"), marker=dict(symbol="square"))
figure.update_layout(title="One decode step at sequence length n (median of 3, bars from fastest to slowest)",
                     xaxis_title="n (tokens)", yaxis_title="milliseconds", height=380)
figure.show()
for n, a, b in zip(lengths, medians_ms(times_without), medians_ms(times_with)):
    print(f"n = {n:4}: {a:7.2f} ms without, {b:6.2f} ms with ({a / b:.1f}x)")

# %% [markdown]
# On a quiet machine the time ratio is far smaller than the FLOP ratio, though it grows with
# the length. (If the numbers jump around, something else is using the processor; run the
# cell again.) A single token is too little work to keep a processor busy, so fixed costs
# dominate a cached step: Python, launching each operation, and reading every weight from
# memory. Reading the weights costs the same whether one token uses them or 500, which is
# why one cached step is not hundreds of times faster than a 512-token pass. The cache still
# wins, and by more as sequences grow.

# %% [markdown]
# ## 3. Step by step
#
# The stepper runs both kinds of generation side by side. Each **Step** makes one pass per
# side and plots the rows computed, the counted FLOPs and the measured time of that pass.
# Step 1 is the prompt, computed in full on both sides; after that the cached side computes one
# row per step while the other side computes ever more.
#
# Each point of the time chart is one pass timed once, so now and then a point jumps: that is your
# laptop doing something else, not the cache. The rows and FLOPs beside it never jump.
#
# **Predict first:** at step 10, how many rows does each side compute in that one step? Write both
# numbers down before you click.

# %%
stepper = DecodeStepper(model, tokenizer, prompt="May the force be with you. Write a short story:")
display(stepper.widget)

# %%
driven = DecodeStepper(model, tokenizer, prompt="May the force be with you. Write a short story:")
driven.step(6)  # the same as clicking Step six times, on a second copy: the stepper above is yours to click
s = driven.state
print("rows without cache:", s.rows_without)
print("rows with cache:   ", s.rows_with)
assert s.rows_with[1:] == [1] * 5 and s.rows_without == list(range(s.rows_without[0], s.rows_without[0] + 6))
assert max(s.max_logit_diff) < 1e-4 and s.flops_with[-1] < s.flops_without[-1]

# %% [markdown]
# ## 4. How much memory does the cache take?
#
# For every token, the cache stores one key and one value vector per key/value head, in every
# layer. So the bytes per token are
#
# 2 (K and V) × layers × KV heads × head_dim × bytes per number
#
# Let us compute that from the configuration and compare it with what the cache reports and
# with the sizes of its actual tensors.

# %%
bytes_per_number = torch.finfo(model.dtype).bits // 8
from_config = kv_bytes_per_token(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, bytes_per_number)
reported = cache.bytes_per_token()
tensors = sum(t.numel() * t.element_size() for t in cache.keys + cache.values) // cache.capacity
print(f"2 × {cfg.num_layers} layers × {cfg.num_kv_heads} KV heads × {cfg.head_dim} × {bytes_per_number} bytes "
      f"= {from_config:,} bytes per token")
print(f"the cache reports {reported:,}; its tensors hold {tensors:,} bytes per row")
assert from_config == reported == tensors

weight_bytes = model.num_parameters() * bytes_per_number
print(f"a 2,000-token prompt needs {2000 * from_config / 2**20:.1f} MiB of cache; the weights take "
      f"{weight_bytes / 2**20:.1f} MiB, so past {weight_bytes // from_config:,} tokens the cache is the bigger one")
if cfg.num_kv_heads < cfg.num_heads:
    print(f"grouped-query attention: {cfg.num_heads} query heads share {cfg.num_kv_heads} K/V heads, "
          f"so the cache is {cfg.num_heads // cfg.num_kv_heads}x smaller than with one K/V head per query head")

# %% [markdown]
# This is the memory a server must hold for every request it is working on, and what a
# prompt cache keeps between requests. For big models it is large. The same formula, on Llama 3
# 8B's published configuration (`data/configs/llama-3-8b.json`) with 16-bit numbers:

# %%
llama = load_configs()["llama-3-8b"]
llama_layers, llama_heads, llama_dim = llama["num_hidden_layers"], kv_heads(llama), head_dim(llama)
llama_bytes = kv_bytes_per_token(llama_layers, llama_heads, llama_dim, 2)
print(f"Llama 3 8B: 2 × {llama_layers} layers × {llama_heads} KV heads × {llama_dim} × 2 bytes = {llama_bytes:,} bytes "
      f"({format_bytes(llama_bytes)}) per token; a 2,000-token system prompt fills {format_bytes(2000 * llama_bytes)}")

# %% [markdown]
# Only keys and values are kept: a query is needed once, by its own token, and never again.

# %% [markdown]
# ## 5. Computed or loaded
#
# The cache also records each row's *provenance*: `computed` by a forward pass here, or
# `loaded` from somewhere else. The table shows the rows of our generation; the toggle splits
# each row into the K and V it stores in every layer. A long run of rows of one kind is folded
# to its first and last few rows; tick **Show every row** to see them all.

# %%
table = KVRowsTable(tokenizer, num_layers=cfg.num_layers, fold=5)
table.show(ids_cached[: cache.length], cache.provenance)
display(table.widget)

# %% [markdown]
# Every row so far was computed. Now a preview of lesson 4: start a second request with the
# same prompt and a different question. Instead of computing the shared part, copy its rows
# from the first cache (marked `loaded`), compute only the rest, and check that the result is
# exactly what a full computation gives.

# %%
second = chat_ids("Do you ship to Canada?")
shared = workbook.first_divergence(prompt_ids, second)
reuse = model.new_cache(len(second))
reuse.load([cache.rows(layer)[0][:, :, :shared] for layer in range(cfg.num_layers)],
           [cache.rows(layer)[1][:, :, :shared] for layer in range(cfg.num_layers)])
logits_reused = model(torch.tensor([second[shared:]]), cache=reuse, last_only=True)[0, -1]
logits_full = model(torch.tensor([second]), last_only=True)[0, -1]
assert torch.allclose(logits_reused, logits_full, atol=1e-4)
print(f"{shared} of {len(second)} prompt rows loaded, {len(second) - shared} computed; "
      f"largest logit difference from a full computation: {(logits_reused - logits_full).abs().max():.1e}")

reused = KVRowsTable(tokenizer, num_layers=cfg.num_layers, fold=5)  # a second table: the one above keeps the first request
reused.show(second, reuse.provenance)
reused.expand.value = True  # one K/V cell per layer
display(reused.widget)
assert len(reused.state.rows) == len(second) and reused.state.rows[0]["provenance"] == "loaded"

# %% [markdown]
# That is prompt caching in one cell: the shared beginning came from a cache instead of being
# computed again, and the answer is the same. (Loading rows is not free, but it is far cheaper
# than computing them: lesson 4 measures it.) Lesson 4 turns this into a real prefix cache that many requests share.

# %% [markdown]
# ## Check yourself
#
# Put your answer in the variable and run the cell; a right answer comes with its explanation.
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** How many bytes of KV cache does one token need in a model with 28 layers
# and 4 key/value heads of 128 numbers each, stored as 16-bit (2-byte) numbers?

# %%
answer_1 = None  # a whole number of bytes
lesson3.check_kv_bytes_per_token(answer_1, num_layers=28, num_kv_heads=4, head_dim=128, bytes_per_value=2)

# %% [markdown]
# **Exercise 2.** A request has a 2,000-token prompt and generates 100 tokens. How many token
# rows of K/V does the model compute in total (a) without a KV cache and (b) with one?

# %%
answer_2a = None  # without a cache
lesson3.check_rows_computed(answer_2a, prompt_tokens=2000, new_tokens=100, cached=False)

# %%
answer_2b = None  # with a cache
lesson3.check_rows_computed(answer_2b, prompt_tokens=2000, new_tokens=100, cached=True)
