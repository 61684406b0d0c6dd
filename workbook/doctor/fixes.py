"""Fixes the doctor suggests, each a function that rewrites a whole log, so its savings are simulated, not promised.

- static first: lines of the static region that change between requests (a timestamp, a name, an
  id) move to the end of the last message, where they no longer cut the shared prefix short;
- sorted JSON keys: the tool list serialised with its keys sorted, the same bytes every time;
- pinned tool order: the tools sorted by name (and their keys sorted);
- stable seams: whitespace that ends a static part moves to the start of the next part, so the
  tokenizer cannot merge it with text that changes;
- breakpoints (Anthropic): one breakpoint at the end of the static region and one on the newest
  message, replacing whatever the log had, so each request reads the one before it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from .causes import tool_name
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
    """Index of the last message part (the dynamic end of a chat request), or None."""
    return max((k for k, p in enumerate(parts) if p.kind == "message"), default=None)


def static_indices(record: Record) -> list[int]:
    """Parts of the static region whose text a fix may rewrite: system parts and messages before the last one."""
    last = last_message(record.parts)
    return [k for k, p in enumerate(record.parts) if p.kind in ("system", "prompt") or (p.kind == "message" and k != last)]


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
        parts[k] = replace(parts[k], text="\n".join(line for line in lines if line not in volatile))
    if record.shape == "prompt":
        lines = parts[0].text.split("\n")
        keep, move = [ln for ln in lines if ln not in volatile], [ln for ln in lines if ln in volatile]
        parts[0] = replace(parts[0], text="\n".join(keep + move))
        return replace(record, parts=tuple(parts))
    last = last_message(parts)
    if moved and last is not None:
        parts[last] = replace(parts[last], text=parts[last].text + "\n\n" + "\n".join(moved))
    return replace(record, parts=tuple(parts))


def _rewrite_tools(records: Sequence[Record], rewrite: Callable[[list], list]) -> list[Record]:
    out = []
    for r in records:
        parts = [replace(p, text=json.dumps(rewrite(json.loads(p.text)), ensure_ascii=False, sort_keys=True))
                 if p.kind == "tools" else p for p in r.parts]
        out.append(replace(r, parts=tuple(parts)))
    return out


def sorted_json_keys(records: Sequence[Record]) -> list[Record]:
    """Serialise every tool list with sorted keys."""
    return _rewrite_tools(records, lambda tools: tools)


def pinned_tool_order(records: Sequence[Record]) -> list[Record]:
    """Sort every tool list by tool name (and its keys)."""
    return _rewrite_tools(records, lambda tools: sorted(tools, key=lambda tool: str(tool_name(tool) or "")))


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
        out.append(replace(r, parts=tuple(parts)))
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
        parts = [replace(p, cache_control="5m" if k in marked else None) for k, p in enumerate(r.parts)]
        out.append(replace(r, parts=tuple(parts)))
    return out


FIXES = [
    Fix("static_first", "move lines that change per request out of the static region, to the end of the request",
        static_first),
    Fix("sorted_json_keys", "serialise the tool list with sorted keys", sorted_json_keys),
    Fix("pinned_tool_order", "sort the tools by name", pinned_tool_order),
    Fix("stable_seams", "end static parts without trailing whitespace", stable_seams),
    Fix("breakpoints", "Anthropic: breakpoints at the end of the static region and on the newest message",
        two_breakpoints),
]


def all_fixes(records: Sequence[Record], fixes: Sequence[Fix] = FIXES) -> list[Record]:
    """Every fix, applied in order."""
    for fix in fixes:
        records = fix.apply(records)
    return list(records)
