# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
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
# # Lesson 11: the cache doctor
#
# The earlier lessons broke cache hits on purpose, one prompt at a time. In a real app you do not see
# prompts one at a time: you have a log of the requests your code sent, and a bill. The **cache doctor**
# reads that log and tells you, request by request, where each prompt stopped matching the ones before
# it, why, what that cost, and what a fix would save, simulated on the whole log before you change a
# line of your app.
#
# By the end of this lesson you will be able to:
#
# - run the doctor on a request log (OpenAI or Anthropic JSONL, or a list of rendered prompts) from Python
#   or from the command line, and read its per-request findings;
# - tell the hit rate your app gets from the one it could get, and name the causes of the gap (a clock, a
#   name or an id in the system prompt, reordered JSON keys, stray whitespace);
# - find the causes that are not in the text at all: a cache that expired during a pause, a model fallback,
#   a `prompt_cache_key` per request, too many breakpoints;
# - read the terminal report as an engineer does: per cause, the first and the worst request, side by side;
# - check a suggested fix by replaying the fixed log through the provider simulator, at several providers;
# - compare the cached tokens your provider reported with the ones the simulator bills;
# - guard your own prompt template in your test suite with `assert_prefix_stable`.
#
# Everything runs offline on your CPU in a few seconds.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(11)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import json
import re
import tempfile
import time
from pathlib import Path

from IPython.display import HTML, display

from workbook.doctor import diagnose, read_log
from workbook.doctor.__main__ import main as doctor_command, summary
from workbook.doctor.causes import ALL_CAUSES
from workbook.doctor.fixes import static_first
from workbook.doctor.report_html import cost_after, findings_html, fixes_html, tokens_chart
from workbook.doctor.stability import assert_prefix_stable, prefix_divergence
from workbook.exercises.lesson11 import TEMPLATES, check_costliest_cause, check_lost_tokens, check_stable_templates
from workbook.paths import DATA_DIR
from workbook.pricing import get_sheet
from workbook.providers import TTL_SECONDS

lesson_start = time.perf_counter()
EXAMPLES = DATA_DIR / "examples"
SONNET, GPT = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5"

# %% [markdown]
# ## 1. What the doctor does
#
# `diagnose(log, provider=...)` goes through five steps. None of them needs a model, only a tokenizer.
#
# 1. **Read** each logged request and render it the way providers do: the tool list (as JSON text, keys
#    in the order your app wrote them), then the system prompt, then each message.
# 2. **Match** each request with the earlier request of the same **call type** (requests whose instructions
#    share most of their lines) that shares the longest token prefix with it, and that the provider could
#    still read: the same model, the same `prompt_cache_key`, not idle past its cache lifetime.
# 3. **Locate** the first character where the two differ, and name the **cause**: `datetime`, `number`,
#    `user_text`, `json_key_order`, `whitespace`, `tool_list`, `breakpoint_moved`, a tokenization `seam`,
#    `history_rewritten` (earlier turns edited or cut), `content` (an instruction edited), or the healthy
#    `new_turn` (a new question). Where no text differs but the prefix could not be read, the cause is
#    `ttl_expiry`, `model_switch` or `cache_key`. Each cause comes with the rule that decided it.
# 4. **Count** what it cost. The *static region* of a request is everything before its last message (in a
#    rendered prompt, everything before its last line). In a conversation it includes the earlier turns: it
#    is what the request could reuse. Static tokens after the divergence are **lost**: a byte-stable static
#    region would have shared them.
# 5. **Bill** the log at each provider with the provider simulator of lessons 4 and 5
#    (`workbook.providers.simulate`), then apply each **fix** to the whole log and bill it again.
#
# ## 2. The example log
#
# `data/examples/` holds three logs of one app: the support assistant of Harbor & Pine, an outdoor shop.
# A morning of requests, each with the same long system prompt and tool list and a new customer question.
# The app has habits that a prompt cache does not forgive. Here is the first line of each system prompt in
# the Anthropic log:

