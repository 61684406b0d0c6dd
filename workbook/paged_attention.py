"""Attention for a batch of requests whose K/V rows live in pages of a shared pool.

One forward pass runs every scheduled request's new tokens side by side, flattened into one
sequence of N tokens: the projections and the MLP see one [1, N, hidden] tensor, whatever mix of
prefill chunks and single decode tokens it holds. Only attention needs to know which tokens
belong to which request. `PagedBatch` records that layout; `paged_attention` is the one place
that reads a request's rows back through its block table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .page_pool import PagePool


@dataclass
class BatchSlice:
    """One request's part of a step: its block table, rows already in the pool, and new token ids."""

    block_table: list[int]  # pool pages holding the request's rows, in order
    past: int  # rows already in the pool (cached or computed in earlier steps)
    new_ids: list[int]  # tokens computed in this step; their rows go to positions past..past+len-1


class PagedBatch:
    """The layout of one step over a paged pool, built once and read by every layer.

    Passed to the model where a `KVCache` would go: each layer calls `attend`, which writes the
    new rows into their pages and attends through the block tables.
    """

    def __init__(self, pool: PagePool, slices: list[BatchSlice], sliding_window: int | None = None):
        device = pool.keys.device
        self.pool = pool
        counts = [len(s.new_ids) for s in slices]
        longest, widest = max(s.past + n for s, n in zip(slices, counts)), max(counts)
        read_slots = torch.zeros(len(slices), longest, dtype=torch.long)  # padding reads slot 0, then is masked
        query_index = torch.zeros(len(slices), widest, dtype=torch.long)
        starts = torch.tensor([0] + counts).cumsum(0)
        for b, (s, n) in enumerate(zip(slices, counts)):
            read_slots[b, :s.past + n] = self.slots(s.block_table, torch.arange(s.past + n), pool.page_size)
            query_index[b, :n] = torch.arange(starts[b], starts[b + 1])
        positions = torch.cat([torch.arange(s.past, s.past + n) for s, n in zip(slices, counts)])
        write_slots = torch.cat([row[s.past:s.past + n] for row, s, n in zip(read_slots, slices, counts)])
        self.input_ids = torch.tensor([[i for s in slices for i in s.new_ids]], dtype=torch.long, device=device)
        self.positions = positions.to(device)
        self.write_slots = write_slots.to(device)
        self.read_slots = read_slots.to(device)
        self.query_index = query_index.to(device)
        self.token_request = torch.repeat_interleave(torch.arange(len(slices)), torch.tensor(counts)).to(device)
        self.token_offset = (torch.arange(int(starts[-1])) - starts[:-1].repeat_interleave(torch.tensor(counts))).to(device)
        self.last_rows = (starts[1:] - 1).to(device)  # the flat index of each request's last new token
        self.mask = self._mask(slices, longest, widest, sliding_window).to(device)

    @staticmethod
    def slots(block_table: list[int], rows: torch.Tensor, page_size: int) -> torch.Tensor:
        """Pool slots (page * page_size + offset) of a request's rows."""
        pages = torch.tensor(block_table, dtype=torch.long)
        return pages[rows // page_size] * page_size + rows % page_size

    @staticmethod
    def _mask(slices: list[BatchSlice], longest: int, widest: int, sliding_window: int | None) -> torch.Tensor:
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

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               sliding_window: int | None = None) -> torch.Tensor:
        """Write this step's K/V rows into their pages, then attend; q [1, heads, N, dim] -> [1, heads, N, dim].

        (`sliding_window` is already in the mask, built once per step.)
        """
        keys, values = self.pool.layer_rows(layer)
        keys[:, self.write_slots] = k[0]
        values[:, self.write_slots] = v[0]
        return paged_attention(q, keys, values, self)


def paged_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, batch: PagedBatch) -> torch.Tensor:
    """Each request's queries attend to its own rows, read from the pool through its block table.

    The read gathers every request's rows into a padded [batch, kv_heads, longest, dim] tensor
    and masks the padding: simple, exact, and wasteful when lengths differ a lot. This function is
    the one place that reads paged K/V, so a paged-attention kernel that reads the pages in place
    (FlashInfer or vLLM's on CUDA) could replace it without touching the scheduler or the model.
    """
    gathered_k = keys[:, batch.read_slots].transpose(0, 1)  # [batch, kv_heads, longest, dim]
    gathered_v = values[:, batch.read_slots].transpose(0, 1)
    padded_q = q[0][:, batch.query_index].transpose(0, 1)  # [batch, heads, widest, dim]
    out = F.scaled_dot_product_attention(padded_q, gathered_k, gathered_v, attn_mask=batch.mask,
                                         enable_gqa=q.shape[1] != keys.shape[0])
    return out[batch.token_request, :, batch.token_offset].transpose(0, 1)[None]  # back to [1, heads, N, dim]
