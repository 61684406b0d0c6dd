"""Speculative requests in the server: on the paged path, beside plain requests, with prefix hits, never leaking a page."""

import random

import pytest

import workbook
from workbook import Engine, PagePool, PrefixCache, SamplingParams, Server, WorkbookError
from workbook.speculative import PromptLookupDrafter, Speculation

PAGE = 16


@pytest.fixture(scope="module")
def pair():
    return (workbook.load_model("tiny", device="cpu"), workbook.load_model("tiny-draft", device="cpu"),
            workbook.load_tokenizer("tiny"))


def requests(tokenizer, draft, rng: random.Random, n: int):
    """`n` requests on a shared system prompt: plain ones, model-drafted, prompt-lookup, greedy and seeded sampling."""
    system = tokenizer.encode("You are a careful assistant for a small bakery. Prices are in euros. " * 3)
    kinds = [None, Speculation(draft, k=3), Speculation(PromptLookupDrafter(), k=4),
             Speculation(draft, k=2, adaptive_k=True)]
    out = []
    for i in range(n):
        prompt = system + tokenizer.encode(f" Question {rng.randint(0, 99)}: when is bread baked? " * rng.randint(1, 3))
        sampled = i % 3 == 2
        params = SamplingParams(max_new_tokens=rng.randint(4, 14), temperature=0.9 if sampled else 0.0,
                                top_k=50 if sampled else None, seed=i, stop_at_eos=False)
        out.append((prompt, params, kinds[i % len(kinds)]))
    return system, out


@pytest.mark.parametrize("capacity,chunk", [(4096, None), (4096, 24), (192, None)])  # the last preempts
def test_speculative_requests_in_a_batch_equal_the_same_requests_alone(pair, capacity, chunk):
    target, draft, tokenizer = pair
    system, work = requests(tokenizer, draft, random.Random(capacity + (chunk or 0)), 12)
    server = Server(target, tokenizer, PrefixCache(PagePool.for_tokens(capacity, PAGE)), max_running=8,
                    max_batch_tokens=256, prefill_chunk=chunk)
    server.submit(system + [7], max_new_tokens=1)
    server.run_until_done()  # the system prompt is cached: speculative requests hit it too
    ids = {server.submit(prompt, params, speculation=spec): (prompt, params, spec) for prompt, params, spec in work}
    mixed = preempted = False
    while (snapshot := server.step()) is not None:
        server.kv.check()  # every step: reference counts equal holders, through every truncate
        ran = set(snapshot.prefill) | set(snapshot.decode)
        mixed |= any(ids[r][2] is None for r in ran) and any(ids[r][2] is not None for r in ran)
        preempted |= bool(snapshot.preempted)
    results = server.run_until_done()
    alone = Engine(target, tokenizer)
    for rid, (prompt, params, spec) in ids.items():
        own = alone.generate(prompt, params, speculation=spec)
        assert results[rid].output_ids == own.output_ids, f"request {rid} differs from its run alone"
        if params.temperature == 0:  # and greedy speculation is the target's own greedy output
            assert own.output_ids == alone.generate(prompt, params).output_ids
        assert (results[rid].speculation is None) == (spec is None)
    assert mixed, "speculative and plain requests never shared a step"
    assert any(results[r].speculation and results[r].cached_tokens > 0 for r in ids)  # a speculative prefix hit
    assert sum(results[r].speculation.accepted for r in ids if results[r].speculation) > 0
    assert preempted == (capacity < 1024)
    assert not server.running and not server.kv.live
    server.kv.check()
    tree = server.prefix_cache.held_pages()
    assert server.pool.pages_in_use == len(tree) and all(server.pool.refs[p] == 1 for p in tree)


def test_a_speculative_request_stops_at_a_stop_token_and_keeps_it(pair):
    target, draft, tokenizer = pair
    prompt = tokenizer.encode("The io module provides the Python interfaces to stream handling.")
    free = Engine(target, tokenizer).generate(prompt, max_new_tokens=16, stop_at_eos=False).output_ids
    stop = free[5]
    params = SamplingParams(max_new_tokens=16, stop_at_eos=False, stop_token_ids=[stop])
    result = Engine(target, tokenizer).generate(prompt, params, speculation=Speculation(draft, k=4))
    assert result.output_ids == free[:free.index(stop) + 1] and result.finish_reason == "stop"


def test_a_speculative_request_with_a_bad_drafter_is_refused_before_it_is_queued(pair):
    target, _, tokenizer = pair
    server = Server(target, tokenizer, None, pool_tokens=1024)
    with pytest.raises(WorkbookError, match="draft must be"):
        server.submit([1, 2, 3], max_new_tokens=4, speculation=Speculation("not a model"))
    with pytest.raises(WorkbookError, match="Speculation"):
        server.submit([1, 2, 3], max_new_tokens=4, speculation=4)
    assert not server.waiting and server.pool.pages_in_use == 0
