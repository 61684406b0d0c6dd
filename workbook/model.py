"""A compact decoder-only transformer that loads Hugging Face checkpoints and runs with a KV cache.

One skeleton covers two families:
- Llama family (Llama, Mistral, Qwen2, SmolLM): RoPE, RMSNorm, SwiGLU MLP, grouped-query attention;
- GPT-2 family: learned positions, LayerNorm, GELU MLP, biases everywhere.
Module names follow the Llama checkpoints, so their weights load as they are; GPT-2 weights are
renamed on load (`gpt2_to_llama_names`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from numbers import Integral
from pathlib import Path

import torch
from torch import nn

from .attention import causal_attention, causal_attention_steps
from .checkpoints import resolve_checkpoint, vocabulary_fingerprint
from .errors import ContextLengthError, EmptyInputError, UnsupportedModelError, WorkbookError
from .kv_cache import KVCache
from .paged_attention import PagedBatch, check_attention_kind

# Hugging Face `model_type` -> the family of our skeleton that runs it.
SUPPORTED_MODEL_TYPES = {"llama": "llama", "mistral": "llama", "qwen2": "llama", "gpt2": "gpt2"}
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "yarn")


@dataclass
class ModelConfig:
    """The shape of a model, read from a Hugging Face config.json."""

    model_type: str
    family: str  # "llama" or "gpt2"
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    norm_eps: float
    hidden_act: str
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    tie_word_embeddings: bool = False
    sliding_window: int | None = None

    @classmethod
    def from_hf(cls, hf) -> ModelConfig:
        """Translate a `transformers` config; unsupported architectures get a clear error."""
        model_type = getattr(hf, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise UnsupportedModelError(
                f"Model type {model_type!r} is not supported. Supported: {', '.join(SUPPORTED_MODEL_TYPES)} "
                "(SmolLM checkpoints are model_type 'llama')."
            )
        if model_type == "gpt2":
            if getattr(hf, "scale_attn_by_inverse_layer_idx", False) or getattr(hf, "reorder_and_upcast_attn", False):
                raise UnsupportedModelError("GPT-2 variants with layer-scaled or upcast attention are not supported.")
            return cls(
                model_type=model_type, family="gpt2", vocab_size=hf.vocab_size, hidden_size=hf.n_embd,
                num_layers=hf.n_layer, num_heads=hf.n_head, num_kv_heads=hf.n_head, head_dim=hf.n_embd // hf.n_head,
                intermediate_size=hf.n_inner or 4 * hf.n_embd, max_position_embeddings=hf.n_positions,
                norm_eps=hf.layer_norm_epsilon, hidden_act=hf.activation_function,
                qkv_bias=True, o_bias=True, mlp_bias=True, tie_word_embeddings=True,
            )
        if model_type == "qwen2" and getattr(hf, "use_sliding_window", False):
            raise UnsupportedModelError("Qwen2 checkpoints with use_sliding_window=True are not supported.")
        attention_bias = bool(getattr(hf, "attention_bias", False))
        return cls(
            model_type=model_type, family="llama", vocab_size=hf.vocab_size, hidden_size=hf.hidden_size,
            num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads,
            num_kv_heads=getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads,
            head_dim=getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads,
            intermediate_size=hf.intermediate_size, max_position_embeddings=hf.max_position_embeddings,
            norm_eps=hf.rms_norm_eps, hidden_act=hf.hidden_act,
            qkv_bias=attention_bias or model_type == "qwen2",  # Qwen2 always has q/k/v biases
            o_bias=attention_bias,
            mlp_bias=bool(getattr(hf, "mlp_bias", False)),
            tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", False)),
            sliding_window=getattr(hf, "sliding_window", None) if model_type == "mistral" else None,
        )


def rope_frequencies(hf, head_dim: int) -> tuple[torch.Tensor, float]:
    """RoPE's inverse frequencies and output scale, using the checkpoint's theta and scaling rule."""
    params = getattr(hf, "rope_parameters", None) or {"rope_type": "default", "rope_theta": getattr(hf, "rope_theta", 10000.0)}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UnsupportedModelError(f"RoPE scaling {rope_type!r} is not supported; supported: {', '.join(SUPPORTED_ROPE_TYPES)}.")
    if rope_type == "default":
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
        return 1.0 / (params["rope_theta"] ** exponents), 1.0
    # Scaled variants (linear, Llama 3, YaRN): transformers already implements each rule.
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    inv_freq, scale = ROPE_INIT_FUNCTIONS[rope_type](hf)
    return inv_freq.float(), float(scale)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotates each query and key by an angle proportional to its position (RoPE)."""

    def __init__(self, inv_freq: torch.Tensor, scale: float):
        super().__init__()
        # A plain attribute, not a buffer: model.to(float16) must not round the frequencies.
        self.inv_freq = inv_freq.float()
        self.scale = scale

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inv_freq.device != positions.device:
            self.inv_freq = self.inv_freq.to(positions.device)
        angles = positions[:, None].float() * self.inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        return (angles.cos() * self.scale).to(dtype), (angles.sin() * self.scale).to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=cfg.o_bias)

    def forward(self, x, rope, cache, layer: int, record: list | None) -> torch.Tensor:
        batch, n, _ = x.shape
        q = self.q_proj(x).view(batch, n, self.cfg.num_heads, self.cfg.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, n, self.cfg.num_kv_heads, self.cfg.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, n, self.cfg.num_kv_heads, self.cfg.head_dim).transpose(1, 2)
        if rope is not None:
            cos, sin = rope
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if record is not None:  # the written-out attention, every step kept for plots
            if cache is not None:
                k, v = cache.write(layer, k, v)
            record.append(causal_attention_steps(q, k, v, sliding_window=self.cfg.sliding_window))
            out = record[-1].output
        elif cache is not None:  # a KVCache or a PagedBatch: store the new rows, attend to every row so far
            out = cache.attend(layer, q, k, v, sliding_window=self.cfg.sliding_window)
        else:
            out = causal_attention(q, k, v, sliding_window=self.cfg.sliding_window)
        return self.o_proj(out.transpose(1, 2).reshape(batch, n, -1))


