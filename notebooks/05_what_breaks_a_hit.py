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
#   cost and time to first token;
# - say, in numbers, where a provider's bill differs from what our engine saved: Anthropic reads only at
#   cache breakpoints (yours, or the one automatic caching places), OpenAI in 128-token steps;
# - place breakpoints in a multi-turn agent conversation so each request writes only what is new.
#
# Everything runs on the workbook's small model, on your CPU, in well under a minute.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(5)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import datetime as dt
import json
import time
from dataclasses import replace

from plotly.subplots import make_subplots

import workbook
from workbook.exercises.lesson5 import check_loaded_after_change, check_openai_cached_tokens, check_seam_cached_tokens
from workbook.lessons.conversation import STRATEGIES, Conversation, bill_strategies
from workbook.lessons.prompt_lab import (BREAKERS, CURRENT, PREVIOUS, Draft, PromptLab, PromptTemplate, compare_layouts,
                                         drafts, render, workload, workload_requests)
from workbook.lessons.provider_bills import WARM_GAP_S, bill_both, careful_request, provider_bills
from workbook.lessons.scenarios import DATE_FORMAT, DEFAULT_SYSTEM_PROMPT
from workbook.pricing import cacheable_tokens, load_price_sheets
from workbook.providers import LOOKBACK_BLOCKS, Block, Request, simulate
from workbook.widgets.prompt_lab import PromptLabView
from workbook.widgets.style import PROVENANCE_COLOURS

lesson_start = time.perf_counter()
model = workbook.load_model(workbook.default_model())
tokenizer = workbook.load_tokenizer(workbook.default_model())
sheets = load_price_sheets()
sonnet, gpt = sheets["anthropic/claude-sonnet-4-5"], sheets["openai/gpt-5.5"]
print(f"{workbook.default_model()}: {model.num_parameters() / 1e6:.1f}M parameters on {model.device}")

# %% [markdown]
# ## 1. One template, two requests
#
# Our example app is the support assistant of a bicycle rental shop. Every request is rendered from one
# template: a system prompt, two tool definitions as JSON, the shop's rental terms, a date line, the
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
# token, the share of the static part that was still reused and the rows the cache held but that had to
# be computed again. Below it, two bills for today's prompt: **this engine**'s usage, and what **the
# provider would bill** for the same two requests (`LabResult.bills`). The lab sends them to the provider
# the way a careful engineer would: the static part as one block, the dynamic part as another, and for
# Anthropic a cache breakpoint at the end of the static part (OpenAI and Google cache without one). A
# provider's cache can forget a prefix after 5 idle minutes (Anthropic's default lifetime; OpenAI's in-memory
# cache keeps one "5 to 10 minutes", and the simulator takes 5), so the lab sends yesterday's request a minute
# before today's, as if other customers had kept the static part warm. The strip below colours every token:
# **loaded** from the cache, **invalidated** (the cache held it, a change before it threw it away) or
# **computed** (new anyway). You can also edit the template itself, switch the layout, change the page
# size, and move the sliders for temperature, top_p and max tokens, which should change nothing at all.
#
# **Predict first:** a timestamp at the top of the system prompt, or a rule added in the middle of the
# policy: which one costs more of the static part? Guess, then tick each breaker in turn.

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
stamped = view.state.result.bills(sonnet)
assert stamped.provider.usage.cache_read_tokens == 0 < stamped.provider.usage.cache_write_tokens
print(stamped.explain())
view.set_breaker("timestamp", False)

# %% [markdown]
# ## 3. The breakers, one at a time

# %%
runs = {name: lab.run(template, [name]) for name in BREAKERS}
clean_bills = clean.bills(sonnet)
print(f"{'':68}extra $ per 1M requests")
print(f"{'breaker':18}{'1st diff':>9}  {'today':>10} {'yesterday':>10}{'loaded':>8}{'reused':>8}{'recomputed':>11}"
      f"{'this engine':>13}{'Sonnet bills':>14}")
for name, r in runs.items():
    now, then = (tokenizer.token_texts(ids[r.divergence:r.divergence + 1])[0] for ids in (r.ids, r.cached_ids))
    bills = r.bills(sonnet)
    print(f"{name:18}{r.divergence:>9}  {now!r:>10} {then!r:>10}{r.loaded:>8}{r.reused_share:>8.0%}{r.recomputed:>11}"
          f"{(bills.engine_usd - clean_bills.engine_usd) * 1e6:>13,.2f}"
          f"{(bills.provider_usd - clean_bills.provider_usd) * 1e6:>14,.2f}")
for name in BREAKERS:
    bills = runs[name].bills(sonnet)
    if name == "token_seam":  # see below: pages hide the seam here, and the provider never sees it
        assert bills.provider.usage == clean_bills.provider.usage
        continue
    assert runs[name].divergence < clean.static_tokens and runs[name].loaded < clean.loaded, name
    assert bills.engine_usd > clean_bills.engine_usd, name
    assert bills.provider.usage.cache_read_tokens == 0 and bills.provider_usd > clean_bills.provider_usd, name

