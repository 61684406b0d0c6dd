"""The batched server: every request gives what it gives alone, pages are shared and never leak, bad input changes nothing."""

import random

import pytest
import torch

import workbook
from workbook import CacheBudgetError, EmptyInputError, Engine, PagePool, PrefixCache, Server, WorkbookError

PAGE = 16


@pytest.fixture(scope="module")
def shipped():
    return workbook.load_model("tiny", device="cpu"), workbook.load_tokenizer("tiny")


@pytest.fixture(scope="module")
def alone(shipped):
    """What Engine.generate gives for each prompt on its own, computed once per (prompt, settings)."""
    engine, seen = Engine(*shipped), {}

    def run(ids, max_new_tokens, **sampling):
        key = (tuple(ids), max_new_tokens, tuple(sorted(sampling.items())))
        if key not in seen:
            seen[key] = engine.generate(ids, max_new_tokens=max_new_tokens, **sampling)
        return seen[key]
    return run


def workload(tokenizer, rng: random.Random, n: int) -> list[tuple[list[int], int]]:
    """`n` requests: most share one of three system prompts (short, medium, long), some share nothing."""
    sentences = ["You are a careful assistant for a small bakery.", "Answer in one short sentence.",
                 "Prices are in euros and include tax.", "The shop opens at seven and closes at six.",
                 "Never promise a delivery time.", "Bread is baked twice a day."]
    systems = [tokenizer.encode(" ".join(sentences[:k] * reps)) for k, reps in ((2, 1), (4, 3), (6, 8))]
    requests = []
    for i in range(n):
        question = tokenizer.encode(f" Question {rng.randint(0, 999)}: {rng.choice(sentences)}")
        if rng.random() < 0.2:
            prompt = [rng.randrange(6, 4096) for _ in range(rng.randint(1, 120))]  # shares nothing
        else:
            prompt = rng.choice(systems) + question
        requests.append((prompt, rng.randint(1, 12)))
    return requests


def assert_no_leak(server: Server):
    """Once every request has finished, the pool holds exactly the tree's pages, each once, and nothing is locked."""
    cache, pool = server.prefix_cache, server.pool
    assert not server.running and not server.waiting and not server.kv.live
    server.kv.check()
    tree_pages = cache.held_pages()
    assert len(tree_pages) == len(set(tree_pages)) == pool.pages_in_use
    assert all(pool.refs[p] == 1 for p in tree_pages) and sum(pool.refs) == len(tree_pages)
    assert all(node.lock_ref == 0 for node in cache._all_nodes())


# The randomized exactness run: batch sizes 1 to 32, chunked prefill on and off, and pools small enough to preempt.
ROUNDS = [
    dict(max_running=1, prefill_chunk=None, capacity=8192),
    dict(max_running=4, prefill_chunk=None, capacity=8192),
    dict(max_running=32, prefill_chunk=48, capacity=8192),
    dict(max_running=16, prefill_chunk=None, capacity=1024),  # preempts: 16 requests need more pages than 64
    dict(max_running=32, prefill_chunk=32, capacity=768),  # preempts while chunking
]


@pytest.mark.parametrize("round_", range(len(ROUNDS)))
def test_every_request_gives_what_it_gives_alone(shipped, alone, round_):
    model, tokenizer = shipped
    settings = ROUNDS[round_]
    server = Server(model, tokenizer, PrefixCache(PagePool.for_tokens(settings["capacity"], PAGE)),
                    max_running=settings["max_running"], max_batch_tokens=512, prefill_chunk=settings["prefill_chunk"])
    rng = random.Random(round_)
    requests = workload(tokenizer, rng, 48)
    ids, snapshots = {}, []
    for prompt, max_new in requests[:32]:
        ids[server.submit(prompt, max_new_tokens=max_new)] = (prompt, max_new)
    for _ in range(3):  # requests also join between steps
        snapshots.append(server.step())
    for prompt, max_new in requests[32:]:
        ids[server.submit(prompt, max_new_tokens=max_new)] = (prompt, max_new)
    while (snapshot := server.step()) is not None:
        snapshots.append(snapshot)
    results = server.run_until_done()

    assert sorted(results) == sorted(ids)
    for rid, (prompt, max_new) in ids.items():
        ref = alone(prompt, max_new)
        assert results[rid].output_ids == ref.output_ids, f"request {rid} differs from its run alone"
        assert (results[rid].first_token_logits - ref.first_token_logits).abs().max().item() <= 1e-4
        assert results[rid].usage.total_input_tokens == len(prompt)
    assert_no_leak(server)
    busiest = max(len(s.decode) + len(s.prefill) for s in snapshots)
    assert busiest <= settings["max_running"] and (settings["max_running"] == 1 or busiest > 1)
    if settings["capacity"] < 8192:
        assert sum(r.preemptions for r in results.values()) > 0
        assert any(s.preempted for s in snapshots)
    if settings["prefill_chunk"]:
        assert max(n for s in snapshots for n in s.prefill.values()) <= settings["prefill_chunk"]
    assert sum(r.usage.cache_read_tokens for r in results.values()) > 0  # the shared system prompts were hit


