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
# # Lesson 6: speculative decoding, or how to check several guesses in one pass
#
# Lesson 3 made each new token cost one row of K/V instead of the whole history. Still, plain decoding
# makes one token per forward pass of the model, and each pass reads every weight of the model. For a big
# model that read, not the arithmetic, is what takes the time. Speculative decoding gets more than one
# token out of a pass: something cheap *guesses* the next few tokens, and the big model *checks* all the
# guesses at once, in a single pass over its KV cache. Correct guesses are kept; at the first wrong one the
# big model's own token is used instead, and the rows of the wrong guesses are cut from the caches.
#
# By the end of this lesson you will be able to:
#
# - explain why a model can check k guessed tokens for little more than the price of making one;
# - read a real draft-and-verify trace: accepted and rejected guesses, the correction or bonus token, and
#   the cache rows rolled back;
# - show that greedy speculative output is *exactly* the target model's output, and explain why sampled
#   output follows exactly the target's distribution;
# - measure acceptance and speedup against k, and compare them with the formula
#   (1 − α^(k+1)) / ((1 − α)(k·c + 1));
# - use a drafter with no model at all (prompt lookup) when the answer copies from the prompt.
#
# Everything below runs on the two small models that ship with the workbook, on your CPU, in under a minute.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(6)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import json
import time

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

import workbook
from workbook.exercises.lesson6 import (BEST_K_ALPHA, BEST_K_C, STEP_ACCEPTED, STEP_K, check_best_k, check_output_changers,
                                        check_step_outcome)
from workbook.sampling import next_token_probs
from workbook.speculative import (PromptLookupDrafter, expected_tokens_per_pass, predicted_speedup, residual_distribution,
                                  speculative_generate, target_generate)
from workbook.timing import device_name, load_results, measure
from workbook.widgets.speculative_view import SpeculativeView

lesson_start = time.perf_counter()
# Models this small decode fastest on one CPU thread: a second one mostly waits for the first, and stalls
# badly whenever another program wants the core, which would make every timing below noise.
torch.set_num_threads(1)
target = workbook.load_model(workbook.default_model())
draft = workbook.load_model(workbook.default_draft_model())
tokenizer = workbook.load_tokenizer(workbook.default_model())
for role, m in (("target", target), ("draft", draft)):
    print(f"{role}: {m.num_parameters() / 1e6:.1f}M parameters, {m.config.num_layers} layers of width "
          f"{m.config.hidden_size}, on {m.device}")

# %% [markdown]
# ## 1. Checking k guesses costs about as much as making one token
#
# Decoding one token runs the whole model on one position. Running it on five positions at once does five
# times the arithmetic, but reads the weights only once, and a batch of five rows keeps the processor busier
# than a single row does. So it costs far less than five passes. Time one pass over the cache on 1 and on
# 5 new positions, for both models:

# %%
DOC_PAGE = ("Module json\n\nJSON (JavaScript Object Notation) is a lightweight data interchange format. "
            "The json module")
doc_ids = tokenizer.encode(DOC_PAGE)


def pass_ms(model, n_new, repeats=15):
    """Median time of one forward pass over `n_new` positions after the doc page's cached rows."""
    cache = model.new_cache(len(doc_ids) + n_new)
    model(torch.tensor([doc_ids]), cache=cache)
    new = torch.tensor([doc_ids[:n_new]])

    def one_pass():
        model(new, cache=cache)
        cache.crop(len(doc_ids))  # back to the same state, so every repeat does the same work

    return measure(one_pass, warmup=3, repeats=repeats, device=model.device).median_s * 1e3


target_1, target_5 = pass_ms(target, 1), pass_ms(target, 5)
draft_1 = pass_ms(draft, 1)
c = draft_1 / target_1
print(f"target: {target_1:.2f} ms for 1 position, {target_5:.2f} ms for 5 ({target_5 / target_1:.1f}x, not 5x)")
print(f"draft:  {draft_1:.2f} ms for 1 position, so one draft token costs c = {c:.2f} of a target pass")

