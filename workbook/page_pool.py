"""The paged KV pool: fixed-size pages of K/V rows that running requests and the prefix cache share.

Every page has a reference count: one for each running request whose page table lists it, and
one if a node of the prefix cache's radix tree holds it. A request that hits the cache lists the
tree's pages in its own page table instead of copying them, so a system prompt used by many
requests sits in memory once. A page goes back to the free list when its count reaches zero.
The pool only counts; `workbook.kv_manager.KVManager` decides who holds what, and checks the counts.

The page arithmetic lives here, once: `pages_for_rows` (the pages a request holds, the last one
possibly part full), `full_pages` (the whole pages a prefix cache can keep) and `full_page_chunks`
(the tokens of each of those pages).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from .checks import check_whole
from .counting import kv_vectors_per_token
from .errors import CacheBudgetError, WorkbookError
from .kv_quant import bytes_per_row, check_kind, dequantize, quantize, storage_dtype


class PoolFullError(WorkbookError):
    """Asked for more free pages than the pool has."""


def pages_for_rows(rows: int, page_size: int) -> int:
    """Pages needed to hold `rows` rows, the last one possibly part full (a ceiling)."""
    return -(-rows // page_size)


def full_pages(tokens: int, page_size: int) -> int:
    """Whole pages `tokens` tokens fill (a floor): only full pages are ever cached."""
    return tokens // page_size


def full_page_chunks(ids: Sequence[int], page_size: int) -> Iterator[Sequence[int]]:
    """The tokens of each whole page `ids` fills, in order (a part-full last page left out), one at a time."""
    return (ids[i * page_size:(i + 1) * page_size] for i in range(full_pages(len(ids), page_size)))


class PagePool:
    """`num_pages` pages of `page_size` K/V rows for every layer, allocated once a model is bound."""

    def __init__(self, page_size: int, num_pages: int, kv_dtype: str | None = None):
        check_whole("page_size", page_size, 1)
        check_whole("num_pages", num_pages, 1)
        check_kind(kv_dtype)
        self.page_size = page_size
        self.num_pages = num_pages
        self.kv_dtype = kv_dtype  # None: rows kept in the model's dtype
        self.refs = [0] * num_pages
        self.free_pages: list[int] = list(range(num_pages))
        self.keys: torch.Tensor | None = None  # [layers, kv_heads, pages, page_size, head_dim]
        self.values: torch.Tensor | None = None
        self.params: torch.Tensor | None = None  # quantised pools: scale and offset per row, [2 (K, V), layers, kv_heads, pages, page_size, 2]
        self.model_dtype: torch.dtype | None = None
        self.manager = None  # the one KVManager that hands these pages out (`KVManager.of` sets it)

    @classmethod
    def for_tokens(cls, capacity_tokens: int, page_size: int = 16, kv_dtype: str | None = None) -> PagePool:
        """A pool of `capacity_tokens` rows (at least one page; rounded down to whole pages) in pages of `page_size` rows."""
        check_whole("page_size", page_size, 1)
        check_whole("capacity_tokens", capacity_tokens, 1, CacheBudgetError)
        if capacity_tokens < page_size:
            raise CacheBudgetError(f"A pool of {capacity_tokens} tokens holds no page of {page_size}: give it at least "
                                   f"{page_size} tokens.")
        return cls(page_size, full_pages(capacity_tokens, page_size), kv_dtype)

    @property
    def capacity_tokens(self) -> int:
        """Rows the whole pool holds."""
        return self.num_pages * self.page_size

    def bind(self, model) -> None:
        """Allocate the pool for `model`'s K/V shape on its device (once; a second model must match)."""
        cfg = model.config
        shape = (cfg.num_layers, cfg.num_kv_heads, self.num_pages, self.page_size, cfg.head_dim)
        if self.keys is None:
            # Zeros, not uninitialised memory: a padded read touches rows nobody wrote, and masked
            # attention weights of exactly 0 times a NaN would still give NaN.
            dtype = model.dtype if self.kv_dtype is None else storage_dtype(self.kv_dtype)
            self.keys = torch.zeros(shape, device=model.device, dtype=dtype)
            self.values = torch.zeros(shape, device=model.device, dtype=dtype)
            if self.kv_dtype is not None:
                self.params = torch.zeros((2, *shape[:-1], 2), device=model.device)
            self.model_dtype = model.dtype
        elif self.keys.shape != shape or self.model_dtype != model.dtype or self.keys.device != model.device:
            raise WorkbookError("This KV pool already holds K/V of a model with another shape, dtype or device.")

    def bytes_per_page(self) -> int:
        """K and V of one page in every layer and head (quantised rows counted packed, with their scales)."""
        if self.keys is None:
            return 0
        layers, heads, _, size, dim = self.keys.shape
        element = torch.empty((), dtype=self.model_dtype).element_size()
        return int(kv_vectors_per_token(layers, heads) * size * bytes_per_row(self.kv_dtype, dim, element))

    def pages_for_rows(self, rows: int) -> int:
        """Pages needed to hold `rows` rows in this pool, the last one possibly part full."""
        return pages_for_rows(rows, self.page_size)

    @property
    def pages_in_use(self) -> int:
        return self.num_pages - len(self.free_pages)

    @property
    def pages_shared(self) -> int:
        """Pages listed by more than one holder: several requests, or the tree and a request."""
        return sum(1 for r in self.refs if r > 1)

    def allocate(self, n: int) -> list[int]:
        """Take `n` free pages, each with one reference."""
        if n > len(self.free_pages):
            raise PoolFullError(f"The KV pool has {len(self.free_pages)} free pages; {n} were asked for.")
        pages = [self.free_pages.pop() for _ in range(n)]
        for page in pages:
            self.refs[page] = 1
        return pages

    def retain(self, pages: list[int]) -> None:
        """One more holder for each page (a request or tree node that points at it without copying)."""
        for page in pages:
            if self.refs[page] < 1:
                raise WorkbookError(f"Page {page} is free; only a page in use can be shared.")
            self.refs[page] += 1

    def release(self, pages: list[int]) -> None:
        """One holder fewer for each page; a page nobody holds goes back to the free list."""
        for page in pages:
            if self.refs[page] < 1:
                raise WorkbookError(f"Page {page} is already free.")
            self.refs[page] -= 1
            if self.refs[page] == 0:
                self.free_pages.append(page)

    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store one layer's rows k, v [kv_heads, n, dim] at pool slots (slot = page * page_size + offset)."""
        for i, (store, rows) in enumerate(((self.keys, k), (self.values, v))):
            flat = self._flat(store, layer)
            if self.kv_dtype is None:
                flat[:, slots] = rows
            else:
                flat[:, slots], self._flat(self.params[i], layer)[:, slots] = quantize(rows, self.kv_dtype)

    def read(self, layer: int, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One layer's K and V rows at `slots` (any shape), in the model's dtype: [kv_heads, *slots.shape, dim]."""
        out = []
        for i, store in enumerate((self.keys, self.values)):
            rows = self._flat(store, layer)[:, slots]
            if self.kv_dtype is not None:
                rows = dequantize(rows, self._flat(self.params[i], layer)[:, slots], self.model_dtype)
            out.append(rows)
        return out[0], out[1]

    @staticmethod
    def _flat(store: torch.Tensor, layer: int) -> torch.Tensor:
        """One layer of a [layers, kv_heads, pages, page_size, last] store as [kv_heads, slots, last]."""
        return store[layer].flatten(1, 2)
