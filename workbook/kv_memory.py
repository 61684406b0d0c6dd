"""KV memory at real scale: the bytes a real model's cache takes per token, per sequence and per batch, and how many
sequences fit on a GPU beside the weights.

Every token a model has read leaves K and V rows in every layer. With the shape from a model's `config.json`:

- multi-head attention (MHA) keeps a K and a V vector per head: 2 · layers · heads · head_dim values per token;
- grouped-query attention (GQA) lets several query heads share one K/V head, so `num_key_value_heads` replaces
  `heads` above (multi-query attention, MQA, is GQA with a single K/V head);
- multi-head latent attention (MLA, DeepSeek-V2/V3) keeps no per-head K or V at all: per layer, one compressed latent
  of `kv_lora_rank` values that every head's K and V are rebuilt from, plus one decoupled RoPE key of
  `qk_rope_head_dim` values shared by all heads: layers · (kv_lora_rank + qk_rope_head_dim) values per token.

Each value takes the bits of the cache's dtype, and every token of the context is counted, as a full cache keeps
them: a sliding-window model (Mistral 7B v0.1's config.json sets sliding_window 4096) can keep only the window's
last tokens in a rolling buffer (the Mistral 7B paper, arXiv:2310.06825, section 2), which this does not model; the
calculator in lesson 9 notes what the window would save.

The configs shipped in data/configs/ hold the shape settings of each model's Hugging Face `config.json`, and
`num_parameters`: the exact count of the released weights (the sum of the checkpoint's tensor sizes; the model page
rounds it, e.g. to 8.03B). Each file's `source` names both pages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .checks import check_whole
from .counting import kv_vectors_per_token
from .errors import WorkbookError
from .kv_quant import KV_BITS
from .paths import DATA_DIR

CONFIGS_DIR = DATA_DIR / "configs"
DTYPE_BITS = {"float32": 32, "bfloat16": 16, "float16": 16, **KV_BITS}  # KV_BITS: the quantised formats


@dataclass(frozen=True)
class KVMemory:
    """The KV cache of `batch` sequences of `context_tokens` tokens each, and the weights beside it."""

    bytes_per_token: int  # one token's K and V rows (or MLA latents) across all layers
    context_tokens: int
    batch: int
    weight_bytes: int | None  # None when the config gives no num_parameters
    kv_dtype: str
    weight_dtype: str

    @property
    def per_sequence_bytes(self) -> int:
        return self.bytes_per_token * self.context_tokens

    @property
    def total_bytes(self) -> int:
        return self.per_sequence_bytes * self.batch

    def sequences_that_fit(self, gpu_bytes: float) -> int:
        """Sequences of `context_tokens` whose caches fit in what `gpu_bytes` leaves after the weights (0 if the
        weights alone do not fit). Real servers fit somewhat fewer: they also need room for activations."""
        if isinstance(gpu_bytes, bool) or not isinstance(gpu_bytes, (int, float)) or gpu_bytes <= 0:
            raise WorkbookError(f"GPU memory must be a positive number of bytes, got {gpu_bytes!r}.")
        if self.weight_bytes is None:
            raise WorkbookError("This config gives no num_parameters, so the weights' size is unknown; add "
                                "num_parameters to the config to count how many sequences fit beside them.")
        return max(0, int((gpu_bytes - self.weight_bytes) // self.per_sequence_bytes))


def kv_memory(config, context_tokens: int, batch: int = 1, kv_dtype: str = "bfloat16",
              weight_dtype: str = "bfloat16") -> KVMemory:
    """The KV cache and weights of a model (a config dict or object with Hugging Face `config.json` fields).

    Counts the bytes of the cached values only. A quantised cache (fp8, int8, int4, int2) also stores scales, per
    tensor, head or row depending on the engine, and quantised weights store theirs: a little more than counted here.
    """
    check_whole("context_tokens", context_tokens, 1)
    check_whole("batch", batch, 1)
    kv_bits, weight_bits = dtype_bits(kv_dtype), dtype_bits(weight_dtype)
    parameters = _get(config, "num_parameters")
    if parameters is not None:
        check_whole("num_parameters", parameters, 1)
    return KVMemory(bytes_per_token=_whole_bytes(kv_values_per_token(config) * kv_bits),
                    context_tokens=context_tokens, batch=batch,
                    weight_bytes=None if parameters is None else _whole_bytes(parameters * weight_bits),
                    kv_dtype=kv_dtype, weight_dtype=weight_dtype)


def kv_values_per_token(config) -> int:
    """Values one token leaves in the cache across all layers (see the module docstring for the three formulas)."""
    layers = _field(config, "num_hidden_layers")
    if is_mla(config):
        return layers * (_field(config, "kv_lora_rank") + _field(config, "qk_rope_head_dim"))
    return kv_vectors_per_token(layers, kv_heads(config)) * head_dim(config)


def is_mla(config) -> bool:
    """Multi-head latent attention: the config names a latent rank and a decoupled RoPE key size."""
    return _get(config, "kv_lora_rank") is not None and _get(config, "qk_rope_head_dim") is not None


def kv_heads(config) -> int:
    """K/V heads per layer; a config without `num_key_value_heads` is multi-head: one per query head."""
    heads = _field(config, "num_attention_heads")
    return heads if _get(config, "num_key_value_heads") is None else _field(config, "num_key_value_heads")


def head_dim(config) -> int:
    """Values per head: `head_dim` where the config gives it, else hidden_size // num_attention_heads."""
    if _get(config, "head_dim") is not None:
        return _field(config, "head_dim")
    return _field(config, "hidden_size") // _field(config, "num_attention_heads")


