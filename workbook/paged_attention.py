"""Attention for a batch of requests whose K/V rows live in pages of a shared pool.

One forward pass runs every scheduled request's new tokens side by side, flattened into one
sequence of N tokens: the projections and the MLP see one [1, N, hidden] tensor, whatever mix of
prefill chunks and single decode tokens it holds. Only attention needs to know which tokens
belong to which request. `PagedBatch` records that layout; `paged_attention` is the one place
that reads a request's rows back through its page table, in one of three ways (`ATTENTION_KINDS`):

- "gather" (the default, and the checked reference): each group's rows are gathered slot by slot
  through the page tables into a padded batch, then attended with PyTorch's fused kernel. Simple,
  exact, and a copy of every cached row in every layer.
- "pages": the same attention, but each request's pages are copied whole (one `index_select` of
  page-sized blocks), not row by row; the padding is whole pages, masked. Still a copy, but a block
  copy: about twice as fast a read on a CPU, and nothing to compile. Needs a pool in the model's dtype.
- "flex": PyTorch's FlexAttention over the whole pool, with a block mask built from the page tables,
  so the kernel visits only each request's pages and reads them where they lie: no copy at all. It
  is compiled (`torch.compile`, 20 to 40 s on a CPU the first time a shape is seen), so it suits long
  runs and GPUs, not a lesson's first cell. Needs a pool in the model's dtype.

Tests hold "pages" and "flex" equal to "gather".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F

from .errors import WorkbookError
from .page_pool import PagePool

ATTENTION_KINDS = ("gather", "pages", "flex")
FLEX_QUERY_BLOCK = 128  # queries per FlexAttention block (its default); a block's keys are one page
FLEX_FEWEST_QUERIES = 16  # a step's queries are padded to at least this many: decode steps of 1 to 16 share one shape


@dataclass
class BatchSlice:
    """One request's part of a step: its page table, rows already in the pool, and new token ids."""

    page_table: list[int]  # pool pages holding the request's rows, in order
    past: int  # rows already in the pool (cached or computed in earlier steps)
    new_ids: list[int]  # tokens computed in this step; their rows go to positions past..past+len-1
    scored: int = 1  # how many of its last new tokens get logits (speculative verification scores every draft)


class PagedBatch:
    """The layout of one step over a paged pool, built once and read by every layer.

    Passed to the model where a `KVCache` would go: each layer calls `attend`, which writes the
    new rows into their pages and attends through the page tables. Requests are read in groups
    of similar width, so a one-token decode is never padded to a long prompt chunk: all decodes
    form one group, and each prompt chunk is a group of its own.
    """

    def __init__(self, pool: PagePool, slices: list[BatchSlice], sliding_window: int | None = None):
        device = pool.keys.device
        self.pool = pool
        counts = [len(s.new_ids) for s in slices]
        starts = [0]
        for n in counts:
            starts.append(starts[-1] + n)
        rows = [slots(s.page_table, s.past + n, pool.page_size) for s, n in zip(slices, counts)]
        self.input_ids = torch.tensor([[i for s in slices for i in s.new_ids]], dtype=torch.long, device=device)
        self.positions = torch.cat([torch.arange(s.past, s.past + n) for s, n in zip(slices, counts)]).to(device)
        self.write_slots = torch.cat([r[s.past:] for r, s in zip(rows, slices)]).to(device)
        # The flat index of every token that gets logits: each request's last `scored` new tokens, in order.
        self.last_rows = torch.tensor([i for s, start, n in zip(slices, starts, counts)
                                       for i in range(start + n - s.scored, start + n)], device=device)
        decodes = [b for b, n in enumerate(counts) if n == 1]
        chunks = [[b] for b, n in enumerate(counts) if n > 1]
        self.groups = [AttentionGroup([slices[b] for b in g], [rows[b] for b in g], [starts[b] for b in g],
                                      sliding_window, device) for g in ([decodes] if decodes else []) + chunks]
        self.slices, self.sliding_window = slices, sliding_window
        self.attention = "gather"  # how `attend` reads the pool: one of ATTENTION_KINDS (the model sets it)
        self._block_mask = None  # built by the first layer that reads with "flex", shared by the rest

    @torch.compiler.disable  # a compiled step runs this as plain Python: its layout changes every step
    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               sliding_window: int | None = None) -> torch.Tensor:
        """Write this step's K/V rows into their pages, then attend; q [1, heads, N, dim] -> [1, heads, N, dim].

        (`sliding_window` is already in each group's mask, built once per step.)
        """
        self.pool.write(layer, self.write_slots, k[0], v[0])
        if self.attention == "flex":
            if self._block_mask is None:
                self._block_mask = page_block_mask(self.slices, self.positions, self.pool, self.sliding_window)
            return flex_paged_attention(q, self.pool, layer, self._block_mask)
        read = paged_attention if self.attention == "gather" else paged_attention_by_page
        out = torch.empty_like(q)
        for group in self.groups:
            out[0, :, group.tokens] = read(q, self.pool, layer, group)
        return out


