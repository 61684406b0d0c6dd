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
# # Lesson 2 · Causal attention: a later token never changes an earlier row
#
# Lesson 1 showed that the same text always gives the same token ids. This lesson follows
# those ids into the model's attention layers, the only place where tokens look at each
# other, and finds the property that makes caching possible: each token may look only at
# itself and the tokens *before* it. So adding tokens at the end cannot change anything that
# was computed for the earlier ones.
#
# By the end of this lesson you will be able to:
#
# - compute one layer's queries, keys and values from the real model, and write attention
#   out step by step: scores, causal mask, softmax, weighted sum of values;
# - show that this written-out version and PyTorch's fused kernel give the same numbers;
# - show that appending a token leaves every earlier row of every layer unchanged, and that
#   the causal mask is the reason;
# - read the model's attention as heatmaps, layer by layer and head by head.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(2)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import math

import torch
import torch.nn.functional as F
from IPython.display import display

import workbook
from workbook.exercises import lesson2
from workbook.attention import causal_attention, causal_attention_steps, causal_mask, repeat_kv
from workbook.model import rotate_half
from workbook.widgets.attention_grid import AttentionGrid

model_name = workbook.default_model()
tokenizer = workbook.load_tokenizer(model_name)
model = workbook.load_model(model_name)
cfg = model.config
print(f"model {model_name!r}: {cfg.num_layers} layers, {cfg.num_heads} query heads sharing "
      f"{cfg.num_kv_heads} key/value heads of {cfg.head_dim} numbers each")

# %% [markdown]
# ## 1. Queries, keys and values
#
# Inside a layer every token's vector (its *hidden state*) is multiplied by three learned
# matrices, giving three new vectors per token:
#
# - a **query**, q: what this token is looking for;
# - a **key**, k: what this token offers to be found by;
# - a **value**, v: what it hands over when it is found.
#
# Think of a library: you walk in with a question (query), compare it with the label on each
# book's spine (keys), and read from the books whose labels match best (values).
#
# The model also has to know where each token sits. This model family rotates each query and
# key by an angle that grows with the position (RoPE), so the same token at position 2 and at
# position 5 gives different queries and keys.
#
# Here is layer 0, computed by hand from the model's own weights. Each step, in the order the code runs:
#
# - **Embedding** (`embed_tokens`): a token id becomes a vector by looking up row *id* of a learned table.
#   This is the first stage of the assembly line: text → ids → vectors → layers → logits → next token.
# - **Normalisation** (`input_layernorm`): each vector is rescaled to a standard size before the layer uses it.
# - **Projections** (`q_proj`, `k_proj`, `v_proj`): three weight matrices turn each vector into a query, a
#   key and a value, split into *heads* (independent attention computations of `head_dim` numbers each).
# - **Rotation** (`rotate_half`): RoPE's rotation written as x·cos + rotate_half(x)·sin, with angles that
#   depend on the position.

# %%
text = "May the force be with you"
ids = tokenizer.encode(text)
tokens = tokenizer.token_texts(ids)
n = len(ids)


