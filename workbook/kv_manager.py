"""The one owner of K/V memory: every page a request holds is admitted, grown, published, rolled back and freed here.

The pool counts references and the prefix cache's tree holds page ids; this class decides who
holds what, in the role vLLM gives its `KVCacheManager` and nano-vllm its `BlockManager`. A
scheduler sees only `Allocation`s: it asks for one when a request joins the batch (`admit`),
for more rows as the request grows (`grow`), hands the request's computed prompt to the prefix
cache (`publish`), drops rejected rows (`truncate`, for speculative decoding) and gives
everything back when the request leaves (`free`).

The invariant kept here, and checked by `check`: every page's reference count is the number of
live allocations whose page table lists it, plus one if the tree holds it; a page nobody
holds is free. A refused call changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

from .errors import AllocationError, WorkbookError
from .page_pool import PagePool, full_pages
from .prefix_cache import Node, PrefixCache

CACHE = "cache"  # the holder name of the prefix cache's tree, in `holders`


@dataclass(eq=False)
class Allocation:
    """The pages one request holds, in row order; opaque to a scheduler beyond its page table."""

    owner: Hashable  # who holds it (a request id), for pictures of the pool
    tenant: Hashable
    page_table: list[int]  # pool pages of its rows, in order
    cached: int  # leading rows loaded from the prefix cache when it was admitted
    node: Node | None  # the deepest tree node it keeps locked (None: none)
    frozen: int  # leading rows in pages the tree holds too: never written again, never rolled back
    freed: bool = False


class KVManager:
    """Admits, grows, publishes, rolls back and frees the K/V pages of requests over one pool (and its prefix cache)."""

    def __init__(self, pool: PagePool, prefix_cache: PrefixCache | None = None):
        if prefix_cache is not None and prefix_cache.pool is not pool:
            raise WorkbookError("The prefix cache holds pages of another KV pool; build it on this one: "
                                "PrefixCache(pool).")
        if pool.manager is not None:
            raise WorkbookError("This KV pool has its manager already; share it: KVManager.of(pool, prefix_cache).")
        self.pool, self.prefix_cache = pool, prefix_cache
        self.live: list[Allocation] = []  # in the order they were admitted
        pool.manager = self

    @classmethod
    def of(cls, pool: PagePool, prefix_cache: PrefixCache | None = None) -> KVManager:
        """The one manager of `pool`, made on first use: every server and engine on a pool shares it, so the
        reference-count invariant sees every holder."""
        manager = pool.manager
        if manager is None:
            manager = cls(pool, prefix_cache)
        elif manager.prefix_cache is not prefix_cache:
            raise WorkbookError("This KV pool is already managed with another prefix cache (or none); "
                                "a pool has one prefix cache: pass the same one.")
        return manager

    # ----- what a scheduler asks ------------------------------------------------------------------

    def cached_tokens(self, tokens: Sequence[int], tenant: Hashable = None) -> int:
        """Leading rows of `tokens` the prefix cache could load now (the page rule applied); changes nothing."""
        cache = self.prefix_cache
        return cache.match(tokens, tenant, record=False).length if cache else 0

    def available(self) -> int:
        """Pages that could be handed out now: free ones, and those of cached prefixes nobody holds."""
        return len(self.pool.free_pages) + (self.prefix_cache.evictable_pages() if self.prefix_cache else 0)

    def admit(self, tokens: Sequence[int], rows: int, tenant: Hashable = None, owner: Hashable = None) -> Allocation | None:
        """Pages for the first `rows` rows of `tokens`: the cached prefix by reference, the rest fresh; None if they cannot be had.

        Matches the prefix cache, locks the match (so making room never evicts it), retains its
        pages, and reserves the rest, evicting cold prefixes if needed. All or nothing: None
        leaves the pool, the tree and its statistics as they were.
        """
        cache = self.prefix_cache
        match = cache.match(tokens, tenant, record=False) if cache else None
        cached = match.length if match else 0
        if rows < cached:
            raise WorkbookError(f"An allocation must cover its {cached} cached rows; {rows} were asked for.")
        fresh = self.pool.pages_for_rows(rows) - (len(match.pages) if match else 0)
        if fresh > len(self.pool.free_pages) and fresh > self._available_beside(match):
            return None
        pages = list(match.pages) if match else []
        if cache:
            cache.record(match, len(tokens))  # now the match counts, in the statistics and for LRU
            cache.lock(match.node)
            self.pool.retain(pages)
        allocation = Allocation(owner, tenant, pages, cached, match.node if match else None, frozen=cached)
        self.live.append(allocation)
        self.grow(allocation, rows)
        return allocation

    def grow(self, allocation: Allocation, rows: int) -> bool:
        """Give `allocation` pages for its first `rows` rows, evicting cold prefixes if needed; False (nothing changed) if they cannot be had."""
        self._check_live(allocation)
        need = self.pool.pages_for_rows(rows) - len(allocation.page_table)
        if need <= 0:
            return True
        if need > len(self.pool.free_pages):  # only then is eviction needed, and the tree walked
            if need > self.available():
                return False
            self.prefix_cache.make_room(need)
        allocation.page_table += self.pool.allocate(need)
        return True

    def publish(self, allocation: Allocation, ids: Sequence[int]) -> int:
        """Offer the full pages of `ids` (rows already computed in `allocation`) to the prefix cache, by reference.

        The allocation then locks the deepest node of `ids` instead of the one it held, so its
        pages (its own now shared, or the tree's) cannot be evicted while it runs. Returns the
        tokens newly added to the tree (0 without a prefix cache).
        """
        self._check_live(allocation)
        cache = self.prefix_cache
        if cache is None:
            return 0
        if len(ids) > len(allocation.page_table) * self.pool.page_size:
            raise WorkbookError(f"{len(ids)} tokens do not fit the allocation's {len(allocation.page_table)} pages.")
        written, node = cache.insert_pages(ids, allocation.page_table, allocation.tenant)
        cache.lock(node)
        cache.unlock(allocation.node)
        allocation.node = node
        allocation.frozen = max(allocation.frozen, full_pages(len(ids), self.pool.page_size) * self.pool.page_size)
        return written

    def truncate(self, allocation: Allocation, rows: int) -> None:
        """Keep pages for the first `rows` rows only and give the rest back (speculative decoding's rollback).

        Rows in pages the tree holds too (a cached or published prefix) are shared with other
        requests, so they cannot be rolled back: rows below `allocation.frozen` are refused.
        """
        self._check_live(allocation)
        held = len(allocation.page_table) * self.pool.page_size
        if not allocation.frozen <= rows <= held:
            raise AllocationError(f"This allocation can be cut to {allocation.frozen}..{held} rows (its rows in the "
                                  f"prefix cache's pages are shared and stay), not {rows}.")
        keep = self.pool.pages_for_rows(rows)
        self.pool.release(allocation.page_table[keep:])
        del allocation.page_table[keep:]

    def free(self, allocation: Allocation) -> None:
        """The request is done with its pages: each loses a holder, and its cached prefix is unlocked."""
        self._check_live(allocation)
        self.pool.release(allocation.page_table)
        if self.prefix_cache:
            self.prefix_cache.unlock(allocation.node)
        allocation.page_table, allocation.node, allocation.freed = [], None, True
        self.live.remove(allocation)

    # ----- pictures and the invariant -------------------------------------------------------------

    def holders(self, page: int) -> list:
        """Who holds `page`: "cache" for the prefix cache's tree, then each live allocation's owner listing it."""
        tree = self.prefix_cache is not None and page in self.prefix_cache.held_pages()
        return [CACHE] * tree + [a.owner for a in self.live if page in a.page_table]

    def page_holders(self) -> dict[int, list]:
        """`holders` of every page in use, in one pass, for a picture of the pool."""
        held: dict[int, list] = {}
        for page in self.prefix_cache.held_pages() if self.prefix_cache else []:
            held.setdefault(page, []).append(CACHE)
        for allocation in self.live:
            for page in allocation.page_table:
                held.setdefault(page, []).append(allocation.owner)
        return held

    def check(self) -> None:
        """Raise AllocationError unless every reference count equals the page's holders, and the free list holds exactly the unheld pages."""
        expected = [0] * self.pool.num_pages
        for page, who in self.page_holders().items():
            expected[page] = len(who)
        if self.pool.refs != expected:
            wrong = [p for p, (a, b) in enumerate(zip(self.pool.refs, expected)) if a != b]
            raise AllocationError(f"Reference counts disagree with the holders on pages {wrong[:10]}.")
        free = sorted(self.pool.free_pages)
        if free != [p for p, n in enumerate(expected) if n == 0]:
            raise AllocationError("The free list is not exactly the pages nobody holds.")

    # ----- internals ------------------------------------------------------------------------------

    def _available_beside(self, match) -> int:
        """Pages that could be had while `match` is held (its pages are not evictable then)."""
        cache = self.prefix_cache
        if cache is None or match.node is None:
            return self.available()
        cache.lock(match.node)
        try:
            return self.available()
        finally:
            cache.unlock(match.node)

    def _check_live(self, allocation: Allocation) -> None:
        if allocation.freed:
            raise AllocationError(f"The allocation of {allocation.owner!r} was already freed; it holds no pages now. "
                                  "Admit the request again.")
        if allocation not in self.live:
            raise AllocationError("This allocation belongs to another KV manager.")