class MLP(nn.Module):
    """SwiGLU (Llama: act(gate) * up, then down) or a plain two-layer MLP (GPT-2: act(up), then down)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        from transformers.activations import ACT2FN  # the exact activations checkpoints were trained with

        self.gated = cfg.family == "llama"
        if self.gated:
            self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)
        self.act = ACT2FN[cfg.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.gate_proj(x)) * self.up_proj(x) if self.gated else self.act(self.up_proj(x))
        return self.down_proj(hidden)


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.family == "llama":
        return nn.RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps)


class Block(nn.Module):
    """One transformer layer: pre-norm attention, then pre-norm MLP, each added back to the residual."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = make_norm(cfg)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, h, rope, cache, layer, record):
        h = h + self.self_attn(self.input_layernorm(h), rope, cache, layer, record)
        return h + self.mlp(self.post_attention_layernorm(h))


@cache
def compiled_block():
    """`Block.forward` through `torch.compile`, built once per process and shared by every layer and model.

    Shapes are dynamic (a step's token count changes every step), so it compiles about twice, not
    once per length; the weights are inputs, so every layer shares one graph.
    """
    return torch.compile(Block.forward, dynamic=True)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        if cfg.family == "gpt2":
            self.embed_positions = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = make_norm(cfg)


class Transformer(nn.Module):
    """A decoder-only language model: `model(input_ids, cache=None)` returns logits [batch, seq, vocab]."""

    def __init__(self, cfg: ModelConfig, hf_config=None):
        super().__init__()
        self.config = cfg
        self.hf_config = hf_config
        self.name = ""
        self.folder: Path | None = None  # the checkpoint folder (or GGUF file), when loaded with load_model
        # What each token id means, hashed once at load so decoding never reads tokenizer files.
        self.vocabulary_fingerprint: str | None = None
        self.model = Decoder(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.rotary = RotaryEmbedding(*rope_frequencies(hf_config, cfg.head_dim)) if cfg.family == "llama" else None
        # How paged steps run (`configure_steps`): the readable reference unless asked otherwise.
        self.attention = "gather"
        self.compiled = False

    def configure_steps(self, attention: str = "gather", compiled: bool = False) -> Transformer:
        """Choose how paged steps (every `Server` and `Engine` request) run; returns the model.

        `attention`: "gather" (the default and the checked reference), "pages" (copies whole pages,
        not rows: the fastest read on a CPU) or "flex" (reads pages in place, compiled); see
        `workbook.paged_attention`. `compiled=True` runs each layer's norms, projections, RoPE and
        MLP through `torch.compile`, attention staying as chosen. All give the reference's tokens.
        "flex" and `compiled` are off by default because compiling costs tens of seconds on a CPU
        the first time each shape is seen, longer than a lesson's cell should take.
        """
        check_attention_kind(attention)
        if not isinstance(compiled, bool):
            raise WorkbookError(f"compiled must be True or False, not {compiled!r}.")
        self.attention, self.compiled = attention, compiled
        return self

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def num_parameters(self) -> int:
        """Parameters counted once each (tied embeddings count once)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, max_tokens: int, batch_size: int = 1) -> KVCache:
        """An empty KV cache on the model's device, able to hold `max_tokens` rows."""
        check_context(self, max_tokens)
        return KVCache(self.config.num_layers, self.config.num_kv_heads, self.config.head_dim, max_tokens,
                       batch_size=batch_size, device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None, record_attention: list | None = None,
                last_only: bool = False):
        """Logits for every input position (or only the last, with `last_only`: all a prefill needs).

        With a `cache`, the input continues the cached rows: its K/V rows are appended and it
        attends to everything before it. Pass a list as `record_attention` to run the written-out
        attention and collect each layer's `AttentionSteps` (scores, mask, weights) in it.
        """
        input_ids = self._checked(input_ids, cache)
        n = input_ids.shape[1]
        past = cache.length if cache is not None else 0
        h = self._hidden(input_ids, torch.arange(past, past + n, device=self.device), cache, record_attention)
        if last_only:
            h = h[:, -1:]
        logits = self.lm_head(self.model.norm(h))
        if cache is not None:
            cache.commit(n)
        return logits

    @torch.no_grad()
    def forward_paged(self, batch: PagedBatch) -> torch.Tensor:
        """Logits [requests, vocab] at each request's last new token, for a step of many requests over a paged pool.

        The server checks every request before it builds the batch, so nothing is checked here.
        """
        check_attention_kind(self.attention, batch.pool)  # before any layer writes to the pool
        batch.attention = self.attention
        h = self._hidden(batch.input_ids, batch.positions, batch, None, compiled=self.compiled)
        return self.lm_head(self.model.norm(h[0, batch.last_rows]))

    def _hidden(self, input_ids: torch.Tensor, positions: torch.Tensor, cache, record: list | None,
                compiled: bool = False) -> torch.Tensor:
        """The last layer's hidden states for `input_ids` at `positions` (one position per input column).

        `compiled` runs each layer through `compiled_block()`; only a paged step asks for it, since
        a `PagedBatch` keeps its attention out of the compiled graph.
        """
        h = self.model.embed_tokens(input_ids)
        if self.config.family == "gpt2":
            h = h + self.model.embed_positions(positions)
        rope = self.rotary(positions, h.dtype) if self.rotary is not None else None
        run = compiled_block() if compiled else Block.__call__
        for layer, block in enumerate(self.model.layers):
            h = run(block, h, rope, cache, layer, record)
        return h

    def _checked(self, input_ids, cache: KVCache | None) -> torch.Tensor:
        """Validate before any work, so bad input never touches the cache."""
        if not isinstance(input_ids, torch.Tensor):
            raise WorkbookError("input_ids must be a tensor of token ids shaped [batch, seq], e.g. torch.tensor([ids]).")
        check_integer_ids(input_ids)
        if input_ids.dim() != 2:
            raise WorkbookError(f"input_ids must be shaped [batch, seq]; got {tuple(input_ids.shape)}. "
                                "For one sequence use input_ids[None].")
        check_token_ids(input_ids.flatten().tolist(), self.config.vocab_size)
        check_context(self, (cache.length if cache is not None else 0) + input_ids.shape[1])
        if cache is not None:
            if cache.batch_size != input_ids.shape[0]:
                raise WorkbookError(f"The cache holds a batch of {cache.batch_size}; input_ids has {input_ids.shape[0]}.")
            cache.check_room(input_ids.shape[1])
        return input_ids.to(self.device, torch.long)


# ----- the model's own input rules (workbook.request.check_request applies them to every request) ------

def check_integer_ids(input_ids: torch.Tensor) -> None:
    """Refuse a float or bool tensor where token ids belong."""
    if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise WorkbookError(f"input_ids must hold integer token ids, not {input_ids.dtype}.")


def check_token_ids(ids: list[int], vocab_size: int) -> None:
    """Refuse an empty input, or an id the vocabulary does not have."""
    if not ids:
        raise EmptyInputError("The prompt is empty: give at least one token.")
    if min(ids) < 0 or max(ids) >= vocab_size:
        raise WorkbookError(f"Token ids must lie in 0..{vocab_size - 1}; got {min(ids)}..{max(ids)}.")


def check_context(model: Transformer, rows: int, role: str = "model") -> None:
    """Refuse work that needs more positions than `model` has, before any cache is made or written."""
    context = model.config.max_position_embeddings
    if rows > context:
        raise ContextLengthError(f"This needs {rows} token positions, past the {role}'s context of {context} tokens. "
                                 "Shorten the prompt or ask for fewer new tokens.")


def token_list(input_ids) -> list[int]:
    """One sequence of token ids as a list, from a list, a 1-D tensor or a [1, seq] tensor."""
    if isinstance(input_ids, torch.Tensor):
        check_integer_ids(input_ids)
        if input_ids.dim() == 2 and input_ids.shape[0] != 1:
            raise WorkbookError(f"A request is one sequence; got a batch of {input_ids.shape[0]}. Send them one at a time.")
        if input_ids.dim() not in (1, 2):
            raise WorkbookError(f"input_ids must be shaped [seq] or [1, seq]; got {tuple(input_ids.shape)}.")
        return input_ids.flatten().tolist()
    if isinstance(input_ids, (list, tuple)) and all(isinstance(i, Integral) for i in input_ids):
        return [int(i) for i in input_ids]
    raise WorkbookError("input_ids must be a list of token ids or a tensor shaped [seq] or [1, seq].")


def gpt2_to_llama_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename GPT-2 weights to our module names; its Conv1D weights are stored transposed."""
    out = {}
    for key, w in state.items():
        key = key.removeprefix("transformer.")
        if key.endswith((".attn.bias", ".attn.masked_bias")):  # causal-mask buffers, not weights
            continue
        parts = key.split(".")
        if parts[0] in ("wte", "wpe", "ln_f"):
            name = {"wte": "embed_tokens", "wpe": "embed_positions", "ln_f": "norm"}[parts[0]]
            out[f"model.{name}.{parts[-1]}"] = w
        elif parts[0] == "h":
            prefix, sub, kind = f"model.layers.{parts[1]}", ".".join(parts[2:-1]), parts[-1]
            if sub in ("ln_1", "ln_2"):
                out[f"{prefix}.{'input_layernorm' if sub == 'ln_1' else 'post_attention_layernorm'}.{kind}"] = w
            elif sub == "attn.c_attn":
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), w.chunk(3, dim=-1)):
                    out[f"{prefix}.self_attn.{proj}.{kind}"] = part.t() if kind == "weight" else part
            else:
                name = {"attn.c_proj": "self_attn.o_proj", "mlp.c_fc": "mlp.up_proj", "mlp.c_proj": "mlp.down_proj"}[sub]
                out[f"{prefix}.{name}.{kind}"] = w.t() if kind == "weight" else w
        elif key == "lm_head.weight":
            out[key] = w
    return out


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"` means CUDA when there is a GPU, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """None means float32: exact enough that cached and uncached logits agree to 1e-4."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise WorkbookError(f"dtype must be float32, float16, bfloat16 or float64, not {dtype!r}.")
    return dtype


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UnsupportedModelError(f"{folder} has no *.safetensors weights; the workbook loads safetensors only.")
    state = {}
    for file in files:
        state.update(load_file(file))
    return state


def load_model(name_or_path: str | Path, device: str | torch.device = "auto", dtype=None, *,
               allow_download: bool = False) -> Transformer:
    """Load a checkpoint: a shipped short name (`"tiny"`), a local folder, or a hub name in the local cache.

    A GGUF file (a path ending in .gguf, or `"smollm2-135m-instruct"` once `make setup` installed it)
    loads through `gguf_loader`. Weights stored in 16 bits or quantised are widened to `dtype`
    (float32 unless asked otherwise). `allow_download=True` lets a hub name be fetched when it is not cached yet.
    """
    from transformers import AutoConfig

    from .gguf_loader import gguf_file, load_gguf_model

    if (path := gguf_file(name_or_path)) is not None:
        return load_gguf_model(path, str(name_or_path), device, dtype)
    folder = resolve_checkpoint(name_or_path, allow_download=allow_download)
    hf_config = AutoConfig.from_pretrained(folder)
    cfg = ModelConfig.from_hf(hf_config)
    model = Transformer(cfg, hf_config)
    state = read_weights(folder)
    if cfg.family == "gpt2":
        state = gpt2_to_llama_names(state)
    state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}  # recomputed, not loaded
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and cfg.tie_word_embeddings)]
    if missing or unexpected:
        raise UnsupportedModelError(f"Checkpoint weights do not fit the {cfg.model_type} layout: "
                                    f"missing {missing[:5]}, unexpected {unexpected[:5]}.")
    model.name, model.folder, model.vocabulary_fingerprint = str(name_or_path), folder, vocabulary_fingerprint(folder)
    return model.to(device=pick_device(device), dtype=pick_dtype(dtype)).eval()
