"""Request logs that reproduce the cache-breaking patterns real projects reported (issue 28), each with its cause.

`python -m workbook.doctor.patterns [FOLDER]` writes them to `data/examples/patterns/` as xz-compressed JSONL
(`NAME.jsonl.xz`, which `workbook.doctor.read_log` reads as it is; each request repeats kilobytes of the one
before, which xz's large window finds and gzip's does not) with `patterns.json`, the index of what each
log reproduces, the cause the doctor should name (`expected`; null for a healthy log) and the public issue that
reported it (`data/README.md` lists them). A test checks that this writes the same logs again.

Each log is 20-64 requests of 1k-20k tokens built from the held-out corpus (`data/corpus/heldout.txt`) by a
seeded generator, in the shape the reporting project would have logged: Anthropic Messages, OpenAI Chat or
Responses, or a proxy's export (litellm, Langfuse, OpenTelemetry). No provider served them: the usage of each
request is what `workbook.providers` bills for it under its model's rules (one cache per model, routed by
`prompt_cache_key` at OpenAI, counted with the shipped tokenizer); a request the API would refuse carries the
API's error and no usage.
"""

from __future__ import annotations

import datetime as dt
import json
import lzma
import random
import sys
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ..errors import WorkbookError
from ..paths import DATA_DIR
from ..providers import Block, ProviderCache, Request
from .logs import record

PATTERNS_DIR = DATA_DIR / "examples" / "patterns"
START = dt.datetime(2026, 3, 16, 9, 0, 0, tzinfo=dt.timezone.utc)
SONNET, GPT, GPT_MINI, GEMINI = ("claude-sonnet-4-5", "gpt-5.5", "gpt-5.4-mini", "gemini-2.5-flash")
NAMES = ["Ana Silva", "Ben Okafor", "Chloe Martin", "Dev Patel", "Elif Kaya", "Farah Haddad"]


@dataclass(frozen=True)
class Pattern:
    """One reported pattern: how to build its log, and what a right diagnosis names."""

    name: str
    expected: str | None  # the doctor's cause name (workbook.doctor.causes); None: healthy, nothing lost
    what: str
    source: str  # the public issue or pull request that reported it
    shape: str  # the log's format
    build: Callable[[random.Random], list[dict]]


# ----- text ------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def chunks() -> tuple[str, ...]:
    """Paragraphs of the held-out corpus's documentation half: the files, pages and chunks the logs quote."""
    text = (DATA_DIR / "corpus" / "heldout.txt").read_text(encoding="utf-8")
    docs = [d.strip() for d in text.split("<|endoftext|>") if d.strip() and not d.strip().startswith("<|")]
    return tuple(p.strip() for d in docs for p in d.split("\n\n") if len(p.strip()) > 80)


def passage(rng: random.Random, chars: int) -> str:
    """About `chars` characters of consecutive corpus paragraphs, from a random place."""
    pool, out = chunks(), []
    i = rng.randrange(len(pool))
    while sum(map(len, out)) < chars:
        out.append(pool[i % len(pool)])
        i += 1
    return "\n\n".join(out)


