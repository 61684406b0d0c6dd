"""A logged request rendered as the provider renders it: parts in order, each a piece of text with its kind.

A provider caches the bytes of the prefix it renders, so every piece of a request that it renders is a part,
in its render order: the tool list, the system prompt, `tool_choice`, then the conversation. Anthropic's page
names that order ("tools → system → messages") and says "changes to tool_choice ... invalidate message
blocks" (https://platform.claude.com/docs/en/build-with-claude/prompt-caching, "What invalidates the cache",
read 2026-12-06): so `tool_choice` sits after the system prompt and before the first message. OpenAI does not
say where it renders `tool_choice`; we assume the same place (after the tools and any top-level system prompt
or `instructions`, before the messages).

Inside the conversation each block is a part of its own kind:

| kind | from | text |
|---|---|---|
| `message` | a text block or string content | the text |
| `system` | a system or developer message, `system`, `instructions` | the text |
| `tool_call` | OpenAI `tool_calls[]`, Anthropic `tool_use`, Responses `function_call`, Gemini `functionCall` | `name(arguments)`: OpenAI's arguments string exactly as logged (it is JSON *text*), Anthropic's `input` object as JSON in its logged key order |
| `tool_result` | OpenAI `role: tool`, Anthropic `tool_result`, Responses `function_call_output`, Gemini `functionResponse` | the result's text (blocks joined; Gemini's `response` as JSON) |
| `thinking` | Anthropic `thinking` / `redacted_thinking`, litellm `thinking_blocks`, Responses `reasoning`, Gemini `thought` parts | the thinking text and its signature (or the redacted data) |
| `image` | any image or file block | `[image MEDIA sha256:HASH]`: a changed image differs, an unchanged one matches |

Gemini (https://ai.google.dev/api/generate-content, read 2026-12-06) renders `tools`, `systemInstruction`,
`toolConfig` (as `tool_choice`), then `contents`; a part's `thoughtSignature` is kept in its text, since dropping
it changes what is sent.

Call ids (`tool_call_id`, `tool_use_id`) are left out of the text: the model makes them and the app sends them
back unchanged (assumed; a relay that rewrote them would go unseen).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from ..errors import WorkbookError

PartKind = Literal["tools", "system", "tool_choice", "message", "tool_call", "tool_result", "thinking", "image",
                   "prompt"]
STATIC_MESSAGE_ROLES = ("system", "developer")  # messages that carry instructions: rendered as `system` parts


class LogError(WorkbookError):
    """A log line the doctor cannot read; the message names the line."""


@dataclass(frozen=True)
class Part:
    """One piece of a rendered request (see the table above), or a whole prompt from a log of rendered prompts.
    `role` is the message's role; `cache_control` an Anthropic breakpoint's lifetime ("5m" or "1h")."""

    kind: PartKind
    text: str
    role: str = ""
    cache_control: str | None = None


def full_text(parts: list[Part]) -> str:
    """The request's text, parts joined in order (the doctor measures character positions in this)."""
    return "".join(part.text for part in parts)


def part_at(parts: list[Part], char: int) -> tuple[int, int]:
    """(index of the part holding character `char` of `full_text(parts)`, offset inside that part)."""
    start = 0
    for i, part in enumerate(parts):
        if char < start + len(part.text):
            return i, char - start
        start += len(part.text)
    return len(parts) - 1, len(parts[-1].text) if parts else 0


# ----- the pieces every shape shares ---------------------------------------------------------------------------

def dumps(value) -> str:
    """JSON text with keys in the order they were logged (the provider caches them in the order sent)."""
    return json.dumps(value, ensure_ascii=False)


def mark(block) -> str | None:
    """The block's Anthropic breakpoint lifetime ("5m" or "1h"), or None."""
    control = block.get("cache_control") if isinstance(block, dict) else None
    if not control:
        return None
    return "1h" if isinstance(control, dict) and control.get("ttl") == "1h" else "5m"


def tools_part(tools) -> Part:
    """The tool list as JSON text; a breakpoint on the last tool marks the whole list."""
    last = tools[-1] if isinstance(tools, list) and tools else None
    return Part("tools", dumps(tools), cache_control=mark(last))


def tool_choice_part(choice) -> Part:
    return Part("tool_choice", choice if isinstance(choice, str) else dumps(choice))


def tool_call(name, arguments, role: str = "assistant", cache_control: str | None = None) -> Part:
    """A tool call as `name(arguments)`; a string of arguments is kept byte for byte, an object written as JSON."""
    text = arguments if isinstance(arguments, str) else dumps(arguments if arguments is not None else {})
    return Part("tool_call", f"{name}({text})", role, cache_control)


