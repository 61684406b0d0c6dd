"""Reading request logs, one request at a time: OpenAI and Anthropic requests (JSONL), proxy exports, or prompts.

Each line of a JSONL log (`.jsonl`, or compressed: `.jsonl.gz`, `.jsonl.xz`) is one request as it was sent,
optionally with `"timestamp"` (ISO 8601 or seconds) and the provider's `"usage"`. The shape is recognised per line:

| shape | recognised by | renders (see `parts`) | usage read |
|---|---|---|---|
| OpenAI Chat Completions | `messages` (system/developer/tool roles, `tool_calls`) | `tools`, `tool_choice`, messages | `prompt_tokens` (all), `prompt_tokens_details.cached_tokens`, `completion_tokens` |
| Anthropic Messages | `messages` with `system`, or Anthropic blocks (`tool_use`, `tool_result`, `thinking`, `cache_control`) | `tools`, `system` (string or blocks), `tool_choice`, messages | `input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens` (all), the reads, the writes and their `cache_creation.ephemeral_1h_input_tokens`, `output_tokens` |
| OpenAI Responses | `input` or `instructions` | `tools`, `instructions`, `tool_choice`, `input` (a string or items) | `input_tokens` (all), `input_tokens_details.cached_tokens`, `output_tokens` |
| Gemini generateContent | `contents` | `tools`, `systemInstruction`, `toolConfig`, `contents` | `usageMetadata`: `promptTokenCount` (all), `cachedContentTokenCount`, `candidatesTokenCount` |
| litellm, Langfuse, OpenTelemetry GenAI exports | see `proxies` | the request inside | mapped to the fields above |
| a rendered prompt | `prompt`, or a `.json` list of strings | the prompt | — |

Sources, read 2026-12-06: https://platform.openai.com/docs/guides/prompt-caching ("cached_tokens" inside
"prompt_tokens_details"; `prompt_cache_key`), https://platform.openai.com/docs/api-reference/responses
(`input_tokens_details.cached_tokens`), https://ai.google.dev/api/generate-content (`usageMetadata`),
https://platform.claude.com/docs/en/build-with-claude/prompt-caching
("total_input_tokens = cache_read_input_tokens + cache_creation_input_tokens + input_tokens"; the
`cache_creation` object's `ephemeral_5m_input_tokens` and `ephemeral_1h_input_tokens`).

Top-level fields no shape uses (`temperature`, `metadata`, a logged `response`, ...) are kept in
`Record.extra` as JSON text, never dropped. `iter_records` reads a JSONL file line by line, so a log of any
size streams; a `.json` file (a list, or an export's `{"data": [...]}`) is read whole.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import lzma
import os
import pickle
import tempfile
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

from .parts import LogError, Part, chat_parts, gemini_parts, responses_parts
from .proxies import unwrap

__all__ = ["LogError", "Record", "Reread", "iter_items", "iter_records", "read_log", "record"]

COMPRESSED = {".gz": gzip.open, ".xz": lzma.open}  # read line by line as they decompress
ANTHROPIC_BLOCKS = {"tool_use", "tool_result", "thinking", "redacted_thinking"}
USED = {"prompt", "messages", "system", "tools", "tool_choice", "input", "instructions", "timestamp", "usage", "model",
        "prompt_cache_key", "provider", "contents", "systemInstruction", "system_instruction", "toolConfig",
        "usageMetadata"}


@dataclass(frozen=True)
class Record:
    """One logged request: its rendered parts, when it was sent, what it asked for and what the provider reported."""

    line: int  # 1-based line (or list position) in the log
    shape: str  # "openai", "anthropic", "responses", "gemini" or "prompt": the request body's shape
    parts: tuple[Part, ...]
    at_s: float | None = None  # seconds after the log's first timestamp
    reported_cached: int | None = None  # cached tokens the provider reported (cache reads)
    output_tokens: int = 0
    model: str | None = None  # the request's "model"
    cache_key: str | None = None  # OpenAI's prompt_cache_key
    reported_input: int | None = None  # every prompt token, cached or not, as reported
    reported_written: int | None = None  # Anthropic's cache_creation_input_tokens
    reported_written_1h: int | None = None  # the part of them written with the 1-hour lifetime
    provider: str | None = None  # "openai", "anthropic", "gemini", or None (a rendered prompt, an unknown model)
    extra: tuple[tuple[str, str], ...] = ()  # top-level fields no shape uses: (name, JSON text)


def read_log(source: str | Path | Iterable[dict | str]) -> list[Record]:
    """Every record of a log (see `iter_records`), in a list."""
    return list(iter_records(source))


class Reread:
    """A log file read afresh each time it is iterated: passes over a log too big to hold in memory. The first reading
    to the end also writes each record, pickled, to a spool file in the temporary folder; later readings load the
    spool instead of parsing the JSON again (about five times faster). `close()` deletes the spool."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.spool: Path | None = None  # set once a reading has written it whole

    def __iter__(self) -> Iterator[Record]:
        return self._spooled(self.spool) if self.spool else self._parsed()

    def _parsed(self) -> Iterator[Record]:
        handle, name = tempfile.mkstemp(prefix="doctor-", suffix=".records")
        whole = False
        try:
            with os.fdopen(handle, "wb") as spool:
                for record in iter_records(self.path):
                    pickle.dump(record, spool, protocol=pickle.HIGHEST_PROTOCOL)
                    yield record
            whole = True
        finally:
            if whole and self.spool is None:
                self.spool = Path(name)
                self._remove = weakref.finalize(self, os.remove, name)  # at the latest when this log is dropped
            else:
                os.remove(name)

    @staticmethod
    def _spooled(path: Path) -> Iterator[Record]:
        with path.open("rb") as spool:
            while True:
                try:
                    yield pickle.load(spool)
                except EOFError:
                    return

    def close(self) -> None:
        """Delete the spool, if a reading wrote one."""
        if self.spool is not None:
            self._remove()
            self.spool = None