# %% [markdown]
# That is the whole opportunity. A draft model that is much cheaper than the target (small c) guesses k tokens
# one after another; then one target pass over the pending token plus the k guesses yields k + 1
# next-token predictions. Each guess is compared with what the target itself predicts at that position.
#
# Seed 001 says the draft model generates its "4-8 tokens in parallel". It does not: a draft model makes its
# guesses one after another, each from the one before, exactly as any model decodes. Only the target's check
# of all the guesses is one parallel pass. That is why the draft must be cheap (small c): its k passes are
# serial, and they are paid on every step.
#
# The same seed promises a "2-3x throughput improvement for free". What this lesson measures is the speed of
# one request on an idle machine. A busy server already does arithmetic for many requests per weight read, so
# the checks start to cost their share: lesson 9, section 5, measures speculation under load.
#
# ## 2. One step at a time, on the real trace
#
# The viewer below runs `speculative_generate` with the shipped target (`tiny`, 6 layers) and its draft
# (`tiny-draft`, 2 layers, *distilled* from `tiny`: trained on the same text to match both the next token and
# `tiny`'s own predictions, half and half; `data/models/README.md`) and shows the trace it records. A draft
# taught to imitate its target agrees with it more often, which is what makes its guesses pass. For each step:
#
# - the **draft's proposals**: **accepted ✓** (green) where the target would have chosen the same token,
#   **rejected ✗** (wine, the colour of work thrown away) at the first disagreement, and **discarded** (faded)
#   after it, because those guesses were made from a wrong token;
# - the **target's own token** (black): the **correction** that replaces the rejected guess, or a
#   **bonus ★** when every guess passed, since the pass predicted one more position for free;
# - the **KV caches**: rows after the verify pass (the rejected guesses included) and after the rollback.
#
# Step with **Previous step** / **Next step** (instant: the trace is already there). Moving **k** or the
# **temperature** runs generation again; **prompt lookup** swaps the draft model for copying (section 5).
#
# **Predict first:** with k = 4, will one target pass produce closer to 1 token or to 5 on this
# documentation page? Step through and count.

# %%
view = SpeculativeView(target, draft, tokenizer, DOC_PAGE, k=4, max_new_tokens=24)
view.widget

# %% [markdown]
# The same trace, from code. A speculative run is an ordinary request on the paged path every request takes
# (lesson 9's server): it returns the usual `GenerationResult`, with the trace in `result.speculation`. A
# verify pass writes rows for the pending token and every guess; the rollback (`truncate` on the request's
# pages) keeps the text so far plus the accepted guesses, so k − (accepted) rows go. The target's own new
# token has no row yet: it is the next pass's pending token.

# %%
result = view.state.result
trace = result.speculation
for i, step in enumerate(trace.steps[:6]):
    guesses = " ".join(f"{tokenizer.token_texts([t])[0]!r}{'✓' if ok else '✗'}" for t, ok in zip(step.proposed, step.accepted))
    own = "bonus" if step.bonus else "correction"
    print(f"step {i + 1}: {guesses:48} {own} {tokenizer.token_texts([step.next_token])[0]!r:10} "
          f"target rows {step.target_rows_before}->{step.target_rows_after}, draft {step.draft_rows_before}->{step.draft_rows_after}")
    assert step.target_rows_before - step.target_rows_after == len(step.proposed) - step.n_accepted
print(f"{len(result.output_ids)} tokens from {len(trace.steps)} target passes: {trace.tokens_per_target_pass:.2f} per pass; "
      f"{trace.accepted} of {trace.proposed} proposals accepted ({trace.acceptance_rate:.0%})")

# %% [markdown]
# ## 3. The output is exactly the target's
#
# When greedy, the target keeps a guess only if it is the token the target would have picked itself. Every
# token that comes out is therefore the target's own choice, given text that was itself the target's own
# choice: the draft changes how fast, never what. **Claim: greedy speculative output equals target-only
# greedy output**, token for token, whatever k and whatever the drafter:

# %%
CHAT_PROMPT = tokenizer.encode_chat([{"role": "user", "content": "How do I read a file line by line?"}])
for prompt in (doc_ids, CHAT_PROMPT):
    alone = target_generate(target, prompt, max_new_tokens=32).output_ids
    for k in (1, 3, 6):
        assert speculative_generate(target, draft, prompt, k=k, max_new_tokens=32).output_ids == alone
    assert speculative_generate(target, PromptLookupDrafter(), prompt, k=4, max_new_tokens=32).output_ids == alone
    print(f"same 32 tokens for k = 1, 3, 6 and prompt lookup: {tokenizer.decode(alone)[:70]!r}...")

