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
    scored: int = 1  # how many of its last new tokens get logits (speculative verification scores every draft)


class PagedBatch:
    """The layout of one step over a paged pool, built once and read by every layer.

    Passed to the model where a `KVCache` would go: each layer calls `attend`, which writes the
    new rows into their pages and attends through the block tables. Requests are read in groups
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
        rows = [slots(s.block_table, s.past + n, pool.page_size) for s, n in zip(slices, counts)]
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

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               sliding_window: int | None = None) -> torch.Tensor:
        """Write this step's K/V rows into their pages, then attend; q [1, heads, N, dim] -> [1, heads, N, dim].

        (`sliding_window` is already in each group's mask, built once per step.)
        """
        self.pool.write(layer, self.write_slots, k[0], v[0])
        out = torch.empty_like(q)
        for group in self.groups:
            out[0, :, group.tokens] = paged_attention(q, self.pool, layer, group)
        return out


def slots(block_table: list[int], rows: int, page_size: int) -> torch.Tensor:
    """Pool slots (page * page_size + offset) of a request's first `rows` rows."""
    positions = torch.arange(rows)
    return torch.tensor(block_table, dtype=torch.long)[positions // page_size] * page_size + positions % page_size


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
    """Each request's queries attend to its own rows, read from the pool through its block table.

    q: [1, heads, N, dim], the whole step's queries; `layer` of `pool` holds the rows. Returns [heads, tokens of the group, dim]. The read gathers the group's rows into
    a padded [batch, kv_heads, longest, dim] tensor and masks the padding: simple and exact. This
    function is the one place that reads paged K/V, so a paged-attention kernel that reads pages
    in place (FlashInfer's or vLLM's, on CUDA) could replace it without touching the scheduler.
    """
    keys, values = pool.read(layer, group.read_slots)  # [kv_heads, batch, longest, dim]
    gathered_k, gathered_v = keys.transpose(0, 1), values.transpose(0, 1)
    padded_q = q[0][:, group.query_index].transpose(0, 1)  # [batch, heads, widest, dim]
    out = F.scaled_dot_product_attention(padded_q, gathered_k, gathered_v, attn_mask=group.mask,
                                         is_causal=group.plain_causal, enable_gqa=q.shape[1] != keys.shape[0])
    return out[group.request, :, group.offset].transpose(0, 1)  # [heads, tokens of the group, dim]