# %%
log_path = EXAMPLES / "anthropic_log.jsonl"
records = read_log(log_path)
for r in records:
    system = next(p.text for p in r.parts if p.kind == "system")
    print(f"line {r.line:2}  {system.splitlines()[0][:60]!r}")

# %% [markdown]
# Now the doctor, pricing the log at Claude Sonnet 4.5 and at GPT-5.5. The first provider is the one
# used for the "best fix" and for comparing against the log's own usage.

# %%
report = diagnose(log_path, provider=[SONNET, GPT])
d = report.diagnosis
print(f"{len(d.findings)} requests, {d.tokens:,} prompt tokens")
print(f"hit rate: {d.hit_rate:.1%} achieved, {d.achievable_hit_rate:.1%} achievable")
for key, usd in report.cost_now_usd.items():
    print(f"the log costs ${usd:.4f} at {key}")
assert d.achievable_hit_rate >= d.hit_rate

# %% [markdown]
# The **achieved** hit rate is the share of prompt tokens an ideal token-level prefix cache would have
# reused. The **achievable** one adds the lost tokens: what the same requests would reuse if every static
# region were byte-for-byte stable. The gap between them is what your app's habits cost.
#
# ## 3. Every request
#
# One row per request: the earlier request it matched best, the first divergence with the differing
# characters marked, the cause, its rule and the tokens lost. The chart shows the same split per request:
# **shared** with an earlier request, **lost** to a cause, and **new** (no earlier request had them).

# %%
display(HTML(findings_html(report)))
tokens_chart(report)

# %% [markdown]
# Take the second request. It shares its tool list with the first, then the clock in the system prompt
# moves, and everything after it is computed again:

# %%
first_break = d.findings[1]
earlier = next(f for f in d.findings if f.line == first_break.match_line)
print(f"line {first_break.line} vs line {first_break.match_line}: {first_break.shared_tokens:,} tokens shared, "
      f"first difference at character {first_break.char_at:,}")
print(f"  before: {first_break.before!r}\n  after:  {first_break.after!r}")
print(f"cause: {first_break.cause.name}\n  rule: {first_break.cause.rule}\n  detail: {first_break.cause.detail}")
print(f"lost: min({first_break.static_tokens:,}, {earlier.static_tokens:,}) static tokens - "
      f"{first_break.shared_tokens:,} shared = {first_break.lost_tokens:,}")
assert first_break.cause.name == "datetime"
assert first_break.lost_tokens == min(first_break.static_tokens, earlier.static_tokens) - first_break.shared_tokens
assert all(f.shared_tokens + f.lost_tokens <= f.tokens for f in d.findings)

# %% [markdown]
# ## 4. The causes
#
# Summed over the log, per cause: how many requests it broke and how many tokens it lost.

# %%
lost = d.lost_by_cause()
for name, count in d.causes.most_common():
    print(f"{name:20}{count:3} requests {lost[name]:7,} tokens lost   {ALL_CAUSES[name]}")
costliest = max(lost, key=lost.get)
print(f"\nthe costliest cause: {costliest}")
assert {"datetime", "user_text", "json_key_order"} <= set(d.causes)

# %% [markdown]
# Three habits of the app show up: the clock opens the system prompt (`datetime`), later the customer's
# name does (`user_text`), and some requests send the tools with their keys in another order
# (`json_key_order`). Tools are rendered first, so there almost nothing is shared:

# %%
reordered = next(f for f in d.findings if f.cause and f.cause.name == "json_key_order")
print(f"line {reordered.line}: {reordered.shared_tokens:,} of {reordered.tokens:,} tokens shared")
print(reordered.cause.detail)
assert reordered.shared_tokens < reordered.tokens / 100

# %% [markdown]
# `volatile_breakpoint` is not a cause of its own but a problem beside one: the app marks its system prompt
# with a breakpoint, and that prompt changes with every request, so the cache entry written there is never read.
# `content` is what no specific rule explains: a real edit of an instruction part. In this log the edits are
# where the app's first line changed kind:

# %%
for f in d.findings:
    if f.cause and f.cause.name == "content":
        print(f"line {f.line}: {f.lost_tokens:5,} tokens lost; {f.cause.detail}")