def attention_kind(config) -> str:
    """'MLA', 'MHA' (a K/V head per query head), 'MQA' (one K/V head) or 'GQA' (groups of query heads share one)."""
    if is_mla(config):
        return "MLA"
    shared = kv_heads(config)
    return "MHA" if shared == _field(config, "num_attention_heads") else "MQA" if shared == 1 else "GQA"


def multi_head_config(config) -> dict:
    """The same shape with one K/V head per query head: what GQA or MLA saves is measured against this.

    For an MLA model each head gets its own K and V of `v_head_dim` values, as the DeepSeek-V2 paper compares
    (2 · heads · head dim · layers values per token for MHA).
    """
    shape = {"num_hidden_layers": _field(config, "num_hidden_layers"),
             "num_attention_heads": _field(config, "num_attention_heads")}
    shape["num_key_value_heads"] = shape["num_attention_heads"]
    shape["head_dim"] = _field(config, "v_head_dim") if is_mla(config) else head_dim(config)
    return shape


def dtype_bits(dtype: str) -> int:
    """Bits of one cached value or weight in `dtype` (one of DTYPE_BITS)."""
    if dtype not in DTYPE_BITS:
        raise WorkbookError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BITS)}.")
    return DTYPE_BITS[dtype]


def load_configs() -> dict[str, dict]:
    """The shipped model configs in data/configs/, by file name: {'llama-3-8b': {...}, ...}."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(CONFIGS_DIR.glob("*.json"))}


def format_bytes(n: float) -> str:
    """Bytes in binary units: 131072 -> '128 KiB', 2.5 * 2**30 -> '2.5 GiB', 16_060_522_496 -> '15 GiB'."""
    units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    unit = 0
    while abs(n) >= 1024 and unit < len(units) - 1:
        n, unit = n / 1024, unit + 1
    number = f"{n:,.0f}" if n == int(n) or abs(n) >= 100 else f"{n:.3g}"
    return f"{number} {units[unit]}"


# ----- reading a config ---------------------------------------------------------------------------------------


def _get(config, name: str):
    """A field of a config dict or object, or None where it has none."""
    return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)


def _field(config, name: str) -> int:
    value = _get(config, name)
    if value is None:
        raise WorkbookError(f"The config has no {name!r}. A KV size needs num_hidden_layers, num_attention_heads "
                            "and hidden_size or head_dim; MLA also kv_lora_rank and qk_rope_head_dim.")
    check_whole(name, value, 1)
    return value


def _whole_bytes(bits: int) -> int:
    """Bits rounded up to whole bytes (4- and 2-bit values are packed, several to a byte)."""
    return -(-bits // 8)