def system_prompt(rng: random.Random, persona: str, chars: int) -> str:
    rules = "\n".join(f"- {line}" for line in passage(rng, chars // 3).split("\n") if line.strip())
    return f"{persona}\n\n# Rules\n{rules}\n\n# Reference\n{passage(rng, chars - chars // 3)}"


def tool(name: str, description: str, **params: str) -> dict:
    return {"name": name, "description": description,
            "input_schema": {"type": "object", "properties": {k: {"type": "string", "description": v}
                                                               for k, v in params.items()},
                             "required": list(params)}}


AGENT_TOOLS = [tool("read_file", "Read a file of the repository and return its text.", path="Path from the root."),
               tool("grep", "Search the repository for a regular expression.", pattern="The expression.",
                    glob="Files to search, e.g. '*.py'."),
               tool("edit_file", "Replace one exact string in a file.", path="Path from the root.",
                    old="The text to replace.", new="The replacement."),
               tool("run_tests", "Run the test suite, or one test file.", target="A test path, or 'all'."),
               tool("list_dir", "List a directory.", path="Path from the root.")]
MCP_SERVERS = {"github": [tool("github_search_issues", "Search issues of a GitHub repository.", repo="owner/name",
                               query="Search terms."),
                          tool("github_get_pull", "Read a pull request.", repo="owner/name", number="Its number.")],
               "postgres": [tool("pg_query", "Run a read-only SQL query.", sql="The query."),
                            tool("pg_schema", "Describe a table.", table="Its name.")]}
QUESTIONS = ["Why does the date parser fail on leap years?", "Add a --dry-run flag to the import command.",
             "The CI job times out on test_cache; find out why.", "Rename Config.load to Config.read everywhere.",
             "Explain what the retry decorator does.", "Make the CSV export stream instead of building a list.",
             "Where is the session cookie set?", "Fix the flaky test in test_scheduler.py.",
             "Summarise the open issues about caching.", "Which tables does the billing job read?"]
FILES = ["src/app/config.py", "src/app/cache.py", "src/app/cli.py", "tests/test_cache.py", "src/app/export.py",
         "src/app/scheduler.py", "docs/usage.md", "src/app/session.py"]


# ----- conversations, shape-neutral --------------------------------------------------------------------------------
# A turn is the user's message, then the model's steps: each a (thinking, tool call or None, tool result or
# answer). An agent makes one request per step; the history grows by what each step added.

@dataclass
class Step:
    thinking: str
    call: tuple[str, dict] | None  # (tool name, arguments)
    output: str  # the tool's result, or the final answer when there is no call


def agent_turns(rng: random.Random, turns: int, steps: tuple[int, int] = (1, 4), result_chars: int = 1500,
                mcp: bool = False) -> list[tuple[str, list[Step]]]:
    out = []
    for t in range(turns):
        question = QUESTIONS[rng.randrange(len(QUESTIONS))] + f" (task {t + 1})"
        steps_ = []
        for _ in range(rng.randint(*steps)):
            name, arguments = rng.choice([("read_file", {"path": rng.choice(FILES), "offset": 0, "limit": 400}),
                                          ("grep", {"pattern": rng.choice(["def load", "retry", "cookie"]),
                                                    "glob": "*.py"}),
                                          ("run_tests", {"target": rng.choice(FILES[3:4] + ["all"])})]
                                         + ([("pg_query", {"sql": "select id, total from invoices limit 20",
                                                           "timeout_ms": 5000})] if mcp else []))
            steps_.append(Step(f"I should call {name} first. " + passage(rng, 200)[:200], (name, arguments),
                               passage(rng, rng.randint(result_chars // 2, result_chars))))
        steps_.append(Step("I have what I need.", None, "Done. " + passage(rng, 400)[:400]))
        out.append((question, steps_))
    return out


def requests_of(turns: list[tuple[str, list[Step]]], limit: int) -> list[list[tuple[int, int]]]:
    """For each request, the (turn, step) pairs its history holds: every finished step so far."""
    out, done = [], []
    for t, (_, steps) in enumerate(turns):
        for s in range(len(steps)):
            out.append(list(done) + [(t, -1)])  # (t, -1): the turn's question with the steps of it done so far
            done.append((t, s))
            if len(out) == limit:
                return out
    return out


# ----- rendering into each API's shape --------------------------------------------------------------------------------

def anthropic_messages(turns, history, *, keep_thinking: Callable[[int, int], bool] = lambda t, c: True,
                       marks: int = 1) -> list[dict]:
    """Anthropic messages for one request; the last `marks` user messages carry a 5-minute breakpoint."""
    messages, current = [], None
    for t, s in history:
        question, steps = turns[t]
        if current != t:
            messages.append({"role": "user", "content": [{"type": "text", "text": question}]})
            current = t
        if s < 0:
            continue
        step = steps[s]
        content = ([{"type": "thinking", "thinking": step.thinking, "signature": f"sig{t}x{s}"}]
                   if keep_thinking(t, history[-1][0]) else [])
        if step.call:
            content.append({"type": "tool_use", "id": f"toolu_{t}_{s}", "name": step.call[0], "input": step.call[1]})
            messages.append({"role": "assistant", "content": content})
            messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{t}_{s}",
                                                          "content": step.output}]})
        else:
            content.append({"type": "text", "text": step.output})
            messages.append({"role": "assistant", "content": content})
    users = [m for m in messages if m["role"] == "user"]
    for m in users[-marks:] if marks else []:
        m["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return messages


def openai_messages(system: str, turns, history, *, arguments: Callable[[dict, int, int], str] = None) -> list[dict]:
    """OpenAI Chat messages for one request; `arguments(args, turn, current turn)` writes a call's arguments."""
    arguments = arguments or (lambda a, t, now: json.dumps(a))
    messages, current = [{"role": "system", "content": system}], None
    for t, s in history:
        question, steps = turns[t]
        if current != t:
            messages.append({"role": "user", "content": question})
            current = t
        if s < 0:
            continue
        step = steps[s]
        if step.call:
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{t}_{s}", "type": "function",
                 "function": {"name": step.call[0], "arguments": arguments(step.call[1], t, history[-1][0])}}]})
            messages.append({"role": "tool", "tool_call_id": f"call_{t}_{s}", "content": step.output})
        else:
            messages.append({"role": "assistant", "content": step.output})
    return messages


