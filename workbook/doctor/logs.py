"""Reading request logs: OpenAI and Anthropic chat requests (JSONL), or a list of rendered prompts.

Each line of a JSONL log is one request as it was sent, optionally with `"timestamp"` (ISO 8601 or
seconds) and the provider's `"usage"`. The shape is recognised per line:

- OpenAI Chat Completions: `{"messages": [{"role": "system", "content": ...}, ...], "tools": [...]}`;
  usage `{"prompt_tokens_details": {"cached_tokens": N}, "completion_tokens": M}`.
- Anthropic Messages: `{"system": ..., "tools": [...], "messages": [...]}`, where the system prompt and
  message contents may be lists of blocks carrying `cache_control`; usage
  `{"cache_read_input_tokens": N, "cache_creation_input_tokens": W, "output_tokens": M}`.
- A rendered prompt: `{"prompt": "..."}`. A `.json` file holding a list of strings is read the same way.

A request renders as `Part`s in the order providers render it: the tool list (as JSON text, with the
keys in the order they were logged), the system prompt, then each message.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import WorkbookError
from .parts import Part


class LogError(WorkbookError):
    """A log line the doctor cannot read; the message names the line."""


@dataclass(frozen=True)
class Record:
    """One logged request: its rendered parts, when it was sent, and what the provider reported."""

    line: int  # 1-based line (or list position) in the log
    shape: str  # "openai", "anthropic" or "prompt"
    parts: tuple[Part, ...]
    at_s: float | None = None  # seconds after the log's first timestamp
    reported_cached: int | None = None  # cached tokens the provider reported
    output_tokens: int = 0


def read_log(source: str | Path | Iterable[dict | str]) -> list[Record]:
    """Records from a JSONL path, a JSON list of prompts, or an iterable of request dicts or prompt strings."""
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith((".jsonl", ".json"))):
        items = _read_file(Path(source))
    elif isinstance(source, str):
        raise LogError(f"{source!r} is not a .jsonl or .json file. Give a path, or a list of requests.")
    else:
        items = list(enumerate(source, start=1))
    if not items:
        raise LogError("The log holds no requests.")
    records = [record(item, line) for line, item in items]
    return _relative_times(records)


def _read_file(path: Path) -> list[tuple[int, dict | str]]:
    if not path.is_file():
        raise LogError(f"No log at {path}.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise LogError(f"{path} is not UTF-8 text (byte {error.start}): save the log as UTF-8.") from None
    if path.suffix == ".json":
        try:
            prompts = json.loads(text)
        except json.JSONDecodeError as error:
            raise LogError(f"{path} is not valid JSON (line {error.lineno}): {error.msg}.") from None
        if not isinstance(prompts, list):
            raise LogError(f"{path} must hold a JSON list of prompts (strings).")
        return list(enumerate(prompts, start=1))
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise LogError(f"Line {number} of {path} is not valid JSON: {error.msg} (column {error.colno}).") from None
    return items


def record(item: dict | str, line: int) -> Record:
    """One request (a dict in any of the shapes above, or a prompt string) as a `Record`."""
    if isinstance(item, str):
        item = {"prompt": item}
    if not isinstance(item, dict):
        raise LogError(f"Line {line}: a request is a JSON object (or a prompt string), not {type(item).__name__}.")
    if "prompt" in item:
        if not isinstance(item["prompt"], str) or not item["prompt"]:
            raise LogError(f"Line {line}: \"prompt\" must be a non-empty string.")
        shape, parts = "prompt", (Part("prompt", item["prompt"]),)
    elif "messages" in item:
        shape = "anthropic" if "system" in item or _has_cache_control(item) else "openai"
        parts = _chat_parts(item, line)
    else:
        raise LogError(f"Line {line}: a request needs \"messages\" (OpenAI or Anthropic shape) or \"prompt\".")
    usage = item.get("usage") or {}
    return Record(line, shape, parts, _timestamp(item.get("timestamp"), line), _reported_cached(usage),
                  int(usage.get("completion_tokens") or usage.get("output_tokens") or 0))


def _chat_parts(item: dict, line: int) -> tuple[Part, ...]:
    messages = item["messages"]
    if not isinstance(messages, list) or not messages:
        raise LogError(f"Line {line}: \"messages\" must be a non-empty list.")
    parts = []
    if item.get("tools"):
        parts.append(Part("tools", json.dumps(item["tools"], ensure_ascii=False), cache_control=_tools_mark(item["tools"])))
    if "system" in item:
        parts.extend(_content_parts("system", "system", item["system"], line))
    for message in messages:
        if not isinstance(message, dict) or "role" not in message:
            raise LogError(f"Line {line}: each message needs a \"role\" and \"content\".")
        kind = "system" if message["role"] in ("system", "developer") else "message"
        parts.extend(_content_parts(kind, message["role"], message.get("content") or "", line))
    return tuple(parts)


def _content_parts(kind: str, role: str, content, line: int) -> list[Part]:
    """A system prompt or message: one part for a string, one per block for a list of blocks."""
    if isinstance(content, str):
        return [Part(kind, content, role)]
    if not isinstance(content, list):
        raise LogError(f"Line {line}: a {role} content is a string or a list of blocks.")
    return [Part(kind, _block_text(block), role, _mark(block)) for block in content]


def _block_text(block) -> str:
    """A content block's text: its "text", or the block itself as JSON (tool calls and results)."""
    if isinstance(block, dict) and block.get("type") == "text":
        return str(block.get("text", ""))
    if isinstance(block, dict):
        return json.dumps({k: v for k, v in block.items() if k != "cache_control"}, ensure_ascii=False)
    return str(block)