def is_file(source) -> bool:
    """Whether `source` names a log file (rather than holding requests)."""
    return isinstance(source, Path) or (isinstance(source, str) and source.endswith((".jsonl", ".json", *COMPRESSED)))


def iter_records(source: str | Path | Iterable[dict | str]) -> Iterator[Record]:
    """Records, one at a time, from a JSONL path, a JSON list of prompts, or an iterable of request dicts or prompt
    strings; times become seconds after the first record's timestamp."""
    first = previous = None
    for line, item in iter_items(source):
        current = record(item, line)
        if previous is None:
            first = current
        elif (current.at_s is None) != (first.at_s is None):
            missing = current.line if current.at_s is None else first.line
            raise LogError(f"Line {missing} has no timestamp but others do: give every request one, or none.")
        elif current.at_s is not None and current.at_s < previous.at_s:
            raise LogError(f"Line {current.line} is earlier than line {previous.line}: sort the log by time.")
        previous = current
        yield current if current.at_s is None else replace(current, at_s=current.at_s - first.at_s)
    if previous is None:
        raise LogError("The log holds no requests.")


def iter_items(source: str | Path | Iterable[dict | str]) -> Iterator[tuple[int, dict | str]]:
    """(line, request as logged) for each request of a log, one at a time, before any reading of its shape."""
    if is_file(source):
        return _file_items(Path(source))
    if isinstance(source, str):
        raise LogError(f"{source!r} is not a .jsonl or .json file. Give a path, or a list of requests.")
    return enumerate(source, start=1)


def _file_items(path: Path) -> Iterator[tuple[int, dict | str]]:
    if not path.is_file():
        raise LogError(f"No log at {path}.")
    if path.suffix == ".json":
        yield from _json_items(path)
        return
    opener = COMPRESSED.get(path.suffix, open)
    with opener(path, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise LogError(f"{path} is not UTF-8 text (line {number}, byte {error.start}): save the log as "
                               "UTF-8.") from None
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as error:
                raise LogError(f"Line {number} of {path} is not valid JSON: {error.msg} "
                               f"(column {error.colno}).") from None


def _json_items(path: Path) -> Iterator[tuple[int, dict | str]]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise LogError(f"{path} is not UTF-8 text (byte {error.start}): save the log as UTF-8.") from None
    except json.JSONDecodeError as error:
        raise LogError(f"{path} is not valid JSON (line {error.lineno}): {error.msg}.") from None
    if isinstance(items, dict) and isinstance(items.get("data"), list):
        items = items["data"]  # an export page: Langfuse's and litellm's APIs wrap their rows so
    if not isinstance(items, list):
        raise LogError(f"{path} must hold a JSON list of prompts (strings) or requests.")
    yield from enumerate(items, start=1)


def record(item: dict | str, line: int) -> Record:
    """One request (a dict in any of the shapes above, or a prompt string) as a `Record`."""
    if isinstance(item, str):
        item = {"prompt": item}
    if not isinstance(item, dict):
        raise LogError(f"Line {line}: a request is a JSON object (or a prompt string), not {type(item).__name__}.")
    request, wrapper, parts = unwrap(item, line)
    if parts is not None:
        shape = "openai" if request.get("provider") != "anthropic" else "anthropic"
    else:
        shape, parts = _render(request, line)
    model = request.get("model") if isinstance(request.get("model"), str) else None
    extra = {**wrapper, **{k: v for k, v in request.items() if k not in USED}}
    return Record(line, shape, parts, _timestamp(request.get("timestamp"), line), model=model,
                  cache_key=request.get("prompt_cache_key"), provider=_provider(shape, model, request.get("provider")),
                  extra=tuple((k, json.dumps(v, ensure_ascii=False, default=str)) for k, v in extra.items()),
                  **_usage(request.get("usage") or _gemini_usage(request.get("usageMetadata")), line))


def _render(item: dict, line: int) -> tuple[str, tuple[Part, ...]]:
    if "prompt" in item:
        if not isinstance(item["prompt"], str) or not item["prompt"]:
            raise LogError(f"Line {line}: \"prompt\" must be a non-empty string.")
        return "prompt", (Part("prompt", item["prompt"]),)
    if "messages" in item:
        return _chat_shape(item), chat_parts(item, line)
    if "input" in item or "instructions" in item:
        return "responses", responses_parts(item, line)
    if "contents" in item:
        return "gemini", gemini_parts(item, line)
    raise LogError(f"Line {line}: a request needs \"messages\" (OpenAI Chat or Anthropic), \"input\" (OpenAI "
                   "Responses), \"contents\" (Gemini) or \"prompt\"; proxy exports from litellm, Langfuse and "
                   "OpenTelemetry are read too.")


def _chat_shape(item: dict) -> str:
    """"anthropic" for a top-level system prompt or Anthropic's blocks; "openai" for OpenAI's roles and tool calls."""
    if "system" in item:
        return "anthropic"
    messages = item["messages"] if isinstance(item["messages"], list) else []
    if any(isinstance(m, dict) and (m.get("role") in ("system", "developer", "tool") or m.get("tool_calls"))
           for m in messages):
        return "openai"
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(b, dict) and (b.get("type") in ANTHROPIC_BLOCKS or
                                                                      "cache_control" in b) for b in content):
            return "anthropic"
    return "openai"


