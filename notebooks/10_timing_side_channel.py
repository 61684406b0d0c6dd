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
# - read a two-sample test and its p-value, an ROC curve and its AUC, and the power of an audit: how many
#   probes an attacker needs;
# - tell from timings alone whether a deployment shares its cache per user, per organisation or globally;
# - guess which document a victim pasted, and read a prompt one page at a time, and say what each needs;
# - measure what each mitigation (salt, padding to a deadline, random delay, a minimum length, coarser
#   pages) stops and what it costs.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(10)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import statistics
import time

import plotly.graph_objects as go
import torch

import workbook
from workbook.audit import (ISOLATIONS, PAIRINGS, Deployment, Mitigations, Party, Verdict, audit_sharing, behind_delay,
                            collect, compare, extract_pages, fewest_probes, guess_document, power_curve, probes_needed)
from workbook.audit.procedure import PREFIX_TOKENS, SUFFIX_TOKENS, VICTIM
from workbook.audit.target import PAD_FACTOR
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
# cache and on one salted per organisation, with 50 trials of each kind (section 3 asks how many suffice).

# %%
TRIALS = 30
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
# curve traced by the detectors "call it a hit when the probe is faster than t", one for each threshold
# t. 0.5 means the timing tells nothing; 1.0 means every hit was faster than every miss.
#
# - The **p-value** is how often timings at least this separated would turn up if hits and misses took
#   the same time. The audit calls the cache shared when p < 10⁻³, so a cache that shares nothing is
#   wrongly accused in about one audit in a thousand.
# - The **power** of an audit is the share of audits of its size that find a leak that is really there.
#   More probes give more power; section 3 measures it.
#
# The test ignores which hit and miss ran side by side: valid, but it wastes the pairing, which a test on
# each pair's difference (Wilcoxon's signed-rank) would use against a drifting machine.

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
null_sd = ((2 * TRIALS + 1) / (12 * TRIALS ** 2)) ** 0.5  # the AUC's spread when timing tells nothing
assert not verdicts["per-org"].shared and abs(verdicts["per-org"].auc - 0.5) <= 4 * null_sd  # salted: nothing learnt

# %% [markdown]
# ## 3. How many probes does an attacker need?
#
# Fewer probes mean a cheaper, quieter attack, and there is a floor: with too few probes a side even a
# perfect separation, every miss slower than every hit, could be luck, so p never gets under 10⁻³.
# `fewest_probes` finds that floor. Above it, `power_curve` redraws audits of each size from the measured
# timings (with replacement) and counts how often they reach p < 10⁻³: the power at each size.
#
# A server can also add a random delay to every response; `behind_delay` shows what the attacker then
# sees. The delay does not close the leak: it raises the number of probes, and every user pays it.

# %%
FLOOR = fewest_probes()
AUDIT_TRIALS = 20  # probes a side in sections 4 and 6: checked against the curves below
SIZES = sorted({*range(FLOOR, 13), 14, 16, 18, 20, AUDIT_TRIALS, TRIALS})  # redrawn from TRIALS a side: none larger
shared = big["global"]
figure = go.Figure()
curves, needed = {}, {}
DELAYS_MS = (0, 10, 20)
for delay_ms in DELAYS_MS:
    curves[delay_ms] = power_curve(behind_delay(shared.hits, delay_ms / 1e3, seed=3),
                                   behind_delay(shared.misses, delay_ms / 1e3, seed=4), SIZES, resamples=1000)
    needed[delay_ms] = probes_needed(curves[delay_ms])
    figure.add_scatter(x=[n for n, _ in curves[delay_ms]], y=[f for _, f in curves[delay_ms]], mode="lines+markers",
                       name=f"random delay up to {delay_ms} ms: {needed[delay_ms] or f'over {max(SIZES)}'} probes for 90%")
delayed_curve = curves[10]  # exercise 2 reads it
figure.update_layout(title="Audits that find the sharing (p < 10⁻³), by probes per side", xaxis_title="probes per side",
                     yaxis_title="share of audits", yaxis_tickformat=".0%", height=360)
figure.show()
below = compare(list(range(FLOOR - 1)), list(range(FLOOR - 1, 2 * FLOOR - 2))).p_value
print(f"Floor: with {FLOOR - 1} probes a side a perfect separation still has p = {below:.1e}; with {FLOOR} it passes.")
worst = DELAYS_MS[-1]
assert needed[0] is not None and (needed[worst] is None or needed[worst] >= needed[0])
print(f"Without a delay {needed[0]} probes per side suffice 90% of the time; a random delay of up to {worst} ms costs "
      f"every user {worst / 2:.0f} ms on average and the attacker {needed[worst] or f'over {max(SIZES)}'} probes.")