def openai_tools(tools: list[dict]) -> list[dict]:
    return [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["input_schema"]}} for t in tools]


def times(rng: random.Random, n: int, gap: tuple[float, float] = (8, 40), pauses: dict[int, float] | None = None):
    """n timestamps: `gap` seconds apart, plus a pause before the requests named in `pauses`."""
    out, at = [], START
    for i in range(n):
        at += dt.timedelta(seconds=(pauses or {}).get(i, 0) + (rng.uniform(*gap) if i else 0))
        out.append(at)
    return out


def stamp(when: dt.datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ----- the patterns ---------------------------------------------------------------------------------------------

def coding_agent(rng, *, n=36, clock=False, mcp_flip=False, thinking_dropped=False, relay=False,
                 pauses=None) -> list[dict]:
    """A coding agent's Anthropic requests, with one habit switched on."""
    turns = agent_turns(rng, 12, mcp=mcp_flip)
    history = requests_of(turns, n)
    at = times(rng, len(history), pauses=pauses)
    base = system_prompt(rng, "You are a coding agent working in the user's repository.", 9000)
    out = []
    for i, (h, when) in enumerate(zip(history, at)):
        clock_line = f"Current date and time: {when:%A, %d %B %Y %H:%M:%S} UTC\n" if clock else ""
        tools = [dict(t) for t in AGENT_TOOLS]
        if mcp_flip:
            tools += mcp_tools(when)
        tools[-1]["cache_control"] = {"type": "ephemeral"}
        long = sum(1 for t, s in h if s >= 0 and turns[t][1][s].call) >= 12  # many tool results: a second mark
        messages = anthropic_messages(turns, h, marks=2 if long else 1,
                                      keep_thinking=(lambda t, now: t == now or not thinking_dropped))
        system = [{"type": "text", "text": clock_line + base, "cache_control": {"type": "ephemeral"}}]
        if relay:  # the relay prepends its own marked system block: a fifth breakpoint once the app uses four
            system.insert(0, {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                              "cache_control": {"type": "ephemeral"}})
        request = {"timestamp": stamp(when), "model": SONNET, "max_tokens": 8192, "system": system, "tools": tools,
                   "messages": messages}
        if thinking_dropped:
            request["thinking"] = {"type": "enabled", "budget_tokens": 4096}
        out.append(request)
    return out


def mcp_tools(when: dt.datetime) -> list[dict]:
    """The MCP servers' tools: they reconnect every five minutes, and the one that reconnected is listed last."""
    order = ["github", "postgres"] if (when - START).seconds // 300 % 2 == 0 else ["postgres", "github"]
    return [dict(t) for server in order for t in MCP_SERVERS[server]]


def support_chat(rng, *, n=40) -> tuple[str, list[tuple[int, list[dict]]]]:
    """A support bot's system prompt, and (user, messages) per request: six users, up to four turns each,
    interleaved."""
    system = system_prompt(rng, "You are the support assistant of Harbor & Pine, an online outdoor-gear shop.", 7000)
    out, users = [], {}
    for i in range(n):
        user = rng.randrange(6)
        history = users.setdefault(user, [])
        if len(history) >= 8:
            history.clear()
        history.append({"role": "user", "content": QUESTIONS[rng.randrange(len(QUESTIONS))] + f" (ticket {i + 1})"})
        out.append((user, [dict(m) for m in history]))
        history.append({"role": "assistant", "content": passage(rng, 500)[:500]})
    return system, out


def pattern_clock(rng):
    return coding_agent(rng, clock=True)


def pattern_mcp(rng):
    return coding_agent(rng, n=38, mcp_flip=True)


def pattern_thinking(rng):
    return coding_agent(rng, n=40, thinking_dropped=True)


def pattern_relay(rng):
    return coding_agent(rng, n=30, relay=True)


def pattern_ttl(rng):
    pauses = {i: rng.uniform(6 * 60, 22 * 60) for i in range(4, 40, 5)}
    return coding_agent(rng, n=40, pauses=pauses)


def pattern_healthy_agent(rng):
    return coding_agent(rng, n=40)


def openai_agent(rng, *, n=36, tools_flip=False, arguments=None, model_of=None, first_line=None, pauses=None,
                 mcp_flip=False, window=None) -> list[dict]:
    """A coding agent's OpenAI Chat requests, with one habit switched on (a first line of the system prompt made per
    request, pauses, MCP tools, a window of the last `window` turns)."""
    turns = agent_turns(rng, 12)
    history = requests_of(turns, n)
    at = times(rng, len(history), pauses=pauses)
    base = system_prompt(rng, "You are a coding agent working in the user's repository.", 9000)
    out = []
    for i, (h, when) in enumerate(zip(history, at)):
        system = (first_line(i, when) if first_line else "") + base
        if window:
            h = [(t, s) for t, s in h if t > h[-1][0] - window]
        tools = openai_tools(AGENT_TOOLS + (mcp_tools(when) if mcp_flip else []))
        if tools_flip and rng.random() < 0.35:  # the app's serializer writes a schema's keys in any order
            for t in tools:
                parameters = t["function"]["parameters"]
                keys = list(parameters)
                rng.shuffle(keys)
                t["function"]["parameters"] = {k: parameters[k] for k in keys}
        out.append({"timestamp": stamp(when), "model": model_of(i, when) if model_of else GPT, "tools": tools,
                    "messages": openai_messages(system, turns, h, arguments=arguments)})
    return out


def jsonb_order(value):
    """The key order of a Postgres jsonb object: shorter keys first, then by bytes."""
    if isinstance(value, dict):
        return {k: jsonb_order(value[k]) for k in sorted(value, key=lambda k: (len(k.encode()), k.encode()))}
    return [jsonb_order(v) for v in value] if isinstance(value, list) else value


def pattern_tool_keys(rng):
    return openai_agent(rng, tools_flip=True)


def pattern_jsonb(rng):
    # The history is saved as jsonb after each turn and read back at the next: earlier turns' arguments come back
    # in jsonb's key order (written as Postgres writes jsonb text, which is Python's default spacing too).
    return openai_agent(rng, arguments=lambda args, t, now: json.dumps(args if t == now else jsonb_order(args)))


def pattern_args_only(rng):
    # The framework replays each tool call's arguments re-serialised with sorted keys and no spaces.
    return openai_agent(rng, arguments=lambda args, t, now: json.dumps(args) if t == now else
                        json.dumps(args, sort_keys=True, separators=(",", ":")))


def pattern_router(rng):
    # During two rate-limit bursts the router sends requests to the fallback model, then back.
    bursts = set(range(8, 13)) | set(range(22, 26))
    requests = openai_agent(rng, n=34, model_of=lambda i, when: GPT_MINI if i in bursts else GPT)
    return [litellm_row(r, i) for i, r in enumerate(requests)]


def pattern_cache_key(rng):
    # Responses API; the client makes a new prompt_cache_key (a UUID) for every request.
    system, chats = support_chat(rng, n=40)
    at = times(rng, len(chats), gap=(5, 30))
    tools = [{"type": "function", "name": t["name"], "description": t["description"], "parameters": t["input_schema"]}
             for t in AGENT_TOOLS[:3]]
    return [{"timestamp": stamp(when), "model": GPT, "instructions": system, "tools": tools,
             "prompt_cache_key": str(uuid.UUID(int=rng.getrandbits(128))), "input": messages}
            for (user, messages), when in zip(chats, at)]


def pattern_clock_openai(rng):
    return openai_agent(rng, first_line=lambda i, when: f"Current date: {when.isoformat()}\n")


def pattern_request_id(rng):
    return openai_agent(rng, first_line=lambda i, when: f"Request {uuid.UUID(int=rng.getrandbits(128))} at "
                                                         f"{START.date().isoformat()}.\n")


def pattern_mcp_openai(rng):
    return openai_agent(rng, n=40, mcp_flip=True)


def pattern_ttl_openai(rng):
    # A model whose only retention is in memory (5-10 minutes idle, at most an hour): 12-22 minute pauses outlast it.
    return openai_agent(rng, n=36, pauses={i: rng.uniform(12 * 60, 22 * 60) for i in range(4, 36, 6)},
                        model_of=lambda i, when: GPT_MINI)


def pattern_sliding_window(rng):
    return openai_agent(rng, n=40, window=3)


def pattern_user_name(rng):
    # The support bot greets each customer by name from its system prompt (Anthropic, cached system block).
    system, chats = support_chat(rng, n=40)
    at = times(rng, len(chats), gap=(5, 30))
    return [{"timestamp": stamp(when), "model": SONNET, "max_tokens": 1024,
             "system": [{"type": "text", "text": f"You are talking with {NAMES[user]}.\n{system}",
                         "cache_control": {"type": "ephemeral"}}],
             "messages": messages} for (user, messages), when in zip(chats, at)]


def pattern_gemini_clock(rng):
    # Gemini's implicit caching, with today's date and time opening the system instruction.
    system, chats = support_chat(rng, n=40)
    at = times(rng, len(chats), gap=(5, 30))
    return [{"timestamp": stamp(when), "model": GEMINI,
             "systemInstruction": {"parts": [{"text": f"Today is {when:%d %B %Y, %H:%M:%S}.\n{system}"}]},
             "contents": [{"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
                          for m in messages]} for (user, messages), when in zip(chats, at)]


def pattern_healthy_chat(rng):
    system, chats = support_chat(rng, n=40)
    at = times(rng, len(chats), gap=(5, 30))
    return [otel_span({"timestamp": stamp(when), "model": GPT,
                       "messages": [{"role": "system", "content": system}, *messages]}, i)
            for i, ((user, messages), when) in enumerate(zip(chats, at))]


REPHRASE = ("Given a chat history and the latest user question which might reference context in the chat history, "
            "formulate a standalone question which can be understood without the chat history. Do NOT answer the "
            "question, just reformulate it if needed and otherwise return it as is.")


def pattern_rag(rng):
    # A LangChain history-aware RAG chain: a rephrase call, then the answer call with the retrieved context in the
    # system message (LangChain's create_stuff_documents_chain), traced to Langfuse.
    instructions = system_prompt(rng, "You are an assistant for question-answering tasks over the Python docs. Use "
                                      "the following pieces of retrieved context to answer the question.", 3000)
    out, history, at = [], [], times(rng, 44, gap=(3, 25))
    for i in range(22):
        question = QUESTIONS[rng.randrange(len(QUESTIONS))] + f" (question {i + 1})"
        if len(history) >= 6:
            history = []
        rephrase = [{"role": "system", "content": REPHRASE}, *history, {"role": "user", "content": question}]
        context = passage(rng, 9000)
        answer = [{"role": "system", "content": f"{instructions}\n\n<context>\n{context}\n</context>"}, *history,
                  {"role": "user", "content": question}]
        out.append(langfuse_observation(rephrase, at[2 * i], 2 * i, "rephrase_question"))
        out.append(langfuse_observation(answer, at[2 * i + 1], 2 * i + 1, "answer"))
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": passage(rng, 400)[:400]}]
    return out


# ----- proxy exports -------------------------------------------------------------------------------------------------

def litellm_row(request: dict, i: int) -> dict:
    """A litellm spend-log row (store_prompts_in_spend_logs on) around a Chat request; usage filled in later."""
    return {"request_id": f"chatcmpl-{i:05d}", "call_type": "acompletion", "api_key": "88dc28d0f030c55ed4ab77ed8faf",
            "spend": None, "startTime": request["timestamp"], "model": request["model"], "model_group": "coder",
            "user": "", "cache_hit": "False",
            "proxy_server_request": {**{k: v for k, v in request.items() if k != "timestamp"}, "model": "coder"}}


def langfuse_observation(messages: list[dict], when: dt.datetime, i: int, name: str) -> dict:
    return {"id": f"obs-{i:04d}", "traceId": f"trace-{i // 2:04d}", "type": "GENERATION", "name": name,
            "startTime": stamp(when), "model": GPT, "modelParameters": {"temperature": 0}, "input": messages}


def otel_span(request: dict, i: int) -> dict:
    """An OpenTelemetry GenAI span (OTLP JSON) around a Chat request; usage attributes filled in later."""
    system = request["messages"][0]["content"]
    messages = [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                for m in request["messages"][1:]]
    when = dt.datetime.fromisoformat(request["timestamp"].replace("Z", "+00:00"))
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                  "gen_ai.request.model": request["model"],
                  "gen_ai.system_instructions": json.dumps([{"type": "text", "content": system}]),
                  "gen_ai.input.messages": json.dumps(messages)}
    return {"traceId": f"{i:032x}", "spanId": f"{i:016x}", "name": f"chat {request['model']}",
            "startTimeUnixNano": str(int(when.timestamp() * 1e9)), "attributes": attributes}


# ----- usage, as the provider bills it --------------------------------------------------------------------------

BLOCK_TYPE = {"tool_call": "tool_use", "tool_result": "tool_result", "image": "image"}  # the rest are text


def block_part(kind: str, provider: str) -> str:
    """Where a part renders in Anthropic's terms: the tool list, the top-level system prompt, or the messages."""
    if kind == "tools":
        return "tools"
    return "system" if kind == "system" and provider == "anthropic" else "messages"


def with_usage(items: list[dict], tokenizer) -> list[dict]:
    """Each logged item with the usage its provider bills (one cache per model), in that log format's own fields;
    a request the API refuses gets the API's error instead."""
    caches: dict[str, ProviderCache] = {}
    encode = lru_cache(maxsize=None)(lambda text: tuple(tokenizer.encode(text)))  # requests repeat their parts
    for line, item in enumerate(items, start=1):
        r = record(item, line)
        provider = r.provider
        model_key = f"{'google' if provider == 'gemini' else provider}/{r.model}"  # the price sheets' name
        blocks = [Block(list(encode(p.text)), p.cache_control if provider == "anthropic" else None,
                        block_part(p.kind, provider), BLOCK_TYPE.get(p.kind, "text"))
                  for p in r.parts if p.text]  # an empty part sends no tokens
        options = {"prompt_cache_key": r.cache_key} if provider == "openai" and r.cache_key else None
        cache = caches.setdefault(model_key, ProviderCache(model_key))
        try:
            bill = cache.send(Request(blocks, r.at_s, output_tokens=300, options=options))
        except WorkbookError as error:
            _set_error(item, str(error), sum(1 for b in blocks if b.cache_control))
            continue
        _set_usage(item, provider, bill.usage)
    return items


def _set_usage(item: dict, provider: str, u) -> None:
    if "attributes" in item:  # OpenTelemetry
        item["attributes"].update({"gen_ai.usage.input_tokens": u.total_input_tokens,
                                   "gen_ai.usage.cache_read.input_tokens": u.cache_read_tokens,
                                   "gen_ai.usage.output_tokens": u.output_tokens})
    elif "traceId" in item:  # Langfuse: "input" counts uncached tokens; cached ones are their own usage type
        item["usageDetails"] = {"input": u.total_input_tokens - u.cache_read_tokens,
                                "input_cached_tokens": u.cache_read_tokens, "output": u.output_tokens}
    elif "request_id" in item:  # litellm
        item.update({"prompt_tokens": u.total_input_tokens, "completion_tokens": u.output_tokens,
                     "total_tokens": u.total_input_tokens + u.output_tokens,
                     "metadata": {"usage_object": {"prompt_tokens": u.total_input_tokens,
                                                   "completion_tokens": u.output_tokens,
                                                   "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens}}}})
    elif provider == "anthropic":
        item["usage"] = {"input_tokens": u.input_tokens, "cache_creation_input_tokens": u.cache_write_tokens,
                         "cache_read_input_tokens": u.cache_read_tokens, "output_tokens": u.output_tokens}
    elif "input" in item:  # Responses
        item["usage"] = {"input_tokens": u.total_input_tokens, "output_tokens": u.output_tokens,
                         "input_tokens_details": {"cached_tokens": u.cache_read_tokens}}
    else:
        item["usage"] = {"prompt_tokens": u.total_input_tokens, "completion_tokens": u.output_tokens,
                         "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens}}


def _set_error(item: dict, message: str, marks: int) -> None:
    if "at most" in message and "breakpoints" in message:  # the API's own words
        message = f"A maximum of 4 blocks with cache_control may be provided. Found {marks}."
    item["error"] = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


PATTERNS = [
    Pattern("clock_in_system", "datetime", "a coding agent writes the date and time, to the second, into its system "
            "prompt", "https://github.com/earendil-works/pi/issues/1873", "anthropic", pattern_clock),
    Pattern("mcp_tools_reordered", "tool_list", "MCP servers reconnect every few minutes and the one that reconnected "
            "is listed last: the tool order flips back and forth", "https://github.com/can1357/oh-my-pi/pull/890",
            "anthropic", pattern_mcp),
    Pattern("tool_schema_key_order", "json_key_order", "the app's serializer writes each tool schema's keys in any "
            "order", "https://github.com/Lakr233/FlowDown/issues/273", "openai", pattern_tool_keys),
    Pattern("thinking_dropped", "history_rewritten", "signed thinking blocks of earlier turns are dropped at each new "
            "user turn", "https://github.com/zeroclaw-labs/zeroclaw/issues/10786", "anthropic", pattern_thinking),
    Pattern("langchain_rag", "content", "a LangChain RAG chain: a rephrase call, then the answer call with the "
            "retrieved context in its system message (Langfuse export)",
            "https://github.com/langchain4j/langchain4j/issues/793", "langfuse", pattern_rag),
    Pattern("jsonb_tool_arguments", "json_key_order", "the history is stored as Postgres jsonb, which reorders the "
            "keys of earlier tool calls' arguments", "https://github.com/stanfordnlp/dspy/pull/10227", "openai",
            pattern_jsonb),
    Pattern("tool_arguments_only", "json_key_order", "only tool_calls[].function.arguments change: replayed "
            "re-serialised with sorted keys", "https://github.com/OpenRouterTeam/ai-sdk-provider/issues/171",
            "openai", pattern_args_only),
    Pattern("router_fallback", "model_switch", "an LLM router falls back to a smaller model during rate-limit bursts "
            "(litellm spend logs)", "https://github.com/Yeachan-Heo/gajae-code/issues/2378", "litellm", pattern_router),
    Pattern("relay_fifth_breakpoint", "too_many_breakpoints", "a relay adds its own cache_control: a fifth breakpoint "
            "once the app uses four, and the API answers 400", "https://github.com/Wei-Shaw/sub2api/issues/176",
            "anthropic", pattern_relay),
    Pattern("ttl_pauses", "ttl_expiry", "the user pauses 6-22 minutes between turns, past the 5-minute TTL",
            "https://github.com/anthropics/claude-code/issues/47425", "anthropic", pattern_ttl),
    Pattern("cache_key_per_request", "cache_key", "a new prompt_cache_key (a UUID) on every request (Responses API)",
            "https://github.com/grikomsn/openai-oauth-copilot-chat/pull/7", "responses", pattern_cache_key),
    Pattern("clock_in_system_openai", "datetime", "a RAG app writes datetime.now().isoformat() into its system prompt "
            "(OpenAI Chat)", "https://github.com/zylon-ai/private-gpt/pull/2271", "openai", pattern_clock_openai),
    Pattern("request_id_in_system", "number", "a fresh request UUID opens the system prompt",
            "https://github.com/abstxn/lunch-uncle/issues/6", "openai", pattern_request_id),
    Pattern("mcp_tools_reordered_openai", "tool_list", "MCP tools listed in whatever order the servers reconnected "
            "(OpenAI Chat)", "https://github.com/langchain-ai/deepagents/pull/2497", "openai", pattern_mcp_openai),
    Pattern("ttl_pauses_openai", "ttl_expiry", "12-22 minute pauses outlast OpenAI's in-memory retention "
            "(GPT-5.4 mini)",
            "https://github.com/V1ki/dsh-plugin-subscriptions/issues/48", "openai", pattern_ttl_openai),
    Pattern("sliding_window", "history_rewritten", "only the last three turns are sent: the window slides every turn",
            "https://github.com/openclaw/openclaw/issues/115273", "openai", pattern_sliding_window),
    Pattern("user_name_in_system", "user_text", "the customer's name opens the cached system prompt",
            "https://github.com/swampratnz/community-agent/issues/508", "anthropic", pattern_user_name),
    Pattern("gemini_clock", "datetime", "the date and time open a Gemini system instruction (implicit caching)",
            "https://github.com/sterlp/eclipse-peon-ai/issues/60", "gemini", pattern_gemini_clock),
    Pattern("healthy_agent", None, "a coding agent that keeps its prefix stable", "", "anthropic",
            pattern_healthy_agent),
    Pattern("healthy_chat", None, "a support bot with a stable prompt and a cache key per user (OpenTelemetry spans)",
            "", "otel", pattern_healthy_chat),
]


def pattern_files() -> dict[str, bytes]:
    """File name -> bytes of every pattern log (xz-compressed JSONL) and of the index, patterns.json."""
    from ..tokenizer import load_tokenizer

    tokenizer = load_tokenizer("tiny")
    files, index = {}, []
    for pattern in PATTERNS:
        items = with_usage(pattern.build(random.Random(pattern.name)), tokenizer)  # seeded by name: order-free
        text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        files[f"{pattern.name}.jsonl.xz"] = lzma.compress(text.encode("utf-8"), preset=9)
        index.append({"name": pattern.name, "file": f"{pattern.name}.jsonl.xz", "expected": pattern.expected,
                      "what": pattern.what, "shape": pattern.shape, "source": pattern.source,
                      "requests": len(items)})
    files["patterns.json"] = (json.dumps(index, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    return files


def load_index(folder: Path = PATTERNS_DIR) -> list[dict]:
    return json.loads((folder / "patterns.json").read_text(encoding="utf-8"))


def main(folder: Path = PATTERNS_DIR) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in pattern_files().items():
        (folder / name).write_bytes(data)
        print(f"wrote {folder / name} ({len(data):,} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else PATTERNS_DIR)
