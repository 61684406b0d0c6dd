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
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Sequence

from ..providers import MAX_BREAKPOINTS
from .causes import is_turn, tool_name
from .diagnosis import Streams
from .logs import Record
from .parts import Part

STABLE_SHARE = 0.5  # a static line sent by at least this share of the requests counts as stable


@dataclass(frozen=True)
class Fix:
    """A named rewrite of the whole log and what it does, in one sentence. `start(log)` reads the log once if the fix
    needs to know it whole (which lines vary, which model is most common) and returns the rewrite of one record, to be
    fed the log's records in order: so a fix streams over a log of any size."""

    name: str
    does: str
    start: Callable[[Iterable[Record]], Callable[[Record], Record]]
    stateless: bool = True  # its rewrite of a record depends on that record alone, so it can be used again

    def apply(self, records: Iterable[Record]) -> list[Record]:
        """The whole log, fixed (`records` is read twice by a fix that must know it whole)."""
        return applied(self.start)(records)


def applied(start: Callable[[Iterable[Record]], Callable[[Record], Record]]) -> Callable[[Iterable[Record]], list]:
    """A fix's `start` as a function from a log to the fixed log."""
    def apply(records: Iterable[Record]) -> list[Record]:
        rewrite = start(records)
        return [rewrite(r) for r in records]

    return apply


class Fixed:
    """A log with fixes applied in order. Over a log held in memory (a list, or a `Fixed` of one) the fixed log is
    rewritten once and held too, sharing the records the fixes leave alone; over a file (`logs.Reread`) it is
    rewritten afresh on each reading, never held whole."""

    def __init__(self, log: Iterable[Record], fixes: Sequence[Fix] = ()):
        self.log, self.fixes = log, tuple(fixes)
        self._held: list[Record] | None = None
        self._rewrites: list[Callable[[Record], Record]] | None = None

    @property
    def in_memory(self) -> bool:
        return isinstance(self.log, list) or (isinstance(self.log, Fixed) and self.log.in_memory)

    def held(self) -> list[Record]:
        """The fixed log as a list (made once)."""
        if self._held is None:
            log = self.log
            for fix in self.fixes:
                log = fix.apply(log)
            self._held = list(log)
        return self._held

    def __iter__(self) -> Iterator[Record]:
        return iter(self.held()) if self.in_memory else self._rewritten()

    def _rewritten(self) -> Iterator[Record]:
        rewrites = self._rewrites or [fix.start(Fixed(self.log, self.fixes[:k])) for k, fix in enumerate(self.fixes)]
        if all(fix.stateless for fix in self.fixes):
            self._rewrites = rewrites  # started once: a fix that reads the whole log first does so once
        for record in self.log:
            for rewrite in rewrites:
                record = rewrite(record)
            yield record


def last_message(parts: Sequence[Part]) -> int | None:
    """Index of the last part of the conversation (the dynamic end of a chat request), or None."""
    return max((k for k, p in enumerate(parts) if is_turn(p)), default=None)


def static_indices(record: Record) -> list[int]:
    """Parts whose lines may change on their own, which `static_first` may rewrite: the system prompt and
    instruction messages, or a rendered prompt. Never the conversation, which changes by growing."""
    return [k for k, p in enumerate(record.parts) if p.kind in ("system", "prompt")
            or (p.kind == "message" and not is_turn(p))]


def volatile_lines(records: Iterable[Record]) -> set[str]:
    """Static lines that only a minority of requests send: they change from request to request."""
    counts, n = Counter(), 0
    for r in records:
        counts.update(set(line for k in static_indices(r) for line in r.parts[k].text.split("\n")))
        n += 1
    return {line for line, count in counts.items() if line.strip() and count < STABLE_SHARE * n}


def start_static_first(records: Iterable[Record]) -> Callable[[Record], Record]:
    """Move volatile static lines to the end of the request (the last message, or the prompt's last line)."""
    volatile = volatile_lines(records)
    return lambda r: _move_lines(r, volatile)


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
        parts[last] = with_text(parts[last], parts[last].text + "\n" + "\n".join(moved))  # the newlines they had
    return with_parts(record, parts)