print(f"The audits below use {AUDIT_TRIALS} probes a side: {dict(curves[worst])[AUDIT_TRIALS]:.1%} of redrawn audits find "
      f"the sharing with them even behind the {worst} ms delay, slack for a machine that gets busier than in section 1.")

# %% [markdown]
# ## 4. Which sharing does a deployment allow?
#
# The paper's sharing levels come from running attacker and victim as the same user, as two users of
# one organisation, and as two organisations. `audit_sharing` does all three on each of our isolation
# policies, with the number of probes a side checked in section 3. An audit that finds nothing is
# inconclusive, not a proof: on a machine busier than section 1's, that many probes can still miss real
# sharing. So, as an auditor would, every "no" is audited once more with fresh probes, and only a second
# "no" stands. Two looks at p < 10⁻³ each call an unshared pairing shared at most 2 times in 1,000.

# %%
table = {isolation: audit_sharing(Deployment(model, tokenizer, isolation).send, vocab_size=VOCAB, trials=AUDIT_TRIALS,
                                seed=2)
         for isolation in ISOLATIONS}
for isolation, found in table.items():  # the second look at every "no"
    for i, (pairing, first) in enumerate(list(found.items())):
        if not first.shared:
            again = collect(Deployment(model, tokenizer, isolation).send, VICTIM, PAIRINGS[pairing], trials=AUDIT_TRIALS,
                            vocab_size=VOCAB, seed=20 + i)
            found[pairing] = Verdict(pairing, again, compare(again.hits, again.misses))
for isolation, found in table.items():
    cells = ", ".join(f"{pairing}: {'SHARED' if v.shared else 'no'} (AUC {v.comparison.auc:.2f})"
                      for pairing, v in found.items())
    print(f"{isolation:>8} | {cells}")
for isolation, found in table.items():  # shared exactly when attacker and victim get the same salt
    assert {p: v.shared for p, v in found.items()} == \
        {p: ISOLATIONS[isolation](PAIRINGS[p]) == ISOLATIONS[isolation](VICTIM) for p in PAIRINGS}

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
# Each row audits the cross-organisation pairing after one change (the first three rows are section 4's
# audits) and says what the change costs. A salt costs the sharing it forbids: a system prompt common to
# two organisations is now cached once for each.
#
# **Padding** must leave nothing to tell a hit from a miss. Padding hits to a copy of an earlier miss's
# time would not do: an attacker who logs their own misses spots the copies. So the padded deployment
# holds *every* response until one deadline well above a miss's time, and really sleeps.
#
# **A minimum cached length** is audited twice: with the probes used so far, and with probes of 1,024
# tokens, the minimum itself. Those are slow to prefill, so that row runs one probe a side past section 3's floor
# (at the floor itself one slow hit would hide the sharing; one past it, p stays under 10⁻³ with up to four
# hit-and-miss pairs in the wrong order) and no warm-up: a hit there skips about a thousand tokens of prefill.

# %%
PROBE = PREFIX_TOKENS + SUFFIX_TOKENS  # tokens in every probe so far
LONG = 1024  # the minimum length itself
MITIGATED = {  # name: (isolation, mitigations, tokens per probe)
    "pad every response to a deadline": ("global", Mitigations(pad_to_deadline=True), PROBE),
    "random delay up to 20 ms": ("global", Mitigations(jitter_s=0.020), PROBE),
    "no caching under 1,024 tokens": ("global", Mitigations(min_cached_tokens=LONG), PROBE),
    "the same, probes of 1,024 tokens": ("global", Mitigations(min_cached_tokens=LONG), LONG),
    "pages of 64 tokens": ("global", Mitigations(page_size=64), PROBE),
}
samples = {name: table[isolation]["another organisation"].samples for name, isolation in
           (("none (global cache)", "global"), ("salt per organisation", "per-org"), ("salt per user", "per-user"))}
deployments = {}
for name, (isolation, mitigation, tokens) in MITIGATED.items():
    deployments[name] = Deployment(model, tokenizer, isolation, mitigation)
    trials, warmup = (FLOOR + 1, 0) if tokens == LONG else (AUDIT_TRIALS, 2)
    samples[name] = collect(deployments[name].send, VICTIM, ATTACKER, trials=trials, warmup=warmup, vocab_size=VOCAB,
                            prefix_tokens=tokens - SUFFIX_TOKENS, seed=7)