def _provider(shape: str, model: str | None, named=None) -> str | None:
    """Whose cache served the request: the shape says so, except that the Chat Completions shape is spoken by
    proxies for every provider, so there the model's name decides (a name we do not know: OpenAI's)."""
    name = str(named or model or "").lower()
    if shape == "gemini":
        return "gemini"
    if shape == "anthropic" or "claude" in name or name.startswith("anthropic"):
        return "anthropic"
    if "gemini" in name or name.startswith(("google", "vertex")):
        return "gemini"
    return None if shape == "prompt" else "openai"


def _usage(usage, line: int) -> dict:
    """Record fields from a usage object (see the table above)."""
    if not usage:
        return {}
    if not isinstance(usage, dict):
        raise LogError(f"Line {line}: \"usage\" is an object of token counts, not {type(usage).__name__}.")
    try:
        read, written = _count(usage, "cache_read_input_tokens"), _count(usage, "cache_creation_input_tokens")
        split = usage.get("cache_creation") if isinstance(usage.get("cache_creation"), dict) else {}
        written_5m, written_1h = _count(split, "ephemeral_5m_input_tokens"), _count(split, "ephemeral_1h_input_tokens")
        if written is None and (written_5m is not None or written_1h is not None):
            written = (written_5m or 0) + (written_1h or 0)
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        cached = _count(details, "cached_tokens") if isinstance(details, dict) else None
        if "prompt_tokens" in usage:
            given = _count(usage, "prompt_tokens")
        elif "input_tokens" in usage and (read is not None or written is not None):  # Anthropic: uncached only
            given = _count(usage, "input_tokens") + (read or 0) + (written or 0)
        else:
            given = _count(usage, "input_tokens")
        output = _count(usage, "completion_tokens") or _count(usage, "output_tokens") or 0
    except (TypeError, ValueError):
        raise LogError(f"Line {line}: \"usage\" holds a count that is not a number: {usage}.") from None
    return {"reported_cached": cached if cached is not None else read, "reported_input": given,
            "reported_written": written, "reported_written_1h": written_1h, "output_tokens": output}


def _gemini_usage(metadata) -> dict | None:
    """Gemini's usageMetadata in OpenAI's names: promptTokenCount counts every prompt token, cached ones included."""
    if not isinstance(metadata, dict) or "promptTokenCount" not in metadata:
        return None
    usage = {"prompt_tokens": metadata["promptTokenCount"],
             "completion_tokens": metadata.get("candidatesTokenCount") or 0}
    if "cachedContentTokenCount" in metadata:
        usage["prompt_tokens_details"] = {"cached_tokens": metadata["cachedContentTokenCount"]}
    return usage


def _count(fields: dict, name: str) -> int | None:
    value = fields.get(name)
    return None if value is None else int(value)


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
            try:
                return float(value)
            except ValueError:
                raise LogError(f"Line {line}: timestamp {value!r} is not ISO 8601 "
                               "(e.g. 2026-03-15T09:00:47Z).") from None
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)).timestamp()
    raise LogError(f"Line {line}: a timestamp is an ISO 8601 string or a number of seconds.")
