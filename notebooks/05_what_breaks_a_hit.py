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
# # Lesson 5: what breaks a cache hit
#
# Lesson 4 showed that a request can load the K/V rows of a prefix that an earlier request computed.
# Whether it actually does depends on the prompt your code builds. A prefix cache matches token ids,
# not meaning, so a date, a name, a reordered JSON object or one stray space near the top of a prompt
# quietly turns every later request into a cold one. Your bill and your latency go up and nothing
# reports an error.
#
# By the end of this lesson you will be able to:
#
# - name the usual cache breakers (timestamps and names early in the prompt, a chat template that stamps
#   the date, tool schemas serialised in another key order, trailing whitespace, an edited document, the
#   tokenization seam) and find the first token where each one strikes;
# - show that sampling settings (temperature, top_p, max tokens) and the user's question never break a hit;
# - explain why a small change can cost more than its own tokens: whole pages, and providers' minimum
#   lengths and steps;
# - lay a prompt out static-first and measure what that changes on a replayed workload: hit rate,
#   cost and time to first token.
#
# Everything runs on the workbook's small model, on your CPU, in well under a minute.

# %%
import json
import time
from dataclasses import replace

import workbook
from workbook.exercises.lesson5 import check_loaded_after_change, check_openai_cached_tokens, check_seam_cached_tokens
from workbook.lessons.prompt_lab import (BREAKERS, CURRENT, PREVIOUS, Draft, PromptLab, PromptTemplate, compare_layouts,
                                         drafts, render, workload)
from workbook.lessons.scenarios import DATE_FORMAT
from workbook.pricing import cacheable_tokens, cost, load_price_sheets, provider_usage
from workbook.widgets.prompt_lab import PromptLabView

lesson_start = time.perf_counter()
model = workbook.load_model(workbook.default_model())
tokenizer = workbook.load_tokenizer(workbook.default_model())
sheets = load_price_sheets()
sonnet = sheets["anthropic/claude-sonnet-4-5"]
print(f"{workbook.default_model()}: {model.num_parameters() / 1e6:.1f}M parameters on {model.device}")

# %% [markdown]
# ## 1. One template, two requests
#
# Our example app is the support assistant of a bicycle rental shop. Every request is rendered from one
# template: a system prompt, two tool definitions as JSON, a short policy document, a date line, the
# customer's name and their message, passed through the model's chat template.
#
# The cache holds **yesterday's** request: Ana, 14 March, 09:00:00. **Today's** request comes from Ben on
# 15 March, 47 seconds past nine. Everything up to the date is the *static part*: the same for every
# customer on every day, and what we hope to load from the cache. The date, the customer and the message
# are the *dynamic part*.

# %%
template = PromptTemplate()
today = render(Draft.of(template, CURRENT), tokenizer)
print(f"yesterday: {PREVIOUS}\ntoday:     {CURRENT}\n")
print("...end of the static part:", repr(today.static[-60:]))
print("start of the dynamic part:", repr(today.dynamic[:60]), "...")
print(f"\n{len(tokenizer.encode(today.static))} static tokens, then {len(tokenizer.encode(today.dynamic))} dynamic ones")

# %% [markdown]
# `PromptLab` sends both requests through an `Engine` with a `PrefixCache` (16-token pages). Before each
# run it empties the cache and fills it with yesterday's request, so every run starts from the same
# cache. With a well-behaved template, today's request loads every whole page of the static part:

# %%
lab = PromptLab(model, tokenizer)
clean = lab.run(template)
print(f"first difference at token {clean.divergence} (the date), {clean.loaded} tokens loaded of "
      f"{clean.cacheable} cacheable, {clean.recomputed} computed again")
assert clean.divergence == clean.static_tokens and clean.reused_share == 1.0 and clean.recomputed == 0

