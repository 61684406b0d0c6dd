"""Proxy and tracing exports: the request inside each record, with its time, model and usage, in the shapes
`logs` reads. Fields the mapping does not use stay with the record (`Record.extra`), never dropped.

| export | recognised by | request | time | usage | source (read 2026-12-06) |
|---|---|---|---|---|---|
| litellm spend log (a `LiteLLM_SpendLogs` row, `/spend/logs`) | `request_id` with `spend` or `call_type` | `proxy_server_request` when it holds the request body, else `messages` (a list, or its JSON text); the row's `model` (the deployment that served it; the body's, a router alias, kept as `requested_model`) | `startTime` | `metadata.usage_object` (litellm's OpenAI-style usage with its cache fields), else `prompt_tokens`, `completion_tokens` | https://docs.litellm.ai/docs/proxy/ui_logs, https://docs.litellm.ai/docs/proxy/cost_tracking |
| litellm `StandardLoggingPayload` (bare, or under `standard_logging_object`) | `call_type` with `response_cost` | `messages`, with `model_parameters` (tools, tool_choice, ...) | `startTime` (seconds) | as above | https://docs.litellm.ai/docs/proxy/logging_spec |
| Langfuse observation (`GENERATION`) | `traceId` and `type` | `input`: a message list, a request object, or a string | `startTime` | `usageDetails` (Langfuse: "usage types that include the string input" are input; `usage` {input, output} in older exports) | https://langfuse.com/docs/model-usage-and-cost, the public API's Observation |
| OpenTelemetry GenAI span | `gen_ai.*` attributes (a dict, or OTLP's `[{"key", "value"}]`) | `gen_ai.tool.definitions`, `gen_ai.system_instructions`, `gen_ai.input.messages` (parts `text`, `tool_call`, `tool_call_response`, `reasoning`, `blob`/`uri`/`file`) | `startTimeUnixNano` or `start_time` | `gen_ai.usage.input_tokens` (cache reads "SHOULD be included" in it), `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`, `gen_ai.usage.output_tokens` | https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/ |

litellm's own `cache_hit` and `cache_key` are about litellm's response cache, not the provider's prompt cache:
they stay in `extra`. Langfuse's usage keys are free-form; we read keys holding both "input" and "cache_read"
or "cached" as cache reads and keys holding "cache_creation" or "cache_write" as writes (assumed: the names
Langfuse's OpenAI, Anthropic and LangChain integrations write).
"""

from __future__ import annotations

import json

from .parts import LogError, Part, dumps, image, thinking, tool_call, tools_part

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def unwrap(item: dict, line: int) -> tuple[dict, dict, tuple[Part, ...] | None]:
    """(the request in a shape `logs` reads, with "timestamp", "model", "usage" at its top; the wrapper's unused
    fields; parts already rendered, for a shape with no request body of its own) — or (item, {}, None)."""
    if isinstance(item.get("standard_logging_object"), dict):
        outer = {k: v for k, v in item.items() if k != "standard_logging_object"}
        request, extra, parts = litellm(item["standard_logging_object"], line)
        return request, {**outer, **extra}, parts
    spend_row = "request_id" in item and ("spend" in item or "call_type" in item)
    if spend_row or {"call_type", "response_cost"} <= item.keys():
        return litellm(item, line)
    if "traceId" in item and "type" in item and "input" in item:
        return langfuse(item, line)
    attributes = otel_attributes(item)
    if attributes is not None:
        return otel(item, attributes, line)
    return item, {}, None