# %% [markdown]
# Both money columns are extra dollars per million requests at Claude Sonnet 4.5's prices. **This
# engine** bills our engine's usage: a breaker costs the pages after it and no more. **Sonnet bills** is
# what Anthropic would bill: every breaker inside the static part changes the block that carries the
# breakpoint, so Anthropic reads nothing and writes the whole static part again at 1.25 times the input
# price, whether the change is at its first token or near its end. (The seam's small negative number in
# the engine column is the one token fewer that a prompt tokenized as one string has.) Now the
# breakers one by one.
#
# **A timestamp or a name at the top.** Both change with every request (or every customer) and sit in
# the first few tokens, so nothing of the static part survives. Keep them, but move them into the
# dynamic part: the model reads them just as well at the end.
#
# **A chat template that stamps the date.** You did not write this one. Some chat templates write
# "Today Date: ..." into the system turn by themselves. Llama 3.2's and 3.3's format the machine's clock
# (`strftime_now`) when you pass no date; Llama 3.1's writes a fixed "26 Jul 2024" instead (the
# `chat_template` in each model's `tokenizer_config.json` on Hugging Face). The workbook's tokenizer ships
# a template like 3.2's as `"dated"`. Left alone, it formats the clock, so the prompt changes at midnight
# whatever your code does. Like Llama's, it reads a `date_string` variable instead when you pass one,
# which is how the lab shows "yesterday" and "today" without waiting a day:

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
# **One extra space at the very start.** The smallest breaker of all: a string join or a template that
# puts a space (or a newline) before everything else. Below, the space is its own token, and every token
# after it is the very same id as before, only one position later. What the cell shows is the cache's
# side: it compares ids position by position, so it misses at token 0 and loads nothing. The model's
# side says no cache could do better: lesson 2 showed that RoPE turns the same token at another position
# into a different key, and each row also attends to the new first token, so no row of the old prompt is
# right any more.

# %%
shift_engine = workbook.Engine(model, tokenizer, workbook.PrefixCache(workbook.PagePool.for_tokens(4096, 16)))
static_ids = tokenizer.encode(DEFAULT_SYSTEM_PROMPT)
question_ids = tokenizer.encode(" Can I return a bike a day early?")
shift_engine.generate(static_ids + question_ids, max_new_tokens=1)
same = shift_engine.generate(static_ids + question_ids, max_new_tokens=1)
shifted_ids = tokenizer.encode(" ") + static_ids  # one extra token at the start, then the same ids
shifted = shift_engine.generate(shifted_ids + question_ids, max_new_tokens=1)
assert shifted_ids[1:] == static_ids and same.cached_tokens > 0 and shifted.cached_tokens == 0
print(f"the same prompt again: {same.cached_tokens} tokens loaded; with one space first "
      f"({len(static_ids)} identical ids, each one position later): {shifted.cached_tokens} loaded")

# %% [markdown]
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
# **An edited document in the middle.** Here a rule was added to the middle of the rental terms. In our
# engine everything before the edit is still reused and everything after it is not; retrieved documents
# behave the same way. At Anthropic, with one breakpoint at the end of the static part, the edit costs
# the whole static part: the block the breakpoint closes is no longer the one in the cache.

# %%
doc, doc_bills = runs["changed_document"], runs["changed_document"].bills(sonnet)
print(f"this engine reused {doc.loaded} of {doc.cacheable} cacheable tokens ({doc.reused_share:.0%}); "
      f"{sonnet.name} would read {doc_bills.provider.usage.cache_read_tokens} and write all "
      f"{doc_bills.provider.usage.cache_write_tokens:,} again")
assert 0 < doc.reused_share < 1 and doc_bills.provider.usage.cache_write_tokens == doc.static_tokens

# %% [markdown]
# **The tokenization seam.** Our static part ends with the space after "Today's date:". Tokenized on its
# own, that space is a token. Tokenized together with the date, the space merges into the date's first
# token. So if the app builds each prompt as *one string*, the last static token never matches the one
# the cache holds. `Engine` also accepts a prompt as *segments*, a list of strings tokenized one at a time
# and then joined, which keeps the seam where it is; the lab sends segments unless this breaker is on.
# The lab sends a provider the two parts as separate blocks, and the simulator tokenizes each block on its
# own, so the seam never forms there (the table above shows no extra at Sonnet). Whether a real provider
# tokenizes blocks apart, no provider documents. And an app that writes the date into the same string as
# the static part sends one block: the seam forms wherever that string is tokenized (exercise 3).