# %% [markdown]
# The first difference is the date, right where the dynamic part begins. The last few static tokens
# that do not fill a whole page are computed anyway; section 5 comes back to them.
#
# ## 2. The lab
#
# Tick a breaker and the lab re-sends today's request with it. The summary names the first divergent
# token, the share of the static part that was still reused, the rows the cache held but that had to be
# computed again, and what that costs at a provider's prices. The strip below it colours every token:
# **loaded** from the cache, **invalidated** (the cache held it, a change before it threw it away) or
# **computed** (new anyway). You can also edit the template itself, switch the layout, change the page
# size, and move the sliders for temperature, top_p and max tokens, which should change nothing at all.

# %%
view = PromptLabView(model, tokenizer)
view.widget

# %% [markdown]
# The view is driven by the same functions you can call from code. A click takes one short prefill on
# the CPU; the lab keeps yesterday's rows, so it never computes them twice:

# %%
view.set_breaker("timestamp")
assert view.state.result.breakers == ("timestamp",) and view.state.result.loaded < clean.loaded
print(f"after a click: {view.state.result.loaded} tokens loaded, the view redrawn in {view.state.latency_s * 1e3:.0f} ms")
view.set_breaker("timestamp", False)

# %% [markdown]
# ## 3. The breakers, one at a time

# %%
runs = {name: lab.run(template, [name]) for name in BREAKERS}
print(f"{'breaker':18}{'1st diff':>9}  {'today':>10} {'yesterday':>10}{'loaded':>8}{'reused':>8}{'recomputed':>11}"
      f"{'extra $ per 1M requests':>25}")
for name, r in runs.items():
    now, then = (tokenizer.token_texts(ids[r.divergence:r.divergence + 1])[0] for ids in (r.ids, r.cached_ids))
    extra = (r.input_cost(sonnet) - clean.input_cost(sonnet)) * 1_000_000
    print(f"{name:18}{r.divergence:>9}  {now!r:>10} {then!r:>10}{r.loaded:>8}{r.reused_share:>8.0%}{r.recomputed:>11}"
          f"{extra:>25,.2f}")
for name in BREAKERS:
    if name != "token_seam":  # the seam costs one token, which 16-token pages hide here: see below
        assert runs[name].divergence < clean.static_tokens and runs[name].loaded < clean.loaded, name
        assert runs[name].input_cost(sonnet) > clean.input_cost(sonnet), name

# %% [markdown]
# The extra dollars are at Claude Sonnet 4.5's prices, with this engine's caching rules, for a prompt of
# a few hundred tokens; section 5 scales that up to real prompts and real provider rules. (The seam's
# small negative number is the one token fewer that a prompt tokenized as one string has.) Now the
# breakers one by one.
#
# **A timestamp or a name at the top.** Both change with every request (or every customer) and sit in
# the first few tokens, so nothing of the static part survives. Keep them, but move them into the
# dynamic part: the model reads them just as well at the end.
#
# **A chat template that stamps the date.** You did not write this one. Some chat templates (Llama 3.1's,
# for one) write "Today Date: ..." into the system turn by themselves, and the workbook's tokenizer ships
# such a template as `"dated"`. Left alone, it formats the machine's clock (`strftime_now`), so the
# prompt changes at midnight whatever your code does. Like Llama 3.1's, it reads a `date_string`
# variable instead when you pass one, which is how the lab shows "yesterday" and "today" without
# waiting a day:

# %%
for visit in (PREVIOUS, CURRENT):
    stamped = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], template="dated",
                                            date_string=visit.when.strftime(DATE_FORMAT))
    first_line = stamped.splitlines()[1]
    assert first_line.startswith(f"Today Date: {visit.when.strftime(DATE_FORMAT)}")
    print(f"{visit.when:%d %b}: {first_line!r}")
dated = runs["dated_template"]
assert dated.divergence < 10 and dated.loaded == 0

# %% [markdown]
# If you cannot change such a template, pin the date it sees (pass `date_string`), or put the date where
# you want it yourself.
#
# **Tools re-serialised.** Many frameworks rebuild tool schemas from Python dicts on every request. The
# JSON means the same whatever the key order, but the tokens do not:

# %%
before, now = drafts(template, ["tool_key_order"])
tools_then = render(before, tokenizer).static.split("# Tools\n")[1].split("\n\n")[0]
tools_now = render(now, tokenizer).static.split("# Tools\n")[1].split("\n\n")[0]
print(tools_then[:70].replace("\n", " "), "...\n" + tools_now[:70].replace("\n", " "), "...")
assert json.loads(tools_then) == json.loads(tools_now) and tools_then != tools_now

# %% [markdown]
# Serialise once, canonically (`json.dumps(tools, sort_keys=True)`), and send those exact bytes every time.
#
# **A trailing space.** It is invisible in an editor, and it is a different token:

# %%
r = runs["trailing_space"]
window = slice(r.divergence - 3, r.divergence + 2)
print("yesterday:", tokenizer.token_texts(r.cached_ids[window]))
print("today:    ", tokenizer.token_texts(r.ids[window]))

# %% [markdown]
# **An edited document in the middle.** Here a rule was added to the middle of the policy. Everything
# before the edit is still reused; everything after it is not. Retrieved documents behave the same way:
# the cache is only as good as the part of the prompt that did not change.

# %%
doc = runs["changed_document"]
print(f"reused {doc.loaded} of {doc.cacheable} cacheable tokens ({doc.reused_share:.0%})")
assert 0 < doc.reused_share < 1

# %% [markdown]
# **The tokenization seam.** Our static part ends with the space after "Today's date:". Tokenized on its
# own, that space is a token. Tokenized together with the date, the space merges into the date's first
# token. So if the app builds each prompt as *one string*, the last static token never matches the one
# the cache holds. `Engine` also accepts a prompt as *segments*, a list of strings tokenized one at a time
# and then joined, which keeps the seam where it is; the lab sends segments unless this breaker is on.

# %%
seam_text = today.static[-15:] + today.dynamic[:6]
print("on its own:", tokenizer.token_texts(tokenizer.encode(today.static))[-3:])
print("one string:", tokenizer.token_texts(tokenizer.encode(seam_text))[-4:])
seam = runs["token_seam"]
assert seam.divergence == seam.static_tokens - 1

# %% [markdown]
# With 16-token pages, losing the last token of a static part that ends mid-page costs nothing: that
# partial page was never cached. With pages of one token (Anthropic counts hits to the token) the loss
# shows:

# %%
fine = PromptLab(model, tokenizer, page_size=1)
seam_fine, clean_fine = fine.run(template, ["token_seam"]), fine.run(template)
print(f"pages of 1: {clean_fine.loaded} tokens loaded with segments, {seam_fine.loaded} as one string")
assert seam_fine.loaded == clean_fine.loaded - 1

# %% [markdown]
# Segments fix the cache but hand the model a split it rarely saw in training (a lone space, then "15"
# instead of " 15"). The cleaner fix is to end the static part where the tokenizer splits anyway, for
# instance at a line break:

# %%
newline = replace(template, date_line="Today's date:\n{date}")
assert fine.run(newline, ["token_seam"]).loaded == fine.run(newline).loaded
print("with the date on its own line the seam costs nothing: this tokenizer never merges a newline with digits")

# %% [markdown]
# ## 4. What does not break a hit
#
# Temperature and top_p reshape the probabilities *after* the last layer, and max tokens only says when
# to stop. None of them touches a prompt token, so none of them touches a K/V row. The user's question
# changes rows too, but only its own, after the prefix. Every run of the lab already sends a different
# question from yesterday's; here are a few more:

