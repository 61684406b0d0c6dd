"""The radix-tree prefix cache and the engine: hits equal cold runs, failures change nothing, locks hold."""

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from workbook import (CacheBudgetError, ContextLengthError, EmptyInputError, Engine, KVManager, PagePool, PrefixCache,
                      WorkbookError)
from workbook.paged_attention import BatchSlice, PagedBatch
from workbook.prefix_cache import loadable_tokens

VOCAB = 320


def snapshot(cache: PrefixCache):
    """Everything observable about a prefix cache, to check that a failed request changed nothing."""
    pool = cache.pool
    return (cache.nodes(), cache.stats(), sorted(pool.free_pages),
            None if pool.keys is None else (pool.keys.clone(), pool.values.clone()))


def assert_same(a, b):
    assert a[:3] == b[:3]
    assert (a[3] is None) == (b[3] is None)
    if a[3] is not None:
        assert torch.equal(a[3][0], b[3][0]) and torch.equal(a[3][1], b[3][1])


def ids(n, seed):
    return random.Random(seed).choices(range(VOCAB), k=n)


# ----- hits equal cold runs, across many random prompt families ----------------------------------

@st.composite
def prompt_families(draw):
    """A shared prefix and requests that repeat it, branch off it, cut it short or extend it."""
    prefix = draw(st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=70))
    requests = []
    for _ in range(draw(st.integers(2, 5))):
        cut = draw(st.integers(0, len(prefix)))
        suffix = draw(st.lists(st.integers(0, VOCAB - 1), max_size=12))
        request = prefix[:cut] + suffix
        requests.append(request or prefix)
    if draw(st.booleans()):
        requests.append(list(requests[0]))  # an exact repeat: the biggest hit there can be
    return requests, draw(st.sampled_from([1, 4, 16]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(family=prompt_families())
def test_hits_give_the_same_logits_and_greedy_tokens_as_cold_runs(small_model, small_tokenizer, family):
    requests, page_size = family
    cached = Engine(small_model, small_tokenizer, PrefixCache(PagePool.for_tokens(4096, page_size)))
    cold = Engine(small_model, small_tokenizer)
    for prompt in requests:
        hit = cached.generate(prompt, max_new_tokens=3, stop_at_eos=False)
        ref = cold.generate(prompt, max_new_tokens=3, stop_at_eos=False)
        assert (hit.first_token_logits - ref.first_token_logits).abs().max().item() <= 1e-4
        assert hit.output_ids == ref.output_ids
        u = hit.usage
        assert u.total_input_tokens == len(prompt) and u.output_tokens == 3
        assert u.cache_read_tokens % page_size == 0 and u.cache_read_tokens <= len(prompt) - 1
        assert hit.provenance == ["loaded"] * u.cache_read_tokens + ["computed"] * (len(prompt) - u.cache_read_tokens)
    assert all(not n.locked for n in cached.prefix_cache.nodes())


def test_repeat_hits_every_full_page_but_the_one_holding_the_last_token(small_model, small_tokenizer):
    engine = Engine(small_model, small_tokenizer, PrefixCache(PagePool.for_tokens(1024, 16)))
    prompt = ids(64, seed=1)
    first = engine.generate(prompt, max_new_tokens=2)
    assert (first.usage.cache_read_tokens, first.usage.cache_write_tokens, first.usage.input_tokens) == (0, 64, 0)
    again = engine.generate(prompt, max_new_tokens=2)
    assert (again.usage.cache_read_tokens, again.usage.cache_write_tokens, again.usage.input_tokens) == (48, 0, 16)
    short = engine.generate(prompt[:10], max_new_tokens=2)  # shorter than a page: nothing to reuse or store
    assert (short.usage.cache_read_tokens, short.usage.cache_write_tokens, short.usage.input_tokens) == (0, 0, 10)
    stats = engine.prefix_cache.stats()
    assert stats.queries == 3 and stats.hit_tokens == 48
    assert stats.hit_rate == pytest.approx(48 / (64 + 64 + 10))


def test_sampling_settings_never_change_a_hit(small_model, small_tokenizer):
    engine = Engine(small_model, small_tokenizer, PrefixCache(PagePool.for_tokens(512, 8)))
    prompt = ids(40, seed=2)
    engine.generate(prompt, max_new_tokens=1)
    hot = engine.generate(prompt, max_new_tokens=4, temperature=1.3, top_p=0.8, seed=5)
    assert hot.usage.cache_read_tokens == 32
    assert hot.output_ids == engine.generate(prompt, max_new_tokens=4, temperature=1.3, top_p=0.8, seed=5).output_ids


def test_tenants_never_share_hits(small_model, small_tokenizer):
    engine = Engine(small_model, small_tokenizer, PrefixCache(PagePool.for_tokens(512, 4)))
    prompt = ids(30, seed=3)
    engine.generate(prompt, max_new_tokens=1, tenant="acme")
    assert engine.generate(prompt, max_new_tokens=1, tenant="globex").usage.cache_read_tokens == 0
    assert engine.generate(prompt, max_new_tokens=1, tenant="acme").usage.cache_read_tokens == 28
    assert engine.generate(prompt, max_new_tokens=1).usage.cache_read_tokens == 0  # no tenant is a tenant too


def test_segments_are_joined_as_tokens_so_the_seam_never_retokenizes(small_model, small_tokenizer):
    engine = Engine(small_model, small_tokenizer)
    prefix, suffix = "You are a careful support assist", "ant for an online shop."
    joined = engine.prompt_ids([prefix, suffix])
    assert joined == small_tokenizer.encode(prefix) + small_tokenizer.encode(suffix)
    assert joined != small_tokenizer.encode(prefix + suffix)  # as one string, the seam would merge
    chat = engine.prompt_ids([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert chat == small_tokenizer.encode("<|system|>Be brief.<|end|><|user|>Hi<|end|>")


# ----- failures change nothing ---------------------------------------------------------------------

@pytest.mark.parametrize("call,error", [
    (dict(prompt=""), EmptyInputError),
    (dict(prompt=[]), EmptyInputError),
    (dict(prompt=ids(90, 4), max_new_tokens=10), ContextLengthError),  # the model's context is 96
    (dict(prompt=ids(20, 4), temperature=-1.0), WorkbookError),
    (dict(prompt=ids(20, 4), top_p=0.0), WorkbookError),
    (dict(prompt=ids(20, 4), max_new_tokens=0), WorkbookError),
    (dict(prompt=[1, 2, VOCAB]), WorkbookError),
    (dict(prompt=ids(70, 4)), CacheBudgetError),  # 4 pages of 16 > the 3-page budget
])
def test_a_refused_request_leaves_the_cache_exactly_as_it_was(small_model, small_tokenizer, call, error):
    engine = Engine(small_model, small_tokenizer, PrefixCache(PagePool.for_tokens(48, 16)))
    engine.generate(ids(40, seed=5), max_new_tokens=2)
    before = snapshot(engine.prefix_cache)
    with pytest.raises(error):
        engine.generate(**{"max_new_tokens": 2, **call})
    assert_same(snapshot(engine.prefix_cache), before)


def test_too_small_a_budget_is_refused_up_front():
    with pytest.raises(CacheBudgetError, match="A pool of 8 tokens holds no page of 16"):
        PagePool.for_tokens(8, 16)
    for budget in (16.0, True):  # not a whole number of tokens
        with pytest.raises(CacheBudgetError, match="capacity_tokens must be a whole number"):
            PagePool.for_tokens(budget, 16)
    with pytest.raises(WorkbookError, match="PagePool"):
        PrefixCache(16)  # the old PrefixCache(page_size, capacity_tokens) call: the pool is built first now


# ----- eviction, locks, and the pool going back to its baseline ------------------------------------

def manager(model, page_size: int, capacity_tokens: int) -> KVManager:
    """A K/V manager over a fresh pool for `model`, with a prefix cache on it."""
    pool = PagePool.for_tokens(capacity_tokens, page_size)
    pool.bind(model)
    return KVManager(pool, PrefixCache(pool))


def fill(kv: KVManager, model, prompt: list[int]) -> bool:
    """Compute `prompt`'s rows on the paged path and publish its full pages, as a finished request does; False if no room."""
    allocation = kv.admit(prompt, len(prompt))
    if allocation is None:
        return False
    past = allocation.cached
    model.forward_paged(PagedBatch(kv.pool, [BatchSlice(allocation.page_table, past, prompt[past:])]))
    kv.publish(allocation, prompt)
    kv.free(allocation)
    return True


def test_lru_evicts_the_least_recently_used_unlocked_leaf(small_model):
    kv = manager(small_model, 8, 32)  # room for two 16-token prompts
    cache = kv.prefix_cache
    a, b, c = ids(16, 10), ids(16, 11), ids(16, 12)
    for prompt in (a, b):
        assert fill(kv, small_model, prompt)
    cache.match(a + [1])  # touch a, so b is now the least recently used
    assert fill(kv, small_model, c)
    assert cache.match(a + [1]).length == 16 and cache.match(c + [1]).length == 16
    assert cache.match(b + [1]).length == 0
    assert cache.stats().evictions == 1 and cache.stats().evicted_tokens == 16


def test_a_probe_recorded_later_counts_as_the_match_would_have(small_model):
    """`match(record=False)` then `record` (what an admission does) leaves the cache as one `match` would."""
    prompts = [ids(40, 20), ids(40, 20)[:24] + ids(16, 21)]  # they share 24 tokens: 3 pages of 8
    caches = []
    for probed in (False, True):
        kv = manager(small_model, 8, 128)
        for prompt in prompts:
            assert fill(kv, small_model, prompt)
        cache, query = kv.prefix_cache, prompts[1][:20] + [5] * 9
        if probed:
            found = cache.match(query, record=False)
            assert cache.stats().queries == 2  # the probe counted nothing yet
            cache.record(found, len(query))
        else:
            found = cache.match(query)
        caches.append((found.length, cache.stats(), cache.nodes()))
        KVManager.of(cache.pool, cache).check()
    assert caches[0] == caches[1] and caches[0][0] == 16 and caches[0][1].queries == 3


def test_eviction_never_frees_a_locked_page(small_model):
    kv = manager(small_model, 8, 32)
    cache = kv.prefix_cache
    a, b = ids(16, 20), ids(16, 21)
    assert fill(kv, small_model, a)
    held = cache.match(a + [1])
    cache.lock(held.node)
    pool_rows = kv.pool.keys[:, :, held.pages].clone()
    assert fill(kv, small_model, b)
    before = snapshot(cache)
    assert not fill(kv, small_model, ids(32, 22))  # needs 4 pages; only b's 2 can be had
    assert_same(snapshot(cache), before)
    assert fill(kv, small_model, ids(16, 23))  # evicts b, never a
    assert cache.match(a + [1]).pages == held.pages
    assert torch.equal(kv.pool.keys[:, :, held.pages], pool_rows)
    cache.unlock(held.node)
    assert all(not n.locked for n in cache.nodes())
    kv.check()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 40), st.booleans()), min_size=1, max_size=12))
