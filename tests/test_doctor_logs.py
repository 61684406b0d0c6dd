"""Reading logs (issue 28, item 2): everything the provider caches is rendered, in each shape the doctor reads.

Each request below is written from the shape's own documentation (the page is named beside it)."""

import gzip
import json
import lzma

import pytest

from workbook.doctor.logs import LogError, iter_records, read_log
from workbook.doctor.parts import full_text


def kinds(record):
    return [p.kind for p in record.parts]


# ----- OpenAI Chat Completions (platform.openai.com/docs/api-reference/chat/create) ------------------------------

def test_openai_tool_calls_render_name_and_arguments_text_as_logged_and_tool_results_follow():
    arguments = '{"order_id": "A1",  "verbose": true}'  # odd spacing: the bytes sent are what is cached
    (r,) = read_log([{"model": "gpt-5.5", "prompt_cache_key": "user-7", "tool_choice": "auto",
                      "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
                      "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                                   {"role": "assistant", "content": None, "tool_calls": [
                                       {"id": "call_1", "type": "function",
                                        "function": {"name": "lookup", "arguments": arguments}}]},
                                   {"role": "tool", "tool_call_id": "call_1", "content": "shipped"}],
                      "usage": {"prompt_tokens": 2006, "completion_tokens": 300,
                                "prompt_tokens_details": {"cached_tokens": 1920}}}])
    assert r.shape == "openai" and r.provider == "openai" and (r.model, r.cache_key) == ("gpt-5.5", "user-7")
    assert kinds(r) == ["tools", "tool_choice", "system", "message", "tool_call", "tool_result"]
    assert r.parts[4].text == f"lookup({arguments})" and r.parts[4].role == "assistant"
    assert r.parts[5].text == "shipped" and r.parts[1].text == "auto"
    assert (r.reported_input, r.reported_cached, r.output_tokens) == (2006, 1920, 300)


def test_reordered_arguments_change_the_rendered_text():
    def request(arguments):
        return {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]}]}
    a, b = read_log([request('{"a": 1, "b": 2}'), request('{"b": 2, "a": 1}')])
    assert full_text(list(a.parts)) != full_text(list(b.parts))


def test_images_are_placeholders_that_differ_when_the_image_does():
    def request(data):
        return {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}", "detail": "high"}}]}]}
    a, b, c = read_log([request("AAAA"), request("AAAA"), request("BBBB")])
    assert kinds(a) == ["message", "image"] and a.parts[1].text.startswith("[image image/png detail=high sha256:")
    assert a.parts[1].text == b.parts[1].text != c.parts[1].text
    assert "AAAA" not in a.parts[1].text  # a placeholder, not the bytes


# ----- Anthropic Messages (platform.claude.com/docs/en/api/messages, .../build-with-claude/prompt-caching) --------

def anthropic_turn(thinking=True):
    assistant = ([{"type": "thinking", "thinking": "Check the order.", "signature": "sig-abc"}] if thinking else [])
    assistant.append({"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"order_id": "A1", "x": 1}})
    return {"model": "claude-sonnet-4-5", "tool_choice": {"type": "auto"},
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "tools": [{"name": "lookup", "input_schema": {}, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                              {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j"}},
                              {"type": "text", "text": "Where is A1?"}]},
                         {"role": "assistant", "content": assistant},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content": [{"type": "text", "text": "shipped"}],
                                                       "cache_control": {"type": "ephemeral"}}]}],
            "usage": {"input_tokens": 50, "cache_read_input_tokens": 1800, "cache_creation_input_tokens": 248,
                      "cache_creation": {"ephemeral_5m_input_tokens": 48, "ephemeral_1h_input_tokens": 200},
                      "output_tokens": 90}}


def test_anthropic_renders_tools_system_tool_choice_then_blocks_with_their_breakpoints():
    (r,) = read_log([anthropic_turn()])
    assert r.shape == "anthropic" and r.provider == "anthropic"
    assert kinds(r) == ["tools", "system", "tool_choice", "image", "message", "thinking", "tool_call", "tool_result"]
    assert [p.cache_control for p in r.parts] == ["5m", "1h", None, None, None, None, None, "5m"]
    assert r.parts[5].text == "Check the order.\n[signature sig-abc]"
    assert r.parts[6].text == 'lookup({"order_id": "A1", "x": 1})' and r.parts[7].text == "shipped"
    assert r.parts[3].text.startswith("[image image/jpeg sha256:")