def loads_if_text(value, line: int, name: str):
    """A field that exports store either as JSON or as JSON text."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise LogError(f"Line {line}: {name} is not valid JSON text: {error.msg}.") from None
    return value


# ----- litellm ---------------------------------------------------------------------------------------------------

LITELLM_USED = {"proxy_server_request", "messages", "model", "startTime", "model_parameters", *USAGE_KEYS}


def litellm(item: dict, line: int) -> tuple[dict, dict, None]:
    body = loads_if_text(item.get("proxy_server_request"), line, "proxy_server_request")
    if not (isinstance(body, dict) and ({"messages", "input", "prompt"} & body.keys())):
        messages = loads_if_text(item.get("messages"), line, "messages")
        if isinstance(messages, dict) and {"messages", "input", "prompt"} & messages.keys():
            body = messages  # some versions log the whole request body here
        elif isinstance(messages, list) and messages:
            body = {"messages": messages}
        else:
            raise LogError(f"Line {line}: this litellm log has no request body: turn on store_prompts_in_spend_logs "
                           "(litellm's general_settings) so its logs keep the messages.")
        body = {**(item.get("model_parameters") or {}), **body}
    metadata = loads_if_text(item.get("metadata"), line, "metadata") or {}
    usage = metadata.get("usage_object") if isinstance(metadata, dict) else None
    usage = usage or {k: item[k] for k in USAGE_KEYS if k in item}
    # The row's model is the deployment that served the request; the body's may be a router's alias for a group.
    request = {**body, "timestamp": item.get("startTime"), "usage": usage,
               "model": item.get("model") or body.get("model")}
    extra = {k: v for k, v in item.items() if k not in LITELLM_USED}
    if body.get("model") not in (None, request["model"]):
        extra["requested_model"] = body["model"]
    return request, extra, None


# ----- Langfuse ----------------------------------------------------------------------------------------------------

LANGFUSE_USED = {"input", "startTime", "model", "usageDetails", "usage", "modelParameters"}


def langfuse(item: dict, line: int) -> tuple[dict, dict, None]:
    if item.get("type") not in ("GENERATION", "generation"):
        raise LogError(f"Line {line}: a Langfuse {item.get('type')} observation is not a model call: export only "
                       "GENERATION observations.")
    given = item["input"]
    if isinstance(given, list):
        body = {"messages": given}
    elif isinstance(given, dict) and {"messages", "input", "prompt"} & given.keys():
        body = dict(given)
    elif isinstance(given, str):
        body = {"prompt": given}
    else:
        raise LogError(f"Line {line}: a Langfuse observation's input is a message list, a request or a string.")
    parameters = item.get("modelParameters") or {}
    body.update({k: parameters[k] for k in ("tools", "tool_choice") if k in parameters and k not in body})
    request = {**body, "timestamp": item.get("startTime"), "model": item.get("model") or body.get("model"),
               "usage": langfuse_usage(item.get("usageDetails") or item.get("usage") or {})}
    extra = {k: v for k, v in item.items() if k not in LANGFUSE_USED}
    if parameters:
        extra["modelParameters"] = {k: v for k, v in parameters.items() if k not in ("tools", "tool_choice")}
    return request, extra, None


def langfuse_usage(details: dict) -> dict:
    """Langfuse usage types as OpenAI-style usage: inputs summed as Langfuse sums them, cache reads and writes apart."""
    def total(test) -> int | None:
        values = [int(v) for k, v in details.items() if isinstance(v, (int, float)) and test(k.lower())]
        return sum(values) if values else None
    given = total(lambda k: "input" in k or k in ("prompttokens", "prompt_tokens"))
    if given is None:
        return {}
    usage = {"prompt_tokens": given, "completion_tokens": total(lambda k: "output" in k or "completion" in k) or 0}
    cached = total(lambda k: "input" in k and ("cache_read" in k or "cached" in k))
    written = total(lambda k: "cache_creation" in k or "cache_write" in k)
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if written is not None:
        usage["cache_creation_input_tokens"] = written
    return usage


# ----- OpenTelemetry GenAI -------------------------------------------------------------------------------------------

OTEL_TIME = ("startTimeUnixNano", "start_time_unix_nano", "start_time", "startTime", "timestamp")


def otel_attributes(item: dict) -> dict | None:
    """A span's attributes as a dict, when they include gen_ai.* keys; None otherwise."""
    attributes = item.get("attributes")
    if isinstance(attributes, list):  # OTLP JSON: [{"key": k, "value": {"stringValue": v}}]
        attributes = {a.get("key"): otlp_value(a.get("value")) for a in attributes if isinstance(a, dict)}
    if not isinstance(attributes, dict):
        return None
    return attributes if any(str(k).startswith("gen_ai.") for k in attributes) else None