def test_random_inserts_under_pressure_keep_every_locked_path_intact(small_model, ops):
    kv = manager(small_model, 4, 64)
    cache = kv.prefix_cache
    bases = [ids(40, 100 + i) for i in range(6)]
    held = []
    for base, length, keep in ops:
        prompt = bases[base][:length] + ids(3, length)
        fill(kv, small_model, prompt)  # may find no room: then nothing changes
        match = cache.match(prompt)
        if keep and match.node is not None:
            cache.lock(match.node)
            held.append((prompt, match, kv.pool.keys[:, :, match.pages].clone()))
        for p, m, rows in held:
            assert cache.match(p).pages[:len(m.pages)] == m.pages
            assert torch.equal(kv.pool.keys[:, :, m.pages], rows)
        kv.check()
    for _, m, _ in held:
        cache.unlock(m.node)
    cache.clear()
    assert cache.pool.pages_in_use == 0 and cache.nodes() == []


def test_pool_usage_returns_to_baseline(small_model, small_tokenizer):
    engine = Engine(small_model, small_tokenizer, PrefixCache(PagePool.for_tokens(256, 4)))
    for seed in range(5):
        engine.generate(ids(10, 1) + ids(12, seed), max_new_tokens=2)
    stats = engine.prefix_cache.stats()
    assert stats.pages_in_use > 0 and stats.bytes_in_use == stats.pages_in_use * engine.prefix_cache.pool.bytes_per_page()
    assert all(not n.locked for n in engine.prefix_cache.nodes())
    engine.prefix_cache.clear()
    assert engine.prefix_cache.pool.pages_in_use == 0 and engine.prefix_cache.nodes() == []