def test_anthropic_usage_total_is_the_sum_of_its_three_input_fields():
    # "total_input_tokens = cache_read_input_tokens + cache_creation_input_tokens + input_tokens"
    (r,) = read_log([anthropic_turn()])
    assert (r.reported_input, r.reported_cached, r.reported_written, r.reported_written_1h) == (2098, 1800, 248, 200)


def test_dropping_thinking_blocks_changes_the_history():
    kept, dropped = read_log([anthropic_turn(thinking=True), anthropic_turn(thinking=False)])
    assert "thinking" in kinds(kept) and "thinking" not in kinds(dropped)
    assert full_text(list(kept.parts)) != full_text(list(dropped.parts))


def test_a_system_prompt_as_a_string_and_as_blocks():
    a, b = read_log([{"system": "Be brief.", "messages": [{"role": "user", "content": "Q"}]},
                     {"system": [{"type": "text", "text": "Be brief."}], "messages": [{"role": "user", "content": "Q"}]}])
    assert [(p.kind, p.text) for p in a.parts] == [(p.kind, p.text) for p in b.parts] == [("system", "Be brief."),
                                                                                          ("message", "Q")]


def test_redacted_thinking_keeps_its_data():
    (r,) = read_log([{"system": "S", "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy"}, {"type": "text", "text": "A"}]}]}])
    assert [(p.kind, p.text) for p in r.parts[2:]] == [("thinking", "EmwKAhgBEgy"), ("message", "A")]


# ----- OpenAI Responses (platform.openai.com/docs/api-reference/responses/create) ---------------------------------

def test_a_responses_request_with_string_input():
    (r,) = read_log([{"model": "gpt-5.5", "instructions": "Be brief.", "input": "Hi", "prompt_cache_key": "k1",
                      "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024},
                                "output_tokens": 20}}])
    assert r.shape == "responses" and r.provider == "openai" and r.cache_key == "k1"
    assert [(p.kind, p.text) for p in r.parts] == [("system", "Be brief."), ("message", "Hi")]
    assert (r.reported_input, r.reported_cached, r.output_tokens) == (1200, 1024, 20)


def test_a_responses_request_with_items():
    (r,) = read_log([{"instructions": "S", "tool_choice": "required",
                      "tools": [{"type": "function", "name": "lookup", "parameters": {}}],
                      "input": [{"role": "user", "content": [{"type": "input_text", "text": "Where is A1?"},
                                                             {"type": "input_image", "image_url": "https://x/y.png"}]},
                                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
                                {"type": "function_call", "call_id": "c1", "name": "lookup",
                                 "arguments": "{\"order_id\":\"A1\"}"},
                                {"type": "function_call_output", "call_id": "c1", "output": "shipped"}]}])
    assert kinds(r) == ["tools", "system", "tool_choice", "message", "image", "thinking", "tool_call", "tool_result"]
    assert r.parts[6].text == 'lookup({"order_id":"A1"})' and r.parts[7].text == "shipped"
    assert r.parts[5].text == "\n[encrypted gAAA]"


# ----- proxy exports (see workbook/doctor/proxies.py for the mapping and its sources) ----------------------------

def test_a_litellm_spend_log_row_with_the_request_body_kept():
    row = {"request_id": "chatcmpl-1", "call_type": "acompletion", "api_key": "hashed", "spend": 0.0021,
           "total_tokens": 2100, "prompt_tokens": 2000, "completion_tokens": 100,
           "startTime": "2026-03-15T09:00:00.000Z", "endTime": "2026-03-15T09:00:02.000Z",
           "model": "claude-sonnet-4-5", "cache_hit": "False", "cache_key": "litellm-response-cache-key",
           "metadata": {"usage_object": {"prompt_tokens": 2000, "completion_tokens": 100,
                                         "prompt_tokens_details": {"cached_tokens": 1536},
                                         "cache_creation_input_tokens": 0}},
           "messages": json.dumps([{"role": "user", "content": "Q"}]),
           "proxy_server_request": {"model": "claude-sonnet-4-5", "messages": [{"role": "system", "content": "S"},
                                                                               {"role": "user", "content": "Q"}]}}
    (r,) = read_log([row])
    assert [(p.kind, p.text) for p in r.parts] == [("system", "S"), ("message", "Q")]
    assert r.provider == "anthropic" and r.model == "claude-sonnet-4-5" and r.at_s == 0.0
    assert (r.reported_input, r.reported_cached, r.reported_written, r.output_tokens) == (2000, 1536, 0, 100)
    extra = dict(r.extra)
    assert r.cache_key is None and json.loads(extra["cache_key"]) == "litellm-response-cache-key"  # litellm's own cache
    assert json.loads(extra["spend"]) == 0.0021


