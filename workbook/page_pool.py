"""The paged KV pool: fixed-size pages of K/V rows that running requests and the prefix cache share.

Every page has a reference count: one for each running request whose block table lists it, and
one if a node of the prefix cache's radix tree holds it. A request that hits the cache lists the
tree's pages in its own block table instead of copying them, so a system prompt used by many
requests sits in memory once. A page goes back to the free list when its count reaches zero.
"""

from __future__ import annotations

import torch

from .errors import WorkbookError


class PoolFullError(WorkbookError):
    """Asked for more free pages than the pool has."""


class PagePool:
    """`num_pages` pages of `page_size` K/V rows for every layer, allocated once a model is bound."""

    def __init__(self, page_size: int, num_pages: int):
        self.page_size = page_size
        self.num_pages = num_pages
        self.refs = [0] * num_pages
        self.free_pages: list[int] = list(range(num_pages))
        self.keys: torch.Tensor | None = None  # [layers, kv_heads, pages, page_size, head_dim]
        self.values: torch.Tensor | None = None

    def bind(self, model) -> None:
        """Allocate the pool for `model`'s K/V shape on its device (once; a second model must match)."""
        cfg = model.config
        shape = (cfg.num_layers, cfg.num_kv_heads, self.num_pages, self.page_size, cfg.head_dim)
        if self.keys is None:
            # Zeros, not uninitialised memory: a padded read touches rows nobody wrote, and masked
            # attention weights of exactly 0 times a NaN would still give NaN.
            self.keys = torch.zeros(shape, device=model.device, dtype=model.dtype)
            self.values = torch.zeros(shape, device=model.device, dtype=model.dtype)
        elif self.keys.shape != shape or self.keys.dtype != model.dtype or self.keys.device != model.device:
            raise WorkbookError("This KV pool already holds K/V of a model with another shape, dtype or device.")

    def bytes_per_page(self) -> int:
        if self.keys is None:
            return 0
        return 2 * self.keys[:, :, 0].numel() * self.keys.element_size()

    def pages_for_rows(self, rows: int) -> int:
        """Pages needed to hold `rows` rows, the last one possibly part full."""
        return -(-rows // self.page_size)

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

    def layer_rows(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One layer's K and V pool as rows addressed by slot = page * page_size + offset: [kv_heads, slots, head_dim]."""
        heads, dim = self.keys.shape[1], self.keys.shape[-1]
        return self.keys[layer].view(heads, -1, dim), self.values[layer].view(heads, -1, dim)