def _tools_rewrite(rewrite: Callable[[list], list]) -> Callable[[Iterable[Record]], Callable[[Record], Record]]:
    def start(records: Iterable[Record]) -> Callable[[Record], Record]:
        @lru_cache(maxsize=1024)  # logs repeat their tool lists: each distinct one is rewritten once
        def rewritten(text: str) -> str:
            tools = _json(text)
            return json.dumps(rewrite(tools), ensure_ascii=False, sort_keys=True) if isinstance(tools, list) else text

        return lambda r: with_parts(r, [with_text(p, rewritten(p.text)) if p.kind == "tools" else p for p in r.parts])

    return start


def _json(text: str):
    """The JSON value of a tool list's text, or None if it is not JSON (a tool list rendered otherwise)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def start_sorted_tool_arguments(records: Iterable[Record]) -> Callable[[Record], Record]:
    """Every tool call's arguments (a `name(arguments)` part) written with sorted keys where they are a JSON object."""
    return lambda r: with_parts(r, [_sorted_call(p) if p.kind == "tool_call" else p for p in r.parts])


def _sorted_call(part: Part) -> Part:
    name, _, arguments = part.text.partition("(")
    value = _json(arguments[:-1]) if arguments.endswith(")") else None
    if not isinstance(value, dict):
        return part
    return with_text(part, f"{name}({json.dumps(value, ensure_ascii=False, sort_keys=True)})")


def sort_tools(tools: list) -> list:
    """The tools sorted by name, the list's cache_control (if any tool had one) on the last tool only."""
    dicts = all(isinstance(tool, dict) for tool in tools)
    marks = [tool["cache_control"] for tool in tools if dicts and "cache_control" in tool]
    tools = sorted(({k: v for k, v in tool.items() if k != "cache_control"} if dicts else tool for tool in tools),
                   key=lambda tool: str(tool_name(tool) or ""))
    if marks and tools:
        tools[-1] = {**tools[-1], "cache_control": marks[-1]}
    return tools


def start_stable_seams(records: Iterable[Record]) -> Callable[[Record], Record]:
    """Whitespace ending a part moves to the start of the next, so a part's last token cannot merge with new text."""
    return _seams


def _seams(r: Record) -> Record:
    parts = list(r.parts)
    for k in range(len(parts) - 1):
        text = parts[k].text
        trailing = text[len(text.rstrip(" \t")):]
        if trailing:
            parts[k] = with_text(parts[k], text[:len(text) - len(trailing)])
            parts[k + 1] = with_text(parts[k + 1], trailing + parts[k + 1].text)
    return with_parts(r, parts)


def start_two_breakpoints(records: Iterable[Record]) -> Callable[[Record], Record]:
    """Anthropic: a breakpoint on the last static part and on the newest message; no other. A rendered prompt is one
    part, with nothing static to mark apart, so it is left as it is."""
    return _two_breakpoints


def _two_breakpoints(r: Record) -> Record:
    if r.shape == "prompt":
        return r
    last = last_message(r.parts)
    static_end = (last if last is not None else len(r.parts)) - 1
    marked = {k for k in (static_end, last) if k is not None and k >= 0}
    return with_parts(r, [with_mark(p, "5m" if k in marked else None) for k, p in enumerate(r.parts)])


def start_breakpoint_limits(records: Iterable[Record]) -> Callable[[Record], Record]:
    """Anthropic: at most `MAX_BREAKPOINTS` breakpoints (the first three and the last kept), and a 1-hour one after
    a 5-minute one shortened to 5 minutes, so the API accepts the request."""
    return _limited


def _limited(r: Record) -> Record:
    marked = [k for k, p in enumerate(r.parts) if p.cache_control]
    keep = set(marked[:MAX_BREAKPOINTS - 1] + marked[-1:])
    parts, short = [], False
    for k, p in enumerate(r.parts):
        control = p.cache_control if k in keep else None
        short = short or control == "5m"
        parts.append(with_mark(p, "5m" if short and control else control))
    return with_parts(r, parts)