def image(media: str, data, detail: str | None = None, cache_control: str | None = None, role: str = "user") -> Part:
    """A placeholder naming the media type and a short hash of the data (or URL or file id)."""
    digest = hashlib.sha256(str(data).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    extra = f" detail={detail}" if detail else ""
    return Part("image", f"[image {media}{extra} sha256:{digest}]", role, cache_control)


def data_url_media(url: str) -> str:
    """The media type of a data: URL ('data:image/png;base64,...'), or 'url' for a link."""
    if isinstance(url, str) and url.startswith("data:"):
        return url[5:].split(";", 1)[0].split(",", 1)[0] or "data"
    return "url"


def text_of(content) -> str:
    """The text of a tool result or similar content: a string, or its text blocks joined (other blocks as JSON)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block_text(block) for block in content)
    return dumps(content)


def block_text(block) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, dict):
        if "text" in block and block.get("type") in (None, "text", "input_text", "output_text"):
            return str(block["text"])
        if block.get("type") in ("image", "image_url", "input_image", "document", "input_file", "file"):
            return image_block(block).text
        return dumps({k: v for k, v in block.items() if k != "cache_control"})
    return str(block)


# ----- content blocks (OpenAI Chat, Anthropic Messages, Responses) -----------------------------------------------

def content_parts(kind: str, role: str, content, line: int) -> list[Part]:
    """A system prompt or message: one part for a string, one per block for a list of blocks."""
    if content is None:
        return [Part(kind, "", role)]
    if isinstance(content, str):
        return [Part(kind, content, role)]
    if not isinstance(content, list):
        raise LogError(f"Line {line}: a {role} content is a string or a list of blocks, not {type(content).__name__}.")
    return [block_part(kind, role, block, line) for block in content]


def block_part(kind: str, role: str, block, line: int) -> Part:
    """One content block of any of the three shapes as a part of its kind."""
    if not isinstance(block, dict):
        return Part(kind, str(block), role)
    kind_of = block.get("type")
    cache = mark(block)
    if kind_of in ("text", "input_text", "output_text", None) and "text" in block:
        return Part(kind, str(block["text"]), role, cache)
    if kind_of in ("image", "image_url", "input_image", "document", "input_file", "file"):
        return image_block(block, role)
    if kind_of == "tool_use":
        return tool_call(block.get("name", ""), block.get("input"), role, cache)
    if kind_of == "tool_result":
        prefix = "[error] " if block.get("is_error") else ""
        return Part("tool_result", prefix + text_of(block.get("content")), role, cache)
    if kind_of in ("thinking", "redacted_thinking"):
        return thinking(block, role)
    if kind_of == "refusal":
        return Part(kind, str(block.get("refusal", "")), role, cache)
    return Part(kind, dumps({k: v for k, v in block.items() if k != "cache_control"}), role, cache)


def image_block(block: dict, role: str = "user") -> Part:
    """An image (or a document or file) block of any shape as a placeholder part."""
    cache = mark(block)
    source = block.get("source")
    if isinstance(source, dict):  # Anthropic: {"type": "base64", "media_type", "data"} or {"type": "url", "url"}
        media = source.get("media_type") or source.get("type", "source")
        return image(media, source.get("data") or source.get("url") or source.get("file_id") or dumps(source),
                     cache_control=cache, role=role)
    url = block.get("image_url")
    detail = block.get("detail")
    if isinstance(url, dict):  # OpenAI Chat: {"type": "image_url", "image_url": {"url", "detail"}}
        url, detail = url.get("url"), url.get("detail")
    if url:
        return image(data_url_media(url), url, detail, cache, role)
    data = block.get("file_data") or block.get("file_id") or block.get("file") or dumps(block)
    media = data_url_media(data) if isinstance(data, str) else "file"
    return image(media if media != "url" else "file", data, detail, cache, role)


def thinking(block: dict, role: str = "assistant") -> Part:
    """A thinking block with its signature (or a redacted one's data): dropping it changes the history."""
    if block.get("type") == "redacted_thinking":
        return Part("thinking", str(block.get("data", "")), role, mark(block))
    text = str(block.get("thinking", ""))
    signature = block.get("signature")
    return Part("thinking", text + (f"\n[signature {signature}]" if signature else ""), role, mark(block))


# ----- whole request bodies ----------------------------------------------------------------------------------------

def chat_parts(item: dict, line: int) -> tuple[Part, ...]:
    """An OpenAI Chat Completions or Anthropic Messages request: tools, top-level system, tool_choice, messages."""
    messages = item["messages"]
    if not isinstance(messages, list) or not messages:
        raise LogError(f"Line {line}: \"messages\" must be a non-empty list.")
    parts = head_parts(item.get("tools"), item.get("system"), item.get("tool_choice"), line)
    for message in messages:
        parts.extend(message_parts(message, line))
    return tuple(parts)


def head_parts(tools, system, tool_choice, line: int) -> list[Part]:
    """What comes before the conversation: the tool list, the system prompt (string or blocks), tool_choice."""
    parts = [tools_part(tools)] if tools else []
    if system is not None:
        parts.extend(content_parts("system", "system", system, line))
    if tool_choice is not None:
        parts.append(tool_choice_part(tool_choice))
    return parts


def message_parts(message, line: int) -> list[Part]:
    """One chat message: its thinking blocks, its content, then its tool calls (OpenAI) or a tool result."""
    if not isinstance(message, dict) or "role" not in message:
        raise LogError(f"Line {line}: each message needs a \"role\" and \"content\".")
    role, content = message["role"], message.get("content")
    if role in ("tool", "function"):
        return [Part("tool_result", text_of(content), role, mark(message))]
    kind = "system" if role in STATIC_MESSAGE_ROLES else "message"
    parts = [thinking(block, role) for block in message.get("thinking_blocks") or []]  # litellm's assistant turns
    calls = message.get("tool_calls") or []
    if content not in (None, "", []) or not calls:
        parts.extend(content_parts(kind, role, content if content is not None else "", line))
    for call in calls:
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        parts.append(tool_call(function.get("name", ""), function.get("arguments", ""), role))
    return parts


def responses_parts(item: dict, line: int) -> tuple[Part, ...]:
    """An OpenAI Responses request: tools, instructions, tool_choice, then `input` (a string or a list of items)."""
    parts = head_parts(item.get("tools"), item.get("instructions"), item.get("tool_choice"), line)
    given = item.get("input")
    if isinstance(given, str):
        parts.append(Part("message", given, "user"))
    elif isinstance(given, list):
        for entry in given:
            parts.extend(response_item(entry, line))
    elif given is not None:
        raise LogError(f"Line {line}: \"input\" is a string or a list of items, not {type(given).__name__}.")
    if not parts:
        raise LogError(f"Line {line}: a Responses request needs \"input\" or \"instructions\".")
    return tuple(parts)


def response_item(entry, line: int) -> list[Part]:
    """One item of a Responses `input` list."""
    if isinstance(entry, str):
        return [Part("message", entry, "user")]
    if not isinstance(entry, dict):
        raise LogError(f"Line {line}: an input item is an object, not {type(entry).__name__}.")
    kind_of = entry.get("type", "message")
    if kind_of == "message" or "role" in entry and kind_of not in RESPONSE_ITEMS:
        role = entry.get("role", "user")
        return content_parts("system" if role in STATIC_MESSAGE_ROLES else "message", role, entry.get("content"), line)
    return [RESPONSE_ITEMS.get(kind_of, other_item)(entry)]


def other_item(entry: dict) -> Part:
    """An item the doctor has no kind for (a web search call, say): its JSON, so a change still shows."""
    return Part("message", dumps(entry), entry.get("type", ""))


def reasoning_item(entry: dict) -> Part:
    summary = "".join(block_text(s) for s in entry.get("summary") or [])
    sealed = entry.get("encrypted_content")
    return Part("thinking", summary + (f"\n[encrypted {sealed}]" if sealed else ""), "assistant")


RESPONSE_ITEMS = {
    "function_call": lambda e: tool_call(e.get("name", ""), e.get("arguments", "")),
    "custom_tool_call": lambda e: tool_call(e.get("name", ""), e.get("input", "")),
    "function_call_output": lambda e: Part("tool_result", text_of(e.get("output")), "tool"),
    "custom_tool_call_output": lambda e: Part("tool_result", text_of(e.get("output")), "tool"),
    "reasoning": reasoning_item,
}


# ----- Gemini generateContent --------------------------------------------------------------------------------------

def gemini_parts(item: dict, line: int) -> tuple[Part, ...]:
    """A Gemini request: tools, systemInstruction (a string or a Content), toolConfig, then contents."""
    contents = item["contents"]
    if not isinstance(contents, list) or not contents:
        raise LogError(f"Line {line}: \"contents\" must be a non-empty list.")
    system = item.get("systemInstruction", item.get("system_instruction"))
    parts = [tools_part(item["tools"])] if item.get("tools") else []
    if isinstance(system, dict):
        parts.extend(gemini_part(piece, "system", "system") for piece in system.get("parts") or [])
    elif system is not None:
        parts.append(Part("system", str(system), "system"))
    if item.get("toolConfig") is not None:
        parts.append(tool_choice_part(item["toolConfig"]))
    for content in contents:
        if not isinstance(content, dict):
            raise LogError(f"Line {line}: each of \"contents\" is an object with \"role\" and \"parts\".")
        role = content.get("role", "user")
        parts.extend(gemini_part(piece, "message", role) for piece in content.get("parts") or [])
    return tuple(parts)


def gemini_part(piece, kind: str, role: str) -> Part:
    """One Gemini part as a part of its kind, its thoughtSignature kept."""
    if not isinstance(piece, dict):
        return Part(kind, str(piece), role)
    signature = f"\n[signature {piece['thoughtSignature']}]" if piece.get("thoughtSignature") else ""
    if "functionCall" in piece:
        call = piece["functionCall"] or {}
        found = tool_call(call.get("name", ""), call.get("args"), role)
    elif "functionResponse" in piece:
        found = Part("tool_result", dumps((piece["functionResponse"] or {}).get("response")), role)
    elif "inlineData" in piece or "fileData" in piece:
        data = piece.get("inlineData") or piece.get("fileData") or {}
        found = image(data.get("mimeType", "file"), data.get("data") or data.get("fileUri"), role=role)
    elif "text" in piece:
        found = Part("thinking" if piece.get("thought") else kind, str(piece["text"]), role)
    else:
        found = Part(kind, dumps(piece), role)
    return Part(found.kind, found.text + signature, found.role) if signature else found
