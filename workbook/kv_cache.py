"""The KV cache: per-layer key/value rows kept between forward passes, with each row's provenance.

Causal attention never lets a later token change an earlier token's keys and values, so once a
row is computed it can be kept. The model writes new rows here and reads every earlier row back.
"""

from __future__ import annotations

from typing import Literal

import torch

from .attention import causal_attention
from .checks import check_whole
from .counting import kv_bytes_per_token
from .errors import ContextLengthError, WorkbookError

Provenance = Literal["computed", "loaded"]


class KVCache:
    """Preallocated K/V storage for every layer, filled from row 0 up to `length`.

    `provenance[i]` says whether row i was computed by a forward pass or loaded from elsewhere
    (a prefix cache); `last_written` is the range of rows the most recent write added.
    """

    def __init__(
        self,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        max_tokens: int,
        *,
        batch_size: int = 1,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        check_whole("max_tokens", max_tokens, 1)
        check_whole("batch_size", batch_size, 1)
        shape = (batch_size, num_kv_heads, max_tokens, head_dim)
        # Uninitialised: only rows below `length` are ever read, and each is written before that.
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.length = 0
        self.provenance: list[Provenance] = []
        self.last_written = range(0, 0)

    @property
    def capacity(self) -> int:
        """How many rows fit."""
        return self.keys[0].shape[2]

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    def bytes_per_token(self) -> int:
        """Bytes one row occupies across all layers, keys and values (what a prefix cache stores per token)."""
        batch, heads, _, dim = self.keys[0].shape
        return batch * kv_bytes_per_token(self.num_layers, heads, dim, self.keys[0].element_size())

    def check_room(self, n_new: int) -> None:
        """Raise before any work if `n_new` more rows would not fit."""
        if self.length + n_new > self.capacity:
            raise ContextLengthError(
                f"The KV cache holds {self.capacity} rows; it has {self.length} and {n_new} more do not fit. "
                "Make a bigger cache (model.new_cache(max_tokens=...)) or send fewer tokens."
            )

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new rows for one layer after the current `length`; return all rows of that layer so far.

        `length` itself moves only in `commit`, once every layer has written, so a pass that
        fails half way leaves the cache as it was.
        """
        start, end = self.length, self.length + k.shape[2]
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               sliding_window: int | None = None) -> torch.Tensor:
        """Store one layer's new rows, then let the new queries attend to every row so far."""
        k, v = self.write(layer, k, v)
        return causal_attention(q, k, v, sliding_window=sliding_window)

    def commit(self, n_new: int, provenance: Provenance = "computed") -> None:
        """Make `n_new` written rows part of the cache."""
        self.last_written = range(self.length, self.length + n_new)
        self.length += n_new
        self.provenance.extend([provenance] * n_new)

    def load(self, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        """Append rows computed elsewhere (one [batch, kv_heads, n, head_dim] tensor per layer), marked as loaded."""
        if len(keys) != self.num_layers or len(values) != self.num_layers:
            raise WorkbookError(f"Expected K and V for {self.num_layers} layers, got {len(keys)} and {len(values)}.")
        n_new = keys[0].shape[2]
        self.check_room(n_new)
        for layer, (k, v) in enumerate(zip(keys, values)):
            self.write(layer, k, v)
        self.commit(n_new, "loaded")

    def rows(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The filled K and V rows of one layer, shape [batch, kv_heads, length, head_dim]."""
        return self.keys[layer][:, :, : self.length], self.values[layer][:, :, : self.length]

    def crop(self, n: int) -> None:
        """Roll back to the first `n` rows (speculative decoding discards rejected guesses this way)."""
        if not 0 <= n <= self.length:
            raise WorkbookError(f"Can only crop to 0..{self.length} rows, not {n}.")
        self.length = n
        del self.provenance[n:]
        self.last_written = range(n, n)

    def __repr__(self) -> str:
        return f"KVCache(layers={self.num_layers}, length={self.length}, capacity={self.capacity}, device={self.device})"