def otlp_value(value):
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return int(value[key]) if key == "intValue" else value[key]
    if "arrayValue" in value:
        return [otlp_value(v) for v in value["arrayValue"].get("values", [])]
    return value


def otel(item: dict, attributes: dict, line: int) -> tuple[dict, dict, tuple[Part, ...]]:
    get = attributes.get
    messages = loads_if_text(get("gen_ai.input.messages"), line, "gen_ai.input.messages")
    if not isinstance(messages, list) or not messages:
        raise LogError(f"Line {line}: this span has no gen_ai.input.messages: turn on content capture "
                       "(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT) so spans carry the prompt.")
    system = loads_if_text(get("gen_ai.system_instructions"), line, "gen_ai.system_instructions")
    tools = loads_if_text(get("gen_ai.tool.definitions"), line, "gen_ai.tool.definitions")
    parts = [tools_part(tools)] if tools else []
    if system:
        parts.extend(otel_message_parts({"role": "system", "parts": system}, line) if isinstance(system, list)
                     else [Part("system", str(system), "system")])
    for message in messages:
        parts.extend(otel_message_parts(message, line))
    usage = {}
    if get("gen_ai.usage.input_tokens") is not None:
        usage = {"prompt_tokens": int(get("gen_ai.usage.input_tokens")),
                 "completion_tokens": int(get("gen_ai.usage.output_tokens") or 0)}
        if get("gen_ai.usage.cache_read.input_tokens") is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": int(get("gen_ai.usage.cache_read.input_tokens"))}
        if get("gen_ai.usage.cache_creation.input_tokens") is not None:
            usage["cache_creation_input_tokens"] = int(get("gen_ai.usage.cache_creation.input_tokens"))
    stamp = next((item[k] for k in OTEL_TIME if item.get(k) is not None), None)
    if stamp is not None and str(stamp).isdigit() and int(stamp) > 10**14:  # nanoseconds since the epoch
        stamp = int(stamp) / 1e9
    provider = get("gen_ai.provider.name") or get("gen_ai.system")
    request = {"timestamp": stamp, "model": get("gen_ai.request.model"), "usage": usage, "provider": provider}
    used = {"attributes", *OTEL_TIME}
    extra = {k: v for k, v in item.items() if k not in used}
    extra["attributes"] = {k: v for k, v in attributes.items() if k not in OTEL_USED}
    return request, extra, tuple(parts)


OTEL_USED = {"gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions", "gen_ai.request.model",
             "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens",
             "gen_ai.usage.cache_creation.input_tokens", "gen_ai.provider.name", "gen_ai.system"}


def otel_message_parts(message, line: int) -> list[Part]:
    """One message of gen_ai.input.messages: {"role", "parts": [...]}."""
    if not isinstance(message, dict) or "role" not in message:
        raise LogError(f"Line {line}: each gen_ai.input.messages entry needs a \"role\" and \"parts\".")
    role = message["role"]
    kind = "system" if role in ("system", "developer") else "message"
    out = []
    for piece in message.get("parts") or []:
        if not isinstance(piece, dict):
            out.append(Part(kind, str(piece), role))
            continue
        sort = piece.get("type")
        if sort == "text":
            out.append(Part(kind, str(piece.get("content", "")), role))
        elif sort == "tool_call":
            out.append(tool_call(piece.get("name", ""), piece.get("arguments"), role))
        elif sort == "tool_call_response":
            response = piece.get("response")
            out.append(Part("tool_result", response if isinstance(response, str) else dumps(response), role))
        elif sort == "reasoning":
            out.append(thinking({"type": "thinking", "thinking": piece.get("content", "")}, role))
        elif sort in ("blob", "uri", "file"):
            data = piece.get("content") or piece.get("uri") or piece.get("file_id")
            out.append(image(piece.get("mime_type") or piece.get("modality") or sort, data, role=role))
        else:
            out.append(Part(kind, dumps(piece), role))
    return out