# %% [markdown]
# ## 5. Fixes, simulated
#
# A fix is a function that rewrites the whole log, so its saving is measured, not promised: the doctor
# applies each fix and bills the fixed log at every provider, under each provider's rules (the `cached` column is
# the share of prompt tokens the first provider would read from cache). It recommends only a fix that lowers
# the bill; `all` is the fixes that lower it together (each kept if it lowers what the ones before it left).

# %%
display(HTML(fixes_html(report)))
best = report.best_fix
saving = report.cost_now_usd[SONNET] - best.cost_usd[SONNET]
print(f"best at {SONNET}: {best.name} ({best.does}), ${saving:.4f} less, "
      f"{saving / report.cost_now_usd[SONNET]:.0%} of the bill; read from cache {report.cached_share:.1%} -> "
      f"{best.cached_share:.1%} of the prompt tokens")
assert best.cost_usd[SONNET] < report.cost_now_usd[SONNET]

# %% [markdown]
# Do not take a fix on trust: apply it yourself and run the doctor on the result. `static_first` moves the
# lines that change per request (the clock, the name) out of the system prompt, to the end of the question:

# %%
fixed = diagnose(static_first(report.records), provider=[SONNET, GPT])
static_first_result = next(f for f in report.fix_results if f.name == "static_first")
print(f"after static_first: causes {dict(fixed.diagnosis.causes)}, read from cache {fixed.cached_share:.1%}")
assert not {"datetime", "user_text"} & set(fixed.diagnosis.causes)
assert fixed.cached_share == static_first_result.cached_share
assert all(fixed.cost_now_usd[key] == static_first_result.cost_usd[key] for key in fixed.model_keys)

# %% [markdown]
# Fixes do not save the same everywhere. Anthropic reads a cache only at the breakpoints a request marks,
# and charges extra for every write; OpenAI caches any long prefix by itself, in steps of a fixed number of
# tokens, with no write premium. So one fix can matter at one provider and not at the other: compare the
# columns of the table above. For the OpenAI log, whose app puts a request id on top of the system prompt:

# %%
sonnet_sheet, gpt_sheet = get_sheet(SONNET), get_sheet(GPT)
print(f"writes cost {sonnet_sheet.cache_write / sonnet_sheet.input:g}x input at {SONNET}, "
      f"{gpt_sheet.cache_write / gpt_sheet.input:g}x at {GPT}; {GPT} counts hits in steps of {gpt_sheet.cache_step} "
      f"tokens above {gpt_sheet.min_cacheable_tokens:,}")
assert sonnet_sheet.cache_write > sonnet_sheet.input and gpt_sheet.cache_write == gpt_sheet.input
openai_report = diagnose(EXAMPLES / "openai_log.jsonl", provider=[GPT, SONNET])
for fix in openai_report.fix_results:
    print(f"{fix.name:18} " + ", ".join(f"{key}: {cost_after(openai_report, fix, key)}" for key in (GPT, SONNET)))
assert {"number", "whitespace"} <= set(openai_report.diagnosis.causes)
assert openai_report.best_fix.cost_usd[GPT] < openai_report.cost_now_usd[GPT]

# %% [markdown]
# ## 6. Reported vs simulated cached tokens
#
# When a log carries the provider's `usage`, the doctor sets the cached tokens the provider reported
# beside the ones the simulator bills for the same request (at the first provider you listed, so list the
# provider that served the log first).

# %%
rows = report.reported_vs_simulated()
print("line  reported  simulated")
for line, reported, simulated in rows:
    print(f"{line:4}  {reported:8,}  {simulated:9,}")
agree = sum(r == s for _, r, s in rows)
print(f"{agree} of {len(rows)} requests agree")
assert agree == len(rows)