def slots(page_table: list[int], rows: int, page_size: int) -> torch.Tensor:
    """Pool slots (page * page_size + offset) of a request's first `rows` rows."""
    positions = torch.arange(rows)
    return torch.tensor(page_table, dtype=torch.long)[positions // page_size] * page_size + positions % page_size


class AttentionGroup:
    """Requests read together in one padded attention call: their rows' slots, their queries, and the mask."""

    def __init__(self, slices: list[BatchSlice], rows: list[torch.Tensor], starts: list[int],
                 sliding_window: int | None, device):
        counts = [len(s.new_ids) for s in slices]
        longest, widest = max(len(r) for r in rows), max(counts)
        read_slots = torch.zeros(len(slices), longest, dtype=torch.long)  # padding reads slot 0, then is masked
        query_index = torch.zeros(len(slices), widest, dtype=torch.long)
        for b, (r, start, n) in enumerate(zip(rows, starts, counts)):
            read_slots[b, :len(r)] = r
            query_index[b, :n] = torch.arange(start, start + n)
        self.read_slots = read_slots.to(device)
        self.query_index = query_index.to(device)  # flat token of each (request, query); padding points at any token
        self.request = torch.repeat_interleave(torch.arange(len(slices)), torch.tensor(counts)).to(device)
        self.offset = torch.cat([torch.arange(n) for n in counts]).to(device)
        self.tokens = torch.cat([torch.arange(start, start + n) for start, n in zip(starts, counts)]).to(device)
        # One prompt from its first token: plain causal attention, which PyTorch runs without building a mask.
        self.plain_causal = len(slices) == 1 and slices[0].past == 0 and sliding_window is None
        self.mask = None if self.plain_causal else causal_page_mask(slices, longest, widest, sliding_window).to(device)
        self.slices, self.widest, self.sliding_window, self.device = slices, widest, sliding_window, device
        self._page_layout = None

    def page_layout(self, page_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """For the "pages" read: each request's pages [batch, most pages] (padding: page 0) and the mask over them."""
        if self._page_layout is None:
            tables = [s.page_table[:-(-(s.past + len(s.new_ids)) // page_size)] for s in self.slices]
            most = max(len(t) for t in tables)
            pages = torch.zeros(len(tables), most, dtype=torch.long)
            for b, table in enumerate(tables):
                pages[b, :len(table)] = torch.tensor(table, dtype=torch.long)
            mask = None if self.plain_causal else \
                causal_page_mask(self.slices, most * page_size, self.widest, self.sliding_window).to(self.device)
            self._page_layout = pages.to(self.device), mask
        return self._page_layout


def causal_page_mask(slices: list[BatchSlice], longest: int, widest: int, sliding_window: int | None) -> torch.Tensor:
    """[batch, 1, widest, longest]: query j of request b sees its own rows at or before position past + j.

    Padding queries get the same rule (so every row has a key and softmax stays finite);
    their outputs are dropped. Padding keys lie past each request's length and are never seen.
    """
    past = torch.tensor([s.past for s in slices])[:, None, None]
    length = torch.tensor([s.past + len(s.new_ids) for s in slices])[:, None, None]
    query_pos = past + torch.arange(widest)[None, :, None]
    key_pos = torch.arange(longest)[None, None, :]
    allowed = (key_pos <= query_pos) & (key_pos < length)
    if sliding_window is not None:
        allowed &= key_pos > query_pos - sliding_window
    return allowed[:, None]


def paged_attention(q: torch.Tensor, pool: PagePool, layer: int, group: AttentionGroup) -> torch.Tensor:
    """Each request's queries attend to its own rows, read from the pool through its page table.

    q: [1, heads, N, dim], the whole step's queries; `layer` of `pool` holds the rows. Returns [heads, tokens of the group, dim]. The read gathers the group's rows into
    a padded [batch, kv_heads, longest, dim] tensor and masks the padding: simple and exact. This
    function is the one place that reads paged K/V, so a paged-attention kernel that reads pages
    in place (FlashInfer's or vLLM's, on CUDA) could replace it without touching the scheduler.
    """
    keys, values = pool.read(layer, group.read_slots)  # [kv_heads, batch, longest, dim]
    return attend_group(q, keys, values, group, group.mask)


def paged_attention_by_page(q: torch.Tensor, pool: PagePool, layer: int, group: AttentionGroup) -> torch.Tensor:
    """`paged_attention`, reading each request's pages whole: [kv_heads, batch, most pages * page_size, dim].

    One `index_select` per tensor copies page-sized blocks instead of indexing row by row; the
    rows past a request's length (the rest of its last page, padding pages) are masked.
    """
    pages, mask = group.page_layout(pool.page_size)
    batch, width = pages.shape[0], pages.shape[1] * pool.page_size
    keys, values = (store[layer].index_select(1, pages.flatten()).view(store.shape[1], batch, width, store.shape[-1])
                    for store in (pool.keys, pool.values))
    return attend_group(q, keys, values, group, mask)


def attend_group(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, group: AttentionGroup,
                 mask: torch.Tensor | None) -> torch.Tensor:
    """The group's queries against its read rows (keys, values [kv_heads, batch, width, dim]): [heads, tokens, dim].

    (A plain causal group is one prompt from row 0: PyTorch's causal rule lines query i up with key
    i, so padding keys after the prompt are never seen.)
    """
    padded_q = q[0][:, group.query_index].transpose(0, 1)  # [batch, heads, widest, dim]
    out = F.scaled_dot_product_attention(padded_q, keys.transpose(0, 1), values.transpose(0, 1), attn_mask=mask,
                                         is_causal=group.plain_causal, enable_gqa=q.shape[1] != keys.shape[0])
    return out[group.request, :, group.offset].transpose(0, 1)  # [heads, tokens of the group, dim]


def check_attention_kind(kind: str, pool: PagePool | None = None) -> None:
    """Refuse an unknown kind, or "pages" and "flex" over a quantised pool (its rows are widened row by row)."""
    if kind not in ATTENTION_KINDS:
        raise WorkbookError(f"attention must be one of {', '.join(map(repr, ATTENTION_KINDS))}, not {kind!r}.")
    if kind != "gather" and pool is not None and pool.kv_dtype is not None:
        raise WorkbookError(f"attention={kind!r} reads the pool's pages as they are stored, so it needs a pool in the "
                            f"model's dtype; this one stores {pool.kv_dtype}. Use attention='gather' for a quantised pool.")


# ----- reading pages in place: FlexAttention with a block mask built from the page tables -----------------

def page_block_mask(slices: list[BatchSlice], positions: torch.Tensor, pool: PagePool,
                    sliding_window: int | None = None):
    """A FlexAttention `BlockMask` over the whole pool for this step's flat queries.

    The keys are every slot of the pool, one block per page. Query block j lists the pages of the
    requests with a query in it, each page once; a page is "full" (no mask needed) when the block
    holds one request and every query in it sits at or after the page's last row. `mask_mod` then
    keeps, inside the listed pages, the keys of the query's own request at or before its position.
    The queries are padded to a power of two, 16 at least (whole blocks past one block), padding seeing no key, and
    the page table's requests to a power of two (8 at least), so a compiled kernel meets few distinct
    shapes, not one per step. (Past torch's recompile limit, 8 shapes, a new one runs FlexAttention's
    eager reference: exact, but it scores every slot of the pool.)
    """
    from torch.nn.attention.flex_attention import BlockMask

    size, device, n = pool.page_size, positions.device, len(positions)
    counts = [len(s.new_ids) for s in slices]
    tables = [s.page_table[:pool.pages_for_rows(s.past + c)] for s, c in zip(slices, counts)]
    request = torch.repeat_interleave(torch.arange(len(slices)), torch.tensor(counts))  # each query's request
    blocks = -(-n // FLEX_QUERY_BLOCK)
    listed = torch.zeros(2, 1, 1, blocks, pool.num_pages, dtype=torch.int32)  # partial, then full, page ids
    numbers = torch.zeros(2, 1, 1, blocks, dtype=torch.int32)
    cpu_positions = positions.cpu()
    for j in range(blocks):
        block = slice(j * FLEX_QUERY_BLOCK, (j + 1) * FLEX_QUERY_BLOCK)
        owners = request[block].unique().tolist()
        pages = list(dict.fromkeys(p for r in owners for p in tables[r]))  # a shared page listed twice counts twice
        full = (int(cpu_positions[block].min()) + 1) // size if len(owners) == 1 and sliding_window is None else 0
        for kind, kind_pages in enumerate((pages[full:], pages[:full])):
            numbers[kind, 0, 0, j] = len(kind_pages)
            listed[kind, 0, 0, j, :len(kind_pages)] = torch.tensor(kind_pages, dtype=torch.int32)
    # Each request's logical page number of every pool page (-1: not its page), as one flat table indexed
    # from each query's row start: the CPU kernel compiles a 1-D lookup, not a 2-D one.
    logical = torch.full((max(8, 1 << (len(slices) - 1).bit_length()), pool.num_pages), -1, dtype=torch.int32)
    for r, table in enumerate(tables):
        logical[r, table] = torch.arange(len(table), dtype=torch.int32)
    padding = (max(FLEX_FEWEST_QUERIES, 1 << (n - 1).bit_length()) if n <= FLEX_QUERY_BLOCK
               else blocks * FLEX_QUERY_BLOCK) - n
    row_start = F.pad(request * pool.num_pages, (0, padding)).to(device)
    logical, query_pos = logical.flatten().to(device), F.pad(positions, (0, padding), value=-1)

    def mask_mod(b, h, q, kv):
        page = logical[row_start[q] + kv // size]
        key = page * size + kv % size
        seen = (page >= 0) & (key <= query_pos[q])
        return seen if sliding_window is None else seen & (key > query_pos[q] - sliding_window)

    numbers, listed = numbers.to(device), listed.to(device)
    return BlockMask.from_kv_blocks(numbers[0], listed[0], numbers[1], listed[1], BLOCK_SIZE=(FLEX_QUERY_BLOCK, size),
                                    mask_mod=mask_mod, seq_lengths=(n + padding, pool.num_pages * size))


def flex_paged_attention(q: torch.Tensor, pool: PagePool, layer: int, block_mask, *, compiled: bool = True):
    """Every query attends to its own request's rows where they lie in `layer` of the pool; q [1, heads, N, dim].

    The pool's layer is passed as one long sequence of slots (a view, no copy); the block mask
    makes the kernel skip every page but the query's own. The queries are padded to the mask's
    length and the padding's outputs dropped. `compiled=False` runs FlexAttention's eager reference,
    which ignores the block sparsity and scores every slot: for tests of the mask.
    """
    keys, values = (store[layer].flatten(1, 2)[None] for store in (pool.keys, pool.values))  # [1, kv_heads, slots, dim]
    attend = compiled_flex_attention() if compiled else eager_flex_attention()
    n = q.shape[2]
    padded = F.pad(q, (0, 0, 0, block_mask.seq_lengths[0] - n))
    return attend(padded, keys, values, block_mask=block_mask, enable_gqa=q.shape[1] != keys.shape[1])[:, :, :n]


@cache
def compiled_flex_attention():
    """FlexAttention compiled once per process; each new shape (see `page_block_mask`'s padding) compiles again.

    Static shapes: torch 2.13's CPU kernel for dynamic ones does not compile (a C++ error) for this mask.
    """
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def eager_flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    return flex_attention