# %%
seam_text = today.static[-15:] + today.dynamic[:6]
print("on its own:", tokenizer.token_texts(tokenizer.encode(today.static))[-3:])
print("one string:", tokenizer.token_texts(tokenizer.encode(seam_text))[-4:])
seam = runs["token_seam"]
assert seam.divergence == seam.static_tokens - 1

# %% [markdown]
# With 16-token pages, losing the last token of a static part that ends mid-page costs nothing: that
# partial page was never cached. With pages of one token our engine loses exactly that one token:

# %%
fine = PromptLab(model, tokenizer, page_size=1)
seam_fine, clean_fine = fine.run(template, ["token_seam"]), fine.run(template)
print(f"pages of 1: {clean_fine.loaded} tokens loaded with segments, {seam_fine.loaded} as one string")
assert seam_fine.loaded == clean_fine.loaded - 1

# %% [markdown]
# Anthropic does not count hits to the token. It reads a cached prefix only where a block ends: at a
# breakpoint, or at one of the block boundaries in its **lookback** (the breakpoint's own block and the ones
# before it, 20 positions in all) that an earlier request cached. A static
# block that lost its last token is a different block, so its breakpoint finds nothing, and the read falls
# back to the last earlier boundary in the cache, or to nothing at all.
#
# Say today's renderer writes the space in front of the date instead of at the end of the static part:
# the static block has lost its last token, the very one the seam takes. `simulate` replays yesterday's
# request and today's a minute apart, rendered two ways: one breakpoint at the end of the static part
# (as the lab sends it), and a second breakpoint on a block that ends just before the date line.

# %%
earlier = render(Draft.of(template, PREVIOUS), tokenizer)
head, label = today.static.rsplit("\n\n", 1)  # label: "Today's date: ", the static part's last line
full_ids, shorter_ids = tokenizer.encode(today.static), tokenizer.encode(today.static[:-1])
assert shorter_ids == full_ids[:-1]  # today's static part is yesterday's minus its last token, the space
renderings = {"one breakpoint, at the end of the static part": lambda line: [Block(head + "\n\n" + line, "5m")],
              "two, the second before the date line": lambda line: [Block(head + "\n\n", "5m"), Block(line, "5m")]}
before_date = len(tokenizer.encode(head + "\n\n"))
for name, static_blocks in renderings.items():
    replayed = simulate(sonnet.key, [Request([*static_blocks(label), Block(earlier.dynamic)]),
                                     Request([*static_blocks(label[:-1]), Block(" " + today.dynamic)],
                                             at_s=WARM_GAP_S)], tokenizer)
    usage, static_now = replayed[1].usage, sum(len(tokenizer.encode(b.content)) for b in static_blocks(label[:-1]))
    print(f"{name}: {sonnet.name} reads {usage.cache_read_tokens:,} and writes {usage.cache_write_tokens:,} "
          f"of today's {static_now:,} static tokens")
    read = 0 if name.startswith("one") else before_date  # the whole block, or back to the boundary before it
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (read, static_now - read)

# %% [markdown]
# One lost token costs our engine one row, and Anthropic the whole block it ended: a breakpoint on a block
# that ends before anything can change keeps the loss to the small block after it.
#
# Segments fix the cache but hand the model a split it rarely saw in training (a lone space, then "15"
# instead of " 15"). The cleaner fix is to end the static part where the tokenizer splits anyway, for
# instance at a line break:

# %%
newline = replace(template, date_line="Today's date:\n{date}")
assert fine.run(newline, ["token_seam"]).loaded == fine.run(newline).loaded
label_ids = tokenizer.encode("Today's date:\n")
year = [dt.date(2026, 1, 1) + dt.timedelta(days=n) for n in range(365)]
assert all(tokenizer.encode("Today's date:\n" + day.strftime(DATE_FORMAT))[:len(label_ids)] == label_ids
           for day in year)
print(f"with the date on its own line the seam costs nothing: on every date of {year[0].year} this tokenizer "
      "keeps the newline apart from the date")

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
# Something outside the prompt's text *does* break a hit at a provider. A provider's cache lives on the
# machines that computed it, so the request has to reach them: OpenAI's guide says "Requests are routed
# to a machine based on a hash of the initial prefix of the prompt", typically its first 256 tokens, and
# that `prompt_cache_key` is combined with that hash (the prompt caching guide, read 2026-12-06). A key
# shared by everyone sending this prompt keeps them on one route; a fresh key per request (a request id,
# a UUID) sends each to a cold one (the simulator keys its cache by both, as the guide describes). The
# same 3,000-token prompt, sent three times a minute apart:

