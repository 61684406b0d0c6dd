"""Causal self-attention, written out step by step and through PyTorch's fused kernel.

The written-out path returns every intermediate (scores, mask, weights) so lessons can plot them;
the fast path (`scaled_dot_product_attention`) is what the model runs. Tests prove they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def causal_mask(n_queries: int, n_keys: int, *, sliding_window: int | None = None, device=None) -> torch.Tensor:
    """Boolean [n_queries, n_keys] mask, True where a query may look at a key.

    The queries are the last `n_queries` positions of the `n_keys`, so query i sits at
    position i + (n_keys - n_queries) and sees every key at or before it.
    """
    offset = n_keys - n_queries
    query_pos = torch.arange(n_queries, device=device)[:, None] + offset
    key_pos = torch.arange(n_keys, device=device)[None, :]
    allowed = key_pos <= query_pos
    if sliding_window is not None:
        allowed &= key_pos > query_pos - sliding_window
    return allowed


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Grouped-query attention: share each K/V head among `n_rep` query heads."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


@dataclass
class AttentionSteps:
    """Every step of the written-out attention, for plots: all [batch, heads, n_queries, n_keys] but `output`."""

    scores: torch.Tensor  # q·k / sqrt(d), before masking
    mask: torch.Tensor  # [n_queries, n_keys], True = allowed
    weights: torch.Tensor  # softmax of the masked scores; each row sums to 1
    output: torch.Tensor  # weights @ v, [batch, heads, n_queries, head_dim]


def causal_attention_steps(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float | None = None, sliding_window: int | None = None
) -> AttentionSteps:
    """Causal attention written out: scores, mask, softmax, weighted sum of values.

    q: [batch, heads, n_queries, head_dim]; k, v: [batch, kv_heads, n_keys, head_dim].
    """
    n_rep = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    mask = causal_mask(q.shape[2], k.shape[2], sliding_window=sliding_window, device=q.device)
    # A masked score becomes -inf, so softmax gives it exactly zero weight.
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")).float(), dim=-1).to(q.dtype)
    return AttentionSteps(scores=scores, mask=mask, weights=weights, output=weights @ v)


def causal_attention(q, k, v, *, scale: float | None = None, sliding_window: int | None = None) -> torch.Tensor:
    """The fast path: the same result as `causal_attention_steps(...).output`, via PyTorch's fused kernel."""
    n_queries, n_keys = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if n_queries == n_keys and sliding_window is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    mask = causal_mask(n_queries, n_keys, sliding_window=sliding_window, device=q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)
