"""Reference formulas for the work and memory of inference: FLOPs of a forward pass, K/V rows, bytes per token.

Lessons, widgets and the exercises' reference answers all count with these functions, so each
formula is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import check_whole


@dataclass(frozen=True)
class FlopCount:
    """Floating-point operations of one forward pass, one multiply-add counted as 2."""

    weights: int  # every token times every weight matrix: 2 FLOPs per weight per token
    attention: int  # q·k scores plus weights·v: 4 · head_dim FLOPs per head, per (query, visible key) pair

    @property
    def total(self) -> int:
        return self.weights + self.attention


def weight_matmul_params(config) -> int:
    """Weights a token is multiplied by on its way through the model (a `ModelConfig`).

    The embedding is a table lookup, not a product, so it is left out; the output head
    (hidden -> vocabulary) is counted separately by `forward_flops`.
    """
    d, heads, kv_heads, hd = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    attention = d * heads * hd + 2 * d * kv_heads * hd + heads * hd * d  # q, k and v, o
    mlp = (3 if config.family == "llama" else 2) * d * config.intermediate_size  # SwiGLU has gate, up, down
    return config.num_layers * (attention + mlp)


def forward_flops(config, n_new: int, n_past: int = 0, *, all_logits: bool = False) -> FlopCount:
    """Matrix-product FLOPs of one forward pass over `n_new` tokens that follow `n_past` cached ones.

    Weights: 2 FLOPs per weight per new token. Attention: the query at position p sees p + 1
    keys (fewer with a sliding window); each visible key costs 2·head_dim for the score and
    2·head_dim for mixing its value, per head and layer. Elementwise work (norms, softmax,
    RoPE, activations) is small next to this and left out. The output head runs for the last
    position only, as in generation, unless `all_logits`.
    """
    check_whole("n_new", n_new, 0)
    check_whole("n_past", n_past, 0)
    window = config.sliding_window
    visible_keys = sum(p + 1 if window is None else min(p + 1, window) for p in range(n_past, n_past + n_new))
    head_positions = n_new if all_logits else min(n_new, 1)
    weights = 2 * n_new * weight_matmul_params(config) + 2 * head_positions * config.hidden_size * config.vocab_size
    attention = 4 * config.num_layers * config.num_heads * config.head_dim * visible_keys
    return FlopCount(weights=weights, attention=attention)


def kv_vectors_per_token(num_layers: int, num_kv_heads: int) -> int:
    """K and V vectors one token leaves in a cache: one of each per K/V head, in every layer. Every count of K/V
    memory (this module, `kv_memory`, the cache and the pool) starts from this."""
    return 2 * num_layers * num_kv_heads


def kv_bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int, bytes_per_value: int) -> int:
    """Bytes of KV cache one token occupies: its K and V vectors, `head_dim` values each."""
    return kv_vectors_per_token(num_layers, num_kv_heads) * head_dim * bytes_per_value


def rows_computed(prompt_tokens: int, new_tokens: int, cached: bool) -> int:
    """Token rows of K/V computed to generate `new_tokens` after a prompt (each row spans every layer).

    Generating n tokens takes n forward passes; pass k (from 0) sees prompt_tokens + k tokens.
    Without a cache each pass recomputes all of them; with one, the first pass computes the
    prompt and each later pass only the one token it adds.
    """
    if new_tokens < 1:
        return 0
    if cached:
        return prompt_tokens + new_tokens - 1
    return new_tokens * prompt_tokens + new_tokens * (new_tokens - 1) // 2