FAMILIES = ["llama", "llama3-scaled-biased-tied", "smollm-linear-rope", "qwen2", "mistral-sliding", "gpt2"]


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_paged_steps_equal_one_full_forward_without_a_cache(random_checkpoints, small_tokenizer, family):
    """The paged path against the plainest computation there is: every family, mixed lengths, chunks, a prefix hit."""
    model = workbook.load_model(random_checkpoints[family][0], device="cpu")
    rng = random.Random(3)
    shared = [rng.randrange(320) for _ in range(20)]
    prompts = [shared + [rng.randrange(320) for _ in range(rng.randint(1, 30))] for _ in range(5)] + [[9], [4, 5, 6]]
    server = Server(model, small_tokenizer, PrefixCache(PagePool.for_tokens(512, 4)), max_running=8, prefill_chunk=8)
    server.submit(prompts[0], max_new_tokens=1)
    server.run_until_done()  # so the others hit the shared prefix
    ids = {server.submit(p, max_new_tokens=6, stop_at_eos=False): p for p in prompts}
    results = server.run_until_done()
    for rid, prompt in ids.items():
        out = results[rid].output_ids
        full = model(torch.tensor([prompt + out[:-1]]))[0]
        assert out == full[len(prompt) - 1:].argmax(-1).tolist()
        assert (results[rid].first_token_logits - full[len(prompt) - 1]).abs().max().item() <= 1e-4
    assert sum(r.cached_tokens for r in results.values()) > 0


def test_seeded_sampling_gives_the_same_tokens_alone_and_in_a_batch(shipped, alone):
    model, tokenizer = shipped
    server = Server(model, tokenizer, PrefixCache(PagePool.for_tokens(4096, PAGE)), max_running=8)
    requests = workload(tokenizer, random.Random(7), 12)
    ids = {server.submit(p, max_new_tokens=10, temperature=0.9, top_p=0.95, seed=i): (p, i)
           for i, (p, _) in enumerate(requests)}
    results = server.run_until_done()
    for rid, (prompt, seed) in ids.items():
        assert results[rid].output_ids == alone(prompt, 10, temperature=0.9, top_p=0.95, seed=seed).output_ids
    assert len({tuple(r.output_ids) for r in results.values()}) > 1  # sampling did sample


