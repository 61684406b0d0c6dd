"""The K/V manager: the one owner of pages keeps every reference count exact, refuses stale allocations, never leaks."""

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from workbook import KVManager, PagePool, PrefixCache, WorkbookError
from workbook.errors import AllocationError

PAGE = 4


def manager(pages: int = 16, cached: bool = True) -> KVManager:
    """A manager over a pool of `pages` pages (no model bound: reference counting needs no tensors)."""
    pool = PagePool(PAGE, pages)
    return KVManager(pool, PrefixCache(pool) if cached else None)


def tokens(n: int, seed: int = 0) -> list[int]:
    return random.Random(seed).choices(range(50), k=n)


def test_admit_reserves_pages_for_the_rows_asked_and_free_gives_them_back():
    kv = manager()
    allocation = kv.admit(tokens(10), rows=10, owner="a")
    assert len(allocation.page_table) == 3 and allocation.cached == 0
    assert [kv.pool.refs[p] for p in allocation.page_table] == [1, 1, 1]
    assert kv.holders(allocation.page_table[0]) == ["a"]
    kv.check()
    kv.free(allocation)
    assert kv.pool.pages_in_use == 0 and not kv.live
    kv.check()


def test_a_published_prefix_is_shared_by_reference_and_counted_once_per_holder():
    kv = manager()
    prompt = tokens(13, 1)
    first = kv.admit(prompt, rows=13, owner="first")
    assert kv.publish(first, prompt) == 12  # three full pages into the tree, by reference
    second = kv.admit(prompt + [7], rows=14, owner="second")
    assert second.cached == 12 and second.page_table[:3] == first.page_table[:3]
    for page in first.page_table[:3]:
        assert kv.pool.refs[page] == 3 and sorted(map(str, kv.holders(page))) == ["cache", "first", "second"]
    kv.check()
    kv.free(first)
    kv.free(second)
    assert kv.pool.pages_in_use == 3  # the tree's pages stay cached
    assert all(kv.pool.refs[p] == 1 for p in kv.prefix_cache.held_pages())
    kv.check()


def test_rollback_through_truncate_leaves_reference_counts_exact():
    kv = manager()
    prompt = tokens(9, 2)
    owner = kv.admit(prompt, rows=9)
    kv.publish(owner, prompt)  # rows 0..7 now shared with the tree
    assert kv.grow(owner, 9 + 8)  # room for 8 draft rows: 5 pages
    pages = list(owner.page_table)
    assert len(pages) == 5
    kv.truncate(owner, 10)  # 1 accepted draft: keep 3 pages, give 2 back
    assert owner.page_table == pages[:3]
    assert [kv.pool.refs[p] for p in pages] == [2, 2, 1, 0, 0]
    assert set(pages[3:]) <= set(kv.pool.free_pages)
    kv.check()
    with pytest.raises(AllocationError, match="shared"):
        kv.truncate(owner, 7)  # into the pages the tree holds: other requests read them
    assert owner.page_table == pages[:3]
    kv.check()


def test_an_allocation_freed_twice_or_used_after_free_is_refused_with_a_clear_error():
    kv = manager()
    allocation = kv.admit(tokens(6, 3), rows=6, owner=7)
    kv.free(allocation)
    before = list(kv.pool.refs)
    for misuse in (lambda: kv.free(allocation), lambda: kv.grow(allocation, 12),
                   lambda: kv.publish(allocation, tokens(6, 3)), lambda: kv.truncate(allocation, 0)):
        with pytest.raises(AllocationError, match="already freed"):
            misuse()
    assert kv.pool.refs == before
    kv.check()


def test_admit_is_all_or_nothing_when_the_pages_cannot_be_had():
    kv = manager(pages=4)
    held = kv.admit(tokens(12, 4), rows=12)
    stats, refs = kv.prefix_cache.stats(), list(kv.pool.refs)
    assert kv.admit(tokens(8, 5), rows=8) is None  # 2 pages wanted, 1 free
    assert not kv.grow(held, 17)  # 5 pages: more than the pool
    assert kv.prefix_cache.stats() == stats and kv.pool.refs == refs and held.page_table and len(kv.live) == 1
    kv.check()