# %%
others = {
    "temperature 1.2": lab.run(template, temperature=1.2),
    "top_p 0.5": lab.run(template, temperature=0.8, top_p=0.5),
    "max tokens 6": lab.run(template, max_new_tokens=6),
}
lab.current = replace(CURRENT, user_message="Do you have tandem bikes? My sister and I want one for Sunday.")
others["another question"] = lab.run(template)
lab.current = CURRENT
for what, r in others.items():
    print(f"{what:17} {r.loaded} tokens loaded, first difference at token {r.divergence}")
    assert (r.loaded, r.divergence) == (clean.loaded, clean.divergence), what

# %% [markdown]
# ## 5. Why a small change costs more than its own tokens
#
# **Whole pages.** A prefix cache stores and loads whole pages of K/V rows (vLLM's blocks, our
# `page_size`). A change at token *d* keeps only the pages that end before it: ⌊d / page⌋ × page tokens.
# The unchanged tokens between that page boundary and *d* are computed again anyway. One of the seed
# articles says "change token 47, and everything from token 47 onward has to be recomputed"; with
# 16-token pages it is everything from token 32 on.

# %%
print(f"{'page size':>9}{'1st diff':>9}{'loaded':>8}{'unchanged but recomputed':>26}")
for page in (1, 16, 64):
    r = PromptLab(model, tokenizer, page_size=page).run(template, ["changed_document"])
    print(f"{page:>9}{r.divergence:>9}{r.loaded:>8}{r.lost_to_pages:>26}")
    assert r.loaded == r.divergence // page * page and r.lost_to_pages == r.divergence - r.loaded
assert 47 // 16 * 16 == 32  # the seed's token 47, with 16-token pages

# %% [markdown]
# **A provider's minimum and step.** Hosted APIs add their own rules, and `workbook.pricing` knows them:
# nothing under a minimum length is cached at all (1,024 tokens at OpenAI and Claude Sonnet 4.5, 2,048 or
# 4,096 elsewhere), and OpenAI counts hits in steps of 128 tokens. Our lab prompt is far too short to be
# cached anywhere:

# %%
print(f"today's request has {len(clean.ids)} tokens")
for key, sheet in sheets.items():
    assert clean.provider_usage(sheet).cache_read_tokens == 0
    print(f"  {sheet.name:22} caches from {sheet.min_cacheable_tokens:>5,} tokens: reads {clean.provider_usage(sheet).cache_read_tokens}")

# %% [markdown]
# At a realistic size the rules bite harder. Take a static part of 1,300 tokens plus a 60-token question
# and a 200-token answer, at GPT-5.5 and Claude Sonnet 4.5, and put a breaker at different places. Watch
# the last column: the tokens that fall out of the cache because of *one* changed token.

# %%
gpt = sheets["openai/gpt-5.5"]
STATIC, QUESTION, ANSWER = 1_300, 60, 200
cases = {"nothing changed": STATIC, "edit at token 1,100": 1_100, "edit at token 900": 900,
         "timestamp at token 11": 11}
print(f"{'':22}{'model':>20}{'cached':>8}{'$ per 1M requests':>19}{'uncached tokens':>17}")
for what, shared in cases.items():
    for sheet in (gpt, sonnet):
        usage = provider_usage(sheet, STATIC + QUESTION, shared, ANSWER)
        print(f"{what:22}{sheet.name:>20}{usage.cache_read_tokens:>8,}{cost(usage, sheet) * 1e6:>19,.0f}"
              f"{usage.input_tokens:>17,}")
assert cacheable_tokens(gpt, 1_300) == 1_280 and cacheable_tokens(gpt, 1_100) == 1_024
assert cacheable_tokens(gpt, 900) == 0 and cacheable_tokens(sonnet, 900) == 0  # under the minimum: all or nothing
assert cacheable_tokens(sonnet, 1_100) == 1_100  # Anthropic counts to the token

