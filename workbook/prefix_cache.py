"""Prefix (prompt) caching across requests: a radix tree over token ids whose nodes hold pages of a KV pool.

A request's prompt walks down the tree as far as it matches a cached prompt, in whole pages;
the request then lists those pages in its own page table instead of recomputing (or copying)
their K/V rows. After the prompt is computed, its full pages are inserted by reference so later
requests can reuse them. The tree holds page ids only; the pool it is given owns the K/V, and
`workbook.kv_manager.KVManager` is what requests go through. Ideas from SGLang's radix cache (lock references, LRU eviction of unlocked leaves)
and vLLM's prefix caching (full pages only, a per-tenant salt in the key, one shared pool).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Hashable, Sequence

from .errors import CacheBudgetError, WorkbookError
from .page_pool import PagePool, full_page_chunks, full_pages

__all__ = ["CacheBudgetError", "CacheStats", "Match", "Node", "NodeView", "PrefixCache", "loadable_tokens"]


def loadable_tokens(shared_tokens: int, prompt_tokens: int, page_size: int) -> int:
    """Tokens of a prompt a prefix cache can load when its first `shared_tokens` are cached: the page rule.

    Only whole pages are cached, and the last prompt token is always computed, because its
    logits choose the first new token. `PrefixCache.match` applies this rule; so does every lesson.
    """
    return max(min(shared_tokens, prompt_tokens - 1), 0) // page_size * page_size


@dataclass(eq=False)
class Node:
    """One edge of the radix tree: a run of whole pages of tokens, and the pool pages holding their K/V."""

    tokens: tuple[int, ...]
    pages: list[int]
    parent: Node | None
    children: dict[tuple[int, ...], Node] = field(default_factory=dict)  # keyed by the child's first page of tokens
    lock_ref: int = 0  # how many running requests use this node; locked nodes are never evicted
    last_access: int = 0
    hits: int = 0
    id: int = 0


@dataclass
class Match:
    """The longest cached prefix of a prompt: its length in tokens and the pool pages holding it."""

    length: int
    pages: list[int]
    node: Node | None  # the deepest node the match reached (None: no hit); lock it while the request runs


@dataclass
class CacheStats:
    queries: int
    queried_tokens: int
    hit_tokens: int
    inserted_tokens: int
    evictions: int  # nodes evicted
    evicted_tokens: int
    pages_in_use: int
    pages_total: int
    bytes_in_use: int

    @property
    def hit_rate(self) -> float:
        """Hit tokens / queried tokens, as vLLM reports it."""
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else 0.0


@dataclass(frozen=True)
class NodeView:
    """A read-only snapshot of one tree node, for plots."""

    id: int
    parent_id: int | None
    tenant: Hashable
    depth_tokens: int  # tokens from the root to the start of this node
    tokens: tuple[int, ...]
    hits: int
    last_access: int
    locked: bool


class PrefixCache:
    """Longest-prefix reuse of K/V rows across requests, in whole pages of `pool`, the KV pool it shares with them."""

    def __init__(self, pool: PagePool):
        if not isinstance(pool, PagePool):
            raise WorkbookError("PrefixCache takes the KV pool it shares with running requests, e.g. "
                                f"PrefixCache(PagePool.for_tokens(8192, page_size=16)); not {type(pool).__name__}.")
        self.pool = pool
        self.roots: dict[Hashable, Node] = {}  # one subtree per tenant: the tenant salts every key
        self._clock = itertools.count(1)
        self._ids = itertools.count(1)
        self._stats = dict(queries=0, queried_tokens=0, hit_tokens=0, inserted_tokens=0, evictions=0, evicted_tokens=0)
        # Kept as the tree changes, so a scheduler asking what eviction could free does not walk the tree:
        self._pages = 0  # pages the tree holds
        self._locked_pages = 0  # of those, the pages of locked nodes (a lock pins a node's ancestors too)

    # ----- the tree -----------------------------------------------------------------------------

    def match(self, ids: Sequence[int], tenant: Hashable = None, *, record: bool = True) -> Match:
        """The longest cached prefix of `ids`, in whole pages, never reaching the last token.

        The last prompt position is always left to compute, because its logits give the first
        new token. Counts as one query in the statistics and marks the path as used, unless
        `record=False` (a scheduler asking whether a request would fit before admitting it).
        """
        ids = list(ids)
        path, length = self._walk(ids[:loadable_tokens(len(ids), len(ids), self.pool.page_size)], tenant)
        found = Match(length, [page for node, same in path for page in node.pages[:same]], path[-1][0] if path else None)
        if record:
            self.record(found, len(ids))
        return found

    def record(self, match: Match, queried_tokens: int) -> None:
        """Count `match` as one query of `queried_tokens` tokens and mark its path as just used.

        What `match` does unless `record=False`: a scheduler that probed first records the
        probe once it admits the request, without walking the tree again.
        """
        now = next(self._clock)
        node = match.node
        while node is not None and node.parent is not None:  # up to a tenant's root, which is not a node of the path
            node.hits += 1
            node.last_access = now
            node = node.parent
        self._stats["queries"] += 1
        self._stats["queried_tokens"] += queried_tokens
        self._stats["hit_tokens"] += match.length

    def insert_pages(self, ids: Sequence[int], pages: Sequence[int], tenant: Hashable = None) -> tuple[int, Node | None]:
        """Add the full pages of `ids` by reference: `pages[i]` already holds rows i*page_size.. of `ids` in the pool.

        Nothing is copied or allocated; the tree becomes one more holder of the pages it did not
        have (pages already in the tree are kept, not replaced). Returns the tokens newly added
        and the deepest node of `ids` now in the tree (lock it while the pages are in use).
        """
        ids, pages, size = list(ids), list(pages), self.pool.page_size
        whole = full_pages(len(ids), size)
        end = whole * size
        if len(pages) < whole:
            raise WorkbookError(f"{len(ids)} tokens fill {whole} pages; {len(pages)} were given.")
        path, length = self._walk(ids[:end], tenant)
        now = next(self._clock)
        for node, _ in path:
            node.last_access = now
        anchor = path[-1][0] if path else None
        if length == end:
            return 0, anchor
        stopped_inside = bool(path) and path[-1][1] < len(path[-1][0].pages)
        parent = self._split(*path[-1]) if stopped_inside else anchor or self._root(tenant)
        tokens, new = tuple(ids[length:end]), pages[full_pages(length, size):whole]
        self.pool.retain(new)
        self._pages += len(new)
        node = Node(tokens, new, parent, last_access=now, id=next(self._ids))
        parent.children[tokens[:size]] = node
        self._stats["inserted_tokens"] += len(tokens)
        return len(tokens), node

    def lock(self, node: Node | None) -> None:
        """Pin `node` and its ancestors: a running request is using their pages. None pins nothing."""
        while node is not None:
            self._locked_pages += len(node.pages) * (node.lock_ref == 0)
            node.lock_ref += 1
            node = node.parent

    def unlock(self, node: Node | None) -> None:
        while node is not None:
            node.lock_ref -= 1
            self._locked_pages -= len(node.pages) * (node.lock_ref == 0)
            node = node.parent

    def evictable_pages(self) -> int:
        """Pages that eviction could free now: those of nodes with no lock on them."""
        return self._pages - self._locked_pages

    def clear(self) -> None:
        """Evict everything that is not locked."""
        while self._evict_one():
            pass

    # ----- statistics and views -----------------------------------------------------------------

    def held_pages(self) -> list[int]:
        """The pool pages the tree holds, every node's."""
        return [page for node in self._all_nodes() for page in node.pages]

    def tree_pages(self) -> int:
        """How many pages the tree holds."""
        return self._pages

    def stats(self) -> CacheStats:
        pool = self.pool  # pages in use by the tree, by running requests, or by both
        return CacheStats(**self._stats, pages_in_use=pool.pages_in_use, pages_total=pool.num_pages,
                          bytes_in_use=pool.pages_in_use * pool.bytes_per_page())

    def nodes(self) -> list[NodeView]:
        """Every node of every tenant's tree, parents before children."""
        views = []
        for tenant, root in self.roots.items():
            stack = [(root, 0)]
            while stack:
                node, depth = stack.pop()
                for child in node.children.values():
                    views.append(NodeView(child.id, node.id if node.parent else None, tenant, depth, child.tokens,
                                          child.hits, child.last_access, child.lock_ref > 0))
                    stack.append((child, depth + len(child.tokens)))
        return views

    # ----- internals ----------------------------------------------------------------------------

    def _root(self, tenant: Hashable) -> Node:
        if tenant not in self.roots:
            self.roots[tenant] = Node((), [], None, id=0)
        return self.roots[tenant]

    def _walk(self, ids: Sequence[int], tenant: Hashable) -> tuple[list[tuple[Node, int]], int]:
        """Follow `ids` down the tree: each node entered with how many of its pages match, and the tokens matched."""
        path, length = [], 0
        node = self.roots.get(tenant)
        while node is not None and length + self.pool.page_size <= len(ids):
            child = node.children.get(tuple(ids[length:length + self.pool.page_size]))
            if child is None:
                break
            same = self._common_pages(child.tokens, ids[length:])
            path.append((child, same))
            length += same * self.pool.page_size
            node = child if same == len(child.pages) else None
        return path, length

    def _common_pages(self, tokens: tuple[int, ...], ids: Sequence[int]) -> int:
        """How many leading whole pages of `tokens` equal those of `ids`."""
        n = 0
        for ours, theirs in zip(full_page_chunks(tokens, self.pool.page_size), full_page_chunks(ids, self.pool.page_size)):
            if ours != tuple(theirs):  # a node's tokens are a tuple already
                break
            n += 1
        return n

    def _split(self, child: Node, n_pages: int) -> Node:
        """Cut `child` after `n_pages`; return the new upper part (same content, one more node)."""
        cut = n_pages * self.pool.page_size
        upper = Node(child.tokens[:cut], child.pages[:n_pages], child.parent, lock_ref=child.lock_ref,
                     last_access=child.last_access, hits=child.hits, id=next(self._ids))
        child.parent.children[upper.tokens[:self.pool.page_size]] = upper
        child.tokens, child.pages, child.parent = child.tokens[cut:], child.pages[n_pages:], upper
        upper.children[child.tokens[:self.pool.page_size]] = child
        return upper

    def _all_nodes(self):
        for root in self.roots.values():
            stack = list(root.children.values())
            while stack:
                node = stack.pop()
                yield node
                stack.extend(node.children.values())

    def make_room(self, n_pages: int) -> None:
        """Evict least recently used unlocked leaves until `n_pages` pages are free; CacheBudgetError if they cannot be."""
        free = self.pool.free_pages
        if n_pages > len(free) + self.evictable_pages():
            raise CacheBudgetError(
                f"The prefix cache needs {n_pages} free pages of {self.pool.page_size} tokens but can free at most "
                f"{len(free) + self.evictable_pages()} of its {self.pool.num_pages}. Raise capacity_tokens."
            )
        while len(free) < n_pages:
            self._evict_one()

    def _evict_one(self) -> bool:
        """Free the least recently used unlocked leaf; False if there is none."""
        leaves = [n for n in self._all_nodes() if not n.children and n.lock_ref == 0]
        if not leaves:
            return False
        victim = min(leaves, key=lambda n: n.last_access)
        del victim.parent.children[victim.tokens[:self.pool.page_size]]
        self.pool.release(victim.pages)
        self._pages -= len(victim.pages)
        self._stats["evictions"] += 1
        self._stats["evicted_tokens"] += len(victim.tokens)
        return True
