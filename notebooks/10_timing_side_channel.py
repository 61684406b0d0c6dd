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
# # Lesson 10: who else is in the cache? A timing side-channel audit
#
# A prefix cache makes a hit faster than a miss; that is its whole point (lesson 4). If the cache is
# shared between users, the speed of *your* request says whether *someone else* sent the same prefix
# recently. Gu et al. turned that into a statistical audit ("Auditing Prompt Caching in Language Model
# APIs", ICML 2025) and found real APIs sharing caches across users. Here you run that audit, for real,
# against our engine: you attack a shared cache, measure how well the attack works, then shut it down
# and show that it is shut. Think of it as auditing your own deployment.
#
# By the end of this lesson you will be able to:
#
# - run the audit: hit and miss probes with fresh random prefixes, in random order, the warm-up thrown away;
# - read a two-sample test, an ROC curve and its AUC, and say how many probes an attacker needs;
# - tell from timings alone whether a deployment shares its cache per user, per organisation or globally;
# - guess which document a victim pasted, and read a prompt one page at a time, and say what each needs;
# - measure what each mitigation (salt, padding, random delay, a minimum length, coarser pages) stops
#   and what it costs.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(10)  # the whole pipeline, from text to the next token; this lesson's stages are blue

# %%
import statistics
import time

import plotly.graph_objects as go
import torch

import workbook
from workbook.audit import (ISOLATIONS, PAIRINGS, Deployment, Mitigations, Party, audit_sharing, behind_delay, collect,
                            compare, extract_pages, guess_document, power_curve, probes_needed)
from workbook.audit.procedure import VICTIM
from workbook.exercises.lesson10 import check_chance, check_leaks, check_probes
from workbook.timing import device_name
from workbook.widgets import AuditView

lesson_start = time.perf_counter()
torch.set_num_threads(1)  # an attacker's clock should be clean: see below
model = workbook.load_model(workbook.default_model())
tokenizer = workbook.load_tokenizer(workbook.default_model())
VOCAB = model.config.vocab_size
ATTACKER = PAIRINGS["another organisation"]  # mallory at globex; the victim is alice at acme
print(f"{workbook.default_model()} on {device_name(model.device)}")

# %% [markdown]
# We time everything on one torch thread. On a quiet machine two threads can run this small model
# faster, but every step then waits for both: whenever anything else on the machine pauses either thread,
# a probe is slowed many times over. An attacker, like an auditor, wants the steadiest clock they can get.
#
# ## 1. A hit is visible from outside
#
# `Deployment` puts our engine behind an isolation policy: `global` (one cache for everyone),
# `per-org` (the organisation salts every cache key, as our `tenant` and vLLM's `cache_salt` do) or
# `per-user`. An attacker only calls `send(prompt, party)` and reads the time to first token.
#
# The audit (`collect`) runs trials with fresh random prefixes, so nothing one trial caches helps
# another. In every trial the victim sends a request first; then the attacker probes, in a *hit* trial
# with the victim's prefix, in a *miss* trial with a prefix nobody sent (the victim's tokens in another
# order). Trials come in pairs, one hit and one miss in a random order, so a machine that speeds up or slows
# down moves both alike; the first few of each are thrown away (warm-up). We run it twice, on a global
# cache and on one salted per organisation, with 100 trials of each kind.

# %%
TRIALS = 100
big = {isolation: collect(Deployment(model, tokenizer, isolation).send, VICTIM, ATTACKER, trials=TRIALS,
                          vocab_size=VOCAB, seed=1)
       for isolation in ("global", "per-org")}
figure = go.Figure()
for isolation, samples in big.items():
    figure.add_histogram(x=[t * 1e3 for t in samples.hits], name=f"{isolation}: after the victim", opacity=0.6)
    figure.add_histogram(x=[t * 1e3 for t in samples.misses], name=f"{isolation}: nobody sent it", opacity=0.6)
figure.update_layout(barmode="overlay", title=f"The attacker's time to first token, {TRIALS} probes each, on "
                     f"{device_name(model.device)}", xaxis_title="ms", yaxis_title="probes", height=360)
figure.show()
for isolation, samples in big.items():
    print(f"{isolation:>8}: median {statistics.median(samples.hits) * 1e3:5.1f} ms after the victim, "
          f"{statistics.median(samples.misses) * 1e3:5.1f} ms when nobody sent it")