# %% [markdown]
# (One fine point: the verify pass computes several positions at once, and floating-point sums in a
# different order can differ in the last bit. If two tokens tied almost exactly, that could flip an argmax.
# It does not happen here. Production servers do not rule it out by default either: vLLM and SGLang are not
# batch-invariant out of the box, so the same prompt can come out differently in different batches; their
# deterministic modes are opt-in and cost speed.)
#
# **Sampling.** With temperature > 0 the target's token is drawn from a distribution p, and the draft's guess
# x was drawn from its own distribution q. The rule of Leviathan et al. and Chen et al. (2023) is: keep x with
# probability min(1, p(x)/q(x)); if it is rejected, draw the replacement from norm(max(0, p − q)), the mass
# that q under-proposed. Then each token comes out with probability
#
# q(x)·min(1, p(x)/q(x)) + P(reject)·residual(x) = min(q(x), p(x)) + max(0, p(x) − q(x)) = p(x),
#
# because the rejection probability is exactly the total mass of max(0, p − q). So sampled output follows the
# target's distribution exactly; only the speed depends on the draft. Check the algebra on the real p and q
# of both models at one position:

# %%
with torch.no_grad():
    p = next_token_probs(target(torch.tensor([doc_ids]))[0, -1], temperature=0.8)
    q = next_token_probs(draft(torch.tensor([doc_ids]))[0, -1], temperature=0.8)
kept = torch.minimum(p, q)  # q(x) · min(1, p(x)/q(x)): proposed and accepted
reject_mass = 1 - kept.sum()
produced = kept + reject_mass * residual_distribution(p, q)
assert torch.allclose(produced, p, atol=1e-6)
print(f"P(accept) at this position = {kept.sum():.3f}; largest gap between the output distribution and p: "
      f"{(produced - p).abs().max():.1e}")

# %% [markdown]
# And a sampled run: still full-length, valid output, made of the steps the trace records.

# %%
sampled = speculative_generate(target, draft, doc_ids, k=4, max_new_tokens=32, temperature=0.8, seed=1)
assert len(sampled.output_ids) == 32 and all(0 <= t < target.config.vocab_size for t in sampled.output_ids)
assert [t for s in sampled.speculation.steps for t in s.new_tokens] == sampled.output_ids
print(f"temperature 0.8: acceptance {sampled.speculation.acceptance_rate:.0%}, "
      f"{sampled.speculation.tokens_per_target_pass:.2f} tokens per pass")
print(repr(sampled.text))

# %% [markdown]
# ## 4. Acceptance and speedup against k
#
# Suppose each guess passes with probability α, independently. A step with k guesses then yields
# (1 − α^(k+1)) / (1 − α) tokens on average (the accepted run, plus the target's token), and costs one target
# pass plus k draft passes, k·c + 1 in units of a target pass. Their ratio is the predicted speedup over plain
# decoding. More guesses are not always better: each one costs c for sure, but pays only if every guess
# before it passed.
#
# Measure it: for each k, time target-only and speculative decoding of the same 32 tokens (median of 3 runs),
# and record the acceptance. α is estimated as accepted / judged guesses (the guesses after a rejection were
# never judged), pooled over every k.

# %%
KS = range(1, 7)
NEW = 32
baseline = measure(lambda: target_generate(target, doc_ids, NEW), warmup=1, repeats=3, device=target.device)


def timed_speculative(k):
    """Median seconds of speculative decoding with k guesses per step, and the statistics of one run."""
    made = []
    timing = measure(lambda: made.append(speculative_generate(target, draft, doc_ids, k=k, max_new_tokens=NEW)),
                     warmup=1, repeats=3, device=target.device)
    return timing.median_s, made[-1].speculation  # greedy: every run makes the same trace


seconds, runs = {}, {}
for k in KS:
    seconds[k], runs[k] = timed_speculative(k)
alpha = sum(r.accepted for r in runs.values()) / sum(r.judged for r in runs.values())
speedup = {k: baseline.median_s / seconds[k] for k in KS}
print(f"target only: {baseline.median_s * 1e3:.0f} ms for {NEW} tokens; α = {alpha:.2f}, c = {c:.2f}")
print(f"{'k':>2} {'accept':>7} {'tokens/pass':>12} {'expected':>9} {'speedup':>8} {'predicted':>10}")
for k in KS:
    r = runs[k]
    print(f"{k:>2} {r.acceptance_rate:>7.0%} {r.tokens_per_target_pass:>12.2f} {expected_tokens_per_pass(alpha, k):>9.2f} "
          f"{speedup[k]:>7.2f}x {predicted_speedup(alpha, k, c):>9.2f}x")

