"""Quantising the KV cache: K/V rows stored in fewer bits, with a scale per token and per head.

Each row of one head (one token's `head_dim` numbers) is stored on its own grid:
- "int8", "int4", "int2": 2**bits evenly spaced levels from the row's minimum to its maximum
  (a scale and an offset per row, kept in float32);
- "fp8": 8-bit floats (float8_e4m3fn) after dividing the row by a scale that maps its largest
  magnitude to the format's largest value, 448.
Rows are turned back into the model's dtype when attention reads them. Every row is quantised when
it is written, whether computed in this request or loaded from the prefix cache, so a hit on a
quantised pool reads exactly the rows a cold run on the same pool would have read.
"""

from __future__ import annotations

import torch

from .errors import WorkbookError

KV_BITS = {"int8": 8, "fp8": 8, "int4": 4, "int2": 2}
FP8_MAX = 448.0  # the largest float8_e4m3fn value


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KV_BITS:
        raise WorkbookError(f"kv_dtype must be None (the model's dtype) or one of {', '.join(KV_BITS)}, not {kind!r}.")
    if kind == "fp8" and not hasattr(torch, "float8_e4m3fn"):
        raise WorkbookError("This torch has no float8_e4m3fn; use kv_dtype='int8' instead.")


def storage_dtype(kind: str) -> torch.dtype:
    """What the quantised numbers are kept in (int4 and int2 one per byte: simple, not packed)."""
    return torch.float8_e4m3fn if kind == "fp8" else torch.uint8


def quantize(rows: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [..., dim] -> (codes [..., dim], params [..., 2]: scale and offset per row)."""
    x = rows.float()
    if kind == "fp8":
        scale = (x.abs().amax(-1, keepdim=True) / FP8_MAX).clamp_min(1e-12)
        return (x / scale).to(torch.float8_e4m3fn), torch.cat((scale, torch.zeros_like(scale)), -1)
    levels = 2 ** KV_BITS[kind] - 1
    low, high = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    scale = ((high - low) / levels).clamp_min(1e-12)
    codes = ((x - low) / scale).round().clamp(0, levels).to(torch.uint8)
    return codes, torch.cat((scale, low), -1)


def dequantize(codes: torch.Tensor, params: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Codes and their per-row scale and offset back to numbers in `dtype`."""
    return (codes.float() * params[..., :1] + params[..., 1:]).to(dtype)


def bytes_per_row(kind: str | None, dim: int, element_size: int) -> float:
    """Bytes one row of one head takes: its numbers (counted packed, as a real kernel stores them) and its scale."""
    if kind is None:
        return dim * element_size
    params = 4 if kind == "fp8" else 8  # fp8 needs only the scale; int formats a scale and an offset
    return dim * KV_BITS[kind] / 8 + params