def test_requests_sharing_a_prefix_share_its_pages(shipped):
    model, tokenizer = shipped
    prefix = [random.Random(1).randrange(6, 4096) for _ in range(1024)]
    cache = PrefixCache(PagePool.for_tokens(8192, PAGE))
    server = Server(model, tokenizer, cache, max_running=16)
    server.submit(prefix + [7], max_new_tokens=1)
    server.run_until_done()  # the system prompt is now cached: 64 pages
    for i in range(16):
        server.submit(prefix + [100 + i] * 8, max_new_tokens=4)
    snapshot = server.step()  # all 16 admitted in one step
    assert len(snapshot.prefill) == 16
    own = 16 * (server.pool.pages_for_rows(1024 + 8 + 3) - 1024 // PAGE)
    assert snapshot.pages_in_use == 1024 // PAGE + own
    assert snapshot.pages_shared == 1024 // PAGE
    holders = server.page_holders()
    assert len(holders) == snapshot.pages_in_use
    assert sum(len(h) == 17 and "cache" in h for h in holders.values()) == 1024 // PAGE  # the tree and all 16
    server.run_until_done()
    assert_no_leak(server)


def test_a_long_prompt_is_prefilled_in_chunks_while_others_decode(shipped):
    model, tokenizer = shipped
    server = Server(model, tokenizer, None, max_running=4, prefill_chunk=32, pool_tokens=1024)
    short = server.submit([11, 12, 13], max_new_tokens=6, stop_at_eos=False)
    server.step()
    long = server.submit(list(range(20, 120)), max_new_tokens=2, stop_at_eos=False)
    steps = [server.step() for _ in range(4)]
    assert [s.prefill.get(long) for s in steps] == [32, 32, 32, 4]
    assert all(short in s.decode for s in steps)  # the short request kept decoding beside the chunks
    assert server.run_until_done()[short].output_ids == Engine(model, tokenizer).generate(
        [11, 12, 13], max_new_tokens=6, stop_at_eos=False).output_ids


def test_a_short_request_does_not_wait_for_a_long_one(shipped):
    model, tokenizer = shipped
    server = Server(model, tokenizer, None, max_running=4, pool_tokens=1024)
    long = server.submit([5, 6, 7], max_new_tokens=20, stop_at_eos=False)
    server.step()
    short = server.submit([8, 9], max_new_tokens=2, stop_at_eos=False)
    finished = []
    while (snapshot := server.step()) is not None:
        finished += snapshot.finished
    assert finished == [short, long]


def test_the_newest_request_is_preempted_and_its_output_is_unchanged(shipped, alone):
    model, tokenizer = shipped
    cache = PrefixCache(PagePool.for_tokens(80, PAGE))  # 5 pages: both start on 2, both need a 3rd at row 32
    server = Server(model, tokenizer, cache, max_running=4)
    first = server.submit(list(range(30, 60)), max_new_tokens=18, stop_at_eos=False)
    second = server.submit(list(range(60, 90)), max_new_tokens=18, stop_at_eos=False)
    snapshots = []
    while (snapshot := server.step()) is not None:
        snapshots.append(snapshot)
    results = server.run_until_done()
    assert [s.preempted for s in snapshots if s.preempted][0] == (second,)
    assert results[first].preemptions == 0 and results[second].preemptions >= 1
    assert results[second].output_ids == alone(list(range(60, 90)), 18, stop_at_eos=False).output_ids
    assert_no_leak(server)


@pytest.mark.parametrize("call, error", [
    (dict(prompt=[]), EmptyInputError),
    (dict(prompt=[1, 2, 4096]), WorkbookError),
    (dict(prompt=[1, 2], max_new_tokens=0), WorkbookError),
    (dict(prompt=[1, 2], temperature=-1.0), WorkbookError),
    (dict(prompt=[1, 2], top_p=1.5), WorkbookError),
    (dict(prompt=[1, 2], top_k=0), WorkbookError),
    (dict(prompt=[1, 2], max_new_tokens=True), WorkbookError),
    (dict(prompt=[1, 2], stop_token_ids=[-1]), WorkbookError),
    (dict(prompt=[1, 2], stop_token_ids=[True]), WorkbookError),  # a boolean is not a token id
    (dict(prompt=[1, 2], stop_token_ids=7), WorkbookError),
    (dict(prompt=[1, 2], seed=1.5), WorkbookError),
    (dict(prompt=[1] * 8190, max_new_tokens=8), workbook.ContextLengthError),
    (dict(prompt=[1] * 200, max_new_tokens=8), CacheBudgetError),  # 13 pages; the whole pool holds 8
])
def test_a_refused_request_changes_nothing(shipped, call, error):
    model, tokenizer = shipped
    cache = PrefixCache(PagePool.for_tokens(128, PAGE))
    server = Server(model, tokenizer, cache, max_running=4)
    server.submit(list(range(40, 80)), max_new_tokens=4)
    server.step()
    before = (list(server.waiting), list(server.running), cache.nodes(), cache.stats(), list(server.pool.refs),
              server.pool.keys.clone())
    with pytest.raises(error):
        server.submit(**call)
    assert (list(server.waiting), list(server.running), cache.nodes(), cache.stats(), list(server.pool.refs)) == before[:5]
    assert torch.equal(server.pool.keys, before[5])
    server.run_until_done()
    assert_no_leak(server)


@pytest.mark.parametrize("settings", [dict(max_running=0), dict(max_batch_tokens=0), dict(prefill_chunk=0),
                                      dict(max_running=2.5), dict(pool_tokens=8), dict(pool_tokens=True)])
def test_impossible_settings_are_refused(shipped, settings):
    with pytest.raises(WorkbookError):
        Server(*shipped, None, **settings)


@pytest.mark.parametrize("settings", [dict(pool_tokens=4096), dict(kv_dtype="int8")])
def test_pool_settings_beside_a_prefix_cache_are_refused_not_ignored(shipped, settings):
    """The cache's pool is the server's pool: sizing or typing it again here would be silently ignored, so it is refused."""
    with pytest.raises(WorkbookError, match="PagePool.for_tokens"):
        Server(*shipped, PrefixCache(PagePool.for_tokens(1024, PAGE)), **settings)


def test_sampling_params_or_settings_by_name_but_not_both(shipped):
    from workbook.sampling import SamplingParams
    server = Server(*shipped, None, pool_tokens=1024)
    by_name = server.submit([5, 6, 7], max_new_tokens=3, stop_at_eos=False)
    by_params = server.submit([5, 6, 7], SamplingParams(max_new_tokens=3, stop_at_eos=False))
    results = server.run_until_done()
    assert results[by_name].output_ids == results[by_params].output_ids and len(results[by_name].output_ids) == 3
    with pytest.raises(WorkbookError, match="not both"):
        server.submit([5, 6, 7], SamplingParams(), max_new_tokens=3)


def test_a_stop_token_ends_a_request_and_is_kept(shipped, alone):
    model, tokenizer = shipped
    free = alone([30, 31, 32, 33], 12, stop_at_eos=False).output_ids
    stop = free[4]
    server = Server(model, tokenizer, None, pool_tokens=1024)
    rid = server.submit([30, 31, 32, 33], max_new_tokens=12, stop_at_eos=False, stop_token_ids=[stop])
    assert server.run_until_done()[rid].output_ids == free[:free.index(stop) + 1]


def test_cancelling_frees_a_requests_pages(shipped):
    model, tokenizer = shipped
    cache = PrefixCache(PagePool.for_tokens(1024, PAGE))
    server = Server(model, tokenizer, cache, max_running=2)
    running = server.submit(list(range(100, 150)), max_new_tokens=30)
    waiting = [server.submit(list(range(200, 230 + i)), max_new_tokens=5) for i in range(2)]
    server.step()
    server.cancel(running)
    server.cancel(waiting[1])
    with pytest.raises(WorkbookError, match="not waiting or running"):
        server.cancel(running)
    results = server.run_until_done()
    assert sorted(results) == [waiting[0]]
    assert_no_leak(server)


def test_a_request_pinned_out_of_the_pool_is_dropped_with_a_clear_error(shipped):
    model, tokenizer = shipped
    cache = PrefixCache(PagePool.for_tokens(64, PAGE))  # 4 pages
    engine = Engine(model, tokenizer, cache)
    engine.generate(list(range(10, 43)), max_new_tokens=1)  # caches 2 pages
    held = cache.match(list(range(10, 43)))
    cache.lock(held.node)  # as a long-running request elsewhere would
    with pytest.raises(CacheBudgetError, match="locked"):
        engine.generate(list(range(300, 340)), max_new_tokens=8)  # needs 3 pages; only 2 can be had
    cache.unlock(held.node)
    assert engine.generate(list(range(300, 340)), max_new_tokens=8).usage.output_tokens >= 1


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; the cpu case is its twin")])])
def test_a_mixed_batch_equals_each_request_alone_on(device):
    model, tokenizer = workbook.load_model("tiny", device=device), workbook.load_tokenizer("tiny")
    server = Server(model, tokenizer, PrefixCache(PagePool.for_tokens(2048, PAGE)), max_running=16, prefill_chunk=64)
    requests = workload(tokenizer, random.Random(11), 24)
    ids = {server.submit(p, max_new_tokens=n): (p, n) for p, n in requests}
    results = server.run_until_done()
    engine = Engine(model, tokenizer)
    for rid, (prompt, max_new) in ids.items():
        ref = engine.generate(prompt, max_new_tokens=max_new)
        assert results[rid].output_ids == ref.output_ids
        assert (results[rid].first_token_logits - ref.first_token_logits).abs().max().item() <= 1e-4
    assert sum(r.preemptions for r in results.values()) > 0  # 2,048 tokens of pool is too few for 16 at once
    assert_no_leak(server)