# %%
MEASURED, THEORY = "#000000", "#999999"  # black dots, grey lines: orange and blue mean computed and loaded
figure = make_subplots(rows=1, cols=2, subplot_titles=("tokens per target pass", "speedup over target only"))
fine_k = [k / 10 for k in range(10, 10 * max(KS) + 1)]
figure.add_scatter(x=list(KS), y=[runs[k].tokens_per_target_pass for k in KS], mode="markers", name="measured",
                   marker=dict(color=MEASURED, symbol="circle", size=9), row=1, col=1)
figure.add_scatter(x=fine_k, y=[expected_tokens_per_pass(alpha, k) for k in fine_k], mode="lines",
                   name=f"theory, α = {alpha:.2f}", line=dict(color=THEORY, dash="dash"), row=1, col=1)
figure.add_scatter(x=list(KS), y=[speedup[k] for k in KS], mode="markers", name="measured speedup",
                   marker=dict(color=MEASURED, symbol="square", size=9), row=1, col=2)
figure.add_scatter(x=fine_k, y=[predicted_speedup(alpha, k, c) for k in fine_k], mode="lines",
                   name=f"theory, α = {alpha:.2f}, c = {c:.2f}", line=dict(color=THEORY, dash="dot"), row=1, col=2)
figure.add_hline(y=1, line=dict(color="#999", width=1), row=1, col=2)
figure.update_xaxes(title_text="k (guesses per step)")
figure.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3),
                     title=f"measured on {device_name(target.device)}")
figure.show()

# %% [markdown]
# Tokens per pass follow the curve closely: that part is just counting. The speedup usually lands below its
# curve, because the formula leaves out everything that is not a forward pass: the Python loop around the
# draft, copying tokens about, and the verify pass being somewhat dearer than a one-token pass (section 1).
# On a model this small those overheads are a large share of each step; with a target a thousand times
# bigger they vanish, and α and c decide. (Never trust one run of a timing on a shared laptop: rerun this
# cell and the speedups move a little.)
#
# The formula also says how to pick k: a large k needs a high α *and* a small c. Here is where this pair's
# curve peaks (α is the chance that one guess is accepted, from the runs above; the acceptance rate in the
# table is the share of all guesses accepted, which falls as k grows because a step stops at its first miss):

# %%
peak_k = max(range(1, 11), key=lambda k: predicted_speedup(alpha, k, c))
print(f"With α = {alpha:.2f} and c = {c:.2f} the predicted speedup peaks at k = {peak_k}: "
      f"{predicted_speedup(alpha, peak_k, c):.2f}x. A draft accepted {alpha:.0%} of the time cannot do better.")
assert runs[max(KS)].tokens_per_target_pass > runs[1].tokens_per_target_pass  # more guesses, more tokens per pass
assert all(1 <= runs[k].tokens_per_target_pass <= k + 1 for k in KS)
for a, cost_ratio in ((alpha, c), (0.8, 0.05)):
    best = max(range(1, 11), key=lambda k: predicted_speedup(a, k, cost_ratio))
    print(f"α = {a:.2f}, c = {cost_ratio:.2f}: best k = {best}, predicted {predicted_speedup(a, best, cost_ratio):.2f}x")

# %% [markdown]
# ## 5. A drafter with no model: prompt lookup
#
# Often the answer copies its input: a summary quotes a document, an edit repeats most of the code, a reply
# reuses a tool's result. Then the best guess is free: find the last few tokens earlier in the text and
# propose what followed them there. `PromptLookupDrafter` does exactly that, with no draft model, so c = 0.
#
# Here is a chat where the user asks the same thing twice. The model answers the repeat by calling the
# documentation tool again, and much of that call copies the earlier one from the prompt:

# %%
SYSTEM = ("You are CodeHelper, an assistant that helps programmers write and understand Python code.\n\n# Policies\n"
          "- Use Python 3.10 or newer in examples.\n"
          "- If you are not sure what a function does, call search_docs before answering.")
