"""Prompt Cache Workbook: the inference machinery behind prompt caching, small enough to read."""

from .checkpoints import default_draft_model, default_model
from .errors import (ContextLengthError, EmptyInputError, UnknownModelError, UnsupportedModelError,
                     WorkbookError)
from .kv_cache import KVCache
from .model import ModelConfig, Transformer, load_model
from .tokenizer import BPETokenizer, first_divergence, load_tokenizer

__all__ = [
    "BPETokenizer", "ContextLengthError", "EmptyInputError", "KVCache", "ModelConfig", "Transformer", "UnknownModelError",
    "UnsupportedModelError", "WorkbookError", "default_draft_model", "default_model", "first_divergence", "load_model", "load_tokenizer",
]