def layer0_qkv(ids):
    """Queries, keys and values of layer 0 for `ids`, computed from the model's weights."""
    x = torch.tensor([ids], device=model.device)
    positions = torch.arange(len(ids), device=model.device)
    hidden = model.model.embed_tokens(x)
    if cfg.family == "gpt2":  # GPT-2 adds a learned position vector instead of rotating q and k
        hidden = hidden + model.model.embed_positions(positions)
    layer = model.model.layers[0]
    normed = layer.input_layernorm(hidden)
    attn = layer.self_attn
    # [batch, sequence, heads * head_dim] -> [batch, heads, sequence, head_dim]
    q = attn.q_proj(normed).view(1, len(ids), cfg.num_heads, cfg.head_dim).transpose(1, 2)
    k = attn.k_proj(normed).view(1, len(ids), cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
    v = attn.v_proj(normed).view(1, len(ids), cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
    if model.rotary is not None:
        cos, sin = model.rotary(positions, q.dtype)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    return q, k, v


with torch.no_grad():
    q, k, v = layer0_qkv(ids)
print("tokens:", tokens)
print("q:", tuple(q.shape), " k:", tuple(k.shape), " v:", tuple(v.shape), "  [batch, heads, tokens, head_dim]")

# %% [markdown]
# Positions matter for caching too. Put one extra token at the very start (a leading space, a
# beginning-of-text token) and every later token sits one position further on, so every key changes,
# even though the tokens are the same. That is why a cache must key on the whole prefix, positions
# included: the keys of the same tokens at another offset are different numbers and cannot be reused.

# %%
with torch.no_grad():
    _, k_shifted, _ = layer0_qkv([ids[0]] + ids)  # the same tokens, each one position later
moved = (k - k_shifted[:, :, 1:]).abs().amax(dim=(0, 1, 3))  # largest change of each token's keys
print("largest change of each token's layer-0 keys when shifted by one position:", [f"{m:.3f}" for m in moved.tolist()])
assert (moved > 1e-3).all()  # every token gets different keys

# %% [markdown]
# ## 2. Attention, written out
#
# Four steps, for every head:
#
# 1. **Scores.** Compare each query with each key: the dot product q·k, divided by
#    √head_dim so the numbers stay in a range where softmax behaves.
# 2. **Causal mask.** Query i may only see keys 0 to i. Scores of later keys are set to −∞.
# 3. **Softmax.** Turn each row of scores into weights that are positive and add up to 1.
#    e^(−∞) is 0, so a masked key gets a weight of exactly zero.
# 4. **Weighted sum.** Each query's output is its weights times the values.

# %%
with torch.no_grad():
    group = cfg.num_heads // cfg.num_kv_heads
    k_all, v_all = repeat_kv(k, group), repeat_kv(v, group)  # one K/V head per query head (optional note below)
    scores = q @ k_all.transpose(-2, -1) / math.sqrt(cfg.head_dim)  # 1. [batch, heads, queries, keys]
    mask = causal_mask(n, n, device=model.device)  # 2. True where the query may look
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # 3.
    out = weights @ v_all  # 4. [batch, heads, queries, head_dim]

print(" " * 8 + "".join(f"{t!r:>9}" for t in tokens))
for i, t in enumerate(tokens):
    print(f"{t!r:>8}" + "".join(f"{'✓' if mask[i, j] else '✗':>9}" for j in range(n)))

row_sums = weights.sum(-1)
assert torch.allclose(row_sums, torch.ones_like(row_sums))  # every row adds up to 1
assert (weights[..., ~mask] == 0).all()  # masked keys get exactly zero weight

# %% [markdown]
# Read the mask row by row: the first token sees only itself, the second sees the first two,
# the last sees everything. Here are the weights of head 0, one row per query (the zeros above
# the diagonal are the masked keys):

# %%
for i, t in enumerate(tokens):
    print(f"{t!r:>8}  " + " ".join(f"{w:5.2f}" for w in weights[0, 0, i].tolist()))

# %% [markdown]
# *Optional: what `repeat_kv` is for.* This model uses **grouped-query attention**: it has fewer key/value
# heads than query heads, and several query heads share one key/value head, which makes the KV cache
# smaller (lesson 3 measures it). `repeat_kv` copies each key/value head for the query heads that share it,
# so that the four steps above can pair every query head with a key head. The rest is plumbing.

# %%
print(f"{cfg.num_heads} query heads, {cfg.num_kv_heads} key/value heads: each key/value head serves {group} query "
      f"heads; k is {tuple(k.shape)} as stored, {tuple(k_all.shape)} after repeat_kv")
assert torch.equal(k_all[:, :group], k[:, :1].expand(-1, group, -1, -1))  # the first group: copies of head 0

# %% [markdown]
# ## 3. The written-out path and the fast path agree
#
# Our `workbook.attention` module has the same four steps as a function
# (`causal_attention_steps`, which also returns every intermediate for plots) and a fast path
# (`causal_attention`) that calls PyTorch's fused `scaled_dot_product_attention`. The model
# runs the fast one. Let us check that all of them, and the model itself, agree.

# %%
with torch.no_grad():
    steps = causal_attention_steps(q, k, v)
    fast = causal_attention(q, k, v)
    recorded = []  # the model fills this with each layer's written-out steps
    logits_written_out = model(torch.tensor([ids]), record_attention=recorded)
    logits_fast = model(torch.tensor([ids]))

assert torch.allclose(steps.weights, weights, atol=1e-6) and torch.allclose(steps.output, out, atol=1e-5)
assert torch.allclose(fast, out, atol=1e-5)
assert torch.allclose(recorded[0].weights, weights, atol=1e-5)  # our hand-made q, k, v are the model's
assert torch.allclose(logits_written_out, logits_fast, atol=1e-4)  # whole model, both paths
print(f"largest difference, written-out vs fused attention: {(fast - out).abs().max():.1e}")
print(f"largest difference in the model's logits:            {(logits_written_out - logits_fast).abs().max():.1e}")

# %% [markdown]
# The tiny differences (the asserts allow at most 1e-5 in the attention outputs and 1e-4 in the
# logits) come from adding the same numbers in a different order: floating-point sums depend slightly on order. They are far below anything that could
# change the model's choice of token.

# %% [markdown]
# ## 4. Appending a token leaves every earlier row unchanged
#
# Now the key fact. Let the model pick its next token, append it, and recompute *everything*
# from scratch, with no cache, in every layer. Then compare the earlier rows before and after.

# %%
with torch.no_grad():
    next_id = int(logits_fast[0, -1].argmax())
    longer = ids + [next_id]
    before, after = [], []
    logits_before = model(torch.tensor([ids]), record_attention=before)
    logits_after = model(torch.tensor([longer]), record_attention=after)

print(f"appended {tokenizer.token_texts([next_id])[0]!r}; comparing rows 0..{n - 1} in every layer")
for layer, (b, a) in enumerate(zip(before, after)):
    weight_change = (a.weights[..., :n, :n] - b.weights).abs().max().item()
    output_change = (a.output[..., :n, :] - b.output).abs().max().item()
    new_column = a.weights[..., :n, n].abs().max().item()  # how much earlier queries look at the new key
    print(f"layer {layer}: weights moved {weight_change:.1e}, outputs moved {output_change:.1e}, "
          f"weight on the new token {new_column}")
    assert weight_change < 1e-5 and output_change < 1e-5 and new_column == 0
assert torch.allclose(logits_after[0, :n], logits_before[0], atol=1e-4)  # and so are the earlier logits

# %% [markdown]
# Every earlier row is the same, in every layer, and no earlier query puts any weight on the
# new token. The work for the new token is one new row (its query against all keys) and one
# new key/value pair; nothing before it needs redoing. That is why a model can keep the keys
# and values it has already computed: the **KV cache** of lesson 3.
#
# Is it really the mask? Remove it and see. Without the mask every query sees every key,
# including the new one, and the earlier rows do change:

# %%
with torch.no_grad():
    q2, k2, v2 = layer0_qkv(longer)
    no_mask_short = F.scaled_dot_product_attention(q, repeat_kv(k, group), repeat_kv(v, group))
    no_mask_long = F.scaled_dot_product_attention(q2, repeat_kv(k2, group), repeat_kv(v2, group))
    with_mask_long = causal_attention(q2, k2, v2)
moved_without_mask = (no_mask_long[..., :n, :] - no_mask_short).abs().max().item()
moved_with_mask = (with_mask_long[..., :n, :] - out).abs().max().item()
print(f"earlier rows moved by {moved_without_mask:.3f} without the mask, {moved_with_mask:.1e} with it")
assert moved_without_mask > 1e-3 and moved_with_mask < 1e-5

# %% [markdown]
# (Models like BERT attend in both directions, which is why their results for a prefix
# cannot be reused this way.)

# %% [markdown]
# ## 5. Explore: the model's attention as a heatmap
#
# The grid shows the causal mask on the left (✓ may look, ✗ masked) and the real attention
# weights of one layer and head on the right: row i is query i, each column a key, and a
# brighter cell means more weight. Pick a layer and a head, type another prompt, and press
# **Append a token**: the model adds its next token, everything is recomputed from scratch,
# and the status line reports how much the earlier rows moved. The new row is outlined.

# %%
grid = AttentionGrid(model, tokenizer, prompt=text)
display(grid.widget)

# %% [markdown]
# As in lesson 1, the view is a plain object that code can drive; a second copy here, so the grid above
# stays as you left it. Three appends, and the earlier rows of all layers and heads stay where they were:

# %%
driven = AttentionGrid(model, tokenizer, prompt=text)
for _ in range(3):
    driven.append_button.click()
    assert driven.state.max_change_weights < 1e-5 and driven.state.max_change_outputs < 1e-5
print(tokenizer.decode(driven.state.ids))
print(f"largest change in any earlier row after the last append: {driven.state.max_change_weights:.1e}")

# %% [markdown]
# Things to look for as you click through the heads: a head may put most of its weight on the
# token just before, or on the first token of the prompt, or spread it out. Whatever the
# pattern, the upper-right triangle stays empty. This cell sorts this model's heads, on this
# prompt, by where the average query (after the first) puts most of its weight:

# %%
kinds = {"the token just before": 0, "the first token": 0, "spread out": 0}
for record in recorded:  # one per layer: the written-out steps of section 3
    for head in record.weights[0]:  # [queries, keys]
        previous = torch.stack([head[i, i - 1] for i in range(1, n)]).mean().item()
        first = head[1:, 0].mean().item()
        kind = ("the token just before" if previous > 0.5 else "the first token" if first > 0.5 else "spread out")
        kinds[kind] += 1
print(f"{sum(kinds.values())} heads ({cfg.num_layers} layers × {cfg.num_heads}); most weight on: " +
      ", ".join(f"{kind}: {count}" for kind, count in kinds.items()))
assert sum(kinds.values()) == cfg.num_layers * cfg.num_heads

# %% [markdown]
# ## Check yourself
#
# Put your answer in the variable and run the cell; a right answer comes with its explanation.
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** A prompt has 20 tokens. How many cells of its causal mask are ✓, that is,
# how many (query, key) pairs does the model compute scores for?

# %%
answer_1 = None  # a whole number
lesson2.check_visible_pairs(20, answer_1)

# %% [markdown]
# **Exercise 2.** One head computes these raw scores for the query at position 2 (the third
# token) against keys 0 to 3. Work out its attention weights by hand (or with `math.exp`):
# a list of four numbers.

# %%
scores_row = [2.0, 0.0, 1.0, 3.0]
answer_2 = None  # e.g. [0.1, 0.2, 0.3, 0.4]
lesson2.check_attention_weights(scores_row, query_position=2, answer=answer_2)

# %% [markdown]
# **Exercise 3.** A prompt has 7 tokens (positions 0 to 6) and its attention has been
# computed. One more token is appended. Which rows, by position, must now be computed? Answer
# with a set of positions.

# %%
answer_3 = None  # e.g. {0, 1}
lesson2.check_rows_to_recompute(7, answer_3)