TITLE = "str.split(self, /, sep=None, maxsplit=-1)"
SUMMARY = "Return a list of the substrings in the string, using sep as the separator string."
quoting_chat = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "What does `str.split` do?"},
    {"role": "assistant", "content": json.dumps({"tool": "search_docs", "arguments": {"query": "str.split"}})},
    {"role": "tool", "content": json.dumps({"title": TITLE, "summary": SUMMARY})},
    {"role": "assistant", "content": f"According to the Python documentation, `{TITLE}`: {SUMMARY}"},
    {"role": "user", "content": "OK, thanks."},
    {"role": "assistant", "content": "You're welcome! Is there anything else I can help with?"},
    {"role": "user", "content": "Sorry, what does `str.split` do again?"},
]
quoting_ids = tokenizer.encode_chat(quoting_chat)
lookup = PromptLookupDrafter(max_ngram=3)
alone = target_generate(target, quoting_ids, NEW)
copied = speculative_generate(target, lookup, quoting_ids, k=4, max_new_tokens=NEW)
assert copied.output_ids == alone.output_ids  # exact here too
t_alone = measure(lambda: target_generate(target, quoting_ids, NEW), warmup=1, repeats=3, device=target.device).median_s
t_lookup = measure(lambda: speculative_generate(target, lookup, quoting_ids, k=4, max_new_tokens=NEW),
                   warmup=1, repeats=3, device=target.device).median_s
print(f"{len(quoting_ids)}-token prompt; the reply: {tokenizer.decode(alone.output_ids)!r}")
print("the chat's text, to paste into the viewer's prompt:", tokenizer.decode(quoting_ids), sep="\n")
print(f"prompt lookup, k = 4: {copied.speculation.acceptance_rate:.0%} of guesses accepted, "
      f"{copied.speculation.tokens_per_target_pass:.2f} tokens per pass, {t_alone / t_lookup:.2f}x the speed of target only ({t_alone * 1e3:.0f} -> {t_lookup * 1e3:.0f} ms)")
assert copied.speculation.tokens_per_target_pass > 1.5

# %% [markdown]
# Where the reply copies, whole runs of guesses pass at once; where it writes something new (here, the name it
# looks up), the lookup finds nothing or guesses wrong, and the step makes one token like plain decoding.
# Choose **prompt lookup** in the viewer above, paste this chat's text in (printed above), and watch which
# steps copy.
#
# Finding a guess costs nothing, but checking it does not: every step that carries guesses runs the target on
# k + 1 positions instead of one. On a big model on a GPU that pass costs about as much as a one-token pass,
# so wrong guesses are nearly free, which is why servers such as vLLM and `transformers`
# (`prompt_lookup_num_tokens`) offer prompt lookup for editing and retrieval workloads. On this CPU a wider
# pass costs noticeably more (section 1 measured it), so where the reply does not copy, lookup can be
# *slower* than plain decoding. The recorded runs in section 6 say whether it was on their machines.
#
# ### The same on a real model
#
# Editing is where prompt lookup pays most. Give the real model, SmolLM2-135M-Instruct (lesson 4 served
# it; `make setup` installed it), a short email to edit: most of its reply copies the email back.

# %%
real_target = workbook.load_model("smollm2-135m-instruct")
real_tokenizer = workbook.load_tokenizer("smollm2-135m-instruct")
email = ("Hi Sam,\nThe team meeting is on Monday at 10:00 in room 4. Please bring the sales figures for March.\n"
         "Thanks,\nAlex")
edit_ids = real_tokenizer.encode_chat([{"role": "user", "content": "Rewrite this email, changing the date from Monday "
                                        f"to Tuesday. Keep everything else the same.\n\n{email}"}])
end = real_tokenizer.eos_token_id
started = time.perf_counter()
real_alone = target_generate(real_target, edit_ids, 40, eos_token_id=end)
real_alone_s = time.perf_counter() - started
started = time.perf_counter()
real_copied = speculative_generate(real_target, PromptLookupDrafter(max_ngram=3), edit_ids, k=4, max_new_tokens=40,
                                   eos_token_id=end)
real_copied_s = time.perf_counter() - started
assert real_copied.output_ids == real_alone.output_ids  # exact on the real model too
assert real_copied.speculation.tokens_per_target_pass > 2
print(f"the reply: {real_tokenizer.decode(real_alone.output_ids)!r}")
print(f"prompt lookup, k = 4: {real_copied.speculation.acceptance_rate:.0%} of guesses accepted, "
      f"{real_copied.speculation.tokens_per_target_pass:.2f} tokens per pass; "
      f"one run each: target only {real_alone_s * 1e3:,.0f} ms, "
      f"with lookup {real_copied_s * 1e3:,.0f} ms ({real_alone_s / real_copied_s:.2f}x)")

# %% [markdown]
# The reply is the target's own, token for token, and most of it came from the prompt. (A model of 135M
# parameters is a poor editor: read the reply to see whether it made the change it was asked for.)
#
# ## 6. Measured on other machines
#
# `python -m workbook.bench speculative` measures all of this carefully (five repeats, several prompts, every
# k, beside `transformers`' assisted generation) and records it in `data/benchmarks/`. If a recorded run is
# there, here it is:

# %%
recorded = {slug: data["sections"]["speculative"] for slug, data in load_results().items()
            if "speculative" in data.get("sections", {})}
if not recorded:
    print("No speculative benchmark recorded yet: run `python -m workbook.bench speculative` to add one.")
for slug, section in recorded.items():
    bench = section["results"]
    rows = [r for r in bench["draft_model"] if r["method"].startswith("speculative k=")]  # the fixed-k runs
    figure = go.Figure()
    figure.add_scatter(x=[r["k"] for r in rows], y=[r["speedup"] for r in rows], mode="lines+markers",
                       name="measured", marker=dict(color=MEASURED, symbol="square"))
    figure.add_scatter(x=[r["k"] for r in rows], y=[r["predicted_speedup"] for r in rows], mode="lines+markers",
                       name="predicted from its α and c", line=dict(color=THEORY, dash="dot"), marker=dict(symbol="diamond"))
    figure.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="k", yaxis_title="speedup",
                         title=f"{bench['target']} drafted by {bench['draft']} on {section['device_name']}")
    figure.show()
    print(f"{section['device_name']} ({section['recorded_at'][:10]}), c = {bench['cost_ratio_c']:.2f}:")
    for r in rows:
        print(f"  k = {r['k']}: {r['speedup']:.2f}x measured, {r['predicted_speedup']:.2f}x predicted, α = {r['alpha']:.2f}")
    lookups = [r for r in bench.get("prompt_lookup", []) if "prompt lookup" in r["method"]]
    for r in lookups:
        print(f"  {r['method']}: {r['speedup']:.2f}x")
    if lookups:
        slowest = min(lookups, key=lambda r: r["speedup"])
        print(f"  Prompt lookup on this benchmark's prompt: {slowest['method']} ran at {slowest['speedup']:.2f}x, "
              + ("slower than plain decoding: checking guesses that fail is not free on this device."
                 if slowest["speedup"] < 1 else "never slower than plain decoding."))

# %% [markdown]
# ## What to take away
#
# - A model checks k guessed tokens in one pass for little more than the price of one token, because a pass
#   reads the weights once whatever the number of positions.
# - The target keeps the longest run of guesses it agrees with, adds its own token, and rolls back the rows of
#   the rejected guesses (`truncate`) in its own pages and the draft's. It is an ordinary request on the paged
#   path, so it can hit the prefix cache and share a server's batches with plain requests.
# - The output is the target's: identical tokens when greedy, the identical distribution when sampling
#   (accept with min(1, p/q), otherwise draw from norm(max(0, p − q))). The draft decides only the speed.
# - The speedup depends on α (how often guesses pass) and c (what a guess costs):
#   (1 − α^(k+1)) / ((1 − α)(k·c + 1)), less the overheads the formula leaves out. Good, cheap drafts earn a
#   large k; poor or dear ones a small k.
# - When the reply copies its input, prompt lookup drafts for free.
#
# ## Check yourself
#
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** A draft proposes k = 6 tokens and the target accepts the first 2. How many tokens does this
# step add to the text, and how many rows are rolled back from the target's KV cache? Give a pair
# `(tokens added, rows rolled back)`.

# %%
print(f"k = {STEP_K}, accepted = {STEP_ACCEPTED}")
answer_1 = None
check_step_outcome(answer_1)

# %% [markdown]
# **Exercise 2.** A draft's guesses pass with α = 0.6 and each costs c = 0.2 of a target pass. Which k from 1
# to 10 gives the highest predicted speedup? (You may call `predicted_speedup(alpha, k, c)`.)

# %%
print(f"α = {BEST_K_ALPHA}, c = {BEST_K_C}")
answer_2 = None
check_best_k(answer_2)

# %% [markdown]
# **Exercise 3.** Which of these can change the tokens that *greedy* speculative decoding outputs? Give a set
# of letters (or `set()` for none). Leave aside the float near-ties of section 3's fine point.
#
# - a) replacing the draft model with a much worse one
# - b) raising k from 4 to 8
# - c) drafting by prompt lookup instead of a draft model
# - d) replacing the target model with another one
# - e) letting k adapt from step to step (`adaptive_k=True`)

# %%
answer_3 = None
check_output_changers(answer_3)

# %%
print(f"Lesson ran in {time.perf_counter() - lesson_start:.1f} s")