# %%
prompt = list(range(3_000))  # token ids; only their sameness matters here
routes = {"one key for everyone": ["app", "app", "app"], "a fresh key per request": ["r1", "r2", "r3"]}
for label, keys in routes.items():
    sent = [Request([Block(prompt)], at_s=60.0 * i, options={"prompt_cache_key": key}) for i, key in enumerate(keys)]
    read = [bill.usage.cache_read_tokens for bill in simulate(gpt.key, sent)]
    print(f"{label:24} OpenAI reads {read} tokens")
    assert (read[1] > 0) == (label == "one key for everyone")

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
# **A provider's minimum and step.** Hosted APIs add their own rules, and `workbook.providers` replays
# them: nothing under a minimum length is cached at all (1,024 tokens at OpenAI and Claude Sonnet 4.5,
# 2,048 or 4,096 elsewhere), OpenAI counts hits in steps of 128 tokens, and Anthropic reads only at a
# breakpoint. Our lab's static part is just long enough for some providers:

# %%
print(f"today's request has {len(clean.ids):,} tokens, {clean.static_tokens:,} of them static; this engine loaded "
      f"{clean.loaded:,}")
for key, sheet in sheets.items():
    read = clean.bills(sheet).provider.usage.cache_read_tokens
    print(f"  {sheet.name:22} caches from {sheet.min_cacheable_tokens:>5,} tokens: reads {read:>5,}")
    if clean.static_tokens < sheet.min_cacheable_tokens:
        assert read == 0, key
assert clean.bills(sonnet).provider.usage.cache_read_tokens == clean.static_tokens  # the whole marked block, at its breakpoint
assert clean.bills(gpt).provider.usage.cache_read_tokens == cacheable_tokens(gpt, clean.divergence)  # 128-token steps

# %% [markdown]
# The rules bite harder when something changes. Take a static part of 1,300 tokens plus a 60-token
# question and a 200-token answer, and change *one* token of the static part at different places.
# `bill_both` sends yesterday's request and today's through a fresh engine (16-token pages) and through
# GPT-5.5's and Claude Sonnet 4.5's rules, a minute apart, as `careful_request`s: the static part is one
# block with a breakpoint at its end. Token ids stand in for text: a bill depends only on how many tokens
# there are and which of them repeat.

# %%
STATIC, QUESTION, ANSWER = 1_300, 60, 200
LATE, EARLY, TOP = 1_100, 900, 11  # where one token changes
static = list(range(STATIC))
print(f"{'':24}{'this engine':>12}{'GPT-5.5':>16}{'Claude Sonnet 4.5':>27}")
print(f"{'':24}{'loaded':>12}{'read':>8}{'$ / 1M':>8}{'read':>9}{'written':>9}{'$ / 1M':>9}")
changed = {}
for at in (None, LATE, EARLY, TOP):
    today = static if at is None else static[:at] + [STATIC] + static[at + 1:]
    pair = [careful_request(static, list(range(STATIC + 1, STATIC + 1 + QUESTION))),
            careful_request(today, list(range(STATIC + 1 + QUESTION, STATIC + 1 + 2 * QUESTION)), at_s=WARM_GAP_S,
                            output_tokens=ANSWER)]
    both = bill_both(model, tokenizer, pair, [gpt.key, sonnet.key])
    o, a = both.bills[gpt.key][1], both.bills[sonnet.key][1]
    changed[at] = o, a
    label = "nothing changed" if at is None else f"token {at:,} changed"
    print(f"{label:24}{a.engine.cache_read_tokens:>12,}{o.provider.usage.cache_read_tokens:>8,}"
          f"{o.provider_usd * 1e6:>8,.0f}{a.provider.usage.cache_read_tokens:>9,}"
          f"{a.provider.usage.cache_write_tokens:>9,}{a.provider_usd * 1e6:>9,.0f}")
    shared = STATIC if at is None else at
    assert a.engine.cache_read_tokens == shared // 16 * 16  # our engine: whole pages, up to the change
    assert o.provider.usage.cache_read_tokens == cacheable_tokens(gpt, shared)  # OpenAI: 1,024, then steps of 128
    assert (a.provider.usage.cache_read_tokens, a.provider.usage.cache_write_tokens) == (
        (STATIC, 0) if at is None else (0, STATIC))  # Anthropic: the marked block is read whole or written whole

# %%
same, late, early = changed[None], changed[LATE], changed[EARLY]
print(f"Nothing changed: GPT-5.5 reads {same[0].provider.usage.cache_read_tokens:,} of the {STATIC:,} static tokens; "
      f"the {STATIC - same[0].provider.usage.cache_read_tokens} past its last 128-token step are full price.")
print(f"One token changed at {LATE:,}: this engine still loads {late[1].engine.cache_read_tokens:,} tokens and GPT-5.5 "
      f"reads {late[0].provider.usage.cache_read_tokens:,}; Claude Sonnet 4.5 reads none and writes all {STATIC:,} "
      f"again, ${(late[1].provider_usd - same[1].provider_usd) * 1e6:,.0f} more per million requests than with "
      "nothing changed.")
print(f"At {EARLY:,} the {EARLY:,} matching tokens are under GPT-5.5's {gpt.min_cacheable_tokens:,}-token minimum: "
      f"it reads {early[0].provider.usage.cache_read_tokens} tokens, while this engine still loads "
      f"{early[1].engine.cache_read_tokens:,}.")