def test_tree_view_shows_shared_prefixes_as_one_branch(small_model):
    kv = manager(small_model, 4, 256)
    cache = kv.prefix_cache
    shared = ids(8, 30)
    for tail in (ids(8, 31), ids(8, 32)):
        assert fill(kv, small_model, shared + tail)
    cache.match(shared + ids(8, 31) + [0])
    nodes = cache.nodes()
    root_children = [n for n in nodes if n.parent_id is None]
    assert len(nodes) == 3 and len(root_children) == 1 and root_children[0].tokens == tuple(shared)
    leaves = [n for n in nodes if n.parent_id == root_children[0].id]
    assert sorted(n.depth_tokens for n in leaves) == [8, 8]
    # Admitting the second prompt hit the first one's node before its publish split it (both halves keep that
    # hit); the match above hit the shared branch and the first leaf once more; the second leaf was never hit.
    assert root_children[0].hits == 2 and sorted(n.hits for n in leaves) == [0, 2]


# ----- the page rule, written once -------------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cached_len=st.integers(1, 60), prompt_len=st.integers(1, 60), shared=st.integers(0, 60),
       page_size=st.sampled_from([1, 2, 3, 4, 8, 16]))
def test_match_loads_exactly_what_loadable_tokens_says(small_model, cached_len, prompt_len, shared, page_size):
    cached = ids(cached_len, 41)
    shared = min(shared, cached_len, prompt_len)
    tail = [(cached[i] + 1) % VOCAB if i < cached_len else 7 for i in range(shared, prompt_len)]  # differs at once
    prompt = cached[:shared] + tail
    kv = manager(small_model, page_size, 128)
    assert fill(kv, small_model, cached)
    assert kv.prefix_cache.match(prompt).length == loadable_tokens(shared, prompt_len, page_size)


def test_loadable_tokens_by_hand():
    assert loadable_tokens(128, 128, 16) == 112  # the same prompt twice: the last page holds the last token
    assert loadable_tokens(300, 2_000, 64) == 256  # a change at token 300: whole pages before it
    assert loadable_tokens(5, 6, 1) == 5 and loadable_tokens(0, 1, 1) == 0