# %% [markdown]
# ## 2. From two piles of timings to a verdict
#
# Are the probes after the victim faster than the others? `compare` runs the Mann-Whitney U test (the
# paper used the Kolmogorov-Smirnov test; either works, SciPy has both). U counts the (miss, hit) pairs in
# which the miss was slower, so U divided by the number of pairs is the **AUC**: the area under the ROC
# curve of the best detector that says "hit" below some time. 0.5 means the timing tells nothing; 1.0
# means every hit was faster than every miss. The audit calls the cache shared when p < 10⁻³.

# %%
verdicts = {isolation: compare(samples.hits, samples.misses) for isolation, samples in big.items()}
figure = go.Figure()
for isolation, c in verdicts.items():
    figure.add_scatter(x=c.false_positive_rate, y=c.true_positive_rate, name=f"{isolation}: AUC {c.auc:.2f}")
    print(f"{isolation:>8}: AUC {c.auc:.3f}, p = {c.p_value:.1e}, shared: {c.shared}")
figure.add_scatter(x=[0, 1], y=[0, 1], name="a coin toss", line={"dash": "dot"})
figure.update_layout(title="ROC: call it a hit when the probe is faster than t, for every t",
                     xaxis_title="false positive rate", yaxis_title="true positive rate", height=380)
figure.show()
assert verdicts["global"].p_value < 1e-3  # the shared cache gives the victim away
assert not verdicts["per-org"].shared and abs(verdicts["per-org"].auc - 0.5) <= 0.15  # salted: the other tenant learns nothing

# %% [markdown]
# ## 3. Which sharing does a deployment allow?
#
# The paper's sharing levels come from running attacker and victim as the same user, as two users of
# one organisation, and as two organisations. `audit_sharing` does all three on each of our isolation
# policies (24 trials each: enough here, where a hit saves most of the prefill).

# %%
table = {isolation: audit_sharing(Deployment(model, tokenizer, isolation).send, vocab_size=VOCAB, trials=24, seed=2)
         for isolation in ISOLATIONS}
for isolation, found in table.items():
    cells = ", ".join(f"{pairing}: {'SHARED' if v.shared else 'no'} (AUC {v.comparison.auc:.2f})"
                      for pairing, v in found.items())
    print(f"{isolation:>8} | {cells}")
for isolation, found in table.items():  # shared exactly when attacker and victim get the same salt
    assert {p: v.shared for p, v in found.items()} == \
        {p: ISOLATIONS[isolation](PAIRINGS[p]) == ISOLATIONS[isolation](VICTIM) for p in PAIRINGS}

# %% [markdown]
# ## 4. How many probes does an attacker need?
#
# Fewer probes mean a cheaper, quieter attack. `power_curve` redraws audits of each size from the
# measured timings and counts how often they reach p < 10⁻³. A server can add a random delay to every
# response; `behind_delay` shows what the attacker then sees. The delay does not close the leak: it only
# raises the number of probes, and every user pays it.

# %%
SIZES = [4, 6, 8, 10, 15, 20, 30, 40, 60]
shared = big["global"]
figure = go.Figure()
needed = {}
for delay_ms in (0, 5, 10):
    curve = power_curve(behind_delay(shared.hits, delay_ms / 1e3, seed=3), behind_delay(shared.misses, delay_ms / 1e3,
                        seed=4), SIZES, resamples=100)
    needed[delay_ms] = probes_needed(curve)
    figure.add_scatter(x=[n for n, _ in curve], y=[f for _, f in curve], mode="lines+markers",
                       name=f"random delay up to {delay_ms} ms: {needed[delay_ms] or 'more than 60'} probes for 90%")
    if delay_ms == 10:
        delayed_curve = curve  # exercise 2 reads it
figure.update_layout(title="Audits that find the sharing (p < 10⁻³), by probes per side", xaxis_title="probes per side",
                     yaxis_title="share of audits", yaxis_tickformat=".0%", height=360)
figure.show()
assert needed[0] is not None and (needed[10] is None or needed[10] >= needed[0])
print(f"Without a delay {needed[0]} probes per side suffice 90% of the time; a random delay of up to 10 ms costs every "
      f"user 5 ms on average and the attacker {'more than 60' if needed[10] is None else needed[10]} probes.")