# %% [markdown]
# One changed token costs far more than itself, in different ways: our engine loses the pages after it,
# OpenAI everything when the rest falls under its minimum, Anthropic the whole block its breakpoint
# closes. (A second breakpoint earlier in the static part, at most four a request, would have saved the
# blocks before the change.)
#
# ## 6. Layout, measured on a workload
#
# One request tells you where a prompt breaks; a workload tells you what it costs. `compare_layouts`
# replays a busy half hour at the shop, twelve messages from nine customers (Ana writes three times, Ben
# twice) three minutes apart, once per layout, through a fresh engine and prefix cache and through each
# provider's rules (as `careful_request`s, a breakpoint at the end of the static part):
#
# - **dynamic-first**, the way people write: date and customer first, then the system prompt, tools and policy;
# - **static-first**: system prompt, tools and policy first, then the date, the customer and the message.
#
# **TTFT p50** in the table is the median time to first token over a layout's requests: half of them
# were faster, half slower.

# %%
layouts = compare_layouts(model, tokenizer, template, workload(), [sonnet.key, gpt.key])
print(f"{'':14}{'this engine':>29}{'the provider would bill, $ per 1M requests':>45}")
print(f"{'layout':14}{'hit rate':>9}{'loaded':>8}{'TTFT p50':>12}{'Sonnet 4.5':>14}{'(read)':>8}{'GPT-5.5':>11}"
      f"{'(read)':>8}")
for layout, run in layouts.items():
    print(f"{layout:14}{run.hit_rate:>9.0%}{run.usage.cache_read_tokens:>8,}{run.ttft_p50_s * 1e3:>10.1f}ms"
          f"{run.both.provider_usd(sonnet.key) / run.requests * 1e6:>14,.0f}"
          f"{run.billed(sonnet.key).cache_read_tokens:>8,}"
          f"{run.both.provider_usd(gpt.key) / run.requests * 1e6:>11,.0f}{run.billed(gpt.key).cache_read_tokens:>8,}")
static_first, dynamic_first = layouts["static-first"], layouts["dynamic-first"]
assert static_first.hit_rate > 2 * dynamic_first.hit_rate
for key in (sonnet.key, gpt.key):
    assert static_first.both.provider_usd(key) < dynamic_first.both.provider_usd(key)
assert dynamic_first.billed(sonnet.key).cache_read_tokens == 0 < dynamic_first.usage.cache_read_tokens
# GPT-5.5 keeps a prefix 24 hours (the only retention it offers): a returning customer reads her own earlier prompt.
assert 0 < dynamic_first.billed(gpt.key).cache_read_tokens < static_first.billed(gpt.key).cache_read_tokens
visits = workload()
comebacks = [later.when - earlier.when for i, earlier in enumerate(visits) for later in visits[i + 1:]
             if later.user_name == earlier.user_name]
assert min(comebacks).total_seconds() > 5 * 60  # a returning customer's last prompt has been idle past the lifetime

# %% [markdown]
# Same words, same model, same answers; only the order changed. Static-first reads the shared system
# prompt, tools and policy for every customer after the first. Dynamic-first leaves nothing to share: the
# date and the name make every customer's prompt unique from the first line. Our engine still finds a
# hit when a customer comes back, because everything before her message repeats. Claude Sonnet 4.5 finds
# none: the part before the first changing value, where the breakpoint goes, is under its minimum, and by
# the time she writes again her previous prompt has been idle for more than its 5 minutes. GPT-5.5 finds
# only those returning customers: it keeps every prefix 24 hours (the only `prompt_cache_retention` it
# takes), so Ana's second message reads her first one.
#
# The TTFT column is the same story in time: loading rows is much cheaper than computing them. (Timings
# depend on your machine and are never asserted.) Lesson 4 showed the flip side: that difference in
# time is visible from outside, which is why caches are kept apart per tenant.
#
# Time matters to the bill too. Send the same static-first requests seven minutes apart instead of three,
# and every one of them finds a provider's 5-minute cache expired:

# %%
quiet = workload_requests(tokenizer, template, workload(minutes_apart=7))
busy_usd, quiet_usd = static_first.both.provider_usd(sonnet.key), sum(b.cost_usd for b in provider_bills(sonnet, quiet))
assert quiet_usd > dynamic_first.both.provider_usd(sonnet.key) > busy_usd
print(f"Claude Sonnet 4.5, static-first, {len(quiet)} requests: ${busy_usd * 1e6 / len(quiet):,.0f} per million "
      f"requests three minutes apart, ${quiet_usd * 1e6 / len(quiet):,.0f} seven minutes apart, where dynamic-first "
      f"(nothing cached) costs ${dynamic_first.both.provider_usd(sonnet.key) * 1e6 / len(quiet):,.0f}.")

