"""The doctor's example logs in data/examples/: a support bot with the habits that break cache hits.

`python -m workbook.doctor.examples` writes them again (a test checks that this gives the same bytes).
Twelve requests of Harbor & Pine's support assistant, 20 to 90 seconds apart:

- `anthropic_log.jsonl` (Messages shape): a timestamp opens the cached system prompt (requests 1-6),
  then the customer's name does (7-9); requests 10 and 12 send the tools with their keys reversed.
- `openai_log.jsonl` (Chat Completions shape): a request id opens the system prompt (1-6), then a
  trailing space comes and goes (7-12).
- `prompts.json`: rendered prompts that open with the time they were generated.
- `agent_log.jsonl` (Messages shape, with tool calls): one customer's conversation with the agent, two
  requests per question (the question, then the tool's result). The app keeps the conversation in a
  Postgres `jsonb` column, which stores object keys shortest first, so every tool call it sends back
  has its arguments reordered (from request 3 on); the customer pauses 7 minutes before question 3,
  past the 5-minute cache lifetime; and a rate limit sends request 9 to Claude Haiku 4.5 instead.

No provider served these requests: the `usage` figures are what `workbook.providers` bills for them,
counted with the shipped tokenizer, so the doctor's reported and simulated columns agree on them.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

from ..lessons.scenarios import LONG_SYSTEM_PROMPT, SUPPORT_TOOLS
from ..paths import DATA_DIR
from .diagnosis import Tokens, bills
from .logs import read_log

EXAMPLES_DIR = DATA_DIR / "examples"
START = dt.datetime(2026, 3, 15, 9, 0, 0, tzinfo=dt.timezone.utc)
QUESTIONS = ["Where is my order A12345?", "Can I return boots I wore once?", "How long does a refund take?",
             "Do you ship to Norway?", "My jacket arrived torn. What now?", "Is the Trail 40 backpack waterproof?",
             "Can I change the address on order A20331?", "Do you price-match?", "How do I use a gift card?",
             "Which tent is lightest for two people?", "Can I cancel order A19870?", "Where do I find my invoice?"]
USERS = ["Ana", "Ben", "Chloe", "Dev", "Ana", "Elif", "Ben", "Farah", "Gus", "Ana", "Hugo", "Ines"]
BASE = LONG_SYSTEM_PROMPT.replace("Today Date: 14 Mar 2026\n", "")  # each app adds its own first line


def anthropic_request(i: int, when: dt.datetime) -> dict:
    """Request i of the Anthropic log, as the app sent it."""
    first = f"Current time: {when:%Y-%m-%d %H:%M:%S} UTC\n" if i < 6 else f"You are helping {USERS[i]}.\n" if i < 9 else ""
    tools = [dict(reversed(list(t.items()))) if i >= 9 and i % 2 else dict(t) for t in SUPPORT_TOOLS]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return {"timestamp": stamp(when), "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": first + BASE, "cache_control": {"type": "ephemeral"}}],
            "tools": tools, "messages": [{"role": "user", "content": QUESTIONS[i]}]}


def openai_request(i: int, when: dt.datetime) -> dict:
    """Request i of the OpenAI log, as the app sent it."""
    system = f"Request id: req-{8812 + i}\n" + BASE if i < 6 else BASE + (" " if i % 2 else "")
    return {"timestamp": stamp(when), "model": "gpt-5.5",
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": QUESTIONS[i]}],
            "tools": [{"type": "function", "function": t} for t in SUPPORT_TOOLS]}


AGENT_QUESTIONS = [("A12345", "Where is my order A12345?"), ("A20331", "And order A20331, has it shipped?"),
                   ("A19870", "Can you check A19870 too?"), ("A12345", "Is A12345 still on time for Friday?"),
                   ("A20331", "What is in A20331 again?"), ("A19870", "Thanks. Last one: A19870's status?")]
AGENT_PAUSE_BEFORE = 4  # request index after the 7-minute pause: the first request of question 3
AGENT_FALLBACK = 8  # request index served by the fallback model


def jsonb(value: dict) -> dict:
    """A JSON object as Postgres jsonb gives it back: keys shortest first, then in byte order."""
    return {k: value[k] for k in sorted(value, key=lambda k: (len(k.encode()), k.encode()))}


def agent_request(i: int, when: dt.datetime) -> dict:
    """Request i of the agent log: question i // 2, before (even i) or after (odd i) its tool call."""
    messages = []
    for q, (order, question) in enumerate(AGENT_QUESTIONS[: i // 2 + 1]):
        messages.append({"role": "user", "content": question})
        if q < i // 2 or i % 2:
            call = {"order_id": order, "fields": ["status", "delivery"]}  # the order the model wrote them in
            stored = jsonb(call) if q < i // 2 and i >= 2 else call  # earlier turns come back from the database
            messages.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": f"toolu_{q:02d}", "name": "lookup_order", "input": stored}]})
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": f"toolu_{q:02d}", "content": f"{order}: shipped, arrives Friday."}]})
        if q < i // 2:
            messages.append({"role": "assistant", "content": f"{order} has shipped and arrives on Friday."})
    last = messages[-1]
    content = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
    messages[-1] = {**last, "content": [*content[:-1], {**content[-1], "cache_control": {"type": "ephemeral"}}]}
    tools = [dict(t) for t in SUPPORT_TOOLS]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return {"timestamp": stamp(when), "model": "claude-haiku-4-5" if i == AGENT_FALLBACK else "claude-sonnet-4-5",
            "system": [{"type": "text", "text": BASE, "cache_control": {"type": "ephemeral"}}],
            "tools": tools, "messages": messages}


def stamp(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def with_usage(requests: list[dict], model_key: str, outputs: list[int], tokens: Tokens) -> list[dict]:
    """The requests with the usage the simulator bills for them, in the provider's own field names."""
    billed = bills(read_log([{**r, "usage": {"output_tokens": n}} for r, n in zip(requests, outputs)]), tokens, model_key)
    for request, bill, n in zip(requests, billed, outputs):
        u = bill.usage
        request["usage"] = ({"input_tokens": u.input_tokens, "cache_creation_input_tokens": u.cache_write_tokens,
                             "cache_read_input_tokens": u.cache_read_tokens, "output_tokens": n}
                            if model_key.startswith("anthropic/") else
                            {"prompt_tokens": u.total_input_tokens, "completion_tokens": n,
                             "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens}})
    return requests


def example_files() -> dict[str, str]:
    """File name -> contents of every example log."""
    from .. import load_tokenizer

    rng = random.Random(7)
    times = [START]
    for _ in QUESTIONS[1:]:
        times.append(times[-1] + dt.timedelta(seconds=rng.randint(20, 90)))
    outputs = [rng.randint(60, 180) for _ in times]
    tokens = Tokens(load_tokenizer("tiny"))
    anthropic = with_usage([anthropic_request(i, w) for i, w in enumerate(times)], "anthropic/claude-sonnet-4-5",
                           outputs, tokens)
    openai = with_usage([openai_request(i, w) for i, w in enumerate(times)], "openai/gpt-5.5", outputs, tokens)
    prompts = [f"Generated at {w:%H:%M:%S}\n{BASE}\nCustomer: {USERS[i]}\n{QUESTIONS[i]}" for i, w in enumerate(times)]
    agent_times = [START + dt.timedelta(seconds=30 * i + (420 if i >= AGENT_PAUSE_BEFORE else 0)) for i in range(12)]
    agent = with_usage([agent_request(i, w) for i, w in enumerate(agent_times)], "anthropic/claude-sonnet-4-5",
                       outputs, tokens)
    return {"anthropic_log.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in anthropic),
            "openai_log.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in openai),
            "prompts.json": json.dumps(prompts, ensure_ascii=False, indent=1),
            "agent_log.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in agent)}


def main(folder: Path = EXAMPLES_DIR) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in example_files().items():
        (folder / name).write_text(text, encoding="utf-8")
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main()