def test_admission_evicts_cold_prefixes_but_never_a_locked_one():
    kv = manager(pages=5)
    cold, hot = tokens(8, 6), tokens(8, 7)
    for prompt in (cold, hot):
        allocation = kv.admit(prompt, rows=8)
        kv.publish(allocation, prompt)
        kv.free(allocation)
    running = kv.admit(hot + [1], rows=9)  # locks hot's pages and takes the free one
    assert kv.admit(tokens(12, 8), rows=12) is None  # 3 pages: cold's 2 are all that could be had
    newcomer = kv.admit(tokens(8, 8), rows=8)
    assert newcomer is not None  # cold was evicted to make room
    assert kv.prefix_cache.match(cold + [1]).length == 0 and kv.prefix_cache.match(hot + [1]).length == 8
    kv.free(running)
    kv.free(newcomer)
    kv.check()


def test_a_manager_refuses_a_prefix_cache_on_another_pool():
    with pytest.raises(WorkbookError, match="another KV pool"):
        KVManager(PagePool(PAGE, 4), PrefixCache(PagePool(PAGE, 4)))


# ----- random interleavings never leak a page ---------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["admit", "grow", "publish", "truncate", "free"]),
                         st.integers(0, 7), st.integers(0, 40)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, cached=st.booleans(), pages=st.integers(3, 12))
def test_random_interleavings_of_admit_grow_publish_truncate_free_never_leak_a_page(ops, cached, pages):
    kv = manager(pages, cached)
    prompts = [tokens(6 + 5 * i, seed=i % 3) for i in range(4)]  # three share a start: hits and splits
    live = []  # (allocation, its prompt)
    for op, pick, amount in ops:
        if op == "admit":
            prompt = prompts[pick % len(prompts)]
            allocation = kv.admit(prompt, rows=max(len(prompt) - 3, kv.cached_tokens(prompt)) + amount % 5)
            if allocation is not None:
                live.append((allocation, prompt))
        elif live:
            allocation, prompt = live[pick % len(live)]
            held = len(allocation.page_table) * PAGE
            if op == "grow":
                kv.grow(allocation, held + amount % 9)
            elif op == "publish":
                kv.publish(allocation, prompt[:min(len(prompt), held)])
            elif op == "truncate":
                kv.truncate(allocation, allocation.frozen + amount % (held - allocation.frozen + 1))
            else:
                kv.free(allocation)
                live.remove((allocation, prompt))
        kv.check()
        assert kv.pool.pages_in_use == len(kv.page_holders())
        if cached:  # the cache's running count of what eviction could free: the unlocked nodes' pages
            unlocked = sum(len(node.tokens) for node in kv.prefix_cache.nodes() if not node.locked) // PAGE
            assert kv.prefix_cache.evictable_pages() == unlocked
            assert kv.prefix_cache.tree_pages() == len(kv.prefix_cache.held_pages())
    for allocation, _ in live:
        kv.free(allocation)
    kv.check()
    tree = kv.prefix_cache.held_pages() if cached else []
    assert kv.pool.pages_in_use == len(tree) and all(kv.pool.refs[p] == 1 for p in tree)
    if cached:
        kv.prefix_cache.clear()
    assert kv.pool.pages_in_use == 0 and sorted(kv.pool.free_pages) == list(range(pages))


def test_every_server_on_a_pool_shares_its_one_manager(small_model, small_tokenizer):
    """Two servers over one prefix cache: one manager sees both servers' requests, so `check` counts every holder."""
    from workbook import Server
    pool = PagePool.for_tokens(512, PAGE)
    cache = PrefixCache(pool)
    first, second = Server(small_model, small_tokenizer, cache), Server(small_model, small_tokenizer, cache)
    assert first.kv is second.kv is KVManager.of(pool, cache)
    first.submit(tokens(20, 9), max_new_tokens=4)
    second.submit(tokens(20, 9) + [3], max_new_tokens=4)
    first.step()
    second.step()  # both hold pages now, some of them the same
    assert len(first.kv.live) == 2  # one request of each server
    first.kv.check()
    first.run_until_done()
    second.run_until_done()
    first.kv.check()
    with pytest.raises(WorkbookError, match="another prefix cache"):
        KVManager.of(pool, None)
    with pytest.raises(WorkbookError, match="manager already"):
        KVManager(pool, cache)  # a second owner of the same pages is refused