# %% [markdown]
# Seven minutes apart, each request writes the static part again at the premium and nobody reads it:
# caching costs more than not caching. Lesson 7 works out when a lifetime pays.
#
# ## 7. Multi-turn conversations: where to put the breakpoints
#
# An agent resends the whole conversation with every request: the system prompt and tools, every
# message, every tool call and every tool result. Our engine and OpenAI's cache find the longest shared
# prefix by themselves. Anthropic reads only at the breakpoints you mark (at most 4 a request), each one
# looking for a cached prefix over its lookback of 20 positions (a run of tool calls, or of tool results,
# counts as one). Where the breakpoints go decides the bill.
#
# `Conversation` is an agent chat of 12 requests at the same shop. A staff member asks the fleet
# assistant which e-bikes need a service before the weekend; the agent lists the bikes, checks all 24 at
# once, moves two bookings, books the workshop, checks stock and orders parts, and looks up the weather.
# Each message, tool call and tool result is one block; a request adds the model's previous reply and
# what arrived since (a *turn*). Tool results arrive seconds after the call, the staff member's messages
# a minute or two later: all inside the 5-minute lifetime. The tokens come from the workbook's tokenizer.
# This agent calls its tools in plain text (its system prompt asks for one JSON object per call), so each
# tool result is a text block of its own, and each counts as one position in Anthropic's lookback.

# %%
conversation = Conversation.encode(tokenizer)
print(f"{'request':>7}{'seconds later':>15}{'blocks added':>14}{'tokens added':>14}{'prompt tokens':>15}")
for r in range(len(conversation)):
    gap = conversation.at_s[r] - conversation.at_s[r - 1] if r else 0.0
    print(f"{r + 1:>7}{gap:>15.0f}{len(conversation.turns[r + 1]):>14}{conversation.turn_tokens(r + 1):>14,}"
          f"{conversation.prompt_tokens(r):>15,}")
assert conversation.turn_tokens(0) >= sonnet.min_cacheable_tokens  # the system prompt alone clears the minimum
assert all(b - a < 5 * 60 for a, b in zip(conversation.at_s, conversation.at_s[1:]))

# %% [markdown]
# The same chat, the same tokens, rendered five ways for Anthropic:
#
# - **no breakpoint**: nothing is cached;
# - **(a) one breakpoint on the system prompt**: tools and instructions are read every time, the
#   conversation never;
# - **(b) a breakpoint moved to the newest turn**: each request should read the previous request's
#   prompt and write only what is new;
# - **(c) two sliding breakpoints**, on the newest turn and on the previous one;
# - **(d) like (b), but the renderer is not byte-stable**: it appends a block holding one space to carry
#   the breakpoint, and drops it on the next request, when the space moves after the new turn.
#
# `bill_strategies` replays each rendering at Claude Sonnet 4.5, GPT-5.5 and Gemini 2.5 Pro (OpenAI and
# Google ignore breakpoints: they cache on their own). The chart shows how Anthropic bills each
# request's prompt tokens.

# %%
gemini = sheets["google/gemini-2.5-pro"]
strategy_bills = bill_strategies(conversation, [sonnet.key, gpt.key, gemini.key])
BILLED = {"cache_read_tokens": ("read from the cache", PROVENANCE_COLOURS["loaded"]),
          "cache_write_tokens": ("written to the cache", "#999999"),
          "input_tokens": ("plain input", PROVENANCE_COLOURS["computed"])}
shown = ["system", "newest", "two", "whitespace"]
figure = make_subplots(rows=2, cols=2, shared_yaxes=True, subplot_titles=[STRATEGIES[s] for s in shown],
                       vertical_spacing=0.14)