# %% [markdown]
# Here they all agree, and that proves less than it seems: no provider served these example requests. Their
# `usage` was written by the same simulator (see `workbook/doctor/examples.py`), so this only shows that the
# doctor reads usage fields correctly. On your own log, expect differences, and read each as a question:
#
# - **Token counts.** The doctor counts with the workbook's tokenizer, not your provider's. The cached
#   prefix is the same text, but a different number of tokens.
# - **Rounding.** OpenAI counts hits in steps above a minimum (printed in section 5); the simulator does too.
# - **Traffic you did not log.** Another server's requests can warm (or evict) the same prefix.
# - **Rules the simulator does not know.** Each rule it applies is cited in `data/pricing.json`; a
#   request's `Bill.why` says which one decided it:

# %%
for line, bill in zip([r.line for r in report.records], report.now.bills[SONNET]):
    if bill.usage.cache_read_tokens:
        print(f"line {line}: {bill.why}")

# %% [markdown]
# ## 7. Your own log
#
# The doctor reads three shapes, one request per line of a `.jsonl` file, each with an optional
# `"timestamp"` (ISO 8601 or seconds) and the provider's `"usage"`:
#
# - **OpenAI Chat Completions**: `{"messages": [{"role": "system", "content": ...}, ...], "tools": [...]}`;
# - **Anthropic Messages**: `{"system": ..., "tools": [...], "messages": [...]}`, with `cache_control` blocks;
# - **rendered prompts**: `{"prompt": "..."}` per line, or a `.json` file holding a list of strings.
#
# Most apps already log the request body they send; add the response's `usage` and a timestamp and the
# doctor can price it. From a terminal:
#
# ```bash
# python -m workbook.doctor my_log.jsonl --provider openai/gpt-5.5 --provider anthropic/claude-sonnet-4-5 \
#     --html report.html
# ```
#
# It prints the report of section 9, and `--html` writes the tables to one page you can open anywhere: the
# chart is drawn inside the file, and nothing is fetched. `--tokenizer NAME` counts with another
# tokenizer (a checkpoint folder, or a Hugging Face name already in your cache). A bad line stops it with
# a message naming the line, and exit status 2. The same command, run here on a small log we write:

# %%
workdir = Path(tempfile.mkdtemp())
mine = workdir / "my_log.jsonl"
mine.write_text("".join(json.dumps({
    "timestamp": f"2026-03-15T10:0{i}:00Z",
    "messages": [{"role": "system", "content": f"Session {4410 + i}\nYou are a terse assistant for a bike shop. "
                                               "Answer in one sentence. Never guess stock levels."},
                 {"role": "user", "content": question}]}) + "\n"
    for i, question in enumerate(["Do you fix tubeless tyres?", "Are you open on Sunday?", "Do you sell helmets?"])))
status = doctor_command([str(mine), "--provider", GPT, "--html", str(workdir / "report.html")])
assert status == 0
mini = diagnose(mine, provider=GPT)
assert mini.now.cached_tokens(GPT) == 0 and mini.diagnosis.tokens < gpt_sheet.min_cacheable_tokens
assert "number" in mini.diagnosis.causes

# %% [markdown]
# This tiny log has fewer tokens in all than OpenAI's minimum per request, so nothing is billed as cached;
# the doctor still names the session number that breaks every prefix. The page it wrote is self-contained:

# %%
page = (workdir / "report.html").read_text(encoding="utf-8")
print(f"{len(page) / 1e6:.1f} MB, scripts loaded from elsewhere: {len(re.findall(r'<script[^>]*src=', page))}")
assert not re.search(r"<script[^>]*src=", page)
bad = workdir / "bad_log.jsonl"
bad.write_text('{"prompt": "fine"}\n{"prompt": "broken\n')
assert doctor_command([str(bad)]) == 2

# %% [markdown]
# A log of rendered prompts carries no `cache_control`: neither a breakpoint on a block nor the request-level
# `cache_control` of Anthropic's automatic caching, which puts a breakpoint on the last block for you
# ([Anthropic's caching page](https://platform.claude.com/docs/en/build-with-claude/prompt-caching)). Without one,
# Anthropic caches nothing, so the doctor bills such a log at Anthropic as uncached, whatever you fix. Price it at
# a provider that caches by itself:

# %%
assert diagnose(EXAMPLES / "prompts.json", provider=SONNET).now.cached_tokens(SONNET) == 0  # nothing marked, nothing read
prompts_report = diagnose(EXAMPLES / "prompts.json", provider=GPT)
print(f"prompts.json: hit rate {prompts_report.diagnosis.hit_rate:.1%} achieved, "
      f"{prompts_report.diagnosis.achievable_hit_rate:.1%} achievable; best fix {prompts_report.best_fix.name} "
      f"costs ${prompts_report.best_fix.cost_usd[GPT]:.4f} instead of ${prompts_report.cost_now_usd[GPT]:.4f}")
assert prompts_report.best_fix.cost_usd[GPT] < prompts_report.cost_now_usd[GPT]

# %% [markdown]
# ## 8. Keep it fixed: `assert_prefix_stable` in your tests
#
# The doctor finds habits after they have cost you. A test can stop them before they ship.
# `assert_prefix_stable(render, vary)` calls your template with each varied value (one key at a time, the
# others at their first value) and fails if the **static prefix** changes: by default everything before
# the last message (chat messages) or the last line (a string), or up to a marker you pass as `static_end`.
# It compares text and tokens, so a value that merges with the last static word fails too.
#
# Here is the app's template as it was, and as `static_first` suggests:

# %%
policy = next(p.text for p in records[-1].parts if p.kind == "system")


def build_prompt(now: str, user: str, question: str) -> list[dict]:
    return [{"role": "system", "content": f"Current time: {now}\nYou are helping {user}.\n{policy}"},
            {"role": "user", "content": question}]


def build_prompt_fixed(now: str, user: str, question: str) -> list[dict]:
    return [{"role": "system", "content": policy},
            {"role": "user", "content": f"{question}\n\n(Current time: {now}. Customer: {user}.)"}]


vary = {"now": ["2026-03-15 09:00:00", "2026-03-15 09:01:01"], "user": ["Ana", "Ben"],
        "question": ["Where is my order?", "Do you ship to Norway?"]}
try:
    assert_prefix_stable(build_prompt, vary)
except AssertionError as failure:
    print(failure)
assert prefix_divergence(build_prompt, vary).key == "now"
assert_prefix_stable(build_prompt_fixed, vary)
print("\nthe fixed template keeps its prefix")

# %% [markdown]
# In your own project it is one test (the chat messages are rendered with the workbook's tokenizer unless
# you pass `tokenizer=`):
#
# ```python
# from workbook.doctor.stability import assert_prefix_stable
# from myapp.prompts import build_prompt
#
# def test_the_prompt_prefix_does_not_move():
#     assert_prefix_stable(build_prompt, {"now": ["2026-03-15 09:00", "2026-12-31 23:59"],
#                                         "user": ["Ana", "Zoë"], "question": ["Hi", "Where is my order?"]})
# ```

# %% [markdown]
# ## 9. Causes outside the text, and the report an engineer reads
#
# Some caches break with every byte of the prompt in place. `agent_log.jsonl` is one customer's conversation
# with a support agent that calls a tool: two requests per question, the tool's result in the second. Three
# things happen to it that no text comparison can see alone (`workbook/doctor/examples.py` writes it):
#
# - the customer pauses before the third question, and a prefix not read for longer than its **TTL** expires;
# - the app keeps the conversation in a Postgres `jsonb` column, which gives object keys back shortest first, so
#   every earlier **tool call** it sends again has its arguments in another order than the model wrote them;
# - a rate limit sends one request to a **fallback model**, and each model has its own cache.
#
# The terminal report puts, per cause, the first request it broke and the worst, with the two texts side by
# side and the first differing character marked (`^`), then the totals:

# %%
agent_path = EXAMPLES / "agent_log.jsonl"
agent = diagnose(agent_path, provider=SONNET)
print(summary(agent, agent_path.name).split("\n\nCost of the whole log")[0])
by_cause = {f.cause.name: f for f in agent.diagnosis.findings if f.cause}
assert {"ttl_expiry", "model_switch", "json_key_order"} <= set(by_cause)