# %% [markdown]
# ## 5. What an attacker does with it
#
# **Guessing.** The victim pasted one of 20 documents the attacker can list (a contract template, a
# résumé). The attacker probes each candidate once and picks the fastest. Each probe is used once: a probe
# caches its own prompt, so repeating it would always hit.
#
# **Extraction, one page at a time.** The victim's prompt is a part the attacker knows (a public system
# prompt), then secret chunks, each one of a few texts the attacker can list (a name, a plan, a date).
# For each chunk (32 tokens here) the attacker probes every candidate and keeps the fastest: the right one
# extends the cached prefix by whole pages. That needs each chunk to fill whole pages of the cache; with
# pages larger than a chunk the first guess has nothing to measure, so the walk usually stops there.

# %%
open_cache = Deployment(model, tokenizer, "global")
guessed = guess_document(open_cache.send, VICTIM, ATTACKER, vocab_size=VOCAB, candidates=20, trials=5, seed=5)
print(f"Guessing: {guessed.correct} of {guessed.trials} right ({guessed.success_rate:.0%}; chance is {guessed.chance:.0%})")
assert guessed.success_rate > guessed.chance
for page in (16, 64):
    walk = extract_pages(Deployment(model, tokenizer, "global", Mitigations(page_size=page)).send, VICTIM, ATTACKER,
                         vocab_size=VOCAB, chunks=4, chunk_tokens=32, choices=8, seed=6)
    print(f"Extraction with {page}-token pages: {walk.recovered} of {walk.chunks} chunks of 32 tokens read in order, "
          f"{walk.probes} probes")

# %% [markdown]
# Both need the same three things: a cache shared with the victim, no salt separating them, and a prompt
# long enough that a hit saves measurable time (here 64 tokens on a tiny model; on a large model far less).
#
# ## 6. Mitigations, measured
#
# Each row audits the cross-organisation pairing once more (24 trials) after one change, and says what
# the change costs. A salt costs the sharing it forbids: a system prompt common to two organisations is
# now cached once for each.

# %%
MITIGATED = {
    "none (global cache)": ("global", Mitigations()),
    "salt per organisation": ("per-org", Mitigations()),
    "salt per user": ("per-user", Mitigations()),
    "pad hits to a miss time": ("global", Mitigations(pad_hits=True)),
    "random delay up to 20 ms": ("global", Mitigations(jitter_s=0.020)),
    "no caching under 1,024 tokens": ("global", Mitigations(min_cached_tokens=1024)),
    "pages of 64 tokens": ("global", Mitigations(page_size=64)),
}
results = {}
for name, (isolation, mitigation) in MITIGATED.items():
    deployment = Deployment(model, tokenizer, isolation, mitigation)
    samples = collect(deployment.send, VICTIM, ATTACKER, trials=24, vocab_size=VOCAB, seed=7)
    results[name] = (compare(samples.hits, samples.misses), statistics.fmean(samples.hits))


def shared_prompt_reads(isolation: str) -> float:
    """Two organisations, two users each, one common 256-token system prompt: the share of its tokens read from cache."""
    deployment = Deployment(model, tokenizer, isolation)
    system = list(range(1, 257))
    parties = [VICTIM, PAIRINGS["same organisation"], ATTACKER, Party("globex", "trent")]
    reads = [deployment.engine.generate(system + [300 + i] * 8, max_new_tokens=1,
                                        tenant=ISOLATIONS[isolation](p)).usage.cache_read_tokens
             for i, p in enumerate(parties)]
    return sum(reads) / (len(system) * len(parties))


reads = {isolation: shared_prompt_reads(isolation) for isolation in ISOLATIONS}
costs = {
    "none (global cache)": f"nothing: {reads['global']:.0%} of a shared system prompt read from cache",
    "salt per organisation": f"{reads['per-org']:.0%} of the shared system prompt read (each organisation writes its own)",
    "salt per user": f"{reads['per-user']:.0%} read: every user writes their own copy",
    "pad hits to a miss time": f"hits answer in {results['pad hits to a miss time'][1] * 1e3:.0f} ms instead of "
                               f"{results['none (global cache)'][1] * 1e3:.0f} ms (compute is still saved)",
    "random delay up to 20 ms": "10 ms more for every response, on average",
    "no caching under 1,024 tokens": "no caching at all for shorter prompts",
    "pages of 64 tokens": "up to 63 more tokens recomputed per request (page rounding)",
}
for name, (c, _) in results.items():
    print(f"{name:>30}: AUC {c.auc:.2f}, p = {c.p_value:.0e}, {'SHARED' if c.shared else 'not found'}; cost: {costs[name]}")