results = {name: compare(s.hits, s.misses) for name, s in samples.items()}


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
padded = "pad every response to a deadline"
probe_ms = {name: statistics.fmean(s.hits + s.misses) * 1e3 for name, s in samples.items()}
deadline_ms = deployments[padded].deadline_s(PROBE) * 1e3
costs = {
    "none (global cache)": f"nothing: {reads['global']:.0%} of a shared system prompt read from cache",
    "salt per organisation": f"{reads['per-org']:.0%} of the shared system prompt read (each organisation writes its own)",
    "salt per user": f"{reads['per-user']:.0%} read: every user writes their own copy",
    padded: f"every response waits {deadline_ms:.0f} ms ({PAD_FACTOR}x a cold request's median): a probe took "
            f"{probe_ms[padded]:.0f} ms on average, against {probe_ms['none (global cache)']:.0f} ms unpadded "
            f"(compute is still saved)",
    "random delay up to 20 ms": f"{MITIGATED['random delay up to 20 ms'][1].jitter_s * 1e3 / 2:.0f} ms more a response, on average",
    "no caching under 1,024 tokens": f"no caching at all for prompts under {LONG:,} tokens",
    "the same, probes of 1,024 tokens": f"it protects only prompts under {LONG:,} tokens; the attacker just sends longer ones",
    "pages of 64 tokens": f"up to {MITIGATED['pages of 64 tokens'][1].page_size - 1} more tokens recomputed a request",
}
for name, c in results.items():
    n = len(samples[name].hits)
    print(f"{name:>32}: AUC {c.auc:.2f}, p = {c.p_value:.0e}, {'SHARED' if c.shared else 'not found'} ({n} a side); "
          f"cost: {costs[name]}")
assert results["none (global cache)"].shared and not results["salt per organisation"].shared
assert not results["no caching under 1,024 tokens"].shared
overran = deployments[padded].overruns  # responses slower than the deadline go out late, unhidden
assert overran or not results[padded].shared  # padding hides the hit whenever every response met its deadline
print(f"Padded: {overran} response{'s' if overran != 1 else ''} overran the {deadline_ms:.0f} ms deadline"
      + (" (a busy machine: those went out late, which is how padding leaks)" if overran else "."))
assert results["the same, probes of 1,024 tokens"].shared  # the minimum hides nothing at or over it
padded_times = samples[padded].hits + samples[padded].misses
assert min(padded_times) >= deadline_ms / 1e3 and len(set(padded_times)) == len(padded_times)  # waited; no copies

# %% [markdown]
# Read the table with the attacks in mind. A salt removes the leak at its boundary and costs exactly the
# sharing across that boundary. Padding hides the hit because every response, hit or miss, waits for the
# same deadline: it gives up the hit's speed and slows every miss too, keeps the compute saving, and holds
# only while no miss overruns the deadline (one that does goes out late, and is known to be a miss). A
# minimum cached length protects only prompts shorter than it: against 1,024-token probes the same
# deployment is found again. So were real providers: Gu et al. audited with prompts of about 5,000 tokens
# (`--n_prompt_tokens 5000` in [their code's README](https://github.com/chenchenygu/auditing-prompt-caching)),
# far over the 1,024 tokens from which OpenAI caches
# ([prompt caching guide](https://platform.openai.com/docs/guides/prompt-caching)). A random delay and
# coarser pages leave membership visible: the delay only raises the number of probes, and coarser pages
# only slow extraction.
#
# ## 7. The audit bench
#
# Pick an isolation, one mitigation and who the attacker is, then run a small audit (20 trials, a few
# seconds; padding really waits, so it takes longer).

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
# - Salt the cache at the trust boundary (tenant, or user). Padding hides hits only when every response
#   waits for one deadline above a miss's time, at the price of the hit's speed; a minimum length protects
#   only shorter prompts; random delays and coarser pages only slow an attacker down.
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
# **Exercise 2.** An attacker who can simply run the audit again settles for finding the sharing half the
# time. Behind a random delay of up to 10 ms, how many probes per side does that take? Read `delayed_curve`
# (the 10 ms curve in section 3).

# %%
answer_2 = None
check_probes(answer_2, delayed_curve)

# %% [markdown]
# **Exercise 3.** Every response is padded to a deadline, as in section 6. The attacker guesses which of 8
# documents a victim pasted, 200 times over. How many guesses should come out right?

# %%
answer_3 = None
check_chance(answer_3)

# %%
print(f"lesson ran in {time.perf_counter() - lesson_start:.1f} s")