# %% [markdown]
# The expiry comes from the timestamps alone. Anthropic's cache lives 5 minutes after its last use (a read
# renews it, [Anthropic's caching page](https://platform.claude.com/docs/en/build-with-claude/prompt-caching)),
# so the doctor asks, for the prefix a request shares, when a request last sent it:

# %%
expired = by_cause["ttl_expiry"]
before = next(f for f in agent.diagnosis.findings if f.line == expired.line - 1)
gap = expired.at_s - before.at_s
print(f"line {expired.line} comes {gap / 60:.1f} minutes after line {before.line}: {expired.cause.detail}")
print(f"it shares {expired.shared_tokens:,} tokens with a live prefix and loses {expired.lost_tokens:,}")
assert gap > TTL_SECONDS["5m"] and expired.shared_tokens == 0

# %% [markdown]
# The reordered tool call is found where it is, in the assistant's tool call, not in the tool result after it;
# the rendered call is the tool's name and its arguments as sent. The fallback is named by the `model` field:

# %%
reordered = by_cause["json_key_order"]
print(f"line {reordered.line}, {reordered.part}: {reordered.cause.detail}")
switched = by_cause["model_switch"]
print(f"line {switched.line}: {switched.cause.detail}; {switched.lost_tokens:,} tokens lost")
assert reordered.part.startswith("tool call") and switched.lost_tokens > 0

# %% [markdown]
# Each fix is billed on the whole log. Pinning the model pays here; the 1-hour TTL does not, because one pause
# does not repay the dearer writes of every request, so the doctor does not recommend it:

# %%
pinned = next(f for f in agent.fix_results if f.name == "pinned_model")
one_hour = next(f for f in agent.fix_results if f.name == "one_hour_ttl")
for fix in (pinned, one_hour):
    print(f"{fix.name:13} {cost_after(agent, fix, SONNET)}  recommended: {agent.helps(fix)}")
assert agent.helps(pinned) and not agent.helps(one_hour)
sheet = get_sheet(SONNET)
print(f"a 1-hour write costs {sheet.cache_write_1h / sheet.input:g}x input, a 5-minute one "
      f"{sheet.cache_write / sheet.input:g}x")

# %% [markdown]
# From a terminal, `--top N` shows the N worst requests per cause, `--json` prints the same for a script, and
# `--request LINE` prints one request in full, with the simulator's bill and why:

# %%
assert doctor_command([str(agent_path), "--request", str(expired.line)]) == 0

# %% [markdown]
# ## Check yourself
#
# A wrong answer gets a hint first; a second wrong try, or adding `reveal=True` to the call,
# shows the worked answer.
#
# **Exercise 1.** Run the doctor on the OpenAI example log (`openai_report` above). Which cause loses the
# most tokens? Answer with its name, e.g. `"whitespace"`.

# %%
answer_1 = None
check_costliest_cause(answer_1, openai_report)

# %% [markdown]
# **Exercise 2.** Section 3 worked out what request 2 of the Anthropic log loses. Do the same for request 3
# of the rendered-prompt log (`prompts_report`, section 7), which shares a few tokens with request 2. Using
# only the numbers printed below, how many tokens does it lose to its cause?

# %%
by_line = {f.line: f for f in prompts_report.diagnosis.findings}
assert by_line[3].match_line == 2
print(f"request 3: {by_line[3].static_tokens:,} static tokens, {by_line[3].shared_tokens:,} shared with request 2; "
      f"request 2: {by_line[2].static_tokens:,} static tokens")
answer_2 = None
check_lost_tokens(answer_2, prompts_report)

# %% [markdown]
# **Exercise 3.** Each template below renders one prompt string. Which pass
# `assert_prefix_stable(render, {"date": [...], "question": [...]})` with the default static prefix
# (everything before the last line)? Answer with a set of letters, e.g. `{"a", "d"}`.

# %%
for letter, (template, _) in TEMPLATES.items():
    print(f"{letter}) {template}")
answer_3 = None
check_stable_templates(answer_3)

# %%
print(f"lesson ran in {time.perf_counter() - lesson_start:.1f} s")
