"""The OpenAI-compatible endpoint (`python -m workbook.serve`) driven by real clients: the `openai` SDK and litellm.

Greedy text equals `Engine.generate` for the same ids; `usage.prompt_tokens_details.cached_tokens`
equals what the server's own `PrefixCache.match` says; bad requests get OpenAI's error body and
change nothing; a client that leaves mid-stream gives its pages back; 200 concurrent streams on
loopback all finish, leak no page, and leave the process serving. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from workbook import Engine
from workbook.prefix_cache import loadable_tokens
from workbook.serve import create_app, load_server

MODEL, PAGE, BODY_LIMIT = "tiny", 16, 64 * 1024
SYSTEM = ("You are a careful assistant for a small bakery. Prices are in euros and include tax. "
          "The shop opens at seven and closes at six. Never promise a delivery time. ")


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def cli():
    """`python -m workbook.serve` as a child process (started first: it loads the model while other tests run)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "workbook.serve", "--model", MODEL, "--port", str(port),
                             "--prefix-cache-tokens", "8192", "--page-size", str(PAGE), "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    yield proc, f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def served(cli):
    """An endpoint in this process (uvicorn in a thread), so tests can ask its server what it holds."""
    server = load_server(MODEL, prefix_cache_tokens=8192, page_size=PAGE, device="cpu")
    app = create_app(server, MODEL, max_body_bytes=BODY_LIMIT)
    sock = free_socket()
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield server, app, f"http://127.0.0.1:{sock.getsockname()[1]}"
    uv.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[2] + "/v1", api_key="not-needed", max_retries=0, timeout=60)


def on_server(served, fn):
    """Run `fn(server)` in the thread that owns the server, between steps."""
    return served[1].state.loop.call(fn).result(timeout=30)


def pool_state(server) -> dict:
    """What a refused request must not change, and what a finished one must give back."""
    cache = server.prefix_cache
    return dict(pages_in_use=server.pool.pages_in_use, tree_pages=cache.tree_pages(), queries=cache.stats().queries,
                waiting=len(server.waiting), running=len(server.running),
                locked=sum(node.lock_ref for node in cache._all_nodes()))


def assert_idle_and_no_leak(state: dict):
    assert state["waiting"] == state["running"] == state["locked"] == 0
    assert state["pages_in_use"] == state["tree_pages"]  # every page in use is the tree's: no request kept one


def chat(question: str, system: str = SYSTEM) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def engine_text(served, ids: list[int], max_new_tokens: int, **sampling):
    server = served[0]
    result = Engine(server.model, server.tokenizer).generate(ids, max_new_tokens=max_new_tokens, **sampling)
    eos = server.tokenizer.eos_token_id
    return server.tokenizer.decode([i for i in result.output_ids if i != eos]), result


def metric(base: str, name: str, labels: dict | None = None) -> float:
    """One sample from /metrics, read with prometheus_client's own parser."""
    for family in text_string_to_metric_families(httpx.get(base + "/metrics").text):
        for sample in family.samples:
            if sample.name == name and (labels or {}).items() <= sample.labels.items():
                return sample.value
    return 0.0


# ----- the openai SDK -------------------------------------------------------------------------------

@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=0.9, top_p=0.8, seed=7)])
def test_openai_chat_equals_engine_generate(served, client, sampling):
    messages = chat("When do you open?")
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, **sampling)
    ids = served[0].tokenizer.encode_chat(messages)
    text, result = engine_text(served, ids, 12, **sampling)
    assert reply.choices[0].message.content == text
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.prompt_tokens == len(ids)
    assert reply.usage.completion_tokens == len(result.output_ids)
    assert reply.choices[0].finish_reason == ("stop" if result.output_ids[-1] == served[0].tokenizer.eos_token_id
                                              else "length")


def test_openai_stream_gives_the_same_text_and_usage_last(served, client):
    messages = chat("Do you sell rye bread?")
    whole = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0)
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    # "an additional chunk ... The `usage` field on this chunk shows the token usage statistics for the entire
    # request, and the `choices` field will always be an empty array. All other chunks will also include a `usage`
    # field, but with a null value." (openai 3.63.0, types/chat/chat_completion_stream_options_param.py)
    *content, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None and len(c.choices) == 1 for c in content)
    assert "".join(c.choices[0].delta.content or "" for c in content) == whole.choices[0].message.content
    assert content[0].choices[0].delta.role == "assistant"
    assert content[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    plain = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0,
                                                stream=True))
    assert all(c.usage is None for c in plain)  # no usage chunk unless asked for