def _mark(block) -> str | None:
    """The block's Anthropic breakpoint lifetime ("5m" or "1h"), or None."""
    control = block.get("cache_control") if isinstance(block, dict) else None
    if not control:
        return None
    return "1h" if control.get("ttl") == "1h" else "5m"


def _tools_mark(tools) -> str | None:
    """A breakpoint on the last tool marks the whole tool list."""
    return _mark(tools[-1]) if isinstance(tools, list) and tools else None


def _has_cache_control(item: dict) -> bool:
    return "cache_control" in json.dumps(item.get("messages", []))


def _timestamp(value, line: int) -> float | None:
    """Seconds since the epoch from an ISO 8601 string or a number; None when the line has none."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise LogError(f"Line {line}: timestamp {value!r} is not ISO 8601 (e.g. 2026-03-15T09:00:47Z).") from None
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)).timestamp()
    raise LogError(f"Line {line}: a timestamp is an ISO 8601 string or a number of seconds.")


def _reported_cached(usage: dict) -> int | None:
    """Cached prompt tokens as the provider reported them (OpenAI's cached_tokens, Anthropic's cache reads)."""
    if "cache_read_input_tokens" in usage:
        return int(usage["cache_read_input_tokens"] or 0)
    details = usage.get("prompt_tokens_details") or {}
    return int(details["cached_tokens"]) if "cached_tokens" in details else None


def _relative_times(records: list[Record]) -> list[Record]:
    """Timestamps as seconds after the first request; a log without any keeps None."""
    stamps = [r.at_s for r in records if r.at_s is not None]
    if not stamps:
        return records
    if len(stamps) != len(records):
        missing = next(r.line for r in records if r.at_s is None)
        raise LogError(f"Line {missing} has no timestamp but others do: give every request one, or none.")
    first = stamps[0]
    for before, after in zip(records, records[1:]):
        if after.at_s < before.at_s:
            raise LogError(f"Line {after.line} is earlier than line {before.line}: sort the log by time.")
    return [Record(r.line, r.shape, r.parts, r.at_s - first, r.reported_cached, r.output_tokens) for r in records]