assert results["none (global cache)"][0].shared and not results["salt per organisation"][0].shared
assert not results["pad hits to a miss time"][0].shared and not results["no caching under 1,024 tokens"][0].shared

# %% [markdown]
# Read the table with the attacks in mind. A salt removes the leak at its boundary and costs exactly the
# sharing across that boundary. Padding hides the hit and gives up its speed but keeps its compute saving.
# A random delay and coarser pages leave membership visible: the delay only raises the number of probes,
# and coarser pages only slow extraction.
#
# ## 7. The audit bench
#
# Pick an isolation, one mitigation and who the attacker is, then run a small audit (20 trials, a few
# seconds).

# %%
bench = AuditView(model, tokenizer, trials=20)
bench.run()
bench.widget

# %% [markdown]
# ## 8. Auditing your own deployment
#
# Every function above only calls `send(prompt_ids, party) -> seconds`, so the same audit runs against a
# real server. For an OpenAI-compatible server **on your own machine** (vLLM started with prefix caching
# on, for example), a `send` is a streamed completion request timed to its first chunk, with each party's
# salt passed as vLLM's `cache_salt`. Point it only at `localhost` and at deployments you run: probing
# someone else's service is an attack, not an audit. (No serving engine runs in this workbook's offline
# setup, so this part is left for you to try.)
#
# ## 9. What providers and the paper say
#
# - Gu et al., "Auditing Prompt Caching in Language Model APIs", ICML 2025
#   ([arXiv 2502.07776](https://arxiv.org/abs/2502.07776), code at github.com/chenchenygu/auditing-prompt-caching):
#   audits with 250 hit and 250 miss samples and a two-sample Kolmogorov-Smirnov test detected **global**
#   cache sharing across users in seven API providers, OpenAI among them; timings also suggested that
#   OpenAI's embedding model is a decoder-only Transformer. The authors disclosed the findings, and
#   providers responded, for example by ending global sharing and documenting their policies.
# - Azure OpenAI's prompt caching page: "Prompt caches aren't shared between Azure subscriptions"
#   ([learn.microsoft.com](https://learn.microsoft.com/azure/ai-foundry/openai/how-to/prompt-caching)).
# - vLLM hashes each cached block together with the prefix before it
#   ([design: automatic prefix caching](https://docs.vllm.ai/en/latest/design/prefix_caching/)) and accepts a
#   per-request `cache_salt`, so requests reuse cache only when prefix *and* salt match; services built on it
#   document the same parameter (for example W&B Inference's prefix caching page).
#
# Policies change; read the provider's current page before you rely on one.
#
# ## What to take away
#
# - A shared prefix cache is a side channel: a hit is visible from outside as speed.
# - An audit needs fresh random prefixes, randomised trials, a rank test and enough probes; on our engine,
#   tens of probes give the victim away.
# - Salt the cache at the trust boundary (tenant, or user). Padding hides hits at the price of their
#   speed; random delays and coarser pages only slow an attacker down.
#
# ## Check yourself
#
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** The deployment salts its cache per organisation (`per-org`). Which attackers can still
# time alice's prefixes? a) alice herself; b) bob, at acme with alice; c) mallory, at globex.

# %%
answer_1 = None
check_leaks(answer_1)

# %% [markdown]
# **Exercise 2.** Behind a random delay of up to 10 ms, how many probes per side does the audit need to find
# the sharing at least 90% of the time? Read `delayed_curve` (the chart in section 4).

# %%
answer_2 = None
check_probes(answer_2, delayed_curve)

# %% [markdown]
# **Exercise 3.** With hits padded to a miss's time, the attacker guesses among 20 documents 100 times. How
# many guesses should come out right?

# %%
answer_3 = None
check_chance(answer_3)

# %%
print(f"lesson ran in {time.perf_counter() - lesson_start:.1f} s")
