"""Fixes the doctor suggests, each a function that rewrites a whole log, so its savings are simulated, not promised.

- static first: lines of the instructions (system prompt, a rendered prompt's head) that change on
  their own between requests (a timestamp, a name, an id) move to the end of the last message, where
  they no longer cut the shared prefix short. The conversation is never moved: it grows by itself;
- sorted JSON keys: the tool list serialised with its keys sorted, the same bytes every time;
- sorted tool arguments: each tool call's arguments sent back with sorted keys, the same bytes
  whichever way a database round trip (Postgres `jsonb`) gave them back;
- pinned tool order: the tools sorted by name (and their keys sorted), with the tool list's
  cache_control moved onto the last tool after sorting, where Anthropic's docs place it;
- stable seams: whitespace that ends a static part moves to the start of the next part, so the
  tokenizer cannot merge it with text that changes;
- breakpoints (Anthropic): one breakpoint at the end of the static region and one on the newest
  message, replacing whatever the log had, so each request reads the one before it;
- breakpoint limits (Anthropic): at most four breakpoints (the first three and the last), and none
  of 1 hour after one of 5 minutes, so the API accepts every request;
- 1-hour TTL (Anthropic): every breakpoint lives an hour, for logs whose pauses outlast 5 minutes;
- stable cache key (OpenAI): one prompt_cache_key per call type instead of one per request;
- pinned model: every request of a call type sent to its most common model (a fallback model starts
  cold, its cache being its own).

The doctor simulates each fix on the whole log and recommends only those that lower the bill.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Sequence

from ..providers import MAX_BREAKPOINTS
from .causes import is_turn, tool_name
from .diagnosis import Streams
from .logs import Record
from .parts import Part

STABLE_SHARE = 0.5  # a static line sent by at least this share of the requests counts as stable


@dataclass(frozen=True)
class Fix:
    """A named rewrite of the whole log and what it does, in one sentence."""

    name: str
    does: str
    apply: Callable[[Sequence[Record]], list[Record]]


def last_message(parts: Sequence[Part]) -> int | None:
    """Index of the last part of the conversation (the dynamic end of a chat request), or None."""
    return max((k for k, p in enumerate(parts) if is_turn(p)), default=None)


def static_indices(record: Record) -> list[int]:
    """Parts whose lines may change on their own, which `static_first` may rewrite: the system prompt and
    instruction messages, or a rendered prompt. Never the conversation, which changes by growing."""
    return [k for k, p in enumerate(record.parts) if p.kind in ("system", "prompt")
            or (p.kind == "message" and not is_turn(p))]


def volatile_lines(records: Sequence[Record]) -> set[str]:
    """Static lines that only a minority of requests send: they change from request to request."""
    counts = Counter(line for r in records for k in static_indices(r) for line in set(r.parts[k].text.split("\n")))
    return {line for line, n in counts.items() if line.strip() and n < STABLE_SHARE * len(records)}


def static_first(records: Sequence[Record]) -> list[Record]:
    """Move volatile static lines to the end of the request (the last message, or the prompt's last line)."""
    volatile = volatile_lines(records)
    return [_move_lines(r, volatile) for r in records]


def _move_lines(record: Record, volatile: set[str]) -> Record:
    parts, moved = list(record.parts), []
    for k in static_indices(record):
        if record.shape == "prompt":
            continue  # a rendered prompt is one part: handled below, line by line
        lines = parts[k].text.split("\n")
        moved += [line for line in lines if line in volatile]
        parts[k] = with_text(parts[k], "\n".join(line for line in lines if line not in volatile))
    if record.shape == "prompt":
        lines = parts[0].text.split("\n")
        keep, move = [ln for ln in lines if ln not in volatile], [ln for ln in lines if ln in volatile]
        parts[0] = with_text(parts[0], "\n".join(keep + move))
        return with_parts(record, parts)
    last = last_message(parts)
    if moved and last is not None:
        parts[last] = replace(parts[last], text=parts[last].text + "\n" + "\n".join(moved))  # the newlines they had
    return with_parts(record, parts)


def _rewrite_tools(records: Sequence[Record], rewrite: Callable[[list], list]) -> list[Record]:
    @lru_cache(maxsize=1024)  # logs repeat their tool lists: each distinct one is rewritten once
    def rewritten(text: str) -> str:
        tools = _json(text)
        return json.dumps(rewrite(tools), ensure_ascii=False, sort_keys=True) if isinstance(tools, list) else text

    return [with_parts(r, [with_text(p, rewritten(p.text)) if p.kind == "tools" else p for p in r.parts])
            for r in records]


def _json(text: str):
    """The JSON value of a tool list's text, or None if it is not JSON (a tool list rendered otherwise)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def sorted_json_keys(records: Sequence[Record]) -> list[Record]:
    """Serialise every tool list with sorted keys."""
    return _rewrite_tools(records, lambda tools: tools)


def sorted_tool_arguments(records: Sequence[Record]) -> list[Record]:
    """Every tool call's arguments (a `name(arguments)` part) written with sorted keys where they are a JSON object."""
    return [with_parts(r, [_sorted_call(p) if p.kind == "tool_call" else p for p in r.parts]) for r in records]


def _sorted_call(part: Part) -> Part:
    name, _, arguments = part.text.partition("(")
    value = _json(arguments[:-1]) if arguments.endswith(")") else None
    if not isinstance(value, dict):
        return part
    return with_text(part, f"{name}({json.dumps(value, ensure_ascii=False, sort_keys=True)})")


def pinned_tool_order(records: Sequence[Record]) -> list[Record]:
    """Sort every tool list by tool name (and its keys); a cache_control inside the list moves onto the last tool."""
    return _rewrite_tools(records, sort_tools)


def sort_tools(tools: list) -> list:
    """The tools sorted by name, the list's cache_control (if any tool had one) on the last tool only."""
    dicts = all(isinstance(tool, dict) for tool in tools)
    marks = [tool["cache_control"] for tool in tools if dicts and "cache_control" in tool]
    tools = sorted(({k: v for k, v in tool.items() if k != "cache_control"} if dicts else tool for tool in tools),
                   key=lambda tool: str(tool_name(tool) or ""))
    if marks and tools:
        tools[-1] = {**tools[-1], "cache_control": marks[-1]}
    return tools


def stable_seams(records: Sequence[Record]) -> list[Record]:
    """Whitespace ending a part moves to the start of the next, so a part's last token cannot merge with new text."""
    out = []
    for r in records:
        parts = list(r.parts)
        for k in range(len(parts) - 1):
            text = parts[k].text
            trailing = text[len(text.rstrip(" \t")):]
            if trailing:
                parts[k] = replace(parts[k], text=text[:len(text) - len(trailing)])
                parts[k + 1] = replace(parts[k + 1], text=trailing + parts[k + 1].text)
        out.append(with_parts(r, parts))
    return out


def two_breakpoints(records: Sequence[Record]) -> list[Record]:
    """Anthropic: a breakpoint on the last static part and on the newest message; no other. A rendered prompt is one
    part, with nothing static to mark apart, so it is left as it is."""
    out = []
    for r in records:
        if r.shape == "prompt":
            out.append(r)
            continue
        last = last_message(r.parts)
        static_end = (last if last is not None else len(r.parts)) - 1
        marked = {k for k in (static_end, last) if k is not None and k >= 0}
        parts = [with_mark(p, "5m" if k in marked else None) for k, p in enumerate(r.parts)]
        out.append(with_parts(r, parts))
    return out


def breakpoint_limits(records: Sequence[Record]) -> list[Record]:
    """Anthropic: at most `MAX_BREAKPOINTS` breakpoints (the first three and the last kept), and a 1-hour one after
    a 5-minute one shortened to 5 minutes, so the API accepts the request."""
    out = []
    for r in records:
        marked = [k for k, p in enumerate(r.parts) if p.cache_control]
        keep = set(marked[:MAX_BREAKPOINTS - 1] + marked[-1:])
        parts, short = [], False
        for k, p in enumerate(r.parts):
            control = p.cache_control if k in keep else None
            short = short or control == "5m"
            parts.append(with_mark(p, "5m" if short and control else control))
        out.append(with_parts(r, parts))
    return out


def one_hour_ttl(records: Sequence[Record]) -> list[Record]:
    """Anthropic: every breakpoint asks for the 1-hour lifetime (its writes cost more; reads survive long pauses)."""
    return [with_parts(r, [with_mark(p, "1h") if p.cache_control else p for p in r.parts]) for r in records]


def stable_cache_key(records: Sequence[Record]) -> list[Record]:
    """OpenAI: one prompt_cache_key per call type (`diagnosis.Streams`) where the log sends one per request. Assumed:
    the log does not say which user or conversation a request belongs to, so the call type stands in for it."""
    streams = Streams()
    out = []
    for r in records:
        key = f"call-type-{streams.of(r).number}" if r.cache_key else None  # only requests that send a key count
        out.append(replace(r, cache_key=key) if key and key != r.cache_key else r)
    return out


def pinned_model(records: Sequence[Record]) -> list[Record]:
    """Every request sent to the log's most common model, so a fallback does not start on a cold cache."""
    models = Counter(r.model for r in records if r.model)
    if not models:
        return list(records)
    model = models.most_common(1)[0][0]
    return [replace(r, model=model) if r.model and r.model != model else r for r in records]


def with_parts(record: Record, parts: Sequence[Part]) -> Record:
    """`record` with these parts: itself where each part is its own (a fix that changed nothing makes no copy, and
    comparing logs stops at the first copy)."""
    if len(parts) == len(record.parts) and all(p is q for p, q in zip(parts, record.parts)):
        return record
    return replace(record, parts=tuple(parts))


def with_text(part: Part, text: str) -> Part:
    return part if text == part.text else replace(part, text=text)


def with_mark(part: Part, cache_control: str | None) -> Part:
    return part if cache_control == part.cache_control else replace(part, cache_control=cache_control)


FIXES = [
    Fix("static_first", "move instruction lines that change per request to the end of the request",
        static_first),
    Fix("sorted_json_keys", "serialise the tool list with sorted keys", sorted_json_keys),
    Fix("sorted_tool_arguments", "send tool-call arguments back with sorted keys", sorted_tool_arguments),
    Fix("pinned_tool_order", "sort the tools by name", pinned_tool_order),
    Fix("stable_seams", "end static parts without trailing whitespace", stable_seams),
    Fix("breakpoints", "Anthropic: breakpoints at the end of the static region and on the newest message",
        two_breakpoints),
    Fix("breakpoint_limits", "Anthropic: at most four breakpoints, 1-hour ones first", breakpoint_limits),
    Fix("one_hour_ttl", "Anthropic: the 1-hour cache lifetime on every breakpoint", one_hour_ttl),
    Fix("stable_cache_key", "OpenAI: one prompt_cache_key per call type, not one per request", stable_cache_key),
    Fix("pinned_model", "send every request to the log's main model (a fallback's cache is its own)", pinned_model),
]