def test_cached_tokens_are_what_the_prefix_cache_matches(served, client):
    system = "Today is a holiday. " + SYSTEM * 3  # several whole pages, unlike any other test's from the first token
    first = client.chat.completions.create(model=MODEL, messages=chat("Hello!", system), max_tokens=4, temperature=0)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    second_messages = chat("Is there cake today?", system)
    ids = served[0].tokenizer.encode_chat(second_messages)
    expected = on_server(served, lambda s: s.prefix_cache.match(ids, record=False).length)
    first_ids = served[0].tokenizer.encode_chat(chat("Hello!", system))
    shared = next(i for i, (a, b) in enumerate(zip(ids, first_ids)) if a != b)
    assert expected == loadable_tokens(shared, len(ids), PAGE) >= 3 * PAGE  # whole pages of the shared system prompt
    second = client.chat.completions.create(model=MODEL, messages=second_messages, max_tokens=4, temperature=0)
    assert second.usage.prompt_tokens_details.cached_tokens == expected
    assert second.usage.prompt_tokens == len(ids)
    assert second.choices[0].message.content == engine_text(served, ids, 4, temperature=0)[0]  # a hit changes nothing


def test_completions_text_ids_default_length_and_stop(served, client):
    prompt = "Once upon a time"
    ids = served[0].tokenizer.encode(prompt)
    by_text = client.completions.create(model=MODEL, prompt=prompt, temperature=0)
    by_ids = client.completions.create(model=MODEL, prompt=ids, temperature=0)
    full, result = engine_text(served, ids, 16, temperature=0)
    assert by_text.choices[0].text == by_ids.choices[0].text == full
    assert by_text.usage.completion_tokens == len(result.output_ids) <= 16  # the legacy endpoint's default max_tokens
    # "Up to 4 sequences where the API will stop generating further tokens. The returned text will not contain the
    # stop sequence." (openai 3.63.0, types/completion_create_params.py)
    stop = full.split()[2]
    cut = client.completions.create(model=MODEL, prompt=prompt, temperature=0, stop=[stop, "never appears"])
    assert cut.choices[0].text == full[:full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model=MODEL, prompt=prompt, temperature=0, stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == full[:full.index(stop)]
    assert_idle_and_no_leak(on_server(served, pool_state))  # stopping early gave the request's pages back


def test_models_and_health(served, client):
    assert [m.id for m in client.models.list()] == [MODEL]
    assert httpx.get(served[2] + "/health").json() == {"status": "ok"}


def test_metrics_count_what_usage_reported(served, client):
    base = served[2]
    before = {name: metric(base, name) for name in ("workbook_prompt_tokens_total", "workbook_cached_tokens_total",
                                                    "workbook_completion_tokens_total",
                                                    "workbook_time_to_first_token_seconds_count")}
    replies = [client.chat.completions.create(model=MODEL, messages=chat(q), max_tokens=5, temperature=0)
               for q in ("Are you open on Sunday?", "Are you open on Monday?")]
    assert metric(base, "workbook_prompt_tokens_total") - before["workbook_prompt_tokens_total"] == sum(
        r.usage.prompt_tokens for r in replies)
    assert metric(base, "workbook_cached_tokens_total") - before["workbook_cached_tokens_total"] == sum(
        r.usage.prompt_tokens_details.cached_tokens for r in replies)
    assert metric(base, "workbook_completion_tokens_total") - before["workbook_completion_tokens_total"] == sum(
        r.usage.completion_tokens for r in replies)
    assert metric(base, "workbook_time_to_first_token_seconds_count") - before[
        "workbook_time_to_first_token_seconds_count"] == 2
    state = on_server(served, lambda s: (s.prefix_cache.stats().hit_rate, s.pool.pages_in_use, s.pool.pages_shared))
    assert metric(base, "workbook_prefix_cache_hit_rate") == pytest.approx(state[0])
    assert metric(base, "workbook_pages_in_use") == state[1]
    assert metric(base, "workbook_pages_shared") == state[2]


def test_without_a_prefix_cache_nothing_is_cached(served):
    """`--prefix-cache-tokens 0`: a private pool, the same answers, and cached_tokens 0 every time."""
    from fastapi.testclient import TestClient

    from workbook import Server

    server = Server(served[0].model, served[0].tokenizer, None)
    request = {"model": MODEL, "messages": chat("When do you open?"), "max_tokens": 6, "temperature": 0}
    with TestClient(create_app(server, MODEL)) as http:
        replies = [http.post("/v1/chat/completions", json=request).json() for _ in range(2)]
        metrics = http.get("/metrics").text
    assert [r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in replies] == [0, 0]
    ids = served[0].tokenizer.encode_chat(request["messages"])
    assert replies[1]["choices"][0]["message"]["content"] == engine_text(served, ids, 6, temperature=0)[0]
    assert "workbook_prefix_cache_hit_rate 0.0" in metrics and "workbook_prefix_cache_pages 0.0" in metrics
    assert server.pool.pages_in_use == 0  # nothing keeps a page once the requests are done


# ----- bad requests ---------------------------------------------------------------------------------

def body(**fields) -> bytes:
    return json.dumps({"model": MODEL, "messages": chat("Hi"), **fields}).encode()


BAD = {
    "unknown model": (body(model="gpt-4o"), 404, "model", "model_not_found"),
    "empty messages": (body(messages=[]), 400, "messages", "invalid_value"),
    "max_tokens 0": (body(max_tokens=0), 400, "max_tokens", "invalid_value"),
    "max_tokens negative": (body(max_tokens=-3), 400, "max_tokens", "invalid_value"),
    "over the context": (body(messages=chat("bread " * 9000)), 400, None, "context_length_exceeded"),
    "malformed JSON": (b'{"model": "tiny", "messages": [', 400, None, "invalid_json"),
    "body over the limit": (body(messages=chat("x" * BODY_LIMIT)), 413, None, "request_too_large"),
    "unsupported parameter": (body(tools=[]), 400, "tools", "unsupported_parameter"),
    "two choices": (body(n=2), 400, "n", "invalid_value"),
    "temperature above 2": (body(temperature=2.5), 400, "temperature", "invalid_value"),
    "five stop sequences": (body(stop=list("abcde")), 400, "stop", "invalid_value"),
    "unknown role": (body(messages=[{"role": "wizard", "content": "hi"}]), 400, "messages.0.role", "invalid_value"),
    "missing model": (json.dumps({"messages": chat("Hi")}).encode(), 400, "model", "missing_required_parameter"),
    "an SGLang field asking for something": (body(ignore_eos=True), 400, "ignore_eos", "invalid_value"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_gets_openai_error_and_changes_nothing(served, case):
    content, status, param, code = BAD[case]
    before = on_server(served, pool_state)
    response = httpx.post(served[2] + "/v1/chat/completions", content=content,
                          headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert error["message"]
    assert on_server(served, pool_state) == before
    assert httpx.get(served[2] + "/health").status_code == 200


def test_the_sdk_raises_its_own_error_types(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=chat("Hi"))
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model=MODEL, messages=chat("Hi"), max_tokens=0)


def test_a_failing_step_fails_its_requests_and_the_endpoint_goes_on(served, client):
    def fail_once(server):
        def step():
            del server.step  # the next step is the real one again
            raise RuntimeError("a fault inside a step")
        server.step = step
    on_server(served, fail_once)
    with pytest.raises(openai.InternalServerError, match="a fault inside a step"):
        client.chat.completions.create(model=MODEL, messages=chat("Hi"), max_tokens=3)
    assert_idle_and_no_leak(on_server(served, pool_state))
    assert client.chat.completions.create(model=MODEL, messages=chat("Hi"), max_tokens=3).usage.completion_tokens


def test_bodies_as_sglang_router_forwards_them_are_served(served):
    """sglang-router 0.3.2 and vllm-router 0.1.17 add SGLang's fields at their defaults to every body they route
    (bodies as seen on the wire)."""
    routed = {
        "/v1/chat/completions#vllm-router": {
            "model": MODEL, "messages": chat("Hi"), "temperature": 0.0, "stream": False, "max_tokens": 2,
            "logprobs": False, "no_stop_trim": False, "ignore_eos": False, "continue_final_message": False,
            "skip_special_tokens": True, "separate_reasoning": True, "stream_reasoning": True,
            "return_hidden_states": False, "include_reasoning": True},
        "/v1/chat/completions": {"messages": chat("Hi"), "model": MODEL, "logprobs": False, "max_completion_tokens": 2,
                                 "stream": False, "temperature": 0.0, "no_stop_trim": False, "ignore_eos": False,
                                 "continue_final_message": False, "skip_special_tokens": True,
                                 "separate_reasoning": True, "stream_reasoning": True, "return_hidden_states": False},
        "/v1/completions": {"model": MODEL, "prompt": "Hello", "max_tokens": 2, "temperature": 0.0, "stream": False,
                            "echo": False, "no_stop_trim": False, "ignore_eos": False, "skip_special_tokens": True,
                            "return_hidden_states": False},
    }
    for path, request in routed.items():
        response = httpx.post(served[2] + path.split("#")[0], json=request, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] <= 2


# ----- a client that leaves -------------------------------------------------------------------------

def test_client_leaving_mid_stream_frees_its_pages(served):
    base = served[2]
    cancelled = metric(base, "workbook_requests_total", {"outcome": "cancelled"})
    request = {"model": MODEL, "prompt": SYSTEM * 2, "max_tokens": 4000, "temperature": 0, "stream": True}
    with httpx.stream("POST", base + "/v1/completions", json=request, timeout=30) as response:
        lines = response.iter_lines()
        received = [line for line, _ in zip(lines, range(6)) if line.startswith("data: ")]
    assert len(received) >= 3  # it was streaming, far from its 4000 tokens, when the client closed
    deadline = time.monotonic() + 20
    while metric(base, "workbook_requests_total", {"outcome": "cancelled"}) == cancelled:
        assert time.monotonic() < deadline, "the server did not notice the client leave"
        time.sleep(0.05)
    assert_idle_and_no_leak(on_server(served, pool_state))


# ----- litellm --------------------------------------------------------------------------------------

def test_litellm_gets_the_same_answer_and_cached_tokens(served, client):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # the price map inside the package, not GitHub's
    import litellm

    messages = chat("Can I order a birthday cake?")
    sdk = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    ids = served[0].tokenizer.encode_chat(messages)
    expected = on_server(served, lambda s: s.prefix_cache.match(ids, record=False).length)
    kwargs = dict(model=f"openai/{MODEL}", api_base=served[2] + "/v1", api_key="not-needed", messages=messages,
                  max_tokens=8, temperature=0)
    reply = litellm.completion(**kwargs)
    assert reply.choices[0].message.content == sdk.choices[0].message.content
    assert reply.usage.prompt_tokens == len(ids)
    assert reply.usage.prompt_tokens_details.cached_tokens == expected > 0
    chunks = list(litellm.completion(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == sdk.choices[0].message.content


# ----- load, against the command-line server ----------------------------------------------------------

async def one_stream(http: httpx.AsyncClient, base: str, i: int) -> dict:
    request = {"model": MODEL, "messages": chat(f"Question {i}: what does bread number {i} cost?",
                                                SYSTEM + ["", "Answer briefly. ", "Answer in French. "][i % 3]),
               "max_tokens": 2 + i % 5, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    events = []
    async with http.stream("POST", base + "/v1/chat/completions", json=request) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line[len("data: "):])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    return chunks[-1]["usage"]


async def many_streams(base: str, n: int) -> list[dict]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        return await asyncio.wait_for(asyncio.gather(*(one_stream(http, base, i) for i in range(n))), timeout=60)


def wait_until_serving(proc: subprocess.Popen, base: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "python -m workbook.serve did not start"
        time.sleep(0.2)


def test_200_concurrent_streams_none_lost_no_page_leaked(cli):
    proc, base = cli
    wait_until_serving(proc, base)
    usages = asyncio.run(many_streams(base, 200))
    assert len(usages) == 200
    assert all(0 < u["completion_tokens"] <= 2 + i % 5 for i, u in enumerate(usages))
    assert sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages) > 0  # three system prompts, shared
    assert proc.poll() is None and httpx.get(base + "/health").status_code == 200
    assert metric(base, "workbook_requests_total", {"outcome": "stop"}) + metric(
        base, "workbook_requests_total", {"outcome": "length"}) == 200
    assert metric(base, "workbook_requests_running") == metric(base, "workbook_requests_waiting") == 0
    assert metric(base, "workbook_pages_in_use") == metric(base, "workbook_prefix_cache_pages")