def start_one_hour_ttl(records: Iterable[Record]) -> Callable[[Record], Record]:
    """Anthropic: every breakpoint asks for the 1-hour lifetime (its writes cost more; reads survive long pauses)."""
    return lambda r: with_parts(r, [with_mark(p, "1h") if p.cache_control else p for p in r.parts])


def start_stable_cache_key(records: Iterable[Record]) -> Callable[[Record], Record]:
    """OpenAI: one prompt_cache_key per call type (`diagnosis.Streams`) where the log sends one per request. Assumed:
    the log does not say which user or conversation a request belongs to, so the call type stands in for it."""
    streams = Streams()

    def rewrite(r: Record) -> Record:
        key = f"call-type-{streams.of(r).number}" if r.cache_key else None  # only requests that send a key count
        return changed(r, cache_key=key) if key and key != r.cache_key else r

    return rewrite


def start_pinned_model(records: Iterable[Record]) -> Callable[[Record], Record]:
    """Every request sent to the log's most common model, so a fallback does not start on a cold cache."""
    models = Counter(r.model for r in records if r.model)
    if not models:
        return lambda r: r
    model = models.most_common(1)[0][0]
    return lambda r: changed(r, model=model) if r.model and r.model != model else r


start_sorted_json_keys = _tools_rewrite(lambda tools: tools)  # every tool list serialised with sorted keys
start_pinned_tool_order = _tools_rewrite(sort_tools)  # the tools sorted by name, cache_control on the last one

# Each fix as a function from a whole log (a list of records) to the fixed log.
static_first = applied(start_static_first)
sorted_json_keys = applied(start_sorted_json_keys)
sorted_tool_arguments = applied(start_sorted_tool_arguments)
pinned_tool_order = applied(start_pinned_tool_order)
stable_seams = applied(start_stable_seams)
two_breakpoints = applied(start_two_breakpoints)
breakpoint_limits = applied(start_breakpoint_limits)
one_hour_ttl = applied(start_one_hour_ttl)
stable_cache_key = applied(start_stable_cache_key)
pinned_model = applied(start_pinned_model)


def with_parts(record: Record, parts: Sequence[Part]) -> Record:
    """`record` with these parts: itself where each part is its own (a fix that changed nothing makes no copy, and
    comparing logs stops at the first copy)."""
    if len(parts) == len(record.parts) and all(p is q for p, q in zip(parts, record.parts)):
        return record
    return changed(record, parts=tuple(parts))


def with_text(part: Part, text: str) -> Part:
    return part if text == part.text else Part(part.kind, text, part.role, part.cache_control)


def with_mark(part: Part, cache_control: str | None) -> Part:
    return part if cache_control == part.cache_control else Part(part.kind, part.text, part.role, cache_control)


def changed(record: Record, **fields) -> Record:
    """`dataclasses.replace(record, **fields)` at under half its cost (a fix copies thousands of records): the same
    fields, copied without running `__init__` again (a `Record` checks nothing on creation)."""
    copy = object.__new__(Record)
    copy.__dict__.update(record.__dict__, **fields)
    return copy


FIXES = [
    Fix("static_first", "move instruction lines that change per request to the end of the request",
        start_static_first),
    Fix("sorted_json_keys", "serialise the tool list with sorted keys", start_sorted_json_keys),
    Fix("sorted_tool_arguments", "send tool-call arguments back with sorted keys", start_sorted_tool_arguments),
    Fix("pinned_tool_order", "sort the tools by name", start_pinned_tool_order),
    Fix("stable_seams", "end static parts without trailing whitespace", start_stable_seams),
    Fix("breakpoints", "Anthropic: breakpoints at the end of the static region and on the newest message",
        start_two_breakpoints),
    Fix("breakpoint_limits", "Anthropic: at most four breakpoints, 1-hour ones first", start_breakpoint_limits),
    Fix("one_hour_ttl", "Anthropic: the 1-hour cache lifetime on every breakpoint", start_one_hour_ttl),
    Fix("stable_cache_key", "OpenAI: one prompt_cache_key per call type, not one per request", start_stable_cache_key,
        stateless=False),
    Fix("pinned_model", "send every request to the log's main model (a fallback's cache is its own)", start_pinned_model),
]