def test_a_litellm_standard_logging_payload_takes_tools_from_model_parameters():
    payload = {"id": "1", "call_type": "completion", "response_cost": 0.01, "startTime": 1773565200.0,
               "model": "gpt-5.5", "prompt_tokens": 10, "completion_tokens": 2,
               "messages": [{"role": "user", "content": "Q"}],
               "model_parameters": {"tools": [{"type": "function", "function": {"name": "f"}}], "temperature": 0}}
    (r,) = read_log([{"standard_logging_object": payload}])
    assert kinds(r) == ["tools", "message"] and r.reported_input == 10 and dict(r.extra)["temperature"] == "0"


def test_a_litellm_row_without_stored_prompts_says_how_to_store_them():
    with pytest.raises(LogError, match="store_prompts_in_spend_logs"):
        read_log([{"request_id": "1", "spend": 0.1, "messages": "{}", "model": "gpt-5.5"}])


def test_a_langfuse_generation():
    observation = {"id": "obs-1", "traceId": "t-1", "type": "GENERATION", "name": "answer",
                   "startTime": "2026-03-15T09:00:00.000Z", "model": "gpt-5.5",
                   "modelParameters": {"temperature": 0.2},
                   "input": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
                   "output": {"role": "assistant", "content": "A"},
                   "usageDetails": {"input": 476, "input_cached_tokens": 1536, "output": 30, "total": 2042}}
    (r,) = read_log([observation])
    assert [(p.kind, p.text) for p in r.parts] == [("system", "S"), ("message", "Q")]
    # Langfuse "summarizes all usage types that include the string input as input usage types"
    assert (r.reported_input, r.reported_cached, r.output_tokens) == (2012, 1536, 30)
    assert json.loads(dict(r.extra)["output"]) == {"role": "assistant", "content": "A"}


def test_a_langfuse_span_is_not_a_model_call():
    with pytest.raises(LogError, match="GENERATION"):
        read_log([{"id": "o", "traceId": "t", "type": "SPAN", "input": {"q": 1}}])


def test_an_opentelemetry_genai_span_in_otlp_json():
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "get_weather",
                                                 "arguments": {"location": "Paris"}}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "rainy, 57°F"}]}]
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-5.5",
                  "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
                  "gen_ai.input.messages": json.dumps(messages), "gen_ai.usage.input_tokens": 1300,
                  "gen_ai.usage.cache_read.input_tokens": 1024, "gen_ai.usage.output_tokens": 12}
    span = {"traceId": "ab", "spanId": "cd", "name": "chat gpt-5.5", "startTimeUnixNano": "1773565200000000000",
            "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                           for k, v in attributes.items()]}
    (r,) = read_log([span])
    assert [(p.kind, p.text) for p in r.parts] == [("system", "Be brief."), ("message", "Weather in Paris?"),
                                                   ("tool_call", 'get_weather({"location": "Paris"})'),
                                                   ("tool_result", "rainy, 57°F")]
    assert (r.provider, r.model, r.reported_input, r.reported_cached, r.output_tokens) == \
        ("openai", "gpt-5.5", 1300, 1024, 12)
    assert json.loads(dict(r.extra)["attributes"]) == {"gen_ai.operation.name": "chat"}


# ----- unknown fields, streaming, errors ------------------------------------------------------------------------

def test_unknown_top_level_fields_are_kept_as_json_text():
    (r,) = read_log([{"messages": [{"role": "user", "content": "Q"}], "temperature": 0.5,
                      "metadata": {"user": "u1"}, "stream": True}])
    assert dict(r.extra) == {"temperature": "0.5", "metadata": '{"user": "u1"}', "stream": "true"}


def test_iter_records_streams_a_file_line_by_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"prompt": "a", "timestamp": 100}\n{"prompt": "b", "timestamp": 160}\n{"prompt": "c"\n')
    records = iter_records(path)
    assert next(records).at_s == 0.0 and next(records).at_s == 60.0  # read before the broken third line
    with pytest.raises(LogError, match="Line 3"):
        next(records)


def test_a_compressed_log_reads_like_the_plain_one(tmp_path):
    lines = [json.dumps({"prompt": p, "timestamp": t}) for p, t in (("a", 5), ("b", 9))]
    (tmp_path / "log.jsonl").write_text("\n".join(lines))
    with gzip.open(tmp_path / "log.jsonl.gz", "wt") as f:
        f.write("\n".join(lines))
    with lzma.open(tmp_path / "log.jsonl.xz", "wt") as f:
        f.write("\n".join(lines))
    plain = read_log(tmp_path / "log.jsonl")
    assert plain == read_log(tmp_path / "log.jsonl.gz") == read_log(tmp_path / "log.jsonl.xz")


def test_a_json_export_page_with_data_reads(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"data": [{"prompt": "a"}, {"prompt": "b"}], "meta": {"page": 1}}))
    assert [r.parts[0].text for r in read_log(path)] == ["a", "b"]