requests_axis = list(range(1, len(conversation) + 1))
for i, strategy in enumerate(shown):
    for bucket, (name, colour) in BILLED.items():
        figure.add_bar(x=requests_axis, y=[getattr(b.usage, bucket) for b in strategy_bills[strategy][sonnet.key]],
                       name=name, marker_color=colour, legendgroup=name, showlegend=i == 0,
                       row=i // 2 + 1, col=i % 2 + 1)
figure.update_layout(barmode="stack", height=560, margin=dict(l=10, r=10, t=70, b=10),
                     title=f"{sonnet.name}: each request's prompt tokens, by how they are billed",
                     legend=dict(orientation="h", y=-0.12))
figure.update_xaxes(title_text="request", dtick=1)
figure.update_yaxes(title_text="tokens", col=1)
figure.show()

# %% [markdown]
# What the chart shows, checked token by token (request n adds turn n; the arithmetic is in the asserts):

# %%
anthropic = {strategy: [bill.usage for bill in strategy_bills[strategy][sonnet.key]] for strategy in STRATEGIES}
system_tokens = conversation.turn_tokens(0)
fan_out = max(range(len(conversation)), key=lambda r: len(conversation.turns[r + 1]))  # the request adding most blocks
assert len(conversation.turns[fan_out + 1]) >= LOOKBACK_BLOCKS
for r in range(1, len(conversation)):
    prompt, new = conversation.prompt_tokens(r), conversation.turn_tokens(r + 1)
    a, b, c, d = (anthropic[s][r] for s in ("system", "newest", "two", "whitespace"))
    assert (a.cache_read_tokens, a.cache_write_tokens, a.input_tokens) == (system_tokens, 0, prompt - system_tokens)
    assert (c.cache_read_tokens, c.cache_write_tokens) == (prompt - new, new)
    assert (b.cache_read_tokens, b.cache_write_tokens) == ((0, prompt) if r == fan_out else (prompt - new, new))
    assert (d.cache_read_tokens, d.cache_write_tokens) == (0, prompt + len(conversation.pad))
print(f"(a) reads the {system_tokens:,}-token system prompt and sends the rest of the conversation as plain input.")
added = len(conversation.turns[fan_out + 1])
print(f"(b) writes only the new turn, except at request {fan_out + 1}: that turn added {added} blocks, so the previous "
      f"prompt ended {added} block boundaries before the breakpoint, beyond the {LOOKBACK_BLOCKS} it checks; it found "
      f"nothing and wrote all {conversation.prompt_tokens(fan_out):,} tokens again.")
print(f"(c) keeps a breakpoint where the previous request's prompt ended, so it always finds it: "
      f"{sum(u.cache_write_tokens for u in anthropic['two']):,} tokens written in all, against "
      f"{sum(u.cache_write_tokens for u in anthropic['newest']):,} for (b).")
print(f"(d) never reads: every request rewrites its whole prompt, "
      f"{sum(u.cache_write_tokens for u in anthropic['whitespace']):,} tokens written at the premium in all.")

# %% [markdown]
# The renderer in (d) is a real failure: the cached prefix always ends with the space block, and the next
# request no longer has a space there. One extra byte that moves turns incremental caching into a full
# rewrite on every request. Keep what you send byte-stable, and put the breakpoint on a block that stays.
#
# What the whole conversation costs, per strategy and provider, next to what our engine's usage would
# come to (it needs no breakpoints; its writes and reads priced at Claude Sonnet 4.5's rates):

# %%
engine_run = bill_both(model, tokenizer, conversation.requests("newest"), [sonnet.key])
totals = {strategy: {key: sum(bill.cost_usd for bill in bills) for key, bills in per_key.items()}
          for strategy, per_key in strategy_bills.items()}
print(f"{'$ for the whole conversation':54}{sonnet.name:>18}{gpt.name:>10}{gemini.name:>16}")
for strategy, label in STRATEGIES.items():
    print(f"{label:54}{totals[strategy][sonnet.key]:>18.4f}{totals[strategy][gpt.key]:>10.4f}"
          f"{totals[strategy][gemini.key]:>16.4f}")
print(f"{'this engine (pages, no breakpoints needed)':54}{engine_run.engine_usd(sonnet.key):>18.4f}")
sonnet_total = {strategy: totals[strategy][sonnet.key] for strategy in STRATEGIES}
ranked = sorted(STRATEGIES, key=sonnet_total.get)
assert ranked == ["two", "newest", "system", "none", "whitespace"], ranked
for key in (gpt.key, gemini.key):  # breakpoints mean nothing here, and the space sits after the cached prefix
    reads = {strategy: [bill.usage.cache_read_tokens for bill in strategy_bills[strategy][key]]
             for strategy in STRATEGIES}
    assert all(r == reads["none"] for r in reads.values()), key
engine_loaded = sum(result.usage.cache_read_tokens for result in engine_run.results)
print(f"\nOver the chat this engine loaded {engine_loaded:,} prompt tokens from its cache without being told where; "
      f"Anthropic read {sum(u.cache_read_tokens for u in anthropic['two']):,} with (c) and "
      f"{sum(u.cache_read_tokens for u in anthropic['system']):,} with (a). (c) costs "
      f"{1 - sonnet_total['two'] / sonnet_total['none']:.0%} less than no caching; (d) "
      f"{sonnet_total['whitespace'] / sonnet_total['none'] - 1:.0%} more.")

# %% [markdown]
# On Anthropic the order is (c), (b), (a), no caching, (d): sliding breakpoints pay for each token once
# at the write premium and then read it at a tenth of the price; one breakpoint on the system prompt
# saves only the system prompt; a renderer that moves a byte pays the premium on everything, every time.
# OpenAI and Google read the same tokens in every rendering: they cache whatever prefix repeats, by their
# own rules, and the space in (d) only adds one plain token a request.
#
# **Automatic caching.** Anthropic documents a simpler way to slide the breakpoint: one `cache_control`
# at the top level of the request puts the breakpoint on the last cacheable block and moves it forward
# as the conversation grows (the prompt caching page, "automatic caching"; in the simulator,
# `Request(..., options={"cache_control": "5m"})`). It is (b) without placing anything yourself, and it
# bills exactly like (b), the fan-out miss included. Add one explicit breakpoint on the previous turn and
# it bills like (c). And with Anthropic's native tool use, the 24 results of the fan-out turn would be
# `tool_result` blocks in a row, which the lookback counts as one position, so (b) would not miss there:

# %%
def automatic(r: int, request: Request, previous_turn: bool) -> Request:
    """Request r (0-based) with automatic caching, and with `previous_turn` a breakpoint on the previous turn too."""
    blocks = list(request.blocks)
    if previous_turn:
        end = sum(map(len, conversation.turns[:r + 1])) - 1  # the previous turn's last block
        blocks[end] = replace(blocks[end], cache_control="5m")
    return replace(request, blocks=blocks, options={"cache_control": "5m"})


plain = conversation.requests("none")
for previous_turn, like in ((False, "newest"), (True, "two")):
    auto = simulate(sonnet.key, [automatic(r, request, previous_turn) for r, request in enumerate(plain)])
    assert [bill.usage for bill in auto] == anthropic[like]
    print(f"automatic caching{' and a breakpoint on the previous turn' if previous_turn else ''}: "
          f"${sum(bill.cost_usd for bill in auto):.4f} for the chat, as {STRATEGIES[like]}")
results = range(sum(map(len, conversation.turns[:fan_out + 1])) + 1, sum(map(len, conversation.turns[:fan_out + 2])))
native = [replace(request, blocks=[replace(block, type="tool_result") if j in results else block
                                   for j, block in enumerate(request.blocks)])
          for request in conversation.requests("newest")]
native_fan_out = simulate(sonnet.key, native)[fan_out].usage
assert native_fan_out.cache_read_tokens == conversation.prompt_tokens(fan_out) - conversation.turn_tokens(fan_out + 1)
print(f"(b) with the {len(results)} results as tool_result blocks: request {fan_out + 1} reads "
      f"{native_fan_out.cache_read_tokens:,} tokens instead of {anthropic['newest'][fan_out].cache_read_tokens}")

# %% [markdown]
# ## What to take away
#
# - A cache hit needs the same tokens in the same positions. Anything that changes per request or per day
#   belongs after everything that does not.
# - Look for the breakers you did not write: chat templates that stamp dates, frameworks that
#   re-serialise tools, editors that leave trailing spaces, and the seam where the static part meets the
#   dynamic one.
# - Sampling settings and the user's question never break a hit. A fresh `prompt_cache_key` per request
#   does, at OpenAI: it sends each request down a new route.
# - Retrieved documents are a prefix like any other. A RAG chat whose follow-up questions re-send the same
#   documents, in the same order and before the conversation, hits on them; re-retrieving and re-ranking
#   them each turn changes the bytes and breaks the hit at the first document that moved.
# - A change costs whole pages in an engine. At a provider it can cost much more: the whole prefix when
#   what is left falls under the minimum length, and at Anthropic the whole block a breakpoint closes,
#   written again at the premium. Price what the provider bills (`providers.simulate`), not what an
#   engine could reuse.
# - Measure on a workload: hit rate, tokens loaded, TTFT and the provider's bill tell you whether the
#   layout works, and requests further apart than the cache's lifetime can make caching cost money.
# - In a conversation, slide a breakpoint to the newest turn (or let automatic caching slide it) and keep
#   one on the previous turn: a turn that adds 20 or more positions (a run of tool results counts as one)
#   hides the previous prompt from the lookback. Never let the renderer add or drop bytes around the
#   breakpoint.
#
# ## Check yourself
#
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** A long prompt sits in a prefix cache with 64-token pages. Today's request first differs
# from it at token 300 (counting from 0). How many tokens can be loaded from the cache?

# %%
answer_1 = None
check_loaded_after_change(answer_1)

# %% [markdown]
# **Exercise 2.** The static part of a prompt is 2,000 tokens long. A changed document alters token
# 1,500 of it (counting from 0). How many of the prompt's tokens does GPT-5.5 bill as cached? (Its rules
# are in `gpt`: `gpt.min_cacheable_tokens`, `gpt.cache_step`.)

# %%
answer_2 = None
check_openai_cached_tokens(answer_2)

# %% [markdown]
# **Exercise 3.** Another app's static part is exactly 1,024 tokens long when tokenized on its own, and,
# like ours, it ends with the space before the date. The app builds each request as one string and sends
# it to GPT-5.5. Yesterday's request is still in GPT-5.5's cache, and today's differs from it first in
# the date. How many of today's tokens does GPT-5.5 bill as cached?

# %%
answer_3 = None
check_seam_cached_tokens(answer_3)

# %%
print(f"lesson ran in {time.perf_counter() - lesson_start:.1f} s")