# %% [markdown]
# An edit at token 900 leaves 900 matching tokens, which is under both minimums, so the provider caches
# nothing and bills all 1,360 input tokens at the full price. The change itself was one token. Even with
# nothing changed, OpenAI bills 1,280 cached tokens, not 1,300: the 20 beyond the last 128-token step are
# full price.
#
# ## 6. Layout, measured on a workload
#
# One request tells you where a prompt breaks; a workload tells you what it costs. `compare_layouts`
# replays a morning at the shop, twelve messages from nine customers (Ana writes three times, Ben twice),
# through a fresh engine and prefix cache, once per layout:
#
# - **dynamic-first**, the way people write: date and customer first, then the system prompt, tools and policy;
# - **static-first**: system prompt, tools and policy first, then the date, the customer and the message.

# %%
layouts = compare_layouts(model, tokenizer, template, workload())
print(f"{'layout':14}{'hit rate':>9}{'loaded':>8}{'computed':>9}{'Sonnet 4.5 $/1M':>17}{'GPT-5.5 $/1M':>14}{'TTFT p50':>10}")
for layout, run in layouts.items():
    u = run.usage
    per_million = {s.key: cost(replace(u, output_tokens=0), s) / run.requests * 1e6 for s in (sonnet, gpt)}
    print(f"{layout:14}{run.hit_rate:>9.0%}{u.cache_read_tokens:>8,}{u.input_tokens + u.cache_write_tokens:>9,}"
          f"{per_million[sonnet.key]:>17,.0f}{per_million[gpt.key]:>14,.0f}{run.ttft_p50_s * 1e3:>8.1f}ms")
static_first, dynamic_first = layouts["static-first"], layouts["dynamic-first"]
assert static_first.hit_rate > 2 * dynamic_first.hit_rate
assert cost(static_first.usage, sonnet) < cost(dynamic_first.usage, sonnet)
assert cost(static_first.usage, gpt) < cost(dynamic_first.usage, gpt)

# %% [markdown]
# Same words, same model, same answers; only the order changed. Static-first loads the shared system
# prompt, tools and policy for every customer after the first. Dynamic-first gets a hit only when a
# customer comes back, because the date and the name make every customer's prompt unique from the first
# line. The input prices above use this engine's rules (16-token pages, no minimum); a hosted API would
# first need the static part to clear its minimum length.
#
# The TTFT column is the same story in time: loading rows is much cheaper than computing them. (Timings
# depend on your machine and are never asserted.) Lesson 4 showed the flip side: that difference in
# time is visible from outside, which is why caches are kept apart per tenant.
#
# ## What to take away
#
# - A cache hit needs the same tokens in the same positions. Anything that changes per request or per day
#   belongs after everything that does not.
# - Look for the breakers you did not write: chat templates that stamp dates, frameworks that
#   re-serialise tools, editors that leave trailing spaces, and the seam where the static part meets the
#   dynamic one.
# - Sampling settings and the user's question never break a hit.
# - A change costs whole pages, and at a provider it can cost the whole prefix when what is left falls
#   under the minimum length.
# - Measure on a workload: hit rate, tokens loaded and TTFT tell you whether the layout works.
#
# ## Check yourself
#
# **Exercise 1.** A long prompt sits in a prefix cache with 64-token pages. Today's request first differs
# from it at token 300 (counting from 0). How many tokens can be loaded from the cache?

# %%
answer_1 = None
check_loaded_after_change(answer_1)

# %% [markdown]
# **Exercise 2.** The static part of a prompt is 1,300 tokens long. A changed document alters token
# 1,100 of it. How many of the prompt's tokens does GPT-5.5 bill as cached? (Its rules are in `gpt`:
# `gpt.min_cacheable_tokens`, `gpt.cache_step`.)

# %%
answer_2 = None
check_openai_cached_tokens(answer_2)

# %% [markdown]
# **Exercise 3.** Another app's static part is exactly 1,024 tokens long and ends with a space, like
# ours. The app builds each request as one string and sends it to GPT-5.5. How many tokens are billed
# as cached?

# %%
answer_3 = None
check_seam_cached_tokens(answer_3)

# %%
print(f"lesson ran in {time.perf_counter() - lesson_start:.1f} s")