@pytest.mark.parametrize("request_, message", [
    ({"input": 5}, "string or a list of items"),
    ({"messages": [{"role": "user", "content": 5}]}, "string or a list of blocks"),
    ({"prompt": "a", "usage": {"prompt_tokens": "many"}}, "not a number"),
    ({"attributes": {"gen_ai.request.model": "gpt-5.5"}}, "gen_ai.input.messages"),
])
def test_bad_requests_get_a_clear_error(request_, message):
    with pytest.raises(LogError, match=message):
        read_log([request_])


def test_a_missing_timestamp_after_the_first_is_named():
    with pytest.raises(LogError, match="Line 2 has no timestamp"):
        read_log([{"prompt": "a", "timestamp": 1}, {"prompt": "b"}])


# ----- token counting: each distinct line once, the same ids as the whole part ----------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from workbook.doctor.diagnosis import LINE_CUT, Tokens, cuts_lines_exactly  # noqa: E402
from workbook.paths import DATA_DIR  # noqa: E402
from workbook.tokenizer import load_tokenizer  # noqa: E402

TINY = load_tokenizer("tiny")


def test_cutting_a_part_into_lines_keeps_the_ids_on_the_corpus():
    tokens = Tokens(TINY)
    text = (DATA_DIR / "corpus" / "heldout.txt").read_text(encoding="utf-8")
    assert cuts_lines_exactly(TINY) and len(LINE_CUT.split(text)) > 500
    for start in range(0, len(text), 5000):
        part = text[start:start + 5000]
        assert tokens.encode(part) == tuple(TINY.encode(part))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab Z9_.'\n\t/{}\"é") + ["<|user|>", "<|end|>", "'s", "\r\n"]), max_size=60)
       .map("".join))
def test_cutting_into_lines_keeps_the_ids_on_any_text(text):
    assert Tokens(TINY).encode(text) == tuple(TINY.encode(text))


def test_a_tokenizer_of_another_kind_is_not_cut():
    class Words:
        def encode(self, text):
            return [len(w) for w in text.split(" ")]

    assert not cuts_lines_exactly(Words()) and Tokens(Words()).encode("a\nbc d") == (4, 1)


# ----- Gemini generateContent (ai.google.dev/api/generate-content) ------------------------------------------------

def test_a_gemini_request_renders_tools_system_tool_config_then_contents():
    (r,) = read_log([{"model": "gemini-2.5-flash",
                      "tools": [{"functionDeclarations": [{"name": "lookup", "parameters": {"type": "object"}}]}],
                      "systemInstruction": {"parts": [{"text": "Be brief."}]},
                      "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
                      "contents": [{"role": "user", "parts": [{"text": "Where is A1?"},
                                                              {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
                                   {"role": "model", "parts": [{"text": "Look it up.", "thought": True},
                                                               {"functionCall": {"name": "lookup", "args": {"id": "A1"}},
                                                                "thoughtSignature": "CiQB"}]},
                                   {"role": "user", "parts": [{"functionResponse": {"name": "lookup",
                                                                                    "response": {"status": "shipped"}}}]}],
                      "usageMetadata": {"promptTokenCount": 2100, "cachedContentTokenCount": 2048,
                                        "candidatesTokenCount": 40}}])
    assert r.shape == "gemini" and r.provider == "gemini"
    assert [p.kind for p in r.parts] == ["tools", "system", "tool_choice", "message", "image", "thinking", "tool_call",
                                         "tool_result"]
    assert r.parts[6].text == 'lookup({"id": "A1"})\n[signature CiQB]' and r.parts[7].text == '{"status": "shipped"}'
    assert (r.reported_input, r.reported_cached, r.output_tokens) == (2100, 2048, 40)
